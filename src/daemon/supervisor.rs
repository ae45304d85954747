//! `RootActor`: the supervision tree's root. It spawns the controller, the sampler and one
//! actuator per collector, linked to itself, and restarts a child that fails, with a
//! backoff that doubles per restart, at most `max_restarts` times per child within
//! `window`. Past that it enters safe hold: the failing child stays down, every pipeline
//! keeps its profile, `phoenix_safe_hold` is 1, `/metrics` keeps serving (the HTTP server
//! is not a child, so no failure here takes it down) and the log says why. It never exits
//! on its own. ractor has no restart strategy of its own; this is it, written out.
//!
//! Children find each other by their registered names (`CONTROLLER`, `actuator_name`),
//! so a restarted child is reached without re-wiring the others.

use super::actuator::{ActuatorActor, ActuatorArgs, ActuatorMsg};
use super::controller::{ControllerActor, ControllerArgs, ControllerMsg};
use super::detector::{DetectorActor, DetectorArgs};
use super::metrics as m;
use super::policy_watcher::{PolicyWatcherActor, PolicyWatcherArgs};
use super::sampler::{SamplerActor, SamplerArgs, SamplerMsg};
use super::status::SharedBoard;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Registered name of the controller.
pub const CONTROLLER: &str = "phoenix-controller";
/// Registered name of the sampler.
pub const SAMPLER: &str = "phoenix-sampler";
/// Registered name of the detector.
pub const DETECTOR: &str = "phoenix-detector";
/// Registered name of the policy watcher.
pub const POLICY_WATCHER: &str = "phoenix-policy-watcher";

/// Registered name of a collector's actuator.
pub fn actuator_name(collector: &str) -> String {
    format!("phoenix-actuator-{collector}")
}

/// The controller, wherever it is now.
pub fn controller() -> Option<ActorRef<ControllerMsg>> {
    ractor::registry::where_is(CONTROLLER).map(ActorRef::from)
}

/// A collector's actuator, wherever it is now.
pub fn actuator(collector: &str) -> Option<ActorRef<ActuatorMsg>> {
    ractor::registry::where_is(actuator_name(collector)).map(ActorRef::from)
}

/// The restart policy.
#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    /// Restarts of one child allowed within `window`.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
    /// First restart delay; doubled per restart in the window, at most 30 s.
    pub backoff: Duration,
}

/// A child, by what it is (its arguments are kept to restart it).
#[derive(Clone)]
pub enum Child {
    /// The controller.
    Controller(Box<ControllerArgs>),
    /// The sampler.
    Sampler(Box<SamplerArgs>),
    /// An actuator.
    Actuator(Box<ActuatorArgs>),
    /// The policy watcher.
    PolicyWatcher(Box<PolicyWatcherArgs>),
    /// The detector of watch signals.
    Detector(Box<DetectorArgs>),
}

impl Child {
    fn name(&self) -> String {
        match self {
            Child::Controller(_) => CONTROLLER.to_string(),
            Child::Sampler(_) => SAMPLER.to_string(),
            Child::Actuator(a) => actuator_name(&a.collector),
            Child::PolicyWatcher(_) => POLICY_WATCHER.to_string(),
            Child::Detector(_) => DETECTOR.to_string(),
        }
    }

    /// The `actor` label of `phoenix_actor_restarts_total`.
    fn label(&self) -> String {
        match self {
            Child::Controller(_) => "controller".to_string(),
            Child::Sampler(_) => "sampler".to_string(),
            Child::Actuator(a) => format!("actuator:{}", a.collector),
            Child::PolicyWatcher(_) => "policy_watcher".to_string(),
            Child::Detector(_) => "detector".to_string(),
        }
    }
}

/// What the root needs.
pub struct RootArgs {
    /// Children, in start order (controller first: the others report to it).
    pub children: Vec<Child>,
    /// The restart policy.
    pub policy: RestartPolicy,
    /// The board (for safe hold).
    pub board: SharedBoard,
}

/// Messages.
pub enum RootMsg {
    /// Spawn the child of this name again (after its backoff).
    Respawn(String),
}

/// The actor.
pub struct RootActor;

/// Its state.
pub struct RootState {
    children: BTreeMap<String, Child>,
    restarts: BTreeMap<String, VecDeque<Instant>>,
    policy: RestartPolicy,
    board: SharedBoard,
    safe_hold: bool,
}

async fn spawn(child: &Child, root: ActorCell) -> Result<(), ActorProcessingErr> {
    let name = Some(child.name());
    match child {
        Child::Controller(a) => {
            ControllerActor::spawn_linked(name, ControllerActor, (**a).clone(), root).await?;
        }
        Child::Sampler(a) => {
            SamplerActor::spawn_linked(name, SamplerActor, (**a).clone(), root).await?;
        }
        Child::Actuator(a) => {
            ActuatorActor::spawn_linked(name, ActuatorActor, (**a).clone(), root).await?;
        }
        Child::Detector(a) => {
            DetectorActor::spawn_linked(name, DetectorActor, (**a).clone(), root).await?;
        }
        Child::PolicyWatcher(a) => {
            PolicyWatcherActor::spawn_linked(name, PolicyWatcherActor, (**a).clone(), root).await?;
        }
    }
    Ok(())
}

impl Actor for RootActor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut children = BTreeMap::new();
        for c in &args.children {
            spawn(c, myself.get_cell()).await?;
            children.insert(c.name(), c.clone());
        }
        for c in children.values() {
            metrics::counter!(m::ACTOR_RESTARTS, "actor" => c.label()).increment(0);
        }
        metrics::gauge!(m::SAFE_HOLD).set(0.0);
        Ok(RootState {
            children,
            restarts: BTreeMap::new(),
            policy: args.policy,
            board: args.board,
            safe_hold: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RootMsg,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let RootMsg::Respawn(name) = msg;
        if let Some(c) = st.children.get(&name)
            && !st.safe_hold
            && let Err(e) = spawn(c, myself.get_cell()).await
        {
            tracing::error!(actor = %name, error = %e, "Restart failed; trying again after the backoff.");
            myself.send_after(st.policy.backoff, move || RootMsg::Respawn(name));
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        // Only a failure (a panic or an error out of a handler) is restarted: a child that
        // stops normally was asked to (at shutdown).
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            _ => return Ok(()),
        };
        let Some(name) = cell.get_name() else {
            return Ok(());
        };
        let Some(child) = st.children.get(&name).cloned() else {
            return Ok(());
        };
        let label = child.label();
        let now = Instant::now();
        let q = st.restarts.entry(name.clone()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > st.policy.window)
        {
            q.pop_front();
        }
        if q.len() as u32 >= st.policy.max_restarts {
            let reason = format!(
                "actor {label} failed {} times within {:?} (last: {why})",
                q.len() + 1,
                st.policy.window
            );
            st.safe_hold = true;
            metrics::gauge!(m::SAFE_HOLD).set(1.0);
            if let Ok(mut b) = st.board.write() {
                b.safe_hold = true;
                b.safe_hold_reason = Some(reason.clone());
            }
            if let Some(c) = controller() {
                let _ = c.send_message(ControllerMsg::SafeHold(reason.clone()));
            }
            if let Some(s) = ractor::registry::where_is(SAMPLER) {
                // Nothing to sample for while holding.
                let _ = s.send_message(SamplerMsg::Done(true));
            }
            tracing::error!(actor = %label, reason = %reason, "Restart intensity exceeded: safe hold. /metrics keeps serving; restart phoenix once the cause is fixed.");
            return Ok(());
        }
        q.push_back(now);
        let n = q.len() as u32;
        let delay = (st.policy.backoff * 2u32.saturating_pow(n - 1)).min(Duration::from_secs(30));
        metrics::counter!(m::ACTOR_RESTARTS, "actor" => label.clone()).increment(1);
        tracing::warn!(actor = %label, error = %why, restart = n, delay_ms = delay.as_millis() as u64, "Actor failed; restarting.");
        myself.send_after(delay, move || RootMsg::Respawn(name));
        Ok(())
    }
}
