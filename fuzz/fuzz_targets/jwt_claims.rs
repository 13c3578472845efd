#![no_main]
//! The JWT claim reader never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = acr_broker::token::read_claims(s);
    }
});
