//! End-to-end tests of `phoenix anomaly`: `score` writes NAB's result format for a CSV (to
//! stdout or atomically to a file), `bench` scores a detector on a NAB-layout corpus and
//! prints the three NAB profiles. Errors are one line naming the file. The detectors' own
//! quality is not asserted here: it is tuned elsewhere.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// NAB's data set, checked out next to the repository. Required: CI always has
/// `../shared`, so a missing data set fails the NAB test instead of skipping it.
const NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");

/// What a finished `phoenix` run left behind.
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

    /// The single stderr line of a failed run (panics on success, a panic, or more lines).
    fn one_error_line(&self) -> &str {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected failure\n{}",
            self.show()
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.show());
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line\n{}", self.show());
        lines[0]
    }
}

fn phoenix<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run the phoenix binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A NAB-style CSV of `rows` rows, 5 minutes apart from 2014-04-01 00:00:00, with a jump
/// from row `jump` on.
fn series(rows: usize, jump: usize) -> String {
    let mut s = String::from("timestamp,value\n");
    for i in 0..rows {
        let (h, m) = (i * 5 / 60, i * 5 % 60);
        let (d, h) = (1 + h / 24, h % 24);
        let v = if i >= jump {
            500.0
        } else {
            10.0 + (i % 3) as f64
        };
        s.push_str(&format!("2014-04-{d:02} {h:02}:{m:02}:00,{v}\n"));
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn score_writes_a_header_and_one_line_per_row_with_timestamps_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "s.csv", &series(50, 40));
    for detector in ["ensemble", "windowed_gaussian"] {
        let run = phoenix(&[
            "anomaly",
            "score",
            csv.to_str().unwrap(),
            "--detector",
            detector,
        ])
        .success();
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 51, "{}", run.show());
        assert_eq!(lines[0], "timestamp,value,anomaly_score");
        assert!(
            lines[1].starts_with("2014-04-01 00:00:00,10,"),
            "{}",
            lines[1]
        );
        for l in &lines[1..] {
            let s: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&s), "{l}");
        }
    }
}

#[test]
fn score_binary_gives_only_zeros_and_ones_and_out_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "s.csv", &series(50, 40));
    let out = dir.path().join("scores.csv");
    for detector in ["ensemble", "windowed_gaussian"] {
        let run = phoenix(&[
            "anomaly",
            "score",
            csv.to_str().unwrap(),
            "--binary",
            "--detector",
            detector,
            "--out",
            out.to_str().unwrap(),
        ])
        .success();
        assert!(run.stdout.is_empty(), "{}", run.show());
        let text = fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 51);
        assert_eq!(lines[0], "timestamp,value,anomaly_score");
        for l in &lines[1..] {
            assert!(l.ends_with(",0") || l.ends_with(",1"), "{l}");
        }
    }
    // NAB's baseline flags the jump.
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.lines().nth(41).unwrap().ends_with(",1"), "{text}");
    // Only the output is left: no temporary file.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["s.csv", "scores.csv"]);
}

#[test]
fn score_errors_are_one_line_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.csv",
        "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n",
    );
    let run = phoenix(&["anomaly", "score", bad.to_str().unwrap()]);
    let line = run.one_error_line();
    assert!(line.contains(&format!("{}:3:", bad.display())), "{line}");
    assert!(line.contains("\"abc\" is not a number"), "{line}");

    let missing = dir.path().join("missing.csv");
    let run = phoenix(&["anomaly", "score", missing.to_str().unwrap()]);
    assert!(run.one_error_line().contains("missing.csv"));

    let good = write(dir.path(), "good.csv", &series(5, 10));
    let run = phoenix(&[
        "anomaly",
        "score",
        good.to_str().unwrap(),
        "--out",
        dir.path().join("no/such/dir/x.csv").to_str().unwrap(),
    ]);
    assert!(run.one_error_line().contains("does not exist"));
}

/// A tiny NAB layout: two categories, one file with a window, one without.
fn tiny_nab(dir: &Path) {
    write(dir, "data/catA/a.csv", &series(300, 200));
    write(dir, "data/catB/b.csv", &series(100, 1000));
    write(
        dir,
        "labels/combined_windows.json",
        r#"{
    "catA/a.csv": [
        [
            "2014-04-01 16:40:00.000000",
            "2014-04-01 17:55:00.000000"
        ]
    ],
    "catB/b.csv": []
}"#,
    );
}

#[test]
fn bench_prints_the_three_profiles_per_category_and_overall() {
    let dir = tempfile::tempdir().unwrap();
    tiny_nab(dir.path());
    for detector in ["ensemble", "windowed_gaussian"] {
        let run = phoenix(&[
            "anomaly",
            "bench",
            "--nab",
            dir.path().to_str().unwrap(),
            "--detector",
            detector,
        ])
        .success();
        for word in [
            "standard",
            "reward_low_FP",
            "reward_low_FN",
            "catA",
            "catB",
            "overall",
            "optimal threshold",
            "points/s",
        ] {
            assert!(run.stdout.contains(word), "{word} missing\n{}", run.show());
        }
    }
    // The jump is the window's first row, so NAB's baseline detects it on its first row: 100 on catA.
    let run = phoenix(&[
        "anomaly",
        "bench",
        "--nab",
        dir.path().to_str().unwrap(),
        "--detector",
        "windowed_gaussian",
    ])
    .success();
    let cat_a = run.stdout.lines().find(|l| l.starts_with("catA")).unwrap();
    assert!(cat_a.contains("100.00"), "{}", run.show());
}

#[test]
fn bench_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = phoenix(&["anomaly", "bench", "--nab", dir.path().to_str().unwrap()]);
    assert!(run.one_error_line().contains("combined_windows.json"));

    tiny_nab(dir.path());
    write(
        dir.path(),
        "labels/combined_windows.json",
        "{\"catA/a.csv\": [}",
    );
    let run = phoenix(&["anomaly", "bench", "--nab", dir.path().to_str().unwrap()]);
    assert!(
        run.one_error_line().contains("combined_windows.json:1:"),
        "{}",
        run.show()
    );

    tiny_nab(dir.path());
    write(
        dir.path(),
        "data/catB/b.csv",
        "timestamp,value\nnot a time,1\n",
    );
    let run = phoenix(&["anomaly", "bench", "--nab", dir.path().to_str().unwrap()]);
    let line = run.one_error_line();
    assert!(line.contains("b.csv:2:"), "{line}");

    let run = phoenix(&["anomaly", "bench", "--nab", ".", "--detector", "nope"]);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("windowed_gaussian"), "{}", run.show());
}

#[test]
fn bench_on_the_shared_nab_subset_with_the_windowed_gaussian() {
    let labels = Path::new(NAB).join("labels/combined_windows.json");
    assert!(
        labels.is_file(),
        "{} not found: the NAB data set must be at {NAB} (../shared/data/nab next to the repository)",
        labels.display()
    );
    let run = phoenix(&[
        "anomaly",
        "bench",
        "--nab",
        NAB,
        "--detector",
        "windowed_gaussian",
    ])
    .success();
    assert!(
        run.stdout
            .contains("35 files, 181653 rows, 55 anomaly windows"),
        "{}",
        run.show()
    );
    let overall = run
        .stdout
        .lines()
        .find(|l| l.starts_with("overall"))
        .unwrap();
    let standard: f64 = overall.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(standard.is_finite(), "{overall}");
}

#[test]
fn bench_anomaly_reports_every_variant_the_worst_and_the_baselines() {
    // One file, two variants: the original is always added (the baselines' thresholds
    // are chosen on it), the text names the worst variant, --json holds per-file rows.
    let args = [
        "bench",
        "anomaly",
        "--nab",
        NAB,
        "--files",
        "art_daily_jumpsup",
        "--variants",
        "hourly",
    ];
    let run = phoenix(&args).success();
    for needle in [
        "original",
        "hourly",
        "worst variant:",
        "rolling-z-500",
        "windowed-gaussian",
    ] {
        assert!(run.stdout.contains(needle), "{needle}\n{}", run.show());
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let run = phoenix(&json_args).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["name"], "ensemble");
    let names: Vec<&str> = c["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["original", "hourly"]);
    assert_eq!(
        c["variants"][0]["per_file"][0]["key"],
        "artificialWithAnomaly/art_daily_jumpsup.csv"
    );
    assert_eq!(v["candidates"].as_array().unwrap().len(), 3);

    let run = phoenix(&["bench", "anomaly", "--nab", NAB, "--files", "no-such-file"]);
    assert!(
        run.one_error_line().contains("no-such-file"),
        "{}",
        run.show()
    );
    let run = phoenix(&["bench", "anomaly", "--nab", NAB, "--variants", "weekly"]);
    assert!(run.stderr.contains("hourly-dropouts"), "{}", run.show());
}
