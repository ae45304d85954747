//! Streaming statistics the detectors are built from: an exponentially weighted mean and
//! variance, a rolling window with O(1) mean and variance, and a rolling order-statistics
//! window (median and MAD in O(log w) and O(log² w)).
//!
//! Everything here is deterministic and serialisable, and holds only finite floats (JSON
//! has no NaN or infinity), so a state restored mid-stream continues bit for bit.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;
use std::collections::VecDeque;

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
}

impl DecayingMoments {
    /// Folds `x` in; older points lose weight by `1 - alpha`.
    pub fn push(&mut self, x: f64, alpha: f64) {
        let keep = 1.0 - alpha;
        self.weight = keep * self.weight + 1.0;
        let old = self.mean;
        self.mean += (x - old) / self.weight;
        self.m2 = keep * self.m2 + (x - old) * (x - self.mean);
    }

    /// Weighted variance.
    pub fn var(&self) -> f64 {
        if self.weight > 0.0 {
            (self.m2 / self.weight).max(0.0)
        } else {
            0.0
        }
    }

    /// Weighted standard deviation.
    pub fn std(&self) -> f64 {
        self.var().sqrt()
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
    buf: VecDeque<f64>,
    /// Shift subtracted before summing, for numerical stability.
    pivot: f64,
    /// Sum of `x - pivot`.
    sum: f64,
    /// Sum of `(x - pivot)²`.
    sumsq: f64,
    /// Evictions since the last rebuild.
    since_rebuild: usize,
}

impl RollingMoments {
    /// An empty window of capacity `cap` (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        RollingMoments {
            cap,
            buf: VecDeque::with_capacity(cap),
            pivot: 0.0,
            sum: 0.0,
            sumsq: 0.0,
            since_rebuild: 0,
        }
    }

    /// Appends `x`, evicting the oldest value when full. O(1) amortised.
    pub fn push(&mut self, x: f64) {
        if self.buf.is_empty() {
            self.pivot = x;
        }
        if self.buf.len() == self.cap
            && let Some(old) = self.buf.pop_front()
        {
            let d = old - self.pivot;
            self.sum -= d;
            self.sumsq -= d * d;
            self.since_rebuild += 1;
        }
        let d = x - self.pivot;
        self.buf.push_back(x);
        self.sum += d;
        self.sumsq += d * d;
        if self.since_rebuild >= self.cap {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.pivot = self.buf.front().copied().unwrap_or(0.0);
        self.sum = 0.0;
        self.sumsq = 0.0;
        for &x in &self.buf {
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
    pub fn mean(&self) -> f64 {
        if self.buf.is_empty() {
            0.0
        } else {
            self.pivot + self.sum / self.buf.len() as f64
        }
    }

    /// Population variance of the values held (0 when fewer than two).
    pub fn var(&self) -> f64 {
        let n = self.buf.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let m = self.sum / n;
        (self.sumsq / n - m * m).max(0.0)
    }

    /// Population standard deviation.
    pub fn std(&self) -> f64 {
        self.var().sqrt()
    }

    /// The oldest value held.
    pub fn oldest(&self) -> Option<f64> {
        self.buf.front().copied()
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
}
