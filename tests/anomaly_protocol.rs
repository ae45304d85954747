//! The anomaly validation protocol (`phoenix bench anomaly`) on the shared NAB corpus and
//! every stressed variant: asserts the figures docs/anomaly-validation.md reports for the
//! default detector and the baselines (the whole protocol takes about ten seconds in a
//! debug build). Fails, never skips, when the data set is missing.

use phoenix::bench::anomaly_protocol::{
    self as protocol, BaselineKind, Candidate, Outcome, REFRACTORY,
};
use phoenix::bench::nab::Corpus;
use phoenix::bench::variants::Variant;
use phoenix::core::anomaly::{DEFAULT_THRESHOLD, EnsembleParams};
use std::path::Path;

/// NAB's data set, next to the repository. Required: a missing data set fails.
const NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");

fn corpus() -> Corpus {
    let dir = Path::new(NAB);
    assert!(
        dir.join("labels/combined_windows.json").is_file(),
        "the NAB data set is missing at {NAB}: the protocol test needs it (it never skips)"
    );
    let c = Corpus::load(dir).expect("load the NAB corpus");
    assert_eq!(c.files.len(), 35, "the shared NAB subset has 35 series");
    c
}

fn standard(o: &Outcome, v: Variant) -> f64 {
    o.by_variant()
        .into_iter()
        .find(|(k, _)| *k == v)
        .and_then(|(_, g)| g.standard())
        .unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 0.005,
        "{what}: measured {got:.2}, docs say {want:.2}"
    );
}

#[test]
fn the_protocol_figures_are_those_the_docs_report() {
    let corpus = corpus();
    let cases = protocol::cases(&corpus, &Variant::ALL);
    let ours = protocol::evaluate(
        &Candidate::Ensemble {
            params: EnsembleParams::default(),
            threshold: DEFAULT_THRESHOLD,
        },
        &cases,
    );
    let want: [(Variant, f64); 5] = FIGURES;
    for (v, s) in want {
        close(standard(&ours, v), s, v.name());
    }
    let grid = protocol::baseline_grid();
    for (kind, t, pooled) in BASELINES {
        let threshold = protocol::choose_baseline_threshold(kind, REFRACTORY, &cases, &grid);
        assert_eq!(threshold, t, "{}", kind.name());
        let o = protocol::evaluate(
            &Candidate::Baseline {
                kind,
                threshold,
                refractory: REFRACTORY,
            },
            &cases,
        );
        close(o.pooled().standard().unwrap(), pooled, kind.name());
        assert!(
            ours.pooled().standard().unwrap() > pooled,
            "the default detector beats {} on the pooled protocol",
            kind.name()
        );
    }
    close(ours.pooled().standard().unwrap(), POOLED, "pooled");
    let (worst, _) = ours.worst().unwrap();
    assert_eq!(worst, Variant::HourlyDropouts);
}

/// Standard score per variant of the default detector (docs/anomaly-validation.md).
const FIGURES: [(Variant, f64); 5] = [
    (Variant::Original, 58.35),
    (Variant::Hourly, 51.42),
    (Variant::CropLast2000, 44.94),
    (Variant::Dropouts, 50.05),
    (Variant::HourlyDropouts, 41.08),
];
/// Pooled standard score of the default detector over every variant.
const POOLED: f64 = 49.66;
/// Each baseline's |z| threshold chosen on the original files, and its pooled score.
const BASELINES: [(BaselineKind, f64, f64); 2] = [
    (BaselineKind::RollingZ, 5.0, 32.39),
    (BaselineKind::WindowedGaussian, 3.75, 38.92),
];
