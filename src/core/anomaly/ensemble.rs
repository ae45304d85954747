//! The default detector: the best available predictor at each point, one shared scorer,
//! and a linear trend for forecasts.
//!
//! Predictors, from cold start to steady state:
//!
//! - a level (mean and variance, time constant 4 h, bias-free so it needs no warm-up of
//!   its own beyond the two points a variance needs) from the first points, so a daemon
//!   that has just started is not blind for a day; it has its own `Scorer`, so its
//!   cold-start surprises never pollute the main scorer's history. Both are dropped once
//!   the seasonal model has taken over (it never hands back), which keeps the state small;
//! - the daily seasonal profile once a day of timestamps has passed;
//! - the weekly seasonal profile once it has predicted for a week and does better than the
//!   daily one (`SeasonalModel`).
//!
//! The z of the predictor in charge goes through the shared `Scorer` (bounded surprise,
//! 1-hour density, likelihood against the series' own history, 12-hour cooldown). A
//! least-squares line in time (`TimeLine`, time constant 1 h) is kept alongside for
//! `forecast`: O(1) per point, seven numbers.
//!
//! Why not average or max the z-score, MAD, EWMA and trend detectors as well: measured on
//! the NAB subset, every such combination scored lower than the seasonal predictor alone
//! (docs/anomaly.md has the numbers); the simpler predictors mostly add alarms on series
//! whose daily rhythm the seasonal profile already explains.

use super::Timestamp;
use super::basic::{Level, admit, forecast_steps};
use super::score::{Scorer, ScorerParams, tau_ms};
use super::seasonal::{SeasonalModel, SeasonalParams};
use super::stats::{Clock, Decay, TimeLine};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Parameters of the ensemble (every field has a documented default).
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
    /// Time constant of the cold-start level (4 h).
    pub cold_secs: u64,
    /// Time constant of the forecasting line (1 h).
    pub line_secs: u64,
}

impl Default for AuxParams {
    fn default() -> Self {
        AuxParams {
            cold_secs: 4 * 3_600,
            line_secs: 3_600,
        }
    }
}

impl AuxParams {
    /// True for the defaults (which a serialised state then leaves out).
    pub fn is_default(&self) -> bool {
        *self == AuxParams::default()
    }
}

/// The cold-start predictor and its scorer, until the seasonal model takes over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ColdStart {
    /// Level and spread.
    level: Level,
    /// Scores the cold-start z.
    scorer: Scorer,
}

/// The default detector (see the module documentation).
///
/// Warm-up: scores are 0 until the cold-start scorer has had z values for an hour (from
/// the third point; `warm_up()`); the seasonal predictor takes over after one day of
/// timestamps plus two hours of errors. Cost: O(1) per point; the state is about 2.9 KB
/// of JSON whatever the sampling interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Time of the previous point and the usual step.
    clock: Clock,
    /// Daily and weekly profiles.
    seasonal: SeasonalModel,
    /// Scores the seasonal z.
    scorer: Scorer,
    /// Cold-start predictor; `None` once the seasonal model is in charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cold: Option<Box<ColdStart>>,
    /// Parameters (left out of the serialised state when they are the defaults).
    #[serde(default, skip_serializing_if = "AuxParams::is_default")]
    aux: AuxParams,
    /// The line through the recent points, for the forecasts.
    line: TimeLine,
    /// Weight of a point in the line for the last step (a cache).
    #[serde(skip)]
    line_weight: Decay,
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
            clock: Clock::default(),
            seasonal: SeasonalModel::new(&p.seasonal),
            scorer: Scorer::new(p.scorer.clone()),
            cold: Some(Box::new(ColdStart {
                level: Level::default(),
                scorer: Scorer::new(p.scorer.clone()),
            })),
            aux: AuxParams {
                cold_secs: p.aux.cold_secs.max(1),
                line_secs: p.aux.line_secs.max(1),
            },
            line: TimeLine::default(),
            line_weight: Decay::default(),
        }
    }

    /// How long after the first point every score is 0, at least (the scorer's density
    /// window; the cold-start z begins at the third point).
    pub fn warm_up(&self) -> Duration {
        self.scorer.warm_up()
    }

    /// True once the seasonal model is in charge.
    pub fn is_seasonal(&self) -> bool {
        self.cold.is_none()
    }

    /// The value expected `h` steps after the newest point, a step being the newest
    /// interval between points, from the line; `None` before two points. O(1).
    pub fn forecast(&self, h: u32) -> Option<f64> {
        forecast_steps(&self.line, h)
    }

    /// The value expected `after` the newest point, from the line; `None` before two
    /// points.
    pub fn forecast_after(&self, after: Duration) -> Option<f64> {
        let ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        self.line.value_at(self.line.newest()?.saturating_add(ms))
    }

    /// The forecasting line.
    pub fn trend(&self) -> &TimeLine {
        &self.line
    }

    /// Scores `x` at `at`, then learns it.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let dt = self.clock.step(at.as_millis());
        // The seasonal model stays warm once warm: the cold start is then done for good.
        // (An hour of the day not seen yet then scores 0 until it has been seen.)
        if self.cold.is_some() && self.seasonal.is_warm(at) {
            self.cold = None;
        }
        let z = self.seasonal.z_then_learn(at, dt, x);
        let s = match &mut self.cold {
            None => self.scorer.score(at, dt, z),
            Some(cold) => {
                let s = cold.scorer.score(at, dt, cold.level.z(x));
                cold.level.learn(dt, x, tau_ms(self.aux.cold_secs));
                s
            }
        };
        let a = self
            .line_weight
            .weight(dt.unwrap_or(0), tau_ms(self.aux.line_secs));
        self.line.push(at.as_millis(), x, a);
        s
    }
}
