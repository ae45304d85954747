//! Feed-forward: a short-horizon linear prediction of demand with a volatility margin, on
//! the samples' own timestamps.
//!
//! The ladder reacts to where demand will be when a switch takes effect (a reload takes
//! a tick or more), not where it was. A least-squares line over the samples of the last
//! `window` of sample time gives the trend (per second, so irregular sampling and gaps
//! bend nothing); the scatter of the samples around that line gives a margin, so a noisy
//! pipeline near its budget is treated as closer to it than a quiet one. Relaxing looks at
//! the worst demand of a longer window, so one quiet sample never relaxes protection. The
//! same line fit serves the explosion rule on the output.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Most samples kept. The policy layer refuses windows longer than this many ticks, so
/// the bound only bites when samples come much faster than the policy's tick; it keeps a
/// persisted engine small whatever the caller does.
pub const MAX_SAMPLES: usize = 256;

/// The trend window reaches back at least this many sampling intervals, whatever
/// `window` says: at coarse sampling (hourly data, one sample every few minutes of
/// engine time) a fixed 2 min window holds the latest sample alone, and the forecast
/// would be that sample with no trend. Four intervals give a line through five samples,
/// the fewest whose scatter says something; at the regular 15 s tick they are 1 min,
/// inside the 2 min window, so nothing changes there.
pub const MIN_TREND_INTERVALS: i64 = 4;

/// One healthy sample: when, and both signals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point(pub Timestamp, pub f64, pub f64);

/// Recent healthy samples (bounded by time and by `MAX_SAMPLES`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    points: VecDeque<Point>,
}

/// What the history says about demand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Demand expected at the horizon, plus the volatility margin; never below the latest.
    pub escalate: f64,
    /// Worst demand over the relax window (and the forecast), for relax decisions.
    pub relax: f64,
    /// The trend line's value at the latest sample carried to the horizon, without the
    /// volatility margin: the forecast with the latest sample's own noise removed.
    pub line: f64,
    /// Share of the trend window's variance its line explains (0 with fewer than two
    /// samples): near 1 for a clean rise, near 0 for noise or a lone spike.
    pub r2: f64,
    /// Sums of the line through the relax window's demand, or of the part of it the walk
    /// summed (the newest samples, inside `window`): finished only when asked.
    relax_line: LineSums,
    /// The relax window's samples, counted newest first, that `relax_line` still lacks
    /// (an empty range when it is complete).
    relax_rest: (usize, usize),
}

impl Forecast {
    /// The line through the relax window's demand (at least three samples), for the
    /// check that a relaxation does not walk into a rise still going on. `history` is
    /// the one that made this forecast, unchanged since.
    ///
    /// The forecast sums the samples inside `window` only; this continues over the
    /// older ones, in the same order, so the line is bit for bit the one a single walk
    /// over the relax window gives. It is wanted only when a relaxation is on the table
    /// (a few steps in a thousand), and summing the whole relax window at every step
    /// cost more than the rest of the forecast.
    pub fn relax_trend(&self, history: &History) -> Option<TrendFit> {
        let mut sums = self.relax_line;
        if let Some(latest) = history.latest() {
            let newest_first = history.points.iter().rev();
            let (from, to) = self.relax_rest;
            for p in newest_first.skip(from).take(to.saturating_sub(from)) {
                sums.add_older(-((latest.0.0 - p.0.0) as f64) * 1e-3, p.1);
            }
        }
        sums.finish(3)
    }
}

/// Which signal of a `Point`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// Demand.
    Input,
    /// Output.
    Output,
}

impl Point {
    fn get(&self, s: Series) -> f64 {
        match s {
            Series::Input => self.1,
            Series::Output => self.2,
        }
    }
}

/// A least-squares line through recent samples, on their timestamps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrendFit {
    /// Change per second.
    pub slope_per_sec: f64,
    /// Share of the variance the line explains, in [0, 1] (1 for a clean ramp, near 0 for
    /// noise or a lone spike).
    pub r2: f64,
    /// The line's value at the latest sample.
    pub fitted_latest: f64,
    /// Standard deviation of the samples around the line.
    pub residual_sd: f64,
    /// Samples in the fit.
    pub n: usize,
    /// Sample time from the first to the latest sample of the fit, in seconds (a float:
    /// building a `Duration` from one costs more than the rest of a short fit).
    pub span_secs: f64,
}

/// Running sums of a least-squares line fit, fed one point at a time (the one line fit
/// of the core: `fit_line`, and `History::forecast`'s single pass over two windows).
#[derive(Clone, Copy, Debug, PartialEq)]
struct LineSums {
    n: usize,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
    min_x: f64,
    max_x: f64,
    last_y: f64,
}

impl LineSums {
    const EMPTY: LineSums = LineSums {
        n: 0,
        sx: 0.0,
        sy: 0.0,
        sxx: 0.0,
        sxy: 0.0,
        syy: 0.0,
        min_x: f64::INFINITY,
        max_x: f64::NEG_INFINITY,
        last_y: 0.0,
    };

    /// The sums every point adds, whatever the order.
    #[inline]
    fn sum(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
    }

    #[inline]
    fn add(&mut self, x: f64, y: f64) {
        self.sum(x, y);
        // Comparisons, not `f64::min`: x is never NaN, and this is the hot loop.
        if x < self.min_x {
            self.min_x = x;
        }
        if x >= self.max_x {
            self.max_x = x;
            self.last_y = y;
        }
    }

    /// `add` for points fed newest first (x decreasing, as `History` walks back): the
    /// first point is the latest, the newest so far the oldest, with no comparisons.
    #[inline]
    fn add_older(&mut self, x: f64, y: f64) {
        if self.n == 0 {
            self.max_x = x;
            self.last_y = y;
        }
        self.sum(x, y);
        self.min_x = x;
    }

    fn finish(&self, min_points: usize) -> Option<TrendFit> {
        let LineSums {
            n,
            sx,
            sy,
            sxx,
            sxy,
            syy,
            min_x,
            max_x,
            last_y,
        } = *self;
        if n < min_points.max(1) {
            return None;
        }
        let nf = n as f64;
        let vxx = sxx - sx * sx / nf;
        let vyy = (syy - sy * sy / nf).max(0.0);
        let cov = sxy - sx * sy / nf;
        if n < 2 || vxx <= 1e-12 {
            // One sample (or all at one instant): a flat line through the mean.
            return Some(TrendFit {
                slope_per_sec: 0.0,
                r2: 0.0,
                fitted_latest: if n == 1 { last_y } else { sy / nf },
                residual_sd: if n < 2 { 0.0 } else { (vyy / nf).sqrt() },
                n,
                span_secs: 0.0,
            });
        }
        let slope = cov / vxx;
        let r2 = if vyy > 0.0 {
            (cov * cov / (vxx * vyy)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let rss = (vyy - slope * cov).max(0.0);
        Some(TrendFit {
            slope_per_sec: slope,
            r2,
            fitted_latest: sy / nf + slope * (max_x - sx / nf),
            residual_sd: if n > 2 {
                (rss / (nf - 2.0)).sqrt()
            } else {
                0.0
            },
            n,
            span_secs: (max_x - min_x).max(0.0),
        })
    }
}

/// Fits `y = a + b·x` through `(x, y)` points, x in seconds, in any order (the one line
/// fit of the core: demand forecast, explosion trend, and the relax-time explosion check
/// all use it). "Latest" is the point of largest x. `None` with fewer than `min_points`
/// points.
pub fn fit_line(points: impl Iterator<Item = (f64, f64)>, min_points: usize) -> Option<TrendFit> {
    let mut sums = LineSums::EMPTY;
    for (x, y) in points {
        sums.add(x, y);
    }
    sums.finish(min_points)
}

impl History {
    /// Records a healthy sample at `at` (later than every held one), forgetting samples
    /// older than `keep` before it and any beyond `MAX_SAMPLES`.
    pub fn push(&mut self, at: Timestamp, input: f64, output: f64, keep: Duration) {
        self.points.push_back(Point(at, input, output));
        // At coarse sampling the trend window reaches back further than `keep`.
        let keep_ms = (keep.as_millis() as i64).max(MIN_TREND_INTERVALS * self.interval_ms() + 1);
        let oldest = Timestamp(at.0.saturating_sub(keep_ms));
        while self.points.len() > MAX_SAMPLES || self.points.front().is_some_and(|p| p.0 < oldest) {
            self.points.pop_front();
        }
    }

    /// The sampling interval, in ms: the shorter of the last two gaps between samples, so
    /// one outage does not read as the sampling rate (0 with a single sample).
    fn interval_ms(&self) -> i64 {
        let n = self.points.len();
        if n < 2 {
            return 0;
        }
        let g1 = self.points[n - 1].0.0 - self.points[n - 2].0.0;
        if n < 3 {
            return g1;
        }
        g1.min(self.points[n - 2].0.0 - self.points[n - 3].0.0)
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Point> {
        self.points.back().copied()
    }

    /// The samples less than `window` before the latest one, newest first (a window of
    /// N ticks holds N samples at regular ticks). A walk back from the end over the two
    /// halves of the ring as plain slices: windows hold a few dozen samples, fewer than a
    /// binary search would save, and this runs every step of every pipeline.
    fn within(&self, window: Duration) -> impl Iterator<Item = &Point> {
        let oldest = self
            .latest()
            .map_or(0, |p| p.0.0.saturating_sub(window.as_millis() as i64));
        let (front, back) = self.points.as_slices();
        back.iter()
            .rev()
            .chain(front.iter().rev())
            .take_while(move |q| q.0.0 > oldest)
    }

    /// Fits a line through `series` over the last `window` of sample time (x in seconds
    /// before the latest sample); `None` with fewer than `min_points` samples.
    pub fn trend_fit(
        &self,
        series: Series,
        window: Duration,
        min_points: usize,
    ) -> Option<TrendFit> {
        let latest = self.latest()?.0;
        let mut sums = LineSums::EMPTY;
        for p in self.within(window) {
            sums.add_older((p.0.0 - latest.0) as f64 * 1e-3, p.get(series));
        }
        sums.finish(min_points)
    }

    /// Demand forecast: the line through the last `window` of input, `horizon` ahead,
    /// plus `k` residual standard deviations; the worst input of `relax_window` for
    /// relaxing.
    pub fn forecast(
        &self,
        window: Duration,
        horizon: Duration,
        k: f64,
        relax_window: Duration,
    ) -> Forecast {
        let Some(latest) = self.latest() else {
            return Forecast {
                escalate: 0.0,
                relax: 0.0,
                line: 0.0,
                r2: 0.0,
                relax_line: LineSums::EMPTY,
                relax_rest: (0, 0),
            };
        };
        // One walk back over `window`: its line and highest demand, and, when the relax
        // window is the shorter, the relax window's line and worst demand on the way.
        // When the relax window is the longer (the default), the walk goes on over the
        // rest of it for the worst demand only; its line is finished from the same sums
        // if a relaxation asks for it (`relax_trend`). This runs every step of every
        // pipeline, and in the simulator millions of times a second.
        // At coarse sampling the window holds at least `MIN_TREND_INTERVALS` intervals
        // (samples that old included), and a horizon is at least one interval: the next
        // sample is the first a switch decided now can change (0 stays no lookahead).
        let interval = self.interval_ms();
        let w_ms = (window.as_millis() as i64).max(MIN_TREND_INTERVALS * interval + 1);
        let r_ms = relax_window.as_millis() as i64;
        let horizon_s = if horizon.is_zero() {
            0.0
        } else {
            horizon.as_secs_f64().max(interval as f64 * 1e-3)
        };
        let (mut sums, mut top) = (LineSums::EMPTY, latest.1);
        let mut inner = None;
        // Plain loops over the ring's two halves, newest first, stopping at the first
        // sample too old: an iterator chain here cost several times as much per sample.
        let (front, back) = self.points.as_slices();
        let halves = [back, front];
        // Where the walk over `window` stopped: the half, and how many of its samples
        // (from its newest end) it took.
        let mut stop = (halves.len(), 0);
        'walk: for (h, half) in halves.iter().enumerate() {
            for (k, p) in half.iter().rev().enumerate() {
                let age = latest.0.0 - p.0.0;
                if age >= w_ms {
                    stop = (h, k);
                    break 'walk;
                }
                if age >= r_ms && inner.is_none() {
                    inner = Some((sums, top));
                }
                sums.add_older(-(age as f64) * 1e-3, p.1);
                // Healthy samples are finite (the engine refuses others), so a comparison
                // is `f64::max` without its NaN handling.
                if p.1 > top {
                    top = p.1;
                }
            }
        }
        let (near, seen) = (sums, top);
        let ((long, worst), relax_rest) = match inner {
            Some(relax) => (relax, (0, 0)),
            None => {
                // The relax window reaches at least as far back: its worst demand over the
                // older samples too (the maximum does not depend on the order).
                let mut worst = top;
                let mut more = 0;
                'rest: for (h, half) in halves.iter().enumerate().skip(stop.0) {
                    let skip = if h == stop.0 { stop.1 } else { 0 };
                    for p in half[..half.len() - skip].iter().rev() {
                        if latest.0.0 - p.0.0 >= r_ms {
                            break 'rest;
                        }
                        if p.1 > worst {
                            worst = p.1;
                        }
                        more += 1;
                    }
                }
                ((sums, worst), (sums.n, sums.n + more))
            }
        };
        let fit = near.finish(1);
        let (slope, sd, fitted, r2) = fit.map_or((0.0, 0.0, latest.1, 0.0), |f| {
            (f.slope_per_sec, f.residual_sd, f.fitted_latest, f.r2)
        });
        let trend = latest.1 + slope.max(0.0) * horizon_s;
        let mut escalate = trend.max(latest.1) + k * sd;
        if slope <= 0.0 {
            // A fall scatters the samples around a falling line too: without this cap the
            // margin would escalate on falling demand. Not rising, the forecast stays within
            // what the window actually saw.
            escalate = escalate.min(seen);
        }
        Forecast {
            escalate,
            relax: worst.max(escalate),
            line: fitted + slope.max(0.0) * horizon_s,
            r2,
            relax_line: long,
            relax_rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(3600);

    fn hist(step_secs: i64, v: &[f64]) -> History {
        let mut h = History::default();
        for (i, &x) in v.iter().enumerate() {
            h.push(Timestamp::from_secs(i as i64 * step_secs), x, x / 2.0, KEEP);
        }
        h
    }

    #[test]
    fn rising_line_is_extrapolated_in_time() {
        // 10 per 15 s: 2 per 3 s. A 30 s horizon adds 20 whatever the sampling.
        let h = hist(15, &[10.0, 20.0, 30.0, 40.0]);
        let f = h.forecast(Duration::from_secs(60), Duration::from_secs(30), 0.0, KEEP);
        assert!((f.escalate - 60.0).abs() < 1e-9, "{}", f.escalate);
        let h5 = hist(
            5,
            &[10.0, 13.333_333_333_333_334, 16.666_666_666_666_668, 20.0],
        );
        let f5 = h5.forecast(Duration::from_secs(60), Duration::from_secs(30), 0.0, KEEP);
        assert!((f5.escalate - 40.0).abs() < 1e-6, "{}", f5.escalate);
    }

    #[test]
    fn falling_trend_never_predicts_below_latest() {
        let h = hist(15, &[40.0, 30.0, 20.0, 10.0]);
        let f = h.forecast(Duration::from_secs(60), Duration::from_secs(30), 0.0, KEEP);
        assert_eq!(f.escalate, 10.0);
        assert_eq!(f.relax, 40.0);
    }

    #[test]
    fn flat_series_has_no_margin() {
        let h = hist(15, &[5.0; 8]);
        let f = h.forecast(KEEP, Duration::from_secs(15), 3.0, KEEP);
        assert_eq!(f.escalate, 5.0);
    }

    #[test]
    fn a_clean_ramp_fits_and_a_spike_does_not() {
        let h = hist(15, &[10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        let ramp = h.trend_fit(Series::Input, KEEP, 3).unwrap();
        assert!((ramp.slope_per_sec - 10.0 / 15.0).abs() < 1e-9 && ramp.r2 > 0.999);
        assert!((ramp.fitted_latest - 60.0).abs() < 1e-9);
        assert_eq!(ramp.span_secs, 75.0);
        let out = h.trend_fit(Series::Output, KEEP, 3).unwrap();
        assert!((out.fitted_latest - 30.0).abs() < 1e-9);
        let spike = hist(15, &[10.0, 11.0, 9.0, 10.0, 11.0, 10.0, 9.0, 40.0])
            .trend_fit(Series::Input, KEEP, 3)
            .unwrap();
        assert!(spike.r2 < 0.5, "r2 {}", spike.r2);
        assert_eq!(
            hist(15, &[5.0; 8])
                .trend_fit(Series::Input, KEEP, 3)
                .unwrap()
                .r2,
            0.0
        );
        assert!(
            hist(15, &[1.0, 2.0])
                .trend_fit(Series::Input, KEEP, 3)
                .is_none()
        );
    }

    #[test]
    fn windows_are_sample_time_not_sample_counts() {
        // Samples at 0, 15, 30 s, then a gap to 3600 s: a 2-minute window holds only the
        // latest sample, whatever the count before the gap.
        let mut h = History::default();
        for t in [0, 15, 30, 3600] {
            h.push(Timestamp::from_secs(t), 100.0 + t as f64, 0.0, KEEP * 2);
        }
        assert!(
            h.trend_fit(Series::Input, Duration::from_secs(120), 2)
                .is_none()
        );
        let f = h.forecast(
            Duration::from_secs(120),
            Duration::from_secs(60),
            1.0,
            Duration::from_secs(120),
        );
        assert_eq!(f.escalate, 3700.0);
        assert_eq!(f.relax, 3700.0);
    }

    #[test]
    fn coarse_sampling_keeps_a_trend_and_looks_one_interval_ahead() {
        // Samples every 3 min, rising 30 per sample: a 2 min window would hold the latest
        // alone. The trend is fitted over four intervals, and a 15 s horizon is stretched
        // to the 3 min until the next sample, so the forecast is the next sample's value.
        let mut h = History::default();
        for i in 0..6 {
            h.push(
                Timestamp::from_secs(i * 180),
                100.0 + 30.0 * i as f64,
                0.0,
                Duration::from_secs(300),
            );
        }
        assert_eq!(h.len(), 5, "four intervals kept, though keep is 5 min");
        let f = h.forecast(
            Duration::from_secs(120),
            Duration::from_secs(15),
            0.0,
            Duration::from_secs(300),
        );
        assert!((f.escalate - 280.0).abs() < 1e-9, "{}", f.escalate);
        assert!((f.line - 280.0).abs() < 1e-9 && f.r2 > 0.999, "{f:?}");
        // A horizon of 0 stays no lookahead.
        let f0 = h.forecast(Duration::from_secs(120), Duration::ZERO, 0.0, KEEP);
        assert_eq!(f0.escalate, 250.0);
        // An outage is not the sampling rate: after a 2 h gap the interval is the 3 min
        // before it, and the window holds the latest sample alone.
        h.push(Timestamp::from_secs(5 * 180 + 7200), 400.0, 0.0, KEEP);
        let f = h.forecast(
            Duration::from_secs(120),
            Duration::from_secs(15),
            0.0,
            Duration::from_secs(300),
        );
        assert_eq!(f.escalate, 400.0);
    }

    #[test]
    fn history_is_bounded_by_time_and_count() {
        let mut h = History::default();
        for i in 0..100 {
            h.push(
                Timestamp::from_secs(i * 15),
                i as f64,
                0.0,
                Duration::from_secs(150),
            );
        }
        assert_eq!(h.len(), 11);
        let mut h = History::default();
        for i in 0..1000 {
            h.push(Timestamp(i), i as f64, 0.0, KEEP);
        }
        assert_eq!(h.len(), MAX_SAMPLES);
    }
}
