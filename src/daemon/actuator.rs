//! `ActuatorActor`: one per collector. It takes the controller's apply requests, coalesces
//! the switches of several pipelines into one write, bounds how often the collector is
//! touched, writes the collector's config atomically, verifies it, and reports every
//! apply's end (with the action's `seq`) back to the controller, which passes it to the
//! engine: a decision is not a fact until this actor confirms it.
//!
//! The `file` backend writes a small control file naming each pipeline's profile, which
//! the collector side watches. Verification reads it back.

use super::controller::ControllerMsg;
use super::metrics as m;
use crate::core::{ApplyOutcome, ApplyReport, Timestamp};
use crate::fsutil::write_atomically;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the actuator needs.
#[derive(Clone, Debug)]
pub struct ActuatorArgs {
    /// Collector name (metrics label, status).
    pub collector: String,
    /// The control file.
    pub path: PathBuf,
    /// Requests within this window share one write.
    pub coalesce: Duration,
    /// At most one write per this interval.
    pub min_reload_interval: Duration,
}

/// Sends to the controller, wherever it is now.
fn to_controller(msg: ControllerMsg) {
    if let Some(c) = super::supervisor::controller() {
        let _ = c.send_message(msg);
    }
}

/// The control file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlFile {
    /// Increases with every write.
    pub generation: u64,
    /// When it was written (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
    /// Profile per pipeline.
    pub pipelines: BTreeMap<String, String>,
}

impl ControlFile {
    /// Reads it; `Ok(None)` when there is no file yet.
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml_ng::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: not a control file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "{}: {}",
                path.display(),
                crate::fsutil::io_text(&e)
            )),
        }
    }
}

/// One pipeline's wanted profile.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// Profile name.
    pub profile: String,
    /// Its index in the pipeline's ladder (for the report).
    pub index: usize,
    /// The action's `seq`.
    pub seq: u64,
}

/// Messages.
#[derive(Debug)]
pub enum ActuatorMsg {
    /// Put `wanted` in force for `pipeline`.
    Apply {
        /// Pipeline.
        pipeline: String,
        /// What.
        wanted: Wanted,
    },
    /// The coalescing window is over: write.
    Flush,
}

/// The actor.
pub struct ActuatorActor;

/// Its state.
pub struct ActuatorState {
    args: ActuatorArgs,
    /// What the file holds (the last verified write, or what was found at start).
    current: ControlFile,
    /// Requests waiting for the next write.
    pending: BTreeMap<String, Wanted>,
    /// A flush is scheduled.
    flush_scheduled: bool,
    /// When the file was last written.
    last_write: Option<Instant>,
}

fn now_ts() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

impl Actor for ActuatorActor {
    type Msg = ActuatorMsg;
    type State = ActuatorState;
    type Arguments = ActuatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ActuatorArgs,
    ) -> Result<ActuatorState, ActorProcessingErr> {
        // What is in force now is what the file says; a missing file means the collector
        // runs without overrides (every pipeline on its first profile), reported as such.
        let current = match ControlFile::read(&args.path) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(collector = %args.collector, error = %e, "Control file unreadable; treating every pipeline as on its first profile.");
                ControlFile::default()
            }
        };
        metrics::gauge!(m::CONFIG_GENERATION, "collector" => args.collector.clone())
            .set(current.generation as f64);
        to_controller(ControllerMsg::InForce {
            collector: args.collector.clone(),
            profiles: current.pipelines.clone(),
        });
        Ok(ActuatorState {
            args,
            current,
            pending: BTreeMap::new(),
            flush_scheduled: false,
            last_write: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: ActuatorMsg,
        st: &mut ActuatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ActuatorMsg::Apply { pipeline, wanted } => {
                // The fault tests make an actuator fail here (a no-op in normal builds).
                fail::fail_point!("actuator-apply");
                st.pending.insert(pipeline, wanted);
                if !st.flush_scheduled {
                    st.flush_scheduled = true;
                    let rate = st.last_write.map_or(Duration::ZERO, |t| {
                        st.args.min_reload_interval.saturating_sub(t.elapsed())
                    });
                    myself.send_after(st.args.coalesce.max(rate), || ActuatorMsg::Flush);
                }
            }
            ActuatorMsg::Flush => {
                st.flush_scheduled = false;
                if st.pending.is_empty() {
                    return Ok(());
                }
                let batch = std::mem::take(&mut st.pending);
                let started = Instant::now();
                let mut next = st.current.clone();
                next.generation += 1;
                next.updated_at = now_ts().to_string();
                for (p, w) in &batch {
                    next.pipelines.insert(p.clone(), w.profile.clone());
                }
                let c = st.args.collector.clone();
                let result =
                    write_control(&st.args.path, &next).and_then(|()| verify(&st.args.path, &next));
                st.last_write = Some(Instant::now());
                metrics::histogram!(m::APPLY_DURATION, "collector" => c.clone())
                    .record(started.elapsed().as_secs_f64());
                let outcome = match &result {
                    Ok(()) => {
                        st.current = next;
                        metrics::gauge!(m::CONFIG_GENERATION, "collector" => c.clone())
                            .set(st.current.generation as f64);
                        metrics::gauge!(m::LAST_APPLY_SUCCESS, "collector" => c.clone())
                            .set(now_ts().as_secs_f64());
                        metrics::counter!(m::APPLIES, "collector" => c.clone(), "outcome" => "applied").increment(1);
                        tracing::info!(collector = %c, generation = st.current.generation, pipelines = batch.len(), "Applied collector config.");
                        ApplyOutcome::Applied
                    }
                    Err(e) => {
                        metrics::counter!(m::APPLIES, "collector" => c.clone(), "outcome" => "failed").increment(1);
                        tracing::error!(collector = %c, error = %e, "Apply failed; the previous config stays in force.");
                        ApplyOutcome::Failed { reason: e.clone() }
                    }
                };
                let reports = batch
                    .into_iter()
                    .map(|(p, w)| {
                        (
                            p,
                            ApplyReport {
                                profile: w.index,
                                seq: w.seq,
                                outcome: outcome.clone(),
                            },
                        )
                    })
                    .collect();
                to_controller(ControllerMsg::ApplyDone {
                    collector: c,
                    reports,
                });
            }
        }
        Ok(())
    }
}

/// Writes the control file atomically (the old or the new version, never torn).
fn write_control(path: &Path, c: &ControlFile) -> Result<(), String> {
    let text = serde_yaml_ng::to_string(c).map_err(|e| e.to_string())?;
    write_atomically(path, |w| {
        writeln!(
            w,
            "# Written by phoenix (file backend); the next apply overwrites it."
        )?;
        w.write_all(text.as_bytes())
    })
    .map_err(|e| e.to_string())
}

/// Reads the file back: the new generation must be what is there.
fn verify(path: &Path, c: &ControlFile) -> Result<(), String> {
    match ControlFile::read(path)? {
        Some(got) if got == *c => Ok(()),
        Some(got) => Err(format!(
            "{}: verification read generation {} back, expected {}",
            path.display(),
            got.generation,
            c.generation
        )),
        None => Err(format!(
            "{}: vanished right after the write",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_round_trips_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        assert_eq!(ControlFile::read(&path).unwrap(), None);
        let mut c = ControlFile {
            generation: 3,
            ..Default::default()
        };
        c.pipelines.insert("checkout".into(), "balanced".into());
        write_control(&path, &c).unwrap();
        verify(&path, &c).unwrap();
        assert_eq!(ControlFile::read(&path).unwrap(), Some(c.clone()));
        // A directory where the file should go: the write fails, nothing is torn.
        let bad = dir.path().join("sub");
        std::fs::create_dir(&bad).unwrap();
        assert!(write_control(&bad, &c).is_err());
        std::fs::write(&path, "not: [yaml").unwrap();
        assert!(
            ControlFile::read(&path)
                .unwrap_err()
                .contains("not a control file")
        );
    }
}
