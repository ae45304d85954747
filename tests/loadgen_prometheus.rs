//! `phoenix loadgen` against a real Prometheus (Debian's package, started on a free
//! loopback port): what loadgen exports is what Prometheus stores, level changes through
//! the API and the control file show up within a few scrapes, and series mode's series
//! count is what Prometheus sees (`count`, `scrape_samples_scraped`) — the quantities the
//! daemon will read. Also loadgen on its own: the HTTP API, schedules and traces over
//! time, errors as one line, SIGTERM, and the cost of a 100k-series scrape.
//!
//! Everything waits with [`common::wait_until`]: a bounded deadline, polled.

mod common;

use common::{Loadgen, Prometheus, by_label, get, get_with_type, put_json, wait_until};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a change may take to travel loadgen → scrape (1 s) → query. Generous: the
/// machine may be busy compiling; a healthy run takes 1–3 s.
const THROUGH_PROMETHEUS: Duration = Duration::from_secs(30);

/// `pipeline -> value` for each name, from the test's literals.
fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

/// Waits until `promql`, keyed by its `pipeline` label, is exactly `want`.
fn wait_for_pipelines(prom: &Prometheus, promql: &str, want: &BTreeMap<String, f64>) {
    wait_until(&format!("{promql} = {want:?}"), THROUGH_PROMETHEUS, || {
        let got = by_label(&prom.query(promql)?, "pipeline");
        if &got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

/// Waits until `promql` is one sample equal to `want`.
fn wait_for_value(prom: &Prometheus, promql: &str, want: f64) {
    wait_until(
        &format!("{promql} = {want}"),
        THROUGH_PROMETHEUS,
        || match prom.query(promql)?.as_slice() {
            [(_, v)] if *v == want => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// `PUT /api/v1/level` that must succeed.
fn set_level(loadgen: &Loadgen, pipeline: Option<&str>, level: u64) {
    let (status, body) = put_json(
        &format!("{}/api/v1/level", loadgen.url),
        &json!({ "pipeline": pipeline, "level": level }),
    )
    .expect("PUT /api/v1/level");
    assert_eq!(status, 200, "{body}");
}

/// Replaces the control file the way the daemon's actuator does: write aside, rename.
fn write_control(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).expect("write control file");
    std::fs::rename(&aside, path).expect("rename control file");
}

#[test]
fn signals_reach_prometheus_and_follow_level_changes() {
    let loadgen = Loadgen::start(&["--pipelines", "3", "--level", "48000"]);
    let prom = Prometheus::start(&[("loadgen", &loadgen.addr)]);

    let all = |v: f64| expect(&[("p0000", v), ("p0001", v), ("p0002", v)]);
    wait_for_pipelines(
        &prom,
        r#"loadgen_input_series{job="loadgen"}"#,
        &all(48000.0),
    );
    // No control file: every pipeline on the first profile (conservative, 0.9).
    wait_for_pipelines(
        &prom,
        r#"loadgen_output_series{job="loadgen"}"#,
        &all(43200.0),
    );

    set_level(&loadgen, Some("p0001"), 200_000);
    wait_for_pipelines(
        &prom,
        r#"loadgen_input_series{job="loadgen"}"#,
        &expect(&[("p0000", 48000.0), ("p0001", 200_000.0), ("p0002", 48000.0)]),
    );
    wait_for_pipelines(
        &prom,
        r#"loadgen_output_series{job="loadgen"}"#,
        &expect(&[("p0000", 43200.0), ("p0001", 180_000.0), ("p0002", 43200.0)]),
    );

    set_level(&loadgen, None, 1000);
    wait_for_pipelines(
        &prom,
        r#"loadgen_input_series{job="loadgen"}"#,
        &all(1000.0),
    );
}

#[test]
fn output_obeys_the_control_file() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.yaml");
    let control_arg = control.to_str().unwrap();
    let loadgen = Loadgen::start(&[
        "--pipelines",
        "3",
        "--level",
        "50000",
        "--control-file",
        control_arg,
    ]);
    let prom = Prometheus::start(&[("loadgen", &loadgen.addr)]);
    let output = r#"loadgen_output_series{job="loadgen"}"#;

    // The file does not exist yet: the first profile.
    wait_for_pipelines(
        &prom,
        output,
        &expect(&[("p0000", 45000.0), ("p0001", 45000.0), ("p0002", 45000.0)]),
    );

    write_control(
        &control,
        "{ generation: 1, pipelines: { p0001: balanced } }\n",
    );
    wait_for_pipelines(
        &prom,
        output,
        &expect(&[("p0000", 45000.0), ("p0001", 30000.0), ("p0002", 45000.0)]),
    );
    wait_for_value(&prom, r#"loadgen_control_generation{job="loadgen"}"#, 1.0);

    // JSON works as well, and a level change applies the retention in force.
    write_control(
        &control,
        r#"{"generation": 2, "pipelines": {"p0001": "aggressive", "p0002": "balanced"}}"#,
    );
    set_level(&loadgen, Some("p0002"), 80_000);
    wait_for_pipelines(
        &prom,
        output,
        &expect(&[("p0000", 45000.0), ("p0001", 17500.0), ("p0002", 48000.0)]),
    );
    wait_for_value(&prom, r#"loadgen_control_generation{job="loadgen"}"#, 2.0);

    // A file that does not parse: the first profile, logged once however many scrapes.
    write_control(&control, "pipelines: [p0001\n");
    wait_for_pipelines(
        &prom,
        output,
        &expect(&[("p0000", 45000.0), ("p0001", 45000.0), ("p0002", 72000.0)]),
    );
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/metrics", loadgen.url)).unwrap().0, 200);
    }
    let stderr = loadgen.stderr();
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("control file") && l.contains("using the first profile"))
        .collect::<Vec<_>>();
    // Once for "does not exist yet", once for the unparsable version.
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(warnings[1].contains(control_arg), "{stderr}");
}

#[test]
fn series_mode_series_are_what_prometheus_counts() {
    let loadgen = Loadgen::start(&["--mode", "series", "--pipelines", "2", "--level", "2000"]);
    let prom = Prometheus::start(&[("loadgen_series", &loadgen.addr)]);

    let count = r#"count by (pipeline) (loadgen_series{job="loadgen_series"})"#;
    wait_for_pipelines(
        &prom,
        count,
        &expect(&[("p0000", 2000.0), ("p0001", 2000.0)]),
    );
    wait_for_pipelines(
        &prom,
        r#"loadgen_level{job="loadgen_series"}"#,
        &expect(&[("p0000", 2000.0), ("p0001", 2000.0)]),
    );
    // Every series plus one loadgen_level line per pipeline.
    wait_for_value(
        &prom,
        r#"scrape_samples_scraped{job="loadgen_series"}"#,
        4002.0,
    );

    // Fewer series: the ones gone are marked stale at the next scrape, so count drops.
    set_level(&loadgen, Some("p0000"), 500);
    wait_for_pipelines(
        &prom,
        count,
        &expect(&[("p0000", 500.0), ("p0001", 2000.0)]),
    );
    wait_for_value(
        &prom,
        r#"scrape_samples_scraped{job="loadgen_series"}"#,
        2502.0,
    );
}

#[test]
fn the_http_api_sets_and_reports_levels() {
    let loadgen = Loadgen::start(&["--pipeline", "web", "--pipeline", "db", "--level", "10"]);
    let url = |path: &str| format!("{}{path}", loadgen.url);

    assert_eq!(get(&url("/healthz")).unwrap(), (200, "ok\n".to_string()));
    let (status, content_type, body) = get_with_type(&url("/metrics")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        body.contains("loadgen_input_series{pipeline=\"web\"} 10\n"),
        "{body}"
    );
    assert!(
        body.contains("loadgen_output_series{pipeline=\"db\"} 9\n"),
        "{body}"
    );

    let levels = |body: &str| -> serde_json::Value { serde_json::from_str(body).unwrap() };
    let (status, body) = get(&url("/api/v1/level")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(levels(&body), json!({"levels": {"web": 10, "db": 10}}));

    let put = |body: serde_json::Value| put_json(&url("/api/v1/level"), &body).unwrap();
    let (status, body) = put(json!({"pipeline": "db", "level": 200000}));
    assert_eq!(
        (status, levels(&body)),
        (200, json!({"levels": {"web": 10, "db": 200000}}))
    );
    let (status, body) = put(json!({"pipeline": null, "level": 5}));
    assert_eq!(
        (status, levels(&body)),
        (200, json!({"levels": {"web": 5, "db": 5}}))
    );

    // Refusals: the status and one line saying what to send.
    for (body, want_status, want) in [
        (
            json!({"pipeline": "cache", "level": 1}),
            404,
            "unknown pipeline \"cache\"",
        ),
        (
            json!({"pipeline": "db", "level": -1}),
            400,
            "send JSON like",
        ),
        (
            json!({"pipeline": "db", "level": 2.5}),
            400,
            "send JSON like",
        ),
        (json!({"pipeline": "db"}), 400, "missing field `level`"),
        (
            json!({"pipeline": "db", "level": 1, "lvl": 2}),
            400,
            "unknown field `lvl`",
        ),
        (json!({"level": 2000000000u64}), 400, "at most 1000000000"),
    ] {
        let (status, text) = put(body.clone());
        assert_eq!(status, want_status, "{body} -> {text}");
        let error = levels(&text)["error"].as_str().unwrap().to_string();
        assert!(error.contains(want), "{body} -> {error}");
        assert!(!error.contains('\n'), "{error}");
    }
    let (_, body) = get(&url("/api/v1/level")).unwrap();
    assert_eq!(levels(&body), json!({"levels": {"web": 5, "db": 5}}));
}

/// The current level of loadgen's only pipeline, from its API.
fn only_level(loadgen: &Loadgen) -> Result<u64, String> {
    let (status, body) = get(&format!("{}/api/v1/level", loadgen.url))?;
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    json["levels"]["p0000"]
        .as_u64()
        .ok_or_else(|| format!("HTTP {status}: {body}"))
}

#[test]
fn schedules_and_traces_drive_the_level_over_time() {
    let scheduled = Loadgen::start(&["--schedule", "0s=100,5s=300"]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    // A minute between rows, replayed at 60×: a row per second.
    std::fs::write(&trace, "timestamp,value\n0,10\n60,20\n120,30\n").unwrap();
    let traced = Loadgen::start(&["--trace", trace.to_str().unwrap(), "--speed", "60"]);

    assert_eq!(only_level(&scheduled), Ok(100));
    let mut seen = Vec::new();
    wait_until(
        "the trace to reach its last row",
        THROUGH_PROMETHEUS,
        || {
            let level = only_level(&traced)?;
            if seen.last() != Some(&level) {
                seen.push(level);
            }
            if level == 30 {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    );
    assert!(
        seen.is_sorted() && seen.iter().all(|l| [10, 20, 30].contains(l)),
        "{seen:?}"
    );
    wait_until(
        "the schedule's second step",
        THROUGH_PROMETHEUS,
        || match only_level(&scheduled)? {
            300 => Ok(()),
            other => Err(other.to_string()),
        },
    );
}

#[test]
fn sigterm_ends_loadgen_with_exit_code_0() {
    let mut loadgen = Loadgen::start(&[]);
    assert_eq!(get(&format!("{}/healthz", loadgen.url)).unwrap().0, 200);
    let status = loadgen.terminate();
    assert_eq!(status.code(), Some(0), "{}", loadgen.stderr());
    assert!(
        loadgen.stderr().contains("Shutting down."),
        "{}",
        loadgen.stderr()
    );
}

#[test]
fn a_scrape_of_100k_series_is_complete_and_quick() {
    let loadgen = Loadgen::start(&["--mode", "series", "--level", "100000"]);
    let url = format!("{}/metrics", loadgen.url);
    let mut fastest = Duration::MAX;
    let mut body = String::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (status, text) = get(&url).unwrap();
        fastest = fastest.min(start.elapsed());
        assert_eq!(status, 200);
        body = text;
    }
    let series = body
        .lines()
        .filter(|l| l.starts_with("loadgen_series{"))
        .count();
    assert_eq!(series, 100_000);
    assert!(body.contains("loadgen_series{pipeline=\"p0000\",id=\"99999\"} 1\n"));
    assert!(body.contains("loadgen_level{pipeline=\"p0000\"} 100000\n"));
    eprintln!("scrape of 100k series: {fastest:?}, {} bytes", body.len());
    // Only a tripwire for a pathological slowdown (a debug build takes well under 1 s).
    assert!(fastest < Duration::from_secs(10), "{fastest:?}");
}

/// Runs `phoenix loadgen ARGS` to completion (each case here fails at once).
fn run_loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .arg("loadgen")
        .args(args)
        .output()
        .expect("run phoenix loadgen");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn user_errors_are_one_line_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let bad_trace = dir.path().join("bad.csv");
    std::fs::write(&bad_trace, "timestamp,value\n0,5\n60,-1\n").unwrap();
    let bad_trace = bad_trace.to_str().unwrap().to_string();
    for (args, code, want) in [
        (
            vec!["--listen", taken.as_str()],
            1,
            format!("phoenix: --listen {taken}: cannot listen: "),
        ),
        (
            vec!["--trace", "/nonexistent/trace.csv"],
            1,
            "phoenix: --trace: cannot read /nonexistent/trace.csv: ".to_string(),
        ),
        (
            vec!["--trace", bad_trace.as_str()],
            1,
            format!(
                "phoenix: --trace: {bad_trace}: column \"value\", data row 2: -1: a series count cannot be negative"
            ),
        ),
        (
            vec!["--mode", "series", "--control-file", "c.yaml"],
            1,
            "phoenix: --control-file is read only with --mode signals".to_string(),
        ),
    ] {
        let (got, stdout, stderr) = run_loadgen(&args);
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(&want), "{args:?}: {stderr}");
    }
    // Usage errors are clap's (exit 2), naming the flag and the bad part.
    let (got, _, stderr) = run_loadgen(&["--schedule", "0s=100,2m=lots"]);
    assert_eq!(got, Some(2), "{stderr}");
    assert!(stderr.contains("--schedule"), "{stderr}");
    assert!(stderr.contains("step \"2m=lots\""), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
