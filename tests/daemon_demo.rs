//! The README's main job: `phoenix run --config configs/demo.yaml` replays the bundled
//! label-leak trace through the whole daemon (sampler on the replay source, controller,
//! `file` actuator, HTTP) with no external service. It serves `phoenix_` metrics within
//! 10 seconds, logs each decision as it happens, writes the control file, keeps its
//! journal (which replays with zero divergences) and stops on SIGTERM with exit 0; that
//! journal then drives a second daemon (`replay.journal`) to the same escalation.

mod common;

use common::{Daemon, get, wait_until};
use std::time::Duration;

#[test]
fn the_demo_runs_the_whole_daemon_on_bundled_data() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped demo config, with its output moved into the temporary folder.
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/configs/demo.yaml"))
        .unwrap()
        .replace("../simulations/", &format!("{root}/simulations/"))
        .replace("../policies/", &format!("{root}/policies/"))
        .replace("demo-out/", &format!("{}/", dir.path().display()));
    let cfg = dir.path().join("demo.yaml");
    std::fs::write(&cfg, text).unwrap();
    let mut d = Daemon::start(&cfg, &dir.path().join("demo.log"));
    let m = wait_until("phoenix_ metrics", Duration::from_secs(10), || {
        let (code, body) = get(&format!("{}/metrics", d.url))?;
        (code == 200 && body.contains("phoenix_profile_in_force{pipeline=\"demo\"}"))
            .then_some(body.clone())
            .ok_or(body)
    });
    assert!(
        m.contains("phoenix_budget_series{pipeline=\"demo\"} 100000"),
        "{m}"
    );
    // The leak starts about 15 s in; each decision is logged with its sentence.
    wait_until("an escalation in the log", Duration::from_secs(60), || {
        let log = d.log();
        log.lines()
            .any(|l| l.contains("Switched profile.") && l.contains("sentence=escalated"))
            .then_some(())
            .ok_or_else(|| log.lines().rev().take(3).collect::<Vec<_>>().join("\n"))
    });
    wait_until("the control file", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("collector.yaml"))
            .map_err(|e| e.to_string())
            .and_then(|t| t.contains("demo: ").then_some(()).ok_or(t))
    });
    let (_, m) = get(&format!("{}/metrics", d.url)).unwrap();
    assert!(m.contains("phoenix_decisions_total{"), "{m}");
    assert!(
        m.contains("phoenix_applies_total{collector=\"demo\",outcome=\"applied\"}"),
        "{m}"
    );
    let status = d.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status}; log:\n{}", d.log());
    common::assert_journal_replays(&dir.path().join("state/journal"));

    // That journal, replayed through a fresh daemon (its own state and control file):
    // the recorded demand drives the same escalation.
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            &format!("{}/state", dir.path().display()),
            &format!("{}/state", again.display()),
        )
        .replace(
            &format!("trace: {root}/simulations/traces/label-leak.csv"),
            &format!("journal: {}/state/journal", dir.path().display()),
        )
        .replace("speed: 240", "speed: 2400")
        .replace(
            &format!("{}/collector.yaml", dir.path().display()),
            &format!("{}/collector.yaml", again.display()),
        );
    assert!(text.contains("journal: "), "{text}");
    let cfg2 = again.join("demo.yaml");
    std::fs::write(&cfg2, text).unwrap();
    let d2 = Daemon::start(&cfg2, &again.join("demo.log"));
    wait_until(
        "an escalation replayed from the journal",
        Duration::from_secs(30),
        || {
            let log = d2.log();
            log.lines()
                .any(|l| l.contains("Switched profile.") && l.contains("sentence=escalated"))
                .then_some(())
                .ok_or_else(|| log.lines().rev().take(3).collect::<Vec<_>>().join("\n"))
        },
    );
}

#[test]
fn run_check_reports_config_problems_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "policy: nope.yaml\nstate_dir: state\nhttp:\n  listen: not-an-address\ncollectors: []\nsurprise: 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["run", "--check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in ["http.listen", "collectors", "surprise", "nope.yaml"] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    // The shipped demo config checks clean.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["run", "--check", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
