//! The per-pipeline series of `/metrics` (every family labelled `pipeline`), kept in one
//! compact table and written straight into the exposition, beside what the
//! metrics-exporter-prometheus recorder renders for the daemon-wide families.
//!
//! Why not the recorder: at 10,000 pipelines these are 190,000 series. In the recorder
//! each is a hashed key with its own label strings (45 MB), every update through a
//! `counter!` macro hashes and allocates, and each render copies every key's labels into
//! per-family maps before sorting them (1 s of CPU and 60 MB transient per scrape). Here
//! a pipeline is one row of atomics with its label escaped once; a render is one pass per
//! family over the rows. Names, types, labels and values are those of `metrics::METRICS`,
//! so the metric contract is unchanged.

use super::metrics::{self as m, Kind, METRICS};
use crate::core::EngineConfig;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

/// The bits of a gauge that was never set: a NaN payload no arithmetic produces, so a
/// gauge set to NaN is still exported as NaN. A gauge registered in the recorder but
/// never set was exported as 0; here it is not exported until set (as the sink already
/// arranged for retention and anomaly scores).
const UNSET: u64 = 0x7ff8_0000_dead_beef;

/// One gauge value, settable without a lock while a render reads it.
#[derive(Debug)]
pub struct Cell(AtomicU64);

impl Cell {
    fn unset() -> Self {
        Cell(AtomicU64::new(UNSET))
    }

    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The value, if ever set.
    pub fn get(&self) -> Option<f64> {
        let b = self.0.load(Ordering::Relaxed);
        (b != UNSET).then(|| f64::from_bits(b))
    }
}

/// The single-valued gauges of a pipeline, by index into [`PipelineSeries::fixed`].
#[derive(Clone, Copy, Debug)]
pub enum Fixed {
    /// `phoenix_profile_in_force`.
    InForce,
    /// `phoenix_profile_decided`.
    Decided,
    /// `phoenix_pid_p`.
    PidP,
    /// `phoenix_pid_i`.
    PidI,
    /// `phoenix_pid_d`.
    PidD,
    /// `phoenix_pid_output`.
    PidOutput,
    /// `phoenix_pressure_ratio`.
    Pressure,
    /// `phoenix_input_series`.
    Input,
    /// `phoenix_output_series`.
    Output,
    /// `phoenix_budget_series`.
    Budget,
    /// `phoenix_predicted_input_series`.
    PredictedInput,
}

/// Metric names of [`Fixed`], in its order.
const FIXED_NAMES: [&str; 11] = [
    m::PROFILE_IN_FORCE,
    m::PROFILE_DECIDED,
    m::PID_P,
    m::PID_I,
    m::PID_D,
    m::PID_OUTPUT,
    m::PRESSURE,
    m::INPUT,
    m::OUTPUT,
    m::BUDGET,
    m::PREDICTED_INPUT,
];

/// A per-pipeline counter: its family and the labels beside `pipeline`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterKey {
    /// `phoenix_decisions_total{from,to,reason}`.
    Decision {
        /// Profile left.
        from: Box<str>,
        /// Profile decided.
        to: Box<str>,
        /// Reason label.
        reason: &'static str,
    },
    /// `phoenix_switches_blocked_total{guard}`.
    Blocked {
        /// Guard label.
        guard: &'static str,
    },
    /// `phoenix_holds_total{signal,reason}`.
    Held {
        /// Signal label.
        signal: &'static str,
        /// Reason label.
        reason: &'static str,
    },
    /// `phoenix_commands_total{command,outcome}`.
    Command {
        /// Command label.
        command: &'static str,
        /// Outcome label.
        outcome: &'static str,
    },
    /// `phoenix_pipelines_vanished_total`.
    Vanished,
}

impl CounterKey {
    fn family(&self) -> usize {
        match self {
            CounterKey::Decision { .. } => 0,
            CounterKey::Blocked { .. } => 1,
            CounterKey::Held { .. } => 2,
            CounterKey::Command { .. } => 3,
            CounterKey::Vanished => 4,
        }
    }

    /// The labels after `pipeline`, each `,name="value"`.
    fn write_labels(&self, out: &mut String) {
        let mut l = |name: &str, value: &str| {
            out.push(',');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value);
            out.push('"');
        };
        match self {
            CounterKey::Decision { from, to, reason } => {
                l("from", from);
                l("to", to);
                l("reason", reason);
            }
            CounterKey::Blocked { guard } => l("guard", guard),
            CounterKey::Held { signal, reason } => {
                l("signal", signal);
                l("reason", reason);
            }
            CounterKey::Command { command, outcome } => {
                l("command", command);
                l("outcome", outcome);
            }
            CounterKey::Vanished => {}
        }
    }
}

/// Metric names of the counter families, in [`CounterKey::family`] order.
const COUNTER_NAMES: [&str; 5] = [
    m::DECISIONS,
    m::BLOCKED,
    m::HOLDS,
    m::COMMANDS,
    m::PIPELINES_VANISHED,
];

/// One pipeline's series.
#[derive(Debug)]
pub struct PipelineSeries {
    /// `pipeline="..."`, escaped.
    label: Box<str>,
    /// The ladder's profile names, shared by the pipelines of one policy.
    profiles: Arc<[Box<str>]>,
    /// The single-valued gauges, by [`Fixed`].
    fixed: [Cell; 11],
    /// `phoenix_profile_active`, per profile.
    active: Box<[Cell]>,
    /// `phoenix_measured_retention_ratio`, per profile.
    retention: Box<[Cell]>,
    /// `phoenix_anomaly_score` of the input and the output.
    anomaly: [Cell; 2],
    /// The counters that have counted, in the order they first did.
    counters: Mutex<Vec<(CounterKey, u64)>>,
}

impl PipelineSeries {
    /// A single-valued gauge.
    pub fn fixed(&self, f: Fixed) -> &Cell {
        &self.fixed[f as usize]
    }

    /// `phoenix_profile_active` of each profile, by index.
    pub fn active(&self) -> &[Cell] {
        &self.active
    }

    /// `phoenix_measured_retention_ratio` of profile `i`.
    pub fn retention(&self, i: usize) -> Option<&Cell> {
        self.retention.get(i)
    }

    /// `phoenix_anomaly_score` of the input (0) or the output (1).
    pub fn anomaly(&self, i: usize) -> &Cell {
        &self.anomaly[i]
    }

    /// Adds one to a counter.
    pub fn count(&self, key: CounterKey) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        match c.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => c.push((key, 1)),
        }
    }
}

/// Every pipeline's series, and the detector's watch-signal scores.
#[derive(Debug, Default)]
pub struct SeriesTable {
    rows: RwLock<BTreeMap<Box<str>, Arc<PipelineSeries>>>,
    /// `phoenix_anomaly_score` of watch signals, by pipeline and signal.
    watch: RwLock<BTreeMap<WatchKey, Arc<Cell>>>,
}

/// A watch signal's series: pipeline and signal.
type WatchKey = (Box<str>, Box<str>);

/// The process-wide table `/metrics` renders (one daemon per process, like the
/// recorder).
pub fn table() -> &'static SeriesTable {
    static TABLE: LazyLock<SeriesTable> = LazyLock::new(SeriesTable::default);
    &TABLE
}

fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn help_of(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|d| d.name == name)
        .map_or("", |d| d.help)
}

/// Writes a family's `# HELP` and `# TYPE` lines once, before its first sample.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    kind: &'static str,
    started: bool,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: Kind) -> Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "summary",
        };
        Family {
            out,
            name,
            kind,
            started: false,
        }
    }

    /// Starts a sample line (`name{`); the caller writes the labels, then `end`.
    fn start(&mut self, pipeline_label: &str) -> &mut String {
        if !self.started {
            self.started = true;
            let help = help_of(self.name)
                .replace('\\', "\\\\")
                .replace('\n', "\\n");
            let _ = writeln!(self.out, "# HELP {} {help}", self.name);
            let _ = writeln!(self.out, "# TYPE {} {}", self.name, self.kind);
        }
        self.out.push_str(self.name);
        self.out.push('{');
        self.out.push_str(pipeline_label);
        self.out
    }

    fn end(&mut self, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "}} {value}");
    }
}

impl SeriesTable {
    /// The series of the pipeline `cfg` configures, created on first use. A pipeline
    /// whose ladder changed (a policy swap) gets a new row that keeps its counters and,
    /// by profile name, its per-profile gauges; the old row's handles stop being
    /// exported.
    pub fn pipeline(&self, cfg: &EngineConfig) -> Arc<PipelineSeries> {
        let same = |r: &PipelineSeries| {
            r.profiles.len() == cfg.profiles.len()
                && r.profiles
                    .iter()
                    .zip(&cfg.profiles)
                    .all(|(a, b)| **a == *b.name)
        };
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let old = rows.get(cfg.pipeline.as_str());
        if let Some(r) = old
            && same(r)
        {
            return r.clone();
        }
        // Rows of one policy share its ladder's names.
        let profiles = rows
            .values()
            .next_back()
            .filter(|r| same(r))
            .map(|r| r.profiles.clone())
            .unwrap_or_else(|| {
                cfg.profiles
                    .iter()
                    .map(|p| p.name.as_str().into())
                    .collect()
            });
        let mut label = String::with_capacity(cfg.pipeline.len() + 12);
        label.push_str("pipeline=\"");
        escape_into(&mut label, &cfg.pipeline);
        label.push('"');
        let n = profiles.len();
        let row = PipelineSeries {
            label: label.into(),
            profiles,
            fixed: std::array::from_fn(|_| Cell::unset()),
            active: (0..n).map(|_| Cell::unset()).collect(),
            retention: (0..n).map(|_| Cell::unset()).collect(),
            anomaly: [Cell::unset(), Cell::unset()],
            counters: Mutex::new(Vec::new()),
        };
        if let Some(old) = old {
            for (new, was) in row.fixed.iter().zip(&old.fixed) {
                if let Some(v) = was.get() {
                    new.set(v);
                }
            }
            for (new, was) in row.anomaly.iter().zip(&old.anomaly) {
                if let Some(v) = was.get() {
                    new.set(v);
                }
            }
            for (i, name) in row.profiles.iter().enumerate() {
                if let Some(j) = old.profiles.iter().position(|p| p == name) {
                    for (new, was) in [(&row.active, &old.active), (&row.retention, &old.retention)]
                    {
                        if let Some(v) = was[j].get() {
                            new[i].set(v);
                        }
                    }
                }
            }
            *row.counters.lock().unwrap_or_else(|e| e.into_inner()) = old
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
        }
        let row = Arc::new(row);
        rows.insert(cfg.pipeline.as_str().into(), row.clone());
        row
    }

    /// The row of `pipeline`, if it has one.
    pub fn get(&self, pipeline: &str) -> Option<Arc<PipelineSeries>> {
        self.rows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(pipeline)
            .cloned()
    }

    /// The anomaly score gauge of watch signal `signal` of `pipeline`.
    pub fn watch(&self, pipeline: &str, signal: &str) -> Arc<Cell> {
        let mut w = self.watch.write().unwrap_or_else(|e| e.into_inner());
        w.entry((pipeline.into(), signal.into()))
            .or_insert_with(|| Arc::new(Cell::unset()))
            .clone()
    }

    /// Appends every series in the Prometheus text format (the exporter's: `# HELP`,
    /// `# TYPE`, then one line per series, values as Rust prints them).
    pub fn render(&self, out: &mut String) {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        // About what 10,000 pipelines take (19 series of ~70 bytes each, and counters):
        // growing by doubling would copy the text and leave the last doubling unused.
        out.reserve(rows.len() * 1500);
        for (i, name) in FIXED_NAMES.iter().enumerate() {
            let mut f = Family::new(out, name, Kind::Gauge);
            for r in rows.values() {
                if let Some(v) = r.fixed[i].get() {
                    f.start(&r.label);
                    f.end(v);
                }
            }
        }
        for (name, per_profile) in [
            (
                m::PROFILE_ACTIVE,
                (|r| &r.active) as fn(&PipelineSeries) -> &[Cell],
            ),
            (m::RETENTION, |r| &r.retention),
        ] {
            let mut f = Family::new(out, name, Kind::Gauge);
            for r in rows.values() {
                for (cell, profile) in per_profile(r).iter().zip(r.profiles.iter()) {
                    if let Some(v) = cell.get() {
                        let o = f.start(&r.label);
                        o.push_str(",profile=\"");
                        escape_into(o, profile);
                        o.push('"');
                        f.end(v);
                    }
                }
            }
        }
        {
            let watch = self.watch.read().unwrap_or_else(|e| e.into_inner());
            let mut f = Family::new(out, m::ANOMALY, Kind::Gauge);
            for r in rows.values() {
                for (cell, signal) in r.anomaly.iter().zip(["input", "output"]) {
                    if let Some(v) = cell.get() {
                        let o = f.start(&r.label);
                        let _ = write!(o, ",signal=\"{signal}\"");
                        f.end(v);
                    }
                }
            }
            let mut label = String::new();
            for ((pipeline, signal), cell) in watch.iter() {
                if let Some(v) = cell.get() {
                    label.clear();
                    label.push_str("pipeline=\"");
                    escape_into(&mut label, pipeline);
                    label.push_str("\",signal=\"");
                    escape_into(&mut label, signal);
                    label.push('"');
                    f.start(&label);
                    f.end(v);
                }
            }
        }
        for (family, name) in COUNTER_NAMES.iter().enumerate() {
            let mut f = Family::new(out, name, Kind::Counter);
            for r in rows.values() {
                let counters = r.counters.lock().unwrap_or_else(|e| e.into_inner());
                for (key, n) in counters.iter().filter(|(k, _)| k.family() == family) {
                    let o = f.start(&r.label);
                    key.write_labels(o);
                    f.end(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_family_once_with_its_series() {
        let t = SeriesTable::default();
        let mut cfg = EngineConfig::example(100.0);
        cfg.pipeline = "a\"b".into();
        let a = t.pipeline(&cfg);
        a.fixed(Fixed::Budget).set(100.0);
        a.fixed(Fixed::InForce).set(1.0);
        a.active()[1].set(1.0);
        a.active()[0].set(0.0);
        a.count(CounterKey::Blocked {
            guard: "min_dwell_relax",
        });
        a.count(CounterKey::Blocked {
            guard: "min_dwell_relax",
        });
        a.count(CounterKey::Vanished);
        cfg.pipeline = "c".into();
        t.pipeline(&cfg).fixed(Fixed::Budget).set(2.5);
        t.watch("c", "errors").set(0.25);
        let mut out = String::new();
        t.render(&mut out);
        let budget = "# HELP phoenix_budget_series The pipeline's series budget.\n# TYPE phoenix_budget_series gauge\nphoenix_budget_series{pipeline=\"a\\\"b\"} 100\nphoenix_budget_series{pipeline=\"c\"} 2.5\n";
        assert!(out.contains(budget), "{out}");
        assert!(
            out.contains("phoenix_profile_active{pipeline=\"a\\\"b\",profile=\"balanced\"} 1\n")
        );
        assert!(out.contains(
            "phoenix_switches_blocked_total{pipeline=\"a\\\"b\",guard=\"min_dwell_relax\"} 2\n"
        ));
        assert!(out.contains("phoenix_pipelines_vanished_total{pipeline=\"a\\\"b\"} 1\n"));
        assert!(out.contains("phoenix_anomaly_score{pipeline=\"c\",signal=\"errors\"} 0.25\n"));
        // Never set: not exported, and a family without series has no header.
        assert!(!out.contains("phoenix_pid_p"), "{out}");
        assert!(!out.contains("profile=\"aggressive\""), "{out}");
        for l in out.lines().filter(|l| l.starts_with("# TYPE")) {
            assert_eq!(out.matches(&format!("{l}\n")).count(), 1, "{l}");
        }
    }

    #[test]
    fn a_new_ladder_keeps_counters_and_values_by_profile_name() {
        let t = SeriesTable::default();
        let mut cfg = EngineConfig::example(100.0);
        let a = t.pipeline(&cfg);
        a.retention(1).unwrap().set(0.5);
        a.fixed(Fixed::Budget).set(100.0);
        a.count(CounterKey::Vanished);
        assert!(Arc::ptr_eq(&a, &t.pipeline(&cfg)));
        cfg.profiles.remove(0);
        let b = t.pipeline(&cfg);
        assert_eq!(b.retention(0).unwrap().get(), Some(0.5));
        assert_eq!(b.retention(1).unwrap().get(), None);
        assert_eq!(b.fixed(Fixed::Budget).get(), Some(100.0));
        let mut out = String::new();
        t.render(&mut out);
        assert!(out.contains("phoenix_pipelines_vanished_total{pipeline=\"default\"} 1\n"));
        assert!(!out.contains("conservative"), "{out}");
    }
}
