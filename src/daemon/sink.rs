//! The event sink: every engine event becomes its metrics, one structured log line (when
//! the explanation changes, and always for switches, commands and applies), an entry in
//! the decision log the API serves, and a journal line. One module turns events into all
//! four, so they can never tell different stories.

use super::metrics as m;
use super::status::{GuardStatus, LogEntry, PidStatus, PipelineStatus, SharedBoard};
use crate::core::event::{Event, Kept, Step};
use crate::core::{Engine, EngineConfig, Observation, RestoreNote, Sample, Timestamp};
use crate::journal::{JournalError, JournalWriter};
use crate::policy::ValidatedPolicy;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The daemon's journal: self-contained gzip segments in a directory, rotated by size
/// (each new segment starts with the policy and every engine's configuration and state,
/// so `phoenix replay SEGMENT` needs nothing else) and deleted past the retention.
pub struct Journal {
    /// Directory of the segments.
    pub dir: PathBuf,
    /// Start a new segment past this size.
    pub rotate_bytes: u64,
    /// Delete segments older than this.
    pub retention: Duration,
    writer: Option<JournalWriter>,
    /// Bytes of the current segment at its last flush.
    bytes: u64,
}

impl Journal {
    /// A journal writing into `dir` (created if missing).
    pub fn new(dir: PathBuf, rotate_bytes: u64, retention: Duration) -> Self {
        Journal {
            dir,
            rotate_bytes,
            retention,
            writer: None,
            bytes: 0,
        }
    }

    /// Starts a fresh segment with the policy and the engines as they are now.
    pub fn start_segment<'a>(
        &mut self,
        now: Timestamp,
        policy: &ValidatedPolicy,
        engines: impl Iterator<Item = &'a Engine>,
    ) -> Result<(), JournalError> {
        if let Some(w) = self.writer.take() {
            w.finish()?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| JournalError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self
            .dir
            .join(format!("journal-{}.jsonl.gz", now.as_millis()));
        let mut w = JournalWriter::create_live(&path, "phoenix run")?;
        w.policy(policy);
        for e in engines {
            w.pipeline(e.config(), Some(&e.state()));
        }
        self.writer = Some(w);
        self.bytes = 0;
        self.prune(now);
        Ok(())
    }

    /// Deletes segments older than the retention (by the time in their name).
    fn prune(&self, now: Timestamp) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let oldest = now.as_millis() - self.retention.as_millis() as i64;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let t = name
                .strip_prefix("journal-")
                .and_then(|s| s.strip_suffix(".jsonl.gz"))
                .and_then(|s| s.parse::<i64>().ok());
            if t.is_some_and(|t| t < oldest) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The writer of the current segment.
    pub fn writer(&mut self) -> Option<&mut JournalWriter> {
        self.writer.as_mut()
    }

    /// Flushes the segment; true when it has grown past `rotate_bytes`.
    pub fn flush(&mut self) -> Result<bool, JournalError> {
        let Some(w) = &mut self.writer else {
            return Ok(false);
        };
        let bytes = w.flush()?;
        metrics::counter!(m::JOURNAL_BYTES).increment(bytes.saturating_sub(self.bytes));
        self.bytes = bytes;
        Ok(bytes >= self.rotate_bytes)
    }

    /// Completes the current segment (at shutdown).
    pub fn finish(&mut self) -> Result<(), JournalError> {
        match self.writer.take() {
            Some(w) => w.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

/// Turns events into metrics, log lines, the board and the journal.
pub struct Sink {
    /// What the API shows.
    pub board: SharedBoard,
    /// The journal, when enabled.
    pub journal: Option<Journal>,
    /// The last explanation label per pipeline, to log changes rather than every step.
    last_explanation: HashMap<String, String>,
    /// Per pipeline, its gauges' handles.
    gauges: HashMap<String, PipelineGauges>,
}

/// A pipeline's per-step gauges, registered once: looking a labelled metric up on every
/// step (hash its key, clone its labels) was most of a tick at 10,000 pipelines.
struct PipelineGauges {
    pid: [metrics::Gauge; 4],
    pressure: metrics::Gauge,
    predicted_input: metrics::Gauge,
    /// Per profile, by index; registered on its first measurement (a gauge that was
    /// never set would be exported as a retention of 0).
    retention: Vec<Option<metrics::Gauge>>,
    /// Input, output; registered on the first score, for the same reason.
    anomaly: [Option<metrics::Gauge>; 2],
    in_force: metrics::Gauge,
    decided: metrics::Gauge,
    /// Per profile, by index.
    active: Vec<metrics::Gauge>,
    input: metrics::Gauge,
    output: metrics::Gauge,
}

/// The pipeline's gauges, registered on first use (no allocation once they are).
fn gauges_of<'a>(
    all: &'a mut HashMap<String, PipelineGauges>,
    cfg: &EngineConfig,
) -> &'a mut PipelineGauges {
    if !all.contains_key(&cfg.pipeline) {
        all.insert(cfg.pipeline.clone(), PipelineGauges::new(cfg));
    }
    all.get_mut(&cfg.pipeline).expect("inserted above")
}

impl PipelineGauges {
    fn new(cfg: &EngineConfig) -> Self {
        let p = cfg.pipeline.clone();
        let g = |name: &'static str| metrics::gauge!(name, "pipeline" => p.clone());
        let active = cfg
            .profiles
            .iter()
            .map(|prof| metrics::gauge!(m::PROFILE_ACTIVE, "pipeline" => p.clone(), "profile" => prof.name.clone()))
            .collect();
        PipelineGauges {
            pid: [g(m::PID_P), g(m::PID_I), g(m::PID_D), g(m::PID_OUTPUT)],
            pressure: g(m::PRESSURE),
            predicted_input: g(m::PREDICTED_INPUT),
            retention: vec![None; cfg.profiles.len()],
            anomaly: [None, None],
            in_force: g(m::PROFILE_IN_FORCE),
            decided: g(m::PROFILE_DECIDED),
            active,
            input: g(m::INPUT),
            output: g(m::OUTPUT),
        }
    }
}

fn value(s: &Sample) -> Option<f64> {
    match s {
        Sample::Ok { value, .. } => Some(*value),
        _ => None,
    }
}

impl Sink {
    /// A sink over `board`, journaling into `journal` when given.
    pub fn new(board: SharedBoard, journal: Option<Journal>) -> Self {
        Sink {
            board,
            journal,
            last_explanation: HashMap::new(),
            gauges: HashMap::new(),
        }
    }

    /// A pipeline got an engine (new, or restored from the saved state).
    pub fn pipeline_started(&mut self, engine: &Engine, collector: &str, notes: &[RestoreNote]) {
        let cfg = engine.config();
        for n in notes {
            tracing::warn!(pipeline = %cfg.pipeline, note = %n.0, "Restored state with a change.");
        }
        if let Some(w) = self.journal.as_mut().and_then(Journal::writer) {
            w.pipeline(cfg, Some(&engine.state()));
        }
        metrics::gauge!(m::BUDGET, "pipeline" => cfg.pipeline.clone()).set(cfg.budget_series);
        // Again after a policy swap: the ladder may have changed.
        self.gauges
            .insert(cfg.pipeline.clone(), PipelineGauges::new(cfg));
        let mut b = self.board.write().expect("board lock");
        let st = b.pipelines.entry(cfg.pipeline.clone()).or_default();
        st.pipeline = cfg.pipeline.clone();
        st.collector = collector.to_string();
        st.budget_series = cfg.budget_series;
        st.decided = cfg.profiles[engine.current()].name.clone();
        st.in_force = cfg.profiles[engine.in_force()].name.clone();
        st.in_force_since = engine.in_force_since();
    }

    /// Records one step of `engine`.
    pub fn step(&mut self, now: Timestamp, obs: &Observation, step: &Step, engine: &Engine) {
        let cfg: &EngineConfig = engine.config();
        let p = cfg.pipeline.as_str();
        if let Some(w) = self.journal.as_mut().and_then(Journal::writer) {
            w.record(p, now, obs, step);
        }
        let pl = || p.to_string();
        let name = |i: usize| {
            cfg.profiles
                .get(i)
                .map_or("?", |x| x.name.as_str())
                .to_string()
        };
        let mut log_entries = Vec::new();
        let mut eval = None;
        for ev in &step.events {
            match ev {
                Event::Evaluated(e) => {
                    let g = gauges_of(&mut self.gauges, cfg);
                    for (gauge, v) in g.pid.iter().zip([e.p, e.i, e.d, e.output]) {
                        gauge.set(v);
                    }
                    g.pressure.set(e.pressure);
                    g.predicted_input.set(e.predicted_input);
                    let profile = engine.in_force();
                    if let (Some(r), Some(slot)) =
                        (e.measured_retention, g.retention.get_mut(profile))
                    {
                        slot.get_or_insert_with(|| {
                            metrics::gauge!(m::RETENTION, "pipeline" => pl(), "profile" => name(profile))
                        })
                        .set(r);
                    }
                    for ((slot, signal), score) in g
                        .anomaly
                        .iter_mut()
                        .zip(["input", "output"])
                        .zip([e.anomaly_input, e.anomaly_output])
                    {
                        if let Some(s) = score {
                            slot.get_or_insert_with(|| {
                                metrics::gauge!(m::ANOMALY, "pipeline" => pl(), "signal" => signal)
                            })
                            .set(s);
                        }
                    }
                    eval = Some(*e);
                }
                Event::Switched(d) => {
                    metrics::counter!(m::DECISIONS, "pipeline" => pl(), "from" => d.from.clone(), "to" => d.to.clone(), "reason" => d.reason_label()).increment(1);
                    tracing::info!(pipeline = p, from = %d.from, to = %d.to, reason = d.reason_label(), sentence = %d, "Switched profile.");
                    log_entries.push(("switched", d.to_string()));
                }
                Event::Blocked(b) => {
                    metrics::counter!(m::BLOCKED, "pipeline" => pl(), "guard" => b.guard.label())
                        .increment(1);
                }
                Event::Held(h) => {
                    metrics::counter!(m::HOLDS, "pipeline" => pl(), "signal" => h.signal.label(), "reason" => h.reason.label()).increment(1);
                }
                Event::Kept(_) => {}
                Event::Audit(a) => {
                    let text = ev.sentence(&cfg.profiles).unwrap_or_default();
                    let (command, outcome) = match &**a {
                        crate::core::event::Audit::OverrideSet { .. } => ("override", "set"),
                        crate::core::event::Audit::OverrideCleared { .. } => ("clear", "cleared"),
                        crate::core::event::Audit::OverrideExpired { .. } => {
                            ("override", "expired")
                        }
                        crate::core::event::Audit::Refused { .. } => ("command", "refused"),
                        crate::core::event::Audit::EmergencyRequested { .. } => {
                            ("emergency", "requested")
                        }
                    };
                    metrics::counter!(m::COMMANDS, "pipeline" => pl(), "command" => command, "outcome" => outcome).increment(1);
                    tracing::info!(pipeline = p, command, outcome, sentence = %text, "Command handled.");
                    log_entries.push(("audit", text));
                }
                Event::Applied(a) => {
                    let text = ev.sentence(&cfg.profiles).unwrap_or_default();
                    if a.ok {
                        tracing::info!(pipeline = p, profile = %name(a.profile), sentence = %text, "Profile in force.");
                    } else {
                        tracing::warn!(pipeline = p, profile = %name(a.profile), sentence = %text, "Apply failed.");
                    }
                    log_entries.push(("applied", text));
                }
            }
        }
        // The explanation: logged when it changes (a block or a hold repeats every step).
        if let Some(e) = step.explanation() {
            let label = match e {
                Event::Switched(_) => "switched".to_string(),
                Event::Blocked(b) => format!("blocked:{}", b.guard.label()),
                Event::Held(h) => format!("held:{}:{}", h.signal, h.reason.label()),
                Event::Kept(k) => format!("kept:{}", k.label()),
                _ => String::new(),
            };
            let sentence = e.sentence(&cfg.profiles).unwrap_or_default();
            let changed = self.last_explanation.get(p) != Some(&label);
            if changed && !matches!(e, Event::Switched(_)) {
                match e {
                    Event::Held(_) => {
                        tracing::warn!(pipeline = p, sentence = %sentence, "Holding on bad input.")
                    }
                    Event::Blocked(_) => {
                        tracing::info!(pipeline = p, sentence = %sentence, "Switch blocked.");
                        log_entries.push(("blocked", sentence.clone()));
                    }
                    Event::Kept(Kept::NoNewSample { .. }) => {}
                    _ => tracing::debug!(pipeline = p, sentence = %sentence, "Kept profile."),
                }
                if matches!(e, Event::Held(_)) {
                    log_entries.push(("held", sentence.clone()));
                }
            }
            self.last_explanation.insert(p.to_string(), label);
            self.update_board(now, obs, engine, &sentence, eval, &log_entries);
        }
        let in_force = engine.in_force();
        let g = gauges_of(&mut self.gauges, cfg);
        g.in_force.set(in_force as f64);
        g.decided.set(engine.current() as f64);
        for (i, gauge) in g.active.iter().enumerate() {
            gauge.set(if i == in_force { 1.0 } else { 0.0 });
        }
        if let (Some(i), Some(o)) = (value(&obs.input), value(&obs.output)) {
            g.input.set(i);
            g.output.set(o);
        }
    }

    fn update_board(
        &mut self,
        now: Timestamp,
        obs: &Observation,
        engine: &Engine,
        explanation: &str,
        eval: Option<crate::core::event::Evaluation>,
        log_entries: &[(&'static str, String)],
    ) {
        let cfg = engine.config();
        let mut b = self.board.write().expect("board lock");
        for (kind, sentence) in log_entries {
            b.log(LogEntry {
                at: now,
                pipeline: cfg.pipeline.clone(),
                kind,
                sentence: sentence.clone(),
            });
        }
        let last_switch = log_entries
            .iter()
            .rev()
            .find(|(k, _)| *k == "switched")
            .map(|(_, s)| LogEntry {
                at: now,
                pipeline: cfg.pipeline.clone(),
                kind: "switched",
                sentence: s.clone(),
            });
        let st = b.pipelines.entry(cfg.pipeline.clone()).or_default();
        st.pipeline = cfg.pipeline.clone();
        st.decided = cfg.profiles[engine.current()].name.clone();
        st.in_force = cfg.profiles[engine.in_force()].name.clone();
        st.in_force_since = engine.in_force_since();
        st.explanation = explanation.to_string();
        st.budget_series = cfg.budget_series;
        st.active_guards = engine
            .active_guards(now)
            .into_iter()
            .map(|(g, until)| GuardStatus {
                guard: g.label(),
                until,
            })
            .collect();
        st.pinned = engine
            .pinned()
            .map(|p| (cfg.profiles[p.profile].name.clone(), p.until));
        if let Some(d) = last_switch {
            st.last_decision = Some(d);
        }
        if let Some(e) = eval {
            st.pid = PidStatus {
                p: e.p,
                i: e.i,
                d: e.d,
                output: e.output,
            };
            st.pressure = e.pressure;
        }
        if let (Some(i), Some(o)) = (value(&obs.input), value(&obs.output)) {
            st.input_series = Some(i);
            st.output_series = Some(o);
            st.record(now, i, o);
        }
        st.vanished = matches!(obs.input, Sample::Empty) && matches!(obs.output, Sample::Empty);
        b.sampled = true;
    }

    /// A new status entry for a pipeline before its first step.
    pub fn status_of(&self, pipeline: &str) -> Option<PipelineStatus> {
        self.board.read().ok()?.pipelines.get(pipeline).cloned()
    }
}
