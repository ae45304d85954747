//! The four classic single-model detectors: rolling z-score, rolling median/MAD, EWMA
//! mean/variance, and linear-trend prediction error, plus `LinearTrend`, an O(1)
//! least-squares line over the last points (x = point index), kept for callers that
//! count ticks.
//!
//! Each predicts the next value from the past only and divides the error by a scale learnt
//! from the past (a z), then hands the z to the shared `Scorer` (bounded surprise, density,
//! likelihood against the series' own history, cooldown). They are the building blocks
//! and the baselines; the `Ensemble` is the tuned default.
//!
//! Every memory is a duration on the sample timestamps. The z-score and MAD baselines are
//! defined over a window, so they keep a *time* window (a day) thinned to one value per
//! 5-minute slot: 288 values at most, whatever the sampling rate (at 5 minutes or coarser
//! every point is kept, so their statistics are the plain window ones; at 15 s one point
//! in twenty enters the baseline, which is still a uniform sample of the day). The EWMA and
//! the trend only ask what the level, slope and spread are lately, so they are
//! exponential memories in time (`decay_weight`), a few numbers each.

use super::Timestamp;
use super::score::{Scorer, ScorerParams, secs_to_ms, tau_ms};
use super::stats::{Clock, Decay, DecayingMoments, OrderWindow, Ring, TimeLine, TimedMoments};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Largest magnitude a detector takes in; larger values are clamped to it. Squares and
/// window sums of such values stay far inside f64, so the state never overflows to
/// infinity (which JSON could not persist). No metric comes near it.
pub const MAX_INPUT: f64 = 1e100;

/// The value a detector learns from `x`: `None` for NaN and infinities (bad input is
/// scored 0 and not learnt), otherwise `x` clamped to ±`MAX_INPUT`.
pub fn admit(x: f64) -> Option<f64> {
    x.is_finite().then(|| x.clamp(-MAX_INPUT, MAX_INPUT))
}

/// Lower bound on a scale, relative to the magnitude of the level, so a series that has
/// been exactly constant does not turn a rounding-size change into an infinite z.
pub(crate) fn scale_floor(level: f64) -> f64 {
    1e-9 * level.abs().max(1e-6)
}

/// z of `x` against `center` and `scale` with the floor applied; exactly 0 when
/// `x == center` (a constant series is never surprising), finite otherwise.
pub(crate) fn z_of(x: f64, center: f64, scale: f64) -> f64 {
    let d = x - center;
    if d == 0.0 {
        return 0.0;
    }
    let z = d / scale.max(scale_floor(center));
    if z.is_finite() { z } else { d.signum() * 1e6 }
}

/// Default window of the z-score and MAD baselines: a day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(86_400);

/// Most values a z-score or MAD window holds: 288, one per 5 minutes of a day, so
/// 5-minute data (NAB's) keeps every point, and the MAD's treap stays small.
pub const WINDOW_CAPACITY: usize = 288;

/// The slot layout of a thinned time window: `capacity` slots over `window`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Length of the window (ms).
    window_ms: i64,
    /// Width of one slot (ms): window / capacity.
    slot_ms: i64,
}

impl TimeWindow {
    /// A window of `window` (at least a second) cut into `capacity` slots (at least 1).
    pub fn new(window: Duration, capacity: usize) -> Self {
        let window_ms = secs_to_ms(window.as_secs()).max(1000);
        let slots = i64::try_from(capacity.max(1)).unwrap_or(i64::MAX);
        TimeWindow {
            window_ms,
            slot_ms: (window_ms / slots).max(1),
        }
    }

    /// The slot of `at_ms`.
    fn slot(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.slot_ms)
    }

    /// The oldest slot still in the window that ends just before `at_ms`.
    fn first_slot(&self, at_ms: i64) -> i64 {
        self.slot(at_ms) - self.window_ms / self.slot_ms
    }

    /// True once a whole window has passed since `first_ms`.
    fn covered(&self, first_ms: Option<i64>, at_ms: i64) -> bool {
        first_ms.is_some_and(|f| at_ms.saturating_sub(f) >= self.window_ms)
    }
}

/// Rolling z-score: `(x - mean) / std` over the values of the previous `window` of time
/// (see the module documentation for the thinning).
///
/// Warm-up: no z until a whole window has passed since the first point and it holds two
/// values (a variance); then the scorer's hour. Cost: O(1) per point, at most
/// `WINDOW_CAPACITY` values of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    /// The window's length and slots.
    layout: TimeWindow,
    /// Time of the previous point.
    clock: Clock,
    /// Time of the first point (for the warm-up).
    first: Option<i64>,
    /// The previous values.
    window: TimedMoments,
    /// z to score.
    scorer: Scorer,
}

impl ZScore {
    /// A rolling z-score over `window` of time with the default scorer.
    pub fn new(window: Duration) -> Self {
        Self::with_scorer(window, ScorerParams::default())
    }

    /// A rolling z-score over `window` of time with these scorer parameters.
    pub fn with_scorer(window: Duration, scorer: ScorerParams) -> Self {
        ZScore {
            layout: TimeWindow::new(window, WINDOW_CAPACITY),
            clock: Clock::default(),
            first: None,
            window: TimedMoments::default(),
            scorer: Scorer::new(scorer),
        }
    }

    /// How long after the first point every score is 0, at least: the window, then the
    /// scorer's density window.
    pub fn warm_up(&self) -> Duration {
        Duration::from_millis(self.layout.window_ms as u64) + self.scorer.warm_up()
    }

    /// Signed z of `x` at `at` against the previous window, once warm (does not update;
    /// evicts what has left the window).
    fn z_at(&mut self, at_ms: i64, x: f64) -> Option<f64> {
        self.window.evict_before(self.layout.first_slot(at_ms));
        (self.layout.covered(self.first, at_ms) && self.window.len() >= 2)
            .then(|| z_of(x, self.window.mean(), self.window.std()))
    }

    /// Scores `x` at `at`, then adds it to the window.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let at_ms = at.as_millis();
        let dt = self.clock.step(at_ms);
        self.first.get_or_insert(at_ms);
        let z = self.z_at(at_ms, x);
        let s = self.scorer.score(at, dt, z);
        self.window.push(self.layout.slot(at_ms), x);
        s
    }
}

impl Default for ZScore {
    fn default() -> Self {
        ZScore::new(DEFAULT_WINDOW)
    }
}

/// Robust rolling z: `(x - median) / (1.4826 · MAD)` over the values of the previous
/// `window` of time (thinned as `ZScore`'s). Outliers in the window move neither the
/// median nor the MAD, so a second spike right after the first is still seen.
///
/// Warm-up: no z until a whole window has passed and it holds three values (below that
/// the median and MAD are the values themselves); then the scorer's hour. Cost:
/// O(log w) expected to insert and evict and for the median, O(log² w) for the MAD (an
/// order-statistics treap in an arena); about `7·WINDOW_CAPACITY` words of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mad {
    /// The window's length and slots.
    layout: TimeWindow,
    /// Time of the previous point.
    clock: Clock,
    /// Time of the first point (for the warm-up).
    first: Option<i64>,
    /// The previous values, ordered.
    window: OrderWindow,
    /// The slot of each value in `window`, oldest first.
    slots: VecDeque<i64>,
    /// z to score.
    scorer: Scorer,
}

impl Mad {
    /// MAD to standard deviation for normal data.
    const CONSISTENCY: f64 = 1.4826;

    /// A rolling median/MAD over `window` of time with the default scorer.
    pub fn new(window: Duration) -> Self {
        Self::with_scorer(window, ScorerParams::default())
    }

    /// A rolling median/MAD over `window` of time with these scorer parameters.
    pub fn with_scorer(window: Duration, scorer: ScorerParams) -> Self {
        Mad {
            layout: TimeWindow::new(window, WINDOW_CAPACITY),
            clock: Clock::default(),
            first: None,
            window: OrderWindow::new(WINDOW_CAPACITY + 1),
            slots: VecDeque::new(),
            scorer: Scorer::new(scorer),
        }
    }

    /// How long after the first point every score is 0, at least.
    pub fn warm_up(&self) -> Duration {
        Duration::from_millis(self.layout.window_ms as u64) + self.scorer.warm_up()
    }

    /// Signed robust z of `x` at `at`, once warm (evicts what has left the window).
    fn z_at(&mut self, at_ms: i64, x: f64) -> Option<f64> {
        let first = self.layout.first_slot(at_ms);
        while self.slots.front().is_some_and(|&s| s < first) {
            self.slots.pop_front();
            self.window.pop_oldest();
        }
        if !self.layout.covered(self.first, at_ms) || self.window.len() < 3 {
            return None;
        }
        let m = self.window.median()?;
        let mad = self.window.mad_around(m)?;
        Some(z_of(x, m, Self::CONSISTENCY * mad))
    }

    /// Scores `x` at `at`, then adds it to the window (unless its slot has a value).
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let at_ms = at.as_millis();
        let dt = self.clock.step(at_ms);
        self.first.get_or_insert(at_ms);
        let z = self.z_at(at_ms, x);
        let s = self.scorer.score(at, dt, z);
        let slot = self.layout.slot(at_ms);
        if self.slots.back().is_none_or(|&s| s < slot) {
            self.slots.push_back(slot);
            self.window.push(x);
        }
        s
    }
}

impl Default for Mad {
    fn default() -> Self {
        Mad::new(DEFAULT_WINDOW)
    }
}

/// A level and spread that forget in time: the mean and variance of the past values with
/// weights decaying with time constant `tau` (bias-free, so the first points are a plain
/// average and no warm-up is needed to undo a start-up bias). The `ewma` detector and the
/// ensemble's cold-start predictor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Mean and variance.
    moments: DecayingMoments,
    /// Weight of a point for the last step (a cache).
    #[serde(skip)]
    weight: Decay,
}

impl Level {
    /// Signed z of `x`, once two values are known (the least a variance needs).
    #[inline]
    pub fn z(&self, x: f64) -> Option<f64> {
        (self.moments.n >= 2).then(|| z_of(x, self.moments.mean, self.moments.std()))
    }

    /// Learns `x`, `dt_ms` after the previous point (`None` for the first), and returns
    /// the weight it was given (0 for the first), for memories that decay alongside.
    #[inline]
    pub fn learn(&mut self, dt_ms: Option<i64>, x: f64, tau_ms: f64) -> f64 {
        let a = dt_ms.map_or(0.0, |dt| self.weight.weight(dt, tau_ms));
        self.moments.push(x, a);
        a
    }

    /// The current level (0 before any value).
    pub fn mean(&self) -> f64 {
        self.moments.mean
    }

    /// Points learnt (saturating).
    pub fn count(&self) -> u32 {
        self.moments.n
    }

    /// The variance (0 before two values).
    #[inline]
    pub fn var(&self) -> f64 {
        self.moments.var()
    }
}

/// EWMA mean with EWMA variance in time: `(x - mean) / std`, both forgetting with time
/// constant `tau`.
///
/// Warm-up: no z before two values (a variance); then the scorer's hour. Cost: O(1) per
/// point, a few numbers of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// Time constant (s).
    tau_secs: u64,
    /// Time of the previous point.
    clock: Clock,
    /// Mean and variance.
    level: Level,
    /// z to score.
    scorer: Scorer,
}

impl Ewma {
    /// Default time constant: 4 h (a weight of 0.02 per 5-minute point, as before).
    pub const DEFAULT_TAU: Duration = Duration::from_secs(4 * 3_600);

    /// An EWMA detector with time constant `tau` (at least a second) and the default
    /// scorer.
    pub fn new(tau: Duration) -> Self {
        Self::with_scorer(tau, ScorerParams::default())
    }

    /// An EWMA detector with time constant `tau` and these scorer parameters.
    pub fn with_scorer(tau: Duration, scorer: ScorerParams) -> Self {
        Ewma {
            tau_secs: tau.as_secs().max(1),
            clock: Clock::default(),
            level: Level::default(),
            scorer: Scorer::new(scorer),
        }
    }

    /// How long after the first point every score is 0, at least (the scorer's hour).
    pub fn warm_up(&self) -> Duration {
        self.scorer.warm_up()
    }

    /// Scores `x` at `at`, then folds it in.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let dt = self.clock.step(at.as_millis());
        let s = self.scorer.score(at, dt, self.level.z(x));
        self.level.learn(dt, x, tau_ms(self.tau_secs));
        s
    }
}

impl Default for Ewma {
    fn default() -> Self {
        Ewma::new(Self::DEFAULT_TAU)
    }
}

/// Least-squares line through the last `window` values (x = tick index), updated in O(1):
/// the `predict_linear` idea. `forecast(h)` is the value expected `h` ticks after the
/// newest one; the engine uses it for "the budget will be crossed in N ticks".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearTrend {
    /// Maximum number of values held.
    cap: usize,
    /// The values, oldest first (x = 0 for the oldest).
    buf: Ring,
    /// Shift subtracted before summing (the oldest value at the last rebuild).
    pivot: f64,
    /// Sum of `y - pivot`.
    sum_y: f64,
    /// Sum of `x · (y - pivot)`.
    sum_xy: f64,
    /// Evictions since the sums were rebuilt from `buf` (bounds rounding drift).
    since_rebuild: usize,
}

impl LinearTrend {
    /// A line over the last `window` values (at least 2).
    pub fn new(window: usize) -> Self {
        let cap = window.max(2);
        LinearTrend {
            cap,
            buf: Ring::with_capacity(cap),
            pivot: 0.0,
            sum_y: 0.0,
            sum_xy: 0.0,
            since_rebuild: 0,
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True before the first value.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends `y` (evicting the oldest when full). O(1) amortised.
    pub fn push(&mut self, y: f64) {
        if self.buf.is_empty() {
            self.pivot = y;
        }
        // The sums are updated in locals and stored once: two scalar stores followed by a
        // vector load of both (which the compiler otherwise emits) stall the CPU.
        let (mut sum_y, mut sum_xy) = (self.sum_y, self.sum_xy);
        if let Some(old) = self.buf.push_evict(y, self.cap) {
            // The oldest sat at x = 0; every survivor moves down one x.
            sum_y -= old - self.pivot;
            sum_xy -= sum_y;
            self.since_rebuild += 1;
        }
        // The new value sits at the last x.
        let d = y - self.pivot;
        sum_xy += (self.buf.len() - 1) as f64 * d;
        sum_y += d;
        (self.sum_y, self.sum_xy) = (sum_y, sum_xy);
        if self.since_rebuild >= self.cap {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.pivot = self.buf.front().unwrap_or(0.0);
        let (mut sy, mut sxy) = (0.0, 0.0);
        for (i, y) in self.buf.iter().enumerate() {
            let d = y - self.pivot;
            sy += d;
            sxy += i as f64 * d;
        }
        self.sum_y = sy;
        self.sum_xy = sxy;
        self.since_rebuild = 0;
    }

    /// Intercept (at x = 0, the oldest value held) and slope per tick; `None` with fewer
    /// than two values.
    pub fn line(&self) -> Option<(f64, f64)> {
        let n = self.buf.len();
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let sum_x = nf * (nf - 1.0) / 2.0;
        let sum_xx = (nf - 1.0) * nf * (2.0 * nf - 1.0) / 6.0;
        let den = nf * sum_xx - sum_x * sum_x;
        let slope = (nf * self.sum_xy - sum_x * self.sum_y) / den;
        let intercept = (self.sum_y - slope * sum_x) / nf + self.pivot;
        Some((intercept, slope))
    }

    /// The value expected `h` ticks after the newest one (h = 0: the fitted newest);
    /// `None` with fewer than two values.
    pub fn forecast(&self, h: u32) -> Option<f64> {
        let (a, b) = self.line()?;
        let x = (self.buf.len() - 1) as f64 + f64::from(h);
        let y = a + b * x;
        y.is_finite().then_some(y)
    }
}

/// Linear-trend prediction error: the value is predicted at its own timestamp by the
/// least-squares line of the past in time (weights decaying with `LINE_TAU`), and the
/// error is divided by its own RMS (decaying with `RESID_TAU`). A steady ramp is
/// expected; a break from the ramp is not.
///
/// Warm-up: no z before the line has two points and two errors; then the scorer's hour.
/// Cost: O(1) per point, about fifteen numbers of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Time of the previous point.
    clock: Clock,
    /// The line.
    line: TimeLine,
    /// One-step prediction errors.
    resid: DecayingMoments,
    /// z to score.
    scorer: Scorer,
    /// Weights of the line and of the errors for the last step (caches).
    #[serde(skip)]
    weights: (Decay, Decay),
}

impl Trend {
    /// Time constant of the line: 1 h (for the slope, about the span of the 32-point
    /// window it replaced at 5 minutes).
    pub const LINE_TAU: Duration = Duration::from_secs(3_600);
    /// Time constant of the error scale: 4 h (0.02 per 5-minute point, as before).
    pub const RESID_TAU: Duration = Duration::from_secs(4 * 3_600);

    /// A trend detector with these scorer parameters.
    pub fn with_scorer(scorer: ScorerParams) -> Self {
        Trend {
            clock: Clock::default(),
            line: TimeLine::default(),
            resid: DecayingMoments::default(),
            scorer: Scorer::new(scorer),
            weights: Default::default(),
        }
    }

    /// How long after the first point every score is 0, at least (the scorer's hour).
    pub fn warm_up(&self) -> Duration {
        self.scorer.warm_up()
    }

    /// The fitted line.
    pub fn line(&self) -> &TimeLine {
        &self.line
    }

    /// The value expected `h` steps after the newest point, a step being the newest
    /// interval between points; `None` before two points.
    pub fn forecast(&self, h: u32) -> Option<f64> {
        forecast_steps(&self.line, h)
    }

    /// Signed z of `x` at `at` against the line, once warmed up (does not update).
    pub fn z(&self, at: Timestamp, x: f64) -> Option<f64> {
        if self.resid.n < 2 {
            return None;
        }
        let f = self.line.value_at(at.as_millis())?;
        let rms = (self.resid.var() + self.resid.mean * self.resid.mean).sqrt();
        Some(z_of(x, f, rms))
    }

    /// Scores `x` at `at`, then learns it.
    pub fn update(&mut self, at: Timestamp, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let at_ms = at.as_millis();
        let dt = self.clock.step(at_ms);
        let s = self.scorer.score(at, dt, self.z(at, x));
        let step = dt.unwrap_or(0);
        if let Some(f) = self.line.value_at(at_ms) {
            let a = self.weights.1.weight(step, duration_tau(Self::RESID_TAU));
            self.resid.push(x - f, a);
        }
        let a = self.weights.0.weight(step, duration_tau(Self::LINE_TAU));
        self.line.push(at_ms, x, a);
        s
    }
}

impl Default for Trend {
    fn default() -> Self {
        Trend::with_scorer(ScorerParams::default())
    }
}

/// A duration as a time constant in milliseconds for `decay_weight`.
pub(crate) fn duration_tau(d: Duration) -> f64 {
    tau_ms(d.as_secs())
}

/// The line's value `h` steps after its newest point (a step: its newest interval).
pub(crate) fn forecast_steps(line: &TimeLine, h: u32) -> Option<f64> {
    let after = line.step_ms().saturating_mul(i64::from(h));
    line.value_at(line.newest()?.saturating_add(after))
}
