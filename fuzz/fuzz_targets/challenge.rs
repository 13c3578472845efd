#![cfg_attr(fuzzing, no_main)]
//! `cargo fuzz run challenge`: see `acr_fuzz::challenge`.
//! Built without cargo-fuzz, it runs the target on the files named on its command line
//! (`acr_fuzz::replay`).

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| acr_fuzz::challenge(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    acr_fuzz::replay(acr_fuzz::challenge)
}
