//! Property-style tests of every detector: bounded scores, warm-up, determinism, no alarm
//! on a constant series, exact continuation after a serde round trip, a clear spike
//! fires once, the trend forecast of a straight line; and that they work in time: the
//! same signal sampled every 5 minutes, every hour or irregularly with gaps warms up,
//! fires and cools down at the same times, a gap of days is not a run of identical rows,
//! and the default detector's state stays small.

use super::*;
use proptest::prelude::*;
use std::time::Duration;

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

/// Timestamps with steps from one second to two hours, and now and then a repeated
/// instant, a step back (a caller may be called twice at once, or see a late sample) or a
/// gap of days.
fn series(max: usize) -> impl Strategy<Value = Vec<(Timestamp, f64)>> {
    let step = prop_oneof![
        8 => 1_000i64..7_200_000,
        1 => Just(0i64),
        1 => -600_000i64..0,
        1 => 86_400_000i64..5 * 86_400_000,
    ];
    prop::collection::vec((step, value()), 1..max).prop_map(|steps| {
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
    // Spiky input, so anything that could score would; at 5 minutes and hourly.
    let warm_ups = [
        (DetectorKind::Zscore, ZScore::default().warm_up()),
        (DetectorKind::Mad, Mad::default().warm_up()),
        (DetectorKind::Ewma, Ewma::default().warm_up()),
        (DetectorKind::Trend, Trend::default().warm_up()),
        (DetectorKind::Seasonal, Seasonal::default().warm_up()),
        (DetectorKind::Ensemble, Ensemble::default().warm_up()),
    ];
    assert_eq!(
        ZScore::default().warm_up(),
        Duration::from_secs(86_400 + 55 * 60)
    );
    assert_eq!(Ensemble::default().warm_up(), Duration::from_secs(55 * 60));
    assert_eq!(
        Seasonal::default().warm_up(),
        Duration::from_secs(86_400 + 7_200 + 55 * 60)
    );
    for step in [STEP_MS, 3_600_000] {
        let pts: Vec<(Timestamp, f64)> = (0..(20 * 86_400_000 / step) as u64)
            .map(|i| {
                let spike = if i % 7 == 0 { 1e4 } else { 0.0 };
                (Timestamp(i as i64 * step), noise(i) + spike)
            })
            .collect();
        for (kind, warm_up) in warm_ups {
            let scores = run(&mut Detector::new(kind), &pts);
            let end = warm_up.as_millis() as i64;
            let first = (0..pts.len()).find(|&i| scores[i] > 0.0);
            let first = first.unwrap_or_else(|| panic!("{kind:?} never scores at {step} ms"));
            assert!(
                pts[first].0.as_millis() >= end,
                "{kind:?} scored at {} ms, before its warm-up of {end} ms",
                pts[first].0.as_millis()
            );
        }
    }
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
        // One event, one flag: nothing else in the following quiet period (12 hours).
        let after = fired.iter().filter(|&&i| i > at && i <= at + 144).count();
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
    // A week of the same noisy day: after the first days nothing is surprising. Hourly
    // buckets see the steep hours of this ±20 sine change by 5 within a bucket, so the
    // late scores reach about 0.56 at the steepest hours (0.43 with the half-hour buckets
    // before): at most one flag, one cooldown, in the last four days.
    let pts = daily(288 * 7);
    for kind in [DetectorKind::Seasonal, DetectorKind::Ensemble] {
        let scores = run(&mut Detector::new(kind), &pts);
        let late = scores[288 * 3..]
            .iter()
            .filter(|&&s| s >= DEFAULT_THRESHOLD)
            .count();
        assert!(late <= 1, "{kind:?}: {late} flags");
        assert!(scores[288 * 3..].iter().all(|&s| s < 0.65), "{kind:?}");
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
    // Through the detectors that keep a line (in time, with decaying weights: exact up
    // to rounding), at 5-minute steps and at irregular ones.
    for kind in [DetectorKind::Trend, DetectorKind::Ensemble] {
        let mut d = Detector::new(kind);
        for t in 0..100i64 {
            d.update(Timestamp(t * STEP_MS), (1000 + 50 * t) as f64);
        }
        let got = d.forecast(10).unwrap();
        let want = (1000 + 50 * 109) as f64;
        assert!(
            (got - want).abs() < 1e-6 * want,
            "{kind:?}: {got} vs {want}"
        );
        let mut d = Detector::new(kind);
        let mut ms = 0i64;
        for i in 0..300i64 {
            ms += [60_000, 300_000, 7_200_000][(i % 3) as usize];
            d.update(Timestamp(ms), 3.0 + 2e-6 * ms as f64);
        }
        // The newest step is two hours; ten of them ahead.
        let want = 3.0 + 2e-6 * (ms + 10 * 7_200_000) as f64;
        let got = d.forecast(10).unwrap();
        assert!(
            (got - want).abs() < 1e-6 * want,
            "{kind:?}: {got} vs {want}"
        );
    }
    assert_eq!(Detector::new(DetectorKind::Mad).forecast(1), None);
}

#[test]
fn cooldown_caps_below_the_fire_level_then_rearms() {
    let period = 10 * STEP_MS;
    let mut r = Cooldown::default();
    assert_eq!(r.apply(Timestamp(0), 0.9, period, 0.5), 0.9);
    let capped: Vec<f64> = (1..10)
        .map(|i| r.apply(Timestamp(i * STEP_MS), 1.0, period, 0.5))
        .collect();
    assert!(capped.iter().all(|&s| s < 0.5));
    assert!(
        capped.windows(2).all(|w| w[0] < w[1]),
        "the cap rises: {capped:?}"
    );
    assert!(!r.is_quiet(Timestamp(period), period));
    assert_eq!(r.apply(Timestamp(period), 0.8, period, 0.5), 0.8);
    // The cap rises with time, not with calls: halfway through, half the level, however
    // many points came before.
    let mut r = Cooldown::default();
    r.apply(Timestamp(0), 0.9, period, 0.5);
    for i in 0..1000 {
        r.apply(Timestamp(i), 1.0, period, 0.5);
    }
    let half = r.apply(Timestamp(period / 2), 1.0, period, 0.5);
    assert!((half - 0.25).abs() < 1e-6, "{half}");
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
    // Weekdays high, weekends low: after two weeks the weekly profile predicts better,
    // so a normal Saturday is not an anomaly but a Saturday at weekday level is.
    let start = 1_396_224_000_000i64; // a Monday
    // (The weekly profile is off by default: docs/anomaly-validation.md.)
    let level = |i: usize| if (i / 288) % 7 < 5 { 100.0 } else { 20.0 };
    let mut m = SeasonalModel::new(&SeasonalParams {
        weekly: true,
        ..SeasonalParams::default()
    });
    let n = 288 * 19;
    for i in 0..n {
        let t = Timestamp(start + i as i64 * STEP_MS);
        m.learn(t, (i > 0).then_some(STEP_MS), level(i) + noise(i as u64));
    }
    // Day 19 is a Saturday.
    let sat = Timestamp(start + n as i64 * STEP_MS);
    let normal = m.z(sat, 20.0).unwrap();
    let odd = m.z(sat, 100.0).unwrap();
    assert!(normal.abs() < 3.0, "normal Saturday z = {normal}");
    assert!(odd.abs() > 6.0, "weekday-level Saturday z = {odd}");
}

/// The same underlying signal at any sampling: a daily sine with noise that depends on
/// the time (one value per 5 minutes), a clear level shift (+80) at `shift_ms`, sampled
/// at the given times.
fn signal_at(times: &[i64], shift_ms: i64) -> Vec<(Timestamp, f64)> {
    times
        .iter()
        .map(|&t| {
            let phase = (t % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU;
            let shift = if t >= shift_ms { 80.0 } else { 0.0 };
            let v = 100.0 + 20.0 * phase.sin() + 2.0 * noise((t / STEP_MS) as u64) + shift;
            (Timestamp(t), v)
        })
        .collect()
}

/// Sample times over `days`: regular steps, or irregular (1 to 20 minutes, uneven) with
/// a two-hour gap on day 2 and a three-hour gap on day 3.
fn sample_times(days: i64, step_ms: Option<i64>) -> Vec<i64> {
    let end = days * 86_400_000;
    match step_ms {
        Some(step) => (0..end / step).map(|i| i * step).collect(),
        None => {
            let mut t = 0;
            let mut out = Vec::new();
            let mut i = 0u64;
            while t < end {
                let gap = (2 * 86_400_000 + 3_600_000..2 * 86_400_000 + 3 * 3_600_000).contains(&t)
                    || (3 * 86_400_000 + 7_200_000..3 * 86_400_000 + 5 * 3_600_000).contains(&t);
                if !gap {
                    out.push(t);
                }
                i += 1;
                t += 60_000 + (((noise(i) + 1.0) * 0.5) * 1_140_000.0) as i64;
            }
            out
        }
    }
}

#[test]
fn five_minute_hourly_and_irregular_sampling_behave_alike_in_time() {
    // The same signal sampled every 5 minutes, every hour and irregularly with gaps:
    // - warm-up: nothing scores before the detector's warm-up, and a level shift at 30 h
    //   (four hours after the seasonal predictor is ready at a day and two hours) is
    //   flagged within two hours at every sampling, so warm-up ends at the same time;
    // - a level shift at 4 days 10 h is flagged within two hours, at times less than
    //   two hours apart, and nothing flags again for the 12 hours of the quiet period.
    // (The first point after each gap of the irregular sampling may flag too: the
    // level, which follows the daily swing, is hours old there. The shifts come later.)
    let h = 3_600_000;
    let samplings = [
        ("5 min", sample_times(5, Some(STEP_MS))),
        ("1 h", sample_times(5, Some(h))),
        ("irregular", sample_times(5, None)),
    ];
    for kind in [DetectorKind::Ensemble, DetectorKind::Seasonal] {
        let warm_up = match kind {
            DetectorKind::Seasonal => Seasonal::default().warm_up(),
            _ => Ensemble::default().warm_up(),
        };
        let mut hits = Vec::new();
        for (name, times) in &samplings {
            for shift in [30 * h, 4 * 86_400_000 + 10 * h] {
                let pts = signal_at(times, shift);
                let scores = run(&mut Detector::new(kind), &pts);
                let first = (0..pts.len()).find(|&i| scores[i] > 0.0).unwrap();
                assert!(
                    pts[first].0.as_millis() >= warm_up.as_millis() as i64,
                    "{kind:?} at {name} scored before its warm-up"
                );
                let firings: Vec<i64> = (0..pts.len())
                    .filter(|&i| scores[i] >= DEFAULT_THRESHOLD)
                    .map(|i| pts[i].0.as_millis())
                    .collect();
                let hit = firings.iter().find(|&&t| t >= shift);
                let hit = *hit.unwrap_or_else(|| panic!("{kind:?} at {name} missed {shift}"));
                assert!(
                    hit - shift <= 2 * h,
                    "{kind:?} at {name}: {hit} for {shift}"
                );
                let again = firings.iter().find(|&&t| t > hit);
                assert!(
                    again.is_none_or(|&t| t - hit >= 12 * h),
                    "{kind:?} at {name}: flagged again {:?} ms after the shift's flag",
                    again.map(|t| t - hit)
                );
                if shift > 30 * h {
                    hits.push((*name, hit));
                }
            }
        }
        let ts: Vec<i64> = hits.iter().map(|p| p.1).collect();
        let spread = ts.iter().max().unwrap() - ts.iter().min().unwrap();
        assert!(spread <= 2 * h, "{kind:?}: {hits:?}");
    }
}

#[test]
fn the_quiet_period_is_the_same_time_at_every_sampling() {
    // A scorer fed z values at 15 s, 5 min, 1 h and irregularly: after each firing it
    // is quiet for twelve hours, no more, no less, and the cap it applies is a function
    // of the time since the firing only. One wild stretch at 30 h must flag.
    for step in [15_000i64, STEP_MS, 3_600_000, 0] {
        let mut s = Scorer::default();
        let (mut t, mut i) = (0i64, 0u64);
        let mut prev: Option<i64> = None;
        let mut last_fire: Option<i64> = None;
        let mut wild_flagged = false;
        while t < 3 * 86_400_000 {
            let wild = (30 * 3_600_000..32 * 3_600_000).contains(&t);
            let z = if wild { 9.0 } else { noise(i) };
            let was_quiet = s.is_quiet(Timestamp(t));
            let score = s.score(Timestamp(t), prev.map(|p| t - p), Some(z));
            if score >= DEFAULT_THRESHOLD {
                assert!(!was_quiet, "step {step}: flagged while quiet at {t}");
                last_fire = Some(t);
                wild_flagged |= (30 * 3_600_000..31 * 3_600_000).contains(&t);
            } else if let Some(f) = last_fire.filter(|&f| t - f < 12 * 3_600_000) {
                let cap = DEFAULT_THRESHOLD * (t - f) as f64 / 43_200_000.0;
                assert!(
                    score <= cap,
                    "step {step}: {score} over the cap {cap} at {t}"
                );
            }
            let quiet = last_fire.is_some_and(|f| t - f < 12 * 3_600_000);
            assert_eq!(s.is_quiet(Timestamp(t)), quiet, "step {step} at {t}");
            prev = Some(t);
            i += 1;
            t += if step > 0 {
                step
            } else {
                1_000 + ((noise(i) + 1.0) * 900_000.0) as i64
            };
        }
        assert!(
            wild_flagged,
            "step {step}: the wild stretch did not flag within an hour"
        );
    }
}

#[test]
fn a_gap_of_days_is_not_a_run_of_identical_rows() {
    // Two days at a level, then a point three days later at a new level. After the gap
    // the detector still knows the old level (a point stands for an hour at most), so
    // the new one is surprising; a detector that was shown the new level every five
    // minutes for those three days has learnt it.
    let calm = |i: u64| 50.0 + noise(i);
    let two_days: Vec<(Timestamp, f64)> = (0..576u64)
        .map(|i| (Timestamp(i as i64 * STEP_MS), calm(i)))
        .collect();
    let after = 576 * STEP_MS + 3 * 86_400_000;
    let tail: Vec<(Timestamp, f64)> = (0..12i64)
        .map(|k| (Timestamp(after + k * STEP_MS), 130.0 + noise(k as u64)))
        .collect();
    for kind in [
        DetectorKind::Ensemble,
        DetectorKind::Seasonal,
        DetectorKind::Ewma,
    ] {
        let mut gap = Detector::new(kind);
        run(&mut gap, &two_days);
        let gap_scores = run(&mut gap, &tail);
        let mut rows = Detector::new(kind);
        run(&mut rows, &two_days);
        let filler: Vec<(Timestamp, f64)> = (576..576 + 864)
            .map(|i| (Timestamp(i * STEP_MS), 130.0 + noise(i as u64)))
            .collect();
        run(&mut rows, &filler);
        let row_scores = run(&mut rows, &tail);
        let top = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        assert!(
            top(&gap_scores) >= DEFAULT_THRESHOLD,
            "{kind:?} after the gap: {gap_scores:?}"
        );
        assert!(
            top(&row_scores) < DEFAULT_THRESHOLD,
            "{kind:?} after the rows: {row_scores:?}"
        );
    }
}

#[test]
fn the_default_detector_state_stays_small() {
    // Ten days (the cold start dropped, every bucket seen, the far level and record
    // set), at 5 minutes and at 15 s: the same size, under 1,500 bytes of JSON (about
    // 1,220; 2,880 with the weekly profile).
    let mut sizes = Vec::new();
    for step in [STEP_MS, 15_000] {
        let times: Vec<i64> = (0..10 * 86_400_000 / step).map(|i| i * step).collect();
        let mut d = Detector::new(DetectorKind::Ensemble);
        run(&mut d, &signal_at(&times, i64::MAX));
        let json = serde_json::to_string(&d).unwrap();
        sizes.push(json.len());
        assert!(
            json.len() <= 1_500,
            "{} bytes at {step} ms: {json}",
            json.len()
        );
    }
    eprintln!("default detector JSON after 10 days: {sizes:?} bytes (5 min, 15 s)");
}

/// A step of +`size` at `step_ms` on a noisy daily rhythm, sampled every `every_ms` as
/// the mean of the underlying 15-second signal over each sample's interval (so the
/// hourly series is the resampled 15-second one, as `bench::variants` resamples), each
/// sample stamped at the end of its interval.
fn resampled_step(days: i64, every_ms: i64, step_ms: i64, size: f64) -> Vec<(Timestamp, f64)> {
    let fine = 15_000i64;
    let per = every_ms / fine;
    let start = 1_396_224_000_000i64;
    (0..days * 86_400_000 / every_ms)
        .map(|k| {
            let mut sum = 0.0;
            for j in 0..per {
                let t = k * every_ms + j * fine;
                let phase = (t % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU;
                let shift = if t >= step_ms { size } else { 0.0 };
                // Noise per 5 minutes, so every sampling sees the same wiggles.
                sum += 100.0 + 20.0 * phase.sin() + 2.0 * noise((t / STEP_MS) as u64) + shift;
            }
            (
                Timestamp(start + (k + 1) * every_ms - fine),
                sum / per as f64,
            )
        })
        .collect()
}

#[test]
fn a_resampled_step_alarms_at_the_same_time_at_15_s_5_min_and_hourly() {
    // The same step at 3 days 10 h, seen at 15 s, at 5 min and as hourly means: the
    // default detector raises its first alarm on it within an hour of the hour that
    // holds it (hourly data cannot know sooner), at every sampling, and nothing else
    // alarms in the day before the step or in the 12 hours after it. (The first days
    // may flag once: at 15 s the noise, which changes every 5 minutes, is a run of
    // equal values and then a jump.)
    let h = 3_600_000i64;
    let step = 3 * 86_400_000 + 10 * h;
    let mut firsts = Vec::new();
    for every in [15_000i64, STEP_MS, h] {
        let pts = resampled_step(4, every, step, 60.0);
        let mut d = Detector::new(DetectorKind::Ensemble);
        let scores = run(&mut d, &pts);
        let start = pts[0].0.as_millis();
        let alarms: Vec<i64> = pts
            .iter()
            .zip(&scores)
            .filter(|(_, s)| **s >= DEFAULT_THRESHOLD)
            .map(|(p, _)| p.0.as_millis() - start)
            .collect();
        let before: Vec<&i64> = alarms
            .iter()
            .filter(|&&t| (step - 86_400_000..step).contains(&t))
            .collect();
        assert!(
            before.is_empty(),
            "every {every} ms: early alarms {before:?}"
        );
        let first = *alarms
            .iter()
            .find(|&&t| t >= step)
            .unwrap_or_else(|| panic!("every {every} ms: the step was missed"));
        assert!(
            first - step <= 2 * h,
            "every {every} ms: alarm {first} for {step}"
        );
        let again = alarms.iter().find(|&&t| t > first);
        assert!(
            again.is_none_or(|&t| t - first >= 12 * h),
            "every {every} ms: again {again:?} after {first}"
        );
        firsts.push(first);
    }
    let spread = firsts.iter().max().unwrap() - firsts.iter().min().unwrap();
    assert!(spread <= h + 15_000, "first alarms {firsts:?}");
}

#[test]
fn a_second_call_at_the_same_instant_advances_nothing() {
    // Every kind: after a point at t, calls at t (any value) and before t return the
    // score already given and leave the state as it was, so the next point scores as if
    // they had never been made.
    let pts = daily(3 * 288);
    for kind in DetectorKind::ALL {
        let (mut once, mut twice) = (Detector::new(kind), Detector::new(kind));
        for (i, &(t, v)) in pts.iter().enumerate() {
            let a = once.update(t, v);
            let b = twice.update(t, v);
            assert_eq!(a.to_bits(), b.to_bits(), "{kind:?} at {i}");
            let state = serde_json::to_string(&twice).unwrap();
            for again in [v, v + 1_000.0, -v] {
                assert_eq!(
                    twice.update(t, again).to_bits(),
                    b.to_bits(),
                    "{kind:?} at {i}"
                );
                assert_eq!(
                    twice
                        .update(Timestamp(t.as_millis() - 60_000), again)
                        .to_bits(),
                    b.to_bits()
                );
            }
            assert_eq!(
                serde_json::to_string(&twice).unwrap(),
                state,
                "{kind:?} at {i}"
            );
        }
        assert_eq!(once, twice);
    }
}
