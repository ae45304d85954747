//! Golden tests: the exact per-tick decisions of the shipped scenarios, pinned byte for byte.
//!
//! Each test loads a scenario from `simulations/`, runs it through the library exactly as
//! `phoenix simulate` does (its policies and, where the file stays small, its baselines),
//! writes the tick CSV with `sim::ticks::write_ticks` and compares it with
//! `tests/golden/<scenario>.ticks.csv`. Any change in a decision, a reason sentence, a
//! number's formatting or the plant shows up as the first differing line.
//!
//! The policies are still being tuned, so the files are regenerable: run
//! `UPDATE_GOLDEN=1 cargo test --test golden`, then review the diff before committing it.

use phoenix::policy::ValidatedPolicy;
use phoenix::sim::scenario::Scenario;
use phoenix::sim::simulate::Simulation;
use phoenix::sim::ticks::write_ticks;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The command that rewrites every golden file, quoted in failure messages.
const REGENERATE: &str = "UPDATE_GOLDEN=1 cargo test --test golden";

/// Whether baselines go into a golden file: long scenarios keep only the policy
/// controllers so that each file stays well under a megabyte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Controllers {
    /// The scenario's policies and its baselines (threshold, hpa, oracle).
    All,
    /// Only the scenario's policies.
    PoliciesOnly,
}

/// The repository root (where `simulations/` and `policies/` live).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `simulations/<scenario>.yaml` and returns the tick CSV's bytes.
fn ticks_of(scenario: &str, controllers: Controllers) -> Vec<u8> {
    let path = root().join("simulations").join(format!("{scenario}.yaml"));
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sc.name,
        scenario,
        "{}: name differs from file",
        path.display()
    );
    let trace = sc.trace().unwrap_or_else(|e| panic!("{e}"));
    let policies: Vec<ValidatedPolicy> = sc
        .policies
        .iter()
        .map(|p| ValidatedPolicy::from_file(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut sim = Simulation::from_scenario(&sc, &trace, policies);
    if controllers == Controllers::PoliciesOnly {
        sim.baselines.clear();
    }
    let runs = sim.run(&mut |_| {});
    assert_eq!(runs.len(), sim.controllers());
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(format!("{scenario}.ticks.csv"));
    write_ticks(&out, &runs).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&out).expect("read back the tick file")
}

/// `tests/golden/<scenario>.ticks.csv`.
fn golden_path(scenario: &str) -> PathBuf {
    root()
        .join("tests/golden")
        .join(format!("{scenario}.ticks.csv"))
}

/// Whether this run rewrites the golden files instead of checking them.
fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares the scenario's tick file with its golden file, or rewrites the golden file
/// under `UPDATE_GOLDEN=1`.
fn check(scenario: &str, controllers: Controllers) {
    let actual = ticks_of(scenario, controllers);
    let golden = golden_path(scenario);
    if updating() {
        std::fs::create_dir_all(golden.parent().unwrap()).expect("create tests/golden");
        std::fs::write(&golden, &actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", golden.display()));
        // Straight to stderr, not `eprintln!`, which the test harness would swallow.
        let _ = writeln!(
            std::io::stderr(),
            "UPDATE_GOLDEN=1: rewrote {} ({} bytes, {} lines); review the diff before committing",
            golden.display(),
            actual.len(),
            actual.iter().filter(|&&b| b == b'\n').count()
        );
        return;
    }
    let expected = match std::fs::read(&golden) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "{}: cannot read the golden file ({e}); generate it with `{REGENERATE}`",
            golden.display()
        ),
    };
    if expected != actual {
        panic!(
            "{scenario}: tick file differs from {}\n{}\nIf the change is intended, regenerate with `{REGENERATE}` and review the diff.",
            golden.display(),
            first_difference(&expected, &actual)
        );
    }
}

/// Describes the first line where the two files differ (1-based), or which one is longer.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let expected = String::from_utf8_lossy(expected);
    let actual = String::from_utf8_lossy(actual);
    let mut e_lines = expected.split_inclusive('\n');
    let mut a_lines = actual.split_inclusive('\n');
    let mut line = 1;
    loop {
        match (e_lines.next(), a_lines.next()) {
            (Some(e), Some(a)) if e == a => line += 1,
            (Some(e), Some(a)) => {
                let (e_text, a_text) = (e.trim_end_matches('\n'), a.trim_end_matches('\n'));
                let note = if e_text == a_text {
                    " (only the final line break differs)"
                } else {
                    ""
                };
                return format!(
                    "first difference at line {line}{note}:\n  expected: {e_text:?}\n  actual:   {a_text:?}"
                );
            }
            (Some(e), None) => {
                return format!(
                    "actual ends before line {line}; expected line {line}: {:?}",
                    e.trim_end_matches('\n')
                );
            }
            (None, Some(a)) => {
                return format!(
                    "expected ends before line {line}; actual line {line}: {:?}",
                    a.trim_end_matches('\n')
                );
            }
            // Same lines, so the bytes were equal; callers only ask when they differ.
            (None, None) => return "the files are equal".to_string(),
        }
    }
}

#[test]
fn flash_crowd() {
    check("flash-crowd", Controllers::All);
}

#[test]
fn step() {
    check("step", Controllers::All);
}

#[test]
fn rollout_churn() {
    check("rollout-churn", Controllers::All);
}

#[test]
fn label_leak() {
    // A recorded trace with three missing scrapes: pins the hold-on-bad-input decisions.
    check("label-leak", Controllers::All);
}

#[test]
fn slow_creep() {
    // 5760 ticks: with the baselines the file would exceed 2 MB.
    check("slow-creep", Controllers::PoliciesOnly);
}

#[test]
fn runs_are_deterministic() {
    // Golden files only make sense if two runs in one process agree exactly.
    assert_eq!(
        ticks_of("step", Controllers::All),
        ticks_of("step", Controllers::All)
    );
}

#[test]
fn first_difference_names_the_line() {
    let msg = first_difference(b"a\nb\nc\n", b"a\nB\nc\n");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(
        msg.contains("expected: \"b\"") && msg.contains("actual:   \"B\""),
        "{msg}"
    );
    let msg = first_difference(b"a\nb\n", b"a\n");
    assert!(msg.contains("actual ends before line 2"), "{msg}");
    let msg = first_difference(b"a\n", b"a\nb\n");
    assert!(msg.contains("expected ends before line 2"), "{msg}");
    let msg = first_difference(b"a\nb", b"a\nb\n");
    assert!(
        msg.contains("line 2 (only the final line break differs)"),
        "{msg}"
    );
}
