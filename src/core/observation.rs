//! Typed observations: what the sampler (or the simulator) saw for one pipeline at one tick.
//!
//! An empty query result is `Empty`, never zero: a pipeline that vanished from Prometheus
//! must not look like a pipeline with no series, or the engine would relax protection.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One signal's reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Sample {
    /// A value and the time Prometheus sampled it.
    Ok {
        /// The series count (or other signal value).
        value: f64,
        /// When the sample was taken; the engine treats old samples as stale.
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
pub enum Command {
    /// Jump to the most reducing profile now and start the lockout (anomaly detector or
    /// an operator). Passes the same guards as any other switch.
    Emergency {
        /// Who asked and why, for the decision sentence.
        reason: String,
    },
    /// Pin a profile (by index) for `ttl`; the engine clamps to the policy's maximum TTL.
    Override {
        /// Index of the pinned profile.
        profile: usize,
        /// How long the pin lasts.
        ttl: Duration,
        /// Who asked, for the sentence.
        by: String,
    },
    /// Drop a manual override early.
    ClearOverride,
}

/// Everything the engine is told at one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Series entering the pipeline (demand).
    pub input: Sample,
    /// Series leaving the pipeline (what the budget is about).
    pub output: Sample,
    /// Requests to handle this tick (usually none).
    pub commands: Vec<Command>,
}

impl Observation {
    /// A healthy observation of input and output at `at`.
    pub fn ok(input: f64, output: f64, at: Timestamp) -> Self {
        Observation {
            input: Sample::ok(input, at),
            output: Sample::ok(output, at),
            commands: Vec::new(),
        }
    }
}
