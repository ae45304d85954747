//! Criterion benchmarks of the hot paths: `Engine::step` per call in steady state, and a
//! whole 100k-tick `Simulation::run` for one policy (no baselines). `cargo bench --bench engine`.
//!
//! Both are fed a realistic demand: a daily cycle between 0.55 and 1.45 × budget with 3%
//! noise and a rollout doubling demand for 10 minutes every 12 hours, so the engine
//! escalates, relaxes and is refused by guards as in production. Measurement is short (3 s
//! per benchmark) so the whole run takes about a minute.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phoenix::core::{Engine, EngineConfig, Observation, Sample, Timestamp};
use phoenix::policy::ValidatedPolicy;
use phoenix::sim::simulate::Simulation;
use phoenix::sim::synth::{self, SynthSpec};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const BUDGET: f64 = 100_000.0;
const TICK: Duration = Duration::from_secs(15);
/// 2024-01-01T00:00:00Z.
const START_SECS: i64 = 1_704_067_200;

fn demand(ticks: u64) -> Vec<f64> {
    let spec = SynthSpec::benchmark(BUDGET, ticks);
    synth::generate(&spec, TICK, Timestamp::from_secs(START_SECS))
        .demand()
        .to_vec()
}

/// One `Engine::step` per iteration, closed loop: the output is the demand times the
/// retention of the profile the engine chose the tick before. The engine is built and
/// warmed up (windows and switch history filled) before measuring.
fn engine_step(c: &mut Criterion) {
    let cfg = EngineConfig::example(BUDGET);
    let retention: Vec<f64> = cfg.profiles.iter().map(|p| p.retention).collect();
    let ring = demand(1 << 16);
    let mask = ring.len() - 1;
    let mut engine = Engine::new(cfg);
    let mut in_force = 0usize;
    let mut i = 0usize;
    // One observation rewritten in place each call, as a daemon's sampler can, so the
    // figure is the step's and not the building and dropping of its input.
    let mut obs = Observation::ok(0.0, 0.0, Timestamp(0));
    let mut tick = move |engine: &mut Engine| {
        let input = ring[i & mask];
        let now = Timestamp::from_secs(START_SECS + 15 * i as i64);
        obs.input = Sample::ok(input, now);
        obs.output = Sample::ok(input * retention[in_force], now);
        obs.in_force = Some(in_force);
        let step = engine.step(now, black_box(&obs));
        in_force = engine.current();
        i += 1;
        step
    };
    for _ in 0..100_000 {
        black_box(tick(&mut engine));
    }
    let mut g = c.benchmark_group("engine");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    g.bench_function("step", |b| b.iter(|| tick(&mut engine)));
    g.finish();
}

/// A whole 100k-tick simulation of `policies/default.yaml` (plant noise 1%, delay 1 tick),
/// per-tick records included; construction of the `Simulation` is outside the loop.
fn simulation_run(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml");
    let policy = ValidatedPolicy::from_file(&path).expect("policies/default.yaml is valid");
    const TICKS: u64 = 100_000;
    let sim = Simulation::benchmark(
        policy,
        demand(TICKS),
        Timestamp::from_secs(START_SECS),
        TICK,
        BUDGET,
    );
    let mut g = c.benchmark_group("simulation");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(TICKS));
    g.bench_function("run_100k_ticks_1_policy", |b| {
        b.iter(|| sim.run(&mut |_| {}))
    });
    g.finish();
}

criterion_group!(benches, engine_step, simulation_run);
criterion_main!(benches);
