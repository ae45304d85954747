//! `phoenix run --config FILE`: loads and validates the daemon config (file, then
//! `PHOENIX__SECTION__KEY` environment overrides, then these flags) and the policy it
//! names, resolves them into a `RunPlan`, sets up logging, and runs the daemon.
//! `--check` validates everything and exits.

use crate::daemon::config::{
    Backend, CliOverrides, ConfigError, DaemonConfig, LogFormat, PipelineSelector, ReplayInput,
    Source as ConfigSource,
};
use crate::daemon::detector::{DetectorArgs, Watch};
use crate::daemon::run::{CollectorBackend, CollectorPlan, RunError, RunPlan};
use crate::daemon::sampler::{ReplayTick, Source};
use crate::daemon::supervisor::RestartPolicy;
use crate::policy::{PolicyError, ValidatedPolicy};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The arguments of `phoenix run`; the field docs are the flags' help text.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Daemon config file (see configs/phoenix.yaml and docs/operations.md).
    #[arg(long)]
    config: PathBuf,
    /// Validate the config and the policy it names, then exit.
    #[arg(long)]
    check: bool,
    /// HTTP listen address (overrides http.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Journal directory (overrides journal.path).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// State directory (overrides state_dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Log format, text or json (overrides log.format).
    #[arg(long)]
    log_format: Option<String>,
}

/// Why `phoenix run` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunCliError {
    /// The config is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy is wrong.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The replay trace is wrong.
    #[error(transparent)]
    Trace(#[from] crate::sim::trace::TraceError),
    /// The daemon could not start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The replay journal is wrong.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Something the config cannot express yet.
    #[error("{0}")]
    Unsupported(String),
}

/// Runs the daemon (or checks its config).
pub fn run(args: RunArgs) -> Result<ExitCode, RunCliError> {
    let overrides = CliOverrides {
        listen: args.listen.clone(),
        journal: args.journal.clone(),
        state_dir: args.state_dir.clone(),
        log_format: args.log_format.clone(),
    };
    if args.check {
        let cfg = DaemonConfig::check(&args.config, &overrides)?;
        // `check` validated the policy; its warnings (a label drop that may merge series,
        // ...) are shown as `phoenix policy check` shows them.
        if let Ok(p) = ValidatedPolicy::from_file(cfg.policy_path()) {
            for w in p.warnings() {
                eprintln!("{}", super::policy::warning_line(w));
            }
        }
        println!(
            "{}: ok (policy {}, {} collector(s))",
            args.config.display(),
            cfg.policy_path().display(),
            cfg.collectors().len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    tune_allocator();
    let cfg = DaemonConfig::load(&args.config, &overrides)?;
    let policy = ValidatedPolicy::from_file(cfg.policy_path())?;
    cfg.check_policy(&policy)?;
    if let Ok(mut g) = crate::daemon::run::LOG_FLUSH.lock() {
        *g = Some(init_logging(&cfg));
    }
    for w in policy.warnings() {
        tracing::warn!(warning = %super::policy::warning_line(w), "Policy warning.");
    }
    let plan = plan(&cfg, policy)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RunCliError::Unsupported(format!("cannot start the async runtime: {e}")))?;
    let res = runtime.block_on(crate::daemon::run::run(plan));
    // Flushes the log lines still queued.
    drop(
        crate::daemon::run::LOG_FLUSH
            .lock()
            .ok()
            .and_then(|mut g| g.take()),
    );
    res?;
    Ok(ExitCode::SUCCESS)
}

/// Bounds how much freed memory glibc's malloc keeps, unless the operator already chose
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` in the environment).
///
/// Left to itself, malloc gives each thread that allocates its own arena, and after a
/// large buffer is freed it raises its mmap threshold to that size, so the next
/// `/metrics` exposition (15 MB at 10,000 pipelines) is carved from an arena and its
/// pages stay resident when freed. Two arenas (one per worker thread) and a fixed 1 MiB
/// threshold (large buffers are mapped and unmapped whole) measured 17 MB less RSS at
/// 10,000 pipelines (docs/operations.md, "Sizing").
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let chosen = [
            "MALLOC_ARENA_MAX",
            "MALLOC_MMAP_THRESHOLD_",
            "GLIBC_TUNABLES",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !chosen {
            // SAFETY: mallopt only sets allocator parameters, and this runs before the
            // daemon starts any thread.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 2);
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}

/// Logs to stderr through a writer thread: at a tick where 10,000 pipelines switch, the
/// control loop made 10,000 write calls, and a stalled reader of stderr (a full pipe)
/// would have stalled the loop itself. Lossless: past 32,768 lines queued
/// (three ticks in which 10,000 pipelines switch; the default, 128,000, preallocates 4 MB)
/// the loop waits rather than drop a decision's line. The guard flushes the queue when
/// dropped: at the end of [`run`], or before a forced exit.
fn init_logging(cfg: &DaemonConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(cfg.log().level())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(32_768)
        .thread_name("phoenix-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cfg.log().format() {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    guard
}

/// Resolves the config and the policy into what the daemon runs.
fn plan(cfg: &DaemonConfig, policy: ValidatedPolicy) -> Result<RunPlan, RunCliError> {
    let interval = cfg.effective_sampling_interval(&policy);
    let signals = Arc::new(std::sync::RwLock::new(policy.signals().clone()));
    let watch: Vec<Watch> = cfg
        .watch()
        .iter()
        .map(|w| Watch {
            name: w.name().to_string(),
            query: w.query().to_string(),
            request_emergency: w.request_emergency(),
        })
        .collect();
    let profiles: Vec<(String, f64)> = policy
        .profiles()
        .iter()
        .map(|p| (p.name.clone(), p.retention))
        .collect();
    let collectors: Vec<CollectorPlan> = cfg
        .collectors()
        .iter()
        .map(|c| {
            let backend = match c.backend() {
                Backend::File { path } => CollectorBackend::File(path.clone()),
                Backend::Prometheus(p) => CollectorBackend::Rendered(Box::new(
                    crate::actuator::Collector::Prometheus(p.clone()),
                )),
                Backend::Otelcol(o) => CollectorBackend::Rendered(Box::new(
                    crate::actuator::Collector::Otelcol(o.clone()),
                )),
            };
            CollectorPlan {
                name: c.name().to_string(),
                pipelines: match c.pipelines() {
                    PipelineSelector::All => vec!["*".to_string()],
                    PipelineSelector::Only(p) => p.clone(),
                },
                backend,
                coalesce: c.coalesce(),
                min_reload_interval: c.min_reload_interval(),
            }
        })
        .collect();
    let (source, wall_interval, engine_tick, speed, include) = match cfg.source() {
        ConfigSource::Prometheus => {
            let p = cfg.prometheus().ok_or_else(|| {
                RunCliError::Unsupported("source: prometheus needs prometheus.url".to_string())
            })?;
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in p.headers() {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                    reqwest::header::HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            let http = reqwest::Client::builder()
                .timeout(p.timeout())
                .default_headers(headers)
                .build()
                .map_err(|e| {
                    RunCliError::Unsupported(format!("cannot build the HTTP client: {e}"))
                })?;
            let url = p.url().to_string();
            let client = prometheus_http_query::Client::from(http, url.trim_end_matches('/'))
                .map_err(|e| RunCliError::Unsupported(format!("prometheus.url {url}: {e}")))?;
            (
                Source::Prometheus {
                    client,
                    url,
                    signals: signals.clone(),
                    watch: watch.clone(),
                },
                interval,
                interval,
                1.0,
                cfg.pipelines().include().to_vec(),
            )
        }
        ConfigSource::Replay(r) => {
            let ticks = match r.input() {
                ReplayInput::Trace(path) => {
                    use crate::sim::trace::Values;
                    // A trace mapped onto the budget is a shape; one replayed as is holds
                    // series counts.
                    let values = if r.budget_scale().is_some() {
                        Values::Signal
                    } else {
                        Values::SeriesCounts
                    };
                    let mut trace = crate::sim::trace::read_trace(path, values)?;
                    let pipeline = r.pipeline().to_string();
                    let budget = cfg.budget_for(&pipeline, &policy).unwrap_or(100_000.0);
                    if let Some(sc) = r.budget_scale() {
                        trace.rescale(sc.min * budget, sc.max * budget);
                    }
                    trace
                        .timestamps
                        .iter()
                        .copied()
                        .zip(trace.demand().iter().copied())
                        .filter(|(_, v)| v.is_finite())
                        .map(|(at, v)| ReplayTick {
                            at,
                            inputs: vec![(pipeline.clone(), v, at)],
                        })
                        .collect()
                }
                ReplayInput::Journal(path) => journal_ticks(path)?,
            };
            if ticks.is_empty() {
                return Err(RunCliError::Unsupported(
                    "replay: the trace or journal has no samples to replay".to_string(),
                ));
            }
            let step = ticks
                .windows(2)
                .map(|w| w[1].at.saturating_since(w[0].at))
                .filter(|d| !d.is_zero())
                .min()
                .unwrap_or(interval);
            let wall = Duration::from_secs_f64((step.as_secs_f64() / r.speed()).max(0.01));
            let replayed: std::collections::BTreeSet<String> = ticks
                .iter()
                .flat_map(|t| t.inputs.iter().map(|(p, _, _)| p.clone()))
                .collect();
            // A pipeline's control file: the collector naming it, else one taking `*`
            // (a rendered collector has none: its pipelines replay without feedback).
            let control_files = replayed
                .iter()
                .filter_map(|p| {
                    collectors
                        .iter()
                        .find(|c| c.pipelines.iter().any(|x| x == p))
                        .or_else(|| {
                            collectors
                                .iter()
                                .find(|c| c.pipelines.iter().any(|x| x == "*"))
                        })
                        .and_then(|c| match &c.backend {
                            CollectorBackend::File(f) => Some((p.clone(), f.clone())),
                            CollectorBackend::Rendered(_) => None,
                        })
                })
                .collect();
            (
                Source::Replay {
                    ticks: Arc::new(ticks),
                    speed: r.speed(),
                    control_files: Arc::new(control_files),
                    retention: profiles.clone(),
                },
                wall,
                step,
                r.speed(),
                replayed.into_iter().collect(),
            )
        }
    };
    let pipelines = cfg.pipelines();
    let default_budget = pipelines
        .default_budget()
        .or(policy.budget_series())
        .unwrap_or(100_000.0);
    let j = cfg.journal();
    let anomaly = policy.anomaly();
    Ok(RunPlan {
        policy_path: cfg.policy_path().to_path_buf(),
        source,
        interval: wall_interval,
        engine_tick,
        speed,
        discover: pipelines.discover(),
        include,
        budgets: pipelines.budgets().clone(),
        default_budget,
        keep_vanished: pipelines.keep_vanished(),
        max_pipelines: pipelines.max_pipelines(),
        state_dir: cfg.state_dir().to_path_buf(),
        snapshot_interval: cfg.state_snapshot_interval(),
        journal: j
            .enabled()
            .then(|| (j.path().to_path_buf(), j.rotate_bytes(), j.retention())),
        listen: cfg.http().listen(),
        token: cfg.http().admin_token().map(str::to_string),
        max_body_bytes: cfg.http().max_body_bytes(),
        collectors,
        restart: RestartPolicy {
            max_restarts: cfg.supervision().max_restarts(),
            window: cfg.supervision().window(),
            backoff: cfg.supervision().backoff(),
        },
        signals,
        detector: DetectorArgs {
            watch,
            kind: anomaly.map_or(crate::core::anomaly::DetectorKind::Ensemble, |a| a.detector),
            threshold: anomaly.map_or(crate::core::anomaly::DEFAULT_THRESHOLD, |a| a.threshold),
        },
        policy,
    })
}

/// The ticks a daemon journal recorded: per step time, each pipeline's input when it was
/// a healthy sample (a pipeline held on Empty, Stale or Error input then is missing from
/// that tick, so it is held again). `path` is a segment or the journal directory (every
/// `*.jsonl.gz` in it, oldest first); a command's extra step at the same time adds
/// nothing.
fn journal_ticks(path: &std::path::Path) -> Result<Vec<ReplayTick>, RunCliError> {
    let files = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| {
                RunCliError::Unsupported(format!("replay.journal {}: {e}", path.display()))
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut by_time: std::collections::BTreeMap<crate::core::Timestamp, ReplayTick> =
        std::collections::BTreeMap::new();
    for f in &files {
        for line in crate::journal::read(f)? {
            let crate::journal::Line::Step(s) = line else {
                continue;
            };
            let tick = by_time.entry(s.t).or_insert_with(|| ReplayTick {
                at: s.t,
                inputs: Vec::new(),
            });
            if let crate::core::Sample::Ok { value, at } = s.observation().input
                && !tick.inputs.iter().any(|(p, _, _)| *p == s.p)
            {
                tick.inputs.push((s.p, value, at));
            }
        }
    }
    Ok(by_time.into_values().collect())
}
