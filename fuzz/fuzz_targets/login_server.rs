#![no_main]
//! `cargo fuzz run login_server`: see `acr_fuzz::login_server`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::login_server(data));
