//! `./demo.sh` keeps working: it pushes and pulls through docker-credential-acr inside its own
//! namespace, and prints the emulator's request counts. The binaries are the ones this test run
//! was built with (`DEMO_BIN_DIR`), so the demo does not build again.

use acr_tests::sandbox::workspace_bin;
use std::path::Path;
use std::process::Command;

#[test]
fn demo_pushes_pulls_and_prints_the_counts() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("tests/ has a parent")?;
    let helper = workspace_bin("docker-credential-acr");
    workspace_bin("acr-emulator");
    let bin_dir = helper.parent().ok_or("binaries sit in a folder")?;
    let out = Command::new(root.join("demo.sh"))
        .env("DEMO_BIN_DIR", bin_dir)
        .current_dir(root)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let push = stdout
        .split("Emulator requests for the pull")
        .next()
        .ok_or("output")?;
    let pull = stdout
        .split("Emulator requests for the pull")
        .nth(1)
        .ok_or_else(|| format!("no pull counts in:\n{stdout}"))?;
    for (part, expected) in [
        (push, ["entra=1", "exchange=1"]),
        (pull, ["entra=0", "exchange=0"]),
    ] {
        // Whole words: `entra=1` must not be satisfied by `entra=10`.
        let words: Vec<&str> = part
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '(' || c == ')')
            .collect();
        for e in expected {
            assert!(words.contains(&e), "{e} missing from:\n{part}");
        }
    }
    assert!(
        stdout.contains("==> Done: pushed and pulled sha256:"),
        "{stdout}"
    );
    Ok(())
}
