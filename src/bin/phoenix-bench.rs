//! `phoenix-bench`: release-mode throughput check of the simulator and the engine (wall time).
//!
//! Run with `cargo run --release --bin phoenix-bench [-- --reps N]`. It writes synthetic
//! `timestamp,value` CSV traces (a daily cycle with 3% noise and twice-daily rollouts, so
//! the policy switches) to a temporary folder, then times, for one policy
//! (`policies/default.yaml`) and no baselines: parsing with `read_trace`, `Simulation::run`,
//! and `report::metrics`, on 2,000,000 ticks and on a year of 15 s ticks (2,102,400).
//! It also times `Engine::step` in batches of 1000 calls and reports the median per call.
//! Each whole run is repeated `--reps` times (default 3) and the median run is shown.
//! The goals: at least 5 million ticks/s for one policy, and a year of 15 s ticks in under
//! a second including parsing.

use phoenix::core::{Engine, EngineConfig, Observation, Sample, Timestamp};
use phoenix::policy::ValidatedPolicy;
use phoenix::sim::report;
use phoenix::sim::simulate::Simulation;
use phoenix::sim::synth::{self, SynthSpec};
use phoenix::sim::trace::{Values, read_trace};
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Tick length of every trace and run.
const TICK: Duration = Duration::from_secs(15);
/// Output budget in series.
const BUDGET: f64 = 100_000.0;
/// 2024-01-01T00:00:00Z, the first row of every trace.
const START_SECS: i64 = 1_704_067_200;
/// Ticks in a year of 15 s ticks.
const YEAR_TICKS: u64 = 365 * 24 * 3600 / 15;
/// Target of the simulator, ticks per second for one policy.
const GOAL_TICKS_PER_SEC: f64 = 5e6;
/// Target for a year of 15 s ticks, parse included.
const GOAL_YEAR: Duration = Duration::from_secs(1);
/// `Engine::step` calls per timed batch, and batches timed.
const STEP_BATCH: usize = 1000;
const STEP_BATCHES: usize = 1000;

/// Demand the engine has to work for (the shared benchmark workload).
fn demand_spec(ticks: u64) -> SynthSpec {
    SynthSpec::benchmark(BUDGET, ticks)
}

/// Writes `ticks` rows of the synthetic demand as `timestamp,value` CSV (NAB timestamps).
fn write_trace(path: &Path, ticks: u64) -> std::io::Result<u64> {
    let trace = synth::generate(&demand_spec(ticks), TICK, Timestamp::from_secs(START_SECS));
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "timestamp,value")?;
    let mut line = String::with_capacity(64);
    for (t, v) in trace.timestamps.iter().zip(trace.demand()) {
        line.clear();
        let dt = chrono::DateTime::from_timestamp_millis(t.as_millis())
            .ok_or_else(|| std::io::Error::other("timestamp out of range"))?;
        let _ = writeln!(line, "{},{v:.1}", dt.naive_utc());
        w.write_all(line.as_bytes())?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// One timed whole run: parse, build, simulate, report.
#[derive(Clone, Copy, Debug)]
struct WholeRun {
    ticks: usize,
    parse: Duration,
    build: Duration,
    sim: Duration,
    metrics: Duration,
    switches: f64,
}

impl WholeRun {
    fn total(&self) -> Duration {
        self.parse + self.build + self.sim + self.metrics
    }
}

/// The benchmark's simulation of `trace` under `policy`: no baselines, 1% plant noise.
fn simulation(trace: &phoenix::sim::trace::Trace, policy: &ValidatedPolicy) -> Simulation {
    Simulation::benchmark(
        policy.clone(),
        trace.demand().to_vec(),
        trace.timestamps.first().copied().unwrap_or_default(),
        TICK,
        BUDGET,
    )
}

fn whole_run(path: &Path, policy: &ValidatedPolicy) -> Result<WholeRun, String> {
    let t0 = Instant::now();
    let trace = read_trace(path, Values::SeriesCounts).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let sim = simulation(&trace, policy);
    let t2 = Instant::now();
    let runs = sim.run(&mut |_| {});
    let t3 = Instant::now();
    let rows: Vec<report::Metrics> = runs.iter().map(report::metrics).collect();
    let t4 = Instant::now();
    let m = rows.first().ok_or("the simulation returned no run")?;
    let out = WholeRun {
        ticks: m.ticks,
        parse: t1 - t0,
        build: t2 - t1,
        sim: t3 - t2,
        metrics: t4 - t3,
        switches: m.switches,
    };
    // Freeing the trace and the per-tick records is outside the timed region.
    drop(black_box((trace, sim, runs, rows)));
    Ok(out)
}

/// The run with the median total of `reps` runs.
fn median_run(path: &Path, policy: &ValidatedPolicy, reps: usize) -> Result<WholeRun, String> {
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        runs.push(whole_run(path, policy)?);
    }
    runs.sort_by_key(WholeRun::total);
    Ok(runs[runs.len() / 2])
}

/// Per-call `Engine::step` times: closed loop (output = demand × retention of the profile
/// decided the tick before), so the engine escalates and relaxes as in a real run.
struct StepStats {
    median_ns: f64,
    p10_ns: f64,
    p90_ns: f64,
    calls: usize,
    switches: usize,
    /// JSON bytes of the engine's persisted state after the run (detectors warm).
    state_bytes: usize,
}

fn step_bench() -> StepStats {
    let cfg = EngineConfig::example(BUDGET);
    let retention: Vec<f64> = cfg.profiles.iter().map(|p| p.retention).collect();
    let ring = synth::generate(
        &demand_spec(1 << 16),
        TICK,
        Timestamp::from_secs(START_SECS),
    )
    .demand()
    .to_vec();
    let mask = ring.len() - 1;
    let mut engine = Engine::new(cfg);
    let mut in_force = 0usize;
    let mut i = 0usize;
    let mut switches = 0usize;
    // One observation rewritten in place each call, as a daemon's sampler can: building
    // and dropping one per call was a tenth of what this loop measured besides the step.
    let mut obs = Observation::ok(0.0, 0.0, Timestamp(0));
    let mut tick = |engine: &mut Engine, switches: &mut usize| {
        let input = ring[i & mask];
        let now = Timestamp::from_secs(START_SECS + 15 * i as i64);
        // The actuator applies at once and says so, as a healthy daemon's does.
        obs.input = Sample::ok(input, now);
        obs.output = Sample::ok(input * retention[in_force], now);
        obs.in_force = Some(in_force);
        let step = engine.step(now, black_box(&obs));
        *switches += step.actions.len();
        black_box(&step);
        in_force = engine.current();
        i += 1;
    };
    // Warm-up: fill the demand windows and the switch history.
    for _ in 0..100_000 {
        tick(&mut engine, &mut switches);
    }
    switches = 0;
    let mut per_call = Vec::with_capacity(STEP_BATCHES);
    for _ in 0..STEP_BATCHES {
        let t = Instant::now();
        for _ in 0..STEP_BATCH {
            tick(&mut engine, &mut switches);
        }
        per_call.push(t.elapsed().as_nanos() as f64 / STEP_BATCH as f64);
    }
    per_call.sort_by(f64::total_cmp);
    let at = |q: f64| per_call[((per_call.len() - 1) as f64 * q).round() as usize];
    StepStats {
        median_ns: at(0.5),
        p10_ns: at(0.1),
        p90_ns: at(0.9),
        calls: STEP_BATCH * STEP_BATCHES,
        switches,
        state_bytes: serde_json::to_vec(&engine.state()).map_or(0, |v| v.len()),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn rate(ticks: usize, d: Duration) -> String {
    format!("{:.2} M ticks/s", ticks as f64 / d.as_secs_f64() / 1e6)
}

fn print_table(rows: &[[String; 4]]) {
    let mut width = [0usize; 4];
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (n, row) in rows.iter().enumerate() {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
        if n == 0 {
            println!("{}", "-".repeat(width.iter().sum::<usize>() + 6));
        }
    }
}

/// Command-line options: repetitions and the policy to time.
fn parse_args() -> Result<(usize, PathBuf), String> {
    let mut args = std::env::args().skip(1);
    let mut reps = 3;
    let mut policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--policy" => policy = args.next().ok_or("--policy takes a file")?.into(),
            "--reps" => {
                reps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n >= 1)
                    .ok_or("--reps takes a number >= 1")?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: phoenix-bench [--reps N] [--policy FILE]   (build with --release)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok((reps, policy))
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs everything and prints the table; missed goals are reported, not an error (the
/// figures depend on the machine and its load).
fn run() -> Result<(), String> {
    let (reps, policy_path) = parse_args()?;
    if cfg!(debug_assertions) {
        eprintln!("phoenix-bench: debug build; run with --release for meaningful figures");
    }
    let policy = ValidatedPolicy::from_file(&policy_path).map_err(|e| e.to_string())?;

    let dir = TempDir(std::env::temp_dir().join(format!("phoenix-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| format!("{}: {e}", dir.0.display()))?;
    let two_m = dir.0.join("2m.csv");
    let year = dir.0.join("year.csv");
    let io = |e: std::io::Error| e.to_string();
    let two_m_bytes = write_trace(&two_m, 2_000_000).map_err(io)?;
    let year_bytes = write_trace(&year, YEAR_TICKS).map_err(io)?;

    let a = median_run(&two_m, &policy, reps)?;
    let y = median_run(&year, &policy, reps)?;
    let s = step_bench();
    // Journal size: the 2M-tick run once more, every step journaled.
    let journal = {
        let trace = read_trace(&two_m, Values::SeriesCounts).map_err(|e| e.to_string())?;
        let sim = simulation(&trace, &policy);
        let path = dir.0.join("journal.jsonl.gz");
        let t = Instant::now();
        let (_, stats) = sim
            .run_journaled(&path, &mut |_| {})
            .map_err(|e| e.to_string())?;
        (stats, t.elapsed())
    };

    println!(
        "phoenix-bench: policy {:?}, no baselines, plant noise 1%, delay 1 tick; median of {reps} run(s)",
        policy.name()
    );
    println!(
        "traces: 2M ticks {:.1} MB, year {:.1} MB; switches: 2M {}, year {}",
        two_m_bytes as f64 / 1e6,
        year_bytes as f64 / 1e6,
        a.switches,
        y.switches
    );
    println!();
    let mut rows = vec![[
        "measurement".to_string(),
        "ticks".to_string(),
        "time".to_string(),
        "rate".to_string(),
    ]];
    for (name, r) in [("2M", &a), ("year 15s", &y)] {
        rows.push([
            format!("{name}: parse (read_trace)"),
            r.ticks.to_string(),
            ms(r.parse),
            rate(r.ticks, r.parse),
        ]);
        rows.push([
            format!("{name}: build Simulation"),
            r.ticks.to_string(),
            ms(r.build),
            String::new(),
        ]);
        rows.push([
            format!("{name}: Simulation::run (1 policy)"),
            r.ticks.to_string(),
            ms(r.sim),
            rate(r.ticks, r.sim),
        ]);
        rows.push([
            format!("{name}: report::metrics"),
            r.ticks.to_string(),
            ms(r.metrics),
            String::new(),
        ]);
        rows.push([
            format!("{name}: whole run incl. parse"),
            r.ticks.to_string(),
            ms(r.total()),
            rate(r.ticks, r.total()),
        ]);
    }
    rows.push([
        format!("Engine::step (median of {STEP_BATCHES} × {STEP_BATCH})"),
        s.calls.to_string(),
        format!("{:.1} ns/call", s.median_ns),
        format!("p10 {:.1} / p90 {:.1} ns", s.p10_ns, s.p90_ns),
    ]);
    print_table(&rows);
    println!(
        "(Engine::step: {} switches during the timed calls)",
        s.switches
    );
    println!(
        "state: {} bytes of JSON per pipeline (default policy, detectors warm)",
        s.state_bytes
    );
    println!(
        "journal: {} steps in {:.1} MB, {:.1} bytes per pipeline-step ({} incl. writing)",
        journal.0.steps,
        journal.0.bytes as f64 / 1e6,
        journal.0.bytes_per_step(),
        ms(journal.1)
    );
    println!();

    let sim_rate = a.ticks as f64 / a.sim.as_secs_f64();
    let sim_ok = sim_rate >= GOAL_TICKS_PER_SEC;
    let year_ok = y.total() < GOAL_YEAR;
    let verdict = |ok| if ok { "met" } else { "NOT met" };
    println!(
        "goal >= 5 M ticks/s (1 policy, 2M ticks): {} ({:.2} M ticks/s)",
        verdict(sim_ok),
        sim_rate / 1e6
    );
    println!(
        "goal year of 15 s ticks < 1 s incl. parse: {} ({})",
        verdict(year_ok),
        ms(y.total())
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phoenix-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
