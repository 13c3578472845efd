#![no_main]
//! `cargo fuzz run docker_config`: see `acr_fuzz::docker_config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::docker_config(data));
