//! Seasonal prediction from the timestamps: an additive Holt-Winters model whose seasonal
//! index is the *time of day* (or of week) bucket, not the tick count, so it works for any
//! sampling interval and survives missed ticks.
//!
//! The prediction for a point is `level + season[bucket]`; after scoring, the level learns
//! from the deseasonalised value and the bucket from the detrended one. The error is
//! divided by the larger of the profile's overall RMS error and the RMS error of this
//! time-of-day bucket and its neighbours, so a nightly batch job or a daily peak is judged
//! against its own noise. `SeasonalModel` runs a daily and a weekly profile side by side
//! and uses the weekly one once it has a day of track record and predicts better, so a
//! series with a weekday/weekend rhythm is judged against last week, and one with no
//! rhythm degrades to a smoothed level with time-of-day noise.

use super::Timestamp;
use super::basic::{admit, scale_floor, z_of};
use super::score::{Scorer, ScorerParams};
use super::stats::Ewm;
use serde::{Deserialize, Serialize};

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;
/// Seconds in a week.
pub const WEEK_SECS: i64 = 7 * DAY_SECS;

/// One seasonal profile: level + per-bucket offsets over a fixed period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonalProfile {
    /// Length of the season.
    period_secs: i64,
    /// Number of buckets the period is cut into.
    buckets: usize,
    /// Weight of the newest point in the level.
    alpha: f64,
    /// Weight of the newest point in its bucket's offset.
    gamma: f64,
    /// Deseasonalised level.
    level: Ewm,
    /// Offset of each bucket from the level; `None` until the bucket has been seen.
    season: Vec<Option<f64>>,
    /// First timestamp, to know when a full period has passed.
    start: Option<Timestamp>,
    /// Mean squared one-step prediction error (EWMA).
    mse: f64,
    /// Errors folded into `mse`.
    mse_n: u64,
    /// Per-bucket mean squared error (0 until the bucket has an error), so a bucket that
    /// is always noisy (a nightly batch job) is judged against its own noise.
    bucket_mse: Vec<f64>,
    /// Errors folded into each bucket's `bucket_mse` (saturating).
    bucket_errors: Vec<u32>,
    /// Weight of the newest squared error in `mse`.
    error_alpha: f64,
    /// Weight of the newest squared error in `bucket_mse`.
    bucket_alpha: f64,
    /// Neighbouring buckets each side whose error counts in `scale_at`.
    neighbours: usize,
}

impl SeasonalProfile {
    /// A profile over `period_secs` cut into `buckets` buckets, with the level, bucket
    /// and error weights of `p`.
    pub fn new(period_secs: i64, buckets: usize, gamma: f64, p: &SeasonalParams) -> Self {
        let buckets = buckets.max(1);
        SeasonalProfile {
            period_secs: period_secs.max(1),
            buckets,
            alpha: p.alpha,
            gamma,
            level: Ewm::default(),
            season: vec![None; buckets],
            start: None,
            mse: 0.0,
            mse_n: 0,
            bucket_mse: vec![0.0; buckets],
            bucket_errors: vec![0; buckets],
            error_alpha: p.error_alpha,
            bucket_alpha: p.bucket_error_alpha,
            neighbours: p.neighbours,
        }
    }

    fn bucket(&self, at: Timestamp) -> usize {
        let secs = at.as_millis().div_euclid(1000);
        let phase = secs.rem_euclid(self.period_secs);
        ((phase as i128 * self.buckets as i128) / self.period_secs as i128) as usize
    }

    /// True once a full period has been observed.
    pub fn warm(&self, at: Timestamp) -> bool {
        self.observed_for(at, self.period_secs)
    }

    /// True once `secs` seconds have passed since the first point.
    pub fn observed_for(&self, at: Timestamp, secs: i64) -> bool {
        self.start.is_some_and(|s| {
            at.as_millis().saturating_sub(s.as_millis()) >= secs.saturating_mul(1000)
        })
    }

    /// Predicted value at `at`, if its bucket has been seen.
    pub fn predict(&self, at: Timestamp) -> Option<f64> {
        let s = self.season[self.bucket(at)]?;
        Some(self.level.mean + s)
    }

    /// Residual scale (EWMA RMS of the prediction error).
    pub fn scale(&self) -> f64 {
        self.mse.sqrt()
    }

    /// Residual scale at `at`: the larger of the overall RMS error and the worst RMS
    /// error of this bucket and its `neighbours` on each side (events that recur daily
    /// drift by a few minutes).
    pub fn scale_at(&self, at: Timestamp) -> f64 {
        let b = self.bucket(at);
        let nb = self.buckets;
        let k = self.neighbours.min(nb / 2);
        let worst = (0..=2 * k)
            .map(|j| self.bucket_mse[(b + nb + j - k) % nb])
            .fold(0.0, f64::max);
        self.scale().max(worst.sqrt())
    }

    /// True once the error scale has been learnt from enough points.
    pub fn scale_ready(&self, min_errors: u64) -> bool {
        self.mse_n >= min_errors
    }

    /// Prediction error of `x` at `at`, if predictable (does not update).
    pub fn residual(&self, at: Timestamp, x: f64) -> Option<f64> {
        self.predict(at).map(|p| x - p)
    }

    /// Learns `x` at `at`.
    pub fn learn(&mut self, at: Timestamp, x: f64) {
        if self.start.is_none() {
            self.start = Some(at);
        }
        let b = self.bucket(at);
        // Errors count only once a full period has passed: before that a bucket is
        // compared with its own first minutes, not with the previous day (or week).
        if self.warm(at)
            && let Some(r) = self.residual(at, x)
        {
            let e = r * r;
            self.mse += if self.mse_n == 0 {
                e
            } else {
                self.error_alpha * (e - self.mse)
            };
            self.mse_n = self.mse_n.saturating_add(1);
            // Averaged until the bucket has seen 1/alpha errors, so it starts unbiased.
            let seen = &mut self.bucket_errors[b];
            *seen = seen.saturating_add(1);
            let a = self.bucket_alpha.max(1.0 / f64::from(*seen));
            let m = &mut self.bucket_mse[b];
            *m += a * (e - *m);
        }
        let deseason = x - self.season[b].unwrap_or(0.0);
        if self.level.n == 0 {
            self.level.push(x, 1.0);
        } else {
            self.level.push(deseason, self.alpha);
        }
        let off = x - self.level.mean;
        match &mut self.season[b] {
            Some(s) => *s += self.gamma * (off - *s),
            slot @ None => *slot = Some(off),
        }
    }
}

/// Parameters of the seasonal model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeasonalParams {
    /// Buckets per day (48: half-hours).
    pub daily_buckets: usize,
    /// Buckets per week (336: half-hours; 0: no weekly profile).
    pub weekly_buckets: usize,
    /// Weight of the newest point in the level.
    pub alpha: f64,
    /// Weight of the newest point in its daily bucket.
    pub gamma_daily: f64,
    /// Weight of the newest point in its weekly bucket.
    pub gamma_weekly: f64,
    /// Weight of the newest squared error in a profile's overall error.
    pub error_alpha: f64,
    /// Weight of the newest squared error in its bucket's error.
    pub bucket_error_alpha: f64,
    /// Neighbouring buckets each side whose error also counts.
    pub neighbours: usize,
    /// How long the weekly profile must have predicted before it can be used.
    pub weekly_trust_secs: i64,
}

impl Default for SeasonalParams {
    fn default() -> Self {
        SeasonalParams {
            daily_buckets: 48,
            weekly_buckets: 336,
            alpha: 0.1,
            gamma_daily: 0.1,
            gamma_weekly: 0.2,
            error_alpha: 0.01,
            bucket_error_alpha: 0.1,
            neighbours: 2,
            weekly_trust_secs: DAY_SECS,
        }
    }
}

/// Daily and weekly profiles side by side; predicts with the better one.
///
/// Gives a z once one day of timestamps has passed and the daily profile has made
/// `MIN_ERRORS` errors; the weekly profile can take over after eight days. O(1) per
/// point; the state is two arrays of buckets (48 + 336 by default), independent of the
/// sampling interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonalModel {
    /// Time-of-day profile.
    daily: SeasonalProfile,
    /// Time-of-week profile, if enabled.
    weekly: Option<SeasonalProfile>,
    /// How long the weekly profile must have predicted before it can be used.
    weekly_trust_secs: i64,
}

impl Default for SeasonalModel {
    fn default() -> Self {
        SeasonalModel::new(&SeasonalParams::default())
    }
}

impl SeasonalModel {
    /// Errors a profile must have made before its error scale is trusted.
    pub const MIN_ERRORS: u64 = 24;

    /// A model with these parameters.
    pub fn new(p: &SeasonalParams) -> Self {
        SeasonalModel {
            daily: SeasonalProfile::new(DAY_SECS, p.daily_buckets, p.gamma_daily, p),
            weekly: (p.weekly_buckets > 0)
                .then(|| SeasonalProfile::new(WEEK_SECS, p.weekly_buckets, p.gamma_weekly, p)),
            weekly_trust_secs: p.weekly_trust_secs.max(0),
        }
    }

    /// The profile that predicts `at`: the weekly one once trusted and better, else the
    /// daily one once warm; `None` during warm-up.
    fn profile(&self, at: Timestamp) -> Option<&SeasonalProfile> {
        let daily = &self.daily;
        if !daily.warm(at) || !daily.scale_ready(Self::MIN_ERRORS) {
            return None;
        }
        match &self.weekly {
            Some(w)
                if w.observed_for(at, WEEK_SECS.saturating_add(self.weekly_trust_secs))
                    && w.scale_ready(Self::MIN_ERRORS)
                    && w.scale() < daily.scale() =>
            {
                Some(w)
            }
            _ => Some(daily),
        }
    }

    /// The value expected at `at`, once warm.
    pub fn predict(&self, at: Timestamp) -> Option<f64> {
        self.profile(at)?.predict(at)
    }

    /// Signed z of `x` at `at`, once warm (does not update).
    pub fn z(&self, at: Timestamp, x: f64) -> Option<f64> {
        let p = self.profile(at)?;
        let r = p.residual(at, x)?;
        Some(z_of(r, 0.0, p.scale_at(at).max(scale_floor(x))))
    }

    /// Learns `x` at `at`.
    pub fn learn(&mut self, at: Timestamp, x: f64) {
        self.daily.learn(at, x);
        if let Some(w) = &mut self.weekly {
            w.learn(at, x);
        }
    }
}

/// Seasonal detector: the `SeasonalModel`'s z through the shared `Scorer`.
///
/// Warm-up: scores are 0 until one day of timestamps has passed, the daily profile has
/// made 24 errors, and `density` z values have been scored (one day + 36 points at
/// 5-minute sampling). Cost: O(1) per point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seasonal {
    /// The predictor.
    model: SeasonalModel,
    /// z to score.
    scorer: Scorer,
}

impl Seasonal {
    /// A seasonal detector with these model and scorer parameters.
    pub fn new(model: &SeasonalParams, scorer: ScorerParams) -> Self {
        Seasonal {
            model: SeasonalModel::new(model),
            scorer: Scorer::new(scorer),
        }
    }

    /// Scores `x` at `at`, then learns it.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = self.scorer.score(self.model.z(at, x));
        self.model.learn(at, x);
        s
    }
}
