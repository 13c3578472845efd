//! How each crate's integration tests are laid out: one test binary per crate, `tests/main.rs`,
//! whose modules are the files of `tests/` (one link instead of one per file, and the harness
//! runs every test of the crate in parallel). Cargo's discovery of `tests/*.rs` is off
//! (`autotests = false`), so a file `main.rs` does not name would never be compiled:
//! [`assert_every_test_file_is_a_module`] catches that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// Fails unless every `.rs` file and module folder of `<manifest_dir>/tests/` (but `main.rs`
/// and the `separate` test targets, e.g. `package_deb.rs`) is declared as `mod <name>;` in
/// `main_rs`, the source of `tests/main.rs`.
pub fn assert_every_test_file_is_a_module(manifest_dir: &str, main_rs: &str, separate: &[&str]) {
    let dir = Path::new(manifest_dir).join("tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let module = if path.is_dir() {
            if !path.join("mod.rs").is_file() {
                continue;
            }
            name.clone()
        } else if let Some(stem) = name.strip_suffix(".rs") {
            stem.to_owned()
        } else {
            continue;
        };
        if name == "main.rs" || separate.contains(&name.as_str()) {
            continue;
        }
        if !main_rs
            .lines()
            .any(|l| l.trim() == format!("mod {module};"))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "{}: add `mod <name>;` to tests/main.rs for {missing:?}, or they are never compiled",
        dir.display()
    );
}
