//! Build script of both binaries (`build = "../link/build.rs"`): release builds for
//! x86_64-unknown-linux-gnu, built on that host, are linked with `link/hot-text.ld`, which lays out
//! the functions a cache hit runs next to each other. A hit then maps a few 64 KiB windows of code
//! (the kernel maps file pages around each fault) instead of dozens spread over the whole binary:
//! less memory, fewer page faults, a faster start. docs/BENCHMARKS.md, "Hot text", has the
//! measurements and how the list is made.
//!
//! Only there: that is the one target the layout was measured on, and the one whose linkers (GNU
//! ld, rust-lld) were checked to take the script (it only adds an output section, `INSERT BEFORE
//! .rodata`). Cross builds (aarch64, Windows, `-Zbuild-std`) link as before. The list names
//! functions; a name that no longer matches places nothing, so a stale list costs speed, never a
//! build. `ACR_HOT_TEXT=0` turns it off (to measure what it brings).

use std::env;
use std::path::PathBuf;

const MEASURED: &str = "x86_64-unknown-linux-gnu";

fn main() {
    println!("cargo::rerun-if-env-changed=ACR_HOT_TEXT");
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = PathBuf::from(dir).join("../link/hot-text.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    let var = |name: &str| env::var(name).unwrap_or_default();
    let measured = var("TARGET") == MEASURED && var("HOST") == MEASURED;
    // Debug builds link often and fast: there the layout is not worth the linker's time.
    let release = var("PROFILE") == "release";
    let wanted = var("ACR_HOT_TEXT") != "0";
    if measured && release && wanted && script.is_file() {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
