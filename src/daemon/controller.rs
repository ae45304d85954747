//! `ControllerActor`: owns one `Engine` per pipeline. Each tick it turns the sampler's
//! query results into observations (with what each actuator reports in force), steps
//! every engine, sends the actions to the collectors' actuators and the events to the
//! sink, and persists the engines' state. A thin adapter: every decision is the core's.
//!
//! Pipelines appear and disappear with the query results: a pipeline missing from them is
//! observed as Empty (never zero) and keeps its engine for `keep_vanished`. Operator
//! commands step the pipeline at once with its last samples (no new sample: only the
//! command acts). The persisted state names profiles by name and is restored at start,
//! so a restart causes no switch that would not have happened without it.

use super::actuator::{ActuatorMsg, Wanted};
use super::metrics as m;
use super::observe::{self, SignalResult};
use super::sink::{PipelineSink, Sink};
use crate::core::{
    ApplyReport, Command, Engine, EngineState, Event, Observation, Sample, Timestamp,
};
use crate::fsutil::write_atomically;
use crate::policy::ValidatedPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Version of the state file's envelope.
const STATE_FILE_VERSION: u32 = 1;

/// A collector the controller sends applies to.
#[derive(Clone, Debug)]
pub struct CollectorRef {
    /// Name.
    pub name: String,
    /// Pipelines it carries (`*` = every pipeline no other collector names).
    pub pipelines: Vec<String>,
}

/// What the controller needs.
#[derive(Clone)]
pub struct ControllerArgs {
    /// The policy in force.
    pub policy: ValidatedPolicy,
    /// Sampling interval (the engines' tick).
    pub interval: Duration,
    /// Take pipelines from the query results.
    pub discover: bool,
    /// Pipelines always tracked.
    pub include: Vec<String>,
    /// Budget per pipeline.
    pub budgets: BTreeMap<String, f64>,
    /// Budget of the others.
    pub default_budget: f64,
    /// How long a vanished pipeline keeps its engine.
    pub keep_vanished: Duration,
    /// Most pipelines tracked.
    pub max_pipelines: usize,
    /// The collectors.
    pub collectors: Vec<CollectorRef>,
    /// Where the engines' state is persisted.
    pub state_file: PathBuf,
    /// Longest time between two state writes when no decision changed.
    pub snapshot_interval: Duration,
    /// The sink (shared with a restarted controller).
    pub sink: std::sync::Arc<tokio::sync::Mutex<Sink>>,
    /// Virtual seconds per wall second of the ticks' clock (1 for the wall clock; a
    /// replay runs faster), so commands between ticks get a time on the same clock.
    pub speed: f64,
}

/// An operator command, by profile name.
#[derive(Clone, Debug)]
pub enum CommandRequest {
    /// Pin `profile` for `ttl`.
    Override {
        /// Profile name.
        profile: String,
        /// How long.
        ttl: Duration,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Drop the pin.
    Clear {
        /// Who.
        by: String,
    },
}

/// Why a command was refused before reaching the engine.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// No such pipeline.
    #[error("unknown pipeline `{0}`")]
    UnknownPipeline(String),
    /// No such profile in the pipeline's ladder.
    #[error("unknown profile `{profile}`; the ladder is {ladder}")]
    UnknownProfile {
        /// The name given.
        profile: String,
        /// The ladder.
        ladder: String,
    },
    /// The daemon is in safe hold.
    #[error("the daemon is in safe hold; no command is carried out")]
    SafeHold,
}

/// Messages.
pub enum ControllerMsg {
    /// A sampling tick's results.
    Tick {
        /// When the tick started.
        now: Timestamp,
        /// The input query's result.
        input: SignalResult,
        /// The output query's result.
        output: SignalResult,
        /// When its queries started (for the tick duration).
        started: Instant,
    },
    /// An actuator's view of what is in force (at its start).
    InForce {
        /// Collector.
        collector: String,
        /// Profile per pipeline.
        profiles: BTreeMap<String, String>,
    },
    /// Applies that ended.
    ApplyDone {
        /// Collector.
        collector: String,
        /// Per pipeline.
        reports: Vec<(String, ApplyReport)>,
    },
    /// An operator command.
    Command {
        /// Pipeline.
        pipeline: String,
        /// What.
        command: CommandRequest,
        /// The audit sentence, or why not.
        reply: RpcReplyPort<Result<String, CommandError>>,
    },
    /// A detector's emergency request.
    Emergency {
        /// Pipeline.
        pipeline: String,
        /// Why.
        reason: String,
    },
    /// A new policy (already validated): engines are restored into it by profile name.
    Policy(Box<ValidatedPolicy>),
    /// Stop deciding: every pipeline keeps its profile.
    SafeHold(String),
    /// Persist the state and complete the journal (at shutdown).
    Flush(RpcReplyPort<()>),
}

/// One pipeline's engine and what the controller knows around it.
struct Slot {
    engine: Engine,
    /// Its metrics and logging state in the sink.
    sink: PipelineSink,
    collector: usize,
    /// Apply reports to deliver with the next step.
    reports: Vec<ApplyReport>,
    /// What the actuator last said is in force (index).
    in_force: Option<usize>,
    /// Apply `seq`s sent and not yet reported.
    in_flight: BTreeSet<u64>,
    /// The last observation, for command steps between samples.
    last_obs: Observation,
    /// Since when the pipeline has been missing from the results.
    vanished_since: Option<Timestamp>,
}

/// The persisted engines.
#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    policy_sha256: String,
    pipelines: BTreeMap<String, EngineState>,
}

/// The actor.
pub struct ControllerActor;

/// Its state.
pub struct ControllerState {
    args: ControllerArgs,
    /// Boxed: a slot is kilobytes (the engine inline), and a B-tree filled in name order
    /// leaves its nodes about half empty, which with the slots inline cost 1.7 KB per
    /// pipeline of unused node space.
    slots: BTreeMap<String, Box<Slot>>,
    /// States loaded at start, restored when their pipeline shows up.
    saved: BTreeMap<String, EngineState>,
    /// Actuators' in-force reports before the pipeline had an engine.
    in_force_seen: BTreeMap<String, String>,
    safe_hold: bool,
    /// The last tick's `now`, and when it arrived.
    last_tick: Option<(Timestamp, Instant)>,
    /// A decision, an apply outcome or a command since the last state write.
    decision_changed: bool,
    /// When the state was last handed to the writer.
    last_persist: Option<Instant>,
}

fn now_ts() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

impl ControllerState {
    /// Now on the ticks' clock: the wall clock, or the replay's virtual one.
    fn clock(&self) -> Timestamp {
        match self.last_tick {
            Some((t, at)) if self.args.speed != 1.0 => Timestamp(
                t.as_millis() + (at.elapsed().as_secs_f64() * self.args.speed * 1000.0) as i64,
            ),
            _ => now_ts(),
        }
    }

    fn collector_of(&self, pipeline: &str) -> usize {
        let c = &self.args.collectors;
        c.iter()
            .position(|c| c.pipelines.iter().any(|p| p == pipeline))
            .or_else(|| c.iter().position(|c| c.pipelines.iter().any(|p| p == "*")))
            .unwrap_or(0)
    }

    fn budget_of(&self, pipeline: &str) -> f64 {
        self.args
            .budgets
            .get(pipeline)
            .copied()
            .unwrap_or(self.args.default_budget)
    }

    /// Creates (or restores) the engine of a pipeline seen for the first time.
    async fn add(&mut self, pipeline: &str) {
        let policy = &self.args.policy;
        let cfg = policy.engine_config(pipeline, self.budget_of(pipeline), self.args.interval);
        let (engine, notes) = match self.saved.remove(pipeline) {
            Some(s) => Engine::restore(cfg, s),
            None => (Engine::new(cfg), Vec::new()),
        };
        let collector = self.collector_of(pipeline);
        let in_force = self
            .in_force_seen
            .get(pipeline)
            .and_then(|n| engine.config().profile_index(n))
            // No line in the control file: the collector runs its base config, the
            // least reducing profile.
            .or(Some(0).filter(|_| self.args.collectors.get(collector).is_some()));
        let mut sink = self.args.sink.lock().await;
        let entry = sink.pipeline_started(&engine, &self.args.collectors[collector].name, &notes);
        drop(sink);
        tracing::info!(pipeline, collector = %self.args.collectors[collector].name, profile = %engine.config().profiles[engine.current()].name, "Tracking pipeline.");
        self.slots.insert(
            pipeline.to_string(),
            Box::new(Slot {
                engine,
                sink: entry,
                collector,
                reports: Vec::new(),
                in_force,
                in_flight: BTreeSet::new(),
                last_obs: Observation {
                    input: Sample::Empty,
                    output: Sample::Empty,
                    in_force: None,
                    applies: Vec::new(),
                    commands: Vec::new(),
                },
                vanished_since: None,
            }),
        );
    }

    /// Steps one pipeline and forwards what came out.
    async fn step(&mut self, pipeline: &str, now: Timestamp, obs: Observation) {
        let Some(slot) = self.slots.get_mut(pipeline) else {
            return;
        };
        let mut sink = self.args.sink.lock().await;
        if step_slot(&self.args, &mut sink, pipeline, slot, now, obs) {
            self.decision_changed = true;
        }
    }

    /// Writes the state if a decision changed since the last write or the snapshot
    /// interval has passed.
    fn persist_if_due(&mut self) {
        let due = self
            .last_persist
            .is_none_or(|t| t.elapsed() >= self.args.snapshot_interval);
        if self.decision_changed || due {
            self.persist();
        }
    }

    /// Writes the state now, streaming each engine's state into the file: a copy of
    /// every state first would double the daemon's memory at 10,000 pipelines.
    fn persist(&mut self) {
        self.decision_changed = false;
        self.last_persist = Some(Instant::now());
        let started = Instant::now();
        let res = write_atomically(&self.args.state_file, |w| {
            serde_json::to_writer(&mut *w, &StateFileView(self)).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        });
        metrics::histogram!(m::STATE_WRITE_DURATION).record(started.elapsed().as_secs_f64());
        match res {
            Ok(()) => metrics::counter!(m::STATE_WRITES, "outcome" => "ok").increment(1),
            Err(e) => {
                metrics::counter!(m::STATE_WRITES, "outcome" => "failed").increment(1);
                tracing::error!(error = %e, "Cannot persist the engines' state; a restart would start them fresh.");
            }
        }
    }
}

/// The state file as written: a [`StateFile`] whose engine states are taken one at a
/// time while serialising.
struct StateFileView<'a>(&'a ControllerState);

impl Serialize for StateFileView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        struct Pipelines<'a>(&'a ControllerState);
        impl Serialize for Pipelines<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let st = self.0;
                s.collect_map(
                    st.slots
                        .iter()
                        .map(|(k, slot)| (k, std::borrow::Cow::Owned(slot.engine.state())))
                        .chain(
                            st.saved
                                .iter()
                                .filter(|(k, _)| !st.slots.contains_key(*k))
                                .map(|(k, v)| (k, std::borrow::Cow::Borrowed(v))),
                        ),
                )
            }
        }
        let mut x = s.serialize_struct("StateFile", 3)?;
        x.serialize_field("version", &STATE_FILE_VERSION)?;
        x.serialize_field("policy_sha256", &self.0.args.policy.sha256())?;
        x.serialize_field("pipelines", &Pipelines(self.0))?;
        x.end()
    }
}

fn send_apply(
    collector: &super::controller::CollectorRef,
    pipeline: &str,
    engine: &Engine,
    profile: usize,
    seq: u64,
) {
    if let Some(a) = super::supervisor::actuator(&collector.name) {
        let _ = a.send_message(ActuatorMsg::Apply {
            pipeline: pipeline.to_string(),
            wanted: Wanted {
                profile: engine.config().profiles[profile].name.clone(),
                index: profile,
                seq,
            },
        });
    }
}

/// Steps one pipeline's engine, sends its actions to the actuator and its events to the
/// sink; true if a decision, an apply outcome or a command came out (the state is due).
fn step_slot(
    args: &ControllerArgs,
    sink: &mut Sink,
    pipeline: &str,
    slot: &mut Slot,
    now: Timestamp,
    mut obs: Observation,
) -> bool {
    obs.in_force = slot.in_force;
    obs.applies = std::mem::take(&mut slot.reports);
    let step = slot.engine.step(now, &obs);
    let changed = !step.actions.is_empty()
        || step
            .events
            .iter()
            .any(|e| matches!(e, Event::Switched(_) | Event::Applied(_) | Event::Audit(_)));
    let collector = &args.collectors[slot.collector];
    for a in &step.actions {
        let crate::core::Action::ApplyProfile { profile, seq } = a;
        send_apply(collector, pipeline, &slot.engine, *profile, *seq);
        slot.in_flight.insert(*seq);
    }
    // Level-triggered like a reconcile: decided but not in force, and nothing in flight
    // (after a restart, or an actuator that lost a request): ask again.
    let decided = slot.engine.current();
    if slot.in_force.is_some_and(|f| f != decided) && slot.in_flight.is_empty() {
        let seq = slot.engine.apply_seq();
        send_apply(collector, pipeline, &slot.engine, decided, seq);
        slot.in_flight.insert(seq);
    }
    // The journal gets the observation as stepped; the next command step reuses its
    // samples only.
    sink.step(&mut slot.sink, now, &obs, &step, &slot.engine);
    // Only the samples are kept: the vectors' capacity, held by every slot, was 2 MB at
    // 10,000 pipelines after one switch each.
    slot.last_obs = Observation {
        commands: Vec::new(),
        applies: Vec::new(),
        ..obs
    };
    changed
}

/// Reads the persisted engines; a missing file is a first start, a broken one is
/// reported and set aside (renamed), never silently overwritten.
fn load_state(path: &PathBuf) -> BTreeMap<String, EngineState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "Cannot read the saved state; starting fresh.");
            return BTreeMap::new();
        }
    };
    match serde_json::from_str::<StateFile>(&text) {
        Ok(f) if f.version == STATE_FILE_VERSION => {
            tracing::info!(path = %path.display(), pipelines = f.pipelines.len(), "Restored saved state.");
            f.pipelines
        }
        Ok(f) => {
            tracing::error!(path = %path.display(), version = f.version, "Saved state of another version; starting fresh.");
            BTreeMap::new()
        }
        Err(e) => {
            let aside = path.with_extension("broken");
            let _ = std::fs::rename(path, &aside);
            tracing::error!(path = %path.display(), error = %e, aside = %aside.display(), "Saved state unreadable; set aside, starting fresh.");
            BTreeMap::new()
        }
    }
}

impl Actor for ControllerActor {
    type Msg = ControllerMsg;
    type State = ControllerState;
    type Arguments = ControllerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ControllerArgs,
    ) -> Result<ControllerState, ActorProcessingErr> {
        let saved = load_state(&args.state_file);
        let mut st = ControllerState {
            args,
            slots: BTreeMap::new(),
            saved,
            in_force_seen: BTreeMap::new(),
            safe_hold: false,
            last_tick: None,
            decision_changed: false,
            last_persist: None,
        };
        for p in st.args.include.clone() {
            st.add(&p).await;
        }
        Ok(st)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ControllerMsg,
        st: &mut ControllerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ControllerMsg::Tick {
                now,
                input,
                output,
                started,
            } => {
                if st.safe_hold {
                    return Ok(());
                }
                // The fault tests make the controller fail here (a no-op in normal builds).
                fail::fail_point!("controller-tick");
                st.last_tick = Some((now, Instant::now()));
                let max_age = st.args.policy.signals().max_sample_age;
                let mut new: BTreeSet<String> = st
                    .args
                    .include
                    .iter()
                    .filter(|p| !st.slots.contains_key(*p))
                    .cloned()
                    .collect();
                if st.args.discover {
                    for p in observe::pipelines_in([&input, &output]) {
                        if st.slots.contains_key(p) || new.contains(p) {
                            continue;
                        }
                        if st.slots.len() + new.len() >= st.args.max_pipelines {
                            tracing::warn!(pipeline = %p, max = st.args.max_pipelines, "Too many pipelines; not tracking this one (raise pipelines.max_pipelines).");
                            continue;
                        }
                        new.insert(p.to_string());
                    }
                }
                for p in &new {
                    st.add(p).await;
                }
                // Classified in the slots' (name) order, then stepped walking the slots
                // once: looking each of 10,000 names up again per step was a tenth of a
                // tick.
                let samples = observe::classify_each(
                    &input,
                    &output,
                    st.slots.keys().map(String::as_str),
                    now,
                    max_age,
                );
                for (signal, res) in [("input", &input), ("output", &output)] {
                    let state = match res {
                        SignalResult::Error(_) => "error",
                        SignalResult::Ok(_) => observe::source_state(
                            samples
                                .iter()
                                .map(|(i, o)| if signal == "input" { i } else { o }),
                        ),
                    };
                    for s in ["ok", "empty", "stale", "error"] {
                        metrics::gauge!(m::SOURCE_STATE, "query" => signal, "state" => s)
                            .set(if s == state { 1.0 } else { 0.0 });
                    }
                    if let Ok(mut b) = st.args.sink.lock().await.board.write() {
                        b.sources.insert(signal.to_string(), state.to_string());
                    }
                }
                let keep = st.args.keep_vanished;
                let mut dropped = Vec::new();
                let mut changed = false;
                {
                    let mut sink = st.args.sink.lock().await;
                    for ((p, slot), (i, o)) in st.slots.iter_mut().zip(samples) {
                        let gone = matches!(i, Sample::Empty) && matches!(o, Sample::Empty);
                        match (gone, slot.vanished_since) {
                            (true, None) => {
                                slot.vanished_since = Some(now);
                                if let Some(row) = super::series::table().get(p) {
                                    row.count(super::series::CounterKey::Vanished);
                                }
                                tracing::warn!(pipeline = %p, "Pipeline missing from the query results; holding its profile.");
                            }
                            (true, Some(t))
                                if now.saturating_since(t) > keep
                                    && !st.args.include.contains(p) =>
                            {
                                tracing::warn!(pipeline = %p, "Pipeline gone for longer than pipelines.keep_vanished; dropping its engine.");
                                dropped.push(p.clone());
                                continue;
                            }
                            (false, Some(_)) => slot.vanished_since = None,
                            _ => {}
                        }
                        let obs = Observation {
                            input: i,
                            output: o,
                            in_force: None,
                            applies: Vec::new(),
                            commands: Vec::new(),
                        };
                        changed |= step_slot(&st.args, &mut sink, p, slot, now, obs);
                    }
                }
                st.decision_changed |= changed;
                for p in dropped {
                    st.slots.remove(&p);
                }
                metrics::gauge!(m::PIPELINES).set(st.slots.len() as f64);
                metrics::histogram!(m::TICK_DURATION).record(started.elapsed().as_secs_f64());
                metrics::counter!(m::TICKS).increment(1);
                st.persist_if_due();
                let mut sink = st.args.sink.lock().await;
                if let Some(j) = &mut sink.journal {
                    match j.flush() {
                        Ok(true) => {
                            let engines: Vec<&Engine> =
                                st.slots.values().map(|s| &s.engine).collect();
                            if let Err(e) =
                                j.start_segment(now, &st.args.policy, engines.into_iter())
                            {
                                tracing::error!(error = %e, "Cannot start a new journal segment.");
                            }
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "Journal write failed."),
                    }
                }
                drop(sink);
                release_freed_memory();
            }
            ControllerMsg::InForce {
                collector,
                profiles,
            } => {
                if let Ok(mut b) = st.args.sink.lock().await.board.write() {
                    b.actuators_ready.insert(collector.clone(), true);
                }
                let ci = st.args.collectors.iter().position(|c| c.name == collector);
                for (p, slot) in st.slots.iter_mut() {
                    if Some(slot.collector) == ci {
                        slot.in_force = profiles
                            .get(p)
                            .and_then(|n| slot.engine.config().profile_index(n))
                            .or(Some(0));
                    }
                }
                st.in_force_seen.extend(profiles);
            }
            ControllerMsg::ApplyDone { reports, .. } => {
                for (p, r) in reports {
                    if let Some(slot) = st.slots.get_mut(&p) {
                        // Seqs grow per pipeline: a coalesced write reports the newest
                        // apply, which supersedes the older ones it replaced.
                        slot.in_flight.retain(|&s| s > r.seq);
                        if matches!(r.outcome, crate::core::ApplyOutcome::Applied) {
                            slot.in_force = Some(r.profile);
                        }
                        slot.reports.push(r);
                    }
                }
            }
            ControllerMsg::Command {
                pipeline,
                command,
                reply,
            } => {
                let res = if st.safe_hold {
                    Err(CommandError::SafeHold)
                } else {
                    match st.slots.get(&pipeline) {
                        None => Err(CommandError::UnknownPipeline(pipeline.clone())),
                        Some(slot) => {
                            let cfg = slot.engine.config();
                            match &command {
                                CommandRequest::Override {
                                    profile,
                                    ttl,
                                    by,
                                    reason,
                                } => match cfg.profile_index(profile) {
                                    None => Err(CommandError::UnknownProfile {
                                        profile: profile.clone(),
                                        ladder: cfg
                                            .profiles
                                            .iter()
                                            .map(|p| p.name.as_str())
                                            .collect::<Vec<_>>()
                                            .join(" → "),
                                    }),
                                    Some(i) => Ok(Command::Override {
                                        profile: i,
                                        ttl: *ttl,
                                        by: by.clone(),
                                        reason: reason.clone(),
                                    }),
                                },
                                CommandRequest::Clear { by } => {
                                    Ok(Command::ClearOverride { by: by.clone() })
                                }
                            }
                        }
                    }
                };
                match res {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(cmd) => {
                        let mut obs = st.slots[&pipeline].last_obs.clone();
                        obs.commands.push(cmd);
                        let now = st.clock();
                        st.step(&pipeline, now, obs).await;
                        st.persist();
                        let sentence = st.args.sink.lock().await.board.read().ok().and_then(|b| {
                            b.decisions(Some(&pipeline), 1)
                                .first()
                                .map(|e| e.sentence.clone())
                        });
                        let _ = reply.send(Ok(sentence.unwrap_or_default()));
                    }
                }
            }
            ControllerMsg::Emergency { pipeline, reason } => {
                if !st.safe_hold
                    && let Some(slot) = st.slots.get(&pipeline)
                {
                    let mut obs = slot.last_obs.clone();
                    obs.commands.push(Command::Emergency {
                        by: "detector".to_string(),
                        reason,
                    });
                    let now = st.clock();
                    st.step(&pipeline, now, obs).await;
                    st.persist();
                }
            }
            ControllerMsg::Policy(policy) => {
                let policy = *policy;
                let slots = std::mem::take(&mut st.slots);
                st.args.policy = policy.clone();
                {
                    let mut sink = st.args.sink.lock().await;
                    if let Ok(mut b) = sink.board.write() {
                        b.policy = (policy.name().to_string(), policy.sha256());
                    }
                    if let Some(j) = sink.journal.as_mut().and_then(|j| j.writer()) {
                        j.policy(&policy);
                    }
                }
                for (p, slot) in slots {
                    let cfg = policy.engine_config(&p, st.budget_of(&p), st.args.interval);
                    let (engine, notes) = Engine::restore(cfg, slot.engine.state());
                    let mut entry = st.args.sink.lock().await.pipeline_started(
                        &engine,
                        &st.args.collectors[slot.collector].name,
                        &notes,
                    );
                    entry.carry_over(&slot.sink);
                    st.slots.insert(
                        p,
                        Box::new(Slot {
                            engine,
                            sink: entry,
                            ..*slot
                        }),
                    );
                }
                st.persist();
                tracing::info!(policy = policy.name(), sha256 = %policy.sha256(), "Policy swapped in.");
                for c in &st.args.collectors {
                    if let Some(a) = super::supervisor::actuator(&c.name) {
                        let _ = a.send_message(ActuatorMsg::Refresh);
                    }
                }
            }
            ControllerMsg::SafeHold(reason) => {
                st.safe_hold = true;
                st.persist();
                tracing::error!(reason = %reason, "Safe hold: every pipeline keeps its profile until restart.");
            }
            ControllerMsg::Flush(reply) => {
                st.persist();
                let mut sink = st.args.sink.lock().await;
                if let Some(j) = &mut sink.journal
                    && let Err(e) = j.finish()
                {
                    tracing::error!(error = %e, "Cannot complete the journal segment.");
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Hands the heap a tick freed back to the operating system. A tick's transient
/// allocations (the query results of every pipeline, the journal lines, the state file
/// stream) are freed, but glibc keeps the pages in its arenas, so without this the
/// resident size ratchets up to the largest tick's peak and stays there.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
