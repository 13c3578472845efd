//! Runs the `acr-emulator` binary: configuration file, the ready line, the control endpoint and
//! shutdown on end of stdin and on SIGTERM.

use serde_json::Value;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn Error>>;

/// Kills the child if a test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path) -> Result<(Guard, Value), Box<dyn Error>> {
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"registries":["myreg.azurecr.io"],
            "secret_principals":[{"tenant":"t1","client_id":"app-1","secret":"s"}],
            "grants":[{"principal":"app-1","registry":"myreg.azurecr.io","role":"AcrPull"}]}"#,
    )?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_acr-emulator"))
        .arg("--config")
        .arg(&config)
        .arg("--ca-out")
        .arg(dir.join("ca.pem"))
        .arg("--imds-listen")
        .arg("127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let guard = Guard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok((guard, serde_json::from_str(&line)?))
}

fn wait_exit(guard: &mut Guard) -> Result<std::process::ExitStatus, Box<dyn Error>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = guard.0.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err("the emulator did not exit".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_counters_and_stops_when_stdin_closes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut guard, ready) = spawn(dir.path())?;
    let port = ready["port"].as_u64().ok_or("no port")?;
    assert_eq!(
        ready["ca"],
        dir.path().join("ca.pem").to_string_lossy().as_ref()
    );
    assert_eq!(ready["principals"][0]["client_id"], "app-1");
    assert!(ready["imds"].is_string());

    let ca = std::fs::read(dir.path().join("ca.pem"))?;
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .build()?;
    let token = client
        .post(format!("https://localhost:{port}/t1/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "app-1"),
            ("client_secret", "s"),
            ("grant_type", "client_credentials"),
            ("scope", "https://containerregistry.azure.net/.default"),
        ])
        .send()?;
    assert_eq!(token.status().as_u16(), 200);

    let counters: Value = client
        .get(format!("https://localhost:{port}/_emulator/counters"))
        .send()?
        .json()?;
    assert_eq!(counters["total"], 1);
    assert_eq!(counters["by_kind"]["entra"], 1);
    assert_eq!(counters["by_key"]["entra"]["t1/app-1"], 1);

    drop(guard.0.stdin.take());
    assert!(wait_exit(&mut guard)?.success());
    Ok(())
}

#[cfg(unix)]
#[test]
fn stops_on_sigterm() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut guard, _ready) = spawn(dir.path())?;
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(guard.0.id().to_string())
        .status()?;
    assert!(killed.success());
    assert!(wait_exit(&mut guard)?.success());
    Ok(())
}
