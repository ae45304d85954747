//! Faults the daemon must ride out while serving and losing nothing, against the same
//! real components as tests/daemon_prometheus.rs (Debian's Prometheus scraping
//! `phoenix loadgen`): Prometheus killed mid-run (profile held, source state `error`,
//! back to `ok` within two intervals of its restart), a query returning no series (Empty,
//! never read as zero, no relaxation), and an invalid policy written over the live one
//! (old policy kept, `phoenix_policy_reload_success 0`), then a valid one swapped in.

mod common;

use common::{Daemon, get, metric, wait_until};
use std::path::Path;
use std::time::Duration;

fn start(dir: &Path, prom: &str, control: &Path) -> Daemon {
    let cfg = common::daemon_config(dir, prom, control, 100_000.0, "");
    Daemon::start(&cfg, &dir.join("phoenix.log"))
}

fn source_state(url: &str) -> Result<String, String> {
    let (_, st) = get(&format!("{url}/api/v1/status"))?;
    let v: serde_json::Value = serde_json::from_str(&st).map_err(|e| e.to_string())?;
    Ok(v["sources"]["input"].as_str().unwrap_or("").to_string())
}

#[test]
fn faults_are_held_through_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let (loadgen, mut prom) = common::loadgen_and_prometheus(250_000, &control);
    let d = start(dir.path(), &prom.url, &control);
    // 2.5× the budget: the daemon ends on aggressive.
    wait_until("aggressive in force", Duration::from_secs(40), || {
        let (_, st) = get(&format!("{}/api/v1/status", d.url))?;
        st.contains("\"in_force\":\"aggressive\"")
            .then_some(())
            .ok_or(st)
    });

    // Prometheus dies: the engines hold (the profile stays), the source says error, and
    // /metrics keeps serving.
    prom.kill();
    wait_until("source state error", Duration::from_secs(20), || {
        let s = source_state(&d.url)?;
        (s == "error").then_some(()).ok_or(s)
    });
    let (code, m) = get(&format!("{}/metrics", d.url)).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        metric(&m, "phoenix_source_state{query=\"input\",state=\"error\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "phoenix_profile_in_force{pipeline=\"checkout\"}"),
        Some(2.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "phoenix_holds_total{pipeline=\"checkout\",signal=\"input\",reason=\"error\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    // It comes back within two intervals (4 s) of Prometheus being ready again, plus a
    // scrape and this test's polling.
    prom.restart();
    wait_until(
        "source state ok after the restart",
        Duration::from_secs(8),
        || {
            let s = source_state(&d.url)?;
            (s == "ok").then_some(()).ok_or(s)
        },
    );

    // A policy whose input query returns no series: Empty, never zero, no relaxation.
    // Load drops to almost nothing at the same time: were Empty read as zero, the engine
    // would relax.
    let (code, _) = common::put_json(
        &format!("{}/api/v1/level", loadgen.url),
        &serde_json::json!({ "pipeline": null, "level": 1000 }),
    )
    .unwrap();
    assert_eq!(code, 200);
    std::fs::write(
        dir.path().join("policy.yaml"),
        common::loadgen_policy("sum by (pipeline) (loadgen_no_such_metric)"),
    )
    .unwrap();
    wait_until("source state empty", Duration::from_secs(20), || {
        let s = source_state(&d.url)?;
        (s == "empty").then_some(()).ok_or(s)
    });
    // Three steps held on Empty (counted, not slept for): still aggressive, no relaxation.
    wait_until(
        "three steps held on empty input",
        Duration::from_secs(30),
        || {
            let (_, m) = get(&format!("{}/metrics", d.url))?;
            let n = metric(
                &m,
                "phoenix_holds_total{pipeline=\"checkout\",signal=\"input\",reason=\"empty\"}",
            )
            .unwrap_or(0.0);
            (n >= 3.0).then_some(()).ok_or_else(|| format!("{n} held"))
        },
    );
    let (_, st) = get(&format!("{}/api/v1/status", d.url)).unwrap();
    assert!(st.contains("\"decided\":\"aggressive\""), "{st}");
    let (_, log) = get(&format!("{}/api/v1/decisions?pipeline=checkout", d.url)).unwrap();
    assert!(!log.contains("relaxed"), "{log}");

    // An invalid policy over the live one: rejected, the old one stays, reload-success 0.
    std::fs::write(
        dir.path().join("policy.yaml"),
        "name: broken\nprofiles: []\n",
    )
    .unwrap();
    wait_until("the reload to be rejected", Duration::from_secs(20), || {
        let (_, m) = get(&format!("{}/metrics", d.url))?;
        (metric(&m, "phoenix_policy_reload_success") == Some(0.0))
            .then_some(())
            .ok_or_else(|| format!("{:?}", metric(&m, "phoenix_policy_reload_success")))
    });
    assert!(
        d.log()
            .contains("Policy rejected; the previous policy stays in force."),
        "{}",
        d.log()
    );
    let (code, _) = get(&format!("{}/healthz", d.url)).unwrap();
    assert_eq!(code, 200);
    // A valid one again: swapped in, the engine restored by name, samples flow.
    std::fs::write(
        dir.path().join("policy.yaml"),
        common::loadgen_policy(common::LOADGEN_INPUT),
    )
    .unwrap();
    wait_until("the reload to succeed", Duration::from_secs(20), || {
        let (_, m) = get(&format!("{}/metrics", d.url))?;
        (metric(&m, "phoenix_policy_reload_success") == Some(1.0))
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });
    wait_until("source state ok", Duration::from_secs(20), || {
        let s = source_state(&d.url)?;
        (s == "ok").then_some(()).ok_or(s)
    });
}
