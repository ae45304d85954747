//! `ActuatorActor`: one per collector. It takes the controller's apply requests, coalesces
//! the switches of several pipelines into one write, bounds how often the collector is
//! touched, writes the collector's config atomically, verifies it, and reports every
//! apply's end (with the action's `seq`) back to the controller, which passes it to the
//! engine: a decision is not a fact until this actor confirms it.
//!
//! The `file` backend writes a small control file naming each pipeline's profile, which
//! the collector side watches. Verification reads it back. The `prometheus` and
//! `otelcol` backends render the collector's whole config and go through
//! `crate::actuator`'s steps: validate, write (keeping `<config>.last-good`), reload,
//! verify, or roll back to the last good config and reload again. An unreachable
//! collector is retried with backoff before anything is written.

use super::controller::ControllerMsg;
use super::metrics as m;
use crate::core::{ApplyOutcome, ApplyReport, Timestamp};
use crate::fsutil::write_atomically;
use crate::policy::ValidatedPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The policy in force, shared by the policy watcher (which swaps it) and the rendered
/// actuators (which read it at each apply).
pub type SharedPolicy = Arc<std::sync::RwLock<Arc<ValidatedPolicy>>>;

/// The policy in force now.
fn policy_now(p: &SharedPolicy) -> Arc<ValidatedPolicy> {
    p.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// How the actuator acts on its collector.
#[derive(Clone, Debug)]
pub enum BackendArgs {
    /// Writes a control file.
    File {
        /// The control file.
        path: PathBuf,
    },
    /// Renders the collector's config (prometheus, otelcol).
    Rendered {
        /// The collector and its settings.
        collector: Box<crate::actuator::Collector>,
        /// The policy whose profiles' fragments are rendered: the one in force, which
        /// the policy watcher replaces on a valid reload (shared, so a restarted
        /// actuator renders the reloaded policy too).
        policy: SharedPolicy,
    },
}

/// What the actuator needs.
#[derive(Clone, Debug)]
pub struct ActuatorArgs {
    /// Collector name (metrics label, status).
    pub collector: String,
    /// The backend.
    pub backend: BackendArgs,
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

/// The control file's content (also the state line of a rendered config).
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
    /// The policy was reloaded: render the profiles in force with its fragments, and
    /// apply the result if it differs from the config in force.
    Refresh,
}

/// The actor.
pub struct ActuatorActor;

/// Its state.
pub struct ActuatorState {
    args: ActuatorArgs,
    /// What is in force (the last verified apply, or what was found at start).
    current: ControlFile,
    /// Requests waiting for the next write.
    pending: BTreeMap<String, Wanted>,
    /// A flush is scheduled.
    flush_scheduled: bool,
    /// When the collector was last written.
    last_write: Option<Instant>,
    /// While the collector is unreachable: when the batch was first tried, and how many
    /// retries so far.
    retrying: Option<(Instant, u32)>,
    /// HTTP client of the rendered backends.
    http: reqwest::Client,
}

fn now_ts() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

/// First retry delay while the collector is unreachable; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest delay between retries.
const RETRY_MAX: Duration = Duration::from_secs(5);

fn backoff(retry: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32 << retry.min(10))
        .min(RETRY_MAX)
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
        // Every outcome exported from the start at 0, so the first rollback is an
        // increase that `increase()` and alerts can see, not a series born at 1.
        let c = &args.collector;
        for outcome in ["applied", "failed", "rolled_back"] {
            metrics::counter!(m::APPLIES, "collector" => c.clone(), "outcome" => outcome)
                .increment(0);
        }
        for outcome in ["ok", "failed", "unreachable"] {
            metrics::counter!(m::RELOADS, "collector" => c.clone(), "outcome" => outcome)
                .increment(0);
        }
        metrics::counter!(m::ROLLBACKS, "collector" => c.clone()).increment(0);
        let http = crate::actuator::http_client();
        let current = match &args.backend {
            // What is in force now is what the file says; a missing file means the
            // collector runs without overrides (every pipeline on its first profile).
            BackendArgs::File { path } => match ControlFile::read(path) {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(collector = %args.collector, error = %e, "Control file unreadable; treating every pipeline as on its first profile.");
                    ControlFile::default()
                }
            },
            BackendArgs::Rendered { collector, policy } => {
                let found = learn_in_force(&args.collector, collector, &http).await;
                bootstrap(
                    &args.collector,
                    collector,
                    &policy_now(policy),
                    &http,
                    found,
                )
                .await
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
            retrying: None,
            http,
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
            ActuatorMsg::Refresh => refresh(st).await,
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
                let result = match &st.args.backend {
                    BackendArgs::File { path } => write_control(path, &next)
                        .and_then(|()| verify(path, &next))
                        .map_err(|e| Ended::Failed(e, false)),
                    BackendArgs::Rendered { collector, policy } => {
                        apply_rendered(&c, collector, &policy_now(policy), &st.http, &next).await
                    }
                };
                // The collector is down and nothing was changed: keep the batch (newer
                // requests win) and try again later, within the backend's retry_for.
                if let Err(Ended::Failed(e, true)) = &result
                    && let BackendArgs::Rendered { collector, .. } = &st.args.backend
                {
                    let (first, n) = st.retrying.unwrap_or((started, 0));
                    if first.elapsed() < collector.retry_for() {
                        st.retrying = Some((first, n + 1));
                        for (p, w) in batch {
                            st.pending.entry(p).or_insert(w);
                        }
                        let delay = backoff(n);
                        metrics::counter!(m::RELOADS, "collector" => c.clone(), "outcome" => "unreachable").increment(1);
                        tracing::warn!(collector = %c, error = %e, retry_in = ?delay, attempt = n + 1, "Collector unreachable; the apply is retried with backoff (nothing was written).");
                        if !st.flush_scheduled {
                            st.flush_scheduled = true;
                            myself.send_after(delay, || ActuatorMsg::Flush);
                        }
                        return Ok(());
                    }
                }
                st.retrying = None;
                st.last_write = Some(Instant::now());
                record_apply(&c, started, &result, next.generation);
                let outcome = match &result {
                    Ok(()) => {
                        st.current = next;
                        tracing::info!(collector = %c, generation = st.current.generation, pipelines = batch.len(), profiles = ?st.current.pipelines, took = ?started.elapsed(), "Applied collector config (verified in force).");
                        ApplyOutcome::Applied
                    }
                    Err(Ended::Failed(e, _)) => {
                        tracing::error!(collector = %c, error = %e, in_force = ?st.current.pipelines, "Apply failed; the previous config stays in force.");
                        ApplyOutcome::Failed { reason: e.clone() }
                    }
                    Err(Ended::RolledBack(e)) => {
                        tracing::error!(collector = %c, error = %e, in_force = ?st.current.pipelines, "Apply rolled back to the last good config.");
                        ApplyOutcome::RolledBack { reason: e.clone() }
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

/// After a policy reload: the same profiles, the new fragments. Nothing changes for the
/// engines (every pipeline keeps its profile), so nothing is reported to them; a failure
/// leaves the previous config in force and is counted and logged, and the next apply
/// renders the new fragments anyway.
async fn refresh(st: &mut ActuatorState) {
    let BackendArgs::Rendered { collector, policy } = &st.args.backend else {
        return;
    };
    let policy = policy_now(policy);
    let c = st.args.collector.clone();
    let on_disk = crate::actuator::read_optional(collector.config_path())
        .ok()
        .flatten();
    match collector.render(&policy, &st.current) {
        Ok(text) if on_disk.as_deref() == Some(text.as_str()) => {
            tracing::debug!(collector = %c, "Reloaded policy renders the same config.");
            return;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(collector = %c, error = %e, "The reloaded policy cannot render this collector's config; the previous config stays in force.");
            return;
        }
    }
    let mut next = st.current.clone();
    next.generation += 1;
    next.updated_at = now_ts().to_string();
    let started = Instant::now();
    let result = apply_rendered(&c, collector, &policy, &st.http, &next).await;
    st.last_write = Some(Instant::now());
    record_apply(&c, started, &result, next.generation);
    match result {
        Ok(()) => {
            st.current = next;
            tracing::info!(collector = %c, generation = st.current.generation, profiles = ?st.current.pipelines, "Applied the reloaded policy's fragments (verified in force).");
        }
        Err(Ended::Failed(e, _)) => {
            tracing::error!(collector = %c, error = %e, "Applying the reloaded policy's fragments failed; the previous config stays in force.");
        }
        Err(Ended::RolledBack(e)) => {
            tracing::error!(collector = %c, error = %e, "The reloaded policy's fragments were rolled back to the last good config.");
        }
    }
}

/// Counts an apply that reached its end: its duration and outcome and, when it took, the
/// generation now in force and the time of that success.
fn record_apply(c: &str, started: Instant, result: &Result<(), Ended>, generation: u64) {
    metrics::histogram!(m::APPLY_DURATION, "collector" => c.to_string())
        .record(started.elapsed().as_secs_f64());
    let outcome = match result {
        Ok(()) => {
            metrics::gauge!(m::CONFIG_GENERATION, "collector" => c.to_string())
                .set(generation as f64);
            metrics::gauge!(m::LAST_APPLY_SUCCESS, "collector" => c.to_string())
                .set(now_ts().as_secs_f64());
            "applied"
        }
        Err(Ended::Failed(..)) => "failed",
        Err(Ended::RolledBack(_)) => "rolled_back",
    };
    metrics::counter!(m::APPLIES, "collector" => c.to_string(), "outcome" => outcome).increment(1);
}

/// How an apply that did not succeed ended.
enum Ended {
    /// Nothing new reached the collector; `true` when only because it was unreachable
    /// (worth retrying as is).
    Failed(String, bool),
    /// The collector took the new config, verification failed, and the last good one
    /// was restored.
    RolledBack(String),
}

/// At start: what the rendered config in force says. The last good copy is the truth;
/// a config file that differs from it is an apply that never got verified (the daemon
/// died in between), so the last good copy is put back. A first start keeps whatever
/// file is there as the last good copy, so a rollback always has something to go to.
async fn learn_in_force(
    name: &str,
    c: &crate::actuator::Collector,
    http: &reqwest::Client,
) -> ControlFile {
    use crate::actuator as a;
    if c.checker().is_none() {
        let which = match c {
            a::Collector::Prometheus(_) => "promtool",
            a::Collector::Otelcol(_) => "otelcol (validate --config)",
        };
        tracing::warn!(collector = %name, backend = c.kind(), "No {which} binary available: rendered configs get structural checks only, not the collector's own validation. Set the backend's promtool/validator path to enable it.");
    }
    let path = c.config_path();
    remove_leftovers(name, path);
    let good_path = a::last_good_path(path);
    let current = a::read_optional(path);
    let good = a::read_optional(&good_path);
    let (current, good) = match (current, good) {
        (Ok(c), Ok(g)) => (c, g),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(collector = %name, error = %e, "Cannot read the collector config; treating every pipeline as on its first profile.");
            return ControlFile::default();
        }
    };
    let in_force = match (current, good) {
        (None, None) => {
            tracing::warn!(collector = %name, path = %path.display(), "No collector config yet; every pipeline is on its first profile until the first apply.");
            None
        }
        (Some(cur), None) => {
            if let Err(e) = a::write_config(&good_path, &cur) {
                tracing::error!(collector = %name, error = %e, "Cannot keep the last good config.");
            }
            Some(cur)
        }
        (cur, Some(good)) => {
            if cur.as_deref() != Some(good.as_str()) {
                tracing::warn!(collector = %name, path = %path.display(), "The collector config differs from the last good one (an apply was interrupted before it was verified); restoring the last good config.");
                match a::write_config(path, &good) {
                    Ok(()) => {
                        let r = reload(c, http).await;
                        metrics::counter!(m::RELOADS, "collector" => name.to_string(), "outcome" => if r.is_ok() { "ok" } else { "failed" }).increment(1);
                        if let Err(e) = r {
                            tracing::warn!(collector = %name, error = %e, "Reload after restoring the last good config failed; the collector reads it when it starts.");
                        }
                    }
                    Err(e) => {
                        tracing::error!(collector = %name, error = %e, "Cannot restore the last good config.")
                    }
                }
            }
            Some(good)
        }
    };
    let state = in_force
        .as_deref()
        .and_then(a::state_of)
        .unwrap_or_default();
    tracing::info!(collector = %name, generation = state.generation, profiles = ?state.pipelines, "In force at start.");
    state
}

/// A collector still on its hand-written config runs none of the first profile's rules,
/// yet the engines take every pipeline to be on its first profile until told otherwise.
/// Make that true for the pipelines the collector's mapping names, before the daemon is
/// ready: render and apply the first profile for them once. Pipelines found only later
/// (discovered, mapped by their job's name) get their rules at their first apply.
async fn bootstrap(
    name: &str,
    c: &crate::actuator::Collector,
    policy: &ValidatedPolicy,
    http: &reqwest::Client,
    found: ControlFile,
) -> ControlFile {
    let mapped: Vec<&String> = match c {
        crate::actuator::Collector::Prometheus(p) => p.jobs.jobs.keys().collect(),
        crate::actuator::Collector::Otelcol(o) => o.pipelines.pipelines.keys().collect(),
    };
    let Some(first) = policy.profiles().first() else {
        return found;
    };
    let mut next = found.clone();
    for p in mapped {
        next.pipelines
            .entry(p.clone())
            .or_insert_with(|| first.name.clone());
    }
    if next.pipelines == found.pipelines {
        return found;
    }
    next.generation += 1;
    next.updated_at = now_ts().to_string();
    let started = Instant::now();
    let result = apply_rendered(name, c, policy, http, &next).await;
    record_apply(name, started, &result, next.generation);
    match result {
        Ok(()) => {
            tracing::info!(collector = %name, generation = next.generation, profiles = ?next.pipelines, "Rendered the first profile of the mapped pipelines at start (the collector ran its hand-written config).");
            next
        }
        Err(Ended::Failed(e, _) | Ended::RolledBack(e)) => {
            tracing::error!(collector = %name, error = %e, "Cannot render the first profile at start; the collector keeps its current config until the first apply.");
            found
        }
    }
}

/// Removes the temporary files a killed daemon may have left beside the config (a write
/// or a validation interrupted before its rename or removal). The config itself is
/// never one of them: it is only ever replaced by a rename.
fn remove_leftovers(name: &str, path: &Path) {
    let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", file.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten().take(10_000) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") && std::fs::remove_file(e.path()).is_ok() {
            tracing::info!(collector = %name, file = %e.path().display(), "Removed a temporary file left by an interrupted write.");
        }
    }
}

/// Reloads the collector, without verification.
async fn reload(
    c: &crate::actuator::Collector,
    http: &reqwest::Client,
) -> Result<(), crate::actuator::ApplyError> {
    match c {
        crate::actuator::Collector::Prometheus(p) => {
            crate::actuator::prometheus::reload(http, p).await
        }
        crate::actuator::Collector::Otelcol(o) => crate::actuator::otelcol::reload(o).await,
    }
}

/// Render → validate → write → reload → verify → confirm, or roll back.
async fn apply_rendered(
    name: &str,
    c: &crate::actuator::Collector,
    policy: &ValidatedPolicy,
    http: &reqwest::Client,
    next: &ControlFile,
) -> Result<(), Ended> {
    use crate::actuator::{self as a, Collector};
    let label = || name.to_string();
    let text = c
        .render(policy, next)
        .map_err(|e| Ended::Failed(e.to_string(), false))?;
    let validated = c
        .validate(&text)
        .await
        .map_err(|e| Ended::Failed(e.to_string(), false))?;
    // Is the collector there at all? Before anything is written, so an outage leaves
    // the file as it is. Prometheus also gives the reload timestamp to compare with.
    let before = match c {
        Collector::Prometheus(p) => a::prometheus::reload_status(http, p)
            .await
            .map(|s| s.success_at),
        Collector::Otelcol(o) => a::otelcol::probe(http, o).await.map(|()| 0.0),
    }
    .map_err(|e| Ended::Failed(e.to_string(), e.is_unreachable()))?;
    let path = c.config_path();
    let good_path = a::last_good_path(path);
    let previous = a::read_optional(path).map_err(|e| Ended::Failed(e, false))?;
    a::write_config(path, &text).map_err(|e| Ended::Failed(e.to_string(), false))?;
    let reloaded = reload(c, http).await;
    metrics::counter!(m::RELOADS, "collector" => label(), "outcome" => if reloaded.is_ok() { "ok" } else { "failed" }).increment(1);
    let verified = match reloaded {
        Ok(()) => match c {
            Collector::Prometheus(p) => a::prometheus::verify(http, p, before, &text).await,
            Collector::Otelcol(o) => a::otelcol::verify(http, o).await,
        },
        Err(e) => Err(e),
    };
    match verified {
        Ok(()) => {
            if let Err(e) = a::write_config(&good_path, &text) {
                // The collector runs the new config; only a later rollback would go to
                // an older one than it could.
                tracing::error!(collector = %name, error = %e, "Cannot keep the new config as the last good one.");
            }
            tracing::debug!(collector = %name, validated, "Verified.");
            Ok(())
        }
        Err(e) => {
            metrics::counter!(m::ROLLBACKS, "collector" => label()).increment(1);
            let good = a::read_optional(&good_path).ok().flatten().or(previous);
            let restored = match &good {
                Some(g) => a::write_config(path, g).map_err(|e| e.to_string()),
                None => std::fs::remove_file(path).map_err(|e| crate::fsutil::io_text(&e)),
            };
            let again = match restored {
                Ok(()) => {
                    let r = reload(c, http).await;
                    metrics::counter!(m::RELOADS, "collector" => label(), "outcome" => if r.is_ok() { "ok" } else { "failed" }).increment(1);
                    r.map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("cannot restore the last good config: {e}")),
            };
            let reason = match again {
                Ok(()) => format!("{e}; rolled back to the last good config"),
                Err(r) => format!("{e}; rollback incomplete: {r}"),
            };
            Err(Ended::RolledBack(reason))
        }
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
