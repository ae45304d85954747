//! Unit tests for policy parsing and validation: shipped files, error lines, robustness.

use super::*;
use crate::core::anomaly::DetectorKind;
use std::time::Duration;

const DEFAULT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/default.yaml"
));
const COST_FIRST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/cost-first.yaml"
));

const MINIMAL: &str = "\
name: mini
profiles:
  - { name: a, retention: 0.9 }
  - { name: b, retention: 0.5 }
";

/// The error lines for `text`, or a panic if it validated.
fn lines(text: &str) -> Vec<String> {
    match ValidatedPolicy::from_str(text, "x.yaml") {
        Ok(_) => panic!("expected problems, policy validated:\n{text}"),
        Err(e) => {
            let rendered = e.to_string();
            let ls: Vec<String> = rendered.lines().map(str::to_string).collect();
            assert_eq!(
                ls.len(),
                e.problems().len(),
                "one line per problem: {rendered}"
            );
            ls
        }
    }
}

/// MINIMAL with `extra` appended.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn shipped_policies_validate() {
    let p = ValidatedPolicy::from_str(DEFAULT, "policies/default.yaml").unwrap();
    assert_eq!(p.name(), "default");
    assert_eq!(p.profiles().len(), 3);
    assert_eq!(p.tick(), Duration::from_secs(15));
    assert_eq!(p.budget_series(), Some(100000.0));
    let c = ValidatedPolicy::from_str(COST_FIRST, "policies/cost-first.yaml").unwrap();
    assert_eq!(c.name(), "cost-first");
    assert_eq!(c.initial_profile(), 1);
    assert_eq!(c.anomaly().unwrap().horizon, Duration::from_secs(20 * 60));
}

#[test]
fn shipped_files_validate_from_disk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let results = check_files(&[dir.join("default.yaml"), dir.join("cost-first.yaml")]);
    for (path, r) in results {
        if let Err(e) = r {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn default_file_matches_serde_defaults_and_core_example() {
    // The shipped default spells out the defaults; a minimal policy with the same ladder
    // must produce the same engine configuration.
    let full = ValidatedPolicy::from_str(DEFAULT, "d").unwrap();
    let mini = ValidatedPolicy::from_str(
        "name: default\nbudget_series: 100000\nprofiles:\n  - {name: conservative, retention: 0.9}\n  - {name: balanced, retention: 0.6}\n  - {name: aggressive, retention: 0.35}\nbad_input: {fallback_profile: aggressive}\n",
        "m",
    )
    .unwrap();
    let tick = Duration::from_secs(15);
    assert_eq!(
        full.engine_config("p", 1e5, tick),
        mini.engine_config("p", 1e5, tick)
    );
    assert_eq!(full.signals(), mini.signals());
    // And it agrees with the core's example (anomaly section included), apart from the
    // fallback the file sets.
    let mut expected = EngineConfig::example(1e5);
    expected.pipeline = "p".to_string();
    expected.bad_input.fallback_profile = Some(2);
    assert_eq!(full.engine_config("p", 1e5, tick), expected);
}

#[test]
fn minimal_policy_gets_defaults() {
    let p = ValidatedPolicy::from_str(MINIMAL, "m").unwrap();
    assert_eq!(p.initial_profile(), 0);
    assert_eq!(p.budget_series(), None);
    assert_eq!(p.signals().group_by, "pipeline");
    let c = p.engine_config("edge", 5000.0, Duration::from_secs(15));
    assert_eq!(c.pipeline, "edge");
    assert_eq!(c.budget_series, 5000.0);
    assert_eq!(c.prediction.window, Duration::from_secs(120));
    assert_eq!(c.prediction.horizon, Duration::from_secs(15));
    assert_eq!(c.bad_input.fallback_profile, None);
    assert_eq!(c.bad_input.max_sample_age, Duration::from_secs(60));
}

#[test]
fn prediction_durations_reach_the_engine_unchanged() {
    let p = ValidatedPolicy::from_str(
        &minimal_with("prediction: { window: 100s, horizon: 0s, relax_window: 1s }\n"),
        "m",
    )
    .unwrap();
    // Whatever the tick: the engine measures durations on sample timestamps.
    for tick in [
        Duration::from_secs(15),
        Duration::from_secs(3600),
        Duration::ZERO,
    ] {
        let c = p.engine_config("p", 1.0, tick);
        assert_eq!(c.prediction.window, Duration::from_secs(100));
        assert_eq!(c.prediction.horizon, Duration::ZERO);
        assert_eq!(c.prediction.relax_window, Duration::from_secs(1));
    }
}

#[test]
fn windows_beyond_the_engine_history_are_rejected() {
    let e = ValidatedPolicy::from_str(
        &minimal_with("tick: 1s\nprediction: { relax_window: 10m }\n"),
        "m",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("prediction.relax_window: 10m spans more than 256 ticks of 1s"),
        "{e}"
    );
}

#[test]
fn a_trend_window_of_fewer_than_three_samples_is_rejected() {
    let e = ValidatedPolicy::from_str(
        &minimal_with("tick: 1m\nanomaly: { trend_window: 90s }\n"),
        "m",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("anomaly.trend_window: 1m30s is shorter than two ticks (1m); the trend needs at least three samples, so use at least 2m"),
        "{e}"
    );
}

#[test]
fn ladder_substitution_maps_by_name() {
    let p = ValidatedPolicy::from_str(DEFAULT, "d").unwrap();
    let ladder = vec![
        ProfileSpec {
            name: "none".into(),
            retention: 1.0,
        },
        ProfileSpec {
            name: "conservative".into(),
            retention: 0.8,
        },
        ProfileSpec {
            name: "heavy".into(),
            retention: 0.2,
        },
    ];
    let c = p.engine_config_with_ladder("p", 10.0, Duration::from_secs(15), &ladder);
    assert_eq!(c.profiles, ladder);
    assert_eq!(c.initial_profile, 1);
    assert_eq!(
        c.bad_input.fallback_profile,
        Some(2),
        "aggressive missing -> most reducing"
    );
    let other = vec![ProfileSpec {
        name: "x".into(),
        retention: 0.5,
    }];
    let c = p.engine_config_with_ladder("p", 10.0, Duration::from_secs(15), &other);
    assert_eq!(
        (c.initial_profile, c.bad_input.fallback_profile),
        (0, Some(0))
    );
    let c = p.engine_config_with_ladder("p", 10.0, Duration::from_secs(15), &[]);
    assert_eq!((c.initial_profile, c.bad_input.fallback_profile), (0, None));
}

#[test]
fn unknown_field_has_line_and_column() {
    let text = minimal_with("guards:\n  min_dwell:\n    relax: 2m\n    relaxx: 3m\n");
    let ls = lines(&text);
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert!(
        ls[0].starts_with("x.yaml:8:5: guards.min_dwell.relaxx: unknown field `relaxx`"),
        "{ls:?}"
    );
}

#[test]
fn unknown_top_level_field() {
    let ls = lines(&minimal_with("tikc: 15s\n"));
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert!(
        ls[0].starts_with("x.yaml:5:1: tikc: unknown field `tikc`, expected one of: name,"),
        "{ls:?}"
    );
}

#[test]
fn zero_relax_dwell_message() {
    let text = minimal_with("guards:\n  min_dwell:\n    escalate: 0s\n    relax: 0s\n");
    assert_eq!(
        lines(&text),
        vec!["x.yaml:8:5: guards.min_dwell.relax: 0s must be > 0"]
    );
}

#[test]
fn every_problem_at_once() {
    let text = "\
name: Bad Name
target_ratio: 1.5
tick: 0s
profiles:
  - { name: a, retention: 0.5 }
  - { name: a, retention: 0.9 }
initial_profile: zzz
pid: { i_limit: 0.5, output_limit: 0.1 }
guards:
  min_dwell: { relax: 0s }
  switch_budget: { max_switches: 1 }
bad_input: { fallback_after: 0s, fallback_profile: nope }
";
    let ls = lines(text);
    let expect = [
        "x.yaml:1:1: name: \"Bad Name\" must be",
        "x.yaml:2:1: target_ratio: 1.5 must be in (0, 1]",
        "x.yaml:3:1: tick: 0s must be in [1s, 1h]",
        "x.yaml:6:7: profiles[1].name: \"a\" is already the name of profiles[0]",
        "x.yaml:6:16: profiles[1].retention: 0.9 must be < 0.5 (profiles[0].retention)",
        "x.yaml:7:1: initial_profile: \"zzz\" is not a profile; expected one of: a",
        "x.yaml:8:8: pid.i_limit: 0.5 must be <= pid.output_limit (0.1)",
        "x.yaml:10:16: guards.min_dwell.relax: 0s must be > 0",
        "x.yaml:11:20: guards.switch_budget.max_switches: 1 must be >= 2",
        "x.yaml:12:34: bad_input.fallback_profile: \"nope\" is not a profile",
    ];
    assert_eq!(ls.len(), expect.len(), "{ls:#?}");
    for (l, e) in ls.iter().zip(expect) {
        assert!(
            l.starts_with(e),
            "got {l:?}, want prefix {e:?}\nall: {ls:#?}"
        );
    }
}

#[test]
fn type_errors_in_several_sections_are_all_reported() {
    let text = "\
name: t
tick: 15
profiles:
  - { name: a, retention: high }
  - { name: b, retention: 0.5 }
pid: { kp: fast }
hysteresis: { escalate_above: 0.95, relax_below: 0.99 }
bogus: 1
";
    let ls = lines(text);
    assert_eq!(ls.len(), 5, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:2:7: tick: invalid duration `15`: missing unit"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with("x.yaml:4:27: profiles[0].retention: invalid type: string \"high\""),
        "{ls:#?}"
    );
    assert!(
        ls[2].starts_with("x.yaml:6:12: pid.kp: invalid type"),
        "{ls:#?}"
    );
    // Semantic checks still run on the sections that parsed.
    assert!(
        ls[3].starts_with(
            "x.yaml:7:37: hysteresis.relax_below: 0.99 must be < hysteresis.escalate_above (0.95)"
        ),
        "{ls:#?}"
    );
    assert!(
        ls[4].starts_with("x.yaml:8:1: bogus: unknown field"),
        "{ls:#?}"
    );
}

#[test]
fn inverted_hysteresis() {
    let ls = lines(&minimal_with(
        "hysteresis:\n  escalate_above: 0.8\n  relax_below: 0.95\n",
    ));
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0]
            .starts_with("x.yaml:6:3: hysteresis.escalate_above: 0.8 must be > target_ratio (0.9)"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with(
            "x.yaml:7:3: hysteresis.relax_below: 0.95 must be < hysteresis.escalate_above (0.8)"
        ),
        "{ls:#?}"
    );
}

#[test]
fn hard_ratio_must_exceed_escalate_above() {
    let ls = lines(&minimal_with(
        "guards: { emergency: { hard_ratio: 0.95 } }\n",
    ));
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(
        ls[0].contains("guards.emergency.hard_ratio: 0.95 must be > hysteresis.escalate_above (1)"),
        "{ls:#?}"
    );
}

#[test]
fn bad_promql_and_lost_grouping() {
    let text = minimal_with(
        "signals:\n  input: 'sum by (pipeline) (rate(x[1m]'\n  output: 'sum(y)'\n  group_by: pipeline\n",
    );
    let ls = lines(&text);
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:6:3: signals.input: invalid PromQL:"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with("x.yaml:7:3: signals.output: `sum` without `by (pipeline)`"),
        "{ls:#?}"
    );

    let ls = lines(&minimal_with(
        "signals: { output: 'sum by (job) (y)', input: 'x[5m]' }\n",
    ));
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0].contains("signals.output: `sum by (job)` drops the `pipeline` label"),
        "{ls:#?}"
    );
    assert!(
        ls[1].contains("signals.input: must return an instant vector"),
        "{ls:#?}"
    );

    // Shapes that keep the label pass.
    for q in [
        "sum without (instance) (x)",
        "(sum by (pipeline, job) (x)) / 2",
        "topk(3, x)",
        "sum by (pipeline) (a) / sum by (pipeline) (b)",
        "x",
    ] {
        let t = minimal_with(&format!("signals: {{ output: '{q}' }}\n"));
        assert!(ValidatedPolicy::from_str(&t, "q").is_ok(), "{q}");
    }
    let ls = lines(&minimal_with("signals: { group_by: 'my-label' }\n"));
    assert!(
        ls[0].contains("signals.group_by: \"my-label\" must be a Prometheus label name"),
        "{ls:#?}"
    );
}

#[test]
fn retention_not_decreasing() {
    let text = "\
name: r
profiles:
  - name: a
    retention: 0.6
  - name: b
    retention: 0.6
  - name: c
    retention: 1.2
";
    let ls = lines(text);
    assert_eq!(
        ls,
        vec![
            "x.yaml:6:5: profiles[1].retention: 0.6 must be < 0.6 (profiles[0].retention): profiles are ordered from least to most reducing, so retention must strictly decrease",
            "x.yaml:8:5: profiles[2].retention: 1.2 must be in (0, 1]",
        ]
    );
}

#[test]
fn ladder_too_short_and_bad_names() {
    let ls = lines("name: s\nprofiles:\n  - { name: Only, retention: 0.5 }\n");
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:2:1: profiles: the ladder needs at least 2 profiles"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with("x.yaml:3:7: profiles[0].name: \"Only\" must be"),
        "{ls:#?}"
    );
}

#[test]
fn missing_required_fields() {
    let ls = lines("tick: 15s\n");
    assert_eq!(
        ls,
        vec![
            "x.yaml: name: required field is missing",
            "x.yaml: profiles: required field is missing"
        ]
    );
    let ls = lines("name: x\nprofiles:\n  - { name: a }\n  - { name: b, retention: 0.5 }\n");
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:3:5: profiles[0].retention: required field is missing"),
        "{ls:#?}"
    );
}

#[test]
fn duplicate_keys_are_located() {
    let ls = lines(&minimal_with(
        "guards:\n  min_dwell: { relax: 1m, relax: 2m }\n",
    ));
    assert_eq!(
        ls,
        vec!["x.yaml:6:27: guards.min_dwell.relax: duplicate key; each key may appear only once"]
    );
}

#[test]
fn syntax_error_is_one_located_line() {
    let ls = lines("name: x\nprofiles: [\n");
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(ls[0].starts_with("x.yaml:3:1: "), "{ls:#?}");
    assert!(
        !ls[0].contains(" at line "),
        "location is not repeated: {ls:#?}"
    );
}

#[test]
fn non_finite_and_negative_values() {
    let ls = lines(&minimal_with(
        "target_ratio: .nan\nbudget_series: -5\npid: { ki: .inf }\nguards: { min_dwell: { relax: -5s } }\n",
    ));
    assert_eq!(ls.len(), 4, "{ls:#?}");
    assert!(
        ls[0].contains("target_ratio: NaN (not a finite number) must be in (0, 1]"),
        "{ls:#?}"
    );
    assert!(
        ls[1].contains("budget_series: -5 must be in [1, 1e12]"),
        "{ls:#?}"
    );
    assert!(
        ls[2].contains("pid.ki: inf (not a finite number) must be >= 0"),
        "{ls:#?}"
    );
    assert!(
        ls[3].contains(
            "guards.min_dwell.relax: invalid duration `-5s`: durations cannot be negative"
        ),
        "{ls:#?}"
    );
}

#[test]
fn huge_values() {
    let ls = lines(&minimal_with(
        "budget_series: 1e400\nsettle: 99999999999999\nguards: { override: { max_ttl: 99999999999999999999h } }\nprediction: { window: 400d }\n",
    ));
    assert_eq!(ls.len(), 4, "{ls:#?}");
    assert!(
        ls.iter()
            .any(|l| l.contains("settle: invalid duration `99999999999999`: missing unit")),
        "{ls:#?}"
    );
    assert!(
        ls.iter()
            .any(|l| l.contains("guards.override.max_ttl: invalid duration")),
        "{ls:#?}"
    );
    assert!(
        ls.iter()
            .any(|l| l.contains("prediction.window: 400d must be <= 30d")),
        "{ls:#?}"
    );
    assert!(ls.iter().any(|l| l.contains("budget_series:")), "{ls:#?}");
}

#[test]
fn io_error_names_the_file_and_a_fix() {
    let e = ValidatedPolicy::from_file(Path::new("policies/does-not-exist.yaml")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot read policies/does-not-exist.yaml: "),
        "{msg}"
    );
    assert_eq!(
        msg,
        "cannot read policies/does-not-exist.yaml: No such file or directory (check the path)"
    );
    assert!(e.problems().is_empty());
}

#[test]
fn from_file_reports_against_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, minimal_with("settle: -1s\n")).unwrap();
    let e = ValidatedPolicy::from_file(&path).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(p.path, path.display().to_string());
    assert_eq!(
        (p.line, p.col, p.field.as_str()),
        (Some(5), Some(9), "settle")
    );
    let results = check_files(&[path.clone(), dir.path().to_path_buf()]);
    assert!(matches!(results[0].1, Err(PolicyError::Invalid { .. })));
    assert!(matches!(results[1].1, Err(PolicyError::Io { .. })));
}

#[test]
fn garbage_never_panics() {
    let mut inputs: Vec<String> = [
        "",
        "   \n# only a comment\n",
        "---\n",
        "- 1\n- 2\n",
        "just a string",
        "42",
        "name:\n",
        "name: [a, b]\nprofiles: {a: 1}\n",
        "name: x\nprofiles: [1, 2, 3]\n",
        "name: x\nprofiles:\n  - ~\n  - []\n",
        "? [complex]\n: key\n",
        "&a name: *a\n",
        "name: &n x\nprofiles: *n\n",
        "name: x\n---\nname: y\n",
        "\t\tname: x",
        "name: \"unterminated\n",
        "!!binary aGVsbG8=",
        "name: x\nprofiles:\n  - {name: a, retention: 0.9}\n  - {name: b, retention: 0.1}\nsignals: {input: '{{{{', output: ')))'}\n",
        "name: x\nprofiles:\n  - {name: a, retention: 0.9}\n  - {name: b, retention: 0.1}\nsignals: {input: 'sum by (pipeline) (x) offset -1h @ end()', output: 'label_replace(x, \"a\", \"b\", \"c\", \"(\")'}\n",
        "name: x\nprofiles:\n  - {name: a, retention: 0.9}\n  - {name: b, retention: 0.1}\npid: {kp: 1e308, ki: -0.0, kd: 1e-320}\n",
        "\u{feff}name: x\n",
        "name: \"\\u0000\"\nprofiles: []\n",
        "1: 2\n3: 4\n",
        "null: x\n",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    inputs.push("[".repeat(100_000));
    inputs.push("- ".repeat(200_000));
    inputs.push("a:\n".repeat(5_000));
    inputs.push(
        (0..300)
            .map(|i| format!("{}- x\n", " ".repeat(i * 2)))
            .collect(),
    );
    inputs.push(format!("name: {}\n", "é".repeat(10_000)));
    // Mutations of the shipped file: truncations and byte flips.
    for cut in (0..DEFAULT.len()).step_by(97) {
        if DEFAULT.is_char_boundary(cut) {
            inputs.push(DEFAULT[..cut].to_string());
        }
    }
    for (i, c) in [
        ':', '[', '{', '-', '"', '\'', '\t', '&', '*', '!', '|', '>', '%',
    ]
    .iter()
    .cycle()
    .take(200)
    .enumerate()
    {
        let mut s = DEFAULT.to_string();
        let pos = (i * 131) % s.len();
        if s.is_char_boundary(pos) {
            s.insert(pos, *c);
            inputs.push(s);
        }
    }
    for text in &inputs {
        match ValidatedPolicy::from_str(text, "fuzz.yaml") {
            Ok(_) => {}
            Err(e) => {
                assert!(
                    !e.problems().is_empty(),
                    "an error always has a reason: {text:?}"
                );
                for line in e.to_string().lines() {
                    assert!(line.starts_with("fuzz.yaml"), "{line}");
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_quickly() {
    for text in [
        "[".repeat(1_000_000),
        "- ".repeat(500_000),
        (0..1000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect(),
    ] {
        let start = std::time::Instant::now();
        let e = ValidatedPolicy::from_str(&text, "x.yaml").unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        assert_eq!(e.problems().len(), 1, "{e}");
    }
}

#[test]
fn anomaly_section_parses_and_converts_to_ticks() {
    let p = ValidatedPolicy::from_str(
        &minimal_with(
            "anomaly:\n  enabled: true\n  detector: mad\n  signals: [output]\n  threshold: 0.7\n  request_emergency: false\n  trend_window: 100s\n  horizon: 5m\n",
        ),
        "m",
    )
    .unwrap();
    let spec = p.anomaly().unwrap();
    assert_eq!(spec.trend_window, Duration::from_secs(100));
    assert_eq!(spec.horizon, Duration::from_secs(300));
    let a = p
        .engine_config("p", 1e4, Duration::from_secs(15))
        .anomaly
        .unwrap();
    assert_eq!(
        a,
        AnomalyConfig {
            detector: DetectorKind::Mad,
            watch_input: false,
            watch_output: true,
            threshold: 0.7,
            request_emergency: false,
            trend_window: Duration::from_secs(100),
            horizon: Duration::from_secs(300),
        }
    );
    // Another tick, as the simulator may use: the same durations.
    let a = p
        .engine_config("p", 1e4, Duration::from_secs(60))
        .anomaly
        .unwrap();
    assert_eq!(
        (a.trend_window, a.horizon),
        (Duration::from_secs(100), Duration::from_secs(300))
    );
    // Through the simulator's path too.
    let c = p.engine_config_with_ladder("p", 1e4, Duration::from_secs(15), p.profiles());
    assert_eq!(c.anomaly.unwrap().detector, DetectorKind::Mad);
}

#[test]
fn anomaly_defaults_come_from_the_core_example() {
    let p = ValidatedPolicy::from_str(MINIMAL, "m").unwrap();
    let tick = Duration::from_secs(15);
    assert_eq!(
        p.engine_config("p", 1e5, tick).anomaly,
        EngineConfig::example(1e5).anomaly
    );
    let spec = p.anomaly().unwrap();
    assert_eq!(spec.trend_window, Duration::from_secs(120));
    assert_eq!(spec.horizon, Duration::from_secs(30));
    assert_eq!(spec.threshold, crate::core::anomaly::DEFAULT_THRESHOLD);
    // A partial section keeps the other defaults.
    let p = ValidatedPolicy::from_str(&minimal_with("anomaly: { horizon: 30m }\n"), "m").unwrap();
    let a = p.engine_config("p", 1e5, tick).anomaly.unwrap();
    assert_eq!(a.horizon, Duration::from_secs(1800));
    assert_eq!(
        a.trend_window,
        EngineConfig::example(1e5).anomaly.unwrap().trend_window
    );
    // Every detector name is accepted.
    for name in ["zscore", "mad", "ewma", "trend", "seasonal", "ensemble"] {
        let t = minimal_with(&format!("anomaly: {{ detector: {name} }}\n"));
        assert!(ValidatedPolicy::from_str(&t, "d").is_ok(), "{name}");
    }
}

#[test]
fn anomaly_disabled_gives_none() {
    let p = ValidatedPolicy::from_str(
        &minimal_with("anomaly:\n  enabled: false\n  detector: trend\n"),
        "m",
    )
    .unwrap();
    assert_eq!(p.anomaly(), None);
    let tick = Duration::from_secs(15);
    assert_eq!(p.engine_config("p", 1e5, tick).anomaly, None);
    assert_eq!(
        p.engine_config_with_ladder("p", 1e5, tick, p.profiles())
            .anomaly,
        None
    );
    // A disabled section is still checked, so turning it on cannot surface old mistakes.
    let ls = lines(&minimal_with("anomaly: { enabled: false, threshold: 2 }\n"));
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:5:28: anomaly.threshold: 2 must be in (0, 1]"),
        "{ls:#?}"
    );
}

#[test]
fn anomaly_unknown_detector_lists_the_names() {
    let ls = lines(&minimal_with("anomaly:\n  detector: isolation_forest\n"));
    assert_eq!(
        ls,
        vec![
            "x.yaml:6:13: anomaly.detector: unknown variant `isolation_forest`, expected one of `zscore`, `mad`, `ewma`, `trend`, `seasonal`, `ensemble`"
        ]
    );
}

#[test]
fn anomaly_signals_must_be_a_nonempty_set_of_known_signals() {
    let ls = lines(&minimal_with("anomaly:\n  signals: []\n"));
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(
        ls[0].starts_with(
            "x.yaml:6:3: anomaly.signals: the list is empty; it must be a non-empty subset of [input, output]"
        ),
        "{ls:#?}"
    );

    let ls = lines(&minimal_with(
        "anomaly:\n  signals: [output, input, output]\n",
    ));
    assert_eq!(
        ls,
        vec![
            "x.yaml:6:28: anomaly.signals[2]: `output` is already listed at anomaly.signals[0]; each of input, output may appear once"
        ]
    );

    let ls = lines(&minimal_with(
        "anomaly:\n  signals:\n    - input\n    - demand\n",
    ));
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert!(
        ls[0].starts_with(
            "x.yaml:8:7: anomaly.signals[1]: unknown variant `demand`, expected `input` or `output`"
        ),
        "{ls:#?}"
    );
}

#[test]
fn anomaly_ranges() {
    for (v, want) in [
        ("0", "0 must be in (0, 1]"),
        ("-0.1", "-0.1 must be in (0, 1]"),
        ("1.01", "1.01 must be in (0, 1]"),
        (".nan", "NaN (not a finite number) must be in (0, 1]"),
    ] {
        let ls = lines(&minimal_with(&format!("anomaly:\n  threshold: {v}\n")));
        assert_eq!(ls, vec![format!("x.yaml:6:3: anomaly.threshold: {want}")]);
    }
    // The extremes of the range are fine.
    for v in ["1", "1e-9"] {
        let t = minimal_with(&format!("anomaly: {{ threshold: {v} }}\n"));
        assert!(ValidatedPolicy::from_str(&t, "t").is_ok(), "{v}");
    }
    let ls = lines(&minimal_with("anomaly:\n  horizon: 0s\n"));
    assert_eq!(ls, vec!["x.yaml:6:3: anomaly.horizon: 0s must be > 0"]);
    let ls = lines(&minimal_with(
        "anomaly:\n  trend_window: 0s\n  horizon: 31d\n",
    ));
    assert_eq!(
        ls,
        vec![
            "x.yaml:6:3: anomaly.trend_window: 0s must be > 0",
            "x.yaml:7:3: anomaly.horizon: 31d must be <= 30d",
        ]
    );
}

#[test]
fn anomaly_problems_come_with_the_rest() {
    let text = "\
name: t
profiles:
  - { name: a, retention: 0.9 }
  - { name: b, retention: 0.5 }
hysteresis: { escalate_above: 0.95, relax_below: 0.99 }
anomaly:
  signals: [input, input]
  threshold: 0
  horizon: 0s
  trend_windw: 2m
";
    // The unknown key makes the section a parse error, reported alone; the rest is still
    // checked.
    let ls = lines(text);
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:5:37: hysteresis.relax_below"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with("x.yaml:10:3: anomaly.trend_windw: unknown field `trend_windw`, expected one of `enabled`, `detector`, `signals`, `threshold`, `request_emergency`, `trend_window`, `horizon`"),
        "{ls:#?}"
    );
    // Without it, every semantic problem in the section is reported at once.
    let cut = text.replace("  trend_windw: 2m\n", "");
    let ls = lines(&cut);
    assert_eq!(ls.len(), 4, "{ls:#?}");
    assert!(
        ls[1].starts_with("x.yaml:7:20: anomaly.signals[1]: `input` is already listed"),
        "{ls:#?}"
    );
    assert!(
        ls[2].starts_with("x.yaml:8:3: anomaly.threshold: 0 must be in (0, 1]"),
        "{ls:#?}"
    );
    assert!(
        ls[3].starts_with("x.yaml:9:3: anomaly.horizon: 0s must be > 0"),
        "{ls:#?}"
    );
    // The section name is known at the top level.
    let ls = lines(&minimal_with("anomaly: { enabled: yes }\nanomalies: {}\n"));
    assert_eq!(ls.len(), 2, "{ls:#?}");
    assert!(
        ls[0].starts_with("x.yaml:5:21: anomaly.enabled: invalid type"),
        "{ls:#?}"
    );
    assert!(
        ls[1].starts_with("x.yaml:6:1: anomalies: unknown field"),
        "{ls:#?}"
    );
    assert!(ls[1].ends_with("settle, anomaly"), "{ls:#?}");
}

#[test]
fn shipped_default_has_fragments_for_every_profile_and_no_warnings() {
    let p = ValidatedPolicy::from_str(DEFAULT, "policies/default.yaml").unwrap();
    assert_eq!(
        p.warnings(),
        &[] as &[Problem],
        "the shipped policy must check clean"
    );
    for prof in p.profiles() {
        let f = p.fragments(&prof.name).unwrap();
        let prom = f.prometheus.as_ref().unwrap();
        assert!(prom.sample.is_some(), "{}", prof.name);
        let otel = f.otelcol.as_ref().unwrap();
        assert_eq!(otel.insert_before.as_deref(), Some("batch"));
        assert!(!otel.processors.is_empty());
    }
    assert!(p.fragments("nope").is_none());
    assert_eq!(p.safe_to_drop_labels().len(), 3);
    // cost-first has no fragments: the file backend only.
    let c = ValidatedPolicy::from_str(COST_FIRST, "policies/cost-first.yaml").unwrap();
    assert!(
        c.all_fragments()
            .iter()
            .all(|f| f.prometheus.is_none() && f.otelcol.is_none())
    );
    let m = ValidatedPolicy::from_str(MINIMAL, "m").unwrap();
    assert_eq!(
        m.all_fragments(),
        &[ProfileFragments::default(), ProfileFragments::default()]
    );
}

#[test]
fn fragment_problems_all_at_once_with_the_ladder() {
    let text = "\
name: t
safe_to_drop_labels: [pod_uid]
profiles:
  - name: a
    retention: 0.5
    prometheus:
      drop_metrics: ['(']
      drop_labels: [secret]
  - name: b
    retention: 0.9
    prometheus:
      sample: { label: id, modulus: 10 }
    otelcol:
      processors:
        filter:
          metrics:
            datapoint: ['delete_key(attributes, \"x\")']
  - name: c
    retention: 0.3
    prometheus: { dorp_metrics: [x] }
    otelcol: { insert_before: [a] }
";
    let ls = lines(text);
    assert_eq!(ls.len(), 7, "{ls:#?}");
    assert!(
        ls[0].starts_with(
            "x.yaml:7:22: profiles[0].prometheus.drop_metrics[0]: invalid regex \"(\""
        ),
        "{ls:#?}"
    );
    assert!(ls[1].starts_with("x.yaml:8:21: profiles[0].prometheus.drop_labels[0]: \"secret\" is not declared in safe_to_drop_labels"), "{ls:#?}");
    assert!(
        ls[2].starts_with("x.yaml:10:5: profiles[1].retention: 0.9 must be < 0.5"),
        "{ls:#?}"
    );
    assert!(
        ls[3].starts_with(
            "x.yaml:12:28: profiles[1].prometheus.sample.modulus: modulus needs `keep`"
        ),
        "{ls:#?}"
    );
    assert!(ls[4].starts_with("x.yaml:17:25: profiles[1].otelcol.processors.filter.metrics.datapoint[0]: `delete_key(...)` is a transform statement"), "{ls:#?}");
    assert!(
        ls[5].contains("profiles[2].prometheus.dorp_metrics: unknown field `dorp_metrics`"),
        "{ls:#?}"
    );
    assert!(
        ls[6].contains(
            "profiles[2].otelcol.insert_before: invalid type: sequence, expected a string"
        ),
        "{ls:#?}"
    );
}

#[test]
fn labeldrop_that_could_merge_series_is_a_located_warning() {
    let text = "\
name: t
safe_to_drop_labels:
  - pod_uid
  - { label: container_id, determined_by: [pod] }
  - { label: pod, determined_by: [pod_ip] }
profiles:
  - name: a
    retention: 0.9
    prometheus:
      drop_labels: [container_id]
  - name: b
    retention: 0.5
    prometheus:
      drop_labels: [pod_uid, container_id, pod]
";
    let p = ValidatedPolicy::from_str(text, "w.yaml").unwrap();
    let ws: Vec<String> = p.warnings().iter().map(Problem::to_string).collect();
    assert_eq!(ws.len(), 2, "{ws:#?}");
    assert!(ws[0].starts_with("w.yaml:14:21: profiles[1].prometheus.drop_labels[0]: dropping \"pod_uid\" could merge series"), "{ws:#?}");
    assert!(ws[1].starts_with("w.yaml:14:30: profiles[1].prometheus.drop_labels[1]: dropping \"container_id\" could merge series: it is safe only while \"pod\" stays"), "{ws:#?}");
    // Safe-label declarations are checked too.
    let ls = lines(&minimal_with(
        "safe_to_drop_labels: [__name__, { label: a, determined_by: [a] }, a]\n",
    ));
    assert_eq!(ls.len(), 3, "{ls:#?}");
}
