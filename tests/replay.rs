//! Record/replay parity, end to end: `phoenix simulate --journal` records every step of
//! a policy, `phoenix replay` re-runs the journal through a fresh engine and must find
//! zero divergences; a journal with one tampered observation must report the first
//! divergence at exactly that tick; `--policy` replays under another policy and lists
//! where its switches differ.

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

/// The repository root: the working directory of every command.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn phoenix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("phoenix runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Records `scenario` under the default policy into `dir/j.gz`.
fn record(dir: &Path, scenario: &str) -> std::path::PathBuf {
    let j = dir.join("j.gz");
    let out = phoenix(&[
        "simulate",
        scenario,
        "--no-baselines",
        "--journal",
        j.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("journal: "),
        "the size is reported: {}",
        text(&out.stderr)
    );
    j
}

fn read_lines(path: &Path) -> Vec<String> {
    let mut s = String::new();
    MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s.lines().map(str::to_string).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
}

#[test]
fn a_simulated_journal_replays_with_zero_divergences() {
    for scenario in [
        "simulations/flash-crowd.yaml",
        "simulations/rollout-churn.yaml",
        "simulations/label-leak.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let j = record(dir.path(), scenario);
        let lines = read_lines(&j);
        assert!(lines[0].contains("\"kind\":\"header\""), "{}", lines[0]);
        assert!(lines[1].contains("\"kind\":\"policy\"") && lines[1].contains("\"sha256\""));
        assert!(lines[2].contains("\"kind\":\"pipeline\""));
        let out = phoenix(&["replay", j.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{scenario}: {stdout}{}",
            text(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        assert!(
            stdout.contains("replayed with 0 divergences"),
            "{scenario}: {stdout}"
        );
        // The scenarios switch, so parity covers decisions, not just quiet ticks.
        assert!(!stdout.contains("(0 switches reproduced)"), "{stdout}");
    }
}

#[test]
fn a_tampered_observation_is_the_first_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let j = record(dir.path(), "simulations/flash-crowd.yaml");
    let mut lines = read_lines(&j);
    // Step lines start after the header, policy and pipeline lines; tick 100 of the
    // pipeline is line 3 + 100. An empty input makes the engine hold where it recorded
    // an evaluation, so the events differ at exactly that tick.
    let k = 3 + 100;
    let line = &lines[k];
    let start = line.find("\"i\":").expect("input field") + 4;
    let end = start + line[start..].find(',').unwrap();
    lines[k] = format!("{}\"empty\"{}", &line[..start], &line[end..]);
    let tampered = dir.path().join("t.gz");
    write_lines(&tampered, &lines);
    let out = phoenix(&["replay", tampered.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("divergence at pipeline default, tick 100 (2024-01-01T00:25:00.000Z)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected [") && stdout.contains("got ["),
        "{stdout}"
    );
    assert!(stdout.contains("\"held\""), "the replay held: {stdout}");
}

#[test]
fn another_policy_lists_the_switches_it_would_have_made() {
    let dir = tempfile::tempdir().unwrap();
    let j = record(dir.path(), "simulations/flash-crowd.yaml");
    let out = phoenix(&[
        "replay",
        j.to_str().unwrap(),
        "--policy",
        "policies/cost-first.yaml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("policy cost-first switches"), "{stdout}");
    assert!(stdout.contains("| cost-first: "), "{stdout}");
    // Sentences, not JSON: what an SRE reads.
    assert!(
        stdout.contains("escalated ") || stdout.contains("relaxed "),
        "{stdout}"
    );
    // The same policy as recorded finds no difference.
    let out = phoenix(&[
        "replay",
        j.to_str().unwrap(),
        "--policy",
        "policies/default.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("0 step(s) differ"));
}

#[test]
fn unreadable_journals_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gz");
    let out = phoenix(&["replay", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("missing.gz") && !err.contains("panicked"),
        "{err}"
    );
    // A file that is not a journal.
    let bogus = dir.path().join("bogus.gz");
    std::fs::write(&bogus, "timestamp,value\n1,2\n").unwrap();
    let out = phoenix(&["replay", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bogus.gz:1:"), "{err}");
    // --journal with several traces is refused before anything runs.
    let j = dir.path().join("j.gz");
    let out = phoenix(&[
        "simulate",
        "--trace",
        "simulations/traces/label-leak.csv",
        "simulations/traces/label-leak.csv",
        "--journal",
        j.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--journal records one policy on one trace"));
    assert!(!j.exists());
}
