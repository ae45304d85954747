//! The `phoenix` command line: `simulate` replays traces through policies and baselines,
//! `policy check` validates policy files, `anomaly score|bench` runs the detectors (and
//! the NAB benchmark). Errors end here as one line, never a backtrace.

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use phoenix::bench::nab::{self, Corpus};
use phoenix::bench::nab_baselines::WindowedGaussian;
use phoenix::core::anomaly::{DEFAULT_THRESHOLD, Detector, DetectorKind};
use phoenix::core::config::ProfileSpec;
use phoenix::policy::{LadderProblem, ValidatedPolicy, check_files, check_ladder};
use phoenix::sim::record::ControllerRun;
use phoenix::sim::report::{self, Metrics};
use phoenix::sim::runner::Plant;
use phoenix::sim::scenario::Scenario;
use phoenix::sim::simulate::{Baseline, Simulation};
use phoenix::sim::trace::read_trace;
use phoenix::sim::{plot, ticks};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Phoenix keeps metrics cardinality under a budget by choosing a reduction profile per
/// OpenTelemetry Collector pipeline.
#[derive(Parser, Debug)]
#[command(name = "phoenix", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a trace through policies and baselines and compare them.
    Simulate(SimulateArgs),
    /// Policy file commands.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Anomaly detectors on recorded series: score a file, or benchmark on NAB.
    Anomaly {
        #[command(subcommand)]
        command: AnomalyCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate policy files; exits non-zero if any has a problem.
    Check {
        /// Policy files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Scenario file (simulations/*.yaml). Without it, give --trace and the plant flags.
    scenario: Option<PathBuf>,
    /// Trace file(s): `timestamp,value` CSV, multi-column CSV, or a saved Prometheus
    /// query_range JSON. With several, the report is the mean over traces.
    #[arg(long = "trace", conflicts_with = "scenario", num_args = 1..)]
    traces: Vec<PathBuf>,
    /// Tick length; consecutive rows are consecutive ticks whatever their timestamps.
    #[arg(long, default_value = "15s", value_parser = parse_duration, conflicts_with = "scenario")]
    tick: Duration,
    /// Map the trace's min and max to these multiples of the budget (`0.4:2.2`).
    #[arg(long, value_parser = parse_rescale, conflicts_with = "scenario")]
    rescale: Option<(f64, f64)>,
    /// Output budget in series.
    #[arg(long, default_value_t = 100_000.0, conflicts_with = "scenario")]
    budget: f64,
    /// Profiles and their true retention, least to most reducing.
    #[arg(long, default_value = "conservative=0.9,balanced=0.6,aggressive=0.35", value_parser = parse_ladder, conflicts_with = "scenario")]
    retention: Ladder,
    /// Reload delay: a decision at tick t is in force from tick t + delay.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), conflicts_with = "scenario")]
    delay_ticks: u32,
    /// Relative standard deviation of multiplicative output noise.
    #[arg(long, default_value_t = 0.0, conflicts_with = "scenario")]
    noise: f64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0, conflicts_with = "scenario")]
    seed: u64,
    /// Policy file(s) to compare (default with --trace: policies/default.yaml).
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// Run only the given policies, no threshold/hpa/oracle baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write every tick of every controller to this CSV (single trace only).
    #[arg(long = "ticks")]
    ticks_out: Option<PathBuf>,
    /// Write an SVG plot (single trace only).
    #[arg(long = "plot")]
    plot_out: Option<PathBuf>,
    /// With several traces, also print each trace's table.
    #[arg(long)]
    per_trace: bool,
}

#[derive(Clone, Debug)]
struct Ladder(Vec<ProfileSpec>);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 15s, 1m)"))?;
    if d.is_zero() {
        return Err("must be > 0".into());
    }
    Ok(d)
}

fn parse_rescale(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(':').ok_or("expected MIN:MAX, e.g. 0.4:2.2")?;
    let a: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a number (expected MIN:MAX, e.g. 0.4:2.2)"))?;
    let b: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a number (expected MIN:MAX, e.g. 0.4:2.2)"))?;
    if !(a.is_finite() && b.is_finite() && 0.0 <= a && a <= b) {
        return Err(format!("{s}: need 0 <= MIN <= MAX"));
    }
    Ok((a, b))
}

/// `NAME=RETENTION,...`, least to most reducing, checked by the ladder rules shared with
/// policies and scenarios; every problem is reported, the profiles' before the count.
fn parse_ladder(s: &str) -> Result<Ladder, String> {
    let mut out: Vec<ProfileSpec> = Vec::new();
    for part in s.split(',') {
        let (name, r) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=RETENTION, e.g. conservative=0.9"))?;
        let retention: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("{r:?} is not a number"))?;
        out.push(ProfileSpec {
            name: name.trim().to_string(),
            retention,
        });
    }
    let mut problems = check_ladder(&out);
    if problems.is_empty() {
        return Ok(Ladder(out));
    }
    problems.sort_by_key(|p| p.index().is_none());
    let name = |i: usize| out[i].name.as_str();
    let messages: Vec<String> = problems
        .iter()
        .map(|p| match *p {
            LadderProblem::TooFewProfiles { .. } => "need at least two profiles".to_string(),
            LadderProblem::EmptyName { index } => format!(
                "profile {} has no name (expected NAME=RETENTION, e.g. conservative=0.9)",
                index + 1
            ),
            LadderProblem::DuplicateName { index, .. } => {
                format!("{}: the name is given twice", name(index))
            }
            LadderProblem::RetentionOutOfRange { index, retention } => {
                format!("{}: retention {retention} must be in (0, 1]", name(index))
            }
            LadderProblem::NotDecreasing { index, .. } => format!(
                "{}: retentions must decrease from least to most reducing",
                name(index)
            ),
        })
        .collect();
    Err(messages.join("; "))
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate(args),
        Command::Policy {
            command: PolicyCommand::Check { files },
        } => policy_check(&files),
        Command::Anomaly { command } => anomaly(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phoenix: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `phoenix ... | head` would panic on the closed pipe; like
/// other Unix tools, end quietly instead.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn policy_check(files: &[PathBuf]) -> Result<ExitCode> {
    let mut failed = 0;
    for (path, res) in check_files(files) {
        match res {
            Ok(p) => {
                let ladder: Vec<&str> = p.profiles().iter().map(|x| x.name.as_str()).collect();
                println!(
                    "{}: ok (policy {:?}, profiles {})",
                    path.display(),
                    p.name(),
                    ladder.join(" → ")
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} policy file(s) have problems", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn load_policies(paths: &[PathBuf]) -> Result<Vec<ValidatedPolicy>> {
    let mut out = Vec::new();
    for p in paths {
        out.push(ValidatedPolicy::from_file(p)?);
    }
    Ok(out)
}

/// Draws a progress bar only once a run has lasted a second: short runs stay quiet.
struct Progress {
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            total,
            started: Instant::now(),
            bar: None,
        }
    }

    fn update(&mut self, done: u64) {
        if self.bar.is_none() && self.started.elapsed() >= Duration::from_secs(1) {
            let bar = ProgressBar::new(self.total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} ticks ({per_sec}, eta {eta})")
            {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_position(done.min(self.total));
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

fn run_with_progress(sim: &Simulation, progress: &mut Progress, offset: u64) -> Vec<ControllerRun> {
    sim.run(&mut |t| progress.update(offset + t))
}

/// Fails early, with the path in the message, if `p` cannot be an output file.
fn check_output_path(p: &std::path::Path) -> Result<()> {
    if p.is_dir() {
        bail!(
            "cannot write {}: it is a directory (give a file name)",
            p.display()
        );
    }
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist (create it first or choose another path)",
            p.display(),
            parent.display()
        );
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> Result<ExitCode> {
    let mut per_trace: Vec<(String, Vec<ControllerRun>)> = Vec::new();
    if let Some(path) = &args.scenario {
        let sc = Scenario::load(path)?;
        let trace = sc.trace()?;
        let mut paths = sc.policies.clone();
        paths.extend(args.policies.iter().cloned());
        let mut sim = Simulation::from_scenario(&sc, &trace, load_policies(&paths)?);
        if args.no_baselines {
            sim.baselines.clear();
        }
        let mut progress = Progress::new(sim.demand.len() as u64 * sim.controllers() as u64);
        let runs = run_with_progress(&sim, &mut progress, 0);
        progress.finish();
        per_trace.push((sc.name.clone(), runs));
    } else {
        if args.traces.is_empty() {
            bail!("give a scenario file (e.g. simulations/flash-crowd.yaml) or --trace FILE");
        }
        let paths = if args.policies.is_empty() {
            let default = PathBuf::from("policies/default.yaml");
            if !default.exists() {
                bail!(
                    "no --policy given and policies/default.yaml not found here (run from the repository or pass --policy FILE)"
                );
            }
            vec![default]
        } else {
            args.policies.clone()
        };
        let policies = load_policies(&paths)?;
        let plant = Plant {
            ladder: args.retention.0.clone(),
            delay_ticks: args.delay_ticks,
            noise: args.noise,
            seed: args.seed,
        };
        if !(1.0..=1e12).contains(&args.budget) {
            bail!(
                "--budget {}: must be a number of series from 1 to 1e12",
                args.budget
            );
        }
        if !(0.0..=1.0).contains(&args.noise) {
            bail!("--noise {}: must be in [0, 1]", args.noise);
        }
        let mut sims = Vec::new();
        for path in &args.traces {
            let mut trace = read_trace(path)?;
            if trace.is_empty() {
                bail!("{}: the trace has no rows", path.display());
            }
            if let Some((lo, hi)) = args.rescale {
                trace.rescale(lo * args.budget, hi * args.budget);
            }
            let sim = Simulation {
                demand: trace.demand().to_vec(),
                start: trace.timestamps.first().copied().unwrap_or_default(),
                tick: args.tick,
                budget_series: args.budget,
                plant: plant.clone(),
                policies: policies.clone(),
                baselines: if args.no_baselines {
                    Vec::new()
                } else {
                    Baseline::ALL.to_vec()
                },
            };
            sims.push((path.display().to_string(), sim));
        }
        let total: u64 = sims
            .iter()
            .map(|(_, s)| s.demand.len() as u64 * s.controllers() as u64)
            .sum();
        let mut progress = Progress::new(total);
        let mut offset = 0;
        for (name, sim) in &sims {
            let runs = run_with_progress(sim, &mut progress, offset);
            offset += sim.demand.len() as u64 * sim.controllers() as u64;
            per_trace.push((name.clone(), runs));
        }
        progress.finish();
    }

    if per_trace.len() > 1 && (args.ticks_out.is_some() || args.plot_out.is_some()) {
        bail!("--ticks and --plot take a single trace; run them per trace");
    }
    // Check every output location before writing any, so a bad second path does not
    // leave the first file written by a run that reports failure.
    for p in [&args.ticks_out, &args.plot_out].into_iter().flatten() {
        check_output_path(p)?;
    }
    if let Some((_, runs)) = per_trace.first() {
        if let Some(p) = &args.ticks_out {
            ticks::write_ticks(p, runs)?;
        }
        if let Some(p) = &args.plot_out {
            plot::write_plot(p, runs)?;
        }
    }
    let rows: Vec<Vec<Metrics>> = per_trace
        .iter()
        .map(|(_, runs)| runs.iter().map(report::metrics).collect())
        .collect();
    print_report(&args, &per_trace, &rows);
    Ok(ExitCode::SUCCESS)
}

fn print_report(
    args: &SimulateArgs,
    per_trace: &[(String, Vec<ControllerRun>)],
    rows: &[Vec<Metrics>],
) {
    match args.format {
        Format::Json if rows.len() == 1 => println!("{}", report::to_json(&rows[0])),
        Format::Json => {
            let traces: Vec<serde_json::Value> = per_trace
                .iter()
                .zip(rows)
                .map(|((name, _), m)| serde_json::json!({ "trace": name, "controllers": m }))
                .collect();
            let doc = serde_json::json!({ "mean": report::mean(rows), "traces": traces });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table if rows.len() == 1 => {
            let (name, runs) = &per_trace[0];
            let ticks = runs.first().map_or(0, |r| r.ticks.len());
            println!(
                "{name}: {ticks} ticks of {}",
                phoenix::core::time::fmt_duration(args_tick(args, runs))
            );
            print!("{}", report::table(&rows[0]));
        }
        Format::Table => {
            if args.per_trace {
                for ((name, _), m) in per_trace.iter().zip(rows) {
                    println!("{name}");
                    print!("{}", report::table(m));
                    println!();
                }
            }
            println!("mean over {} traces", rows.len());
            print!("{}", report::table(&report::mean(rows)));
        }
    }
}

fn args_tick(args: &SimulateArgs, runs: &[ControllerRun]) -> Duration {
    runs.first().map_or(args.tick, |r| r.tick)
}

// ---------------------------------------------------------------------------------------
// anomaly

#[derive(Subcommand, Debug)]
enum AnomalyCommand {
    /// Score every row of a CSV; writes `timestamp,value,anomaly_score` (NAB's result
    /// format) with the timestamps as written in the input.
    Score(AnomalyScoreArgs),
    /// Run a detector over a NAB corpus and print its NAB scores (standard, reward_low_FP,
    /// reward_low_FN) per category and overall.
    Bench(AnomalyBenchArgs),
}

#[derive(Args, Debug)]
struct AnomalyScoreArgs {
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

#[derive(Args, Debug)]
struct AnomalyBenchArgs {
    /// NAB-layout folder: data/<category>/<file>.csv and labels/combined_windows.json.
    #[arg(long)]
    nab: PathBuf,
    /// Detector: zscore, mad, ewma, trend, seasonal, ensemble, or NAB's windowed_gaussian.
    #[arg(long, default_value = "ensemble", value_parser = parse_detector)]
    detector: DetectorChoice,
    /// The one threshold for the corpus (default: DEFAULT_THRESHOLD; 1.0, NAB's published
    /// threshold, for windowed_gaussian).
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f64>,
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
            DetectorChoice::WindowedGaussian => Scorer::Gaussian(Box::new(WindowedGaussian::new())),
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
    fn run(mut self, timestamps: &[phoenix::core::Timestamp], values: &[f64]) -> Vec<f64> {
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

fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() => Ok(t),
        _ => Err(format!("{s:?} is not a finite number (e.g. 0.5)")),
    }
}

fn anomaly(command: AnomalyCommand) -> Result<ExitCode> {
    match command {
        AnomalyCommand::Score(args) => anomaly_score(&args),
        AnomalyCommand::Bench(args) => anomaly_bench(&args),
    }
}

fn anomaly_score(args: &AnomalyScoreArgs) -> Result<ExitCode> {
    if let Some(out) = &args.out {
        check_output_path(out)?;
    }
    let trace = read_trace(&args.file)?;
    // read_trace reads JSON too; the result format wants the CSV's own timestamp text.
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
    {
        bail!(
            "{}: not a CSV file (anomaly score reads `timestamp,value` CSV, like NAB's data files)",
            args.file.display()
        );
    }
    let timestamps = nab::csv_timestamp_cells(&text);
    if timestamps.len() != trace.len() {
        bail!(
            "{}: found {} timestamp cells for {} rows (check the file's line structure)",
            args.file.display(),
            timestamps.len(),
            trace.len()
        );
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
        Some(out) => nab::write_results_file(out, &timestamps, values, &scores)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?,
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            match nab::write_results(&mut w, &timestamps, values, &scores) {
                // A reader that stopped early (`| head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.map_err(|e| anyhow::anyhow!("cannot write to stdout: {e}"))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn anomaly_bench(args: &AnomalyBenchArgs) -> Result<ExitCode> {
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
