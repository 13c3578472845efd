//! Reverse proxy from a registry host's `/v2/…` to a real registry (Docker distribution), so the
//! emulator can stand in front of it under the registry's real name, as ACR's front end does.
//!
//! Requests and responses stream both ways. Hop-by-hop headers are dropped; everything else,
//! `Host` included, passes unchanged, with `X-Forwarded-Proto: https` and `X-Forwarded-Host` so
//! that distribution builds `Location` URLs for the client's origin. A `Location` that still points
//! at the backend (`http://127.0.0.1:5000/v2/…`, or the client's host with `http:`) is rewritten to
//! `https://<registry host>/v2/…`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::io;
use std::time::Duration;
use url::Url;

use super::crypto::io_err;
use super::server::json;

/// How long connecting to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A plain-HTTP backend registry: `http://host:port`, no path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// `host:port`, for connecting.
    authority: String,
    /// `http://host:port`, as the backend may write it in a `Location`.
    origin: String,
}

impl Upstream {
    /// Parse `http://host[:port][/]`; other schemes and paths are refused.
    pub(crate) fn parse(url: &str) -> io::Result<Upstream> {
        let parsed = Url::parse(url).map_err(|e| io_err(format!("upstream '{url}': {e}")))?;
        if parsed.scheme() != "http" {
            return Err(io_err(format!(
                "upstream '{url}': only http:// backends are supported (the emulator terminates TLS)"
            )));
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(io_err(format!(
                "upstream '{url}': give the registry's origin only, without a path"
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| io_err(format!("upstream '{url}': no host")))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        Ok(Upstream {
            origin: format!("http://{authority}"),
            authority,
        })
    }

    /// `http://host:port`.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The `Location` the client should see: backend-origin and plain-http URLs for the registry
/// become `https://<host>`; relative ones and other hosts stay as they are.
pub(crate) fn client_location(location: &str, upstream: &Upstream, host: &str) -> String {
    let client_http = format!("http://{host}");
    for prefix in [upstream.origin(), client_http.as_str()] {
        if let Some(rest) = location.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        {
            return format!("https://{host}{rest}");
        }
    }
    location.to_owned()
}

/// An ACR-shaped error for a backend that cannot be reached.
fn bad_gateway(message: &str) -> Response {
    json(
        StatusCode::BAD_GATEWAY,
        &serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": message, "detail": null}]}),
    )
}

/// Forward `req` (addressed to registry `host`, as the client named it) to `upstream` and stream
/// the answer back.
pub(crate) async fn forward(req: Request<Body>, upstream: &Upstream, host: &str) -> Response {
    match forward_inner(req, upstream, host).await {
        Ok(response) => response,
        Err(e) => bad_gateway(&format!(
            "the emulator could not reach the registry backend {}: {e}",
            upstream.origin()
        )),
    }
}

async fn forward_inner(
    req: Request<Body>,
    upstream: &Upstream,
    host: &str,
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path_and_query.parse::<Uri>()?;
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_str(host)?);
    }
    let forwarded_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .unwrap_or(HeaderValue::from_str(host)?);
    parts
        .headers
        .insert("x-forwarded-host", forwarded_host.clone());
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let request = Request::from_parts(parts, body);

    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(&upstream.authority),
    )
    .await
    .map_err(|_| io_err("connect timed out"))??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    // The connection task ends when the response body has been read or dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await?;

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let location = parts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| client_location(v, upstream, forwarded_host.to_str().unwrap_or(host)));
    if let Some(location) = location {
        parts
            .headers
            .insert(header::LOCATION, HeaderValue::from_str(&location)?);
    }
    Ok(Response::from_parts(parts, Body::new(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_origins() {
        let u = Upstream::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(u.authority, "127.0.0.1:5000");
        assert_eq!(u.origin(), "http://127.0.0.1:5000");
        assert_eq!(Upstream::parse("http://reg/").unwrap().authority, "reg:80");
        assert!(Upstream::parse("https://127.0.0.1:5000").is_err());
        assert!(Upstream::parse("http://127.0.0.1:5000/v2").is_err());
        assert!(Upstream::parse("not a url").is_err());
    }

    #[test]
    fn locations_point_at_the_client_origin() {
        let u = Upstream::parse("http://127.0.0.1:5000").unwrap();
        let host = "myreg.azurecr.io";
        assert_eq!(
            client_location(
                "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1",
                &u,
                host
            ),
            "https://myreg.azurecr.io/v2/a/blobs/uploads/x?_state=1"
        );
        assert_eq!(
            client_location("http://myreg.azurecr.io/v2/a/blobs/sha256:00", &u, host),
            "https://myreg.azurecr.io/v2/a/blobs/sha256:00"
        );
        for kept in [
            "/v2/a/blobs/uploads/x",
            "https://myreg.azurecr.io/v2/",
            "https://blob.example/x",
            "http://127.0.0.1:50000/v2/",
        ] {
            assert_eq!(client_location(kept, &u, host), kept);
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"r\""),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::WWW_AUTHENTICATE));
    }
}
