//! `phoenix simulate`: replays a trace (a scenario file, or `--trace` files with the plant
//! given as flags) through policies and baselines on virtual time, then prints the report
//! (with each controller's decision log under the table) and optionally writes the tick
//! CSV and the SVG plot.
//!
//! It refuses rather than answer another question than the one asked: a policy whose
//! ladder is not the plant's, a value no series count can have, an output it cannot write
//! (checked before the run, so nothing is left half-written).

use super::args::{Ladder, parse_budget, parse_duration, parse_ladder, parse_rescale};
use super::output::{OutputPathError, check_output_path};
use super::policy::{DEFAULT_POLICY, DEFAULT_POLICY_ORIGIN};
use super::progress::Progress;
use crate::policy::{PolicyError, ValidatedPolicy};
use crate::sim::decisions;
use crate::sim::json;
use crate::sim::plot::{self, PlotError};
use crate::sim::record::ControllerRun;
use crate::sim::report::{self, Metrics};
use crate::sim::runner::Plant;
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::simulate::{Baseline, LadderMismatch, Simulation};
use crate::sim::ticks::{self, TicksError};
use crate::sim::trace::{TraceError, Values, read_trace};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
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
    #[arg(long, default_value = "15s", value_parser = parse_duration, conflicts_with = "scenario", allow_hyphen_values = true)]
    tick: Duration,
    /// Map the trace's min and max to these multiples of the budget (`0.4:2.2`).
    #[arg(long, value_parser = parse_rescale, conflicts_with = "scenario")]
    rescale: Option<(f64, f64)>,
    /// Output budget in series (a whole number from 1 to 1e12).
    #[arg(long, default_value = "100000", value_parser = parse_budget, conflicts_with = "scenario", allow_hyphen_values = true)]
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
    /// Policy file(s) to compare (default with --trace: the built-in default policy, which
    /// `phoenix policy show-default` prints).
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
    /// Write an SVG plot (single trace only; the file name must end in .svg).
    #[arg(long = "plot")]
    plot_out: Option<PathBuf>,
    /// Decision log entries shown per controller under the table (0: no log).
    #[arg(long, default_value_t = 10)]
    decisions: usize,
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
    /// `--plot` with a file name that is not `.svg`.
    #[error(
        "--plot {}: only SVG plots are written; give a file name ending in .svg{}",
        path.display(),
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
            " (convert it to PNG with e.g. `rsvg-convert -o plot.png plot.svg`)"
        } else {
            ""
        }
    )]
    PlotFormat {
        /// The path given.
        path: PathBuf,
    },
    /// A policy and the plant do not share a ladder.
    #[error(transparent)]
    Ladder(#[from] LadderMismatch),
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
    if let Some(p) = &args.plot_out
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        return Err(SimulateError::PlotFormat { path: p.clone() });
    }
    let mut per_trace: Vec<(String, Vec<ControllerRun>)> = Vec::new();
    let scenario_name;
    let info_plant;
    let (budget_series, tick);
    if let Some(path) = &args.scenario {
        let sc = Scenario::load(path)?;
        let trace = sc.trace()?;
        let mut policies = load_policies(&sc.policies)?;
        policies.extend(load_policies(&args.policies)?);
        let mut sim = Simulation::from_scenario(&sc, &trace, policies);
        sim.check_ladders(&format!("{} plant.retention", path.display()))?;
        if args.no_baselines {
            sim.baselines.clear();
        }
        // A scenario's journal records its first policy.
        check_outputs(&args, 1, 1)?;
        let mut progress = Progress::new(sim.demand.len() as u64 * sim.controllers() as u64);
        let runs = run_with_progress(&sim, &mut progress, 0, args.journal_out.as_deref())?;
        progress.finish();
        per_trace.push((trace.origin.clone(), runs));
        scenario_name = Some(sc.name.clone());
        info_plant = sc.plant.clone();
        (budget_series, tick) = (sc.budget_series, sc.tick);
    } else {
        if args.traces.is_empty() {
            return Err(SimulateError::NoInput);
        }
        if !(0.0..=1.0).contains(&args.failure_rate) {
            return Err(SimulateError::FailureRate {
                rate: args.failure_rate,
            });
        }
        if !(0.0..=1.0).contains(&args.noise) {
            return Err(SimulateError::Noise { noise: args.noise });
        }
        let policies = if args.policies.is_empty() {
            vec![ValidatedPolicy::from_str(
                DEFAULT_POLICY,
                DEFAULT_POLICY_ORIGIN,
            )?]
        } else {
            load_policies(&args.policies)?
        };
        let plant = Plant {
            ladder: args.retention.0.clone(),
            delay_ticks: args.delay_ticks,
            noise: args.noise,
            seed: args.seed,
            failure_rate: args.failure_rate,
        };
        check_outputs(&args, args.traces.len(), policies.len())?;
        let mut sims = Vec::new();
        for path in &args.traces {
            // A trace rescaled onto the budget is a shape of any sign; one used as is holds
            // series counts.
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
                times: Vec::new(),
                budget_series: args.budget,
                plant: plant.clone(),
                policies: policies.clone(),
                baselines: if args.no_baselines {
                    Vec::new()
                } else {
                    Baseline::ALL.to_vec()
                },
            };
            sim.check_ladders("--retention")?;
            sims.push((path.display().to_string(), sim));
        }
        let total: u64 = sims
            .iter()
            .map(|(_, s)| s.demand.len() as u64 * s.controllers() as u64)
            .sum();
        let mut progress = Progress::new(total);
        let mut offset = 0;
        for (name, sim) in &sims {
            let runs = run_with_progress(sim, &mut progress, offset, args.journal_out.as_deref())?;
            offset += sim.demand.len() as u64 * sim.controllers() as u64;
            per_trace.push((name.clone(), runs));
        }
        progress.finish();
        scenario_name = None;
        info_plant = plant;
        (budget_series, tick) = (args.budget, args.tick);
    }

    if let Some((_, runs)) = per_trace.first() {
        if let Some(p) = &args.ticks_out {
            ticks::write_ticks(p, runs)?;
        }
        if let Some(p) = &args.plot_out {
            let title = scenario_name.as_deref().unwrap_or(&per_trace[0].0);
            plot::write_plot(p, title, runs)?;
        }
    }
    let rows: Vec<(String, Vec<Metrics>)> = per_trace
        .iter()
        .map(|(name, runs)| (name.clone(), runs.iter().map(report::metrics).collect()))
        .collect();
    let info = json::RunInfo {
        scenario: scenario_name.as_deref(),
        budget_series,
        tick,
        plant: &info_plant,
    };
    print_report(&args, &info, &per_trace, &rows);
    Ok(ExitCode::SUCCESS)
}

/// Checks every output before the run, so a bad path fails in a second and a failing
/// second path does not leave the first file written by a run that reports failure.
fn check_outputs(args: &SimulateArgs, traces: usize, policies: usize) -> Result<(), SimulateError> {
    if traces > 1 && (args.ticks_out.is_some() || args.plot_out.is_some()) {
        return Err(SimulateError::OutputsNeedOneTrace);
    }
    if let Some(j) = &args.journal_out {
        if traces > 1 || policies > 1 {
            return Err(SimulateError::JournalNeedsOneRun);
        }
        check_output_path(j)?;
    }
    for p in [&args.ticks_out, &args.plot_out].into_iter().flatten() {
        check_output_path(p)?;
    }
    Ok(())
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
    journal: Option<&Path>,
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

/// `1 tick`, `2 ticks`.
fn ticks_text(n: usize) -> String {
    format!("{n} tick{}", if n == 1 { "" } else { "s" })
}

fn print_report(
    args: &SimulateArgs,
    info: &json::RunInfo<'_>,
    per_trace: &[(String, Vec<ControllerRun>)],
    rows: &[(String, Vec<Metrics>)],
) {
    let log = |runs: &[ControllerRun]| {
        if args.decisions > 0 {
            println!();
            print!("{}", decisions::render(runs, args.decisions));
        }
    };
    match args.format {
        Format::Json => println!("{}", json::to_string(&json::report(info, rows))),
        Format::Table if rows.len() == 1 => {
            let (trace, runs) = &per_trace[0];
            let ticks = runs.first().map_or(0, |r| r.ticks.len());
            let name = info.scenario.unwrap_or(trace);
            println!(
                "{name}: {} of {}",
                ticks_text(ticks),
                crate::core::time::fmt_duration(info.tick)
            );
            print!("{}", report::table(&rows[0].1));
            log(runs);
        }
        Format::Table => {
            if args.per_trace {
                for ((name, m), (_, runs)) in rows.iter().zip(per_trace) {
                    println!("{name}");
                    print!("{}", report::table(m));
                    log(runs);
                    println!();
                }
            }
            let all: Vec<Vec<Metrics>> = rows.iter().map(|(_, m)| m.clone()).collect();
            let total: usize = all.iter().filter_map(|m| m.first()).map(|m| m.ticks).sum();
            println!(
                "mean over {} traces ({} in all; the ticks column is each controller's total)",
                rows.len(),
                ticks_text(total)
            );
            print!("{}", report::table(&report::mean(&all)));
        }
    }
}
