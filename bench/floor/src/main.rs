//! `acr-bench-floor FILE`: the floor a cache-hit credential helper is measured against.
//!
//! It does the least a helper answering from a file cache must do, with the same libraries and
//! release profile as the real binaries: read the request on stdin, take a shared `File` lock on
//! the cache entry, read and parse it (a small JSON object), and print a Docker credential-helper
//! answer. No identity, no settings, no host recognition, no freshness rules.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::process::ExitCode;

/// The cache entry: the fields a refresh-token entry has.
#[derive(Deserialize)]
struct Entry {
    login_server: String,
    refresh_token: String,
    expires_at: i64,
}

/// The Docker credential-helper answer.
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acr-bench-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: acr-bench-floor FILE < request")?;
    let mut request = String::new();
    std::io::stdin().read_to_string(&mut request)?;
    let mut file = std::fs::File::open(&path)?;
    file.lock_shared()?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let entry: Entry = serde_json::from_slice(&text)?;
    if entry.login_server != request.trim() || entry.expires_at <= 0 {
        return Err("the entry is for another server".into());
    }
    let answer = serde_json::to_string(&Answer {
        server_url: &entry.login_server,
        username: "00000000-0000-0000-0000-000000000000",
        secret: &entry.refresh_token,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{answer}")?;
    out.flush()?;
    Ok(())
}
