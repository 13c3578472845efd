//! Registry host names as clients send them in `Host` and `service`.

/// Lowercase, drop a scheme, a path and the default port `:443`.
///
/// `"https://MyReg.azurecr.io:443/v2/"` becomes `"myreg.azurecr.io"`; `"localhost:5000"` stays.
pub(crate) fn normalize(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host);
    let host = host.split('/').next().unwrap_or(host);
    let host = host.strip_suffix(":443").unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The host part without a port, for certificate names: `"localhost:5000"` → `"localhost"`,
/// `"[::1]:5000"` → `"::1"`.
pub(crate) fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("https://MyReg.azurecr.io:443/v2/"),
            "myreg.azurecr.io"
        );
        assert_eq!(normalize("localhost:5000"), "localhost:5000");
        assert_eq!(without_port("localhost:5000"), "localhost");
        assert_eq!(without_port("[::1]:5000"), "::1");
        assert_eq!(without_port("::1"), "::1");
        assert_eq!(without_port("myreg.azurecr.io"), "myreg.azurecr.io");
    }
}
