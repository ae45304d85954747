//! What a step returns: actions for the actuator, events for metrics/logs, and the
//! decision sentences an SRE reads at 3 a.m.

use super::time::{Timestamp, fmt_duration};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;
use std::time::Duration;

/// Result of one `Engine::step`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// What the actuator must do (at most one switch per step).
    pub actions: SmallVec<[Action; 1]>,
    /// What happened, for metrics, logs and the simulator's tick file.
    pub events: SmallVec<[Event; 2]>,
    /// When the engine wants to be stepped again (deadlines such as the end of a dwell or
    /// an override are folded in, so a caller may wake earlier than the next tick).
    pub next_wakeup: Timestamp,
}

/// A command to the actuator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Render and apply this profile (index into the ladder).
    ApplyProfile {
        /// Index of the profile to apply.
        profile: usize,
    },
}

/// Something the engine decided or refused, with enough data to render a sentence.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Every healthy tick: the control terms, for `phoenix_pid_*` and `phoenix_pressure`.
    Evaluated(Evaluation),
    /// A profile switch.
    Switched(Decision),
    /// A switch the ladder wanted but a guard refused.
    Blocked(Blocked),
    /// Bad input: the engine held the current profile.
    Held(Hold),
}

/// The numbers behind one tick's decision.
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
    /// Pressure on the current profile: predicted output / budget + PID correction.
    pub pressure: f64,
    /// Predicted input (trend + volatility margin) used for the decision.
    pub predicted_input: f64,
    /// Retention measured while the current profile is active, if known yet.
    pub measured_retention: Option<f64>,
    /// Anomaly score of the input signal, if watched.
    pub anomaly_input: Option<f64>,
    /// Anomaly score of the output signal, if watched.
    pub anomaly_output: Option<f64>,
}

/// Why a switch happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cause {
    /// Pressure above the escalate threshold for enough ticks.
    Pressure {
        /// Observed output series.
        output: f64,
        /// Pressure that crossed the threshold.
        pressure: f64,
        /// Threshold (fraction of budget).
        threshold: f64,
        /// Consecutive ticks above.
        ticks: u32,
    },
    /// A less-reducing profile fits with margin.
    Fits {
        /// Predicted output on the target profile.
        predicted_output: f64,
        /// Threshold (fraction of budget).
        threshold: f64,
        /// Consecutive ticks it fitted.
        ticks: u32,
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
        signal: String,
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
    /// Too many bad ticks; moved to the fallback profile.
    Fallback {
        /// Consecutive bad ticks.
        bad_ticks: u32,
    },
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
    let a = v.abs();
    if a >= 1e6 {
        let s = format!("{:.2}", v / 1e6);
        format!("{}M", s.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e3 {
        let s = format!("{:.1}", v / 1e3);
        format!("{}k", s.trim_end_matches(".0"))
    } else {
        format!("{v:.0}")
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
                ticks,
            } => write!(
                f,
                "output {} with predicted pressure {:.0}% > {:.0}% of budget {} for {} tick{}",
                fmt_series(*output),
                pressure * 100.0,
                threshold * 100.0,
                b,
                ticks,
                if *ticks == 1 { "" } else { "s" }
            ),
            Cause::Fits {
                predicted_output,
                threshold,
                ticks,
            } => write!(
                f,
                "{} would output {} < {:.0}% of budget {} for {} tick{}",
                self.to,
                fmt_series(*predicted_output),
                threshold * 100.0,
                b,
                ticks,
                if *ticks == 1 { "" } else { "s" }
            ),
            Cause::HardLimit { output, ratio } => write!(
                f,
                "emergency: output {} > {:.0}% of budget {}",
                fmt_series(*output),
                ratio * 100.0,
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
            Cause::Requested { reason } => write!(f, "emergency requested: {reason}"),
            Cause::Override { by, until } => write!(f, "manual override by {by} until {until}"),
            Cause::Fallback { bad_ticks } => {
                write!(
                    f,
                    "input bad for {bad_ticks} ticks, moved to the fallback profile"
                )
            }
        }
    }
}

/// The guards, each a named reason in events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Guard {
    /// Too soon after the last switch to escalate.
    DwellEscalate,
    /// Too soon after the last switch to relax.
    DwellRelax,
    /// The switch budget for the window is spent.
    SwitchBudget,
    /// Relaxing would complete or follow a flap.
    Oscillation,
    /// Emergency lockout forbids relaxing.
    Lockout,
    /// A manual override pins the profile.
    Override,
}

impl Guard {
    /// Label for metrics (`guard` label) and the tick file.
    pub fn label(self) -> &'static str {
        match self {
            Guard::DwellEscalate => "min_dwell_escalate",
            Guard::DwellRelax => "min_dwell_relax",
            Guard::SwitchBudget => "switch_budget",
            Guard::Oscillation => "oscillation",
            Guard::Lockout => "lockout",
            Guard::Override => "override",
        }
    }
}

/// A refused switch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    /// The guard that refused.
    pub guard: Guard,
    /// Current profile index.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldReason {
    /// The query returned no series.
    Empty,
    /// The sample was too old.
    Stale,
    /// The query failed.
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hold {
    /// Which signal was bad (`input` or `output`).
    pub signal: &'static str,
    /// How it was bad.
    pub reason: HoldReason,
    /// Consecutive bad ticks so far.
    pub bad_ticks: u32,
    /// Age of the sample when stale.
    pub age: Option<Duration>,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "held: {} is {}", self.signal, self.reason.label())?;
        if let Some(a) = self.age {
            write!(f, " ({} old)", fmt_duration(a))?;
        }
        write!(
            f,
            " for {} tick{}",
            self.bad_ticks,
            if self.bad_ticks == 1 { "" } else { "s" }
        )
    }
}
