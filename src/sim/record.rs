//! What a simulation run records per tick and per controller; the report, the tick CSV and
//! the plot are all computed from these records.

use crate::core::Timestamp;
use crate::core::event::{Guard, HoldReason};
use serde::Serialize;
use std::time::Duration;

/// Why the `decided` column has the value it has, kept compact (a run can have millions
/// of ticks); sentences are stored once per switch in `ControllerRun::texts`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Note {
    /// Nothing notable: the controller kept its profile.
    None,
    /// A switch; the sentence is `texts[index]`.
    Switched(u32),
    /// A guard refused a switch to profile `to`, until `until` if time-bound.
    Blocked {
        /// The guard.
        guard: Guard,
        /// The profile the controller wanted.
        to: u8,
        /// When the guard stops blocking, if it is time-bound.
        until: Option<Timestamp>,
    },
    /// Bad input, the controller held.
    Hold(HoldReason),
    /// No switch was wanted; the label of the condition that kept the profile.
    Kept(&'static str),
    /// An apply failed; the previous profile stayed in force.
    ApplyFailed,
}

/// One tick of one controller.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TickRecord {
    /// Tick number from 0.
    pub tick: u32,
    /// Virtual time of the tick.
    pub timestamp: Timestamp,
    /// Demand (series entering); NaN if the trace had no value.
    pub input: f64,
    /// Series leaving under the profile in force during this tick.
    pub output: f64,
    /// Profile in force during this tick (produced `output`).
    pub profile: u8,
    /// Profile the controller chose after observing this tick (in force from tick+delay).
    pub decided: u8,
    /// Why.
    pub note: Note,
    /// Anomaly score of the output signal this tick, if the controller computes one.
    pub anomaly: Option<f32>,
}

/// The whole run of one controller over a trace.
#[derive(Clone, Debug)]
pub struct ControllerRun {
    /// `threshold`, `hpa`, `oracle`, or the policy's name.
    pub name: String,
    /// Profile names, least to most reducing (same for every controller of a run).
    pub profiles: Vec<String>,
    /// Expected retention per profile.
    pub retentions: Vec<f64>,
    /// Budget in series.
    pub budget_series: f64,
    /// Tick length.
    pub tick: Duration,
    /// One record per tick.
    pub ticks: Vec<TickRecord>,
    /// Decision sentences, indexed by `Note::Switched`.
    pub texts: Vec<String>,
    /// The score at which the controller's anomaly detectors flag a signal, when it runs
    /// them (for the plot's threshold line).
    pub anomaly_threshold: Option<f64>,
}

impl ControllerRun {
    /// Whether the switch explained by `texts[i]` was an emergency (hard limit, anomaly,
    /// request): the sentence says so right after `from→to: `.
    pub fn is_emergency(&self, i: u32) -> bool {
        self.texts
            .get(i as usize)
            .and_then(|t| t.split_once(": "))
            .is_some_and(|(_, why)| why.starts_with("emergency"))
    }

    /// The text for the tick file's `reason` column.
    pub fn reason(&self, note: Note) -> &str {
        match note {
            Note::None => "",
            Note::Switched(i) => self.texts.get(i as usize).map(String::as_str).unwrap_or(""),
            Note::Blocked { guard, .. } => guard.label(),
            Note::Hold(h) => h.label(),
            Note::Kept(k) => k,
            Note::ApplyFailed => "apply_failed",
        }
    }
}
