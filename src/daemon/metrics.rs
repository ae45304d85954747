//! The daemon's metrics: every name it exports, with type, labels and meaning, in one
//! list (`METRICS`) that the docs, the dashboards and their tests read, and the recorder
//! behind `/metrics` (metrics-exporter-prometheus).
//!
//! Names are part of the interface: prefix `phoenix_`, units in the name, label values
//! from small fixed sets (pipeline and collector names are bounded by the config, profile
//! names by the policy, reasons and guards by the core's enums).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A metric's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter (`_total`).
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_seconds`).
    Histogram,
}

/// One exported metric.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// Full name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Label names.
    pub labels: &'static [&'static str],
    /// What it means (also the `# HELP` text).
    pub help: &'static str,
}

macro_rules! defs {
    ($( $id:ident = $name:literal, $kind:ident, [$($l:literal),*], $help:literal; )*) => {
        $( #[doc = $help] pub const $id: &str = $name; )*
        /// Every metric the daemon exports.
        pub const METRICS: &[MetricDef] = &[
            $( MetricDef { name: $name, kind: Kind::$kind, labels: &[$($l),*], help: $help }, )*
        ];
    };
}

defs! {
    PROFILE_IN_FORCE = "phoenix_profile_in_force", Gauge, ["pipeline"], "Index of the profile the actuator reports in force (0 = least reducing).";
    PROFILE_DECIDED = "phoenix_profile_decided", Gauge, ["pipeline"], "Index of the profile decided (in force, or being applied).";
    PROFILE_ACTIVE = "phoenix_profile_active", Gauge, ["pipeline", "profile"], "1 for the profile in force, 0 for the others.";
    DECISIONS = "phoenix_decisions_total", Counter, ["pipeline", "from", "to", "reason"], "Profile switches decided, by from/to profile and reason.";
    BLOCKED = "phoenix_switches_blocked_total", Counter, ["pipeline", "guard"], "Steps where the ladder wanted a switch and a guard refused it, by guard (a block that lasts counts every step).";
    HOLDS = "phoenix_holds_total", Counter, ["pipeline", "signal", "reason"], "Steps held on bad input (empty, stale, error), by signal.";
    PID_P = "phoenix_pid_p", Gauge, ["pipeline"], "PID proportional term (budget fractions).";
    PID_I = "phoenix_pid_i", Gauge, ["pipeline"], "PID integral term (budget fractions).";
    PID_D = "phoenix_pid_d", Gauge, ["pipeline"], "PID derivative term (budget fractions).";
    PID_OUTPUT = "phoenix_pid_output", Gauge, ["pipeline"], "PID correction added to pressure (budget fractions).";
    PRESSURE = "phoenix_pressure_ratio", Gauge, ["pipeline"], "Predicted output over budget plus the PID correction, on the decided profile.";
    INPUT = "phoenix_input_series", Gauge, ["pipeline"], "Series entering the pipeline (demand), last healthy sample.";
    OUTPUT = "phoenix_output_series", Gauge, ["pipeline"], "Series leaving the pipeline, last healthy sample.";
    BUDGET = "phoenix_budget_series", Gauge, ["pipeline"], "The pipeline's series budget.";
    PREDICTED_INPUT = "phoenix_predicted_input_series", Gauge, ["pipeline"], "Demand forecast used for the decision (trend plus volatility margin).";
    RETENTION = "phoenix_measured_retention_ratio", Gauge, ["pipeline", "profile"], "Retention measured while the profile was in force (output/input).";
    ANOMALY = "phoenix_anomaly_score", Gauge, ["pipeline", "signal"], "Anomaly score in [0, 1] of a watched signal.";
    SOURCE_STATE = "phoenix_source_state", Gauge, ["query", "state"], "1 for the state of the query's last result (ok, empty, stale, error), 0 for the others.";
    QUERY_DURATION = "phoenix_query_duration_seconds", Histogram, ["query"], "Time a Prometheus query took.";
    TICKS_LATE = "phoenix_ticks_late_total", Counter, [], "Sampling ticks that came late because the previous one was still running (coalesced, never queued).";
    TICKS = "phoenix_ticks_total", Counter, [], "Sampling ticks the controller evaluated (each steps every engine once).";
    TICK_DURATION = "phoenix_tick_duration_seconds", Histogram, [], "From the start of a tick's queries to every pipeline decided.";
    PIPELINES = "phoenix_pipelines", Gauge, [], "Pipelines with an engine.";
    PIPELINES_VANISHED = "phoenix_pipelines_vanished_total", Counter, ["pipeline"], "Pipelines that disappeared from the query results (their engine is kept for pipelines.keep_vanished).";
    APPLIES = "phoenix_applies_total", Counter, ["collector", "outcome"], "Applies of a collector's config (applied, failed, rolled_back).";
    RELOADS = "phoenix_reloads_total", Counter, ["collector", "outcome"], "Reloads of a collector (ok, failed; unreachable: the collector did not answer, the apply is retried with backoff before anything is written).";
    ROLLBACKS = "phoenix_rollbacks_total", Counter, ["collector"], "Rollbacks to the last known good config.";
    LAST_APPLY_SUCCESS = "phoenix_last_apply_success_timestamp_seconds", Gauge, ["collector"], "Unix time of the last verified apply.";
    APPLY_DURATION = "phoenix_apply_duration_seconds", Histogram, ["collector"], "From an apply's start to its verification (or failure).";
    CONFIG_GENERATION = "phoenix_config_generation", Gauge, ["collector"], "Generation of the collector config in force (increases with each apply).";
    ACTOR_RESTARTS = "phoenix_actor_restarts_total", Counter, ["actor"], "Restarts of a supervised actor.";
    SAFE_HOLD = "phoenix_safe_hold", Gauge, [], "1 while the daemon is in safe hold (an actor failed too often; every pipeline keeps its profile).";
    POLICY_RELOAD_SUCCESS = "phoenix_policy_reload_success", Gauge, [], "1 if the last policy load succeeded, 0 if it was rejected (the previous policy stays).";
    POLICY_RELOADS = "phoenix_policy_reloads_total", Counter, ["outcome"], "Policy reloads (ok, rejected).";
    COMMANDS = "phoenix_commands_total", Counter, ["pipeline", "command", "outcome"], "Operator and detector commands (override, clear, emergency), by outcome.";
    STATE_WRITE_DURATION = "phoenix_state_write_duration_seconds", Histogram, [], "Time to write the persisted engine state (serialise, fsync, rename).";
    STATE_WRITES = "phoenix_state_writes_total", Counter, ["outcome"], "Writes of the persisted engine state (ok, failed).";
    JOURNAL_BYTES = "phoenix_journal_bytes_total", Counter, [], "Compressed bytes written to the journal.";
}

/// Installs the process-wide recorder and returns the handle `/metrics` renders.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, metrics::Unit::Count, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => {
                metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help)
            }
        }
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(m.name.starts_with("phoenix_"), "{}", m.name);
            assert!(seen.insert(m.name), "{} twice", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
                Kind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            assert!(!m.help.is_empty());
        }
    }
}
