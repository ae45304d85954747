//! One simulation: a trace, a plant, the controllers to compare; produces one run each.
//!
//! The CLI builds a `Simulation` from a scenario file or from flags; tests and benchmarks
//! build it directly. Policies run through `core::Engine` exactly as in the daemon.

use super::baseline::{Hpa, Threshold};
use super::record::ControllerRun;
use super::runner::{Controller, Plant, PolicyController, RunSpec, run, run_oracle};
use super::scenario::Scenario;
use super::trace::Trace;
use crate::core::config::ProfileSpec;
use crate::core::{Engine, Timestamp};
use crate::journal::{JournalError, JournalStats, JournalWriter};
use crate::policy::ValidatedPolicy;
use std::time::Duration;

/// A policy whose ladder is not the plant's: simulating it would answer another question
/// (the engine would run the plant's profiles under the policy's thresholds), so it is
/// refused, naming both ladders and the fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{policy}: the policy's profiles [{}] are not the plant's ladder [{}] ({plant_source}); name the policy's profiles like the plant's, least to most reducing, or give the plant the policy's ladder: {}",
    .policy_ladder.join(", "),
    .plant_ladder.join(", "),
    plant_hint(.plant_source, .policy_profiles)
)]
pub struct LadderMismatch {
    /// The policy file (its origin).
    pub policy: String,
    /// Its profile names, least to most reducing.
    pub policy_ladder: Vec<String>,
    /// Its profiles with the retentions it expects, for the suggested plant ladder.
    pub policy_profiles: Vec<ProfileSpec>,
    /// Where the plant's ladder was given: `--retention`, or `FILE plant.retention`.
    pub plant_source: String,
    /// The plant's profile names, least to most reducing.
    pub plant_ladder: Vec<String>,
}

/// The plant ladder that would match, written where the plant's ladder came from.
fn plant_hint(source: &str, profiles: &[ProfileSpec]) -> String {
    if source == "--retention" {
        let rungs: Vec<String> = profiles
            .iter()
            .map(|p| format!("{}={}", p.name, p.retention))
            .collect();
        format!("--retention {}", rungs.join(","))
    } else {
        let rungs: Vec<String> = profiles
            .iter()
            .map(|p| format!("{}: {}", p.name, p.retention))
            .collect();
        format!("plant.retention: {{ {} }}", rungs.join(", "))
    }
}

/// A built-in baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The original Phoenix threshold actuator.
    Threshold,
    /// Kubernetes HPA mapped to profiles.
    Hpa,
    /// The clairvoyant limit.
    Oracle,
}

impl Baseline {
    /// All baselines, in report order.
    pub const ALL: [Baseline; 3] = [Baseline::Threshold, Baseline::Hpa, Baseline::Oracle];
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Demand per tick (already rescaled to series counts).
    pub demand: Vec<f64>,
    /// Virtual time of tick 0.
    pub start: Timestamp,
    /// Tick length (rows are consecutive ticks whatever their timestamps, unless `times`
    /// gives each its own).
    pub tick: Duration,
    /// Time of each tick, for irregular sampling and outages (empty: `start + i·tick`).
    /// When given it must be as long as `demand` and increasing.
    pub times: Vec<Timestamp>,
    /// Output budget in series.
    pub budget_series: f64,
    /// The modelled collector.
    pub plant: Plant,
    /// Policies to compare.
    pub policies: Vec<ValidatedPolicy>,
    /// Baselines to compare.
    pub baselines: Vec<Baseline>,
}

impl Simulation {
    /// One policy on `demand` at regular ticks from `start`, against a plant with the
    /// policy's own ladder, a one-tick reload delay, 1% output noise (seed 4) and no
    /// failed reloads, without baselines: the one setting of the speed benchmarks and
    /// fingerprints (`benches/engine.rs`, `phoenix-bench`, `examples/profile_step.rs`),
    /// so their figures compare.
    pub fn benchmark(
        policy: ValidatedPolicy,
        demand: Vec<f64>,
        start: Timestamp,
        tick: Duration,
        budget_series: f64,
    ) -> Self {
        Simulation {
            demand,
            start,
            tick,
            times: Vec::new(),
            budget_series,
            plant: Plant {
                ladder: policy.profiles().to_vec(),
                delay_ticks: 1,
                noise: 0.01,
                seed: 4,
                failure_rate: 0.0,
            },
            policies: vec![policy],
            baselines: Vec::new(),
        }
    }

    /// From a loaded scenario, its trace and its policies.
    pub fn from_scenario(sc: &Scenario, trace: &Trace, policies: Vec<ValidatedPolicy>) -> Self {
        Simulation {
            demand: trace.demand().to_vec(),
            start: trace.timestamps.first().copied().unwrap_or_default(),
            tick: sc.tick,
            times: Vec::new(),
            budget_series: sc.budget_series,
            plant: sc.plant.clone(),
            policies,
            baselines: if sc.baselines {
                Baseline::ALL.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Checks that every policy's ladder is the plant's, by name and order (retentions may
    /// differ: the plant's are the truth the engine measures). `plant_source` says where
    /// the plant's ladder was written, for the message.
    pub fn check_ladders(&self, plant_source: &str) -> Result<(), LadderMismatch> {
        let names =
            |l: &[ProfileSpec]| -> Vec<String> { l.iter().map(|p| p.name.clone()).collect() };
        let plant = names(&self.plant.ladder);
        for p in &self.policies {
            let own = names(p.profiles());
            if own != plant {
                return Err(LadderMismatch {
                    policy: p.origin().to_string(),
                    policy_ladder: own,
                    policy_profiles: p.profiles().to_vec(),
                    plant_source: plant_source.to_string(),
                    plant_ladder: plant,
                });
            }
        }
        Ok(())
    }

    /// Number of controller runs this simulation makes.
    pub fn controllers(&self) -> usize {
        self.policies.len() + self.baselines.len()
    }

    /// Like `run`, with the first policy's every step recorded into a journal at `path`
    /// (header, policy, engine configuration, steps), as the daemon records its own.
    pub fn run_journaled(
        &self,
        path: &std::path::Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<ControllerRun>, JournalStats), JournalError> {
        let journal = JournalWriter::create(path, "phoenix simulate")?;
        let (runs, journal) = self.run_inner(progress, Some(journal));
        let stats = journal.map(JournalWriter::finish).transpose()?;
        Ok((runs, stats.unwrap_or(JournalStats { steps: 0, bytes: 0 })))
    }

    /// Runs every controller; `progress` receives ticks done across all runs.
    pub fn run(&self, progress: &mut dyn FnMut(u64)) -> Vec<ControllerRun> {
        self.run_inner(progress, None).0
    }

    /// `run`, handing `journal` to the first policy and returning it after its run.
    fn run_inner(
        &self,
        progress: &mut dyn FnMut(u64),
        mut journal: Option<JournalWriter>,
    ) -> (Vec<ControllerRun>, Option<JournalWriter>) {
        let spec = RunSpec {
            demand: &self.demand,
            start: self.start,
            tick: self.tick,
            times: &self.times,
            budget_series: self.budget_series,
            plant: &self.plant,
        };
        let n = self.demand.len() as u64;
        let mut done = 0u64;
        let mut runs = Vec::with_capacity(self.controllers());
        let mut names: Vec<String> = Vec::new();
        for p in &self.policies {
            let cfg = p.engine_config_with_ladder(
                p.name(),
                self.budget_series,
                self.tick,
                &self.plant.ladder,
            );
            // Two policies with the same name would be indistinguishable in the report.
            let mut name = p.name().to_string();
            let mut k = 2;
            while names.contains(&name) || ["threshold", "hpa", "oracle"].contains(&name.as_str()) {
                name = format!("{}#{k}", p.name());
                k += 1;
            }
            names.push(name.clone());
            let mut ctl = match journal.take() {
                Some(mut j) => {
                    j.policy(p);
                    j.pipeline(&cfg, None);
                    PolicyController::new(name, Engine::new(cfg)).with_journal(j)
                }
                None => PolicyController::new(name, Engine::new(cfg)),
            };
            let mut r = run(&spec, &mut ctl, &mut |t| progress(done + t));
            r.anomaly_threshold = p.anomaly().map(|a| a.threshold);
            runs.push(r);
            journal = journal.or_else(|| ctl.take_journal());
            done += n;
        }
        for b in &self.baselines {
            let r = match b {
                Baseline::Threshold => {
                    let mut c = Threshold::new(self.budget_series, &self.plant.ladder);
                    run(&spec, &mut c as &mut dyn Controller, &mut |t| {
                        progress(done + t)
                    })
                }
                Baseline::Hpa => {
                    let mut c = Hpa::new(self.budget_series, &self.plant.ladder);
                    run(&spec, &mut c as &mut dyn Controller, &mut |t| {
                        progress(done + t)
                    })
                }
                Baseline::Oracle => run_oracle(&spec),
            };
            runs.push(r);
            done += n;
            progress(done);
        }
        (runs, journal)
    }
}
