//! The policy file's shape: strict serde structs mirroring the YAML an SRE writes.
//!
//! These are *raw* values: they parsed, but nothing about ranges or cross-field rules has
//! been checked yet. `validate` turns a `RawPolicy` into a `ValidatedPolicy`. Every struct
//! denies unknown fields (a typo is an error, not a silently ignored knob), and every field
//! except `name` and `profiles` has a default, so a minimal policy is a few lines. The
//! defaults here are the ones documented in `docs/policy.md` and spelled out in
//! `policies/default.yaml`; keep the three in step.

use super::fragment::{OtelcolFragment, PrometheusFragment};
use crate::core::anomaly::DetectorKind;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// A duration written the humantime way (`30s`, `5m`, `1h30m`); never a bare number,
/// because `tick: 15` could mean seconds or milliseconds and the SRE should say which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Dur(pub Duration);

impl Dur {
    const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

/// Accepts strings only, and explains the expected form for everything else.
struct DurVisitor;

const DUR_HINT: &str = "write a duration with a unit, e.g. 30s, 5m or 1h30m";

impl Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 30s, 5m or 1h30m")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
        let t = v.trim();
        if t.starts_with('-') {
            return Err(E::custom(format!(
                "invalid duration `{v}`: durations cannot be negative"
            )));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| match e {
            // The unit is there; telling the reader to add one would mislead.
            humantime::DurationError::NumberOverflow => E::custom(format!(
                "invalid duration `{v}`: the number is too large (durations are at most centuries, e.g. 30s, 5m or 1h30m)"
            )),
            e => E::custom(format!("invalid duration `{v}`: {e}; {DUR_HINT}")),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "invalid duration `{v}`: missing unit; {DUR_HINT}"
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "invalid duration `{v}`: missing unit; {DUR_HINT}"
        )))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "invalid duration `{v}`: missing unit; {DUR_HINT}"
        )))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Dur, E> {
        Err(E::custom(format!("invalid duration `{v}`: {DUR_HINT}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Dur, E> {
        Err(E::custom(format!("missing duration value; {DUR_HINT}")))
    }
}

/// The whole policy file. `name` and `profiles` are required; the rest default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy mapping (name, profiles, ...)"
)]
pub(crate) struct RawPolicy {
    /// Policy name; the controller's name in simulation reports.
    pub name: String,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// PID setpoint as a fraction of the budget.
    #[serde(default = "defaults::target_ratio")]
    pub target_ratio: f64,
    /// Default per-pipeline budget; the daemon or simulation may override it.
    #[serde(default)]
    pub budget_series: Option<f64>,
    /// Evaluation interval.
    #[serde(default = "defaults::tick")]
    pub tick: Dur,
    /// The ladder, least to most reducing.
    pub profiles: Vec<RawProfile>,
    /// Profile assumed in force at start; the first profile when absent.
    #[serde(default)]
    pub initial_profile: Option<String>,
    /// PromQL for demand and output.
    #[serde(default)]
    pub signals: RawSignals,
    /// PID gains and limits.
    #[serde(default)]
    pub pid: RawPid,
    /// Ladder thresholds.
    #[serde(default)]
    pub hysteresis: RawHysteresis,
    /// Demand prediction, in time (converted to ticks later).
    #[serde(default)]
    pub prediction: RawPrediction,
    /// Guards on switching.
    #[serde(default)]
    pub guards: RawGuards,
    /// What to do when the signals are bad.
    #[serde(default)]
    pub bad_input: RawBadInput,
    /// Time after a profile comes into force before its retention is measured.
    #[serde(default = "defaults::settle")]
    pub settle: Dur,
    /// Anomaly watching and the explosion rule.
    #[serde(default)]
    pub anomaly: RawAnomaly,
    /// Labels a profile's `prometheus.drop_labels` may remove.
    #[serde(default)]
    pub safe_to_drop_labels: Vec<SafeLabel>,
}

/// Top-level keys, in file order of `default.yaml`; used to report unknown keys and to
/// deserialize sections one by one when the whole file does not parse.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "target_ratio",
    "budget_series",
    "tick",
    "safe_to_drop_labels",
    "profiles",
    "initial_profile",
    "signals",
    "pid",
    "hysteresis",
    "prediction",
    "guards",
    "bad_input",
    "settle",
    "anomaly",
];

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile mapping such as `{ name: balanced, retention: 0.6 }`"
)]
pub(crate) struct RawProfile {
    /// Profile name, as the actuator and metrics know it.
    pub name: String,
    /// Expected fraction of series kept.
    pub retention: f64,
    /// What the profile does on a Prometheus collector.
    #[serde(default)]
    pub prometheus: Option<PrometheusFragment>,
    /// What the profile does on an OpenTelemetry Collector.
    #[serde(default)]
    pub otelcol: Option<OtelcolFragment>,
}

/// A profile's own keys with its fragments left unread: parsed on its own when the
/// profiles do not parse as a whole, so a broken fragment does not hide the ladder.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile mapping such as `{ name: balanced, retention: 0.6 }`"
)]
pub(crate) struct RawProfileCore {
    /// As in [`RawProfile`].
    pub name: String,
    /// As in [`RawProfile`].
    pub retention: f64,
    /// Parsed separately.
    #[serde(default, rename = "prometheus")]
    pub _prometheus: Option<serde::de::IgnoredAny>,
    /// Parsed separately.
    #[serde(default, rename = "otelcol")]
    pub _otelcol: Option<serde::de::IgnoredAny>,
}

/// A label a profile may drop, and the labels that keep series apart without it.
///
/// Written `pod_template_hash` or `{ label: pod_template_hash, determined_by: [pod] }`.
/// Dropping a label merges every series that differed only by it, and Prometheus cannot
/// aggregate at scrape time: it keeps the first sample and loses the rest. A label is
/// safe to drop when its value follows from labels that stay (`determined_by`); without
/// them, `policy check` warns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeLabel {
    /// The label name.
    pub label: String,
    /// Labels whose values determine this one's; they must stay for the drop to be safe.
    pub determined_by: Vec<String>,
}

impl<'de> Deserialize<'de> for SafeLabel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            deny_unknown_fields,
            expecting = "a mapping `{ label: NAME, determined_by: [LABEL, ...] }`"
        )]
        struct Full {
            label: String,
            #[serde(default)]
            determined_by: Vec<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SafeLabel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label name, or `{ label: NAME, determined_by: [LABEL, ...] }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SafeLabel, E> {
                Ok(SafeLabel {
                    label: v.to_string(),
                    determined_by: Vec::new(),
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<SafeLabel, A::Error> {
                let f = Full::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(SafeLabel {
                    label: f.label,
                    determined_by: f.determined_by,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The Prometheus side: one query per signal for all pipelines.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with input, output, group_by, max_sample_age"
)]
pub(crate) struct RawSignals {
    /// Series entering each pipeline (demand).
    pub input: String,
    /// Series leaving each pipeline (what the budget is about).
    pub output: String,
    /// Label whose value names the pipeline in both results.
    pub group_by: String,
    /// A newer sample than this is required, else the signal is Stale.
    pub max_sample_age: Dur,
}

/// The engine's reference configuration: the single source of the policy defaults, so
/// a minimal policy file behaves exactly like the shipped `policies/default.yaml`.
fn example() -> crate::core::EngineConfig {
    crate::core::EngineConfig::example(100_000.0)
}

/// Default demand query: data points entering the reduction processor per minute. With
/// series reported once a minute this equals the number of active series.
pub(crate) const DEFAULT_INPUT_QUERY: &str = "sum by (pipeline) (rate(otelcol_processor_incoming_items{otel_signal=\"metrics\", processor=\"filter/phoenix\"}[1m])) * 60";
/// Default output query, the same processor's outgoing side.
pub(crate) const DEFAULT_OUTPUT_QUERY: &str = "sum by (pipeline) (rate(otelcol_processor_outgoing_items{otel_signal=\"metrics\", processor=\"filter/phoenix\"}[1m])) * 60";

impl Default for RawSignals {
    fn default() -> Self {
        RawSignals {
            input: DEFAULT_INPUT_QUERY.to_string(),
            output: DEFAULT_OUTPUT_QUERY.to_string(),
            group_by: "pipeline".to_string(),
            max_sample_age: Dur::secs(60),
        }
    }
}

/// PID gains (per second) and limits (budget fractions).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with kp, ki, kd, i_limit, output_limit"
)]
pub(crate) struct RawPid {
    /// Proportional gain.
    pub kp: f64,
    /// Integral gain per second.
    pub ki: f64,
    /// Derivative gain, seconds.
    pub kd: f64,
    /// Anti-windup bound on the integral term.
    pub i_limit: f64,
    /// Bound on the whole correction.
    pub output_limit: f64,
}

impl Default for RawPid {
    fn default() -> Self {
        let p = example().pid;
        RawPid {
            kp: p.kp,
            ki: p.ki,
            kd: p.kd,
            i_limit: p.i_limit,
            output_limit: p.output_limit,
        }
    }
}

/// Escalate/relax thresholds in budget fractions, and how long each must hold.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with escalate_above, relax_below, escalate_for, relax_for"
)]
pub(crate) struct RawHysteresis {
    /// Escalate when pressure is above this.
    pub escalate_above: f64,
    /// Relax when the less-reducing profile's pressure would be below this.
    pub relax_below: f64,
    /// How long the escalate condition must hold (0s = at once).
    pub escalate_for: Dur,
    /// How long the relax condition must hold.
    pub relax_for: Dur,
}

impl Default for RawHysteresis {
    fn default() -> Self {
        let h = example().hysteresis;
        RawHysteresis {
            escalate_above: h.escalate_above,
            relax_below: h.relax_below,
            escalate_for: Dur(h.escalate_for),
            relax_for: Dur(h.relax_for),
        }
    }
}

/// Demand prediction, written in time so a policy survives a change of tick.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with window, horizon, volatility_k, relax_window, persistence_threshold, transient_confirm"
)]
pub(crate) struct RawPrediction {
    /// History used for the trend and volatility.
    pub window: Dur,
    /// How far ahead to extrapolate.
    pub horizon: Dur,
    /// Volatility margin in standard deviations.
    pub volatility_k: f64,
    /// History whose maximum must fit before relaxing.
    pub relax_window: Dur,
    /// Share of excursions that persisted below which spikes are presumed transient.
    pub persistence_threshold: f64,
    /// How long a presumed-transient excursion must last before escalating.
    pub transient_confirm: Dur,
}

impl Default for RawPrediction {
    fn default() -> Self {
        let p = example().prediction;
        RawPrediction {
            window: Dur(p.window),
            horizon: Dur(p.horizon),
            volatility_k: p.volatility_k,
            relax_window: Dur(p.relax_window),
            persistence_threshold: p.persistence_threshold,
            transient_confirm: Dur(p.transient_confirm),
        }
    }
}

/// All guards.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Default)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with min_dwell, switch_budget, oscillation, emergency, override"
)]
pub(crate) struct RawGuards {
    /// Minimum time between switches, per direction.
    pub min_dwell: RawMinDwell,
    /// At most N switches per window.
    pub switch_budget: RawSwitchBudget,
    /// Flap detection.
    pub oscillation: RawOscillation,
    /// Hard limit and lockout.
    pub emergency: RawEmergency,
    /// Manual override limits.
    #[serde(rename = "override")]
    pub override_: RawOverride,
    /// Backoff after a profile's apply failed or was rolled back.
    pub refused: RawRefused,
}

/// A profile whose apply failed or was rolled back is not decided again for `backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with backoff, max_doublings"
)]
pub(crate) struct RawRefused {
    /// How long a refused profile is not decided again.
    pub backoff: Dur,
    /// Each further refusal in a row doubles the backoff, at most this many times.
    pub max_doublings: u32,
}

impl Default for RawRefused {
    fn default() -> Self {
        let r = example().guards.refused;
        RawRefused {
            backoff: Dur(r.backoff),
            max_doublings: r.max_doublings,
        }
    }
}

/// Asymmetric dwell: escalate fast, relax slowly.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with escalate, relax"
)]
pub(crate) struct RawMinDwell {
    /// Time since the last switch before escalating.
    pub escalate: Dur,
    /// Time since the last switch before relaxing.
    pub relax: Dur,
}

impl Default for RawMinDwell {
    fn default() -> Self {
        let g = example().guards;
        RawMinDwell {
            escalate: Dur(g.min_dwell_escalate),
            relax: Dur(g.min_dwell_relax),
        }
    }
}

/// Sliding-window switch cap.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with max_switches, window"
)]
pub(crate) struct RawSwitchBudget {
    /// Switches allowed per window.
    pub max_switches: u32,
    /// Window length.
    pub window: Dur,
}

impl Default for RawSwitchBudget {
    fn default() -> Self {
        let b = example().guards.switch_budget;
        RawSwitchBudget {
            max_switches: b.max_switches,
            window: Dur(b.window),
        }
    }
}

/// A→B→A inside `window` freezes relaxation for `cooldown`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with window, cooldown, max_doublings"
)]
pub(crate) struct RawOscillation {
    /// Flap window.
    pub window: Dur,
    /// Relaxation freeze after a flap.
    pub cooldown: Dur,
    /// Repeated flaps double the cooldown, at most this many times.
    pub max_doublings: u32,
}

impl Default for RawOscillation {
    fn default() -> Self {
        let o = example().guards.oscillation;
        RawOscillation {
            window: Dur(o.window),
            cooldown: Dur(o.cooldown),
            max_doublings: o.max_doublings,
        }
    }
}

/// Emergency threshold and lockout.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with hard_ratio, lockout"
)]
pub(crate) struct RawEmergency {
    /// Output above this × budget jumps to the most reducing profile.
    pub hard_ratio: f64,
    /// No relaxation for this long afterwards.
    pub lockout: Dur,
}

impl Default for RawEmergency {
    fn default() -> Self {
        let e = example().guards.emergency;
        RawEmergency {
            hard_ratio: e.hard_ratio,
            lockout: Dur(e.lockout),
        }
    }
}

/// Manual override limits.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping with max_ttl")]
pub(crate) struct RawOverride {
    /// Longest TTL an override may ask for.
    pub max_ttl: Dur,
}

impl Default for RawOverride {
    fn default() -> Self {
        RawOverride {
            max_ttl: Dur::secs(24 * 3600),
        }
    }
}

/// Bad-input handling.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with fallback_after, fallback_profile"
)]
pub(crate) struct RawBadInput {
    /// How long the input must have been bad before the fallback profile may apply.
    pub fallback_after: Dur,
    /// Profile to fall back to (only if more protective); none means hold.
    pub fallback_profile: Option<String>,
}

impl Default for RawBadInput {
    fn default() -> Self {
        RawBadInput {
            fallback_after: Dur(example().bad_input.fallback_after),
            fallback_profile: None,
        }
    }
}

/// A signal the anomaly detector may watch (policy files name them like `signals.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AnomalySignal {
    /// The demand signal, `signals.input`.
    Input,
    /// The output signal, `signals.output`.
    Output,
}

impl AnomalySignal {
    /// The name a policy file uses.
    pub fn name(self) -> &'static str {
        match self {
            AnomalySignal::Input => "input",
            AnomalySignal::Output => "output",
        }
    }
}

/// Anomaly watching, written in time like the prediction (converted to ticks later).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with enabled, detector, signals, threshold, request_emergency, trend_window, horizon"
)]
pub(crate) struct RawAnomaly {
    /// Off: no scores, no explosion rule (the engine gets no anomaly configuration).
    pub enabled: bool,
    /// Detector run on each watched signal.
    pub detector: DetectorKind,
    /// Watched signals: a non-empty subset of {input, output}, no duplicates.
    pub signals: Vec<AnomalySignal>,
    /// Score at or above which a signal is anomalous.
    pub threshold: f64,
    /// Whether the explosion rule may request an emergency.
    pub request_emergency: bool,
    /// Output history for the linear trend.
    pub trend_window: Dur,
    /// The rule fires when the trend crosses the budget within this horizon.
    pub horizon: Dur,
}

impl Default for RawAnomaly {
    fn default() -> Self {
        let e = example();
        // The example enables anomaly watching; should it ever stop doing so, the
        // defaults stay valid values with the section switched off.
        let enabled = e.anomaly.is_some();
        let a = e.anomaly.unwrap_or(crate::core::config::AnomalyConfig {
            detector: DetectorKind::Ensemble,
            watch_input: true,
            watch_output: true,
            threshold: crate::core::anomaly::DEFAULT_THRESHOLD,
            request_emergency: true,
            trend_window: std::time::Duration::from_secs(120),
            horizon: std::time::Duration::from_secs(30),
        });
        let signals = [
            (a.watch_input, AnomalySignal::Input),
            (a.watch_output, AnomalySignal::Output),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect();
        RawAnomaly {
            enabled,
            detector: a.detector,
            signals,
            threshold: a.threshold,
            request_emergency: a.request_emergency,
            trend_window: Dur(a.trend_window),
            horizon: Dur(a.horizon),
        }
    }
}

/// Serde default functions for top-level scalars.
pub(crate) mod defaults {
    use super::Dur;

    /// Default PID setpoint.
    pub fn target_ratio() -> f64 {
        0.9
    }

    /// Default evaluation interval.
    pub fn tick() -> Dur {
        Dur::secs(15)
    }

    /// Default settle time after a profile comes into force.
    pub fn settle() -> Dur {
        Dur(super::example().settle)
    }
}
