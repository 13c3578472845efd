//! A small stderr logger for the binaries: `<program>: <level>: <message>`, level from an
//! environment variable (`off`, `error`, `warn` (default), `info`, `debug`, `trace`).
//! Nothing logs secrets: they are [`crate::Secret`]s, whose `Debug` is redacted.

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    program: &'static str,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // Only this project's modules: dependencies log request details we do not vet.
        metadata.target().starts_with("acr_")
            || metadata.target().starts_with("docker_credential_acr")
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // Messages quote what servers said: nothing in them may drive the terminal.
            let message = record.args().to_string();
            eprintln!(
                "{}: {}: {}",
                self.program,
                record.level().as_str().to_ascii_lowercase(),
                crate::error::printable(&message)
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger with the level named by `value` (the content of the program's log
/// variable). An unknown level is reported once and the default used.
pub fn init(program: &'static str, value: Option<&str>) {
    let level = match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => LevelFilter::Warn,
        Some(v) => match v.as_str() {
            "off" | "none" | "quiet" => LevelFilter::Off,
            "error" => LevelFilter::Error,
            "warn" | "warning" => LevelFilter::Warn,
            "info" => LevelFilter::Info,
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            other => {
                eprintln!("{program}: warn: unknown log level {other:?}; using warn");
                LevelFilter::Warn
            }
        },
    };
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { program }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
