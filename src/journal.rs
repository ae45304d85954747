//! The journal: every engine step as one JSON line (gzip-compressed), written by
//! `phoenix simulate --journal` and by the daemon, re-run by `phoenix replay`.
//!
//! A journal is self-contained: it starts with a header, the policy it ran under (its
//! text and SHA-256) and, per pipeline, the engine configuration and the state the engine
//! started from; then one line per step with `now`, the observation and the events the
//! step produced. Replaying the observations through a fresh engine must reproduce the
//! events exactly (record/replay parity), so a recorded incident can be re-examined, or
//! re-run under another policy, with nothing but the journal.
//!
//! To stay small (about 20 bytes per pipeline-step after compression is the aim), a step
//! line stores samples taken at `now` as bare numbers, and the explanation `Kept` by its
//! label only; the per-step numbers of `Evaluated` (PID terms, pressure, scores) are not
//! stored, since replay recomputes them. Every other event is stored in full.

use crate::core::event::{Event, Step};
use crate::core::{
    ApplyReport, Command, Engine, EngineConfig, EngineState, Observation, Sample, Timestamp,
};
use crate::policy::ValidatedPolicy;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Value of the header's `format` field.
pub const FORMAT: &str = "phoenix-journal";
/// Version of the line format.
pub const VERSION: u32 = 1;

/// Errors reading or writing a journal; each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be created, written, renamed or read.
    #[error("{}: {}; check the path and its directory", path.display(), crate::fsutil::io_text(source))]
    Io {
        /// The journal.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line is not a journal record.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The journal.
        path: PathBuf,
        /// 1-based line number (after decompression).
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// The policy a journal ran under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Where it was read from.
    pub origin: String,
    /// Its name.
    pub name: String,
    /// SHA-256 of `content`, hex.
    pub sha256: String,
    /// The policy text.
    pub content: String,
}

/// One line of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// First line.
    Header {
        /// Always `FORMAT`.
        format: String,
        /// Line format version.
        version: u32,
        /// The program that wrote it (`phoenix simulate`, `phoenix run`).
        written_by: String,
    },
    /// The policy in force from here on (at start and after each reload).
    Policy(PolicyRecord),
    /// A pipeline's engine from here on: its configuration and the state it started from
    /// (`None`: a fresh engine).
    Pipeline {
        /// Pipeline name.
        name: String,
        /// Engine configuration.
        config: Box<EngineConfig>,
        /// State restored into it, if any.
        state: Option<Box<EngineState>>,
    },
    /// One step.
    Step(StepLine),
}

/// One step, compactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    /// `now` of the step.
    pub t: Timestamp,
    /// Pipeline.
    pub p: String,
    /// Input sample.
    pub i: JSample,
    /// Output sample.
    pub o: JSample,
    /// Profile the actuator reported in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<usize>,
    /// Applies that ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<ApplyReport>,
    /// Commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub c: Vec<Command>,
    /// The events, as `journal_events` keeps them.
    pub e: Vec<JEvent>,
}

/// A sample in a step line: a bare number when taken at the step's `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JSample {
    /// `Ok` at `now`.
    Now(f64),
    /// `Ok` at another time.
    At(f64, Timestamp),
    /// Anything else.
    Other(Sample),
}

impl JSample {
    fn of(s: &Sample, now: Timestamp) -> Self {
        match s {
            Sample::Ok { value, at } if *at == now => JSample::Now(*value),
            Sample::Ok { value, at } => JSample::At(*value, *at),
            other => JSample::Other(other.clone()),
        }
    }

    fn sample(&self, now: Timestamp) -> Sample {
        match self {
            JSample::Now(v) => Sample::ok(*v, now),
            JSample::At(v, at) => Sample::ok(*v, *at),
            JSample::Other(s) => s.clone(),
        }
    }
}

/// An event as a journal keeps it: `Kept` by its label, `Evaluated` not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JEvent {
    /// A `Kept` explanation's label.
    Kept(String),
    /// Any other event but `Evaluated`, in full.
    Full(Event),
}

/// The events of `step` as a journal keeps them.
pub fn journal_events(step: &Step) -> Vec<JEvent> {
    step.events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluated(_) => None,
            Event::Kept(k) => Some(JEvent::Kept(k.label().to_string())),
            other => Some(JEvent::Full(other.clone())),
        })
        .collect()
}

impl StepLine {
    /// The line recording `step`, taken at `now` on `obs`.
    pub fn new(pipeline: &str, now: Timestamp, obs: &Observation, step: &Step) -> Self {
        StepLine {
            t: now,
            p: pipeline.to_string(),
            i: JSample::of(&obs.input, now),
            o: JSample::of(&obs.output, now),
            f: obs.in_force,
            a: obs.applies.clone(),
            c: obs.commands.clone(),
            e: journal_events(step),
        }
    }

    /// The observation it recorded.
    pub fn observation(&self) -> Observation {
        Observation {
            input: self.i.sample(self.t),
            output: self.o.sample(self.t),
            in_force: self.f,
            applies: self.a.clone(),
            commands: self.c.clone(),
        }
    }
}

/// `Line::Step` as written, borrowed from the step: the same bytes as serialising a
/// [`StepLine`] (a test checks it), without copying the pipeline name, samples, applies,
/// commands and events for every step (the copies were half the journal's cost at
/// 10,000 pipelines).
#[derive(Serialize)]
#[serde(tag = "kind", rename = "step")]
struct StepLineRef<'a> {
    t: Timestamp,
    p: &'a str,
    i: JSampleRef<'a>,
    o: JSampleRef<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<usize>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    a: &'a [ApplyReport],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    c: &'a [Command],
    e: JEventsRef<'a>,
}

impl<'a> StepLineRef<'a> {
    fn new(pipeline: &'a str, now: Timestamp, obs: &'a Observation, step: &'a Step) -> Self {
        StepLineRef {
            t: now,
            p: pipeline,
            i: JSampleRef::of(&obs.input, now),
            o: JSampleRef::of(&obs.output, now),
            f: obs.in_force,
            a: &obs.applies,
            c: &obs.commands,
            e: JEventsRef(step),
        }
    }
}

/// [`JSample`], borrowed.
#[derive(Serialize)]
#[serde(untagged)]
enum JSampleRef<'a> {
    Now(f64),
    At(f64, Timestamp),
    Other(&'a Sample),
}

impl<'a> JSampleRef<'a> {
    fn of(s: &'a Sample, now: Timestamp) -> Self {
        match s {
            Sample::Ok { value, at } if *at == now => JSampleRef::Now(*value),
            Sample::Ok { value, at } => JSampleRef::At(*value, *at),
            other => JSampleRef::Other(other),
        }
    }
}

/// A step's events as [`journal_events`] keeps them, serialised in place.
struct JEventsRef<'a>(&'a Step);

impl Serialize for JEventsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.events.iter().filter_map(|e| match e {
            Event::Evaluated(_) => None,
            Event::Kept(k) => Some(JEventRef::Kept(k.label())),
            other => Some(JEventRef::Full(other)),
        }))
    }
}

/// [`JEvent`], borrowed.
#[derive(Serialize)]
#[serde(untagged)]
enum JEventRef<'a> {
    Kept(&'static str),
    Full(&'a Event),
}

/// Writes a journal to a temporary file beside its path and renames it into place on
/// `finish`, so an interrupted run leaves no partial journal (the daemon's rotating
/// journal finishes each segment the same way).
pub struct JournalWriter {
    path: PathBuf,
    /// Where the bytes go until `finish` (equal to `path` for a live segment).
    tmp: PathBuf,
    out: Option<GzEncoder<BufWriter<File>>>,
    /// The first write error; reported by `finish` (a step cannot fail).
    error: Option<io::Error>,
    /// Steps recorded.
    steps: u64,
    /// Lines serialised and not yet compressed. The daemon flushes once per tick, after
    /// every pipeline is decided, so compressing there rather than line by line keeps
    /// deflate (a third of the sink's time per step) out of the decisions' path; a long
    /// simulation, which flushes only at the end, compresses whenever this passes
    /// `PENDING_MAX`.
    pending: Vec<u8>,
}

/// See [`JournalWriter::pending`]: more than a 10,000-pipeline tick writes.
const PENDING_MAX: usize = 4 << 20;

/// What `finish` reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JournalStats {
    /// Steps recorded.
    pub steps: u64,
    /// Size on disk.
    pub bytes: u64,
}

impl JournalStats {
    /// Bytes on disk per recorded step.
    pub fn bytes_per_step(&self) -> f64 {
        self.bytes as f64 / self.steps.max(1) as f64
    }
}

impl JournalWriter {
    /// Starts a live journal segment at `path`, written in place and flushed by `flush`
    /// (the daemon's: a crash leaves every flushed step readable, since `read` accepts a
    /// truncated end). `finish` completes it.
    pub fn create_live(path: &Path, written_by: &str) -> Result<Self, JournalError> {
        let mut w = Self::create(path, written_by)?;
        fs::rename(&w.tmp, path).map_err(|source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        w.tmp = path.to_path_buf();
        Ok(w)
    }

    /// Pushes everything recorded so far to the file (a gzip sync flush: readable up to
    /// here even if the process dies next).
    pub fn flush(&mut self) -> Result<u64, JournalError> {
        self.compress_pending();
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(e) = self.error.take() {
            return Err(io_err(e));
        }
        if let Some(o) = &mut self.out {
            o.flush().map_err(io_err)?;
        }
        fs::metadata(&self.tmp).map(|m| m.len()).map_err(io_err)
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Starts a journal at `path` (written to a temporary file until `finish`).
    pub fn create(path: &Path, written_by: &str) -> Result<Self, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp).map_err(io_err)?;
        let mut w = JournalWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(GzEncoder::new(
                BufWriter::with_capacity(1 << 16, file),
                Compression::default(),
            )),
            error: None,
            steps: 0,
            pending: Vec::with_capacity(4096),
        };
        w.write(&Line::Header {
            format: FORMAT.to_string(),
            version: VERSION,
            written_by: written_by.to_string(),
        });
        Ok(w)
    }

    fn write(&mut self, line: &impl Serialize) {
        if self.error.is_some() {
            return;
        }
        let len = self.pending.len();
        match serde_json::to_writer(&mut self.pending, line) {
            Ok(()) => self.pending.push(b'\n'),
            Err(e) => {
                self.pending.truncate(len);
                self.error = Some(io::Error::other(e));
                return;
            }
        }
        if self.pending.len() >= PENDING_MAX {
            self.compress_pending();
        }
    }

    /// Compresses the pending lines into the file's stream.
    fn compress_pending(&mut self) {
        if let (None, Some(o)) = (&self.error, &mut self.out)
            && let Err(e) = o.write_all(&self.pending)
        {
            self.error = Some(e);
        }
        self.pending.clear();
        // A tick's worth is kept for the next one; a burst (every pipeline's full events
        // after a policy swap) is given back.
        if self.pending.capacity() > PENDING_MAX {
            self.pending = Vec::new();
        }
    }

    /// Records the policy in force from here on.
    pub fn policy(&mut self, p: &ValidatedPolicy) {
        self.write(&Line::Policy(PolicyRecord {
            origin: p.origin().to_string(),
            name: p.name().to_string(),
            sha256: p.sha256(),
            content: p.source().to_string(),
        }));
    }

    /// Records a pipeline's engine: its configuration and the state it starts from.
    pub fn pipeline(&mut self, config: &EngineConfig, state: Option<&EngineState>) {
        self.write(&Line::Pipeline {
            name: config.pipeline.clone(),
            config: Box::new(config.clone()),
            state: state.map(|s| Box::new(s.clone())),
        });
    }

    /// Records one step.
    pub fn record(&mut self, pipeline: &str, now: Timestamp, obs: &Observation, step: &Step) {
        self.steps += 1;
        self.write(&StepLineRef::new(pipeline, now, obs, step));
    }

    /// Completes the file and moves it into place.
    pub fn finish(mut self) -> Result<JournalStats, JournalError> {
        self.compress_pending();
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(e) = self.error.take() {
            return Err(io_err(e));
        }
        let out = self.out.take().expect("finish runs once");
        let file = out
            .finish()
            .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
            .map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        if self.tmp != self.path {
            fs::rename(&self.tmp, &self.path).map_err(io_err)?;
        }
        let bytes = fs::metadata(&self.path).map_err(io_err)?.len();
        Ok(JournalStats {
            steps: self.steps,
            bytes,
        })
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // Not finished: an interrupted run leaves nothing behind (a live segment keeps
        // what was flushed).
        if self.out.is_some() && self.tmp != self.path {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a journal line by line.
pub fn read(path: &Path) -> Result<Vec<Line>, JournalError> {
    let file = File::open(path).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(MultiGzDecoder::new(BufReader::new(file)));
    let mut lines = Vec::new();
    let mut buf = String::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        n += 1;
        let parse = |message: String| JournalError::Parse {
            path: path.to_path_buf(),
            line: n,
            message,
        };
        match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            // A live segment cut by a crash ends mid-stream: what was flushed stands.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && n > 1 => break,
            Err(e) => {
                return Err(parse(format!(
                    "{}; is this a journal written by phoenix (gzip-compressed JSON lines)?",
                    crate::fsutil::io_text(&e)
                )));
            }
        }
        if !buf.ends_with('\n') && n > 1 {
            // The last line of a segment cut mid-write.
            break;
        }
        let line: Line = serde_json::from_str(buf.trim_end())
            .map_err(|e| parse(format!("not a journal record: {e}")))?;
        if n == 1 {
            match &line {
                Line::Header {
                    format, version, ..
                } if format == FORMAT && *version == VERSION => {}
                Line::Header { version, .. } => {
                    return Err(parse(format!(
                        "journal format version {version}; this phoenix reads version {VERSION}"
                    )));
                }
                _ => return Err(parse("the first line is not a journal header".to_string())),
            }
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(JournalError::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: "empty journal".to_string(),
        });
    }
    Ok(lines)
}

/// Switch sentences, or `no switch`.
fn sentences(events: &[JEvent]) -> String {
    let s: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            JEvent::Full(Event::Switched(d)) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    if s.is_empty() {
        "no switch".to_string()
    } else {
        s.join("; ")
    }
}

/// The first step at which a replay's events differ from the journal's.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Pipeline.
    pub pipeline: String,
    /// The step's number within its pipeline, from 0.
    pub tick: u64,
    /// Its `now`.
    pub at: Timestamp,
    /// The recorded events (parity: as JSON; under another policy: the switch sentences).
    pub expected: String,
    /// The replayed events, in the same form.
    pub got: String,
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// Steps replayed.
    pub steps: u64,
    /// Pipelines seen.
    pub pipelines: usize,
    /// The policy the journal recorded (name, hash).
    pub recorded_policy: Option<(String, String)>,
    /// Steps whose events differ, in journal order (parity mode stops at the first).
    pub divergences: Vec<Divergence>,
    /// Switches the journal recorded, and the replay made.
    pub switches: (u64, u64),
}

/// How to replay.
pub enum ReplayMode<'a> {
    /// Under the recorded policy and engine configurations: every step's events must
    /// match; stops at the first divergence.
    Parity,
    /// Under another policy, on the recorded observations: lists the steps whose switches
    /// differ. The recorded actuator reports describe the recorded decisions, so they are
    /// replaced by the assumption that every apply of the new engine succeeds at once;
    /// the recorded outputs still reflect the recorded profiles (open loop).
    Policy(&'a ValidatedPolicy),
}

/// Re-runs a journal (see `ReplayMode`).
pub fn replay(path: &Path, lines: &[Line], mode: ReplayMode) -> Result<ReplayReport, JournalError> {
    let mut engines: HashMap<String, (Engine, u64)> = HashMap::new();
    let mut report = ReplayReport {
        steps: 0,
        pipelines: 0,
        recorded_policy: None,
        divergences: Vec::new(),
        switches: (0, 0),
    };
    let to_json = |e: &[JEvent]| serde_json::to_string(e).unwrap_or_default();
    for (n, line) in lines.iter().enumerate() {
        match line {
            Line::Header { .. } => {}
            Line::Policy(p) => {
                if report.recorded_policy.is_none() {
                    report.recorded_policy = Some((p.name.clone(), p.sha256.clone()));
                }
            }
            Line::Pipeline {
                name,
                config,
                state,
            } => {
                let cfg = match &mode {
                    ReplayMode::Parity => (**config).clone(),
                    ReplayMode::Policy(p) => p.engine_config_with_ladder(
                        name,
                        config.budget_series,
                        config.tick,
                        &config.profiles,
                    ),
                };
                let engine = match state {
                    Some(s) => Engine::restore(cfg, (**s).clone()).0,
                    None => Engine::new(cfg),
                };
                engines.insert(name.clone(), (engine, 0));
                report.pipelines = report.pipelines.max(engines.len());
            }
            Line::Step(s) => {
                let Some((engine, tick)) = engines.get_mut(&s.p) else {
                    return Err(JournalError::Parse {
                        path: path.to_path_buf(),
                        line: n as u64 + 1,
                        message: format!("step of pipeline `{}` before its pipeline record", s.p),
                    });
                };
                let mut obs = s.observation();
                if matches!(mode, ReplayMode::Policy(_)) {
                    obs.in_force = Some(engine.current());
                    obs.applies.clear();
                }
                let step = engine.step(s.t, &obs);
                let got = journal_events(&step);
                let switched = |e: &[JEvent]| {
                    e.iter()
                        .filter(|e| matches!(e, JEvent::Full(Event::Switched(_))))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                report.switches.0 += switched(&s.e).len() as u64;
                report.switches.1 += switched(&got).len() as u64;
                let differs = match mode {
                    ReplayMode::Parity => got != s.e,
                    ReplayMode::Policy(_) => switched(&got) != switched(&s.e),
                };
                if differs {
                    let (expected, got) = match mode {
                        ReplayMode::Parity => (to_json(&s.e), to_json(&got)),
                        ReplayMode::Policy(_) => {
                            (sentences(&switched(&s.e)), sentences(&switched(&got)))
                        }
                    };
                    report.divergences.push(Divergence {
                        pipeline: s.p.clone(),
                        tick: *tick,
                        at: s.t,
                        expected,
                        got,
                    });
                    if matches!(mode, ReplayMode::Parity) {
                        report.steps += 1;
                        return Ok(report);
                    }
                }
                *tick += 1;
                report.steps += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ApplyOutcome, EngineConfig};
    use std::time::Duration;

    /// The borrowed line the writer serialises must be byte for byte the owned one the
    /// reader parses, over every kind of sample, event, apply and command.
    #[test]
    fn borrowed_step_lines_serialise_as_owned_ones() {
        let mut engine = Engine::new(EngineConfig::example(100_000.0));
        let mut checked = 0;
        for k in 0..400i64 {
            let now = Timestamp::from_secs(15 * k);
            let demand = if (100..200).contains(&k) {
                250_000.0
            } else {
                50_000.0
            };
            let input = match k % 17 {
                3 => Sample::Empty,
                5 => Sample::Stale {
                    age: Duration::from_secs(600),
                },
                7 => Sample::Error {
                    message: "down \"quoted\"".into(),
                },
                11 => Sample::ok(demand, Timestamp::from_secs(15 * k - 4)),
                _ => Sample::ok(demand, now),
            };
            let mut obs = Observation {
                input,
                output: Sample::ok(demand * 0.8, now),
                in_force: Some(engine.current()).filter(|_| k % 3 != 0),
                applies: Vec::new(),
                commands: Vec::new(),
            };
            if k % 50 == 7 {
                obs.applies.push(ApplyReport {
                    profile: engine.current(),
                    seq: engine.apply_seq(),
                    outcome: if k % 100 == 7 {
                        ApplyOutcome::Applied
                    } else {
                        ApplyOutcome::Failed {
                            reason: "reload refused".into(),
                        }
                    },
                });
            }
            match k {
                30 => obs.commands.push(Command::Override {
                    profile: 1,
                    ttl: Duration::from_secs(600),
                    by: "sre".into(),
                    reason: "test".into(),
                }),
                60 => obs
                    .commands
                    .push(Command::ClearOverride { by: "sre".into() }),
                250 => obs.commands.push(Command::Emergency {
                    by: "detector".into(),
                    reason: "spike".into(),
                }),
                _ => {}
            }
            let step = engine.step(now, &obs);
            let owned = serde_json::to_string(&Line::Step(StepLine::new("p-1", now, &obs, &step)));
            let borrowed = serde_json::to_string(&StepLineRef::new("p-1", now, &obs, &step));
            assert_eq!(owned.unwrap(), borrowed.unwrap(), "step {k}");
            checked += 1;
        }
        assert_eq!(checked, 400);
    }
}
