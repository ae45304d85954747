//! End-to-end tests of the `phoenix` binary: `policy check` and `simulate` run as an
//! operator runs them, checking exit codes, what reaches stdout and stderr, and the files
//! written.
//!
//! Errors must be one line each, name the file and where in it (`FILE:LINE:COL` for
//! policies and scenarios, `FILE:LINE` plus the column for traces), and never be a panic.
//! Outputs go to temporary folders; the commands run from the repository root, like the
//! examples in the README and the scenario files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root: the working directory of every command.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// NAB's data set, checked out next to the repository. Required: CI always has
/// `../shared`, so a missing data set fails the NAB tests instead of skipping them.
const NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");

/// The tick file's columns, in order.
const TICKS_HEADER: &str = "tick,timestamp,controller,input,output,profile,decided,reason";

/// What a finished `phoenix` run left behind.
struct Run {
    /// Exit code (`None` if killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics with the whole run if it did not exit 0.
    fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.show());
        self
    }

    /// Panics if it exited 0, was killed, or panicked.
    fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit\n{}",
            self.show()
        );
        self.no_panic()
    }

    /// Panics if stderr looks like a Rust panic rather than an error message.
    fn no_panic(self) -> Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the binary panicked\n{}",
            self.show()
        );
        self
    }

    /// The only line of stderr (panics if there are more or none).
    fn one_error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr\n{}",
            self.show()
        );
        lines[0]
    }

    /// Everything, for failure messages.
    fn show(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `phoenix ARGS` from the repository root. `RUST_BACKTRACE` is cleared so a panic
/// would print its "run with RUST_BACKTRACE=1" note, which the checks look for.
fn phoenix<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .current_dir(ROOT)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run the phoenix binary");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write test input");
    path
}

/// The file names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// policy check

/// A valid policy to break one piece at a time (fields at known lines).
const GOOD_POLICY: &str = "\
name: cli-test
profiles:
  - { name: conservative, retention: 0.9 }
  - { name: balanced, retention: 0.6 }
  - { name: aggressive, retention: 0.35 }
signals:
  input: sum by (pipeline) (rate(otelcol_processor_incoming_items[1m])) * 60
  output: sum by (pipeline) (rate(otelcol_processor_outgoing_items[1m])) * 60
  group_by: pipeline
";

/// One problem line of `policy check`: `FILE:LINE:COL: message`, split.
struct Located<'a> {
    line: u32,
    col: u32,
    message: &'a str,
}

/// Parses a stderr line as a problem in `file`, or panics saying why it is not one.
fn located<'a>(stderr_line: &'a str, file: &Path) -> Located<'a> {
    let prefix = format!("{}:", file.display());
    let rest = stderr_line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{stderr_line:?} does not start with {prefix:?}"));
    let mut parts = rest.splitn(3, ':');
    let (Some(line), Some(col), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{stderr_line:?} is not FILE:LINE:COL: message");
    };
    let num = |s: &str| -> u32 {
        s.parse()
            .unwrap_or_else(|_| panic!("{s:?} in {stderr_line:?} is not a line/column number"))
    };
    let (line, col) = (num(line), num(col));
    assert!(
        line >= 1 && col >= 1,
        "{stderr_line:?}: positions are 1-based"
    );
    let message = message
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("{stderr_line:?}: no space after FILE:LINE:COL:"));
    Located { line, col, message }
}

/// Runs `policy check` on one bad file and returns its problem lines (without the
/// closing summary line), each checked to be `FILE:LINE:COL: ...`.
fn policy_problems(file: &Path) -> Vec<String> {
    let run = phoenix([Path::new("policy"), Path::new("check"), file]).failure();
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.pop(),
        Some("1 of 1 policy file(s) have problems"),
        "{}",
        run.show()
    );
    assert!(!lines.is_empty(), "no problem reported\n{}", run.show());
    for l in &lines {
        located(l, file);
    }
    lines.into_iter().map(str::to_string).collect()
}

/// The single problem reported for `file`, checked to be at `line` (and `col`, if given)
/// and about `field`.
fn single_policy_problem(file: &Path, (line, col): (u32, Option<u32>), field: &str) -> String {
    let problems = policy_problems(file);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = located(&problems[0], file);
    assert_eq!(p.line, line, "{:?}", problems[0]);
    if let Some(col) = col {
        assert_eq!(p.col, col, "{:?}", problems[0]);
    }
    assert!(
        p.message.starts_with(&format!("{field}: ")),
        "{:?} should name field {field}",
        problems[0]
    );
    problems[0].clone()
}

#[test]
fn shipped_policies_check_ok() {
    let run = phoenix([
        "policy",
        "check",
        "policies/default.yaml",
        "policies/cost-first.yaml",
    ])
    .success();
    assert!(
        run.stdout.contains("policies/default.yaml: ok"),
        "{}",
        run.show()
    );
    assert!(
        run.stdout.contains("policies/cost-first.yaml: ok"),
        "{}",
        run.show()
    );
    assert!(run.stderr.is_empty(), "{}", run.show());
}

#[test]
fn policy_template_is_valid() {
    // Guards the tests below: each one breaks exactly one thing in this policy.
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "good.yaml", GOOD_POLICY);
    phoenix([Path::new("policy"), Path::new("check"), &f]).success();
}

#[test]
fn policy_check_prints_warnings_and_passes() {
    // A labeldrop of a label declared safe without saying what keeps series apart.
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD_POLICY.replace(
        "  - { name: aggressive, retention: 0.35 }\n",
        "  - name: aggressive\n    retention: 0.35\n    prometheus: { drop_labels: [pod_uid] }\nsafe_to_drop_labels: [pod_uid]\n",
    );
    let f = write(dir.path(), "w.yaml", &text);
    let run = phoenix([Path::new("policy"), Path::new("check"), &f]).success();
    assert!(
        run.stdout.contains(
            "ok (policy \"cli-test\", profiles conservative → balanced → aggressive, 1 warning)"
        ),
        "{}",
        run.show()
    );
    let w = format!(
        "{}:7:33: warning: profiles[2].prometheus.drop_labels[0]: dropping \"pod_uid\" could merge series",
        f.display()
    );
    assert!(run.stderr.starts_with(&w), "{}", run.show());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.show());
}

#[test]
fn policy_unknown_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        &GOOD_POLICY.replace(
            "  group_by: pipeline\n",
            "  group_by: pipeline\n  colour: blue\n",
        ),
    );
    let line = single_policy_problem(&f, (10, Some(3)), "signals.colour");
    assert!(line.contains("unknown field `colour`"), "{line}");
}

#[test]
fn policy_zero_relax_dwell() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        &format!("{GOOD_POLICY}guards: {{min_dwell: {{relax: 0s}}}}\n"),
    );
    let line = single_policy_problem(&f, (10, None), "guards.min_dwell.relax");
    assert!(line.contains("0s"), "{line}");
}

#[test]
fn policy_ladder_must_decrease() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        &GOOD_POLICY.replace("retention: 0.6 }", "retention: 0.95 }"),
    );
    let line = single_policy_problem(&f, (4, None), "profiles[1].retention");
    assert!(line.contains("0.95"), "{line}");
}

#[test]
fn policy_yaml_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        "name: broken\nprofiles: [\n  { name: a, retention: 0.9 }\n",
    );
    let problems = policy_problems(&f);
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn policy_bad_promql() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        &GOOD_POLICY.replace(
            "rate(otelcol_processor_incoming_items[1m])) * 60",
            "rate(otelcol_processor_incoming_items[1m]) * 60",
        ),
    );
    let line = single_policy_problem(&f, (7, None), "signals.input");
    assert!(line.contains("PromQL"), "{line}");
}

#[test]
fn policy_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD_POLICY
        .replace("name: cli-test\n", "name: cli-test\ncolour: blue\n")
        .replace("retention: 0.6 }", "retention: 0.95 }")
        .replace(
            "rate(otelcol_processor_incoming_items[1m])) * 60",
            "rate(otelcol_processor_incoming_items[1m]) * 60",
        )
        + "guards: {min_dwell: {relax: 0s}}\n";
    let f = write(dir.path(), "bad.yaml", &text);
    let problems = policy_problems(&f);
    let fields: Vec<(u32, u32, String)> = problems
        .iter()
        .map(|l| {
            let p = located(l, &f);
            let field = p.message.split(": ").next().unwrap_or("").to_string();
            (p.line, p.col, field)
        })
        .collect();
    assert!(
        fields.contains(&(2, 1, "colour".to_string())),
        "missing colour at 2:1 in {problems:#?}"
    );
    for (line, field) in [
        (5, "profiles[1].retention"),
        (8, "signals.input"),
        (11, "guards.min_dwell.relax"),
    ] {
        assert!(
            fields
                .iter()
                .any(|(l, _, f)| (*l, f.as_str()) == (line, field)),
            "missing {field} at line {line} in {problems:#?}"
        );
    }
    // In file order, like a compiler.
    let lines: Vec<u32> = fields.iter().map(|(l, _, _)| *l).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{problems:#?}");
}

#[test]
fn policy_check_reports_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        &GOOD_POLICY.replace("retention: 0.6 }", "retention: 0.95 }"),
    );
    let missing = dir.path().join("missing.yaml");
    let run = phoenix([
        Path::new("policy"),
        Path::new("check"),
        Path::new("policies/default.yaml"),
        &bad,
        &missing,
    ])
    .failure();
    assert!(
        run.stdout.contains("policies/default.yaml: ok"),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.contains(&format!("{}:4:", bad.display())),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.contains("2 of 3 policy file(s) have problems"),
        "{}",
        run.show()
    );
}

// ---------------------------------------------------------------------------------------
// malformed traces and scenarios

/// Runs `simulate --trace FILE` with the default policy and returns its one error line,
/// checked to name the file.
fn trace_error(file: &Path) -> String {
    let run = phoenix([
        Path::new("simulate"),
        Path::new("--trace"),
        file,
        Path::new("--policy"),
        Path::new("policies/default.yaml"),
    ])
    .failure();
    let line = run.one_error_line().to_string();
    assert!(
        line.contains(&file.display().to_string()),
        "{line:?} does not name {}",
        file.display()
    );
    line
}

#[test]
fn trace_bad_number() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.csv",
        "timestamp,value\n2024-01-01 00:00:00,100\n2024-01-01 00:00:15,1o0\n2024-01-01 00:00:30,100\n",
    );
    let line = trace_error(&f);
    assert!(line.contains(&format!("{}:3:", f.display())), "{line}");
    assert!(
        line.contains("\"value\"") && line.contains("\"1o0\""),
        "{line}"
    );
}

#[test]
fn trace_wrong_cell_count() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.csv",
        "timestamp,value\n2024-01-01 00:00:00,100\n2024-01-01 00:00:15,100\n2024-01-01 00:00:30,1,2\n",
    );
    let line = trace_error(&f);
    assert!(line.contains(&format!("{}:4:", f.display())), "{line}");
    assert!(line.contains("3 cells") && line.contains("2"), "{line}");
}

#[test]
fn trace_bad_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.csv",
        "timestamp,value\n2024-01-01 00:00:00,100\n2024-13-45 00:00:15,100\n",
    );
    let line = trace_error(&f);
    assert!(line.contains(&format!("{}:3:", f.display())), "{line}");
    assert!(
        line.contains("\"timestamp\"") && line.contains("2024-13-45"),
        "{line}"
    );
}

#[test]
fn trace_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "t.csv", "");
    let line = trace_error(&f);
    assert!(line.contains(&format!("{}:1:", f.display())), "{line}");
}

#[test]
fn trace_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let line = trace_error(&dir.path().join("nope.csv"));
    assert!(line.contains("cannot read"), "{line}");
}

#[test]
fn scenario_unknown_field() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Path::new(ROOT).join("policies/default.yaml");
    let text = format!(
        "name: s\n\
         synthetic: {{ kind: step, base: 80000, to: 140000, at_tick: 10, ticks: 40 }}\n\
         tick: 15s\n\
         budget_series: 100000\n\
         plant:\n  retention: {{ conservative: 0.9, balanced: 0.6, aggressive: 0.35 }}\n  delay_ticks: 1\n  colour: red\n\
         policies: [{:?}]\n",
        policy.display().to_string()
    );
    let f = write(dir.path(), "s.yaml", &text);
    let run = phoenix([Path::new("simulate"), &f]).failure();
    let line = run.one_error_line();
    assert!(
        line.contains(&format!("{}:8:3: ", f.display())),
        "{line:?} should point at {}:8:3",
        f.display()
    );
    assert!(line.contains("unknown field `colour`"), "{line}");
    // The same file without the typo runs: the error above is about `colour` only.
    let fixed = write(dir.path(), "s.yaml", &text.replace("  colour: red\n", ""));
    phoenix([Path::new("simulate"), &fixed]).success();
}

// ---------------------------------------------------------------------------------------
// simulate on a scenario

/// The controller names of a table report, in order (rows after the `controller` header).
fn table_controllers(stdout: &str) -> Vec<String> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("controller "));
    assert!(lines.next().is_some(), "no table header in:\n{stdout}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn simulate_flash_crowd_table() {
    let run = phoenix(["simulate", "simulations/flash-crowd.yaml"]).success();
    assert!(
        run.stdout.starts_with("flash-crowd: 960 ticks of 15s"),
        "{}",
        run.show()
    );
    assert_eq!(
        table_controllers(&run.stdout),
        ["default", "threshold", "hpa", "oracle"],
        "{}",
        run.show()
    );
}

#[test]
fn simulate_flash_crowd_json() {
    let run = phoenix([
        "simulate",
        "simulations/flash-crowd.yaml",
        "--format",
        "json",
    ])
    .success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", run.show()));
    assert_eq!(v["scenario"], "flash-crowd");
    let rows = v["traces"][0]["controllers"]
        .as_array()
        .expect("an array of controllers per trace");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["controller"].as_str().expect("controller name"))
        .collect();
    assert_eq!(names, ["default", "threshold", "hpa", "oracle"]);
    for r in rows {
        assert_eq!(r["ticks"], 960, "{r}");
        for field in [
            "time_over_budget_pct",
            "overspend",
            "mean_retention",
            "switches_per_hour",
            "flaps",
            "switches",
        ] {
            assert!(r[field].is_number(), "{field} missing in {r}");
        }
        assert!(
            r["reaction_p95_ticks"].is_number() || r["reaction_p95_ticks"].is_null(),
            "reaction_p95_ticks missing in {r}"
        );
        let retention = r["mean_retention"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&retention), "{r}");
    }
}

/// One row of a tick file; `reason` may contain commas (it is last, so splitting on the
/// first seven commas is exact).
struct TickRow {
    tick: u32,
    controller: String,
    profile: String,
    decided: String,
}

/// Parses a tick file, checking its header, into rows grouped by controller (in order).
fn read_ticks(path: &Path) -> BTreeMap<String, Vec<TickRow>> {
    let text = fs::read_to_string(path).expect("read the tick file");
    let mut lines = text.lines();
    // Policies that watch signals add the anomaly score as a ninth column.
    let header = lines.next().unwrap_or_default();
    assert!(
        header == TICKS_HEADER || header == format!("{TICKS_HEADER},anomaly_score"),
        "{}: {header}",
        path.display()
    );
    let mut by_controller: BTreeMap<String, Vec<TickRow>> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.splitn(8, ',').collect();
        assert_eq!(cells.len(), 8, "line {}: {line:?}", i + 2);
        let row = TickRow {
            tick: cells[0]
                .parse()
                .unwrap_or_else(|_| panic!("line {}: tick {:?}", i + 2, cells[0])),
            controller: cells[2].to_string(),
            profile: cells[5].to_string(),
            decided: cells[6].to_string(),
        };
        by_controller
            .entry(row.controller.clone())
            .or_default()
            .push(row);
    }
    by_controller
}

#[test]
fn simulate_ticks_csv_and_delay_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    phoenix([
        Path::new("simulate"),
        Path::new("simulations/flash-crowd.yaml"),
        Path::new("--ticks"),
        &out,
    ])
    .success();
    let runs = read_ticks(&out);
    let names: Vec<&str> = runs.keys().map(String::as_str).collect();
    assert_eq!(names, ["default", "hpa", "oracle", "threshold"]);
    let profiles = ["conservative", "balanced", "aggressive"];
    for (name, rows) in &runs {
        assert_eq!(rows.len(), 960, "{name}");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.tick as usize, i, "{name}: ticks in order from 0");
            assert_eq!(r.controller, *name);
            assert!(
                profiles.contains(&r.profile.as_str()),
                "{name}: {}",
                r.profile
            );
            assert!(
                profiles.contains(&r.decided.as_str()),
                "{name}: {}",
                r.decided
            );
        }
        assert_eq!(
            rows[0].profile, "conservative",
            "{name} starts at the first profile"
        );
        if name == "oracle" {
            continue; // clairvoyant: its profile is in force at once, no reload delay
        }
        // flash-crowd has delay_ticks 1: a decision at tick t is in force at t + 1.
        for w in rows.windows(2) {
            assert_eq!(
                w[1].profile, w[0].decided,
                "{name}: profile at tick {} is not what was decided at tick {}",
                w[1].tick, w[0].tick
            );
        }
        assert!(
            rows.iter().any(|r| r.profile != "conservative"),
            "{name} never escalated in a flash crowd"
        );
    }
}

#[test]
fn simulate_plot_svg() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plot.svg");
    phoenix([
        Path::new("simulate"),
        Path::new("simulations/flash-crowd.yaml"),
        Path::new("--plot"),
        &out,
    ])
    .success();
    let svg = fs::read_to_string(&out).expect("read the plot");
    assert!(svg.contains("<svg"), "not an SVG: {:.200}", svg);
    assert_eq!(
        listing(dir.path()),
        ["plot.svg"],
        "temporary files left behind"
    );
}

// ---------------------------------------------------------------------------------------
// simulate on a NAB trace with flags

/// A file of NAB's data set; fails the test, naming the path, when it is not there.
fn nab_file(relative: &str) -> PathBuf {
    let path = Path::new(NAB).join(relative);
    assert!(
        path.is_file(),
        "{} not found: the NAB data set must be at {NAB} (../shared/data/nab next to the repository)",
        path.display()
    );
    path
}

/// `nyc_taxi.csv` from NAB.
fn nyc_taxi() -> PathBuf {
    nab_file("data/realKnownCause/nyc_taxi.csv")
}

/// The NAB example from the README on one trace, plus `extra` flags.
fn simulate_nab(trace: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> =
        ["simulate", "--trace"].iter().map(Into::into).collect();
    args.push(trace.into());
    for a in [
        "--tick",
        "15s",
        "--rescale",
        "0.4:2.2",
        "--budget",
        "100000",
        "--retention",
        "conservative=0.9,balanced=0.6,aggressive=0.35",
        "--delay-ticks",
        "1",
        "--policy",
        "policies/default.yaml",
    ]
    .iter()
    .chain(extra)
    {
        args.push(a.into());
    }
    phoenix(args)
}

#[test]
fn simulate_nab_trace_with_flags() {
    let trace = nyc_taxi();
    let run = simulate_nab(&trace, &[]).success();
    assert_eq!(
        table_controllers(&run.stdout),
        ["default", "threshold", "hpa", "oracle"],
        "{}",
        run.show()
    );
}

#[test]
fn simulate_nab_trace_without_baselines() {
    let trace = nyc_taxi();
    let run = simulate_nab(&trace, &["--no-baselines"]).success();
    assert_eq!(
        table_controllers(&run.stdout),
        ["default"],
        "{}",
        run.show()
    );
}

#[test]
fn simulate_several_nab_traces_reports_the_mean() {
    let taxi = nyc_taxi();
    let other = nab_file("data/realKnownCause/machine_temperature_system_failure.csv");
    let mut args: Vec<std::ffi::OsString> = vec!["simulate".into(), "--rescale".into()];
    args.extend([
        "0.4:2.2".into(),
        "--trace".into(),
        taxi.into(),
        other.into(),
    ]);
    let run = phoenix(args).success();
    assert!(
        run.stdout.starts_with("mean over 2 traces"),
        "{}",
        run.show()
    );
    assert_eq!(
        table_controllers(&run.stdout),
        ["default", "threshold", "hpa", "oracle"],
        "{}",
        run.show()
    );
}

// ---------------------------------------------------------------------------------------
// unwritable outputs

#[test]
fn ticks_under_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no/such/dir/out.csv");
    let run = phoenix([
        Path::new("simulate"),
        Path::new("simulations/step.yaml"),
        Path::new("--ticks"),
        &out,
    ])
    .failure();
    let line = run.one_error_line();
    assert!(line.contains(&out.display().to_string()), "{line}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn ticks_onto_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    fs::create_dir(&out).unwrap();
    let run = phoenix([
        Path::new("simulate"),
        Path::new("simulations/step.yaml"),
        Path::new("--ticks"),
        &out,
    ])
    .failure();
    let line = run.one_error_line();
    assert!(line.contains(&out.display().to_string()), "{line}");
    // No temporary file next to it, and nothing inside it.
    assert_eq!(listing(dir.path()), ["out.csv"]);
    assert!(out.is_dir() && listing(&out).is_empty());
}
