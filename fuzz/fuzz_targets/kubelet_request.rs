#![no_main]
//! `cargo fuzz run kubelet_request`: see `acr_fuzz::kubelet_request`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::kubelet_request(data));
