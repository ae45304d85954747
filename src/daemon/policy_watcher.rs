//! `PolicyWatcherActor`: reloads the policy on SIGHUP and when the file changes (polled
//! by modification time and content hash, debounced so an editor's several writes make
//! one reload). A policy that does not validate is rejected: its one-line problems are
//! logged, `phoenix_policy_reload_success` goes to 0, and the policy in force stays. A
//! valid one goes to the controller, which restores every engine into it by profile name.

use super::controller::ControllerMsg;
use super::metrics as m;
use crate::policy::ValidatedPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What the watcher needs.
#[derive(Clone)]
pub struct PolicyWatcherArgs {
    /// The policy file.
    pub path: PathBuf,
    /// SHA-256 of the policy in force at start.
    pub sha256: String,
    /// How often the file is looked at.
    pub poll: Duration,
    /// The sampler's queries, replaced by a reloaded policy's.
    pub signals: super::sampler::SharedSignals,
    /// The rendered actuators' policy, replaced by a reloaded one.
    pub policy: super::actuator::SharedPolicy,
}

/// Messages.
#[derive(Debug)]
pub enum PolicyWatcherMsg {
    /// Look at the file's modification time.
    Poll,
    /// SIGHUP: reload now.
    Reload,
}

/// The actor.
pub struct PolicyWatcherActor;

/// Its state.
pub struct PolicyWatcherState {
    args: PolicyWatcherArgs,
    mtime: Option<SystemTime>,
    /// A change was seen at the last poll; reload at the next if it is still there.
    settling: bool,
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl PolicyWatcherState {
    fn reload(&mut self, why: &str) {
        match ValidatedPolicy::from_file(&self.args.path) {
            Ok(p) if p.sha256() == self.args.sha256 => {
                tracing::debug!(path = %self.args.path.display(), "Policy unchanged.");
            }
            Ok(p) => {
                self.args.sha256 = p.sha256();
                metrics::gauge!(m::POLICY_RELOAD_SUCCESS).set(1.0);
                metrics::counter!(m::POLICY_RELOADS, "outcome" => "ok").increment(1);
                tracing::info!(path = %self.args.path.display(), policy = p.name(), trigger = why, "Policy reloaded.");
                for w in p.warnings() {
                    tracing::warn!(file = %w.path, line = w.line, field = %w.field, warning = %w.message, "Policy warning.");
                }
                if let Ok(mut s) = self.args.signals.write() {
                    *s = p.signals().clone();
                }
                // The actuators read the new fragments before the controller asks them to
                // refresh (after it has swapped the policy into the engines).
                if let Ok(mut shared) = self.args.policy.write() {
                    *shared = std::sync::Arc::new(p.clone());
                }
                if let Some(c) = super::supervisor::controller() {
                    let _ = c.send_message(ControllerMsg::Policy(Box::new(p)));
                }
            }
            Err(e) => {
                metrics::gauge!(m::POLICY_RELOAD_SUCCESS).set(0.0);
                metrics::counter!(m::POLICY_RELOADS, "outcome" => "rejected").increment(1);
                for line in e.to_string().lines() {
                    tracing::error!(problem = %line, "Policy rejected; the previous policy stays in force.");
                }
            }
        }
    }
}

impl Actor for PolicyWatcherActor {
    type Msg = PolicyWatcherMsg;
    type State = PolicyWatcherState;
    type Arguments = PolicyWatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PolicyWatcherArgs,
    ) -> Result<PolicyWatcherState, ActorProcessingErr> {
        // Both outcomes exported from the start at 0 (see the actuator's counters).
        for outcome in ["ok", "rejected"] {
            metrics::counter!(m::POLICY_RELOADS, "outcome" => outcome).increment(0);
        }
        myself.send_interval(args.poll, || PolicyWatcherMsg::Poll);
        Ok(PolicyWatcherState {
            mtime: mtime(&args.path),
            args,
            settling: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: PolicyWatcherMsg,
        st: &mut PolicyWatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PolicyWatcherMsg::Reload => st.reload("SIGHUP"),
            PolicyWatcherMsg::Poll => {
                let now = mtime(&st.args.path);
                if now != st.mtime {
                    // Debounce: wait one more poll for the writes to settle.
                    st.mtime = now;
                    st.settling = true;
                } else if st.settling {
                    st.settling = false;
                    st.reload("file change");
                }
            }
        }
        Ok(())
    }
}
