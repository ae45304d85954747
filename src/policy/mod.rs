//! Policy files: the YAML an SRE edits, turned into engine configuration.
//!
//! The path is parse → validate → [`ValidatedPolicy`], the only policy type the rest of
//! the crate accepts (its only constructors validate). Like Vector's config loading, the
//! schema is strict (`deny_unknown_fields`), and a bad file yields *every* problem at once,
//! one line each: `FILE:LINE:COL: field.path: message with the allowed range`.
//!
//! - `schema`: the serde structs and their defaults.
//! - `parse`: YAML → raw structs, serde errors → located problems, section by section.
//! - `locate`: a yaml-rust2 walk mapping field paths to line/column.
//! - `validate`: ranges and cross-field rules.
//! - `ladder`: the ladder rules ([`check_ladder`]) shared with the simulator's plant and
//!   the command line.
//! - `error`: [`PolicyError`] and [`Problem`].
//!
//! Durations are written `30s`, `5m`, `1h30m` and stay durations all the way into the
//! engine, which measures them on sample timestamps, so one policy fits any tick.

mod error;
mod fragment;
mod ladder;
mod locate;
mod ottl;
mod parse;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{PolicyError, Problem};
pub use fragment::{
    AggregationType, ErrorMode, FilterMetrics, FilterProcessor, FragmentProblem, MatchType,
    MetricAction, MetricOperation, MetricTransform, MetricsTransformProcessor, OperationAction,
    OtelProcessor, OtelcolFragment, PROCESSOR_TYPES, ProfileFragments, PrometheusFragment,
    RESERVED_LABEL_PREFIX, RelabelAction, RelabelRule, SAMPLE_LABEL, Sample, Severity,
    StatementEntry, StatementGroup, TransformContext, TransformProcessor,
};
pub use ladder::{LadderProblem, MIN_PROFILES, check_ladder};
pub use schema::SafeLabel;
// The daemon config reports its problems the same way (positions, durations, PromQL).
pub(crate) use locate::Positions;
// Scenario files are read section by section like policies, into the same problems.
pub(crate) use parse::{Reporter, Sections};
pub(crate) use validate::{dur, num, promql_problem};

use crate::core::anomaly::DetectorKind;
use crate::core::config::{
    AnomalyConfig, BadInputConfig, EngineConfig, GuardsConfig, HysteresisConfig, PidConfig,
    PredictionConfig, ProfileSpec,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest policy file read; a policy is a few kilobytes, so anything bigger is the wrong
/// file, and refusing it keeps a mistaken path from eating memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The Prometheus queries a policy runs, one per signal for all pipelines.
#[derive(Clone, Debug, PartialEq)]
pub struct Signals {
    /// PromQL for the series entering each pipeline (demand), grouped by `group_by`.
    pub input: String,
    /// PromQL for the series leaving each pipeline (what the budget limits).
    pub output: String,
    /// Label whose value names the pipeline in both results.
    pub group_by: String,
    /// A result whose newest sample is older than this is Stale, not Ok.
    pub max_sample_age: Duration,
}

/// Demand prediction as written in the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictionSpec {
    /// Input history used for the trend and the volatility (> 0).
    pub window: Duration,
    /// How far ahead the trend is extrapolated (may be zero: no extrapolation).
    pub horizon: Duration,
    /// Margin in standard deviations of the input's scatter around its trend, in [0, 10].
    pub volatility_k: f64,
    /// Input history whose maximum must fit before relaxing (> 0).
    pub relax_window: Duration,
    /// Share of past excursions that were still there at the next sample, below which a
    /// new excursion is presumed a transient spike, in [0, 1] (0 never presumes so).
    pub persistence_threshold: f64,
    /// How long a presumed-transient excursion must last before escalating.
    pub transient_confirm: Duration,
}

/// Anomaly watching as written in the policy.
/// Present only when the policy's `anomaly.enabled` is true.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalySpec {
    /// Detector run on each watched signal.
    pub detector: DetectorKind,
    /// Score the input (demand) signal.
    pub watch_input: bool,
    /// Score the output signal.
    pub watch_output: bool,
    /// Score at or above which a signal is anomalous, in (0, 1].
    pub threshold: f64,
    /// Whether the explosion rule may request an emergency.
    pub request_emergency: bool,
    /// Output history for the linear trend (at least two ticks: three samples).
    pub trend_window: Duration,
    /// The explosion rule fires when the trend crosses the budget within this (> 0).
    pub horizon: Duration,
}

/// A policy that passed validation; build one with [`ValidatedPolicy::from_file`] or
/// [`ValidatedPolicy::from_str`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedPolicy {
    /// Where it came from (file path or the caller's origin name), for log lines.
    origin: String,
    /// Policy name, the controller's name in simulation reports.
    name: String,
    /// Free text from the file.
    description: Option<String>,
    /// PID setpoint as a fraction of the budget.
    target_ratio: f64,
    /// Default budget per pipeline, when the file sets one.
    budget_series: Option<f64>,
    /// Evaluation interval the policy was written for.
    tick: Duration,
    /// Ladder, least to most reducing; retention strictly decreasing.
    profiles: Vec<ProfileSpec>,
    /// Index into `profiles` of the profile assumed at start.
    initial_profile: usize,
    /// The queries.
    signals: Signals,
    /// PID gains and limits.
    pid: PidConfig,
    /// Ladder thresholds.
    hysteresis: HysteresisConfig,
    /// Prediction, still in time.
    prediction: PredictionSpec,
    /// Guards.
    guards: GuardsConfig,
    /// How long the input must be bad before the fallback may apply.
    fallback_after: Duration,
    /// Index into `profiles` of the fallback profile, if any.
    fallback_profile: Option<usize>,
    /// Time after a profile comes into force before its retention is measured.
    settle: Duration,
    /// Anomaly watching, still in time; `None` when disabled.
    anomaly: Option<AnomalySpec>,
    /// The text it was validated from, for the journal (replay needs nothing else).
    source: String,
    /// Collector fragments per profile, in ladder order (parallel to `profiles`).
    fragments: Vec<ProfileFragments>,
    /// Labels profiles may drop, with what keeps series apart without them.
    safe_to_drop_labels: Vec<SafeLabel>,
    /// Accepted, but worth an SRE's look (`policy check` prints them).
    warnings: Vec<Problem>,
}

impl ValidatedPolicy {
    /// Reads and validates a policy file. Problems are reported against `path` as given.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            let origin = path.display().to_string();
            return Err(PolicyError::Invalid {
                path: path.to_path_buf(),
                problems: vec![Problem {
                    path: origin,
                    line: None,
                    col: None,
                    field: String::new(),
                    message: format!(
                        "file is {} bytes; a policy is a few kilobytes (limit {MAX_FILE_BYTES}), is this the right file?",
                        meta.len()
                    ),
                }],
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Validates policy text; `origin` names it in messages (a path, `<stdin>`, a test name).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let positions = locate::Positions::of(text);
        let mut rep = parse::Reporter {
            origin,
            positions: &positions,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let policy =
            parse::parse(text, &mut rep).and_then(|parsed| validate::validate(parsed, &mut rep));
        match policy {
            Some(mut p) if rep.problems.is_empty() => {
                p.source = text.to_string();
                let mut warnings = rep.warnings;
                warnings.sort_by_key(|p| (p.line.is_none(), p.line, p.col));
                p.warnings = warnings;
                Ok(p)
            }
            _ => {
                let mut problems = rep.problems;
                if problems.is_empty() {
                    // Unreachable by construction; never hand out an error without a reason.
                    problems.push(Problem {
                        path: origin.to_string(),
                        line: None,
                        col: None,
                        field: String::new(),
                        message: "policy rejected".to_string(),
                    });
                }
                // File order, like a compiler; unlocated problems last.
                problems.sort_by_key(|p| (p.line.is_none(), p.line, p.col));
                Err(PolicyError::Invalid {
                    path: PathBuf::from(origin),
                    problems,
                })
            }
        }
    }

    /// The collector fragments of the profile named `profile`; `None` for an unknown name.
    /// A profile without any fragment has both fields `None` (fine for the `file`
    /// backend; on the others it renders nothing).
    pub fn fragments(&self, profile: &str) -> Option<&ProfileFragments> {
        let i = self.profiles.iter().position(|p| p.name == profile)?;
        self.fragments.get(i)
    }

    /// The fragments of every profile, in ladder order (parallel to [`profiles`](Self::profiles)).
    pub fn all_fragments(&self) -> &[ProfileFragments] {
        &self.fragments
    }

    /// Labels the policy declares safe to drop.
    pub fn safe_to_drop_labels(&self) -> &[SafeLabel] {
        &self.safe_to_drop_labels
    }

    /// Things that validated but may lose data, located like problems, in file order.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The policy text as read.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// SHA-256 of the policy text, hex: names exactly which policy a journal ran under.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.source.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The origin given at load time (usually the file path).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Policy name (`[a-z0-9_-]`, at most 64 characters).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's free-text description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The ladder, least to most reducing, retention strictly decreasing, at least two.
    pub fn profiles(&self) -> &[ProfileSpec] {
        &self.profiles
    }

    /// Index of the profile assumed at start.
    pub fn initial_profile(&self) -> usize {
        self.initial_profile
    }

    /// Default budget per pipeline, if the policy sets one (the caller may override).
    pub fn budget_series(&self) -> Option<f64> {
        self.budget_series
    }

    /// Evaluation interval the policy asks for.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// The Prometheus queries.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Prediction settings, in time.
    pub fn prediction(&self) -> &PredictionSpec {
        &self.prediction
    }

    /// Anomaly settings, in time; `None` when the policy disables anomaly watching.
    pub fn anomaly(&self) -> Option<&AnomalySpec> {
        self.anomaly.as_ref()
    }

    /// Longest TTL a manual override may request.
    pub fn override_max_ttl(&self) -> Duration {
        self.guards.override_max_ttl
    }

    /// Engine configuration for one pipeline with this policy's ladder; `tick` is the
    /// sampling interval actually used (the daemon's or the simulation's).
    pub fn engine_config(
        &self,
        pipeline: &str,
        budget_series: f64,
        tick: Duration,
    ) -> EngineConfig {
        self.build(
            pipeline,
            budget_series,
            tick,
            self.profiles.clone(),
            self.initial_profile,
            self.fallback_profile,
        )
    }

    /// Like [`engine_config`](Self::engine_config) with another ladder (the simulator's
    /// plant may define the retentions). The initial and fallback profiles are mapped by
    /// name; an initial profile missing from `ladder` becomes 0, a fallback profile missing
    /// from it becomes the most reducing one (no fallback stays no fallback). The ladder is
    /// used as given: the caller vouches that it is ordered least to most reducing.
    pub fn engine_config_with_ladder(
        &self,
        pipeline: &str,
        budget_series: f64,
        tick: Duration,
        ladder: &[ProfileSpec],
    ) -> EngineConfig {
        let by_name = |i: usize| {
            let name = &self.profiles.get(i)?.name;
            ladder.iter().position(|p| &p.name == name)
        };
        let initial = by_name(self.initial_profile).unwrap_or(0);
        let fallback = match self.fallback_profile {
            Some(i) if !ladder.is_empty() => Some(by_name(i).unwrap_or(ladder.len() - 1)),
            _ => None,
        };
        self.build(
            pipeline,
            budget_series,
            tick,
            ladder.to_vec(),
            initial,
            fallback,
        )
    }

    fn build(
        &self,
        pipeline: &str,
        budget_series: f64,
        tick: Duration,
        profiles: Vec<ProfileSpec>,
        initial_profile: usize,
        fallback_profile: Option<usize>,
    ) -> EngineConfig {
        let p = &self.prediction;
        EngineConfig {
            pipeline: pipeline.to_string(),
            budget_series,
            target_ratio: self.target_ratio,
            profiles,
            initial_profile,
            tick,
            pid: self.pid,
            hysteresis: self.hysteresis,
            prediction: PredictionConfig {
                window: p.window,
                horizon: p.horizon,
                volatility_k: p.volatility_k,
                relax_window: p.relax_window,
                persistence_threshold: p.persistence_threshold,
                transient_confirm: p.transient_confirm,
            },
            guards: self.guards,
            bad_input: BadInputConfig {
                max_sample_age: self.signals.max_sample_age,
                fallback_after: self.fallback_after,
                fallback_profile,
            },
            settle: self.settle,
            anomaly: self.anomaly.map(|a| AnomalyConfig {
                detector: a.detector,
                watch_input: a.watch_input,
                watch_output: a.watch_output,
                threshold: a.threshold,
                request_emergency: a.request_emergency,
                trend_window: a.trend_window,
                horizon: a.horizon,
            }),
        }
    }
}

/// Validates each file independently, for `phoenix policy check`; results keep the
/// order of `paths`.
pub fn check_files(paths: &[PathBuf]) -> Vec<(PathBuf, Result<ValidatedPolicy, PolicyError>)> {
    paths
        .iter()
        .map(|p| (p.clone(), ValidatedPolicy::from_file(p)))
        .collect()
}
