//! Every query of the Grafana dashboard finds data on a real Prometheus (rules loaded)
//! that scraped a running daemon through a scenario with a switch, a rollback, a blocked
//! switch and an anomaly (issue 11, acceptance 3).
//!
//! The loop is the one of tests/closed_loop_prometheus.rs: `phoenix loadgen --mode
//! series` scraped by a collector Prometheus whose config the daemon rewrites and
//! reloads. A second, "monitoring" Prometheus scrapes the daemon's `/metrics` every
//! second with configs/prometheus/rules/phoenix.rules.yml loaded, as in production.
//! After the scenario each panel target is evaluated as Grafana would (a range query
//! over the scenario, or an instant query for instant targets), and each annotation as a
//! range query; the test fails listing every one that came back empty, and every panel
//! that does not show the event it is there for.
//!
//! Scenario: the load steps from half the budget to twice it (an anomaly on the input,
//! and an escalation to aggressive, whose fragment Prometheus refuses at reload: a
//! rollback); an operator pins balanced (a switch by override, and the ladder's wish for
//! aggressive blocked by the override guard); the collector Prometheus stalls (late
//! ticks, queries failing, holds on error) while the state file cannot be written;
//! loadgen goes away (the pipeline vanishes from the results, holds on empty).
//!
//! Fails, never skips, when `prometheus` or `promtool` is missing.

mod common;

use common::{
    CollectorLoop, DASHBOARD, Daemon, GrafanaVars, LOOP_COLLECTOR, LoopDaemon, Prometheus, RULES,
    Series, get, metric, put_json, query_range, wait_until,
};
use phoenix::core::{Engine, Observation, Timestamp};
use phoenix::policy::ValidatedPolicy;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BUDGET: f64 = 1000.0;
const TOKEN: &str = "test-token-0123456789abcdef";
const PIPELINE: &str = "checkout";
/// Demand as the workload reports it: loadgen's level survives every profile's rules (it
/// has no `id` label and no dropped name), and it goes away with loadgen, so the
/// pipeline can vanish from both signals (scrape_samples_scraped would stay, at 0).
const INPUT: &str = "sum by (pipeline) (loadgen_level)";
/// The series that survived the collector's rules.
const OUTPUT: &str = "count by (pipeline) (loadgen_series)";
/// The policy's anomaly threshold (policies/default.yaml).
const THRESHOLD: f64 = 0.5;
/// How much sample history the saved state carries: the scorer scores nothing until its
/// density window (an hour, in twelve slots) has filled and the history of that window
/// holds two values (src/core/anomaly/score.rs), so 55 minutes at least.
const WARM_HISTORY: Duration = Duration::from_secs(70 * 60);
/// Step of that history (the default policy's tick).
const WARM_STEP: Duration = Duration::from_secs(15);

/// The default policy on the loop's signals with the short durations, anomaly watching
/// on (the fast policy turns it off), the aggressive fragment one Prometheus refuses at
/// reload, and a switch budget the rollback retries cannot use up before the override.
fn policy_text() -> String {
    let fast = common::fast_policy(INPUT, OUTPUT);
    let text = common::unloadable_aggressive(
        fast.replace(
            "  enabled: false\n  # zscore",
            "  enabled: true\n  # zscore",
        )
        .replace("max_switches: 12", "max_switches: 1000"),
    );
    assert!(
        text.contains("  enabled: true\n  # zscore") && text.contains("max_switches: 1000"),
        "policies/default.yaml changed"
    );
    text
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs_f64()
}

/// Deterministic noise, roughly normal (Irwin–Hall of 12 uniforms), from a xorshift.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            sum += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        }
        sum - 6.0
    }
}

/// The engines' state file of a daemon that has watched `checkout` on conservative for
/// [`WARM_HISTORY`] up to a moment ago, at `input` series in (and conservative's 90%
/// out), with 3% noise: so the anomaly detectors are warm when the test starts the
/// daemon on it, as after a restart. The engine is the daemon's own core, stepped on
/// the same policy; only the history's samples are made up.
fn warm_state(policy: &ValidatedPolicy, input: f64) -> Value {
    let cfg = policy.engine_config(PIPELINE, BUDGET, Duration::from_secs(2));
    let mut engine = Engine::new(cfg);
    let end = (unix_now() * 1000.0) as i64 - 1000;
    let steps = (WARM_HISTORY.as_millis() / WARM_STEP.as_millis()) as i64;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for k in 0..=steps {
        let at = Timestamp(end - (steps - k) * WARM_STEP.as_millis() as i64);
        let i = input * (1.0 + 0.03 * noise.next());
        let o = 0.9 * input * (1.0 + 0.03 * noise.next());
        engine.step(at, &Observation::ok(i, o, at).with_in_force(0));
    }
    let state = engine.state();
    assert_eq!(state.decided, "conservative", "the warm history switched");
    assert!(
        state.anomaly.as_ref().is_some_and(|a| a.input.is_some()),
        "no input detector in the warm state"
    );
    // The daemon's StateFile (src/daemon/controller.rs, STATE_FILE_VERSION 1); a daemon
    // that cannot read it says so in its log, which the test checks.
    serde_json::json!({
        "version": 1,
        "policy_sha256": policy.sha256(),
        "pipelines": { PIPELINE: state },
    })
}

/// One query of the dashboard.
struct DashQuery {
    /// Panel or annotation title, for messages.
    title: String,
    /// The expression as written (Grafana variables included).
    expr: String,
    /// An instant target (tables, stats); otherwise a range query over the scenario.
    instant: bool,
    /// An annotation's step in seconds: Grafana runs it as a range query at that step
    /// (`$__interval` = the step) over the range aligned to it.
    annotation_step: Option<f64>,
}

/// Every panel target and every annotation query of the dashboard, checked against the
/// count of `expr` fields anywhere in it, so none is left out.
fn dashboard_queries() -> Vec<DashQuery> {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(ROOT).join(DASHBOARD)).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or("?");
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(DashQuery {
                title: format!("panel {title:?} {}", t["refId"].as_str().unwrap_or("?")),
                expr: t["expr"].as_str().expect("a target expr").to_string(),
                instant: t["instant"] == true,
                annotation_step: None,
            });
        }
    }
    for a in dash["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = a["expr"].as_str() {
            out.push(DashQuery {
                title: format!("annotation {:?}", a["name"].as_str().unwrap_or("?")),
                expr: expr.to_string(),
                instant: false,
                annotation_step: Some(
                    a["step"]
                        .as_str()
                        .map(|t| humantime::parse_duration(t).expect("an annotation step"))
                        .unwrap_or(Duration::from_secs(60))
                        .as_secs_f64(),
                ),
            });
        }
    }
    let mut all = Vec::new();
    common::exprs_in(&dash, String::new(), &mut all);
    assert_eq!(
        out.len(),
        all.len(),
        "exprs outside panel targets and annotations: {all:?}"
    );
    out
}

/// A counter's value in an exposition (0 when absent).
fn counter(body: &str, prefix: &str) -> f64 {
    metric(body, prefix).unwrap_or(0.0)
}

/// The largest value of any point of the series whose labels include `want`.
fn max_where(series: &[Series], want: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .filter(|(l, _)| {
            want.iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .reduce(f64::max)
}

#[test]
fn every_dashboard_query_finds_data_after_a_switch_a_rollback_a_block_and_an_anomaly() {
    let started = Instant::now();
    // The monitoring Prometheus loads the rules as shipped; promtool must accept them.
    let out = std::process::Command::new(common::promtool())
        .args(["check", "rules"])
        .arg(Path::new(ROOT).join(RULES))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let queries = dashboard_queries();

    let dir = tempfile::tempdir().unwrap();
    let level = (BUDGET * 0.5) as u64;
    let collector = CollectorLoop::start(dir.path(), level);
    let text = policy_text();
    std::fs::write(dir.path().join("policy.yaml"), &text).unwrap();
    let policy = ValidatedPolicy::from_str(&text, "policy.yaml").unwrap();
    let config = collector.daemon_config(
        dir.path(),
        &LoopDaemon {
            budget: BUDGET,
            token: TOKEN,
            coalesce: "0s",
            // promtool would refuse the aggressive fragment before it is written; the
            // rollback needs the reload itself to fail.
            promtool: "off",
            // Longer than the 2 s sampling interval: while the collector stalls, a tick
            // comes while the previous one still waits (a late tick).
            query_timeout: "3s",
            // State written every 2 s, so a broken state file shows in seconds.
            extra: "state_snapshot_interval: 2s\n",
        },
    );
    let state_file = dir.path().join("state/engines.json");
    std::fs::create_dir_all(state_file.parent().unwrap()).unwrap();
    std::fs::write(
        &state_file,
        warm_state(&policy, level as f64).to_string() + "\n",
    )
    .unwrap();
    let daemon = Daemon::start(&config, &dir.path().join("phoenix.log"));
    let target = daemon.url.trim_start_matches("http://").to_string();
    let monitoring = Prometheus::start_with_rules(
        &common::static_job("phoenix", &target),
        &[&Path::new(ROOT).join(RULES)],
    );
    let scenario_start = unix_now();
    let url = daemon.url.clone();
    let metrics = || get(&format!("{url}/metrics")).map(|(_, b)| b);
    let log_tail = || {
        let log = daemon.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    wait_until("/readyz", Duration::from_secs(30), || {
        match get(&format!("{url}/readyz")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}; log:\n{}", log_tail())),
        }
    });
    let log = daemon.log();
    assert!(
        log.contains("Restored saved state.") && !log.contains("starting fresh"),
        "the daemon did not take the warm state:\n{log}"
    );
    assert_eq!(common::in_force(&url, PIPELINE).unwrap(), "conservative");
    // A few samples in the monitoring Prometheus before anything happens, so the rates
    // and the forecast have a "before".
    monitoring.wait_for(
        "the monitoring Prometheus to record the reduction ratio",
        "count_over_time(phoenix:reduction_ratio[1m]) >= 3",
    );
    let calm = monitoring
        .query(&format!(
            "max_over_time(phoenix_anomaly_score{{signal=\"input\",pipeline=\"{PIPELINE}\"}}[1m])"
        ))
        .unwrap();
    eprintln!(
        "[{:?}] ready on the warm state; input anomaly score before the step: {calm:?}",
        started.elapsed()
    );

    // 1. The load steps to twice the budget: an anomaly, an escalation, a rollback.
    let (code, body) = put_json(
        &format!("{}/api/v1/level", collector.loadgen.url),
        &serde_json::json!({ "pipeline": null, "level": (BUDGET * 2.0) as u64 }),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let score = wait_until(
        "an input anomaly score at or above the threshold",
        Duration::from_secs(60),
        || {
            let v = monitoring.query(&format!(
                "max_over_time(phoenix_anomaly_score{{signal=\"input\",pipeline=\"{PIPELINE}\"}}[5m]) >= {THRESHOLD}"
            ))?;
            v.first()
                .map(|s| s.1)
                .ok_or_else(|| format!("{v:?}; log:\n{}", log_tail()))
        },
    );
    let collector_label = format!("collector=\"{LOOP_COLLECTOR}\"");
    wait_until("a rollback", Duration::from_secs(60), || {
        let m = metrics()?;
        (counter(&m, &format!("phoenix_rollbacks_total{{{collector_label}}}")) >= 1.0)
            .then_some(())
            .ok_or_else(log_tail)
    });
    let (_, decisions) = get(&format!("{url}/api/v1/decisions?pipeline={PIPELINE}")).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&decisions).unwrap();
    eprintln!(
        "[{:?}] input anomaly score {score:.2}; rollback done; {} decision log entries, the first: {:?}",
        started.elapsed(),
        entries.len(),
        entries.last().map(|e| &e["sentence"])
    );

    // 2. An operator pins balanced: a switch by override, and the ladder, which wants
    // aggressive, blocked by the override guard at every step.
    common::pin(&url, TOKEN, PIPELINE, "balanced", "10m");
    wait_until("balanced in force", Duration::from_secs(30), || {
        let f = common::in_force(&url, PIPELINE)?;
        (f == "balanced").then_some(()).ok_or(f)
    });
    let blocked =
        format!("phoenix_switches_blocked_total{{pipeline=\"{PIPELINE}\",guard=\"override\"}}");
    wait_until(
        "switches blocked by the override",
        Duration::from_secs(30),
        || {
            let m = metrics()?;
            (counter(&m, &blocked) >= 3.0)
                .then_some(())
                .ok_or_else(log_tail)
        },
    );
    eprintln!(
        "[{:?}] pinned balanced, switches blocked",
        started.elapsed()
    );

    // 3. The state file cannot be replaced (a directory stands in its way) while the
    // collector Prometheus stalls: failed state writes, late ticks, holds on error.
    std::fs::remove_file(&state_file).unwrap();
    std::fs::create_dir_all(state_file.join("in-the-way")).unwrap();
    let mut collector = collector;
    collector.prom.pause(true);
    let stalled = wait_until(
        "late ticks, holds on error and failed state writes",
        Duration::from_secs(30),
        || {
            let m = metrics()?;
            let late = counter(&m, "phoenix_ticks_late_total");
            let failed = counter(&m, "phoenix_state_writes_total{outcome=\"failed\"}");
            let held = m
                .lines()
                .any(|l| l.starts_with("phoenix_holds_total{") && l.contains("reason=\"error\""));
            (late >= 2.0 && failed >= 2.0 && held)
                .then_some(m.clone())
                .ok_or(format!(
                    "late {late}, failed writes {failed}, held on error {held}"
                ))
        },
    );
    collector.prom.pause(false);
    std::fs::remove_dir_all(&state_file).unwrap();
    let writes_ok = counter(&stalled, "phoenix_state_writes_total{outcome=\"ok\"}");
    wait_until("state writes again", Duration::from_secs(30), || {
        let m = metrics()?;
        (counter(&m, "phoenix_state_writes_total{outcome=\"ok\"}") > writes_ok
            && state_file.is_file())
        .then_some(())
        .ok_or_else(log_tail)
    });
    wait_until("Prometheus answers again", Duration::from_secs(30), || {
        let m = metrics()?;
        (metric(&m, "phoenix_source_state{query=\"input\",state=\"ok\"}") == Some(1.0))
            .then_some(())
            .ok_or_else(log_tail)
    });
    eprintln!("[{:?}] stall and state-file fault over", started.elapsed());

    // 4. Loadgen goes away: the pipeline vanishes from both signals, holds on empty.
    let CollectorLoop { loadgen, prom, .. } = collector;
    drop(loadgen);
    wait_until("the pipeline to vanish", Duration::from_secs(30), || {
        let m = metrics()?;
        let vanished = counter(
            &m,
            &format!("phoenix_pipelines_vanished_total{{pipeline=\"{PIPELINE}\"}}"),
        );
        let held = m
            .lines()
            .filter(|l| l.starts_with("phoenix_holds_total{") && l.contains("reason=\"empty\""))
            .count();
        (vanished >= 1.0 && held >= 1)
            .then_some(())
            .ok_or(format!("vanished {vanished}, holds on empty {held}"))
    });
    // The monitoring Prometheus has scraped the end of the story: a few samples of the
    // counters born last (the rate panels need two in their window).
    monitoring.wait_for(
        "the monitoring Prometheus to see the vanished pipeline",
        "count_over_time(phoenix_pipelines_vanished_total[30s]) >= 3 \
         and on() count_over_time(phoenix_holds_total{reason=\"empty\"}[30s]) >= 3",
    );
    let end = unix_now();
    eprintln!(
        "[{:?}] scenario over; evaluating the dashboard",
        started.elapsed()
    );

    // Grafana's variables for this scenario: the one pipeline (a regex, as Grafana
    // sends a multi-value variable), a rate window of a few scrapes, an interval of a
    // few samples (an annotation's own step), and the whole scenario as the range.
    let range = format!("{}s", (end - scenario_start).ceil() as u64);
    let mut empty = Vec::new();
    let mut wrong = Vec::new();
    let mut results: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for q in &queries {
        let interval = format!("{}s", q.annotation_step.unwrap_or(5.0));
        let vars = GrafanaVars {
            pipeline: PIPELINE,
            rate_interval: "30s",
            interval: &interval,
            range: &range,
        };
        let promql = common::grafana_to_promql(&q.expr, &vars);
        let answer = match (q.instant, q.annotation_step) {
            (true, _) => monitoring.query(&promql).map(|v| {
                v.into_iter()
                    .map(|(l, x)| (l, vec![(end, x)]))
                    .collect::<Vec<Series>>()
            }),
            (false, None) => query_range(&monitoring.url, &promql, scenario_start, end, 1.0),
            // Grafana aligns an annotation query's range to its step.
            (false, Some(step)) => query_range(
                &monitoring.url,
                &promql,
                (scenario_start / step).floor() * step,
                (end / step).ceil() * step,
                step,
            ),
        };
        match answer {
            Ok(s) if s.iter().any(|(_, pts)| !pts.is_empty()) => {
                results.insert(q.title.clone(), s);
            }
            Ok(_) => empty.push(format!("{}: {promql}", q.title)),
            Err(e) => wrong.push(format!("{}: {promql}: {e}", q.title)),
        }
    }

    // Beyond "some data": the panels show the events of the scenario.
    let series = |title: &str| results.get(title).map(Vec::as_slice).unwrap_or(&[]);
    let mut missing = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            missing.push(what.to_string());
        }
    };
    let profiles: BTreeSet<u64> = series("panel \"Profile in force per pipeline\" A")
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1 as u64))
        .collect();
    expect(
        "the state timeline shows conservative (0) and balanced (1)",
        profiles.contains(&0) && profiles.contains(&1),
    );
    expect(
        "the anomaly panel reaches the threshold on the input",
        max_where(
            series("panel \"Anomaly score per signal\" A"),
            &[("signal", "input")],
        )
        .is_some_and(|m| m >= THRESHOLD),
    );
    expect(
        "the blocked-switches panel shows the override guard",
        max_where(
            series("panel \"Switches blocked by guard\" A"),
            &[("guard", "override")],
        )
        .is_some_and(|m| m > 0.0),
    );
    expect(
        "the rollbacks panel shows the rollback",
        max_where(series("panel \"Rollbacks\" A"), &[]).is_some_and(|m| m > 0.0),
    );
    expect(
        "the rollback annotation marks the rollback",
        !series("annotation \"Rollbacks\"").is_empty(),
    );
    for reason in ["error", "empty"] {
        expect(
            &format!("the holds panel shows holds on {reason}"),
            max_where(
                series("panel \"Holds on bad input\" A"),
                &[("reason", reason)],
            )
            .is_some(),
        );
    }
    // Every switch decided is marked by the switches annotation, the first of its kind
    // too (its counter series is born at 1).
    let decided = monitoring
        .query(&format!(
            "phoenix_decisions_total{{pipeline=\"{PIPELINE}\"}}"
        ))
        .unwrap();
    expect("switches were decided", !decided.is_empty());
    let marked = series("annotation \"Profile switches\"");
    for (labels, _) in &decided {
        let key = |l: &BTreeMap<String, String>| {
            ["from", "to", "reason"].map(|k| l.get(k).cloned().unwrap_or_default())
        };
        expect(
            &format!("the switches annotation marks {:?}", key(labels)),
            marked.iter().any(|(l, _)| key(l) == key(labels)),
        );
    }

    drop(prom);
    eprintln!(
        "{} dashboard queries evaluated over {range}; test took {:?}",
        queries.len(),
        started.elapsed()
    );
    assert!(
        empty.is_empty() && wrong.is_empty() && missing.is_empty(),
        "dashboard queries with no data after the scenario:\n  {}\nrefused:\n  {}\npanels not showing the scenario:\n  {}\ndaemon log tail:\n{}",
        empty.join("\n  "),
        wrong.join("\n  "),
        missing.join("\n  "),
        log_tail()
    );
}
