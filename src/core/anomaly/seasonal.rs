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
use super::basic::{admit, scale_floor};
use super::score::{Scorer, ScorerParams};
use super::stats::Ewm;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// The span of timestamps that fall in the bucket located last (derived from the
    /// timestamps alone, so not persisted and ignored by `==`).
    #[serde(skip)]
    span: BucketSpan,
}

/// The milliseconds `[lo, hi)` that fall in bucket `index`: consecutive timestamps
/// usually share a bucket, and two compares are cheaper than the divisions that locate
/// one. Empty (`lo == hi`) until the first lookup. A cache: it never changes a result,
/// it is not serialised, any two compare equal and its `Debug` form shows no contents
/// (a state restored from JSON prints like the original).
#[derive(Clone, Default)]
struct BucketSpan {
    lo: i64,
    hi: i64,
    index: usize,
}

impl PartialEq for BucketSpan {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for BucketSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(cache)")
    }
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
            span: BucketSpan::default(),
        }
    }

    /// The bucket of `at`: whole seconds into the period, times `buckets / period_secs`,
    /// rounded down.
    fn bucket(&self, at: Timestamp) -> usize {
        let secs = at.as_millis().div_euclid(1000);
        let phase = secs.rem_euclid(self.period_secs);
        let b = match i64::try_from(self.buckets)
            .ok()
            .and_then(|n| phase.checked_mul(n))
        {
            Some(scaled) => scaled / self.period_secs,
            // Only with absurd bucket counts; i128 cannot overflow.
            None => {
                ((i128::from(phase) * self.buckets as i128) / i128::from(self.period_secs)) as i64
            }
        };
        b as usize
    }

    /// The bucket of `at`, as `bucket`, from the span cache when `at` falls in the same
    /// bucket as the previous lookup (at 15-second ticks and half-hour buckets, 119 times
    /// out of 120); otherwise computes it and the span of milliseconds it covers.
    #[inline]
    fn locate(&mut self, at: Timestamp) -> usize {
        let ms = at.as_millis();
        if self.span.lo <= ms && ms < self.span.hi {
            return self.span.index;
        }
        let b = self.bucket(at);
        self.span = self.span_of(ms, b).unwrap_or_default();
        b
    }

    /// The milliseconds of bucket `b` in the period that holds `ms`: bucket b holds the
    /// phases p (whole seconds) with b·P ≤ p·B < (b+1)·P, i.e. from ceil(b·P/B) up to
    /// ceil((b+1)·P/B) excluded. `None` on overflow (timestamps near the ends of i64).
    fn span_of(&self, ms: i64, b: usize) -> Option<BucketSpan> {
        let (period, n) = (self.period_secs, i64::try_from(self.buckets).ok()?);
        let secs = ms.div_euclid(1000);
        let start = secs - secs.rem_euclid(period);
        let first_ms = |b: i64| {
            let phase = b.checked_mul(period)?.checked_add(n - 1)? / n;
            start.checked_add(phase)?.checked_mul(1000)
        };
        let bi = i64::try_from(b).ok()?;
        Some(BucketSpan {
            lo: first_ms(bi)?,
            hi: first_ms(bi + 1)?,
            index: b,
        })
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
        self.predict_in(self.bucket(at))
    }

    /// Residual scale (EWMA RMS of the prediction error).
    pub fn scale(&self) -> f64 {
        self.mse.sqrt()
    }

    /// Residual scale at `at`: the larger of the overall RMS error and the worst RMS
    /// error of this bucket and its `neighbours` on each side (events that recur daily
    /// drift by a few minutes).
    pub fn scale_at(&self, at: Timestamp) -> f64 {
        self.scale_in(self.bucket(at))
    }

    /// `scale_at` for bucket `b`.
    #[inline]
    fn scale_in(&self, b: usize) -> f64 {
        let nb = self.buckets;
        let k = self.neighbours.min(nb / 2);
        let mut worst = self.mse;
        // b - k ..= b + k, wrapping around the period; every value is finite and
        // non-negative, so a plain comparison is the maximum.
        if b >= k && b + k < nb {
            for &m in &self.bucket_mse[b - k..=b + k] {
                if m > worst {
                    worst = m;
                }
            }
        } else {
            for j in 0..=2 * k {
                let m = self.bucket_mse[(b + nb + j - k) % nb];
                if m > worst {
                    worst = m;
                }
            }
        }
        // sqrt is monotone, so this is the larger of the two RMS errors.
        worst.sqrt()
    }

    /// Signed z of `x` in bucket `b`: the residual over the larger of the bucket's scale
    /// and the relative floor (exactly 0 when `x` is the prediction, ±1e6 instead of an
    /// overflow); `None` if the bucket has not been seen.
    #[inline]
    fn z_in(&self, b: usize, x: f64) -> Option<f64> {
        let r = x - self.predict_in(b)?;
        if r == 0.0 {
            return Some(0.0);
        }
        let z = r / self.scale_in(b).max(scale_floor(x));
        Some(if z.is_finite() { z } else { r.signum() * 1e6 })
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
        let b = self.locate(at);
        self.learn_in(at, b, x);
    }

    /// `predict` for bucket `b`.
    fn predict_in(&self, b: usize) -> Option<f64> {
        Some(self.level.mean + self.season[b]?)
    }

    /// `learn` for `at` in bucket `b`.
    #[inline]
    fn learn_in(&mut self, at: Timestamp, b: usize, x: f64) {
        if self.start.is_none() {
            self.start = Some(at);
        }
        // Errors count only once a full period has passed: before that a bucket is
        // compared with its own first minutes, not with the previous day (or week).
        if self.warm(at)
            && let Some(p) = self.predict_in(b)
        {
            let r = x - p;
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
            // max(alpha, 1/seen) without the division once 1/seen is clearly below alpha.
            let n = f64::from(*seen);
            let a = if n * self.bucket_alpha > 1.0 + 1e-9 {
                self.bucket_alpha
            } else {
                self.bucket_alpha.max(1.0 / n)
            };
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

    /// Which profile predicts `at`: `Some(true)` for the weekly one once trusted and
    /// better, `Some(false)` for the daily one once warm; `None` during warm-up.
    fn use_weekly(&self, at: Timestamp) -> Option<bool> {
        let daily = &self.daily;
        if !daily.warm(at) || !daily.scale_ready(Self::MIN_ERRORS) {
            return None;
        }
        // Lower mean squared error, lower RMS error.
        Some(self.weekly.as_ref().is_some_and(|w| {
            w.mse < daily.mse
                && w.scale_ready(Self::MIN_ERRORS)
                && w.observed_for(at, WEEK_SECS.saturating_add(self.weekly_trust_secs))
        }))
    }

    /// The profile that predicts `at` (see `use_weekly`).
    fn profile(&self, at: Timestamp) -> Option<&SeasonalProfile> {
        match self.use_weekly(at)? {
            true => self.weekly.as_ref(),
            false => Some(&self.daily),
        }
    }

    /// The value expected at `at`, once warm.
    pub fn predict(&self, at: Timestamp) -> Option<f64> {
        self.profile(at)?.predict(at)
    }

    /// Signed z of `x` at `at`, once warm (does not update).
    pub fn z(&self, at: Timestamp, x: f64) -> Option<f64> {
        let p = self.profile(at)?;
        p.z_in(p.bucket(at), x)
    }

    /// Learns `x` at `at`.
    pub fn learn(&mut self, at: Timestamp, x: f64) {
        self.daily.learn(at, x);
        if let Some(w) = &mut self.weekly {
            w.learn(at, x);
        }
    }

    /// `z(at, x)` then `learn(at, x)`, with the same results, locating each profile's
    /// bucket once (and usually from its cache): the per-point path of the detectors.
    pub fn z_then_learn(&mut self, at: Timestamp, x: f64) -> Option<f64> {
        let bd = self.daily.locate(at);
        let bw = self.weekly.as_mut().map(|w| w.locate(at));
        let weekly = self.use_weekly(at);
        let z = match (weekly, &self.weekly, bw) {
            (Some(true), Some(w), Some(bw)) => w.z_in(bw, x),
            (Some(_), _, _) => self.daily.z_in(bd, x),
            (None, _, _) => None,
        };
        self.daily.learn_in(at, bd, x);
        if let (Some(w), Some(bw)) = (&mut self.weekly, bw) {
            w.learn_in(at, bw, x);
        }
        z
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
        self.scorer.score(self.model.z_then_learn(at, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64, for deterministic test input.
    fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    #[test]
    fn the_bucket_cache_never_changes_a_bucket() {
        // Bucket counts that do and do not divide the period, timestamps before and after
        // the epoch, steps forward (small and large) and back, and the ends of i64.
        for (period, buckets) in [(DAY_SECS, 48), (WEEK_SECS, 336), (DAY_SECS, 7), (3, 1000)] {
            let mut p = SeasonalProfile::new(period, buckets, 0.1, &SeasonalParams::default());
            let mut ms = -3 * DAY_SECS * 1000 - 7;
            let mut x = 1;
            for _ in 0..50_000 {
                x = mix(x);
                ms += match x % 10 {
                    0 => -(((x >> 8) % 4_000_000) as i64),
                    1 => ((x >> 8) % 900_000_000) as i64,
                    _ => ((x >> 8) % 20_000) as i64,
                };
                let at = Timestamp(ms);
                assert_eq!(p.locate(at), p.bucket(at), "{period} s / {buckets} at {ms}");
            }
            for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
                let at = Timestamp(ms);
                assert_eq!(p.locate(at), p.bucket(at), "{period} s / {buckets} at {ms}");
                assert!(p.bucket(at) < buckets);
            }
        }
    }

    #[test]
    fn z_then_learn_is_z_followed_by_learn() {
        // Ten days at irregular steps with gaps, a weekly rhythm and spikes, so both
        // profiles, the switch between them and unseen buckets are all exercised.
        let (mut fused, mut split) = (SeasonalModel::default(), SeasonalModel::default());
        let mut ms = 1_396_224_000_000i64;
        let mut x = 7;
        let mut seen_weekly = false;
        while ms < 1_396_224_000_000 + 10 * DAY_SECS * 1000 {
            x = mix(x);
            ms += if x % 500 == 0 {
                3 * 3_600_000
            } else {
                60_000 + (x % 240_000) as i64
            };
            let day = ms / 86_400_000 % 7;
            let v = if day < 5 { 100.0 } else { 30.0 }
                + (x >> 40) as f64 / (1u64 << 24) as f64
                + if x % 997 == 0 { 80.0 } else { 0.0 };
            let at = Timestamp(ms);
            let want = split.z(at, v);
            split.learn(at, v);
            let got = fused.z_then_learn(at, v);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "at {ms}");
            assert_eq!(fused, split);
            seen_weekly |= fused.use_weekly(at) == Some(true);
        }
        assert!(seen_weekly, "the weekly profile never took over");
    }
}
