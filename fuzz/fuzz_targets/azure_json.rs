#![no_main]
//! `cargo fuzz run azure_json`: see `acr_fuzz::azure_json`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::azure_json(data));
