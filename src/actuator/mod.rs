//! Collector backends of the actuator: render a collector's whole config, validate it,
//! write it atomically beside its last known good copy, reload the collector, verify the
//! new config is in force, and roll back. The actor that sequences these per coalesced
//! batch lives in `crate::daemon::actuator`; everything here is one step each, so each
//! step's failure names itself.
//!
//! The rendered file carries its own state on its second line
//! (`# phoenix-state: {"generation":3,"pipelines":{...}}`): the file on disk is replaced
//! atomically, so its content and the profiles it claims can never disagree, and a
//! restarted daemon learns what was rendered from the file itself.

pub mod otelcol;
pub mod prometheus;

use crate::daemon::actuator::ControlFile;
use crate::fsutil::{io_text, write_atomically};
use crate::policy::ValidatedPolicy;
use reqwest::Url;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The marker of the state line in a rendered file.
pub const STATE_PREFIX: &str = "# phoenix-state: ";

/// Suffix of the last known good copy, kept beside the config.
pub const LAST_GOOD_SUFFIX: &str = ".last-good";

/// Settings of the `prometheus` backend (a Prometheus acting as the collector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusSettings {
    /// Hand-written base config.
    pub base_config: PathBuf,
    /// The file Prometheus reads (`--config.file`); Phoenix writes it.
    pub config_path: PathBuf,
    /// Pipeline → scrape jobs.
    pub jobs: crate::render::prometheus::JobMapping,
    /// `POST` here reloads (`/-/reload`, needs `--web.enable-lifecycle`).
    pub reload_url: Url,
    /// How long an unreachable collector is retried (with backoff) before the apply fails.
    pub retry_for: Duration,
    /// Prometheus' own base URL (its `/metrics` and `/api/v1/status/config`).
    pub verify_url: Url,
    /// How long verification may take after the reload.
    pub verify_timeout: Duration,
    /// `promtool`, when available.
    pub promtool: Option<PathBuf>,
}

/// How an OpenTelemetry Collector is told to reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OtelReload {
    /// SIGHUP to the pid in this file.
    Signal {
        /// The pidfile.
        pidfile: PathBuf,
    },
    /// Run this argv (no shell), which must exit 0 within `timeout`.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Longest run.
        timeout: Duration,
    },
}

/// Settings of the `otelcol` backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelcolSettings {
    /// Hand-written base config.
    pub base_config: PathBuf,
    /// The file the collector reads (`--config`); Phoenix writes it.
    pub config_path: PathBuf,
    /// Pipeline → service pipelines.
    pub pipelines: crate::render::otelcol::PipelineMapping,
    /// How to reload.
    pub reload: OtelReload,
    /// How long an unreachable collector is retried before the apply fails.
    pub retry_for: Duration,
    /// The health_check extension's URL (200 when healthy).
    pub health_url: Url,
    /// How long the health endpoint may take to answer 200 after the reload.
    pub verify_timeout: Duration,
    /// `otelcol` (or a distribution's binary) for `validate --config`, when available.
    pub validator: Option<PathBuf>,
}

/// A collector whose config Phoenix renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collector {
    /// Prometheus.
    Prometheus(PrometheusSettings),
    /// OpenTelemetry Collector.
    Otelcol(OtelcolSettings),
}

/// Why one step of an apply failed; one line naming the file, URL or command, and what
/// to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The base config cannot be read.
    #[error("base config {}: {reason}; fix base_config", path.display())]
    Base {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A pipeline's profile is not in the policy.
    #[error("pipeline {pipeline:?}: profile {profile:?} is not in the policy")]
    UnknownProfile {
        /// Pipeline.
        pipeline: String,
        /// Profile.
        profile: String,
    },
    /// Rendering failed.
    #[error("render: {0}")]
    Render(#[from] crate::render::RenderError),
    /// The collector's own checker refused the rendered config.
    #[error("{tool} refused the rendered config: {output}")]
    Invalid {
        /// The checker run.
        tool: String,
        /// What it said (one line).
        output: String,
    },
    /// The config could not be written.
    #[error("{0}")]
    Write(String),
    /// The collector does not answer (down, or not yet started).
    #[error("collector unreachable at {url}: {reason}; is it running?")]
    Unreachable {
        /// What was tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The reload was refused or could not be sent.
    #[error("reload via {via} failed: {reason}")]
    Reload {
        /// URL, pidfile or command.
        via: String,
        /// Why.
        reason: String,
    },
    /// The new config is not verified in force.
    #[error("verification failed within {}: {reason}", crate::policy::dur(*timeout))]
    Verify {
        /// The timeout.
        timeout: Duration,
        /// What was seen instead.
        reason: String,
    },
}

impl ApplyError {
    /// Whether retrying later may help without anything changing (the collector is down).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ApplyError::Unreachable { .. })
    }
}

impl Collector {
    /// The config file the collector reads.
    pub fn config_path(&self) -> &Path {
        match self {
            Collector::Prometheus(p) => &p.config_path,
            Collector::Otelcol(o) => &o.config_path,
        }
    }

    /// How long an unreachable collector is retried.
    pub fn retry_for(&self) -> Duration {
        match self {
            Collector::Prometheus(p) => p.retry_for,
            Collector::Otelcol(o) => o.retry_for,
        }
    }

    /// Backend name.
    pub fn kind(&self) -> &'static str {
        match self {
            Collector::Prometheus(_) => "prometheus",
            Collector::Otelcol(_) => "otelcol",
        }
    }

    /// The collector's own checker, if available.
    pub fn checker(&self) -> Option<&Path> {
        match self {
            Collector::Prometheus(p) => p.promtool.as_deref(),
            Collector::Otelcol(o) => o.validator.as_deref(),
        }
    }

    /// Renders the whole config for `state` (profile per pipeline), with the state line.
    pub fn render(
        &self,
        policy: &ValidatedPolicy,
        state: &ControlFile,
    ) -> Result<String, ApplyError> {
        let base_path = match self {
            Collector::Prometheus(p) => &p.base_config,
            Collector::Otelcol(o) => &o.base_config,
        };
        let base = std::fs::read_to_string(base_path).map_err(|e| ApplyError::Base {
            path: base_path.clone(),
            reason: io_text(&e),
        })?;
        let mut fragments = Vec::new();
        for (pipeline, profile) in &state.pipelines {
            let f = policy
                .fragments(profile)
                .ok_or_else(|| ApplyError::UnknownProfile {
                    pipeline: pipeline.clone(),
                    profile: profile.clone(),
                })?;
            fragments.push((pipeline.as_str(), f));
        }
        let body = match self {
            Collector::Prometheus(p) => {
                let empty = crate::policy::PrometheusFragment::default();
                let list: Vec<_> = fragments
                    .iter()
                    .map(|(n, f)| (*n, f.prometheus.as_ref().unwrap_or(&empty)))
                    .collect();
                crate::render::prometheus::render(&base, &p.jobs, &list)?
            }
            Collector::Otelcol(o) => {
                let empty = crate::policy::OtelcolFragment::default();
                let list: Vec<_> = fragments
                    .iter()
                    .map(|(n, f)| (*n, f.otelcol.as_ref().unwrap_or(&empty)))
                    .collect();
                let text = crate::render::otelcol::render(&base, &o.pipelines, &list)?;
                crate::render::otelcol::check(&text)?;
                text
            }
        };
        Ok(with_state(&body, state))
    }

    /// Runs the collector's own checker on `text` (in a temporary file next to the
    /// config, so relative paths such as rule files resolve as they will). `Ok(false)`
    /// when no checker is available (structural checks only).
    pub async fn validate(&self, text: &str) -> Result<bool, ApplyError> {
        let Some(tool) = self.checker() else {
            return Ok(false);
        };
        let target = self.config_path();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map_or("config".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.{}.check.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| {
            ApplyError::Write(format!(
                "cannot write the file to validate, {}: {}",
                tmp.display(),
                io_text(&e)
            ))
        })?;
        let args: Vec<std::ffi::OsString> = match self {
            Collector::Prometheus(_) => vec!["check".into(), "config".into(), tmp.clone().into()],
            Collector::Otelcol(_) => {
                let mut a = std::ffi::OsString::from("--config=");
                a.push(&tmp);
                vec!["validate".into(), a]
            }
        };
        let res = run_command(tool, &args, CHECK_TIMEOUT).await;
        let _ = std::fs::remove_file(&tmp);
        let tool_s = format!("{} {}", tool.display(), args[0].to_string_lossy());
        match res {
            Ok(()) => Ok(true),
            Err(output) => Err(ApplyError::Invalid {
                tool: tool_s,
                output: output.replace(&tmp.display().to_string(), "(rendered config)"),
            }),
        }
    }
}

/// Longest run of `promtool check config` / `otelcol validate`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `program args` without a shell, killed after `timeout`; `Err` with the last
/// lines of its output (one line) when it fails.
pub async fn run_command(
    program: &Path,
    args: &[std::ffi::OsString],
    timeout: Duration,
) -> Result<(), String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {}", program.display(), io_text(&e)))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("{}: {}", program.display(), io_text(&e))),
        Err(_) => {
            return Err(format!(
                "{} did not finish within {}",
                program.display(),
                crate::policy::dur(timeout)
            ));
        }
    };
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    Err(format!("exit {}: {tail}", out.status))
}

/// `body` (a rendered config starting with the render header) with the state line in
/// front.
pub fn with_state(body: &str, state: &ControlFile) -> String {
    let json = serde_json::to_string(state).unwrap_or_else(|_| "{}".to_string());
    format!("{STATE_PREFIX}{json}\n{body}")
}

/// The state a rendered file claims; `None` for a file Phoenix did not render.
pub fn state_of(text: &str) -> Option<ControlFile> {
    let line = text.lines().find(|l| l.starts_with(STATE_PREFIX))?;
    serde_json::from_str(&line[STATE_PREFIX.len()..]).ok()
}

/// `<config>.last-good`.
pub fn last_good_path(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(LAST_GOOD_SUFFIX);
    PathBuf::from(s)
}

/// Writes `text` to `path` atomically (old or new, never torn).
pub fn write_config(path: &Path, text: &str) -> Result<(), ApplyError> {
    write_atomically(path, |w| w.write_all(text.as_bytes()))
        .map_err(|e| ApplyError::Write(e.to_string()))
}

/// Reads a file; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {}", path.display(), io_text(&e))),
    }
}

/// The shared HTTP client of the backends: bounded requests, no proxy (collectors are
/// local).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// Where a checker binary is on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_line_round_trips() {
        let mut s = ControlFile {
            generation: 4,
            ..Default::default()
        };
        s.pipelines.insert("checkout".into(), "balanced".into());
        let text = with_state("# header\nglobal: {}\n", &s);
        assert!(text.starts_with(STATE_PREFIX));
        assert_eq!(state_of(&text), Some(s));
        assert_eq!(state_of("global: {}\n"), None);
        assert_eq!(
            last_good_path(Path::new("/x/prom.yml")),
            PathBuf::from("/x/prom.yml.last-good")
        );
    }
}
