//! From a model's z to a score in [0, 1]: the stage every detector shares.
//!
//! A z alone makes a poor alarm: real series are heavy-tailed (a spiky counter produces
//! |z| > 5 every hour), so a fixed tail probability either floods or sleeps. Like HTM's
//! "anomaly likelihood" (Ahmad et al., 2017), the scorer asks instead whether the *recent
//! amount of surprise* is unusual *for this series*:
//!
//! 1. surprise: `raw = min(1, -log10 P(|Z| ≥ |z|) / surprise_decades)`, bounded so one
//!    wild point counts no more than a clearly surprising one;
//! 2. density: the mean of `raw` over the last `density` points, so a burst of moderate
//!    surprises counts as much as one large one;
//! 3. likelihood: that mean against its own exponentially weighted history (mean and
//!    variance, memory `1/history_alpha` points); twice the upper-tail probability of the
//!    normal fit (so the usual amount of surprise scores exactly 0), log-scaled so that
//!    `p = 10^-score_decades` scores 1;
//! 4. cooldown: after a score reaches the firing level, scores are capped below it for
//!    `cooldown` points (the cap rises back linearly), so one event gives one short
//!    burst rather than a plateau.
//!
//! Everything is O(1) per point; the state is `density` floats plus a few numbers.

use super::DEFAULT_THRESHOLD;
use super::stats::{DecayingMoments, Reciprocal, RollingMoments, two_sided_decades};
use serde::{Deserialize, Serialize};

/// Parameters of the shared scoring stage (defaults chosen on NAB; see docs/anomaly.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorerParams {
    /// Decades of two-sided tail probability at which one point's surprise saturates
    /// (7: |z| ≈ 5.3).
    pub surprise_decades: f64,
    /// Points averaged into the recent surprise.
    pub density: usize,
    /// Weight of the newest point in the surprise history (memory ≈ 1/alpha points).
    pub history_alpha: f64,
    /// Floor on the history's standard deviation (a series that was never surprising
    /// must not turn the first mild surprise into an infinite z).
    pub min_std: f64,
    /// Decades of likelihood tail probability that score 1 (score = decades / this).
    pub score_decades: f64,
    /// Quiet points after a firing.
    pub cooldown: u32,
}

impl Default for ScorerParams {
    fn default() -> Self {
        ScorerParams {
            surprise_decades: 7.0,
            density: 12,
            history_alpha: 0.001,
            min_std: 0.01,
            score_decades: 5.5,
            cooldown: 150,
        }
    }
}

/// Turns a stream of z values into scores (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// Parameters.
    params: ScorerParams,
    /// Bounded surprises of the last `density` points.
    recent: RollingMoments,
    /// History of the recent-surprise mean.
    history: DecayingMoments,
    /// Burst shaping.
    cooldown: Cooldown,
    /// `1/surprise_decades` and `1/score_decades` (caches: divisions are slow).
    #[serde(skip)]
    inv_surprise: Reciprocal,
    #[serde(skip)]
    inv_score: Reciprocal,
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer::new(ScorerParams::default())
    }
}

impl Scorer {
    /// A scorer with these parameters.
    pub fn new(params: ScorerParams) -> Self {
        Scorer {
            recent: RollingMoments::new(params.density.max(1)),
            history: DecayingMoments::default(),
            cooldown: Cooldown::new(params.cooldown, DEFAULT_THRESHOLD),
            inv_surprise: Reciprocal::default(),
            inv_score: Reciprocal::default(),
            params,
        }
    }

    /// Points of z needed before a score can be non-zero (the density window).
    pub fn warm_up(&self) -> usize {
        self.params.density.max(1)
    }

    /// Bounded surprise of one z, in [0, 1].
    #[inline]
    pub fn surprise(&self, z: f64) -> f64 {
        let inv = self.inv_surprise.peek(self.params.surprise_decades);
        (two_sided_decades(z) * inv).clamp(0.0, 1.0)
    }

    /// Scores the next point from its z; `None` (the model is still warming up) scores 0
    /// and teaches the scorer nothing.
    pub fn score(&mut self, z: Option<f64>) -> f64 {
        let Some(z) = z else {
            return 0.0;
        };
        self.inv_surprise.of(self.params.surprise_decades);
        self.recent.push(self.surprise(z));
        let p = &self.params;
        let recent = self.recent.mean();
        // One-sided (only *more* surprise than usual counts), doubled so that the usual
        // amount of surprise maps to p = 1, score 0: for u > 0, 2·P(Z ≥ u) = P(|Z| ≥ u),
        // so the score is the two-sided decades of u; u ≤ 0 scores exactly 0.
        let s = if self.recent.is_full() && recent > self.history.mean {
            // The reciprocal depends only on the past: it is ready before `recent` is.
            let inv_sd = 1.0 / self.history.std().max(p.min_std);
            let u = (recent - self.history.mean) * inv_sd;
            (two_sided_decades(u) * self.inv_score.of(p.score_decades)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.history.push(recent, p.history_alpha);
        self.cooldown.apply(s)
    }
}

/// Turns a stream of scores into short bursts: once a score reaches `fire_level`, the
/// next `period` scores are capped below `fire_level`, with the cap rising linearly back
/// to `fire_level` (re-arming). One event therefore flags once; an event still going on
/// when the detector has re-armed flags again. O(1), one counter of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cooldown {
    /// Quiet points after a firing.
    period: u32,
    /// Score that counts as firing (the default threshold).
    fire_level: f64,
    /// Quiet points left.
    remaining: u32,
}

impl Cooldown {
    /// Quiet for `period` points after a score of `fire_level` or more.
    pub fn new(period: u32, fire_level: f64) -> Self {
        Cooldown {
            period,
            fire_level,
            remaining: 0,
        }
    }

    /// True while scores are capped.
    pub fn is_quiet(&self) -> bool {
        self.remaining > 0
    }

    /// Shapes one score.
    #[inline]
    pub fn apply(&mut self, score: f64) -> f64 {
        if self.remaining > 0 {
            self.remaining -= 1;
            let elapsed = f64::from(self.period - self.remaining);
            let cap = self.fire_level * elapsed / f64::from(self.period.max(1));
            // Strictly below the firing level for the whole quiet period.
            return score.min(cap * (1.0 - 1e-9));
        }
        if score >= self.fire_level {
            self.remaining = self.period;
        }
        score
    }
}
