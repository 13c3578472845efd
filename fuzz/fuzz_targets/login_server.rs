#![no_main]
//! The server-URL normaliser and the ACR host rule: never panic; anything accepted is a plain
//! host with no user info, path or scheme, and normalising it again changes nothing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(h) = acr_broker::normalize_host(s) {
        assert!(!h.contains('/') && !h.contains('@') && !h.contains("://"));
        assert_eq!(acr_broker::normalize_host(&h).as_deref(), Ok(h.as_str()));
    }
    if let Ok(l) = acr_broker::LoginServer::parse(s, &[]) {
        let host = l.host();
        assert!(host.ends_with(".azurecr.io") || host.ends_with(".azurecr.cn") || host.ends_with(".azurecr.us"));
        assert!(!host.contains(':'));
    }
});
