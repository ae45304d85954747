//! The daemon's per-tick path without Prometheus: the real `ControllerActor`, `Sink`,
//! journal, state file and file `ActuatorActor` in one process, fed synthetic query
//! results for N pipelines, with `/metrics` rendered once per tick as a Prometheus
//! scraping at the sampling interval would. Reports ms per tick (the daemon's own
//! `phoenix_tick_duration_seconds`, and the whole message including the state write and
//! the journal flush), render ms, heap in use and its peaks (counted by a global
//! allocator), allocations per tick and RSS; decisions are logged as the daemon logs
//! them. Figures, not assertions; for iterating on
//! the daemon's cost, while `daemon_scale` measures the whole daemon against a real
//! Prometheus. `cargo bench --bench controller_tick`; `PHOENIX_TICK_PIPELINES=10000` and
//! `PHOENIX_TICK_TICKS=40` choose the run.
//!
//! The load follows `daemon_scale`: every pipeline at 0.5× its budget, 2× from the 8th
//! tick (2 minutes at 15 s) and back at the 24th, and the output is the input times the
//! retention of the profile the control file names, as `phoenix loadgen` computes it.

use phoenix::core::Timestamp;
use phoenix::daemon::actuator::{ActuatorActor, ActuatorArgs, BackendArgs, ControlFile};
use phoenix::daemon::controller::{
    CollectorRef, CommandRequest, ControllerActor, ControllerArgs, ControllerMsg,
};
use phoenix::daemon::observe::{ResultSeries, SignalResult};
use phoenix::daemon::sink::{Journal, Sink};
use phoenix::daemon::status::Board;
use phoenix::daemon::supervisor;
use phoenix::policy::ValidatedPolicy;
use ractor::Actor;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Counts the heap in use, its peak since the last reset, and allocations.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        grew(l.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        if new > l.size() {
            grew(new - l.size());
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BUDGET: f64 = 100_000.0;
const INTERVAL: Duration = Duration::from_secs(15);
const COLLECTOR: &str = "edge";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn mb(b: usize) -> f64 {
    b as f64 / 1e6
}

/// Resident and peak resident size of this process, MB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kb("VmRSS:") / 1e3, kb("VmHWM:") / 1e3)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Sum of a histogram (rendered as a summary) in an exposition.
fn histogram_sum(text: &str, name: &str) -> f64 {
    let key = format!("{name}_sum ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key)?.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let n: usize = env_or("PHOENIX_TICK_PIPELINES", "10000")
        .parse()
        .expect("PHOENIX_TICK_PIPELINES: a number");
    let ticks: usize = env_or("PHOENIX_TICK_TICKS", "40")
        .parse()
        .expect("PHOENIX_TICK_TICKS: a number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(n, ticks));
}

async fn bench(n: usize, ticks: usize) {
    let base = LIVE.load(Ordering::Relaxed);
    let handle = phoenix::daemon::metrics::install().expect("the recorder");
    let dir = tempfile::tempdir().expect("a temp dir");
    // The daemon logs every decision with its sentence, as `phoenix run` does: through
    // a writer thread, here into a file.
    let log = std::fs::File::create(dir.path().join("phoenix.log")).expect("a log file");
    let (writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(32_768)
        .finish(log);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(writer)
        .init();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.yaml"
    ))
    .expect("policies/default.yaml");
    let policy = ValidatedPolicy::from_str(&text, "policies/default.yaml").expect("the policy");
    let retention: BTreeMap<String, f64> = policy
        .profiles()
        .iter()
        .map(|p| (p.name.clone(), p.retention))
        .collect();
    let first_retention = policy.profiles()[0].retention;
    let control = dir.path().join("collector.yaml");
    let board = Arc::new(RwLock::new(Board::default()));
    let mut journal = Journal::new(
        dir.path().join("journal"),
        64 << 20,
        Duration::from_secs(86400),
    );
    journal
        .start_segment(Timestamp::from_secs(0), &policy, std::iter::empty())
        .expect("a journal");
    let sink = Arc::new(tokio::sync::Mutex::new(Sink::new(board, Some(journal))));
    let (actuator, _) = Actor::spawn(
        Some(supervisor::actuator_name(COLLECTOR)),
        ActuatorActor,
        ActuatorArgs {
            collector: COLLECTOR.to_string(),
            backend: BackendArgs::File {
                path: control.clone(),
            },
            coalesce: Duration::ZERO,
            min_reload_interval: Duration::ZERO,
        },
    )
    .await
    .expect("the actuator");
    let (controller, _) = Actor::spawn(
        Some(supervisor::CONTROLLER.to_string()),
        ControllerActor,
        ControllerArgs {
            policy: policy.clone(),
            interval: INTERVAL,
            discover: true,
            include: Vec::new(),
            budgets: BTreeMap::new(),
            default_budget: BUDGET,
            keep_vanished: Duration::from_secs(3600),
            max_pipelines: n + 10,
            collectors: vec![CollectorRef {
                name: COLLECTOR.to_string(),
                pipelines: vec!["*".to_string()],
            }],
            state_file: dir.path().join("engines.json"),
            snapshot_interval: Duration::from_secs(300),
            sink,
            speed: 1.0,
        },
    )
    .await
    .expect("the controller");
    let names: Vec<String> = (0..n).map(|i| format!("p{i:05}")).collect();
    let start = 1_704_067_200;
    println!("{n} pipelines, {ticks} ticks of 15 s (virtual), /metrics rendered after each tick");
    println!(
        "{:>4} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "tick",
        "tick ms",
        "msg ms",
        "render ms",
        "allocs",
        "heap MB",
        "peak MB",
        "render MB",
        "RSS MB"
    );
    let (mut tick_ms, mut msg_ms, mut render_ms, mut allocs_v) = (vec![], vec![], vec![], vec![]);
    let (mut heap_max, mut peak_max, mut render_peak_max) = (0usize, 0usize, 0usize);
    let mut last_sum = 0.0;
    for t in 0..ticks {
        // What loadgen would serve now: demand by the schedule, output by the control file.
        let level = if (8..24).contains(&t) { 2.0 } else { 0.5 } * BUDGET;
        let in_force = ControlFile::read(&control)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = Timestamp::from_secs(start + 15 * t as i64);
        let series = |f: &dyn Fn(&str) -> f64| {
            SignalResult::Ok(
                names
                    .iter()
                    .map(|p| ResultSeries {
                        pipeline: Some(p.clone()),
                        value: f(p),
                        at: now,
                    })
                    .collect(),
            )
        };
        let input = series(&|_| level);
        let output = series(&|p| {
            level
                * in_force
                    .pipelines
                    .get(p)
                    .and_then(|name| retention.get(name))
                    .copied()
                    .unwrap_or(first_retention)
        });
        drop(in_force);
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let started = Instant::now();
        controller
            .send_message(ControllerMsg::Tick {
                now,
                input,
                output,
                started,
            })
            .expect("the controller runs");
        // Messages are handled in order: the answer to a command for no pipeline comes
        // once the tick is done.
        let _ = ractor::call!(controller, |reply| ControllerMsg::Command {
            pipeline: String::new(),
            command: CommandRequest::Clear { by: "bench".into() },
            reply,
        });
        let msg = started.elapsed().as_secs_f64() * 1e3;
        let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
        let peak = PEAK.load(Ordering::Relaxed);
        // Applies: the actuator writes the control file and reports to the controller.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let heap = LIVE.load(Ordering::Relaxed);
        PEAK.store(heap, Ordering::Relaxed);
        let r0 = Instant::now();
        let mut text = handle.render();
        phoenix::daemon::series::table().render(&mut text);
        let render = r0.elapsed().as_secs_f64() * 1e3;
        let render_peak = PEAK.load(Ordering::Relaxed);
        let sum = histogram_sum(&text, "phoenix_tick_duration_seconds");
        let tick = (sum - last_sum) * 1e3;
        last_sum = sum;
        let series_n = text.lines().filter(|l| !l.starts_with('#')).count();
        drop(text);
        let (rss_now, _) = rss();
        println!(
            "{t:>4} {tick:>9.1} {msg:>9.1} {render:>9.1} {allocs:>10} {:>9.1} {:>9.1} {:>10.1} {rss_now:>10.1}   {series_n} series",
            mb(heap - base),
            mb(peak - base),
            mb(render_peak - base),
        );
        if t > 0 {
            tick_ms.push(tick);
            msg_ms.push(msg);
            render_ms.push(render);
            allocs_v.push(allocs as f64);
            heap_max = heap_max.max(heap - base);
            peak_max = peak_max.max(peak - base);
            render_peak_max = render_peak_max.max(render_peak - base);
        }
    }
    let (rss_now, hwm) = rss();
    println!(
        "after the first tick: tick ms p50 {:.1} p99 {:.1}; message ms p50 {:.1} p99 {:.1}; render ms p50 {:.1}; allocations per tick p50 {:.0}",
        percentile(&tick_ms, 0.5),
        percentile(&tick_ms, 0.99),
        percentile(&msg_ms, 0.5),
        percentile(&msg_ms, 0.99),
        percentile(&render_ms, 0.5),
        percentile(&allocs_v, 0.5),
    );
    println!(
        "heap in use max {:.1} MB ({:.0} B per pipeline), peak in a tick {:.1} MB, peak in a render {:.1} MB; RSS {rss_now:.1} MB, high-water {hwm:.1} MB",
        mb(heap_max),
        heap_max as f64 / n as f64,
        mb(peak_max),
        mb(render_peak_max),
    );
    controller.stop(None);
    actuator.stop(None);
}
