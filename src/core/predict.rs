//! Feed-forward: a short-horizon linear prediction of demand with a volatility margin.
//!
//! The ladder reacts to where demand will be when a switch takes effect (a reload takes
//! a tick or more), not where it was. A least-squares line over the last few ticks gives
//! the trend; the spread of tick-to-tick changes gives a margin, so a noisy pipeline near
//! its budget is treated as closer to it than a quiet one. Relaxing looks at the worst
//! demand of a longer window, so one quiet tick never relaxes protection.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Recent demand history (bounded).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DemandHistory {
    values: VecDeque<f64>,
}

/// What the history says about demand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Demand expected at the horizon, plus the volatility margin; never below the latest.
    pub escalate: f64,
    /// Worst demand over the relax window (and the forecast), for relax decisions.
    pub relax: f64,
}

impl DemandHistory {
    /// Records the latest demand, keeping at most `cap` values.
    pub fn push(&mut self, value: f64, cap: usize) {
        let cap = cap.max(1);
        while self.values.len() >= cap {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The most recent demand.
    pub fn latest(&self) -> Option<f64> {
        self.values.back().copied()
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Forecast from the last `window` values, `horizon` ticks ahead, with a margin of
    /// `k` standard deviations of tick-to-tick change; `relax_window` values for relaxing.
    pub fn forecast(&self, window: usize, horizon: u32, k: f64, relax_window: usize) -> Forecast {
        let n = self.values.len();
        let Some(&latest) = self.values.back() else {
            return Forecast {
                escalate: 0.0,
                relax: 0.0,
            };
        };
        let w = window.clamp(1, n);
        let rw = relax_window.clamp(1, n);
        // One pass over the longer of the two windows: this runs every tick of every
        // pipeline, and in the simulator millions of times a second.
        let span = w.max(rw);
        let (mut worst, mut sy, mut sxy, mut dsum, mut dsq) = (f64::MIN, 0.0, 0.0, 0.0, 0.0);
        let mut prev = None::<f64>;
        for (j, &y) in self.values.range(n - span..).enumerate() {
            if j >= span - rw {
                worst = worst.max(y);
            }
            if j >= span - w {
                let x = (j - (span - w)) as f64;
                sy += y;
                sxy += x * y;
                if let Some(p) = prev {
                    let d = y - p;
                    dsum += d;
                    dsq += d * d;
                }
                prev = Some(y);
            }
        }
        let (slope, sd) = if w < 2 {
            (0.0, 0.0)
        } else {
            let nf = w as f64;
            let mean_x = (nf - 1.0) / 2.0;
            // Σ(x − x̄)² for x = 0..n−1, in closed form.
            let sxx = nf * (nf * nf - 1.0) / 12.0;
            let m = nf - 1.0;
            let var = (dsq / m - (dsum / m).powi(2)).max(0.0);
            ((sxy - mean_x * sy) / sxx, var.sqrt())
        };
        let trend = latest + slope.max(0.0) * f64::from(horizon);
        let escalate = trend.max(latest) + k * sd;
        Forecast {
            escalate,
            relax: worst.max(escalate),
        }
    }
}

/// A least-squares line through recent values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrendFit {
    /// Change per tick.
    pub slope: f64,
    /// Share of the variance the line explains, in [0, 1] (1 for a clean ramp, near 0 for
    /// noise or a lone spike).
    pub r2: f64,
    /// The line's value at the latest tick.
    pub fitted_latest: f64,
}

impl DemandHistory {
    /// Fits a line through the last `window` values (None with fewer than 3).
    pub fn trend_fit(&self, window: usize) -> Option<TrendFit> {
        let n = self.values.len();
        let w = window.min(n);
        if w < 3 {
            return None;
        }
        let nf = w as f64;
        let mean_x = (nf - 1.0) / 2.0;
        let (mut sy, mut sxy) = (0.0, 0.0);
        for (j, &y) in self.values.range(n - w..).enumerate() {
            sy += y;
            sxy += j as f64 * y;
        }
        let mean_y = sy / nf;
        let syy: f64 = self
            .values
            .range(n - w..)
            .map(|&y| (y - mean_y).powi(2))
            .sum();
        let sxx = nf * (nf * nf - 1.0) / 12.0;
        let cov = sxy - mean_x * sy;
        let slope = cov / sxx;
        let r2 = if syy > 0.0 {
            (cov * cov / (sxx * syy)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(TrendFit {
            slope,
            r2,
            fitted_latest: mean_y + slope * (nf - 1.0 - mean_x),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(v: &[f64]) -> DemandHistory {
        let mut h = DemandHistory::default();
        for &x in v {
            h.push(x, 16);
        }
        h
    }

    #[test]
    fn rising_line_is_extrapolated() {
        let h = hist(&[10.0, 20.0, 30.0, 40.0]);
        let f = h.forecast(4, 2, 0.0, 4);
        assert!((f.escalate - 60.0).abs() < 1e-9);
    }

    #[test]
    fn falling_trend_never_predicts_below_latest() {
        let h = hist(&[40.0, 30.0, 20.0, 10.0]);
        let f = h.forecast(4, 2, 0.0, 4);
        assert_eq!(f.escalate, 10.0);
        assert_eq!(f.relax, 40.0);
    }

    #[test]
    fn flat_series_has_no_margin() {
        let h = hist(&[5.0; 8]);
        let f = h.forecast(8, 1, 3.0, 8);
        assert_eq!(f.escalate, 5.0);
    }

    #[test]
    fn a_clean_ramp_fits_and_a_spike_does_not() {
        let ramp = hist(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
            .trend_fit(6)
            .unwrap();
        assert!((ramp.slope - 10.0).abs() < 1e-9 && ramp.r2 > 0.999);
        assert!((ramp.fitted_latest - 60.0).abs() < 1e-9);
        let spike = hist(&[10.0, 11.0, 9.0, 10.0, 11.0, 10.0, 9.0, 40.0])
            .trend_fit(8)
            .unwrap();
        assert!(spike.r2 < 0.5, "r2 {}", spike.r2);
        assert!(hist(&[5.0; 8]).trend_fit(8).unwrap().r2 == 0.0);
    }

    #[test]
    fn history_is_bounded() {
        let mut h = DemandHistory::default();
        for i in 0..100 {
            h.push(f64::from(i), 10);
        }
        assert_eq!(h.len(), 10);
    }
}
