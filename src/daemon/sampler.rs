//! `SamplerActor`: the source of observations. Each tick it runs one PromQL query per
//! signal for *all* pipelines (grouped by the policy's label) against the Prometheus HTTP
//! API, or takes the next row of a recorded trace (`replay`), and hands the raw results
//! to the controller, which classifies them (see `observe`).
//!
//! Ticks are coalesced: a tick that finds the previous one still running is skipped and
//! counted late, so a slow Prometheus never builds a backlog. While Prometheus is down
//! the sampler backs off to one attempt every other tick (so it is back within two
//! intervals of Prometheus returning) and reports the failure on every tick, so engines
//! hold with the reason instead of going silent.

use super::controller::ControllerMsg;
use super::metrics as m;
use super::observe::{ResultSeries, SignalResult};
use crate::core::Timestamp;
use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where samples come from.
#[derive(Clone)]
pub enum Source {
    /// The Prometheus HTTP API.
    Prometheus {
        /// Client on a reqwest client with the timeout and the extra headers.
        client: Client,
        /// Base URL, for messages.
        url: String,
        /// The policy's queries and group label, shared with the policy watcher, which
        /// replaces them when a reloaded policy changes them.
        signals: SharedSignals,
        /// Extra signals for the detector, one query each.
        watch: Vec<super::detector::Watch>,
    },
    /// A recorded demand trace or journal, replayed on a virtual clock `speed` times
    /// faster than its timestamps; each pipeline's output follows the profile its
    /// collector's control file names (input × that profile's expected retention), as
    /// the pipeline would.
    Replay {
        /// The recorded ticks, in time order.
        ticks: Arc<Vec<ReplayTick>>,
        /// Virtual seconds per wall second.
        speed: f64,
        /// The file backend's control file of each pipeline replayed.
        control_files: Arc<BTreeMap<String, PathBuf>>,
        /// Expected retention per profile name.
        retention: Vec<(String, f64)>,
    },
}

/// One recorded tick: the time and each pipeline's demand then (a pipeline missing from
/// it is Empty at that tick, as it was when recorded).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayTick {
    /// The tick's `now`.
    pub at: Timestamp,
    /// Pipeline, demand, and the sample's own time.
    pub inputs: Vec<(String, f64, Timestamp)>,
}

/// The policy's signals, shared between the sampler and the policy watcher.
pub type SharedSignals = Arc<std::sync::RwLock<crate::policy::Signals>>;

/// What the sampler needs.
#[derive(Clone)]
pub struct SamplerArgs {
    /// The source.
    pub source: Source,
    /// Wall time between ticks.
    pub interval: Duration,
}

/// Sends to the controller, wherever it is now (it may be restarting: then the tick is
/// lost, and the next one comes an interval later).
fn to_controller(msg: ControllerMsg) {
    if let Some(c) = super::supervisor::controller() {
        let _ = c.send_message(msg);
    }
}

/// Messages.
#[derive(Debug)]
pub enum SamplerMsg {
    /// Time to sample.
    Tick,
    /// A tick's queries finished (ok = both ran).
    Done(bool),
}

/// The actor.
pub struct SamplerActor;

/// Its state.
pub struct SamplerState {
    args: SamplerArgs,
    busy: Arc<AtomicBool>,
    failures: u32,
    skip_next: bool,
    /// Replay position.
    row: usize,
}

fn wall_now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

/// Runs `query` and keeps each series' group label, value and time.
/// `name` is the signal (`input`, `output`, or a watch signal's name): the metric label.
async fn run_query(
    client: &Client,
    name: &str,
    query: &str,
    group_by: &str,
    url: &str,
) -> SignalResult {
    let started = Instant::now();
    let res = client.query(query).get().await;
    metrics::histogram!(m::QUERY_DURATION, "query" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    match res {
        Err(e) => SignalResult::Error(format!("{url}: {e}")),
        Ok(r) => match r.data() {
            Data::Vector(v) => SignalResult::Ok(
                v.iter()
                    .map(|s| ResultSeries {
                        pipeline: s.metric().get(group_by).cloned(),
                        value: s.sample().value(),
                        at: Timestamp((s.sample().timestamp() * 1000.0).round() as i64),
                    })
                    .collect(),
            ),
            Data::Scalar(_) | Data::Matrix(_) => SignalResult::Error(format!(
                "{url}: the query must return an instant vector grouped by `{group_by}`"
            )),
        },
    }
}

impl Actor for SamplerActor {
    type Msg = SamplerMsg;
    type State = SamplerState;
    type Arguments = SamplerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SamplerArgs,
    ) -> Result<SamplerState, ActorProcessingErr> {
        myself.send_interval(args.interval, || SamplerMsg::Tick);
        let _ = myself.send_message(SamplerMsg::Tick);
        Ok(SamplerState {
            args,
            busy: Arc::new(AtomicBool::new(false)),
            failures: 0,
            skip_next: false,
            row: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SamplerMsg,
        st: &mut SamplerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SamplerMsg::Done(ok) => {
                st.busy.store(false, Ordering::SeqCst);
                if ok {
                    if st.failures > 0 {
                        tracing::info!(failures = st.failures, "Prometheus answers again.");
                    }
                    st.failures = 0;
                    st.skip_next = false;
                } else {
                    st.failures += 1;
                    st.skip_next = st.failures >= 2;
                }
            }
            SamplerMsg::Tick => {
                // The fault tests make the sampler fail here (a no-op in normal builds).
                fail::fail_point!("sampler-tick");
                if st.busy.load(Ordering::SeqCst) {
                    metrics::counter!(m::TICKS_LATE).increment(1);
                    tracing::warn!("Previous tick still running; this one is skipped (late).");
                    return Ok(());
                }
                match st.args.source.clone() {
                    Source::Prometheus {
                        client,
                        url,
                        signals,
                        watch,
                    } => {
                        let crate::policy::Signals {
                            input,
                            output,
                            group_by,
                            ..
                        } = signals.read().expect("signals lock").clone();
                        let now = wall_now();
                        if st.skip_next {
                            // Backing off: report the outage without asking.
                            st.skip_next = false;
                            let msg = format!("{url}: unreachable, retrying next tick");
                            to_controller(ControllerMsg::Tick {
                                now,
                                input: SignalResult::Error(msg.clone()),
                                output: SignalResult::Error(msg),
                                started: Instant::now(),
                            });
                            return Ok(());
                        }
                        st.busy.store(true, Ordering::SeqCst);
                        tokio::spawn(async move {
                            let started = Instant::now();
                            let (i, o) = tokio::join!(
                                run_query(&client, "input", &input, &group_by, &url),
                                run_query(&client, "output", &output, &group_by, &url)
                            );
                            let ok = !matches!(i, SignalResult::Error(_))
                                && !matches!(o, SignalResult::Error(_));
                            if !ok {
                                let why = [&i, &o]
                                    .into_iter()
                                    .find_map(|r| match r {
                                        SignalResult::Error(e) => Some(e.clone()),
                                        _ => None,
                                    })
                                    .unwrap_or_default();
                                tracing::warn!(error = %why, "Query failed; engines hold.");
                            }
                            to_controller(ControllerMsg::Tick {
                                now,
                                input: i,
                                output: o,
                                started,
                            });
                            // Watch signals after the control ones: a slow watch query never
                            // delays a decision.
                            if ok {
                                for w in &watch {
                                    let result =
                                        run_query(&client, &w.name, &w.query, &group_by, &url)
                                            .await;
                                    if let Some(d) =
                                        ractor::registry::where_is(super::supervisor::DETECTOR)
                                    {
                                        let _ =
                                            d.send_message(super::detector::DetectorMsg::Result {
                                                signal: w.name.clone(),
                                                result,
                                            });
                                    }
                                }
                            }
                            let _ = myself.send_message(SamplerMsg::Done(ok));
                        });
                    }
                    Source::Replay {
                        ticks,
                        control_files,
                        retention,
                        ..
                    } => {
                        let Some(tick) = ticks.get(st.row) else {
                            if st.row == ticks.len() {
                                tracing::info!(
                                    ticks = ticks.len(),
                                    "Replay finished; the daemon keeps serving."
                                );
                                st.row += 1;
                            }
                            return Ok(());
                        };
                        st.row += 1;
                        // Each control file read once per tick, whatever the pipelines on it.
                        let mut files: BTreeMap<&PathBuf, BTreeMap<String, String>> =
                            BTreeMap::new();
                        let mut input = Vec::with_capacity(tick.inputs.len());
                        let mut output = Vec::with_capacity(tick.inputs.len());
                        for (pipeline, demand, at) in &tick.inputs {
                            let profile = control_files.get(pipeline).and_then(|f| {
                                files
                                    .entry(f)
                                    .or_insert_with(|| {
                                        super::actuator::ControlFile::read(f)
                                            .ok()
                                            .flatten()
                                            .map(|c| c.pipelines)
                                            .unwrap_or_default()
                                    })
                                    .get(pipeline)
                                    .cloned()
                            });
                            let r = profile
                                .and_then(|p| retention.iter().find(|(n, _)| *n == p).map(|x| x.1))
                                .or(retention.first().map(|x| x.1))
                                .unwrap_or(1.0);
                            let series = |v: f64| ResultSeries {
                                pipeline: Some(pipeline.clone()),
                                value: v,
                                at: *at,
                            };
                            input.push(series(*demand));
                            output.push(series((demand * r).round()));
                        }
                        to_controller(ControllerMsg::Tick {
                            now: tick.at,
                            input: SignalResult::Ok(input),
                            output: SignalResult::Ok(output),
                            started: Instant::now(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
