//! Property tests of the control core's invariants: `Engine::step` driven over generated
//! observation sequences against a small plant, checking the guarantees DESIGN.md promises.
//!
//! Every property generates its own `EngineConfig` (starting from `EngineConfig::example`
//! and overwriting every field that matters with a generated value, durations in whole
//! seconds, zero included where the policy allows it), so none depends on the numbers
//! tuned in `example` or in the policies.
//!
//! The plant behaves like the actuator and the collector together: it takes the step's
//! `ApplyProfile` actions, ends each apply after a generated delay (one to three steps, or
//! a generated duration), reports the end in the next observation's `applies` and, if the
//! scenario says so, the profile in force in `in_force`; a generated share of the applies
//! fails (outright or rolled back) and leaves the previous profile in force. A sample's
//! output is its input × the true retention of the profile in force *when the sample was
//! taken* × a bias (the collector keeps a little more or less than the policy expects) ×
//! a per-sample noise. Time comes from a generated clock: regular ticks of 5 s, 15 s or
//! 60 s, jittered or irregular ticks, gaps up to and beyond `max_sample_age`, and, where
//! a property allows it, arbitrary steps (zero, huge, backwards). Observations may carry
//! bad samples (Empty, Stale, Error, an `Ok` sample older than the policy allows),
//! adversarial values (zero, huge, subnormal, negative, NaN, infinite) and commands.
//!
//! Every step of every run is also checked for its own consistency, whatever property it
//! serves (`check_step`): the explanation rule, at most one switch and it comes with its
//! `ApplyProfile` action, the ladder switches only on new samples, a bad sample is held and
//! never evaluated, the engine's `in_force()` is what the plant has in force, a failed
//! apply of the decided profile sets it back to what is in force, with no apply in flight
//! the decided profile is the one in force, the engine never relaxes while an apply is
//! pending, and `next_wakeup > now`.
//!
//! Engine bugs found while writing these are pinned by `#[ignore]`d tests at the end of
//! the file; two of them would otherwise fail most properties, so `check_step` tolerates
//! exactly their pattern while `TOLERATE_PIN_SECOND_EXPLANATION` and
//! `TOLERATE_ZERO_LOCKOUT_BLOCK` are true (set them to false once fixed).

use phoenix::core::anomaly::DetectorKind;
use phoenix::core::config::{
    AnomalyConfig, BadInputConfig, EmergencyConfig, GuardsConfig, HysteresisConfig,
    OscillationConfig, PidConfig, PredictionConfig, ProfileSpec, RefusedConfig, SwitchBudget,
};
use phoenix::core::engine::{OverrideState, SwitchRecord};
use phoenix::core::event::{Cause, Decision, Evaluation, Guard, Hold};
use phoenix::core::observation::Sample;
use phoenix::core::predict::MIN_TREND_INTERVALS;
use phoenix::core::{
    Action, ApplyOutcome, ApplyReport, Command, Engine, EngineConfig, EngineState, Event, Kept,
    Observation, RestoreNote, STATE_VERSION, Step, Timestamp,
};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

/// Cases per property (the issue asks for at least 256).
const CASES: u32 = 256;

/// The budget of hand-made scenarios.
const BUDGET: f64 = 100_000.0;

/// Tick of hand-made scenarios.
const TICK_MS: i64 = 15_000;

/// 2024-01-01T00:00:00Z, so timestamps print as real dates in failure messages.
const START_MS: i64 = 1_704_067_200_000;

/// Proptest settings shared by every property: at least `CASES` cases (more if
/// `PROPTEST_CASES` asks for more, for a deeper run), and no regression files written into
/// the tree (other engineers share it); a failure prints the minimal sequence instead.
fn proptest_config() -> ProptestConfig {
    // A fixed seed unless PROPTEST_RNG_SEED asks for another: CI must not pass or fail by
    // the luck of the draw. Deeper searches: PROPTEST_CASES=5000 with other seeds (one
    // such run found the in-flight measurement case noted in the issue).
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_ed0f_7ea5);
    ProptestConfig {
        cases: ProptestConfig::default().cases.max(CASES),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generated inputs
// ---------------------------------------------------------------------------------------

/// Which signal a fault hits.
#[derive(Clone, Copy, Debug)]
enum Sig {
    Input,
    Output,
    Both,
}

/// What is wrong with a step's observation, if anything.
#[derive(Clone, Debug)]
enum Fault {
    /// Both samples fresh and plausible.
    None,
    /// The query returned no series.
    Empty(Sig),
    /// The sampler already classified the sample as stale.
    Stale(Sig, u64),
    /// An `Ok` sample older than `max_sample_age` by this many ms (at least 1).
    Old(Sig, u64),
    /// The query failed.
    Error(Sig),
    /// Arbitrary values replace the plant's: they may be huge, zero, subnormal, negative
    /// or non-finite (the last two, and counts above 1e15, are read as errors).
    Wild { input: f64, output: f64 },
}

/// How demand moves at a step.
#[derive(Clone, Copy, Debug)]
enum Demand {
    /// The demand level is multiplied by this factor and stays there.
    Scale(f64),
    /// This step only, demand is the level times this factor (a one-sample spike or dip).
    Spike(f64),
}

/// A command to deliver with a step.
#[derive(Clone, Debug)]
enum Cmd {
    Emergency,
    Override { profile: usize, ttl_secs: u64 },
    Clear,
}

/// Which commands a property allows.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Commands {
    /// None at all (organic behaviour only).
    None,
    /// Emergency requests only.
    Emergency,
    /// Emergency, override and clear.
    All,
}

/// How a scenario's clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Clock {
    /// Exactly the policy's tick.
    Regular,
    /// The tick ± a third.
    Jittered,
    /// Anywhere from a third of the tick to three ticks.
    Irregular,
}

/// Time from the previous call to this one.
#[derive(Clone, Copy, Debug)]
enum Dt {
    /// One tick of the scenario's clock; `u` in [-1, 1] places it within the clock's spread.
    Tick(f64),
    /// A gap of 0.5 to 3 × `max_sample_age` (`u` in [0, 1]): streaks must break on it.
    Gap(f64),
    /// Arbitrary milliseconds: zero, huge, or backwards.
    Wild(i64),
}

/// One step of a scenario.
#[derive(Clone, Debug)]
struct TickSpec {
    /// Time since the previous step.
    dt: Dt,
    /// How demand moves.
    demand: Demand,
    /// Multiplicative noise on the plant's output, in [0.95, 1.05].
    noise: f64,
    /// Age of fresh samples (scrape lag) as a share of the scenario's largest lag.
    lag: f64,
    /// What is wrong with the observation.
    fault: Fault,
    /// A command delivered with this step.
    cmd: Option<Cmd>,
}

/// How long an apply takes.
#[derive(Clone, Copy, Debug)]
enum Delay {
    /// It ends just before the sample of the n-th step after the one that asked for it.
    Steps(usize),
    /// It ends this long after the step that asked for it; it is reported with the first
    /// step at or after its end, and only samples taken after it reflect it.
    Time(Duration),
}

/// The actuator and collector the engine drives.
#[derive(Clone, Debug)]
struct PlantSpec {
    /// Initial demand, in budgets.
    start_demand: f64,
    /// True retention = expected retention × bias (capped at 1).
    bias: f64,
    /// How long an apply takes.
    delay: Delay,
    /// Share of applies that fail (0 never, 1 always).
    fail_rate: f64,
    /// Per-apply draws in [0, 1): apply n fails if `draws[n % len] < fail_rate`, and the
    /// next draw says whether it failed outright or was rolled back.
    draws: Vec<f64>,
    /// Whether every observation carries the profile in force (otherwise the engine
    /// learns it from the apply reports only).
    report_in_force: bool,
}

/// A generated run: configuration, clock, plant and steps.
#[derive(Clone, Debug)]
struct Scenario {
    cfg: EngineConfig,
    clock: Clock,
    plant: PlantSpec,
    ticks: Vec<TickSpec>,
}

/// How often applies fail in a property's scenarios.
#[derive(Clone, Copy, Debug)]
enum Failures {
    /// Never.
    Never,
    /// Usually never, sometimes some, sometimes all.
    Any,
    /// Some (5% to 60%).
    Some,
}

/// How aggressive the generated steps are.
#[derive(Clone, Copy, Debug)]
struct Mix {
    commands: Commands,
    /// Relative weight of wild values among faults (healthy steps weigh 80).
    wild: u32,
    /// Relative weight of bad samples.
    bad: u32,
    /// Relative weight of gaps among time steps (ticks weigh 100).
    gaps: u32,
    /// Whether the time step may be arbitrary (zero, huge, backwards).
    wild_time: bool,
    /// Apply failures.
    failures: Failures,
    /// Lowest settle time generated, seconds.
    min_settle: u64,
    /// Relative weight of large demand moves (small drifts weigh 12).
    swings: u32,
}

impl Mix {
    fn realistic(commands: Commands) -> Self {
        Mix {
            commands,
            wild: 4,
            bad: 12,
            gaps: 3,
            wild_time: false,
            failures: Failures::Any,
            min_settle: 0,
            swings: 2,
        }
    }
}

/// Durations of a whole number of seconds within `range`.
fn secs(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_secs)
}

/// Durations in seconds, zero with a good chance (the policy allows zero there).
fn secs0(max: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![1 => Just(Duration::ZERO), 3 => secs(0..=max)]
}

/// Retentions of a ladder of 2 to `max` profiles, strictly decreasing.
fn ladder(max: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.05f64..1.0, 2..=max).prop_map(|mut r| {
        r.sort_by(|a, b| b.total_cmp(a));
        for k in 1..r.len() {
            // Strictly decreasing, as validation requires.
            r[k] = r[k].min(r[k - 1] * 0.95);
        }
        r
    })
}

fn pid_config(max_output_limit: f64) -> impl Strategy<Value = PidConfig> {
    (
        prop_oneof![Just(0.0), 0.0f64..2.0],
        prop_oneof![Just(0.0), 0.0f64..0.01],
        prop_oneof![Just(0.0), 0.0f64..30.0],
        0.0f64..0.3,
        0.0f64..max_output_limit,
    )
        .prop_map(|(kp, ki, kd, i_limit, output_limit)| PidConfig {
            kp,
            ki,
            kd,
            i_limit,
            output_limit,
        })
}

/// Policy knobs a property may want to keep small (liveness runs until its bound).
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Largest PID output limit.
    output_limit: f64,
    /// Largest oscillation cooldown, seconds.
    cooldown: u64,
    /// Largest doubling exponent of the cooldown.
    doublings: u32,
    /// Largest switch budget window, seconds.
    budget_window: u64,
    /// Largest lockout, seconds.
    lockout: u64,
    /// Lowest settle time, seconds.
    min_settle: u64,
}

impl Limits {
    fn wide(min_settle: u64) -> Self {
        Limits {
            output_limit: 0.5,
            cooldown: 1800,
            doublings: 4,
            budget_window: 7200,
            lockout: 1800,
            min_settle,
        }
    }
}

/// A configuration with every decision-relevant field generated, at a tick of 5 s,
/// 15 s or 60 s.
fn config(lim: Limits) -> impl Strategy<Value = EngineConfig> {
    prop_oneof![Just(5u64), Just(15), Just(60)].prop_flat_map(move |t| config_at(t, lim))
}

fn config_at(tick: u64, lim: Limits) -> impl Strategy<Value = EngineConfig> {
    let hysteresis = (0.5f64..0.95, 0.01f64..0.4, secs0(120), secs0(600)).prop_map(
        |(relax_below, gap, escalate_for, relax_for)| HysteresisConfig {
            escalate_above: relax_below + gap,
            relax_below,
            escalate_for,
            relax_for,
        },
    );
    // The policy requires the windows to be positive; the horizon and the transient
    // confirmation may be zero.
    let prediction = (
        secs(1..=600),
        secs0(120),
        0.0f64..3.0,
        secs(1..=900),
        0.0f64..1.0,
        secs0(180),
    )
        .prop_map(
            |(window, horizon, k, relax_window, pt, tc)| PredictionConfig {
                window,
                horizon,
                volatility_k: k,
                relax_window,
                persistence_threshold: pt,
                transient_confirm: tc,
            },
        );
    let guards = (
        (
            secs0(120),
            secs(1..=900),
            1u32..=8,
            secs(60..=lim.budget_window),
        ),
        (secs(1..=1800), secs(1..=lim.cooldown), 0u32..=lim.doublings),
        (1.05f64..3.0, secs0(lim.lockout), secs(60..=7200)),
    )
        .prop_map(
            |((de, dr, n, w), (ow, oc, od), (hard, lockout, ttl))| GuardsConfig {
                min_dwell_escalate: de,
                min_dwell_relax: dr,
                switch_budget: SwitchBudget {
                    max_switches: n,
                    window: w,
                },
                oscillation: OscillationConfig {
                    window: ow,
                    cooldown: oc,
                    max_doublings: od,
                },
                emergency: EmergencyConfig {
                    hard_ratio: hard,
                    lockout,
                },
                override_max_ttl: ttl,
                // Reuses the flap guard's draws: same kind of duration and exponent.
                refused: RefusedConfig {
                    backoff: oc,
                    max_doublings: od,
                },
            },
        );
    // A sample may be one to four ticks old (plus up to a tick), so regular sampling
    // never looks stale; gaps are generated separately.
    let bad = (
        1u64..=4,
        0u64..=tick,
        secs0(300),
        prop::option::of(any::<Index>()),
    );
    let anomaly = prop::option::of((
        prop::sample::select(DetectorKind::ALL.to_vec()),
        any::<bool>(),
        any::<bool>(),
        0.3f64..1.0,
        any::<bool>(),
        secs(2 * tick..=600.max(2 * tick)),
        secs(60..=1800),
    ))
    .prop_map(|a| {
        a.map(
            |(detector, watch_input, watch_output, threshold, request_emergency, tw, h)| {
                AnomalyConfig {
                    detector,
                    watch_input,
                    watch_output,
                    threshold,
                    request_emergency,
                    trend_window: tw,
                    horizon: h,
                }
            },
        )
    });
    let settle = prop_oneof![
        1 => Just(lim.min_settle),
        3 => lim.min_settle..=120.max(lim.min_settle),
    ];
    let misc = (1_000.0f64..1e7, settle, any::<Index>());
    (
        ladder(5),
        pid_config(lim.output_limit),
        hysteresis,
        prediction,
        guards,
        bad,
        misc,
        anomaly,
    )
        .prop_map(
            move |(ladder, pid, hysteresis, prediction, guards, bad, misc, anomaly)| {
                let (budget, settle, initial) = misc;
                let n = ladder.len();
                let mut cfg = EngineConfig::example(budget);
                cfg.pipeline = "prop".to_string();
                cfg.target_ratio = 0.9 * hysteresis.relax_below;
                cfg.profiles = ladder
                    .into_iter()
                    .enumerate()
                    .map(|(k, retention)| ProfileSpec {
                        name: format!("p{k}"),
                        retention,
                    })
                    .collect();
                cfg.initial_profile = initial.index(n);
                cfg.tick = Duration::from_secs(tick);
                cfg.pid = pid;
                cfg.hysteresis = hysteresis;
                cfg.prediction = prediction;
                cfg.guards = guards;
                cfg.bad_input = BadInputConfig {
                    max_sample_age: Duration::from_secs(bad.0 * tick + bad.1),
                    fallback_after: bad.2,
                    fallback_profile: bad.3.map(|i| i.index(n)),
                };
                cfg.settle = Duration::from_secs(settle);
                cfg.anomaly = anomaly;
                cfg
            },
        )
}

/// Values a broken exporter or query could return.
fn wild_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..1e7,
        1 => Just(0.0),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
        1 => prop::num::f64::POSITIVE
            | prop::num::f64::NORMAL
            | prop::num::f64::SUBNORMAL
            | prop::num::f64::ZERO,
        1 => prop::num::f64::ANY,
    ]
}

fn sig() -> impl Strategy<Value = Sig> {
    prop_oneof![Just(Sig::Input), Just(Sig::Output), Just(Sig::Both)]
}

fn fault(mix: Mix) -> impl Strategy<Value = Fault> {
    let bad = prop_oneof![
        sig().prop_map(Fault::Empty),
        (sig(), 1u64..3_600_000).prop_map(|(s, a)| Fault::Stale(s, a)),
        (sig(), 1u64..600_000).prop_map(|(s, a)| Fault::Old(s, a)),
        sig().prop_map(Fault::Error),
    ];
    let wild =
        (wild_value(), wild_value()).prop_map(|(input, output)| Fault::Wild { input, output });
    prop_oneof![
        80 => Just(Fault::None),
        mix.bad => bad,
        mix.wild => wild,
    ]
}

fn command(mix: Mix, n_profiles: usize) -> BoxedStrategy<Option<Cmd>> {
    let emergency = Just(Cmd::Emergency);
    let all = prop_oneof![
        2 => emergency.clone(),
        // One index past the ladder: an override the engine must refuse.
        4 => (0..n_profiles + 1, 0u64..10_800)
            .prop_map(|(profile, ttl_secs)| Cmd::Override { profile, ttl_secs }),
        1 => Just(Cmd::Clear),
    ];
    match mix.commands {
        Commands::None => Just(None).boxed(),
        Commands::Emergency => prop::option::weighted(0.03, emergency).boxed(),
        Commands::All => prop::option::weighted(0.05, all).boxed(),
    }
}

fn demand(mix: Mix) -> impl Strategy<Value = Demand> {
    prop_oneof![
        12 => (0.97f64..1.04).prop_map(Demand::Scale),
        mix.swings => (0.3f64..3.0).prop_map(Demand::Scale),
        1 => (0.1f64..6.0).prop_map(Demand::Spike),
    ]
}

fn dt(mix: Mix) -> BoxedStrategy<Dt> {
    let tick = (-1.0f64..=1.0).prop_map(Dt::Tick);
    let gap = (0.0f64..=1.0).prop_map(Dt::Gap);
    if mix.wild_time {
        prop_oneof![
            80 => tick,
            mix.gaps.max(1) => gap,
            5 => Just(Dt::Wild(0)),
            5 => (0i64..=1_000_000_000_000).prop_map(Dt::Wild),
            5 => (-1_000_000i64..=0).prop_map(Dt::Wild),
        ]
        .boxed()
    } else if mix.gaps > 0 {
        prop_oneof![100 => tick, mix.gaps => gap].boxed()
    } else {
        tick.boxed()
    }
}

fn tick(mix: Mix, n_profiles: usize) -> impl Strategy<Value = TickSpec> {
    (
        dt(mix),
        demand(mix),
        0.95f64..1.05,
        0.0f64..=1.0,
        fault(mix),
        command(mix, n_profiles),
    )
        .prop_map(|(dt, demand, noise, lag, fault, cmd)| TickSpec {
            dt,
            demand,
            noise,
            lag,
            fault,
            cmd,
        })
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        Just(Clock::Regular),
        Just(Clock::Jittered),
        Just(Clock::Irregular)
    ]
}

fn plant(failures: Failures, tick: Duration) -> impl Strategy<Value = PlantSpec> {
    let fail_rate = match failures {
        Failures::Never => Just(0.0).boxed(),
        Failures::Any => prop_oneof![6 => Just(0.0), 2 => 0.05f64..0.6, 1 => Just(1.0)].boxed(),
        Failures::Some => (0.05f64..0.6).boxed(),
    };
    let max_delay = 3 * tick.as_millis() as u64;
    let delay = prop_oneof![
        (1usize..=3).prop_map(Delay::Steps),
        (0u64..=max_delay).prop_map(|ms| Delay::Time(Duration::from_millis(ms))),
    ];
    (
        0.3f64..2.5,
        0.8f64..1.1,
        delay,
        fail_rate,
        prop::collection::vec(0.0f64..1.0, 1..32),
        any::<bool>(),
    )
        .prop_map(
            |(start_demand, bias, delay, fail_rate, draws, report_in_force)| PlantSpec {
                start_demand,
                bias,
                delay,
                fail_rate,
                draws,
                report_in_force,
            },
        )
}

fn scenario_with(
    mix: Mix,
    lim: Limits,
    steps: std::ops::Range<usize>,
) -> impl Strategy<Value = Scenario> {
    config(lim).prop_flat_map(move |cfg| {
        let n = cfg.profiles.len();
        let tick_len = cfg.tick;
        (
            Just(cfg),
            clock(),
            plant(mix.failures, tick_len),
            prop::collection::vec(tick(mix, n), steps.clone()),
        )
            .prop_map(|(cfg, clock, plant, ticks)| Scenario {
                cfg,
                clock,
                plant,
                ticks,
            })
    })
}

fn scenario(mix: Mix) -> impl Strategy<Value = Scenario> {
    scenario_with(mix, Limits::wide(mix.min_settle), 30..250)
}

// ---------------------------------------------------------------------------------------
// The plant
// ---------------------------------------------------------------------------------------

/// When an apply in flight ends.
#[derive(Clone, Copy, Debug)]
enum Due {
    /// Just before the sample of this step.
    Step(usize),
    /// At this time.
    At(Timestamp),
}

#[derive(Clone, Debug)]
struct InFlight {
    profile: usize,
    /// The action's `seq`, echoed in the report.
    seq: u64,
    due: Due,
    outcome: ApplyOutcome,
}

/// The actuator and the collector: applies in flight (in order), what is in force, and
/// since when each profile was.
#[derive(Clone, Debug)]
struct Plant {
    spec: PlantSpec,
    /// True retention per profile.
    truth: Vec<f64>,
    /// Profile in force now.
    in_force: usize,
    /// When each profile came into force, oldest first (the first since forever).
    changes: Vec<(Timestamp, usize)>,
    pending: VecDeque<InFlight>,
    /// Applies asked for so far.
    asked: usize,
    /// Profiles whose apply failed at least once.
    failed: BTreeSet<usize>,
}

impl Plant {
    fn new(cfg: &EngineConfig, spec: &PlantSpec, initial: usize) -> Self {
        Plant {
            spec: spec.clone(),
            truth: cfg
                .profiles
                .iter()
                .map(|p| (p.retention * spec.bias).min(1.0))
                .collect(),
            in_force: initial,
            changes: vec![(Timestamp(i64::MIN), initial)],
            pending: VecDeque::new(),
            asked: 0,
            failed: BTreeSet::new(),
        }
    }

    /// Ends the applies due by step `k` at `now` (whose sample is taken at `sampled`) and
    /// returns their reports, in order.
    fn end_applies(&mut self, k: usize, now: Timestamp, sampled: Timestamp) -> Vec<ApplyReport> {
        let mut out = Vec::new();
        while let Some(a) = self.pending.front() {
            let end = match a.due {
                Due::Step(s) if s <= k => sampled,
                Due::At(t) if t <= now => t,
                _ => break,
            };
            let a = self.pending.pop_front().expect("front exists");
            if a.outcome == ApplyOutcome::Applied {
                let last = self.changes.last().map_or(end, |c| c.0);
                self.changes.push((end.max(last), a.profile));
                self.in_force = a.profile;
            } else {
                self.failed.insert(a.profile);
            }
            out.push(ApplyReport {
                profile: a.profile,
                seq: a.seq,
                outcome: a.outcome,
            });
        }
        out
    }

    /// Profile in force at `t`.
    fn in_force_at(&self, t: Timestamp) -> usize {
        self.changes
            .iter()
            .rev()
            .find(|c| c.0 <= t)
            .map_or(self.changes[0].1, |c| c.1)
    }

    /// Takes an `ApplyProfile` action of step `k` at `now`.
    fn request(&mut self, profile: usize, seq: u64, k: usize, now: Timestamp) {
        let d = &self.spec.draws;
        let n = self.asked;
        self.asked += 1;
        let outcome = if d[n % d.len()] < self.spec.fail_rate {
            if d[(n + 1) % d.len()] < 0.5 {
                ApplyOutcome::Failed {
                    reason: "reload refused".to_string(),
                }
            } else {
                ApplyOutcome::RolledBack {
                    reason: "verification timed out".to_string(),
                }
            }
        } else {
            ApplyOutcome::Applied
        };
        let due = match self.spec.delay {
            Delay::Steps(s) => Due::Step(k + s),
            Delay::Time(t) => Due::At(now.plus(t)),
        };
        self.pending.push_back(InFlight {
            seq,
            profile,
            due,
            outcome,
        });
    }
}

// ---------------------------------------------------------------------------------------
// Driving the engine
// ---------------------------------------------------------------------------------------

/// What happened at one step.
#[derive(Clone, Debug)]
struct Record {
    now: Timestamp,
    obs: Observation,
    /// Decided profile before the step.
    before: usize,
    /// Profile the engine believed in force before the step.
    in_force_before: usize,
    /// A pin was active before the step.
    pinned_before: bool,
    /// Newest sample time evaluated before the step.
    last_sample_before: Option<Timestamp>,
    /// The `seq` of the engine's latest apply before the step.
    seq_before: u64,
    step: Step,
    /// True if the generator meant this step's observation to be unusable.
    meant_bad: bool,
    /// The healthy reading (sample time, input, output), if the observation was usable.
    sample: Option<(Timestamp, f64, f64)>,
    /// Decided profile after the step.
    after: usize,
    /// Profile the engine believes in force after the step.
    in_force_after: usize,
    /// Profile truly in force when the plant's sample was taken.
    sampled_profile: usize,
    /// Profile the plant has in force at `now`.
    plant_in_force: usize,
    /// The pin in force after the step (the one the step decided under).
    pin_after: Option<usize>,
}

impl Record {
    fn evaluation(&self) -> Option<&Evaluation> {
        self.step.events.iter().find_map(|e| match e {
            Event::Evaluated(ev) => Some(ev),
            _ => None,
        })
    }

    fn switched(&self) -> Option<&Decision> {
        self.step.switched()
    }

    fn held(&self) -> Option<&Hold> {
        self.step.events.iter().find_map(|e| match e {
            Event::Held(h) => Some(h),
            _ => None,
        })
    }

    fn kept(&self) -> Option<&Kept> {
        self.step.events.iter().find_map(|e| match e {
            Event::Kept(k) => Some(k),
            _ => None,
        })
    }

    fn blocked(&self) -> Option<&phoenix::core::event::Blocked> {
        self.step.events.iter().find_map(|e| match e {
            Event::Blocked(b) => Some(b),
            _ => None,
        })
    }

    fn has_emergency_command(&self) -> bool {
        self.obs
            .commands
            .iter()
            .any(|c| matches!(c, Command::Emergency { .. }))
    }

    fn has_override_command(&self) -> bool {
        self.obs
            .commands
            .iter()
            .any(|c| matches!(c, Command::Override { .. }))
    }

    /// Sample time of the evaluated sample, if this step evaluated one.
    fn evaluated_at(&self) -> Option<Timestamp> {
        self.evaluation().and(self.sample.map(|s| s.0))
    }

    /// The decided profile the step worked from: the one before it, or what is in force
    /// if the step reported a failed apply of it.
    fn base(&self) -> usize {
        if self.failed_decided() {
            self.in_force_after
        } else {
            self.before
        }
    }

    fn failed_decided(&self) -> bool {
        self.obs
            .applies
            .iter()
            // Only the end of the latest apply says what became of the decision: an older
            // apply of the same profile may fail while the newer one is in flight.
            .any(|a| {
                a.profile == self.before
                    && a.seq == self.seq_before
                    && a.outcome != ApplyOutcome::Applied
            })
    }
}

/// The observation the plant and the fault produce at `now` for a sample taken at
/// `sampled`; and whether it is meant to be unusable.
fn observe(
    cfg: &EngineConfig,
    t: &TickSpec,
    now: Timestamp,
    sampled: Timestamp,
    input: f64,
    output: f64,
) -> (Observation, bool) {
    let mut obs = Observation::ok(input, output, sampled);
    let max_age = cfg.bad_input.max_sample_age.as_millis() as i64;
    let mut meant_bad = true;
    let bad = |s: Sig, sample: Sample, obs: &mut Observation| match s {
        Sig::Input => obs.input = sample,
        Sig::Output => obs.output = sample,
        Sig::Both => {
            obs.input = sample.clone();
            obs.output = sample;
        }
    };
    match &t.fault {
        Fault::None => meant_bad = false,
        Fault::Empty(s) => bad(*s, Sample::Empty, &mut obs),
        Fault::Stale(s, age) => bad(
            *s,
            Sample::Stale {
                age: Duration::from_millis(*age),
            },
            &mut obs,
        ),
        Fault::Old(s, extra) => {
            let at = Timestamp(now.as_millis() - max_age - *extra as i64);
            match s {
                Sig::Input => obs.input = Sample::ok(input, at),
                Sig::Output => obs.output = Sample::ok(output, at),
                Sig::Both => {
                    obs.input = Sample::ok(input, at);
                    obs.output = Sample::ok(output, at);
                }
            }
        }
        Fault::Error(s) => bad(
            *s,
            Sample::Error {
                message: "query timed out".to_string(),
            },
            &mut obs,
        ),
        Fault::Wild { input, output } => {
            obs.input = Sample::ok(*input, sampled);
            obs.output = Sample::ok(*output, sampled);
            // The engine refuses counts above 1e15 series as a broken exporter.
            let usable = |v: f64| v.is_finite() && (0.0..=1e15).contains(&v);
            meant_bad = !(usable(*input) && usable(*output));
        }
    }
    obs.commands = match &t.cmd {
        None => Vec::new(),
        Some(Cmd::Emergency) => vec![Command::Emergency {
            by: "detector".to_string(),
            reason: "explosion".to_string(),
        }],
        Some(Cmd::Override { profile, ttl_secs }) => vec![Command::Override {
            profile: *profile,
            ttl: Duration::from_secs(*ttl_secs),
            by: "oncall".to_string(),
            reason: "incident".to_string(),
        }],
        Some(Cmd::Clear) => vec![Command::ClearOverride {
            by: "oncall".to_string(),
        }],
    };
    (obs, meant_bad)
}

/// The scenario's time step for `t`, in ms.
fn dt_ms(sc: &Scenario, t: &TickSpec) -> i64 {
    let tick = sc.cfg.tick.as_millis() as f64;
    let max_age = sc.cfg.bad_input.max_sample_age.as_millis() as f64;
    let ms = match t.dt {
        Dt::Tick(u) => match sc.clock {
            Clock::Regular => tick,
            Clock::Jittered => tick * (1.0 + u / 3.0),
            Clock::Irregular => tick * 3f64.powf(u),
        },
        Dt::Gap(u) => max_age * (0.5 + 2.5 * u),
        Dt::Wild(ms) => return ms,
    };
    (ms as i64).max(1)
}

/// The largest scrape lag of a scenario, ms: small against the tick and the sample age,
/// so fresh samples are fresh and mostly in order.
fn max_lag_ms(cfg: &EngineConfig) -> i64 {
    let tick = cfg.tick.as_millis() as i64;
    let age = cfg.bad_input.max_sample_age.as_millis() as i64;
    5_000.min(tick / 4).min(age / 4)
}

/// A run in progress: engine, plant, demand and clock, so a property can drive phases.
struct Run {
    cfg: EngineConfig,
    engine: Engine,
    plant: Plant,
    level: f64,
    now: Timestamp,
    k: usize,
    last_sample: Option<Timestamp>,
    records: Vec<Record>,
}

impl Run {
    fn new(cfg: &EngineConfig, spec: &PlantSpec) -> Self {
        let engine = Engine::new(cfg.clone());
        let plant = Plant::new(cfg, spec, engine.in_force());
        Run {
            cfg: cfg.clone(),
            engine,
            plant,
            level: spec.start_demand * cfg.budget_series,
            now: Timestamp(START_MS),
            k: 0,
            last_sample: None,
            records: Vec::new(),
        }
    }

    /// One step, `dt` ms after the previous one, checked by `check_step`.
    fn step(&mut self, t: &TickSpec, dt: i64) -> Result<&Record, TestCaseError> {
        let cfg = &self.cfg;
        self.now = Timestamp(self.now.as_millis().saturating_add(dt));
        let now = self.now;
        let input = match t.demand {
            Demand::Scale(f) => {
                self.level = (self.level * f).clamp(1.0, 1e12);
                self.level
            }
            Demand::Spike(f) => self.level * f,
        };
        let lag = (t.lag * max_lag_ms(cfg) as f64) as i64;
        let sampled = Timestamp(now.as_millis() - lag);
        let applies = self.plant.end_applies(self.k, now, sampled);
        let sampled_profile = self.plant.in_force_at(sampled);
        let output = input * self.plant.truth[sampled_profile] * t.noise;
        let (mut obs, meant_bad) = observe(cfg, t, now, sampled, input, output);
        obs.applies = applies;
        obs.in_force = self
            .plant
            .spec
            .report_in_force
            .then_some(self.plant.in_force);
        let before = self.engine.current();
        let in_force_before = self.engine.in_force();
        let pinned_before = self.engine.pinned().is_some_and(|p| p.until > now);
        let seq_before = self.engine.apply_seq();
        let step = self.engine.step(now, &obs);
        let sample = match (&obs.input, &obs.output, meant_bad) {
            (Sample::Ok { value: i, at: a }, Sample::Ok { value: o, at: b }, false) => {
                Some(((*a).max(*b), *i, *o))
            }
            _ => None,
        };
        let rec = Record {
            now,
            obs,
            before,
            in_force_before,
            pinned_before,
            last_sample_before: self.last_sample,
            seq_before,
            step,
            meant_bad,
            sample,
            after: self.engine.current(),
            in_force_after: self.engine.in_force(),
            sampled_profile,
            plant_in_force: self.plant.in_force,
            pin_after: self.engine.pinned().map(|p| p.profile),
        };
        check_step(cfg, &rec)?;
        if rec.evaluation().is_some() {
            self.last_sample = rec.sample.map(|s| s.0);
        }
        for a in &rec.step.actions {
            let Action::ApplyProfile { profile, seq } = a;
            self.plant.request(*profile, *seq, self.k, now);
        }
        // With no apply in flight, what is decided is what is in force: otherwise the
        // engine would wait for an apply nobody is doing.
        if self.plant.pending.is_empty() {
            prop_assert_eq!(
                self.engine.current(),
                self.engine.in_force(),
                "at {}: nothing in flight, yet decided {} and in force {}: {:?}",
                now,
                self.engine.current(),
                self.engine.in_force(),
                rec
            );
        }
        self.k += 1;
        self.records.push(rec);
        Ok(self.records.last().expect("just pushed"))
    }
}

/// Runs the scenario through a fresh engine in closed loop; returns the engine, the
/// plant and every step.
fn drive(sc: &Scenario) -> Result<(Engine, Plant, Vec<Record>), TestCaseError> {
    let mut run = Run::new(&sc.cfg, &sc.plant);
    for t in &sc.ticks {
        let dt = dt_ms(sc, t);
        run.step(t, dt)?;
    }
    Ok((run.engine, run.plant, run.records))
}

/// Feeds recorded observations to `engine`, returning its steps.
fn replay(engine: &mut Engine, records: &[Record]) -> Vec<Step> {
    records.iter().map(|r| engine.step(r.now, &r.obs)).collect()
}

/// A value's `Debug` text, for comparing steps and states: unlike `PartialEq` it treats
/// two NaNs as equal while still telling apart any two floats that differ in a single bit
/// (Rust prints the shortest text that parses back to the same float).
fn same<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// The engine gives a pin's switch, or the guard's block of it, a second explanation:
/// the ladder's `Kept` of the same step (see `an_override_step_has_one_explanation` and
/// `every_step_has_exactly_one_explanation`). While this is true the other properties
/// tolerate exactly that pattern, so they keep checking what they are about; set it to
/// false once the engine is fixed and every property checks the rule strictly again.
const TOLERATE_PIN_SECOND_EXPLANATION: bool = false;

/// With `lockout` zero, an emergency on a step where a pin asks to relax blocks the pin
/// with `Blocked { guard: Lockout, until: now }`, a guard that has already lapsed (see
/// `a_zero_lockout_blocks_nothing`). Tolerated while true, like the flag above.
const TOLERATE_ZERO_LOCKOUT_BLOCK: bool = false;

/// The explanation rule: exactly one of `Switched`/`Blocked`/`Kept`, except that `Held`
/// may come alone or with one `Switched` or `Blocked`; never `Held` with `Kept`. With
/// `pin` (the pin in force at the step) and `TOLERATE_PIN_SECOND_EXPLANATION`, a `Kept`
/// next to the pin's own switch or block is let through.
fn explanation_rule(step: &Step, pin: Option<usize>) -> Result<(), String> {
    let (mut switched, mut blocked, mut held, mut kept) = (0, 0, 0, 0);
    for e in &step.events {
        match e {
            Event::Switched(_) => switched += 1,
            Event::Blocked(_) => blocked += 1,
            Event::Held(_) => held += 1,
            Event::Kept(_) => kept += 1,
            _ => {}
        }
    }
    let ok = match held {
        0 => switched + blocked + kept == 1,
        1 => kept == 0 && switched + blocked <= 1,
        _ => false,
    };
    let pin_bug = TOLERATE_PIN_SECOND_EXPLANATION
        && held == 0
        && kept == 1
        && switched + blocked == 1
        && pin.is_some_and(|p| {
            step.events.iter().any(|e| match e {
                Event::Switched(d) => matches!(d.cause, Cause::Override { .. }) && d.to_index == p,
                Event::Blocked(b) => b.to == p,
                _ => false,
            })
        });
    if (ok || pin_bug) && step.explanation().is_some() {
        Ok(())
    } else {
        Err(format!(
            "explanation rule broken ({switched} switched, {blocked} blocked, {held} held, \
             {kept} kept): {:?}",
            step.events
        ))
    }
}

/// Invariants of every single step.
fn check_step(cfg: &EngineConfig, r: &Record) -> Result<(), TestCaseError> {
    let n = cfg.profiles.len();
    if let Err(e) = explanation_rule(&r.step, r.pin_after) {
        return Err(TestCaseError::fail(format!(
            "at {}: {e}\nobservation {:?}",
            r.now, r.obs
        )));
    }
    // The engine knows what is in force: what the plant has in force, whether the plant
    // reports it with every observation or only through the applies' outcomes.
    prop_assert_eq!(
        r.in_force_after,
        r.plant_in_force,
        "at {}: engine believes {} in force, the plant has {}: {:?}",
        r.now,
        r.in_force_after,
        r.plant_in_force,
        r.obs
    );
    let evaluated = r.evaluation().is_some();
    let base = r.base();
    let switches = r
        .step
        .events
        .iter()
        .filter(|e| matches!(e, Event::Switched(_)))
        .count();
    prop_assert!(switches <= 1, "two switches in one step: {:?}", r.step);
    match r.switched() {
        Some(d) => {
            let to = d.to_index;
            prop_assert!(
                matches!(r.step.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == to),
                "a switch comes with exactly its ApplyProfile action: {:?}",
                r.step.actions
            );
            prop_assert!(to < n);
            prop_assert_ne!(to, base, "a switch changes the profile: {:?}", r.step);
            prop_assert_eq!(d.escalation, to > base);
            prop_assert_eq!(r.after, to);
            prop_assert_eq!(&d.from, &cfg.profiles[base].name, "{:?}", r.step);
            prop_assert_eq!(&d.to, &cfg.profiles[to].name);
            prop_assert_eq!(&d.pipeline, &cfg.pipeline);
            match &d.cause {
                Cause::Pressure { held_for, .. } => {
                    prop_assert!(evaluated, "ladder switch without a new sample: {:?}", r);
                    prop_assert!(d.escalation);
                    prop_assert!(
                        *held_for >= cfg.hysteresis.escalate_for,
                        "escalated after {:?} < escalate_for {:?}",
                        held_for,
                        cfg.hysteresis.escalate_for
                    );
                }
                Cause::Fits { held_for, .. } => {
                    prop_assert!(evaluated, "ladder switch without a new sample: {:?}", r);
                    prop_assert!(!d.escalation);
                    prop_assert!(
                        *held_for >= cfg.hysteresis.relax_for,
                        "relaxed after {:?} < relax_for {:?}",
                        held_for,
                        cfg.hysteresis.relax_for
                    );
                }
                Cause::HardLimit { output, ratio } => {
                    prop_assert!(evaluated, "hard limit without a new sample: {:?}", r);
                    prop_assert!(*output > ratio * cfg.budget_series);
                }
                Cause::Anomaly { .. } => {
                    prop_assert!(evaluated, "anomaly without a new sample: {:?}", r)
                }
                Cause::Requested { .. } => prop_assert!(
                    r.has_emergency_command(),
                    "requested emergency without a command: {:?}",
                    r
                ),
                Cause::Override { .. } => prop_assert!(
                    r.pinned_before || r.has_override_command(),
                    "override switch without a pin: {:?}",
                    r
                ),
                Cause::Fallback { bad_for } => {
                    prop_assert!(r.held().is_some(), "fallback on good input: {:?}", r);
                    prop_assert!(*bad_for >= cfg.bad_input.fallback_after);
                    prop_assert_eq!(Some(to), cfg.bad_input.fallback_profile);
                    prop_assert!(d.escalation);
                }
            }
            if d.cause.is_emergency() {
                prop_assert_eq!(to, cfg.most_reducing());
            }
            // While an apply is pending the engine may escalate but never relaxes (an
            // operator's pin excepted).
            if !d.escalation && !matches!(d.cause, Cause::Override { .. }) {
                prop_assert_eq!(
                    base,
                    r.in_force_after,
                    "relaxed while {} was still being applied: {:?}",
                    base,
                    r
                );
            }
        }
        None => {
            prop_assert!(
                r.step.actions.is_empty(),
                "action without a switch: {:?}",
                r.step
            );
            prop_assert_eq!(
                r.after,
                base,
                "decided profile changed without a Switched event: {:?}",
                r
            );
        }
    }
    // A failed apply of the decided profile sets decided back to what is in force.
    if r.failed_decided() && r.switched().is_none() {
        prop_assert_eq!(r.after, r.in_force_after);
    }
    if let Some(b) = r.blocked() {
        prop_assert_eq!(b.from, base);
        prop_assert_ne!(b.to, base);
        let zero_lockout = TOLERATE_ZERO_LOCKOUT_BLOCK
            && b.guard == Guard::Lockout
            && cfg.guards.emergency.lockout.is_zero()
            && b.until == Some(r.now);
        prop_assert!(
            zero_lockout || b.until.is_none_or(|u| u > r.now),
            "blocked until a time already past: {:?} (lockout {:?})",
            b,
            cfg.guards.emergency.lockout
        );
    }
    // An unusable sample is held, never evaluated (an empty result is never read as
    // zero); a usable one is evaluated exactly when it is newer than the last one.
    prop_assert_eq!(
        r.held().is_some(),
        r.meant_bad,
        "at {}: observation {:?} gave {:?}",
        r.now,
        r.obs,
        r.step.events
    );
    let newer = r
        .sample
        .is_some_and(|s| r.last_sample_before.is_none_or(|l| s.0 > l));
    prop_assert_eq!(evaluated, newer, "at {}: {:?}", r.now, r);
    if let Some(Kept::NoNewSample { .. }) = r.kept() {
        prop_assert!(!evaluated);
    }
    if let Some(h) = r.held() {
        prop_assert_eq!(h.bad_for, r.now.saturating_since(h.since));
    }
    prop_assert!(
        r.step.next_wakeup > r.now,
        "next_wakeup not in the future: {:?}",
        r.step
    );
    let last = if evaluated {
        r.sample.map(|s| s.0)
    } else {
        r.last_sample_before
    };
    let latest = last.map_or(r.now, |l| l.max(r.now));
    prop_assert!(
        r.step.next_wakeup <= latest.plus(cfg.tick),
        "next_wakeup {} beyond a tick after {}",
        r.step.next_wakeup,
        latest
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties carried over from the tick-based core
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(proptest_config())]

    /// The PID's terms stay inside their limits and finite, whatever finite values and
    /// time steps arrive (zero, backwards and very long steps included): |i| ≤ i_limit,
    /// |output| ≤ output_limit, p, i, d, output all finite.
    #[test]
    fn pid_terms_stay_within_limits(sc in scenario(Mix {
        commands: Commands::All,
        wild: 30,
        bad: 8,
        gaps: 5,
        wild_time: true,
        failures: Failures::Any,
        min_settle: 0,
        swings: 2,
    })) {
        let (_, _, records) = drive(&sc)?;
        let pid = sc.cfg.pid;
        for r in &records {
            if let Some(ev) = r.evaluation() {
                prop_assert!(
                    ev.p.is_finite() && ev.i.is_finite() && ev.d.is_finite() && ev.output.is_finite(),
                    "non-finite PID terms at {}: {:?} (obs {:?})", r.now, ev, r.obs
                );
                prop_assert!(ev.i.abs() <= pid.i_limit, "|i| {} > i_limit {}", ev.i, pid.i_limit);
                prop_assert!(
                    ev.output.abs() <= pid.output_limit,
                    "|output| {} > output_limit {}", ev.output, pid.output_limit
                );
            }
        }
    }

    /// No switch inside the hysteresis band: on a step that evaluated a new sample, with
    /// no command and no pin, whose pressure on the decided profile lies within
    /// [relax_below, escalate_above], the ladder does not move; only an emergency the
    /// sample itself raises (output over the hard ratio, or the explosion rule) may
    /// switch. The engine enforces the ladder order on measured retentions, so no proviso
    /// on them is needed any more.
    #[test]
    fn no_switch_inside_the_hysteresis_band(sc in scenario(Mix::realistic(Commands::Emergency))) {
        let (_, _, records) = drive(&sc)?;
        let h = sc.cfg.hysteresis;
        for r in &records {
            let Some(ev) = r.evaluation() else { continue };
            let in_band = ev.pressure >= h.relax_below && ev.pressure <= h.escalate_above;
            if r.obs.commands.is_empty() && !r.pinned_before && in_band
                && let Some(d) = r.switched()
            {
                prop_assert!(
                    matches!(d.cause, Cause::HardLimit { .. } | Cause::Anomaly { .. }),
                    "switched inside the band at {}: pressure {} in [{}, {}]: {:?}",
                    r.now, ev.pressure, h.relax_below, h.escalate_above, r.step.events
                );
            }
        }
    }

    /// At most `max_switches` switches inside any window of the switch budget, counting
    /// every switch (organic, emergency, override, fallback, and those whose apply then
    /// failed) over the whole run.
    #[test]
    fn switch_budget_holds_in_every_window(sc in scenario(Mix::realistic(Commands::All))) {
        let (_, _, records) = drive(&sc)?;
        let budget = sc.cfg.guards.switch_budget;
        let times: Vec<Timestamp> = records
            .iter()
            .filter(|r| r.switched().is_some())
            .map(|r| r.now)
            .collect();
        for (k, &t) in times.iter().enumerate() {
            // Switches in the window (t − window, t], which ends at a switch: the densest
            // windows are those.
            let inside = times[..=k]
                .iter()
                .filter(|&&s| t.saturating_since(s) < budget.window)
                .count();
            prop_assert!(
                inside <= budget.max_switches as usize,
                "{} switches within {:?} ending at {} (max {}): {:?}",
                inside, budget.window, t, budget.max_switches, times
            );
        }
    }

    /// No relaxation during a lockout: after an emergency (an Emergency command, a new
    /// sample whose output exceeds hard_ratio × budget, or an emergency switch of any
    /// cause), no switch to a less reducing profile, not even an operator's pin, until
    /// `lockout` has elapsed since the latest one.
    #[test]
    fn no_relaxation_during_lockout(sc in scenario(Mix::realistic(Commands::All))) {
        let (_, _, records) = drive(&sc)?;
        let cfg = &sc.cfg;
        let hard = cfg.guards.emergency.hard_ratio * cfg.budget_series;
        let mut locked_until: Option<Timestamp> = None;
        for r in &records {
            let hard_limit = r.evaluation().is_some() && r.sample.is_some_and(|s| s.2 > hard);
            let emergency_switch = r.switched().is_some_and(|d| d.cause.is_emergency());
            if let Some(d) = r.switched()
                && !d.escalation
                && let Some(until) = locked_until
            {
                prop_assert!(
                    r.now >= until,
                    "relaxed {}→{} at {} during the lockout until {}",
                    d.from, d.to, r.now, until
                );
            }
            if r.has_emergency_command() || hard_limit || emergency_switch {
                let until = r.now.plus(cfg.guards.emergency.lockout);
                locked_until = Some(locked_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    /// Dwell, in time: with no commands, two consecutive switches are at least
    /// `min_dwell_escalate` apart if the second escalates (emergencies included: they
    /// pass the same guards), and at least `min_dwell_relax` apart if it relaxes, except
    /// after an emergency switch, where the lockout takes the dwell's place (the relax
    /// then comes at least `lockout` after it).
    #[test]
    fn dwell_is_respected(sc in scenario(Mix::realistic(Commands::None))) {
        let (_, _, records) = drive(&sc)?;
        check_dwell(&sc.cfg, &records)?;
    }

    /// Determinism: two engines fed the same observations produce identical steps
    /// (actions, events, next_wakeup) and end in the same state; and every step survives
    /// a JSON round trip (the journal records them).
    #[test]
    fn same_observations_same_steps(sc in scenario(Mix {
        commands: Commands::All,
        wild: 10,
        bad: 12,
        gaps: 5,
        wild_time: true,
        failures: Failures::Any,
        min_settle: 0,
        swings: 2,
    })) {
        let (first, _, records) = drive(&sc)?;
        let mut second = Engine::new(sc.cfg.clone());
        let steps = replay(&mut second, &records);
        for (r, s) in records.iter().zip(&steps) {
            prop_assert_eq!(same(&r.step), same(s), "diverged at {}", r.now);
            let json = serde_json::to_string(s).expect("a step serialises");
            let back: Step = match serde_json::from_str(&json) {
                Ok(b) => b,
                Err(e) => return Err(TestCaseError::fail(format!(
                    "step at {} does not deserialise: {e}\n{json}", r.now
                ))),
            };
            prop_assert_eq!(same(&back), same(s), "JSON round trip changed the step");
        }
        prop_assert_eq!(same(&first.state()), same(&second.state()));
    }

    /// Restore equivalence (in memory): an engine restored from `state()` (profiles by
    /// name) at a random point, under the same policy, reports nothing dropped and
    /// continues exactly like the original. Separates `Engine::restore`'s semantics from
    /// serialisation, which the next property adds.
    #[test]
    fn restored_state_continues_identically(
        sc in scenario(Mix::realistic(Commands::All)),
        split in any::<Index>(),
    ) {
        let (_, _, records) = drive(&sc)?;
        let at = split.index(records.len());
        let mut original = Engine::new(sc.cfg.clone());
        replay(&mut original, &records[..at]);
        let (mut restored, notes) = Engine::restore(sc.cfg.clone(), original.state());
        prop_assert!(notes.is_empty(), "same policy, yet: {:?}", notes);
        prop_assert_eq!(restored.current(), original.current());
        prop_assert_eq!(restored.in_force(), original.in_force());
        let a = replay(&mut original, &records[at..]);
        let b = replay(&mut restored, &records[at..]);
        for ((r, x), y) in records[at..].iter().zip(&a).zip(&b) {
            prop_assert_eq!(same(x), same(y), "diverged at {}", r.now);
        }
    }

    /// Serialise/restore equivalence: at a random split point, `engine.state()` goes
    /// through serde_json, `Engine::restore(cfg, state)` continues, and both engines then
    /// produce identical steps on the rest of the sequence (a daemon restart causes no
    /// extra or different decision). The round-tripped state must also equal the original.
    /// When only this one fails (not the in-memory one above) the fault is in
    /// serialisation (non-finite floats, which serde_json writes as `null`, or floats that
    /// do not parse back bit for bit).
    #[test]
    fn json_restored_state_continues_identically(
        sc in scenario(Mix::realistic(Commands::All)),
        split in any::<Index>(),
    ) {
        let (_, _, records) = drive(&sc)?;
        let at = split.index(records.len());
        let mut original = Engine::new(sc.cfg.clone());
        replay(&mut original, &records[..at]);
        let json = serde_json::to_string(&original.state()).expect("state serialises");
        let state: EngineState = match serde_json::from_str(&json) {
            Ok(s) => s,
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "persisted state does not deserialise after step {at}: {e}\n{json}"
                )));
            }
        };
        prop_assert_eq!(same(&state), same(&original.state()), "JSON round trip changed the state");
        prop_assert_eq!(state.version, STATE_VERSION);
        let (mut restored, notes) = Engine::restore(sc.cfg.clone(), state);
        prop_assert!(notes.is_empty(), "same policy, yet: {:?}", notes);
        let a = replay(&mut original, &records[at..]);
        let b = replay(&mut restored, &records[at..]);
        for ((r, x), y) in records[at..].iter().zip(&a).zip(&b) {
            prop_assert_eq!(same(x), same(y), "diverged at {}", r.now);
        }
    }

    /// Bad input never relaxes: on a step whose input or output is Empty, Stale (either
    /// form) or Error (including non-finite or negative values), the engine never
    /// switches to a less reducing profile; escalations (fallback, emergency request)
    /// remain allowed, and a failed apply may still set the decided profile back to what
    /// is really in force (that is reality, not a relaxation). Override commands are left
    /// out: an operator's pin is honoured even on a bad step.
    #[test]
    fn bad_input_never_relaxes(sc in scenario(Mix {
        commands: Commands::Emergency,
        wild: 10,
        bad: 40,
        gaps: 5,
        wild_time: false,
        failures: Failures::Any,
        min_settle: 0,
        swings: 2,
    })) {
        let (_, _, records) = drive(&sc)?;
        for r in records.iter().filter(|r| r.meant_bad) {
            prop_assert!(r.after >= r.base(), "decided moved down on a bad step: {:?}", r);
            if let Some(d) = r.switched() {
                prop_assert!(
                    d.escalation,
                    "relaxed {}→{} on a bad step at {}: {:?}",
                    d.from, d.to, r.now, r.obs
                );
                prop_assert!(
                    matches!(d.cause, Cause::Fallback { .. } | Cause::Requested { .. }),
                    "bad step switched for another reason: {:?}", r.step.events
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Every step explains itself exactly once, pins included (the explanation rule of
    /// `explanation_rule`, with no tolerance): a step that switches to or is blocked from a
    /// pinned profile says so and nothing else.
    #[test]
    fn every_step_has_exactly_one_explanation(sc in scenario(Mix::realistic(Commands::All))) {
        let mut engine = Engine::new(sc.cfg.clone());
        let (_, _, records) = drive(&sc)?;
        for r in &records {
            let s = engine.step(r.now, &r.obs);
            if let Err(e) = explanation_rule(&s, None) {
                return Err(TestCaseError::fail(format!("at {}: {e}", r.now)));
            }
        }
    }
}

/// The dwell rule over a whole run (see `dwell_is_respected`).
fn check_dwell(cfg: &EngineConfig, records: &[Record]) -> Result<(), TestCaseError> {
    let g = cfg.guards;
    let mut last: Option<(Timestamp, bool)> = None;
    for r in records {
        let Some(d) = r.switched() else { continue };
        if matches!(d.cause, Cause::Override { .. }) {
            // A pin passes no dwell; the next switch's dwell counts from it.
            last = Some((r.now, false));
            continue;
        }
        if let Some((prev, prev_emergency)) = last {
            let gap = r.now.saturating_since(prev);
            let (need, what) = if d.escalation {
                (g.min_dwell_escalate, "min_dwell_escalate")
            } else if prev_emergency {
                (g.emergency.lockout, "lockout")
            } else {
                (g.min_dwell_relax, "min_dwell_relax")
            };
            prop_assert!(
                gap >= need,
                "switch {}→{} at {} only {:?} after the previous one at {} ({} {:?})",
                d.from,
                d.to,
                r.now,
                gap,
                prev,
                what,
                need
            );
        }
        last = Some((r.now, d.cause.is_emergency()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties of the core in time
// ---------------------------------------------------------------------------------------

/// Extra calls to insert after one original step.
#[derive(Clone, Debug)]
struct Extra {
    /// Calls repeating the step's instant and samples.
    repeats: usize,
    /// Calls at instants between this step and the next (shares of the usable interval),
    /// carrying this step's samples.
    between: Vec<f64>,
}

fn extras() -> impl Strategy<Value = Extra> {
    (
        prop_oneof![3 => Just(0usize), 1 => 1usize..=2],
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(0.0f64..1.0, 1..=3),
        ],
    )
        .prop_map(|(repeats, between)| Extra { repeats, between })
}

/// The streak rule over a whole run: a `Fits` switch held for `held_for` ≥ `relax_for`
/// and a `Pressure` switch held for ≥ `escalate_for` really saw their condition over that
/// much sample time. Every evaluated sample from the streak's first one (there is one at
/// exactly `at − held_for`) to the switch kept the decided profile with the matching
/// streak (or a guard blocked the wanted switch, or an emergency request found the most
/// reducing profile already decided), no two of them are further apart than
/// `max_sample_age` (a longer gap breaks every streak), and nothing switched in between.
fn check_streaks(cfg: &EngineConfig, records: &[Record]) -> Result<(), TestCaseError> {
    let max_gap = cfg.bad_input.max_sample_age;
    for (k, r) in records.iter().enumerate() {
        let Some(d) = r.switched() else { continue };
        let (held_for, relax) = match d.cause {
            Cause::Fits { held_for, .. } => (held_for, true),
            Cause::Pressure { held_for, .. } => (held_for, false),
            _ => continue,
        };
        let need = if relax {
            cfg.hysteresis.relax_for
        } else {
            cfg.hysteresis.escalate_for
        };
        prop_assert!(held_for >= need, "{} held {:?} < {:?}", d, held_for, need);
        let at = r
            .evaluated_at()
            .expect("a ladder switch evaluated a sample");
        let since = Timestamp(at.as_millis() - held_for.as_millis() as i64);
        let mut prev_at = at;
        let mut found_start = since == at;
        for q in records[..k].iter().rev() {
            if found_start {
                break;
            }
            let Some(qa) = q.evaluated_at() else {
                prop_assert!(q.switched().is_none(), "switch inside the streak: {:?}", q);
                continue;
            };
            if qa < since {
                break;
            }
            prop_assert!(
                prev_at.saturating_since(qa) <= max_gap,
                "streak of {} spans a gap from {} to {} > max_sample_age {:?}",
                d,
                qa,
                prev_at,
                max_gap
            );
            prev_at = qa;
            found_start |= qa == since;
            prop_assert!(q.switched().is_none(), "switch inside the streak: {:?}", q);
            prop_assert_eq!(
                q.after,
                r.base(),
                "decided moved inside the streak: {:?}",
                q
            );
            let emergency = q.has_emergency_command();
            let fine = match (q.kept(), q.blocked()) {
                (_, Some(_)) => true,
                (Some(Kept::RelaxStreak { since: s, need, .. }), _) if relax => {
                    *s == since && *need == cfg.hysteresis.relax_for
                }
                (Some(Kept::EscalateStreak { since: s, need, .. }), _) if !relax => {
                    *s == since && *need >= cfg.hysteresis.escalate_for
                }
                (Some(Kept::AtMostReducing { .. }), _) => emergency,
                _ => false,
            };
            prop_assert!(
                fine,
                "{} at {} (held {:?} since {}), but at {} the step said {:?}",
                d,
                at,
                held_for,
                since,
                qa,
                q.step.events
            );
        }
        prop_assert!(
            found_start,
            "{} held {:?}, but no sample was evaluated at {}",
            d,
            held_for,
            since
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Call-rate invariance: the same observations at the same timestamps, with extra
    /// `step` calls inserted — repeats of an instant (same `now`, same samples, no apply
    /// report, no command) and calls at instants between two steps carrying the previous
    /// step's samples (which are then not newer; only after a usable observation, and only
    /// while those samples are still fresh, so the extra call is no news rather than bad
    /// input) — give exactly the same steps at the original calls (so the same switches,
    /// from and to, at the same `now`s), no switch and no evaluation at the extra calls,
    /// and the same final state. Commands come only with the original calls; they are
    /// emergency requests only (see `a_blocked_pin_switches_at_whichever_call_comes_next`
    /// for why pins are left out).
    #[test]
    fn call_rate_invariance(
        sc in scenario(Mix::realistic(Commands::Emergency)),
        extra in prop::collection::vec(extras(), 250),
    ) {
        let (original, _, records) = drive(&sc)?;
        let cfg = &sc.cfg;
        let max_age = cfg.bad_input.max_sample_age;
        let mut engine = Engine::new(cfg.clone());
        let mut steps = Vec::new();
        for (k, r) in records.iter().enumerate() {
            let s = engine.step(r.now, &r.obs);
            prop_assert_eq!(same(&s), same(&r.step), "original call at {} diverged", r.now);
            steps.push((r.now, s));
            if k + 1 == records.len() {
                break;
            }
            let quiet = Observation {
                applies: Vec::new(),
                commands: Vec::new(),
                ..r.obs.clone()
            };
            let ex = &extra[k % extra.len()];
            let mut calls: Vec<Timestamp> = vec![r.now; ex.repeats];
            if let Some((at, _, _)) = r.sample {
                // Strictly between this call and the next, and the samples still fresh.
                let lo = r.now.as_millis();
                let hi = records[k + 1].now.as_millis().min(at.plus(max_age).as_millis() + 1);
                if hi > lo + 1 {
                    let mut between: Vec<i64> = ex
                        .between
                        .iter()
                        .map(|u| lo + 1 + (u * (hi - lo - 1) as f64) as i64)
                        .map(|t| t.min(hi - 1))
                        .collect();
                    between.sort_unstable();
                    calls.extend(between.into_iter().map(Timestamp));
                }
            }
            for now in calls {
                let s = engine.step(now, &quiet);
                let held = s.events.iter().any(|e| matches!(e, Event::Held(_)));
                prop_assert!(
                    held == (r.meant_bad && now == r.now),
                    "extra call at {} after {} held {}: {:?}", now, r.now, held, s
                );
                prop_assert!(
                    s.switched().is_none() && s.actions.is_empty(),
                    "extra call at {} (after {}) switched: {:?}", now, r.now, s
                );
                prop_assert!(
                    !s.events.iter().any(|e| matches!(e, Event::Evaluated(_))),
                    "extra call at {} evaluated: {:?}", now, s
                );
                if let Err(e) = explanation_rule(&s, None) {
                    return Err(TestCaseError::fail(format!("extra call at {now}: {e}")));
                }
                prop_assert!(s.next_wakeup > now);
                steps.push((now, s));
            }
        }
        prop_assert_eq!(same(&engine.state()), same(&original.state()));
    }

    /// Sampling invariance of durations: whatever the clock — regular ticks of 5 s, 15 s
    /// or 60 s, jittered or irregular ticks, gaps up to and beyond `max_sample_age` — the
    /// policy's durations hold in time. The dwell holds between any two switches as
    /// `dwell_is_respected` states it (emergency requests included, with the lockout in
    /// the relax dwell's place after an emergency), and the escalate_for / relax_for
    /// streaks hold in sample time as `check_streaks` states it.
    #[test]
    fn durations_hold_whatever_the_sampling(sc in scenario(Mix {
        commands: Commands::Emergency,
        wild: 2,
        bad: 8,
        gaps: 8,
        wild_time: false,
        failures: Failures::Any,
        min_settle: 0,
        swings: 8,
    })) {
        let (_, _, records) = drive(&sc)?;
        check_dwell(&sc.cfg, &records)?;
        check_streaks(&sc.cfg, &records)?;
    }

    /// In-force honesty: with applies failing (every one, or some), the engine never
    /// believes a failed profile in force (`in_force()` always equals what the plant has in
    /// force, `check_step`), after a failed apply of the decided profile `current()` is the
    /// profile in force, and `Evaluation.measured_retention` is computed only from
    /// samples taken while the profile in force really was: it always lies within the
    /// noise band [0.95, 1.05] × the true retention of the profile the engine reports in
    /// force (an EWMA of such samples stays in the band; one sample of another profile
    /// pushes it out by a fifth of the difference). Runs use a settle time of at least 1 s:
    /// see `settle_zero_measures_a_sample_taken_before_the_apply_ended` for zero.
    #[test]
    fn the_engine_knows_what_is_in_force(sc in scenario_with(
        Mix {
            commands: Commands::All,
            wild: 0,
            bad: 12,
            gaps: 3,
            wild_time: false,
            failures: Failures::Some,
            min_settle: 1,
            swings: 6,
        },
        Limits::wide(1),
        30..250,
    ), all_fail in any::<bool>()) {
        let mut sc = sc;
        if all_fail {
            sc.plant.fail_rate = 1.0;
        }
        let (_, plant, records) = drive(&sc)?;
        let mut ever_in_force = BTreeSet::from([records.first().map_or(0, |r| r.in_force_before)]);
        for r in &records {
            ever_in_force.insert(r.plant_in_force);
            if r.obs.applies.iter().any(|a| a.profile == r.before && a.outcome != ApplyOutcome::Applied)
                && r.switched().is_none()
            {
                prop_assert_eq!(r.after, r.in_force_after, "after a failed apply: {:?}", r);
            }
            let Some(ev) = r.evaluation() else { continue };
            let Some(m) = ev.measured_retention else { continue };
            let truth = plant.truth[r.in_force_after];
            let (lo, hi) = (truth * 0.95 - 1e-9, (truth * 1.05).min(1.0) + 1e-9);
            prop_assert!(
                (lo..=hi).contains(&m),
                "at {}: measured retention {} of {} in force, whose true retention is {} \
                 (sample taken under {}; profiles ever in force {:?}, failed {:?}, truths {:?})",
                r.now, m, r.in_force_after, truth, r.sampled_profile, ever_in_force, plant.failed,
                plant.truth
            );
        }
        if sc.plant.fail_rate >= 1.0 {
            let initial = records.first().map_or(0, |r| r.in_force_before);
            prop_assert!(records.iter().all(|r| r.in_force_after == initial));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Liveness
// ---------------------------------------------------------------------------------------

/// Per-step clock jitter (in [-1, 1]), output noise and scrape lag of a liveness phase.
fn wobble() -> impl Strategy<Value = Vec<(f64, f64, f64)>> {
    prop::collection::vec((-1.0f64..=1.0, 0.95f64..1.05, 0.0f64..=1.0), 64)
}

/// One calm step of a liveness phase: demand at `level`, healthy samples, no command,
/// the clock within a third of the tick (exactly the tick if regular).
fn calm_step(
    run: &mut Run,
    clock: Clock,
    level: f64,
    w: (f64, f64, f64),
) -> Result<Record, TestCaseError> {
    run.level = level;
    let t = TickSpec {
        dt: Dt::Tick(w.0),
        demand: Demand::Scale(1.0),
        noise: w.1,
        lag: w.2,
        fault: Fault::None,
        cmd: None,
    };
    let tick = run.cfg.tick.as_millis() as f64;
    let dt = match clock {
        Clock::Regular => tick,
        _ => tick * (1.0 + w.0 / 3.0),
    } as i64;
    Ok(run.step(&t, dt)?.clone())
}

/// The longest time between two calls of a liveness run.
fn liveness_max_dt(cfg: &EngineConfig, clock: Clock) -> Duration {
    match clock {
        Clock::Regular => cfg.tick,
        _ => cfg.tick.mul_f64(4.0 / 3.0) + Duration::from_millis(1),
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Liveness of escalation: after a warm-up, demand held high — so high that the
    /// decided profile's pressure exceeds `escalate_above` whatever the PID adds and
    /// whichever retention the engine measured (demand × the lowest retention any profile
    /// can show / budget > escalate_above + output_limit) — with healthy samples and
    /// applies that succeed, escalates by the deadline
    ///
    ///   T₀ + max(max(escalate_for, transient_confirm),
    ///            last switch + min_dwell_escalate − T₀,
    ///            oldest switch in the budget window + window − T₀, if the budget is spent)
    ///   + 2 × the longest step + the largest scrape lag,
    ///
    /// where T₀ is the first high step: the streak starts at the first high sample, and
    /// the dwell and the switch budget count from switches made before T₀.
    #[test]
    fn high_demand_escalates_in_bounded_time(
        cfg in config(Limits { output_limit: 0.3, ..Limits::wide(0) }),
        plant in plant(Failures::Never, Duration::from_secs(60)),
        clock in clock(),
        warm in prop::collection::vec(0.1f64..1.0, 0..20),
        w in wobble(),
    ) {
        let mut cfg = cfg;
        // A sample gap longer than max_sample_age breaks every streak by design; liveness
        // is about steady sampling, so the jittered clock and the scrape lag stay inside it.
        cfg.bad_input.max_sample_age = cfg.bad_input.max_sample_age.max(cfg.tick * 2);
        // Start below the top, so there is somewhere to escalate to.
        cfg.initial_profile = cfg.initial_profile.min(cfg.most_reducing() - 1);
        let mut run = Run::new(&cfg, &plant);
        for (k, level) in warm.iter().enumerate() {
            calm_step(&mut run, clock, level * cfg.budget_series, w[k % w.len()])?;
        }
        let from = run.engine.current();
        if from == cfg.most_reducing() {
            // The warm-up already reached the top: nothing to show.
            return Ok(());
        }
        let lowest = run.plant.truth.iter().chain(cfg.profiles.iter().map(|p| &p.retention))
            .fold(1.0f64, |m, &r| m.min(r)) * 0.95;
        let h = cfg.hysteresis;
        let high = cfg.budget_series * (h.escalate_above + cfg.pid.output_limit + 0.1) / lowest;
        let t0 = Timestamp(run.now.as_millis() + 1);
        let switches: Vec<Timestamp> = run.records.iter().filter(|r| r.switched().is_some()).map(|r| r.now).collect();
        let g = cfg.guards;
        let confirm = h.escalate_for.max(cfg.prediction.transient_confirm);
        let mut deadline = t0.plus(confirm);
        if let Some(&last) = switches.last() {
            deadline = deadline.max(last.plus(g.min_dwell_escalate));
        }
        let recent: Vec<_> = switches.iter().filter(|&&s| t0.saturating_since(s) < g.switch_budget.window).collect();
        if recent.len() >= g.switch_budget.max_switches as usize {
            deadline = deadline.max(recent[0].plus(g.switch_budget.window));
        }
        let slack = liveness_max_dt(&cfg, clock) * 2 + Duration::from_millis(3 * max_lag_ms(&cfg) as u64);
        let deadline = deadline.plus(slack);
        let mut k = 0;
        loop {
            let r = calm_step(&mut run, clock, high, w[k % w.len()])?;
            k += 1;
            if let Some(d) = r.switched() {
                prop_assert!(d.escalation, "relaxed under high demand: {}", d);
                prop_assert!(r.now <= deadline, "escalated at {}, after the deadline {}", r.now, deadline);
                break;
            }
            prop_assert!(
                r.now <= deadline,
                "no escalation from {} by {} (T₀ {}, confirm {:?}, dwell {:?}, budget {:?}, switches {:?}); last step {:?}",
                cfg.profiles[from].name, deadline, t0, confirm, g.min_dwell_escalate, g.switch_budget, switches, r.step.events
            );
        }
    }

    /// Liveness of relaxation: after a warm-up that ends with high demand (so something
    /// more reducing than the least is usually decided), demand held low — so low that
    /// even a profile keeping everything would fit (demand / budget < (relax_below −
    /// output_limit) / 2), with a constant input so no trend or scatter is left once the
    /// windows have passed — with healthy samples and applies that succeed, relaxes by the
    /// latest of
    ///
    ///   max(T_h + max(trend window, relax_window), T_applied) + relax_for,
    ///   last switch + min_dwell_relax (unless it was an emergency),
    ///   last emergency + lockout (T_h, the last high step, if the explosion rule may
    ///     have asked for one unseen),
    ///   last switch + oscillation window, last flap + cooldown × 2^max_doublings,
    ///   oldest switch in the budget window + window, if the budget is spent,
    ///
    /// plus 2 × the longest step + 3 × the largest scrape lag, where T_h is the last high
    /// step and T_applied the end of the last apply in flight (plus a step to hear of it).
    /// The low phase may still escalate while the high samples are inside the prediction
    /// window (they are scatter for the volatility margin, or an escalate streak still
    /// running), but only then: by T_h + trend window + the slack. Such an escalation is a
    /// switch like the others in the bound, which is then recomputed. The trend window is
    /// `window`, or `MIN_TREND_INTERVALS` sampling intervals when that is longer.
    #[test]
    fn low_demand_relaxes_in_bounded_time(
        cfg in config(Limits {
            output_limit: 0.3,
            cooldown: 600,
            doublings: 2,
            budget_window: 3600,
            lockout: 900,
            min_settle: 0,
        }),
        plant in plant(Failures::Never, Duration::from_secs(60)),
        clock in clock(),
        warm in prop::collection::vec(0.2f64..1.5, 0..30),
        high_steps in 1usize..20,
        w in wobble(),
    ) {
        let mut cfg = cfg;
        // As above: steady sampling, never a gap that breaks the streak.
        cfg.bad_input.max_sample_age = cfg.bad_input.max_sample_age.max(cfg.tick * 2);
        let mut run = Run::new(&cfg, &plant);
        for (k, level) in warm.iter().enumerate() {
            calm_step(&mut run, clock, level * cfg.budget_series, w[k % w.len()])?;
        }
        let lowest = run.plant.truth.iter().chain(cfg.profiles.iter().map(|p| &p.retention))
            .fold(1.0f64, |m, &r| m.min(r)) * 0.95;
        let h = cfg.hysteresis;
        let high = cfg.budget_series * (h.escalate_above + cfg.pid.output_limit + 0.1) / lowest;
        for k in 0..high_steps {
            calm_step(&mut run, clock, high, w[(k + 7) % w.len()])?;
        }
        let t_h = run.now;
        let g = cfg.guards;
        let pc = cfg.prediction;
        let max_dt = liveness_max_dt(&cfg, clock);
        let slack = max_dt * 2 + Duration::from_millis(3 * max_lag_ms(&cfg) as u64);
        // The trend window reaches back at least `MIN_TREND_INTERVALS` sampling intervals
        // (a gap between two samples is at most the longest step plus the largest lag).
        let interval = max_dt + Duration::from_millis(max_lag_ms(&cfg) as u64);
        let trend_window = pc.window.max(interval * MIN_TREND_INTERVALS as u32);
        let delay = match plant.delay {
            Delay::Steps(s) => max_dt * s as u32,
            Delay::Time(d) => d + max_dt,
        };
        let mut switches: Vec<(Timestamp, Decision)> = run.records.iter()
            .filter_map(|r| r.switched().map(|d| (r.now, d.clone())))
            .collect();
        // The last apply in flight at T_h ends by its delay.
        let mut applied = run.plant.pending.back().map_or(t_h, |a| match a.due {
            Due::At(t) => t.plus(max_dt),
            Due::Step(s) => t_h.plus(max_dt * (s.saturating_sub(run.k) as u32 + 1)),
        });
        let hard = g.emergency.hard_ratio * cfg.budget_series;
        let last_emergency = run.records.iter().rev().find(|r| {
            r.switched().is_some_and(|d| d.cause.is_emergency())
                || (r.evaluation().is_some() && r.sample.is_some_and(|s| s.2 > hard))
        }).map(|r| r.now);
        let unseen = cfg.anomaly.is_some_and(|a| a.request_emergency).then_some(t_h);
        let emergency = last_emergency.max(unseen);
        let deadline_of = |switches: &[(Timestamp, Decision)], applied: Timestamp| {
            let mut deadline = t_h.plus(trend_window.max(pc.relax_window)).max(applied).plus(h.relax_for);
            if let Some((last, d)) = switches.last() {
                if !d.cause.is_emergency() {
                    deadline = deadline.max(last.plus(g.min_dwell_relax));
                }
                deadline = deadline.max(last.plus(g.oscillation.window));
            }
            let emergency = switches.iter().rev()
                .find(|(_, d)| d.cause.is_emergency())
                .map(|(t, _)| *t)
                .max(emergency);
            if let Some(e) = emergency {
                deadline = deadline.max(e.plus(g.emergency.lockout));
            }
            for pair in switches.windows(2) {
                let ((t1, a), (t2, b)) = (&pair[0], &pair[1]);
                if a.from == b.to && a.to == b.from && t2.saturating_since(*t1) < g.oscillation.window {
                    let freeze = g.oscillation.cooldown * 2u32.pow(g.oscillation.max_doublings);
                    deadline = deadline.max(t2.plus(freeze));
                }
            }
            let end = switches.last().map_or(t_h, |s| s.0);
            let recent: Vec<Timestamp> = switches.iter().map(|s| s.0)
                .filter(|&s| end.saturating_since(s) < g.switch_budget.window).collect();
            if recent.len() >= g.switch_budget.max_switches as usize {
                deadline = deadline.max(recent[0].plus(g.switch_budget.window));
            }
            deadline.plus(slack)
        };
        let mut deadline = deadline_of(&switches, applied);
        let low = cfg.budget_series * (h.relax_below - cfg.pid.output_limit) / 2.0;
        let mut k = 0;
        loop {
            if run.engine.current() == 0 && run.engine.in_force() == 0 {
                // Nothing left to relax.
                break;
            }
            let r = calm_step(&mut run, clock, low, w[k % w.len()])?;
            k += 1;
            if let Some(d) = r.switched() {
                if !d.escalation {
                    prop_assert!(r.now <= deadline, "relaxed at {}, after the deadline {}", r.now, deadline);
                    break;
                }
                let scatter = t_h.plus(trend_window).plus(slack);
                prop_assert!(
                    r.now <= scatter,
                    "escalated under low demand at {}, after the high samples left the window \
                     (by {}): {}; {:?}",
                    r.now, scatter, d, r.step.events
                );
                switches.push((r.now, d.clone()));
                applied = applied.max(r.now.plus(delay));
                deadline = deadline_of(&switches, applied);
            }
            prop_assert!(
                r.now <= deadline,
                "no relaxation from {} by {} (T_h {}, switches {:?}); last step {:?}",
                cfg.profiles[run.engine.current()].name, deadline, t_h,
                switches.iter().map(|(t, d)| (t.to_string(), d.to_string())).collect::<Vec<_>>(),
                r.step.events
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Restore by name across a ladder change
// ---------------------------------------------------------------------------------------

/// A second ladder made from the first: one profile removed, up to two added, names in
/// another order, new retentions (strictly decreasing).
#[derive(Clone, Debug)]
struct LadderChange {
    removed: Index,
    added: usize,
    order: Vec<Index>,
    retentions: Vec<f64>,
}

fn ladder_change() -> impl Strategy<Value = LadderChange> {
    (
        any::<Index>(),
        0usize..=2,
        prop::collection::vec(any::<Index>(), 8),
        ladder(8),
    )
        .prop_map(|(removed, added, order, retentions)| LadderChange {
            removed,
            added,
            order,
            retentions,
        })
}

/// The names of the changed ladder, and its configuration.
fn changed_config(a: &EngineConfig, ch: &LadderChange) -> (EngineConfig, String) {
    let mut names: Vec<String> = a.profiles.iter().map(|p| p.name.clone()).collect();
    let removed = names.remove(ch.removed.index(names.len()));
    names.extend((0..ch.added).map(|k| format!("new{k}")));
    // Shuffle by the generated indices (a Fisher–Yates pass).
    for k in (1..names.len()).rev() {
        let j = ch.order[k % ch.order.len()].index(k + 1);
        names.swap(k, j);
    }
    let mut retentions = ch.retentions.clone();
    while retentions.len() < names.len() {
        let last = *retentions.last().expect("ladder has two rungs");
        retentions.push(last * 0.9);
    }
    let mut b = a.clone();
    b.profiles = names
        .into_iter()
        .zip(retentions)
        .map(|(name, retention)| ProfileSpec { name, retention })
        .collect();
    let n = b.profiles.len();
    b.initial_profile = a.initial_profile.min(n - 1);
    b.bad_input.fallback_profile = a.bad_input.fallback_profile.map(|f| f.min(n - 1));
    (b, removed)
}

/// What `restore` under `b` must make of `sa`: every surviving reference mapped by name,
/// every vanished one dropped, decided falling back to in force (or the initial profile).
fn expected_restore(b: &EngineConfig, sa: &EngineState) -> EngineState {
    let has = |n: &String| b.profile_index(n).is_some();
    let initial = b.profiles[b.initial_profile].name.clone();
    let mut e = sa.clone();
    e.in_force = if has(&sa.in_force) {
        sa.in_force.clone()
    } else {
        initial.clone()
    };
    e.decided = if has(&sa.decided) {
        sa.decided.clone()
    } else if has(&sa.in_force) {
        sa.in_force.clone()
    } else {
        initial
    };
    e.history = sa
        .history
        .iter()
        .filter(|r: &&SwitchRecord<String>| has(&r.from) && has(&r.to))
        .cloned()
        .collect();
    e.pinned = sa
        .pinned
        .clone()
        .filter(|p: &OverrideState<String>| has(&p.profile));
    e.refused = sa.refused.clone().filter(|r| has(&r.profile));
    e.measured_retention = sa
        .measured_retention
        .iter()
        .filter(|(p, _)| has(p))
        .cloned()
        .collect();
    e
}

/// Names of profiles a state refers to.
fn referenced(s: &EngineState) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = [s.decided.clone(), s.in_force.clone()].into();
    for r in &s.history {
        out.insert(r.from.clone());
        out.insert(r.to.clone());
    }
    out.extend(s.pinned.iter().map(|p| p.profile.clone()));
    out.extend(s.refused.iter().map(|r| r.profile.clone()));
    out.extend(s.measured_retention.iter().map(|(p, _)| p.clone()));
    out
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Restore by name across a ladder change: a state saved under ladder A (through
    /// serde_json) and restored under ladder B — profiles added, names in another order,
    /// one removed, retentions changed — maps every surviving profile by name (decided, in
    /// force, the pin, the switch history, the measured retentions: the restored engine's
    /// `state()` is A's with only the vanished profile's references dropped, and
    /// `current()`/`in_force()` are B's indices of those names), and the vanished profile,
    /// if the state referred to it, is named by a `RestoreNote` (as is a decided profile
    /// reset); no note names a profile that survived as lost. It never panics, and the
    /// restored engine then steps under B with every step explained.
    #[test]
    fn restore_maps_profiles_by_name_across_a_ladder_change(
        sc in scenario(Mix::realistic(Commands::All)),
        split in any::<Index>(),
        ch in ladder_change(),
    ) {
        let (_, _, records) = drive(&sc)?;
        let at = split.index(records.len() + 1);
        let mut a = Engine::new(sc.cfg.clone());
        replay(&mut a, &records[..at]);
        let json = serde_json::to_string(&a.state()).expect("state serialises");
        let sa: EngineState = serde_json::from_str(&json).expect("state deserialises");
        let (cfg_b, removed) = changed_config(&sc.cfg, &ch);
        let (mut b, notes) = Engine::restore(cfg_b.clone(), sa.clone());
        let sb = b.state();
        let expected = expected_restore(&cfg_b, &sa);
        prop_assert_eq!(same(&sb), same(&expected), "removed {:?}; notes {:?}", removed, notes);
        prop_assert_eq!(cfg_b.profiles[b.current()].name.clone(), sb.decided.clone());
        prop_assert_eq!(cfg_b.profiles[b.in_force()].name.clone(), sb.in_force.clone());
        if let Some(p) = b.pinned() {
            prop_assert_eq!(Some(&cfg_b.profiles[p.profile].name), sa.pinned.as_ref().map(|p| &p.profile));
        }
        let text = |n: &RestoreNote| n.0.clone();
        let lost = referenced(&sa).contains(&removed);
        let names_removed = notes.iter().any(|n| text(n).contains(&format!("`{removed}`")));
        prop_assert_eq!(lost, names_removed, "removed {:?} (referenced: {}); notes {:?}", removed, lost, notes);
        for n in &notes {
            if n.0.contains("no longer has") {
                prop_assert!(n.0.contains(&format!("`{removed}`")), "note names a surviving profile: {:?}", n);
            }
        }
        if sa.decided == removed {
            prop_assert!(notes.iter().any(|n| n.0.contains("decided profile reset")), "{:?}", notes);
        }
        // The restored engine steps under B, every step explained, nothing panics.
        let mut now = records.get(at).map_or(Timestamp(START_MS), |r| r.now);
        for k in 0..20 {
            now = now.plus(cfg_b.tick);
            let input = cfg_b.budget_series * (0.5 + 0.1 * k as f64);
            let obs = Observation::ok(input, input * 0.5, now).with_in_force(b.in_force());
            let s = b.step(now, &obs);
            if let Err(e) = explanation_rule(&s, b.pinned().map(|p| p.profile)) {
                return Err(TestCaseError::fail(format!("after restore, at {now}: {e}")));
            }
            prop_assert!(s.next_wakeup > now);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hand-made scenarios
// ---------------------------------------------------------------------------------------

/// A three-rung ladder with every field that decides these scenarios set here, so the
/// tuning of `EngineConfig::example` cannot change them.
fn ladder_config() -> EngineConfig {
    let mut cfg = EngineConfig::example(BUDGET);
    cfg.profiles = [
        ("conservative", 0.9),
        ("balanced", 0.6),
        ("aggressive", 0.35),
    ]
    .into_iter()
    .map(|(name, retention)| ProfileSpec {
        name: name.to_string(),
        retention,
    })
    .collect();
    cfg.initial_profile = 0;
    cfg.target_ratio = 0.85;
    cfg.tick = Duration::from_millis(TICK_MS as u64);
    cfg.pid = PidConfig {
        kp: 0.0,
        ki: 0.0,
        kd: 0.0,
        i_limit: 0.0,
        output_limit: 0.0,
    };
    cfg.hysteresis = HysteresisConfig {
        escalate_above: 0.95,
        relax_below: 0.8,
        escalate_for: Duration::ZERO,
        relax_for: Duration::ZERO,
    };
    cfg.prediction = PredictionConfig {
        window: Duration::from_secs(60),
        horizon: Duration::from_secs(15),
        volatility_k: 0.0,
        relax_window: Duration::from_secs(60),
        persistence_threshold: 0.0,
        transient_confirm: Duration::ZERO,
    };
    cfg.guards.min_dwell_escalate = Duration::ZERO;
    cfg.guards.min_dwell_relax = Duration::from_secs(600);
    cfg.guards.switch_budget = SwitchBudget {
        max_switches: 10,
        window: Duration::from_secs(3600),
    };
    cfg.guards.emergency.hard_ratio = 10.0;
    cfg.bad_input = BadInputConfig {
        max_sample_age: Duration::from_secs(60),
        fallback_after: Duration::from_secs(45),
        fallback_profile: Some(1),
    };
    cfg.settle = Duration::from_secs(15);
    cfg.anomaly = None;
    cfg
}

/// Timestamp of tick `k`.
fn at(k: i64) -> Timestamp {
    Timestamp(START_MS + k * TICK_MS)
}

#[test]
fn demand_step_escalates_with_a_readable_sentence() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg.clone());
    // Calm: 80k in, 72k out (0.72 of the budget), well inside the band's lower side.
    for k in 0..10 {
        let s = engine.step(
            at(k),
            &Observation::ok(80_000.0, 72_000.0, at(k)).with_in_force(0),
        );
        assert!(
            s.actions.is_empty(),
            "calm tick {k} switched: {:?}",
            s.events
        );
    }
    // Demand steps up to 115k: conservative would output 103.5k, balanced 69k (75k at
    // the trend's forecast, under the relax margin, so balanced is the target).
    let mut sentence = None;
    for k in 10..20 {
        let s = engine.step(
            at(k),
            &Observation::ok(115_000.0, 103_500.0, at(k)).with_in_force(0),
        );
        if let Some(d) = s.switched() {
            assert!(
                matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == 1),
                "{:?}",
                s.actions
            );
            assert!(d.escalation);
            assert!(matches!(d.cause, Cause::Pressure { .. }), "{:?}", d.cause);
            sentence = Some(d.to_string());
            break;
        }
    }
    let sentence = sentence.expect("the engine escalated within ten ticks of the step");
    assert!(
        sentence.contains("escalated conservative→balanced"),
        "sentence: {sentence}"
    );
    assert!(
        sentence.contains("100k"),
        "sentence names the budget: {sentence}"
    );
    assert_eq!(engine.current(), 1);
    // Decided, not yet in force.
    assert_eq!(engine.in_force(), 0);
}

/// Feeds `k` bad ticks (Error on input) after a calm start at `profile`; returns the
/// steps of the bad ticks.
fn bad_ticks_from(cfg: &EngineConfig, profile: usize, k: u32) -> (Engine, Vec<Step>) {
    let cfg = EngineConfig {
        initial_profile: profile,
        ..cfg.clone()
    };
    let mut engine = Engine::new(cfg);
    // Output at 0.88 of the budget: inside the band, and no less reducing profile fits.
    let output = 0.88 * BUDGET;
    let input = output / engine.config().profiles[profile].retention;
    for t in 0..4 {
        let s = engine.step(at(t), &Observation::ok(input, output, at(t)));
        assert!(
            s.actions.is_empty(),
            "calm tick {t} switched: {:?}",
            s.events
        );
    }
    let bad = Observation {
        input: Sample::Error {
            message: "connection refused".to_string(),
        },
        ..Observation::ok(input, output, at(4))
    };
    let steps = (0..i64::from(k))
        .map(|t| engine.step(at(4 + t), &bad))
        .collect();
    (engine, steps)
}

#[test]
fn bad_input_moves_to_the_fallback_only_if_more_protective() {
    let cfg = ladder_config();
    let after = cfg.bad_input.fallback_after;
    let fallback = cfg.bad_input.fallback_profile.expect("fallback configured");
    assert_eq!(fallback, 1);
    // 45 s of bad input at 15 s ticks: the bad ticks at 0, 15, 30 s hold, the one at 45 s
    // moves to balanced.
    let k = (after.as_millis() as i64 / TICK_MS) as usize;

    // From conservative.
    let (engine, steps) = bad_ticks_from(&cfg, 0, k as u32 + 3);
    for (n, s) in steps.iter().enumerate() {
        explanation_rule(s, None).unwrap();
        let held = s
            .events
            .iter()
            .find_map(|e| match e {
                Event::Held(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("bad tick {n} not held: {:?}", s.events));
        assert_eq!(held.since, at(4));
        assert_eq!(
            held.bad_for,
            Duration::from_millis(n as u64 * TICK_MS as u64)
        );
        assert!(
            held.to_string().starts_with("held: input is error"),
            "{held}"
        );
        assert!(!s.events.iter().any(|e| matches!(e, Event::Evaluated(_))));
        if n == k {
            assert!(
                matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == fallback),
                "{:?}",
                s.actions
            );
            let d = s.switched().expect("switched to the fallback");
            assert_eq!(d.cause, Cause::Fallback { bad_for: after });
            assert!(d.escalation);
            assert!(d.to_string().contains("fallback"), "{d}");
        } else {
            assert!(s.actions.is_empty(), "bad tick {n}: {:?}", s.events);
        }
    }
    assert_eq!(engine.current(), fallback);

    // From balanced (the fallback itself) and from aggressive (more protective than the
    // fallback): never moves, however long the input stays bad.
    for start in [1, 2] {
        let (engine, steps) = bad_ticks_from(&cfg, start, 4 * k as u32);
        for (n, s) in steps.iter().enumerate() {
            explanation_rule(s, None).unwrap();
            assert!(
                s.actions.is_empty(),
                "from {start}, bad tick {n}: {:?}",
                s.events
            );
        }
        assert_eq!(engine.current(), start);
    }
}

#[test]
fn a_failed_apply_sets_decided_back_to_what_is_in_force() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg);
    for k in 0..4 {
        engine.step(
            at(k),
            &Observation::ok(80_000.0, 72_000.0, at(k)).with_in_force(0),
        );
    }
    let s = engine.step(
        at(4),
        &Observation::ok(115_000.0, 103_500.0, at(4)).with_in_force(0),
    );
    assert!(
        matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == 1),
        "{:?}",
        s.actions
    );
    assert_eq!((engine.current(), engine.in_force()), (1, 0));
    // The reload fails; demand has gone back down, so the engine does not ask again.
    let mut obs = Observation::ok(80_000.0, 72_000.0, at(5)).with_in_force(0);
    obs.applies = vec![ApplyReport {
        profile: 1,
        seq: 1,
        outcome: ApplyOutcome::Failed {
            reason: "promtool check config failed".to_string(),
        },
    }];
    let s = engine.step(at(5), &obs);
    explanation_rule(&s, None).unwrap();
    assert!(s.actions.is_empty(), "{:?}", s.events);
    assert_eq!((engine.current(), engine.in_force()), (0, 0));
    let applied = s
        .events
        .iter()
        .find_map(|e| match e {
            Event::Applied(a) => Some(a.clone()),
            _ => None,
        })
        .expect("the failure is an event");
    assert!(!applied.ok && !applied.rolled_back && applied.in_force == 0);
}

#[test]
fn a_state_of_another_version_starts_fresh_with_a_note() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg.clone());
    for k in 0..6 {
        engine.step(
            at(k),
            &Observation::ok(130_000.0, 117_000.0, at(k)).with_in_force(0),
        );
    }
    let mut state = engine.state();
    state.version = STATE_VERSION + 1;
    let (fresh, notes) = Engine::restore(cfg.clone(), state);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.contains("version"), "{notes:?}");
    assert_eq!(same(&fresh.state()), same(&Engine::new(cfg).state()));
}

/// The explanation rule on a step that sets a pin: the pin's switch is the explanation.
#[test]
fn an_override_step_has_one_explanation() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg);
    let mut obs = Observation::ok(80_000.0, 72_000.0, at(0)).with_in_force(0);
    obs.commands = vec![Command::Override {
        profile: 2,
        ttl: Duration::from_secs(600),
        by: "oncall".to_string(),
        reason: "incident".to_string(),
    }];
    let s = engine.step(at(0), &obs);
    assert!(s.switched().is_some(), "{:?}", s.events);
    explanation_rule(&s, None).unwrap();
}

/// A pin blocked by a guard switches at whichever call comes first once the guard lapses,
/// so its time depends on how often the caller wakes, and `next_wakeup` does not name
/// the guard's deadline.
#[test]
fn a_blocked_pin_switches_at_whichever_call_comes_next() {
    let mut cfg = ladder_config();
    cfg.guards.emergency.lockout = Duration::from_secs(100);
    let run = |extra: Option<Timestamp>| {
        let mut engine = Engine::new(cfg.clone());
        let mut obs = Observation::ok(80_000.0, 72_000.0, at(0)).with_in_force(0);
        obs.commands = vec![Command::Emergency {
            by: "oncall".to_string(),
            reason: "test".to_string(),
        }];
        engine.step(at(0), &obs);
        let mut obs = Observation::ok(80_000.0, 40_000.0, at(1)).with_in_force(2);
        obs.commands = vec![Command::Override {
            profile: 0,
            ttl: Duration::from_secs(3600),
            by: "oncall".to_string(),
            reason: "test".to_string(),
        }];
        let s = engine.step(at(1), &obs);
        assert!(s.events.iter().any(|e| matches!(e, Event::Blocked(_))));
        let mut switched = Vec::new();
        for k in 2..12 {
            let obs = Observation::ok(80_000.0, 40_000.0, at(k)).with_in_force(2);
            if let Some(t) = extra.filter(|t| *t > at(k - 1) && *t < at(k)) {
                let quiet = Observation::ok(80_000.0, 40_000.0, at(k - 1)).with_in_force(2);
                if engine.step(t, &quiet).switched().is_some() {
                    switched.push(t);
                }
            }
            if engine.step(at(k), &obs).switched().is_some() {
                switched.push(at(k));
            }
        }
        switched
    };
    // Lockout until at(0) + 100 s, between at(6) = 90 s and at(7) = 105 s.
    let plain = run(None);
    let with_extra = run(Some(Timestamp(at(0).as_millis() + 101_000)));
    assert_eq!(plain, with_extra);
}

/// With `settle` zero, a sample taken before an apply ended, but delivered with its
/// report, is counted as the new profile's retention.
#[test]
fn settle_zero_measures_a_sample_taken_before_the_apply_ended() {
    let mut cfg = ladder_config();
    cfg.settle = Duration::ZERO;
    let mut engine = Engine::new(cfg);
    for k in 0..4 {
        engine.step(
            at(k),
            &Observation::ok(130_000.0, 117_000.0, Timestamp(at(k).as_millis() - 5_000))
                .with_in_force(0),
        );
    }
    assert_eq!(engine.current(), 1, "escalated to balanced");
    // The reload ends 2 s before the next call; the sample of that call was scraped 5 s
    // before it, so it still shows conservative's retention (0.9).
    let mut obs = Observation::ok(130_000.0, 117_000.0, Timestamp(at(4).as_millis() - 5_000))
        .with_in_force(1);
    obs.applies = vec![ApplyReport {
        profile: 1,
        seq: 1,
        outcome: ApplyOutcome::Applied,
    }];
    let s = engine.step(at(4), &obs);
    let ev = s
        .events
        .iter()
        .find_map(|e| match e {
            Event::Evaluated(ev) => Some(*ev),
            _ => None,
        })
        .expect("evaluated");
    assert_eq!(
        ev.measured_retention, None,
        "balanced's retention measured from a sample taken under conservative"
    );
}

/// A zero lockout blocks nothing: a pin to a less reducing profile, set with an
/// emergency request on the same step, is not refused by a lockout of zero length.
#[test]
fn a_zero_lockout_blocks_nothing() {
    let mut cfg = ladder_config();
    cfg.initial_profile = 2;
    cfg.guards.emergency.lockout = Duration::ZERO;
    let mut engine = Engine::new(cfg);
    let mut obs = Observation::ok(80_000.0, 28_000.0, at(0)).with_in_force(2);
    obs.commands = vec![
        Command::Override {
            profile: 0,
            ttl: Duration::from_secs(600),
            by: "oncall".to_string(),
            reason: "test".to_string(),
        },
        Command::Emergency {
            by: "detector".to_string(),
            reason: "test".to_string(),
        },
    ];
    let s = engine.step(at(0), &obs);
    let blocked = s.events.iter().find_map(|e| match e {
        Event::Blocked(b) => Some(b.clone()),
        _ => None,
    });
    assert!(
        blocked
            .as_ref()
            .is_none_or(|b| b.until.is_none_or(|u| u > at(0))),
        "blocked by a guard that has already lapsed: {blocked:?}"
    );
}

/// A sample stamped in the future (a skewed clock, an exporter's own timestamp) is taken
/// as fresh and becomes the newest sample evaluated, so every real sample after it is "no
/// news" until the clock catches up: no streak, no PID, not even the hard limit.
#[test]
fn a_sample_from_the_future_does_not_freeze_the_ladder() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg);
    engine.step(
        at(0),
        &Observation::ok(80_000.0, 72_000.0, at(0)).with_in_force(0),
    );
    let skewed = Timestamp(at(1).as_millis() + 3_600_000);
    engine.step(
        at(1),
        &Observation::ok(80_000.0, 72_000.0, skewed).with_in_force(0),
    );
    // Output at 20 × the budget, far over the hard ratio (10): an emergency at once.
    let s = engine.step(
        at(2),
        &Observation::ok(2_200_000.0, 2_000_000.0, at(2)).with_in_force(0),
    );
    assert!(
        s.switched().is_some_and(|d| d.cause.is_emergency()),
        "output 20× the budget ignored: {:?}",
        s.events
    );
}

/// The volatility margin reads a level shift as scatter: right after demand *falls*
/// fourfold, the margin (k × the residual standard deviation around the fitted line)
/// puts the forecast above where demand was, and the engine escalates.
#[test]
fn a_fall_in_demand_does_not_escalate() {
    let mut cfg = ladder_config();
    cfg.prediction.volatility_k = 3.0;
    let mut engine = Engine::new(cfg);
    // 100k in, 90k out on conservative: pressure 0.9, inside the band [0.8, 0.95].
    for k in 0..3 {
        let s = engine.step(
            at(k),
            &Observation::ok(100_000.0, 90_000.0, at(k)).with_in_force(0),
        );
        assert!(s.switched().is_none(), "{:?}", s.events);
    }
    // Demand falls to a quarter.
    let s = engine.step(
        at(3),
        &Observation::ok(25_000.0, 22_500.0, at(3)).with_in_force(0),
    );
    assert!(
        s.switched().is_none(),
        "escalated because demand fell: {:?}",
        s.events
    );
}

/// Apply reports name only a profile: when an older apply of the decided profile fails
/// while a newer apply of the same profile is in flight, the engine takes the failure
/// for the newer one, sets decided back, and when the newer apply then succeeds it is left
/// with a decided profile nobody is applying.
#[test]
fn an_old_apply_failure_does_not_unsettle_a_newer_apply() {
    let cfg = ladder_config();
    let mut engine = Engine::new(cfg);
    let high = |k| Observation::ok(130_000.0, 117_000.0, at(k)).with_in_force(0);
    let calm = |k, in_force| Observation::ok(80_000.0, 72_000.0, at(k)).with_in_force(in_force);
    let report = |mut obs: Observation, profile, seq, ok: bool| {
        obs.applies = vec![ApplyReport {
            profile,
            seq,
            outcome: if ok {
                ApplyOutcome::Applied
            } else {
                ApplyOutcome::Failed {
                    reason: "reload refused".to_string(),
                }
            },
        }];
        obs
    };
    // A1: conservative → balanced.
    let s = engine.step(at(0), &high(0));
    assert!(
        matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == 1),
        "{:?}",
        s.actions
    );
    // A2: an operator pins conservative.
    let mut obs = high(1);
    obs.commands = vec![Command::Override {
        profile: 0,
        ttl: Duration::from_secs(15),
        by: "oncall".to_string(),
        reason: "test".to_string(),
    }];
    let s = engine.step(at(1), &obs);
    assert!(
        matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == 0),
        "{:?}",
        s.actions
    );
    // The pin lapses; A3: balanced again.
    let s = engine.step(at(2), &high(2));
    assert!(
        matches!(s.actions.as_slice(), [Action::ApplyProfile { profile, .. }] if *profile == 1),
        "{:?}",
        s.actions
    );
    // A1 fails, A2 and A3 succeed, in order; demand is calm again.
    engine.step(at(3), &report(calm(3, 0), 1, 1, false));
    engine.step(at(4), &report(calm(4, 0), 0, 2, true));
    let s = engine.step(at(5), &report(calm(5, 1), 1, 3, true));
    assert!(
        engine.current() == engine.in_force() || !s.actions.is_empty(),
        "nothing in flight, yet decided {} and in force {}: {:?}",
        engine.current(),
        engine.in_force(),
        s.events
    );
}
