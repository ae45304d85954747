//! Streaming statistics the detectors are built from, all with memories measured in time
//! on the sample timestamps, not in points: exponentially weighted means, variances and
//! a least-squares line whose weights decay with elapsed time (`decay_weight`), a time
//! window of slots for the scorer's recent surprise (`SlotMean`), time windows thinned
//! to one value per slot for the rolling z-score and MAD (`TimedMoments`, and
//! `OrderWindow` for median and MAD in O(log w) and O(log² w)); plus the normal tail in
//! decades (`two_sided_decades`, the scorer's per-point function), `Reciprocal` and
//! `Decay`, caches that turn a fixed divisor into a multiplication and a repeated step
//! into no `exp` at all, and `F32s`, the compact form of the seasonal bucket arrays.
//!
//! Exponential memories against windows: a memory whose only question is "what is the
//! level, or the spread, lately" decays (O(1) numbers, no edge effects with irregular
//! sampling); a statistic defined over a window (the recent surprise, the rolling
//! z-score and MAD baselines) keeps a time window whose memory is bounded by slots, not
//! by the number of points, so 15-second ticks cost no more state than 5-minute ones.
//!
//! Everything here is deterministic and serialisable, and holds only finite floats (JSON
//! has no NaN or infinity; the NaN markers of `F32s` travel as bytes), so a state
//! restored mid-stream continues bit for bit. Caches are not serialised: they are pure
//! functions of the state, so a restored state rebuilds them with the same values.

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

/// Longest time one point stands for in an exponential memory: an hour. Hourly data, the
/// coarsest the detectors are built for, keeps its full weight; `Clock` also limits a
/// point to four of the series' usual steps, so after an outage (a daemon restarted days
/// later) the next point counts as a few ordinary points, not as days of the newest
/// value, and a single point cannot wipe a memory.
pub const MAX_STEP_MS: i64 = 3_600_000;

/// Weight of a new point in an exponential memory with time constant `tau_ms`, `dt_ms`
/// after the previous point: `1 - exp(-dt/tau)`, with `dt` clamped to
/// `[0, MAX_STEP_MS]` (a point at the same instant as the previous one, or before it,
/// weighs nothing). Older points keep `exp(-dt/tau) = 1 - weight` of theirs, so the
/// memory forgets at the same pace in time whatever the sampling interval.
#[inline]
pub fn decay_weight(dt_ms: i64, tau_ms: f64) -> f64 {
    let dt = dt_ms.clamp(0, MAX_STEP_MS) as f64;
    -(-dt / tau_ms).exp_m1()
}

/// `PartialEq` (always equal) and an empty `Debug` for a cache: a pure function of the
/// state, so a state restored from JSON equals and prints like the original.
macro_rules! invisible_cache {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("(cache)")
            }
        }
    };
}
pub(crate) use invisible_cache;

/// `decay_weight` for the last step asked for: with regular sampling every step is the
/// same, so the `exp` is computed once, not per point. A cache (not serialised).
#[derive(Clone)]
pub struct Decay {
    /// Clamped step of the cached weight (`i64::MIN`: none yet).
    dt: i64,
    /// Time constant of the cached weight.
    tau: f64,
    /// `decay_weight(dt, tau)`.
    weight: f64,
}

impl Default for Decay {
    fn default() -> Self {
        Decay {
            dt: i64::MIN,
            tau: f64::NAN,
            weight: 0.0,
        }
    }
}

invisible_cache!(Decay);

impl Decay {
    /// `decay_weight(dt_ms, tau_ms)` (bit-identical), from the cache when it holds it.
    #[inline]
    pub fn weight(&mut self, dt_ms: i64, tau_ms: f64) -> f64 {
        let dt = dt_ms.clamp(0, MAX_STEP_MS);
        if dt != self.dt || tau_ms.to_bits() != self.tau.to_bits() {
            self.dt = dt;
            self.tau = tau_ms;
            self.weight = decay_weight(dt, tau_ms);
        }
        self.weight
    }
}

/// Exponentially weighted mean in time without start-up bias: each point enters with
/// weight `a` (from `decay_weight`), older ones keep `1 - a` of theirs, and the mean is
/// normalised by the total, so the first points are a plain average instead of being
/// pulled towards the first one. The first point takes the weight of the second (it has
/// no step of its own), so two points are always averaged equally.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayingMean {
    /// Total weight (tends to 1; 0 while only the first point is known).
    pub weight: f64,
    /// Weighted mean.
    pub mean: f64,
    /// Points folded in (saturating), for warm-ups that need a minimum count.
    pub n: u32,
    /// `1/weight`: the weight converges, after which dividing by it is a multiplication.
    #[serde(skip)]
    inv_weight: Reciprocal,
}

impl DecayingMean {
    /// Folds `x` in with weight `a`.
    #[inline]
    pub fn push(&mut self, x: f64, a: f64) {
        if self.n == 0 {
            self.mean = x;
        } else {
            let w = if self.weight == 0.0 { a } else { self.weight };
            let total = (1.0 - a) * w + a;
            if total > 0.0 {
                self.mean += (x - self.mean) * a * self.inv_weight.of(total);
                self.weight = total;
            }
        }
        self.n = self.n.saturating_add(1);
    }
}

/// `DecayingMean` with the weighted variance as well (West's incremental form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayingMoments {
    /// Total weight (tends to 1; 0 while only the first point is known).
    pub weight: f64,
    /// Weighted mean.
    pub mean: f64,
    /// Weighted sum of squared deviations.
    m2: f64,
    /// Points folded in (saturating), for warm-ups that need a minimum count.
    pub n: u32,
    /// `1/weight`: the weight converges, after which dividing by it is a multiplication.
    #[serde(skip)]
    inv_weight: Reciprocal,
}

impl DecayingMoments {
    /// Folds `x` in with weight `a`; older points keep `1 - a` of theirs.
    #[inline]
    pub fn push(&mut self, x: f64, a: f64) {
        if self.n == 0 {
            self.mean = x;
            self.m2 = 0.0;
        } else {
            let w = if self.weight == 0.0 { a } else { self.weight };
            let keep = 1.0 - a;
            let total = keep * w + a;
            if total > 0.0 {
                let old = self.mean;
                self.mean += (x - old) * a * self.inv_weight.of(total);
                self.m2 = keep * self.m2 + a * (x - old) * (x - self.mean);
                self.weight = total;
            }
        }
        self.n = self.n.saturating_add(1);
    }

    /// Weighted variance (0 before two weighted points).
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

/// The time of a detector's previous point and the series' usual step, so that each
/// point knows how much time it stands for in the exponential memories.
///
/// A point stands for the time since the previous one, up to four usual steps (jitter
/// and a missed tick or two count in full; after an outage the next point counts as
/// four ordinary ones, not as the hours or days of the gap, which would hand it the
/// memories whatever their time constant) and up to `MAX_STEP_MS`. The usual step is a
/// running mean of the steps, each clamped the same way, over about eight of them (a
/// property of the sampling, so it is counted in points).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// Time of the newest point (ms).
    last: Option<i64>,
    /// The usual step (ms; 0 until the first positive step).
    usual: i64,
}

impl Clock {
    /// How much time the point at `at_ms` stands for (ms; 0 if it is not later than the
    /// previous point), `None` for the first point; then remembers `at_ms` if it is later
    /// (time never runs backwards here) and updates the usual step.
    #[inline]
    pub fn step(&mut self, at_ms: i64) -> Option<i64> {
        let Some(prev) = self.last else {
            self.last = Some(at_ms);
            return None;
        };
        if at_ms <= prev {
            return Some(0);
        }
        self.last = Some(at_ms);
        let dt = at_ms.saturating_sub(prev).min(MAX_STEP_MS);
        if self.usual == 0 {
            self.usual = dt;
            return Some(dt);
        }
        let dt = dt.min(self.usual.saturating_mul(4));
        self.usual += (dt - self.usual) / 8;
        Some(dt)
    }

    /// Time of the newest point (ms), if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

/// Slots in a `SlotMean`: a window of 1 h is counted in 5-minute slots, so at 5-minute
/// sampling each slot holds one point and the window is exactly the last twelve.
pub const SLOTS: usize = 12;

/// The mean of the values of the last `SLOTS` time slots, the newest one included: a
/// time window of `SLOTS × slot_ms` with a fixed state whatever the sampling rate (a sum
/// and a count per slot), where each point counts once. Slots are aligned on multiples
/// of `slot_ms` since the epoch, so the window edge moves in slot steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotMean {
    /// Sum of the values of each slot, indexed by slot number modulo `SLOTS` (`f32`: the
    /// surprises it sums are in [0, 1], and it keeps the state small).
    #[serde(with = "f32_array")]
    sums: [f32; SLOTS],
    /// Values in each slot.
    counts: [u32; SLOTS],
    /// Number of the newest value's slot.
    slot: Option<i64>,
    /// Slot of the first value: the window is *full* (for the scorer's warm-up) once the
    /// newest slot is `SLOTS - 1` after it. A gap does not empty it again: after a gap
    /// the window holds what the last hour holds, as at hourly sampling.
    first: Option<i64>,
    /// `1/count` (the count is the same point after point with regular sampling).
    #[serde(skip)]
    inv_count: Reciprocal,
    /// Where the newest slot ends and its index in the ring.
    #[serde(skip)]
    cache: SlotCache,
}

/// The end (ms) and ring index of a `SlotMean`'s newest slot: derived from its slot
/// number, so not serialised (a restored window rebuilds it on its next point) and
/// invisible to `==` and `Debug`.
#[derive(Clone)]
struct SlotCache {
    end: i64,
    head: usize,
}

impl Default for SlotCache {
    fn default() -> Self {
        // Ends before any time, so the next point rebuilds it.
        SlotCache {
            end: i64::MIN,
            head: 0,
        }
    }
}

invisible_cache!(SlotCache);

impl SlotMean {
    /// Adds `x` at `at_ms` (a time in an earlier slot than the newest counts as in it).
    #[inline]
    pub fn push(&mut self, at_ms: i64, x: f64, slot_ms: i64) {
        // Most points fall in the newest slot or the next one: compares against its end
        // (cached) instead of the division that locates a slot.
        if self.slot.is_none() || at_ms >= self.cache.end {
            let slot_ms = slot_ms.max(1);
            match self.slot {
                // The next slot, with the cache valid: one slot to clear, no arithmetic
                // on slot numbers (at 5-minute sampling, every point).
                Some(s)
                    if self.cache.end != i64::MIN
                        && at_ms < self.cache.end.saturating_add(slot_ms) =>
                {
                    let head = (self.cache.head + 1) % SLOTS;
                    self.sums[head] = 0.0;
                    self.counts[head] = 0;
                    self.slot = Some(s + 1);
                    self.cache = SlotCache {
                        end: self.cache.end.saturating_add(slot_ms),
                        head,
                    };
                }
                _ => self.advance(at_ms, slot_ms),
            }
        }
        let i = self.cache.head;
        self.sums[i] += x as f32;
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// Moves the newest slot to the one holding `at_ms` (if later), clearing the slots
    /// passed, and refreshes the cache.
    fn advance(&mut self, at_ms: i64, slot_ms: i64) {
        let slot = match self.slot {
            Some(s) if at_ms < (s + 1).saturating_mul(slot_ms) => s,
            Some(s) if at_ms < (s + 2).saturating_mul(slot_ms) => s + 1,
            _ => at_ms.div_euclid(slot_ms),
        };
        match self.slot {
            Some(old) if slot > old => {
                for s in old + 1..=old + (slot - old).min(SLOTS as i64) {
                    let i = s.rem_euclid(SLOTS as i64) as usize;
                    self.sums[i] = 0.0;
                    self.counts[i] = 0;
                }
                self.slot = Some(slot);
            }
            Some(_) => {}
            None => self.slot = Some(slot),
        }
        let newest = self.slot.unwrap_or(slot);
        self.first.get_or_insert(newest);
        self.cache = SlotCache {
            end: (newest + 1).saturating_mul(slot_ms),
            head: newest.rem_euclid(SLOTS as i64) as usize,
        };
    }

    /// Number of values in the window.
    #[inline]
    pub fn count(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// True once the values span the whole window (`SLOTS` slots since the first).
    #[inline]
    pub fn is_full(&self) -> bool {
        matches!((self.slot, self.first), (Some(s), Some(f)) if s - f >= SLOTS as i64 - 1)
    }

    /// Mean of the values in the window (0 when empty).
    #[inline]
    pub fn mean(&mut self) -> f64 {
        // Four lanes, so the sum is not one long chain of dependent additions.
        let mut lanes = [0.0f64; 4];
        for chunk in self.sums.chunks_exact(4) {
            for (l, &v) in lanes.iter_mut().zip(chunk) {
                *l += f64::from(v);
            }
        }
        let sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        let count: u32 = self.counts.iter().sum();
        if count == 0 {
            0.0
        } else {
            sum * self.inv_count.of(f64::from(count))
        }
    }
}

/// Weighted least-squares line of value against time, with exponentially decaying
/// weights in time (the same `decay_weight` as every memory): O(1) per point, seven
/// numbers of state whatever the sampling rate. Kept as the weighted means of time and
/// value and their centred second moments (West's form), which stay accurate where raw
/// sums of `t²` and `t·y` would cancel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeLine {
    /// Time of the first point (ms); times are seconds since it.
    anchor: Option<i64>,
    /// Time of the newest point (ms).
    newest: i64,
    /// The newest positive step between points (ms), the "tick" of `forecast(h)`.
    step: i64,
    /// Total weight (as `DecayingMoments::weight`).
    weight: f64,
    /// Weighted mean time (s since `anchor`).
    mean_t: f64,
    /// Weighted mean value.
    mean_y: f64,
    /// Weighted sum of squared time deviations.
    stt: f64,
    /// Weighted sum of time × value deviations.
    sty: f64,
    /// Points folded in (saturating).
    n: u32,
    /// `1/weight`.
    #[serde(skip)]
    inv_weight: Reciprocal,
}

impl TimeLine {
    /// Seconds of `at_ms` since the anchor.
    #[inline]
    fn secs(&self, at_ms: i64) -> f64 {
        at_ms.saturating_sub(self.anchor.unwrap_or(at_ms)) as f64 * 1e-3
    }

    /// Folds in `y` at `at_ms` with weight `a`.
    #[inline]
    pub fn push(&mut self, at_ms: i64, y: f64, a: f64) {
        if self.anchor.is_none() {
            self.anchor = Some(at_ms);
            self.newest = at_ms;
            self.mean_y = y;
            self.n = 1;
            return;
        }
        if at_ms > self.newest {
            self.step = at_ms - self.newest;
            self.newest = at_ms;
        }
        let t = self.secs(at_ms);
        let w = if self.weight == 0.0 { a } else { self.weight };
        let keep = 1.0 - a;
        let total = keep * w + a;
        if total > 0.0 {
            let f = a * self.inv_weight.of(total);
            let dt = t - self.mean_t;
            let dy = y - self.mean_y;
            self.mean_t += f * dt;
            self.mean_y += f * dy;
            self.stt = keep * self.stt + a * dt * (t - self.mean_t);
            self.sty = keep * self.sty + a * dt * (y - self.mean_y);
            self.weight = total;
        }
        self.n = self.n.saturating_add(1);
    }

    /// Points folded in.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True before the first point.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Slope in value per second; `None` before two points at different times.
    pub fn slope(&self) -> Option<f64> {
        (self.n >= 2 && self.stt > 0.0).then(|| self.sty / self.stt)
    }

    /// The line's value at `at_ms`; `None` before two points at different times.
    pub fn value_at(&self, at_ms: i64) -> Option<f64> {
        let slope = self.slope()?;
        let y = self.mean_y + slope * (self.secs(at_ms) - self.mean_t);
        y.is_finite().then_some(y)
    }

    /// Time of the newest point (ms), if any.
    pub fn newest(&self) -> Option<i64> {
        self.anchor.map(|_| self.newest)
    }

    /// The newest step between points (ms; 0 before two points at different times).
    pub fn step_ms(&self) -> i64 {
        self.step
    }
}

/// Floats kept as `f32` to halve the memory of large arrays (the seasonal buckets), and
/// serialised as one Z85 string of their bit patterns (five characters a value, about a
/// third of their size as JSON numbers) that is exact, NaN markers included, so
/// a restored state continues bit for bit. Compared by bits, so NaN markers compare
/// equal.
#[derive(Clone, Default)]
pub struct F32s(pub Vec<f32>);

impl PartialEq for F32s {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl fmt::Debug for F32s {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl Serialize for F32s {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&z85_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for F32s {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        z85_decode(&text)
            .map(F32s)
            .ok_or_else(|| serde::de::Error::custom("not the Z85 text of f32 values"))
    }
}

/// The Z85 alphabet (ZeroMQ RFC 32): 85 printable characters, none of which JSON
/// escapes, so four bytes take five characters (base64 takes 5⅓).
const Z85: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Z85 text of `values`' bit patterns (each value as a big-endian 32-bit word, as Z85
/// reads its input).
fn z85_encode(values: &[f32]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for v in values {
        let mut n = u32::from_le_bytes(v.to_le_bytes());
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = Z85[(n % 85) as usize];
            n /= 85;
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
    }
    out
}

/// Inverse of `z85_encode`; `None` on anything else.
fn z85_decode(text: &str) -> Option<Vec<f32>> {
    let text = text.as_bytes();
    if text.len() % 5 != 0 {
        return None;
    }
    text.chunks(5)
        .map(|chunk| {
            let mut n = 0u64;
            for &c in chunk {
                n = n * 85 + Z85.iter().position(|&z| z == c)? as u64;
            }
            let bits = u32::try_from(n).ok()?;
            Some(f32::from_le_bytes(bits.to_le_bytes()))
        })
        .collect()
}

/// Serde for a fixed array of `f32` in the compact form of `F32s`.
pub mod f32_array {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the array as one Z85 string.
    pub fn serialize<S: Serializer, const N: usize>(v: &[f32; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::z85_encode(v))
    }

    /// Reads an array written by `serialize` (exactly `N` values).
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[f32; N], D::Error> {
        let text = String::deserialize(d)?;
        super::z85_decode(&text)
            .and_then(|v| <[f32; N]>::try_from(v).ok())
            .ok_or_else(|| serde::de::Error::custom("not the Z85 text of the expected f32 values"))
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

/// The values of a time window, at most one per time slot, with their mean and variance
/// in O(1): each value is held with its slot number, the values whose slot has left the
/// window are evicted (however long ago the newest arrived), and a value for a slot that
/// already has one is not added. The slot width (window / capacity) bounds the memory
/// whatever the sampling rate; sampling coarser than a slot keeps every point.
///
/// Sums are kept relative to a pivot (the oldest value at the last rebuild) and rebuilt
/// from the buffer once per capacity of evictions, so rounding error cannot accumulate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimedMoments {
    /// (slot number, value), oldest first.
    buf: VecDeque<(i64, f64)>,
    /// Shift subtracted before summing, for numerical stability.
    pivot: f64,
    /// Sum of `x - pivot`.
    sum: f64,
    /// Sum of `(x - pivot)²`.
    sumsq: f64,
    /// Evictions since the last rebuild.
    since_rebuild: usize,
}

impl TimedMoments {
    /// Evicts the values of slots before `first_slot`. O(1) amortised.
    #[inline]
    pub fn evict_before(&mut self, first_slot: i64) {
        while let Some(&(slot, x)) = self.buf.front() {
            if slot >= first_slot {
                break;
            }
            self.buf.pop_front();
            let d = x - self.pivot;
            self.sum -= d;
            self.sumsq -= d * d;
            self.since_rebuild += 1;
        }
        if self.buf.is_empty() {
            (self.sum, self.sumsq, self.since_rebuild) = (0.0, 0.0, 0);
        } else if self.since_rebuild >= self.buf.len() {
            self.rebuild();
        }
    }

    /// Adds `x` for `slot` unless the newest value is from that slot (or a later one).
    #[inline]
    pub fn push(&mut self, slot: i64, x: f64) {
        if self.buf.back().is_some_and(|&(s, _)| s >= slot) {
            return;
        }
        if self.buf.is_empty() {
            self.pivot = x;
        }
        let d = x - self.pivot;
        self.sum += d;
        self.sumsq += d * d;
        self.buf.push_back((slot, x));
    }

    fn rebuild(&mut self) {
        self.pivot = self.buf.front().map_or(0.0, |&(_, x)| x);
        self.sum = 0.0;
        self.sumsq = 0.0;
        for &(_, x) in &self.buf {
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

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Mean of the values held (0 when empty).
    #[inline]
    pub fn mean(&self) -> f64 {
        if self.buf.is_empty() {
            0.0
        } else {
            self.pivot + self.sum / self.buf.len() as f64
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

    /// Removes the oldest value, if any. O(log w) expected.
    pub fn pop_oldest(&mut self) -> Option<f64> {
        let (key, seq) = self.fifo.pop_front()?;
        self.root = self.remove(self.root, key, seq);
        Some(key)
    }

    /// Appends `x` (finite), evicting the oldest value when full.
    pub fn push(&mut self, x: f64) {
        if self.fifo.len() == self.cap {
            self.pop_oldest();
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
    fn timed_moments_match_brute_force() {
        // One value per slot, a window of 10 slots, with skipped slots (gaps) and a
        // second value in a slot (ignored).
        let mut w = TimedMoments::default();
        let mut held: Vec<(i64, f64)> = Vec::new();
        let mut slot = 0i64;
        for i in 0..500 {
            slot += match i % 37 {
                0 => 7,
                5 => 0,
                _ => 1,
            };
            let v = 1e6 + (f64::from(i) * 0.37).sin() * 3.0;
            w.evict_before(slot - 9);
            held.retain(|&(s, _)| s >= slot - 9);
            w.push(slot, v);
            if held.last().is_none_or(|&(s, _)| s < slot) {
                held.push((slot, v));
            }
            let n = held.len() as f64;
            let m = held.iter().map(|p| p.1).sum::<f64>() / n;
            let var = held.iter().map(|p| (p.1 - m) * (p.1 - m)).sum::<f64>() / n;
            assert_eq!(w.len(), held.len());
            assert!((w.mean() - m).abs() < 1e-6);
            assert!((w.var() - var).abs() < 1e-6, "{} vs {var}", w.var());
        }
    }

    #[test]
    fn decaying_memories_forget_in_time_not_in_points() {
        // The same hour at 5-minute and at 15-second steps leaves the same weight on
        // what came before it.
        let tau = 4.0 * 3_600_000.0;
        let run = |step: i64| {
            let mut m = DecayingMoments::default();
            let n = 3_600_000 / step;
            for k in 0..2 * n {
                let a = if k == 0 { 0.0 } else { decay_weight(step, tau) };
                m.push(if k < n { 0.0 } else { 1.0 }, a);
            }
            m.mean
        };
        let (coarse, fine) = (run(300_000), run(15_000));
        // An hour of zeros, then an hour of ones: the ones weigh a little more (they are
        // newer), at either rate.
        assert!((coarse - fine).abs() < 0.01, "{coarse} vs {fine}");
        assert!(coarse > 0.5 && coarse < 0.6, "{coarse}");
        // A gap counts as one hour at most here, and as four usual steps in a `Clock`.
        assert_eq!(
            decay_weight(86_400_000, tau),
            decay_weight(MAX_STEP_MS, tau)
        );
        let mut clock = Clock::default();
        assert_eq!(clock.step(0), None);
        for k in 1..=20 {
            assert_eq!(clock.step(k * 300_000), Some(300_000));
        }
        assert_eq!(clock.step(20 * 300_000 + 3 * 86_400_000), Some(1_200_000));
        assert_eq!(clock.step(20 * 300_000 + 3 * 86_400_000), Some(0));
        let mut hourly = Clock::default();
        hourly.step(0);
        for k in 1..=20 {
            assert_eq!(hourly.step(k * 3_600_000), Some(3_600_000));
        }
        assert_eq!(decay_weight(0, tau), 0.0);
        assert_eq!(decay_weight(-5, tau), 0.0);
        let mut d = Decay::default();
        for dt in [300_000, 300_000, 15_000, 86_400_000, -1] {
            assert_eq!(d.weight(dt, tau).to_bits(), decay_weight(dt, tau).to_bits());
        }
    }

    #[test]
    fn slot_mean_is_a_time_window() {
        let slot = 300_000;
        // 5-minute points: the last twelve.
        let mut w = SlotMean::default();
        for i in 0..30 {
            w.push(i * slot, i as f64, slot);
            let first = (i - 11).max(0);
            let want = (first..=i).sum::<i64>() as f64 / (i - first + 1) as f64;
            assert_eq!(w.mean(), want);
            assert_eq!(w.is_full(), i >= 11, "at {i}");
        }
        // A gap longer than the window leaves only the new point.
        w.push(100 * slot, 5.0, slot);
        assert_eq!(w.mean(), 5.0);
        assert!(w.is_full());
        // 15-second points: the last hour, in 5-minute steps.
        let mut w = SlotMean::default();
        for i in 0..2000i64 {
            w.push(i * 15_000, (i / 240) as f64, slot);
        }
        // Slots 88..=99 hold points 1760..=1999: 7 up to 1919, then 8.
        let want = (160.0 * 7.0 + 80.0 * 8.0) / 240.0;
        assert!((w.mean() - want).abs() < 1e-12, "{} vs {want}", w.mean());
        // Hourly points: only the newest is in the last hour; the second fills it.
        let mut h = SlotMean::default();
        h.push(0, 1.0, slot);
        assert!(!h.is_full());
        h.push(12 * slot, 3.0, slot);
        assert_eq!(h.mean(), 3.0);
        assert!(h.is_full());
    }

    #[test]
    fn time_line_fits_a_line_whatever_the_spacing() {
        let mut line = TimeLine::default();
        assert_eq!(line.value_at(0), None);
        let mut t = 1_400_000_000_000i64;
        for i in 0..500 {
            t += [15_000, 300_000, 3_600_000, 7][i % 4];
            let y = 7.0 + 0.003 * (t - 1_400_000_000_000) as f64 * 1e-3;
            line.push(t, y, decay_weight(t % 1000 + 60_000, 3_600_000.0));
        }
        let at = t + 7_200_000;
        let want = 7.0 + 0.003 * (at - 1_400_000_000_000) as f64 * 1e-3;
        let got = line.value_at(at).unwrap();
        assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
        // A constant is exact.
        let mut c = TimeLine::default();
        for i in 0..100 {
            c.push(i * 300_000, 42.5, decay_weight(300_000, 3_600_000.0));
        }
        assert_eq!(c.value_at(1_000_000_000), Some(42.5));
    }

    #[test]
    fn f32s_round_trip_through_z85_exactly() {
        for n in 0..9 {
            let v = F32s(
                (0..n)
                    .map(|i| i as f32 * -1.37e-3)
                    .chain([f32::NAN])
                    .collect(),
            );
            let json = serde_json::to_string(&v).unwrap();
            let back: F32s = serde_json::from_str(&json).unwrap();
            assert_eq!(back, v, "{json}");
        }
        // The example of the Z85 specification.
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        let words: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(z85_encode(&words), "HelloWorld");
        assert!(z85_decode("Hell").is_none());
        assert!(z85_decode("\"\"\"\"\"").is_none());
        assert!(serde_json::from_str::<F32s>("\"Hell\"").is_err());
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
