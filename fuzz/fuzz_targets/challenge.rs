#![no_main]
//! `cargo fuzz run challenge`: see `acr_fuzz::challenge`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::challenge(data));
