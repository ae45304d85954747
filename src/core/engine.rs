//! The engine: one per pipeline, `step(now, &Observation) -> Step`, level-triggered.
//!
//! Each healthy tick the engine measures the retention of the profile in force, forecasts
//! demand (trend + volatility margin), adds the PID's correction, and so computes the
//! *pressure* every profile would be under. The ladder wants to escalate when the current
//! profile's pressure is above `escalate_above`, and to relax when a less-reducing profile's
//! pressure (on the worst recent demand) is below `relax_below`. Between the two is the
//! hysteresis band, where nothing moves. Every wanted switch then passes the guards
//! (dwell, switch budget, oscillation, lockout, override); a refused switch is an event
//! with the guard's name. Bad input holds, never relaxes, and may fall back to a more
//! protective profile after K ticks.

use super::anomaly::Detector;
use super::config::{AnomalyConfig, EngineConfig};
use super::event::{
    Action, Blocked, Cause, Decision, Evaluation, Event, Guard, Hold, HoldReason, Step,
};
use super::observation::{Command, Observation, Sample};
use super::pid::{PidCorrection, Room};
use super::predict::DemandHistory;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A switch that took place, kept for the switch budget and flap detection.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchRecord {
    /// When it was decided.
    pub at: Timestamp,
    /// Profile left.
    pub from: usize,
    /// Profile entered.
    pub to: usize,
}

/// A manual pin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideState {
    /// Pinned profile.
    pub profile: usize,
    /// When the pin lapses.
    pub until: Timestamp,
    /// Who pinned it.
    pub by: String,
}

/// Anomaly detectors of one pipeline, with the output history for the trend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyState {
    /// Detector on the input signal, if watched.
    pub input: Option<Detector>,
    /// Detector on the output signal, if watched.
    pub output: Option<Detector>,
    /// Recent output, for the linear trend.
    pub output_history: DemandHistory,
    /// The last time a watched signal scored at or above the threshold: healthy ticks
    /// since, which signal, and its score (for the sentence).
    pub last_flag: Option<Flag>,
}

/// A watched signal scoring at or above the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Healthy ticks since it happened.
    pub ticks_ago: u32,
    /// True for the output signal, false for the input.
    pub output: bool,
    /// The score.
    pub score: f64,
}

impl AnomalyState {
    fn new(cfg: &AnomalyConfig) -> Self {
        AnomalyState {
            input: cfg.watch_input.then(|| Detector::new(cfg.detector)),
            output: cfg.watch_output.then(|| Detector::new(cfg.detector)),
            output_history: DemandHistory::default(),
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

/// Everything the engine remembers between steps. Serialisable so the daemon can persist
/// it; `Engine::restore` with this state continues with exactly the same decisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Profile in force (index into the ladder).
    pub current: usize,
    /// When the last switch was decided.
    pub last_switch_at: Option<Timestamp>,
    /// Healthy ticks since the last switch (retention is measured only once settled).
    pub ticks_since_switch: u32,
    /// Recent switches, pruned to the longest guard window.
    pub history: VecDeque<SwitchRecord>,
    /// No relaxation before this time (emergency lockout).
    pub lockout_until: Option<Timestamp>,
    /// No relaxation before this time (after a flap).
    pub relax_frozen_until: Option<Timestamp>,
    /// Consecutive flaps remembered (the cooldown's doubling exponent).
    pub flaps: u32,
    /// Until when the flap streak is remembered.
    pub flap_memory_until: Option<Timestamp>,
    /// Manual override, if any.
    pub pinned: Option<OverrideState>,
    /// The PID correction, integral included.
    pub pid: PidCorrection,
    /// When the engine last updated the PID (for the real tick length).
    pub last_eval_at: Option<Timestamp>,
    /// Consecutive bad ticks.
    pub bad_ticks: u32,
    /// Consecutive ticks the escalate condition held.
    pub escalate_streak: u32,
    /// Consecutive ticks the relax condition held.
    pub relax_streak: u32,
    /// Recent demand.
    pub demand: DemandHistory,
    /// Learned share of excursions still present one tick after they started (EWMA).
    pub persistence: f64,
    /// Retention in force when an excursion started last tick, to judge whether it
    /// persisted whatever was decided meanwhile.
    pub excursion_retention: Option<f64>,
    /// Tick count at the start of the previous excursion; recurring excursions are not
    /// transient, whatever each one's length.
    pub last_excursion_tick: Option<u64>,
    /// Healthy ticks seen so far (the clock for `last_excursion_tick`).
    pub healthy_ticks: u64,
    /// Retention measured per profile (EWMA of output/input while settled in it).
    pub measured_retention: Vec<Option<f64>>,
    /// Anomaly detectors, when the policy watches signals.
    pub anomaly: Option<AnomalyState>,
}

/// One pipeline's controller.
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: EngineConfig,
    state: EngineState,
}

// Smoothing of the measured retention: recent enough to notice a collector change within
// a few ticks, smooth enough that one odd scrape does not move it much.
const RETENTION_ALPHA: f64 = 0.2;
// No pipeline has this many series; a larger value is a broken exporter or query, and
// letting it in would overflow the control arithmetic.
const MAX_SERIES: f64 = 1e15;
// How straight the output's recent rise must be for the explosion rule: a least-squares
// line explaining 80% of the variance is a ramp, not noise or a lone spike.
const EXPLOSION_R2: f64 = 0.8;
// How much the output must have grown along that line within the trend window: an
// explosion multiplies series within minutes, while noise that happens to line up for a
// few ticks, or a daily peak, moves a few percent. Without this, extrapolating a short
// noisy run over a long horizon cries wolf a few times a year.
const EXPLOSION_MIN_GROWTH: f64 = 0.25;
// Memory of the excursion-persistence estimate: about the last five excursions.
const PERSISTENCE_ALPHA: f64 = 0.2;

impl Engine {
    /// A fresh engine at the configured initial profile.
    pub fn new(cfg: EngineConfig) -> Self {
        let current = cfg.initial_profile.min(cfg.most_reducing());
        let state = EngineState {
            current,
            last_switch_at: None,
            ticks_since_switch: 0,
            history: VecDeque::new(),
            lockout_until: None,
            relax_frozen_until: None,
            flaps: 0,
            flap_memory_until: None,
            pinned: None,
            pid: PidCorrection::new(),
            last_eval_at: None,
            bad_ticks: 0,
            escalate_streak: 0,
            relax_streak: 0,
            demand: DemandHistory::default(),
            persistence: 1.0,
            excursion_retention: None,
            last_excursion_tick: None,
            healthy_ticks: 0,
            measured_retention: vec![None; cfg.profiles.len()],
            anomaly: cfg.anomaly.as_ref().map(AnomalyState::new),
        };
        Engine { cfg, state }
    }

    /// Continues from a persisted state. A state from a different ladder is clamped into
    /// this one rather than rejected: the daemon must come up.
    pub fn restore(cfg: EngineConfig, mut state: EngineState) -> Self {
        state.current = state.current.min(cfg.most_reducing());
        state.measured_retention.resize(cfg.profiles.len(), None);
        // A policy change may start or stop watching signals; keep what still applies.
        state.anomaly = match (&cfg.anomaly, state.anomaly.take()) {
            (None, _) => None,
            (Some(a), Some(old)) if old.matches(a) => Some(old),
            (Some(a), _) => Some(AnomalyState::new(a)),
        };
        if let Some(p) = &state.pinned
            && p.profile > cfg.most_reducing()
        {
            state.pinned = None;
        }
        Engine { cfg, state }
    }

    /// The state to persist.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Profile in force (index).
    pub fn current(&self) -> usize {
        self.state.current
    }

    /// Decide for this tick. Never fails: bad input becomes a `Held` event.
    pub fn step(&mut self, now: Timestamp, obs: &Observation) -> Step {
        let mut step = Step {
            actions: Default::default(),
            events: Default::default(),
            next_wakeup: now.plus(self.cfg.tick),
        };
        self.expire(now);
        let mut emergency: Option<Cause> = None;
        for cmd in &obs.commands {
            match cmd {
                Command::Emergency { reason } => {
                    emergency = Some(Cause::Requested {
                        reason: reason.clone(),
                    });
                }
                Command::Override { profile, ttl, by } if *profile < self.cfg.profiles.len() => {
                    let ttl = (*ttl).min(self.cfg.guards.override_max_ttl);
                    self.state.pinned = Some(OverrideState {
                        profile: *profile,
                        until: now.plus(ttl),
                        by: by.clone(),
                    });
                }
                // An index outside the ladder cannot be pinned; the caller (the HTTP
                // override endpoint) validates names against the policy before this.
                Command::Override { .. } => {}
                Command::ClearOverride => self.state.pinned = None,
            }
        }

        let wanted = match self.read(now, obs) {
            Err(hold) => {
                self.state.bad_ticks += 1;
                let hold = Hold {
                    bad_ticks: self.state.bad_ticks,
                    ..hold
                };
                step.events.push(Event::Held(hold));
                let fallback = self
                    .cfg
                    .bad_input
                    .fallback_profile
                    .filter(|&f| f > self.state.current)
                    .filter(|_| self.state.bad_ticks >= self.cfg.bad_input.fallback_after_ticks);
                emergency
                    .map(|c| (self.cfg.most_reducing(), c))
                    .or(fallback.map(|f| {
                        (
                            f,
                            Cause::Fallback {
                                bad_ticks: self.state.bad_ticks,
                            },
                        )
                    }))
            }
            Ok((input, output)) => {
                self.state.bad_ticks = 0;
                let (eval, wanted) = self.evaluate(now, input, output);
                step.events.push(Event::Evaluated(eval));
                let hard = self.cfg.guards.emergency.hard_ratio;
                if emergency.is_none() && output > hard * self.cfg.budget_series {
                    emergency = Some(Cause::HardLimit {
                        output,
                        ratio: hard,
                    });
                }
                if emergency.is_none() {
                    emergency = self.explosion(output);
                }
                match emergency {
                    Some(c) => Some((self.cfg.most_reducing(), c)),
                    None => wanted,
                }
            }
        };
        let is_emergency = matches!(
            wanted,
            Some((
                _,
                Cause::HardLimit { .. } | Cause::Requested { .. } | Cause::Anomaly { .. }
            ))
        );
        if is_emergency {
            self.state.lockout_until = Some(now.plus(self.cfg.guards.emergency.lockout));
        }
        // A pin overrides the ladder (but not the lockout or the switch budget).
        let wanted = match (&self.state.pinned, wanted) {
            (Some(p), _) if p.profile != self.state.current => Some((
                p.profile,
                Cause::Override {
                    by: p.by.clone(),
                    until: p.until,
                },
            )),
            (Some(_), Some((to, _))) if to != self.state.current => {
                step.events.push(Event::Blocked(Blocked {
                    guard: Guard::Override,
                    from: self.state.current,
                    to,
                    until: self.state.pinned.as_ref().map(|p| p.until),
                }));
                None
            }
            (_, w) => w,
        };
        if let Some((to, cause)) = wanted
            && to != self.state.current
        {
            match self.guard(now, to, &cause) {
                Err(blocked) => step.events.push(Event::Blocked(blocked)),
                Ok(()) => {
                    let decision = self.switch(now, to, cause);
                    step.actions.push(Action::ApplyProfile { profile: to });
                    step.events.push(Event::Switched(decision));
                }
            }
        }
        if let Some(p) = &self.state.pinned
            && p.until > now
        {
            step.next_wakeup = step.next_wakeup.min(p.until);
        }
        step
    }

    /// Drops deadlines that have passed, so the persisted state stays small.
    fn expire(&mut self, now: Timestamp) {
        let s = &mut self.state;
        if s.pinned.as_ref().is_some_and(|p| p.until <= now) {
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

    /// Classifies the observation: both signals usable, or why not.
    fn read(&self, now: Timestamp, obs: &Observation) -> Result<(f64, f64), Hold> {
        let max_age = self.cfg.bad_input.max_sample_age;
        let one = |signal: &'static str, s: &Sample| -> Result<f64, Hold> {
            let hold = |reason, age| Hold {
                signal,
                reason,
                bad_ticks: 0,
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
                        Ok(*value)
                    }
                }
                Sample::Empty => Err(hold(HoldReason::Empty, None)),
                Sample::Stale { age } => Err(hold(HoldReason::Stale, Some(*age))),
                Sample::Error { .. } => Err(hold(HoldReason::Error, None)),
            }
        };
        Ok((one("input", &obs.input)?, one("output", &obs.output)?))
    }

    /// Retention to assume for profile `i`: measured if known, else expected.
    fn retention(&self, i: usize) -> f64 {
        self.state.measured_retention[i].unwrap_or(self.cfg.profiles[i].retention)
    }

    /// The control law on a healthy tick: what the ladder wants, before guards.
    fn evaluate(
        &mut self,
        now: Timestamp,
        input: f64,
        output: f64,
    ) -> (Evaluation, Option<(usize, Cause)>) {
        let (anomaly_input, anomaly_output) = self.score(now, input, output);
        let cfg = &self.cfg;
        let cur = self.state.current;
        let budget = cfg.budget_series;
        self.state.ticks_since_switch = self.state.ticks_since_switch.saturating_add(1);
        if self.state.ticks_since_switch > cfg.settle_ticks && input > 0.0 {
            let r = (output / input).clamp(0.0, 1.0);
            let m = &mut self.state.measured_retention[cur];
            *m = Some(m.map_or(r, |old| old + RETENTION_ALPHA * (r - old)));
        }

        let pc = &cfg.prediction;
        let trend = cfg.anomaly.as_ref().map_or(0, |a| a.trend_window_ticks);
        let cap = pc.window_ticks.max(pc.relax_window_ticks).max(trend) as usize;
        self.state.demand.push(input, cap);
        let fc = self.state.demand.forecast(
            pc.window_ticks as usize,
            pc.horizon_ticks,
            pc.volatility_k,
            pc.relax_window_ticks as usize,
        );

        let dt = self.state.last_eval_at.map_or(cfg.tick.as_secs_f64(), |t| {
            now.saturating_since(t).as_secs_f64()
        });
        self.state.last_eval_at = Some(now);
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
        let pressure = pressure_of(self.retention(cur), fc.escalate);
        let eval = Evaluation {
            p: terms.p,
            i: terms.i,
            d: terms.d,
            output: terms.output,
            pressure,
            predicted_input: fc.escalate,
            measured_retention: self.state.measured_retention[cur],
            anomaly_input,
            anomaly_output,
        };

        let h = cfg.hysteresis;
        let above = pressure > h.escalate_above;
        // Did last tick's excursion persist? Judged on demand against the retention of
        // the time, so an escalation in between does not hide the answer.
        if let Some(r) = self.state.excursion_retention.take() {
            let still = pressure_of(r, input) > h.escalate_above;
            let x = if still { 1.0 } else { 0.0 };
            self.state.persistence += PERSISTENCE_ALPHA * (x - self.state.persistence);
        }
        self.state.healthy_ticks += 1;
        let mut recurring = false;
        if above && self.state.escalate_streak == 0 {
            self.state.excursion_retention = Some(self.retention(cur));
            let t = self.state.healthy_ticks;
            recurring = self
                .state
                .last_excursion_tick
                .is_some_and(|last| t - last <= u64::from(pc.relax_window_ticks));
            self.state.last_excursion_tick = Some(t);
        }
        self.state.escalate_streak = if above && room.can_escalate {
            self.state.escalate_streak + 1
        } else {
            0
        };
        let confirm = if self.state.persistence < pc.persistence_threshold && !recurring {
            pc.transient_confirm_ticks.max(h.escalate_ticks)
        } else {
            h.escalate_ticks
        };
        // Least reducing profile below the current one that fits the worst recent demand.
        // Measured retentions can come out of ladder order (a reload slower than
        // `settle_ticks`); judging a less-reducing profile as keeping less than the current
        // one would relax inside the hysteresis band, so the ladder order is enforced.
        let r_cur = self.retention(cur);
        // Never relax into an explosion that is still going on: while demand rises along a
        // clean line, the less-reducing profile must fit where that line is headed.
        let relax_demand = fc.relax.max(self.explosive_demand().unwrap_or(0.0));
        let relax_to = (0..cur)
            .find(|&j| pressure_of(self.retention(j).max(r_cur), relax_demand) < h.relax_below);
        self.state.relax_streak = if relax_to.is_some() {
            self.state.relax_streak + 1
        } else {
            0
        };

        let wanted = if self.state.escalate_streak >= confirm.max(1) {
            let to = (cur + 1..cfg.profiles.len())
                .find(|&j| {
                    pressure_of(self.retention(j).min(r_cur), fc.escalate) <= h.escalate_above
                })
                .unwrap_or(cfg.most_reducing());
            let cause = Cause::Pressure {
                output,
                pressure,
                threshold: h.escalate_above,
                ticks: self.state.escalate_streak,
            };
            Some((to, cause))
        } else if let Some(to) =
            relax_to.filter(|_| self.state.relax_streak >= h.relax_ticks.max(1))
        {
            let predicted_output = fc.relax * self.retention(to);
            let cause = Cause::Fits {
                predicted_output,
                threshold: h.relax_below,
                ticks: self.state.relax_streak,
            };
            Some((to, cause))
        } else {
            None
        };
        (eval, wanted)
    }

    /// Scores the watched signals and records output for the trend.
    fn score(&mut self, now: Timestamp, input: f64, output: f64) -> (Option<f64>, Option<f64>) {
        let (Some(cfg), Some(st)) = (&self.cfg.anomaly, &mut self.state.anomaly) else {
            return (None, None);
        };
        st.output_history
            .push(output, cfg.trend_window_ticks.max(2) as usize);
        let s_in = st.input.as_mut().map(|d| d.update(now, input));
        let s_out = st.output.as_mut().map(|d| d.update(now, output));
        if let Some(f) = &mut st.last_flag {
            f.ticks_ago = f.ticks_ago.saturating_add(1);
        }
        for (output, s) in [(false, s_in), (true, s_out)] {
            if let Some(score) = s.filter(|&s| s >= cfg.threshold) {
                st.last_flag = Some(Flag {
                    ticks_ago: 0,
                    output,
                    score,
                });
            }
        }
        (s_in, s_out)
    }

    /// The explosion rule: a watched signal was flagged anomalous within the trend window,
    /// the output's recent history is a clean upward line (R² ≥ `EXPLOSION_R2`) that grew
    /// by at least `EXPLOSION_MIN_GROWTH` within the window, and that line crosses the
    /// budget within the horizon. Each alone is common and harmless (a
    /// dip or a lone spike is anomalous, a daily peak trends up); together they are the
    /// unbounded-label case that must not wait for the ladder's normal pace.
    fn explosion(&self, output: f64) -> Option<Cause> {
        let cfg = self.cfg.anomaly.as_ref().filter(|a| a.request_emergency)?;
        let st = self.state.anomaly.as_ref()?;
        if self.state.current == self.cfg.most_reducing() {
            return None;
        }
        let w = cfg.trend_window_ticks.max(3);
        let flag = st.last_flag.filter(|f| f.ticks_ago < w)?;
        let fit = st.output_history.trend_fit(w as usize)?;
        let predicted = fit.fitted_latest + fit.slope * f64::from(cfg.horizon_ticks);
        let budget = self.cfg.budget_series;
        let start = fit.fitted_latest - fit.slope * f64::from(w - 1);
        let growth = fit.slope * f64::from(w - 1) / start.max(1.0);
        if !(fit.slope > 0.0
            && fit.r2 >= EXPLOSION_R2
            && growth >= EXPLOSION_MIN_GROWTH
            && predicted > budget)
        {
            return None;
        }
        Some(Cause::Anomaly {
            signal: if flag.output { "output" } else { "input" }.to_string(),
            score: flag.score,
            output,
            predicted_output: predicted,
            horizon: self.cfg.tick * cfg.horizon_ticks,
        })
    }

    /// Demand projected over the anomaly horizon while it rises along a clean line over
    /// the whole relax window (R² ≥ `EXPLOSION_R2`): an explosion still going on. Noise
    /// never fits a line that well, and a daily rise is so slow that its projection adds
    /// little.
    fn explosive_demand(&self) -> Option<f64> {
        let cfg = self.cfg.anomaly.as_ref()?;
        let w = self.cfg.prediction.relax_window_ticks.max(3) as usize;
        let fit = self.state.demand.trend_fit(w)?;
        (fit.slope > 0.0 && fit.r2 >= EXPLOSION_R2)
            .then(|| fit.fitted_latest + fit.slope * f64::from(cfg.horizon_ticks))
    }

    /// Checks a wanted switch against every guard; the first that refuses is named.
    fn guard(&self, now: Timestamp, to: usize, cause: &Cause) -> Result<(), Blocked> {
        let s = &self.state;
        let g = &self.cfg.guards;
        let from = s.current;
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
            if let Some(t) = s.lockout_until {
                return block(Guard::Lockout, Some(t));
            }
            if !overriding {
                if let Some(t) = s.relax_frozen_until {
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
        if !overriding && let Some(last) = s.last_switch_at {
            let (dwell, guard) = if escalation {
                (g.min_dwell_escalate, Guard::DwellEscalate)
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
        let from = self.state.current;
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
        self.state.current = to;
        self.state.last_switch_at = Some(now);
        self.state.ticks_since_switch = 0;
        self.state.escalate_streak = 0;
        self.state.relax_streak = 0;
        let y =
            self.state.demand.latest().unwrap_or(0.0) * self.retention(to) / self.cfg.budget_series;
        self.state.pid.rebase(y);
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
