//! The machine-readable report of `phoenix simulate --format json`: one document of one
//! shape whatever the number of traces, so a tool parses a single-trace run and a corpus
//! run with the same code. Documented, with an example, in `docs/simulation.md`.
//!
//! Counts are integers (`ticks`, and per trace `switches`, `flaps`, `reaction_p95_ticks`);
//! the summary over traces holds means, which are floats. Fields are in a fixed order
//! (structs, not maps), and a missing reaction time is `null`.

use crate::core::time::fmt_duration;
use crate::sim::report::{self, Metrics};
use crate::sim::runner::Plant;
use serde::Serialize;
use std::time::Duration;

/// The whole document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The scenario's name, or `null` when the run was given as `--trace` flags.
    pub scenario: Option<String>,
    /// Output budget in series.
    pub budget_series: u64,
    /// Tick length as written (`15s`).
    pub tick: String,
    /// Tick length in milliseconds.
    pub tick_ms: u64,
    /// The modelled collector.
    pub plant: PlantDoc,
    /// One summary per controller over every trace (for one trace, its figures).
    pub controllers: Vec<Summary>,
    /// Each trace's own results.
    pub traces: Vec<TraceDoc>,
}

/// The plant as simulated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlantDoc {
    /// Profiles and their true retention, least to most reducing.
    pub retention: Vec<Rung>,
    /// Ticks from a decision to the profile being in force.
    pub delay_ticks: u32,
    /// Relative standard deviation of the output noise.
    pub noise: f64,
    /// Seed of the noise and of the failed reloads.
    pub seed: u64,
    /// Share of applies that fail.
    pub failure_rate: f64,
}

/// One profile of the plant's ladder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rung {
    /// Its name.
    pub profile: String,
    /// Share of series it keeps.
    pub retention: f64,
}

/// A controller over every trace: means over the traces, except the totals named so.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Controller name.
    pub controller: String,
    /// Traces it ran on.
    pub traces: u64,
    /// Ticks over all those traces (a total).
    pub ticks: u64,
    /// Mean of the traces' time over budget, in percent.
    pub time_over_budget_pct: f64,
    /// Mean overspend ratio.
    pub overspend: f64,
    /// Mean retention (fidelity).
    pub mean_retention: f64,
    /// Mean switches per hour.
    pub switches_per_hour: f64,
    /// Mean switches per trace.
    pub switches: f64,
    /// Mean flaps per trace.
    pub flaps: f64,
    /// Mean reaction p95 over the traces that crossed the budget; `null` if none did.
    pub reaction_p95_ticks: Option<f64>,
}

/// One trace's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceDoc {
    /// The trace file, or `synthetic:<kind>`.
    pub trace: String,
    /// Ticks replayed.
    pub ticks: u64,
    /// One result per controller, in report order.
    pub controllers: Vec<TraceResult>,
}

/// One controller on one trace (see `docs/simulation.md` for each definition).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceResult {
    /// Controller name.
    pub controller: String,
    /// Ticks replayed.
    pub ticks: u64,
    /// Time over budget, in percent of the ticks with an output.
    pub time_over_budget_pct: f64,
    /// Overspend ratio.
    pub overspend: f64,
    /// Mean retention of the profile in force.
    pub mean_retention: f64,
    /// Switches that took effect, per hour.
    pub switches_per_hour: f64,
    /// Switches that took effect.
    pub switches: u64,
    /// A→B→A switches within ten minutes.
    pub flaps: u64,
    /// 95th percentile of the over-budget episodes' length in ticks; `null` if output
    /// never crossed the budget.
    pub reaction_p95_ticks: Option<u64>,
}

/// What the report says about the run as a whole.
#[derive(Clone, Debug)]
pub struct RunInfo<'a> {
    /// The scenario's name, if a scenario was run.
    pub scenario: Option<&'a str>,
    /// Output budget in series.
    pub budget_series: f64,
    /// Tick length.
    pub tick: Duration,
    /// The plant.
    pub plant: &'a Plant,
}

/// Builds the document from each trace's name and report rows.
pub fn report(info: &RunInfo<'_>, traces: &[(String, Vec<Metrics>)]) -> Report {
    let rows: Vec<Vec<Metrics>> = traces.iter().map(|(_, m)| m.clone()).collect();
    let controllers = report::mean(&rows)
        .into_iter()
        .map(|m| Summary {
            traces: rows
                .iter()
                .filter(|t| t.iter().any(|r| r.controller == m.controller))
                .count() as u64,
            controller: m.controller,
            ticks: m.ticks as u64,
            time_over_budget_pct: m.time_over_budget_pct,
            overspend: m.overspend,
            mean_retention: m.mean_retention,
            switches_per_hour: m.switches_per_hour,
            switches: m.switches,
            flaps: m.flaps,
            reaction_p95_ticks: m.reaction_p95_ticks,
        })
        .collect();
    let traces = traces
        .iter()
        .map(|(name, rows)| TraceDoc {
            trace: name.clone(),
            ticks: rows.first().map_or(0, |m| m.ticks as u64),
            controllers: rows.iter().map(trace_result).collect(),
        })
        .collect();
    Report {
        scenario: info.scenario.map(str::to_string),
        // Budgets are whole numbers of series (the readers refuse others).
        budget_series: info.budget_series.round() as u64,
        tick: fmt_duration(info.tick),
        tick_ms: info.tick.as_millis() as u64,
        plant: PlantDoc {
            retention: info
                .plant
                .ladder
                .iter()
                .map(|p| Rung {
                    profile: p.name.clone(),
                    retention: p.retention,
                })
                .collect(),
            delay_ticks: info.plant.delay_ticks,
            noise: info.plant.noise,
            seed: info.plant.seed,
            failure_rate: info.plant.failure_rate,
        },
        controllers,
        traces,
    }
}

/// One trace's row, its counts as integers (on one trace they are whole by definition).
fn trace_result(m: &Metrics) -> TraceResult {
    TraceResult {
        controller: m.controller.clone(),
        ticks: m.ticks as u64,
        time_over_budget_pct: m.time_over_budget_pct,
        overspend: m.overspend,
        mean_retention: m.mean_retention,
        switches_per_hour: m.switches_per_hour,
        switches: m.switches as u64,
        flaps: m.flaps as u64,
        reaction_p95_ticks: m.reaction_p95_ticks.map(|t| t as u64),
    }
}

/// The document as pretty-printed JSON.
pub fn to_string(report: &Report) -> String {
    // Structs of strings and numbers always serialize; non-finite floats become `null`.
    serde_json::to_string_pretty(report).expect("the report always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::ProfileSpec;

    fn row(name: &str, switches: f64, reaction: Option<f64>) -> Metrics {
        Metrics {
            controller: name.into(),
            ticks: 10,
            time_over_budget_pct: 10.0,
            overspend: 0.01,
            mean_retention: 0.8,
            switches_per_hour: 12.0,
            flaps: 1.0,
            reaction_p95_ticks: reaction,
            switches,
        }
    }

    #[test]
    fn one_shape_with_integer_counts() {
        let plant = Plant {
            ladder: vec![
                ProfileSpec {
                    name: "keep".into(),
                    retention: 1.0,
                },
                ProfileSpec {
                    name: "drop".into(),
                    retention: 0.5,
                },
            ],
            delay_ticks: 1,
            noise: 0.0,
            seed: 3,
            failure_rate: 0.0,
        };
        let info = RunInfo {
            scenario: None,
            budget_series: 100_000.0,
            tick: Duration::from_secs(15),
            plant: &plant,
        };
        let one = report(&info, &[("a.csv".into(), vec![row("p", 3.0, Some(2.0))])]);
        let v: serde_json::Value = serde_json::from_str(&to_string(&one)).unwrap();
        assert_eq!(v["budget_series"].to_string(), "100000");
        assert_eq!(v["tick"], "15s");
        assert_eq!(v["tick_ms"].to_string(), "15000");
        assert_eq!(v["plant"]["retention"][1]["profile"], "drop");
        let t = &v["traces"][0]["controllers"][0];
        assert_eq!(t["switches"].to_string(), "3");
        assert_eq!(t["flaps"].to_string(), "1");
        assert_eq!(t["reaction_p95_ticks"].to_string(), "2");
        assert_eq!(v["controllers"][0]["traces"].to_string(), "1");

        let two = report(
            &info,
            &[
                ("a.csv".into(), vec![row("p", 3.0, Some(2.0))]),
                ("b.csv".into(), vec![row("p", 4.0, None)]),
            ],
        );
        let w: serde_json::Value = serde_json::from_str(&to_string(&two)).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), keys(&w));
        assert_eq!(keys(&v["controllers"][0]), keys(&w["controllers"][0]));
        assert_eq!(w["controllers"][0]["ticks"].to_string(), "20");
        assert_eq!(w["controllers"][0]["switches"], 3.5);
        assert_eq!(w["controllers"][0]["reaction_p95_ticks"], 2.0);
        assert!(w["traces"][1]["controllers"][0]["reaction_p95_ticks"].is_null());
    }
}
