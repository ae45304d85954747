//! The daemon's config file (`phoenix run --config FILE`), validated into [`DaemonConfig`],
//! the only config type the daemon accepts (its only constructors validate).
//!
//! Three layers, merged by the `config` crate, later wins: the YAML file, then environment
//! variables `PHOENIX__SECTION__KEY` (e.g. `PHOENIX__HTTP__LISTEN=127.0.0.1:9999`), then the
//! command-line overrides in [`CliOverrides`]. The merged tree is then read field by field
//! against the schema documented in `docs/operations.md`, so that, as for policies, a bad
//! config yields *every* problem at once, one line each, naming where the value came from:
//!
//! ```text
//! configs/phoenix.yaml:12:5: http.listen: "localhost:9464" is not a socket address; ...
//! env PHOENIX__PROMETHEUS__TIMEOUT: prometheus.timeout: 10m must be in (0s, 5m]
//! --state-dir: state_dir: /etc/passwd exists and is not a directory; ...
//! ```
//!
//! The `config` crate keeps no positions, so the origin of each field is tracked here: the
//! file's line and column come from the policy module's YAML walk ([`Positions`]), and the
//! environment variables and flags are mapped to field paths with the crate's own rules
//! (prefix, `__` separator, lowercase). The environment is an argument
//! ([`DaemonConfig::load_with_env`]); only [`DaemonConfig::load`] and
//! [`DaemonConfig::check`] read the process's, so tests never race on it.
//!
//! Validation touches the file system where the daemon will: `state_dir` (and the journal
//! directory) are created if missing and proven writable with a probe file, collector
//! control-file directories must exist and be writable, a token file must be readable.
//! Relative paths resolve against the config file's directory when written in the file,
//! against the working directory when given in the environment or on the command line.

use crate::fsutil::{io_hint, io_text};
use crate::policy::{PolicyError, Positions, Problem, ValidatedPolicy, dur, num, promql_problem};
use crate::sim::scenario::Rescale;
use ::config::{Value, ValueKind};
use reqwest::Url;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Prefix of the environment variables that override config fields.
pub const ENV_PREFIX: &str = "PHOENIX";
/// Separator between the prefix, sections and keys in those variables.
pub const ENV_SEPARATOR: &str = "__";
/// Shortest admin token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Default of `state_snapshot_interval`: a restart after a crash loses at most a
/// minute of sample history and detector memory (never a decision, which is written at
/// once), and 10,000 pipelines of state (about 77 MB of JSON) are written once a minute
/// rather than every tick.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

/// Longest restart delay of the supervisor, however many restarts came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Largest config file read; a config is a few kilobytes, anything bigger is the wrong file.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Largest token file read; a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;
/// Longest collector or watch name (it becomes a metric label value).
const MAX_NAME_LEN: usize = 64;
/// Longest pipeline name: it is a label value from query results, so only sanity limits.
const MAX_PIPELINE_LEN: usize = 128;
/// Most pipelines `max_pipelines` may allow: each costs an engine and its metrics.
const MAX_MAX_PIPELINES: u64 = 1_000_000;
/// The catch-all entry of `collectors[].pipelines`.
const ALL_PIPELINES: &str = "*";
/// `tracing` level names, for telling a level from a (probably misspelt) bare target.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
const DAY: Duration = secs(86_400);

/// Top-level keys, in the order of `configs/phoenix.yaml`.
const TOP_KEYS: &[&str] = &[
    "prometheus",
    "source",
    "replay",
    "sampling",
    "policy",
    "pipelines",
    "watch",
    "state_dir",
    "state_snapshot_interval",
    "journal",
    "http",
    "log",
    "collectors",
    "supervision",
];
/// Sections that are lists of mappings: the environment cannot address their items.
const LIST_SECTIONS: &[&str] = &["collectors", "watch"];
const PROMETHEUS_KEYS: &[&str] = &["url", "timeout", "headers"];
const REPLAY_KEYS: &[&str] = &["trace", "journal", "speed", "budget_scale", "pipeline"];
const SAMPLING_KEYS: &[&str] = &["interval"];
const PIPELINES_KEYS: &[&str] = &[
    "discover",
    "include",
    "budgets",
    "default_budget",
    "keep_vanished",
    "max_pipelines",
];
const WATCH_KEYS: &[&str] = &["name", "query", "request_emergency"];
const JOURNAL_KEYS: &[&str] = &["path", "rotate_bytes", "retention", "enabled"];
const HTTP_KEYS: &[&str] = &[
    "listen",
    "admin_token",
    "admin_token_file",
    "max_body_bytes",
];
const LOG_KEYS: &[&str] = &["format", "level"];
const COLLECTOR_KEYS: &[&str] = &[
    "name",
    "backend",
    "pipelines",
    "file",
    "min_reload_interval",
    "coalesce",
];
const FILE_BACKEND_KEYS: &[&str] = &["path"];
const PROMETHEUS_BACKEND_KEYS: &[&str] = &[
    "base_config",
    "config_path",
    "jobs",
    "reload",
    "verify",
    "promtool",
];
const PROMETHEUS_RELOAD_KEYS: &[&str] = &["url", "retry_for"];
const PROMETHEUS_VERIFY_KEYS: &[&str] = &["url", "timeout"];
const OTELCOL_BACKEND_KEYS: &[&str] = &[
    "base_config",
    "config_path",
    "pipelines",
    "reload",
    "verify",
    "validator",
];
const OTELCOL_RELOAD_KEYS: &[&str] = &["signal", "command", "timeout", "retry_for"];
const OTELCOL_SIGNAL_KEYS: &[&str] = &["pidfile"];
const OTELCOL_VERIFY_KEYS: &[&str] = &["health_url", "timeout"];
const SUPERVISION_KEYS: &[&str] = &["max_restarts", "window", "backoff"];
/// Backend names the schema knows.
const BACKENDS: &[&str] = &["file", "prometheus", "otelcol"];

/// Command-line overrides of `phoenix run`; each wins over the file and the environment.
/// Strings rather than parsed types, so a bad flag is reported with the config's other
/// problems, in the same words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `--listen ADDR`: replaces `http.listen`.
    pub listen: Option<String>,
    /// `--journal DIR`: replaces `journal.path` (relative to the working directory).
    pub journal: Option<PathBuf>,
    /// `--state-dir DIR`: replaces `state_dir` (relative to the working directory).
    pub state_dir: Option<PathBuf>,
    /// `--log-format text|json`: replaces `log.format`.
    pub log_format: Option<String>,
}

/// Why a daemon config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read at all.
    #[error("cannot read {}: {} ({})", path.display(), io_text(err), read_hint(err))]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said. Its text is already in the message, so it is not exposed as
        /// `source()`: a chain printer would repeat it.
        err: io::Error,
    },
    /// The config (or, from `check`, the policy it names) is invalid; `problems` is never
    /// empty, one line each.
    #[error("{}", render(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every problem found: the file's in line order, then the environment's, the
        /// command line's, and last the policy's.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The individual problems (empty for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// What to do about a config file that cannot be read.
fn read_hint(err: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match err.kind() {
        K::NotFound => "check the path given to --config",
        K::PermissionDenied => "check the file's permissions and the user Phoenix runs as",
        K::IsADirectory => "give the path of a .yaml file, not a directory",
        K::InvalidData => "the config must be UTF-8 text",
        _ => "check the file",
    }
}

/// Where the daemon reads its signals from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Live: the policy's PromQL against `prometheus.url`.
    Prometheus,
    /// A recorded trace or journal fed through the same path, for demos and rehearsals.
    Replay(ReplayConfig),
}

/// What a replay reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayInput {
    /// A trace file: CSV (`timestamp,value`) or a saved Prometheus `query_range` response.
    Trace(PathBuf),
    /// A journal written by the daemon or by `phoenix simulate --journal`.
    Journal(PathBuf),
}

/// `replay:`, present when `source: replay`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayConfig {
    /// The recording (resolved, checked readable).
    input: ReplayInput,
    /// Trace seconds per wall-clock second, in (0, 10000].
    speed: f64,
    /// Optional rescale of the trace's min/max onto multiples of the budget.
    budget_scale: Option<Rescale>,
    /// Pipeline the trace feeds.
    pipeline: String,
}

impl ReplayConfig {
    /// The trace or journal to replay.
    pub fn input(&self) -> &ReplayInput {
        &self.input
    }
    /// Trace time per wall-clock time: 60 replays a minute of trace each second.
    pub fn speed(&self) -> f64 {
        self.speed
    }
    /// Rescale of the trace onto multiples of the budget, as scenarios' `rescale`.
    pub fn budget_scale(&self) -> Option<Rescale> {
        self.budget_scale
    }
    /// Pipeline name the trace's values belong to.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }
}

/// `prometheus:`, the HTTP API the sampler and the detector query.
#[derive(Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL including any path prefix (Mimir: `/prometheus`); http or https.
    url: Url,
    /// Per-query timeout, in (0, 5m].
    timeout: Duration,
    /// Extra request headers (tenant header for Mimir/Cortex), names valid and unique.
    headers: Vec<(String, String)>,
}

impl fmt::Debug for PrometheusConfig {
    /// Header values may be credentials (`Authorization`): only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .field("headers", &names)
            .finish()
    }
}

impl PrometheusConfig {
    /// Base URL of the Prometheus HTTP API (without `/api/v1`).
    pub fn url(&self) -> &Url {
        &self.url
    }
    /// Timeout of each query.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Extra headers sent with every query, as written (names checked valid).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// `pipelines:`, which pipelines are tracked and their budgets.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelinesConfig {
    /// Take pipelines from the policy's `group_by` label in query results.
    discover: bool,
    /// Pipelines always tracked (with `discover: false`, exactly these).
    include: Vec<String>,
    /// Per-pipeline budgets, series.
    budgets: BTreeMap<String, f64>,
    /// Budget of a pipeline without its own; `None` falls back to the policy's.
    default_budget: Option<f64>,
    /// How long a pipeline missing from results keeps its engine.
    keep_vanished: Duration,
    /// Most pipelines tracked at once.
    max_pipelines: usize,
}

impl PipelinesConfig {
    /// Whether pipelines are discovered from query results.
    pub fn discover(&self) -> bool {
        self.discover
    }
    /// Pipelines listed explicitly.
    pub fn include(&self) -> &[String] {
        &self.include
    }
    /// Per-pipeline budget overrides, series.
    pub fn budgets(&self) -> &BTreeMap<String, f64> {
        &self.budgets
    }
    /// The config's default budget, if set (see [`DaemonConfig::budget_for`]).
    pub fn default_budget(&self) -> Option<f64> {
        self.default_budget
    }
    /// How long a vanished pipeline keeps its engine before it is dropped.
    pub fn keep_vanished(&self) -> Duration {
        self.keep_vanished
    }
    /// Most pipelines tracked; more are refused (a label explosion in `group_by` itself).
    pub fn max_pipelines(&self) -> usize {
        self.max_pipelines
    }
}

/// One `watch:` item: an extra signal scored by the detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// `[a-z0-9_]{1,64}`, unique; a metric label value.
    name: String,
    /// PromQL returning an instant vector, one series per pipeline.
    query: String,
    /// Whether an anomaly on this signal may request an emergency.
    request_emergency: bool,
}

impl WatchConfig {
    /// Signal name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The PromQL query (parsed fine at load).
    pub fn query(&self) -> &str {
        &self.query
    }
    /// Whether the detector may request an emergency from this signal.
    pub fn request_emergency(&self) -> bool {
        self.request_emergency
    }
}

/// `journal:`, the record of every engine step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory of gzip segments (created and checked writable when enabled).
    path: PathBuf,
    /// Segment size at which a new segment starts.
    rotate_bytes: u64,
    /// Segments older than this are deleted.
    retention: Duration,
    /// Whether the journal is written at all.
    enabled: bool,
}

impl JournalConfig {
    /// Directory of the segments.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Bytes after which a segment is closed and a new one started.
    pub fn rotate_bytes(&self) -> u64 {
        self.rotate_bytes
    }
    /// Age after which segments are deleted.
    pub fn retention(&self) -> Duration {
        self.retention
    }
    /// Whether to journal.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// A secret that never shows in `Debug` output (configs end up in logs and panics).
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `http:`, the metrics, status and override endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Socket address to bind.
    listen: SocketAddr,
    /// Bearer token of the override API; `None` disables that API.
    admin_token: Option<Secret>,
    /// Largest request body accepted.
    max_body_bytes: usize,
}

impl HttpConfig {
    /// Address to bind.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }
    /// The override API's bearer token (at least 16 printable bytes), or `None`: the
    /// override API is disabled.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_ref().map(|s| s.0.as_str())
    }
    /// Largest request body, bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    format: LogFormat,
    /// An `EnvFilter` directive (checked to parse).
    level: String,
}

impl LogConfig {
    /// Line format.
    pub fn format(&self) -> LogFormat {
        self.format
    }
    /// The filter directive, for `tracing_subscriber::EnvFilter::try_new`.
    pub fn level(&self) -> &str {
        &self.level
    }
}

/// Which pipelines a collector carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineSelector {
    /// `["*"]`: every pipeline no other collector lists (at most one collector says so).
    All,
    /// Exactly these (each in one collector only).
    Only(Vec<String>),
}

/// How a collector's config is written and reloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A small control file another process watches.
    File {
        /// The control file (its directory exists and is writable).
        path: PathBuf,
    },
    /// A Prometheus acting as the collector: its config is rendered, reloaded, verified.
    Prometheus(crate::actuator::PrometheusSettings),
    /// An OpenTelemetry Collector: its config is rendered, validated, reloaded, verified.
    Otelcol(crate::actuator::OtelcolSettings),
}

/// One `collectors:` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// `[a-z0-9_-]{1,64}`, unique.
    name: String,
    /// The backend and its settings.
    backend: Backend,
    /// Pipelines it carries.
    pipelines: PipelineSelector,
    /// Shortest time between two applies (reloads) of this collector.
    min_reload_interval: Duration,
    /// Switches of several pipelines within this window become one apply.
    coalesce: Duration,
}

impl CollectorConfig {
    /// Collector name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Backend and its settings.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
    /// Pipelines it carries.
    pub fn pipelines(&self) -> &PipelineSelector {
        &self.pipelines
    }
    /// Rate bound on applies.
    pub fn min_reload_interval(&self) -> Duration {
        self.min_reload_interval
    }
    /// Coalescing window of switches into one apply.
    pub fn coalesce(&self) -> Duration {
        self.coalesce
    }
}

/// `supervision:`, the root supervisor's restart policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisionConfig {
    /// Restarts allowed per child within `window` before safe hold.
    max_restarts: u32,
    /// Window over which restarts are counted.
    window: Duration,
    /// First restart delay.
    backoff: Duration,
}

impl SupervisionConfig {
    /// Restarts per child within [`window`](Self::window); past that, safe hold.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }
    /// Restart counting window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// First restart delay.
    pub fn backoff(&self) -> Duration {
        self.backoff
    }
    /// Delay before the restart that follows `restarts` earlier ones in the window:
    /// `backoff` doubled per restart, at most [`MAX_BACKOFF`].
    pub fn backoff_after(&self, restarts: u32) -> Duration {
        let factor = 1u32.checked_shl(restarts.min(31)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// A validated daemon config; build one with [`DaemonConfig::load`],
/// [`load_with_env`](Self::load_with_env), [`from_text`](Self::from_text) or
/// [`check`](Self::check).
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Where each field came from, to locate problems found later (a policy reload).
    origins: Arc<Origins>,
    /// The signal source.
    source: Source,
    /// The Prometheus API, when a URL is set (always for `source: prometheus`).
    prometheus: Option<PrometheusConfig>,
    /// Sampling interval; `None` means the policy's tick.
    sampling_interval: Option<Duration>,
    /// The policy file (resolved, not yet read).
    policy: PathBuf,
    /// Pipeline tracking and budgets.
    pipelines: PipelinesConfig,
    /// Extra signals for the detector.
    watch: Vec<WatchConfig>,
    /// Persistent state (created, writable).
    state_dir: PathBuf,
    state_snapshot_interval: Duration,
    /// The journal.
    journal: JournalConfig,
    /// The HTTP server.
    http: HttpConfig,
    /// Logging.
    log: LogConfig,
    /// Collectors, at least one.
    collectors: Vec<CollectorConfig>,
    /// Restart policy.
    supervision: SupervisionConfig,
}

impl DaemonConfig {
    /// Loads `path` with the process's `PHOENIX__*` environment and `overrides`.
    pub fn load(path: &Path, overrides: &CliOverrides) -> Result<Self, ConfigError> {
        let (env, unreadable) = process_env();
        Self::evaluate_file(path, &env, &unreadable, overrides)?.finish()
    }

    /// Loads `path` with `env` standing for the environment (name, value pairs; names
    /// without the `PHOENIX__` prefix are ignored) and `overrides`.
    pub fn load_with_env(
        path: &Path,
        env: &[(String, String)],
        overrides: &CliOverrides,
    ) -> Result<Self, ConfigError> {
        Self::evaluate_file(path, env, &[], overrides)?.finish()
    }

    /// Validates config `text` as if read from `path`: problems name `path`, and relative
    /// paths in it resolve against `path`'s directory.
    pub fn from_text(
        text: &str,
        path: &Path,
        env: &[(String, String)],
        overrides: &CliOverrides,
    ) -> Result<Self, ConfigError> {
        evaluate(text, path, env, &[], overrides).finish()
    }

    /// `phoenix run --check`: [`load`](Self::load), and also loads and validates the
    /// policy file, with its problems (and the rules joining the two) in the same report.
    pub fn check(path: &Path, overrides: &CliOverrides) -> Result<Self, ConfigError> {
        let (env, unreadable) = process_env();
        Self::evaluate_file(path, &env, &unreadable, overrides)?.check()
    }

    /// [`check`](Self::check) with `env` standing for the environment.
    pub fn check_with_env(
        path: &Path,
        env: &[(String, String)],
        overrides: &CliOverrides,
    ) -> Result<Self, ConfigError> {
        Self::evaluate_file(path, env, &[], overrides)?.check()
    }

    /// The rules joining this config and a policy: a budget for every pipeline (the
    /// config's or the policy's `budget_series`), and watch queries that keep the
    /// policy's `group_by` label. The daemon calls it at start and before swapping in a
    /// reloaded policy; problems are located in the config.
    pub fn check_policy(&self, policy: &ValidatedPolicy) -> Result<(), ConfigError> {
        let mut ctx = Ctx::new(self.origins.clone());
        policy_rules(&mut ctx, self, policy);
        ctx.into_result()
    }

    fn evaluate_file(
        path: &Path,
        env: &[(String, String)],
        unreadable: &[String],
        overrides: &CliOverrides,
    ) -> Result<Outcome, ConfigError> {
        let io = |err| ConfigError::Io {
            path: path.to_path_buf(),
            err,
        };
        let meta = fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            return Err(io(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: vec![Problem {
                    path: path.display().to_string(),
                    line: None,
                    col: None,
                    field: String::new(),
                    message: format!(
                        "file is {} bytes; a daemon config is a few kilobytes (limit {MAX_FILE_BYTES}), is this the right file?",
                        meta.len()
                    ),
                }],
            });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        Ok(evaluate(&text, path, env, unreadable, overrides))
    }

    /// The config file as given.
    pub fn path(&self) -> &Path {
        &self.origins.path
    }
    /// Where signals come from.
    pub fn source(&self) -> &Source {
        &self.source
    }
    /// The Prometheus API; always `Some` with `source: prometheus` or watch signals.
    pub fn prometheus(&self) -> Option<&PrometheusConfig> {
        self.prometheus.as_ref()
    }
    /// The configured sampling interval; `None` means the policy's tick.
    pub fn sampling_interval(&self) -> Option<Duration> {
        self.sampling_interval
    }
    /// The sampling interval in effect under `policy`.
    pub fn effective_sampling_interval(&self, policy: &ValidatedPolicy) -> Duration {
        self.sampling_interval.unwrap_or_else(|| policy.tick())
    }
    /// The policy file (resolved path).
    pub fn policy_path(&self) -> &Path {
        &self.policy
    }
    /// Pipeline tracking and budgets.
    pub fn pipelines(&self) -> &PipelinesConfig {
        &self.pipelines
    }
    /// Budget of `pipeline`: its own, else `pipelines.default_budget`, else the policy's
    /// `budget_series`. `None` only when [`check_policy`](Self::check_policy) fails.
    pub fn budget_for(&self, pipeline: &str, policy: &ValidatedPolicy) -> Option<f64> {
        self.pipelines
            .budgets
            .get(pipeline)
            .copied()
            .or(self.pipelines.default_budget)
            .or_else(|| policy.budget_series())
    }
    /// Extra signals for the detector.
    pub fn watch(&self) -> &[WatchConfig] {
        &self.watch
    }
    /// Persistent state directory (exists, writable at load).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Longest time between two writes of the engines' state when no decision changed
    /// (a decision, an apply outcome or a command is written at once).
    pub fn state_snapshot_interval(&self) -> Duration {
        self.state_snapshot_interval
    }
    /// Journal settings.
    pub fn journal(&self) -> &JournalConfig {
        &self.journal
    }
    /// HTTP server settings.
    pub fn http(&self) -> &HttpConfig {
        &self.http
    }
    /// Logging settings.
    pub fn log(&self) -> &LogConfig {
        &self.log
    }
    /// Collectors, at least one, names unique, pipelines not shared.
    pub fn collectors(&self) -> &[CollectorConfig] {
        &self.collectors
    }
    /// The collector carrying `pipeline`: the one listing it, else the `["*"]` one;
    /// `None` when no collector carries it (it cannot be acted on).
    pub fn collector_for(&self, pipeline: &str) -> Option<&CollectorConfig> {
        let listing = self.collectors.iter().find(|c| match &c.pipelines {
            PipelineSelector::Only(ps) => ps.iter().any(|p| p == pipeline),
            PipelineSelector::All => false,
        });
        listing.or_else(|| {
            self.collectors
                .iter()
                .find(|c| c.pipelines == PipelineSelector::All)
        })
    }
    /// Restart policy.
    pub fn supervision(&self) -> &SupervisionConfig {
        &self.supervision
    }
}

/// The `PHOENIX__*` variables of this process. Variables that are not UTF-8 are returned
/// by (lossy) name, to be reported.
fn process_env() -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut unreadable = Vec::new();
    for (k, v) in std::env::vars_os() {
        let name = k.to_string_lossy().into_owned();
        if env_field(&name).is_none() {
            continue;
        }
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => env.push((k, v)),
            _ => unreadable.push(name),
        }
    }
    (env, unreadable)
}

/// The field path an environment variable sets, by the `config` crate's rules (case
/// folded, prefix and separator `__`); `None` when it is not one of ours.
fn env_field(var: &str) -> Option<String> {
    let lower = var.to_lowercase();
    let pattern = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let rest = lower.strip_prefix(&pattern)?;
    Some(rest.replace(ENV_SEPARATOR, "."))
}

/// Where the values of one load came from, to point each problem at its source.
struct Origins {
    /// The config file as given.
    path: PathBuf,
    /// The same, for messages.
    file: String,
    /// Absolute directory of the config file: base of relative paths written in it.
    dir: PathBuf,
    /// Positions of the file's keys.
    positions: Positions,
    /// Field path → environment variable that set it.
    env: BTreeMap<String, String>,
    /// Field path → flag that set it.
    cli: BTreeMap<String, &'static str>,
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origins")
            .field("file", &self.file)
            .field("env", &self.env.values().collect::<Vec<_>>())
            .field("cli", &self.cli.values().collect::<Vec<_>>())
            .finish()
    }
}

/// Where one field's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin<'a> {
    /// The file (or nowhere: a default, located through the file).
    File,
    /// An environment variable.
    Env(&'a str),
    /// A command-line flag.
    Cli(&'static str),
}

impl Origins {
    fn of(&self, field: &str) -> Origin<'_> {
        if let Some(flag) = self.cli.get(field) {
            return Origin::Cli(flag);
        }
        // The variable that set this field or a section containing it...
        let mut f = field;
        loop {
            if let Some(var) = self.env.get(f) {
                return Origin::Env(var);
            }
            match f.rfind(['.', '[']) {
                Some(i) => f = &f[..i],
                None => break,
            }
        }
        // ...or one that set something inside it (which reshaped it).
        if !field.is_empty() {
            let below = self.env.iter().find(|(k, _)| {
                k.strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
            });
            if let Some((_, var)) = below {
                return Origin::Env(var);
            }
        }
        Origin::File
    }

    /// Resolves a path written at `field`: against the config file's directory when it
    /// came from the file, against the working directory otherwise.
    fn resolve(&self, field: &str, p: &str) -> PathBuf {
        match self.of(field) {
            Origin::File => self.dir.join(p),
            _ => std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p)),
        }
    }
}

/// A problem with its sort rank: file problems with a position first (in line order),
/// then unlocated ones, the environment's, the command line's.
struct Ranked {
    rank: u8,
    problem: Problem,
}

/// Collects problems for one load.
struct Ctx {
    origins: Arc<Origins>,
    problems: Vec<Ranked>,
    /// Fields already reported, so dependent rules do not pile on.
    failed: BTreeSet<String>,
}

/// The result of reading one config: the config when it got that far, and the problems.
struct Outcome {
    config: Option<DaemonConfig>,
    ctx: Ctx,
}

impl Outcome {
    fn finish(self) -> Result<DaemonConfig, ConfigError> {
        let path = self.ctx.origins.path.clone();
        self.ctx.into_result()?;
        self.config.ok_or_else(|| rejected(path))
    }

    /// Adds the policy's problems and the joint rules, as `phoenix run --check` reports.
    fn check(mut self) -> Result<DaemonConfig, ConfigError> {
        let mut policy_problems = Vec::new();
        if let Some(config) = &self.config
            && !self.ctx.failed.contains("policy")
        {
            match ValidatedPolicy::from_file(&config.policy) {
                Ok(policy) => policy_rules(&mut self.ctx, config, &policy),
                Err(e @ PolicyError::Io { .. }) => self.ctx.at("policy", e.to_string()),
                Err(PolicyError::Invalid { problems, .. }) => policy_problems = problems,
            }
        }
        let path = self.ctx.origins.path.clone();
        let mut problems = match self.ctx.into_result() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => return Err(e),
        };
        // The policy's own lines come last, in its file's order.
        problems.extend(policy_problems);
        if problems.is_empty() {
            self.config.ok_or_else(|| rejected(path))
        } else {
            Err(ConfigError::Invalid { path, problems })
        }
    }
}

/// Unreachable by construction (every early stop reports why); never hand out an error
/// without a reason.
fn rejected(path: PathBuf) -> ConfigError {
    ConfigError::Invalid {
        problems: vec![Problem {
            path: path.display().to_string(),
            line: None,
            col: None,
            field: String::new(),
            message: "config rejected".to_string(),
        }],
        path,
    }
}

/// Rules that need both the config and the policy.
fn policy_rules(ctx: &mut Ctx, config: &DaemonConfig, policy: &ValidatedPolicy) {
    let p = &config.pipelines;
    let all_listed = !p.discover
        && !p.include.is_empty()
        && p.include.iter().all(|name| p.budgets.contains_key(name));
    if p.default_budget.is_none()
        && policy.budget_series().is_none()
        && !all_listed
        && !ctx.failed.contains("pipelines.default_budget")
    {
        ctx.at(
            "pipelines.default_budget",
            format!(
                "no budget: neither this field nor the policy's budget_series ({}) is set; set one (series per pipeline, e.g. 100000)",
                policy.origin()
            ),
        );
    }
    let group_by = &policy.signals().group_by;
    for (i, w) in config.watch.iter().enumerate() {
        if let Some(m) = promql_problem(&w.query, group_by) {
            ctx.at(&format!("watch[{i}].query"), m);
        }
    }
}

impl Ctx {
    fn new(origins: Arc<Origins>) -> Self {
        Ctx {
            origins,
            problems: Vec::new(),
            failed: BTreeSet::new(),
        }
    }

    /// Reports a problem about `field`, located where its value came from.
    fn at(&mut self, field: &str, message: impl Into<String>) {
        self.failed.insert(field.to_string());
        let o = &self.origins;
        let (rank, path, pos) = match o.of(field) {
            Origin::File => {
                let pos = o.positions.find(field);
                (u8::from(pos.is_none()), o.file.clone(), pos)
            }
            Origin::Env(var) => (2, format!("env {var}"), None),
            Origin::Cli(flag) => (3, flag.to_string(), None),
        };
        self.problems.push(Ranked {
            rank,
            problem: Problem {
                path,
                line: pos.map(|p| p.line),
                col: pos.map(|p| p.col),
                field: field.to_string(),
                message: message.into(),
            },
        });
    }

    /// Reports a problem at a known spot of the file (syntax, duplicates).
    fn at_pos(&mut self, field: &str, line: Option<usize>, col: Option<usize>, message: String) {
        self.problems.push(Ranked {
            rank: u8::from(line.is_none()),
            problem: Problem {
                path: self.origins.file.clone(),
                line,
                col,
                field: field.to_string(),
                message,
            },
        });
    }

    /// Reports a problem with an environment variable that never reached the config.
    fn at_env(&mut self, var: &str, field: &str, message: String) {
        self.problems.push(Ranked {
            rank: 2,
            problem: Problem {
                path: format!("env {var}"),
                line: None,
                col: None,
                field: field.to_string(),
                message,
            },
        });
    }

    /// `Ok` when nothing was reported; otherwise every problem, file ones in line order,
    /// then the environment's and the command line's.
    fn into_result(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let mut ranked = self.problems;
        ranked.sort_by_key(|r| (r.rank, r.problem.line, r.problem.col));
        Err(ConfigError::Invalid {
            path: self.origins.path.clone(),
            problems: ranked.into_iter().map(|r| r.problem).collect(),
        })
    }
}

/// Reads `text` (as if from `path`) through the three layers and validates it.
fn evaluate(
    text: &str,
    path: &Path,
    env: &[(String, String)],
    unreadable: &[String],
    overrides: &CliOverrides,
) -> Outcome {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());

    // The environment, as the `config` crate will see it, and which field each sets.
    let mut env_source: HashMap<String, String> = HashMap::new();
    let mut env_fields: BTreeMap<String, String> = BTreeMap::new();
    let mut env_problems: Vec<(String, String, String)> = Vec::new();
    for (var, value) in env {
        let Some(field) = env_field(var) else {
            continue;
        };
        let root = field.split(['.', '[']).next().unwrap_or("").to_string();
        if let Some(first) = env_fields.get(&field) {
            // Two spellings of one field (case differs): which wins would be arbitrary.
            env_problems.push((
                var.clone(),
                field,
                format!("{first} sets the same field; set only one of them"),
            ));
        } else if LIST_SECTIONS.contains(&root.as_str()) {
            env_problems.push((
                var.clone(),
                field,
                format!("`{root}` is a list and cannot be set from the environment; edit the config file"),
            ));
        } else {
            env_fields.insert(field, var.clone());
            env_source.insert(var.clone(), value.clone());
        }
    }

    // The command line, as overrides on fixed fields.
    let mut cli_fields: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut cli_values: Vec<(&'static str, String)> = Vec::new();
    let mut cli_problems: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut add = |field: &'static str, flag: &'static str, value: Option<String>| {
        if let Some(v) = value {
            cli_fields.insert(field.to_string(), flag);
            cli_values.push((field, v));
        }
    };
    add("http.listen", "--listen", overrides.listen.clone());
    add("log.format", "--log-format", overrides.log_format.clone());
    for (field, flag, p) in [
        ("journal.path", "--journal", &overrides.journal),
        ("state_dir", "--state-dir", &overrides.state_dir),
    ] {
        match p.as_deref().map(Path::to_str) {
            None => {}
            Some(Some(s)) => add(field, flag, Some(s.to_string())),
            Some(None) => cli_problems.push((
                flag,
                field,
                "the path is not UTF-8; choose a path in UTF-8".to_string(),
            )),
        }
    }

    let origins = Arc::new(Origins {
        path: path.to_path_buf(),
        file: path.display().to_string(),
        dir,
        positions: Positions::of(text),
        env: env_fields,
        cli: cli_fields,
    });
    let mut ctx = Ctx::new(origins.clone());
    for (var, field, message) in env_problems {
        ctx.at_env(&var, &field, message);
    }
    for var in unreadable {
        ctx.at_env(
            var,
            &env_field(var).unwrap_or_default(),
            "the value is not UTF-8 text".to_string(),
        );
    }
    for (flag, field, message) in cli_problems {
        ctx.problems.push(Ranked {
            rank: 3,
            problem: Problem {
                path: flag.to_string(),
                line: None,
                col: None,
                field: field.to_string(),
                message,
            },
        });
    }

    if !syntax_ok(text, &mut ctx) {
        return Outcome { config: None, ctx };
    }

    let mut builder = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Yaml))
        .add_source(
            ::config::Environment::with_prefix(ENV_PREFIX)
                .separator(ENV_SEPARATOR)
                .source(Some(env_source)),
        );
    for (field, value) in cli_values {
        builder = match builder.set_override(field, value) {
            Ok(b) => b,
            Err(e) => {
                ctx.at(field, format!("cannot apply the override: {e}"));
                return Outcome { config: None, ctx };
            }
        };
    }
    let merged = match builder.build() {
        Ok(c) => c.cache,
        Err(e) => {
            ctx.at_pos("", None, None, format!("cannot read the config: {e}"));
            return Outcome { config: None, ctx };
        }
    };
    let empty = ::config::Map::new();
    let root = match &merged.kind {
        ValueKind::Table(t) => t,
        _ => &empty,
    };
    let config = sections(&mut ctx, root);
    Outcome {
        config: Some(config),
        ctx,
    }
}

/// YAML-level checks before merging: nesting, duplicate keys (the `config` crate would
/// keep one silently), syntax with serde_yaml_ng's position, and a mapping at the top.
fn syntax_ok(text: &str, ctx: &mut Ctx) -> bool {
    let positions = &ctx.origins.positions;
    if let Some(pos) = positions.too_deep {
        let (l, c) = (pos.line, pos.col);
        ctx.at_pos(
            "",
            Some(l),
            Some(c),
            "nested too deeply; a daemon config needs at most 4 levels".to_string(),
        );
        return false;
    }
    if !positions.duplicates.is_empty() {
        let dups: Vec<_> = positions
            .duplicates
            .iter()
            .map(|(f, p)| (f.clone(), p.line, p.col))
            .collect();
        for (field, line, col) in dups {
            ctx.at_pos(
                &field,
                Some(line),
                Some(col),
                "duplicate key; each key may appear only once".to_string(),
            );
        }
        return false;
    }
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Err(e) => {
            let loc = e.location();
            let mut msg = e.to_string();
            if let Some(l) = &loc
                && let Some(cut) = msg.find(&format!(" at line {} column {}", l.line(), l.column()))
            {
                msg.truncate(cut);
            }
            ctx.at_pos(
                "",
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
                format!("invalid YAML: {msg}"),
            );
            false
        }
        Ok(serde_yaml_ng::Value::Mapping(_) | serde_yaml_ng::Value::Null) => true,
        Ok(_) => {
            ctx.at_pos(
                "",
                Some(1),
                Some(1),
                "a daemon config must be a mapping of `key: value` lines (see docs/operations.md)"
                    .to_string(),
            );
            false
        }
    }
}

type Table = ::config::Map<String, Value>;

/// `parent.key`, or `key` at the top.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value that is set: absent keys and YAML nulls (`key:` or `key: ~`) mean "default".
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !matches!(v.kind, ValueKind::Nil))
}

/// What a value is, for type errors; the value itself only when `show`.
fn describe(v: &Value, show: bool) -> String {
    let (kind, text) = match &v.kind {
        ValueKind::Nil => return "nothing".to_string(),
        ValueKind::Boolean(b) => ("a boolean", b.to_string()),
        ValueKind::I64(i) => ("an integer", i.to_string()),
        ValueKind::I128(i) => ("an integer", i.to_string()),
        ValueKind::U64(i) => ("an integer", i.to_string()),
        ValueKind::U128(i) => ("an integer", i.to_string()),
        ValueKind::Float(f) => ("a number", f.to_string()),
        ValueKind::String(s) => ("a string", format!("{s:?}")),
        ValueKind::Table(_) => return "a mapping".to_string(),
        ValueKind::Array(_) => return "a list".to_string(),
    };
    if show {
        format!("{kind} `{text}`")
    } else {
        kind.to_string()
    }
}

/// Levenshtein distance, for "did you mean" on unknown keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// One end of a numeric range.
#[derive(Clone, Copy)]
enum End {
    Open(f64),
    Closed(f64),
}

impl End {
    fn admits_above(self, v: f64) -> bool {
        match self {
            End::Open(l) => v > l,
            End::Closed(l) => v >= l,
        }
    }
    fn admits_below(self, v: f64) -> bool {
        match self {
            End::Open(h) => v < h,
            End::Closed(h) => v <= h,
        }
    }
}

fn range_text(lo: End, hi: End) -> String {
    let (lb, l) = match lo {
        End::Open(l) => ("(", l),
        End::Closed(l) => ("[", l),
    };
    let (hb, h) = match hi {
        End::Open(h) => (")", h),
        End::Closed(h) => ("]", h),
    };
    format!("{lb}{}, {}{hb}", num(l), num(h))
}

impl Ctx {
    /// Reports keys of `t` not in `keys`, with the expected ones and a near miss.
    fn unknown_keys(&mut self, field: &str, t: &Table, keys: &[&str]) {
        let mut unknown: Vec<&String> = t.keys().filter(|k| !keys.contains(&k.as_str())).collect();
        unknown.sort();
        for k in unknown {
            let near = keys
                .iter()
                .map(|c| (distance(k, c), *c))
                .filter(|(d, _)| *d <= 2)
                .min();
            let hint = near.map_or(String::new(), |(_, c)| format!(" (did you mean `{c}`?)"));
            self.at(
                &join(field, k),
                format!(
                    "unknown field `{k}`{hint}; expected one of: {}",
                    keys.join(", ")
                ),
            );
        }
    }

    /// A mapping section; `None` when absent or not a mapping (reported).
    fn table<'v>(&mut self, field: &str, v: Option<&'v Value>, keys: &[&str]) -> Option<&'v Table> {
        let v = present(v)?;
        match &v.kind {
            ValueKind::Table(t) => {
                self.unknown_keys(field, t, keys);
                Some(t)
            }
            _ => {
                self.at(
                    field,
                    format!(
                        "expected a mapping (keys: {}), found {}",
                        keys.join(", "),
                        describe(v, false)
                    ),
                );
                None
            }
        }
    }

    /// A list; `None` when absent or not a list (reported).
    fn list<'v>(&mut self, field: &str, v: Option<&'v Value>, what: &str) -> Option<&'v [Value]> {
        let v = present(v)?;
        match &v.kind {
            ValueKind::Array(a) => Some(a),
            _ => {
                self.at(
                    field,
                    format!("expected a list of {what}, found {}", describe(v, false)),
                );
                None
            }
        }
    }

    /// A string; numbers and booleans are refused (quote them), so `0012` stays `0012`.
    fn string(&mut self, field: &str, v: Option<&Value>) -> Option<String> {
        self.string_shown(field, v, true)
    }

    /// [`string`](Self::string) for secrets: the value never appears in a message.
    fn secret(&mut self, field: &str, v: Option<&Value>) -> Option<String> {
        self.string_shown(field, v, false)
    }

    fn string_shown(&mut self, field: &str, v: Option<&Value>, show: bool) -> Option<String> {
        let v = present(v)?;
        match &v.kind {
            ValueKind::String(s) => Some(s.clone()),
            ValueKind::Table(_) | ValueKind::Array(_) => {
                self.at(
                    field,
                    format!("expected a string, found {}", describe(v, false)),
                );
                None
            }
            _ => {
                self.at(
                    field,
                    format!(
                        "expected a string, found {}; put it in quotes",
                        describe(v, show)
                    ),
                );
                None
            }
        }
    }

    /// `true` or `false` (the environment's strings too).
    fn boolean(&mut self, field: &str, v: Option<&Value>) -> Option<bool> {
        let v = present(v)?;
        match &v.kind {
            ValueKind::Boolean(b) => Some(*b),
            ValueKind::String(s) if s.trim() == "true" => Some(true),
            ValueKind::String(s) if s.trim() == "false" => Some(false),
            _ => {
                self.at(
                    field,
                    format!("expected true or false, found {}", describe(v, true)),
                );
                None
            }
        }
    }

    /// A whole number in `[lo, hi]`; strings of digits (the environment's) too.
    fn integer(&mut self, field: &str, v: Option<&Value>, lo: u64, hi: u64) -> Option<u64> {
        let v = present(v)?;
        let n: Option<u64> = match &v.kind {
            ValueKind::I64(i) => u64::try_from(*i).ok(),
            ValueKind::I128(i) => u64::try_from(*i).ok(),
            ValueKind::U64(i) => Some(*i),
            ValueKind::U128(i) => u64::try_from(*i).ok(),
            ValueKind::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            Some(n) => {
                self.at(field, format!("{n} must be in [{lo}, {hi}]"));
                None
            }
            None => {
                self.at(
                    field,
                    format!(
                        "expected a whole number in [{lo}, {hi}], found {}",
                        describe(v, true)
                    ),
                );
                None
            }
        }
    }

    /// A finite number within `lo`..`hi`; numeric strings (the environment's) too.
    fn number(&mut self, field: &str, v: Option<&Value>, lo: End, hi: End) -> Option<f64> {
        let v = present(v)?;
        let n: Option<f64> = match &v.kind {
            ValueKind::I64(i) => Some(*i as f64),
            ValueKind::U64(i) => Some(*i as f64),
            ValueKind::I128(i) => Some(*i as f64),
            ValueKind::U128(i) => Some(*i as f64),
            ValueKind::Float(f) => Some(*f),
            ValueKind::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && lo.admits_above(n) && hi.admits_below(n) => Some(n),
            Some(n) => {
                self.at(
                    field,
                    format!("{} must be in {}", num(n), range_text(lo, hi)),
                );
                None
            }
            None => {
                self.at(
                    field,
                    format!(
                        "expected a number in {}, found {}",
                        range_text(lo, hi),
                        describe(v, true)
                    ),
                );
                None
            }
        }
    }

    /// A humantime duration with a unit, within `lo`..`hi` (`lo` excluded when `open`).
    fn duration(
        &mut self,
        field: &str,
        v: Option<&Value>,
        lo: Duration,
        open: bool,
        hi: Duration,
    ) -> Option<Duration> {
        const HINT: &str = "write a duration with a unit, e.g. 30s, 5m or 1h30m";
        let v = present(v)?;
        let d = match &v.kind {
            ValueKind::String(s) => {
                let t = s.trim();
                if t.starts_with('-') {
                    self.at(
                        field,
                        format!("invalid duration `{s}`: durations cannot be negative"),
                    );
                    return None;
                }
                match humantime::parse_duration(t) {
                    Ok(d) => d,
                    Err(e) => {
                        self.at(field, format!("invalid duration `{s}`: {e}; {HINT}"));
                        return None;
                    }
                }
            }
            ValueKind::I64(_)
            | ValueKind::U64(_)
            | ValueKind::I128(_)
            | ValueKind::U128(_)
            | ValueKind::Float(_) => {
                self.at(
                    field,
                    format!(
                        "invalid duration {}: missing unit; {HINT}",
                        describe(v, true)
                    ),
                );
                return None;
            }
            _ => {
                self.at(
                    field,
                    format!("expected a duration, found {}; {HINT}", describe(v, false)),
                );
                return None;
            }
        };
        let low_ok = if open { d > lo } else { d >= lo };
        if low_ok && d <= hi {
            Some(d)
        } else {
            let lb = if open { "(" } else { "[" };
            self.at(
                field,
                format!("{} must be in {lb}{}, {}]", dur(d), dur(lo), dur(hi)),
            );
            None
        }
    }

    /// One of `allowed`.
    fn choice(
        &mut self,
        field: &str,
        v: Option<&Value>,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let s = self.string(field, v)?;
        match allowed.iter().find(|a| **a == s.trim()) {
            Some(a) => Some(a),
            None => {
                self.at(
                    field,
                    format!("{s:?} is not one of: {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    /// A path, resolved against where it was written.
    fn path(&mut self, field: &str, v: Option<&Value>) -> Option<PathBuf> {
        let s = self.string(field, v)?;
        if s.trim().is_empty() {
            self.at(field, "the path is empty; give a file or directory path");
            return None;
        }
        Some(self.origins.resolve(field, &s))
    }

    /// A required value: reports it missing.
    fn required<'v>(&mut self, field: &str, v: Option<&'v Value>, what: &str) -> Option<&'v Value> {
        let p = present(v);
        if p.is_none() {
            self.at(field, format!("required field is missing; {what}"));
        }
        p
    }

    /// A list of pipeline names; the environment may give it as `a,b,c`.
    fn pipeline_list(&mut self, field: &str, v: Option<&Value>) -> Option<Vec<String>> {
        let v = present(v)?;
        if let ValueKind::String(s) = &v.kind
            && matches!(self.origins.of(field), Origin::Env(_))
        {
            let names = s
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            return self.check_names(field, names);
        }
        let items = self.list(field, Some(v), "pipeline names")?;
        let mut names = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(&format!("{field}[{i}]"), Some(item)) {
                Some(s) => names.push(s),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        self.check_names(field, names)
    }

    /// Pipeline names valid (or `*` where the caller allows it) and unique.
    fn check_names(&mut self, field: &str, names: Vec<String>) -> Option<Vec<String>> {
        let mut ok = true;
        let mut seen = BTreeSet::new();
        for (i, n) in names.iter().enumerate() {
            let item = format!("{field}[{i}]");
            if n != ALL_PIPELINES
                && let Some(m) = pipeline_problem(n)
            {
                self.at(&item, m);
                ok = false;
            } else if !seen.insert(n.as_str()) {
                self.at(&item, format!("{n:?} is listed twice"));
                ok = false;
            }
        }
        ok.then_some(names)
    }
}

/// Why `name` cannot be a pipeline name.
fn pipeline_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a pipeline name must not be empty".to_string())
    } else if name == ALL_PIPELINES {
        Some(
            "`*` is not a pipeline name; it means every pipeline only in collectors[].pipelines"
                .to_string(),
        )
    } else if name.chars().count() > MAX_PIPELINE_LEN {
        Some(format!(
            "pipeline name is longer than {MAX_PIPELINE_LEN} characters"
        ))
    } else if name.chars().any(char::is_control) {
        Some(format!("{name:?} contains control characters"))
    } else {
        None
    }
}

/// Why `name` cannot name a collector (`dash`: `-` allowed) or a watch signal.
fn name_problem(name: &str, dash: bool) -> Option<String> {
    let ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dash && c == '-'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok {
        let chars = if dash {
            "a-z, 0-9, '_' or '-'"
        } else {
            "a-z, 0-9 or '_'"
        };
        Some(format!(
            "{name:?} must be 1 to {MAX_NAME_LEN} characters of {chars} (it becomes a metric label value)"
        ))
    } else {
        None
    }
}

/// Why `token` is not an acceptable bearer token (never quoting it).
fn token_problem(token: &str) -> Option<String> {
    if token.len() < MIN_TOKEN_BYTES {
        Some(format!(
            "the token is {} bytes; use at least {MIN_TOKEN_BYTES} (e.g. the output of `openssl rand -hex 32`)",
            token.len()
        ))
    } else if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Some(
            "the token may hold only printable ASCII without spaces (it is sent as `Authorization: Bearer <token>`)"
                .to_string(),
        )
    } else {
        None
    }
}

/// Reads a token file: small, UTF-8, trailing line ends trimmed.
fn read_token_file(path: &Path) -> Result<String, String> {
    let show = path.display();
    let meta = fs::metadata(path).map_err(|e| {
        format!(
            "cannot read {show}: {} (check the path and its permissions)",
            io_text(&e)
        )
    })?;
    if meta.is_dir() {
        return Err(format!("{show} is a directory; give the token file"));
    }
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "{show} is {} bytes; a token file holds one line (limit {MAX_TOKEN_FILE_BYTES})",
            meta.len()
        ));
    }
    let bytes = fs::read(path).map_err(|e| {
        format!(
            "cannot read {show}: {} (check its permissions and the user Phoenix runs as)",
            io_text(&e)
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{show} is not UTF-8 text"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Makes each probe file name unique within the process (tests probe concurrently).
static PROBES: AtomicU64 = AtomicU64::new(0);

/// Proves `dir` writable by creating, writing and removing a file in it.
fn probe(dir: &Path) -> io::Result<()> {
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".phoenix-probe.{}.{n}", std::process::id()));
    let result = fs::File::create(&path).and_then(|mut f| f.write_all(b"probe\n"));
    let removed = fs::remove_file(&path);
    result.and(removed)
}

/// `dir` is a writable directory; created first when `create` and it is missing.
fn writable_dir(dir: &Path, create: bool) -> Result<(), String> {
    let show = dir.display();
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "{show} exists and is not a directory; choose a directory path"
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {show}: {} ({})", io_text(&e), io_hint(&e)))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "directory {show} does not exist; create it or choose another path"
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot use {show}: {} ({})",
                io_text(&e),
                io_hint(&e)
            ));
        }
    }
    probe(dir).map_err(|e| {
        format!(
            "cannot write in {show}: {} (choose a writable directory or fix its permissions)",
            io_text(&e)
        )
    })
}

/// `path` is a readable file.
fn readable_file(path: &Path) -> Result<(), String> {
    let show = path.display();
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{show} is a directory; give a file")),
        Ok(_) => fs::File::open(path).map(drop).map_err(|e| {
            format!(
                "cannot read {show}: {} (check its permissions)",
                io_text(&e)
            )
        }),
        Err(e) => Err(format!(
            "cannot read {show}: {} (check the path)",
            io_text(&e)
        )),
    }
}

/// Parses `MIN:MAX` multiples of the budget, as scenarios' `rescale` allows them.
fn budget_scale(s: &str) -> Result<Rescale, String> {
    const FORM: &str = "write MIN:MAX as multiples of the budget, e.g. \"0.4:2.2\"";
    let (a, b) = s.split_once(':').ok_or_else(|| format!("{s:?}: {FORM}"))?;
    let parse = |t: &str| -> Result<f64, String> {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (0.0..=1000.0).contains(v))
            .ok_or_else(|| format!("{s:?}: {t:?} is not a number in [0, 1000]; {FORM}"))
    };
    let (min, max) = (parse(a)?, parse(b)?);
    if min > max {
        return Err(format!(
            "{s:?}: MIN ({}) is above MAX ({}); MIN maps the trace's lowest value, MAX its highest",
            num(min),
            num(max)
        ));
    }
    Ok(Rescale { min, max })
}

/// Why `url` cannot be the Prometheus base URL.
fn url_problem(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| {
        format!("{s:?} is not a URL ({e}); write the base URL, e.g. http://127.0.0.1:9090")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme `{}` is not supported; use http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials in the URL end up in logs; send them as a header in prometheus.headers (Authorization)"
                .to_string(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "the base URL takes no query string or fragment; give scheme, host, port and any path prefix (e.g. /prometheus)"
                .to_string(),
        );
    }
    Ok(url)
}

/// Why `level` is not a usable log filter.
fn level_problem(level: &str) -> Option<String> {
    if level.trim().is_empty() {
        return Some(
            "the filter is empty; write a level such as info, or info,phoenix=debug".to_string(),
        );
    }
    for part in level.split(',').map(str::trim) {
        // A bare word is a *target* to EnvFilter, which then hides everything else:
        // almost always a misspelt level.
        if !part.is_empty()
            && !part.contains(['=', '['])
            && !LEVELS.contains(&part.to_ascii_lowercase().as_str())
        {
            return Some(format!(
                "`{part}` is not a level ({}); to filter a module write `{part}=debug`",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .err()
        .map(|e| format!("invalid filter directive: {e}"))
}

/// Reads every section of the merged tree; problems go to `ctx`, and failed fields hold
/// their defaults (the result is only handed out when there is no problem).
fn sections(ctx: &mut Ctx, root: &Table) -> DaemonConfig {
    ctx.unknown_keys("", root, TOP_KEYS);

    let source_name = ctx
        .choice("source", root.get("source"), &["prometheus", "replay"])
        .unwrap_or("prometheus");

    let watch = watch_section(ctx, root.get("watch"));
    // Judged on what is written, so broken watch items still ask for the URL.
    let has_watch = present(root.get("watch"))
        .is_some_and(|v| matches!(&v.kind, ValueKind::Array(a) if !a.is_empty()));
    let prometheus = prometheus_section(ctx, root.get("prometheus"), source_name, has_watch);
    let replay = replay_section(ctx, root.get("replay"), source_name == "replay");
    let source = match (source_name, replay) {
        ("replay", Some(r)) => Source::Replay(r),
        _ => Source::Prometheus,
    };

    let sampling = ctx.table("sampling", root.get("sampling"), SAMPLING_KEYS);
    let sampling_interval = ctx.duration(
        "sampling.interval",
        sampling.and_then(|t| t.get("interval")),
        secs(1),
        false,
        secs(3600),
    );

    let policy_v = ctx.required(
        "policy",
        root.get("policy"),
        "give the policy file, e.g. policy: /etc/phoenix/policy.yaml",
    );
    let policy = match policy_v {
        Some(v) => ctx.path("policy", Some(v)),
        None => None,
    };
    if policy.is_none() {
        ctx.failed.insert("policy".to_string());
    }

    let pipelines = pipelines_section(ctx, root.get("pipelines"));

    // state_dir before the journal and the collectors: creating it may create the
    // directory they write into (the demo's `demo-out/`).
    let state_v = ctx.required(
        "state_dir",
        root.get("state_dir"),
        "give a directory Phoenix may write, e.g. state_dir: /var/lib/phoenix",
    );
    let state_dir = state_v.and_then(|v| ctx.path("state_dir", Some(v)));
    if let Some(d) = &state_dir
        && let Err(m) = writable_dir(d, true)
    {
        ctx.at("state_dir", m);
    }
    let state_snapshot_interval = ctx
        .duration(
            "state_snapshot_interval",
            root.get("state_snapshot_interval"),
            Duration::ZERO,
            false,
            Duration::from_secs(3600),
        )
        .unwrap_or(DEFAULT_SNAPSHOT_INTERVAL);
    let journal = journal_section(ctx, root.get("journal"), state_dir.as_deref());
    let http = http_section(ctx, root.get("http"));
    let log = log_section(ctx, root.get("log"));
    let collectors = collectors_section(ctx, root.get("collectors"), &pipelines, &source);
    let supervision = supervision_section(ctx, root.get("supervision"));

    DaemonConfig {
        origins: ctx.origins.clone(),
        source,
        prometheus,
        sampling_interval,
        policy: policy.unwrap_or_default(),
        pipelines,
        watch,
        state_dir: state_dir.unwrap_or_default(),
        state_snapshot_interval,
        journal,
        http,
        log,
        collectors,
        supervision,
    }
}

fn prometheus_section(
    ctx: &mut Ctx,
    v: Option<&Value>,
    source: &str,
    has_watch: bool,
) -> Option<PrometheusConfig> {
    let t = ctx.table("prometheus", v, PROMETHEUS_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    let url_v = present(get("url"));
    let url = match url_v {
        Some(v) => ctx
            .string("prometheus.url", Some(v))
            .and_then(|s| match url_problem(&s) {
                Ok(u) => Some(u),
                Err(m) => {
                    ctx.at("prometheus.url", m);
                    None
                }
            }),
        None => {
            let why = if source == "prometheus" {
                Some("required with source: prometheus (the default)")
            } else if has_watch {
                Some("required by the watch signals, which query Prometheus")
            } else {
                None
            };
            if let Some(why) = why {
                ctx.at(
                    "prometheus.url",
                    format!("{why}; give the base URL of the HTTP API, e.g. http://127.0.0.1:9090"),
                );
            }
            None
        }
    };
    let timeout = ctx
        .duration(
            "prometheus.timeout",
            get("timeout"),
            Duration::ZERO,
            true,
            secs(300),
        )
        .unwrap_or(secs(10));
    let headers = headers(ctx, get("headers"));
    url.map(|url| PrometheusConfig {
        url,
        timeout,
        headers,
    })
}

/// `prometheus.headers`: valid names and values, one per name (case-insensitive); a
/// header set from the environment (whose names are lowercased) replaces the file's.
fn headers(ctx: &mut Ctx, v: Option<&Value>) -> Vec<(String, String)> {
    const FIELD: &str = "prometheus.headers";
    let v = match present(v) {
        Some(v) => v,
        None => return Vec::new(),
    };
    let ValueKind::Table(t) = &v.kind else {
        ctx.at(
            FIELD,
            format!(
                "expected a mapping of header names to values, e.g. {{ X-Scope-OrgID: team-a }}, found {}",
                describe(v, false)
            ),
        );
        return Vec::new();
    };
    let mut names: Vec<&String> = t.keys().collect();
    names.sort();
    let mut by_lower: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
    for name in names {
        let field = join(FIELD, name);
        let Some(value) = ctx.secret(&field, t.get(name)) else {
            if present(t.get(name)).is_none() {
                ctx.at(&field, "the header has no value");
            }
            continue;
        };
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.at(
                &field,
                format!(
                    "{name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                ),
            );
            continue;
        }
        if reqwest::header::HeaderValue::from_str(&value).is_err() {
            ctx.at(&field, "the header value holds characters HTTP does not allow (control characters or line breaks)");
            continue;
        }
        let from_env = matches!(ctx.origins.of(&field), Origin::Env(_));
        let lower = name.to_ascii_lowercase();
        match by_lower.get(&lower) {
            Some((other, _, other_env)) if *other_env == from_env => {
                let other = other.clone();
                ctx.at(
                    &field,
                    format!("header {other:?} is set too; header names ignore case, keep one"),
                );
            }
            Some((_, _, true)) => {} // the environment's copy wins
            _ => {
                by_lower.insert(lower, (name.clone(), value, from_env));
            }
        }
    }
    by_lower.into_values().map(|(n, v, _)| (n, v)).collect()
}

fn replay_section(ctx: &mut Ctx, v: Option<&Value>, active: bool) -> Option<ReplayConfig> {
    if active && present(v).is_none() {
        ctx.at(
            "source",
            "source is replay, but there is no replay section; add replay.trace (or replay.journal)",
        );
        return None;
    }
    let t = ctx.table("replay", v, REPLAY_KEYS)?;
    let trace = present(t.get("trace")).and_then(|v| ctx.path("replay.trace", Some(v)));
    let journal = present(t.get("journal")).and_then(|v| ctx.path("replay.journal", Some(v)));
    let input = match (trace, journal) {
        (Some(p), None) => Some(ReplayInput::Trace(p)),
        (None, Some(p)) => Some(ReplayInput::Journal(p)),
        (Some(_), Some(_)) => {
            ctx.at(
                "replay.journal",
                "set either replay.trace or replay.journal, not both",
            );
            None
        }
        (None, None) => {
            if !ctx.failed.contains("replay.trace") && !ctx.failed.contains("replay.journal") {
                ctx.at(
                    "replay",
                    "give replay.trace (a CSV or query_range JSON file) or replay.journal",
                );
            }
            None
        }
    };
    // The recording must be there only when it is going to be replayed.
    if active {
        match &input {
            Some(ReplayInput::Trace(p)) => {
                if let Err(m) = readable_file(p) {
                    ctx.at("replay.trace", m);
                }
            }
            Some(ReplayInput::Journal(p)) if !p.exists() => {
                ctx.at(
                    "replay.journal",
                    format!("{} does not exist (check the path)", p.display()),
                );
            }
            Some(ReplayInput::Journal(_)) | None => {}
        }
    }
    let speed = ctx
        .number(
            "replay.speed",
            t.get("speed"),
            End::Open(0.0),
            End::Closed(10_000.0),
        )
        .unwrap_or(1.0);
    let scale = ctx
        .string("replay.budget_scale", t.get("budget_scale"))
        .and_then(|s| match budget_scale(&s) {
            Ok(r) => Some(r),
            Err(m) => {
                ctx.at("replay.budget_scale", m);
                None
            }
        });
    let pipeline = match ctx.string("replay.pipeline", t.get("pipeline")) {
        Some(p) => match pipeline_problem(&p) {
            Some(m) => {
                ctx.at("replay.pipeline", m);
                "demo".to_string()
            }
            None => p,
        },
        None => "demo".to_string(),
    };
    Some(ReplayConfig {
        input: input?,
        speed,
        budget_scale: scale,
        pipeline,
    })
}

fn pipelines_section(ctx: &mut Ctx, v: Option<&Value>) -> PipelinesConfig {
    let t = ctx.table("pipelines", v, PIPELINES_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    let discover = ctx
        .boolean("pipelines.discover", get("discover"))
        .unwrap_or(true);
    let include = ctx
        .pipeline_list("pipelines.include", get("include"))
        .unwrap_or_default();
    for (i, n) in include.iter().enumerate() {
        if n == ALL_PIPELINES {
            ctx.at(
                &format!("pipelines.include[{i}]"),
                pipeline_problem(n).unwrap_or_default(),
            );
        }
    }
    let mut budgets = BTreeMap::new();
    if let Some(bv) = present(get("budgets")) {
        match &bv.kind {
            ValueKind::Table(bt) => {
                let mut names: Vec<&String> = bt.keys().collect();
                names.sort();
                for name in names {
                    let field = format!("pipelines.budgets.{name}");
                    if let Some(m) = pipeline_problem(name) {
                        ctx.at(&field, m);
                        continue;
                    }
                    if present(bt.get(name)).is_none() {
                        ctx.at(&field, "the budget has no value; give a number of series");
                    }
                    if let Some(b) =
                        ctx.number(&field, bt.get(name), End::Closed(1.0), End::Closed(1e12))
                    {
                        if !discover && !include.contains(name) {
                            ctx.at(
                                &field,
                                format!("{name:?} is not tracked (discover is false and pipelines.include does not list it)"),
                            );
                        }
                        budgets.insert(name.clone(), b);
                    }
                }
            }
            _ => ctx.at(
                "pipelines.budgets",
                format!(
                    "expected a mapping of pipeline names to budgets, e.g. {{ checkout: 50000 }}, found {}",
                    describe(bv, false)
                ),
            ),
        }
    }
    let default_budget = ctx.number(
        "pipelines.default_budget",
        get("default_budget"),
        End::Closed(1.0),
        End::Closed(1e12),
    );
    let keep_vanished = ctx
        .duration(
            "pipelines.keep_vanished",
            get("keep_vanished"),
            secs(60),
            false,
            30 * DAY,
        )
        .unwrap_or(secs(3600));
    let max_pipelines = ctx
        .integer(
            "pipelines.max_pipelines",
            get("max_pipelines"),
            1,
            MAX_MAX_PIPELINES,
        )
        .unwrap_or(20_000) as usize;
    if !discover && include.is_empty() && !ctx.failed.contains("pipelines.include") {
        ctx.at(
            "pipelines.include",
            "with discover: false, list the pipelines to track here (or set discover: true)",
        );
    }
    if include.len() > max_pipelines && !ctx.failed.contains("pipelines.max_pipelines") {
        ctx.at(
            "pipelines.include",
            format!(
                "lists {} pipelines, more than pipelines.max_pipelines ({max_pipelines})",
                include.len()
            ),
        );
    }
    PipelinesConfig {
        discover,
        include,
        budgets,
        default_budget,
        keep_vanished,
        max_pipelines,
    }
}

fn watch_section(ctx: &mut Ctx, v: Option<&Value>) -> Vec<WatchConfig> {
    let Some(items) = ctx.list("watch", v, "signals ({ name, query })") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let base = format!("watch[{i}]");
        let Some(t) = ctx.table(&base, Some(item), WATCH_KEYS) else {
            if present(Some(item)).is_none() {
                ctx.at(&base, "empty item; give { name, query }");
            }
            continue;
        };
        let name_f = format!("{base}.name");
        let name = ctx
            .required(
                &name_f,
                t.get("name"),
                "give the signal a name, e.g. reduction_ratio",
            )
            .and_then(|v| ctx.string(&name_f, Some(v)));
        let name = name.and_then(|n| {
            if let Some(m) = name_problem(&n, false) {
                ctx.at(&name_f, m);
                None
            } else if let Some(first) = seen.get(&n) {
                ctx.at(
                    &name_f,
                    format!("{n:?} is already the name of watch[{first}]"),
                );
                None
            } else {
                seen.insert(n.clone(), i);
                Some(n)
            }
        });
        let query_f = format!("{base}.query");
        let query = ctx
            .required(
                &query_f,
                t.get("query"),
                "give a PromQL query, one series per pipeline",
            )
            .and_then(|v| ctx.string(&query_f, Some(v)))
            .and_then(|q| match promql_problem(&q, "") {
                Some(m) => {
                    ctx.at(&query_f, m);
                    None
                }
                None => Some(q),
            });
        let request_emergency = ctx
            .boolean(
                &format!("{base}.request_emergency"),
                t.get("request_emergency"),
            )
            .unwrap_or(false);
        if let (Some(name), Some(query)) = (name, query) {
            out.push(WatchConfig {
                name,
                query,
                request_emergency,
            });
        }
    }
    out
}

fn journal_section(ctx: &mut Ctx, v: Option<&Value>, state_dir: Option<&Path>) -> JournalConfig {
    let t = ctx.table("journal", v, JOURNAL_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    let enabled = ctx
        .boolean("journal.enabled", get("enabled"))
        .unwrap_or(true);
    let explicit = present(get("path")).is_some();
    let path = match present(get("path")) {
        Some(v) => ctx.path("journal.path", Some(v)),
        None => state_dir.map(|d| d.join("journal")),
    };
    // A defaulted path under a state_dir that failed is already reported there.
    let state_ok = !ctx.failed.contains("state_dir");
    if enabled
        && let Some(p) = &path
        && (explicit || state_ok)
        && let Err(m) = writable_dir(p, true)
    {
        ctx.at("journal.path", m);
    }
    let rotate_bytes = ctx
        .integer("journal.rotate_bytes", get("rotate_bytes"), MIB, 10 * GIB)
        .unwrap_or(64 * MIB);
    let retention = ctx
        .duration(
            "journal.retention",
            get("retention"),
            secs(3600),
            false,
            365 * DAY,
        )
        .unwrap_or(7 * DAY);
    JournalConfig {
        path: path.unwrap_or_default(),
        rotate_bytes,
        retention,
        enabled,
    }
}

fn http_section(ctx: &mut Ctx, v: Option<&Value>) -> HttpConfig {
    let t = ctx.table("http", v, HTTP_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 9464));
    let listen = ctx
        .string("http.listen", get("listen"))
        .and_then(|s| match s.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.at(
                    "http.listen",
                    format!("{s:?} is not a socket address; write IP:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"),
                );
                None
            }
        })
        .unwrap_or(default_listen);
    let inline = ctx.secret("http.admin_token", get("admin_token"));
    let file =
        present(get("admin_token_file")).and_then(|v| ctx.path("http.admin_token_file", Some(v)));
    let token = match (inline, file) {
        (Some(_), Some(_)) => {
            ctx.at(
                "http.admin_token_file",
                "set either http.admin_token or http.admin_token_file, not both",
            );
            None
        }
        (Some(tok), None) => match token_problem(&tok) {
            Some(m) => {
                ctx.at("http.admin_token", m);
                None
            }
            None => Some(tok),
        },
        (None, Some(path)) => match read_token_file(&path) {
            Ok(tok) => match token_problem(&tok) {
                Some(m) => {
                    ctx.at("http.admin_token_file", format!("{}: {m}", path.display()));
                    None
                }
                None => Some(tok),
            },
            Err(m) => {
                ctx.at("http.admin_token_file", m);
                None
            }
        },
        (None, None) => None,
    };
    let max_body_bytes = ctx
        .integer("http.max_body_bytes", get("max_body_bytes"), KIB, 16 * MIB)
        .unwrap_or(64 * KIB) as usize;
    HttpConfig {
        listen,
        admin_token: token.map(Secret),
        max_body_bytes,
    }
}

fn log_section(ctx: &mut Ctx, v: Option<&Value>) -> LogConfig {
    let t = ctx.table("log", v, LOG_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    let format = match ctx.choice("log.format", get("format"), &["text", "json"]) {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let level = ctx
        .string("log.level", get("level"))
        .and_then(|l| match level_problem(&l) {
            Some(m) => {
                ctx.at("log.level", m);
                None
            }
            None => Some(l),
        })
        .unwrap_or_else(|| "info".to_string());
    LogConfig { format, level }
}

fn collectors_section(
    ctx: &mut Ctx,
    v: Option<&Value>,
    pipelines: &PipelinesConfig,
    source: &Source,
) -> Vec<CollectorConfig> {
    const WHAT: &str = "collectors ({ name, backend, ... })";
    let Some(v) = ctx.required(
        "collectors",
        v,
        "list at least one collector, e.g. - { name: edge-1, backend: file, file: { path: ... } }",
    ) else {
        return Vec::new();
    };
    let Some(items) = ctx.list("collectors", Some(v), WHAT) else {
        return Vec::new();
    };
    if items.is_empty() {
        ctx.at(
            "collectors",
            "the list is empty; list at least one collector",
        );
    }
    let mut out = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    // Pipeline (or `*`) → the collector that carries it, to report overlaps.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let base = format!("collectors[{i}]");
        let f = |k: &str| format!("{base}.{k}");
        let Some(t) = (match present(Some(item)) {
            Some(Value {
                kind: ValueKind::Table(t),
                ..
            }) => Some(t),
            _ => {
                ctx.at(
                    &base,
                    format!(
                        "expected a collector mapping {{ name, backend, ... }}, found {}",
                        describe(item, false)
                    ),
                );
                None
            }
        }) else {
            continue;
        };
        // Each backend's section is a known key; one given for another backend is
        // reported below, naming the backend it belongs to.
        let mut keys: Vec<&str> = COLLECTOR_KEYS.to_vec();
        keys.extend(BACKENDS.iter().filter(|b| **b != "file"));
        ctx.unknown_keys(&base, t, &keys);

        let name = ctx
            .required(
                &f("name"),
                t.get("name"),
                "give the collector a name, e.g. edge-1",
            )
            .and_then(|v| ctx.string(&f("name"), Some(v)))
            .and_then(|n| {
                if let Some(m) = name_problem(&n, true) {
                    ctx.at(&f("name"), m);
                    None
                } else if let Some(first) = names.get(&n) {
                    ctx.at(
                        &f("name"),
                        format!("{n:?} is already the name of collectors[{first}]"),
                    );
                    None
                } else {
                    names.insert(n.clone(), i);
                    Some(n)
                }
            });
        let label = name.clone().unwrap_or_else(|| base.clone());

        let backend_name = ctx
            .required(
                &f("backend"),
                t.get("backend"),
                "one of: file, prometheus, otelcol",
            )
            .and_then(|v| ctx.choice(&f("backend"), Some(v), BACKENDS));
        let backend = match backend_name {
            Some("file") => file_backend(ctx, &base, t.get("file"), &mut files, &label),
            Some("prometheus") => {
                prometheus_backend(ctx, &base, t.get("prometheus"), &mut files, &label)
            }
            Some("otelcol") => otelcol_backend(ctx, &base, t.get("otelcol"), &mut files, &label),
            _ => None,
        };
        for other in BACKENDS {
            if backend_name.is_some_and(|b| b != *other) && present(t.get(*other)).is_some() {
                ctx.at(
                    &f(other),
                    format!("the {other} section is for backend: {other} only"),
                );
            }
        }

        let selector = match present(t.get("pipelines")) {
            None => Some(PipelineSelector::All),
            Some(pv) => ctx.pipeline_list(&f("pipelines"), Some(pv)).and_then(|ps| {
                if ps.is_empty() {
                    ctx.at(
                        &f("pipelines"),
                        "the collector carries no pipeline; list some, or [\"*\"] for every pipeline",
                    );
                    None
                } else if ps.len() > 1 && ps.iter().any(|p| p == ALL_PIPELINES) {
                    ctx.at(
                        &f("pipelines"),
                        "`*` already means every pipeline; list either `*` alone or pipeline names",
                    );
                    None
                } else if ps[0] == ALL_PIPELINES {
                    Some(PipelineSelector::All)
                } else {
                    Some(PipelineSelector::Only(ps))
                }
            }),
        };
        match &selector {
            Some(PipelineSelector::All) => {
                if let Some(first) = owner.get(ALL_PIPELINES) {
                    ctx.at(
                        &f("pipelines"),
                        format!("collector {first} already carries every pipeline (`*`); only one collector may, list this one's pipelines"),
                    );
                } else {
                    owner.insert(ALL_PIPELINES.to_string(), label.clone());
                }
            }
            Some(PipelineSelector::Only(ps)) => {
                for (j, p) in ps.iter().enumerate() {
                    let item = format!("{base}.pipelines[{j}]");
                    if let Some(first) = owner.get(p) {
                        ctx.at(
                            &item,
                            format!("pipeline {p:?} is already carried by collector {first}; a pipeline belongs to one collector"),
                        );
                    } else {
                        owner.insert(p.clone(), label.clone());
                    }
                    if !pipelines.discover && !pipelines.include.contains(p) {
                        ctx.at(
                            &item,
                            format!("pipeline {p:?} is not tracked (discover is false and pipelines.include does not list it)"),
                        );
                    }
                }
            }
            None => {}
        }

        let min_reload_interval = ctx
            .duration(
                &f("min_reload_interval"),
                t.get("min_reload_interval"),
                Duration::ZERO,
                false,
                secs(3600),
            )
            .unwrap_or(secs(10));
        let coalesce = ctx
            .duration(
                &f("coalesce"),
                t.get("coalesce"),
                Duration::ZERO,
                false,
                secs(60),
            )
            .unwrap_or(secs(2));
        if let (Some(name), Some(backend), Some(pipelines)) = (name, backend, selector) {
            out.push(CollectorConfig {
                name,
                backend,
                pipelines,
                min_reload_interval,
                coalesce,
            });
        }
    }

    // Every pipeline that will certainly be tracked needs a collector to act on it.
    if !owner.contains_key(ALL_PIPELINES) && !ctx.failed.contains("collectors") {
        if !pipelines.discover {
            for (i, p) in pipelines.include.iter().enumerate() {
                if !owner.contains_key(p) {
                    ctx.at(
                        &format!("pipelines.include[{i}]"),
                        format!("no collector carries pipeline {p:?}; add it to a collector's pipelines or give one collector [\"*\"]"),
                    );
                }
            }
        }
        if let Source::Replay(r) = source
            && !owner.contains_key(&r.pipeline)
            && !items.is_empty()
        {
            ctx.at(
                "replay.pipeline",
                format!("no collector carries pipeline {:?}; add it to a collector's pipelines or give one collector [\"*\"]", r.pipeline),
            );
        }
    }
    if let Source::Replay(r) = source
        && !pipelines.discover
        && !pipelines.include.contains(&r.pipeline)
        && !ctx.failed.contains("pipelines.include")
    {
        ctx.at(
            "replay.pipeline",
            format!("pipeline {:?} is not tracked (discover is false and pipelines.include does not list it)", r.pipeline),
        );
    }
    out
}

/// `collectors[i].file`: the control file's directory exists and is writable, the path
/// is not a directory, and no other collector writes the same file.
fn file_backend(
    ctx: &mut Ctx,
    base: &str,
    v: Option<&Value>,
    files: &mut BTreeMap<PathBuf, String>,
    label: &str,
) -> Option<Backend> {
    let section = format!("{base}.file");
    let field = format!("{section}.path");
    if present(v).is_none() {
        ctx.at(
            &section,
            "backend file needs file: { path: ... }, the control file Phoenix writes",
        );
        return None;
    }
    let t = ctx.table(&section, v, FILE_BACKEND_KEYS)?;
    let path = ctx
        .required(
            &field,
            t.get("path"),
            "give the control file Phoenix writes",
        )
        .and_then(|v| ctx.path(&field, Some(v)))?;
    if path.is_dir() {
        ctx.at(
            &field,
            format!(
                "{} is a directory; give the control file's path",
                path.display()
            ),
        );
        return None;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    };
    if let Err(m) = writable_dir(dir, false) {
        ctx.at(&field, m);
        return None;
    }
    if let Some(other) = files.get(&path) {
        ctx.at(
            &field,
            format!("collector {other} writes the same file; give each collector its own"),
        );
        return None;
    }
    files.insert(path.clone(), label.to_string());
    Some(Backend::File { path })
}

/// A config file Phoenix writes for a collector: not a directory, its directory
/// writable, and no other collector writing it (or its last good copy).
fn output_file(
    ctx: &mut Ctx,
    field: &str,
    v: Option<&Value>,
    files: &mut BTreeMap<PathBuf, String>,
    label: &str,
    what: &str,
) -> Option<PathBuf> {
    let path = ctx
        .required(field, v, &format!("give {what}"))
        .and_then(|v| ctx.path(field, Some(v)))?;
    if path.is_dir() {
        ctx.at(
            field,
            format!("{} is a directory; give {what}", path.display()),
        );
        return None;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    };
    if let Err(m) = writable_dir(dir, false) {
        ctx.at(field, m);
        return None;
    }
    if let Some(other) = files.get(&path) {
        ctx.at(
            field,
            format!("collector {other} writes the same file; give each collector its own"),
        );
        return None;
    }
    files.insert(path.clone(), label.to_string());
    Some(path)
}

/// A readable base config.
fn base_config(ctx: &mut Ctx, field: &str, v: Option<&Value>) -> Option<(PathBuf, String)> {
    let path = ctx
        .required(
            field,
            v,
            "give the hand-written collector config Phoenix renders from",
        )
        .and_then(|v| ctx.path(field, Some(v)))?;
    if let Err(m) = readable_file(&path) {
        ctx.at(field, m);
        return None;
    }
    match fs::read_to_string(&path) {
        Ok(text) => Some((path, text)),
        Err(e) => {
            ctx.at(
                field,
                format!("cannot read {}: {}", path.display(), io_text(&e)),
            );
            None
        }
    }
}

/// An http(s) URL.
fn url_field(ctx: &mut Ctx, field: &str, v: Option<&Value>, example: &str) -> Option<Url> {
    let s = ctx
        .required(field, v, &format!("give the URL, e.g. {example}"))
        .and_then(|v| ctx.string(field, Some(v)))?;
    match url_problem(&s) {
        Ok(u) => Some(u),
        Err(m) => {
            ctx.at(field, m);
            None
        }
    }
}

/// A base URL with a trailing slash, so joining `metrics` keeps any path prefix.
fn as_base(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

/// `promtool` / `validator`: absent or `auto` looks the binaries up on PATH (the first
/// found wins), `off` disables it, a path must be an existing file.
fn checker(ctx: &mut Ctx, field: &str, v: Option<&Value>, binaries: &[&str]) -> Option<PathBuf> {
    let auto = || binaries.iter().find_map(|b| crate::actuator::on_path(b));
    let binary = binaries.join(" or ");
    let Some(s) = ctx.string(field, v) else {
        return auto();
    };
    match s.trim() {
        "auto" | "" => auto(),
        "off" => None,
        _ => {
            let path = ctx.path(field, v)?;
            if !path.is_file() {
                ctx.at(
                    field,
                    format!(
                        "{} is not a file; give the path of {binary}, `auto` (look it up on PATH) or `off`",
                        path.display()
                    ),
                );
                return None;
            }
            Some(path)
        }
    }
}

/// A mapping of pipeline names to lists of names (scrape jobs, service pipelines).
fn name_lists(
    ctx: &mut Ctx,
    field: &str,
    v: Option<&Value>,
    what: &str,
) -> Option<BTreeMap<String, Vec<String>>> {
    let Some(v) = present(v) else {
        return Some(BTreeMap::new());
    };
    let ValueKind::Table(t) = &v.kind else {
        ctx.at(
            field,
            format!(
                "expected a mapping of pipeline names to lists of {what}, e.g. {{ checkout: [checkout-api] }}, found {}",
                describe(v, false)
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    let mut keys: Vec<&String> = t.keys().collect();
    keys.sort();
    for k in keys {
        let f = format!("{field}.{k}");
        if let Some(m) = pipeline_problem(k) {
            ctx.at(&f, m);
            ok = false;
            continue;
        }
        let Some(items) = ctx.list(&f, t.get(k), what) else {
            ok = false;
            continue;
        };
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match ctx.string(&format!("{f}[{i}]"), Some(item)) {
                Some(s) if !s.trim().is_empty() => names.push(s.trim().to_string()),
                Some(_) => {
                    ctx.at(
                        &format!("{f}[{i}]"),
                        format!("empty name; give one of the {what}"),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if names.is_empty() {
            ctx.at(
                &f,
                format!("the list is empty; map the pipeline to at least one of the {what}"),
            );
            ok = false;
        }
        out.insert(k.clone(), names);
    }
    ok.then_some(out)
}

/// `collectors[i].prometheus`: a Prometheus acting as the collector.
fn prometheus_backend(
    ctx: &mut Ctx,
    base: &str,
    v: Option<&Value>,
    files: &mut BTreeMap<PathBuf, String>,
    label: &str,
) -> Option<Backend> {
    let section = format!("{base}.prometheus");
    if present(v).is_none() {
        ctx.at(
            &section,
            "backend prometheus needs prometheus: { base_config, config_path, reload: { url }, verify: { url } }",
        );
        return None;
    }
    let t = ctx.table(&section, v, PROMETHEUS_BACKEND_KEYS)?;
    let f = |k: &str| format!("{section}.{k}");
    let base_cfg = base_config(ctx, &f("base_config"), t.get("base_config"));
    let config_path = output_file(
        ctx,
        &f("config_path"),
        t.get("config_path"),
        files,
        label,
        "the file Prometheus reads (its --config.file), which Phoenix writes",
    );
    let jobs = name_lists(ctx, &f("jobs"), t.get("jobs"), "scrape job names")
        .map(|jobs| crate::render::prometheus::JobMapping { jobs });
    if let (Some((path, text)), Some(jobs)) = (&base_cfg, &jobs) {
        // Every mapped job must exist: render the base with each mapped pipeline's empty
        // fragment, so a wrong mapping shows now, not at the first escalation.
        let empty = crate::policy::PrometheusFragment::default();
        let list: Vec<_> = jobs.jobs.keys().map(|p| (p.as_str(), &empty)).collect();
        if let Err(e) = crate::render::prometheus::render(text, jobs, &list) {
            let field = if matches!(
                e,
                crate::render::RenderError::UnknownJob { .. }
                    | crate::render::RenderError::Shared { .. }
            ) {
                f("jobs")
            } else {
                f("base_config")
            };
            ctx.at(&field, format!("{}: {e}", path.display()));
        }
    }
    let rt = ctx.table(&f("reload"), t.get("reload"), PROMETHEUS_RELOAD_KEYS);
    if present(t.get("reload")).is_none() {
        ctx.at(
            &f("reload"),
            "required field is missing; give reload: { url: http://127.0.0.1:9090/-/reload }",
        );
    }
    let reload_url = rt.and_then(|rt| {
        url_field(
            ctx,
            &f("reload.url"),
            rt.get("url"),
            "http://127.0.0.1:9090/-/reload (Prometheus needs --web.enable-lifecycle)",
        )
    });
    let retry_for = rt
        .and_then(|rt| {
            ctx.duration(
                &f("reload.retry_for"),
                rt.get("retry_for"),
                Duration::ZERO,
                false,
                secs(3600),
            )
        })
        .unwrap_or(secs(30));
    let vt = ctx.table(&f("verify"), t.get("verify"), PROMETHEUS_VERIFY_KEYS);
    if present(t.get("verify")).is_none() {
        ctx.at(
            &f("verify"),
            "required field is missing; give verify: { url: http://127.0.0.1:9090 } (Prometheus' own base URL)",
        );
    }
    let verify_url = vt.and_then(|vt| {
        url_field(
            ctx,
            &f("verify.url"),
            vt.get("url"),
            "http://127.0.0.1:9090",
        )
        .map(as_base)
    });
    let verify_timeout = vt
        .and_then(|vt| {
            ctx.duration(
                &f("verify.timeout"),
                vt.get("timeout"),
                Duration::ZERO,
                true,
                secs(600),
            )
        })
        .unwrap_or(secs(30));
    let promtool = checker(ctx, &f("promtool"), t.get("promtool"), &["promtool"]);
    Some(Backend::Prometheus(crate::actuator::PrometheusSettings {
        base_config: base_cfg?.0,
        config_path: config_path?,
        jobs: jobs?,
        reload_url: reload_url?,
        retry_for,
        verify_url: verify_url?,
        verify_timeout,
        promtool,
    }))
}

/// `collectors[i].otelcol`: an OpenTelemetry Collector.
fn otelcol_backend(
    ctx: &mut Ctx,
    base: &str,
    v: Option<&Value>,
    files: &mut BTreeMap<PathBuf, String>,
    label: &str,
) -> Option<Backend> {
    let section = format!("{base}.otelcol");
    if present(v).is_none() {
        ctx.at(
            &section,
            "backend otelcol needs otelcol: { base_config, config_path, reload: { signal: { pidfile } } or { command: [...] }, verify: { health_url } }",
        );
        return None;
    }
    let t = ctx.table(&section, v, OTELCOL_BACKEND_KEYS)?;
    let f = |k: &str| format!("{section}.{k}");
    let base_cfg = base_config(ctx, &f("base_config"), t.get("base_config"));
    let config_path = output_file(
        ctx,
        &f("config_path"),
        t.get("config_path"),
        files,
        label,
        "the file the collector reads (its --config), which Phoenix writes",
    );
    let pipelines = name_lists(
        ctx,
        &f("pipelines"),
        t.get("pipelines"),
        "service pipeline ids",
    )
    .map(|pipelines| crate::render::otelcol::PipelineMapping { pipelines });
    if let (Some((path, text)), Some(mapping)) = (&base_cfg, &pipelines) {
        let empty = crate::policy::OtelcolFragment::default();
        let list: Vec<_> = mapping
            .pipelines
            .keys()
            .map(|p| (p.as_str(), &empty))
            .collect();
        if let Err(e) = crate::render::otelcol::render(text, mapping, &list) {
            let field = if matches!(
                e,
                crate::render::RenderError::UnknownServicePipeline { .. }
                    | crate::render::RenderError::NotMetrics { .. }
                    | crate::render::RenderError::Shared { .. }
                    | crate::render::RenderError::BadPipeline { .. }
            ) {
                f("pipelines")
            } else {
                f("base_config")
            };
            ctx.at(&field, format!("{}: {e}", path.display()));
        }
    }
    let rt = ctx.table(&f("reload"), t.get("reload"), OTELCOL_RELOAD_KEYS);
    let reload = match rt {
        None => {
            if present(t.get("reload")).is_none() {
                ctx.at(
                    &f("reload"),
                    "required field is missing; give reload: { signal: { pidfile: PATH } } or reload: { command: [PROGRAM, ARG, ...] }",
                );
            }
            None
        }
        Some(rt) => {
            let timeout = ctx
                .duration(
                    &f("reload.timeout"),
                    rt.get("timeout"),
                    Duration::ZERO,
                    true,
                    secs(600),
                )
                .unwrap_or(secs(30));
            match (present(rt.get("signal")), present(rt.get("command"))) {
                (Some(_), Some(_)) => {
                    ctx.at(&f("reload"), "give either signal or command, not both");
                    None
                }
                (None, None) => {
                    ctx.at(
                        &f("reload"),
                        "give signal: { pidfile: PATH } (SIGHUP to the collector) or command: [PROGRAM, ARG, ...]",
                    );
                    None
                }
                (Some(sv), None) => {
                    let st = ctx.table(&f("reload.signal"), Some(sv), OTELCOL_SIGNAL_KEYS);
                    st.and_then(|st| {
                        ctx.required(
                            &f("reload.signal.pidfile"),
                            st.get("pidfile"),
                            "give the collector's pidfile",
                        )
                        .and_then(|v| ctx.path(&f("reload.signal.pidfile"), Some(v)))
                    })
                    .map(|pidfile| crate::actuator::OtelReload::Signal { pidfile })
                }
                (None, Some(cv)) => {
                    let field = f("reload.command");
                    let items = ctx.list(&field, Some(cv), "program and arguments (no shell)");
                    items.and_then(|items| {
                        let mut argv = Vec::new();
                        for (i, it) in items.iter().enumerate() {
                            argv.push(ctx.string(&format!("{field}[{i}]"), Some(it))?);
                        }
                        match argv.first() {
                            None => {
                                ctx.at(&field, "the command is empty; give [PROGRAM, ARG, ...]");
                                None
                            }
                            Some(p) if !Path::new(p).is_absolute() => {
                                ctx.at(
                                    &format!("{field}[0]"),
                                    format!("{p:?} is not an absolute path; the command runs without a shell or PATH lookup, give the program's full path"),
                                );
                                None
                            }
                            Some(p) if !Path::new(p).is_file() => {
                                ctx.at(
                                    &format!("{field}[0]"),
                                    format!("{p} does not exist; give the program's full path"),
                                );
                                None
                            }
                            Some(_) => Some(crate::actuator::OtelReload::Command { argv, timeout }),
                        }
                    })
                }
            }
        }
    };
    let retry_for = rt
        .and_then(|rt| {
            ctx.duration(
                &f("reload.retry_for"),
                rt.get("retry_for"),
                Duration::ZERO,
                false,
                secs(3600),
            )
        })
        .unwrap_or(secs(30));
    let vt = ctx.table(&f("verify"), t.get("verify"), OTELCOL_VERIFY_KEYS);
    if present(t.get("verify")).is_none() {
        ctx.at(
            &f("verify"),
            "required field is missing; give verify: { health_url: http://127.0.0.1:13133/ } (the health_check extension)",
        );
    }
    let health_url = vt.and_then(|vt| {
        url_field(
            ctx,
            &f("verify.health_url"),
            vt.get("health_url"),
            "http://127.0.0.1:13133/",
        )
    });
    let verify_timeout = vt
        .and_then(|vt| {
            ctx.duration(
                &f("verify.timeout"),
                vt.get("timeout"),
                Duration::ZERO,
                true,
                secs(600),
            )
        })
        .unwrap_or(secs(30));
    let validator = checker(
        ctx,
        &f("validator"),
        t.get("validator"),
        &["otelcol-contrib", "otelcol"],
    );
    Some(Backend::Otelcol(crate::actuator::OtelcolSettings {
        base_config: base_cfg?.0,
        config_path: config_path?,
        pipelines: pipelines?,
        reload: reload?,
        retry_for,
        health_url: health_url?,
        verify_timeout,
        validator,
    }))
}

fn supervision_section(ctx: &mut Ctx, v: Option<&Value>) -> SupervisionConfig {
    let t = ctx.table("supervision", v, SUPERVISION_KEYS);
    let get = |k: &str| t.and_then(|t| t.get(k));
    SupervisionConfig {
        max_restarts: ctx
            .integer("supervision.max_restarts", get("max_restarts"), 0, 100)
            .unwrap_or(5) as u32,
        window: ctx
            .duration(
                "supervision.window",
                get("window"),
                secs(1),
                false,
                secs(3600),
            )
            .unwrap_or(secs(60)),
        backoff: ctx
            .duration(
                "supervision.backoff",
                get("backoff"),
                Duration::ZERO,
                true,
                MAX_BACKOFF,
            )
            .unwrap_or(secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a valid policy, a collector output directory and a config writer.
    struct Sandbox {
        dir: tempfile::TempDir,
    }

    const POLICY: &str = "\
name: small
budget_series: 100000
profiles:
  - { name: conservative, retention: 0.9 }
  - { name: aggressive, retention: 0.4 }
";

    /// The smallest valid config (relative paths, resolved in the sandbox).
    const MINIMAL: &str = "\
prometheus:
  url: http://127.0.0.1:9090
policy: policy.yaml
state_dir: state
collectors:
  - name: edge-1
    backend: file
    file: { path: out/edge-1.yaml }
";

    impl Sandbox {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
            fs::create_dir(dir.path().join("out")).unwrap();
            Sandbox { dir }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// Writes `text` as `phoenix.yaml` and returns its path.
        fn write(&self, text: &str) -> PathBuf {
            let p = self.path("phoenix.yaml");
            fs::write(&p, text).unwrap();
            p
        }

        fn load(&self, text: &str) -> Result<DaemonConfig, ConfigError> {
            self.load_env(text, &[], &CliOverrides::default())
        }

        fn load_env(
            &self,
            text: &str,
            env: &[(&str, &str)],
            cli: &CliOverrides,
        ) -> Result<DaemonConfig, ConfigError> {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            DaemonConfig::load_with_env(&self.write(text), &env, cli)
        }

        /// The report's lines, with the sandbox path shortened to `DIR`.
        fn lines(&self, err: &ConfigError) -> Vec<String> {
            let dir = self.dir.path().display().to_string();
            err.to_string()
                .lines()
                .map(|l| l.replace(&dir, "DIR"))
                .collect()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let sb = Sandbox::new();
        let c = sb.load(MINIMAL).unwrap();
        assert_eq!(c.source(), &Source::Prometheus);
        let p = c.prometheus().unwrap();
        assert_eq!(p.url().as_str(), "http://127.0.0.1:9090/");
        assert_eq!(p.timeout(), secs(10));
        assert!(p.headers().is_empty());
        assert_eq!(c.sampling_interval(), None);
        let pl = c.pipelines();
        assert!(pl.discover());
        assert!(pl.include().is_empty());
        assert!(pl.budgets().is_empty());
        assert_eq!(pl.default_budget(), None);
        assert_eq!(pl.keep_vanished(), secs(3600));
        assert_eq!(pl.max_pipelines(), 20_000);
        assert!(c.watch().is_empty());
        assert_eq!(c.state_dir(), sb.path("state"));
        assert!(sb.path("state").is_dir(), "state_dir is created");
        let j = c.journal();
        assert_eq!(j.path(), sb.path("state/journal"));
        assert_eq!(j.rotate_bytes(), 64 * MIB);
        assert_eq!(j.retention(), 7 * DAY);
        assert!(j.enabled());
        let h = c.http();
        assert_eq!(h.listen(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(h.admin_token(), None);
        assert_eq!(h.max_body_bytes(), 65536);
        assert_eq!(c.log().format(), LogFormat::Text);
        assert_eq!(c.log().level(), "info");
        let col = &c.collectors()[0];
        assert_eq!(col.name(), "edge-1");
        assert_eq!(
            col.backend(),
            &Backend::File {
                path: sb.path("out/edge-1.yaml")
            }
        );
        assert_eq!(col.pipelines(), &PipelineSelector::All);
        assert_eq!(col.min_reload_interval(), secs(10));
        assert_eq!(col.coalesce(), secs(2));
        assert_eq!(c.collector_for("anything").unwrap().name(), "edge-1");
        let s = c.supervision();
        assert_eq!(
            (s.max_restarts(), s.window(), s.backoff()),
            (5, secs(60), secs(1))
        );
        let delays: Vec<u64> = (0..7).map(|n| s.backoff_after(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(s.backoff_after(u32::MAX), MAX_BACKOFF);
        // Probe files are gone.
        let left: Vec<_> = fs::read_dir(sb.path("out")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn every_problem_at_once_with_line_and_column() {
        let sb = Sandbox::new();
        let text = "\
prometheus:
  url: ftp://example.com
sampling:
  interval: 2h
policy: policy.yaml
pipelines:
  max_pipelines: 0
state_dir: state
journal:
  rotate_bytes: 1000
http:
  listen: localhost:9464
log:
  format: xml
collectors:
  - name: Edge_1
    backend: file
    file: { path: out/edge.yaml }
supervision:
  backoff: 1m
";
        let err = sb.load(text).unwrap_err();
        let f = sb.write(text).display().to_string();
        let got = err.to_string();
        let want = [
            format!("{f}:2:3: prometheus.url: scheme `ftp` is not supported; use http or https"),
            format!("{f}:4:3: sampling.interval: 2h must be in [1s, 1h]"),
            format!("{f}:7:3: pipelines.max_pipelines: 0 must be in [1, 1000000]"),
            format!("{f}:10:3: journal.rotate_bytes: 1000 must be in [1048576, 10737418240]"),
            format!(
                "{f}:12:3: http.listen: \"localhost:9464\" is not a socket address; write IP:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
            ),
            format!("{f}:14:3: log.format: \"xml\" is not one of: text, json"),
            format!(
                "{f}:16:5: collectors[0].name: \"Edge_1\" must be 1 to 64 characters of a-z, 0-9, '_' or '-' (it becomes a metric label value)"
            ),
            format!("{f}:20:3: supervision.backoff: 1m must be in (0s, 30s]"),
        ];
        assert_eq!(got, want.join("\n"));
        assert_eq!(err.problems().len(), 8);
    }

    #[test]
    fn an_unknown_field_lists_the_expected_keys() {
        let sb = Sandbox::new();
        let text = format!("{MINIMAL}http:\n  listn: 127.0.0.1:1\nsuprevision: {{}}\n");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:3: http.listn: unknown field `listn` (did you mean `listen`?); expected one of: listen, admin_token, admin_token_file, max_body_bytes",
                "DIR/phoenix.yaml:11:1: suprevision: unknown field `suprevision` (did you mean `supervision`?); expected one of: prometheus, source, replay, sampling, policy, pipelines, watch, state_dir, state_snapshot_interval, journal, http, log, collectors, supervision",
            ]
        );
    }

    #[test]
    fn the_environment_wins_over_the_file_and_is_named_in_errors() {
        let sb = Sandbox::new();
        let text =
            format!("{MINIMAL}http:\n  listen: 127.0.0.1:9464\npipelines:\n  discover: true\n");
        let c = sb
            .load_env(
                &text,
                &[
                    ("PHOENIX__HTTP__LISTEN", "127.0.0.1:9999"),
                    (
                        "PHOENIX__PROMETHEUS__URL",
                        "https://mimir.example/prometheus",
                    ),
                    // A token of digits stays a string: leading zeros kept.
                    ("PHOENIX__HTTP__ADMIN_TOKEN", "0000111122223333"),
                    ("PHOENIX__PIPELINES__DISCOVER", "false"),
                    ("PHOENIX__PIPELINES__INCLUDE", "checkout, search"),
                    ("PHOENIX__PIPELINES__BUDGETS__CHECKOUT", "50000"),
                    ("PATH", "/usr/bin"),
                ],
                &CliOverrides::default(),
            )
            .unwrap();
        assert_eq!(c.http().listen(), "127.0.0.1:9999".parse().unwrap());
        assert_eq!(
            c.prometheus().unwrap().url().as_str(),
            "https://mimir.example/prometheus"
        );
        assert_eq!(c.http().admin_token(), Some("0000111122223333"));
        assert!(!c.pipelines().discover());
        assert_eq!(c.pipelines().include(), ["checkout", "search"]);
        assert_eq!(c.pipelines().budgets().get("checkout"), Some(&50000.0));

        let err = sb
            .load_env(
                MINIMAL,
                &[
                    ("PHOENIX__PROMETHEUS__TIMEOUT", "10m"),
                    ("PHOENIX__HTTP__LISTN", "127.0.0.1:1"),
                    ("PHOENIX__COLLECTORS__0__NAME", "x"),
                    ("PHOENIX__JOURNAL__ENABLED", "yes"),
                ],
                &CliOverrides::default(),
            )
            .unwrap_err();
        let mut lines = sb.lines(&err);
        lines.sort();
        assert_eq!(
            lines,
            [
                "env PHOENIX__COLLECTORS__0__NAME: collectors.0.name: `collectors` is a list and cannot be set from the environment; edit the config file",
                "env PHOENIX__HTTP__LISTN: http.listn: unknown field `listn` (did you mean `listen`?); expected one of: listen, admin_token, admin_token_file, max_body_bytes",
                "env PHOENIX__JOURNAL__ENABLED: journal.enabled: expected true or false, found a string `\"yes\"`",
                "env PHOENIX__PROMETHEUS__TIMEOUT: prometheus.timeout: 10m must be in (0s, 5m]",
            ]
        );

        // Two spellings of one field: which would win is arbitrary, so it is an error.
        let lines = sb.lines(
            &sb.load_env(
                MINIMAL,
                &[
                    ("PHOENIX__HTTP__LISTEN", "127.0.0.1:1"),
                    ("phoenix__http__listen", "127.0.0.1:2"),
                ],
                &CliOverrides::default(),
            )
            .unwrap_err(),
        );
        assert_eq!(
            lines,
            [
                "env phoenix__http__listen: http.listen: PHOENIX__HTTP__LISTEN sets the same field; set only one of them"
            ]
        );
    }

    #[test]
    fn a_header_from_the_environment_replaces_the_files_whatever_the_case() {
        let sb = Sandbox::new();
        let text = MINIMAL.replace(
            "  url: http://127.0.0.1:9090\n",
            "  url: http://127.0.0.1:9090\n  headers: { X-Scope-OrgID: team-a, Accept-Language: en }\n",
        );
        let c = sb
            .load_env(
                &text,
                &[("PHOENIX__PROMETHEUS__HEADERS__X-SCOPE-ORGID", "team-b")],
                &CliOverrides::default(),
            )
            .unwrap();
        assert_eq!(
            c.prometheus().unwrap().headers(),
            [
                ("Accept-Language".to_string(), "en".to_string()),
                ("x-scope-orgid".to_string(), "team-b".to_string())
            ]
        );
        // Twice in the file (names ignore case), a bad name, a number: each reported.
        let text = MINIMAL.replace(
            "  url: http://127.0.0.1:9090\n",
            "  url: http://127.0.0.1:9090\n  headers:\n    X-Tenant: a\n    x-tenant: b\n    \"bad name\": c\n    X-Num: 12345\n",
        );
        let shown = format!("{:?}", c.prometheus().unwrap());
        assert!(
            shown.contains("x-scope-orgid") && !shown.contains("team-b"),
            "{shown}"
        );
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:5:5: prometheus.headers.x-tenant: header \"X-Tenant\" is set too; header names ignore case, keep one",
                "DIR/phoenix.yaml:6:5: prometheus.headers.bad name: \"bad name\" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                "DIR/phoenix.yaml:7:5: prometheus.headers.X-Num: expected a string, found an integer; put it in quotes",
            ]
        );
    }

    #[test]
    fn the_command_line_wins_over_environment_and_file() {
        let sb = Sandbox::new();
        let text = format!("{MINIMAL}http:\n  listen: 127.0.0.1:9464\nlog:\n  format: text\n");
        let other_state = sb.path("elsewhere/state");
        let cli = CliOverrides {
            listen: Some("127.0.0.1:7777".to_string()),
            journal: Some(sb.path("journal-cli")),
            state_dir: Some(other_state.clone()),
            log_format: Some("json".to_string()),
        };
        let c = sb
            .load_env(
                &text,
                &[
                    ("PHOENIX__HTTP__LISTEN", "127.0.0.1:9999"),
                    ("PHOENIX__LOG__FORMAT", "text"),
                    ("PHOENIX__STATE_DIR", "/nonexistent/never"),
                ],
                &cli,
            )
            .unwrap();
        assert_eq!(c.http().listen(), "127.0.0.1:7777".parse().unwrap());
        assert_eq!(c.log().format(), LogFormat::Json);
        assert_eq!(c.state_dir(), other_state);
        assert!(other_state.is_dir());
        assert_eq!(c.journal().path(), sb.path("journal-cli"));

        let bad = CliOverrides {
            listen: Some("nowhere".to_string()),
            log_format: Some("xml".to_string()),
            ..CliOverrides::default()
        };
        let lines = sb.lines(&sb.load_env(&text, &[], &bad).unwrap_err());
        assert_eq!(
            lines,
            [
                "--listen: http.listen: \"nowhere\" is not a socket address; write IP:PORT, e.g. 127.0.0.1:9464 or [::1]:9464",
                "--log-format: log.format: \"xml\" is not one of: text, json",
            ]
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let sb = Sandbox::new();
        fs::create_dir(sb.path("etc")).unwrap();
        fs::write(
            sb.path("trace.csv"),
            "timestamp,value\n2024-03-04 09:00:00,1\n",
        )
        .unwrap();
        let text = "\
source: replay
replay: { trace: ../trace.csv, speed: 60, budget_scale: \"0.4:2.2\" }
policy: ../policy.yaml
state_dir: ../state
journal: { path: ../journal, enabled: true }
collectors:
  - { name: c, backend: file, file: { path: ../out/c.yaml } }
";
        let path = sb.path("etc/phoenix.yaml");
        fs::write(&path, text).unwrap();
        // Loaded through a relative path from elsewhere, the result is the same.
        let c = DaemonConfig::load_with_env(&path, &[], &CliOverrides::default()).unwrap();
        let etc = sb.path("etc");
        assert_eq!(c.policy_path(), etc.join("../policy.yaml"));
        assert_eq!(c.state_dir(), etc.join("../state"));
        assert_eq!(c.journal().path(), etc.join("../journal"));
        let Source::Replay(r) = c.source() else {
            panic!("not replay: {:?}", c.source())
        };
        assert_eq!(r.input(), &ReplayInput::Trace(etc.join("../trace.csv")));
        assert_eq!(r.speed(), 60.0);
        assert_eq!(r.budget_scale(), Some(Rescale { min: 0.4, max: 2.2 }));
        assert_eq!(r.pipeline(), "demo");
        assert!(c.prometheus().is_none());
        assert!(sb.path("state").is_dir() && sb.path("journal").is_dir());
        assert_eq!(
            c.collectors()[0].backend(),
            &Backend::File {
                path: etc.join("../out/c.yaml")
            }
        );
    }

    #[test]
    fn the_token_file_is_read_and_trimmed() {
        let sb = Sandbox::new();
        for content in [
            "abcdefghijklmnop0123\n",
            "abcdefghijklmnop0123\r\n",
            "abcdefghijklmnop0123",
        ] {
            fs::write(sb.path("token"), content).unwrap();
            let text = format!("{MINIMAL}http:\n  admin_token_file: token\n");
            let c = sb.load(&text).unwrap();
            assert_eq!(c.http().admin_token(), Some("abcdefghijklmnop0123"));
            assert!(
                !format!("{c:?}").contains("abcdefghijklmnop0123"),
                "Debug shows the token"
            );
        }
        let text = format!("{MINIMAL}http:\n  admin_token_file: missing-token\n");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:3: http.admin_token_file: cannot read DIR/missing-token: No such file or directory (check the path and its permissions)"
            ]
        );
    }

    #[test]
    fn a_short_or_doubled_token_is_refused_without_showing_it() {
        let sb = Sandbox::new();
        let text = format!("{MINIMAL}http:\n  admin_token: sekrit\n");
        let err = sb.load(&text).unwrap_err();
        let lines = sb.lines(&err);
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:3: http.admin_token: the token is 6 bytes; use at least 16 (e.g. the output of `openssl rand -hex 32`)"
            ]
        );
        fs::write(sb.path("token"), "tiny\n").unwrap();
        let text = format!("{MINIMAL}http:\n  admin_token_file: token\n");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:3: http.admin_token_file: DIR/token: the token is 4 bytes; use at least 16 (e.g. the output of `openssl rand -hex 32`)"
            ]
        );
        let text = format!(
            "{MINIMAL}http:\n  admin_token: abcdefghijklmnop0123\n  admin_token_file: token\n"
        );
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:11:3: http.admin_token_file: set either http.admin_token or http.admin_token_file, not both"
            ]
        );
        let text = format!("{MINIMAL}http:\n  admin_token: 1234567890123456789\n");
        let err = sb.load(&text).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "http.admin_token: expected a string, found an integer; put it in quotes"
            ),
            "{err}"
        );
        assert!(!err.contains("1234567890123456789"), "{err}");
    }

    #[test]
    fn a_state_dir_that_is_a_file_is_refused() {
        let sb = Sandbox::new();
        fs::write(sb.path("plain-file"), "x").unwrap();
        let text = MINIMAL.replace("state_dir: state", "state_dir: plain-file");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        // The journal under it is not reported a second time.
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:4:1: state_dir: DIR/plain-file exists and is not a directory; choose a directory path"
            ]
        );
        let text = MINIMAL.replace("state_dir: state", "state_dir: plain-file/sub");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:4:1: state_dir: cannot use DIR/plain-file/sub: Not a directory (check that every parent in the path is a directory)"
            ]
        );
    }

    #[test]
    fn check_reports_the_policys_own_problems() {
        let sb = Sandbox::new();
        // load does not read the policy; check does, with the policy's own message.
        let text = MINIMAL.replace("policy: policy.yaml", "policy: missing.yaml");
        let path = sb.write(&text);
        DaemonConfig::load_with_env(&path, &[], &CliOverrides::default()).unwrap();
        let err = DaemonConfig::check_with_env(&path, &[], &CliOverrides::default()).unwrap_err();
        let own = ValidatedPolicy::from_file(&sb.path("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err.to_string(),
            format!("{}:3:1: policy: {own}", path.display())
        );
        assert!(own.starts_with("cannot read "), "{own}");

        // An invalid policy: its lines follow the config's, in one report.
        fs::write(
            sb.path("bad-policy.yaml"),
            "name: x\nprofiles: []\ntick: 0s\n",
        )
        .unwrap();
        let text = MINIMAL
            .replace("policy: policy.yaml", "policy: bad-policy.yaml")
            .replace(
                "url: http://127.0.0.1:9090",
                "url: http://127.0.0.1:9090\n  timeout: 0s",
            );
        let lines = sb.lines(
            &DaemonConfig::check_with_env(&sb.write(&text), &[], &CliOverrides::default())
                .unwrap_err(),
        );
        assert_eq!(
            lines[0],
            "DIR/phoenix.yaml:3:3: prometheus.timeout: 0s must be in (0s, 5m]"
        );
        assert!(lines.len() >= 3, "{lines:?}");
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with("DIR/bad-policy.yaml:")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains(": tick: ")), "{lines:?}");
    }

    #[test]
    fn check_needs_a_budget_from_the_config_or_the_policy() {
        let sb = Sandbox::new();
        fs::write(
            sb.path("nobudget.yaml"),
            POLICY.replace("budget_series: 100000\n", ""),
        )
        .unwrap();
        let text = MINIMAL.replace("policy: policy.yaml", "policy: nobudget.yaml");
        let path = sb.write(&text);
        let lines = sb.lines(
            &DaemonConfig::check_with_env(&path, &[], &CliOverrides::default()).unwrap_err(),
        );
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml: pipelines.default_budget: no budget: neither this field nor the policy's budget_series (DIR/nobudget.yaml) is set; set one (series per pipeline, e.g. 100000)"
            ]
        );
        let c = DaemonConfig::check_with_env(
            &path,
            &env(&[("PHOENIX__PIPELINES__DEFAULT_BUDGET", "5000")]),
            &CliOverrides::default(),
        )
        .unwrap();
        let policy = ValidatedPolicy::from_file(c.policy_path()).unwrap();
        assert_eq!(c.budget_for("checkout", &policy), Some(5000.0));
        assert_eq!(c.effective_sampling_interval(&policy), policy.tick());
    }

    #[test]
    fn collector_rules() {
        let sb = Sandbox::new();
        let text = "\
prometheus: { url: http://127.0.0.1:9090 }
policy: policy.yaml
state_dir: state
pipelines: { discover: false, include: [checkout, search, cart, misc, lonely] }
collectors:
  - { name: a, backend: file, pipelines: [checkout], file: { path: out/a.yaml } }
  - { name: a, backend: file, pipelines: [checkout, ghost], file: { path: out/a.yaml } }
  - { name: p, backend: prometheus, pipelines: [search], prometheus: { url: x } }
  - { name: o, backend: otelcol, pipelines: [misc], file: { path: out/o.yaml } }
  - { name: f, backend: file, pipelines: [cart] }
  - { name: g, backend: file, pipelines: [\"*\", search], file: { path: nodir/g.yaml } }
";
        let lines = sb.lines(&sb.load(text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:4:71: pipelines.include[4]: no collector carries pipeline \"lonely\"; add it to a collector's pipelines or give one collector [\"*\"]",
                "DIR/phoenix.yaml:7:7: collectors[1].name: \"a\" is already the name of collectors[0]",
                "DIR/phoenix.yaml:7:43: collectors[1].pipelines[0]: pipeline \"checkout\" is already carried by collector a; a pipeline belongs to one collector",
                "DIR/phoenix.yaml:7:53: collectors[1].pipelines[1]: pipeline \"ghost\" is not tracked (discover is false and pipelines.include does not list it)",
                "DIR/phoenix.yaml:7:69: collectors[1].file.path: collector a writes the same file; give each collector its own",
                "DIR/phoenix.yaml:8:58: collectors[2].prometheus.base_config: required field is missing; give the hand-written collector config Phoenix renders from",
                "DIR/phoenix.yaml:8:58: collectors[2].prometheus.config_path: required field is missing; give the file Prometheus reads (its --config.file), which Phoenix writes",
                "DIR/phoenix.yaml:8:58: collectors[2].prometheus.reload: required field is missing; give reload: { url: http://127.0.0.1:9090/-/reload }",
                "DIR/phoenix.yaml:8:58: collectors[2].prometheus.verify: required field is missing; give verify: { url: http://127.0.0.1:9090 } (Prometheus' own base URL)",
                "DIR/phoenix.yaml:8:72: collectors[2].prometheus.url: unknown field `url`; expected one of: base_config, config_path, jobs, reload, verify, promtool",
                "DIR/phoenix.yaml:9:7: collectors[3].otelcol: backend otelcol needs otelcol: { base_config, config_path, reload: { signal: { pidfile } } or { command: [...] }, verify: { health_url } }",
                "DIR/phoenix.yaml:9:53: collectors[3].file: the file section is for backend: file only",
                "DIR/phoenix.yaml:10:7: collectors[4].file: backend file needs file: { path: ... }, the control file Phoenix writes",
                "DIR/phoenix.yaml:11:31: collectors[5].pipelines: `*` already means every pipeline; list either `*` alone or pipeline names",
                "DIR/phoenix.yaml:11:65: collectors[5].file.path: directory DIR/nodir does not exist; create it or choose another path",
            ]
        );
        // Two catch-alls.
        let text = format!(
            "{MINIMAL}  - {{ name: edge-2, backend: file, pipelines: [\"*\"], file: {{ path: out/edge-2.yaml }} }}\n"
        );
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:9:36: collectors[1].pipelines: collector edge-1 already carries every pipeline (`*`); only one collector may, list this one's pipelines"
            ]
        );
    }

    #[test]
    fn a_prometheus_collector_is_resolved_and_checked_against_its_base() {
        let sb = Sandbox::new();
        fs::write(
            sb.path("base.yml"),
            "scrape_configs:\n  - job_name: checkout-api\n    static_configs: [{ targets: ['127.0.0.1:1'] }]\n",
        )
        .unwrap();
        let text = "\
prometheus: { url: http://127.0.0.1:9090 }
policy: policy.yaml
state_dir: state
collectors:
  - name: prom
    backend: prometheus
    prometheus:
      base_config: base.yml
      config_path: out/prometheus.yml
      jobs: { checkout: [checkout-api] }
      reload: { url: http://127.0.0.1:9090/-/reload, retry_for: 10s }
      verify: { url: http://127.0.0.1:9090/prom, timeout: 5s }
      promtool: off
";
        let c = sb.load(text).unwrap();
        let Backend::Prometheus(p) = c.collectors()[0].backend() else {
            panic!("not prometheus: {:?}", c.collectors()[0].backend())
        };
        assert_eq!(p.config_path, sb.path("out/prometheus.yml"));
        assert_eq!(p.base_config, sb.path("base.yml"));
        assert_eq!(p.jobs.jobs_of("checkout"), ["checkout-api"]);
        assert_eq!(p.reload_url.as_str(), "http://127.0.0.1:9090/-/reload");
        // A base URL keeps its path prefix when the verifier joins `metrics` to it.
        assert_eq!(p.verify_url.as_str(), "http://127.0.0.1:9090/prom/");
        assert_eq!(p.verify_timeout, secs(5));
        assert_eq!(p.retry_for, secs(10));
        assert_eq!(p.promtool, None);

        let bad = "\
prometheus: { url: http://127.0.0.1:9090 }
policy: policy.yaml
state_dir: state
collectors:
  - name: prom
    backend: prometheus
    prometheus:
      base_config: missing.yml
      config_path: nodir/prometheus.yml
      jobs: { checkout: [] }
      reload: { url: 'ftp://x/-/reload' }
      verify: { timeout: 0s }
      promtool: /no/promtool
    file: { path: out/x.yaml }
  - name: prom2
    backend: prometheus
    pipelines: [search]
    prometheus:
      base_config: base.yml
      config_path: out/p2.yml
      jobs: { search: [search-api] }
      reload: { url: http://127.0.0.1:9090/-/reload }
      verify: { url: http://127.0.0.1:9090 }
";
        let lines = sb.lines(&sb.load(bad).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:8:7: collectors[0].prometheus.base_config: cannot read DIR/missing.yml: No such file or directory (check the path)",
                "DIR/phoenix.yaml:9:7: collectors[0].prometheus.config_path: directory DIR/nodir does not exist; create it or choose another path",
                "DIR/phoenix.yaml:10:15: collectors[0].prometheus.jobs.checkout: the list is empty; map the pipeline to at least one of the scrape job names",
                "DIR/phoenix.yaml:11:17: collectors[0].prometheus.reload.url: scheme `ftp` is not supported; use http or https",
                "DIR/phoenix.yaml:12:7: collectors[0].prometheus.verify.url: required field is missing; give the URL, e.g. http://127.0.0.1:9090",
                "DIR/phoenix.yaml:12:17: collectors[0].prometheus.verify.timeout: 0s must be in (0s, 10m]",
                "DIR/phoenix.yaml:13:7: collectors[0].prometheus.promtool: /no/promtool is not a file; give the path of promtool, `auto` (look it up on PATH) or `off`",
                "DIR/phoenix.yaml:14:5: collectors[0].file: the file section is for backend: file only",
                "DIR/phoenix.yaml:21:7: collectors[1].prometheus.jobs: DIR/base.yml: pipeline \"search\": scrape job \"search-api\" is not in the base config (jobs: checkout-api); fix the pipeline's job mapping or add the job",
            ]
        );
    }

    #[test]
    fn an_otelcol_collector_is_resolved_and_checked_against_its_base() {
        let sb = Sandbox::new();
        let base = fs::read_to_string(manifest("configs/otelcol/gateway.yaml")).unwrap();
        fs::write(sb.path("gateway.yaml"), &base).unwrap();
        let text = "\
prometheus: { url: http://127.0.0.1:9090 }
policy: policy.yaml
state_dir: state
collectors:
  - name: gw
    backend: otelcol
    otelcol:
      base_config: gateway.yaml
      config_path: out/otelcol.yaml
      reload: { signal: { pidfile: /run/otelcol.pid } }
      verify: { health_url: 'http://127.0.0.1:13133/' }
      validator: off
";
        let c = sb.load(text).unwrap();
        let Backend::Otelcol(o) = c.collectors()[0].backend() else {
            panic!("not otelcol")
        };
        assert_eq!(
            o.reload,
            crate::actuator::OtelReload::Signal {
                pidfile: PathBuf::from("/run/otelcol.pid")
            }
        );
        assert_eq!(o.validator, None);
        assert_eq!(o.verify_timeout, secs(30));

        let bad = "\
prometheus: { url: http://127.0.0.1:9090 }
policy: policy.yaml
state_dir: state
collectors:
  - name: gw
    backend: otelcol
    otelcol:
      base_config: gateway.yaml
      config_path: out/otelcol.yaml
      pipelines: { checkout: [traces] }
      reload: { command: [otelcol-reload, now] }
      verify: { health_url: nope }
  - name: gw2
    backend: otelcol
    pipelines: [other]
    otelcol:
      base_config: gateway.yaml
      config_path: out/o2.yaml
      reload: { signal: { pidfile: a }, command: [/bin/true] }
      verify: { health_url: 'http://127.0.0.1:13133/' }
";
        let lines = sb.lines(&sb.load(bad).unwrap_err());
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].starts_with("DIR/phoenix.yaml:10:7: collectors[0].otelcol.pipelines: DIR/gateway.yaml: pipeline \"checkout\": service pipeline \"traces\""), "{}", lines[0]);
        assert_eq!(
            lines[1..],
            [
                "DIR/phoenix.yaml:11:27: collectors[0].otelcol.reload.command[0]: \"otelcol-reload\" is not an absolute path; the command runs without a shell or PATH lookup, give the program's full path",
                "DIR/phoenix.yaml:12:17: collectors[0].otelcol.verify.health_url: \"nope\" is not a URL (relative URL without a base); write the base URL, e.g. http://127.0.0.1:9090",
                "DIR/phoenix.yaml:19:7: collectors[1].otelcol.reload: give either signal or command, not both",
            ]
        );
    }

    #[test]
    fn pipeline_routing_prefers_the_listing_collector() {
        let sb = Sandbox::new();
        let text = format!(
            "{MINIMAL}  - {{ name: edge-2, backend: file, pipelines: [checkout], file: {{ path: out/edge-2.yaml }} }}\n"
        );
        let c = sb.load(&text).unwrap();
        assert_eq!(c.collector_for("checkout").unwrap().name(), "edge-2");
        assert_eq!(c.collector_for("search").unwrap().name(), "edge-1");
    }

    #[test]
    fn source_replay_and_watch_rules() {
        let sb = Sandbox::new();
        let text = "\
source: replay
replay: { trace: none.csv, journal: j, speed: 0, budget_scale: \"3:1\", pipeline: \"*\" }
watch:
  - { name: ratio, query: 'sum(rate(x[1m])' }
  - { name: ratio, query: 'up', request_emergency: maybe }
  - { query: up }
policy: policy.yaml
state_dir: state
collectors: [{ name: c, backend: file, file: { path: out/c.yaml } }]
";
        let lines = sb.lines(&sb.load(text).unwrap_err());
        assert_eq!(lines.len(), 9, "{lines:?}");
        let expect = [
            "DIR/phoenix.yaml:2:28: replay.journal: set either replay.trace or replay.journal, not both",
            "DIR/phoenix.yaml:2:40: replay.speed: 0 must be in (0, 10000]",
            "DIR/phoenix.yaml:2:50: replay.budget_scale: \"3:1\": MIN (3) is above MAX (1); MIN maps the trace's lowest value, MAX its highest",
            "DIR/phoenix.yaml:2:71: replay.pipeline: `*` is not a pipeline name; it means every pipeline only in collectors[].pipelines",
            "DIR/phoenix.yaml:4:20: watch[0].query: invalid PromQL: unclosed left parenthesis",
            "DIR/phoenix.yaml:5:7: watch[1].name: \"ratio\" is already the name of watch[0]",
            "DIR/phoenix.yaml:5:33: watch[1].request_emergency: expected true or false, found a string `\"maybe\"`",
            "DIR/phoenix.yaml:6:7: watch[2].name: required field is missing; give the signal a name, e.g. reduction_ratio",
            "DIR/phoenix.yaml: prometheus.url: required by the watch signals, which query Prometheus; give the base URL of the HTTP API, e.g. http://127.0.0.1:9090",
        ];
        for (got, want) in lines.iter().zip(expect) {
            assert!(got.starts_with(want), "{got}\n  should start with\n{want}");
        }
        // source: replay without a replay section; source: prometheus without a URL.
        let text = MINIMAL.replace(
            "prometheus:\n  url: http://127.0.0.1:9090\n",
            "source: replay\n",
        );
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:1:1: source: source is replay, but there is no replay section; add replay.trace (or replay.journal)"
            ]
        );
        let text = MINIMAL.replace("  url: http://127.0.0.1:9090\n", "  timeout: 5s\n");
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:1:1: prometheus.url: required with source: prometheus (the default); give the base URL of the HTTP API, e.g. http://127.0.0.1:9090"
            ]
        );
    }

    #[test]
    fn yaml_level_problems_are_located() {
        let sb = Sandbox::new();
        let lines = sb.lines(&sb.load("policy: a\npolicy: b\n").unwrap_err());
        assert_eq!(
            lines,
            ["DIR/phoenix.yaml:2:1: policy: duplicate key; each key may appear only once"]
        );
        let lines = sb.lines(&sb.load("http:\n  listen: [\n").unwrap_err());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("DIR/phoenix.yaml:3:1: invalid YAML: "),
            "{lines:?}"
        );
        let lines = sb.lines(&sb.load("- a\n- b\n").unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:1:1: a daemon config must be a mapping of `key: value` lines (see docs/operations.md)"
            ]
        );
        let lines = sb.lines(&sb.load("").unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml: prometheus.url: required with source: prometheus (the default); give the base URL of the HTTP API, e.g. http://127.0.0.1:9090",
                "DIR/phoenix.yaml: policy: required field is missing; give the policy file, e.g. policy: /etc/phoenix/policy.yaml",
                "DIR/phoenix.yaml: state_dir: required field is missing; give a directory Phoenix may write, e.g. state_dir: /var/lib/phoenix",
                "DIR/phoenix.yaml: collectors: required field is missing; list at least one collector, e.g. - { name: edge-1, backend: file, file: { path: ... } }",
            ]
        );
        let missing =
            DaemonConfig::load_with_env(&sb.path("nope.yaml"), &[], &CliOverrides::default())
                .unwrap_err();
        assert_eq!(
            sb.lines(&missing),
            [
                "cannot read DIR/nope.yaml: No such file or directory (check the path given to --config)"
            ]
        );
    }

    #[test]
    fn durations_and_levels_are_checked_like_the_policys() {
        let sb = Sandbox::new();
        let text = format!(
            "{MINIMAL}pipelines:\n  keep_vanished: 60\njournal:\n  retention: -1h\nlog:\n  level: verbose\n"
        );
        let lines = sb.lines(&sb.load(&text).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:3: pipelines.keep_vanished: invalid duration an integer `60`: missing unit; write a duration with a unit, e.g. 30s, 5m or 1h30m",
                "DIR/phoenix.yaml:12:3: journal.retention: invalid duration `-1h`: durations cannot be negative",
                "DIR/phoenix.yaml:14:3: log.level: `verbose` is not a level (off, error, warn, info, debug, trace); to filter a module write `verbose=debug`",
            ]
        );
        let text = format!("{MINIMAL}log:\n  level: \"warn,phoenix::daemon=debug\"\n");
        assert_eq!(
            sb.load(&text).unwrap().log().level(),
            "warn,phoenix::daemon=debug"
        );
    }

    fn manifest(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    #[test]
    fn the_shipped_demo_config_validates() {
        let path = manifest("configs/demo.yaml");
        let c = DaemonConfig::check_with_env(&path, &[], &CliOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let Source::Replay(r) = c.source() else {
            panic!("demo is not a replay")
        };
        assert_eq!(
            r.input(),
            &ReplayInput::Trace(manifest("configs/../simulations/traces/label-leak.csv"))
        );
        assert_eq!(r.speed(), 240.0);
        assert_eq!(r.budget_scale(), None);
        assert_eq!(c.pipelines().default_budget(), Some(100_000.0));
        assert_eq!(c.http().listen(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(c.http().admin_token(), None);
        assert_eq!(c.state_dir(), manifest("configs/demo-out/state"));
        assert_eq!(
            c.collector_for(r.pipeline()).unwrap().backend(),
            &Backend::File {
                path: manifest("configs/demo-out/collector.yaml")
            }
        );
    }

    #[test]
    fn the_shipped_production_config_validates() {
        // Its absolute paths are the production host's; map them into a sandbox.
        let sb = Sandbox::new();
        fs::create_dir(sb.path("run")).unwrap();
        fs::write(sb.path("admin-token"), "0123456789abcdef0123456789abcdef\n").unwrap();
        let path = manifest("configs/phoenix.yaml");
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("/var/lib/phoenix", &sb.path("state").display().to_string())
            .replace("/var/run/phoenix", &sb.path("run").display().to_string())
            .replace(
                "/etc/phoenix/admin-token",
                &sb.path("admin-token").display().to_string(),
            );
        let c = DaemonConfig::from_text(&text, &path, &[], &CliOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let policy = ValidatedPolicy::from_file(c.policy_path()).unwrap();
        c.check_policy(&policy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.prometheus().unwrap().headers(),
            [("X-Scope-OrgID".to_string(), "team-a".to_string())]
        );
        assert_eq!(c.budget_for("checkout", &policy), Some(50_000.0));
        assert_eq!(c.budget_for("other", &policy), Some(100_000.0));
        assert_eq!(c.watch()[0].name(), "reduction_ratio");
        assert_eq!(
            c.http().admin_token(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.log().format(), LogFormat::Json);
        assert_eq!(c.sampling_interval(), Some(secs(15)));
    }

    #[test]
    fn a_watch_query_must_keep_the_policys_group_by_label() {
        let sb = Sandbox::new();
        let text = format!(
            "{MINIMAL}watch:\n  - {{ name: errors, query: 'sum(rate(errors_total[1m]))' }}\n"
        );
        let c = sb.load(&text).unwrap();
        let policy = ValidatedPolicy::from_file(c.policy_path()).unwrap();
        let lines = sb.lines(&c.check_policy(&policy).unwrap_err());
        assert_eq!(
            lines,
            [
                "DIR/phoenix.yaml:10:21: watch[0].query: `sum` without `by (pipeline)` merges every pipeline into one series; write `sum by (pipeline) (...)`"
            ]
        );
    }
}
