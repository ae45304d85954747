//! Streaming, causal anomaly detectors: each value is scored once, in order, with no
//! look-ahead, in O(1) or O(log w), with serialisable state like the rest of the core.
//!
//! Every detector maps a value and its timestamp to a score in [0, 1]; scores stay 0
//! during warm-up and come as short bursts, not plateaus, because NAB (and an on-call
//! SRE) charges every flagged point outside an incident.
//!
//! Every memory is a duration measured on the sample timestamps passed to `update`, never
//! a count of points: exponential memories weigh a new point `1 - exp(-dt/tau)` (dt
//! clamped to four of the series' usual steps and to an hour, so a gap of days does not
//! wipe a memory; `stats::decay_weight`, `stats::Clock`),
//! windows are time windows with a bounded number of slots, and the cooldown and warm-ups
//! are durations (with a minimum count of points only where a statistic needs it, such
//! as two for a variance). The same signal sampled every 15 s, every 5 min or every hour,
//! or irregularly with gaps, therefore warms up, fires and cools down at the same times. `Ensemble`, the default,
//! combines predictors (an EWMA level at cold start, then the daily seasonal profile, or
//! the weekly one when enabled and better), adds a far path (the value against its
//! long-run level, for values outside the series' range) and keeps a linear trend for
//! `forecast(h)`. A
//! detector only *requests* an emergency; the engine's guards decide.
//!
//! Every detector is a *predictor* (what the next value should be, and how wrong such
//! predictions usually are, giving a z) followed by the shared `Scorer` (how unusual the
//! recent amount of surprise is for this series, with a cooldown period).
//!
//! Layout: `stats` (streaming statistics), `basic` (z-score, MAD, EWMA, linear trend),
//! `seasonal` (time-of-day/week profiles), `score` (z to score, cooldown), `ensemble`
//! (the default). docs/anomaly.md describes each detector and the NAB measurements.

pub mod basic;
pub mod ensemble;
pub mod score;
pub mod seasonal;
pub mod stats;
#[cfg(test)]
mod tests;

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

pub use basic::{Ewma, Level, LinearTrend, Mad, Trend, ZScore};
pub use ensemble::{AuxParams, Ensemble, EnsembleParams};
pub use score::{Cooldown, Scorer, ScorerParams};
pub use seasonal::{Seasonal, SeasonalModel, SeasonalParams};
pub use stats::TimeLine;

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
    /// The default: EWMA at cold start, then the better seasonal profile; linear trend for
    /// forecasts.
    Ensemble,
}

impl DetectorKind {
    /// Every kind, in declaration order.
    pub const ALL: [DetectorKind; 6] = [
        DetectorKind::Zscore,
        DetectorKind::Mad,
        DetectorKind::Ewma,
        DetectorKind::Trend,
        DetectorKind::Seasonal,
        DetectorKind::Ensemble,
    ];

    /// The snake_case name used in policy files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Zscore => "zscore",
            DetectorKind::Mad => "mad",
            DetectorKind::Ewma => "ewma",
            DetectorKind::Trend => "trend",
            DetectorKind::Seasonal => "seasonal",
            DetectorKind::Ensemble => "ensemble",
        }
    }
}

/// The state of one detector of any kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Inner {
    Zscore(ZScore),
    Mad(Mad),
    Ewma(Ewma),
    Trend(Trend),
    Seasonal(Box<Seasonal>),
    Ensemble(Box<Ensemble>),
}

/// A detector with its state; serialisable so the daemon can persist it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// Which detector this is (kept next to the state for policy matching).
    kind: DetectorKind,
    /// Its state.
    inner: Inner,
    /// Time (ms) and score of the newest point learnt: a point at or before it is not
    /// learnt again (a caller woken twice at one instant, or a late sample, must not
    /// advance windows, counts or memories) and gets that score back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<(i64, f64)>,
}

impl Detector {
    /// A fresh detector of this kind with its default parameters.
    pub fn new(kind: DetectorKind) -> Self {
        let inner = match kind {
            DetectorKind::Zscore => Inner::Zscore(ZScore::default()),
            DetectorKind::Mad => Inner::Mad(Mad::default()),
            DetectorKind::Ewma => Inner::Ewma(Ewma::default()),
            DetectorKind::Trend => Inner::Trend(Trend::default()),
            DetectorKind::Seasonal => Inner::Seasonal(Box::default()),
            DetectorKind::Ensemble => Inner::Ensemble(Box::default()),
        };
        Detector {
            kind,
            inner,
            last: None,
        }
    }

    /// The default detector with these parameters (the validation protocol's
    /// configurations and ablations).
    pub fn ensemble(params: &EnsembleParams) -> Self {
        Detector {
            kind: DetectorKind::Ensemble,
            inner: Inner::Ensemble(Box::new(Ensemble::new(params))),
            last: None,
        }
    }

    /// Which detector this is.
    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// Scores the next value (in [0, 1]; 0 during warm-up). A non-finite value is not
    /// learnt and scores 0: it is bad input, which the engine handles as such. Values
    /// beyond ±`basic::MAX_INPUT` (1e100) are clamped to it.
    ///
    /// A point at or before the newest one learnt changes nothing and scores what that
    /// one scored: the state advances only with time.
    pub fn update(&mut self, at: Timestamp, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if let Some((t, score)) = self.last
            && at.as_millis() <= t
        {
            return score;
        }
        let s = match &mut self.inner {
            Inner::Zscore(d) => d.update(at, value),
            Inner::Mad(d) => d.update(at, value),
            Inner::Ewma(d) => d.update(at, value),
            Inner::Trend(d) => d.update(at, value),
            Inner::Seasonal(d) => d.update(at, value),
            Inner::Ensemble(d) => d.update(at, value),
        };
        let s = if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.last = Some((at.as_millis(), s));
        s
    }

    /// The value expected `h` steps after the newest point, a step being the newest
    /// interval between points, from the linear trend in time, for the detectors that
    /// keep one (`trend` and `ensemble`); `None` otherwise or too early.
    pub fn forecast(&self, h: u32) -> Option<f64> {
        match &self.inner {
            Inner::Trend(d) => d.forecast(h),
            Inner::Ensemble(d) => d.forecast(h),
            _ => None,
        }
    }
}

/// The fixed default threshold of the default detector (chosen on NAB; see docs/anomaly.md).
/// It is also the level at which every detector's `Cooldown` starts its quiet period,
/// so use this value: a lower one also flags the rising cap at the end of quiet periods.
/// A score of 0.5 means twice the upper-tail probability of the recent surprise, under
/// the series' own history, is at most 10^-2.75 (`ScorerParams::score_decades` = 5.5).
pub const DEFAULT_THRESHOLD: f64 = 0.5;
