//! The closed loop against a real Prometheus acting as the collector (`prometheus`
//! backend): Prometheus scrapes `phoenix loadgen --mode series`, and Phoenix queries that
//! same Prometheus for its signals and rewrites, reloads and verifies that same
//! Prometheus' config. One Prometheus is both, as in production where the collector's
//! own series are what is billed: input = samples scraped before relabelling
//! (`scrape_samples_scraped`), output = the live `loadgen_series` that survive the rules.
//! Fails, never skips, when `prometheus` or `promtool` is missing.
//!
//! Also the fault tests: a fragment Prometheus refuses at reload (rolled back), a
//! fragment promtool refuses (never written), Prometheus down during an apply (retried
//! with backoff, never torn), a config directory that cannot be written, and SIGKILL of
//! the daemon during applies.

mod common;

use common::{
    CollectorLoop, Daemon, Loadgen, LoopDaemon, Prometheus, get, metric, put_json, query,
    unloadable_aggressive, wait_until,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BUDGET: f64 = 1000.0;
const TOKEN: &str = "test-token-0123456789abcdef";

/// Input: what Prometheus scraped from loadgen before any relabelling, per pipeline.
const INPUT: &str = "sum by (pipeline) (label_replace(scrape_samples_scraped{job=\"loadgen\"}, \"pipeline\", \"checkout\", \"job\", \"loadgen\"))";
/// Output: the series that survived the rules.
const OUTPUT: &str = "count by (pipeline) (loadgen_series)";

/// `promtool check config FILE` passes.
fn promtool_ok(path: &Path) -> Result<(), String> {
    let out = std::process::Command::new(common::promtool())
        .args(["check", "config"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The default policy with the loop's signals and short durations, `edit` applied last.
fn policy(edit: impl Fn(String) -> String) -> String {
    edit(common::fast_policy(INPUT, OUTPUT))
}

struct Loop {
    dir: tempfile::TempDir,
    loadgen: Loadgen,
    prom: Prometheus,
    daemon: Option<Daemon>,
    /// The file Prometheus reads and Phoenix writes.
    config_path: PathBuf,
    /// The daemon config.
    daemon_config: PathBuf,
}

/// Options of a loop.
struct Opts {
    /// Starting level (series).
    level: u64,
    /// `promtool:` of the collector.
    promtool: &'static str,
    /// Coalescing window.
    coalesce: &'static str,
    /// Policy edit.
    edit: fn(String) -> String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            level: (BUDGET * 0.5) as u64,
            promtool: "auto",
            coalesce: "0s",
            edit: |s| s,
        }
    }
}

impl Loop {
    fn start(o: Opts) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let collector = CollectorLoop::start(dir.path(), o.level);
        std::fs::write(dir.path().join("policy.yaml"), policy(o.edit)).unwrap();
        let daemon_config = collector.daemon_config(
            dir.path(),
            &LoopDaemon {
                budget: BUDGET,
                token: TOKEN,
                coalesce: o.coalesce,
                promtool: o.promtool,
                query_timeout: "2s",
                extra: "",
            },
        );
        let CollectorLoop {
            loadgen,
            prom,
            config: config_path,
            ..
        } = collector;
        let mut l = Loop {
            dir,
            loadgen,
            prom,
            daemon: None,
            config_path,
            daemon_config,
        };
        l.start_daemon();
        l
    }

    fn start_daemon(&mut self) {
        let log = self.dir.path().join("phoenix.log");
        // Append the earlier runs' logs, so a failure shows the whole story.
        if let Some(d) = &self.daemon {
            let old = d.log();
            let mut all = std::fs::read_to_string(self.dir.path().join("phoenix.all.log"))
                .unwrap_or_default();
            all.push_str(&old);
            std::fs::write(self.dir.path().join("phoenix.all.log"), all).unwrap();
        }
        self.daemon = None;
        self.daemon = Some(Daemon::start(&self.daemon_config, &log));
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("a daemon")
    }

    fn url(&self) -> String {
        self.daemon().url.clone()
    }

    fn wait_ready(&self) {
        let url = self.url();
        wait_until("/readyz", Duration::from_secs(30), || {
            match get(&format!("{url}/readyz")) {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}; log:\n{}", self.daemon().log())),
            }
        });
    }

    fn metrics(&self) -> String {
        get(&format!("{}/metrics", self.url())).unwrap().1
    }

    fn set_level(&self, level: u64) {
        let (code, body) = put_json(
            &format!("{}/api/v1/level", self.loadgen.url),
            &serde_json::json!({ "pipeline": null, "level": level }),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    }

    /// The profile the rendered file on disk claims for checkout (`None`: not rendered).
    fn on_disk(&self) -> Option<String> {
        rendered_profile(&std::fs::read_to_string(&self.config_path).ok()?)
    }

    /// The profile the status API reports in force for checkout.
    fn in_force(&self) -> Result<String, String> {
        common::in_force(&self.url(), "checkout")
    }

    /// Pins checkout to `profile` for `ttl` through the override API.
    fn pin(&self, profile: &str, ttl: &str) {
        common::pin(&self.url(), TOKEN, "checkout", profile, ttl);
    }

    /// The scrape job as Prometheus has it loaded now.
    fn loaded_job(&self) -> Result<String, String> {
        let (_, body) = get(&format!("{}/api/v1/status/config", self.prom.url))?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        Ok(v["data"]["yaml"].as_str().unwrap_or_default().to_string())
    }

    fn live_series(&self) -> Result<f64, String> {
        let v = query(&self.prom.url, "count(loadgen_series{job=\"loadgen\"})")?;
        v.first().map(|x| x.1).ok_or_else(|| format!("{v:?}"))
    }
}

/// The profile of checkout a rendered config's state line claims.
fn rendered_profile(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("# phoenix-state: "))?;
    let v: serde_json::Value = serde_json::from_str(&line["# phoenix-state: ".len()..]).ok()?;
    v["pipelines"]["checkout"].as_str().map(str::to_string)
}

/// Every apply report in the journal, as `(profile index, outcome kind)`.
fn journal_applies(dir: &Path) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let Ok(lines) = phoenix::journal::read(&f) else {
            continue;
        };
        for line in lines {
            if let phoenix::journal::Line::Step(s) = line {
                for a in s.a {
                    let kind = match a.outcome {
                        phoenix::core::ApplyOutcome::Applied => "applied",
                        phoenix::core::ApplyOutcome::Failed { .. } => "failed",
                        phoenix::core::ApplyOutcome::RolledBack { .. } => "rolled_back",
                    };
                    out.push((a.profile, kind.to_string()));
                }
            }
        }
    }
    out
}

fn counter(m: &str, prefix: &str) -> f64 {
    metric(m, prefix).unwrap_or(0.0)
}

#[test]
fn the_loop_escalates_on_prometheus_and_relaxes_when_the_load_falls() {
    let test_started = Instant::now();
    let mut l = Loop::start(Opts::default());
    l.wait_ready();
    assert_eq!(l.in_force().unwrap(), "conservative");
    // The collector ran its hand-written config: the first profile was rendered and
    // loaded before the daemon was ready, so "conservative in force" is true.
    assert_eq!(l.on_disk().as_deref(), Some("conservative"));
    assert!(l.loaded_job().unwrap().contains("hashmod"));
    let base_text = std::fs::read_to_string(&l.config_path).unwrap();

    // 0.5× → 2× the budget.
    l.set_level((BUDGET * 2.0) as u64);
    let crossed = wait_until(
        "Prometheus to show the crossing",
        Duration::from_secs(30),
        || {
            let v = query(&l.prom.url, INPUT)?;
            v.first()
                .filter(|x| x.1 > BUDGET * 1.9)
                .map(|_| Instant::now())
                .ok_or_else(|| format!("{v:?}"))
        },
    );
    // The rendered config on disk changes...
    let (profile, on_disk_after) = wait_until(
        "the rendered config on disk to change",
        Duration::from_secs(30),
        || match l.on_disk() {
            Some(p) if p != "conservative" => Ok((p, crossed.elapsed())),
            other => Err(format!("{other:?}; log:\n{}", l.daemon().log())),
        },
    );
    // ...Prometheus has it loaded (its API serves the hashmod sampling)...
    let loaded_after = wait_until(
        "Prometheus to serve the rendered rules",
        Duration::from_secs(30),
        || {
            let y = l.loaded_job()?;
            (y.contains("hashmod") && y.contains("__tmp_phoenix"))
                .then(|| crossed.elapsed())
                .ok_or(y)
        },
    );
    eprintln!(
        "crossing → {profile} on disk: {on_disk_after:?}; → loaded in Prometheus: {loaded_after:?} (sampling interval 2s)"
    );
    // ...and the job's live series fall under the budget.
    let fell = wait_until(
        "the live series under budget",
        Duration::from_secs(60),
        || match l.live_series() {
            Ok(n) if n < BUDGET => Ok(n),
            other => Err(format!(
                "{other:?}; on disk {:?}; log:\n{}",
                l.on_disk(),
                l.daemon().log()
            )),
        },
    );
    let top = l.on_disk().unwrap();
    eprintln!("live series {fell} under budget {BUDGET} on {top}");
    assert_ne!(std::fs::read_to_string(&l.config_path).unwrap(), base_text);
    promtool_ok(&l.config_path).unwrap();

    // The decision, the apply and the verification, in /metrics...
    let m = l.metrics();
    assert!(
        counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"applied\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        counter(
            &m,
            "phoenix_reloads_total{collector=\"prom\",outcome=\"ok\"}"
        ) >= 1.0
    );
    assert!(counter(&m, "phoenix_config_generation{collector=\"prom\"}") >= 1.0);
    assert!(
        counter(
            &m,
            "phoenix_last_apply_success_timestamp_seconds{collector=\"prom\"}"
        ) > 0.0
    );
    assert!(
        counter(
            &m,
            "phoenix_apply_duration_seconds_count{collector=\"prom\"}"
        ) >= 1.0
    );
    assert!(
        m.lines()
            .any(|x| x.starts_with("phoenix_decisions_total{")
                && x.contains("from=\"conservative\"")),
        "{m}"
    );
    let apply_sum = counter(&m, "phoenix_apply_duration_seconds_sum{collector=\"prom\"}");
    let apply_count = counter(
        &m,
        "phoenix_apply_duration_seconds_count{collector=\"prom\"}",
    );
    eprintln!(
        "apply (render → verified) mean {:.3}s over {apply_count} applies",
        apply_sum / apply_count
    );
    // ...the status API...
    wait_until(
        "the status API to show it in force",
        Duration::from_secs(10),
        || {
            let f = l.in_force()?;
            (f == top).then_some(()).ok_or(f)
        },
    );
    // ...and the log.
    assert!(
        l.daemon()
            .log()
            .contains("Applied collector config (verified in force).")
    );

    // The load falls back: after the dwell the profile relaxes and the series come back.
    l.set_level((BUDGET * 0.5) as u64);
    wait_until(
        "the profile to relax to conservative",
        Duration::from_secs(90),
        || match l.on_disk() {
            Some(p) if p == "conservative" => Ok(()),
            other => Err(format!(
                "{other:?}; log tail:\n{}",
                tail(&l.daemon().log(), 15)
            )),
        },
    );
    wait_until("the series to come back", Duration::from_secs(30), || {
        let y = l.loaded_job()?;
        let n = l.live_series()?;
        // Conservative keeps 90% of the ids; balanced would keep 60%.
        (n > BUDGET * 0.5 * 0.8 && y.contains("hashmod"))
            .then_some(())
            .ok_or(format!("{n} live; loaded: {y}"))
    });
    let decisions = get(&format!("{}/api/v1/decisions?pipeline=checkout", l.url()))
        .unwrap()
        .1;
    assert!(decisions.contains("relaxed"), "{decisions}");
    // The engine has taken the apply's report (it reaches the journal with that step).
    wait_until("conservative in force", Duration::from_secs(20), || {
        let f = l.in_force()?;
        (f == "conservative").then_some(()).ok_or(f)
    });

    // The journal has the applies and replays with parity.
    let status = l.daemon.as_mut().unwrap().signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status}");
    let journal = l.dir.path().join("state/journal");
    let applies = journal_applies(&journal);
    assert!(
        applies.iter().filter(|(_, k)| k == "applied").count() >= 2,
        "{applies:?}"
    );
    common::assert_journal_replays(&journal);
    eprintln!("test took {:?}", test_started.elapsed());
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

fn prom_reload_ok(l: &Loop) -> Result<(), String> {
    let (_, body) = get(&format!("{}/metrics", l.prom.url))?;
    (metric(&body, "prometheus_config_last_reload_successful ") == Some(1.0)
        || body
            .lines()
            .any(|x| x == "prometheus_config_last_reload_successful 1"))
    .then_some(())
    .ok_or_else(|| "prometheus_config_last_reload_successful is not 1".to_string())
}

/// Temporary files left in a directory (a torn or abandoned write).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_fragment_prometheus_refuses_at_reload_is_rolled_back() {
    // promtool off: it would refuse the config before it is written (next test); here
    // the reload itself must fail and be undone.
    let mut l = Loop::start(Opts {
        promtool: "off",
        edit: unloadable_aggressive,
        ..Opts::default()
    });
    l.wait_ready();
    let base_text = std::fs::read_to_string(&l.config_path).unwrap();
    l.set_level((BUDGET * 2.0) as u64);
    let m = wait_until("a rollback", Duration::from_secs(60), || {
        let m = l.metrics();
        (counter(&m, "phoenix_rollbacks_total{collector=\"prom\"}") >= 1.0
            && counter(
                &m,
                "phoenix_applies_total{collector=\"prom\",outcome=\"rolled_back\"}",
            ) >= 1.0)
            .then_some(m)
            .ok_or_else(|| tail(&l.daemon().log(), 10))
    });
    assert!(
        counter(
            &m,
            "phoenix_reloads_total{collector=\"prom\",outcome=\"failed\"}"
        ) >= 1.0,
        "{m}"
    );
    // The last good config is back on disk and loaded.
    assert_eq!(std::fs::read_to_string(&l.config_path).unwrap(), base_text);
    wait_until(
        "Prometheus to run the last good config",
        Duration::from_secs(20),
        || prom_reload_ok(&l),
    );
    promtool_ok(&l.config_path).unwrap();
    // The engine knows the old profile is in force, and the daemon keeps serving.
    let url = l.url();
    let sentence = wait_until(
        "the engine to take the rollback",
        Duration::from_secs(20),
        || {
            let (_, d) = get(&format!("{url}/api/v1/decisions?pipeline=checkout"))?;
            let v: serde_json::Value = serde_json::from_str(&d).map_err(|e| e.to_string())?;
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .filter_map(|e| e["sentence"].as_str())
                        .find(|s| {
                            s.starts_with("apply of aggressive rolled back, conservative in force")
                        })
                        .map(str::to_string)
                })
                .ok_or(d)
        },
    );
    assert!(
        sentence.contains("prometheus_config_last_reload_successful is 0")
            || sentence.contains("reload via"),
        "{sentence}"
    );
    eprintln!("decision log: {sentence}");
    assert_eq!(l.in_force().unwrap(), "conservative");
    assert_eq!(get(&format!("{}/healthz", l.url())).unwrap().0, 200);
    let log = l.daemon().log();
    assert!(
        log.contains("Apply rolled back to the last good config."),
        "{log}"
    );
    assert!(log.contains("rolled back to the last good config"), "{log}");
    let status = l.daemon.as_mut().unwrap().signal_and_wait(libc::SIGTERM);
    assert!(status.success());
    let applies = journal_applies(&l.dir.path().join("state/journal"));
    assert!(
        applies.iter().any(|(p, k)| *p == 2 && k == "rolled_back"),
        "{applies:?}"
    );
}

#[test]
fn a_fragment_promtool_refuses_is_never_written() {
    let l = Loop::start(Opts {
        edit: unloadable_aggressive,
        ..Opts::default()
    });
    l.wait_ready();
    let base_text = std::fs::read_to_string(&l.config_path).unwrap();
    // The first profile was rendered at start (one reload); nothing else may be.
    let reloads = counter(
        &l.metrics(),
        "phoenix_reloads_total{collector=\"prom\",outcome=\"ok\"}",
    );
    l.set_level((BUDGET * 2.0) as u64);
    let m = wait_until("a failed apply", Duration::from_secs(60), || {
        let m = l.metrics();
        (counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"failed\"}",
        ) >= 1.0)
            .then_some(m)
            .ok_or_else(|| tail(&l.daemon().log(), 10))
    });
    assert_eq!(
        counter(&m, "phoenix_rollbacks_total{collector=\"prom\"}"),
        0.0,
        "{m}"
    );
    assert_eq!(
        counter(
            &m,
            "phoenix_reloads_total{collector=\"prom\",outcome=\"ok\"}"
        ),
        reloads
    );
    assert_eq!(std::fs::read_to_string(&l.config_path).unwrap(), base_text);
    assert!(leftovers(l.config_path.parent().unwrap()).is_empty());
    assert_eq!(l.in_force().unwrap(), "conservative");
    let log = l.daemon().log();
    assert!(
        log.contains("promtool check refused the rendered config"),
        "{log}"
    );
}

#[test]
fn prometheus_down_during_an_apply_is_retried_and_never_torn() {
    // A coalescing window gives the test time to take Prometheus down between the
    // decision and the write.
    let mut l = Loop::start(Opts {
        coalesce: "3s",
        ..Opts::default()
    });
    l.wait_ready();
    let base_text = std::fs::read_to_string(&l.config_path).unwrap();
    l.pin("aggressive", "10m");
    l.prom.kill();
    wait_until("a retry with backoff", Duration::from_secs(30), || {
        let log = l.daemon().log();
        (log.matches("Collector unreachable; the apply is retried")
            .count()
            >= 2)
            .then_some(())
            .ok_or_else(|| tail(&log, 10))
    });
    // Nothing was written while Prometheus was away.
    assert_eq!(std::fs::read_to_string(&l.config_path).unwrap(), base_text);
    assert!(leftovers(l.config_path.parent().unwrap()).is_empty());
    assert_eq!(get(&format!("{}/healthz", l.url())).unwrap().0, 200);
    l.prom.restart();
    wait_until(
        "the apply once Prometheus is back",
        Duration::from_secs(60),
        || match (l.on_disk(), l.in_force()) {
            (Some(p), Ok(f)) if p == "aggressive" && f == "aggressive" => Ok(()),
            other => Err(format!("{other:?}; log:\n{}", tail(&l.daemon().log(), 10))),
        },
    );
    let y = l.loaded_job().unwrap();
    assert!(y.contains("hashmod"), "{y}");
    promtool_ok(&l.config_path).unwrap();
    let m = l.metrics();
    assert!(
        counter(
            &m,
            "phoenix_reloads_total{collector=\"prom\",outcome=\"unreachable\"}"
        ) >= 2.0,
        "{m}"
    );
    assert!(
        counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"applied\"}"
        ) >= 1.0
    );
}

#[test]
fn a_config_path_that_cannot_be_written_fails_counted_and_retries() {
    let l = Loop::start(Opts::default());
    l.wait_ready();
    let reloads = counter(
        &l.metrics(),
        "phoenix_reloads_total{collector=\"prom\",outcome=\"ok\"}",
    );
    let dir = l.config_path.parent().unwrap().to_path_buf();
    let moved = dir.with_extension("moved");
    // Root ignores permission bits: a file where the directory was blocks every write.
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::write(&dir, "not a directory\n").unwrap();
    l.pin("aggressive", "10m");
    let m = wait_until("failed applies, retried", Duration::from_secs(30), || {
        let m = l.metrics();
        (counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"failed\"}",
        ) >= 2.0)
            .then_some(m)
            .ok_or_else(|| tail(&l.daemon().log(), 10))
    });
    assert_eq!(
        counter(
            &m,
            "phoenix_reloads_total{collector=\"prom\",outcome=\"ok\"}"
        ),
        reloads,
        "{m}"
    );
    assert_eq!(l.in_force().unwrap(), "conservative");
    assert!(
        l.daemon().log().contains("not a directory")
            || l.daemon().log().contains("Not a directory")
    );
    // Put the directory back: the next retry goes through, and nothing partial is left.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&moved, &dir).unwrap();
    wait_until(
        "the apply after the fix",
        Duration::from_secs(30),
        || match (l.on_disk(), l.in_force()) {
            (Some(p), Ok(f)) if p == "aggressive" && f == "aggressive" => Ok(()),
            other => Err(format!("{other:?}; log:\n{}", tail(&l.daemon().log(), 10))),
        },
    );
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    promtool_ok(&l.config_path).unwrap();
}

/// How many SIGKILLs: the issue asks for 50; `PHOENIX_KILL_LOOPS` may lower it locally.
fn kill_loops() -> usize {
    std::env::var("PHOENIX_KILL_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[test]
fn sigkill_during_applies_leaves_the_old_or_the_new_config_and_no_extra_switch() {
    let started = Instant::now();
    // Every loop switches: the policy's switch budget (9 an hour) would block most.
    let mut l = Loop::start(Opts {
        edit: |t| {
            let t2 = t.replace("max_switches: 12", "max_switches: 1000");
            assert_ne!(t, t2, "policies/default.yaml changed");
            t2
        },
        ..Opts::default()
    });
    let good = phoenix_last_good(&l.config_path);
    let ladder = ["aggressive", "balanced", "conservative"];
    let mut applied_before_kill = 0;
    let loops = kill_loops();
    for i in 0..loops {
        // What was verified in force when the last daemon died: the restart must report
        // it (or, if the restarted engine already re-applied its persisted decision,
        // that decision), and must not decide anything by itself.
        let verified = state_profile(&good);
        let persisted_decision = if i == 0 {
            None
        } else {
            Some(ladder[(i - 1) % 3])
        };
        l.wait_ready();
        let f = l.in_force().unwrap();
        assert!(
            f == verified || Some(f.as_str()) == persisted_decision,
            "loop {i}: in force {f}, last good {verified}, decided {persisted_decision:?}"
        );
        let m = l.metrics();
        assert!(
            !m.lines().any(|x| x.starts_with("phoenix_decisions_total{")),
            "loop {i}: a restart decided a switch by itself:\n{m}"
        );
        let old = l.on_disk().unwrap_or_else(|| "conservative".to_string());
        let want = ladder[i % 3];
        l.pin(want, "1h");
        // Kill at different points: right away, once the new file is on disk (before or
        // during verification), and once it is verified.
        match i % 3 {
            0 => {}
            1 => wait_until("the new file on disk", Duration::from_secs(20), || {
                let p = l.on_disk();
                (p.as_deref() == Some(want) || old == want)
                    .then_some(())
                    .ok_or(format!("{p:?}; log:\n{}", tail(&l.daemon().log(), 30)))
            }),
            _ => {
                wait_until("the apply verified", Duration::from_secs(20), || {
                    let f = l.in_force()?;
                    (f == want).then_some(()).ok_or(f)
                });
                applied_before_kill += 1;
            }
        }
        l.daemon.as_mut().unwrap().signal_and_wait(libc::SIGKILL);
        // Always the old or the new version, whole, and Prometheus' checker agrees.
        let now = l.on_disk().unwrap_or_else(|| "conservative".to_string());
        assert!(
            now == old || now == want,
            "loop {i}: on disk {now}, old {old}, new {want}"
        );
        promtool_ok(&l.config_path).unwrap_or_else(|e| panic!("loop {i}: {e}"));
        l.start_daemon();
    }
    l.wait_ready();
    assert!(leftovers(l.config_path.parent().unwrap()).is_empty());
    eprintln!(
        "{loops} SIGKILLs ({applied_before_kill} after a verified apply) in {:?}",
        started.elapsed()
    );
}

/// `<config>.last-good`.
fn phoenix_last_good(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".last-good");
    PathBuf::from(s)
}

/// The checkout profile a rendered file claims; the first profile for a file Phoenix did
/// not render (or none yet).
fn state_profile(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| rendered_profile(&t))
        .unwrap_or_else(|| "conservative".to_string())
}

/// `metric_relabel_configs` rules of each profile of the default policy on the loadgen
/// job, as Prometheus lists them (`action:` lines): conservative 1 drop + 3 sampling
/// rules, balanced 2 + 3 + labeldrop, aggressive 3 + 3 + labeldrop.
fn rules_of(profile: &str) -> usize {
    match profile {
        "conservative" => 4,
        "balanced" => 6,
        _ => 7,
    }
}

#[test]
fn apply_latency_decision_to_verified_is_measured() {
    // Measured, not asserted (wall-clock times depend on the machine): the daemon's own
    // histogram (render → promtool → write → reload → verified) and, coarser, the time
    // from the override's answer until Prometheus serves the new rules (100 ms polls).
    let l = Loop::start(Opts {
        edit: |t| t.replace("max_switches: 12", "max_switches: 1000"),
        ..Opts::default()
    });
    l.wait_ready();
    let ladder = ["aggressive", "balanced", "conservative"];
    let mut seen = Vec::new();
    for i in 0..21 {
        let want = ladder[i % 3];
        let asked = Instant::now();
        l.pin(want, "1h");
        let took = wait_until("the pinned profile loaded", Duration::from_secs(20), || {
            let y = l.loaded_job()?;
            let n = y.matches("action: ").count();
            (n == rules_of(want) && l.on_disk().as_deref() == Some(want))
                .then(|| asked.elapsed())
                .ok_or(format!("{n} rules loaded, want {want}"))
        });
        seen.push(took);
    }
    seen.sort();
    let m = l.metrics();
    let q = |quantile: &str| {
        metric(
            &m,
            &format!(
                "phoenix_apply_duration_seconds{{collector=\"prom\",quantile=\"{quantile}\"}}"
            ),
        )
    };
    eprintln!(
        "apply latency over {} applies: daemon histogram (decision's apply → verified) median {:?}s p99 {:?}s; override answer → served by Prometheus median {:?} max {:?}",
        counter(
            &m,
            "phoenix_apply_duration_seconds_count{collector=\"prom\"}"
        ),
        q("0.5"),
        q("0.99"),
        seen[seen.len() / 2],
        seen[seen.len() - 1]
    );
    assert!(
        counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"applied\"}"
        ) >= 21.0
    );
}

#[test]
fn a_policy_reload_that_changes_fragments_is_rendered_and_applied() {
    let l = Loop::start(Opts::default());
    l.wait_ready();
    let marker = "phoenix_reload_marker_.+";
    assert!(!l.loaded_job().unwrap().contains("phoenix_reload_marker_"));
    let before = counter(
        &l.metrics(),
        "phoenix_applies_total{collector=\"prom\",outcome=\"applied\"}",
    );
    // The same profiles, with conservative's fragment changed: a reload only.
    let text = policy(|s| s).replacen(
        "drop_metrics: ['.+_debug_.+']",
        &format!("drop_metrics: ['.+_debug_.+', '{marker}']"),
        1,
    );
    assert!(text.contains(marker), "policies/default.yaml changed");
    std::fs::write(l.dir.path().join("policy.yaml"), text).unwrap();
    wait_until(
        "Prometheus to run the reloaded fragment",
        Duration::from_secs(30),
        || {
            let job = l.loaded_job()?;
            job.contains("phoenix_reload_marker_")
                .then_some(())
                .ok_or_else(|| tail(&l.daemon().log(), 8))
        },
    );
    let on_disk = std::fs::read_to_string(&l.config_path).unwrap();
    assert!(on_disk.contains("phoenix_reload_marker_"), "{on_disk}");
    promtool_ok(&l.config_path).unwrap();
    let m = l.metrics();
    assert_eq!(
        metric(&m, "phoenix_policy_reload_success"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        counter(
            &m,
            "phoenix_applies_total{collector=\"prom\",outcome=\"applied\"}"
        ),
        before + 1.0,
        "{m}"
    );
    assert_eq!(l.in_force().unwrap(), "conservative");
    assert!(
        l.daemon()
            .log()
            .contains("Applied the reloaded policy's fragments (verified in force)."),
        "{}",
        l.daemon().log()
    );
}
