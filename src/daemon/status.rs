//! What the HTTP API serves: a board the event sink updates and the handlers read, and the
//! decision log. Plain data behind a lock; no decision is made here.

use crate::core::config::ProfileSpec;
use crate::core::{Event, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Decision-log entries kept for the API (oldest dropped first).
pub const DECISION_LOG_CAP: usize = 10_000;
/// The status chart's span and resolution: the last hour, one point per minute (the
/// latest sample of each minute), whatever the sampling interval: 240 points at 15 s
/// were 60 MB at 10,000 pipelines for a chart a few hundred pixels wide.
pub const HISTORY_SPAN: std::time::Duration = std::time::Duration::from_secs(3600);
/// See [`HISTORY_SPAN`].
pub const HISTORY_STEP: std::time::Duration = std::time::Duration::from_secs(60);

/// One pipeline as the status API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PipelineStatus {
    /// Pipeline name.
    pub pipeline: String,
    /// Collector that carries it.
    pub collector: String,
    /// Profile decided (in force, or being applied).
    pub decided: String,
    /// Profile the actuator reports in force.
    pub in_force: String,
    /// Since when `in_force` has been in force, if known.
    pub in_force_since: Option<Timestamp>,
    /// The last switch: when and the sentence.
    pub last_decision: Option<LogEntry>,
    /// The latest step's explanation.
    pub explanation: Explanation,
    /// Guards that would refuse a relaxation now, with their deadlines.
    pub active_guards: Vec<GuardStatus>,
    /// PID terms of the last healthy sample.
    pub pid: PidStatus,
    /// Pressure on the decided profile.
    pub pressure: f64,
    /// Last healthy input and output, and the budget.
    pub input_series: Option<f64>,
    /// See `input_series`.
    pub output_series: Option<f64>,
    /// The pipeline's budget.
    pub budget_series: f64,
    /// The manual pin, if any: profile and until when.
    pub pinned: Option<(String, Timestamp)>,
    /// Recent (time, input, output) samples, for the chart: one per minute over the
    /// last hour. Single precision, which a chart cannot tell apart: an hour of points is
    /// 1 KB per pipeline rather than 1.5.
    pub history: VecDeque<(Timestamp, f32, f32)>,
    /// True if the pipeline is missing from the latest query results.
    pub vanished: bool,
}

impl PipelineStatus {
    /// Adds a sample to the chart's history: it replaces the previous point of the same
    /// minute, and points more than an hour before it are dropped.
    pub fn record(&mut self, at: Timestamp, input: f64, output: f64) {
        let step = HISTORY_STEP.as_millis() as i64;
        let minute = |t: Timestamp| t.as_millis().div_euclid(step);
        match self.history.back_mut() {
            Some(last) if minute(last.0) == minute(at) => *last = (at, input as f32, output as f32),
            _ => self.history.push_back((at, input as f32, output as f32)),
        }
        while self
            .history
            .front()
            .is_some_and(|(t, _, _)| at.saturating_since(*t) > HISTORY_SPAN)
        {
            self.history.pop_front();
        }
    }
}

/// A step's explanation, kept as the event and put into words when read: a sentence
/// for every step of 10,000 pipelines cost more than the steps themselves, and is read
/// once per status request.
#[derive(Clone, Debug, Default)]
pub enum Explanation {
    /// No step yet.
    #[default]
    None,
    /// The explanation event and the ladder its profile indices name.
    Event(Event, Arc<[ProfileSpec]>),
    /// Already in words.
    Text(String),
}

impl Explanation {
    /// The sentence (empty before the first step).
    pub fn text(&self) -> String {
        match self {
            Explanation::None => String::new(),
            Explanation::Event(e, profiles) => e.sentence(profiles).unwrap_or_default(),
            Explanation::Text(t) => t.clone(),
        }
    }
}

impl From<&str> for Explanation {
    fn from(t: &str) -> Self {
        Explanation::Text(t.to_string())
    }
}

impl Serialize for Explanation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

/// A guard's deadline.
#[derive(Clone, Debug, Serialize)]
pub struct GuardStatus {
    /// Guard label.
    pub guard: &'static str,
    /// Until when it refuses.
    pub until: Timestamp,
}

/// PID terms.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PidStatus {
    /// Proportional term.
    pub p: f64,
    /// Integral term.
    pub i: f64,
    /// Derivative term.
    pub d: f64,
    /// Correction.
    pub output: f64,
}

/// One line of the decision log.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// When.
    pub at: Timestamp,
    /// Pipeline.
    pub pipeline: String,
    /// `switched`, `blocked`, `held`, `audit` or `applied`.
    pub kind: &'static str,
    /// The sentence.
    pub sentence: String,
}

/// One pipeline's status, shared by the board (which the API reads) and the pipeline's
/// sink entry (which updates it every step without looking the name up in the board:
/// that lookup was a tenth of a step at 10,000 pipelines). Never lock the board while
/// holding a cell; readers hold the board, then lock the cells one at a time.
#[derive(Clone, Debug, Default)]
pub struct StatusCell(Arc<Mutex<PipelineStatus>>);

impl StatusCell {
    /// A cell holding `st`.
    pub fn new(st: PipelineStatus) -> Self {
        StatusCell(Arc::new(Mutex::new(st)))
    }

    /// The status, locked (a writer that panicked left a usable status: plain data).
    pub fn lock(&self) -> MutexGuard<'_, PipelineStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Serialize for StatusCell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.lock().serialize(s)
    }
}

/// Everything the API shows.
#[derive(Debug, Default, Serialize)]
pub struct Board {
    /// Per pipeline, each shared with the sink entry that updates it.
    pub pipelines: BTreeMap<String, StatusCell>,
    /// Latest state of each query (`ok`, `empty`, `stale`, `error`).
    pub sources: BTreeMap<String, String>,
    /// True in safe hold.
    pub safe_hold: bool,
    /// Why, in safe hold.
    pub safe_hold_reason: Option<String>,
    /// The policy in force: name and SHA-256.
    pub policy: (String, String),
    /// True once the first sample is in.
    pub sampled: bool,
    /// Collectors whose actuator knows what is in force.
    pub actuators_ready: BTreeMap<String, bool>,
    /// Recent decisions, blocks, holds, commands and applies, oldest first.
    #[serde(skip)]
    pub log: VecDeque<LogEntry>,
}

impl Board {
    /// Ready: the first sample is in and every actuator knows what is in force.
    pub fn ready(&self) -> bool {
        self.sampled && self.actuators_ready.values().all(|&r| r)
    }

    /// Appends to the decision log, dropping the oldest past the cap.
    pub fn log(&mut self, e: LogEntry) {
        if self.log.len() >= DECISION_LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(e);
    }

    /// The newest `limit` log entries (of `pipeline`, if given), newest first.
    pub fn decisions(&self, pipeline: Option<&str>, limit: usize) -> Vec<LogEntry> {
        self.log
            .iter()
            .rev()
            .filter(|e| pipeline.is_none_or(|p| e.pipeline == p))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The newest `per` log entries of each pipeline, newest first: one pass over the
    /// log, so the status page costs the same at 10,000 pipelines as a `decisions` call.
    pub fn recent_per_pipeline(&self, per: usize) -> Vec<LogEntry> {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        self.log
            .iter()
            .rev()
            .filter(|e| {
                let n = seen.entry(e.pipeline.as_str()).or_default();
                *n += 1;
                *n <= per
            })
            .cloned()
            .collect()
    }
}

/// The board, shared between the sink (writer) and the HTTP handlers (readers).
pub type SharedBoard = Arc<RwLock<Board>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_filtered() {
        let mut b = Board::default();
        for i in 0..DECISION_LOG_CAP + 5 {
            b.log(LogEntry {
                at: Timestamp(i as i64),
                pipeline: if i % 2 == 0 { "a" } else { "b" }.to_string(),
                kind: "switched",
                sentence: format!("{i}"),
            });
        }
        assert_eq!(b.log.len(), DECISION_LOG_CAP);
        let last = b.decisions(Some("a"), 2);
        assert_eq!(last.len(), 2);
        assert!(last.iter().all(|e| e.pipeline == "a"));
        assert!(last[0].at > last[1].at);
        let recent = b.recent_per_pipeline(3);
        assert_eq!(recent.len(), 6);
        assert_eq!(recent.iter().filter(|e| e.pipeline == "a").count(), 3);
        assert!(recent.windows(2).all(|w| w[0].at > w[1].at));
        b.actuators_ready.insert("c".into(), false);
        b.sampled = true;
        assert!(!b.ready());
        b.actuators_ready.insert("c".into(), true);
        assert!(b.ready());
    }

    #[test]
    fn the_chart_keeps_one_point_per_minute_for_an_hour() {
        let mut st = PipelineStatus::default();
        // Two hours of 15 s samples.
        for i in 0..480i64 {
            st.record(Timestamp::from_secs(1_700_000_040 + 15 * i), i as f64, 0.0);
        }
        let h = &st.history;
        assert!((60..=62).contains(&h.len()), "{}", h.len());
        // The latest sample of each minute, and nothing older than an hour.
        assert_eq!(h.back().unwrap().1, 479.0);
        let last = h.back().unwrap().0;
        assert!(
            h.iter()
                .all(|(t, _, _)| last.saturating_since(*t) <= HISTORY_SPAN)
        );
        // Hourly data keeps its points (one per minute at most, none merged).
        let mut hourly = PipelineStatus::default();
        for i in 0..3 {
            hourly.record(Timestamp::from_secs(1_700_000_000 + 1800 * i), 1.0, 1.0);
        }
        assert_eq!(hourly.history.len(), 3);
    }
}
