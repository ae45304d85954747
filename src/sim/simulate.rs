//! One simulation: a trace, a plant, the controllers to compare; produces one run each.
//!
//! The CLI builds a `Simulation` from a scenario file or from flags; tests and benchmarks
//! build it directly. Policies run through `core::Engine` exactly as in the daemon.

use super::baseline::{Hpa, Threshold};
use super::record::ControllerRun;
use super::runner::{Controller, Plant, PolicyController, RunSpec, run, run_oracle};
use super::scenario::Scenario;
use super::trace::Trace;
use crate::core::{Engine, Timestamp};
use crate::journal::{JournalError, JournalStats, JournalWriter};
use crate::policy::ValidatedPolicy;
use std::time::Duration;

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
    /// Tick length (rows are consecutive ticks whatever their timestamps).
    pub tick: Duration,
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
    /// From a loaded scenario, its trace and its policies.
    pub fn from_scenario(sc: &Scenario, trace: &Trace, policies: Vec<ValidatedPolicy>) -> Self {
        Simulation {
            demand: trace.demand().to_vec(),
            start: trace.timestamps.first().copied().unwrap_or_default(),
            tick: sc.tick,
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
            runs.push(run(&spec, &mut ctl, &mut |t| progress(done + t)));
            journal = journal.or_else(|| ctl.take_journal());
            done += n;
        }
        let ladder: Vec<f64> = self.plant.ladder.iter().map(|p| p.retention).collect();
        for b in &self.baselines {
            let r = match b {
                Baseline::Threshold => {
                    let mut c = Threshold::new(self.budget_series, ladder.len());
                    run(&spec, &mut c as &mut dyn Controller, &mut |t| {
                        progress(done + t)
                    })
                }
                Baseline::Hpa => {
                    let mut c = Hpa::new(self.budget_series, ladder.clone());
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
