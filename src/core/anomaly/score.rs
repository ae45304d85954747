//! From a model's z to a score in [0, 1]: the stage every detector shares.
//!
//! A z alone makes a poor alarm: real series are heavy-tailed (a spiky counter produces
//! |z| > 5 every hour), so a fixed tail probability either floods or sleeps. Like HTM's
//! "anomaly likelihood" (Ahmad et al., 2017), the scorer asks instead whether the *recent
//! amount of surprise* is unusual *for this series*:
//!
//! 1. surprise: `raw = min(1, -log10 P(|Z| ≥ |z|) / surprise_decades)`, bounded so one
//!    wild point counts no more than a clearly surprising one;
//! 2. density: the mean of `raw` over the last `density_secs` of time (a `SlotMean` of
//!    twelve 5-minute slots), so a burst of moderate surprises counts as much as one
//!    large one; when the window holds fewer than `density_min_points` (2) points, the
//!    mean of the newest that many (a mean of one point is that point);
//! 3. likelihood: that mean against its own exponentially weighted history (mean and
//!    variance, time constant `history_secs`); twice the upper-tail probability of the
//!    normal fit (so the usual amount of surprise scores exactly 0), log-scaled so that
//!    `p = 10^-score_decades` scores 1;
//! 4. cooldown: after a score reaches the firing level, scores are capped below it for
//!    `cooldown_secs` (the cap rises back linearly in time), so one event gives one
//!    short burst rather than a plateau.
//!
//! Every memory is a duration on the sample timestamps, so the same signal sampled every
//! 15 s, every 5 min or every hour gives the same warm-up, density, history and cooldown
//! in time. Warm-up: nothing scores until z values span the density window (55 minutes
//! from the first, twelve slots) and the history holds two full windows (the least a
//! variance needs; only full windows enter it).
//!
//! Coarse sampling: at hourly data the density window holds one point, whose bounded
//! surprise is far from normal (for normal data its tail is exponential), so the normal
//! fit of step 3 flags more often than at 5 minutes, where it averages twelve. A minimum
//! of two points (two hours at hourly data) raised every stressed variant of the
//! validation protocol but one; three, four or six scored lower, and twelve cut
//! detection in an earlier trial (docs/anomaly-validation.md).

use super::DEFAULT_THRESHOLD;
use super::Timestamp;
use super::stats::{Decay, MAX_STEP_MS};
use super::stats::{DecayingMoments, Reciprocal, SLOTS, SlotMean, two_sided_decades};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Parameters of the shared scoring stage (defaults in docs/anomaly.md, with the reason
/// for each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorerParams {
    /// Decades of two-sided tail probability at which one point's surprise saturates
    /// (7: |z| ≈ 5.3).
    pub surprise_decades: f64,
    /// Time over which the recent surprise is averaged (1 h).
    pub density_secs: u64,
    /// Time constant of the surprise history (3.5 days).
    pub history_secs: u64,
    /// Floor on the history's standard deviation (a series that was never surprising
    /// must not turn the first mild surprise into an infinite z).
    pub min_std: f64,
    /// Decades of likelihood tail probability that score 1 (score = decades / this).
    pub score_decades: f64,
    /// Quiet time after a firing (12 h).
    pub cooldown_secs: u64,
    /// Fewest points the density is a mean of (2): when the density window holds fewer
    /// (hourly sampling: one), the mean of the newest this many surprises instead (0 or
    /// 1: the window alone). Two is the least that makes it a mean; chosen by the
    /// validation protocol's worst variant (docs/anomaly-validation.md).
    pub density_min_points: u32,
}

impl Default for ScorerParams {
    fn default() -> Self {
        ScorerParams {
            surprise_decades: 7.0,
            density_secs: 3_600,
            history_secs: 84 * 3_600,
            min_std: 0.01,
            score_decades: 5.5,
            cooldown_secs: 12 * 3_600,
            density_min_points: 2,
        }
    }
}

impl ScorerParams {
    /// True for the defaults (which a serialised state then leaves out).
    pub fn is_default(&self) -> bool {
        *self == ScorerParams::default()
    }

    /// Width of one density slot (ms, at least 1).
    fn slot_ms(&self) -> i64 {
        (secs_to_ms(self.density_secs) / SLOTS as i64).max(1)
    }
}

/// Seconds to milliseconds, saturating.
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// A time constant in milliseconds for `decay_weight` (at least 1 ms).
pub(crate) fn tau_ms(secs: u64) -> f64 {
    secs_to_ms(secs).max(1) as f64
}

/// Turns a stream of z values into scores (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// Parameters (left out of the serialised state when they are the defaults).
    #[serde(default, skip_serializing_if = "ScorerParams::is_default")]
    params: ScorerParams,
    /// Bounded surprises of the last `density_secs`.
    recent: SlotMean,
    /// History of the recent-surprise mean.
    history: DecayingMoments,
    /// The newest `density_min_points` surprises, oldest first (empty when that is 0
    /// or 1).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    newest: VecDeque<f32>,
    /// Burst shaping.
    cooldown: Cooldown,
    /// `1/surprise_decades` and `1/score_decades` (caches: divisions are slow).
    #[serde(skip)]
    inv_surprise: Reciprocal,
    #[serde(skip)]
    inv_score: Reciprocal,
    /// Weight of a point in the history for the last step (a cache).
    #[serde(skip)]
    history_weight: Decay,
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
            recent: SlotMean::default(),
            newest: VecDeque::new(),
            history: DecayingMoments::default(),
            cooldown: Cooldown::default(),
            inv_surprise: Reciprocal::default(),
            inv_score: Reciprocal::default(),
            history_weight: Decay::default(),
            params,
        }
    }

    /// The scorer's own warm-up: how long z values must have been coming before a
    /// score can be non-zero, at least (the density window less its last slot, which
    /// the newest point begins).
    pub fn warm_up(&self) -> std::time::Duration {
        let slot = self.params.slot_ms() as u64;
        std::time::Duration::from_millis(slot * (SLOTS as u64 - 1))
    }

    /// True while scores are capped after a firing.
    pub fn is_quiet(&self, at: Timestamp) -> bool {
        self.cooldown
            .is_quiet(at, secs_to_ms(self.params.cooldown_secs))
    }

    /// Bounded surprise of one z, in [0, 1].
    #[inline]
    pub fn surprise(&self, z: f64) -> f64 {
        let inv = self.inv_surprise.peek(self.params.surprise_decades);
        (two_sided_decades(z) * inv).clamp(0.0, 1.0)
    }

    /// Scores the point at `at`, `dt_ms` after the detector's previous point (`None`
    /// for its first), from its z; `None` (the model is still warming up) scores 0 and
    /// teaches the scorer nothing.
    pub fn score(&mut self, at: Timestamp, dt_ms: Option<i64>, z: Option<f64>) -> f64 {
        self.score_or(at, dt_ms, z, 0.0)
    }

    /// `score`, or `other` (a score in [0, 1] from a second path, e.g. the ensemble's
    /// far level) where it is higher, before the cooldown: either path fires and both
    /// share one quiet period. `other` = 0 is `score`.
    pub fn score_or(
        &mut self,
        at: Timestamp,
        dt_ms: Option<i64>,
        z: Option<f64>,
        other: f64,
    ) -> f64 {
        let Some(z) = z else {
            return if other > 0.0 {
                let p = &self.params;
                self.cooldown
                    .apply(at, other, secs_to_ms(p.cooldown_secs), DEFAULT_THRESHOLD)
            } else {
                0.0
            };
        };
        let at_ms = at.as_millis();
        self.inv_surprise.of(self.params.surprise_decades);
        let slot_ms = self.params.slot_ms();
        let surprise = self.surprise(z);
        self.recent.push(at_ms, surprise, slot_ms);
        let p = &self.params;
        let min = p.density_min_points as usize;
        if min > 1 {
            self.newest.push_back(surprise as f32);
            while self.newest.len() > min {
                self.newest.pop_front();
            }
        }
        // A mean of one bounded surprise is as wild as a single point (at hourly data
        // the one-hour window holds one), so an anomaly there rarely stands out from
        // the history; at 5-minute data the window holds twelve and this changes
        // nothing.
        let recent = if min > 1 && (self.recent.count() as usize) < min {
            self.newest.iter().map(|&v| f64::from(v)).sum::<f64>() / self.newest.len() as f64
        } else {
            self.recent.mean()
        };
        // One-sided (only *more* surprise than usual counts), doubled so that the usual
        // amount of surprise maps to p = 1, score 0: for u > 0, 2·P(Z ≥ u) = P(|Z| ≥ u),
        // so the score is the two-sided decades of u; u ≤ 0 scores exactly 0.
        let full = self.recent.is_full();
        let s = if full && self.history.n >= 2 && recent > self.history.mean {
            let inv_sd = 1.0 / self.history.std().max(p.min_std);
            let u = (recent - self.history.mean) * inv_sd;
            (two_sided_decades(u) * self.inv_score.of(p.score_decades)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Only full windows enter the history: it is what they are compared with, and the
        // first partial ones (a few points, their z against a variance of two or three)
        // are wilder than any full one, which would blunt the scorer for days.
        if full {
            // The first value has no step of its own: it takes the next one's weight.
            let a = self
                .history_weight
                .weight(dt_ms.unwrap_or(MAX_STEP_MS), tau_ms(p.history_secs));
            self.history.push(recent, a);
        }
        self.cooldown.apply(
            at,
            s.max(other),
            secs_to_ms(p.cooldown_secs),
            DEFAULT_THRESHOLD,
        )
    }

    /// Takes over `from`'s quiet period (the ensemble's hand-over from its cold-start
    /// scorer: a flag just before it must still silence the next hours).
    pub fn inherit_cooldown(&mut self, from: &Scorer) {
        self.cooldown = from.cooldown.clone();
    }
}

/// Turns a stream of scores into short bursts: once a score reaches `fire_level`, scores
/// for the next `period_ms` of time are capped below `fire_level`, with the cap rising
/// linearly in time back to `fire_level` (re-arming). One event therefore flags once; an
/// event still going on when the detector has re-armed flags again. O(1); the state is
/// the time of the last firing (the period and level are the caller's parameters).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cooldown {
    /// When the last quiet period began (ms), if one has.
    fired_at: Option<i64>,
}

impl Cooldown {
    /// Time since the firing, if it is less than `period_ms` ago (a time before the
    /// firing counts as the firing itself).
    fn elapsed(&self, at: Timestamp, period_ms: i64) -> Option<i64> {
        let since = at.as_millis().saturating_sub(self.fired_at?).max(0);
        (since < period_ms).then_some(since)
    }

    /// True while scores are capped.
    pub fn is_quiet(&self, at: Timestamp, period_ms: i64) -> bool {
        self.elapsed(at, period_ms).is_some()
    }

    /// Shapes the score of the point at `at`.
    #[inline]
    pub fn apply(&mut self, at: Timestamp, score: f64, period_ms: i64, fire_level: f64) -> f64 {
        if let Some(since) = self.elapsed(at, period_ms) {
            let cap = fire_level * since as f64 / period_ms as f64;
            // Strictly below the firing level for the whole quiet period.
            return score.min(cap * (1.0 - 1e-9));
        }
        if score >= fire_level {
            self.fired_at = Some(at.as_millis());
        }
        score
    }
}
