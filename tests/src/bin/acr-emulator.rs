//! `acr-emulator`: run the Entra + ACR emulator as a standalone process.
//!
//! Starts from an optional JSON configuration (the fields of `EmulatorConfig`), prints one JSON
//! line describing where it listens, and serves until SIGTERM, Ctrl-C or end of stdin
//! (`--ignore-stdin` for background runs whose stdin is `/dev/null`).

use acr_tests::emulator::{Emulator, EmulatorConfig};
use clap::Parser;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Emulator of Entra token endpoints and the ACR token service, for tests.
#[derive(Parser, Debug)]
#[command(name = "acr-emulator", version)]
struct Args {
    /// JSON configuration file (fields of EmulatorConfig).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTPS listen address; overrides the configuration. Default 127.0.0.1:0.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Write the CA certificate (PEM) here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Write the ACR token signing certificate (a registry's rootcertbundle) here.
    #[arg(long)]
    token_cert_out: Option<PathBuf>,
    /// Also serve IMDS over plain HTTP here, e.g. 169.254.169.254:80.
    #[arg(long)]
    imds_listen: Option<SocketAddr>,
    /// Keep running when stdin reaches its end.
    #[arg(long)]
    ignore_stdin: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acr-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            serde_json::from_str::<EmulatorConfig>(&text)
                .map_err(|e| format!("parsing {}: {e}", path.display()))?
        }
        None => EmulatorConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let shutdown = Shutdown::install()?;
    let emu = Emulator::start(config)?;

    let ca = match &args.ca_out {
        Some(path) => {
            std::fs::write(path, emu.ca_pem())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            path.clone()
        }
        None => emu.ca_pem_path().to_path_buf(),
    };
    if let Some(path) = &args.token_cert_out {
        std::fs::write(path, emu.token_signing_cert_pem())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let imds = args
        .imds_listen
        .map(|addr| emu.serve_imds_http(addr))
        .transpose()
        .map_err(|e| format!("IMDS listener: {e}"))?;

    let (identity_endpoint, identity_header) = emu.app_service_endpoint();
    let ready = serde_json::json!({
        "port": emu.port(),
        "base_url": emu.base_url(),
        "ca": ca,
        "token_cert": args.token_cert_out,
        "token_key_id": emu.token_signing_key_id(),
        "identity_endpoint": identity_endpoint,
        "identity_header": identity_header,
        "imds": imds.map(|a| a.to_string()),
        "registries": emu.registries(),
        "upstreams": emu.upstreams().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "principals": emu.principals(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}")?;
    stdout.flush()?;
    drop(stdout);

    shutdown.wait(args.ignore_stdin);
    drop(emu);
    Ok(())
}

/// Waits for the signal to shut down. Created before the ready line is printed, so a SIGTERM
/// sent as soon as the line is read is caught (the default action would kill the process).
struct Shutdown {
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Shutdown {
    /// Installs the SIGTERM and SIGINT handlers.
    fn install() -> std::io::Result<Shutdown> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        #[cfg(unix)]
        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            let _guard = runtime.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            )
        };
        Ok(Shutdown {
            runtime,
            #[cfg(unix)]
            signals,
        })
    }

    /// Blocks until SIGTERM, SIGINT or (unless ignored) the end of stdin.
    fn wait(self, ignore_stdin: bool) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        if !ignore_stdin {
            // A plain thread: a blocked read does not keep the process alive at exit.
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 1024];
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send("stdin closed");
            });
        }
        #[cfg(unix)]
        let (mut term, mut int) = self.signals;
        let reason = self.runtime.block_on(async move {
            let stdin = async {
                match rx.recv().await {
                    Some(reason) => reason,
                    // No stdin watcher: wait for a signal only.
                    None => std::future::pending().await,
                }
            };
            #[cfg(unix)]
            let reason = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "interrupted",
                reason = stdin => reason,
            };
            #[cfg(not(unix))]
            let reason = tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                reason = stdin => reason,
            };
            reason
        });
        eprintln!("acr-emulator: {reason}; shutting down");
    }
}
