//! The `phoenix` command line: the clap definitions and the wiring of each command to the
//! library. Argument parsing and wiring only; what a command computes lives in `sim`,
//! `policy`, `bench` or `core`. `src/main.rs` parses, calls [`run`] and prints the error.
//!
//! One module per command group, each with its arguments (an `Args` struct or a
//! `Subcommand` enum), a `run` function returning the exit code, and its own error enum:
//! `simulate`, `policy` (`policy check`), `anomaly` (`anomaly score|bench`), `replay`,
//! `loadgen` (the workload exporter), `bench_anomaly` and `bench_control` (`bench anomaly|control`,
//! the validation protocols; the `bench` group's enum is in `args`). Adding a group (`run`) is a new module here, a variant of `Command`, an arm in
//! [`run`] and, if it can fail, a variant of [`CliError`]. Shared pieces: `args` (value
//! parsers for durations, ladders, rescaling), [`output`] (output path checks) and
//! `progress` (the progress bar).

pub mod anomaly;
mod args;
pub mod bench_anomaly;
pub mod bench_control;
pub mod loadgen;
pub mod output;
pub mod policy;
mod progress;
pub mod replay;
pub mod run;
pub mod simulate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Phoenix keeps metrics cardinality under a budget by choosing a reduction profile per
/// OpenTelemetry Collector pipeline.
#[derive(Parser, Debug)]
#[command(name = "phoenix", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Doc comments here are the commands' help text.
#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a trace through policies and baselines and compare them.
    Simulate(simulate::SimulateArgs),
    /// Policy file commands.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Anomaly detectors on recorded series: score a file, or benchmark on NAB.
    Anomaly {
        #[command(subcommand)]
        command: anomaly::AnomalyCommand,
    },
    /// Validation protocols: a configuration on the shared data and stressed variants.
    Bench {
        #[command(subcommand)]
        command: args::BenchCommand,
    },
    /// Re-run a journal: check record/replay parity, or try another policy on it.
    Replay(replay::ReplayArgs),
    /// Run the daemon: sample, decide, apply, serve metrics and the status API.
    Run(run::RunArgs),
    /// Serve a workload for tests and benchmarks: Prometheus metrics whose series count
    /// follows a level, schedule or trace per pipeline.
    Loadgen(loadgen::LoadgenArgs),
}

/// Why a command failed. Each message is one line naming what to fix; the command's own
/// verdicts (a policy file with problems) are exit codes, not errors.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `phoenix simulate` failed.
    #[error(transparent)]
    Simulate(#[from] simulate::SimulateError),
    /// `phoenix anomaly score|bench` failed.
    #[error(transparent)]
    Anomaly(#[from] anomaly::AnomalyError),
    /// `phoenix bench anomaly` failed.
    #[error(transparent)]
    BenchAnomaly(#[from] bench_anomaly::BenchAnomalyError),
    /// `phoenix bench control` failed.
    #[error(transparent)]
    BenchControl(#[from] bench_control::BenchError),
    /// `phoenix replay` failed.
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    /// `phoenix run` failed.
    #[error(transparent)]
    Run(#[from] run::RunCliError),
    /// `phoenix loadgen` failed.
    #[error(transparent)]
    Loadgen(#[from] loadgen::LoadgenError),
}

/// Runs the parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    Ok(match cli.command {
        Command::Simulate(args) => simulate::run(args)?,
        Command::Policy { command } => policy::run(command),
        Command::Anomaly { command } => anomaly::run(command)?,
        Command::Bench { command } => match command {
            args::BenchCommand::Anomaly(a) => bench_anomaly::run(a)?,
            args::BenchCommand::Control(a) => bench_control::run(a)?,
        },
        Command::Replay(args) => replay::run(args)?,
        Command::Run(args) => run::run(args)?,
        Command::Loadgen(args) => loadgen::run(args)?,
    })
}
