//! The side-by-side report of a simulation: one row of [`Metrics`] per controller, computed
//! from its [`ControllerRun`], printed as an aligned text table, and averaged over traces
//! for a corpus benchmark. The JSON document is built from these rows in `sim::json`.
//!
//! Every metric is a pure function of the recorded ticks, so two controllers over the same
//! trace are compared on exactly the same footing.

use crate::sim::record::ControllerRun;
use serde::Serialize;
use std::time::Duration;

/// Two switches this close together that return to where they started count as a flap.
const FLAP_WINDOW: Duration = Duration::from_secs(600);

/// How one controller did over one trace (or, from [`mean`], over a corpus).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Controller name (`threshold`, `hpa`, `oracle`, or the policy's name).
    pub controller: String,
    /// Ticks replayed (from [`mean`]: the total over the traces).
    pub ticks: usize,
    /// 100 × ticks with output over budget / ticks with a known (finite) output.
    pub time_over_budget_pct: f64,
    /// Series·seconds over budget divided by budget·seconds of the run:
    /// Σ max(0, output − budget)·dt / (budget · n·dt).
    pub overspend: f64,
    /// Fidelity: mean over ticks of the *expected* retention of the profile in force
    /// (`run.retentions[profile]`), not the measured output/input ratio, so noise in the
    /// plant does not blur the comparison.
    pub mean_retention: f64,
    /// Switches that took effect (in-force profile changed) per hour of trace.
    pub switches_per_hour: f64,
    /// A→B→A patterns: a switch back to the profile the previous switch left, at most ten
    /// minutes after it. A float so that means over traces stay exact.
    pub flaps: f64,
    /// 95th percentile (nearest rank) over over-budget episodes of the episode length in
    /// ticks, counted from the crossing until output is back at or under budget (to the
    /// end of the run if it never is); `None` when output never crossed the budget.
    pub reaction_p95_ticks: Option<f64>,
    /// Switches that took effect. A float so that means over traces stay exact.
    pub switches: f64,
}

/// Computes the report row of one controller's run.
///
/// Missing output (NaN) counts neither as over nor as under budget: it is left out of the
/// time-over-budget denominator, adds no overspend, and leaves an over-budget episode open.
pub fn metrics(run: &ControllerRun) -> Metrics {
    let n = run.ticks.len();
    let budget = run.budget_series;
    let dt_secs = run.tick.as_secs_f64();
    let run_secs = n as f64 * dt_secs;

    let finite = run.ticks.iter().filter(|r| r.output.is_finite()).count();
    let over = run.ticks.iter().filter(|r| r.output > budget).count();
    let excess: f64 = run
        .ticks
        .iter()
        .filter(|r| r.output > budget)
        .map(|r| r.output - budget)
        // A fold from +0.0: `sum()` of nothing is -0.0, which prints as "-0.0000".
        .fold(0.0, |a, x| a + x);
    // dt cancels out of Σ excess·dt / (budget·n·dt), so a zero tick length is harmless.
    let overspend = ratio(excess, budget * n as f64);

    let retention_sum: f64 = run
        .ticks
        .iter()
        .filter_map(|r| run.retentions.get(usize::from(r.profile)))
        .sum();

    let switch_ticks: Vec<usize> = (1..n)
        .filter(|&t| run.ticks[t].profile != run.ticks[t - 1].profile)
        .collect();
    let switches = switch_ticks.len();

    Metrics {
        controller: run.name.clone(),
        ticks: n,
        time_over_budget_pct: 100.0 * ratio(over as f64, finite as f64),
        overspend,
        mean_retention: ratio(retention_sum, n as f64),
        switches_per_hour: ratio(switches as f64 * 3600.0, run_secs),
        flaps: flaps(run, &switch_ticks) as f64,
        reaction_p95_ticks: reaction_p95(run),
        switches: switches as f64,
    }
}

/// `num / den`, or 0 when the denominator is empty (an empty run reports zeros).
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// Counts switches that return to the profile the previous switch left, within
/// [`FLAP_WINDOW`] of it (by the ticks' timestamps).
fn flaps(run: &ControllerRun, switch_ticks: &[usize]) -> u32 {
    let mut count = 0;
    for pair in switch_ticks.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        let left = run.ticks[first - 1].profile;
        let back_to = run.ticks[second].profile;
        let gap = run.ticks[second]
            .timestamp
            .saturating_since(run.ticks[first].timestamp);
        if back_to == left && gap <= FLAP_WINDOW {
            count += 1;
        }
    }
    count
}

/// Lengths of over-budget episodes, then their nearest-rank 95th percentile.
fn reaction_p95(run: &ControllerRun) -> Option<f64> {
    let budget = run.budget_series;
    let mut lengths = Vec::new();
    let mut open: Option<usize> = None;
    for (t, r) in run.ticks.iter().enumerate() {
        // NaN is neither comparison: it neither opens nor closes an episode.
        match open {
            None if r.output > budget => open = Some(t),
            Some(start) if r.output <= budget => {
                lengths.push(t - start);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        lengths.push(run.ticks.len() - start);
    }
    percentile_nearest_rank(&mut lengths, 95)
}

/// The nearest-rank percentile: the smallest value with at least `pct`% of values at or
/// below it.
fn percentile_nearest_rank(values: &mut [usize], pct: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (pct * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1] as f64)
}

/// Column headers of [`table`], units in brackets.
const HEADERS: [&str; 9] = [
    "controller",
    "ticks",
    "over budget [%]",
    "overspend [ratio]",
    "retention [mean]",
    "switches",
    "switches [/h]",
    "flaps",
    "reaction p95 [ticks]",
];

/// Renders the rows side by side: a header line, then one line per controller, columns
/// aligned (names left, numbers right). A missing reaction time prints as `-`.
pub fn table(rows: &[Metrics]) -> String {
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|m| {
            [
                m.controller.clone(),
                m.ticks.to_string(),
                format!("{:.2}", m.time_over_budget_pct),
                format!("{:.4}", m.overspend),
                format!("{:.3}", m.mean_retention),
                count(m.switches),
                format!("{:.2}", m.switches_per_hour),
                count(m.flaps),
                m.reaction_p95_ticks.map_or_else(|| "-".to_string(), count),
            ]
        })
        .collect();

    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }

    let mut out = String::new();
    let header = HEADERS.map(String::from);
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            if i == 0 {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A count: whole numbers print as integers, means of counts with one decimal.
fn count(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Averages a corpus benchmark: one row per controller (by name, in order of first
/// appearance), each field the mean over the traces that controller ran on, except
/// `ticks`, which is the total. The reaction time is the mean of the traces that had a
/// budget crossing (`None` if none had).
pub fn mean(rows_per_trace: &[Vec<Metrics>]) -> Vec<Metrics> {
    let mut names: Vec<&str> = Vec::new();
    for m in rows_per_trace.iter().flatten() {
        if !names.contains(&m.controller.as_str()) {
            names.push(&m.controller);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let rows: Vec<&Metrics> = rows_per_trace
                .iter()
                .flatten()
                .filter(|m| m.controller == name)
                .collect();
            let avg = |f: fn(&Metrics) -> f64| -> f64 {
                rows.iter().map(|m| f(m)).sum::<f64>() / rows.len() as f64
            };
            let reactions: Vec<f64> = rows.iter().filter_map(|m| m.reaction_p95_ticks).collect();
            Metrics {
                controller: name.to_string(),
                ticks: rows.iter().map(|m| m.ticks).sum(),
                time_over_budget_pct: avg(|m| m.time_over_budget_pct),
                overspend: avg(|m| m.overspend),
                mean_retention: avg(|m| m.mean_retention),
                switches_per_hour: avg(|m| m.switches_per_hour),
                flaps: avg(|m| m.flaps),
                reaction_p95_ticks: (!reactions.is_empty())
                    .then(|| reactions.iter().sum::<f64>() / reactions.len() as f64),
                switches: avg(|m| m.switches),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Timestamp;
    use crate::sim::record::{Note, TickRecord};

    /// A run with 60 s ticks, budget 100, profiles with retentions 1.0 / 0.5 / 0.25.
    fn run(name: &str, outputs: &[f64], profiles: &[u8]) -> ControllerRun {
        assert_eq!(outputs.len(), profiles.len());
        ControllerRun {
            name: name.to_string(),
            profiles: vec!["off".into(), "half".into(), "quarter".into()],
            retentions: vec![1.0, 0.5, 0.25],
            budget_series: 100.0,
            tick: Duration::from_secs(60),
            ticks: outputs
                .iter()
                .zip(profiles)
                .enumerate()
                .map(|(i, (&output, &profile))| TickRecord {
                    tick: i as u32,
                    timestamp: Timestamp::from_secs(1_000 + 60 * i as i64),
                    input: output,
                    output,
                    profile,
                    decided: profile,
                    note: Note::None,
                    anomaly: None,
                })
                .collect(),
            texts: Vec::new(),
            anomaly_threshold: None,
        }
    }

    #[test]
    fn every_number_of_a_small_run() {
        // 10 ticks of 60 s; budget 100.
        let outputs = [
            50.0,
            150.0,
            120.0,
            80.0,
            f64::NAN,
            200.0,
            90.0,
            100.0,
            110.0,
            130.0,
        ];
        let profiles = [0, 0, 1, 1, 0, 1, 1, 2, 2, 2];
        let m = metrics(&run("p", &outputs, &profiles));
        assert_eq!(m.controller, "p");
        assert_eq!(m.ticks, 10);
        // Over: 150, 120, 200, 110, 130 = 5 of 9 finite ticks.
        assert_eq!(m.time_over_budget_pct, 100.0 * (5.0 / 9.0));
        // Excess 50 + 20 + 100 + 10 + 30 = 210 over budget·n = 1000.
        assert_eq!(m.overspend, 0.21);
        // Retentions 1,1,.5,.5,1,.5,.5,.25,.25,.25 sum to 5.75.
        assert_eq!(m.mean_retention, 0.575);
        // Switches at ticks 2 (0→1), 4 (1→0), 5 (0→1), 7 (1→2): 4 in 10 minutes.
        assert_eq!(m.switches, 4.0);
        assert_eq!(m.switches_per_hour, 24.0);
        // 0→1→0 (ticks 2, 4) and 1→0→1 (ticks 4, 5).
        assert_eq!(m.flaps, 2.0);
        // Episodes: ticks 1-2 (2 ticks), 5 (1 tick), 8-9 open to the end (2 ticks).
        assert_eq!(m.reaction_p95_ticks, Some(2.0));
    }

    #[test]
    fn flaps_need_the_return_within_ten_minutes() {
        // Ticks are 60 s: 0→1 at tick 1, back to 0 at tick 11 (600 s later: a flap), then
        // 0→1 at tick 22 (660 s later: not a flap).
        let mut profiles = vec![0u8; 1];
        profiles.extend([1u8; 10]);
        profiles.extend([0u8; 11]);
        profiles.extend([1u8; 3]);
        let outputs = vec![10.0; profiles.len()];
        let m = metrics(&run("p", &outputs, &profiles));
        assert_eq!(m.switches, 3.0);
        assert_eq!(m.flaps, 1.0);
        // A→B→C is no flap.
        let m = metrics(&run("p", &[10.0; 3], &[0, 1, 2]));
        assert_eq!((m.switches, m.flaps), (2.0, 0.0));
    }

    #[test]
    fn reaction_counts_from_the_crossing_and_uses_nearest_rank() {
        // Over at tick 0 counts as a crossing. Episodes of 1, 3, and 2 ticks.
        let outputs = [101.0, 100.0, 150.0, 150.0, 150.0, 10.0, 120.0, 120.0, 99.0];
        let m = metrics(&run("p", &outputs, &[0; 9]));
        assert_eq!(m.reaction_p95_ticks, Some(3.0));
        // NaN inside an episode keeps it open: one episode of 3 ticks.
        let m = metrics(&run("p", &[150.0, f64::NAN, 150.0, 50.0], &[0; 4]));
        assert_eq!(m.reaction_p95_ticks, Some(3.0));
        // Never over: no reaction time.
        let m = metrics(&run("p", &[100.0, 50.0], &[0; 2]));
        assert_eq!(m.reaction_p95_ticks, None);
        // Twenty episodes of lengths 1..=20: rank ceil(0.95·20) = 19.
        let mut lengths: Vec<usize> = (1..=20).rev().collect();
        assert_eq!(percentile_nearest_rank(&mut lengths, 95), Some(19.0));
        assert_eq!(percentile_nearest_rank(&mut [7], 95), Some(7.0));
    }

    #[test]
    fn empty_run_reports_zeros() {
        let m = metrics(&run("empty", &[], &[]));
        assert_eq!(m.ticks, 0);
        assert_eq!(m.time_over_budget_pct, 0.0);
        assert_eq!(m.overspend, 0.0);
        assert_eq!(m.mean_retention, 0.0);
        assert_eq!(m.switches_per_hour, 0.0);
        assert_eq!(m.reaction_p95_ticks, None);
    }

    #[test]
    fn means_per_controller_in_order_of_first_appearance() {
        let a1 = metrics(&run("a", &[150.0, 50.0], &[0, 1]));
        let b1 = metrics(&run("b", &[50.0, 50.0], &[0, 0]));
        let a2 = metrics(&run("a", &[50.0, 50.0], &[1, 1]));
        let b2 = metrics(&run("b", &[150.0, 150.0], &[0, 0]));
        let c2 = metrics(&run("c", &[50.0, 50.0], &[2, 2]));
        let rows = mean(&[vec![a1, b1], vec![b2, a2, c2]]);
        let names: Vec<&str> = rows.iter().map(|m| m.controller.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &rows[0];
        assert_eq!(a.ticks, 4);
        assert_eq!(a.time_over_budget_pct, 25.0);
        assert_eq!(a.overspend, 0.125);
        assert_eq!(a.mean_retention, 0.625);
        assert_eq!(a.switches, 0.5);
        assert_eq!(a.switches_per_hour, 15.0);
        assert_eq!(a.flaps, 0.0);
        // Only the first trace had a crossing.
        assert_eq!(a.reaction_p95_ticks, Some(1.0));
        assert_eq!(rows[1].reaction_p95_ticks, Some(2.0));
        assert_eq!(rows[2].reaction_p95_ticks, None);
    }

    #[test]
    fn table_aligns_columns_and_names_units() {
        let rows = [
            metrics(&run("threshold", &[150.0, 50.0], &[0, 1])),
            metrics(&run("hpa", &[50.0, 50.0], &[0, 0])),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("controller"));
        assert!(lines[0].contains("over budget [%]"));
        assert!(lines[0].ends_with("reaction p95 [ticks]"));
        assert!(lines[1].starts_with("threshold "));
        assert!(lines[1].ends_with(" 1"));
        assert!(lines[2].ends_with(" -"));
        // Right-aligned numbers end in the same column as their header.
        let col = lines[0].find("[%]").unwrap() + 3;
        assert_eq!(&lines[1][col - 5..col], "50.00");
        assert_eq!(&lines[2][col - 4..col], "0.00");
    }
}
