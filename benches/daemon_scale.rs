//! Scale benchmark of `phoenix run` against the real components (Debian's Prometheus
//! scraping `phoenix loadgen` every second): for each pipeline count it runs the daemon
//! at a 15 s interval for a while and reports PromQL queries per tick (counted by
//! Prometheus itself), tick time from query start to every pipeline decided (median, p99,
//! and the part beyond the queries, which run side by side; the first tick, which creates every engine, apart), state-write time, RSS and CPU of the daemon, and
//! journal bytes per pipeline-tick. Figures, not assertions: nothing here fails on a
//! number. `cargo bench --bench daemon_scale`; `PHOENIX_BENCH_PIPELINES=100,1000,10000`,
//! `PHOENIX_BENCH_DURATION=10m` and `PHOENIX_BENCH_INTERVAL=15s` choose the runs.
//!
//! The load steps every pipeline from 0.5× to 2× its budget after two minutes and back
//! after six, so the engines escalate, hold and relax during the run as in production.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Daemon, Loadgen, Prometheus, get, metric, wait_until};
use std::time::{Duration, Instant};

const BUDGET: f64 = 100_000.0;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// One /proc read of the daemon: resident set size in bytes and CPU seconds so far.
fn proc_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((rss_kb * 1024, ticks / hz))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Sum and count of a histogram (rendered as a summary) in an exposition.
fn sum_count(m: &str, name: &str, labels: &str) -> (f64, f64) {
    (
        metric(m, &format!("{name}_sum{labels}")).unwrap_or(0.0),
        metric(m, &format!("{name}_count{labels}")).unwrap_or(0.0),
    )
}

struct Report {
    pipelines: usize,
    ticks: usize,
    queries_per_tick: f64,
    /// The first tick, which creates every engine and registers its metrics.
    first_tick_ms: f64,
    tick_ms: (f64, f64),
    beyond_query_ms: (f64, f64),
    state_write_ms: (f64, f64),
    rss_mb: (f64, f64),
    cpu_pct: f64,
    journal_bytes_per_pipeline_tick: f64,
    switches: f64,
}

fn run(pipelines: usize, duration: Duration, interval: Duration) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let loadgen = Loadgen::start(&[
        "--pipelines",
        &pipelines.to_string(),
        "--schedule",
        "0s=50000,2m=200000,6m=50000",
        "--control-file",
        control.to_str().unwrap(),
    ]);
    let prom = Prometheus::start(&[("loadgen", &loadgen.addr)]);
    wait_until(
        "Prometheus to scrape every pipeline",
        Duration::from_secs(60),
        || {
            let v = common::query(&prom.url, "count(loadgen_input_series)")?;
            let n = v.first().map(|s| s.1).unwrap_or(0.0);
            (n as usize == pipelines)
                .then_some(())
                .ok_or(format!("{n} pipelines"))
        },
    );
    let secs = interval.as_secs();
    let policy = common::loadgen_policy(common::LOADGEN_INPUT)
        .replace("tick: 2s", &format!("tick: {secs}s"))
        .replace(
            "max_sample_age: 10s",
            &format!("max_sample_age: {}s", 4 * secs),
        );
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let cfg = common::daemon_config_with(
        dir.path(),
        &prom.url,
        &control,
        BUDGET,
        &format!("{secs}s"),
        "",
    );
    // The default cap on discovered pipelines is below 10,000: raise it.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  default_budget:",
        &format!("  max_pipelines: {}\n  default_budget:", pipelines + 10),
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(&cfg, &dir.path().join("phoenix.log"));
    let pid = d.pid();
    let queries = |p: &Prometheus| -> f64 {
        let (_, m) = get(&format!("{}/metrics", p.url)).unwrap_or_default();
        metric(
            &m,
            "prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query\"}",
        )
        .unwrap_or(0.0)
    };

    let ticks_now = |d: &Daemon| -> f64 {
        let (_, m) = get(&format!("{}/metrics", d.url)).unwrap_or_default();
        metric(&m, "phoenix_ticks_total").unwrap_or(0.0)
    };
    let started = Instant::now();
    let (_, cpu0) = proc_usage(pid).expect("read /proc of the daemon");
    let q0 = queries(&prom);
    let t0 = ticks_now(&d);
    let mut last = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut last_output = (0.0, 0.0);
    let mut first_tick_ms = f64::NAN;
    let mut tick_ms = Vec::new();
    let mut beyond_ms = Vec::new();
    let mut write_ms = Vec::new();
    let mut rss = Vec::new();
    let mut m = String::new();
    // Bounded: the run's duration, polled once per interval, as a Prometheus scraping
    // the daemon at its own interval would: rendering /metrics at 10,000 pipelines
    // (170,000 series) costs as much CPU as a tick, so polling more often would measure
    // the poller. A poll that sees two ticks at once skips them.
    while started.elapsed() < duration {
        std::thread::sleep(interval);
        if let Some((r, _)) = proc_usage(pid) {
            rss.push(r as f64 / 1e6);
        }
        let Ok((200, body)) = get(&format!("{}/metrics", d.url)) else {
            continue;
        };
        m = body;
        let (ts, tc) = sum_count(&m, "phoenix_tick_duration_seconds", "");
        let (is, ic) = sum_count(&m, "phoenix_query_duration_seconds", "{query=\"input\"}");
        let (os, oc) = sum_count(&m, "phoenix_query_duration_seconds", "{query=\"output\"}");
        let (ws, wc) = sum_count(&m, "phoenix_state_write_duration_seconds", "");
        if tc == 1.0 && last.1 == 0.0 {
            first_tick_ms = ts * 1e3;
        } else if tc == last.1 + 1.0 && ic == last.3 + 1.0 && oc == last_output.1 + 1.0 {
            let tick = (ts - last.0) * 1e3;
            tick_ms.push(tick);
            // The two queries run side by side: the tick waits for the later one.
            let queries = (is - last.2).max(os - last_output.0) * 1e3;
            beyond_ms.push(tick - queries);
        }
        last_output = (os, oc);
        if wc == last.5 + 1.0 {
            write_ms.push((ws - last.4) * 1e3);
        }
        last = (ts, tc, is, ic, ws, wc);
    }
    let wall = started.elapsed().as_secs_f64();
    let (_, cpu1) = proc_usage(pid).unwrap_or((0, cpu0));
    let q1 = queries(&prom);
    let t1 = ticks_now(&d);
    let ticks = metric(&m, "phoenix_ticks_total").unwrap_or(0.0);
    let journal = metric(&m, "phoenix_journal_bytes_total").unwrap_or(0.0);
    let switches: f64 = m
        .lines()
        .filter(|l| l.starts_with("phoenix_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0;
    for v in [&mut tick_ms, &mut beyond_ms, &mut write_ms, &mut rss] {
        v.sort_by(f64::total_cmp);
    }
    Report {
        pipelines,
        ticks: ticks as usize,
        // Counted by Prometheus over the window, over the daemon's ticks in that window
        // (nothing else queries this Prometheus).
        queries_per_tick: (q1 - q0) / (t1 - t0).max(1.0),
        first_tick_ms,
        tick_ms: (percentile(&tick_ms, 0.5), percentile(&tick_ms, 0.99)),
        beyond_query_ms: (percentile(&beyond_ms, 0.5), percentile(&beyond_ms, 0.99)),
        state_write_ms: (percentile(&write_ms, 0.5), percentile(&write_ms, 0.99)),
        rss_mb: (
            percentile(&rss, 0.5),
            rss.last().copied().unwrap_or(f64::NAN),
        ),
        cpu_pct: (cpu1 - cpu0) / wall * 100.0,
        journal_bytes_per_pipeline_tick: journal / (ticks.max(1.0) * pipelines as f64),
        switches,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let sizes: Vec<usize> = env_or("PHOENIX_BENCH_PIPELINES", "100,1000,10000")
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("PHOENIX_BENCH_PIPELINES: numbers, comma-separated")
        })
        .collect();
    let duration = humantime::parse_duration(&env_or("PHOENIX_BENCH_DURATION", "10m"))
        .expect("PHOENIX_BENCH_DURATION: a duration like 10m");
    let interval = humantime::parse_duration(&env_or("PHOENIX_BENCH_INTERVAL", "15s"))
        .expect("PHOENIX_BENCH_INTERVAL: a duration like 15s");
    println!(
        "phoenix run at a {} interval for {} per size (Prometheus scraping loadgen every 1 s)",
        humantime::format_duration(interval),
        humantime::format_duration(duration)
    );
    println!(
        "{:>9} {:>6} {:>8} {:>9} {:>17} {:>19} {:>17} {:>15} {:>6} {:>16} {:>8}",
        "pipelines",
        "ticks",
        "q/tick",
        "1st tick",
        "tick ms p50/p99",
        "beyond q p50/p99",
        "state ms p50/p99",
        "RSS MB p50/max",
        "CPU %",
        "journal B/p-tick",
        "switches"
    );
    for n in sizes {
        let r = run(n, duration, interval);
        println!(
            "{:>9} {:>6} {:>8.2} {:>9.1} {:>8.1}/{:<8.1} {:>9.1}/{:<9.1} {:>8.1}/{:<8.1} {:>7.1}/{:<7.1} {:>6.2} {:>16.2} {:>8}",
            r.pipelines,
            r.ticks,
            r.queries_per_tick,
            r.first_tick_ms,
            r.tick_ms.0,
            r.tick_ms.1,
            r.beyond_query_ms.0,
            r.beyond_query_ms.1,
            r.state_write_ms.0,
            r.state_write_ms.1,
            r.rss_mb.0,
            r.rss_mb.1,
            r.cpu_pct,
            r.journal_bytes_per_pipeline_tick,
            r.switches
        );
    }
}
