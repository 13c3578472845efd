#![no_main]
//! `cargo fuzz run jwt_claims`: see `acr_fuzz::jwt_claims`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acr_fuzz::jwt_claims(data));
