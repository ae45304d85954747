//! `phoenix bench anomaly`: runs the anomaly validation protocol (`bench::anomaly_protocol`)
//! and prints NAB standard scores per variant, per category and (with `--per-file` or
//! `--json`) per file, the worst variant, the pooled score, the baselines and, with
//! `--ablation`, the default detector with each mechanism off in turn.

use crate::bench::anomaly_protocol::{
    self as protocol, BaselineKind, Candidate, Mechanism, Outcome, REFRACTORY,
};
use crate::bench::nab::{Corpus, NabError};
use crate::bench::variants::Variant;
use crate::core::anomaly::{DEFAULT_THRESHOLD, EnsembleParams};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// The arguments of `phoenix bench anomaly`; the field docs are the flags' help text.
#[derive(Args, Debug)]
// `data/<category>/...` in the help text is not HTML.
#[allow(rustdoc::invalid_html_tags)]
pub struct BenchAnomalyArgs {
    /// NAB-layout folder: data/<category>/<file>.csv and labels/combined_windows.json.
    #[arg(long)]
    nab: PathBuf,
    /// Variants to run, comma-separated (original, hourly, crop-2000, dropouts,
    /// hourly-dropouts; default: all). Baseline thresholds are chosen on `original`,
    /// which is always run.
    #[arg(long, value_delimiter = ',', value_parser = parse_variant)]
    variants: Vec<Variant>,
    /// Only the files whose `category/name` contains one of these, comma-separated.
    #[arg(long, value_delimiter = ',')]
    files: Vec<String>,
    /// Turn off a mechanism of the default detector (cooldown, density, min-points, far,
    /// record, neighbours, shift-clip); repeatable.
    #[arg(long, value_parser = parse_mechanism)]
    off: Vec<Mechanism>,
    /// Parameters of the default detector as JSON (`EnsembleParams`; unset fields keep
    /// their defaults), e.g. '{"scorer":{"cooldown_secs":86400}}'.
    #[arg(long, value_parser = parse_params)]
    params: Option<EnsembleParams>,
    /// The fixed threshold of the default detector.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Also run the default detector with each mechanism off in turn.
    #[arg(long)]
    ablation: bool,
    /// Leave out the baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Print the per-file table as well.
    #[arg(long)]
    per_file: bool,
    /// Print the whole report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Print every window the default detector misses, with the detector's state there
    /// and whether the baselines found it.
    #[arg(long)]
    misses: bool,
    /// Print the default detector's nanoseconds per update over the protocol's points
    /// (best of ten passes) and its mean JSON state size at the end of a file, then stop.
    #[arg(long)]
    time: bool,
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
        format!("{s:?}: expected one of {}", names.join(", "))
    })
}

fn parse_params(s: &str) -> Result<EnsembleParams, String> {
    serde_json::from_str(s).map_err(|e| format!("not ensemble parameters: {e}"))
}

fn parse_mechanism(s: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
        format!("{s:?}: expected one of {}", names.join(", "))
    })
}

/// Why `phoenix bench anomaly` failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchAnomalyError {
    /// The NAB corpus could not be loaded.
    #[error(transparent)]
    Nab(#[from] NabError),
    /// `--files` matched nothing.
    #[error("--files {0}: no file of the corpus matches")]
    NoFiles(String),
}

/// One scored candidate and how it is described.
struct Row {
    name: String,
    threshold: String,
    outcome: Outcome,
}

/// Runs `phoenix bench anomaly`.
pub fn run(args: BenchAnomalyArgs) -> Result<ExitCode, BenchAnomalyError> {
    let mut corpus = Corpus::load(&args.nab)?;
    if !args.files.is_empty() {
        corpus
            .files
            .retain(|f| args.files.iter().any(|p| f.key().contains(p.as_str())));
        if corpus.files.is_empty() {
            return Err(BenchAnomalyError::NoFiles(args.files.join(",")));
        }
    }
    let mut variants = if args.variants.is_empty() {
        Variant::ALL.to_vec()
    } else {
        args.variants.clone()
    };
    if !variants.contains(&Variant::Original) {
        variants.insert(0, Variant::Original);
    }
    let cases = protocol::cases(&corpus, &variants);

    let mut params = args.params.clone().unwrap_or_default();
    for m in &args.off {
        m.turn_off(&mut params);
    }
    let base = if args.params.is_some() {
        "ensemble (--params)"
    } else {
        "ensemble"
    };
    let label = |off: &[Mechanism]| {
        if off.is_empty() {
            base.to_string()
        } else {
            let names: Vec<&str> = off.iter().map(|m| m.name()).collect();
            format!("{base} without {}", names.join(", "))
        }
    };
    let mut rows = vec![Row {
        name: label(&args.off),
        threshold: format!("{}", args.threshold),
        outcome: protocol::evaluate(
            &Candidate::Ensemble {
                params: params.clone(),
                threshold: args.threshold,
            },
            &cases,
        ),
    }];
    if args.ablation {
        for m in Mechanism::ALL {
            if args.off.contains(&m) {
                continue;
            }
            let mut p = params.clone();
            m.turn_off(&mut p);
            let mut off = args.off.clone();
            off.push(m);
            rows.push(Row {
                name: label(&off),
                threshold: format!("{}", args.threshold),
                outcome: protocol::evaluate(
                    &Candidate::Ensemble {
                        params: p,
                        threshold: args.threshold,
                    },
                    &cases,
                ),
            });
        }
    }
    if !args.no_baselines {
        let grid = protocol::baseline_grid();
        for kind in [BaselineKind::RollingZ, BaselineKind::WindowedGaussian] {
            let threshold = protocol::choose_baseline_threshold(kind, REFRACTORY, &cases, &grid);
            rows.push(Row {
                name: kind.name().to_string(),
                threshold: format!("|z| >= {threshold}"),
                outcome: protocol::evaluate(
                    &Candidate::Baseline {
                        kind,
                        threshold,
                        refractory: REFRACTORY,
                    },
                    &cases,
                ),
            });
        }
    }

    if args.time {
        let (ns, bytes) = protocol::time_per_update(&params, &cases, 10);
        let points: usize = cases.iter().map(|c| c.series.timestamps.len()).sum();
        println!(
            "{points} points: {ns:.1} ns per update (best of 10), state {bytes:.0} bytes of JSON at the end of a file (mean), {} bytes inline",
            std::mem::size_of::<crate::core::anomaly::Ensemble>()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.misses {
        let grid = protocol::baseline_grid();
        let t = [BaselineKind::RollingZ, BaselineKind::WindowedGaussian]
            .map(|k| protocol::choose_baseline_threshold(k, REFRACTORY, &cases, &grid));
        println!(
            "{:<16} {:<58} {:>11} {:>6} {:>5} {:>7} {:>6} {:>5} {:>5} {:>5} {:>7} {:>3} {:>3}",
            "variant",
            "file",
            "rows",
            "n",
            "prob",
            "h_in",
            "h_len",
            "max",
            "cold",
            "quiet",
            "h_flag",
            "rz",
            "wg"
        );
        for m in protocol::misses(&params, args.threshold, &cases, t) {
            println!(
                "{:<16} {:<58} {:>11} {:>6} {:>5} {:>7.1} {:>6.1} {:>5.2} {:>5} {:>5} {:>7} {:>3} {:>3}",
                m.variant.name(),
                m.key,
                format!("{}-{}", m.rows.0, m.rows.1),
                m.file_rows,
                m.probation,
                m.hours_in,
                m.hours_long,
                m.max_score,
                m.cold,
                m.quiet_rows,
                m.last_flag_hours.map_or("-".into(), |h| format!("{h:.1}")),
                u8::from(m.baselines[0]),
                u8::from(m.baselines[1]),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let report = json!({
            "nab": args.nab.display().to_string(),
            "files": corpus.files.len(),
            "profile": "standard",
            "baseline_refractory_secs": REFRACTORY.as_secs(),
            "candidates": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "phoenix bench anomaly: {} files of {}, NAB standard profile, variants {}",
        corpus.files.len(),
        args.nab.display(),
        variants
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let main = &rows[0];
    println!();
    println!("{} at threshold {} (fixed):", main.name, main.threshold);
    println!(
        "{:<16} {:>5} {:>7} {:>8} {:>5} {:>5} {:>5}",
        "variant", "files", "windows", "standard", "TP", "FP", "FN"
    );
    for (v, g) in main.outcome.by_variant() {
        println!(
            "{:<16} {:>5} {:>7} {:>8} {:>5} {:>5} {:>5}",
            v.name(),
            g.files,
            g.windows,
            fmt_score(g.standard()),
            g.score.tp,
            g.score.fp,
            g.score.fn_
        );
    }
    let pooled = main.outcome.pooled();
    println!(
        "{:<16} {:>5} {:>7} {:>8} {:>5} {:>5} {:>5}",
        "pooled",
        pooled.files,
        pooled.windows,
        fmt_score(pooled.standard()),
        pooled.score.tp,
        pooled.score.fp,
        pooled.score.fn_
    );
    if let Some((v, s)) = main.outcome.worst() {
        println!("worst variant: {} {s:.2}", v.name());
    }

    println!();
    println!("per category (standard; raw score where a category has no windows):");
    print!("{:<24}", "category");
    for v in &variants {
        print!(" {:>15}", v.name());
    }
    println!();
    let categories = main.outcome.by_category(Variant::Original);
    for (c, _) in &categories {
        print!("{c:<24}");
        for &v in &variants {
            let g = main
                .outcome
                .by_category(v)
                .into_iter()
                .find(|(k, _)| k == c)
                .map(|(_, g)| g);
            let cell = match g {
                Some(g) => match g.standard() {
                    Some(s) => format!("{s:.2}"),
                    None => format!("(raw {:.2})", g.score.raw),
                },
                None => "-".into(),
            };
            print!(" {cell:>15}");
        }
        println!();
    }

    if args.per_file {
        println!();
        println!("per file (standard raw score, TP/FP/FN):");
        for f in &corpus.files {
            let key = f.key();
            print!("{key:<60}");
            for &v in &variants {
                let cell = main
                    .outcome
                    .cases
                    .iter()
                    .find(|c| c.key == key && c.variant == v)
                    .map(|c| {
                        format!(
                            "{:.2} {}/{}/{}",
                            c.score.raw, c.score.tp, c.score.fp, c.score.fn_
                        )
                    })
                    .unwrap_or_default();
                print!(" {cell:>16}");
            }
            println!();
        }
    }

    println!();
    println!(
        "candidates (standard; baselines: threshold chosen on original, then frozen; refractory {} h):",
        REFRACTORY.as_secs() / 3_600
    );
    print!("{:<36} {:>12}", "candidate", "threshold");
    for v in &variants {
        print!(" {:>15}", v.name());
    }
    println!(" {:>8} {:>8}", "worst", "pooled");
    for r in &rows {
        print!("{:<36} {:>12}", r.name, r.threshold);
        let by = r.outcome.by_variant();
        for v in &variants {
            let s = by
                .iter()
                .find(|(k, _)| k == v)
                .and_then(|(_, g)| g.standard());
            print!(" {:>15}", fmt_score(s));
        }
        println!(
            " {:>8} {:>8}",
            fmt_score(r.outcome.worst().map(|w| w.1)),
            fmt_score(r.outcome.pooled().standard())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_score(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.2}"))
}

fn group_json(g: &protocol::Group) -> Value {
    json!({
        "files": g.files,
        "windows": g.windows,
        "standard": g.standard(),
        "raw": g.score.raw,
        "tp": g.score.tp,
        "fp": g.score.fp,
        "fn": g.score.fn_,
    })
}

fn row_json(r: &Row) -> Value {
    let variants: Vec<Value> = r
        .outcome
        .by_variant()
        .into_iter()
        .map(|(v, g)| {
            let mut o = group_json(&g);
            o["variant"] = json!(v.name());
            o["categories"] = r
                .outcome
                .by_category(v)
                .into_iter()
                .map(|(c, g)| {
                    let mut o = group_json(&g);
                    o["category"] = json!(c);
                    o
                })
                .collect();
            o["per_file"] = r
                .outcome
                .cases
                .iter()
                .filter(|c| c.variant == v)
                .map(|c| {
                    json!({
                        "key": c.key,
                        "rows": c.rows,
                        "windows": c.windows,
                        "raw": c.score.raw,
                        "tp": c.score.tp,
                        "fp": c.score.fp,
                        "fn": c.score.fn_,
                    })
                })
                .collect();
            o
        })
        .collect();
    json!({
        "name": r.name,
        "threshold": r.threshold,
        "variants": variants,
        "worst": r.outcome.worst().map(|(v, s)| json!({"variant": v.name(), "standard": s})),
        "pooled": group_json(&r.outcome.pooled()),
    })
}
