//! The control validation protocol (`phoenix bench control`) as a regression test: the
//! default policy against the HPA and threshold baselines on the 35 NAB series with the
//! issue's flags, on their stressed variants and on the synthetic sweeps. It asserts the
//! acceptance the default meets and pins the pooled shared figures reported in
//! docs/control.md. The data set at `../shared/data/nab` is required (CI always has it):
//! without it the test fails, naming the path.

use phoenix::bench::control::{self, Candidate, ProtocolReport, Row, Settings};
use phoenix::policy::ValidatedPolicy;
use std::path::Path;
use std::sync::OnceLock;

/// NAB's data set, checked out next to the repository.
const NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");

/// The protocol's report for `policies/default.yaml`, computed once for every test.
fn report() -> &'static ProtocolReport {
    static REPORT: OnceLock<ProtocolReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let data = Path::new(NAB).join("data");
        assert!(
            data.is_dir(),
            "{} not found: the NAB data set must be at {NAB} (../shared/data/nab next to the repository)",
            data.display()
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let policy = ValidatedPolicy::from_file(&root.join("policies/default.yaml")).unwrap();
        let s = Settings::default();
        control::run_protocol(&s, &[Candidate::of(&policy, &s)], Path::new(NAB))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn group(suite: &str, name: &str) -> &'static control::GroupResult {
    report()
        .groups
        .iter()
        .find(|g| g.suite == suite && g.group == name)
        .unwrap_or_else(|| panic!("no group {suite}/{name}"))
}

fn row<'a>(g: &'a control::GroupResult, controller: &str) -> &'a Row {
    g.rows.iter().find(|r| r.controller == controller).unwrap()
}

#[test]
fn the_shared_set_has_35_series_in_4_categories() {
    let shared: Vec<_> = report()
        .traces
        .iter()
        .filter(|t| t.suite == "shared")
        .collect();
    assert_eq!(shared.len(), 35, "the shared NAB subset has 35 series");
    assert_eq!(group("shared", "pooled").traces, 35);
}

/// What the default meets against HPA on the pooled shared set: at least its retention,
/// and flaps under a tenth of the threshold baseline's. It does not dominate HPA there
/// (switches +0.07/h, 4% more): docs/control.md shows the frontier.
#[test]
fn default_policy_keeps_at_least_hpas_retention_on_the_pooled_shared_set() {
    let g = group("shared", "pooled");
    eprintln!("{}", control::render(report(), false));
    let v = &g.verdict;
    assert!(v.retention_ok, "retention {:+}", v.delta.2);
    assert!(v.flaps_ok, "flaps over 10% of the threshold baseline's");
}

/// The failure: retention lost to HPA on series unlike the shared ones (hourly,
/// irregular). On every shared category and stressed variant the default now keeps
/// within 0.004 of HPA's retention (it lost 0.12 on the hourly variants before: its relax
/// streak restarted at every gap longer than a minute and never completed), and the
/// worst shortfalls on the other two criteria are the documented ones (time over budget
/// +0.026 points and switches +0.179/h, both on realAWSCloudwatch; before the trend line
/// and the coarse-sampling forecast +0.068 on hourly-dropouts and +0.257).
#[test]
fn worst_case_over_categories_and_variants_is_bounded() {
    for g in report().groups.iter().filter(|g| g.suite != "synthetic") {
        let (time, switches, retention) = g.verdict.delta;
        let name = format!("{}/{}", g.suite, g.group);
        assert!(retention >= -0.004, "{name}: retention {retention:+}");
        assert!(time <= 0.03, "{name}: time over budget {time:+}");
        assert!(switches <= 0.18, "{name}: switches per hour {switches:+}");
    }
}

/// Pooled shared figures of `policies/default.yaml` (over budget %, switches/h, retention),
/// as docs/control.md reports them.
const POOLED_DEFAULT: (f64, f64, f64) = (0.355, 1.921, 0.7125);
/// The same for the HPA baseline (unchanged: the baselines are fixed).
const POOLED_HPA: (f64, f64, f64) = (0.363, 1.851, 0.7074);

/// The pooled figures docs/control.md reports (rounded as printed there).
#[test]
fn pooled_shared_figures_are_the_documented_ones() {
    let g = group("shared", "pooled");
    let p = row(g, "default");
    let h = row(g, "hpa");
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let r4 = |x: f64| (x * 10000.0).round() / 10000.0;
    assert_eq!(
        (
            r3(p.time_over_budget_pct),
            r3(p.switches_per_hour),
            r4(p.retention)
        ),
        POOLED_DEFAULT
    );
    assert_eq!(
        (
            r3(h.time_over_budget_pct),
            r3(h.switches_per_hour),
            r4(h.retention)
        ),
        POOLED_HPA
    );
}

/// Explosions that stop below the capacity of the profile in force make no emergency;
/// real ones (ten times the series, within what the most reducing profile carries) are
/// kept under budget on every trace, by the explosion rule or by the ladder's prediction
/// when it escalates first, and the rule fires on some of them.
#[test]
fn explosions_below_capacity_make_no_emergency_and_real_ones_are_caught() {
    let mut fired = 0;
    for t in report().traces.iter().filter(|t| t.suite == "synthetic") {
        let r = &t.rows[0];
        match t.group.as_str() {
            "explosion-below-capacity" => assert_eq!(r.emergencies, 0.0, "{}", t.trace),
            "explosion-real" => {
                assert_eq!(r.time_over_budget_pct, 0.0, "{}", t.trace);
                fired += (r.emergencies > 0.0) as usize;
            }
            _ => {}
        }
    }
    assert!(
        fired > 0,
        "the explosion rule never fired on a real explosion"
    );
}

/// Flaps stay far below the threshold baseline's on every judged group.
#[test]
fn flaps_stay_under_a_tenth_of_the_threshold_baseline() {
    for g in report().groups.iter().filter(|g| g.suite != "synthetic") {
        assert!(g.verdict.flaps_ok, "{}/{}", g.suite, g.group);
    }
}
