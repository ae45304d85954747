//! The daemon against real components: Debian's Prometheus scraping `phoenix loadgen`
//! every second, and `phoenix run` querying that Prometheus with the `file` actuator,
//! whose control file loadgen obeys (output = input × the named profile's retention).
//! Fails, never skips, when `prometheus` is missing (CI installs it). Nothing mocks the
//! Prometheus HTTP API.
//!
//! One scenario per test, each bounded in time: the load steps from 0.5× to 2× the
//! budget and the daemon must escalate (seen in /metrics, the status API, the decision log
//! and the journal, which replays with zero divergences); the override API's answers;
//! SIGTERM ends the daemon with exit 0 and its state on disk.

mod common;

use common::{Daemon, Loadgen, Prometheus, get, metric, put_json, query, request, wait_until};
use std::time::{Duration, Instant};

const BUDGET: f64 = 100_000.0;
const TOKEN: &str = "test-token-0123456789abcdef";

struct Setup {
    dir: tempfile::TempDir,
    prom: Prometheus,
    loadgen: Loadgen,
    daemon: Daemon,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let (loadgen, prom) = common::loadgen_and_prometheus(50_000, &control);
    let cfg = common::daemon_config(
        dir.path(),
        &prom.url,
        &control,
        BUDGET,
        &format!("http:\n  listen: 127.0.0.1:0\n  admin_token: {TOKEN}\n"),
    );
    let daemon = Daemon::start(&cfg, &dir.path().join("phoenix.log"));
    Setup {
        dir,
        prom,
        loadgen,
        daemon,
    }
}

#[test]
fn the_daemon_escalates_when_the_load_crosses_the_budget() {
    let mut s = setup();
    let url = s.daemon.url.clone();
    // Ready once the first sample is in and the actuator knows what is in force.
    wait_until("/readyz", Duration::from_secs(30), || {
        match get(&format!("{url}/readyz")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let (_, m) = get(&format!("{url}/metrics")).unwrap();
    assert_eq!(
        metric(&m, "phoenix_profile_in_force{pipeline=\"checkout\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "phoenix_source_state{query=\"input\",state=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&m, "phoenix_safe_hold"), Some(0.0));

    // 0.5× → 2× the budget.
    let (code, _) = put_json(
        &format!("{}/api/v1/level", s.loadgen.url),
        &serde_json::json!({ "pipeline": null, "level": 200000 }),
    )
    .unwrap();
    assert_eq!(code, 200);
    let crossed = wait_until(
        "Prometheus to show the crossing",
        Duration::from_secs(30),
        || {
            let v = query(&s.prom.url, "loadgen_input_series")?;
            (v.first().map(|x| x.1) == Some(200_000.0))
                .then(Instant::now)
                .ok_or_else(|| format!("{v:?}"))
        },
    );
    let decision = wait_until(
        "an escalation in the decision log",
        Duration::from_secs(30),
        || {
            let (_, body) = get(&format!("{url}/api/v1/decisions?pipeline=checkout"))?;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|e| e["kind"] == "switched")
                        .and_then(|e| e["sentence"].as_str().map(str::to_string))
                })
                .ok_or(body)
        },
    );
    // Within two sampling intervals (2 s) of Prometheus showing it, plus the polling of
    // this test (0.1 s) and one scrape.
    let lag = crossed.elapsed();
    assert!(
        decision.starts_with("escalated conservative→"),
        "{decision}"
    );
    assert!(decision.contains("budget 100k"), "{decision}");
    assert!(
        lag < Duration::from_secs(6),
        "decided {lag:?} after the crossing"
    );
    // The same decision in /metrics and the status API.
    let (_, m) = get(&format!("{url}/metrics")).unwrap();
    assert!(
        m.lines().any(|l| l.starts_with("phoenix_decisions_total{")
            && l.contains("pipeline=\"checkout\"")
            && l.contains("from=\"conservative\"")),
        "{m}"
    );
    let (_, st) = get(&format!("{url}/api/v1/status")).unwrap();
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let p = &st["pipelines"][0];
    assert_eq!(p["pipeline"], "checkout");
    assert!(
        p["last_decision"]["sentence"]
            .as_str()
            .unwrap()
            .starts_with("escalated"),
        "{p}"
    );
    // The collector (loadgen, through the control file) follows: output falls under the
    // budget, as Prometheus sees it.
    wait_until(
        "output under budget in Prometheus",
        Duration::from_secs(30),
        || {
            let v = query(&s.prom.url, "loadgen_output_series")?;
            v.first()
                .filter(|x| x.1 < BUDGET)
                .map(|_| ())
                .ok_or_else(|| format!("{v:?}"))
        },
    );

    // SIGTERM: exit 0, state and journal on disk, the journal replays with parity.
    let status = s.daemon.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status}; log:\n{}", s.daemon.log());
    assert!(s.dir.path().join("state/engines.json").exists());
    common::assert_journal_replays(&s.dir.path().join("state/journal"));
}

#[test]
fn the_override_api_checks_its_token_and_its_arguments() {
    let s = setup();
    let url = format!("{}/api/v1/override", s.daemon.url);
    wait_until(
        "the pipeline to be tracked",
        Duration::from_secs(30),
        || {
            let (_, body) = get(&format!("{}/api/v1/status", s.daemon.url))?;
            body.contains("\"checkout\"").then_some(()).ok_or(body)
        },
    );
    let body = |profile: &str, pipeline: &str| {
        Some(
            serde_json::json!({ "pipeline": pipeline, "profile": profile, "ttl": "2s", "reason": "test" })
                .to_string(),
        )
    };
    let auth = format!("Bearer {TOKEN}");
    let (code, _) = request("POST", &url, &[], body("aggressive", "checkout")).unwrap();
    assert_eq!(code, 401, "no token");
    let (code, _) = request(
        "POST",
        &url,
        &[("Authorization", "Bearer wrong-token-0000000000")],
        body("aggressive", "checkout"),
    )
    .unwrap();
    assert_eq!(code, 401, "wrong token");
    let (code, text) = request(
        "POST",
        &url,
        &[("Authorization", &auth)],
        body("nope", "checkout"),
    )
    .unwrap();
    assert_eq!(code, 404, "{text}");
    assert!(
        text.contains("unknown profile `nope`") && text.contains("\"field\":\"profile\""),
        "{text}"
    );
    let (code, text) = request(
        "POST",
        &url,
        &[("Authorization", &auth)],
        body("aggressive", "ghost"),
    )
    .unwrap();
    assert_eq!(code, 404, "{text}");
    let (code, text) = request(
        "POST",
        &url,
        &[("Authorization", &auth)],
        Some("x".repeat(100_000)),
    )
    .unwrap();
    assert_eq!(code, 413, "{text}");
    let (code, text) = request(
        "POST",
        &url,
        &[("Authorization", &auth)],
        Some(r#"{"pipeline":"checkout","profile":"aggressive","ttl":"soon"}"#.to_string()),
    )
    .unwrap();
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("\"field\":\"ttl\""), "{text}");
    // The right token pins by name, then the pin lapses at its TTL.
    let (code, text) = request(
        "POST",
        &url,
        &[("Authorization", &auth)],
        body("aggressive", "checkout"),
    )
    .unwrap();
    assert_eq!(code, 200, "{text}");
    wait_until("the pin in force", Duration::from_secs(20), || {
        let (_, st) = get(&format!("{}/api/v1/status", s.daemon.url))?;
        st.contains("\"in_force\":\"aggressive\"")
            .then_some(())
            .ok_or(st)
    });
    wait_until("the pin to lapse", Duration::from_secs(20), || {
        let (_, log) = get(&format!(
            "{}/api/v1/decisions?pipeline=checkout",
            s.daemon.url
        ))?;
        log.contains("override of aggressive expired")
            .then_some(())
            .ok_or(log)
    });
    let (code, _) = request(
        "DELETE",
        &format!("{url}/checkout"),
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(code, 200);
}
