//! Typed observations: what the sampler (or the simulator) saw for one pipeline at one
//! instant, what the actuator reports as in force, and the commands to handle.
//!
//! An empty query result is `Empty`, never zero: a pipeline that vanished from Prometheus
//! must not look like a pipeline with no series, or the engine would relax protection. A
//! decision is not a fact until the actuator confirms it, so the actuator's report travels
//! with the samples and the engine re-plans from what is really in force.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One signal's reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sample {
    /// A value and the time Prometheus sampled it.
    Ok {
        /// The series count (or other signal value).
        value: f64,
        /// When the sample was taken; the engine treats old samples as stale, and a
        /// sample no newer than the last one evaluated as no news.
        at: Timestamp,
    },
    /// The query returned no series.
    Empty,
    /// The newest sample is older than allowed; `age` says by how much.
    Stale {
        /// Age of the newest sample.
        age: Duration,
    },
    /// The query failed (timeout, HTTP error, bad response).
    Error {
        /// One-line description for the hold sentence.
        message: String,
    },
}

impl Sample {
    /// A fresh reading taken at `at`.
    pub fn ok(value: f64, at: Timestamp) -> Self {
        Sample::Ok { value, at }
    }
}

/// An operator's or detector's request, delivered with the next observation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Jump to the most reducing profile now and start the lockout (anomaly detector or
    /// an operator). Passes the same guards as any other switch.
    Emergency {
        /// Who asked (`detector`, an operator's name), for the audit event.
        by: String,
        /// Why, for the decision sentence.
        reason: String,
    },
    /// Pin a profile (by index) for `ttl`; the engine clamps to the policy's maximum TTL.
    Override {
        /// Index of the pinned profile.
        profile: usize,
        /// How long the pin lasts.
        ttl: Duration,
        /// Who asked, for the sentence and the audit event.
        by: String,
        /// Why, for the audit event.
        reason: String,
    },
    /// Drop a manual override early.
    ClearOverride {
        /// Who asked, for the audit event.
        by: String,
    },
}

/// How an apply ended, as the actuator saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The profile's config is verified in force.
    Applied,
    /// The apply failed before the collector took the new config (render, validate,
    /// write or reload failed); the previous profile is still in force.
    Failed {
        /// One line for the event and the log.
        reason: String,
    },
    /// The collector took the new config but verification failed, and the last good
    /// config was restored.
    RolledBack {
        /// One line for the event and the log.
        reason: String,
    },
}

/// The end of one apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Profile (index) the apply tried to put in force.
    pub profile: usize,
    /// The `seq` of the `ApplyProfile` action it carried out.
    pub seq: u64,
    /// What happened.
    pub outcome: ApplyOutcome,
}

/// Everything the engine is told at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Series entering the pipeline (demand).
    pub input: Sample,
    /// Series leaving the pipeline (what the budget is about).
    pub output: Sample,
    /// Profile the actuator reports in force; `None`: no report with this step (the last
    /// known one stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_force: Option<usize>,
    /// Applies that ended since the previous step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies: Vec<ApplyReport>,
    /// Requests to handle this step (usually none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Command>,
}

impl Observation {
    /// A healthy observation of input and output at `at`, with no actuator report.
    pub fn ok(input: f64, output: f64, at: Timestamp) -> Self {
        Observation {
            input: Sample::ok(input, at),
            output: Sample::ok(output, at),
            in_force: None,
            applies: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// The same observation with the actuator reporting `profile` in force.
    pub fn with_in_force(mut self, profile: usize) -> Self {
        self.in_force = Some(profile);
        self
    }
}
