//! `phoenix bench control`: the control validation protocol (`bench::control`) as a
//! command: flags in, text or JSON report out, exit code 0 when the first policy meets the
//! acceptance on every judged group, 1 when it does not.

use super::args::{Ladder, parse_budget, parse_duration, parse_ladder, parse_rescale};
use crate::bench::control::{self, ABLATIONS, Candidate, Settings};
use crate::policy::ValidatedPolicy;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The arguments of `phoenix bench control`; the field docs are the flags' help text.
#[derive(Args, Debug)]
// `data/<category>/...` in the help text is not HTML.
#[allow(rustdoc::invalid_html_tags)]
pub struct BenchControlArgs {
    /// Policy file to evaluate (repeat to compare; the first is judged).
    #[arg(long = "policy", default_value = "policies/default.yaml")]
    policies: Vec<PathBuf>,
    /// NAB-layout folder with data/<category>/<file>.csv.
    #[arg(long, default_value = "../shared/data/nab")]
    nab: PathBuf,
    /// Also run the first policy with each mechanism off in turn.
    #[arg(long)]
    ablate: bool,
    /// Print every trace's rows too.
    #[arg(long)]
    per_trace: bool,
    /// Print the whole report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Series budget.
    #[arg(long, default_value = "100000", value_parser = parse_budget)]
    budget: f64,
    /// Rescale each NAB series onto MIN:MAX × budget.
    #[arg(long, default_value = "0.4:2.2", value_parser = parse_rescale)]
    rescale: (f64, f64),
    /// The plant's ladder, NAME=RETENTION least to most reducing.
    #[arg(
        long,
        default_value = "conservative=0.9,balanced=0.6,aggressive=0.35",
        value_parser = parse_ladder
    )]
    retention: Ladder,
    /// Reload delay in ticks.
    #[arg(long, default_value = "1")]
    delay_ticks: u32,
    /// Tick length (a shared row, a synthetic tick, a variant's original median step).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    tick: Duration,
}

/// Why `phoenix bench control` could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A policy file is invalid.
    #[error("{0}")]
    Policy(String),
    /// The data could not be read.
    #[error("{0}")]
    Data(String),
}

/// Runs the protocol and prints the report.
pub fn run(args: BenchControlArgs) -> Result<ExitCode, BenchError> {
    let s = Settings {
        budget: args.budget,
        rescale: args.rescale,
        ladder: args.retention.0,
        delay_ticks: args.delay_ticks.max(1),
        tick: args.tick,
    };
    let mut candidates = Vec::new();
    for p in &args.policies {
        let policy =
            ValidatedPolicy::from_file(p).map_err(|e| BenchError::Policy(e.to_string()))?;
        candidates.push(Candidate::of(&policy, &s));
    }
    if args.ablate {
        let first = candidates[0].clone();
        candidates.extend(ABLATIONS.iter().map(|a| first.ablated(a)));
    }
    let report = control::run_protocol(&s, &candidates, &args.nab).map_err(BenchError::Data)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).expect("the report serialises");
        println!("{text}");
    } else {
        print!("{}", control::render(&report, args.per_trace));
    }
    let pass = control::accepted(&report);
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
