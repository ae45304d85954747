//! The default detector: the best available predictor at each point, one shared scorer,
//! and a linear trend for forecasts.
//!
//! Predictors, from cold start to steady state:
//!
//! - an EWMA level (mean and variance) from the first points, so a daemon that has just
//!   started is not blind for a day; it has its own `Scorer`, so its cold-start surprises
//!   never pollute the main scorer's history;
//! - the daily seasonal profile once a day of timestamps has passed;
//! - the weekly seasonal profile once it has predicted for a day and does better than the
//!   daily one (`SeasonalModel`).
//!
//! The z of the predictor in charge goes through the shared `Scorer` (bounded surprise,
//! 12-point density, likelihood against the series' own history, 150-point cooldown).
//! The last 32 points are kept alongside for `forecast(h)` (their least-squares line,
//! computed when asked: O(32) per forecast, nothing per point beyond storing the value).
//!
//! Why not average or max the z-score, MAD, EWMA and trend detectors as well: measured on
//! the NAB subset, every such combination scored lower than the seasonal predictor alone
//! (docs/anomaly.md has the numbers); the simpler predictors mostly add alarms on series
//! whose daily rhythm the seasonal profile already explains.

use super::Timestamp;
use super::basic::{LinearTrend, RecentValues, admit, z_of};
use super::score::{Scorer, ScorerParams};
use super::seasonal::{SeasonalModel, SeasonalParams};
use super::stats::Ewm;
use serde::{Deserialize, Serialize};

/// Parameters of the ensemble (every field has the NAB-chosen default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleParams {
    /// The seasonal predictor.
    pub seasonal: SeasonalParams,
    /// The scoring stage (shared with the cold-start predictor).
    pub scorer: ScorerParams,
    /// The cold-start predictor and the forecaster.
    pub aux: AuxParams,
}

/// Parameters of the cold-start predictor and of the forecasting line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuxParams {
    /// EWMA weight of the cold-start predictor.
    pub cold_alpha: f64,
    /// Points in the forecasting line.
    pub trend_window: usize,
}

impl Default for AuxParams {
    fn default() -> Self {
        AuxParams {
            cold_alpha: 0.02,
            trend_window: 32,
        }
    }
}

/// The default detector (see the module documentation).
///
/// Warm-up: scores are 0 for the first `ceil(2 / cold_alpha) + density - 1` points (111 by
/// default); the seasonal predictor takes over after one day of timestamps plus 24 points.
/// Cost: O(1) per point; state is about 1,300 numbers whatever the sampling interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Daily and weekly profiles.
    seasonal: SeasonalModel,
    /// Scores the seasonal z.
    scorer: Scorer,
    /// Weight of the cold-start EWMA.
    cold_alpha: f64,
    /// Cold-start level and spread.
    cold: Ewm,
    /// Scores the cold-start z.
    cold_scorer: Scorer,
    /// The latest points, whose least-squares line gives the forecasts.
    trend: RecentValues,
}

impl Default for Ensemble {
    fn default() -> Self {
        Ensemble::new(&EnsembleParams::default())
    }
}

impl Ensemble {
    /// An ensemble with these parameters.
    pub fn new(p: &EnsembleParams) -> Self {
        Ensemble {
            seasonal: SeasonalModel::new(&p.seasonal),
            scorer: Scorer::new(p.scorer.clone()),
            cold_alpha: p.aux.cold_alpha.clamp(1e-4, 1.0),
            cold: Ewm::default(),
            cold_scorer: Scorer::new(p.scorer.clone()),
            trend: RecentValues::new(p.aux.trend_window),
        }
    }

    /// Number of leading points whose score is always 0.
    pub fn warm_up(&self) -> usize {
        self.cold_warm_up() as usize + self.cold_scorer.warm_up() - 1
    }

    fn cold_warm_up(&self) -> u64 {
        (2.0 / self.cold_alpha).ceil() as u64
    }

    /// The value expected `h` ticks after the newest one, from the line through the last
    /// `trend_window` points; `None` before two points. O(`trend_window`).
    pub fn forecast(&self, h: u32) -> Option<f64> {
        self.trend.forecast(h)
    }

    /// The forecasting line (built on demand from the latest `trend_window` points).
    pub fn trend(&self) -> LinearTrend {
        self.trend.trend()
    }

    /// Scores `x` at `at`, then learns it.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = match self.seasonal.z_then_learn(at, x) {
            Some(z) => self.scorer.score(Some(z)),
            None => {
                let z = (self.cold.n >= self.cold_warm_up())
                    .then(|| z_of(x, self.cold.mean, self.cold.std()));
                self.cold_scorer.score(z)
            }
        };
        self.cold.push(x, self.cold_alpha);
        self.trend.push(x);
        s
    }
}
