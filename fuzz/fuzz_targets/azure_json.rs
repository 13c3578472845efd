#![no_main]
//! The azure.json parser never panics, and its errors are one line.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = acr_credential_provider::azure_json::AzureJson::parse(data, std::path::Path::new("azure.json")) {
        assert!(!e.to_string().contains('\n'));
    }
});
