//! The control validation protocol: a policy (and mechanism ablations of it) against the
//! HPA and threshold baselines on the shared NAB series, on stressed variants of them
//! (`bench::variants`) stepped at their own timestamps, and on swept synthetic incidents;
//! reported per trace, per group and as the worst group, so a default is chosen by the
//! worst case and not by the pooled shared score.
//!
//! Time: the shared set replays rows as consecutive 15 s ticks (the flags of
//! `tests/nab_benchmark.rs`). A variant keeps its irregular spacing: its row timestamps are
//! mapped onto the simulator's clock by the same factor that turns the original series'
//! median step into one tick (5 min → 15 s), so an hourly variant steps every 3 min and an
//! outage of 3 days lasts 3.6 h of engine time. Every duration of the policy then meets the
//! gaps it would meet on such data; only the unit is compressed.

use crate::bench::variants::{Series, Variant, median_step};
use crate::core::config::{EngineConfig, ProfileSpec};
use crate::core::{Engine, Timestamp};
use crate::policy::ValidatedPolicy;
use crate::sim::baseline::{Hpa, Threshold};
use crate::sim::record::{ControllerRun, Note};
use crate::sim::report;
use crate::sim::runner::{Controller, Plant, PolicyController, RunSpec, run};
use crate::sim::synth::{Synth, SynthSpec, generate};
use crate::sim::trace::{Values, read_trace};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The benchmark's fixed settings (the flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Output budget in series.
    pub budget: f64,
    /// Demand rescaled onto `[lo, hi] × budget`.
    pub rescale: (f64, f64),
    /// The plant's ladder.
    pub ladder: Vec<ProfileSpec>,
    /// Reload delay in ticks.
    pub delay_ticks: u32,
    /// Tick length.
    pub tick: Duration,
}

impl Default for Settings {
    /// `--rescale 0.4:2.2 --budget 100000 --retention conservative=0.9,balanced=0.6,
    /// aggressive=0.35 --delay-ticks 1 --tick 15s`.
    fn default() -> Self {
        Settings {
            budget: 100_000.0,
            rescale: (0.4, 2.2),
            ladder: [
                ("conservative", 0.9),
                ("balanced", 0.6),
                ("aggressive", 0.35),
            ]
            .into_iter()
            .map(|(n, r)| ProfileSpec {
                name: n.into(),
                retention: r,
            })
            .collect(),
            delay_ticks: 1,
            tick: Duration::from_secs(15),
        }
    }
}

/// A controller under test: a policy's engine configuration, possibly with a mechanism
/// turned off (`name` says which).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Report name.
    pub name: String,
    /// The engine configuration it runs.
    pub config: EngineConfig,
}

/// The mechanisms of the control law that can be turned off one at a time.
pub const ABLATIONS: [&str; 6] = [
    "no-pid",
    "no-prediction",
    "no-explosion-rule",
    "no-relax-dwell",
    "no-oscillation-guard",
    "no-switch-budget",
];

impl Candidate {
    /// `policy` as configured for these settings.
    pub fn of(policy: &ValidatedPolicy, s: &Settings) -> Candidate {
        Candidate {
            name: policy.name().to_string(),
            config: policy.engine_config_with_ladder(policy.name(), s.budget, s.tick, &s.ladder),
        }
    }

    /// The same candidate with one mechanism off (one of [`ABLATIONS`]).
    pub fn ablated(&self, what: &str) -> Candidate {
        let mut c = self.config.clone();
        match what {
            "no-pid" => {
                c.pid.kp = 0.0;
                c.pid.ki = 0.0;
                c.pid.kd = 0.0;
            }
            // The latest demand only: no trend, no volatility margin.
            "no-prediction" => {
                c.prediction.horizon = Duration::ZERO;
                c.prediction.volatility_k = 0.0;
            }
            "no-explosion-rule" => {
                if let Some(a) = c.anomaly.as_mut() {
                    a.request_emergency = false;
                }
            }
            "no-relax-dwell" => c.guards.min_dwell_relax = c.guards.min_dwell_escalate,
            "no-oscillation-guard" => c.guards.oscillation.window = Duration::ZERO,
            "no-switch-budget" => c.guards.switch_budget.max_switches = u32::MAX,
            other => panic!("unknown ablation {other}"),
        }
        Candidate {
            name: format!("{}:{what}", self.name),
            config: c,
        }
    }
}

/// One controller's figures on one trace, or their mean over a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Controller name (`hpa`, `threshold`, a policy or an ablation).
    pub controller: String,
    /// Share of samples with output over budget, in percent.
    pub time_over_budget_pct: f64,
    /// Switches in force per hour of (engine) time.
    pub switches_per_hour: f64,
    /// Mean expected retention of the profile in force.
    pub retention: f64,
    /// A→B→A within ten minutes.
    pub flaps: f64,
    /// Emergency switches (hard limit or explosion rule).
    pub emergencies: f64,
}

/// One trace of the protocol and every controller's row on it.
#[derive(Clone, Debug, Serialize)]
pub struct TraceResult {
    /// `shared`, `variant` or `synthetic`.
    pub suite: &'static str,
    /// The NAB category, the variant's name or the synthetic family.
    pub group: String,
    /// File name or synthetic parameters.
    pub trace: String,
    /// Samples replayed.
    pub samples: usize,
    /// One row per controller, in candidate order, then `hpa`, `threshold`.
    pub rows: Vec<Row>,
}

/// Means over the traces of one group, and how the first candidate compares with HPA.
#[derive(Clone, Debug, Serialize)]
pub struct GroupResult {
    /// Suite of its traces.
    pub suite: &'static str,
    /// Group name (`pooled` for the whole shared set).
    pub group: String,
    /// Traces in the group.
    pub traces: usize,
    /// Mean rows, in the traces' controller order.
    pub rows: Vec<Row>,
    /// The first candidate against HPA on this group.
    pub verdict: Verdict,
}

/// The first candidate against HPA on one group.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Time over budget ≤ HPA's.
    pub time_ok: bool,
    /// Switches per hour ≤ HPA's.
    pub switches_ok: bool,
    /// Retention ≥ HPA's.
    pub retention_ok: bool,
    /// Retention +0.01, or 15% fewer switches, or 15% less time over budget.
    pub clearly_better: bool,
    /// Flaps ≤ 10% of the threshold baseline's (or none at all).
    pub flaps_ok: bool,
    /// Candidate − HPA: time over budget (points), switches per hour, retention.
    pub delta: (f64, f64, f64),
}

impl Verdict {
    /// No worse than HPA on any of the three.
    pub fn no_worse(&self) -> bool {
        self.time_ok && self.switches_ok && self.retention_ok
    }

    fn of(rows: &[Row]) -> Verdict {
        let p = &rows[0];
        let find = |n: &str| rows.iter().find(|r| r.controller == n).unwrap_or(p);
        let (h, t) = (find("hpa"), find("threshold"));
        Verdict {
            time_ok: p.time_over_budget_pct <= h.time_over_budget_pct,
            switches_ok: p.switches_per_hour <= h.switches_per_hour,
            retention_ok: p.retention >= h.retention,
            clearly_better: p.retention >= h.retention + 0.01
                || p.switches_per_hour <= 0.85 * h.switches_per_hour
                || p.time_over_budget_pct <= 0.85 * h.time_over_budget_pct,
            flaps_ok: p.flaps <= 0.1 * t.flaps,
            delta: (
                p.time_over_budget_pct - h.time_over_budget_pct,
                p.switches_per_hour - h.switches_per_hour,
                p.retention - h.retention,
            ),
        }
    }
}

/// The whole protocol's result.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolReport {
    /// Every trace.
    pub traces: Vec<TraceResult>,
    /// Every group: shared categories, `shared/pooled`, variants, synthetic families.
    pub groups: Vec<GroupResult>,
    /// The group where the first candidate falls furthest behind HPA on each criterion:
    /// (criterion, suite/group, candidate − HPA).
    pub worst: Vec<(String, String, f64)>,
}

/// Runs the controllers over one demand series; `times` empty means regular ticks.
pub fn run_trace(
    s: &Settings,
    candidates: &[Candidate],
    demand: &[f64],
    times: &[Timestamp],
    start: Timestamp,
) -> Vec<Row> {
    let plant = Plant {
        ladder: s.ladder.clone(),
        delay_ticks: s.delay_ticks,
        noise: 0.0,
        seed: 0,
        failure_rate: 0.0,
    };
    let spec = RunSpec {
        demand,
        start,
        tick: s.tick,
        times,
        budget_series: s.budget,
        plant: &plant,
    };
    let mut runs = Vec::with_capacity(candidates.len() + 2);
    for c in candidates {
        let mut ctl = PolicyController::new(c.name.clone(), Engine::new(c.config.clone()));
        runs.push(run(&spec, &mut ctl, &mut |_| {}));
    }
    let mut hpa = Hpa::new(s.budget, &s.ladder);
    runs.push(run(&spec, &mut hpa as &mut dyn Controller, &mut |_| {}));
    let mut thr = Threshold::new(s.budget, &s.ladder);
    runs.push(run(&spec, &mut thr as &mut dyn Controller, &mut |_| {}));
    runs.iter().map(|r| row(r, !times.is_empty())).collect()
}

/// The row of one run. With irregular times, switches are per hour of the run's span (as
/// its own clock says), not per `ticks × tick`.
fn row(run: &ControllerRun, irregular: bool) -> Row {
    let m = report::metrics(run);
    let switches_per_hour = match (irregular, run.ticks.first(), run.ticks.last()) {
        (true, Some(a), Some(b)) => {
            let span = b.timestamp.saturating_since(a.timestamp) + run.tick;
            m.switches * 3600.0 / span.as_secs_f64()
        }
        _ => m.switches_per_hour,
    };
    let emergencies = run
        .ticks
        .iter()
        .filter(|t| {
            matches!(t.note, Note::Switched(k)
                if run.texts.get(k as usize).is_some_and(|s| s.contains(": emergency")))
        })
        .count();
    Row {
        controller: m.controller,
        time_over_budget_pct: m.time_over_budget_pct,
        switches_per_hour,
        retention: m.mean_retention,
        flaps: m.flaps,
        emergencies: emergencies as f64,
    }
}

/// Every `data/<category>/<file>.csv` under a NAB folder, sorted: (category, name, path).
pub fn nab_files(dir: &Path) -> Result<Vec<(String, String, PathBuf)>, String> {
    let root = dir.join("data");
    let list = |d: &Path| -> Result<Vec<PathBuf>, String> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .and_then(|it| it.map(|e| e.map(|e| e.path())).collect())
            .map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for cat in list(&root)?.into_iter().filter(|p| p.is_dir()) {
        for p in list(&cat)? {
            if p.extension().is_some_and(|e| e == "csv") {
                let name = |p: &Path| p.file_name().unwrap_or_default().to_string_lossy().into();
                out.push((name(&cat), name(&p), p));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no data/<category>/*.csv under {}", dir.display()));
    }
    Ok(out)
}

/// The variant's row times on the engine's clock: the original series' median step
/// becomes one tick.
fn scaled_times(v: &Series, original_step: Duration, tick: Duration) -> Vec<Timestamp> {
    let scale = tick.as_secs_f64() / original_step.as_secs_f64().max(1e-3);
    let t0 = v.timestamps.first().map_or(0, |t| t.as_millis());
    v.timestamps
        .iter()
        .map(|t| Timestamp(t0 + ((t.as_millis() - t0) as f64 * scale).round() as i64))
        .collect()
}

/// Shared set and variants: every NAB file as recorded (rows as ticks) and as each
/// variant (at its own scaled timestamps).
pub fn nab_suite(
    s: &Settings,
    candidates: &[Candidate],
    dir: &Path,
) -> Result<Vec<TraceResult>, String> {
    let mut out = Vec::new();
    for (category, name, path) in nab_files(dir)? {
        let mut trace = read_trace(&path, Values::Signal).map_err(|e| e.to_string())?;
        trace.rescale(s.rescale.0 * s.budget, s.rescale.1 * s.budget);
        let demand = trace.demand().to_vec();
        let start = trace.timestamps.first().copied().unwrap_or_default();
        out.push(TraceResult {
            suite: "shared",
            group: category.clone(),
            trace: name.clone(),
            samples: demand.len(),
            rows: run_trace(s, candidates, &demand, &[], start),
        });
        // The variants need strictly increasing timestamps; NAB's are.
        let series = Series {
            timestamps: trace.timestamps.clone(),
            values: demand,
            windows: Vec::new(),
        };
        let step = median_step(&series.timestamps);
        for v in Variant::ALL {
            let var = v.apply(&series, &format!("{category}/{name}"));
            let times = scaled_times(&var, step, s.tick);
            out.push(TraceResult {
                suite: "variant",
                group: v.name().to_string(),
                trace: format!("{category}/{name}"),
                samples: var.values.len(),
                rows: run_trace(s, candidates, &var.values, &times, times[0]),
            });
        }
    }
    Ok(out)
}

/// The synthetic sweeps, by family: `(family, label, spec)`.
pub fn synthetic_specs(s: &Settings) -> Vec<(&'static str, String, SynthSpec)> {
    let b = s.budget;
    // Input that the least-reducing profile can carry: its capacity.
    let capacity = b / s.ladder[0].retention;
    let spec = |shape, ticks, noise, seed| SynthSpec {
        shape,
        components: Vec::new(),
        ticks,
        noise,
        seed,
    };
    let mut out = Vec::new();
    for period in [24u64, 96, 360, 1440, 5760] {
        for noise in [0.03, 0.05] {
            // The shared set's range, 0.4–2.2 × budget, as a cycle.
            let shape = Synth::Diurnal {
                base: 1.3 * b,
                amplitude: 0.9 / 1.3,
                period_ticks: period,
            };
            let ticks = (4 * period).max(2880);
            out.push((
                "diurnal",
                format!("period={period} noise={noise}"),
                spec(shape, ticks, noise, period + 1),
            ));
        }
    }
    for base in [15_000.0, 30_000.0] {
        for top in [0.6, 0.85] {
            for over in [20u64, 40, 80] {
                let shape = Synth::Explosion {
                    base,
                    at_tick: 480,
                    factor: top * capacity / base,
                    over_ticks: over,
                };
                out.push((
                    "explosion-below-capacity",
                    format!("base={base} top={top}×capacity over={over}"),
                    spec(shape, 1440, 0.03, over + base as u64),
                ));
            }
        }
    }
    // Ten times the series, ending within what the most reducing profile carries (a
    // larger one is over budget whatever any controller does).
    for base in [20_000.0, 25_000.0] {
        for over in [20u64, 80] {
            let shape = Synth::Explosion {
                base,
                at_tick: 480,
                factor: 10.0,
                over_ticks: over,
            };
            out.push((
                "explosion-real",
                format!("base={base} ×10 over={over}"),
                spec(shape, 1440, 0.03, over + 7),
            ));
        }
    }
    for every in [20u64, 40, 60] {
        for dur in [2u64, 5, 10] {
            let shape = Synth::Rollout {
                base: 0.7 * b,
                every_ticks: every,
                duration_ticks: dur,
            };
            out.push((
                "rollout",
                format!("every={every} for={dur}"),
                spec(shape, 2880, 0.03, every * 100 + dur),
            ));
        }
    }
    for to in [1.5, 2.5] {
        let shape = Synth::Step {
            base: 0.6 * b,
            to: to * b,
            at_tick: 480,
        };
        out.push((
            "step",
            format!("0.6→{to}×budget"),
            spec(shape, 1440, 0.03, 3),
        ));
    }
    for to in [1.5, 2.5] {
        for over in [480u64, 2880] {
            let shape = Synth::Ramp {
                base: 0.6 * b,
                to: to * b,
                from_tick: 240,
                to_tick: 240 + over,
            };
            out.push((
                "ramp",
                format!("0.6→{to}×budget over={over}"),
                spec(shape, 240 + over + 960, 0.03, over),
            ));
        }
    }
    out
}

/// Runs the synthetic sweeps.
pub fn synthetic_suite(s: &Settings, candidates: &[Candidate]) -> Vec<TraceResult> {
    let start = Timestamp::from_secs(1_700_000_000);
    synthetic_specs(s)
        .into_iter()
        .map(|(family, label, spec)| {
            let trace = generate(&spec, s.tick, start);
            TraceResult {
                suite: "synthetic",
                group: family.to_string(),
                trace: label,
                samples: trace.len(),
                rows: run_trace(s, candidates, trace.demand(), &[], start),
            }
        })
        .collect()
}

/// Mean rows over `traces`.
fn mean_rows(traces: &[&TraceResult]) -> Vec<Row> {
    let n = traces.len() as f64;
    let first = &traces[0].rows;
    (0..first.len())
        .map(|i| {
            let avg = |f: fn(&Row) -> f64| traces.iter().map(|t| f(&t.rows[i])).sum::<f64>() / n;
            Row {
                controller: first[i].controller.clone(),
                time_over_budget_pct: avg(|r| r.time_over_budget_pct),
                switches_per_hour: avg(|r| r.switches_per_hour),
                retention: avg(|r| r.retention),
                flaps: avg(|r| r.flaps),
                // A total: zero must mean zero on every trace.
                emergencies: avg(|r| r.emergencies) * n,
            }
        })
        .collect()
}

/// A criterion's name and the candidate's shortfall against HPA on it (positive = worse).
type Criterion = (&'static str, fn(&Verdict) -> f64);

/// Groups the traces, adds the pooled shared row and finds the worst group per criterion.
pub fn summarise(traces: Vec<TraceResult>) -> ProtocolReport {
    let mut keys: Vec<(&'static str, String)> = Vec::new();
    for t in &traces {
        let k = (t.suite, t.group.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut groups = Vec::new();
    let mut push = |suite: &'static str, group: String, members: Vec<&TraceResult>| {
        if members.is_empty() {
            return;
        }
        let rows = mean_rows(&members);
        groups.push(GroupResult {
            suite,
            group,
            traces: members.len(),
            verdict: Verdict::of(&rows),
            rows,
        });
    };
    for (suite, group) in keys {
        let members = traces
            .iter()
            .filter(|t| t.suite == suite && t.group == group)
            .collect();
        push(suite, group, members);
    }
    push(
        "shared",
        "pooled".to_string(),
        traces.iter().filter(|t| t.suite == "shared").collect(),
    );
    // Worst case over the groups the acceptance covers: shared categories and variants
    // (synthetic families are judged on emergencies and flaps, and reported).
    let judged: Vec<&GroupResult> = groups.iter().filter(|g| g.suite != "synthetic").collect();
    let mut worst = Vec::new();
    let crit: [Criterion; 3] = [
        ("time over budget (points above hpa)", |v| v.delta.0),
        ("switches per hour (above hpa)", |v| v.delta.1),
        ("retention (below hpa)", |v| -v.delta.2),
    ];
    for (name, f) in crit {
        if let Some(g) = judged
            .iter()
            .max_by(|a, b| f(&a.verdict).total_cmp(&f(&b.verdict)))
        {
            worst.push((
                name.to_string(),
                format!("{}/{}", g.suite, g.group),
                f(&g.verdict),
            ));
        }
    }
    ProtocolReport {
        traces,
        groups,
        worst,
    }
}

/// The text report: one table per suite (means per group, every controller), the worst
/// case, and optionally every trace.
pub fn render(r: &ProtocolReport, per_trace: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let header = format!(
        "{:<34} {:<28} {:>9} {:>8} {:>9} {:>7} {:>6}  verdict vs hpa\n",
        "group", "controller", "over [%]", "sw/h", "retention", "flaps", "emerg"
    );
    for suite in ["shared", "variant", "synthetic"] {
        let _ = writeln!(out, "== {suite} ==");
        out.push_str(&header);
        for g in r.groups.iter().filter(|g| g.suite == suite) {
            for (i, row) in g.rows.iter().enumerate() {
                let label = if i == 0 {
                    format!("{} ({})", g.group, g.traces)
                } else {
                    String::new()
                };
                let verdict = if i == 0 {
                    verdict_words(&g.verdict)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{label:<34} {:<28} {}  {verdict}",
                    row.controller,
                    figures(row)
                );
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "== worst case (shared categories and variants) ==");
    for (c, g, d) in &r.worst {
        let _ = writeln!(out, "{c:<40} {g:<34} {d:+.4}");
    }
    if per_trace {
        let _ = writeln!(out, "\n== per trace ==");
        for t in &r.traces {
            for row in &t.rows {
                let _ = writeln!(
                    out,
                    "{:<9} {:<24} {:<60} {:<28} {}",
                    t.suite,
                    t.group,
                    t.trace,
                    row.controller,
                    figures(row)
                );
            }
        }
    }
    out
}

/// A row's figures as the report's tables print them, in their fixed-width columns.
fn figures(row: &Row) -> String {
    format!(
        "{:>9.3} {:>8.3} {:>9.4} {:>7.2} {:>6}",
        row.time_over_budget_pct, row.switches_per_hour, row.retention, row.flaps, row.emergencies
    )
}

/// `dominates`, `no worse`, or what is worse than HPA.
fn verdict_words(v: &Verdict) -> String {
    let mut worse = Vec::new();
    if !v.time_ok {
        worse.push(format!("time {:+.3}", v.delta.0));
    }
    if !v.switches_ok {
        worse.push(format!("switches {:+.3}", v.delta.1));
    }
    if !v.retention_ok {
        worse.push(format!("retention {:+.4}", v.delta.2));
    }
    let flaps = if v.flaps_ok {
        ""
    } else {
        "; flaps > 10% of threshold"
    };
    if worse.is_empty() {
        let how = if v.clearly_better {
            "dominates"
        } else {
            "no worse"
        };
        format!("{how}{flaps}")
    } else {
        format!("worse: {}{flaps}", worse.join(", "))
    }
}

/// The whole protocol: the shared set and its variants from `nab`, then the synthetic
/// sweeps.
pub fn run_protocol(
    s: &Settings,
    candidates: &[Candidate],
    nab: &Path,
) -> Result<ProtocolReport, String> {
    let mut traces = nab_suite(s, candidates, nab)?;
    traces.extend(synthetic_suite(s, candidates));
    Ok(summarise(traces))
}

/// The acceptance for the first candidate: it dominates HPA on the pooled shared
/// set (no worse on all three, clearly better on one) with flaps ≤ 10% of the threshold
/// baseline's; it is no worse than HPA on every shared category and every variant; it
/// makes no emergency on any explosion that stops below capacity, and at least one on
/// every real explosion.
pub fn accepted(r: &ProtocolReport) -> bool {
    let judged = r.groups.iter().filter(|g| g.suite != "synthetic");
    let pooled = r
        .groups
        .iter()
        .find(|g| g.suite == "shared" && g.group == "pooled");
    let per_trace = |family: &str, ok: fn(f64) -> bool| {
        r.traces
            .iter()
            .filter(|t| t.suite == "synthetic" && t.group == family)
            .all(|t| ok(t.rows[0].emergencies))
    };
    pooled.is_some_and(|p| p.verdict.no_worse() && p.verdict.clearly_better && p.verdict.flaps_ok)
        && judged.into_iter().all(|g| g.verdict.no_worse())
        && per_trace("explosion-below-capacity", |e| e == 0.0)
        && per_trace("explosion-real", |e| e > 0.0)
}
