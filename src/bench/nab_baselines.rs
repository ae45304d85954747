//! NAB's published baseline detectors, re-implemented from their description to check the
//! NAB scorer (`bench::nab`) against published scores. Not used by the daemon.
//!
//! `WindowedGaussian` is NAB's "windowedGaussian": the score of a value is one minus the
//! two-sided Gaussian tail probability Q(|z|) of the value under the mean and (population)
//! standard deviation of the window of past values. The window grows to 6400 values, then
//! slides in steps of 100: its statistics are refreshed after every value while it fills,
//! and once per 100 values after that. NAB reports it at threshold 1.0 for every profile,
//! i.e. a detection only where 1 − Q(|z|) rounds to exactly 1 in double precision
//! (|z| ≳ 8.3). Q comes from statrs' `erfc`, good to about 1e-10 relative.

use statrs::function::erf::erfc;
use std::collections::VecDeque;

/// NAB's windowed Gaussian detector.
#[derive(Clone, Debug)]
pub struct WindowedGaussian {
    /// Most values the window holds.
    window_size: usize,
    /// Values gathered before the full window slides.
    step_size: usize,
    /// The window of past values the statistics describe.
    window: VecDeque<f64>,
    /// Values seen since the full window last slid.
    step: Vec<f64>,
    /// Mean of `window`.
    mean: f64,
    /// Sum of squared deviations of `window` (Welford's M2) while it fills.
    m2: f64,
    /// Population standard deviation of `window` (10⁻⁶ if it is 0, as in NAB).
    std: f64,
}

impl Default for WindowedGaussian {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowedGaussian {
    /// NAB's window size.
    pub const WINDOW_SIZE: usize = 6400;
    /// NAB's step size.
    pub const STEP_SIZE: usize = 100;
    /// The threshold NAB publishes for this detector (every profile).
    pub const NAB_THRESHOLD: f64 = 1.0;

    /// The detector with NAB's parameters.
    pub fn new() -> Self {
        Self::with_params(Self::WINDOW_SIZE, Self::STEP_SIZE)
    }

    /// The detector with another window and step (both at least 1).
    pub fn with_params(window_size: usize, step_size: usize) -> Self {
        WindowedGaussian {
            window_size: window_size.max(1),
            step_size: step_size.max(1),
            window: VecDeque::with_capacity(window_size.max(1)),
            step: Vec::with_capacity(step_size.max(1)),
            mean: 0.0,
            m2: 0.0,
            std: 1.0,
        }
    }

    /// Scores the next value: 0 for the first, then 1 − Q(|z|) ∈ [0.5, 1]. A missing
    /// value (NaN) scores 0 and is not added to the window.
    pub fn update(&mut self, value: f64) -> f64 {
        if value.is_nan() {
            return 0.0;
        }
        let score = if self.window.is_empty() {
            0.0
        } else {
            1.0 - tail_probability((value - self.mean).abs() / self.std)
        };
        if self.window.len() < self.window_size {
            // Welford's update: the same statistics as a fresh pass, in O(1).
            self.window.push_back(value);
            let delta = value - self.mean;
            self.mean += delta / self.window.len() as f64;
            self.m2 += delta * (value - self.mean);
            self.set_std((self.m2 / self.window.len() as f64).max(0.0).sqrt());
        } else {
            self.step.push(value);
            if self.step.len() == self.step_size {
                for v in self.step.drain(..) {
                    self.window.pop_front();
                    self.window.push_back(v);
                }
                // Two passes over the slid window, as NAB's numpy mean/std do.
                let n = self.window.len() as f64;
                self.mean = self.window.iter().sum::<f64>() / n;
                let var = self
                    .window
                    .iter()
                    .map(|v| (v - self.mean).powi(2))
                    .sum::<f64>()
                    / n;
                self.set_std(var.sqrt());
            }
        }
        score
    }

    fn set_std(&mut self, std: f64) {
        self.std = if std == 0.0 { 1e-6 } else { std };
    }
}

/// Q(z) = P(Z > z) for a standard normal Z, by the complementary error function.
pub fn tail_probability(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_probability_known_values() {
        // statrs' erfc is good to about 1e-10 relative: ample for scoring.
        let close = |z: f64, q: f64| ((tail_probability(z) - q) / q).abs() < 1e-9;
        assert_eq!(tail_probability(0.0), 0.5);
        assert!(close(1.0, 0.158_655_253_931_457_07));
        assert!(close(3.0, 0.001_349_898_031_630_095_7));
        assert!(close(8.2, 1.201_935_154_273_589_8e-16));
        // NAB's threshold 1.0 needs |z| above about 8.3.
        assert!(1.0 - tail_probability(8.2) < 1.0);
        assert!(1.0 - tail_probability(8.3) == 1.0);
    }

    #[test]
    fn first_value_scores_zero_then_scores_are_at_least_half() {
        let mut d = WindowedGaussian::new();
        assert_eq!(d.update(5.0), 0.0);
        // A constant window: std 1e-6, so anything else is far out.
        assert_eq!(d.update(5.0), 0.5);
        assert_eq!(d.update(6.0), 1.0);
        assert!(d.update(f64::NAN) == 0.0);
    }

    #[test]
    fn statistics_refresh_per_step_once_full() {
        let mut d = WindowedGaussian::with_params(4, 2);
        for v in [1.0, 2.0, 3.0, 4.0] {
            d.update(v);
        }
        assert!((d.mean - 2.5).abs() < 1e-12);
        assert!((d.std - 1.25f64.sqrt()).abs() < 1e-12);
        d.update(10.0); // buffered: statistics unchanged
        assert!((d.mean - 2.5).abs() < 1e-12);
        d.update(20.0); // window slides to 3, 4, 10, 20
        assert!((d.mean - 9.25).abs() < 1e-12);
        let var = [3.0f64, 4.0, 10.0, 20.0]
            .iter()
            .map(|v| (v - 9.25).powi(2))
            .sum::<f64>()
            / 4.0;
        assert!((d.std - var.sqrt()).abs() < 1e-12);
    }
}
