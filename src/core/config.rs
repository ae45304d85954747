//! The engine's configuration: plain values the policy layer produces after validation.
//!
//! The core never parses files; `policy::ValidatedPolicy::engine_config` builds this, and
//! tests and benchmarks may build it directly. Every field is assumed valid (the policy
//! layer checks ranges and cross-field rules); the engine still clamps where a bad value
//! could make it misbehave rather than merely decide badly.

use super::anomaly::{DEFAULT_THRESHOLD, DetectorKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One rung of the reduction ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileSpec {
    /// Name used in metrics, logs and the collector config (`conservative`, ...).
    pub name: String,
    /// Expected fraction of input series this profile keeps, in (0, 1].
    pub retention: f64,
}

/// PID gains, per second of real time; the engine scales them by each tick's length.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PidConfig {
    /// Proportional gain on the normalised error (output/budget − target).
    pub kp: f64,
    /// Integral gain per second.
    pub ki: f64,
    /// Derivative gain, seconds.
    pub kd: f64,
    /// Bound on the integral term (anti-windup), in budget fractions.
    pub i_limit: f64,
    /// Bound on the whole correction, in budget fractions.
    pub output_limit: f64,
}

/// When to move along the ladder, in fractions of the budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HysteresisConfig {
    /// Escalate when pressure (predicted output / budget, plus the PID correction) exceeds this.
    pub escalate_above: f64,
    /// Relax only when the less-reducing profile's pressure would be below this.
    pub relax_below: f64,
    /// How long the escalate condition must have held, measured on sample timestamps
    /// from the first sample that met it (0 = at once).
    pub escalate_for: Duration,
    /// How long the relax condition must have held, measured the same way.
    pub relax_for: Duration,
}

/// Feed-forward: a short linear prediction of demand plus a volatility margin.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionConfig {
    /// Input history (by sample time) used for the trend and the volatility.
    pub window: Duration,
    /// How far ahead the trend is extrapolated (usually the reload delay plus a tick).
    pub horizon: Duration,
    /// Margin in standard deviations of the input's scatter around its trend line.
    pub volatility_k: f64,
    /// Input history (by sample time) whose maximum must fit before relaxing.
    pub relax_window: Duration,
    /// Learned persistence below which an excursion is presumed transient: the engine
    /// tracks how often an excursion above `escalate_above` was still there at the next
    /// sample, and if that share is below this, it waits `transient_confirm`.
    pub persistence_threshold: f64,
    /// How long an excursion must last before escalating when excursions tend to be
    /// transient (one-sample spikes cost two switches and buy nothing).
    pub transient_confirm: Duration,
}

/// Switch budget: at most `max_switches` inside any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchBudget {
    /// Switches allowed per window.
    pub max_switches: u32,
    /// Length of the sliding window.
    pub window: Duration,
}

/// Flap protection: A→B→A within `window` freezes relaxation for `cooldown`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OscillationConfig {
    /// A return to the previous profile within this window is a flap.
    pub window: Duration,
    /// How long relaxation stays frozen after a flap.
    pub cooldown: Duration,
    /// Each further flap while the previous one is remembered doubles the cooldown, up to
    /// `2^max_doublings` times (0 = fixed cooldown); a pipeline that keeps flapping is
    /// held longer, a calm one relaxes quickly.
    pub max_doublings: u32,
}

/// After an apply of a profile failed or was rolled back, that profile is not decided
/// again for `backoff`, doubled for each further refusal in a row up to `2^max_doublings`
/// times. Without it the ladder, still wanting the profile, would decide it again as soon
/// as the dwell allows: a collector reload and a rollback every few seconds, and the
/// switch budget spent on a config the collector will not take.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedConfig {
    /// How long a refused profile is not decided again (0 = retry at once).
    pub backoff: Duration,
    /// Each further refusal of the same profile doubles the backoff, at most this many
    /// times.
    pub max_doublings: u32,
}

/// Emergency: jump to the most reducing profile and lock relaxation out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmergencyConfig {
    /// Output above `hard_ratio` × budget is an emergency.
    pub hard_ratio: f64,
    /// No relaxation for this long after an emergency switch. It takes the place of
    /// `min_dwell_relax` after an emergency (the dwell guards ladder switches), so each of
    /// the two guards decides on its own and neither shadows the other.
    pub lockout: Duration,
}

/// All guards; each blocks a switch with a named reason.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardsConfig {
    /// Minimum time since the last switch before escalating again.
    pub min_dwell_escalate: Duration,
    /// Minimum time since the last switch before relaxing.
    pub min_dwell_relax: Duration,
    /// Sliding-window cap on switches.
    pub switch_budget: SwitchBudget,
    /// Flap detection.
    pub oscillation: OscillationConfig,
    /// Hard limit and lockout.
    pub emergency: EmergencyConfig,
    /// Longest TTL a manual override may ask for.
    pub override_max_ttl: Duration,
    /// Backoff after a profile's apply failed or was rolled back.
    #[serde(default = "default_refused")]
    pub refused: RefusedConfig,
}

/// The refused-profile backoff of configs saved before it existed.
fn default_refused() -> RefusedConfig {
    EngineConfig::example(1.0).guards.refused
}

/// What to do when the input is bad (Empty, Stale, Error).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadInputConfig {
    /// An `Ok` sample older than this (relative to `now`) counts as stale.
    pub max_sample_age: Duration,
    /// After the input has been bad for this long without a healthy sample, the fallback
    /// profile may apply.
    pub fallback_after: Duration,
    /// Index of the fallback profile; applied only if more protective than the current one.
    pub fallback_profile: Option<usize>,
}

/// Anomaly watching: which signals are scored, by which detector, and when an explosion
/// turns into an emergency request.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyConfig {
    /// Detector run on each watched signal.
    pub detector: DetectorKind,
    /// Score the input (demand) signal.
    pub watch_input: bool,
    /// Score the output signal.
    pub watch_output: bool,
    /// Score at or above which a signal counts as anomalous.
    pub threshold: f64,
    /// Whether the explosion rule may request an emergency (scores are reported either way).
    pub request_emergency: bool,
    /// Output history (by sample time) for the linear trend (`predict_linear`).
    pub trend_window: Duration,
    /// The explosion rule fires when the trend crosses the budget within this time.
    pub horizon: Duration,
}

/// Everything one pipeline's engine needs to decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Pipeline name, for sentences and metrics labels.
    pub pipeline: String,
    /// Series budget for the pipeline's output.
    pub budget_series: f64,
    /// PID setpoint as a fraction of the budget (e.g. 0.9).
    pub target_ratio: f64,
    /// Profiles ordered from least to most reducing (retention strictly decreasing).
    pub profiles: Vec<ProfileSpec>,
    /// Index of the profile assumed in force at start.
    pub initial_profile: usize,
    /// Expected time between samples: `next_wakeup` is the latest sample time plus this,
    /// and the PID's first update assumes it.
    pub tick: Duration,
    /// PID gains and limits.
    pub pid: PidConfig,
    /// Ladder thresholds.
    pub hysteresis: HysteresisConfig,
    /// Demand prediction.
    pub prediction: PredictionConfig,
    /// Guards.
    pub guards: GuardsConfig,
    /// Bad-input handling.
    pub bad_input: BadInputConfig,
    /// Time after a profile comes into force during which output/input is not used to
    /// measure its retention (the collector's rates still mix old and new).
    pub settle: Duration,
    /// Anomaly detection on the pipeline's signals; `None` disables it.
    pub anomaly: Option<AnomalyConfig>,
}

impl EngineConfig {
    /// The shipped defaults (`policies/default.yaml` spells the same values out, and a
    /// policy that omits a field gets it from here); docs/control.md explains them.
    pub fn example(budget_series: f64) -> Self {
        let profiles = [
            ("conservative", 0.9),
            ("balanced", 0.6),
            ("aggressive", 0.35),
        ]
        .into_iter()
        .map(|(n, r)| ProfileSpec {
            name: n.to_string(),
            retention: r,
        })
        .collect();
        EngineConfig {
            pipeline: "default".to_string(),
            budget_series,
            target_ratio: 0.9,
            profiles,
            initial_profile: 0,
            tick: Duration::from_secs(15),
            pid: PidConfig {
                kp: 0.01,
                ki: 0.0001,
                kd: 0.004,
                i_limit: 0.003,
                output_limit: 0.1,
            },
            hysteresis: HysteresisConfig {
                escalate_above: 1.0,
                relax_below: 0.95,
                escalate_for: Duration::ZERO,
                relax_for: Duration::ZERO,
            },
            prediction: PredictionConfig {
                window: Duration::from_secs(120),
                horizon: Duration::from_secs(15),
                volatility_k: 0.04,
                relax_window: Duration::from_secs(300),
                persistence_threshold: 0.0,
                transient_confirm: Duration::from_secs(45),
            },
            guards: GuardsConfig {
                min_dwell_escalate: Duration::from_secs(15),
                min_dwell_relax: Duration::from_secs(300),
                switch_budget: SwitchBudget {
                    max_switches: 12,
                    window: Duration::from_secs(3600),
                },
                oscillation: OscillationConfig {
                    window: Duration::from_secs(120),
                    cooldown: Duration::from_secs(960),
                    max_doublings: 5,
                },
                emergency: EmergencyConfig {
                    hard_ratio: 2.0,
                    lockout: Duration::from_secs(600),
                },
                override_max_ttl: Duration::from_secs(24 * 3600),
                // Ten minutes, doubling to 80: long enough that a config the collector
                // refuses costs a few reloads an hour, short enough that a collector fixed
                // by hand (or a policy reload) gets the profile back within the hour.
                refused: RefusedConfig {
                    backoff: Duration::from_secs(600),
                    max_doublings: 3,
                },
            },
            bad_input: BadInputConfig {
                max_sample_age: Duration::from_secs(60),
                fallback_after: Duration::from_secs(45),
                fallback_profile: None,
            },
            settle: Duration::from_secs(30),
            anomaly: Some(AnomalyConfig {
                detector: DetectorKind::Ensemble,
                watch_input: true,
                watch_output: true,
                threshold: DEFAULT_THRESHOLD,
                request_emergency: true,
                trend_window: Duration::from_secs(120),
                horizon: Duration::from_secs(30),
            }),
        }
    }

    /// Index of the most reducing profile.
    pub fn most_reducing(&self) -> usize {
        self.profiles.len().saturating_sub(1)
    }

    /// Index of the profile called `name`.
    pub fn profile_index(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.name == name)
    }
}
