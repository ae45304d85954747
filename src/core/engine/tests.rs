//! Plain tests of the engine's time, in-force and restore semantics, one behaviour each
//! (the invariants over generated runs are property tests in tests/core_props.rs).

use super::*;
use crate::core::config::ProfileSpec;
use crate::core::event::Kept;
use crate::core::observation::ApplyReport;

const T0: i64 = 1_704_067_200;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::example(100_000.0);
    c.anomaly = None;
    c
}

/// A healthy observation with `profile` in force and output = input × its retention.
fn obs(c: &EngineConfig, input: f64, profile: usize, t: Timestamp) -> Observation {
    Observation::ok(input, input * c.profiles[profile].retention, t).with_in_force(profile)
}

fn explanations(s: &Step) -> usize {
    s.events.iter().filter(|e| e.is_explanation()).count()
}

#[test]
fn a_step_without_a_new_sample_changes_nothing() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    for i in 0..10 {
        e.step(at(15 * i), &obs(&c, 50_000.0, 0, at(15 * i)));
    }
    let before = e.state();
    // Twice at the same instant, then early (a command could arrive): same sample.
    for now in [at(135), at(140), at(149)] {
        let s = e.step(now, &obs(&c, 50_000.0, 0, at(135)));
        assert_eq!(explanations(&s), 1);
        assert!(
            matches!(s.explanation(), Some(Event::Kept(Kept::NoNewSample { last })) if *last == at(135)),
            "{s:?}"
        );
        assert!(!s.events.iter().any(|e| matches!(e, Event::Evaluated(_))));
        assert_eq!(s.next_wakeup, at(150));
    }
    assert_eq!(e.state(), before);
}

#[test]
fn a_command_acts_at_once_between_samples() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    e.step(at(0), &obs(&c, 50_000.0, 0, at(0)));
    let mut o = obs(&c, 50_000.0, 0, at(0));
    o.commands.push(Command::Override {
        profile: 2,
        ttl: Duration::from_secs(600),
        by: "oncall".into(),
        reason: "incident 42".into(),
    });
    let s = e.step(at(7), &o);
    let d = s.switched().expect("the pin switches at once");
    assert_eq!(
        (d.to.as_str(), d.reason_label()),
        ("aggressive", "override")
    );
    assert!(s.events.iter().any(
        |e| matches!(e, Event::Audit(a) if matches!(**a, Audit::OverrideSet { profile: 2, .. }))
    ));
    assert_eq!(
        s.actions.as_slice(),
        &[Action::ApplyProfile { profile: 2, seq: 1 }]
    );
    // The pin's end is the next thing to wake up for if it comes before the next sample.
    assert_eq!(s.next_wakeup, at(15));
    let text = s.events[0].sentence(&c.profiles).unwrap();
    assert!(text.contains("aggressive until"), "{text}");
}

#[test]
fn a_failed_apply_puts_the_engine_back_on_what_is_in_force() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    e.step(at(0), &obs(&c, 50_000.0, 0, at(0)));
    // Demand far over what conservative fits: escalate.
    let s = e.step(at(15), &obs(&c, 150_000.0, 0, at(15)));
    assert!(s.switched().is_some(), "{s:?}");
    let to = s.switched().expect("escalates").to_index;
    assert_eq!((e.current(), e.in_force()), (to, 0));
    // The actuator reports the apply failed: conservative is still in force.
    let mut o = obs(&c, 150_000.0, 0, at(30));
    o.applies.push(ApplyReport {
        profile: to,
        seq: 1,
        outcome: ApplyOutcome::RolledBack {
            reason: "reload rejected".into(),
        },
    });
    let s = e.step(at(30), &o);
    let failed = s
        .events
        .iter()
        .find_map(|e| match e {
            Event::Applied(a) => Some(a.clone()),
            _ => None,
        })
        .expect("the failure is an event");
    assert!(!failed.ok && failed.rolled_back && failed.in_force == 0);
    assert_eq!(e.in_force(), 0);
    // It re-plans from reality (conservative) but does not decide the refused profile
    // again before the backoff ends: that would reload the collector into the same
    // refusal.
    assert_eq!(e.current(), 0);
    let until = at(30).plus(c.guards.refused.backoff);
    assert!(
        s.events.iter().any(|ev| matches!(ev, Event::Blocked(b)
            if b.guard == Guard::Refused && b.to == to && b.until == Some(until))),
        "{s:?}"
    );
    assert!(e.active_guards(at(45)).contains(&(Guard::Refused, until)));
    let s = e.step(at(45), &obs(&c, 150_000.0, 0, at(45)));
    assert!(s.switched().is_none(), "{s:?}");
    // After the backoff it tries again, from conservative.
    let later = until.plus(Duration::from_secs(15));
    let s = e.step(later, &obs(&c, 150_000.0, 0, later));
    let d = s.switched().expect("re-plans once the backoff is over");
    assert_eq!(d.from, "conservative");
    let again = d.to_index;
    // The same profile refused again in a row doubles the backoff; another starts at one.
    let mut o = obs(&c, 150_000.0, 0, later.plus(Duration::from_secs(15)));
    o.applies.push(ApplyReport {
        profile: again,
        seq: 2,
        outcome: ApplyOutcome::Failed {
            reason: "write failed".into(),
        },
    });
    let s = e.step(later.plus(Duration::from_secs(15)), &o);
    let factor = if again == to { 2 } else { 1 };
    let twice = later
        .plus(Duration::from_secs(15))
        .plus(c.guards.refused.backoff * factor);
    assert!(
        s.events.iter().any(|ev| matches!(ev, Event::Blocked(b)
            if b.guard == Guard::Refused && b.until == Some(twice))),
        "{s:?}"
    );
    // Retention was only ever measured for the profile really in force.
    let st = e.state();
    assert!(
        st.measured_retention
            .iter()
            .all(|(p, _)| p == "conservative"),
        "{st:?}"
    );
}

#[test]
fn no_relaxation_while_an_apply_is_pending() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    let s = e.step(at(0), &obs(&c, 150_000.0, 0, at(0)));
    let to = s.switched().expect("escalates").to_index;
    // The actuator never confirms; demand falls to almost nothing for an hour.
    for i in 2..240 {
        let s = e.step(at(15 * i), &obs(&c, 1_000.0, 0, at(15 * i)));
        assert!(s.switched().is_none_or(|d| d.escalation), "{s:?}");
        assert_eq!(explanations(&s), 1);
    }
    assert_eq!(e.current(), to);
}

#[test]
fn relax_for_is_sample_time_at_any_sampling_rate() {
    // Hourly samples: relax_for 90s is met by the second fitting sample, an hour later,
    // not after seven samples (seven hours) as a count of ticks would have it.
    let mut c = cfg();
    c.tick = Duration::from_secs(3600);
    c.bad_input.max_sample_age = Duration::from_secs(2 * 3600);
    c.guards.min_dwell_relax = Duration::from_secs(60);
    // A streak on top of the window (the shipped default has none).
    c.hysteresis.relax_for = Duration::from_secs(90);
    c.prediction.relax_window = Duration::from_secs(60);
    c.initial_profile = 1;
    let mut e = Engine::new(c.clone());
    let mut relaxed_at = None;
    for i in 0..6 {
        let t = at(3600 * i);
        let s = e.step(t, &obs(&c, 30_000.0, e.current(), t));
        if let Some(d) = s.switched() {
            assert!(!d.escalation);
            relaxed_at.get_or_insert(i);
            match &d.cause {
                Cause::Fits { held_for, .. } => assert_eq!(*held_for, Duration::from_secs(3600)),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(relaxed_at, Some(1));
}

#[test]
fn a_gap_restarts_a_streak() {
    let mut c = cfg();
    c.initial_profile = 1;
    c.guards.min_dwell_relax = Duration::from_secs(15);
    // A streak on top of the window (the shipped default has none).
    c.hysteresis.relax_for = Duration::from_secs(90);
    let mut e = Engine::new(c.clone());
    // Fits at 0, 15, 30, 45, 60, then a two-hour gap, then fits again: relax_for (90s)
    // counts from after the gap, never across it.
    for t in [0, 15, 30, 45, 60, 7260, 7275, 7290, 7305, 7320, 7335] {
        let s = e.step(at(t), &obs(&c, 30_000.0, 1, at(t)));
        assert!(s.switched().is_none(), "switched at {t}: {s:?}");
    }
    let s = e.step(at(7350), &obs(&c, 30_000.0, 1, at(7350)));
    assert!(s.switched().is_some(), "{s:?}");
}

#[test]
fn state_restores_by_name_across_a_ladder_change() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    for i in 0..40 {
        let t = at(15 * i);
        e.step(t, &obs(&c, 250_000.0, e.current(), t));
    }
    assert_eq!(e.current(), 2, "escalated to aggressive");
    let saved = e.state();
    assert_eq!(saved.decided, "aggressive");
    assert_eq!(saved.version, STATE_VERSION);
    // A new ladder: conservative removed, a new rung, the others kept by name.
    let mut c2 = c.clone();
    c2.profiles = vec![
        ProfileSpec {
            name: "balanced".into(),
            retention: 0.6,
        },
        ProfileSpec {
            name: "tight".into(),
            retention: 0.5,
        },
        ProfileSpec {
            name: "aggressive".into(),
            retention: 0.35,
        },
    ];
    let (r, notes) = Engine::restore(c2.clone(), saved.clone());
    assert_eq!((r.current(), r.in_force()), (2, 2));
    assert!(
        notes.iter().any(|n| n.0.contains("`conservative`")),
        "the vanished profile is reported: {notes:?}"
    );
    assert!(
        r.state()
            .history
            .iter()
            .all(|h| h.from != "conservative" && h.to != "conservative")
    );
    // A state of another version is not guessed at.
    let mut old = saved;
    old.version = STATE_VERSION + 1;
    let (r, notes) = Engine::restore(c2.clone(), old);
    assert_eq!(r.current(), c2.initial_profile);
    assert!(notes[0].0.contains("version"), "{notes:?}");
}

#[test]
fn a_persisted_engine_is_small() {
    let c = cfg();
    let mut e = Engine::new(c.clone());
    for i in 0..2_000 {
        let t = at(15 * i);
        let demand = 60_000.0 + 50_000.0 * ((i as f64) / 200.0).sin();
        e.step(t, &obs(&c, demand, e.current(), t));
    }
    let bytes = serde_json::to_vec(&e.state()).unwrap().len();
    // Without detectors: the sample history (22 samples at 15 s) and a few numbers.
    assert!(bytes <= 3_000, "{bytes} bytes");
}

/// Steps an engine on samples every `step` (the one configured in force as the plant
/// reports it): a quiet hour, three samples of demand that need `balanced`, then quiet
/// again; returns the time of the last high sample and of the relaxation.
fn relax_after_last_high(mut c: EngineConfig, step: Duration) -> (Timestamp, Timestamp) {
    c.tick = step;
    let s = step.as_secs() as i64;
    let mut e = Engine::new(c.clone());
    let mut in_force = 0;
    let mut last_high = None;
    for i in 0..(4 * 3600 / s + 24 * 3600 / s) {
        let t = at(s * i);
        let quiet_hour = 3600 / s;
        let high = (quiet_hour..quiet_hour + 3).contains(&i);
        let input = if high { 150_000.0 } else { 50_000.0 };
        if high {
            last_high = Some(t);
        }
        let st = e.step(t, &obs(&c, input, in_force, t));
        if let Some(d) = st.switched()
            && !d.escalation
        {
            return (last_high.unwrap(), t);
        }
        // The plant applies a decision by the next sample.
        in_force = e.current();
    }
    panic!("never relaxed");
}

/// The one relax rule: relax to the least reducing profile that fitted every sample of the
/// last `relax_window`. With no streak on top and the relax dwell no longer than the
/// window, that is `relax_window` after the last sample that did not fit, on the first
/// sample at or after it, whatever the sampling rate.
#[test]
fn relaxation_comes_one_relax_window_after_the_last_high_sample() {
    for (step, window) in [(15, 300), (3600, 3 * 3600)] {
        let mut c = cfg();
        c.hysteresis.relax_for = Duration::ZERO;
        c.prediction.relax_window = Duration::from_secs(window);
        c.guards.min_dwell_relax = Duration::from_secs(window);
        c.prediction.persistence_threshold = 0.0;
        // No trend and no PID: the escalation lands on balanced, which fits the high
        // samples, so the only relaxation is back to conservative and nothing but the
        // relax rule is measured. (With the trend, a step's slope overshoots to
        // aggressive; aggressive→balanced then comes when the dwell allows, and
        // balanced→conservative a dwell after that.)
        c.prediction.horizon = Duration::ZERO;
        c.prediction.volatility_k = 0.0;
        c.pid.kp = 0.0;
        c.pid.ki = 0.0;
        c.pid.kd = 0.0;
        let (high, relaxed) = relax_after_last_high(c, Duration::from_secs(step));
        assert_eq!(
            relaxed.saturating_since(high),
            Duration::from_secs(window),
            "{step}s samples"
        );
    }
}
