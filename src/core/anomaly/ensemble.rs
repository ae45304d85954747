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
//! - the weekly seasonal profile, when enabled (off by default), once it has predicted for
//!   a week and does better than the daily one (`SeasonalModel`).
//!
//! The z of the predictor in charge goes through the shared `Scorer` (bounded surprise,
//! 1-hour density, likelihood against the series' own history, 12-hour cooldown). Next to
//! it, a **far path**: the raw value's z against the far level (mean and variance of the
//! values, time constant 1 week), scored only beyond the record (the highest and lowest
//! values seen, relaxing towards the far level) and only 3.5 days after the first point,
//! max-ed with the likelihood before the cooldown, so either fires and both share one
//! quiet period. Why: the likelihood asks whether the recent *amount* of surprise is
//! unusual, so one value far outside the series' range (a short steep rise on a low
//! baseline, a shift the level learns within the hour) moves its 1-hour mean too little
//! to fire, most of all at hourly data; a causal z of the value against its long-run
//! range, as the simple baselines do, finds those (docs/anomaly-validation.md). A
//! least-squares line in time (`TimeLine`, time constant 1 h) is kept alongside for
//! `forecast`: O(1) per point, seven numbers.
//!
//! Why not average or max the z-score, MAD, EWMA and trend detectors as well: measured on
//! the NAB subset, every such combination scored lower than the seasonal predictor alone
//! (docs/anomaly.md has the numbers); the simpler predictors mostly add alarms on series
//! whose daily rhythm the seasonal profile already explains.

use super::Timestamp;
use super::basic::{Level, admit, forecast_steps, z_of};
use super::score::{Scorer, ScorerParams, tau_ms};
use super::seasonal::{SeasonalModel, SeasonalParams};
use super::stats::{Clock, Decay, Reciprocal, TimeLine, two_sided_decades};
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
    /// Time constant of the far level, the long-run mean and spread of the raw values
    /// (1 week; 0: no far path).
    pub far_secs: u64,
    /// How long after the first point the far path may score (3.5 days, the scorer's
    /// history time constant: a long-run spread needs a long run before it is trusted;
    /// with a day, the young record and spread flagged spiky series every few hours).
    pub far_warm_secs: u64,
    /// Decades of two-sided tail probability of the far z that reach the firing level
    /// (7, |z| ≈ 5.3: where the scorer's surprise saturates): the far score is
    /// decades / (2 · this).
    pub far_decades: f64,
    /// The far path scores only values beyond the record (the highest and lowest values
    /// seen, each relaxing towards the far level with time constant `far_secs`), so a
    /// spiky series is not flagged for spikes lower than a recent one (the record fades
    /// by about 13% of its distance from the level a day).
    pub far_record: bool,
}

impl Default for AuxParams {
    fn default() -> Self {
        AuxParams {
            cold_secs: 4 * 3_600,
            line_secs: 3_600,
            far_secs: 7 * 86_400,
            far_warm_secs: 84 * 3_600,
            far_decades: 7.0,
            far_record: true,
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
/// timestamps plus two hours of errors; the far path is armed after 3.5 days. Cost: O(1)
/// per point; the state is about 1.2 KB of JSON whatever the sampling interval.
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
    /// The far level: mean and variance of the raw values over days (`far_secs`).
    #[serde(default)]
    far: Level,
    /// The record: highest and lowest values seen, relaxing towards the far level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<(f64, f64)>,
    /// `1 / (2 · far_decades)` (a cache).
    #[serde(skip)]
    inv_far: Reciprocal,
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
                ..p.aux.clone()
            },
            far: Level::default(),
            record: None,
            inv_far: Reciprocal::default(),
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

    /// True while the scorer in charge caps scores after a firing (diagnostics).
    pub fn is_quiet(&self, at: Timestamp) -> bool {
        match &self.cold {
            Some(c) => c.scorer.is_quiet(at),
            None => self.scorer.is_quiet(at),
        }
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

    /// The far path's score of `x` (before it is learnt): the two-sided decades of its z
    /// against the far level, over `2 · far_decades`, so that `far_decades` decades reach
    /// the firing level. 0 while the far level is warming up, and below |z| = 3 (a score
    /// under 0.2 at the default, which cannot fire; it saves the polynomial on almost
    /// every point).
    #[inline]
    fn far_score(&mut self, at: Timestamp, x: f64) -> f64 {
        let p = &self.aux;
        if p.far_secs == 0
            || self.far.count() < 2
            || !self
                .seasonal
                .observed_for(at, i64::try_from(p.far_warm_secs).unwrap_or(i64::MAX))
        {
            return 0.0;
        }
        if p.far_record
            && let Some((hi, lo)) = self.record
            && (lo..=hi).contains(&x)
        {
            return 0.0;
        }
        let d = x - self.far.mean();
        let var = self.far.var();
        if d * d <= 9.0 * var {
            return 0.0;
        }
        let z = z_of(x, self.far.mean(), var.sqrt());
        (two_sided_decades(z) * self.inv_far.of(2.0 * p.far_decades)).clamp(0.0, 1.0)
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
        let far = self.far_score(at, x);
        if self.aux.far_secs > 0 {
            let a = self.far.learn(dt, x, tau_ms(self.aux.far_secs));
            if self.aux.far_record {
                // The record relaxes towards the far level as the level forgets: the
                // same weight, so a record that old spikes set fades with them.
                let (m, keep) = (self.far.mean(), 1.0 - a);
                self.record = Some(match self.record {
                    None => (x, x),
                    Some((hi, lo)) => (x.max(m + (hi - m) * keep), x.min(m - (m - lo) * keep)),
                });
            }
        }
        let s = match &mut self.cold {
            None => self.scorer.score_or(at, dt, z, far),
            Some(cold) => {
                let s = cold.scorer.score_or(at, dt, cold.level.z(x), far);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::anomaly::DEFAULT_THRESHOLD;

    const H: i64 = 3_600_000;
    /// Where the underlying signal starts (ms).
    const START: i64 = 1_396_224_000_000;

    /// Deterministic noise in [-1, 1) (SplitMix64).
    fn noise(i: u64) -> f64 {
        let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// A low baseline (10, noise ±1 per 5 minutes) over `days`, plus `extra(t)` (t in ms
    /// from the start), sampled every `every_ms` as the mean of the underlying 15-second
    /// signal over each interval, stamped at the interval's end (as `bench::variants`
    /// resamples).
    fn signal(days: i64, every_ms: i64, extra: impl Fn(i64) -> f64) -> Vec<(Timestamp, f64)> {
        let fine = 15_000i64;
        let per = every_ms / fine;
        let start = START;
        (0..days * 86_400_000 / every_ms)
            .map(|k| {
                let sum: f64 = (0..per)
                    .map(|j| {
                        let t = k * every_ms + j * fine;
                        10.0 + noise((t / 300_000) as u64) + extra(t)
                    })
                    .sum();
                (
                    Timestamp(start + (k + 1) * every_ms - fine),
                    sum / per as f64,
                )
            })
            .collect()
    }

    /// Times (ms from the start of the underlying signal) at which `e` flags `pts`.
    fn alarms(e: &mut Ensemble, pts: &[(Timestamp, f64)]) -> Vec<i64> {
        pts.iter()
            .filter(|&&(t, v)| e.update(t, v) >= DEFAULT_THRESHOLD)
            .map(|(t, _)| t.as_millis() - START)
            .collect()
    }

    /// The ensemble with a likelihood that can never fire: the far path alone.
    fn far_only() -> Ensemble {
        Ensemble::new(&EnsembleParams {
            scorer: ScorerParams {
                score_decades: 1e12,
                ..ScorerParams::default()
            },
            ..EnsembleParams::default()
        })
    }

    #[test]
    fn a_short_steep_rise_on_a_low_baseline_fires_the_far_path_in_time() {
        // A rise of +40 for 90 minutes at 4 days 10 h 20 min: the far path alone flags it
        // within two hours at 15 s, 5 min and hourly sampling (hourly data knows at the
        // end of the hour), and nothing before it; the default detector too.
        let rise = 4 * 86_400_000 + 10 * H + 20 * 60_000;
        let extra = |t: i64| {
            if (rise..rise + 90 * 60_000).contains(&t) {
                40.0
            } else {
                0.0
            }
        };
        let mut firsts = Vec::new();
        for every in [15_000, 300_000, H] {
            let pts = signal(6, every, extra);
            let far = alarms(&mut far_only(), &pts);
            assert!(
                far.first()
                    .is_some_and(|&t| (rise..rise + 2 * H).contains(&t)),
                "every {every} ms: far-path alarms {far:?} for a rise at {rise}"
            );
            let all = alarms(&mut Ensemble::default(), &pts);
            let first = *all
                .iter()
                .find(|&&t| t >= rise)
                .unwrap_or_else(|| panic!("every {every} ms: missed"));
            assert!(first - rise <= 2 * H, "every {every} ms: {all:?}");
            assert!(
                all.iter().all(|&t| !(rise - 86_400_000..rise).contains(&t)),
                "every {every} ms: early alarms {all:?}"
            );
            firsts.push(first);
        }
        let spread = firsts.iter().max().unwrap() - firsts.iter().min().unwrap();
        assert!(spread <= H + 15_000, "first alarms {firsts:?}");
    }

    #[test]
    fn the_record_keeps_spikes_lower_than_a_recent_one_from_flagging() {
        // One spike to 70 at 3.6 days (the far path is armed), then spikes to exactly 40
        // every 5 hours for four days: all far beyond the baseline's spread, but below
        // the record the first one set (it fades towards the level by about 13% a day),
        // so with the record only the first flags; without it the later ones flag as
        // often as the cooldown allows.
        let tall = 3 * 86_400_000 + 14 * H;
        let extra = |t: i64| {
            let base = 10.0 + noise((t / 300_000) as u64);
            if (tall..tall + 300_000).contains(&t) {
                70.0 - base
            } else if t > tall + H && t % (5 * H) < 300_000 {
                40.0 - base
            } else {
                0.0
            }
        };
        let pts = signal(8, 300_000, extra);
        let with = alarms(&mut far_only(), &pts);
        assert_eq!(with.len(), 1, "with the record: {with:?}");
        assert!((tall..tall + H).contains(&with[0]), "{with:?}");
        let mut without = Ensemble::new(&EnsembleParams {
            scorer: ScorerParams {
                score_decades: 1e12,
                ..ScorerParams::default()
            },
            aux: AuxParams {
                far_record: false,
                ..AuxParams::default()
            },
            ..EnsembleParams::default()
        });
        let without = alarms(&mut without, &pts);
        assert!(without.len() >= 5, "without the record: {without:?}");
    }

    #[test]
    fn the_far_path_waits_and_is_silent_on_a_constant_series() {
        // A jump of +1000 six hours in: the far path is not armed before 3.5 days, so it
        // is silent; on a constant series every score is exactly 0.
        let jump = 6 * H;
        let pts = signal(2, 300_000, |t| if t >= jump { 1000.0 } else { 0.0 });
        let mut e = far_only();
        for &(t, v) in &pts {
            let s = e.update(t, v);
            if t.as_millis() - START < 84 * H {
                assert!(s < DEFAULT_THRESHOLD, "far path before it is armed: {s}");
            }
        }
        let mut e = Ensemble::default();
        for k in 0..3 * 288 {
            assert_eq!(e.update(Timestamp(k * 300_000), 42.0), 0.0);
        }
    }

    #[test]
    fn without_the_far_path_the_state_has_no_record() {
        // far_secs = 0 turns the path off entirely: no record is kept and the far level
        // learns nothing (the previous detector's decisions).
        let mut e = Ensemble::new(&EnsembleParams {
            aux: AuxParams {
                far_secs: 0,
                ..AuxParams::default()
            },
            ..EnsembleParams::default()
        });
        for (t, v) in signal(2, 300_000, |_| 0.0) {
            e.update(t, v);
        }
        assert!(e.record.is_none());
        assert_eq!(e.far.count(), 0);
    }
}
