#![no_main]
//! `cargo fuzz run registry_mirror`: see `acr_fuzz::registry_mirror`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::registry_mirror(data));
