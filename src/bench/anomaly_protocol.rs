//! The anomaly detectors' validation protocol: one detector configuration at one fixed
//! threshold, scored with NAB's standard profile on the shared corpus *and* on every
//! stressed variant of it (`bench::variants`), per variant, per category and per file,
//! with the worst case over the variants; and the same for two simple causal baselines
//! (a rolling z-score over 500 points and NAB's windowed Gaussian, each with a
//! time-based refractory period and a threshold chosen on the original set, then
//! frozen). A default is judged by its worst variant, not by its pooled score, because
//! a parameter that only works at 5-minute regular sampling passes on the shared set and
//! fails on real series sampled otherwise (issue "A control law and detectors that
//! generalise").

use super::nab::{self, Corpus, FileScore, STANDARD};
use super::nab_baselines::WindowedGaussian;
use super::variants::{Series, Variant};
use crate::core::Timestamp;
use crate::core::anomaly::{DEFAULT_THRESHOLD, Detector, EnsembleParams};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Rows of the rolling z-score baseline's window (the baseline: 500 points).
pub const ZSCORE_ROWS: usize = 500;

/// The baselines' refractory period: the default detector's cooldown (12 h), so both
/// sides may flag at most twice a day per series.
pub const REFRACTORY: Duration = Duration::from_secs(12 * 3_600);

/// The |z| thresholds a baseline's threshold is chosen from on the original set: 2 to 10
/// in steps of 0.25 (beyond 8.3 the windowed Gaussian's published score is exactly 1).
pub fn baseline_grid() -> Vec<f64> {
    (0..=32).map(|i| 2.0 + 0.25 * f64::from(i)).collect()
}

/// A mechanism of the default detector that the ablation turns off, one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// The scorer's quiet period after a firing (`cooldown_secs` = 0).
    Cooldown,
    /// The scorer's density window (one 5-minute slot instead of an hour).
    Density,
    /// The far path (`far_secs` = 0: the likelihood alone).
    Far,
    /// The far path's record (it then scores every value far from the long-run level).
    Record,
    /// Neighbouring buckets' errors in the seasonal scale.
    Neighbours,
    /// The density's minimum of two points (the window alone, one point at hourly data).
    MinPoints,
    /// The seasonal clip on what one residual teaches the level and the offsets
    /// (`shift_clip` = 0: a sustained shift is learnt in a point or two again).
    ShiftClip,
}

impl Mechanism {
    /// Every mechanism, in report order.
    pub const ALL: [Mechanism; 7] = [
        Mechanism::Cooldown,
        Mechanism::Density,
        Mechanism::MinPoints,
        Mechanism::Far,
        Mechanism::Record,
        Mechanism::Neighbours,
        Mechanism::ShiftClip,
    ];

    /// The name reports and `--off` use.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Cooldown => "cooldown",
            Mechanism::Density => "density",
            Mechanism::Far => "far",
            Mechanism::Record => "record",
            Mechanism::Neighbours => "neighbours",
            Mechanism::MinPoints => "min-points",
            Mechanism::ShiftClip => "shift-clip",
        }
    }

    /// Parses a name as `name` writes it.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Turns the mechanism off in `p`.
    pub fn turn_off(self, p: &mut EnsembleParams) {
        match self {
            Mechanism::Cooldown => p.scorer.cooldown_secs = 0,
            // Twelve slots of 25 s: at 5-minute sampling or coarser, the newest point.
            Mechanism::Density => p.scorer.density_secs = 300,
            Mechanism::Far => p.aux.far_secs = 0,
            Mechanism::Record => p.aux.far_record = false,
            Mechanism::Neighbours => p.seasonal.neighbour_secs = 0,
            Mechanism::MinPoints => p.scorer.density_min_points = 0,
            Mechanism::ShiftClip => p.seasonal.shift_clip = 0.0,
        }
    }
}

/// What is scored.
#[derive(Clone, Debug, PartialEq)]
pub enum Candidate {
    /// The core's default detector with these parameters, cut at `threshold`.
    Ensemble {
        /// Parameters (the defaults, or one mechanism turned off).
        params: EnsembleParams,
        /// The fixed threshold.
        threshold: f64,
    },
    /// A baseline giving |z| per row, flagged at `threshold` with a refractory period.
    Baseline {
        /// Which one.
        kind: BaselineKind,
        /// The |z| threshold.
        threshold: f64,
        /// Time after a flag during which nothing else flags.
        refractory: Duration,
    },
}

/// The simple causal baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineKind {
    /// |z| against the mean and standard deviation of the previous 500 rows.
    RollingZ,
    /// NAB's windowed Gaussian (window 6400, step 100), as |z| instead of 1 − Q(|z|)
    /// (the same order, without the saturation at 1).
    WindowedGaussian,
}

impl BaselineKind {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            BaselineKind::RollingZ => "rolling-z-500",
            BaselineKind::WindowedGaussian => "windowed-gaussian",
        }
    }

    /// |z| of every row (0 for the first rows and for missing values).
    pub fn raw(self, s: &Series) -> Vec<f64> {
        match self {
            BaselineKind::RollingZ => rolling_z(&s.values, ZSCORE_ROWS),
            BaselineKind::WindowedGaussian => windowed_gaussian_z(&s.values),
        }
    }
}

/// |z| of each value against the previous `rows` values (population std; 0 until two
/// values are known, and when the window is constant and the value equals it).
fn rolling_z(values: &[f64], rows: usize) -> Vec<f64> {
    let mut window: VecDeque<f64> = VecDeque::with_capacity(rows + 1);
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        if v.is_nan() {
            out.push(0.0);
            continue;
        }
        let n = window.len() as f64;
        let z = if window.len() >= 2 {
            // Recomputed per row: 500 adds, exact, and no drift to reason about.
            let mean = window.iter().sum::<f64>() / n;
            let var = window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            if sd > 0.0 {
                ((v - mean) / sd).abs()
            } else if v == mean {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            0.0
        };
        out.push(z);
        window.push_back(v);
        if window.len() > rows {
            window.pop_front();
        }
    }
    out
}

/// NAB's windowed Gaussian as |z| (0 for the first value): the published score,
/// 1 − Q(|z|), is increasing in |z| but rounds to exactly 1 beyond |z| ≈ 8.3, so a
/// threshold chosen through it could not tell 9 from 20. The window rule is NAB's
/// (`WindowedGaussian`: grows to 6400 values, then slides by 100); a test checks the two
/// agree.
fn windowed_gaussian_z(values: &[f64]) -> Vec<f64> {
    let size = WindowedGaussian::WINDOW_SIZE;
    let step = WindowedGaussian::STEP_SIZE;
    let mut window: VecDeque<f64> = VecDeque::with_capacity(size);
    let mut pending: Vec<f64> = Vec::with_capacity(step);
    let (mut mean, mut m2, mut sd) = (0.0f64, 0.0f64, 1.0f64);
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        if v.is_nan() {
            out.push(0.0);
            continue;
        }
        out.push(if window.is_empty() {
            0.0
        } else {
            ((v - mean) / sd).abs()
        });
        if window.len() < size {
            window.push_back(v);
            let d = v - mean;
            mean += d / window.len() as f64;
            m2 += d * (v - mean);
            let s = (m2 / window.len() as f64).max(0.0).sqrt();
            sd = if s == 0.0 { 1e-6 } else { s };
        } else {
            pending.push(v);
            if pending.len() == step {
                for p in pending.drain(..) {
                    window.pop_front();
                    window.push_back(p);
                }
                let n = window.len() as f64;
                mean = window.iter().sum::<f64>() / n;
                let s = (window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                sd = if s == 0.0 { 1e-6 } else { s };
            }
        }
    }
    out
}

/// 1 where `raw` reaches `threshold` and no flag was raised in the `refractory` before,
/// else 0: a detector's output at threshold 0.5.
pub fn refractory_flags(
    timestamps: &[Timestamp],
    raw: &[f64],
    threshold: f64,
    refractory: Duration,
) -> Vec<f64> {
    let period = i64::try_from(refractory.as_millis()).unwrap_or(i64::MAX);
    let mut last: Option<i64> = None;
    timestamps
        .iter()
        .zip(raw)
        .map(|(t, &r)| {
            let at = t.as_millis();
            let quiet = last.is_some_and(|l| at.saturating_sub(l) < period);
            if r >= threshold && !quiet {
                last = Some(at);
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// The default detector's scores for a series (NaN rows score 0 and are not shown to
/// it, as the daemon shows it no `Empty` observation).
pub fn ensemble_scores(params: &EnsembleParams, s: &Series) -> Vec<f64> {
    let mut d = Detector::ensemble(params);
    s.timestamps
        .iter()
        .zip(&s.values)
        .map(|(&at, &v)| if v.is_nan() { 0.0 } else { d.update(at, v) })
        .collect()
}

/// A file of the corpus under one variant, ready to score.
#[derive(Clone, Debug)]
pub struct Case {
    /// NAB category.
    pub category: String,
    /// `category/name`.
    pub key: String,
    /// The variant.
    pub variant: Variant,
    /// The series as the variant made it.
    pub series: Series,
}

/// Every file of `corpus` under each of `variants` (in that order, files sorted).
pub fn cases(corpus: &Corpus, variants: &[Variant]) -> Vec<Case> {
    let mut out = Vec::new();
    for &variant in variants {
        for f in &corpus.files {
            let key = f.key();
            let original = Series {
                timestamps: f.timestamps.clone(),
                values: f.values.clone(),
                windows: f.windows.clone(),
            };
            out.push(Case {
                category: f.category.clone(),
                series: variant.apply(&original, &key),
                key,
                variant,
            });
        }
    }
    out
}

/// One file's result under one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseScore {
    /// NAB category.
    pub category: String,
    /// `category/name`.
    pub key: String,
    /// The variant.
    pub variant: Variant,
    /// Rows of the variant.
    pub rows: usize,
    /// Labelled windows left in the variant.
    pub windows: usize,
    /// NAB standard raw score and counts.
    pub score: FileScore,
}

/// A group's summed result.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Group {
    /// Files.
    pub files: usize,
    /// Windows.
    pub windows: usize,
    /// Summed raw score and counts.
    pub score: FileScore,
}

impl Group {
    /// NAB standard normalised score; `None` without windows.
    pub fn standard(&self) -> Option<f64> {
        STANDARD.normalise(self.score.raw, self.windows)
    }

    fn add(&mut self, c: &CaseScore) {
        self.files += 1;
        self.windows += c.windows;
        self.score += c.score;
    }
}

/// A candidate's results over the protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Every (variant, file).
    pub cases: Vec<CaseScore>,
}

impl Outcome {
    /// Per variant, in the order first met.
    pub fn by_variant(&self) -> Vec<(Variant, Group)> {
        let mut out: Vec<(Variant, Group)> = Vec::new();
        for c in &self.cases {
            match out.iter_mut().find(|(v, _)| *v == c.variant) {
                Some((_, g)) => g.add(c),
                None => {
                    let mut g = Group::default();
                    g.add(c);
                    out.push((c.variant, g));
                }
            }
        }
        out
    }

    /// Per category within one variant, sorted by name.
    pub fn by_category(&self, variant: Variant) -> Vec<(String, Group)> {
        let mut m: BTreeMap<&str, Group> = BTreeMap::new();
        for c in self.cases.iter().filter(|c| c.variant == variant) {
            m.entry(&c.category).or_default().add(c);
        }
        m.into_iter().map(|(k, g)| (k.to_string(), g)).collect()
    }

    /// Every case pooled (all variants, all files).
    pub fn pooled(&self) -> Group {
        let mut g = Group::default();
        for c in &self.cases {
            g.add(c);
        }
        g
    }

    /// The variant with the lowest standard score, and that score.
    pub fn worst(&self) -> Option<(Variant, f64)> {
        self.by_variant()
            .into_iter()
            .filter_map(|(v, g)| g.standard().map(|s| (v, s)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// The per-row detector output of a candidate on a case, cut so that a detection is a
/// value >= the returned threshold.
fn output(candidate: &Candidate, s: &Series) -> (Vec<f64>, f64) {
    match candidate {
        Candidate::Ensemble { params, threshold } => (ensemble_scores(params, s), *threshold),
        Candidate::Baseline {
            kind,
            threshold,
            refractory,
        } => (
            refractory_flags(&s.timestamps, &kind.raw(s), *threshold, *refractory),
            DEFAULT_THRESHOLD,
        ),
    }
}

/// Scores `candidate` on every case.
pub fn evaluate(candidate: &Candidate, cases: &[Case]) -> Outcome {
    Outcome {
        cases: cases
            .iter()
            .map(|c| {
                let (scores, threshold) = output(candidate, &c.series);
                CaseScore {
                    category: c.category.clone(),
                    key: c.key.clone(),
                    variant: c.variant,
                    rows: c.series.timestamps.len(),
                    windows: c.series.windows.len(),
                    score: nab::score_file(&scores, &c.series.windows, threshold, &STANDARD),
                }
            })
            .collect(),
    }
}

/// The |z| threshold of `grid` that maximises a baseline's standard score on the
/// `Original` cases (ties: the higher threshold), with its refractory period; the
/// threshold is then frozen for every variant.
pub fn choose_baseline_threshold(
    kind: BaselineKind,
    refractory: Duration,
    cases: &[Case],
    grid: &[f64],
) -> f64 {
    let shared: Vec<(&Case, Vec<f64>)> = cases
        .iter()
        .filter(|c| c.variant == Variant::Original)
        .map(|c| (c, kind.raw(&c.series)))
        .collect();
    let mut best = (f64::NEG_INFINITY, grid.first().copied().unwrap_or(3.0));
    for &t in grid {
        let mut raw = 0.0;
        for (c, z) in &shared {
            let flags = refractory_flags(&c.series.timestamps, z, t, refractory);
            raw += nab::score_file(&flags, &c.series.windows, DEFAULT_THRESHOLD, &STANDARD).raw;
        }
        if raw >= best.0 {
            best = (raw, t);
        }
    }
    best.1
}

/// One labelled window the default detector missed, and what it looked like from the
/// detector's side (the `--misses` diagnostic: was it still warming up, was it quiet after
/// an earlier flag, how close did the score come).
#[derive(Clone, Debug, PartialEq)]
pub struct Miss {
    /// The variant.
    pub variant: Variant,
    /// `category/name`.
    pub key: String,
    /// The window's rows (inclusive).
    pub rows: (usize, usize),
    /// Rows of the file and of its probationary period.
    pub file_rows: usize,
    /// Probationary rows.
    pub probation: usize,
    /// Hours from the file's first row to the window's first row.
    pub hours_in: f64,
    /// Length of the window in hours.
    pub hours_long: f64,
    /// Highest score inside the window.
    pub max_score: f64,
    /// The cold-start predictor was still in charge at the window's first row.
    pub cold: bool,
    /// Rows of the window during which the scorer was quiet after a firing.
    pub quiet_rows: usize,
    /// Hours from the last flag before the window to its first row, if any.
    pub last_flag_hours: Option<f64>,
    /// Whether each baseline (rolling z, windowed Gaussian) found the window.
    pub baselines: [bool; 2],
}

/// Every window the default detector with `params` misses at `threshold`, with the
/// baselines' verdict on the same window (`thresholds`: theirs, as chosen).
pub fn misses(
    params: &EnsembleParams,
    threshold: f64,
    cases: &[Case],
    thresholds: [f64; 2],
) -> Vec<Miss> {
    use crate::core::anomaly::Ensemble;
    let mut out = Vec::new();
    for c in cases {
        let s = &c.series;
        let n = s.timestamps.len();
        let mut e = Ensemble::new(params);
        let mut scores = Vec::with_capacity(n);
        let mut cold = Vec::with_capacity(n);
        let mut quiet = Vec::with_capacity(n);
        for (&at, &v) in s.timestamps.iter().zip(&s.values) {
            cold.push(!e.is_seasonal());
            quiet.push(e.is_quiet(at));
            scores.push(if v.is_nan() { 0.0 } else { e.update(at, v) });
        }
        let flags: Vec<Vec<f64>> = [BaselineKind::RollingZ, BaselineKind::WindowedGaussian]
            .iter()
            .zip(thresholds)
            .map(|(k, t)| refractory_flags(&s.timestamps, &k.raw(s), t, REFRACTORY))
            .collect();
        let probation = nab::probationary_rows(n);
        for &(a, b) in &s.windows {
            let found = |sc: &[f64], t: f64| (a.max(probation)..=b).any(|i| i < n && sc[i] >= t);
            if found(&scores, threshold) {
                continue;
            }
            let hours = |x: usize, y: usize| {
                s.timestamps[y]
                    .saturating_since(s.timestamps[x])
                    .as_secs_f64()
                    / 3600.0
            };
            let last_flag = (0..a).rev().find(|&i| scores[i] >= threshold);
            out.push(Miss {
                variant: c.variant,
                key: c.key.clone(),
                rows: (a, b),
                file_rows: n,
                probation,
                hours_in: hours(0, a),
                hours_long: hours(a, b),
                max_score: scores[a..=b].iter().copied().fold(0.0, f64::max),
                cold: cold[a],
                quiet_rows: quiet[a..=b].iter().filter(|&&q| q).count(),
                last_flag_hours: last_flag.map(|i| hours(i, a)),
                baselines: [
                    found(&flags[0], DEFAULT_THRESHOLD),
                    found(&flags[1], DEFAULT_THRESHOLD),
                ],
            });
        }
    }
    out
}

/// Nanoseconds per `Detector::update` of the default detector with `params` over every
/// case (best of `rounds` passes; building the detectors and scoring are outside the
/// timed loop), and the mean JSON size of its state at the end of a case (the `--time`
/// figures).
pub fn time_per_update(params: &EnsembleParams, cases: &[Case], rounds: usize) -> (f64, f64) {
    let points: usize = cases.iter().map(|c| c.series.timestamps.len()).sum();
    let mut best = f64::INFINITY;
    let mut detectors = Vec::new();
    for _ in 0..rounds.max(1) {
        detectors = cases.iter().map(|_| Detector::ensemble(params)).collect();
        let mut sink = 0.0;
        let t0 = std::time::Instant::now();
        for (c, d) in cases.iter().zip(&mut detectors) {
            for (&at, &v) in c.series.timestamps.iter().zip(&c.series.values) {
                sink += d.update(at, v);
            }
        }
        let ns = t0.elapsed().as_secs_f64() / points.max(1) as f64 * 1e9;
        std::hint::black_box(sink);
        best = best.min(ns);
    }
    let json: usize = detectors
        .iter()
        .map(|d| serde_json::to_string(d).map_or(0, |j| j.len()))
        .sum();
    (best, json as f64 / detectors.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refractory_is_time_not_rows() {
        let ts: Vec<Timestamp> = (0..10).map(|i| Timestamp::from_secs(i * 3_600)).collect();
        let raw = vec![5.0; 10];
        let flags = refractory_flags(&ts, &raw, 3.0, Duration::from_secs(4 * 3_600));
        assert_eq!(
            flags,
            vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
    }

    #[test]
    fn rolling_z_uses_only_the_past() {
        let z = rolling_z(&[1.0, 3.0, 2.0, 100.0], 500);
        assert_eq!(&z[..2], &[0.0, 0.0]);
        assert!((z[2] - 0.0).abs() < 1e-12);
        assert!(z[3] > 50.0);
    }

    #[test]
    fn windowed_gaussian_z_matches_the_published_detector() {
        let values: Vec<f64> = (0..300).map(|i| ((i * 37) % 11) as f64).collect();
        let z = windowed_gaussian_z(&values);
        let mut d = WindowedGaussian::new();
        for (i, (v, z)) in values.iter().zip(z).enumerate() {
            let s = d.update(*v);
            let want = if i == 0 {
                0.0
            } else {
                1.0 - super::super::nab_baselines::tail_probability(z)
            };
            assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        }
    }
}
