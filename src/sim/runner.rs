//! The virtual-time runner: feeds a demand trace through the plant (per-profile retention,
//! reload delay, failed reloads, optional noise) and one controller, and records every
//! tick.
//!
//! Time is virtual: tick `i` happens at `start + i·tick`, whatever the trace's own
//! timestamps say, so a year of 15 s ticks replays in well under a second; or, when the
//! run is given one timestamp per tick (irregular sampling, outages), at that timestamp,
//! so the engine's durations meet the gaps they would meet in production. The plant
//! behaves as the daemon's actuator does: it takes the controller's apply requests (for a
//! policy, exactly the engine's `ApplyProfile` actions); an apply requested after observing
//! tick `t` ends at tick `t + delay` (delay ≥ 1: the output of a tick is observed before
//! anything can be decided about it), where it either comes into force or fails, and the
//! plant reports what is in force, and how the apply ended, with that tick's observation.

use super::baseline::Oracle;
use super::record::{ControllerRun, Note, TickRecord};
use super::synth::Normal;
use crate::core::config::ProfileSpec;
use crate::core::event::{Action, Event};
use crate::core::{ApplyOutcome, ApplyReport, Engine, Observation, Sample, Timestamp};
use crate::journal::JournalWriter;
use std::collections::VecDeque;
use std::time::Duration;

/// The pipeline as the simulator models it.
#[derive(Clone, Debug, PartialEq)]
pub struct Plant {
    /// Profiles with their true retention, least to most reducing.
    pub ladder: Vec<ProfileSpec>,
    /// Ticks from a decision to the profile being in force (≥ 1).
    pub delay_ticks: u32,
    /// Relative standard deviation of multiplicative output noise (0 = none).
    pub noise: f64,
    /// Seed of the noise and of the reload failures.
    pub seed: u64,
    /// Share of applies that fail (the collector rejects the reload; the previous profile
    /// stays in force), in [0, 1]; drawn per tick from the seed, so every controller of a
    /// run meets the same failing ticks.
    pub failure_rate: f64,
}

impl Plant {
    /// True if an apply ending at tick `i` fails.
    fn fails(&self, i: usize) -> bool {
        if self.failure_rate <= 0.0 {
            return false;
        }
        // SplitMix64 of (seed, tick): a stateless draw, the same for every controller.
        let mut x = self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        ((x >> 11) as f64 / (1u64 << 53) as f64) < self.failure_rate
    }
}

/// What a controller sees at a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickView {
    /// Tick number.
    pub tick: u32,
    /// Virtual time.
    pub now: Timestamp,
    /// Demand (NaN if the trace has no value).
    pub input: f64,
    /// Output under the profile in force (NaN if no input).
    pub output: f64,
    /// Profile in force during this tick.
    pub in_force: usize,
    /// The controller's own previous decision.
    pub decided_before: usize,
    /// An apply that ended at this tick: the profile, its number, and whether it came
    /// into force.
    pub apply_ended: Option<(usize, u64, bool)>,
}

/// Anything that picks a profile each tick.
pub trait Controller {
    /// Name in reports.
    fn name(&self) -> &str;
    /// Decide after observing a tick; sentences for switches go to `texts`.
    fn decide(&mut self, view: &TickView, texts: &mut Vec<String>) -> (usize, Note);
    /// The anomaly score the controller computed on the last tick, if it scores signals.
    fn last_anomaly(&self) -> Option<f32> {
        None
    }
    /// Profile the plant starts with in force.
    fn initial(&self) -> usize {
        0
    }
    /// The apply the last `decide` asks the plant for. By default a controller asks for
    /// its decision whenever it changes; a policy asks exactly for its engine's actions.
    fn requested(&self, decided_before: usize, decided: usize) -> Option<(usize, u64)> {
        (decided != decided_before).then_some((decided, 0))
    }
}

/// A policy: the real engine, stepped exactly as the daemon steps it.
pub struct PolicyController {
    name: String,
    engine: Engine,
    // Highest score of the watched signals on the last healthy tick.
    anomaly: Option<f32>,
    // The last step's `ApplyProfile` action (profile, number), for the plant.
    requested: Option<(usize, u64)>,
    // Where every step goes when the run is journaled.
    journal: Option<JournalWriter>,
    // The observation, rewritten in place each tick: building and dropping one per tick
    // (two samples, two vectors) was a tenth of the runner's own cost.
    obs: Observation,
}

impl PolicyController {
    /// Wraps an engine under a report name.
    pub fn new(name: impl Into<String>, engine: Engine) -> Self {
        PolicyController {
            name: name.into(),
            engine,
            anomaly: None,
            requested: None,
            journal: None,
            obs: Observation::ok(0.0, 0.0, Timestamp(0)),
        }
    }

    /// Records every step into `journal` as the daemon does.
    pub fn with_journal(mut self, journal: JournalWriter) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The journal, once the run is over (to finish it and read its size).
    pub fn take_journal(&mut self) -> Option<JournalWriter> {
        self.journal.take()
    }
}

impl Controller for PolicyController {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, v: &TickView, texts: &mut Vec<String>) -> (usize, Note) {
        let sample = |x: f64| {
            if x.is_finite() {
                Sample::ok(x, v.now)
            } else {
                Sample::Empty
            }
        };
        let obs = &mut self.obs;
        obs.input = sample(v.input);
        obs.output = sample(v.output);
        obs.in_force = Some(v.in_force);
        obs.applies.clear();
        if let Some((profile, seq, ok)) = v.apply_ended {
            obs.applies.push(ApplyReport {
                profile,
                seq,
                outcome: if ok {
                    ApplyOutcome::Applied
                } else {
                    ApplyOutcome::Failed {
                        reason: "simulated reload failure".to_string(),
                    }
                },
            });
        }
        let obs = &self.obs;
        let step = self.engine.step(v.now, obs);
        if let Some(j) = &mut self.journal {
            j.record(self.engine.config().pipeline.as_str(), v.now, obs, &step);
        }
        self.requested = step
            .actions
            .iter()
            .map(|a| match a {
                Action::ApplyProfile { profile, seq } => (*profile, *seq),
            })
            .next();
        let mut note = Note::None;
        self.anomaly = None;
        for ev in &step.events {
            match ev {
                Event::Switched(d) => {
                    texts.push(d.to_string());
                    note = Note::Switched(texts.len() as u32 - 1);
                }
                Event::Blocked(b) if !matches!(note, Note::Switched(_)) => {
                    note = Note::Blocked {
                        guard: b.guard,
                        to: b.to as u8,
                        until: b.until,
                    }
                }
                Event::Held(h) if note == Note::None => note = Note::Hold(h.reason),
                Event::Kept(k) if note == Note::None => note = Note::Kept(k.label()),
                Event::Applied(a) if !a.ok && note == Note::None => note = Note::ApplyFailed,
                Event::Evaluated(e) => {
                    self.anomaly = match (e.anomaly_input, e.anomaly_output) {
                        (Some(a), Some(b)) => Some(a.max(b) as f32),
                        (a, b) => a.or(b).map(|x| x as f32),
                    }
                }
                _ => {}
            }
        }
        (self.engine.current(), note)
    }

    fn last_anomaly(&self) -> Option<f32> {
        self.anomaly
    }

    fn initial(&self) -> usize {
        self.engine.in_force()
    }

    fn requested(&self, _: usize, _: usize) -> Option<(usize, u64)> {
        self.requested
    }
}

/// Virtual time of tick `i`.
pub fn tick_time(start: Timestamp, tick: Duration, i: usize) -> Timestamp {
    Timestamp(start.0 + (tick.as_millis() as i64) * i as i64)
}

/// Multiplicative output noise from the plant's seed.
struct Noise {
    rel_sd: f64,
    normal: Normal,
}

impl Noise {
    fn new(rel_sd: f64, seed: u64) -> Option<Self> {
        (rel_sd > 0.0).then(|| Noise {
            rel_sd,
            normal: Normal::new(seed),
        })
    }

    fn factor(&mut self) -> f64 {
        (1.0 + self.rel_sd * self.normal.sample()).max(0.0)
    }
}

/// Common inputs of one run.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec<'a> {
    /// Demand per tick.
    pub demand: &'a [f64],
    /// Virtual time of tick 0.
    pub start: Timestamp,
    /// Tick length.
    pub tick: Duration,
    /// Time of each tick, when the ticks are not regular (empty: `start + i·tick`).
    pub times: &'a [Timestamp],
    /// Output budget.
    pub budget_series: f64,
    /// The plant.
    pub plant: &'a Plant,
}

impl RunSpec<'_> {
    /// Virtual time of tick `i`: its own timestamp if the run has them, else regular.
    pub fn time(&self, i: usize) -> Timestamp {
        self.times
            .get(i)
            .copied()
            .unwrap_or_else(|| tick_time(self.start, self.tick, i))
    }

    fn empty_run(&self, name: &str) -> ControllerRun {
        ControllerRun {
            name: name.to_string(),
            profiles: self.plant.ladder.iter().map(|p| p.name.clone()).collect(),
            retentions: self.plant.ladder.iter().map(|p| p.retention).collect(),
            budget_series: self.budget_series,
            tick: self.tick,
            ticks: Vec::with_capacity(self.demand.len()),
            texts: Vec::new(),
            anomaly_threshold: None,
        }
    }
}

/// Runs one controller over the trace. `progress` is called now and then with ticks done.
pub fn run(
    spec: &RunSpec,
    ctl: &mut dyn Controller,
    progress: &mut dyn FnMut(u64),
) -> ControllerRun {
    let mut out = spec.empty_run(ctl.name());
    let plant = spec.plant;
    let last = plant.ladder.len() - 1;
    let delay = plant.delay_ticks.max(1) as usize;
    let mut noise = Noise::new(plant.noise, plant.seed);
    // Applies in flight: (tick at which it ends, profile, number), in request order.
    let mut pending: VecDeque<(usize, usize, u64)> = VecDeque::new();
    let mut in_force = ctl.initial().min(last);
    let mut decided = in_force;
    for (i, &input) in spec.demand.iter().enumerate() {
        let mut apply_ended = None;
        while let Some(&(_, p, seq)) = pending.front().filter(|(due, ..)| *due <= i) {
            pending.pop_front();
            let ok = !plant.fails(i);
            if ok {
                in_force = p;
            }
            apply_ended = Some((p, seq, ok));
        }
        let now = spec.time(i);
        let mut output = input * plant.ladder[in_force].retention;
        if let Some(n) = noise.as_mut() {
            output *= n.factor();
        }
        let view = TickView {
            tick: i as u32,
            now,
            input,
            output,
            in_force,
            decided_before: decided,
            apply_ended,
        };
        let (d, note) = ctl.decide(&view, &mut out.texts);
        let d = d.min(last);
        if let Some((p, seq)) = ctl.requested(decided, d) {
            pending.push_back((i + delay, p.min(last), seq));
        }
        decided = d;
        out.ticks.push(TickRecord {
            tick: i as u32,
            timestamp: now,
            input,
            output,
            profile: in_force as u8,
            decided: decided as u8,
            note,
            anomaly: ctl.last_anomaly(),
        });
        if i & 0xFFFF == 0xFFFF {
            progress(i as u64 + 1);
        }
    }
    progress(spec.demand.len() as u64);
    out
}

/// The clairvoyant oracle's run: the least-reducing fitting profile, in force at once.
pub fn run_oracle(spec: &RunSpec) -> ControllerRun {
    let mut out = spec.empty_run("oracle");
    let oracle = Oracle::new(spec.budget_series, out.retentions.clone());
    for (i, &input) in spec.demand.iter().enumerate() {
        let p = oracle.choose(input);
        let next_input = spec.demand.get(i + 1).copied();
        let next = next_input.map_or(p, |x| oracle.choose(x));
        // It decides on the next tick's demand, which it knows in advance.
        let note = match next_input {
            Some(x) if next != p => {
                out.texts.push(oracle.reason(&out.profiles, p, next, x));
                Note::Switched(out.texts.len() as u32 - 1)
            }
            _ => Note::None,
        };
        out.ticks.push(TickRecord {
            tick: i as u32,
            timestamp: spec.time(i),
            input,
            output: input * out.retentions[p],
            profile: p as u8,
            decided: next as u8,
            note,
            anomaly: None,
        });
    }
    out
}
