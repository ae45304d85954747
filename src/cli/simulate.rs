//! `phoenix simulate`: replays a trace (a scenario file, or `--trace` files with the plant
//! given as flags) through policies and baselines on virtual time, then prints the report
//! and optionally writes the tick CSV and the SVG plot.

use super::args::{Ladder, parse_duration, parse_ladder, parse_rescale};
use super::output::{OutputPathError, check_output_path};
use super::progress::Progress;
use crate::policy::{PolicyError, ValidatedPolicy};
use crate::sim::plot::{self, PlotError};
use crate::sim::record::ControllerRun;
use crate::sim::report::{self, Metrics};
use crate::sim::runner::Plant;
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::simulate::{Baseline, Simulation};
use crate::sim::ticks::{self, TicksError};
use crate::sim::trace::{TraceError, Values, read_trace};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Report formats. (No doc comments on the variants: they would become help text.)
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

/// The arguments of `phoenix simulate`; the field docs are the flags' help text.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Scenario file (simulations/*.yaml). Without it, give --trace and the plant flags.
    scenario: Option<PathBuf>,
    /// Trace file(s): `timestamp,value` CSV, multi-column CSV, or a saved Prometheus
    /// query_range JSON. With several, the report is the mean over traces.
    #[arg(long = "trace", conflicts_with = "scenario", num_args = 1..)]
    traces: Vec<PathBuf>,
    /// Tick length; consecutive rows are consecutive ticks whatever their timestamps.
    #[arg(long, default_value = "15s", value_parser = parse_duration, conflicts_with = "scenario")]
    tick: Duration,
    /// Map the trace's min and max to these multiples of the budget (`0.4:2.2`).
    #[arg(long, value_parser = parse_rescale, conflicts_with = "scenario")]
    rescale: Option<(f64, f64)>,
    /// Output budget in series.
    #[arg(long, default_value_t = 100_000.0, conflicts_with = "scenario")]
    budget: f64,
    /// Profiles and their true retention, least to most reducing.
    #[arg(long, default_value = "conservative=0.9,balanced=0.6,aggressive=0.35", value_parser = parse_ladder, conflicts_with = "scenario")]
    retention: Ladder,
    /// Reload delay: a decision at tick t is in force from tick t + delay.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), conflicts_with = "scenario")]
    delay_ticks: u32,
    /// Relative standard deviation of multiplicative output noise.
    #[arg(long, default_value_t = 0.0, conflicts_with = "scenario")]
    noise: f64,
    /// Seed of the noise and of the reload failures.
    #[arg(long, default_value_t = 0, conflicts_with = "scenario")]
    seed: u64,
    /// Share of applies that fail (the previous profile stays in force), in [0, 1].
    #[arg(long, default_value_t = 0.0, conflicts_with = "scenario")]
    failure_rate: f64,
    /// Policy file(s) to compare (default with --trace: policies/default.yaml).
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// Run only the given policies, no threshold/hpa/oracle baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write every tick of every controller to this CSV (single trace only).
    #[arg(long = "ticks")]
    ticks_out: Option<PathBuf>,
    /// Write an SVG plot (single trace only).
    #[arg(long = "plot")]
    plot_out: Option<PathBuf>,
    /// With several traces, also print each trace's table.
    #[arg(long)]
    per_trace: bool,
    /// Record the policy's every step to this journal (gzip JSON lines) for
    /// `phoenix replay` (single trace and single policy only).
    #[arg(long = "journal")]
    journal_out: Option<PathBuf>,
}

/// Why `phoenix simulate` failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Neither a scenario nor `--trace` was given.
    #[error("give a scenario file (e.g. simulations/flash-crowd.yaml) or --trace FILE")]
    NoInput,
    /// `--trace` without `--policy`, and no `policies/default.yaml` in the current folder.
    #[error(
        "no --policy given and policies/default.yaml not found here (run from the repository or pass --policy FILE)"
    )]
    NoDefaultPolicy,
    /// `--budget` out of range.
    #[error("--budget {budget_series}: must be a number of series from 1 to 1e12")]
    Budget {
        /// The value given.
        budget_series: f64,
    },
    /// `--noise` out of range.
    #[error("--noise {noise}: must be in [0, 1]")]
    Noise {
        /// The value given.
        noise: f64,
    },
    /// `--failure-rate` out of range.
    #[error("--failure-rate {rate}: must be a share of applies from 0 to 1")]
    FailureRate {
        /// The value given.
        rate: f64,
    },
    /// `--journal` with several traces or policies.
    #[error("--journal records one policy on one trace; give a single trace and a single policy")]
    JournalNeedsOneRun,
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A `--trace` file has no rows.
    #[error("{}: the trace has no rows", path.display())]
    EmptyTrace {
        /// The trace file.
        path: PathBuf,
    },
    /// `--ticks` or `--plot` with several traces.
    #[error("--ticks and --plot take a single trace; run them per trace")]
    OutputsNeedOneTrace,
    /// An output path cannot be written.
    #[error(transparent)]
    Output(#[from] OutputPathError),
    /// The scenario file (or its trace) is wrong.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A policy file is wrong.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A `--trace` file is wrong.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The tick file could not be written.
    #[error(transparent)]
    Ticks(#[from] TicksError),
    /// The plot could not be written.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// Runs the simulation(s) and prints the report.
pub fn run(args: SimulateArgs) -> Result<ExitCode, SimulateError> {
    let mut per_trace: Vec<(String, Vec<ControllerRun>)> = Vec::new();
    if let Some(path) = &args.scenario {
        let sc = Scenario::load(path)?;
        let trace = sc.trace()?;
        let mut paths = sc.policies.clone();
        paths.extend(args.policies.iter().cloned());
        let mut sim = Simulation::from_scenario(&sc, &trace, load_policies(&paths)?);
        if args.no_baselines {
            sim.baselines.clear();
        }
        if let Some(j) = &args.journal_out {
            check_output_path(j)?;
        }
        let mut progress = Progress::new(sim.demand.len() as u64 * sim.controllers() as u64);
        let runs = run_with_progress(&sim, &mut progress, 0, args.journal_out.as_deref())?;
        progress.finish();
        per_trace.push((sc.name.clone(), runs));
    } else {
        if args.traces.is_empty() {
            return Err(SimulateError::NoInput);
        }
        let paths = if args.policies.is_empty() {
            let default = PathBuf::from("policies/default.yaml");
            if !default.exists() {
                return Err(SimulateError::NoDefaultPolicy);
            }
            vec![default]
        } else {
            args.policies.clone()
        };
        let policies = load_policies(&paths)?;
        let plant = Plant {
            ladder: args.retention.0.clone(),
            delay_ticks: args.delay_ticks,
            noise: args.noise,
            seed: args.seed,
            failure_rate: args.failure_rate,
        };
        if !(0.0..=1.0).contains(&args.failure_rate) {
            return Err(SimulateError::FailureRate {
                rate: args.failure_rate,
            });
        }
        if !(1.0..=1e12).contains(&args.budget) {
            return Err(SimulateError::Budget {
                budget_series: args.budget,
            });
        }
        if !(0.0..=1.0).contains(&args.noise) {
            return Err(SimulateError::Noise { noise: args.noise });
        }
        let mut sims = Vec::new();
        for path in &args.traces {
            let values = if args.rescale.is_some() {
                Values::Signal
            } else {
                Values::SeriesCounts
            };
            let mut trace = read_trace(path, values)?;
            if trace.is_empty() {
                return Err(SimulateError::EmptyTrace { path: path.clone() });
            }
            if let Some((lo, hi)) = args.rescale {
                trace.rescale(lo * args.budget, hi * args.budget);
            }
            let sim = Simulation {
                demand: trace.demand().to_vec(),
                start: trace.timestamps.first().copied().unwrap_or_default(),
                tick: args.tick,
                budget_series: args.budget,
                plant: plant.clone(),
                policies: policies.clone(),
                baselines: if args.no_baselines {
                    Vec::new()
                } else {
                    Baseline::ALL.to_vec()
                },
            };
            sims.push((path.display().to_string(), sim));
        }
        let total: u64 = sims
            .iter()
            .map(|(_, s)| s.demand.len() as u64 * s.controllers() as u64)
            .sum();
        if let Some(j) = &args.journal_out {
            if sims.len() > 1 || policies.len() > 1 {
                return Err(SimulateError::JournalNeedsOneRun);
            }
            check_output_path(j)?;
        }
        let mut progress = Progress::new(total);
        let mut offset = 0;
        for (name, sim) in &sims {
            let runs = run_with_progress(sim, &mut progress, offset, args.journal_out.as_deref())?;
            offset += sim.demand.len() as u64 * sim.controllers() as u64;
            per_trace.push((name.clone(), runs));
        }
        progress.finish();
    }

    if per_trace.len() > 1 && (args.ticks_out.is_some() || args.plot_out.is_some()) {
        return Err(SimulateError::OutputsNeedOneTrace);
    }
    // Check every output location before writing any, so a bad second path does not
    // leave the first file written by a run that reports failure.
    for p in [&args.ticks_out, &args.plot_out].into_iter().flatten() {
        check_output_path(p)?;
    }
    if let Some((name, runs)) = per_trace.first() {
        if let Some(p) = &args.ticks_out {
            ticks::write_ticks(p, runs)?;
        }
        if let Some(p) = &args.plot_out {
            plot::write_plot(p, name, runs)?;
        }
    }
    let rows: Vec<Vec<Metrics>> = per_trace
        .iter()
        .map(|(_, runs)| runs.iter().map(report::metrics).collect())
        .collect();
    print_report(&args, &per_trace, &rows);
    Ok(ExitCode::SUCCESS)
}

fn load_policies(paths: &[PathBuf]) -> Result<Vec<ValidatedPolicy>, PolicyError> {
    paths
        .iter()
        .map(|p| ValidatedPolicy::from_file(p))
        .collect()
}

fn run_with_progress(
    sim: &Simulation,
    progress: &mut Progress,
    offset: u64,
    journal: Option<&std::path::Path>,
) -> Result<Vec<ControllerRun>, SimulateError> {
    let mut update = |t| progress.update(offset + t);
    match journal {
        None => Ok(sim.run(&mut update)),
        Some(path) => {
            let (runs, stats) = sim.run_journaled(path, &mut update)?;
            eprintln!(
                "journal: {} steps in {} bytes ({:.1} bytes per step) written to {}",
                stats.steps,
                stats.bytes,
                stats.bytes_per_step(),
                path.display()
            );
            Ok(runs)
        }
    }
}

fn print_report(
    args: &SimulateArgs,
    per_trace: &[(String, Vec<ControllerRun>)],
    rows: &[Vec<Metrics>],
) {
    match args.format {
        Format::Json if rows.len() == 1 => println!("{}", report::to_json(&rows[0])),
        Format::Json => {
            let traces: Vec<serde_json::Value> = per_trace
                .iter()
                .zip(rows)
                .map(|((name, _), m)| serde_json::json!({ "trace": name, "controllers": m }))
                .collect();
            let doc = serde_json::json!({ "mean": report::mean(rows), "traces": traces });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table if rows.len() == 1 => {
            let (name, runs) = &per_trace[0];
            let ticks = runs.first().map_or(0, |r| r.ticks.len());
            println!(
                "{name}: {ticks} ticks of {}",
                crate::core::time::fmt_duration(args_tick(args, runs))
            );
            print!("{}", report::table(&rows[0]));
        }
        Format::Table => {
            if args.per_trace {
                for ((name, _), m) in per_trace.iter().zip(rows) {
                    println!("{name}");
                    print!("{}", report::table(m));
                    println!();
                }
            }
            println!("mean over {} traces", rows.len());
            print!("{}", report::table(&report::mean(rows)));
        }
    }
}

/// The tick the runs used (a scenario's own, or `--tick`).
fn args_tick(args: &SimulateArgs, runs: &[ControllerRun]) -> Duration {
    runs.first().map_or(args.tick, |r| r.tick)
}
