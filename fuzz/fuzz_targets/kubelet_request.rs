#![no_main]
//! The kubelet request parser never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = acr_credential_provider::protocol::parse_request(data);
});
