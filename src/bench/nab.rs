//! The Numenta Anomaly Benchmark (NAB) scorer, implemented from NAB's published rules: load
//! a NAB-layout corpus, score a detector's per-row anomaly scores against the labelled
//! windows under NAB's three cost profiles, normalise (100 = perfect, 0 = never fires), and
//! find the threshold NAB would report as optimal. Also writes NAB's result-file format.
//!
//! The rules, per file of N rows (all positions are row indices, not times):
//!
//! - the first min(⌊0.15·N⌋, 750) rows are probationary: detections there are ignored;
//! - a detection is a row whose score is >= the threshold (one threshold for the corpus);
//! - σ(y) = 2/(1+e^{5y}) − 1 for y <= 3, and −1 beyond;
//! - in a window [s, e] of W rows only the best (= earliest) detection counts, weighing
//!   A_TP·σ(−(e−i+1)/W)/σ(−1), so a detection on the window's first row earns exactly A_TP;
//! - every detection outside the windows weighs A_FP·σ((i−e_prev)/(W_prev−1)) after a
//!   window (cheap just after it, ≈ −A_FP far from it) and −A_FP before any window;
//! - each window without a detection costs −A_FN.
//!
//! The normalised score is 100·(S − S_null)/(S_perfect − S_null) with S summed over the
//! files, S_null = −A_FN·windows and S_perfect = A_TP·windows. A category without windows
//! (NAB's `artificialNoAnomaly`) has S_null = S_perfect = 0, so it has no normalised score:
//! the report gives its raw score (the summed cost of its false positives) and FP count.

use crate::core::Timestamp;
use crate::fsutil::{io_text, write_atomically};
use crate::sim::trace::{TraceError, Values, read_trace};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One of NAB's cost profiles: the weights of a true positive, a false positive and a
/// missed window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// NAB's name for it (`standard`, `reward_low_FP`, `reward_low_FN`).
    pub name: &'static str,
    /// A_TP: the reward for detecting a window on its first row.
    pub a_tp: f64,
    /// A_FP: the cost of a false positive far from any window.
    pub a_fp: f64,
    /// A_FN: the cost of a window with no detection.
    pub a_fn: f64,
}

/// NAB's standard profile.
pub const STANDARD: Profile = Profile {
    name: "standard",
    a_tp: 1.0,
    a_fp: 0.11,
    a_fn: 1.0,
};

/// NAB's profile that charges false positives double.
pub const REWARD_LOW_FP: Profile = Profile {
    name: "reward_low_FP",
    a_tp: 1.0,
    a_fp: 0.22,
    a_fn: 1.0,
};

/// NAB's profile that charges missed windows double.
pub const REWARD_LOW_FN: Profile = Profile {
    name: "reward_low_FN",
    a_tp: 1.0,
    a_fp: 0.11,
    a_fn: 2.0,
};

/// The three profiles in the order NAB reports them.
pub const PROFILES: [Profile; 3] = [STANDARD, REWARD_LOW_FP, REWARD_LOW_FN];

/// The NAB labels file, relative to the corpus folder.
pub const LABELS_FILE: &str = "labels/combined_windows.json";

/// Why a NAB corpus could not be loaded. Each message is one line naming the file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NabError {
    /// A folder or the labels file could not be read.
    #[error(
        "cannot read {path}: {message} (expected NAB's layout: data/<category>/<file>.csv and {LABELS_FILE})"
    )]
    Read {
        /// The path that failed.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The labels file is not JSON shaped like NAB's `combined_windows.json`.
    #[error(
        "{path}:{line}:{column}: {message} (expected a JSON object mapping \"category/file.csv\" to a list of [start, end] timestamps)"
    )]
    Labels {
        /// Labels file path.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser found.
        message: String,
    },
    /// A window boundary that is not a timestamp.
    #[error(
        "{path}: {key}: window boundary {text:?} is not a timestamp (expected \"YYYY-MM-DD HH:MM:SS.ffffff\")"
    )]
    LabelTimestamp {
        /// Labels file path.
        path: String,
        /// The labels entry (`category/file.csv`).
        key: String,
        /// The offending text.
        text: String,
    },
    /// A window that covers no row of its file, ends before it starts, or overlaps another.
    #[error("{path}: {key}: window [{start}, {end}] {problem}")]
    Window {
        /// Labels file path.
        path: String,
        /// The labels entry (`category/file.csv`).
        key: String,
        /// Window start as written.
        start: String,
        /// Window end as written.
        end: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A data file with no entry in the labels file.
    #[error("{path}: no entry {key:?} in {labels} (add one, with [] if the file has no anomaly)")]
    Unlabelled {
        /// Data file path.
        path: String,
        /// The key it would have.
        key: String,
        /// Labels file path.
        labels: String,
    },
    /// A labels entry naming a data file that is not there.
    #[error(
        "{labels}: entry {key:?} names a file that is not in {data} (add the file or remove the entry)"
    )]
    MissingFile {
        /// Labels file path.
        labels: String,
        /// The entry.
        key: String,
        /// The data folder.
        data: String,
    },
    /// No CSV files under `data/`.
    #[error("{path}: no CSV files in data/<category>/ (expected NAB's layout)")]
    NoFiles {
        /// The data folder.
        path: String,
    },
    /// A data file that is not a valid trace (the message names file and line).
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// One series of the corpus with its labelled windows.
#[derive(Clone, Debug, PartialEq)]
pub struct CorpusFile {
    /// NAB category: the folder under `data/` (e.g. `realKnownCause`).
    pub category: String,
    /// File name within the category (e.g. `nyc_taxi.csv`).
    pub name: String,
    /// Full path, for messages.
    pub path: PathBuf,
    /// Row timestamps, fed to the detectors.
    pub timestamps: Vec<Timestamp>,
    /// Row values (NaN where a cell is empty).
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges `(first, last)`, sorted, disjoint.
    pub windows: Vec<(usize, usize)>,
}

impl CorpusFile {
    /// The labels key, `category/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.category, self.name)
    }
}

/// A NAB corpus: every `data/<category>/<file>.csv` with its windows, sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    /// The files, sorted by category then name.
    pub files: Vec<CorpusFile>,
}

impl Corpus {
    /// Loads a NAB-layout folder: `data/<category>/<file>.csv` (timestamp,value) and
    /// `labels/combined_windows.json`. Windows are resolved to rows: from the first row at
    /// or after the start to the last row at or before the end. Every data file must have a
    /// labels entry and every entry a data file.
    pub fn load(dir: &Path) -> Result<Corpus, NabError> {
        let labels_path = dir.join(LABELS_FILE);
        let labels_name = labels_path.display().to_string();
        let labels = read_labels(&labels_path)?;
        let data = dir.join("data");
        let data_name = data.display().to_string();

        let mut paths = Vec::new();
        for category in read_dir_sorted(&data)? {
            if !category.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&category)? {
                if file.is_file() && file.extension().is_some_and(|e| e == "csv") {
                    paths.push((category.clone(), file));
                }
            }
        }
        if paths.is_empty() {
            return Err(NabError::NoFiles { path: data_name });
        }

        let mut files = Vec::with_capacity(paths.len());
        for (category, path) in paths {
            let category = file_name(&category);
            let name = file_name(&path);
            let key = format!("{category}/{name}");
            let Some(bounds) = labels.get(&key) else {
                return Err(NabError::Unlabelled {
                    path: path.display().to_string(),
                    key,
                    labels: labels_name,
                });
            };
            let trace = read_trace(&path, Values::Signal)?;
            let windows = resolve_windows(&trace.timestamps, bounds, &labels_name, &key)?;
            files.push(CorpusFile {
                category,
                name,
                path,
                values: trace.demand().to_vec(),
                timestamps: trace.timestamps,
                windows,
            });
        }
        if let Some(key) = labels
            .keys()
            .find(|k| !files.iter().any(|f| f.key() == **k))
        {
            return Err(NabError::MissingFile {
                labels: labels_name,
                key: key.clone(),
                data: data_name,
            });
        }
        Ok(Corpus { files })
    }

    /// Total number of labelled windows.
    pub fn windows(&self) -> usize {
        self.files.iter().map(|f| f.windows.len()).sum()
    }

    /// Total number of rows.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.values.len()).sum()
    }
}

/// A window boundary as written and as microseconds since the epoch.
type Bound = (String, i64);

/// A labelled window: (start, end).
type LabelWindow = (Bound, Bound);

/// Reads `combined_windows.json` into key → [(start, end)].
fn read_labels(path: &Path) -> Result<BTreeMap<String, Vec<LabelWindow>>, NabError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| NabError::Read {
        path: name.clone(),
        message: io_text(&e),
    })?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|e| {
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            NabError::Labels {
                path: name.clone(),
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
    let mut out = BTreeMap::new();
    for (key, windows) in raw {
        let mut parsed = Vec::with_capacity(windows.len());
        for (start, end) in windows {
            let parse = |text: String| match parse_label_time(&text) {
                Some(us) => Ok((text, us)),
                None => Err(NabError::LabelTimestamp {
                    path: name.clone(),
                    key: key.clone(),
                    text,
                }),
            };
            parsed.push((parse(start)?, parse(end)?));
        }
        out.insert(key, parsed);
    }
    Ok(out)
}

/// Microseconds since the epoch of a NAB label time (`2014-04-10 07:15:00.000000`; the
/// fraction is optional).
fn parse_label_time(text: &str) -> Option<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(t.and_utc().timestamp_micros())
}

/// Turns time windows into inclusive row ranges, sorted, checking each covers a row and
/// none overlaps the next.
fn resolve_windows(
    timestamps: &[Timestamp],
    bounds: &[LabelWindow],
    labels: &str,
    key: &str,
) -> Result<Vec<(usize, usize)>, NabError> {
    let micros = |t: &Timestamp| t.as_millis().saturating_mul(1000);
    let mut out: Vec<((usize, usize), &LabelWindow)> = Vec::with_capacity(bounds.len());
    for b in bounds {
        let ((start_text, start), (end_text, end)) = b;
        let err = |problem: &str| NabError::Window {
            path: labels.to_string(),
            key: key.to_string(),
            start: start_text.clone(),
            end: end_text.clone(),
            problem: problem.to_string(),
        };
        if end < start {
            return Err(err("ends before it starts"));
        }
        let first = timestamps.iter().position(|t| micros(t) >= *start);
        let last = timestamps.iter().rposition(|t| micros(t) <= *end);
        match (first, last) {
            (Some(f), Some(l)) if f <= l => out.push(((f, l), b)),
            _ => return Err(err("covers no row of the file")),
        }
    }
    out.sort_by_key(|(rows, _)| *rows);
    for pair in out.windows(2) {
        if pair[1].0.0 <= pair[0].0.1 {
            let ((start, _), (end, _)) = pair[1].1;
            return Err(NabError::Window {
                path: labels.to_string(),
                key: key.to_string(),
                start: start.clone(),
                end: end.clone(),
                problem: "overlaps the previous window".to_string(),
            });
        }
    }
    Ok(out.into_iter().map(|(rows, _)| rows).collect())
}

/// The entries of a folder, sorted by path.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, NabError> {
    let err = |e: io::Error| NabError::Read {
        path: dir.display().to_string(),
        message: io_text(&e),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        out.push(entry.map_err(err)?.path());
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Rows of a file of `rows` rows that are probationary: min(⌊0.15·rows⌋, 750).
pub fn probationary_rows(rows: usize) -> usize {
    (rows * 15 / 100).min(750)
}

/// NAB's scaled sigmoid: 2/(1+e^{5y}) − 1 for y <= 3, −1 beyond. It is 0 at y = 0,
/// ≈ 0.987 at y = −1 and ≈ −0.987 at y = 1.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// What a row would count as if it were a detection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// In the probationary period: ignored.
    Probation,
    /// In window `window` (index within the file), at σ-argument `position` ∈ [−1, 0).
    Window { window: usize, position: f64 },
    /// Outside every window, at σ-argument `position` > 0 (infinite when far: before any
    /// window, or after a one-row window).
    Outside { position: f64 },
}

impl Profile {
    /// The weight a detection in this role adds (0 in probation).
    fn weight(&self, role: Role) -> f64 {
        match role {
            Role::Probation => 0.0,
            Role::Window { position, .. } => {
                self.a_tp * scaled_sigmoid(position) / scaled_sigmoid(-1.0)
            }
            Role::Outside { position } => self.a_fp * scaled_sigmoid(position),
        }
    }

    /// The raw score of detecting nothing in a corpus with `windows` windows.
    pub fn null_score(&self, windows: usize) -> f64 {
        -self.a_fn * windows as f64
    }

    /// The raw score of detecting every window on its first row and nothing else.
    pub fn perfect_score(&self, windows: usize) -> f64 {
        self.a_tp * windows as f64
    }

    /// 100·(raw − null)/(perfect − null); `None` without windows (null = perfect = 0).
    pub fn normalise(&self, raw: f64, windows: usize) -> Option<f64> {
        let (null, perfect) = (self.null_score(windows), self.perfect_score(windows));
        (windows > 0).then(|| 100.0 * (raw - null) / (perfect - null))
    }
}

/// The role of every row of a file of `rows` rows with these (sorted, disjoint) windows.
fn roles(rows: usize, windows: &[(usize, usize)]) -> impl Iterator<Item = Role> + '_ {
    let probation = probationary_rows(rows);
    // `next`: the first window not yet behind row i.
    let mut next = 0;
    (0..rows).map(move |i| {
        while next < windows.len() && windows[next].1 < i {
            next += 1;
        }
        if i < probation {
            return Role::Probation;
        }
        match windows.get(next) {
            Some(&(s, e)) if s <= i => Role::Window {
                window: next,
                position: -((e - i + 1) as f64) / ((e - s + 1) as f64),
            },
            _ => {
                let position = match next.checked_sub(1).map(|p| windows[p]) {
                    Some((s, e)) if e > s => (i - e) as f64 / (e - s) as f64,
                    _ => f64::INFINITY,
                };
                Role::Outside { position }
            }
        }
    })
}

/// A file's (or a group of files') score under one profile at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileScore {
    /// Raw NAB score: TP weights + FP weights − A_FN per missed window.
    pub raw: f64,
    /// Windows detected.
    pub tp: usize,
    /// Detections outside every window (after the probationary period).
    pub fp: usize,
    /// Windows missed.
    pub fn_: usize,
}

impl std::ops::AddAssign for FileScore {
    fn add_assign(&mut self, o: FileScore) {
        self.raw += o.raw;
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// Scores one file: `scores` has one anomaly score per row, `windows` are inclusive,
/// sorted, disjoint row ranges, and a detection is a score >= `threshold` (NaN never is).
pub fn score_file(
    scores: &[f64],
    windows: &[(usize, usize)],
    threshold: f64,
    profile: &Profile,
) -> FileScore {
    let mut out = FileScore::default();
    let mut best: Vec<Option<f64>> = vec![None; windows.len()];
    for (&score, role) in scores.iter().zip(roles(scores.len(), windows)) {
        if score < threshold || score.is_nan() {
            continue;
        }
        match role {
            Role::Probation => {}
            Role::Window { window, .. } => {
                let w = profile.weight(role);
                best[window] = Some(best[window].map_or(w, |b| b.max(w)));
            }
            Role::Outside { .. } => {
                out.raw += profile.weight(role);
                out.fp += 1;
            }
        }
    }
    for b in best {
        match b {
            Some(w) => {
                out.raw += w;
                out.tp += 1;
            }
            None => {
                out.raw -= profile.a_fn;
                out.fn_ += 1;
            }
        }
    }
    out
}

/// A group of files (a category or the corpus) scored under one profile.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupScore {
    /// Files in the group.
    pub files: usize,
    /// Windows in the group.
    pub windows: usize,
    /// Summed raw score and counts.
    pub score: FileScore,
    /// 100 = perfect, 0 = never fires; `None` when the group has no windows.
    pub normalised: Option<f64>,
}

/// One profile's scores: the corpus and each category.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileReport {
    /// The profile.
    pub profile: Profile,
    /// The whole corpus.
    pub overall: GroupScore,
    /// Each category, sorted by name.
    pub categories: Vec<(String, GroupScore)>,
}

/// NAB scores of one detector's output at one threshold, per profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The threshold used for every file.
    pub threshold: f64,
    /// One entry per profile, in `PROFILES` order.
    pub profiles: Vec<ProfileReport>,
}

/// Scores a corpus at one threshold under every profile. `scores[k]` holds the anomaly
/// score of every row of `corpus.files[k]`.
///
/// # Panics
/// If `scores` does not have one entry per file with one score per row.
pub fn score_corpus(corpus: &Corpus, scores: &[Vec<f64>], threshold: f64) -> Report {
    check_shapes(corpus, scores);
    let profiles = PROFILES
        .iter()
        .map(|profile| {
            let mut overall = (0, 0, FileScore::default());
            let mut by_category: BTreeMap<&str, (usize, usize, FileScore)> = BTreeMap::new();
            for (file, s) in corpus.files.iter().zip(scores) {
                let fs = score_file(s, &file.windows, threshold, profile);
                for acc in [&mut overall, by_category.entry(&file.category).or_default()] {
                    acc.0 += 1;
                    acc.1 += file.windows.len();
                    acc.2 += fs;
                }
            }
            let group = |(files, windows, score): (usize, usize, FileScore)| GroupScore {
                files,
                windows,
                score,
                normalised: profile.normalise(score.raw, windows),
            };
            ProfileReport {
                profile: *profile,
                overall: group(overall),
                categories: by_category
                    .into_iter()
                    .map(|(c, acc)| (c.to_string(), group(acc)))
                    .collect(),
            }
        })
        .collect();
    Report {
        threshold,
        profiles,
    }
}

fn check_shapes(corpus: &Corpus, scores: &[Vec<f64>]) {
    assert_eq!(scores.len(), corpus.files.len(), "one score list per file");
    for (f, s) in corpus.files.iter().zip(scores) {
        assert_eq!(s.len(), f.values.len(), "{}: one score per row", f.key());
    }
}

/// The best single threshold for one profile over the corpus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimum {
    /// The profile.
    pub profile: Profile,
    /// The threshold: a score value of the corpus (detections are scores >= it), or
    /// +∞ when detecting nothing scores best.
    pub threshold: f64,
    /// Raw corpus score at that threshold.
    pub raw: f64,
    /// Normalised corpus score at that threshold (`None` if the corpus has no windows).
    pub normalised: Option<f64>,
}

/// NAB's threshold optimisation: of every candidate threshold (each distinct score value in
/// the corpus, and "above every score"), the one maximising the profile's corpus score;
/// among equal scores the highest threshold. Exact, by one sweep over the sorted scores.
///
/// # Panics
/// If `scores` does not have one entry per file with one score per row.
pub fn optimize_threshold(corpus: &Corpus, scores: &[Vec<f64>], profile: &Profile) -> Optimum {
    check_shapes(corpus, scores);
    // Every scorable row as (score, global window index or None, weight).
    let mut events: Vec<(f64, Option<usize>, f64)> = Vec::new();
    let mut window_base = 0;
    for (file, s) in corpus.files.iter().zip(scores) {
        for (&score, role) in s.iter().zip(roles(s.len(), &file.windows)) {
            if score.is_nan() {
                continue;
            }
            match role {
                Role::Probation => {}
                Role::Window { window, .. } => {
                    events.push((score, Some(window_base + window), profile.weight(role)))
                }
                Role::Outside { .. } => events.push((score, None, profile.weight(role))),
            }
        }
        window_base += file.windows.len();
    }
    events.sort_by(|a, b| b.0.total_cmp(&a.0));

    let windows = window_base;
    let mut best_in_window = vec![-profile.a_fn; windows];
    let mut raw = profile.null_score(windows);
    let mut best = (f64::INFINITY, raw);
    let mut k = 0;
    while k < events.len() {
        let threshold = events[k].0;
        while k < events.len() && events[k].0 == threshold {
            let (_, window, weight) = events[k];
            match window {
                Some(w) if weight > best_in_window[w] => {
                    raw += weight - best_in_window[w];
                    best_in_window[w] = weight;
                }
                Some(_) => {}
                None => raw += weight,
            }
            k += 1;
        }
        if raw > best.1 {
            best = (threshold, raw);
        }
    }
    Optimum {
        profile: *profile,
        threshold: best.0,
        raw: best.1,
        normalised: profile.normalise(best.1, windows),
    }
}

impl Report {
    /// The report as a fixed-width table: one row per category and the corpus, one column
    /// per profile, then the detection counts (the same under every profile).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let Some(first) = self.profiles.first() else {
            return out;
        };
        let _ = writeln!(
            out,
            "NAB score at threshold {} (100 = perfect detector, 0 = one that never fires)",
            self.threshold
        );
        let _ = write!(out, "{:<24} {:>5} {:>7}", "category", "files", "windows");
        for p in &self.profiles {
            let _ = write!(out, " {:>14}", p.profile.name);
        }
        let _ = writeln!(out, " {:>5} {:>6} {:>5}", "TP", "FP", "FN");
        let mut any_raw = false;
        let rows = (0..first.categories.len())
            .map(Some)
            .chain([None])
            .map(|c| match c {
                Some(c) => first.categories[c].0.as_str(),
                None => "overall",
            });
        for (r, name) in rows.enumerate() {
            let group = |p: &ProfileReport| match p.categories.get(r) {
                Some((_, g)) => g.clone(),
                None => p.overall.clone(),
            };
            let g0 = group(first);
            let _ = write!(out, "{name:<24} {:>5} {:>7}", g0.files, g0.windows);
            for p in &self.profiles {
                let g = group(p);
                let cell = match g.normalised {
                    Some(n) => format!("{n:.2}"),
                    None => {
                        any_raw = true;
                        format!("({:.2})", g.score.raw)
                    }
                };
                let _ = write!(out, " {cell:>14}");
            }
            let s = g0.score;
            let _ = writeln!(out, " {:>5} {:>6} {:>5}", s.tp, s.fp, s.fn_);
        }
        if any_raw {
            let _ = writeln!(
                out,
                "(x): no anomaly windows, so no normalised score; x is the raw score, the summed cost of its false positives"
            );
        }
        out
    }
}

/// The timestamp cells of a CSV's data rows, exactly as written (trimmed), in the rows
/// `trace::parse_csv` keeps: after a BOM, the first non-blank line is the header and blank
/// lines are skipped.
pub fn csv_timestamp_cells(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty())
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().trim_ascii())
        .collect()
}

/// Writes NAB's result format: `timestamp,value,anomaly_score`, one line per row (a
/// missing value is an empty cell).
///
/// # Panics
/// If the three slices differ in length.
pub fn write_results(
    w: &mut impl Write,
    timestamps: &[&str],
    values: &[f64],
    scores: &[f64],
) -> io::Result<()> {
    assert!(timestamps.len() == values.len() && values.len() == scores.len());
    writeln!(w, "timestamp,value,anomaly_score")?;
    for ((t, v), s) in timestamps.iter().zip(values).zip(scores) {
        if v.is_nan() {
            writeln!(w, "{t},,{s}")?;
        } else {
            writeln!(w, "{t},{v},{s}")?;
        }
    }
    w.flush()
}

/// Writes the result file at `path` atomically (temporary file, fsync, rename): a reader
/// sees the old file or the complete new one, never a torn one.
pub fn write_results_file(
    path: &Path,
    timestamps: &[&str],
    values: &[f64],
    scores: &[f64],
) -> io::Result<()> {
    // The caller names the path in its own message.
    write_atomically(path, |w| write_results(w, timestamps, values, scores)).map_err(|e| e.err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    /// A file of `rows` rows with these windows (no timestamps needed for scoring).
    fn file(category: &str, rows: usize, windows: &[(usize, usize)]) -> CorpusFile {
        CorpusFile {
            category: category.into(),
            name: format!("f{rows}.csv"),
            path: PathBuf::new(),
            timestamps: (0..rows as i64).map(Timestamp::from_secs).collect(),
            values: vec![0.0; rows],
            windows: windows.to_vec(),
        }
    }

    /// Scores that are 1 exactly at `rows`.
    fn flags(n: usize, rows: &[usize]) -> Vec<f64> {
        let mut s = vec![0.0; n];
        for &r in rows {
            s[r] = 1.0;
        }
        s
    }

    #[test]
    fn sigmoid_and_probation() {
        assert!(scaled_sigmoid(0.0).abs() < EPS);
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-12);
        assert!((scaled_sigmoid(1.0) + 0.986_614_298_151_430_3).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.000_001), -1.0);
        assert_eq!(scaled_sigmoid(f64::INFINITY), -1.0);
        assert_eq!(probationary_rows(100), 15);
        assert_eq!(probationary_rows(4032), 604);
        assert_eq!(probationary_rows(22_695), 750);
    }

    #[test]
    fn perfect_detector_scores_100_and_silent_one_0() {
        let corpus = Corpus {
            files: vec![
                file("a", 1000, &[(200, 299), (600, 649)]),
                file("b", 500, &[(300, 310)]),
                file("none", 400, &[]),
            ],
        };
        let perfect: Vec<Vec<f64>> = corpus
            .files
            .iter()
            .map(|f| {
                flags(
                    f.values.len(),
                    &f.windows.iter().map(|w| w.0).collect::<Vec<_>>(),
                )
            })
            .collect();
        let silent: Vec<Vec<f64>> = corpus
            .files
            .iter()
            .map(|f| vec![0.0; f.values.len()])
            .collect();
        let r = score_corpus(&corpus, &perfect, 0.5);
        for p in &r.profiles {
            assert!((p.overall.normalised.unwrap() - 100.0).abs() < EPS, "{p:?}");
            assert_eq!(p.overall.score.tp, 3);
            assert_eq!(p.overall.score.fp, 0);
            let none = &p.categories.iter().find(|c| c.0 == "none").unwrap().1;
            assert_eq!(none.normalised, None);
            assert_eq!(none.score.raw, 0.0);
        }
        let r = score_corpus(&corpus, &silent, 0.5);
        for p in &r.profiles {
            assert!(p.overall.normalised.unwrap().abs() < EPS, "{p:?}");
            assert_eq!(p.overall.score.fn_, 3);
            assert_eq!(p.overall.score.raw, -3.0 * p.profile.a_fn);
        }
    }

    #[test]
    fn late_detection_on_the_last_row_of_a_window() {
        let w = (200, 299); // W = 100
        let s = score_file(&flags(1000, &[299]), &[w], 0.5, &STANDARD);
        let expected = scaled_sigmoid(-1.0 / 100.0) / scaled_sigmoid(-1.0);
        assert!((s.raw - expected).abs() < EPS, "{s:?}");
        assert_eq!((s.tp, s.fp, s.fn_), (1, 0, 0));
        // The first row earns exactly A_TP.
        let s = score_file(&flags(1000, &[200]), &[w], 0.5, &REWARD_LOW_FN);
        assert!((s.raw - 1.0).abs() < EPS);
    }

    #[test]
    fn false_positive_after_a_window_and_before_any() {
        let w = (200, 299);
        // 50 rows after the window's last row: position 50/99.
        let s = score_file(&flags(1000, &[349]), &[w], 0.5, &STANDARD);
        let expected = 0.11 * scaled_sigmoid(50.0 / 99.0) - 1.0;
        assert!((s.raw - expected).abs() < EPS, "{s:?}");
        assert_eq!((s.tp, s.fp, s.fn_), (0, 1, 1));
        // Right after the window it costs little.
        let s = score_file(&flags(1000, &[300]), &[w], 0.5, &REWARD_LOW_FP);
        assert!((s.raw - (0.22 * scaled_sigmoid(1.0 / 99.0) - 1.0)).abs() < EPS);
        assert!(s.raw > -1.01);
        // Before any window: −A_FP.
        let s = score_file(&flags(1000, &[160]), &[w], 0.5, &REWARD_LOW_FP);
        assert!((s.raw - (-0.22 - 1.0)).abs() < EPS);
        // After a one-row window: treated as far.
        let s = score_file(&flags(1000, &[201]), &[(200, 200)], 0.5, &STANDARD);
        assert!((s.raw - (-0.11 - 1.0)).abs() < EPS);
        // Far after a window: ≈ −A_FP, exactly −A_FP beyond 3 window lengths.
        let s = score_file(&flags(1000, &[999]), &[w], 0.5, &STANDARD);
        assert!((s.raw - (-0.11 - 1.0)).abs() < EPS);
    }

    #[test]
    fn probationary_detections_are_ignored() {
        // 1000 rows: probation is rows 0..150, including the start of the window.
        let w = (100, 199);
        let s = score_file(&flags(1000, &[10, 120, 149]), &[w], 0.5, &STANDARD);
        assert_eq!((s.tp, s.fp, s.fn_), (0, 0, 1));
        assert_eq!(s.raw, -1.0);
        let s = score_file(&flags(1000, &[10, 150]), &[w], 0.5, &STANDARD);
        assert_eq!((s.tp, s.fp, s.fn_), (1, 0, 0));
        let expected = scaled_sigmoid(-50.0 / 100.0) / scaled_sigmoid(-1.0);
        assert!((s.raw - expected).abs() < EPS);
    }

    #[test]
    fn several_detections_in_a_window_count_once_at_the_best() {
        let w = (200, 299);
        let s = score_file(&flags(1000, &[250, 210, 260, 299]), &[w], 0.5, &STANDARD);
        assert_eq!((s.tp, s.fp, s.fn_), (1, 0, 0));
        let expected = scaled_sigmoid(-90.0 / 100.0) / scaled_sigmoid(-1.0);
        assert!((s.raw - expected).abs() < EPS);
    }

    #[test]
    fn threshold_is_inclusive_and_nan_never_detects() {
        let mut s = vec![0.0; 1000];
        s[200] = 0.5;
        s[400] = f64::NAN;
        let r = score_file(&s, &[(200, 299)], 0.5, &STANDARD);
        assert_eq!((r.tp, r.fp, r.fn_), (1, 0, 0));
        let r = score_file(&s, &[(200, 299)], 0.500_001, &STANDARD);
        assert_eq!((r.tp, r.fp, r.fn_), (0, 0, 1));
    }

    #[test]
    fn optimum_matches_a_brute_force_scan() {
        let corpus = Corpus {
            files: vec![
                file("a", 1000, &[(200, 299), (600, 649)]),
                file("b", 600, &[]),
            ],
        };
        // Deterministic pseudo-random scores with a few in-window peaks.
        let mut x = 12345u64;
        let scores: Vec<Vec<f64>> = corpus
            .files
            .iter()
            .map(|f| {
                (0..f.values.len())
                    .map(|i| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let r = (x >> 11) as f64 / (1u64 << 53) as f64;
                        let peak = f.windows.iter().any(|w| i == w.0 + 30);
                        if peak {
                            0.97
                        } else {
                            (r * 100.0).round() / 100.0
                        }
                    })
                    .collect()
            })
            .collect();
        for p in &PROFILES {
            let opt = optimize_threshold(&corpus, &scores, p);
            let mut candidates: Vec<f64> = scores.iter().flatten().copied().collect();
            candidates.push(f64::INFINITY);
            let best = candidates
                .iter()
                .map(|&t| {
                    let r = score_corpus(&corpus, &scores, t);
                    r.profiles
                        .iter()
                        .find(|q| q.profile == *p)
                        .unwrap()
                        .overall
                        .score
                        .raw
                })
                .fold(f64::NEG_INFINITY, f64::max);
            assert!((opt.raw - best).abs() < 1e-9, "{p:?}: {opt:?} vs {best}");
            let at = score_corpus(&corpus, &scores, opt.threshold);
            let at = at.profiles.iter().find(|q| q.profile == *p).unwrap();
            assert!((at.overall.score.raw - opt.raw).abs() < 1e-9);
            assert!(opt.threshold > 0.9, "{opt:?}");
        }
    }

    fn write_corpus(dir: &Path, labels: &str, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir.join("labels")).unwrap();
        std::fs::write(dir.join(LABELS_FILE), labels).unwrap();
        for (key, text) in files {
            let p = dir.join("data").join(key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    fn csv(rows: usize) -> String {
        let mut s = String::from("timestamp,value\n");
        for i in 0..rows {
            let t = chrono::DateTime::from_timestamp(1_396_310_400 + 300 * i as i64, 0).unwrap();
            let _ = writeln!(s, "{},{}", t.format("%Y-%m-%d %H:%M:%S"), i % 7);
        }
        s
    }

    #[test]
    fn loads_a_nab_layout_and_resolves_windows_to_rows() {
        let dir = tempfile::tempdir().unwrap();
        // Rows every 5 minutes from 2014-04-01 00:00:00.
        let labels = r#"{
            "cat/a.csv": [["2014-04-01 01:02:00.000000", "2014-04-01 02:00:00.000000"]],
            "cat/b.csv": [],
            "other/c.csv": [["2014-04-01 00:10:00.000000", "2014-04-01 00:10:00.000000"],
                            ["2014-04-01 00:00:00.000000", "2014-04-01 00:04:59.999999"]]
        }"#;
        write_corpus(
            dir.path(),
            labels,
            &[
                ("cat/a.csv", &csv(40)),
                ("cat/b.csv", &csv(10)),
                ("other/c.csv", &csv(5)),
            ],
        );
        std::fs::write(dir.path().join("data/README.md"), "not a category").unwrap();
        let c = Corpus::load(dir.path()).unwrap();
        let keys: Vec<String> = c.files.iter().map(CorpusFile::key).collect();
        assert_eq!(keys, ["cat/a.csv", "cat/b.csv", "other/c.csv"]);
        assert_eq!(c.files[0].windows, [(13, 24)]);
        assert_eq!(c.files[1].windows, []);
        assert_eq!(c.files[2].windows, [(0, 0), (2, 2)]);
        assert_eq!(c.windows(), 3);
        assert_eq!(c.rows(), 55);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("combined_windows.json"),
            "{e}"
        );

        write_corpus(
            d,
            "{\n \"cat/a.csv\": [[\"2014-04-01\"]]\n}",
            &[("cat/a.csv", &csv(4))],
        );
        let e = Corpus::load(d).unwrap_err();
        assert!(matches!(e, NabError::Labels { line: 2, .. }), "{e:?}");
        assert!(!e.to_string().contains('\n'));

        write_corpus(
            d,
            r#"{"cat/a.csv": [["yesterday", "2014-04-01 00:00:00"]]}"#,
            &[],
        );
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not a timestamp"), "{e}");

        write_corpus(
            d,
            r#"{"cat/a.csv": [["2015-01-01 00:00:00", "2015-01-02 00:00:00"]]}"#,
            &[],
        );
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(e.ends_with("covers no row of the file"), "{e}");

        write_corpus(d, r#"{"cat/b.csv": []}"#, &[]);
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(e.contains("a.csv: no entry \"cat/a.csv\""), "{e}");

        write_corpus(d, r#"{"cat/a.csv": [], "cat/z.csv": []}"#, &[]);
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(
            e.contains("entry \"cat/z.csv\" names a file that is not in"),
            "{e}"
        );

        write_corpus(
            d,
            r#"{"cat/a.csv": []}"#,
            &[("cat/a.csv", "timestamp,value\n2014-04-01 00:00:00,x\n")],
        );
        let e = Corpus::load(d).unwrap_err().to_string();
        assert!(e.contains("a.csv:2: column \"value\""), "{e}");
    }

    #[test]
    fn result_file_keeps_timestamps_as_written() {
        let text = "\u{feff}timestamp,value\r\n\r\n2014-04-01 00:00:00 ,1.5\r\n1396310700,\r\n";
        let cells = csv_timestamp_cells(text);
        assert_eq!(cells, ["2014-04-01 00:00:00", "1396310700"]);
        let mut out = Vec::new();
        write_results(&mut out, &cells, &[1.5, f64::NAN], &[0.0, 0.25]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "timestamp,value,anomaly_score\n2014-04-01 00:00:00,1.5,0\n1396310700,,0.25\n"
        );
    }

    #[test]
    fn table_shows_every_profile_and_raw_scores_without_windows() {
        let corpus = Corpus {
            files: vec![file("a", 1000, &[(200, 299)]), file("none", 400, &[])],
        };
        let scores = vec![flags(1000, &[200]), flags(400, &[300])];
        let t = score_corpus(&corpus, &scores, 0.5).table();
        for name in [
            "standard",
            "reward_low_FP",
            "reward_low_FN",
            "overall",
            "(-0.11)",
            "100.00",
        ] {
            assert!(t.contains(name), "{name} missing from\n{t}");
        }
    }
}
