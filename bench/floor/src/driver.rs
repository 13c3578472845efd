//! `acr-bench-driver`: times short-lived programs that read a request on stdin, interleaved.
//!
//! ```text
//! acr-bench-driver --runs N --warmup W SPEC > results.json
//! ```
//!
//! SPEC has one contestant per line, fields separated by tabs: name, the file given as stdin,
//! the program, its arguments. Each round runs every contestant once, in an order rotated by one
//! each round, so drift (frequency, other load) hits all of them alike; each run is spawned
//! directly (no shell), with stdin opened from the file and stdout/stderr to /dev/null, and timed
//! from spawn to exit, as `hyperfine -N --input FILE` would (Debian 12's hyperfine 1.15 has no
//! `--input`). A run that fails stops the benchmark.
//!
//! Output (stdout, JSON, times in seconds): `{"rounds": N, "results": [{"command": name, "median",
//! "mean", "stddev", "min", "max", "times": [...]}]}`; `times[i]` is round `i` for every contestant,
//! so per-round ratios can be taken.

use std::fs::File;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

struct Contestant {
    name: String,
    stdin: String,
    program: String,
    args: Vec<String>,
    times: Vec<f64>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acr-bench-driver: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut runs = 500usize;
    let mut warmup = 30usize;
    let mut spec = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "--runs" => runs = number("--runs")?,
            "--warmup" => warmup = number("--warmup")?,
            _ if spec.is_none() && !a.starts_with('-') => spec = Some(a),
            _ => {
                return Err(format!(
                    "unexpected argument {a}; usage: --runs N --warmup W SPEC"
                ));
            }
        }
    }
    let spec = spec.ok_or("usage: acr-bench-driver --runs N --warmup W SPEC")?;
    let text = std::fs::read_to_string(&spec).map_err(|e| format!("{spec}: {e}"))?;
    let mut contestants = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('\t').map(str::to_string);
        let (Some(name), Some(stdin), Some(program)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "{spec}: a line needs name, stdin file and program: {line}"
            ));
        };
        contestants.push(Contestant {
            name,
            stdin,
            program,
            args: fields.collect(),
            times: Vec::with_capacity(runs),
        });
    }
    if contestants.is_empty() {
        return Err(format!("{spec} names no program"));
    }

    let n = contestants.len();
    for round in 0..warmup + runs {
        for k in 0..n {
            let c = &mut contestants[(round + k) % n];
            let seconds = time_one(c)?;
            if round >= warmup {
                c.times.push(seconds);
            }
        }
    }

    let results: Vec<serde_json::Value> = contestants.iter().map(summary).collect();
    let out = serde_json::json!({ "rounds": runs, "results": results });
    println!("{out}");
    Ok(())
}

fn time_one(c: &Contestant) -> Result<f64, String> {
    let stdin = File::open(&c.stdin).map_err(|e| format!("{}: {e}", c.stdin))?;
    let mut command = Command::new(&c.program);
    command
        .args(&c.args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{}: cannot run {}: {e}", c.name, c.program))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("{}: {} exited with {status}", c.name, c.program));
    }
    Ok(seconds)
}

fn summary(c: &Contestant) -> serde_json::Value {
    let mut sorted = c.times.clone();
    sorted.sort_by(f64::total_cmp);
    let len = sorted.len().max(1) as f64;
    let median = match sorted.len() {
        0 => 0.0,
        l if l % 2 == 1 => sorted[l / 2],
        l => (sorted[l / 2 - 1] + sorted[l / 2]) / 2.0,
    };
    let mean = sorted.iter().sum::<f64>() / len;
    let var = sorted.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / len;
    serde_json::json!({
        "command": c.name,
        "median": median,
        "mean": mean,
        "stddev": var.sqrt(),
        "min": sorted.first().copied().unwrap_or(0.0),
        "max": sorted.last().copied().unwrap_or(0.0),
        "times": c.times,
    })
}
