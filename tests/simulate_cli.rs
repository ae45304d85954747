//! End-to-end tests that `phoenix simulate` answers the question asked, or refuses: a
//! policy whose ladder is not the plant's, trace values no series count can have, bad
//! thresholds and scenario files (every problem at once, in plain words), outputs it
//! cannot write; that it shows why (the decision log under the table); that its JSON has
//! one shape; and that the binary works from a folder outside the repository.
//!
//! Each refusal is checked for its exit code, a first line naming the file and where in
//! it, and no output file left behind.

use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, the working directory unless a test says otherwise.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What a finished run left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.show());
        self
    }

    /// A refusal: exit code 1 (a `phoenix:` error) or 2 (a flag clap refused), no panic.
    fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(1 | 2)),
            "expected exit 1 or 2\n{}",
            self.show()
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the binary panicked\n{}",
            self.show()
        );
        assert!(self.stdout.is_empty(), "partial output\n{}", self.show());
        self
    }

    /// The only line of stderr.
    fn one_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line\n{}", self.show());
        lines[0]
    }
}

/// Runs `phoenix ARGS` in `dir`.
fn phoenix_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run the phoenix binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `phoenix ARGS` from the repository root.
fn phoenix<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    phoenix_in(Path::new(ROOT), args)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write test input");
    path
}

/// File names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A NAB-style trace of 15 s rows with these values.
fn trace(values: &[&str]) -> String {
    let mut text = String::from("timestamp,value\n");
    for (i, v) in values.iter().enumerate() {
        text.push_str(&format!("{},{v}\n", 1_704_067_200 + 15 * i));
    }
    text
}

/// `simulate --trace FILE` with tick and plot outputs into `dir`, which must stay as it
/// was: the refusal comes before anything is written.
fn refused_trace(dir: &Path, file: &Path, extra: &[&str]) -> String {
    let before = listing(dir);
    let mut args: Vec<String> = vec!["simulate".into(), "--trace".into()];
    args.push(file.display().to_string());
    args.push("--ticks".into());
    args.push(dir.join("t.csv").display().to_string());
    args.push("--plot".into());
    args.push(dir.join("p.svg").display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = phoenix(&args).failure();
    assert_eq!(listing(dir), before, "output files written\n{}", run.show());
    run.one_line().to_string()
}

// ---------------------------------------------------------------------------------------
// 1. never simulate something other than asked

#[test]
fn a_policy_ladder_that_is_not_the_plants_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let two = write(
        dir.path(),
        "two.yaml",
        "name: two\nprofiles:\n  - { name: keep-all, retention: 1.0 }\n  - { name: drop-most, retention: 0.1 }\n",
    );
    let run = phoenix(&[
        Path::new("simulate"),
        Path::new("simulations/step.yaml"),
        Path::new("--policy"),
        &two,
        Path::new("--ticks"),
        &dir.path().join("t.csv"),
    ])
    .failure();
    let line = run.one_line();
    for part in [
        two.display().to_string().as_str(),
        "[keep-all, drop-most]",
        "[conservative, balanced, aggressive]",
        "simulations/step.yaml plant.retention",
        "plant.retention: { keep-all: 1, drop-most: 0.1 }",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert_eq!(listing(dir.path()), ["two.yaml"]);
}

#[test]
fn retention_names_that_are_not_the_policys_are_refused_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "t.csv", &trace(&["80000"; 20]));
    let line = refused_trace(dir.path(), &f, &["--retention", "x=0.9,y=0.5,z=0.2"]);
    assert!(
        line.starts_with("phoenix: policies/default.yaml (built in): the policy's profiles [conservative, balanced, aggressive] are not the plant's ladder [x, y, z] (--retention)"),
        "{line}"
    );
    assert!(
        line.ends_with("--retention conservative=0.9,balanced=0.6,aggressive=0.35"),
        "{line}"
    );
}

#[test]
fn trace_values_no_series_count_can_have_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (value, says) in [
        ("-50", "-50 is negative, and a series count cannot be"),
        ("1e300", "1e300 is above 1e12"),
        ("inf", "\"inf\" is not a finite number"),
    ] {
        let f = write(
            dir.path(),
            "bad.csv",
            &trace(&["80000", "80000", value, "80000"]),
        );
        let line = refused_trace(dir.path(), &f, &[]);
        let at = format!("{}:4: column \"value\": ", f.display());
        assert!(line.contains(&at), "{value}: {line} should name {at}");
        assert!(line.contains(says), "{value}: {line}");
    }
    // The same rule for a saved Prometheus response.
    let json = write(
        dir.path(),
        "bad.json",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[\n{\"values\":[[1,\"5\"],[2,\"-50\"]]}]}}",
    );
    let line = refused_trace(dir.path(), &json, &[]);
    assert!(
        line.contains(&format!("{}:2:", json.display()))
            && line.contains("sample value \"-50\" is negative"),
        "{line}"
    );
}

#[test]
fn nan_and_empty_cells_are_missing_values_and_negatives_may_be_rescaled() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "gaps.csv",
        &trace(&["80000", "", "NaN", "150000", "80000"]),
    );
    let run = phoenix(&[
        Path::new("simulate"),
        Path::new("--trace"),
        &f,
        Path::new("--ticks"),
        &dir.path().join("t.csv"),
    ])
    .success();
    assert!(run.stdout.contains(": 5 ticks of 15s"), "{}", run.show());
    let ticks = fs::read_to_string(dir.path().join("t.csv")).unwrap();
    assert!(
        ticks.contains("\n1,2024-01-01T00:00:15.000Z,default,,,"),
        "{ticks}"
    );
    assert!(
        ticks.contains("\n2,2024-01-01T00:00:30.000Z,default,,,"),
        "{ticks}"
    );
    // A signal of any sign is a shape once rescaled onto the budget.
    let signal = write(dir.path(), "signal.csv", &trace(&["-20.5", "3", "-1", "7"]));
    phoenix(&[
        Path::new("simulate"),
        Path::new("--trace"),
        &signal,
        Path::new("--rescale"),
        Path::new("0.4:2.2"),
    ])
    .success();
}

#[test]
fn one_tick_is_one_tick() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "one.csv", &trace(&["80000"]));
    let run = phoenix(&[Path::new("simulate"), Path::new("--trace"), &f]).success();
    assert!(run.stdout.contains(": 1 tick of 15s\n"), "{}", run.show());
}

#[test]
fn anomaly_thresholds_outside_zero_to_one_are_refused() {
    for flag in [
        "--threshold=2",
        "--threshold=-1",
        "--threshold=0",
        "--threshold=nan",
    ] {
        let run = phoenix(&["anomaly", "bench", flag]).failure();
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains("--threshold") && first.contains("(0, 1]"),
            "{flag}: {}",
            run.show()
        );
    }
    let run = phoenix(&["anomaly", "bench", "--threshold", "-1"]).failure();
    assert!(run.stderr.contains("(0, 1]"), "{}", run.show());
}

#[test]
fn flags_out_of_range_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "t.csv", &trace(&["80000"; 4]));
    let run = phoenix(&[
        Path::new("simulate"),
        Path::new("--trace"),
        &f,
        Path::new("--tick"),
        Path::new("-15s"),
    ])
    .failure();
    assert!(
        run.stderr.contains("-15s: a duration cannot be negative"),
        "{}",
        run.show()
    );
    let run = phoenix(&[
        Path::new("simulate"),
        Path::new("--trace"),
        &f,
        Path::new("--budget"),
        Path::new("1e300"),
    ])
    .failure();
    assert!(
        run.stderr.contains("whole number of series"),
        "{}",
        run.show()
    );
}

#[test]
fn a_scenario_reports_every_problem_at_once_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.yaml",
        "name: flash crowd\n\
         synthetic: { kind: step, base: 80000, to: \"x\", at_tick: 10, ticks: 40 }\n\
         tick: 15\n\
         budget_series: 100000\n\
         plant:\n  retention: { conservative: 0.9, balanced: 0.6, aggressive: 0.35 }\n  delay_ticks: 0\n  seed: -1\n  colour: red\n\
         baselines: maybe\n",
    );
    let run = phoenix(&[Path::new("simulate"), &f]).failure();
    let shown = f.display().to_string();
    let lines: Vec<String> = run
        .stderr
        .lines()
        .map(|l| l.strip_prefix("phoenix: ").unwrap_or(l).to_string())
        .collect();
    let expected = [
        "1:1: name: ",
        "2:43: synthetic.to: ",
        "3:7: tick: ",
        "7:16: plant.delay_ticks: ",
        "8:3: plant.seed: ",
        "9:3: plant.colour: unknown field `colour`",
        "10:12: baselines: ",
    ];
    assert_eq!(lines.len(), expected.len(), "{}", run.show());
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("{shown}:{want}")),
            "{line:?} should start with {shown}:{want}"
        );
    }
    for jargon in ["struct", "u64", "u32", "f64", "TraceFile", "PlantFile"] {
        assert!(!run.stderr.contains(jargon), "{jargon}\n{}", run.show());
    }
}

#[test]
fn a_policy_given_as_a_scenario_suggests_policy() {
    let run = phoenix(&["simulate", "policies/default.yaml"]).failure();
    let line = run.one_line();
    assert!(
        line.starts_with("phoenix: policies/default.yaml:1:1: this is a policy file, not a scenario; pass it with --policy"),
        "{line}"
    );
}

#[test]
fn plots_are_svg_or_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["p.png", "p.pdf", "p"] {
        let out = dir.path().join(name);
        let run = phoenix(&[
            Path::new("simulate"),
            Path::new("simulations/step.yaml"),
            Path::new("--plot"),
            &out,
        ])
        .failure();
        let line = run.one_line();
        assert!(
            line.contains(&format!("--plot {}", out.display()))
                && line.contains("give a file name ending in .svg"),
            "{line}"
        );
        assert!(listing(dir.path()).is_empty());
    }
    let out = dir.path().join("p.SVG");
    phoenix(&[
        Path::new("simulate"),
        Path::new("simulations/step.yaml"),
        Path::new("--plot"),
        &out,
    ])
    .success();
    let svg = fs::read_to_string(&out).unwrap();
    assert!(svg.contains("Phoenix simulation of step"), "title");
}

// ---------------------------------------------------------------------------------------
// 2. show why

/// The decision log's lines for `controller` (indented under its name).
fn log_of<'a>(stdout: &'a str, controller: &str) -> Vec<&'a str> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("decisions "));
    assert!(lines.next().is_some(), "no decision log in\n{stdout}");
    lines
        .skip_while(|l| l.trim_end() != format!("  {controller}"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect()
}

#[test]
fn the_decision_log_under_the_table_explains_every_controller() {
    let run = phoenix(&["simulate", "simulations/step.yaml"]).success();
    let table_end = run
        .stdout
        .find("\n\n")
        .expect("a blank line after the table");
    assert!(
        run.stdout[table_end..].starts_with("\n\ndecisions (time, from→to, why):"),
        "{}",
        run.show()
    );
    for (controller, says) in [
        ("default", "escalated conservative→balanced: output "),
        ("threshold", "threshold rule: output "),
        ("hpa", "hpa rule: output "),
        ("oracle", "oracle: demand "),
    ] {
        let log = log_of(&run.stdout, controller);
        assert!(!log.is_empty(), "{controller}: no log\n{}", run.show());
        assert!(
            log.iter().any(|l| l.contains(says)),
            "{controller}: {log:#?}"
        );
        assert!(
            log[0].trim_start().starts_with("2024-01-01T"),
            "{controller}: {log:#?}"
        );
    }
    // threshold flaps on the step's noise: its log is capped.
    let threshold = log_of(&run.stdout, "threshold");
    assert_eq!(threshold.len(), 11, "{threshold:#?}");
    assert!(
        threshold[10].trim_start().starts_with("… ")
            && threshold[10].ends_with(" more, see --ticks"),
        "{threshold:#?}"
    );
}

#[test]
fn blocked_switches_name_the_guard_and_until_when() {
    let dir = tempfile::tempdir().unwrap();
    let mut values = vec!["80000"; 40];
    values.extend(["140000"; 10]);
    values.extend(["190000"; 70]);
    let f = write(dir.path(), "t.csv", &trace(&values));
    let policy = fs::read_to_string(Path::new(ROOT).join("policies/default.yaml"))
        .unwrap()
        .replace("    escalate: 15s", "    escalate: 5m");
    let p = write(dir.path(), "slow.yaml", &policy);
    let run = phoenix(&[
        Path::new("simulate"),
        Path::new("--trace"),
        &f,
        Path::new("--policy"),
        &p,
    ])
    .success();
    let log = log_of(&run.stdout, "default");
    assert!(
        log.iter().any(|l| l.contains(
            "balanced→aggressive blocked by min_dwell_escalate until 2024-01-01T00:15:00Z"
        )),
        "{log:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. machine output

/// The documented document (docs/simulation.md); unknown fields are refused so the test
/// notices a field the documentation does not have.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Report {
    scenario: Option<String>,
    budget_series: u64,
    tick: String,
    tick_ms: u64,
    plant: Plant,
    controllers: Vec<Summary>,
    traces: Vec<TraceDoc>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Plant {
    retention: Vec<Rung>,
    delay_ticks: u32,
    noise: f64,
    seed: u64,
    failure_rate: f64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Rung {
    profile: String,
    retention: f64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Summary {
    controller: String,
    traces: u64,
    ticks: u64,
    time_over_budget_pct: f64,
    overspend: f64,
    mean_retention: f64,
    switches_per_hour: f64,
    switches: f64,
    flaps: f64,
    reaction_p95_ticks: Option<f64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TraceDoc {
    trace: String,
    ticks: u64,
    controllers: Vec<TraceResult>,
}

/// Counts as `u64`: serde refuses `4.0` for them, so this checks integers are integers.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TraceResult {
    controller: String,
    ticks: u64,
    time_over_budget_pct: f64,
    overspend: f64,
    mean_retention: f64,
    switches_per_hour: f64,
    switches: u64,
    flaps: u64,
    reaction_p95_ticks: Option<u64>,
}

fn json_of(args: &[&Path]) -> Report {
    let mut all: Vec<&Path> = vec![Path::new("simulate")];
    all.extend(args);
    all.extend([Path::new("--format"), Path::new("json")]);
    let run = phoenix(&all).success();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not the documented JSON: {e}\n{}", run.show()))
}

#[test]
fn one_trace_and_many_give_the_same_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.csv",
        &trace(&["80000", "150000", "150000", "80000"]),
    );
    let b = write(dir.path(), "b.csv", &trace(&["90000", "90000"]));
    let one = json_of(&[Path::new("--trace"), &a]);
    let two = json_of(&[Path::new("--trace"), &a, &b]);
    assert_eq!(one.scenario, None);
    assert_eq!((one.budget_series, one.tick_ms), (100_000, 15_000));
    assert_eq!(one.traces.len(), 1);
    assert_eq!(two.traces.len(), 2);
    let names: Vec<&str> = two
        .controllers
        .iter()
        .map(|c| c.controller.as_str())
        .collect();
    assert_eq!(names, ["default", "threshold", "hpa", "oracle"]);
    assert_eq!(two.controllers[0].traces, 2);
    assert_eq!(two.controllers[0].ticks, 6);
    assert_eq!(two.traces[1].ticks, 2);
    assert_eq!(two.plant.retention[0].profile, "conservative");
    let scenario = json_of(&[Path::new("simulations/step.yaml")]);
    assert_eq!(scenario.scenario.as_deref(), Some("step"));
    assert_eq!(scenario.traces[0].trace, "synthetic:step");
}

// ---------------------------------------------------------------------------------------
// 4. the binary alone, outside the repository

#[test]
fn works_from_a_folder_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().starts_with(ROOT));
    write(
        dir.path(),
        "x.csv",
        &trace(&["80000", "150000", "150000", "80000"]),
    );
    let run = phoenix_in(dir.path(), &["simulate", "--trace", "x.csv"]).success();
    assert!(
        run.stdout.starts_with("x.csv: 4 ticks of 15s"),
        "{}",
        run.show()
    );
    let shown = phoenix_in(dir.path(), &["policy", "show-default"]).success();
    write(dir.path(), "mine.yaml", &shown.stdout);
    let run = phoenix_in(dir.path(), &["policy", "check", "mine.yaml"]).success();
    assert!(run.stdout.starts_with("mine.yaml: ok"), "{}", run.show());
    assert_eq!(
        shown.stdout,
        fs::read_to_string(Path::new(ROOT).join("policies/default.yaml")).unwrap()
    );
}

#[test]
fn a_duration_too_large_is_not_told_to_add_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.yaml",
        "name: x\ntick: 99999999999999999999s\nprofiles:\n  - { name: a, retention: 0.9 }\n  - { name: b, retention: 0.5 }\n",
    );
    let run = phoenix(&[Path::new("policy"), Path::new("check"), &p]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{}:2:7: tick: ", p.display()))
            && first.contains("too large")
            && !first.contains("with a unit"),
        "{}",
        run.show()
    );
    // A binary file given as a scenario or trace says it is not text.
    let bin = dir.path().join("b.csv");
    fs::write(&bin, [0xff, 0xfe, 0x00, 0x01]).unwrap();
    for args in [vec!["simulate"], vec!["simulate", "--trace"]] {
        let mut all: Vec<&Path> = args.iter().map(Path::new).collect();
        all.push(&bin);
        let run = phoenix(&all).failure();
        let line = run.one_line();
        assert!(
            line.contains("not UTF-8") || line.contains("not a text file"),
            "{line}"
        );
        assert!(!line.contains("check the path"), "{line}");
    }
}
