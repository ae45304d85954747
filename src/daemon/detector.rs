//! `DetectorActor`: scores the config's *watch* signals (the reduction ratio, exporter
//! errors, latency: anything beyond the two control signals, which the engine scores
//! itself) per pipeline with the core's streaming detectors, exports
//! `phoenix_anomaly_score{pipeline,signal}` (in the `series` table), and, for a signal configured to, sends an
//! emergency request to the controller, which passes the engine's guards like any other.

use super::controller::ControllerMsg;
use super::observe::SignalResult;
use crate::core::Timestamp;
use crate::core::anomaly::{DEFAULT_THRESHOLD, Detector, DetectorKind};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::BTreeMap;

/// One watch signal.
#[derive(Clone, Debug)]
pub struct Watch {
    /// Name (the `signal` label).
    pub name: String,
    /// PromQL, grouped by the policy's label.
    pub query: String,
    /// Whether a score at or above the threshold requests an emergency.
    pub request_emergency: bool,
}

/// What the detector needs.
#[derive(Clone, Debug)]
pub struct DetectorArgs {
    /// The signals.
    pub watch: Vec<Watch>,
    /// Detector kind (the policy's).
    pub kind: DetectorKind,
    /// Score at or above which a signal is anomalous (the policy's).
    pub threshold: f64,
}

impl Default for DetectorArgs {
    fn default() -> Self {
        DetectorArgs {
            watch: Vec::new(),
            kind: DetectorKind::Ensemble,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// Messages.
#[derive(Debug)]
pub enum DetectorMsg {
    /// One watch signal's result.
    Result {
        /// Signal name.
        signal: String,
        /// The result.
        result: SignalResult,
    },
}

/// The actor.
pub struct DetectorActor;

/// Its state.
pub struct DetectorState {
    args: DetectorArgs,
    detectors: BTreeMap<(String, String), Detector>,
    /// The last sample time scored per series (a sample no newer is not scored again).
    last: BTreeMap<(String, String), Timestamp>,
    /// The score gauge per series, looked up once.
    gauges: BTreeMap<(String, String), std::sync::Arc<super::series::Cell>>,
}

impl Actor for DetectorActor {
    type Msg = DetectorMsg;
    type State = DetectorState;
    type Arguments = DetectorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: DetectorArgs,
    ) -> Result<DetectorState, ActorProcessingErr> {
        Ok(DetectorState {
            args,
            detectors: BTreeMap::new(),
            last: BTreeMap::new(),
            gauges: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: DetectorMsg,
        st: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        let DetectorMsg::Result { signal, result } = msg;
        let Some(w) = st.args.watch.iter().find(|w| w.name == signal).cloned() else {
            return Ok(());
        };
        let SignalResult::Ok(series) = result else {
            return Ok(());
        };
        for s in series {
            let Some(p) = s.pipeline else { continue };
            let key = (p.clone(), signal.clone());
            if st.last.get(&key).is_some_and(|&t| s.at <= t) {
                continue;
            }
            st.last.insert(key.clone(), s.at);
            let kind = st.args.kind;
            let score = st
                .detectors
                .entry(key)
                .or_insert_with(|| Detector::new(kind))
                .update(s.at, s.value);
            st.gauges
                .entry((p.clone(), signal.clone()))
                .or_insert_with(|| super::series::table().watch(&p, &signal))
                .set(score);
            if w.request_emergency && score >= st.args.threshold {
                tracing::warn!(pipeline = %p, signal = %signal, score, "Watch signal anomalous; requesting an emergency.");
                if let Some(c) = super::supervisor::controller() {
                    let _ = c.send_message(ControllerMsg::Emergency {
                        pipeline: p,
                        reason: format!("{signal} anomaly score {score:.2}"),
                    });
                }
            }
        }
        Ok(())
    }
}
