//! Property-style tests of every detector: bounded scores, warm-up, determinism, no alarm
//! on a constant series, exact continuation after a serde round trip, a clear spike
//! fires once, and the trend forecast of a straight line is exact.

use super::*;
use proptest::prelude::*;

/// Five minutes, the sampling interval of most NAB series.
const STEP_MS: i64 = 300_000;

/// Deterministic noise in [-1, 1) (SplitMix64), so the tests need no random source.
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A daily sine with noise, sampled every five minutes from a Monday.
fn daily(n: usize) -> Vec<(Timestamp, f64)> {
    let start = 1_396_224_000_000; // 2014-03-31T00:00:00Z
    (0..n)
        .map(|i| {
            let t = start + i as i64 * STEP_MS;
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            (
                Timestamp(t),
                100.0 + 20.0 * phase.sin() + 2.0 * noise(i as u64),
            )
        })
        .collect()
}

fn run(d: &mut Detector, pts: &[(Timestamp, f64)]) -> Vec<f64> {
    pts.iter().map(|&(t, v)| d.update(t, v)).collect()
}

/// Finite values of every magnitude, including zero, tiny and huge ones.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e6f64..1e6,
        -1.0f64..1.0,
        Just(0.0),
        -1e300f64..1e300,
        (-1e-300f64..1e-300),
        prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE
        ]),
    ]
}

/// Increasing timestamps with steps from one second to two hours.
fn series(max: usize) -> impl Strategy<Value = Vec<(Timestamp, f64)>> {
    prop::collection::vec((1_000i64..7_200_000, value()), 1..max).prop_map(|steps| {
        let mut t = 1_400_000_000_000i64;
        steps
            .into_iter()
            .map(|(dt, v)| {
                t += dt;
                (Timestamp(t), v)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scores_are_in_the_unit_interval_for_any_finite_input(pts in series(600)) {
        for kind in DetectorKind::ALL {
            let mut d = Detector::new(kind);
            for &(t, v) in &pts {
                let s = d.update(t, v);
                prop_assert!((0.0..=1.0).contains(&s), "{kind:?} scored {s} for {v}");
            }
        }
    }

    #[test]
    fn same_input_gives_the_same_scores(pts in series(400)) {
        for kind in DetectorKind::ALL {
            let a = run(&mut Detector::new(kind), &pts);
            let b = run(&mut Detector::new(kind), &pts);
            prop_assert_eq!(
                a.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn restored_state_continues_with_identical_scores(
        pts in series(500),
        cut in 0usize..500,
    ) {
        let cut = cut.min(pts.len());
        for kind in DetectorKind::ALL {
            let mut live = Detector::new(kind);
            run(&mut live, &pts[..cut]);
            let json = serde_json::to_string(&live).expect("serialise");
            let mut restored: Detector = serde_json::from_str(&json).expect("restore");
            prop_assert_eq!(&restored, &live);
            for &(t, v) in &pts[cut..] {
                prop_assert_eq!(live.update(t, v).to_bits(), restored.update(t, v).to_bits());
            }
        }
    }
}

#[test]
fn restore_mid_stream_on_a_long_realistic_series() {
    // Long enough for the seasonal profiles, the weekly switch and several cooldown
    // periods to be part of the saved state.
    let mut pts = daily(288 * 10);
    pts[288 * 9].1 += 500.0;
    for kind in DetectorKind::ALL {
        for cut in [0, 1, 287, 288 * 3 + 17, 288 * 8 + 5, 288 * 9 + 1] {
            let mut live = Detector::new(kind);
            run(&mut live, &pts[..cut]);
            let json = serde_json::to_string(&live).unwrap();
            let mut restored: Detector = serde_json::from_str(&json).unwrap();
            for &(t, v) in &pts[cut..] {
                assert_eq!(
                    live.update(t, v).to_bits(),
                    restored.update(t, v).to_bits(),
                    "{kind:?} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn no_score_before_warm_up() {
    // Spiky input, so anything that could score would.
    let pts: Vec<(Timestamp, f64)> = (0..2000)
        .map(|i| {
            let spike = if i % 7 == 0 { 1e4 } else { 0.0 };
            (Timestamp(i as i64 * STEP_MS), noise(i) + spike)
        })
        .collect();
    let warm_ups = [
        (DetectorKind::Zscore, ZScore::default().warm_up()),
        (DetectorKind::Mad, Mad::default().warm_up()),
        (DetectorKind::Ewma, Ewma::default().warm_up()),
        (DetectorKind::Trend, Trend::default().warm_up()),
        (DetectorKind::Ensemble, Ensemble::default().warm_up()),
    ];
    for (kind, n) in warm_ups {
        let scores = run(&mut Detector::new(kind), &pts);
        assert!(scores[..n].iter().all(|&s| s == 0.0), "{kind:?} before {n}");
        assert!(
            scores[n..].iter().any(|&s| s > 0.0),
            "{kind:?} never scores"
        );
    }
    assert_eq!(ZScore::default().warm_up(), 288 + 11);
    assert_eq!(Ensemble::default().warm_up(), 100 + 11);
    // Seasonal: nothing for the first day of timestamps, whatever the number of points.
    let scores = run(&mut Detector::new(DetectorKind::Seasonal), &pts);
    assert!(scores[..288].iter().all(|&s| s == 0.0));
    assert!(scores[288..].iter().any(|&s| s > 0.0));
}

#[test]
fn a_constant_series_never_scores() {
    for c in [0.0, 45.0, -3.5, 1e12, -1e-9] {
        for kind in DetectorKind::ALL {
            let mut d = Detector::new(kind);
            for i in 0..288 * 9 {
                let s = d.update(Timestamp(i * STEP_MS), c);
                assert_eq!(s, 0.0, "{kind:?} at {i} on constant {c}");
            }
        }
    }
}

#[test]
fn a_clear_spike_fires_once() {
    // A noisy level (every detector's home ground) with one spike on the third day, once
    // every detector is warm and none has fired on the noise yet.
    let mut pts: Vec<(Timestamp, f64)> = (0..288 * 3)
        .map(|i| (Timestamp(i as i64 * STEP_MS), 50.0 + noise(i as u64)))
        .collect();
    let at = 288 * 2 + 200;
    pts[at].1 += 40.0;
    for kind in DetectorKind::ALL {
        let scores = run(&mut Detector::new(kind), &pts);
        let fired: Vec<usize> = (0..pts.len())
            .filter(|&i| scores[i] >= DEFAULT_THRESHOLD)
            .collect();
        assert!(
            fired.contains(&at),
            "{kind:?} missed the spike (fired at {fired:?}, score {})",
            scores[at]
        );
        // One event, one flag: nothing else in the following quiet period.
        let after = fired.iter().filter(|&&i| i > at && i <= at + 150).count();
        assert_eq!(after, 0, "{kind:?} latched: {fired:?}");
    }
}

#[test]
fn the_seasonal_detectors_see_a_spike_inside_a_daily_rhythm() {
    // +15 at the trough of a ±20 daily swing: unremarkable against the day's range,
    // clear against the time-of-day profile.
    let mut pts = daily(288 * 4);
    let at = 288 * 3 + 216;
    pts[at].1 += 15.0;
    for kind in [DetectorKind::Seasonal, DetectorKind::Ensemble] {
        let scores = run(&mut Detector::new(kind), &pts);
        assert!(scores[at] >= DEFAULT_THRESHOLD, "{kind:?}: {}", scores[at]);
    }
    let zscore = run(&mut Detector::new(DetectorKind::Zscore), &pts);
    assert!(zscore[at] < DEFAULT_THRESHOLD);
}

#[test]
fn a_learnt_daily_pattern_does_not_fire() {
    // A week of the same noisy day: after the first days nothing is surprising.
    let pts = daily(288 * 7);
    for kind in [DetectorKind::Seasonal, DetectorKind::Ensemble] {
        let scores = run(&mut Detector::new(kind), &pts);
        let late = scores[288 * 3..]
            .iter()
            .filter(|&&s| s >= DEFAULT_THRESHOLD)
            .count();
        assert_eq!(late, 0, "{kind:?}");
    }
}

#[test]
fn non_finite_values_score_zero_and_change_nothing() {
    let pts = daily(600);
    for kind in DetectorKind::ALL {
        let mut d = Detector::new(kind);
        run(&mut d, &pts);
        let before = d.clone();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(d.update(Timestamp(0), bad), 0.0);
        }
        assert_eq!(d, before, "{kind:?}");
    }
}

#[test]
fn trend_forecast_of_a_straight_line_is_exact() {
    // Integer points keep every sum exact in f64, so the forecast must be exact too,
    // across window slides and the periodic rebuild of the sums.
    let mut line = LinearTrend::new(32);
    assert_eq!(line.forecast(1), None);
    for t in 0..1000i64 {
        line.push((7 + 3 * t) as f64);
        if t >= 1 {
            for h in [0u32, 1, 5, 60] {
                assert_eq!(line.forecast(h), Some((7 + 3 * (t + i64::from(h))) as f64));
            }
        }
    }
    // A fractional slope is exact up to rounding.
    let mut line = LinearTrend::new(10);
    for t in 0..500 {
        line.push(0.25 - 1.1 * t as f64);
    }
    let want = 0.25 - 1.1 * (499.0 + 20.0);
    assert!((line.forecast(20).unwrap() - want).abs() < 1e-9 * want.abs());
    // Through the detectors that keep a line.
    for kind in [DetectorKind::Trend, DetectorKind::Ensemble] {
        let mut d = Detector::new(kind);
        for t in 0..100i64 {
            d.update(Timestamp(t * STEP_MS), (1000 + 50 * t) as f64);
        }
        assert_eq!(d.forecast(10), Some((1000 + 50 * 109) as f64), "{kind:?}");
    }
    assert_eq!(Detector::new(DetectorKind::Mad).forecast(1), None);
}

#[test]
fn cooldown_caps_below_the_fire_level_then_rearms() {
    let mut r = Cooldown::new(10, 0.5);
    assert_eq!(r.apply(0.9), 0.9);
    let capped: Vec<f64> = (0..10).map(|_| r.apply(1.0)).collect();
    assert!(capped.iter().all(|&s| s < 0.5));
    assert!(
        capped.windows(2).all(|w| w[0] < w[1]),
        "the cap rises: {capped:?}"
    );
    assert!(!r.is_quiet());
    assert_eq!(r.apply(0.8), 0.8);
}

#[test]
fn kinds_use_their_snake_case_names() {
    for kind in DetectorKind::ALL {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        assert_eq!(serde_json::from_str::<DetectorKind>(&json).unwrap(), kind);
        assert_eq!(Detector::new(kind).kind(), kind);
    }
}

#[test]
fn weekly_profile_takes_over_on_a_weekly_rhythm() {
    // Weekdays high, weekends low: after eight days the weekly profile predicts better,
    // so a normal Saturday is not an anomaly but a Saturday at weekday level is.
    let start = 1_396_224_000_000i64; // a Monday
    let level = |i: usize| if (i / 288) % 7 < 5 { 100.0 } else { 20.0 };
    let mut m = SeasonalModel::default();
    let n = 288 * 19;
    for i in 0..n {
        let t = Timestamp(start + i as i64 * STEP_MS);
        m.learn(t, level(i) + noise(i as u64));
    }
    // Day 19 is a Saturday.
    let sat = Timestamp(start + n as i64 * STEP_MS);
    let normal = m.z(sat, 20.0).unwrap();
    let odd = m.z(sat, 100.0).unwrap();
    assert!(normal.abs() < 3.0, "normal Saturday z = {normal}");
    assert!(odd.abs() > 6.0, "weekday-level Saturday z = {odd}");
}
