//! Replays every checked-in seed (`seeds/<target>/*`) through its fuzz target, on stable Rust:
//! CI builds the targets and proves each still holds on the inputs that matter. A long fuzzing
//! session (`cargo fuzz run <target> seeds/<target>`) starts from the same seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each target's binary as this build made it (without cargo-fuzz: it replays files).
const BINARIES: &[(&str, &str)] = &[
    ("login_server", env!("CARGO_BIN_EXE_login_server")),
    ("challenge", env!("CARGO_BIN_EXE_challenge")),
    ("jwt_claims", env!("CARGO_BIN_EXE_jwt_claims")),
    ("kubelet_request", env!("CARGO_BIN_EXE_kubelet_request")),
    ("azure_json", env!("CARGO_BIN_EXE_azure_json")),
    ("docker_config", env!("CARGO_BIN_EXE_docker_config")),
    ("store_input", env!("CARGO_BIN_EXE_store_input")),
    ("registry_mirror", env!("CARGO_BIN_EXE_registry_mirror")),
];

/// The seed files of `target`, sorted; never none.
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    seeds
}

#[test]
fn every_target_holds_on_its_seeds() {
    for (name, target) in acr_fuzz::TARGETS {
        let seeds = seeds(name);
        for seed in &seeds {
            let data = std::fs::read(seed).unwrap();
            target(&data);
        }
        println!("{name}: {} seeds", seeds.len());
    }
}

/// The targets' binaries build, and replay the seeds through the same bodies.
#[test]
fn every_target_binary_replays_its_seeds() {
    assert_eq!(
        BINARIES.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        acr_fuzz::TARGETS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
    );
    for (name, exe) in BINARIES {
        let out = Command::new(exe).args(seeds(name)).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An input it cannot read fails the run.
    let out = Command::new(BINARIES[0].1)
        .arg("/nonexistent/seed")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
