//! Streaming statistics the detectors are built from: an exponentially weighted mean and
//! variance, a rolling window with O(1) mean and variance (over a `Ring`), and a rolling
//! order-statistics window (median and MAD in O(log w) and O(log² w)); plus the normal
//! tail in decades (`two_sided_decades`, the scorer's per-point function) and
//! `Reciprocal`, a cache that turns a fixed divisor into a multiplication.
//!
//! Everything here is deterministic and serialisable, and holds only finite floats (JSON
//! has no NaN or infinity), so a state restored mid-stream continues bit for bit. Caches
//! are not serialised: they are pure functions of the state, so a restored state
//! rebuilds them with the same values.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;
use std::collections::VecDeque;
use std::fmt;

/// Decades of surprise of `z`: `-log10 P(|Z| ≥ |z|)` for a standard normal `Z` (0 at
/// z = 0, 1.30 at |z| = 1.96, 7 at |z| ≈ 5.33, growing like z²/(2·ln 10)); 0 for NaN and
/// +∞ for infinite z. The quantity `-log10(two_sided_p(z))`, but without its underflow,
/// more exact (`statrs`' erfc is good to about 1e-10 relative) and several times faster:
/// the scorer calls it once or twice per point.
///
/// For |z| < 8 a piecewise polynomial: one of degree 11 per half unit of |z|, centred on
/// the nearest multiple of 1/2 (the Chebyshev interpolant of the exact function computed
/// with 50 digits; around 0, of the exact function divided by |z|, so that small
/// surprises keep their relative precision): relative error below 5e-16. Beyond |z| = 8,
/// `ln erfc(y) = -y² - ln(√π·K(y))` with `K` the continued fraction of erfc, 12 terms
/// deep (relative error below 1e-15). Tested against 40-digit values. No `exp`, and a
/// logarithm only beyond |z| = 8.
#[inline]
pub fn two_sided_decades(z: f64) -> f64 {
    let x = z.abs();
    if x < DECADES_POLY_END {
        // 0 must give exactly 0 (a constant series never scores); NaN is not below the
        // end, so it does not get here.
        if x == 0.0 {
            return 0.0;
        }
        // k = round(2|z|) in 0..=16 by the 1.5·2^52 trick (the sum's last mantissa bits
        // are the rounded integer), t = 2|z| − k ∈ [−1/2, 1/2]: shorter to compute than a
        // float-to-integer conversion, and this is on every point's critical path.
        let s = 2.0 * x;
        let m = s + ROUND_TO_INTEGER;
        let k = (m.to_bits() & 31) as usize;
        let t = s - (m - ROUND_TO_INTEGER);
        let c = &DECADES_POLY[k.min(DECADES_POLY.len() - 1)];
        // Estrin's scheme: the same polynomial with a short dependency chain.
        let t2 = t * t;
        let t4 = t2 * t2;
        let p03 = (c[0] + c[1] * t) + (c[2] + c[3] * t) * t2;
        let p47 = (c[4] + c[5] * t) + (c[6] + c[7] * t) * t2;
        let p811 = (c[8] + c[9] * t) + (c[10] + c[11] * t) * t2;
        return (p03 + p47 * t4) + p811 * (t4 * t4);
    }
    if x.is_nan() {
        return 0.0;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    // erfc(y) = exp(-y²) / (√π · K), K = y + (1/2)/(y + 1/(y + (3/2)/(y + ...))).
    let y = x * std::f64::consts::FRAC_1_SQRT_2;
    let mut k = y;
    for n in (1..=12).rev() {
        k = y + (0.5 * f64::from(n)) / k;
    }
    // ln √π = 0.5723649429247001.
    (y * y + 0.572_364_942_924_700_1 + k.ln()) * std::f64::consts::LOG10_E
}

/// 1.5·2^52: adding it to a float in [0, 2^51) rounds it to an integer (ties to even)
/// held in the low mantissa bits of the sum.
const ROUND_TO_INTEGER: f64 = 6_755_399_441_055_744.0;

/// Where `DECADES_POLY` ends (|z| of 8 is 14.8 decades).
const DECADES_POLY_END: f64 = 8.0;

/// `two_sided_decades` on |z| ∈ [k/2 − 1/4, k/2 + 1/4] for k = 0..=16: monomial
/// coefficients (constant first) in t = 2|z| − k ∈ [−1/2, 1/2]; Chebyshev interpolants
/// at 12 nodes of the exact function (mpmath, 50 digits), except for k = 0: |z| times
/// the interpolant at 11 nodes of the function over |z| (so the constant is exactly 0).
/// Max relative error with the evaluation in `two_sided_decades`: 4e-16.
#[rustfmt::skip]
const DECADES_POLY: [[f64; 12]; 17] = [
    [
        0.0, 0.17325843097624202, 0.03456005677621816, 0.0019725439500615305,
        -0.00012980279661953148, -5.018915647324251e-07, 1.438775235243986e-06, -1.7697502598687377e-07,
        2.7420776555497832e-09, 2.418759801645753e-09, -3.91519419686087e-10, 1.5674841745148125e-11,
    ],
    [
        0.2096619936012596, 0.24778188954665817, 0.03971186532203935, 0.0014712080716624862,
        -0.00011650387171050373, 4.783209981566044e-06, 4.073246693007038e-07, -1.0775543920396308e-07,
        1.065998925160401e-08, -1.8024859598292344e-10, -1.215731813670939e-10, 2.1412041560140793e-11,
    ],
    [
        0.4985155458279893, 0.3311789172963531, 0.04347843304827876, 0.0010579702693166255,
        -8.954494405410003e-05, 5.516793093810472e-06, -8.052320094602437e-08, -3.7631944408317345e-08,
        6.35464588174883e-09, -5.566837269255584e-10, 1.2781119163384031e-11, 4.614549727437633e-12,
    ],
    [
        0.8741467259508352, 0.4209783978280008, 0.04616840269212129, 0.0007523421236864131,
        -6.410733036539491e-05, 4.533980540824615e-06, -2.085437872172688e-07, -4.292833322801763e-09,
        2.358337832118361e-09, -3.141160374176226e-10, 2.5390752223445504e-11, -8.085443213327474e-13,
    ],
    [
        1.3419860844769558, 0.5153372051360227, 0.04808296239956859, 0.0005370400630737887,
        -4.4585297920909914e-05, 3.2910234900951766e-06, -1.9405667931088733e-07, 5.986954522185481e-09,
        5.056702838703825e-10, -1.1827108928792172e-10, 1.3465827029256013e-11, -1.029000269143225e-12,
    ],
    [
        1.9059018101313199, 0.612951244723273, 0.04945670636401321, 0.0003879573510613684,
        -3.080848905800545e-05, 2.2687694633602724e-06, -1.4553792926800824e-07, 7.081718194752395e-09,
        -1.0225819803344737e-10, -3.0790537648207115e-11, 5.068107639398797e-12, -5.086632341343861e-13,
    ],
    [
        2.568669040265388, 0.7129158146901384, 0.05045637705435363, 0.00028474040733786414,
        -2.1409979546490603e-05, 1.5357152598946353e-06, -1.0055988938390571e-07, 5.619156356088657e-09,
        -2.2005963859530183e-10, -1.3200428796435542e-12, 1.4491224349812158e-12, -1.8922814086738748e-13,
    ],
    [
        3.3323060029920852, 0.8146042628938797, 0.05119609900184164, 0.00021263082511363416,
        -1.5058454242820765e-05, 1.0381557985735455e-06, -6.726969494699082e-08, 3.933106601310869e-09,
        -1.9126312023365734e-10, 5.713473280971725e-12, 2.1386434300938355e-13, -5.678787972462817e-14,
    ],
    [
        4.198304911892498, 0.9175789327713672, 0.05175309071656112, 0.00016156061725642056,
        -1.0751702307382274e-05, 7.071731094259275e-07, -4.4590484282188285e-08, 2.61936953752042e-09,
        -1.3720380295595933e-10, 5.773161035982382e-12, -1.146768227252578e-13, -1.1467122788183456e-14,
    ],
    [
        5.167788409365814, 1.0215300748583231, 0.052179716595478605, 0.00012481819349324314,
        -7.801920203011978e-06, 4.876478079846545e-07, -2.963976407456133e-08, 1.7131570730568444e-09,
        -9.158542697322475e-11, 4.3051622919480906e-12, -1.5442051606837298e-13, 1.3407671446624884e-15,
    ],
    [
        6.241615676726673, 1.126235026646039, 0.05251182509639119, 9.794937057280825e-05,
        -5.754217506725703e-06, 3.411611252715532e-07, -1.9881949258651926e-08, 1.1176192935298012e-09,
        -5.941268970828507e-11, 2.8999933266638754e-12, -1.2227729747291059e-13, 3.655364045539425e-15,
    ],
    [
        7.420455045962333, 1.2315311019673947, 0.05277428319063145, 7.798249190786795e-05,
        -4.311342404443949e-06, 2.4234859817242117e-07, -1.3502561650873541e-08, 7.332463134575028e-10,
        -3.821685396433014e-11, 1.874763985264907e-12, -8.380274646756402e-14, 3.1574515559934806e-15,
    ],
    [
        8.704834331812723, 1.3372975060254428, 0.052984597951477155, 6.291422844988329e-05,
        -3.278929760677215e-06, 1.748077701765479e-07, -9.298628948312169e-09, 4.859338646006141e-10,
        -2.4630130377246847e-11, 1.1937485986157387e-12, -5.425170784017535e-14, 2.219324469346794e-15,
    ],
    [
        10.095176237059919, 1.4434431503565024, 0.05315528521215073, 5.13763370485459e-05,
        -2.528947041512376e-06, 1.2797904222332363e-07, -6.4968836621273855e-09, 3.2603972497935896e-10,
        -1.5994156435057724e-11, 7.58473875465077e-13, -3.432107531525385e-14, 1.444869383555135e-15,
    ],
    [
        11.591823641811509, 1.549898337078516, 0.05329542930305054, 4.242097717341075e-05,
        -1.9761244670978856e-06, 9.503645626467022e-08, -4.605309726301599e-09, 2.2171399512998726e-10,
        -1.049711797317131e-11, 4.842577421785932e-13, -2.1565918073418533e-14, 9.109958378748122e-16,
    ],
    [
        13.195057943688608, 1.6566090031408653, 0.05341172115127116, 3.538194805959506e-05,
        -1.5629398637928313e-06, 7.15287351753831e-08, -3.3106872778869143e-09, 1.528596883628631e-10,
        -6.974046947825264e-12, 3.118980256144209e-13, -1.3576583838194056e-14, 5.67643011410749e-16,
    ],
    [
        14.905112555353174, 1.7635326783245864, 0.0535091580087377, 2.9784246413955875e-05,
        -1.2500579634048201e-06, 5.4520245384062834e-08, -2.4123484468655577e-09, 1.0683910223267451e-10,
        -4.6937254700551796e-12, 2.0308510088153668e-13, -8.604517083919607e-15, 3.532400249134878e-16,
    ],
];

/// `1/x` for the last `x` asked for, recomputed only when `x` changes: a divisor that is
/// fixed (a parameter, a window length, a converged weight) then costs a compare instead
/// of a division per point. A cache: a pure function of its input, so it is not
/// serialised, any two compare equal and its `Debug` form shows no contents (a state
/// restored from JSON prints like the original).
#[derive(Clone)]
pub struct Reciprocal {
    /// The `x` of the cached value (NaN: none yet).
    of: f64,
    /// `1/of`.
    inv: f64,
}

impl Default for Reciprocal {
    fn default() -> Self {
        Reciprocal {
            of: f64::NAN,
            inv: f64::NAN,
        }
    }
}

impl PartialEq for Reciprocal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Reciprocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(cache)")
    }
}

impl Reciprocal {
    /// `1/x` (bit-identical to computing it), remembering it for next time.
    #[inline]
    pub fn of(&mut self, x: f64) -> f64 {
        if x.to_bits() != self.of.to_bits() {
            self.of = x;
            self.inv = 1.0 / x;
        }
        self.inv
    }

    /// `1/x` from the cache if it holds it, else computed (the same value either way).
    #[inline]
    pub fn peek(&self, x: f64) -> f64 {
        if x.to_bits() == self.of.to_bits() {
            self.inv
        } else {
            1.0 / x
        }
    }
}

/// Upper-tail probability of a standard normal beyond `|z|`, both tails (`P(|Z| ≥ |z|)`).
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// One-sided upper-tail probability `P(Z ≥ z)` of a standard normal.
pub fn upper_p(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    (0.5 * erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0)
}

/// Maps a tail probability to a score in [0, 1] on a log scale: `p = 10^-decades` and
/// below score 1, `p = 1` scores 0. A log scale keeps resolution where thresholds live
/// (p between 1e-3 and 1e-8), which a plain `1 - p` squashes against 1.
pub fn p_to_score(p: f64, decades: f64) -> f64 {
    if p.is_nan() || p >= 1.0 {
        return 0.0;
    }
    if p <= 0.0 {
        return 1.0;
    }
    (-p.log10() / decades).clamp(0.0, 1.0)
}

/// Exponentially weighted mean and variance (West's incremental form): O(1) per point,
/// memory of about `2/alpha` points.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewm {
    /// Weighted mean.
    pub mean: f64,
    /// Weighted variance around `mean`.
    pub var: f64,
    /// Points seen (saturating), for warm-up decisions.
    pub n: u64,
}

impl Ewm {
    /// Folds `x` in with weight `alpha` (the first point sets the mean).
    #[inline]
    pub fn push(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            let incr = alpha * d;
            self.mean += incr;
            self.var = (1.0 - alpha) * (self.var + d * incr);
        }
        self.n = self.n.saturating_add(1);
    }

    /// Standard deviation.
    #[inline]
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// Exponentially weighted mean and variance without start-up bias: every point's weight
/// decays by `1 - alpha` per point and the statistics are normalised by the total weight,
/// so the first points are a plain average instead of being pulled towards the first one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayingMoments {
    /// Total weight (tends to `1/alpha`).
    pub weight: f64,
    /// Weighted mean.
    pub mean: f64,
    /// Weighted sum of squared deviations.
    m2: f64,
    /// `1/weight`: the weight converges (to 1/alpha), after which dividing by it is a
    /// multiplication.
    #[serde(skip)]
    inv_weight: Reciprocal,
}

impl DecayingMoments {
    /// Folds `x` in; older points lose weight by `1 - alpha`.
    #[inline]
    pub fn push(&mut self, x: f64, alpha: f64) {
        let keep = 1.0 - alpha;
        self.weight = keep * self.weight + 1.0;
        let old = self.mean;
        self.mean += (x - old) * self.inv_weight.of(self.weight);
        self.m2 = keep * self.m2 + (x - old) * (x - self.mean);
    }

    /// Weighted variance.
    #[inline]
    pub fn var(&self) -> f64 {
        if self.weight > 0.0 {
            (self.m2 * self.inv_weight.peek(self.weight)).max(0.0)
        } else {
            0.0
        }
    }

    /// Weighted standard deviation.
    #[inline]
    pub fn std(&self) -> f64 {
        self.var().sqrt()
    }
}

/// A bounded FIFO of floats: a plain vector used as a ring once full, so pushing a value
/// and evicting the oldest is a store and an index bump (cheaper than a `VecDeque`'s
/// pop and push). It serialises and prints exactly like a `VecDeque<f64>` (the values,
/// oldest first) and compares by that sequence.
#[derive(Clone, Default)]
pub struct Ring {
    /// The values; `buf[head]` is the oldest.
    buf: Vec<f64>,
    /// Index of the oldest value (0 until the ring is full).
    head: usize,
}

impl Ring {
    /// An empty ring with room for `cap` values.
    pub fn with_capacity(cap: usize) -> Self {
        Ring {
            buf: Vec::with_capacity(cap),
            head: 0,
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The oldest value.
    pub fn front(&self) -> Option<f64> {
        self.buf.get(self.head).copied()
    }

    /// The values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (newer, older) = self.buf.split_at(self.head);
        older.iter().chain(newer).copied()
    }

    /// Appends `x`; once `cap` values are held, `x` replaces the oldest, which is
    /// returned. The ring is never left empty (a capacity of 0 acts as 1).
    #[inline]
    pub fn push_evict(&mut self, x: f64, cap: usize) -> Option<f64> {
        if self.buf.len() < cap || self.buf.is_empty() {
            self.buf.push(x);
            return None;
        }
        let slot = self.buf.get_mut(self.head)?;
        let old = std::mem::replace(slot, x);
        self.head += 1;
        if self.head == self.buf.len() {
            self.head = 0;
        }
        Some(old)
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Ring {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Ring {
            buf: Vec::deserialize(d)?,
            head: 0,
        })
    }
}

/// A fixed-capacity window of the latest values with their mean and variance in O(1).
///
/// Sums are kept relative to a pivot (the first value of the current epoch) and rebuilt
/// from the buffer once per `cap` evictions, so rounding error cannot accumulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollingMoments {
    /// Maximum number of values held.
    cap: usize,
    /// The values, oldest first.
    buf: Ring,
    /// Shift subtracted before summing, for numerical stability.
    pivot: f64,
    /// Sum of `x - pivot`.
    sum: f64,
    /// Sum of `(x - pivot)²`.
    sumsq: f64,
    /// Evictions since the last rebuild.
    since_rebuild: usize,
    /// `1/len` for the mean.
    #[serde(skip)]
    inv_len: Reciprocal,
}

impl RollingMoments {
    /// An empty window of capacity `cap` (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        RollingMoments {
            cap,
            buf: Ring::with_capacity(cap),
            pivot: 0.0,
            sum: 0.0,
            sumsq: 0.0,
            since_rebuild: 0,
            inv_len: Reciprocal::default(),
        }
    }

    /// Appends `x`, evicting the oldest value when full. O(1) amortised.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if self.buf.is_empty() {
            self.pivot = x;
        }
        // Updated in locals and stored once (see `LinearTrend::push`).
        let (mut sum, mut sumsq) = (self.sum, self.sumsq);
        if let Some(old) = self.buf.push_evict(x, self.cap) {
            let d = old - self.pivot;
            sum -= d;
            sumsq -= d * d;
            self.since_rebuild += 1;
        }
        let d = x - self.pivot;
        (self.sum, self.sumsq) = (sum + d, sumsq + d * d);
        self.inv_len.of(self.buf.len() as f64);
        if self.since_rebuild >= self.cap {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.pivot = self.buf.front().unwrap_or(0.0);
        self.sum = 0.0;
        self.sumsq = 0.0;
        for x in self.buf.iter() {
            let d = x - self.pivot;
            self.sum += d;
            self.sumsq += d * d;
        }
        self.since_rebuild = 0;
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// True once `cap` values are held.
    pub fn is_full(&self) -> bool {
        self.buf.len() == self.cap
    }

    /// Mean of the values held (0 when empty).
    #[inline]
    pub fn mean(&self) -> f64 {
        if self.buf.is_empty() {
            0.0
        } else {
            self.pivot + self.sum * self.inv_len.peek(self.buf.len() as f64)
        }
    }

    /// Population variance of the values held (0 when fewer than two).
    #[inline]
    pub fn var(&self) -> f64 {
        let n = self.buf.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let m = self.sum / n;
        (self.sumsq / n - m * m).max(0.0)
    }

    /// Population standard deviation.
    #[inline]
    pub fn std(&self) -> f64 {
        self.var().sqrt()
    }

    /// The oldest value held.
    pub fn oldest(&self) -> Option<f64> {
        self.buf.front()
    }
}

/// No node.
const NIL: u32 = u32::MAX;

/// A treap node in the arena.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Node {
    /// The value.
    key: f64,
    /// Insertion number: makes keys unique and says which copy leaves the window.
    seq: u64,
    /// Heap priority, a hash of `seq` (deterministic, so no randomness is needed).
    prio: u64,
    left: u32,
    right: u32,
    /// Nodes in this subtree.
    size: u32,
}

/// SplitMix64 finaliser: a well-mixed deterministic priority for treap nodes.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The last `cap` values in an order-statistics tree (a treap with subtree sizes, stored
/// in an arena so it serialises as plain vectors): insert and evict in O(log w) expected,
/// k-th smallest in O(log w), median in O(log w), MAD in O(log² w).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderWindow {
    /// Maximum number of values held.
    cap: usize,
    /// Arrival order: (value, seq), oldest first, to know what to evict.
    fifo: VecDeque<(f64, u64)>,
    /// Node arena; freed slots are reused.
    nodes: Vec<Node>,
    /// Free arena slots.
    free: Vec<u32>,
    /// Root node or NIL.
    root: u32,
    /// Next insertion number.
    next_seq: u64,
}

impl OrderWindow {
    /// An empty window of capacity `cap` (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        OrderWindow {
            cap,
            fifo: VecDeque::with_capacity(cap),
            nodes: Vec::with_capacity(cap),
            free: Vec::new(),
            root: NIL,
            next_seq: 0,
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// True when nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// Appends `x` (finite), evicting the oldest value when full.
    pub fn push(&mut self, x: f64) {
        if self.fifo.len() == self.cap
            && let Some((key, seq)) = self.fifo.pop_front()
        {
            self.root = self.remove(self.root, key, seq);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let node = Node {
            key: x,
            seq,
            prio: mix(seq),
            left: NIL,
            right: NIL,
            size: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (l, r) = self.split(self.root, x, seq);
        let lm = self.merge(l, id);
        self.root = self.merge(lm, r);
        self.fifo.push_back((x, seq));
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size
        }
    }

    fn fix(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let s = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[t as usize].size = s;
    }

    fn less(&self, t: u32, key: f64, seq: u64) -> bool {
        let n = &self.nodes[t as usize];
        n.key < key || (n.key == key && n.seq < seq)
    }

    /// Splits `t` into nodes ordered before (key, seq) and the rest.
    fn split(&mut self, t: u32, key: f64, seq: u64) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.less(t, key, seq) {
            let r = self.nodes[t as usize].right;
            let (a, b) = self.split(r, key, seq);
            self.nodes[t as usize].right = a;
            self.fix(t);
            (t, b)
        } else {
            let l = self.nodes[t as usize].left;
            let (a, b) = self.split(l, key, seq);
            self.nodes[t as usize].left = b;
            self.fix(t);
            (a, t)
        }
    }

    /// Joins two treaps where every key of `a` is before every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let ar = self.nodes[a as usize].right;
            let m = self.merge(ar, b);
            self.nodes[a as usize].right = m;
            self.fix(a);
            a
        } else {
            let bl = self.nodes[b as usize].left;
            let m = self.merge(a, bl);
            self.nodes[b as usize].left = m;
            self.fix(b);
            b
        }
    }

    /// Removes the node (key, seq) from the subtree `t`, returning the new subtree root.
    fn remove(&mut self, t: u32, key: f64, seq: u64) -> u32 {
        if t == NIL {
            return NIL;
        }
        let n = &self.nodes[t as usize];
        if n.seq == seq {
            let (l, r) = (n.left, n.right);
            self.free.push(t);
            return self.merge(l, r);
        }
        if self.less(t, key, seq) {
            let r = self.nodes[t as usize].right;
            let nr = self.remove(r, key, seq);
            self.nodes[t as usize].right = nr;
        } else {
            let l = self.nodes[t as usize].left;
            let nl = self.remove(l, key, seq);
            self.nodes[t as usize].left = nl;
        }
        self.fix(t);
        t
    }

    /// The `k`-th smallest value held (0-based), if `k < len`. O(log w).
    pub fn select(&self, mut k: usize) -> Option<f64> {
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t as usize];
            let ls = self.size(n.left) as usize;
            if k < ls {
                t = n.left;
            } else if k == ls {
                return Some(n.key);
            } else {
                k -= ls + 1;
                t = n.right;
            }
        }
        None
    }

    /// Number of values strictly below `x`. O(log w).
    pub fn count_below(&self, x: f64) -> usize {
        let mut t = self.root;
        let mut c = 0usize;
        while t != NIL {
            let n = &self.nodes[t as usize];
            if n.key < x {
                c += self.size(n.left) as usize + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        c
    }

    /// Median of the values held (mean of the middle two for an even count).
    pub fn median(&self) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let hi = self.select(n / 2)?;
        if n % 2 == 1 {
            Some(hi)
        } else {
            Some(0.5 * (self.select(n / 2 - 1)? + hi))
        }
    }

    /// Median absolute deviation from `m` (normally the median): the k-th smallest of the
    /// two sorted runs `m - v` (values below `m`, nearest first) and `v - m` (the rest),
    /// found by binary search over how many come from the first run. O(log² w).
    pub fn mad_around(&self, m: f64) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let below = self.count_below(m);
        let hi = self.kth_deviation(m, below, n / 2);
        if n % 2 == 1 {
            Some(hi)
        } else {
            Some(0.5 * (self.kth_deviation(m, below, n / 2 - 1) + hi))
        }
    }

    /// The k-th (0-based) smallest `|v - m|`, given `below` values are under `m`.
    fn kth_deviation(&self, m: f64, below: usize, k: usize) -> f64 {
        let n = self.len();
        let above = n - below;
        // Deviation runs: L[j] = m - v[below-1-j] (j < below), R[j] = v[below+j] - m.
        let l = |j: usize| m - self.select(below - 1 - j).unwrap_or(m);
        let r = |j: usize| self.select(below + j).unwrap_or(m) - m;
        // Take i from L and k+1-i from R; find the i where the merge is consistent.
        let mut lo = (k + 1).saturating_sub(above);
        let mut hi = (k + 1).min(below);
        while lo < hi {
            let i = (lo + hi) / 2;
            // Too few from L if L[i] < R[k - i].
            if l(i) < r(k - i) {
                lo = i + 1;
            } else {
                hi = i;
            }
        }
        let i = lo;
        let from_l = if i > 0 { l(i - 1) } else { f64::NEG_INFINITY };
        let from_r = if k + 1 > i {
            r(k - i)
        } else {
            f64::NEG_INFINITY
        };
        from_l.max(from_r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        }
    }

    #[test]
    fn order_window_matches_brute_force() {
        let mut w = OrderWindow::new(17);
        let mut all = Vec::new();
        let mut x = 12345u64;
        for i in 0..2000 {
            x = mix(x);
            // Many ties, to exercise equal keys.
            let v = ((x % 23) as f64) - 11.0 + if i % 7 == 0 { 0.5 } else { 0.0 };
            w.push(v);
            all.push(v);
            let win = &all[all.len().saturating_sub(17)..];
            let m = brute_median(win);
            assert_eq!(w.median(), Some(m));
            let dev: Vec<f64> = win.iter().map(|v| (v - m).abs()).collect();
            assert_eq!(w.mad_around(m), Some(brute_median(&dev)), "at {i}");
            let mut s = win.to_vec();
            s.sort_by(f64::total_cmp);
            for (k, want) in s.iter().enumerate() {
                assert_eq!(w.select(k), Some(*want));
            }
        }
    }

    #[test]
    fn rolling_moments_match_brute_force() {
        let mut w = RollingMoments::new(10);
        let mut all = Vec::new();
        for i in 0..500 {
            let v = 1e6 + (i as f64 * 0.37).sin() * 3.0;
            w.push(v);
            all.push(v);
            let win = &all[all.len().saturating_sub(10)..];
            let m = win.iter().sum::<f64>() / win.len() as f64;
            let var = win.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / win.len() as f64;
            assert!((w.mean() - m).abs() < 1e-6);
            assert!((w.var() - var).abs() < 1e-6);
        }
    }

    #[test]
    fn score_mapping_is_monotone_and_bounded() {
        assert_eq!(p_to_score(1.0, 8.0), 0.0);
        assert_eq!(p_to_score(0.0, 8.0), 1.0);
        assert!((p_to_score(1e-4, 8.0) - 0.5).abs() < 1e-12);
        assert!(two_sided_p(0.0) > 0.999);
        assert!(upper_p(10.0) < 1e-20);
    }

    #[test]
    fn decades_match_high_precision_values() {
        // -log10 erfc(z/√2), computed with mpmath at 40 digits.
        let exact = [
            (1e-300, 3.4651686195248404e-301),
            (1e-12, 3.465168619526223e-13),
            (1e-6, 3.465170001927269e-7),
            (0.001, 0.00034665511795786366),
            (0.1, 0.036049661062642284),
            (0.5, 0.2096619936012596),
            (1.0, 0.4985155458279893),
            (1.959_963_984_540_054, 1.301029995663981),
            (2.5, 1.9059018101313199),
            (3.181_980_5, 2.8348397908348204),
            (4.0, 4.198304911892498),
            (5.326_723_886_384, 6.999999999998813),
            (6.75, 10.830192901424466),
            (7.999_999, 14.905109028288031),
            (8.0, 14.905112555353172),
            (8.5, 16.722182978085186),
            (12.0, 32.44940916552788),
            (40.0, 349.13597646368186),
            (1000.0, 217150.33901199873),
        ];
        for (z, want) in exact {
            for z in [z, -z] {
                let got = two_sided_decades(z);
                assert!(
                    (got - want).abs() <= 1e-15 * want,
                    "z = {z}: {got} vs {want} (relative {:e})",
                    (got - want) / want
                );
            }
        }
    }

    #[test]
    fn decades_agree_with_erfc_and_are_monotone() {
        assert_eq!(two_sided_decades(0.0), 0.0);
        assert_eq!(two_sided_decades(-0.0), 0.0);
        assert_eq!(two_sided_decades(f64::NAN), 0.0);
        assert_eq!(two_sided_decades(f64::INFINITY), f64::INFINITY);
        assert_eq!(two_sided_decades(f64::NEG_INFINITY), f64::INFINITY);
        assert_eq!(two_sided_decades(1e300), f64::INFINITY);
        assert!(two_sided_decades(f64::MIN_POSITIVE) > 0.0);
        // statrs' erfc is good to about 1e-10 relative until it goes subnormal (|z| ≈ 37.5,
        // p ≈ 1e-307), so compare up to 37.
        let mut prev = 0.0;
        for i in 1..=370_000 {
            let z = f64::from(i) * 1e-4;
            let got = two_sided_decades(z);
            assert!(got >= prev, "not monotone at {z}: {got} < {prev}");
            prev = got;
            let want = -two_sided_p(z).log10();
            assert!(
                (got - want).abs() <= 1e-9 * want + 1e-15,
                "z = {z}: {got} vs erfc's {want}"
            );
        }
    }

    #[test]
    fn reciprocal_cache_is_exact_and_invisible() {
        let mut r = Reciprocal::default();
        for x in [7.0, 7.0, 5.5, 12.0, 0.0, -3.0, 1e-300] {
            assert_eq!(r.peek(x).to_bits(), (1.0 / x).to_bits());
            assert_eq!(r.of(x).to_bits(), (1.0 / x).to_bits());
            assert_eq!(r.peek(x).to_bits(), (1.0 / x).to_bits());
        }
        assert_eq!(r, Reciprocal::default());
        assert_eq!(format!("{r:?}"), format!("{:?}", Reciprocal::default()));
    }

    #[test]
    fn ring_behaves_and_serialises_like_a_vecdeque() {
        let mut ring = Ring::with_capacity(5);
        let mut deque = VecDeque::new();
        for i in 0..23 {
            let x = f64::from(i) * 1.5;
            let evicted = ring.push_evict(x, 5);
            let expected = if deque.len() == 5 {
                deque.pop_front()
            } else {
                None
            };
            deque.push_back(x);
            assert_eq!(evicted, expected);
            assert_eq!(ring.len(), deque.len());
            assert_eq!(ring.front(), deque.front().copied());
            assert_eq!(ring.iter().collect::<Vec<_>>(), Vec::from(deque.clone()));
            let json = serde_json::to_string(&ring).unwrap();
            assert_eq!(json, serde_json::to_string(&deque).unwrap());
            assert_eq!(format!("{ring:?}"), format!("{deque:?}"));
            // A restored ring starts at index 0 but holds the same sequence.
            let back: Ring = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ring);
            assert_eq!(format!("{back:?}"), format!("{ring:?}"));
        }
    }
}
