#![no_main]
//! `cargo fuzz run store_input`: see `acr_fuzz::store_input`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::store_input(data));
