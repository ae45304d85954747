//! `phoenix anomaly score|bench`: runs an anomaly detector (one of the core's, or NAB's
//! windowed Gaussian) over a recorded series and writes NAB's result format, or over a
//! NAB corpus and prints its NAB scores.

use super::output::{OutputPathError, check_output_path};
use crate::bench::nab::{self, Corpus, NabError};
use crate::bench::nab_baselines::WindowedGaussian;
use crate::core::Timestamp;
use crate::core::anomaly::{DEFAULT_THRESHOLD, Detector, DetectorKind};
use crate::sim::trace::{TraceError, Values, read_trace};
use clap::{Args, Subcommand};
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The `anomaly` subcommands.
#[derive(Subcommand, Debug)]
pub enum AnomalyCommand {
    /// Score every row of a CSV; writes `timestamp,value,anomaly_score` (NAB's result
    /// format) with the timestamps as written in the input.
    Score(AnomalyScoreArgs),
    /// Run a detector over a NAB corpus and print its NAB scores (standard, reward_low_FP,
    /// reward_low_FN) per category and overall.
    Bench(AnomalyBenchArgs),
}

/// The arguments of `phoenix anomaly score`; the field docs are the flags' help text.
#[derive(Args, Debug)]
pub struct AnomalyScoreArgs {
    /// CSV file (`timestamp,value`; with several columns, `input` or else the first).
    file: PathBuf,
    /// Detector: zscore, mad, ewma, trend, seasonal, ensemble, or NAB's windowed_gaussian.
    #[arg(long, default_value = "ensemble", value_parser = parse_detector)]
    detector: DetectorChoice,
    /// Write here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write 1 where the score reaches the detector's threshold (DEFAULT_THRESHOLD;
    /// 1.0 for windowed_gaussian), else 0.
    #[arg(long)]
    binary: bool,
}

/// The arguments of `phoenix anomaly bench`; the field docs are the flags' help text.
#[derive(Args, Debug)]
// `data/<category>/...` in the help text is not HTML.
#[allow(rustdoc::invalid_html_tags)]
pub struct AnomalyBenchArgs {
    /// NAB-layout folder: data/<category>/<file>.csv and labels/combined_windows.json.
    #[arg(long)]
    nab: PathBuf,
    /// Detector: zscore, mad, ewma, trend, seasonal, ensemble, or NAB's windowed_gaussian.
    #[arg(long, default_value = "ensemble", value_parser = parse_detector)]
    detector: DetectorChoice,
    /// The one threshold for the corpus (default: DEFAULT_THRESHOLD; 1.0, NAB's published
    /// threshold, for windowed_gaussian).
    #[arg(long, value_parser = parse_threshold, allow_negative_numbers = true)]
    threshold: Option<f64>,
}

/// Why `phoenix anomaly score|bench` failed.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// `--out` cannot be written.
    #[error(transparent)]
    Output(#[from] OutputPathError),
    /// The series file is not a readable trace.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The series file could not be read again for its timestamp cells.
    #[error("cannot read {}: {err}", path.display())]
    Read {
        /// The series file.
        path: PathBuf,
        /// The operating system's reason (already in the message, so not a `source`).
        err: io::Error,
    },
    /// The series file is JSON, which has no timestamp cells to copy.
    #[error(
        "{}: not a CSV file (anomaly score reads `timestamp,value` CSV, like NAB's data files)",
        path.display()
    )]
    NotCsv {
        /// The series file.
        path: PathBuf,
    },
    /// The CSV's timestamp cells do not line up with its rows.
    #[error(
        "{}: found {cells} timestamp cells for {rows} rows (check the file's line structure)",
        path.display()
    )]
    TimestampCells {
        /// The series file.
        path: PathBuf,
        /// Timestamp cells found.
        cells: usize,
        /// Rows read.
        rows: usize,
    },
    /// Writing `--out` failed.
    #[error("cannot write {}: {err}", path.display())]
    Write {
        /// The `--out` file.
        path: PathBuf,
        /// The failure (already in the message, so not a `source`).
        err: io::Error,
    },
    /// Writing to stdout failed (other than a closed pipe).
    #[error("cannot write to stdout: {err}")]
    Stdout {
        /// The failure (already in the message, so not a `source`).
        err: io::Error,
    },
    /// The NAB corpus could not be loaded.
    #[error(transparent)]
    Nab(#[from] NabError),
}

/// Runs an `anomaly` subcommand.
pub fn run(command: AnomalyCommand) -> Result<ExitCode, AnomalyError> {
    match command {
        AnomalyCommand::Score(args) => score(&args),
        AnomalyCommand::Bench(args) => bench(&args),
    }
}

/// A detector named on the command line: one of the core's, or NAB's baseline.
#[derive(Clone, Copy, Debug)]
enum DetectorChoice {
    Core(DetectorKind),
    WindowedGaussian,
}

impl DetectorChoice {
    fn name(self) -> String {
        match self {
            DetectorChoice::Core(kind) => serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{kind:?}")),
            DetectorChoice::WindowedGaussian => "windowed_gaussian".into(),
        }
    }

    /// The threshold its scores are meant to be cut at.
    fn default_threshold(self) -> f64 {
        match self {
            DetectorChoice::Core(_) => DEFAULT_THRESHOLD,
            DetectorChoice::WindowedGaussian => WindowedGaussian::NAB_THRESHOLD,
        }
    }

    fn start(self) -> Scorer {
        match self {
            DetectorChoice::Core(kind) => Scorer::Core(Box::new(Detector::new(kind))),
            DetectorChoice::WindowedGaussian => Scorer::Gaussian(Box::default()),
        }
    }
}

/// A running detector of either family.
enum Scorer {
    Core(Box<Detector>),
    Gaussian(Box<WindowedGaussian>),
}

impl Scorer {
    /// One score per row; a missing value (NaN) scores 0 and is not shown to the detector,
    /// as the daemon shows it no `Empty` observation.
    fn run(mut self, timestamps: &[Timestamp], values: &[f64]) -> Vec<f64> {
        timestamps
            .iter()
            .zip(values)
            .map(|(&at, &v)| match &mut self {
                _ if v.is_nan() => 0.0,
                Scorer::Core(d) => d.update(at, v),
                Scorer::Gaussian(d) => d.update(v),
            })
            .collect()
    }
}

/// Names are the policy files' snake_case names (taken from `DetectorKind`'s serde form, so
/// new kinds are accepted as they appear), plus `windowed_gaussian`.
fn parse_detector(s: &str) -> Result<DetectorChoice, String> {
    if s == "windowed_gaussian" {
        return Ok(DetectorChoice::WindowedGaussian);
    }
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map(DetectorChoice::Core)
        .map_err(|e| format!("{e}, or `windowed_gaussian` (NAB's baseline)"))
}

/// A score threshold: scores are in [0, 1], so a cut outside (0, 1] flags every point or
/// none, and the benchmark would score a detector that cannot exist.
fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 1.0 => Ok(t),
        Ok(t) if t.is_finite() => Err(format!(
            "{s}: a threshold must be in (0, 1], as scores are (e.g. 0.5)"
        )),
        _ => Err(format!("{s:?} is not a number in (0, 1] (e.g. 0.5)")),
    }
}

fn score(args: &AnomalyScoreArgs) -> Result<ExitCode, AnomalyError> {
    if let Some(out) = &args.out {
        check_output_path(out)?;
    }
    let trace = read_trace(&args.file, Values::Signal)?;
    // read_trace reads JSON too; the result format wants the CSV's own timestamp text.
    let text = std::fs::read_to_string(&args.file).map_err(|err| AnomalyError::Read {
        path: args.file.clone(),
        err,
    })?;
    if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
    {
        return Err(AnomalyError::NotCsv {
            path: args.file.clone(),
        });
    }
    let timestamps = nab::csv_timestamp_cells(&text);
    if timestamps.len() != trace.len() {
        return Err(AnomalyError::TimestampCells {
            path: args.file.clone(),
            cells: timestamps.len(),
            rows: trace.len(),
        });
    }
    let values = trace.demand();
    let mut scores = args.detector.start().run(&trace.timestamps, values);
    if args.binary {
        let threshold = args.detector.default_threshold();
        for s in &mut scores {
            *s = if *s >= threshold { 1.0 } else { 0.0 };
        }
    }
    match &args.out {
        Some(out) => nab::write_results_file(out, &timestamps, values, &scores).map_err(|err| {
            AnomalyError::Write {
                path: out.clone(),
                err,
            }
        })?,
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            match nab::write_results(&mut w, &timestamps, values, &scores) {
                // A reader that stopped early (`| head`) is not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                other => other.map_err(|err| AnomalyError::Stdout { err })?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &AnomalyBenchArgs) -> Result<ExitCode, AnomalyError> {
    let corpus = Corpus::load(&args.nab)?;
    let threshold = args
        .threshold
        .unwrap_or_else(|| args.detector.default_threshold());
    let mut scores = Vec::with_capacity(corpus.files.len());
    let mut busy = Duration::ZERO;
    for f in &corpus.files {
        let started = Instant::now();
        scores.push(args.detector.start().run(&f.timestamps, &f.values));
        busy += started.elapsed();
    }
    let report = nab::score_corpus(&corpus, &scores, threshold);
    println!(
        "detector {} on {} ({} files, {} rows, {} anomaly windows)",
        args.detector.name(),
        args.nab.display(),
        corpus.files.len(),
        corpus.rows(),
        corpus.windows()
    );
    print!("{}", report.table());
    println!();
    println!(
        "optimal threshold per profile (for information; NAB's way: the one threshold maximising the corpus score):"
    );
    for profile in &nab::PROFILES {
        let opt = nab::optimize_threshold(&corpus, &scores, profile);
        let threshold = if opt.threshold.is_finite() {
            format!("{}", opt.threshold)
        } else {
            "above every score (never fire)".into()
        };
        let score = match opt.normalised {
            Some(n) => format!("{n:.2}"),
            None => format!("raw {:.2}", opt.raw),
        };
        println!("  {:<14} {score:>8} at threshold {threshold}", profile.name);
    }
    let rows = corpus.rows();
    let secs = busy.as_secs_f64();
    if secs > 0.0 {
        println!(
            "scored {rows} points in {secs:.3} s ({:.0} points/s, detector time only)",
            rows as f64 / secs
        );
    } else {
        println!("scored {rows} points in under a microsecond");
    }
    Ok(ExitCode::SUCCESS)
}
