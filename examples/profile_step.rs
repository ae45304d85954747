//! Profiling harness for `Engine::step` and `Simulation::run`, meant for callgrind, whose
//! instruction counts stay meaningful on a loaded machine where wall time does not.
//!
//! `cargo build --release --example profile_step`, then
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='profile_step::measure*'
//! target/release/examples/profile_step step 300000` and divide the total by the steps
//! (`sim N` times a whole N-tick simulation of `policies/default.yaml` instead). The
//! engine is warmed up (windows, detectors, switch history) outside the measured region.

use phoenix::core::{Engine, EngineConfig, Observation, Sample, Timestamp};
use phoenix::policy::ValidatedPolicy;
use phoenix::sim::simulate::Simulation;
use phoenix::sim::synth::{self, SynthSpec};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const BUDGET: f64 = 100_000.0;
const TICK: Duration = Duration::from_secs(15);
const START_SECS: i64 = 1_704_067_200;

fn demand(ticks: u64) -> Vec<f64> {
    synth::generate(
        &SynthSpec::benchmark(BUDGET, ticks),
        TICK,
        Timestamp::from_secs(START_SECS),
    )
    .demand()
    .to_vec()
}

/// The closed loop of benches/engine.rs: output is demand times the retention of the
/// profile decided the step before, reported in force at once.
struct Loop {
    engine: Engine,
    ring: Vec<f64>,
    retention: Vec<f64>,
    in_force: usize,
    i: usize,
    switches: usize,
    obs: Observation,
}

impl Loop {
    /// A fresh engine on the example configuration, fed the benchmark demand.
    fn new() -> Self {
        let cfg = EngineConfig::example(BUDGET);
        Loop {
            retention: cfg.profiles.iter().map(|p| p.retention).collect(),
            engine: Engine::new(cfg),
            ring: demand(1 << 16),
            in_force: 0,
            i: 0,
            switches: 0,
            obs: Observation::ok(0.0, 0.0, Timestamp(0)),
        }
    }

    #[inline(always)]
    fn tick(&mut self) {
        let input = self.ring[self.i & (self.ring.len() - 1)];
        let now = Timestamp::from_secs(START_SECS + 15 * self.i as i64);
        // Rewritten in place, as phoenix-bench does.
        self.obs.input = Sample::ok(input, now);
        self.obs.output = Sample::ok(input * self.retention[self.in_force], now);
        self.obs.in_force = Some(self.in_force);
        let step = self.engine.step(now, black_box(&self.obs));
        self.switches += step.actions.len();
        black_box(&step);
        self.in_force = self.engine.current();
        self.i += 1;
    }
}

#[inline(never)]
fn measure_steps(l: &mut Loop, n: usize) {
    for _ in 0..n {
        l.tick();
    }
}

#[inline(never)]
fn measure_sim(sim: &Simulation) -> Vec<phoenix::sim::record::ControllerRun> {
    sim.run(&mut |_| {})
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "step".to_string());
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    match mode.as_str() {
        "step" => {
            let mut l = Loop::new();
            for _ in 0..100_000 {
                l.tick();
            }
            l.switches = 0;
            let t = Instant::now();
            measure_steps(&mut l, n);
            let el = t.elapsed();
            println!(
                "{n} steps, {} switches, {:.1} ns/step",
                l.switches,
                el.as_nanos() as f64 / n as f64
            );
        }
        "sim" | "simhash" => {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml");
            let policy = ValidatedPolicy::from_file(&path).expect("default policy");
            let sim = Simulation::benchmark(
                policy,
                demand(n as u64),
                Timestamp::from_secs(START_SECS),
                TICK,
                BUDGET,
            );
            let t = Instant::now();
            let runs = measure_sim(&sim);
            let el = t.elapsed();
            let ticks = runs[0].ticks.len();
            println!(
                "{ticks} ticks, {:.2} M ticks/s",
                ticks as f64 / el.as_secs_f64() / 1e6
            );
            if mode == "simhash" {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                let bytes = serde_json::to_vec(&(&runs[0].ticks, &runs[0].texts))
                    .expect("records serialise");
                for b in bytes {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
                println!("fingerprint {h:016x}");
            }
        }
        "hash" => {
            // A fingerprint of every step's full output (events serialised, floats
            // round-tripped), to check that an optimisation changed no bit.
            let mut l = Loop::new();
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for _ in 0..n {
                let input = l.ring[l.i & (l.ring.len() - 1)];
                let now = Timestamp::from_secs(START_SECS + 15 * l.i as i64);
                let obs = Observation::ok(input, input * l.retention[l.in_force], now)
                    .with_in_force(l.in_force);
                let step = l.engine.step(now, &obs);
                for b in serde_json::to_vec(&step).expect("a step serialises") {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
                l.switches += step.actions.len();
                l.in_force = l.engine.current();
                l.i += 1;
            }
            let state = serde_json::to_vec(&l.engine.state()).expect("state serialises");
            for b in state {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
            println!("{n} steps, {} switches, fingerprint {h:016x}", l.switches);
        }
        other => eprintln!("unknown mode {other:?}: step | sim | hash"),
    }
}
