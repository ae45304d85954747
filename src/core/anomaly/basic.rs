//! The four classic single-model detectors: rolling z-score, rolling median/MAD, EWMA
//! mean/variance, and linear-trend prediction error, plus `LinearTrend`, the O(1)
//! least-squares line behind `forecast(h)`.
//!
//! Each predicts the next value from the past only and divides the error by a scale learnt
//! from the past (a z), then hands the z to the shared `Scorer` (bounded surprise, density,
//! likelihood against the series' own history, cooldown). They are the building blocks
//! and the baselines; the `Ensemble` is the tuned default.

use super::score::{Scorer, ScorerParams};
use super::stats::{Ewm, OrderWindow, Ring, RollingMoments};
use serde::{Deserialize, Serialize};

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

/// Rolling z-score: `(x - mean) / std` over the previous `window` values.
///
/// Warm-up: the first `window + density - 1` scores are 0 (`warm_up()`). Cost: O(1) per
/// point, `window` floats of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    /// The previous values.
    window: RollingMoments,
    /// Capacity of `window`.
    cap: usize,
    /// z to score.
    scorer: Scorer,
}

impl ZScore {
    /// Default window: 288 points (a day of 5-minute samples).
    pub const DEFAULT_WINDOW: usize = 288;

    /// A rolling z-score over `window` points (at least 2) with the default scorer.
    pub fn new(window: usize) -> Self {
        Self::with_scorer(window, ScorerParams::default())
    }

    /// A rolling z-score over `window` points with these scorer parameters.
    pub fn with_scorer(window: usize, scorer: ScorerParams) -> Self {
        let cap = window.max(2);
        ZScore {
            window: RollingMoments::new(cap),
            cap,
            scorer: Scorer::new(scorer),
        }
    }

    /// Number of leading points whose score is always 0.
    pub fn warm_up(&self) -> usize {
        self.cap + self.scorer.warm_up() - 1
    }

    /// Signed z of `x` against the window, once it is full (does not update).
    pub fn z(&self, x: f64) -> Option<f64> {
        self.window
            .is_full()
            .then(|| z_of(x, self.window.mean(), self.window.std()))
    }

    /// Scores `x`, then adds it to the window.
    pub fn update(&mut self, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = self.scorer.score(self.z(x));
        self.window.push(x);
        s
    }
}

impl Default for ZScore {
    fn default() -> Self {
        ZScore::new(Self::DEFAULT_WINDOW)
    }
}

/// Robust rolling z: `(x - median) / (1.4826 · MAD)` over the previous `window` values.
/// Outliers in the window move neither the median nor the MAD, so a second spike right
/// after the first is still seen.
///
/// Warm-up: the first `window + density - 1` scores are 0. Cost: O(log w) expected to
/// insert and evict and for the median, O(log² w) for the MAD (an order-statistics treap
/// in an arena); about `6·window` words of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mad {
    /// The previous values, ordered.
    window: OrderWindow,
    /// Capacity, to know when warm-up ends.
    cap: usize,
    /// z to score.
    scorer: Scorer,
}

impl Mad {
    /// Default window: 288 points.
    pub const DEFAULT_WINDOW: usize = 288;
    /// MAD to standard deviation for normal data.
    const CONSISTENCY: f64 = 1.4826;

    /// A rolling median/MAD over `window` points (at least 3) with the default scorer.
    pub fn new(window: usize) -> Self {
        Self::with_scorer(window, ScorerParams::default())
    }

    /// A rolling median/MAD over `window` points with these scorer parameters.
    pub fn with_scorer(window: usize, scorer: ScorerParams) -> Self {
        let cap = window.max(3);
        Mad {
            window: OrderWindow::new(cap),
            cap,
            scorer: Scorer::new(scorer),
        }
    }

    /// Number of leading points whose score is always 0.
    pub fn warm_up(&self) -> usize {
        self.cap + self.scorer.warm_up() - 1
    }

    /// Signed robust z of `x`, once the window is full (does not update).
    pub fn z(&self, x: f64) -> Option<f64> {
        if self.window.len() < self.cap {
            return None;
        }
        let m = self.window.median()?;
        let mad = self.window.mad_around(m)?;
        Some(z_of(x, m, Self::CONSISTENCY * mad))
    }

    /// Scores `x`, then adds it to the window.
    pub fn update(&mut self, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = self.scorer.score(self.z(x));
        self.window.push(x);
        s
    }
}

impl Default for Mad {
    fn default() -> Self {
        Mad::new(Self::DEFAULT_WINDOW)
    }
}

/// EWMA mean with EWMA variance: `(x - mean) / std`, both forgetting with weight `alpha`.
///
/// Warm-up: the first `ceil(2 / alpha) + density - 1` scores are 0. Cost: O(1) per point,
/// three numbers of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// Smoothing weight of the newest point.
    alpha: f64,
    /// Mean and variance.
    ewm: Ewm,
    /// z to score.
    scorer: Scorer,
}

impl Ewma {
    /// Default weight: 0.02 (a memory of about 100 points).
    pub const DEFAULT_ALPHA: f64 = 0.02;

    /// An EWMA detector with weight `alpha` (clamped to [1e-4, 1]) and the default scorer.
    pub fn new(alpha: f64) -> Self {
        Self::with_scorer(alpha, ScorerParams::default())
    }

    /// An EWMA detector with weight `alpha` and these scorer parameters.
    pub fn with_scorer(alpha: f64, scorer: ScorerParams) -> Self {
        Ewma {
            alpha: alpha.clamp(1e-4, 1.0),
            ewm: Ewm::default(),
            scorer: Scorer::new(scorer),
        }
    }

    /// Points learnt before the EWMA gives a z.
    fn model_warm_up(&self) -> u64 {
        (2.0 / self.alpha).ceil() as u64
    }

    /// Number of leading points whose score is always 0.
    pub fn warm_up(&self) -> usize {
        self.model_warm_up() as usize + self.scorer.warm_up() - 1
    }

    /// Signed z of `x`, once warmed up (does not update).
    pub fn z(&self, x: f64) -> Option<f64> {
        (self.ewm.n >= self.model_warm_up()).then(|| z_of(x, self.ewm.mean, self.ewm.std()))
    }

    /// Scores `x`, then folds it in.
    pub fn update(&mut self, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = self.scorer.score(self.z(x));
        self.ewm.push(x, self.alpha);
        s
    }
}

impl Default for Ewma {
    fn default() -> Self {
        Ewma::new(Self::DEFAULT_ALPHA)
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

/// The last `window` values, with their least-squares line built on demand: pushing is
/// a store into a ring, and `forecast(h)` costs O(window). For the ensemble, whose line
/// only answers `forecast(h)` (asked now and then, not every point); `Trend`, which
/// predicts every point, keeps a `LinearTrend` with running sums instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentValues {
    /// Maximum number of values held.
    cap: usize,
    /// The values, oldest first.
    buf: Ring,
}

impl RecentValues {
    /// The last `window` values (at least 2).
    pub fn new(window: usize) -> Self {
        let cap = window.max(2);
        RecentValues {
            cap,
            buf: Ring::with_capacity(cap),
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

    /// Appends `y`, evicting the oldest when full. O(1).
    pub fn push(&mut self, y: f64) {
        self.buf.push_evict(y, self.cap);
    }

    /// The least-squares line through the values held (their sums computed afresh, as
    /// `LinearTrend` does at each rebuild). O(window).
    pub fn trend(&self) -> LinearTrend {
        let mut line = LinearTrend::new(self.cap);
        for y in self.buf.iter() {
            line.push(y);
        }
        line
    }

    /// The value expected `h` ticks after the newest one; `None` with fewer than two
    /// values. O(window).
    pub fn forecast(&self, h: u32) -> Option<f64> {
        self.trend().forecast(h)
    }
}

/// Linear-trend prediction error: the value is predicted by the least-squares line of the
/// previous `window` points one tick ahead, and the error is divided by its own EWMA RMS.
/// A steady ramp is expected; a break from the ramp is not.
///
/// Warm-up: the first `window + RESID_WARM_UP + density - 1` scores are 0. Cost: O(1) per
/// point, `window` floats of state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The line.
    line: LinearTrend,
    /// Window length.
    window: usize,
    /// One-step prediction errors.
    resid: Ewm,
    /// z to score.
    scorer: Scorer,
}

impl Trend {
    /// Default window: 32 points.
    pub const DEFAULT_WINDOW: usize = 32;
    /// Prediction errors learnt before the error scale is trusted.
    pub const RESID_WARM_UP: u64 = 32;
    /// Weight of the newest error in the error scale.
    const RESID_ALPHA: f64 = 0.02;

    /// A trend detector over `window` points (at least 3) with the default scorer.
    pub fn new(window: usize) -> Self {
        Self::with_scorer(window, ScorerParams::default())
    }

    /// A trend detector over `window` points with these scorer parameters.
    pub fn with_scorer(window: usize, scorer: ScorerParams) -> Self {
        let window = window.max(3);
        Trend {
            line: LinearTrend::new(window),
            window,
            resid: Ewm::default(),
            scorer: Scorer::new(scorer),
        }
    }

    /// Number of leading points whose score is always 0.
    pub fn warm_up(&self) -> usize {
        self.window + Self::RESID_WARM_UP as usize + self.scorer.warm_up() - 1
    }

    /// The fitted line.
    pub fn line(&self) -> &LinearTrend {
        &self.line
    }

    /// The value expected `h` ticks after the newest one.
    pub fn forecast(&self, h: u32) -> Option<f64> {
        self.line.forecast(h)
    }

    /// Signed z of `x` against the one-step forecast, once warmed up (does not update).
    pub fn z(&self, x: f64) -> Option<f64> {
        if self.line.len() < self.window || self.resid.n < Self::RESID_WARM_UP {
            return None;
        }
        let f = self.line.forecast(1)?;
        let rms = (self.resid.var + self.resid.mean * self.resid.mean).sqrt();
        Some(z_of(x, f, rms))
    }

    /// Scores `x`, then learns it.
    pub fn update(&mut self, x: f64) -> f64 {
        let Some(x) = admit(x) else {
            return 0.0;
        };
        let s = self.scorer.score(self.z(x));
        if self.line.len() >= self.window
            && let Some(f) = self.line.forecast(1)
        {
            self.resid.push(x - f, Self::RESID_ALPHA);
        }
        self.line.push(x);
        s
    }
}

impl Default for Trend {
    fn default() -> Self {
        Trend::new(Self::DEFAULT_WINDOW)
    }
}
