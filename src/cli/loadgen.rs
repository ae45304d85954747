//! `phoenix loadgen`: runs the workload exporter (`crate::loadgen`) until SIGTERM or
//! SIGINT. Parses the flags into levels and a mode, binds the address, prints
//! `loadgen listening on ADDR` as the first line of stdout (tests pass port 0 and read the
//! real port from it), logs to stderr, and exits 0 after a graceful shutdown.

use super::args::{Ladder, parse_ladder};
use crate::fsutil::io_text;
use crate::loadgen::{
    self, Levels, LevelsFromTraceError, LoadgenConfig, Mode, PipelinesError, ServeError, Steps,
};
use crate::sim::trace::{TraceError, Values, read_trace};
use clap::{ArgGroup, Args, ValueEnum};
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::info;

/// Input series per pipeline when neither --level, --schedule nor --trace is given.
const DEFAULT_LEVEL: u64 = 1000;

/// What `/metrics` exports. (No doc comments on the variants: they would become help text.)
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModeArg {
    Signals,
    Series,
}

/// The arguments of `phoenix loadgen`; the field docs are the flags' help text.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").args(["level", "schedule", "trace"])))]
#[command(group(ArgGroup::new("names").args(["pipelines", "pipeline"])))]
pub struct LoadgenArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one). The bound address is the
    /// first line on stdout: `loadgen listening on 127.0.0.1:41234`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9700")]
    listen: SocketAddr,
    /// Number of pipelines, named p0000, p0001, … [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pipelines: Option<u32>,
    /// A pipeline by name; repeat for several.
    #[arg(long, value_name = "NAME")]
    pipeline: Vec<String>,
    /// Constant input series per pipeline [default: 1000].
    #[arg(long, value_name = "SERIES", value_parser = loadgen::levels::parse_level)]
    level: Option<u64>,
    /// Input series per pipeline over time since start, piecewise constant:
    /// `0s=50000,2m=200000,5m=50000` (the last step holds).
    #[arg(long, value_name = "STEPS", value_parser = parse_schedule)]
    schedule: Option<Steps>,
    /// Follow a recorded trace (CSV or a saved query_range JSON): each pipeline follows the
    /// column named like it, else the demand column (`input`, or the first); the last row
    /// holds.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// With --trace: rows advance at this many times their timestamps' pace.
    #[arg(long, default_value_t = 1.0, requires = "trace", value_parser = parse_speed)]
    speed: f64,
    /// `signals`: input and output gauges per pipeline; `series`: SERIES real series per
    /// pipeline.
    #[arg(long, value_enum, default_value_t = ModeArg::Signals)]
    mode: ModeArg,
    /// Profiles and their retention, least to most reducing; output = input × the
    /// retention of the profile the control file names (the first one by default).
    #[arg(long, default_value = "conservative=0.9,balanced=0.6,aggressive=0.35", value_parser = parse_ladder)]
    retention: Ladder,
    /// The daemon's control file (`{ generation: 3, pipelines: { p0001: balanced } }`, YAML
    /// or JSON), read on each scrape in signals mode; absent or unreadable means the first
    /// profile.
    #[arg(long, value_name = "PATH")]
    control_file: Option<PathBuf>,
}

/// `--schedule` as clap's value parser: clap names the flag, the message the bad step.
fn parse_schedule(s: &str) -> Result<Steps, String> {
    Steps::parse_schedule(s).map_err(|e| e.to_string())
}

/// A finite speed > 0, like `60`.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed (a number > 0: 60 replays an hour of trace per minute)"
        )),
    }
}

/// Why `phoenix loadgen` failed; each message is one line naming the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The `--trace` file could not be read.
    #[error("--trace: {0}")]
    Trace(#[from] TraceError),
    /// The trace cannot drive levels, or the pipeline list is wrong.
    #[error("--trace: {0}")]
    TraceLevels(LevelsFromTraceError),
    /// The pipeline list is wrong.
    #[error(transparent)]
    Pipelines(#[from] PipelinesError),
    /// `--control-file` with `--mode series`.
    #[error(
        "--control-file is read only with --mode signals (in series mode every series is exported and Prometheus relabelling does the reducing)"
    )]
    ControlFileInSeriesMode,
    /// The address could not be bound.
    #[error("--listen {addr}: cannot listen: {} ({})", io_text(.err), listen_hint(.err))]
    Listen {
        /// The `--listen` address.
        addr: SocketAddr,
        /// Why binding failed.
        err: std::io::Error,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start loadgen: {}", io_text(.0))]
    Start(std::io::Error),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl From<LevelsFromTraceError> for LoadgenError {
    fn from(e: LevelsFromTraceError) -> Self {
        match e {
            LevelsFromTraceError::Pipelines(p) => LoadgenError::Pipelines(p),
            other => LoadgenError::TraceLevels(other),
        }
    }
}

/// What to do about a failed bind.
fn listen_hint(err: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::AddrInUse => "another process has that port: pick another, or port 0 for a free one",
        K::AddrNotAvailable => "that address is not on this machine: use e.g. 127.0.0.1",
        K::PermissionDenied => "ports below 1024 need privileges: pick a higher port",
        _ => "check the address",
    }
}

/// Builds the levels the flags describe.
fn levels(args: &LoadgenArgs) -> Result<Levels, LoadgenError> {
    let names = if args.pipeline.is_empty() {
        loadgen::numbered_pipelines(args.pipelines.unwrap_or(1) as usize)
    } else {
        args.pipeline.clone()
    };
    if let Some(path) = &args.trace {
        // Finite and within the cap here; loadgen's levels then refuse negative counts
        // themselves, naming the data row (`Levels::from_trace`).
        let trace = read_trace(path, Values::Signal)?;
        return Ok(Levels::from_trace(names, &trace, args.speed)?);
    }
    let steps = match (&args.schedule, args.level) {
        (Some(steps), _) => steps.clone(),
        (None, level) => Steps::constant(level.unwrap_or(DEFAULT_LEVEL)),
    };
    Ok(Levels::new(names, steps)?)
}

/// Runs loadgen until SIGTERM or SIGINT; exit code 0 after a graceful shutdown.
pub fn run(args: LoadgenArgs) -> Result<ExitCode, LoadgenError> {
    let mode = match args.mode {
        ModeArg::Signals => Mode::Signals,
        ModeArg::Series => Mode::Series,
    };
    if mode == Mode::Series && args.control_file.is_some() {
        return Err(LoadgenError::ControlFileInSeriesMode);
    }
    let levels = levels(&args)?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(LoadgenError::Start)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|err| LoadgenError::Listen {
                addr: args.listen,
                err,
            })?;
        let addr = listener.local_addr().map_err(LoadgenError::Start)?;
        // The contract with tests and scripts: this exact first line on stdout.
        println!("loadgen listening on {addr}");
        info!(
            %addr,
            pipelines = levels.names().len(),
            mode = ?mode,
            "Loadgen serving /metrics."
        );
        let shutdown = shutdown_signal().map_err(LoadgenError::Start)?;
        let config = LoadgenConfig {
            levels,
            mode,
            profiles: args.retention.0,
            control_file: args.control_file,
        };
        loadgen::serve(listener, config, shutdown).await?;
        info!("Loadgen stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on the first SIGTERM or SIGINT. The handlers are installed before it is
/// awaited, so a signal sent right after the address is printed is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            info!(signal = name, "Shutting down.");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            info!("Shutting down.");
        })
    }
}

/// Logs to stderr (stdout carries only the address line), `info` unless `RUST_LOG` says
/// otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `try_init`: a subscriber installed by an embedding program stays.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<LoadgenArgs, String> {
        let argv = ["phoenix", "loadgen"].iter().chain(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Loadgen(a),
            }) => Ok(a),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults_are_one_pipeline_at_a_constant_level() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:9700".parse().unwrap());
        assert_eq!(a.mode, ModeArg::Signals);
        let l = levels(&a).unwrap();
        assert_eq!(l.names(), ["p0000"]);
        assert_eq!(l.all(std::time::Duration::ZERO), [DEFAULT_LEVEL]);
        let l = levels(&parse(&["--pipelines", "3", "--level", "5"]).unwrap()).unwrap();
        assert_eq!(l.names(), ["p0000", "p0001", "p0002"]);
        let l = levels(&parse(&["--pipeline", "web", "--pipeline", "db"]).unwrap()).unwrap();
        assert_eq!(l.names(), ["web", "db"]);
    }

    #[test]
    fn schedule_errors_name_the_flag_and_the_bad_step() {
        let e = parse(&["--schedule", "0s=100,2m=lots"]).unwrap_err();
        assert!(e.contains("--schedule"), "{e}");
        assert!(
            e.contains("step \"2m=lots\": \"lots\" is not a whole number of series"),
            "{e}"
        );
        let e = parse(&["--level=-3"]).unwrap_err();
        assert!(e.contains("--level"), "{e}");
    }

    #[test]
    fn level_sources_and_pipeline_lists_exclude_each_other() {
        for args in [
            &["--level", "1", "--schedule", "0s=1"][..],
            &["--level", "1", "--trace", "t.csv"],
            &["--pipelines", "2", "--pipeline", "a"],
            &["--speed", "60"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
        let e = parse(&["--trace", "t.csv", "--speed", "0"]).unwrap_err();
        assert!(e.contains("--speed") && e.contains("a number > 0"), "{e}");
    }

    #[test]
    fn run_time_errors_are_one_line_naming_the_flag() {
        let e = run(parse(&["--mode", "series", "--control-file", "c.yaml"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--control-file is read only with --mode signals"),
            "{e}"
        );
        let e = run(parse(&["--trace", "/nonexistent/t.csv"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--trace: cannot read /nonexistent/t.csv: "),
            "{e}"
        );
        let e = levels(&parse(&["--pipeline", "a", "--pipeline", "a"]).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--pipeline \"a\" is given twice (name each pipeline once)"
        );
        assert!(!e.contains('\n'));
    }
}
