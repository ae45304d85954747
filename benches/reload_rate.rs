//! Reload-rate benchmark of the `prometheus` actuator against the real components: one
//! Debian Prometheus is the collector (one scrape job per pipeline, each scraping its own
//! `phoenix loadgen --mode series`) and the database Phoenix queries. Every pipeline's
//! load flaps between 0.5× and 2× its budget, the pipelines a second apart, and the
//! daemon runs on the fast test policy (2 s ticks, seconds-long dwell), so the engines
//! switch as often as the policy lets them. The same run is made without coalescing
//! (`coalesce: 0s`, `min_reload_interval: 0s`) and with the defaults (`2s`, `10s`); the
//! report is switches, applies and reloads of the collector, and reloads per hour.
//! Figures, not assertions. `cargo bench --bench reload_rate`;
//! `PHOENIX_BENCH_PIPELINES=4`, `PHOENIX_BENCH_DURATION=3m`, `PHOENIX_BENCH_FLAP=20s`
//! (time at each level) choose the run.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Daemon, Loadgen, Prometheus, get, query, wait_until};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const BUDGET: f64 = 1000.0;
const INPUT: &str = "sum by (pipeline) (label_replace(scrape_samples_scraped{job=~\"lg.+\"}, \"pipeline\", \"$1\", \"job\", \"(.+)\"))";
const OUTPUT: &str = "count by (pipeline) (loadgen_series)";

fn env_duration(name: &str, default: &str) -> Duration {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    humantime::parse_duration(&text).unwrap_or_else(|e| panic!("{name}={text}: {e}"))
}

/// The sum of every sample of `name` (any labels) in an exposition.
fn total(m: &str, name: &str) -> f64 {
    m.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Counters of one run, read from the daemon's `/metrics`.
#[derive(Clone, Copy, Default)]
struct Counts {
    switches: f64,
    applies: f64,
    reloads: f64,
}

impl Counts {
    fn read(url: &str) -> Counts {
        let (_, m) = get(&format!("{url}/metrics")).expect("the daemon's /metrics");
        Counts {
            switches: total(&m, "phoenix_decisions_total"),
            applies: total(&m, "phoenix_applies_total"),
            reloads: total(&m, "phoenix_reloads_total"),
        }
    }
}

/// One run: `pipelines` flapping pipelines for `duration` with the actuator's
/// `coalesce` and `min_reload_interval`; the counters over the measured part.
fn run(pipelines: usize, duration: Duration, flap: Duration, coalesce: &str, min: &str) -> Counts {
    let dir = tempfile::tempdir().expect("temporary directory");
    let low = (BUDGET * 0.5) as u64;
    let high = (BUDGET * 2.0) as u64;
    // Enough steps to outlast the run and its warm-up; pipeline i is i seconds late, so
    // the engines cross on different ticks as pipelines of one collector do in practice.
    let steps = (duration + Duration::from_secs(120)).as_secs() / flap.as_secs().max(1) + 2;
    let loadgens: Vec<Loadgen> = (0..pipelines)
        .map(|i| {
            let mut schedule = format!("0s={low}");
            for k in 1..steps {
                let at = k * flap.as_secs() + i as u64;
                let level = if k % 2 == 1 { high } else { low };
                write!(schedule, ",{at}s={level}").unwrap();
            }
            Loadgen::start(&[
                "--mode",
                "series",
                "--pipeline",
                &format!("lg{i}"),
                "--schedule",
                &schedule,
            ])
        })
        .collect();
    let mut base = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 15s\n\nscrape_configs:\n",
    );
    let mut jobs = String::new();
    for (i, l) in loadgens.iter().enumerate() {
        writeln!(
            base,
            "  - job_name: lg{i}\n    static_configs:\n      - targets: ['{}']",
            l.addr
        )
        .unwrap();
        write!(jobs, "{}lg{i}: [lg{i}]", if i == 0 { "" } else { ", " }).unwrap();
    }
    let base_path = dir.path().join("base.yml");
    std::fs::write(&base_path, &base).unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &base).unwrap();
    let prom = Prometheus::start_collector(&config_path);
    wait_until(
        "Prometheus to scrape every loadgen",
        Duration::from_secs(60),
        || {
            let v = query(&prom.url, "count(loadgen_level)")?;
            (v.first().map(|s| s.1) == Some(pipelines as f64))
                .then_some(())
                .ok_or_else(|| format!("{v:?}"))
        },
    );
    std::fs::write(
        dir.path().join("policy.yaml"),
        common::fast_policy(INPUT, OUTPUT),
    )
    .unwrap();
    let text = format!(
        "prometheus:\n  url: {url}\n  timeout: 2s\nsampling:\n  interval: 2s\npolicy: {policy}\npipelines:\n  default_budget: {BUDGET}\nstate_dir: {state}\ncollectors:\n  - name: prom\n    backend: prometheus\n    pipelines: [\"*\"]\n    coalesce: {coalesce}\n    min_reload_interval: {min}\n    prometheus:\n      base_config: {base}\n      config_path: {config}\n      jobs: {{ {jobs} }}\n      reload: {{ url: {url}/-/reload, retry_for: 60s }}\n      verify: {{ url: {url}, timeout: 10s }}\n      promtool: auto\n",
        url = prom.url,
        policy = dir.path().join("policy.yaml").display(),
        state = dir.path().join("state").display(),
        base = base_path.display(),
        config = config_path.display(),
    );
    let config = dir.path().join("phoenix.yaml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, &dir.path().join("phoenix.log"));
    wait_until("/readyz", Duration::from_secs(60), || {
        match get(&format!("{}/readyz", daemon.url)) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}; log:\n{}", daemon.log())),
        }
    });
    let before = Counts::read(&daemon.url);
    let started = Instant::now();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1).min(duration - started.elapsed()));
    }
    let after = Counts::read(&daemon.url);
    Counts {
        switches: after.switches - before.switches,
        applies: after.applies - before.applies,
        reloads: after.reloads - before.reloads,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let pipelines: usize = std::env::var("PHOENIX_BENCH_PIPELINES")
        .ok()
        .map(|v| v.parse().expect("PHOENIX_BENCH_PIPELINES: a number"))
        .unwrap_or(4);
    let duration = env_duration("PHOENIX_BENCH_DURATION", "3m");
    let flap = env_duration("PHOENIX_BENCH_FLAP", "20s");
    println!(
        "{pipelines} pipelines flapping 0.5x <-> 2x budget every {}, one Prometheus collector, measured for {}",
        humantime::format_duration(flap),
        humantime::format_duration(duration)
    );
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>13} {:>17}",
        "actuator", "switches", "applies", "reloads", "reloads/hour", "switches/reload"
    );
    let hours = duration.as_secs_f64() / 3600.0;
    for (name, coalesce, min) in [
        ("no coalescing (0s, 0s)", "0s", "0s"),
        ("coalesce 2s, min interval 10s", "2s", "10s"),
    ] {
        let c = run(pipelines, duration, flap, coalesce, min);
        println!(
            "{name:<34} {:>9} {:>8} {:>8} {:>13.0} {:>17.2}",
            c.switches,
            c.applies,
            c.reloads,
            c.reloads / hours,
            c.switches / c.reloads.max(1.0)
        );
    }
}
