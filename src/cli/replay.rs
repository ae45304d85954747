//! `phoenix replay JOURNAL [--policy FILE]`: re-runs a recorded journal through a fresh
//! engine, under the policy it recorded (parity: exit 0 with a one-line summary, or exit 1
//! naming the first divergence) or under another policy (what it would have decided:
//! exit 1 and the differing switches when they differ).

use crate::journal::{self, JournalError, ReplayMode};
use crate::policy::{PolicyError, ValidatedPolicy};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The arguments of `phoenix replay`; the field docs are the flags' help text.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Journal written by `phoenix run` or `phoenix simulate --journal`.
    journal: PathBuf,
    /// Replay under this policy instead of the recorded one and list where its switches
    /// differ (the recorded outputs stay as recorded: an open-loop what-if).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// With --policy, how many differing steps to print.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

/// Why `phoenix replay` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The `--policy` file is wrong.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Replays and prints the verdict.
pub fn run(args: ReplayArgs) -> Result<ExitCode, ReplayError> {
    let lines = journal::read(&args.journal)?;
    let other = args
        .policy
        .as_ref()
        .map(|p| ValidatedPolicy::from_file(p))
        .transpose()?;
    let mode = match &other {
        Some(p) => ReplayMode::Policy(p),
        None => ReplayMode::Parity,
    };
    let report = journal::replay(&args.journal, &lines, mode)?;
    let recorded = report
        .recorded_policy
        .as_ref()
        .map(|(name, sha)| format!("policy {name} ({})", &sha[..sha.len().min(12)]))
        .unwrap_or_else(|| "no recorded policy".to_string());
    let j = args.journal.display();
    match &other {
        None => match report.divergences.first() {
            None => {
                println!(
                    "{j}: parity: {} steps of {} pipeline(s) under {recorded} replayed with 0 divergences ({} switches reproduced)",
                    report.steps, report.pipelines, report.switches.0
                );
                Ok(ExitCode::SUCCESS)
            }
            Some(d) => {
                println!(
                    "{j}: divergence at pipeline {}, tick {} ({}): expected {}, got {}",
                    d.pipeline, d.tick, d.at, d.expected, d.got
                );
                Ok(ExitCode::FAILURE)
            }
        },
        Some(p) => {
            println!(
                "{j}: {} steps of {} pipeline(s) recorded under {recorded}; policy {} switches {} times where the journal switched {} times; {} step(s) differ",
                report.steps,
                report.pipelines,
                p.name(),
                report.switches.1,
                report.switches.0,
                report.divergences.len()
            );
            for d in report.divergences.iter().take(args.limit) {
                println!(
                    "  {} tick {} ({}): recorded {} | {}: {}",
                    d.pipeline,
                    d.tick,
                    d.at,
                    d.expected,
                    p.name(),
                    d.got
                );
            }
            if report.divergences.len() > args.limit {
                println!(
                    "  … {} more (raise --limit)",
                    report.divergences.len() - args.limit
                );
            }
            Ok(if report.divergences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
