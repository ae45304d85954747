//! What a step returns: actions for the actuator, events for metrics/logs/journal, and the
//! sentences an SRE reads at 3 a.m.
//!
//! Every step yields exactly one *explanation* (`Switched`, `Blocked`, `Held` or `Kept`),
//! so an SRE can always answer "why is this pipeline on this profile right now", plus, on a
//! healthy sample, the numbers behind it (`Evaluated`), and the audit trail of commands and
//! applies. The simulator's tick file and the daemon's journal, metrics and logs all derive
//! from these same events.

use super::time::{Timestamp, fmt_duration};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

/// Result of one `Engine::step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the actuator must do (at most one switch per step).
    pub actions: SmallVec<[Action; 1]>,
    /// What happened, for metrics, logs, the journal and the simulator's tick file.
    pub events: SmallVec<[Event; 2]>,
    /// When the engine next has something to do: the next expected sample (the latest
    /// sample time plus the policy's tick, never before `now`), or an override's expiry if
    /// that comes first. Guard deadlines need no wake-up: the ladder moves on samples.
    pub next_wakeup: Timestamp,
}

impl Step {
    /// The step's explanation (every step has exactly one).
    pub fn explanation(&self) -> Option<&Event> {
        self.events.iter().find(|e| e.is_explanation())
    }

    /// The switch this step decided, if any.
    pub fn switched(&self) -> Option<&Decision> {
        self.events.iter().find_map(|e| match e {
            Event::Switched(d) => Some(&**d),
            _ => None,
        })
    }
}

/// A command to the actuator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Render and apply this profile (index into the ladder), then report the outcome.
    ApplyProfile {
        /// Index of the profile to apply.
        profile: usize,
        /// The apply's number, echoed in its `ApplyReport`, so the engine tells the end of
        /// this apply from that of an older one of the same profile.
        seq: u64,
    },
}

/// Something the engine decided, refused, held or noted, with the data for a sentence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Every healthy new sample: the control terms, for `phoenix_pid_*` and pressure.
    Evaluated(Evaluation),
    /// A profile switch (explanation). Boxed, like `Audit`: both are rare, and the
    /// common events stay small to move (a step returns its events by value).
    Switched(Box<Decision>),
    /// A switch the ladder wanted but a guard refused (explanation).
    Blocked(Blocked),
    /// Bad input: the engine held the current profile (explanation).
    Held(Hold),
    /// No switch was wanted, and the condition that kept it (explanation).
    Kept(Kept),
    /// A command was handled (override set, cleared, refused; emergency requested).
    Audit(Box<Audit>),
    /// The actuator reported the end of an apply.
    Applied(ApplyEvent),
}

impl Event {
    /// The sentence an SRE reads for this event (log line, status page, decision log),
    /// with profiles named from `profiles`; `None` for `Evaluated`, which is numbers.
    pub fn sentence(&self, profiles: &[super::config::ProfileSpec]) -> Option<String> {
        let name = |i: usize| profiles.get(i).map_or("?", |p| p.name.as_str()).to_string();
        Some(match self {
            Event::Evaluated(_) => return None,
            Event::Switched(d) => d.to_string(),
            Event::Blocked(b) => format!("{}→{} {b}", name(b.from), name(b.to)),
            Event::Held(h) => h.to_string(),
            Event::Kept(k) => match k {
                Kept::RelaxStreak { to, since, need } => format!(
                    "kept: {} fits since {since}, relaxing once it fits for {}",
                    name(*to),
                    fmt_duration(*need)
                ),
                Kept::ApplyPending { profile, since } => format!(
                    "kept: waiting for {}, decided at {since}, to be in force",
                    name(*profile)
                ),
                other => other.to_string(),
            },
            Event::Audit(a) => match &**a {
                Audit::OverrideSet {
                    profile,
                    until,
                    by,
                    reason,
                } => format!(
                    "override set by {by}: {} until {until} ({reason})",
                    name(*profile)
                ),
                Audit::OverrideCleared { by } => format!("override cleared by {by}"),
                Audit::OverrideExpired { profile } => {
                    format!("override of {} expired", name(*profile))
                }
                Audit::Refused { by, reason } => format!("command from {by} refused: {reason}"),
                Audit::EmergencyRequested { by, reason } => {
                    format!("emergency requested by {by}: {reason}")
                }
            },
            Event::Applied(a) => match (&a.reason, a.ok) {
                (_, true) => format!("{} is in force", name(a.profile)),
                (Some(r), false) if a.rolled_back => format!(
                    "apply of {} rolled back, {} in force: {r}",
                    name(a.profile),
                    name(a.in_force)
                ),
                (r, false) => format!(
                    "apply of {} failed, {} in force: {}",
                    name(a.profile),
                    name(a.in_force),
                    r.as_deref().unwrap_or("no reason given")
                ),
            },
        })
    }

    /// True for the four kinds that explain a step.
    pub fn is_explanation(&self) -> bool {
        matches!(
            self,
            Event::Switched(_) | Event::Blocked(_) | Event::Held(_) | Event::Kept(_)
        )
    }
}

/// The numbers behind one sample's decision.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// PID proportional term (budget fractions).
    pub p: f64,
    /// PID integral term.
    pub i: f64,
    /// PID derivative term.
    pub d: f64,
    /// PID output (the correction added to pressure).
    pub output: f64,
    /// Pressure on the decided profile: predicted output / budget + PID correction.
    pub pressure: f64,
    /// Predicted input (trend + volatility margin) used for the decision.
    pub predicted_input: f64,
    /// Retention measured while the profile in force was active, if known yet.
    pub measured_retention: Option<f64>,
    /// Anomaly score of the input signal, if watched.
    pub anomaly_input: Option<f64>,
    /// Anomaly score of the output signal, if watched.
    pub anomaly_output: Option<f64>,
}

/// Why a switch happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Pressure above the escalate threshold for long enough.
    Pressure {
        /// Observed output series.
        output: f64,
        /// Pressure that crossed the threshold.
        pressure: f64,
        /// Threshold (fraction of budget).
        threshold: f64,
        /// How long the condition had held (sample time since it first held).
        held_for: Duration,
    },
    /// A less-reducing profile fits with margin.
    Fits {
        /// Predicted output on the target profile.
        predicted_output: f64,
        /// Threshold (fraction of budget).
        threshold: f64,
        /// How long it had fitted.
        held_for: Duration,
    },
    /// Output above the hard ratio.
    HardLimit {
        /// Observed output.
        output: f64,
        /// Hard ratio of budget.
        ratio: f64,
    },
    /// The anomaly detector saw an explosion heading over the budget.
    Anomaly {
        /// Signal that scored (`input` or `output`).
        signal: Signal,
        /// Its score.
        score: f64,
        /// Observed output.
        output: f64,
        /// Output the trend predicts at the horizon.
        predicted_output: f64,
        /// How far ahead the trend was projected.
        horizon: Duration,
    },
    /// An external emergency request.
    Requested {
        /// Who asked.
        by: String,
        /// The requester's reason.
        reason: String,
    },
    /// Manual override.
    Override {
        /// Who pinned it.
        by: String,
        /// Until when.
        until: Timestamp,
    },
    /// Input bad for too long; moved to the fallback profile.
    Fallback {
        /// How long the input had been bad.
        bad_for: Duration,
    },
}

impl Cause {
    /// True for the causes that jump to the most reducing profile and start the lockout.
    pub fn is_emergency(&self) -> bool {
        matches!(
            self,
            Cause::HardLimit { .. } | Cause::Requested { .. } | Cause::Anomaly { .. }
        )
    }
}

/// A watched signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Series entering the pipeline.
    Input,
    /// Series leaving it.
    Output,
}

impl Signal {
    /// Label for metrics and sentences.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Input => "input",
            Signal::Output => "output",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A profile switch, renderable as a sentence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Pipeline name.
    pub pipeline: String,
    /// Profile left (name).
    pub from: String,
    /// Profile entered (name).
    pub to: String,
    /// Index of the profile entered.
    pub to_index: usize,
    /// True if `to` reduces more than `from`.
    pub escalation: bool,
    /// Budget, for the sentence.
    pub budget: f64,
    /// Why.
    pub cause: Cause,
}

impl Decision {
    /// Short machine label for the cause (metrics `reason` label: a fixed small set).
    pub fn reason_label(&self) -> &'static str {
        match self.cause {
            Cause::Pressure { .. } => "pressure",
            Cause::Fits { .. } => "fits",
            Cause::HardLimit { .. } => "hard_limit",
            Cause::Anomaly { .. } => "anomaly",
            Cause::Requested { .. } => "emergency_request",
            Cause::Override { .. } => "override",
            Cause::Fallback { .. } => "fallback",
        }
    }
}

/// Formats a series count compactly: 112000 → `112k`.
pub fn fmt_series(v: f64) -> String {
    series_with(v, 0)
}

/// [`fmt_series`] with `extra` decimals beyond its usual ones (`M` two, `k` one, units
/// none), trailing zeros dropped.
fn series_with(v: f64, extra: usize) -> String {
    let a = v.abs();
    let (scaled, decimals, unit) = if a >= 1e6 {
        (v / 1e6, 2, "M")
    } else if a >= 1e3 {
        (v / 1e3, 1, "k")
    } else {
        (v, 0, "")
    };
    let mut out = String::with_capacity(16);
    push_trimmed(&mut out, scaled, decimals + extra);
    out.push_str(unit);
    out
}

/// A fraction as a percentage with one decimal: 0.987 → `98.7%`, 0.99 → `99%`.
pub fn fmt_pct(v: f64) -> String {
    pct_with(v, 1)
}

/// Percentages of fractions that are compared in one sentence, each with the fewest
/// decimals (at least one) that print any two different values differently, so a
/// sentence never reads "pressure 99% > 99%": it reads "pressure 99.004% > 99%".
/// Rounding keeps order, so the printed numbers compare as the values do.
pub fn fmt_pcts<const N: usize>(values: [f64; N]) -> [String; N] {
    distinct(values, |v, extra| pct_with(v, 1 + extra))
}

/// A series count and the limit it is compared with (`(value, limit)`), the count with
/// the fewest extra decimals that print it differently from the limit written the same
/// way: "output 150.004k > 150% of budget 100k", never "output 150k > 150% of 100k".
pub fn fmt_series_vs(value: f64, limit: f64) -> String {
    let [v, _] = distinct([value, limit], series_with);
    v
}

/// Decimals past which formatting stops adding any: an f64 has 17 significant digits.
const MAX_EXTRA_DECIMALS: usize = 17;

/// Formats every value with the smallest `extra` at which values that differ print
/// differently (the largest tried if none is enough).
fn distinct<const N: usize>(values: [f64; N], fmt: impl Fn(f64, usize) -> String) -> [String; N] {
    let mut extra = 0;
    loop {
        let out = values.map(|v| fmt(v, extra));
        let clash = (0..N).any(|i| (i + 1..N).any(|j| values[i] != values[j] && out[i] == out[j]));
        if !clash || extra == MAX_EXTRA_DECIMALS {
            return out;
        }
        extra += 1;
    }
}

fn pct_with(v: f64, decimals: usize) -> String {
    let mut out = String::with_capacity(12);
    push_trimmed(&mut out, v * 100.0, decimals);
    out.push('%');
    out
}

/// Appends `v` with `decimals` decimals, trailing zeros dropped: `98.80` → `98.8`,
/// `99.0` → `99`; integers are left alone. In place, since a switch's sentence formats
/// a dozen numbers and 10,000 pipelines may switch in one tick.
fn push_trimmed(out: &mut String, v: f64, decimals: usize) {
    let start = out.len();
    let _ = write!(out, "{v:.decimals$}");
    if out[start..].contains('.') {
        let kept = out[start..]
            .trim_end_matches('0')
            .trim_end_matches('.')
            .len();
        out.truncate(start + kept);
    }
}

/// "for 1m30s", or "at once" for zero.
fn fmt_for(d: Duration) -> String {
    if d.is_zero() {
        "at once".to_string()
    } else {
        format!("for {}", fmt_duration(d))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.escalation {
            "escalated"
        } else {
            "relaxed"
        };
        write!(f, "{verb} {}→{}: ", self.from, self.to)?;
        let b = fmt_series(self.budget);
        match &self.cause {
            Cause::Pressure {
                output,
                pressure,
                threshold,
                held_for,
            } => {
                let [p, t] = fmt_pcts([*pressure, *threshold]);
                write!(
                    f,
                    "output {} with predicted pressure {p} > {t} of budget {b} {}",
                    fmt_series(*output),
                    fmt_for(*held_for),
                )
            }
            Cause::Fits {
                predicted_output,
                threshold,
                held_for,
            } => write!(
                f,
                "{} would output {} < {} of budget {} {}",
                self.to,
                fmt_series_vs(*predicted_output, threshold * self.budget),
                fmt_pct(*threshold),
                b,
                fmt_for(*held_for),
            ),
            Cause::HardLimit { output, ratio } => write!(
                f,
                "emergency: output {} > {} of budget {}",
                fmt_series_vs(*output, ratio * self.budget),
                fmt_pct(*ratio),
                b
            ),
            Cause::Anomaly {
                signal,
                score,
                output,
                predicted_output,
                horizon,
            } => write!(
                f,
                "emergency: {signal} anomaly score {score:.2} and output {} rising to {} > budget {} within {}",
                fmt_series(*output),
                fmt_series(*predicted_output),
                b,
                fmt_duration(*horizon)
            ),
            Cause::Requested { by, reason } => {
                write!(f, "emergency requested by {by}: {reason}")
            }
            Cause::Override { by, until } => write!(f, "manual override by {by} until {until}"),
            Cause::Fallback { bad_for } => write!(
                f,
                "input bad for {}, moved to the fallback profile",
                fmt_duration(*bad_for)
            ),
        }
    }
}

/// The guards, each a named reason in events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Too soon after the last switch to escalate.
    DwellEscalate,
    /// Too soon after the last ladder switch to relax.
    DwellRelax,
    /// The switch budget for the window is spent.
    SwitchBudget,
    /// Relaxing would complete or follow a flap.
    Oscillation,
    /// Emergency lockout forbids relaxing.
    Lockout,
    /// A manual override pins the profile.
    Override,
    /// The wanted profile's last apply failed or was rolled back; it is not decided again
    /// before the backoff ends.
    Refused,
}

impl Guard {
    /// Every guard, for metrics that must exist at zero.
    pub const ALL: [Guard; 7] = [
        Guard::DwellEscalate,
        Guard::DwellRelax,
        Guard::SwitchBudget,
        Guard::Oscillation,
        Guard::Lockout,
        Guard::Override,
        Guard::Refused,
    ];

    /// Label for metrics (`guard` label) and the tick file.
    pub fn label(self) -> &'static str {
        match self {
            Guard::DwellEscalate => "min_dwell_escalate",
            Guard::DwellRelax => "min_dwell_relax",
            Guard::SwitchBudget => "switch_budget",
            Guard::Oscillation => "oscillation",
            Guard::Lockout => "lockout",
            Guard::Override => "override",
            Guard::Refused => "refused",
        }
    }
}

/// A refused switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    /// The guard that refused.
    pub guard: Guard,
    /// Decided profile index.
    pub from: usize,
    /// Wanted profile index.
    pub to: usize,
    /// When the guard stops blocking (if it is time-bound).
    pub until: Option<Timestamp>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocked by {}", self.guard.label())?;
        if let Some(u) = self.until {
            write!(f, " until {u}")?;
        }
        Ok(())
    }
}

/// Why the input was unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The query returned no series.
    Empty,
    /// The sample was too old.
    Stale,
    /// The query failed, or returned a value no series count can have.
    Error,
}

impl HoldReason {
    /// Label for metrics and the tick file.
    pub fn label(self) -> &'static str {
        match self {
            HoldReason::Empty => "empty",
            HoldReason::Stale => "stale",
            HoldReason::Error => "error",
        }
    }
}

/// Bad input: the engine held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// Which signal was bad.
    pub signal: Signal,
    /// How it was bad.
    pub reason: HoldReason,
    /// Since when the input has been bad (the first step without a healthy sample).
    pub since: Timestamp,
    /// How long it has been bad at this step.
    pub bad_for: Duration,
    /// Age of the sample when stale.
    pub age: Option<Duration>,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "held: {} is {}", self.signal, self.reason.label())?;
        if let Some(a) = self.age {
            write!(f, " ({} old)", fmt_duration(a))?;
        }
        write!(f, " since {}", self.since)
    }
}

/// Why no switch was wanted: the condition that kept the decided profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// Pressure inside the hysteresis band (or below it with nothing less reducing to
    /// relax to): nothing to do.
    InBand {
        /// Pressure on the decided profile.
        pressure: f64,
        /// Escalate threshold.
        escalate_above: f64,
        /// Relax threshold.
        relax_below: f64,
    },
    /// Pressure is above the threshold but the most reducing profile is already decided.
    AtMostReducing {
        /// Pressure on it.
        pressure: f64,
    },
    /// The escalate condition holds but not yet for long enough.
    EscalateStreak {
        /// First sample time it held.
        since: Timestamp,
        /// How long it must hold.
        need: Duration,
        /// True when the longer confirmation for presumed-transient spikes applies.
        transient: bool,
    },
    /// A less-reducing profile fits, but not yet for long enough.
    RelaxStreak {
        /// The profile it would relax to.
        to: usize,
        /// First sample time it fitted.
        since: Timestamp,
        /// How long it must fit.
        need: Duration,
    },
    /// A less-reducing profile would fit today's demand but not the worst demand of the
    /// relax window.
    RelaxWindow {
        /// That worst demand.
        worst_input: f64,
        /// The window.
        window: Duration,
    },
    /// A less-reducing profile would fit, but demand is rising along a clean line
    /// (an explosion still going on) and it would not fit where that line is headed.
    ExplosionTrend {
        /// Demand the line reaches at the anomaly horizon.
        headed_to: f64,
    },
    /// An apply is in flight: relaxing waits until the decided profile is in force.
    ApplyPending {
        /// The decided profile.
        profile: usize,
        /// When it was decided.
        since: Timestamp,
    },
    /// No sample newer than the last one evaluated: nothing new to decide on.
    NoNewSample {
        /// Time of the last sample evaluated.
        last: Timestamp,
    },
    /// A manual override pins the decided profile.
    Pinned {
        /// Until when.
        until: Timestamp,
    },
}

impl Kept {
    /// Label for metrics and the tick file.
    pub fn label(&self) -> &'static str {
        match self {
            Kept::InBand { .. } => "in_band",
            Kept::AtMostReducing { .. } => "at_most_reducing",
            Kept::EscalateStreak { .. } => "escalate_streak",
            Kept::RelaxStreak { .. } => "relax_streak",
            Kept::RelaxWindow { .. } => "relax_window",
            Kept::ExplosionTrend { .. } => "explosion_trend",
            Kept::ApplyPending { .. } => "apply_pending",
            Kept::NoNewSample { .. } => "no_new_sample",
            Kept::Pinned { .. } => "pinned",
        }
    }
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kept::InBand {
                pressure,
                escalate_above,
                relax_below,
            } => {
                let [p, r, e] = fmt_pcts([*pressure, *relax_below, *escalate_above]);
                write!(
                    f,
                    "kept: pressure {p} within the band (relax below {r}, escalate above {e})"
                )
            }
            Kept::AtMostReducing { pressure } => write!(
                f,
                "kept: pressure {} but already at the most reducing profile",
                fmt_pct(*pressure)
            ),
            Kept::EscalateStreak {
                since,
                need,
                transient,
            } => write!(
                f,
                "kept: pressure above threshold since {since}, escalating once it lasts {}{}",
                fmt_duration(*need),
                if *transient {
                    " (spikes here are usually transient)"
                } else {
                    ""
                }
            ),
            Kept::RelaxStreak { to, since, need } => write!(
                f,
                "kept: profile {to} fits since {since}, relaxing once it fits for {}",
                fmt_duration(*need)
            ),
            Kept::RelaxWindow {
                worst_input,
                window,
            } => write!(
                f,
                "kept: a less reducing profile fits now but not the worst input {} of the last {}",
                fmt_series(*worst_input),
                fmt_duration(*window)
            ),
            Kept::ExplosionTrend { headed_to } => write!(
                f,
                "kept: input rising along a clean line towards {}; not relaxing into it",
                fmt_series(*headed_to)
            ),
            Kept::ApplyPending { profile, since } => write!(
                f,
                "kept: waiting for profile {profile}, decided at {since}, to be in force"
            ),
            Kept::NoNewSample { last } => write!(f, "kept: no sample newer than {last}"),
            Kept::Pinned { until } => write!(f, "kept: pinned by an override until {until}"),
        }
    }
}

/// A command, as handled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audit {
    /// A pin was set.
    OverrideSet {
        /// Pinned profile.
        profile: usize,
        /// Until when (after clamping to the policy's maximum TTL).
        until: Timestamp,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// A pin was dropped by a command.
    OverrideCleared {
        /// Who.
        by: String,
    },
    /// A pin lapsed at its TTL.
    OverrideExpired {
        /// The profile that was pinned.
        profile: usize,
    },
    /// A command could not be carried out.
    Refused {
        /// Who asked.
        by: String,
        /// Why it was refused.
        reason: String,
    },
    /// An emergency was requested (the switch, if any, is its own event).
    EmergencyRequested {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

/// The end of an apply, as the engine took it in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyEvent {
    /// The profile the apply was for.
    pub profile: usize,
    /// True if it is now in force.
    pub ok: bool,
    /// Why it failed (failed or rolled back), if it did.
    pub reason: Option<String>,
    /// True if the collector had to be rolled back.
    pub rolled_back: bool,
    /// The profile in force after it.
    pub in_force: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_one_decimal_unless_two_values_would_print_alike() {
        assert_eq!(fmt_pct(0.987), "98.7%");
        assert_eq!(fmt_pct(0.99), "99%");
        assert_eq!(fmt_pcts([0.987, 0.99]), ["98.7%", "99%"]);
        assert_eq!(fmt_pcts([0.99004, 0.99]), ["99.004%", "99%"]);
        assert_eq!(fmt_pcts([0.99, 0.99]), ["99%", "99%"]);
        // Three values: enough digits for every pair that differs.
        assert_eq!(fmt_pcts([0.95001, 0.95, 0.99]), ["95.001%", "95%", "99%"]);
        // However close, two different numbers never print alike, and order is kept.
        let a = 0.99_f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let [sa, sb] = fmt_pcts([b, a]);
        assert_ne!(sa, sb);
    }

    #[test]
    fn series_against_a_limit_get_the_digits_that_tell_them_apart() {
        assert_eq!(fmt_series(112_000.0), "112k");
        assert_eq!(fmt_series(1_250_000.0), "1.25M");
        assert_eq!(fmt_series(999.0), "999");
        assert_eq!(fmt_series_vs(126_000.0, 100_000.0), "126k");
        assert_eq!(fmt_series_vs(150_004.0, 150_000.0), "150.004k");
        assert_eq!(fmt_series_vs(94_999.0, 95_000.0), "94.999k");
    }

    #[test]
    fn a_pressure_just_over_its_threshold_reads_as_over() {
        let d = Decision {
            pipeline: "p".into(),
            from: "conservative".into(),
            to: "balanced".into(),
            to_index: 1,
            escalation: true,
            budget: 100_000.0,
            cause: Cause::Pressure {
                output: 99_004.0,
                pressure: 0.99004,
                threshold: 0.99,
                held_for: Duration::ZERO,
            },
        };
        assert_eq!(
            d.to_string(),
            "escalated conservative→balanced: output 99k with predicted pressure 99.004% > 99% of budget 100k at once"
        );
    }
}
