//! The supervision tree under failure, against the same real components as
//! tests/daemon_prometheus.rs (Debian's Prometheus scraping `phoenix loadgen`): an actor
//! that panics is restarted and counted and the daemon goes on deciding; an actor that
//! keeps failing past the restart intensity puts the daemon in safe hold, still serving;
//! and `phoenix run` killed with SIGKILL twenty times in a row restores its state each
//! time with no extra switch.
//!
//! Panics are injected through the `fail` crate's fail points, which exist only in a
//! `--features failpoints` build (the README's test command builds one); a build without
//! them refuses FAILPOINTS and has no `/debug/failpoints` route, so these tests fail
//! loudly rather than pass without injecting anything.

mod common;

use common::{Daemon, get, metric, request, wait_until};
use std::path::Path;
use std::time::Duration;

const BUDGET: f64 = 100_000.0;

/// Sets fail point `name` to `action` in the running daemon.
fn failpoint(d: &Daemon, name: &str, action: &str) {
    let r = request(
        "PUT",
        &format!("{}/debug/failpoints/{name}", d.url),
        &[],
        Some(action.to_string()),
    );
    assert!(
        matches!(r, Ok((204, _))),
        "setting fail point {name}={action}: {r:?} (is this a `--features failpoints` build?)"
    );
}

fn metrics(d: &Daemon) -> Result<String, String> {
    let (code, m) = get(&format!("{}/metrics", d.url))?;
    (code == 200).then_some(m).ok_or(format!("/metrics {code}"))
}

fn status(d: &Daemon) -> Result<serde_json::Value, String> {
    let (_, st) = get(&format!("{}/api/v1/status", d.url))?;
    serde_json::from_str(&st).map_err(|e| format!("{e}: {st}"))
}

/// The `checkout` pipeline's entry in a status document.
fn checkout(st: &serde_json::Value) -> &serde_json::Value {
    st["pipelines"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pipeline"] == "checkout"))
        .unwrap_or(&serde_json::Value::Null)
}

fn in_force(d: &Daemon, want: &str) -> Result<(), String> {
    let st = status(d)?;
    let got = checkout(&st)["in_force"].as_str().unwrap_or("");
    (got == want).then_some(()).ok_or_else(|| st.to_string())
}

fn wait_ready(d: &Daemon) {
    wait_until("/readyz", Duration::from_secs(30), || {
        match get(&format!("{}/readyz", d.url)) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// Every switch this process decided (all `phoenix_decisions_total` series).
fn decisions(m: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with("phoenix_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start(dir: &Path, prom: &str, control: &Path, extra: &str, log: &str) -> Daemon {
    let cfg = common::daemon_config(dir, prom, control, BUDGET, extra);
    Daemon::start(&cfg, &dir.join(log))
}

#[test]
fn a_panicking_actor_is_restarted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let (loadgen, _prom) = common::loadgen_and_prometheus(50_000, &control);
    let d = start(
        dir.path(),
        &_prom.url,
        &control,
        "supervision:\n  max_restarts: 3\n  window: 1m\n  backoff: 100ms\n",
        "phoenix.log",
    );
    wait_ready(&d);
    // The controller (which holds the engines) panics once, on its next tick.
    failpoint(&d, "controller-tick", "1*panic");
    wait_until("the restart to be counted", Duration::from_secs(20), || {
        let m = metrics(&d)?;
        let n = metric(&m, "phoenix_actor_restarts_total{actor=\"controller\"}");
        (n == Some(1.0)).then_some(()).ok_or(format!("{n:?}"))
    });
    assert!(d.log().contains("Actor failed; restarting."), "{}", d.log());
    // The restarted controller restored its engines from disk and goes on deciding: the
    // load crosses 2.5× the budget and it escalates to aggressive.
    let (code, _) = common::put_json(
        &format!("{}/api/v1/level", loadgen.url),
        &serde_json::json!({ "pipeline": null, "level": 250000 }),
    )
    .unwrap();
    assert_eq!(code, 200);
    wait_until("aggressive in force", Duration::from_secs(60), || {
        in_force(&d, "aggressive")
    });
    let m = metrics(&d).unwrap();
    assert_eq!(metric(&m, "phoenix_safe_hold"), Some(0.0), "{m}");
    assert_eq!(
        metric(&m, "phoenix_actor_restarts_total{actor=\"controller\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(
        d.log().contains("Restored saved state."),
        "the restarted controller did not restore its engines:\n{}",
        d.log()
    );
}

#[test]
fn restart_intensity_exceeded_is_safe_hold_still_serving() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let (_loadgen, prom) = common::loadgen_and_prometheus(250_000, &control);
    let d = start(
        dir.path(),
        &prom.url,
        &control,
        "supervision:\n  max_restarts: 2\n  window: 1m\n  backoff: 100ms\n",
        "phoenix.log",
    );
    wait_until("aggressive in force", Duration::from_secs(60), || {
        in_force(&d, "aggressive")
    });
    let before = std::fs::read_to_string(&control).unwrap();
    // From now on the sampler panics on every tick: two restarts, then safe hold.
    failpoint(&d, "sampler-tick", "panic");
    wait_until("safe hold", Duration::from_secs(30), || {
        let m = metrics(&d)?;
        (metric(&m, "phoenix_safe_hold") == Some(1.0))
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });
    let m = metrics(&d).unwrap();
    assert_eq!(
        metric(&m, "phoenix_actor_restarts_total{actor=\"sampler\"}"),
        Some(2.0),
        "{m}"
    );
    // Still serving, saying why, with every pipeline on its profile.
    let st = status(&d).unwrap();
    assert_eq!(st["safe_hold"], serde_json::json!(true), "{st}");
    let reason = st["safe_hold_reason"].as_str().unwrap_or("");
    assert!(reason.contains("sampler failed 3 times"), "{st}");
    assert_eq!(
        checkout(&st)["in_force"].as_str(),
        Some("aggressive"),
        "{st}"
    );
    assert!(
        d.log().contains("Restart intensity exceeded: safe hold."),
        "{}",
        d.log()
    );
    let (code, _) = get(&format!("{}/healthz", d.url)).unwrap();
    assert_eq!(code, 200);
    assert_eq!(std::fs::read_to_string(&control).unwrap(), before);
}

#[test]
fn sigkill_twenty_times_restores_the_state_with_no_extra_switch() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("collector.yaml");
    let (_loadgen, prom) = common::loadgen_and_prometheus(250_000, &control);
    let mut d = start(dir.path(), &prom.url, &control, "", "phoenix-0.log");
    wait_until("aggressive in force", Duration::from_secs(60), || {
        in_force(&d, "aggressive")
    });
    // Let the engine see the switch in force (two more ticks), then start killing.
    let ticks = |m: &str| metric(m, "phoenix_ticks_total").unwrap_or(0.0);
    let at = ticks(&metrics(&d).unwrap());
    wait_until(
        "two ticks after the switch",
        Duration::from_secs(20),
        || {
            let t = ticks(&metrics(&d)?);
            (t >= at + 2.0).then_some(()).ok_or(format!("{t} ticks"))
        },
    );
    let state = dir.path().join("state/engines.json");
    let in_control = |text: &str| -> serde_yaml_ng::Value {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .unwrap_or_else(|e| panic!("control file does not parse: {e}\n{text}"));
        v["pipelines"].clone()
    };
    let wanted = in_control(&std::fs::read_to_string(&control).unwrap());
    assert_eq!(
        wanted["checkout"].as_str(),
        Some("aggressive"),
        "{wanted:?}"
    );
    for round in 1..=20u32 {
        d.signal_and_wait(libc::SIGKILL);
        // Whatever the moment of the kill, both files are whole.
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap())
                .unwrap_or_else(|e| panic!("round {round}: engines.json is torn: {e}"));
        assert!(
            saved["pipelines"]["checkout"].is_object(),
            "round {round}: {saved}"
        );
        assert_eq!(
            in_control(&std::fs::read_to_string(&control).unwrap()),
            wanted,
            "round {round}"
        );
        d = start(
            dir.path(),
            &prom.url,
            &control,
            "",
            &format!("phoenix-{round}.log"),
        );
        // Kill at a different point of each run: after 1, 2 or 3 ticks of this process.
        let wanted_ticks = f64::from(1 + round % 3);
        let m = wait_until(
            "ticks of the restarted daemon",
            Duration::from_secs(30),
            || {
                let m = metrics(&d)?;
                let t = ticks(&m);
                (t >= wanted_ticks).then_some(m).ok_or(format!("{t} ticks"))
            },
        );
        assert_eq!(decisions(&m), 0.0, "round {round}: a restart switched\n{m}");
        in_force(&d, "aggressive").unwrap_or_else(|st| panic!("round {round}: {st}"));
        assert!(
            d.log().contains("Restored saved state."),
            "round {round}:\n{}",
            d.log()
        );
    }
}
