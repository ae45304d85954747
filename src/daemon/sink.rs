//! The event sink: every engine event becomes its metrics, one structured log line (when
//! the explanation changes, and always for switches, commands and applies), an entry in
//! the decision log the API serves, and a journal line. One module turns events into all
//! four, so they can never tell different stories.

use super::metrics as m;
use super::series::{self, CounterKey, Fixed, PipelineSeries};
use super::status::{
    Explanation, GuardStatus, LogEntry, PidStatus, PipelineStatus, SharedBoard, StatusCell,
};
use crate::core::config::ProfileSpec;
use crate::core::event::{Event, Kept, Step};
use crate::core::{Engine, EngineConfig, Observation, RestoreNote, Sample, Timestamp};
use crate::journal::{JournalError, JournalWriter};
use crate::policy::ValidatedPolicy;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// The board already says the first sample is in.
    sampled: bool,
}

/// What the sink keeps per pipeline, held by the pipeline's controller slot: a map here
/// looked up by name on every step was a sixth of the sink's time at 10,000 pipelines,
/// and outlived the pipelines the controller dropped.
pub struct PipelineSink {
    /// Its `/metrics` series, looked up once: looking a labelled metric up on every step
    /// (hash its key, clone its labels) was most of a tick at 10,000 pipelines.
    series: Arc<PipelineSeries>,
    /// The label of the last explanation, to log changes rather than every step.
    last_explanation: Option<ExplanationLabel>,
    /// The ladder, shared with the status board's explanations (which name profiles by
    /// index until they are read).
    profiles: Arc<[ProfileSpec]>,
    /// Its entry in the status board.
    status: StatusCell,
}

impl PipelineSink {
    /// Keeps the explanation last logged by `old` (the same pipeline before a policy
    /// swap), so an unchanged explanation is not logged again.
    pub fn carry_over(&mut self, old: &PipelineSink) {
        self.last_explanation = old.last_explanation;
    }
}

/// An explanation's kind and labels (`blocked` and its guard, `held` and its signal and
/// reason, ...): compared from step to step without building a string.
type ExplanationLabel = (&'static str, &'static str, &'static str);

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
            sampled: false,
        }
    }

    /// A pipeline got an engine (new, or restored from the saved state): its entry, to
    /// pass to every [`Sink::step`] of that engine.
    pub fn pipeline_started(
        &mut self,
        engine: &Engine,
        collector: &str,
        notes: &[RestoreNote],
    ) -> PipelineSink {
        let cfg = engine.config();
        for n in notes {
            tracing::warn!(pipeline = %cfg.pipeline, note = %n.0, "Restored state with a change.");
        }
        if let Some(w) = self.journal.as_mut().and_then(Journal::writer) {
            w.pipeline(cfg, Some(&engine.state()));
        }
        // Again after a policy swap: the ladder may have changed.
        let series = series::table().pipeline(cfg);
        series.fixed(Fixed::Budget).set(cfg.budget_series);
        let cell = {
            let mut b = self.board.write().expect("board lock");
            b.pipelines.entry(cfg.pipeline.clone()).or_default().clone()
        };
        let mut st = cell.lock();
        st.pipeline = cfg.pipeline.clone();
        st.collector = collector.to_string();
        st.budget_series = cfg.budget_series;
        st.decided = cfg.profiles[engine.current()].name.clone();
        st.in_force = cfg.profiles[engine.in_force()].name.clone();
        st.in_force_since = engine.in_force_since();
        drop(st);
        PipelineSink {
            series,
            last_explanation: None,
            profiles: cfg.profiles.as_slice().into(),
            status: cell,
        }
    }

    /// Records one step of `engine`, whose entry is `entry`.
    pub fn step(
        &mut self,
        entry: &mut PipelineSink,
        now: Timestamp,
        obs: &Observation,
        step: &Step,
        engine: &Engine,
    ) {
        let cfg: &EngineConfig = engine.config();
        let p = cfg.pipeline.as_str();
        if let Some(w) = self.journal.as_mut().and_then(Journal::writer) {
            w.record(p, now, obs, step);
        }
        let name = |i: usize| cfg.profiles.get(i).map_or("?", |x| x.name.as_str());
        let g = &*entry.series;
        let mut log_entries = Vec::new();
        let mut eval = None;
        for ev in &step.events {
            match ev {
                Event::Evaluated(e) => {
                    for (f, v) in [
                        (Fixed::PidP, e.p),
                        (Fixed::PidI, e.i),
                        (Fixed::PidD, e.d),
                        (Fixed::PidOutput, e.output),
                        (Fixed::Pressure, e.pressure),
                        (Fixed::PredictedInput, e.predicted_input),
                    ] {
                        g.fixed(f).set(v);
                    }
                    if let (Some(r), Some(cell)) =
                        (e.measured_retention, g.retention(engine.in_force()))
                    {
                        cell.set(r);
                    }
                    for (i, score) in [e.anomaly_input, e.anomaly_output].into_iter().enumerate() {
                        if let Some(s) = score {
                            g.anomaly(i).set(s);
                        }
                    }
                    eval = Some(*e);
                }
                Event::Switched(d) => {
                    g.count(CounterKey::Decision {
                        from: d.from.as_str().into(),
                        to: d.to.as_str().into(),
                        reason: d.reason_label(),
                    });
                    // Put into words once, for the line and the decision log.
                    let text = d.to_string();
                    tracing::info!(pipeline = p, from = %d.from, to = %d.to, reason = d.reason_label(), sentence = %text, "Switched profile.");
                    log_entries.push(("switched", text));
                }
                Event::Blocked(b) => g.count(CounterKey::Blocked {
                    guard: b.guard.label(),
                }),
                Event::Held(h) => g.count(CounterKey::Held {
                    signal: h.signal.label(),
                    reason: h.reason.label(),
                }),
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
                    g.count(CounterKey::Command { command, outcome });
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
        let in_force = engine.in_force();
        g.fixed(Fixed::InForce).set(in_force as f64);
        g.fixed(Fixed::Decided).set(engine.current() as f64);
        for (i, cell) in g.active().iter().enumerate() {
            cell.set(if i == in_force { 1.0 } else { 0.0 });
        }
        if let (Some(i), Some(o)) = (value(&obs.input), value(&obs.output)) {
            g.fixed(Fixed::Input).set(i);
            g.fixed(Fixed::Output).set(o);
        }
        // The explanation: logged when it changes (a block or a hold repeats every step).
        if let Some(e) = step.explanation() {
            let label: ExplanationLabel = match e {
                Event::Switched(_) => ("switched", "", ""),
                Event::Blocked(b) => ("blocked", b.guard.label(), ""),
                Event::Held(h) => ("held", h.signal.label(), h.reason.label()),
                Event::Kept(k) => ("kept", k.label(), ""),
                _ => ("", "", ""),
            };
            let changed = entry.last_explanation != Some(label);
            entry.last_explanation = Some(label);
            if changed && !matches!(e, Event::Switched(_)) {
                let sentence = || e.sentence(&cfg.profiles).unwrap_or_default();
                match e {
                    Event::Held(_) => {
                        let sentence = sentence();
                        tracing::warn!(pipeline = p, sentence = %sentence, "Holding on bad input.");
                        log_entries.push(("held", sentence));
                    }
                    Event::Blocked(_) => {
                        let sentence = sentence();
                        tracing::info!(pipeline = p, sentence = %sentence, "Switch blocked.");
                        log_entries.push(("blocked", sentence));
                    }
                    Event::Kept(Kept::NoNewSample { .. }) => {}
                    _ => {
                        tracing::debug!(pipeline = p, sentence = %e.sentence(&cfg.profiles).unwrap_or_default(), "Kept profile.")
                    }
                }
            }
            let explanation = Explanation::Event(e.clone(), entry.profiles.clone());
            let last_switch = self.log(now, p, log_entries);
            update_status(
                &entry.status,
                now,
                obs,
                engine,
                explanation,
                eval,
                last_switch,
            );
        }
    }

    /// A new status entry for a pipeline before its first step.
    pub fn status_of(&self, pipeline: &str) -> Option<PipelineStatus> {
        self.board
            .read()
            .ok()?
            .pipelines
            .get(pipeline)
            .map(|st| st.lock().clone())
    }

    /// Logs the step's entries in the board (marking the first sample in); the last
    /// switch among them, for the pipeline's status.
    fn log(
        &mut self,
        now: Timestamp,
        pipeline: &str,
        log_entries: Vec<(&'static str, String)>,
    ) -> Option<LogEntry> {
        let mut last_switch = None;
        // The board only for what is shared (the log, the first sample), and never while
        // a status cell is held (see `StatusCell`).
        if !log_entries.is_empty() || !self.sampled {
            let mut b = self.board.write().expect("board lock");
            for (kind, sentence) in log_entries {
                let entry = LogEntry {
                    at: now,
                    pipeline: pipeline.to_string(),
                    kind,
                    sentence,
                };
                if kind == "switched" {
                    last_switch = Some(entry.clone());
                }
                b.log(entry);
            }
            b.sampled = true;
            self.sampled = true;
        }
        last_switch
    }
}

/// Updates a pipeline's status after a step.
fn update_status(
    status: &StatusCell,
    now: Timestamp,
    obs: &Observation,
    engine: &Engine,
    explanation: Explanation,
    eval: Option<crate::core::event::Evaluation>,
    last_switch: Option<LogEntry>,
) {
    let cfg = engine.config();
    let mut st = status.lock();
    let set = |field: &mut String, value: &str| {
        if field != value {
            value.clone_into(field);
        }
    };
    set(&mut st.pipeline, &cfg.pipeline);
    set(&mut st.decided, &cfg.profiles[engine.current()].name);
    set(&mut st.in_force, &cfg.profiles[engine.in_force()].name);
    st.in_force_since = engine.in_force_since();
    st.explanation = explanation;
    st.budget_series = cfg.budget_series;
    st.active_guards.clear();
    st.active_guards.extend(
        engine
            .active_guards(now)
            .into_iter()
            .map(|(g, until)| GuardStatus {
                guard: g.label(),
                until,
            }),
    );
    match engine.pinned() {
        Some(pin) => {
            let name = &cfg.profiles[pin.profile].name;
            match &mut st.pinned {
                Some((n, until)) => {
                    set(n, name);
                    *until = pin.until;
                }
                None => st.pinned = Some((name.clone(), pin.until)),
            }
        }
        None => st.pinned = None,
    }
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
}
