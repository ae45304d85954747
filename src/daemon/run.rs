//! `phoenix run`: wires the actors from a resolved plan, serves HTTP, and handles the
//! signals. SIGTERM/SIGINT stop sampling, let an apply in flight finish, persist the
//! state, complete the journal and exit 0 within a bounded time (a second signal forces
//! the exit); SIGHUP reloads the policy (through the policy watcher).

use super::actuator::{ActuatorArgs, BackendArgs, SharedPolicy};
use super::controller::{CollectorRef, ControllerArgs, ControllerMsg};
use super::http::{self, AppState};
use super::sampler::{SamplerArgs, Source};
use super::sink::{Journal, Sink};
use super::status::{Board, SharedBoard};
use super::supervisor::{self, Child, RestartPolicy, RootActor, RootArgs};
use crate::policy::ValidatedPolicy;
use ractor::Actor;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The guard of the daemon's log writer thread (set by `phoenix run`), dropped to flush
/// queued lines before a forced exit.
pub static LOG_FLUSH: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// A collector, resolved.
#[derive(Clone, Debug)]
pub struct CollectorPlan {
    /// Name.
    pub name: String,
    /// Pipelines it carries (`*` for the rest).
    pub pipelines: Vec<String>,
    /// The backend (the policy it renders from is the plan's).
    pub backend: CollectorBackend,
    /// Coalescing window.
    pub coalesce: Duration,
    /// Rate bound.
    pub min_reload_interval: Duration,
}

/// A collector's backend, resolved.
#[derive(Clone, Debug)]
pub enum CollectorBackend {
    /// The control file.
    File(PathBuf),
    /// A rendered collector config.
    Rendered(Box<crate::actuator::Collector>),
}

/// Everything `phoenix run` needs, resolved and validated (from the config file, the
/// environment and the command line).
#[derive(Clone)]
pub struct RunPlan {
    /// The policy.
    pub policy: ValidatedPolicy,
    /// The policy file, for reloads.
    pub policy_path: PathBuf,
    /// Where samples come from.
    pub source: Source,
    /// Wall time between ticks.
    pub interval: Duration,
    /// The engines' tick (the replay's virtual interval, or `interval`).
    pub engine_tick: Duration,
    /// Virtual seconds per wall second (1 unless replaying).
    pub speed: f64,
    /// Pipelines.
    pub discover: bool,
    /// Always tracked.
    pub include: Vec<String>,
    /// Budgets.
    pub budgets: BTreeMap<String, f64>,
    /// Budget of the others.
    pub default_budget: f64,
    /// How long a vanished pipeline keeps its engine.
    pub keep_vanished: Duration,
    /// Most pipelines.
    pub max_pipelines: usize,
    /// State directory.
    pub state_dir: PathBuf,
    /// Longest time between state writes when no decision changed.
    pub snapshot_interval: Duration,
    /// Journal directory, rotation and retention, when enabled.
    pub journal: Option<(PathBuf, u64, Duration)>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Admin token.
    pub token: Option<String>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// The collectors.
    pub collectors: Vec<CollectorPlan>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// The policy's queries, shared by the sampler and the policy watcher.
    pub signals: super::sampler::SharedSignals,
    /// The detector's watch signals and settings.
    pub detector: super::detector::DetectorArgs,
}

/// Why `phoenix run` could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {reason}; pick another http.listen (or --listen)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The state directory cannot be used.
    #[error("state_dir {}: {reason}", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The journal cannot be started.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Anything else at start (recorder, actor spawn).
    #[error("{0}")]
    Start(String),
}

fn wall_now() -> crate::core::Timestamp {
    crate::core::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

/// Runs the daemon until SIGTERM/SIGINT. Prints `listening on ADDR` once serving.
pub async fn run(plan: RunPlan) -> Result<(), RunError> {
    // Taken over first: SIGHUP's default action ends the process, and `systemctl reload`
    // may come while the actors are still starting. One that arrives before the policy
    // watcher exists is moot: the watcher reads the policy file when it starts.
    let hup_signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let handle = super::metrics::install().map_err(RunError::Start)?;
    std::fs::create_dir_all(&plan.state_dir).map_err(|e| RunError::StateDir {
        path: plan.state_dir.clone(),
        reason: crate::fsutil::io_text(&e),
    })?;
    let board: SharedBoard = Arc::new(RwLock::new(Board::default()));
    {
        let mut b = board.write().expect("board lock");
        b.policy = (plan.policy.name().to_string(), plan.policy.sha256());
        for c in &plan.collectors {
            b.actuators_ready.insert(c.name.clone(), false);
        }
    }
    metrics::gauge!(super::metrics::POLICY_RELOAD_SUCCESS).set(1.0);
    let journal = match &plan.journal {
        Some((dir, rotate, keep)) => {
            let mut j = Journal::new(dir.clone(), *rotate, *keep);
            j.start_segment(wall_now(), &plan.policy, std::iter::empty())?;
            Some(j)
        }
        None => None,
    };
    let sink = Arc::new(tokio::sync::Mutex::new(Sink::new(board.clone(), journal)));

    // HTTP first: it must serve whatever happens to the actors.
    let listener = tokio::net::TcpListener::bind(plan.listen)
        .await
        .map_err(|e| RunError::Listen {
            addr: plan.listen,
            reason: crate::fsutil::io_text(&e),
        })?;
    let addr = listener.local_addr().map_err(|e| RunError::Listen {
        addr: plan.listen,
        reason: e.to_string(),
    })?;
    let controller_slot = Arc::new(RwLock::new(None));
    let app = http::router(
        AppState {
            board: board.clone(),
            metrics: handle,
            controller: controller_slot.clone(),
            token: plan.token.as_deref().map(Arc::from),
            page_poll: super::page::poll_interval(plan.interval),
        },
        plan.max_body_bytes,
    );
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    println!("phoenix listening on {addr}");
    tracing::info!(%addr, policy = plan.policy.name(), "Serving HTTP.");

    let collectors: Vec<CollectorRef> = plan
        .collectors
        .iter()
        .map(|c| CollectorRef {
            name: c.name.clone(),
            pipelines: c.pipelines.clone(),
        })
        .collect();
    let mut children = vec![Child::Controller(Box::new(ControllerArgs {
        policy: plan.policy.clone(),
        interval: plan.engine_tick,
        discover: plan.discover,
        include: plan.include.clone(),
        budgets: plan.budgets.clone(),
        default_budget: plan.default_budget,
        keep_vanished: plan.keep_vanished,
        max_pipelines: plan.max_pipelines,
        collectors,
        state_file: plan.state_dir.join("engines.json"),
        snapshot_interval: plan.snapshot_interval,
        sink: sink.clone(),
        speed: plan.speed,
    }))];
    let shared_policy: SharedPolicy = Arc::new(RwLock::new(Arc::new(plan.policy.clone())));
    for c in &plan.collectors {
        let backend = match &c.backend {
            CollectorBackend::File(path) => BackendArgs::File { path: path.clone() },
            CollectorBackend::Rendered(collector) => BackendArgs::Rendered {
                collector: collector.clone(),
                policy: shared_policy.clone(),
            },
        };
        children.push(Child::Actuator(Box::new(ActuatorArgs {
            collector: c.name.clone(),
            backend,
            coalesce: c.coalesce,
            min_reload_interval: c.min_reload_interval,
        })));
    }
    children.push(Child::Detector(Box::new(plan.detector.clone())));
    children.push(Child::PolicyWatcher(Box::new(
        super::policy_watcher::PolicyWatcherArgs {
            path: plan.policy_path.clone(),
            sha256: plan.policy.sha256(),
            poll: Duration::from_secs(1),
            signals: plan.signals.clone(),
            policy: shared_policy.clone(),
        },
    )));
    children.push(Child::Sampler(Box::new(SamplerArgs {
        source: plan.source.clone(),
        interval: plan.interval,
    })));
    let (root, root_done) = Actor::spawn(
        Some("phoenix-root".to_string()),
        RootActor,
        RootArgs {
            children,
            policy: plan.restart,
            board: board.clone(),
        },
    )
    .await
    .map_err(|e| RunError::Start(format!("cannot start the actors: {e}")))?;
    *controller_slot.write().expect("lock") = supervisor::controller();
    // A restarted controller registers under the same name: keep the HTTP side's
    // handle current.
    let slot = controller_slot.clone();
    let refresher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            *slot.write().expect("lock") = supervisor::controller();
        }
    });

    let hup = tokio::spawn(async move {
        let Some(mut s) = hup_signal else {
            return;
        };
        while s.recv().await.is_some() {
            if let Some(w) = ractor::registry::where_is(supervisor::POLICY_WATCHER) {
                let _ = w.send_message(super::policy_watcher::PolicyWatcherMsg::Reload);
            }
        }
    });
    wait_for_stop().await;
    hup.abort();
    tracing::info!("Stopping: finishing in-flight work.");
    // Stop sampling first, then let the controller persist and close the journal.
    if let Some(s) = ractor::registry::where_is(supervisor::SAMPLER) {
        s.stop(Some("shutdown".to_string()));
    }
    // An apply in flight gets its coalescing window to complete.
    let grace = plan
        .collectors
        .iter()
        .map(|c| c.coalesce)
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(10));
    let force = async {
        wait_for_stop().await;
        tracing::warn!("Second signal: exiting now.");
        // `exit` runs no destructor: flush the log queue by hand.
        drop(LOG_FLUSH.lock().ok().and_then(|mut g| g.take()));
        std::process::exit(130);
    };
    let orderly = async {
        tokio::time::sleep(grace).await;
        if let Some(c) = supervisor::controller() {
            let _ = ractor::call_t!(c, ControllerMsg::Flush, 10_000);
        }
        refresher.abort();
        root.stop(Some("shutdown".to_string()));
        let _ = tokio::time::timeout(Duration::from_secs(5), root_done).await;
        let _ = stop_http.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    };
    tokio::select! {
        () = orderly => {}
        () = force => {}
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
