//! Semantic validation: ranges and cross-field rules on a parsed policy.
//!
//! Every check runs, so one pass reports every problem. A check that depends on a section
//! which failed to parse is skipped (that section is already reported, and its defaults
//! would only produce confusing follow-on errors). Messages state the value found and the
//! allowed range, so the fix is obvious from the line alone.

use super::fragment::{ProfileFragments, Severity, Sink};
use super::ladder::{LadderProblem, MIN_PROFILES, check_ladder};
use super::parse::{Parsed, Reporter};
use super::schema::{AnomalySignal, Dur};
use super::{AnomalySpec, PredictionSpec, Signals, ValidatedPolicy};
use crate::core::config::{
    EmergencyConfig, GuardsConfig, HysteresisConfig, OscillationConfig, PidConfig, ProfileSpec,
    RefusedConfig, SwitchBudget,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, LabelModifier};
use std::time::Duration;

/// Longest duration accepted anywhere: longer is almost surely a typo (`30d` for `30m`),
/// and keeps deadline arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest manual override: a pin older than a week is a forgotten pin.
const MAX_OVERRIDE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest and longest evaluation interval.
const MIN_TICK: Duration = Duration::from_secs(1);
const MAX_TICK: Duration = Duration::from_secs(3600);
/// Longest profile or policy name (it becomes a metric label value).
const MAX_NAME_LEN: usize = 64;
/// Upper bound on the emergency ratio; beyond this the emergency never fires.
const MAX_HARD_RATIO: f64 = 100.0;
/// Most cooldown doublings after repeated flaps (2^10 × cooldown is already weeks).
const MAX_DOUBLINGS: u32 = 10;
/// Upper bound on the volatility margin, in standard deviations.
const MAX_VOLATILITY_K: f64 = 10.0;

/// A number for messages: plain when readable, scientific when huge or tiny.
pub(crate) fn num(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e9).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A duration for messages, as a policy would spell it: `0s`, `90s` → `1m30s`, `30d`.
pub(crate) fn dur(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        if nanos % 1_000_000 == 0 {
            out.push_str(&format!("{}ms", nanos / 1_000_000));
        } else {
            out.push_str(&format!("{nanos}ns"));
        }
    }
    out
}

/// One end of a numeric range.
#[derive(Clone, Copy)]
enum End {
    /// Excluded: `(x` or `x)`.
    Open(f64),
    /// Included: `[x` or `x]`.
    Closed(f64),
    /// Unbounded.
    Free,
}

impl Reporter<'_> {
    /// Checks `lo <?> v <?> hi`; reports `v must be in (lo, hi]` (or `> lo`, `>= lo`...).
    fn range(&mut self, field: &str, v: f64, lo: End, hi: End) -> bool {
        let lo_ok = match lo {
            End::Open(l) => v > l,
            End::Closed(l) => v >= l,
            End::Free => true,
        };
        let hi_ok = match hi {
            End::Open(h) => v < h,
            End::Closed(h) => v <= h,
            End::Free => true,
        };
        if v.is_finite() && lo_ok && hi_ok {
            return true;
        }
        self.at(field, out_of_range(v, lo, hi));
        false
    }

    /// Checks a duration is within `[0, max]`, or `(0, max]` when `positive`.
    fn duration(&mut self, field: &str, d: Dur, positive: bool, max: Duration) -> bool {
        let d = d.0;
        if positive && d.is_zero() {
            self.at(field, format!("{} must be > 0", dur(d)));
            false
        } else if d > max {
            self.at(field, format!("{} must be <= {}", dur(d), dur(max)));
            false
        } else {
            true
        }
    }

    /// Reports `lo < hi` (or `<=` when not `strict`) broken, at whichever of the two fields
    /// the file spells out (the first when both are), naming the other with its value.
    fn ordered(&mut self, lo: (&str, String), hi: (&str, String), strict: bool, why: &str) {
        let (lt, gt) = if strict { ("<", ">") } else { ("<=", ">=") };
        if self.positions.has(lo.0) || !self.positions.has(hi.0) {
            self.at(
                lo.0,
                format!("{} must be {lt} {} ({}): {why}", lo.1, hi.0, hi.1),
            );
        } else {
            self.at(
                hi.0,
                format!("{} must be {gt} {} ({}): {why}", hi.1, lo.0, lo.1),
            );
        }
    }

    /// Checks an integer count is at least `min`.
    /// Reports a window longer than the engine's sample history covers at this tick.
    fn within_history(&mut self, field: &str, d: Dur, tick: Dur) {
        let max = tick.0 * crate::core::predict::MAX_SAMPLES as u32;
        if d.0 > max {
            self.at(
                field,
                format!(
                    "{} spans more than {} ticks of {} ({}), more than the engine keeps; shorten it or lengthen tick",
                    dur(d.0),
                    crate::core::predict::MAX_SAMPLES,
                    dur(tick.0),
                    dur(max)
                ),
            );
        }
    }

    fn at_least(&mut self, field: &str, v: u32, min: u32) -> bool {
        if v < min {
            self.at(field, format!("{v} must be >= {min}"));
            false
        } else {
            true
        }
    }
}

/// The message for `v` outside `lo..hi`: `v must be in (lo, hi]` (or `> lo`, `>= lo`...).
fn out_of_range(v: f64, lo: End, hi: End) -> String {
    let allowed = match (lo, hi) {
        (End::Free, End::Free) => "a finite number".to_string(),
        (lo, End::Free) => match lo {
            End::Open(l) => format!("> {}", num(l)),
            _ => format!(">= {}", num(end_value(lo))),
        },
        (End::Free, hi) => match hi {
            End::Open(h) => format!("< {}", num(h)),
            _ => format!("<= {}", num(end_value(hi))),
        },
        (lo, hi) => format!(
            "in {}{}, {}{}",
            if matches!(lo, End::Open(_)) { "(" } else { "[" },
            num(end_value(lo)),
            num(end_value(hi)),
            if matches!(hi, End::Open(_)) { ")" } else { "]" },
        ),
    };
    let what = if v.is_finite() {
        num(v)
    } else {
        format!("{} (not a finite number)", num(v))
    };
    format!("{what} must be {allowed}")
}

fn end_value(e: End) -> f64 {
    match e {
        End::Open(v) | End::Closed(v) => v,
        End::Free => f64::NAN,
    }
}

/// `[a-z0-9_-]{1,64}`: safe as a metric label value, a file name and a YAML key.
fn name_problem(name: &str) -> Option<String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        Some(format!(
            "{name:?} must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_' or '-'"
        ))
    } else {
        None
    }
}

/// A Prometheus label name, not reserved (`__` prefix).
fn label_problem(label: &str) -> Option<String> {
    let mut chars = label.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok {
        Some(format!(
            "{label:?} must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ))
    } else if label.starts_with("__") {
        Some(format!(
            "{label:?} is reserved (labels starting with `__` are internal to Prometheus)"
        ))
    } else {
        None
    }
}

/// Parses a PromQL query and checks it yields one series per pipeline.
pub(crate) fn promql_problem(query: &str, group_by: &str) -> Option<String> {
    if query.trim().is_empty() {
        return Some("query must not be empty".to_string());
    }
    // The parser is a third-party dependency fed untrusted text; a panic there must not
    // take the daemon (or its policy watcher) down.
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(query))
        .unwrap_or_else(|_| Err("the PromQL parser failed on this query".to_string()));
    let expr = match parsed {
        Ok(e) => e,
        Err(e) => return Some(format!("invalid PromQL: {}", e.trim())),
    };
    let vt = expr.value_type();
    if vt != ValueType::Vector {
        return Some(format!(
            "must return an instant vector (one series per pipeline), but returns a {vt}"
        ));
    }
    if group_by.is_empty() {
        return None;
    }
    grouping_problem(&expr, group_by)
}

/// Finds an aggregation at the top of the query that drops the pipeline label. Only the
/// unambiguous shapes are checked (aggregations, parentheses, arithmetic with a scalar);
/// anything else passes, so a valid query is never rejected.
fn grouping_problem(expr: &Expr, label: &str) -> Option<String> {
    match expr {
        Expr::Paren(p) => grouping_problem(&p.expr, label),
        Expr::Binary(b) => {
            if b.lhs.value_type() == ValueType::Scalar {
                grouping_problem(&b.rhs, label)
            } else if b.rhs.value_type() == ValueType::Scalar {
                grouping_problem(&b.lhs, label)
            } else {
                None
            }
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio") {
                // These keep the input series' labels.
                return grouping_problem(&a.expr, label);
            }
            match &a.modifier {
                Some(LabelModifier::Include(ls)) if !ls.labels.iter().any(|l| l == label) => {
                    Some(format!(
                        "`{op} by ({})` drops the `{label}` label (signals.group_by), so pipelines cannot be told apart; add it to `by (...)`",
                        ls.labels.join(", ")
                    ))
                }
                Some(LabelModifier::Exclude(ls)) if ls.labels.iter().any(|l| l == label) => {
                    Some(format!(
                        "`{op} without (...)` removes the `{label}` label (signals.group_by), so pipelines cannot be told apart"
                    ))
                }
                None => Some(format!(
                    "`{op}` without `by ({label})` merges every pipeline into one series; write `{op} by ({label}) (...)`"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Checks everything; returns the policy only when no problem was found (including the
/// ones the parse stage already reported into `rep`).
pub(crate) fn validate(parsed: Parsed, rep: &mut Reporter<'_>) -> Option<ValidatedPolicy> {
    let Parsed {
        raw,
        failed,
        failed_fragments,
    } = parsed;
    let ok = |k: &str| !failed.contains(k);

    if ok("name")
        && let Some(m) = name_problem(&raw.name)
    {
        rep.at("name", m);
    }
    let target_ok = ok("target_ratio")
        && rep.range(
            "target_ratio",
            raw.target_ratio,
            End::Open(0.0),
            End::Closed(1.0),
        );
    if ok("budget_series")
        && let Some(b) = raw.budget_series
    {
        rep.range("budget_series", b, End::Closed(1.0), End::Closed(1e12));
    }
    let tick_ok = ok("tick") && (MIN_TICK..=MAX_TICK).contains(&raw.tick.0);
    if ok("tick") {
        let t = raw.tick.0;
        if !tick_ok {
            rep.at(
                "tick",
                format!(
                    "{} must be in [{}, {}]",
                    dur(t),
                    dur(MIN_TICK),
                    dur(MAX_TICK)
                ),
            );
        }
    }

    // The ladder: the shared rules (check_ladder), worded here with field paths. Names are
    // also label values, so they follow this file's stricter spelling rule too.
    let mut profiles = Vec::with_capacity(raw.profiles.len());
    if ok("profiles") {
        profiles.extend(raw.profiles.iter().map(|p| ProfileSpec {
            name: p.name.clone(),
            retention: p.retention,
        }));
        let problems = check_ladder(&profiles);
        let at = |i: usize| problems.iter().filter(move |q| q.index() == Some(i));
        for q in &problems {
            if let LadderProblem::TooFewProfiles { found } = q {
                rep.at(
                    "profiles",
                    format!(
                        "the ladder needs at least {MIN_PROFILES} profiles (least to most reducing), found {found}"
                    ),
                );
            }
        }
        for (i, p) in profiles.iter().enumerate() {
            let f = format!("profiles[{i}]");
            let spelling = name_problem(&p.name);
            if let Some(m) = &spelling {
                rep.at(&format!("{f}.name"), m.clone());
            }
            for q in at(i) {
                match *q {
                    // The spelling rule covers it, in this file's words.
                    LadderProblem::EmptyName { .. } => {}
                    LadderProblem::DuplicateName { first, .. } => {
                        if spelling.is_none() {
                            rep.at(
                                &format!("{f}.name"),
                                format!(
                                    "{:?} is already the name of profiles[{first}]; names must be unique",
                                    p.name
                                ),
                            );
                        }
                    }
                    LadderProblem::RetentionOutOfRange { retention, .. } => rep.at(
                        &format!("{f}.retention"),
                        out_of_range(retention, End::Open(0.0), End::Closed(1.0)),
                    ),
                    LadderProblem::NotDecreasing {
                        retention,
                        previous,
                        ..
                    } => rep.at(
                        &format!("{f}.retention"),
                        format!(
                            "{} must be < {} (profiles[{}].retention): profiles are ordered from least to most reducing, so retention must strictly decrease",
                            num(retention),
                            num(previous),
                            i - 1
                        ),
                    ),
                    // Reported above, for the whole ladder.
                    LadderProblem::TooFewProfiles { .. } => {}
                }
            }
        }
    }
    let profile_index = |field: &str, name: &str, rep: &mut Reporter<'_>| -> Option<usize> {
        let idx = profiles.iter().position(|p| p.name == name);
        if idx.is_none() {
            let mut names: Vec<&str> = Vec::new();
            for p in &profiles {
                if !names.contains(&p.name.as_str()) {
                    names.push(&p.name);
                }
            }
            rep.at(
                field,
                format!(
                    "{name:?} is not a profile; expected one of: {}",
                    names.join(", ")
                ),
            );
        }
        idx
    };
    let mut initial_profile = 0;
    if ok("profiles")
        && ok("initial_profile")
        && let Some(n) = &raw.initial_profile
    {
        initial_profile = profile_index("initial_profile", n, rep).unwrap_or(0);
    }

    // Signals.
    let s = &raw.signals;
    if ok("signals") {
        let label_ok = match label_problem(&s.group_by) {
            Some(m) => {
                rep.at("signals.group_by", m);
                false
            }
            None => true,
        };
        let group = if label_ok { s.group_by.as_str() } else { "" };
        for (field, q) in [("signals.input", &s.input), ("signals.output", &s.output)] {
            if let Some(m) = promql_problem(q, group) {
                rep.at(field, m);
            }
        }
        if rep.duration(
            "signals.max_sample_age",
            s.max_sample_age,
            true,
            MAX_DURATION,
        ) && tick_ok
            && s.max_sample_age.0 < raw.tick.0 * 2
        {
            // Samples come a tick apart plus scrape lag; a limit of one tick reads ordinary
            // jitter as stale data and as gaps that restart every streak.
            rep.at(
                "signals.max_sample_age",
                format!(
                    "{} is less than two ticks ({}): ordinary scrape lag would make samples stale; use at least {}",
                    dur(s.max_sample_age.0),
                    dur(raw.tick.0),
                    dur(raw.tick.0 * 2)
                ),
            );
        }
    }

    // PID.
    let pid = raw.pid;
    if ok("pid") {
        for (f, v) in [("pid.kp", pid.kp), ("pid.ki", pid.ki), ("pid.kd", pid.kd)] {
            rep.range(f, v, End::Closed(0.0), End::Free);
        }
        let i_ok = rep.range("pid.i_limit", pid.i_limit, End::Closed(0.0), End::Free);
        let o_ok = rep.range(
            "pid.output_limit",
            pid.output_limit,
            End::Closed(0.0),
            End::Free,
        );
        if i_ok && o_ok && pid.i_limit > pid.output_limit {
            rep.ordered(
                ("pid.i_limit", num(pid.i_limit)),
                ("pid.output_limit", num(pid.output_limit)),
                false,
                "the integral term is part of the whole correction",
            );
        }
    }

    // Hysteresis, against the emergency ratio and the setpoint.
    let h = raw.hysteresis;
    let g = raw.guards;
    let hard_ok = ok("guards")
        && rep.range(
            "guards.emergency.hard_ratio",
            g.emergency.hard_ratio,
            End::Open(0.0),
            End::Closed(MAX_HARD_RATIO),
        );
    if ok("hysteresis") {
        let e_ok = rep.range(
            "hysteresis.escalate_above",
            h.escalate_above,
            End::Open(0.0),
            End::Free,
        );
        let r_ok = rep.range(
            "hysteresis.relax_below",
            h.relax_below,
            End::Open(0.0),
            End::Free,
        );
        if e_ok && r_ok && h.relax_below >= h.escalate_above {
            rep.ordered(
                ("hysteresis.relax_below", num(h.relax_below)),
                ("hysteresis.escalate_above", num(h.escalate_above)),
                true,
                "the band between them is where the ladder holds still",
            );
        }
        if e_ok && hard_ok && h.escalate_above >= g.emergency.hard_ratio {
            rep.ordered(
                ("hysteresis.escalate_above", num(h.escalate_above)),
                ("guards.emergency.hard_ratio", num(g.emergency.hard_ratio)),
                true,
                "normal escalation must start before the emergency",
            );
        }
        if e_ok && target_ok && raw.target_ratio >= h.escalate_above {
            rep.ordered(
                ("target_ratio", num(raw.target_ratio)),
                ("hysteresis.escalate_above", num(h.escalate_above)),
                true,
                "otherwise the ladder escalates while output is on target",
            );
        }
        rep.duration(
            "hysteresis.escalate_for",
            h.escalate_for,
            false,
            MAX_DURATION,
        );
        rep.duration("hysteresis.relax_for", h.relax_for, false, MAX_DURATION);
    }

    // Prediction.
    let pr = raw.prediction;
    if ok("prediction") {
        rep.duration("prediction.window", pr.window, true, MAX_DURATION);
        rep.duration("prediction.horizon", pr.horizon, false, MAX_DURATION);
        rep.duration(
            "prediction.relax_window",
            pr.relax_window,
            true,
            MAX_DURATION,
        );
        rep.range(
            "prediction.volatility_k",
            pr.volatility_k,
            End::Closed(0.0),
            End::Closed(MAX_VOLATILITY_K),
        );
        rep.range(
            "prediction.persistence_threshold",
            pr.persistence_threshold,
            End::Closed(0.0),
            End::Closed(1.0),
        );
        rep.duration(
            "prediction.transient_confirm",
            pr.transient_confirm,
            false,
            MAX_DURATION,
        );
        for (field, d) in [
            ("prediction.window", pr.window),
            ("prediction.relax_window", pr.relax_window),
        ] {
            if tick_ok && d.0 <= MAX_DURATION {
                rep.within_history(field, d, raw.tick);
            }
        }
    }

    // Guards.
    if ok("guards") {
        let esc_ok = rep.duration(
            "guards.min_dwell.escalate",
            g.min_dwell.escalate,
            false,
            MAX_DURATION,
        );
        let rel_ok = rep.duration(
            "guards.min_dwell.relax",
            g.min_dwell.relax,
            true,
            MAX_DURATION,
        );
        if esc_ok && rel_ok && g.min_dwell.escalate > g.min_dwell.relax {
            rep.ordered(
                ("guards.min_dwell.escalate", dur(g.min_dwell.escalate.0)),
                ("guards.min_dwell.relax", dur(g.min_dwell.relax.0)),
                false,
                "escalate fast, relax slowly",
            );
        }
        rep.at_least(
            "guards.switch_budget.max_switches",
            g.switch_budget.max_switches,
            2,
        );
        rep.duration(
            "guards.switch_budget.window",
            g.switch_budget.window,
            true,
            MAX_DURATION,
        );
        rep.duration(
            "guards.oscillation.window",
            g.oscillation.window,
            true,
            MAX_DURATION,
        );
        rep.duration(
            "guards.oscillation.cooldown",
            g.oscillation.cooldown,
            true,
            MAX_DURATION,
        );
        if g.oscillation.max_doublings > MAX_DOUBLINGS {
            rep.at(
                "guards.oscillation.max_doublings",
                format!(
                    "{} must be in [0, {MAX_DOUBLINGS}]",
                    g.oscillation.max_doublings
                ),
            );
        }
        rep.duration(
            "guards.emergency.lockout",
            g.emergency.lockout,
            false,
            MAX_DURATION,
        );
        rep.duration(
            "guards.override.max_ttl",
            g.override_.max_ttl,
            true,
            MAX_OVERRIDE_TTL,
        );
        rep.duration(
            "guards.refused.backoff",
            g.refused.backoff,
            false,
            MAX_DURATION,
        );
        if g.refused.max_doublings > MAX_DOUBLINGS {
            rep.at(
                "guards.refused.max_doublings",
                format!(
                    "{} must be in [0, {MAX_DOUBLINGS}]",
                    g.refused.max_doublings
                ),
            );
        }
    }

    // Bad input.
    let b = &raw.bad_input;
    let mut fallback_profile = None;
    if ok("bad_input") {
        rep.duration(
            "bad_input.fallback_after",
            b.fallback_after,
            false,
            MAX_DURATION,
        );
        if ok("profiles")
            && let Some(n) = &b.fallback_profile
        {
            fallback_profile = profile_index("bad_input.fallback_profile", n, rep);
        }
    }

    // Anomaly watching. Checked even when disabled, so switching it on later cannot
    // surface old mistakes at the worst moment.
    let an = &raw.anomaly;
    if ok("anomaly") {
        if an.signals.is_empty() {
            rep.at(
                "anomaly.signals",
                "the list is empty; it must be a non-empty subset of [input, output] (to watch nothing, set anomaly.enabled: false)",
            );
        }
        for (i, sig) in an.signals.iter().enumerate() {
            if let Some(j) = an.signals[..i].iter().position(|t| t == sig) {
                rep.at(
                    &format!("anomaly.signals[{i}]"),
                    format!(
                        "`{}` is already listed at anomaly.signals[{j}]; each of input, output may appear once",
                        sig.name()
                    ),
                );
            }
        }
        rep.range(
            "anomaly.threshold",
            an.threshold,
            End::Open(0.0),
            End::Closed(1.0),
        );
        if rep.duration("anomaly.trend_window", an.trend_window, true, MAX_DURATION) && tick_ok {
            rep.within_history("anomaly.trend_window", an.trend_window, raw.tick);
            // The explosion rule fits a line through at least three samples: a window
            // shorter than two ticks would leave it silently dead.
            if an.trend_window.0 < raw.tick.0 * 2 {
                rep.at(
                    "anomaly.trend_window",
                    format!(
                        "{} is shorter than two ticks ({}); the trend needs at least three samples, so use at least {}",
                        dur(an.trend_window.0),
                        dur(raw.tick.0),
                        dur(raw.tick.0 * 2)
                    ),
                );
            }
        }
        rep.duration("anomaly.horizon", an.horizon, true, MAX_DURATION);
    }

    // Labels declared safe to drop, then each profile's fragments against them.
    let safe = &raw.safe_to_drop_labels;
    let safe_ok = ok("safe_to_drop_labels");
    if safe_ok {
        for (i, sl) in safe.iter().enumerate() {
            let f = format!("safe_to_drop_labels[{i}]");
            if let Some(m) = label_problem(&sl.label) {
                rep.at(&f, m);
            } else if let Some(j) = safe[..i].iter().position(|t| t.label == sl.label) {
                rep.at(
                    &f,
                    format!(
                        "{:?} is already declared at safe_to_drop_labels[{j}]",
                        sl.label
                    ),
                );
            }
            for (k, d) in sl.determined_by.iter().enumerate() {
                let df = format!("{f}.determined_by[{k}]");
                if let Some(m) = label_problem(d) {
                    rep.at(&df, m);
                } else if *d == sl.label {
                    rep.at(
                        &df,
                        format!("{d:?} cannot be determined by itself; name the labels that stay"),
                    );
                }
            }
        }
    }
    let mut fragments = Vec::with_capacity(raw.profiles.len());
    for (i, p) in raw.profiles.iter().enumerate() {
        let base = format!("profiles[{i}]");
        if let Some(f) = &p.prometheus
            && !failed_fragments.contains(&(i, "prometheus"))
        {
            let mut sink = Sink::default();
            f.check(&mut sink);
            if safe_ok {
                check_drop_labels(&f.drop_labels, safe, &mut sink);
            }
            report(rep, &format!("{base}.prometheus"), sink);
        }
        if let Some(f) = &p.otelcol
            && !failed_fragments.contains(&(i, "otelcol"))
        {
            let mut sink = Sink::default();
            f.check(&mut sink);
            report(rep, &format!("{base}.otelcol"), sink);
        }
        fragments.push(ProfileFragments {
            prometheus: p.prometheus.clone(),
            otelcol: p.otelcol.clone(),
        });
    }

    if !rep.problems.is_empty() {
        return None;
    }
    Some(ValidatedPolicy {
        origin: rep.origin.to_string(),
        name: raw.name,
        description: raw.description,
        target_ratio: raw.target_ratio,
        budget_series: raw.budget_series,
        tick: raw.tick.0,
        profiles,
        initial_profile,
        signals: Signals {
            input: s.input.clone(),
            output: s.output.clone(),
            group_by: s.group_by.clone(),
            max_sample_age: s.max_sample_age.0,
        },
        pid: PidConfig {
            kp: pid.kp,
            ki: pid.ki,
            kd: pid.kd,
            i_limit: pid.i_limit,
            output_limit: pid.output_limit,
        },
        hysteresis: HysteresisConfig {
            escalate_above: h.escalate_above,
            relax_below: h.relax_below,
            escalate_for: h.escalate_for.0,
            relax_for: h.relax_for.0,
        },
        prediction: PredictionSpec {
            window: pr.window.0,
            horizon: pr.horizon.0,
            volatility_k: pr.volatility_k,
            relax_window: pr.relax_window.0,
            persistence_threshold: pr.persistence_threshold,
            transient_confirm: pr.transient_confirm.0,
        },
        guards: GuardsConfig {
            min_dwell_escalate: g.min_dwell.escalate.0,
            min_dwell_relax: g.min_dwell.relax.0,
            switch_budget: SwitchBudget {
                max_switches: g.switch_budget.max_switches,
                window: g.switch_budget.window.0,
            },
            oscillation: OscillationConfig {
                window: g.oscillation.window.0,
                cooldown: g.oscillation.cooldown.0,
                max_doublings: g.oscillation.max_doublings,
            },
            emergency: EmergencyConfig {
                hard_ratio: g.emergency.hard_ratio,
                lockout: g.emergency.lockout.0,
            },
            override_max_ttl: g.override_.max_ttl.0,
            refused: RefusedConfig {
                backoff: g.refused.backoff.0,
                max_doublings: g.refused.max_doublings,
            },
        },
        fallback_after: b.fallback_after.0,
        fallback_profile,
        settle: raw.settle.0,
        anomaly: an.enabled.then(|| AnomalySpec {
            detector: an.detector,
            watch_input: an.signals.contains(&AnomalySignal::Input),
            watch_output: an.signals.contains(&AnomalySignal::Output),
            threshold: an.threshold,
            request_emergency: an.request_emergency,
            trend_window: an.trend_window.0,
            horizon: an.horizon.0,
        }),
        source: String::new(),
        fragments,
        safe_to_drop_labels: raw.safe_to_drop_labels,
        warnings: Vec::new(),
    })
}

/// Moves a fragment's problems into the report, under the fragment's field path.
fn report(rep: &mut Reporter<'_>, prefix: &str, sink: Sink) {
    for p in sink.problems {
        let field = if p.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", p.field)
        };
        match p.severity {
            Severity::Error => rep.at(&field, p.message),
            Severity::Warning => rep.warn(&field, p.message),
        }
    }
}

/// `drop_labels` against `safe_to_drop_labels`: an undeclared label is refused; a declared
/// one without `determined_by`, or dropped together with a label it depends on, may merge
/// series and is warned about.
fn check_drop_labels(drop: &[String], safe: &[super::SafeLabel], sink: &mut Sink) {
    for (j, l) in drop.iter().enumerate() {
        let f = format!("drop_labels[{j}]");
        match safe.iter().find(|s| s.label == *l) {
            None => sink.error(
                f,
                format!(
                    "{l:?} is not declared in safe_to_drop_labels; dropping a label that tells series apart merges them and Prometheus keeps only the first sample, so declare it there (with determined_by) only if other labels identify the series without it"
                ),
            ),
            Some(s) if s.determined_by.is_empty() => sink.warn(
                f,
                format!(
                    "dropping {l:?} could merge series (Prometheus then keeps only the first sample of each scrape): safe_to_drop_labels does not say which labels still tell them apart; add determined_by"
                ),
            ),
            Some(s) => {
                if let Some(d) = s.determined_by.iter().find(|d| drop.contains(d)) {
                    sink.warn(
                        f,
                        format!(
                            "dropping {l:?} could merge series: it is safe only while {d:?} stays (determined_by), and this profile drops {d:?} too"
                        ),
                    );
                }
            }
        }
    }
}
