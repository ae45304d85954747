//! The engine: one per pipeline, `step(now, &Observation) -> Step`, level-triggered.
//!
//! Each healthy *new* sample the engine measures the retention of the profile in force,
//! forecasts demand (trend + volatility margin, on sample timestamps), adds the PID's
//! correction, and so computes the *pressure* every profile would be under. The ladder
//! wants to escalate when the decided profile's pressure has been above `escalate_above`
//! for `escalate_for`, and to relax when a less-reducing profile's pressure (on the worst
//! demand of the relax window) has been below `relax_below` for `relax_for`. Between the
//! two is the hysteresis band, where nothing moves. Every wanted switch then passes the
//! guards (dwell, switch budget, oscillation, lockout, override); a refused switch is an
//! event with the guard's name. Bad input holds, never relaxes, and may fall back to a
//! more protective profile once it has been bad for `fallback_after`.
//!
//! Everything is measured in time: streaks, windows, dwell and cooldowns are durations on
//! `now` and on sample timestamps, so a step called twice at one instant, early for a
//! command, or after a gap decides as the policy's durations say. A step with no sample
//! newer than the last one evaluated changes no streak and no window: the ladder moves on
//! samples, commands act at once.
//!
//! The engine keeps *decided* and *in force* apart: the actuator's report in each
//! observation says what is in force, retention is measured against it, a failed apply is
//! an event, and the decided profile falls back to what is really in force.

use super::anomaly::Detector;
use super::config::{AnomalyConfig, EngineConfig};
use super::event::{
    Action, ApplyEvent, Audit, Blocked, Cause, Decision, Evaluation, Event, Guard, Hold,
    HoldReason, Kept, Signal, Step,
};
use super::observation::{ApplyOutcome, Command, Observation, Sample};
use super::pid::{PidCorrection, Room};
use super::predict::{Forecast, History, Series};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Version of the persisted `EngineState`; a state of another version is not restored.
pub const STATE_VERSION: u32 = 2;

/// A switch that took place, kept for the switch budget and flap detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchRecord<P = usize> {
    /// When it was decided.
    pub at: Timestamp,
    /// Profile left.
    pub from: P,
    /// Profile entered.
    pub to: P,
}

/// A profile the collector refused (its apply failed or was rolled back), and until when
/// it is not decided again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedState<P = usize> {
    /// The refused profile.
    pub profile: P,
    /// When it may be decided again.
    pub until: Timestamp,
    /// Refusals of it in a row (the backoff's doubling exponent, plus one).
    pub refusals: u32,
}

/// A manual pin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideState<P = usize> {
    /// Pinned profile.
    pub profile: P,
    /// When the pin lapses.
    pub until: Timestamp,
    /// Who pinned it.
    pub by: String,
}

/// Anomaly detectors of one pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyState {
    /// Detector on the input signal, if watched.
    pub input: Option<Detector>,
    /// Detector on the output signal, if watched.
    pub output: Option<Detector>,
    /// The last time a watched signal scored at or above the threshold.
    pub last_flag: Option<Flag>,
}

/// A watched signal scoring at or above the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Sample time it happened.
    pub at: Timestamp,
    /// Which signal.
    pub signal: Signal,
    /// The score.
    pub score: f64,
}

impl AnomalyState {
    fn new(cfg: &AnomalyConfig) -> Self {
        AnomalyState {
            input: cfg.watch_input.then(|| Detector::new(cfg.detector)),
            output: cfg.watch_output.then(|| Detector::new(cfg.detector)),
            last_flag: None,
        }
    }

    /// True if these detectors are what `cfg` asks for (so a restored state can be kept).
    fn matches(&self, cfg: &AnomalyConfig) -> bool {
        self.input.is_some() == cfg.watch_input
            && self.output.is_some() == cfg.watch_output
            && self
                .input
                .iter()
                .chain(self.output.iter())
                .all(|d| d.kind() == cfg.detector)
    }
}

/// Everything the engine remembers between steps, generic over how profiles are named:
/// indices inside the engine, names in the persisted form (`EngineState`), so a changed
/// ladder restores by name and a vanished profile is reported, never silently remapped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineStateOf<P> {
    /// `STATE_VERSION` when written.
    pub version: u32,
    /// Profile decided (what the last switch asked for, or what is in force after a
    /// failed apply).
    pub decided: P,
    /// Profile the actuator last reported in force.
    pub in_force: P,
    /// Number of the latest apply asked for (echoed in the actuator's reports).
    pub apply_seq: u64,
    /// Since when `in_force` has been in force (`None`: since before the engine started).
    pub in_force_since: Option<Timestamp>,
    /// When the last switch was decided.
    pub last_switch_at: Option<Timestamp>,
    /// True if the last switch was an emergency (the lockout, not the relax dwell, then
    /// guards relaxing).
    pub last_switch_emergency: bool,
    /// Recent switches, pruned to the longest guard window.
    pub history: VecDeque<SwitchRecord<P>>,
    /// No relaxation before this time (emergency lockout).
    pub lockout_until: Option<Timestamp>,
    /// No relaxation before this time (after a flap).
    pub relax_frozen_until: Option<Timestamp>,
    /// Consecutive flaps remembered (the cooldown's doubling exponent).
    pub flaps: u32,
    /// Until when the flap streak is remembered.
    pub flap_memory_until: Option<Timestamp>,
    /// Manual override, if any.
    pub pinned: Option<OverrideState<P>>,
    /// The profile last refused by the collector, if any (kept after its backoff ends, so
    /// a further refusal doubles it).
    #[serde(default)]
    pub refused: Option<RefusedState<P>>,
    /// The PID correction, integral included.
    pub pid: PidCorrection,
    /// Time of the newest sample evaluated (a sample no newer is no news).
    pub last_sample_at: Option<Timestamp>,
    /// Since when the input has been bad (no healthy sample), if it is.
    pub bad_since: Option<Timestamp>,
    /// First sample time of the current run of samples meeting the escalate condition.
    pub escalate_since: Option<Timestamp>,
    /// First sample time of the current run of samples meeting the relax condition.
    pub relax_since: Option<Timestamp>,
    /// Recent healthy samples.
    pub samples: History,
    /// Learned share of excursions still present at the next sample (EWMA over
    /// excursions).
    pub persistence: f64,
    /// Retention assumed when an excursion started at the previous sample, to judge
    /// whether it persisted whatever was decided meanwhile.
    pub excursion_retention: Option<f64>,
    /// Sample time of the start of the previous excursion; recurring excursions are not
    /// transient, whatever each one's length.
    pub last_excursion_at: Option<Timestamp>,
    /// Retention measured per profile (EWMA of output/input while settled in force).
    pub measured_retention: Vec<(P, f64)>,
    /// Anomaly detectors, when the policy watches signals.
    pub anomaly: Option<AnomalyState>,
}

/// The persisted form: versioned, profiles by name.
pub type EngineState = EngineStateOf<String>;

impl<P> EngineStateOf<P> {
    /// The same state with every profile reference mapped by `f`; references `f` cannot
    /// map are dropped from the history, the pin and the measurements, and reported by
    /// the caller. `decided` and `in_force` are mapped by `g`, which must succeed.
    fn map<Q>(self, f: impl Fn(&P) -> Option<Q>, g: impl Fn(&P) -> Q) -> EngineStateOf<Q> {
        EngineStateOf {
            version: self.version,
            decided: g(&self.decided),
            in_force: g(&self.in_force),
            apply_seq: self.apply_seq,
            in_force_since: self.in_force_since,
            last_switch_at: self.last_switch_at,
            last_switch_emergency: self.last_switch_emergency,
            history: self
                .history
                .into_iter()
                .filter_map(|r| {
                    Some(SwitchRecord {
                        at: r.at,
                        from: f(&r.from)?,
                        to: f(&r.to)?,
                    })
                })
                .collect(),
            lockout_until: self.lockout_until,
            relax_frozen_until: self.relax_frozen_until,
            flaps: self.flaps,
            flap_memory_until: self.flap_memory_until,
            pinned: self.pinned.and_then(|p| {
                Some(OverrideState {
                    profile: f(&p.profile)?,
                    until: p.until,
                    by: p.by,
                })
            }),
            refused: self.refused.and_then(|r| {
                Some(RefusedState {
                    profile: f(&r.profile)?,
                    until: r.until,
                    refusals: r.refusals,
                })
            }),
            pid: self.pid,
            last_sample_at: self.last_sample_at,
            bad_since: self.bad_since,
            escalate_since: self.escalate_since,
            relax_since: self.relax_since,
            samples: self.samples,
            persistence: self.persistence,
            excursion_retention: self.excursion_retention,
            last_excursion_at: self.last_excursion_at,
            measured_retention: self
                .measured_retention
                .into_iter()
                .filter_map(|(p, r)| Some((f(&p)?, r)))
                .collect(),
            anomaly: self.anomaly,
        }
    }
}

/// Something a restore could not carry over as it was; the daemon logs each one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreNote(pub String);

/// One pipeline's controller.
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: EngineConfig,
    state: EngineStateOf<usize>,
    // Retention assumed per profile (`retention(i)`), kept up to date with the
    // measurements: the control law reads it for every profile at every sample.
    rets: Vec<f64>,
    // `history_keep()`, which depends on the configuration only.
    keep: Duration,
}

// Smoothing of the measured retention: recent enough to notice a collector change within
// a few samples, smooth enough that one odd scrape does not move it much.
const RETENTION_ALPHA: f64 = 0.2;
// No pipeline has this many series; a larger value is a broken exporter or query, and
// letting it in would overflow the control arithmetic.
const MAX_SERIES: f64 = 1e15;
// How straight the output's recent rise must be for the explosion rule: a least-squares
// line explaining 80% of the variance is a ramp, not noise or a lone spike.
const EXPLOSION_R2: f64 = 0.8;
// How long an anomaly flag marks the onset of an explosion: an unbounded label multiplies
// series within minutes, so a rise flagged up to ten minutes ago that is still climbing
// along a clean line is the same event. (The rule used to need the flag within the trend
// window, 2 min, which by the time a rise nears capacity has long passed: the detectors
// flag the onset, then adapt to the climb.)
const EXPLOSION_ONSET_MEMORY: Duration = Duration::from_secs(600);
// Memory of the excursion-persistence estimate: about the last five excursions.
const PERSISTENCE_ALPHA: f64 = 0.2;

impl Engine {
    /// A fresh engine at the configured initial profile, assumed in force.
    pub fn new(cfg: EngineConfig) -> Self {
        let initial = cfg.initial_profile.min(cfg.most_reducing());
        let state = EngineStateOf {
            version: STATE_VERSION,
            decided: initial,
            in_force: initial,
            apply_seq: 0,
            in_force_since: None,
            last_switch_at: None,
            last_switch_emergency: false,
            history: VecDeque::new(),
            lockout_until: None,
            relax_frozen_until: None,
            flaps: 0,
            flap_memory_until: None,
            pinned: None,
            refused: None,
            pid: PidCorrection::new(),
            last_sample_at: None,
            bad_since: None,
            escalate_since: None,
            relax_since: None,
            samples: History::default(),
            persistence: 1.0,
            excursion_retention: None,
            last_excursion_at: None,
            measured_retention: Vec::new(),
            anomaly: cfg.anomaly.as_ref().map(AnomalyState::new),
        };
        Engine::with_state(cfg, state)
    }

    /// The engine over `state`, with the retention cache built from it.
    fn with_state(cfg: EngineConfig, state: EngineStateOf<usize>) -> Self {
        let mut e = Engine {
            cfg,
            state,
            rets: Vec::new(),
            keep: Duration::ZERO,
        };
        e.rets = (0..e.cfg.profiles.len()).map(|i| e.retention(i)).collect();
        e.keep = e.history_keep();
        e
    }

    /// Continues from a persisted state, matching profiles by name. The daemon must come
    /// up, so nothing here fails: what cannot be carried over is dropped or reset and
    /// reported in the notes (a state of another version starts fresh; a decided
    /// profile that vanished from the ladder becomes the one in force if that still
    /// exists, else the initial profile).
    pub fn restore(cfg: EngineConfig, state: EngineState) -> (Self, Vec<RestoreNote>) {
        let mut notes = Vec::new();
        if state.version != STATE_VERSION {
            notes.push(RestoreNote(format!(
                "saved state has version {}, this build writes {}; starting fresh",
                state.version, STATE_VERSION
            )));
            return (Engine::new(cfg), notes);
        }
        let initial = cfg.initial_profile.min(cfg.most_reducing());
        let lost: Vec<String> = [&state.decided, &state.in_force]
            .into_iter()
            .chain(state.history.iter().flat_map(|r| [&r.from, &r.to]))
            .chain(state.pinned.iter().map(|p| &p.profile))
            .chain(state.refused.iter().map(|r| &r.profile))
            .chain(state.measured_retention.iter().map(|(p, _)| p))
            .filter(|n| cfg.profile_index(n).is_none())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for name in &lost {
            notes.push(RestoreNote(format!(
                "saved state names profile `{name}`, which the policy no longer has; \
                 what referred to it is dropped"
            )));
        }
        let in_force = cfg.profile_index(&state.in_force);
        let decided_ok = cfg.profile_index(&state.decided).is_some();
        let mut s = state.map(
            |n| cfg.profile_index(n),
            |n| cfg.profile_index(n).or(in_force).unwrap_or(initial),
        );
        if !decided_ok {
            notes.push(RestoreNote(format!(
                "decided profile reset to `{}`",
                cfg.profiles[s.decided].name
            )));
        }
        // A policy change may start or stop watching signals; keep what still applies.
        s.anomaly = match (&cfg.anomaly, s.anomaly.take()) {
            (None, _) => None,
            (Some(a), Some(old)) if old.matches(a) => Some(old),
            (Some(a), old) => {
                if old.is_some() {
                    notes.push(RestoreNote(
                        "anomaly detectors changed with the policy; they warm up again".to_string(),
                    ));
                }
                Some(AnomalyState::new(a))
            }
        };
        (Engine::with_state(cfg, s), notes)
    }

    /// The state to persist (profiles by name).
    pub fn state(&self) -> EngineState {
        let names = |i: &usize| self.cfg.profiles[*i].name.clone();
        self.state.clone().map(|i| Some(names(i)), names)
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Profile decided (index): in force, or being applied.
    pub fn current(&self) -> usize {
        self.state.decided
    }

    /// Profile the actuator last reported in force (index).
    pub fn in_force(&self) -> usize {
        self.state.in_force
    }

    /// Number of the latest apply asked for (the `seq` of its `ApplyProfile`).
    pub fn apply_seq(&self) -> u64 {
        self.state.apply_seq
    }

    /// Since when the profile in force has been in force, if known.
    pub fn in_force_since(&self) -> Option<Timestamp> {
        self.state.in_force_since
    }

    /// The active manual pin, if any.
    pub fn pinned(&self) -> Option<&OverrideState> {
        self.state.pinned.as_ref()
    }

    /// Deadlines of the guards that would refuse a relaxation right now, for the status
    /// page: (guard, until).
    pub fn active_guards(&self, now: Timestamp) -> Vec<(Guard, Timestamp)> {
        let s = &self.state;
        let g = &self.cfg.guards;
        let mut out = Vec::new();
        if let Some(t) = s.lockout_until.filter(|&t| t > now) {
            out.push((Guard::Lockout, t));
        }
        if let Some(t) = s.relax_frozen_until.filter(|&t| t > now) {
            out.push((Guard::Oscillation, t));
        }
        if let Some(last) = s.last_switch_at {
            let t = last.plus(g.min_dwell_escalate);
            if t > now {
                out.push((Guard::DwellEscalate, t));
            }
            let t = last.plus(g.min_dwell_relax);
            if t > now && !s.last_switch_emergency {
                out.push((Guard::DwellRelax, t));
            }
        }
        if let Some(p) = s.pinned.as_ref().filter(|p| p.until > now) {
            out.push((Guard::Override, p.until));
        }
        if let Some(r) = s.refused.as_ref().filter(|r| r.until > now) {
            out.push((Guard::Refused, r.until));
        }
        out
    }

    /// Decide for this step. Never fails: bad input becomes a `Held` event.
    pub fn step(&mut self, now: Timestamp, obs: &Observation) -> Step {
        let mut step = Step {
            actions: Default::default(),
            events: Default::default(),
            next_wakeup: now,
        };
        self.expire(now, &mut step);
        self.take_applies(now, obs, &mut step);
        let mut emergency = self.take_commands(now, obs, &mut step);

        let read = self.read(now, obs);
        // A pin is carried out when its command arrives or on a new sample, like the
        // ladder: never at whichever extra call happens to come first.
        let may_pin = matches!(read, Ok(Some(_))) || !obs.commands.is_empty();
        let wanted = match read {
            Err(hold) => {
                let since = *self.state.bad_since.get_or_insert(now);
                let bad_for = now.saturating_since(since);
                let fallback = self
                    .cfg
                    .bad_input
                    .fallback_profile
                    .filter(|&f| f > self.state.decided)
                    .filter(|_| bad_for >= self.cfg.bad_input.fallback_after);
                step.events.push(Event::Held(Hold {
                    since,
                    bad_for,
                    ..hold
                }));
                emergency
                    .map(|c| (self.cfg.most_reducing(), c))
                    .or(fallback.map(|f| (f, Cause::Fallback { bad_for })))
                    .map(|w| (w, None))
            }
            Ok(None) => {
                // Fresh enough, but nothing new: commands act, the ladder waits.
                self.state.bad_since = None;
                let kept = Kept::NoNewSample {
                    last: self.state.last_sample_at.unwrap_or(now),
                };
                emergency
                    .map(|c| (self.cfg.most_reducing(), c))
                    .map(|w| (w, Some(kept.clone())))
                    .or_else(|| {
                        step.events.push(Event::Kept(kept));
                        None
                    })
            }
            Ok(Some((at, input, output))) => {
                self.state.bad_since = None;
                let (eval, wanted) = self.evaluate(at, input, output);
                let pressure = eval.pressure;
                step.events.push(Event::Evaluated(eval));
                let hard = self.cfg.guards.emergency.hard_ratio;
                if emergency.is_none() && output > hard * self.cfg.budget_series {
                    emergency = Some(Cause::HardLimit {
                        output,
                        ratio: hard,
                    });
                }
                if emergency.is_none() {
                    emergency = self.explosion(at, output);
                }
                match (emergency, wanted) {
                    (Some(c), w) => Some((
                        (self.cfg.most_reducing(), c),
                        Some(w.err().unwrap_or(Kept::AtMostReducing { pressure })),
                    )),
                    (None, Ok(w)) => Some((w, None)),
                    (None, Err(kept)) => {
                        step.events.push(Event::Kept(kept));
                        None
                    }
                }
            }
        };
        // What the step says if the wanted switch turns out to be no switch at all.
        let (wanted, fallback_kept) = match wanted {
            Some((w, k)) => (Some(w), k),
            None => (None, None),
        };
        self.decide(now, wanted, fallback_kept, may_pin, &mut step);

        // The next sample is due a tick after the last one; if that is past (input bad, or
        // a late caller), a tick from now, so a caller following this never spins.
        step.next_wakeup = self
            .state
            .last_sample_at
            .map(|t| t.plus(self.cfg.tick))
            .filter(|&t| t > now)
            .unwrap_or(now.plus(self.cfg.tick.max(Duration::from_millis(1))));
        if let Some(p) = &self.state.pinned
            && p.until > now
        {
            step.next_wakeup = step.next_wakeup.min(p.until);
        }
        step
    }

    /// Turns what the ladder (or an emergency, a fallback, a pin) wants into a switch, a
    /// block, or a kept explanation; pushes exactly one explanation unless one is there.
    fn decide(
        &mut self,
        now: Timestamp,
        wanted: Option<(usize, Cause)>,
        fallback_kept: Option<Kept>,
        may_pin: bool,
        step: &mut Step,
    ) {
        let explained = step.events.iter().any(Event::is_explanation);
        // A switch or a block is the step's explanation: the ladder's `Kept`, pushed
        // before a pin or an emergency overruled it, goes.
        let overrule = |step: &mut Step| step.events.retain(|e| !matches!(e, Event::Kept(_)));
        let decided = self.state.decided;
        if let Some((_, cause)) = &wanted
            && cause.is_emergency()
        {
            self.state.lockout_until = Some(now.plus(self.cfg.guards.emergency.lockout));
        }
        // A pin overrides the ladder (but not the lockout or the switch budget).
        let wanted = match (&self.state.pinned, wanted) {
            (Some(p), _) if p.profile != decided && !may_pin => {
                if !explained {
                    step.events
                        .push(Event::Kept(Kept::Pinned { until: p.until }));
                }
                return;
            }
            (Some(p), _) if p.profile != decided => Some((
                p.profile,
                Cause::Override {
                    by: p.by.clone(),
                    until: p.until,
                },
            )),
            (Some(p), Some((to, _))) if to != decided => {
                let until = p.until;
                overrule(step);
                step.events.push(Event::Blocked(Blocked {
                    guard: Guard::Override,
                    from: decided,
                    to,
                    until: Some(until),
                }));
                return;
            }
            (Some(p), _) => {
                if !explained {
                    step.events
                        .push(Event::Kept(Kept::Pinned { until: p.until }));
                }
                return;
            }
            (None, w) => w,
        };
        match wanted {
            Some((to, cause)) if to != decided => {
                overrule(step);
                match self.guard(now, to, &cause) {
                    Err(blocked) => step.events.push(Event::Blocked(blocked)),
                    Ok(()) => {
                        let decision = self.switch(now, to, cause);
                        step.actions.push(Action::ApplyProfile {
                            profile: to,
                            seq: self.state.apply_seq,
                        });
                        step.events.push(Event::Switched(Box::new(decision)));
                    }
                }
            }
            _ => {
                if !step.events.iter().any(Event::is_explanation) {
                    // Only an emergency or a fallback to the profile already decided gets
                    // here without its own explanation.
                    let kept = fallback_kept.unwrap_or(Kept::NoNewSample {
                        last: self.state.last_sample_at.unwrap_or(now),
                    });
                    step.events.push(Event::Kept(kept));
                }
            }
        }
    }

    /// Drops deadlines that have passed, so the persisted state stays small.
    fn expire(&mut self, now: Timestamp, step: &mut Step) {
        let s = &mut self.state;
        if let Some(p) = s.pinned.as_ref().filter(|p| p.until <= now) {
            step.events
                .push(audit(Audit::OverrideExpired { profile: p.profile }));
            s.pinned = None;
        }
        if s.lockout_until.is_some_and(|t| t <= now) {
            s.lockout_until = None;
        }
        if s.relax_frozen_until.is_some_and(|t| t <= now) {
            s.relax_frozen_until = None;
        }
        let g = &self.cfg.guards;
        let keep = g.switch_budget.window.max(g.oscillation.window);
        while s
            .history
            .front()
            .is_some_and(|r| now.saturating_since(r.at) >= keep)
        {
            s.history.pop_front();
        }
    }

    /// Takes in the actuator's report: what is in force, and how applies ended.
    fn take_applies(&mut self, now: Timestamp, obs: &Observation, step: &mut Step) {
        let n = self.cfg.profiles.len();
        let before = self.state.in_force;
        let mut in_force = before;
        for a in obs.applies.iter().filter(|a| a.profile < n) {
            let (ok, rolled_back, reason) = match &a.outcome {
                ApplyOutcome::Applied => (true, false, None),
                ApplyOutcome::Failed { reason } => (false, false, Some(reason.clone())),
                ApplyOutcome::RolledBack { reason } => (false, true, Some(reason.clone())),
            };
            if ok {
                in_force = a.profile;
            }
            step.events.push(Event::Applied(ApplyEvent {
                profile: a.profile,
                ok,
                reason,
                rolled_back,
                in_force: obs.in_force.filter(|&p| p < n).unwrap_or(in_force),
            }));
        }
        if let Some(p) = obs.in_force.filter(|&p| p < n) {
            in_force = p;
        }
        // The collector took the profile after all: its refusals are history.
        if self.state.refused.as_ref().is_some_and(|r| {
            obs.applies
                .iter()
                .any(|a| a.profile == r.profile && a.outcome == ApplyOutcome::Applied)
        }) {
            self.state.refused = None;
        }
        if in_force != before {
            self.state.in_force = in_force;
            self.state.in_force_since = Some(now);
        }
        // Re-plan from reality: an apply of the decided profile that failed leaves the
        // pipeline on what is in force, and the engine must not believe otherwise.
        // Only the failure of the latest apply counts: an older apply of the same profile
        // may fail while a newer one is still in flight.
        let failed_decided = obs.applies.iter().any(|a| {
            a.seq == self.state.apply_seq
                && a.profile == self.state.decided
                && !matches!(a.outcome, ApplyOutcome::Applied)
        });
        if failed_decided {
            // Not again for a while: the ladder still wants it, and deciding it at the
            // next chance would reload the collector into the same refusal.
            let r = &self.cfg.guards.refused;
            let refusals = match &self.state.refused {
                Some(prev) if prev.profile == self.state.decided => prev.refusals + 1,
                _ => 1,
            };
            let factor = 1u32 << (refusals - 1).min(r.max_doublings).min(20);
            self.state.refused = Some(RefusedState {
                profile: self.state.decided,
                until: now.plus(r.backoff.saturating_mul(factor)),
                refusals,
            });
            self.state.decided = self.state.in_force;
            self.state.escalate_since = None;
            self.state.relax_since = None;
        }
    }

    /// Handles commands; returns an emergency cause if one was requested.
    fn take_commands(
        &mut self,
        now: Timestamp,
        obs: &Observation,
        step: &mut Step,
    ) -> Option<Cause> {
        let mut emergency = None;
        for cmd in &obs.commands {
            match cmd {
                Command::Emergency { by, reason } => {
                    step.events.push(audit(Audit::EmergencyRequested {
                        by: by.clone(),
                        reason: reason.clone(),
                    }));
                    emergency = Some(Cause::Requested {
                        by: by.clone(),
                        reason: reason.clone(),
                    });
                }
                Command::Override {
                    profile,
                    ttl,
                    by,
                    reason,
                } if *profile < self.cfg.profiles.len() && !ttl.is_zero() => {
                    let ttl = (*ttl).min(self.cfg.guards.override_max_ttl);
                    let until = now.plus(ttl);
                    self.state.pinned = Some(OverrideState {
                        profile: *profile,
                        until,
                        by: by.clone(),
                    });
                    step.events.push(audit(Audit::OverrideSet {
                        profile: *profile,
                        until,
                        by: by.clone(),
                        reason: reason.clone(),
                    }));
                }
                // The HTTP endpoint validates names against the policy before this; an
                // index outside the ladder or a zero TTL still cannot be pinned.
                Command::Override { by, profile, .. } => {
                    step.events.push(audit(Audit::Refused {
                        by: by.clone(),
                        reason: if *profile < self.cfg.profiles.len() {
                            "an override needs a TTL above zero".to_string()
                        } else {
                            format!("profile {profile} is not on the ladder")
                        },
                    }));
                }
                Command::ClearOverride { by } => {
                    if self.state.pinned.take().is_some() {
                        step.events
                            .push(audit(Audit::OverrideCleared { by: by.clone() }));
                    } else {
                        step.events.push(audit(Audit::Refused {
                            by: by.clone(),
                            reason: "no override to clear".to_string(),
                        }));
                    }
                }
            }
        }
        emergency
    }

    /// Classifies the observation: a new healthy sample `(at, input, output)`, a fresh
    /// one already evaluated (`None`), or why it is unusable.
    fn read(
        &self,
        now: Timestamp,
        obs: &Observation,
    ) -> Result<Option<(Timestamp, f64, f64)>, Hold> {
        let max_age = self.cfg.bad_input.max_sample_age;
        let last = self.state.last_sample_at;
        // The common case first, with no `Hold` built: both samples fresh and healthy
        // (exactly the tests below, which decide every other case).
        let usable = |v: f64| v.is_finite() && (0.0..=MAX_SERIES).contains(&v);
        if let (Sample::Ok { value: vi, at: ti }, Sample::Ok { value: vo, at: to }) =
            (&obs.input, &obs.output)
            && now.saturating_since(*ti) <= max_age
            && usable(*vi)
            && now.saturating_since(*to) <= max_age
            && usable(*vo)
        {
            let at = (*ti).max(*to).min(now);
            return Ok(match last {
                Some(last) if at <= last => None,
                _ => Some((at, *vi, *vo)),
            });
        }
        let one = |signal: Signal, s: &Sample| -> Result<(f64, Timestamp), Hold> {
            let hold = |reason, age| Hold {
                signal,
                reason,
                since: now,
                bad_for: Duration::ZERO,
                age,
            };
            match s {
                Sample::Ok { value, at } => {
                    let age = now.saturating_since(*at);
                    if age > max_age {
                        Err(hold(HoldReason::Stale, Some(age)))
                    } else if !value.is_finite() || *value < 0.0 || *value > MAX_SERIES {
                        Err(hold(HoldReason::Error, None))
                    } else {
                        Ok((*value, *at))
                    }
                }
                Sample::Empty => Err(hold(HoldReason::Empty, None)),
                Sample::Stale { age } => Err(hold(HoldReason::Stale, Some(*age))),
                Sample::Error { .. } => Err(hold(HoldReason::Error, None)),
            }
        };
        let (input, at_in) = one(Signal::Input, &obs.input)?;
        let (output, at_out) = one(Signal::Output, &obs.output)?;
        // A sample stamped after `now` (clock skew between Prometheus and this host) is
        // taken as taken now: trusting it would make every later sample look old news.
        let at = at_in.max(at_out).min(now);
        Ok(match last {
            Some(last) if at <= last => None,
            _ => Some((at, input, output)),
        })
    }

    /// Retention to assume for profile `i`: measured if known, else expected.
    fn retention(&self, i: usize) -> f64 {
        self.state
            .measured_retention
            .iter()
            .find(|(p, _)| *p == i)
            .map_or(self.cfg.profiles[i].retention, |(_, r)| *r)
    }

    /// How long the history must reach back for every window that reads it.
    fn history_keep(&self) -> Duration {
        let pc = &self.cfg.prediction;
        let trend = self
            .cfg
            .anomaly
            .as_ref()
            .map_or(Duration::ZERO, |a| a.trend_window);
        pc.window.max(pc.relax_window).max(trend)
    }

    /// The control law on a healthy new sample at `at`: what the ladder wants before
    /// guards, or the condition that kept the decided profile.
    fn evaluate(
        &mut self,
        at: Timestamp,
        input: f64,
        output: f64,
    ) -> (Evaluation, Result<(usize, Cause), Kept>) {
        let (anomaly_input, anomaly_output) = self.score(at, input, output);
        let max_gap = self.cfg.bad_input.max_sample_age;
        // A gap longer than a sample may be old breaks every streak: what happened in it
        // is unknown, and must not read as a run of identical samples.
        let prev_at = self.state.last_sample_at;
        let gap = prev_at.map(|p| at.saturating_since(p));
        if gap.is_some_and(|g| g > max_gap) {
            self.state.escalate_since = None;
            self.state.relax_since = None;
            self.state.excursion_retention = None;
        }
        self.state.last_sample_at = Some(at);
        let cfg = &self.cfg;
        let cur = self.state.decided;
        let budget = cfg.budget_series;
        // Only samples taken after the profile came into force, and `settle` after it,
        // measure it (a sample delivered with the apply's report may predate it).
        let settled = self
            .state
            .in_force_since
            .is_none_or(|t| at >= t && at.saturating_since(t) >= cfg.settle);
        if settled && input > 0.0 {
            let r = (output / input).clamp(0.0, 1.0);
            let f = self.state.in_force;
            let m = match self
                .state
                .measured_retention
                .iter_mut()
                .find(|(p, _)| *p == f)
            {
                Some((_, m)) => {
                    *m += RETENTION_ALPHA * (r - *m);
                    *m
                }
                None => {
                    self.state.measured_retention.push((f, r));
                    r
                }
            };
            if let Some(c) = self.rets.get_mut(f) {
                *c = m;
            }
        }

        let pc = cfg.prediction;
        self.state.samples.push(at, input, output, self.keep);
        let fc =
            self.state
                .samples
                .forecast(pc.window, pc.horizon, pc.volatility_k, pc.relax_window);

        // The PID integrates over real elapsed sample time, but not over a gap it knows
        // nothing about.
        let dt = gap.map_or(cfg.tick, |g| g.min(max_gap)).as_secs_f64();
        let room = Room {
            can_escalate: cur < cfg.most_reducing(),
            can_relax: cur > 0,
        };
        let terms = self
            .state
            .pid
            .update(&cfg.pid, output / budget, cfg.target_ratio, dt, room);
        let correction = terms.output;
        let pressure_of = |r: f64, demand: f64| demand * r / budget + correction;
        let rets = &self.rets;
        let r_cur = rets[cur];
        let pressure = pressure_of(r_cur, fc.escalate);
        let measured_in_force = self
            .state
            .measured_retention
            .iter()
            .find(|(p, _)| *p == self.state.in_force)
            .map(|(_, r)| *r);
        let eval = Evaluation {
            p: terms.p,
            i: terms.i,
            d: terms.d,
            output: terms.output,
            pressure,
            predicted_input: fc.escalate,
            measured_retention: measured_in_force,
            anomaly_input,
            anomaly_output,
        };

        let h = cfg.hysteresis;
        // Escalate when the latest sample does not fit, or when the forecast says it will
        // not and the rise is real: the trend line without the latest sample's own noise
        // is over too, or the samples lie on a clean line (R² ≥ 0.8, the explosion rule's
        // test; the line lags the onset of a steep rise). A noisy sample near capacity
        // with a steep-looking trend is not a prediction: it cost escalations HPA does not
        // make, relaxed five minutes later.
        let above = pressure > h.escalate_above
            && (pressure_of(r_cur, input) > h.escalate_above
                || fc.r2 >= EXPLOSION_R2
                || pressure_of(r_cur, fc.line) > h.escalate_above);
        // Did the previous sample's excursion persist? Judged on demand against the
        // retention of the time, so an escalation in between does not hide the answer.
        if let Some(r) = self.state.excursion_retention.take() {
            let still = pressure_of(r, input) > h.escalate_above;
            let x = if still { 1.0 } else { 0.0 };
            self.state.persistence += PERSISTENCE_ALPHA * (x - self.state.persistence);
        }
        let mut recurring = false;
        if above && self.state.escalate_since.is_none() {
            self.state.excursion_retention = Some(r_cur);
            recurring = self
                .state
                .last_excursion_at
                .is_some_and(|last| at.saturating_since(last) <= pc.relax_window);
            self.state.last_excursion_at = Some(at);
        }
        let escalate_since = if above && room.can_escalate {
            *self.state.escalate_since.get_or_insert(at)
        } else {
            self.state.escalate_since = None;
            at
        };
        let transient = self.state.persistence < pc.persistence_threshold && !recurring;
        let confirm = if transient {
            pc.transient_confirm.max(h.escalate_for)
        } else {
            h.escalate_for
        };
        // Least reducing profile below the decided one that fits the worst recent demand.
        // Measured retentions can come out of ladder order (a reload slower than
        // `settle`); judging a less-reducing profile as keeping less than the current one
        // would relax inside the hysteresis band, so the ladder order is enforced.
        // Never relax into an explosion that is still going on: while demand rises along
        // a clean line, the less-reducing profile must fit where that line is headed.
        // The line is finished only when a relaxation is on the table (its sums come
        // with the forecast's walk): when no profile fits even without it, it changes
        // nothing.
        let fits = |j: usize, demand: f64| pressure_of(rets[j].max(r_cur), demand) < h.relax_below;
        let headed = if (0..cur).any(|j| fits(j, fc.relax)) {
            self.explosive_demand(&fc)
        } else {
            None
        };
        let relax_demand = fc.relax.max(headed.unwrap_or(0.0));
        let relax_to = (0..cur).find(|&j| fits(j, relax_demand));
        let pending = self.state.decided != self.state.in_force;
        let relax_since = match relax_to {
            Some(_) if !pending => *self.state.relax_since.get_or_insert(at),
            _ => {
                self.state.relax_since = None;
                at
            }
        };

        let held_up = at.saturating_since(escalate_since);
        let wanted = if above && room.can_escalate && held_up >= confirm {
            // The target is the least reducing profile predicted to fit under the relax
            // margin, not merely under the escalation threshold: one that lands inside
            // the dead band is escalated from again by the next small rise, a second
            // switch where one would have done (Kubernetes' HPA also scales to its
            // target, not to its tolerance).
            let to = (cur + 1..cfg.profiles.len())
                .find(|&j| pressure_of(rets[j].min(r_cur), fc.escalate) <= h.relax_below)
                .unwrap_or(cfg.most_reducing());
            Ok((
                to,
                Cause::Pressure {
                    output,
                    pressure,
                    threshold: h.escalate_above,
                    held_for: held_up,
                },
            ))
        } else if above && room.can_escalate {
            Err(Kept::EscalateStreak {
                since: escalate_since,
                need: confirm,
                transient,
            })
        } else if above {
            Err(Kept::AtMostReducing { pressure })
        } else if let Some(to) = relax_to {
            let held = at.saturating_since(relax_since);
            if pending {
                Err(Kept::ApplyPending {
                    profile: cur,
                    since: self.state.last_switch_at.unwrap_or(at),
                })
            } else if held >= h.relax_for {
                Ok((
                    to,
                    Cause::Fits {
                        predicted_output: fc.relax * rets[to],
                        threshold: h.relax_below,
                        held_for: held,
                    },
                ))
            } else {
                Err(Kept::RelaxStreak {
                    to,
                    since: relax_since,
                    need: h.relax_for,
                })
            }
        } else if cur > 0 && fits(cur - 1, fc.escalate) {
            // It would fit today's demand: say what held it back.
            match headed {
                Some(headed_to) if !fits(cur - 1, fc.relax) || headed_to > fc.relax => {
                    if fits(cur - 1, fc.relax) {
                        Err(Kept::ExplosionTrend { headed_to })
                    } else {
                        Err(Kept::RelaxWindow {
                            worst_input: fc.relax,
                            window: pc.relax_window,
                        })
                    }
                }
                _ => Err(Kept::RelaxWindow {
                    worst_input: fc.relax,
                    window: pc.relax_window,
                }),
            }
        } else {
            Err(Kept::InBand {
                pressure,
                escalate_above: h.escalate_above,
                relax_below: h.relax_below,
            })
        };
        (eval, wanted)
    }

    /// Scores the watched signals.
    fn score(&mut self, at: Timestamp, input: f64, output: f64) -> (Option<f64>, Option<f64>) {
        let (Some(cfg), Some(st)) = (&self.cfg.anomaly, &mut self.state.anomaly) else {
            return (None, None);
        };
        let s_in = st.input.as_mut().map(|d| d.update(at, input));
        let s_out = st.output.as_mut().map(|d| d.update(at, output));
        for (signal, s) in [(Signal::Input, s_in), (Signal::Output, s_out)] {
            if let Some(score) = s.filter(|&s| s >= cfg.threshold) {
                st.last_flag = Some(Flag { at, signal, score });
            }
        }
        (s_in, s_out)
    }

    /// The explosion rule: a watched signal was flagged anomalous within
    /// `EXPLOSION_ONSET_MEMORY` (or the trend window, if longer), the output's recent
    /// history is a clean upward line (R² ≥ `EXPLOSION_R2`, at least three samples), and
    /// that line crosses the budget within the horizon: the rise is headed over the
    /// capacity of the profile in force (output is measured under it, so output over
    /// budget is input over `budget / retention in force`). A rise that stops below that
    /// capacity never meets the last condition however steep it is, as long as the horizon
    /// is short (the default, 1 min, is about the time an escalation needs to be in force,
    /// plus margin); a longer horizon projects a short steep rise far past where it stops.
    /// Each condition alone is common and harmless (a dip or a lone spike is anomalous, a
    /// daily peak trends up); together they are the unbounded-label case that must not
    /// wait for the ladder's normal pace.
    fn explosion(&self, at: Timestamp, output: f64) -> Option<Cause> {
        let cfg = self.cfg.anomaly.as_ref().filter(|a| a.request_emergency)?;
        let st = self.state.anomaly.as_ref()?;
        if self.state.decided == self.cfg.most_reducing() {
            return None;
        }
        let flag = st
            .last_flag
            .filter(|f| at.saturating_since(f.at) < EXPLOSION_ONSET_MEMORY.max(cfg.trend_window))?;
        let fit = self
            .state
            .samples
            .trend_fit(Series::Output, cfg.trend_window, 3)?;
        let predicted = fit.fitted_latest + fit.slope_per_sec * cfg.horizon.as_secs_f64();
        if !(fit.slope_per_sec > 0.0
            && fit.r2 >= EXPLOSION_R2
            && predicted > self.cfg.budget_series)
        {
            return None;
        }
        Some(Cause::Anomaly {
            signal: flag.signal,
            score: flag.score,
            output,
            predicted_output: predicted,
            horizon: cfg.horizon,
        })
    }

    /// Demand projected over the anomaly horizon while it rises along a clean line over
    /// the whole relax window (R² ≥ `EXPLOSION_R2`): an explosion still going on. Noise
    /// never fits a line that well, and a daily rise is so slow that its projection adds
    /// little.
    fn explosive_demand(&self, fc: &Forecast) -> Option<f64> {
        let cfg = self.cfg.anomaly.as_ref()?;
        let fit = fc.relax_trend(&self.state.samples)?;
        (fit.slope_per_sec > 0.0 && fit.r2 >= EXPLOSION_R2)
            .then_some(fit.fitted_latest + fit.slope_per_sec * cfg.horizon.as_secs_f64())
    }

    /// Checks a wanted switch against every guard; the first that refuses is named.
    fn guard(&self, now: Timestamp, to: usize, cause: &Cause) -> Result<(), Blocked> {
        let s = &self.state;
        let g = &self.cfg.guards;
        let from = s.decided;
        let escalation = to > from;
        let overriding = matches!(cause, Cause::Override { .. });
        let block = |guard, until| {
            Err(Blocked {
                guard,
                from,
                to,
                until,
            })
        };
        if !escalation {
            if let Some(t) = s.lockout_until.filter(|&t| t > now) {
                return block(Guard::Lockout, Some(t));
            }
            if !overriding {
                if let Some(t) = s.relax_frozen_until.filter(|&t| t > now) {
                    return block(Guard::Oscillation, Some(t));
                }
                // Going back to where the last switch came from, too soon, is a flap.
                if let Some(last) = s.history.back()
                    && last.from == to
                    && last.to == from
                    && now.saturating_since(last.at) < g.oscillation.window
                {
                    return block(Guard::Oscillation, Some(last.at.plus(g.oscillation.window)));
                }
            }
        }
        // A pin is an SRE's explicit ask: it may try a refused profile again.
        if !overriding
            && let Some(r) = s
                .refused
                .as_ref()
                .filter(|r| r.profile == to && r.until > now)
        {
            return block(Guard::Refused, Some(r.until));
        }
        if !overriding && let Some(last) = s.last_switch_at {
            // After an emergency the lockout guards relaxing instead of the relax dwell.
            let (dwell, guard) = if escalation {
                (g.min_dwell_escalate, Guard::DwellEscalate)
            } else if s.last_switch_emergency {
                (Duration::ZERO, Guard::DwellRelax)
            } else {
                (g.min_dwell_relax, Guard::DwellRelax)
            };
            if now.saturating_since(last) < dwell {
                return block(guard, Some(last.plus(dwell)));
            }
        }
        let window = g.switch_budget.window;
        let mut recent = s
            .history
            .iter()
            .filter(|r| now.saturating_since(r.at) < window);
        let oldest = recent.next();
        let count = oldest.map_or(0, |_| 1 + recent.count());
        if count >= g.switch_budget.max_switches as usize {
            return block(Guard::SwitchBudget, oldest.map(|r| r.at.plus(window)));
        }
        Ok(())
    }

    /// Applies a switch to the state and describes it.
    fn switch(&mut self, now: Timestamp, to: usize, cause: Cause) -> Decision {
        let from = self.state.decided;
        let g = &self.cfg.guards;
        // An escalation straight back to the profile just left is a flap the guard could
        // not prevent (protection comes first); freeze relaxing so it does not repeat.
        if let Some(last) = self.state.history.back()
            && last.from == to
            && last.to == from
            && now.saturating_since(last.at) < g.oscillation.window
        {
            // Flaps remembered: those whose cooldown would still run at the current level.
            let remembered = self.state.flap_memory_until.is_some_and(|t| now < t);
            self.state.flaps = if remembered {
                (self.state.flaps + 1).min(g.oscillation.max_doublings)
            } else {
                0
            };
            let cooldown = g.oscillation.cooldown * 2u32.pow(self.state.flaps);
            self.state.relax_frozen_until = Some(now.plus(cooldown));
            // Forget the streak after twice the cooldown passes without a flap.
            self.state.flap_memory_until = Some(now.plus(cooldown * 2));
        }
        self.state
            .history
            .push_back(SwitchRecord { at: now, from, to });
        self.state.decided = to;
        self.state.apply_seq += 1;
        self.state.last_switch_at = Some(now);
        self.state.last_switch_emergency = cause.is_emergency();
        self.state.escalate_since = None;
        self.state.relax_since = None;
        self.state.pid.rebase();
        Decision {
            pipeline: self.cfg.pipeline.clone(),
            from: self.cfg.profiles[from].name.clone(),
            to: self.cfg.profiles[to].name.clone(),
            to_index: to,
            escalation: to > from,
            budget: self.cfg.budget_series,
            cause,
        }
    }
}

/// An audit event (boxed: commands are rare, steps are many).
fn audit(a: Audit) -> Event {
    Event::Audit(Box::new(a))
}

#[cfg(test)]
mod tests;
