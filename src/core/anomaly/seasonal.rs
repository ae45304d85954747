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
//!
//! Every memory is a time constant on the timestamps (`decay_weight`). A bucket's memory
//! is counted in the time spent *inside* the bucket: a daily offset that should forget
//! old days with a time constant of 36 h sees only an hour of each day, so it forgets with
//! a constant of 36 h / 24 = 1.5 h of bucket time. Every point then weighs its own step:
//! twelve 5-minute points in a bucket move it as much as one hourly point does, and an
//! hourly series learns its profile in as many days as a 5-minute one.
//!
//! Buckets are hours (24 a day, 168 a week): hourly data fills each one every period,
//! and the state is small. The offsets and per-bucket errors are kept as `f32` (`F32s`,
//! serialised as Z85 text), with NaN for "not seen yet", instead of a per-bucket counter:
//! the time weights need no count, and a bucket's first value or error sets it.

use super::Timestamp;
use super::basic::{admit, scale_floor};
use super::score::{Scorer, ScorerParams, secs_to_ms, tau_ms};
use super::stats::{Clock, DecayingMean, F32s, decay_weight, invisible_cache};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;
/// Seconds in a week.
pub const WEEK_SECS: i64 = 7 * DAY_SECS;

/// `x` as `f32`, saturating at the largest finite `f32` (only absurd inputs reach it).
fn f32_sat(x: f64) -> f32 {
    (x as f32).clamp(-f32::MAX, f32::MAX)
}

/// What one profile derives from `SeasonalParams` (not serialised: rebuilt from them).
#[derive(Clone, Copy, Debug, PartialEq)]
struct ProfileCfg {
    /// Length of the season (s).
    period_secs: i64,
    /// Number of buckets the period is cut into.
    buckets: usize,
    /// Neighbouring buckets each side whose error counts in `scale_in`.
    neighbours: usize,
    /// Time constant of the level (ms).
    level_tau: f64,
    /// Time constant of a bucket's offset, in bucket time (ms).
    season_tau: f64,
    /// Time constant of the overall error (ms).
    error_tau: f64,
    /// Time constant of a bucket's error, in bucket time (ms).
    bucket_error_tau: f64,
    /// How long errors must have been learnt before the scale is trusted (ms).
    scale_warm_up_ms: i64,
    /// Largest residual the level and offsets learn from, in scales (0: no limit).
    shift_clip: f64,
}

impl ProfileCfg {
    /// The profile over `period_secs` with offsets and bucket errors that forget with
    /// time constants `season_secs` and `bucket_error_secs` (in wall-clock time).
    fn new(
        p: &SeasonalParams,
        period_secs: i64,
        bucket_secs: u64,
        season_secs: u64,
        bucket_error_secs: u64,
    ) -> Self {
        let width = i64::try_from(bucket_secs)
            .unwrap_or(i64::MAX)
            .clamp(1, period_secs);
        let buckets = usize::try_from(period_secs / width).unwrap_or(1).max(1);
        let per_bucket = buckets as f64;
        ProfileCfg {
            period_secs,
            buckets,
            neighbours: usize::try_from((p.neighbour_secs as f64 / width as f64).round() as u64)
                .unwrap_or(0)
                .min(buckets / 2),
            level_tau: tau_ms(p.level_secs),
            season_tau: tau_ms(season_secs) / per_bucket,
            error_tau: tau_ms(p.error_secs),
            bucket_error_tau: tau_ms(bucket_error_secs) / per_bucket,
            scale_warm_up_ms: secs_to_ms(p.scale_warm_up_secs),
            shift_clip: if p.shift_clip.is_finite() {
                p.shift_clip.max(0.0)
            } else {
                0.0
            },
        }
    }
}

/// The weights of one profile's four memories for the last step: with regular sampling
/// the step repeats, so one compare replaces four `exp`s. A cache (not serialised): the
/// time constants are the profile's, fixed for its lifetime.
#[derive(Clone, Copy)]
struct ProfileWeights {
    /// Step of the cached weights (`i64::MIN`: none yet).
    dt: i64,
    /// Level, offset, overall error and bucket error weights.
    level: f64,
    season: f64,
    error: f64,
    bucket_error: f64,
}

impl Default for ProfileWeights {
    fn default() -> Self {
        ProfileWeights {
            dt: i64::MIN,
            level: 0.0,
            season: 0.0,
            error: 0.0,
            bucket_error: 0.0,
        }
    }
}

impl ProfileWeights {
    /// The weights for a step of `dt` ms (bit-identical to `decay_weight`).
    #[inline]
    fn at(&mut self, dt: i64, cfg: &ProfileCfg) -> Self {
        if dt != self.dt {
            *self = ProfileWeights {
                dt,
                level: decay_weight(dt, cfg.level_tau),
                season: decay_weight(dt, cfg.season_tau),
                error: decay_weight(dt, cfg.error_tau),
                bucket_error: decay_weight(dt, cfg.bucket_error_tau),
            };
        }
        *self
    }
}

invisible_cache!(ProfileWeights);

/// One seasonal profile: level + per-bucket offsets over a fixed period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonalProfile {
    /// Deseasonalised level (`None` before the first point).
    level: Option<f64>,
    /// Offset of each bucket from the level; NaN until the bucket has been seen.
    season: F32s,
    /// Per-bucket mean squared error (NaN until the bucket has an error), so a bucket
    /// that is always noisy (a nightly batch job) is judged against its own noise.
    bucket_mse: F32s,
    /// First timestamp (ms), to know when a full period has passed.
    start: Option<i64>,
    /// Mean squared one-step prediction error (bias-free, in time).
    mse: DecayingMean,
    /// Time of the first error (ms), for the scale's warm-up.
    errors_since: Option<i64>,
    /// The span of timestamps that fall in the bucket located last (derived from the
    /// timestamps alone, so not persisted and ignored by `==`).
    #[serde(skip)]
    span: BucketSpan,
    /// Weights of the last step.
    #[serde(skip)]
    weights: ProfileWeights,
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

invisible_cache!(BucketSpan);

impl SeasonalProfile {
    /// An empty profile of `buckets` buckets.
    fn new(buckets: usize) -> Self {
        SeasonalProfile {
            level: None,
            season: F32s(vec![f32::NAN; buckets]),
            bucket_mse: F32s(vec![f32::NAN; buckets]),
            start: None,
            mse: DecayingMean::default(),
            errors_since: None,
            span: BucketSpan::default(),
            weights: ProfileWeights::default(),
        }
    }

    /// The bucket of `at`: whole seconds into the period, times `buckets / period_secs`,
    /// rounded down.
    fn bucket(at: Timestamp, cfg: &ProfileCfg) -> usize {
        let secs = at.as_millis().div_euclid(1000);
        let phase = secs.rem_euclid(cfg.period_secs);
        let b = match i64::try_from(cfg.buckets)
            .ok()
            .and_then(|n| phase.checked_mul(n))
        {
            Some(scaled) => scaled / cfg.period_secs,
            // Only with absurd bucket counts; i128 cannot overflow.
            None => {
                ((i128::from(phase) * cfg.buckets as i128) / i128::from(cfg.period_secs)) as i64
            }
        };
        b as usize
    }

    /// The bucket of `at`, as `bucket`, from the span cache when `at` falls in the same
    /// bucket as the previous lookup (at 15-second ticks and hourly buckets, 239 times
    /// out of 240); otherwise computes it and the span of milliseconds it covers.
    #[inline]
    fn locate(&mut self, at: Timestamp, cfg: &ProfileCfg) -> usize {
        let ms = at.as_millis();
        if self.span.lo <= ms && ms < self.span.hi {
            return self.span.index;
        }
        let b = Self::bucket(at, cfg);
        self.span = Self::span_of(ms, b, cfg).unwrap_or_default();
        b
    }

    /// The milliseconds of bucket `b` in the period that holds `ms`: bucket b holds the
    /// phases p (whole seconds) with b·P ≤ p·B < (b+1)·P, i.e. from ceil(b·P/B) up to
    /// ceil((b+1)·P/B) excluded. `None` on overflow (timestamps near the ends of i64).
    fn span_of(ms: i64, b: usize, cfg: &ProfileCfg) -> Option<BucketSpan> {
        let (period, n) = (cfg.period_secs, i64::try_from(cfg.buckets).ok()?);
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

    /// True once `secs` seconds have passed since the first point.
    pub fn observed_for(&self, at: Timestamp, secs: i64) -> bool {
        self.start
            .is_some_and(|s| at.as_millis().saturating_sub(s) >= secs.saturating_mul(1000))
    }

    /// Residual scale (RMS of the prediction error).
    pub fn scale(&self) -> f64 {
        self.mse.mean.sqrt()
    }

    /// Residual scale in bucket `b`: the larger of the overall RMS error and the worst
    /// RMS error of this bucket and its `neighbours` on each side (events that recur
    /// daily drift by a few minutes).
    #[inline]
    fn scale_in(&self, b: usize, cfg: &ProfileCfg) -> f64 {
        let nb = cfg.buckets;
        let k = cfg.neighbours;
        let mut worst = self.mse.mean;
        // b - k ..= b + k, wrapping around the period; NaN (no error yet) never compares
        // greater, so it is skipped.
        let errs = &self.bucket_mse.0;
        if b >= k && b + k < nb {
            for &m in &errs[b - k..=b + k] {
                if f64::from(m) > worst {
                    worst = f64::from(m);
                }
            }
        } else {
            for j in 0..=2 * k {
                let m = f64::from(errs[(b + nb + j - k) % nb]);
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
    fn z_in(&self, b: usize, x: f64, cfg: &ProfileCfg) -> Option<f64> {
        self.z_and_scale_in(b, x, cfg).0
    }

    /// `z_in`, and the scale it divided by when it computed one (`learn_in` clips by the
    /// same scale, so the per-point path computes it once).
    #[inline]
    fn z_and_scale_in(&self, b: usize, x: f64, cfg: &ProfileCfg) -> (Option<f64>, Option<f64>) {
        let Some(p) = self.predict_in(b) else {
            return (None, None);
        };
        let r = x - p;
        if r == 0.0 {
            return (Some(0.0), None);
        }
        let scale = self.scale_in(b, cfg).max(scale_floor(x));
        let z = r / scale;
        (
            Some(if z.is_finite() { z } else { r.signum() * 1e6 }),
            Some(scale),
        )
    }

    /// True once errors have been learnt for the scale's warm-up and there are two (a
    /// mean of one squared error is that error).
    fn scale_ready(&self, at: Timestamp, cfg: &ProfileCfg) -> bool {
        self.mse.n >= 2
            && self
                .errors_since
                .is_some_and(|s| at.as_millis().saturating_sub(s) >= cfg.scale_warm_up_ms)
    }

    /// `predict` for bucket `b`.
    #[inline]
    fn predict_in(&self, b: usize) -> Option<f64> {
        let s = self.season.0[b];
        if s.is_nan() {
            return None;
        }
        Some(self.level? + f64::from(s))
    }

    /// Learns `x` at `at` in bucket `b`, `dt_ms` after the previous point; `scale` is
    /// `scale_in(b).max(scale_floor(x))` when the caller has it already.
    #[inline]
    fn learn_in(
        &mut self,
        at: Timestamp,
        dt_ms: Option<i64>,
        b: usize,
        x: f64,
        cfg: &ProfileCfg,
        scale: Option<f64>,
    ) {
        let at_ms = at.as_millis();
        self.start.get_or_insert(at_ms);
        let w = self.weights.at(dt_ms.unwrap_or(0), cfg);
        // How far one residual may move the level and the offset: `shift_clip` scales,
        // the scale being the one the point was judged by (before this error enters it).
        // A sustained shift then stays surprising for hours instead of being learnt in
        // one or two points (at hourly sampling the level weighs a point 0.63), and the
        // model still follows it, linearly in time, so a real new level is learnt.
        let limit = (cfg.shift_clip > 0.0 && self.scale_ready(at, cfg)).then(|| {
            cfg.shift_clip * scale.unwrap_or_else(|| self.scale_in(b, cfg).max(scale_floor(x)))
        });
        let clip = |r: f64| match limit {
            Some(l) => r.clamp(-l, l),
            None => r,
        };
        // Errors count only once a full period has passed: before that a bucket is
        // compared with its own first minutes, not with the previous day (or week).
        if self.observed_for(at, cfg.period_secs)
            && let Some(p) = self.predict_in(b)
        {
            let r = x - p;
            let e = r * r;
            self.mse.push(e, w.error);
            self.errors_since.get_or_insert(at_ms);
            let m = &mut self.bucket_mse.0[b];
            *m = if m.is_nan() {
                f32_sat(e)
            } else {
                let m64 = f64::from(*m);
                f32_sat(m64 + w.bucket_error * (e - m64))
            };
        }
        let s = self.season.0[b];
        let level = match self.level {
            None => x,
            Some(l) => {
                let deseason = if s.is_nan() { x } else { x - f64::from(s) };
                l + w.level * clip(deseason - l)
            }
        };
        self.level = Some(level);
        let off = x - level;
        self.season.0[b] = if s.is_nan() {
            f32_sat(off)
        } else {
            let s64 = f64::from(s);
            f32_sat(s64 + w.season * clip(off - s64))
        };
    }
}

/// Parameters of the seasonal model (defaults in docs/anomaly.md, with the reason for
/// each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeasonalParams {
    /// Width of a daily bucket (1 h: 24 a day).
    pub daily_bucket_secs: u64,
    /// Width of a weekly bucket (1 h: 168 a week).
    pub weekly_bucket_secs: u64,
    /// Whether to run the weekly profile.
    pub weekly: bool,
    /// Time constant of the level (1 h: the scorer's density window, so a change the
    /// level absorbs shows for at least one window).
    pub level_secs: u64,
    /// Time constant of the daily offsets (36 h).
    pub daily_secs: u64,
    /// Time constant of the weekly offsets (5 days).
    pub weekly_secs: u64,
    /// Time constant of a profile's overall error (8 h).
    pub error_secs: u64,
    /// Time constant of a daily bucket's error (36 h).
    pub daily_error_secs: u64,
    /// Time constant of a weekly bucket's error (10 days).
    pub weekly_error_secs: u64,
    /// Time each side of a bucket whose buckets' errors also count (1 h).
    pub neighbour_secs: u64,
    /// How long a profile must have made errors before its scale is trusted (2 h).
    pub scale_warm_up_secs: u64,
    /// How long the weekly profile must have predicted before it can be used (1 week:
    /// a full cycle of its own buckets, so it is not judged better on the part of the
    /// week it has seen twice).
    pub weekly_trust_secs: i64,
    /// Largest residual the level and the offsets learn from, in units of the scale the
    /// point was judged by (3, the usual outlier bound; 0: no limit): a sustained shift
    /// stays surprising for hours instead of being learnt in one or two points.
    pub shift_clip: f64,
}

impl Default for SeasonalParams {
    fn default() -> Self {
        SeasonalParams {
            daily_bucket_secs: 3_600,
            weekly_bucket_secs: 3_600,
            weekly: false,
            level_secs: 3_600,
            daily_secs: 36 * 3_600,
            weekly_secs: 5 * 86_400,
            error_secs: 8 * 3_600,
            daily_error_secs: 36 * 3_600,
            weekly_error_secs: 10 * 86_400,
            neighbour_secs: 3_600,
            scale_warm_up_secs: 2 * 3_600,
            weekly_trust_secs: WEEK_SECS,
            shift_clip: 3.0,
        }
    }
}

impl SeasonalParams {
    /// True for the defaults (which a serialised state then leaves out).
    pub fn is_default(&self) -> bool {
        *self == SeasonalParams::default()
    }

    /// The daily and weekly profiles' derived settings.
    fn cfgs(&self) -> [ProfileCfg; 2] {
        [
            ProfileCfg::new(
                self,
                DAY_SECS,
                self.daily_bucket_secs,
                self.daily_secs,
                self.daily_error_secs,
            ),
            ProfileCfg::new(
                self,
                WEEK_SECS,
                self.weekly_bucket_secs,
                self.weekly_secs,
                self.weekly_error_secs,
            ),
        ]
    }
}

/// Daily and weekly profiles side by side; predicts with the better one.
///
/// Gives a z once one day of timestamps has passed and the daily profile has made errors
/// for two hours; the weekly profile can take over after two weeks. O(1) per point; the
/// state is two arrays of hourly buckets (24 + 168 by default), independent of the
/// sampling interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SeasonalModelState")]
pub struct SeasonalModel {
    /// Parameters (left out of the serialised state when they are the defaults).
    #[serde(skip_serializing_if = "SeasonalParams::is_default")]
    params: SeasonalParams,
    /// Time-of-day profile.
    daily: SeasonalProfile,
    /// Time-of-week profile, if enabled.
    weekly: Option<SeasonalProfile>,
    /// What the profiles derive from `params` (rebuilt on restore).
    #[serde(skip)]
    cfg: [ProfileCfg; 2],
}

/// The serialised form of `SeasonalModel`, from which the derived settings are rebuilt.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeasonalModelState {
    #[serde(default)]
    params: SeasonalParams,
    daily: SeasonalProfile,
    weekly: Option<SeasonalProfile>,
}

impl From<SeasonalModelState> for SeasonalModel {
    fn from(s: SeasonalModelState) -> Self {
        let cfg = s.params.cfgs();
        // A state whose arrays do not match its parameters starts that profile afresh
        // rather than indexing out of bounds.
        let fit = |p: SeasonalProfile, c: &ProfileCfg| {
            if p.season.0.len() == c.buckets && p.bucket_mse.0.len() == c.buckets {
                p
            } else {
                SeasonalProfile::new(c.buckets)
            }
        };
        SeasonalModel {
            daily: fit(s.daily, &cfg[0]),
            weekly: s.weekly.map(|w| fit(w, &cfg[1])),
            params: s.params,
            cfg,
        }
    }
}

impl Default for SeasonalModel {
    fn default() -> Self {
        SeasonalModel::new(&SeasonalParams::default())
    }
}

impl SeasonalModel {
    /// A model with these parameters.
    pub fn new(p: &SeasonalParams) -> Self {
        let cfg = p.cfgs();
        SeasonalModel {
            daily: SeasonalProfile::new(cfg[0].buckets),
            weekly: p.weekly.then(|| SeasonalProfile::new(cfg[1].buckets)),
            params: p.clone(),
            cfg,
        }
    }

    /// Which profile predicts `at`: `Some(true)` for the weekly one once trusted and
    /// better, `Some(false)` for the daily one once warm; `None` during warm-up.
    fn use_weekly(&self, at: Timestamp) -> Option<bool> {
        let [dc, wc] = &self.cfg;
        let daily = &self.daily;
        if !daily.observed_for(at, dc.period_secs) || !daily.scale_ready(at, dc) {
            return None;
        }
        let trust = WEEK_SECS.saturating_add(self.params.weekly_trust_secs.max(0));
        // Lower mean squared error, lower RMS error.
        Some(self.weekly.as_ref().is_some_and(|w| {
            w.mse.mean < daily.mse.mean && w.scale_ready(at, wc) && w.observed_for(at, trust)
        }))
    }

    /// True once `secs` seconds have passed since the first point learnt.
    pub fn observed_for(&self, at: Timestamp, secs: i64) -> bool {
        self.daily.observed_for(at, secs)
    }

    /// True once the model gives a z (and stays so: warm-ups only end).
    pub fn is_warm(&self, at: Timestamp) -> bool {
        self.use_weekly(at).is_some()
    }

    /// The value expected at `at`, once warm.
    pub fn predict(&self, at: Timestamp) -> Option<f64> {
        let (p, c) = match self.use_weekly(at)? {
            true => (self.weekly.as_ref()?, &self.cfg[1]),
            false => (&self.daily, &self.cfg[0]),
        };
        p.predict_in(SeasonalProfile::bucket(at, c))
    }

    /// Signed z of `x` at `at`, once warm (does not update).
    pub fn z(&self, at: Timestamp, x: f64) -> Option<f64> {
        let (p, c) = match self.use_weekly(at)? {
            true => (self.weekly.as_ref()?, &self.cfg[1]),
            false => (&self.daily, &self.cfg[0]),
        };
        p.z_in(SeasonalProfile::bucket(at, c), x, c)
    }

    /// Learns `x` at `at`, `dt_ms` after the previous point (`None` for the first).
    pub fn learn(&mut self, at: Timestamp, dt_ms: Option<i64>, x: f64) {
        let [dc, wc] = self.cfg;
        let b = self.daily.locate(at, &dc);
        self.daily.learn_in(at, dt_ms, b, x, &dc, None);
        if let Some(w) = &mut self.weekly {
            let b = w.locate(at, &wc);
            w.learn_in(at, dt_ms, b, x, &wc, None);
        }
    }

    /// `z(at, x)` then `learn(at, dt_ms, x)`, with the same results, locating each
    /// profile's bucket once (and usually from its cache): the per-point path of the
    /// detectors.
    pub fn z_then_learn(&mut self, at: Timestamp, dt_ms: Option<i64>, x: f64) -> Option<f64> {
        let [dc, wc] = self.cfg;
        let bd = self.daily.locate(at, &dc);
        let bw = self.weekly.as_mut().map(|w| w.locate(at, &wc));
        let weekly = self.use_weekly(at);
        let (z, daily_scale) = match (weekly, &self.weekly, bw) {
            (Some(true), Some(w), Some(bw)) => (w.z_in(bw, x, &wc), None),
            (Some(_), _, _) => self.daily.z_and_scale_in(bd, x, &dc),
            (None, _, _) => (None, None),
        };
        self.daily.learn_in(at, dt_ms, bd, x, &dc, daily_scale);
        if let (Some(w), Some(bw)) = (&mut self.weekly, bw) {
            w.learn_in(at, dt_ms, bw, x, &wc, None);
        }
        z
    }
}

/// Seasonal detector: the `SeasonalModel`'s z through the shared `Scorer`.
///
/// Warm-up: scores are 0 until one day of timestamps has passed, the daily profile has
/// made errors for two hours, and the scorer has had z values for an hour (one day and
/// three hours at any sampling rate). Cost: O(1) per point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seasonal {
    /// Time of the previous point.
    clock: Clock,
    /// The predictor.
    model: SeasonalModel,
    /// z to score.
    scorer: Scorer,
}

impl Seasonal {
    /// A seasonal detector with these model and scorer parameters.
    pub fn new(model: &SeasonalParams, scorer: ScorerParams) -> Self {
        Seasonal {
            clock: Clock::default(),
            model: SeasonalModel::new(model),
            scorer: Scorer::new(scorer),
        }
    }

    /// How long after the first point every score is 0, at least: a day, the scale's
    /// warm-up, then the scorer's density window.
    pub fn warm_up(&self) -> std::time::Duration {
        let p = &self.model.params;
        std::time::Duration::from_secs(DAY_SECS as u64 + p.scale_warm_up_secs)
            + self.scorer.warm_up()
    }

    /// Scores `x` at `at`, then learns it.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let dt = self.clock.step(at.as_millis());
        let z = self.model.z_then_learn(at, dt, x);
        self.scorer.score(at, dt, z)
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
        for (period, buckets) in [(DAY_SECS, 24), (WEEK_SECS, 168), (DAY_SECS, 7), (3, 1000)] {
            let cfg = ProfileCfg {
                period_secs: period,
                buckets,
                ..SeasonalParams::default().cfgs()[0]
            };
            let mut p = SeasonalProfile::new(buckets);
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
                let want = SeasonalProfile::bucket(at, &cfg);
                assert_eq!(p.locate(at, &cfg), want, "{period} s / {buckets} at {ms}");
            }
            for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
                let at = Timestamp(ms);
                let want = SeasonalProfile::bucket(at, &cfg);
                assert_eq!(p.locate(at, &cfg), want, "{period} s / {buckets} at {ms}");
                assert!(want < buckets);
            }
        }
    }

    #[test]
    fn z_then_learn_is_z_followed_by_learn() {
        // Sixteen days at irregular steps with gaps, a weekly rhythm and spikes, so both
        // profiles, the switch between them and unseen buckets are all exercised.
        let p = SeasonalParams {
            weekly: true,
            ..SeasonalParams::default()
        };
        let (mut fused, mut split) = (SeasonalModel::new(&p), SeasonalModel::new(&p));
        let mut ms = 1_396_224_000_000i64;
        let mut prev = None;
        let mut x = 7;
        let mut seen_weekly = false;
        while ms < 1_396_224_000_000 + 16 * DAY_SECS * 1000 {
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
            let dt = prev.map(|p| ms - p);
            prev = Some(ms);
            let want = split.z(at, v);
            split.learn(at, dt, v);
            let got = fused.z_then_learn(at, dt, v);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "at {ms}");
            assert_eq!(fused, split);
            seen_weekly |= fused.use_weekly(at) == Some(true);
        }
        assert!(seen_weekly, "the weekly profile never took over");
    }
}
