//! Profile fragments: what each profile does to a collector's config, per backend.
//!
//! A profile in the policy may carry a `prometheus` fragment (rules for the pipeline's
//! scrape jobs' `metric_relabel_configs`) and an `otelcol` fragment (processors in the
//! OpenTelemetry Collector's own syntax, inserted into the pipeline's service pipelines).
//! The `file` backend writes the profile's name to a control file and needs no fragment.
//!
//! These types are the schema (strict serde, unknown fields refused) and carry their own
//! structural checks ([`PrometheusFragment::problems`], [`OtelcolFragment::problems`]),
//! which the policy's validation locates in the file and the renderers in `crate::render`
//! run again, so a fragment built in code is held to the same rules as one read from a
//! policy. Checks that need the rest of the policy (labels declared safe to drop) live in
//! the policy's validation.

use super::ottl::{self, Ctx, Kind};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Label the Prometheus renderer writes the sampling hash into; reserved for it.
pub const SAMPLE_LABEL: &str = "__tmp_phoenix_sample";
/// Prefix of every label the Prometheus renderer owns; fragments may not use it.
pub const RESERVED_LABEL_PREFIX: &str = "__tmp_phoenix";
/// Largest hashmod modulus: the rendered drop rule lists the dropped buckets, and a
/// finer split than 1/1000 buys nothing at scrape time.
pub const MAX_MODULUS: u64 = 1000;
/// Longest regex accepted in a fragment; longer is a generated list that belongs in a
/// relabel rule of its own, and it bounds the cost of compiling it at every check.
const MAX_REGEX_LEN: usize = 4096;

/// How bad a fragment problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The fragment is refused.
    Error,
    /// The fragment is accepted, but it may lose data; `policy check` prints it.
    Warning,
}

/// One problem in a fragment, with the field relative to the fragment
/// (`drop_metrics[1]`, `processors.filter.metrics.datapoint[0]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentProblem {
    /// Dotted field path inside the fragment; empty for the fragment as a whole.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Refused, or only warned about.
    pub severity: Severity,
}

/// Collects problems under a field prefix.
#[derive(Default)]
pub(crate) struct Sink {
    pub problems: Vec<FragmentProblem>,
}

impl Sink {
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field.into(), message.into(), Severity::Error);
    }

    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field.into(), message.into(), Severity::Warning);
    }

    fn push(&mut self, field: String, message: String, severity: Severity) {
        self.problems.push(FragmentProblem {
            field,
            message,
            severity,
        });
    }
}

/// Both fragments of one profile; a profile without any only works with the `file`
/// backend (or changes nothing on the others).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileFragments {
    /// Rules for the pipeline's Prometheus scrape jobs.
    pub prometheus: Option<PrometheusFragment>,
    /// Processors for the pipeline's OpenTelemetry Collector service pipelines.
    pub otelcol: Option<OtelcolFragment>,
}

// ---------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------

/// What a profile does to its pipeline's scrape jobs, rendered into
/// `metric_relabel_configs` after the job's own rules, in this order: `drop_metrics`,
/// `keep_metrics`, `sample`, `drop_labels`, `relabel`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a prometheus fragment mapping with drop_metrics, keep_metrics, sample, drop_labels, relabel"
)]
pub struct PrometheusFragment {
    /// Metric-name regexes (RE2, anchored); each becomes a `drop` rule on `__name__`.
    #[serde(default)]
    pub drop_metrics: Vec<String>,
    /// Metric-name regexes; together one `keep` rule: every other metric is dropped.
    #[serde(default)]
    pub keep_metrics: Vec<String>,
    /// Hash sampling of series on one label.
    #[serde(default)]
    pub sample: Option<Sample>,
    /// Labels removed with `labeldrop`; each must be declared in the policy's
    /// `safe_to_drop_labels`.
    #[serde(default)]
    pub drop_labels: Vec<String>,
    /// Raw relabel rules in Prometheus syntax, appended last.
    #[serde(default)]
    pub relabel: Vec<RelabelRule>,
}

/// Keep a stable share of the values of one label: series whose label value hashes
/// (`hashmod`) into the first `keep` of `modulus` buckets survive. Series without the
/// label are never sampled away.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a sample mapping such as `{ label: pod, keep_ratio: 0.5 }`"
)]
pub struct Sample {
    /// The label hashed; its values are what gets sampled.
    pub label: String,
    /// Share kept, to the nearest percent, in [0.01, 0.99]; or give `modulus` and `keep`.
    #[serde(default)]
    pub keep_ratio: Option<f64>,
    /// Number of hash buckets, in [2, 1000].
    #[serde(default)]
    pub modulus: Option<u64>,
    /// Buckets kept, in [1, modulus - 1].
    #[serde(default)]
    pub keep: Option<u64>,
    /// Only series of metrics whose name matches this regex are sampled.
    #[serde(default)]
    pub metrics: Option<String>,
}

impl Sample {
    /// `(modulus, keep)`, from `keep_ratio` or as written; `None` when neither form is
    /// complete (a problem [`PrometheusFragment::problems`] reports).
    pub fn buckets(&self) -> Option<(u64, u64)> {
        match (self.keep_ratio, self.modulus, self.keep) {
            (Some(r), None, None) if r.is_finite() => Some((100, (r * 100.0).round() as u64)),
            (None, Some(m), Some(k)) => Some((m, k)),
            _ => None,
        }
    }
}

/// A relabel action, as Prometheus spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` from the matched source labels (Prometheus' default).
    #[default]
    Replace,
    /// Drop series whose source labels do not match.
    Keep,
    /// Drop series whose source labels match.
    Drop,
    /// Drop series whose source labels differ from `target_label`.
    KeepEqual,
    /// Drop series whose source labels equal `target_label`.
    DropEqual,
    /// Set `target_label` to a hash of the source labels modulo `modulus`.
    HashMod,
    /// Copy labels whose names match to names built from `replacement`.
    LabelMap,
    /// Remove labels whose names match.
    LabelDrop,
    /// Remove labels whose names do not match.
    LabelKeep,
    /// Set `target_label` to the lower-cased source labels.
    Lowercase,
    /// Set `target_label` to the upper-cased source labels.
    Uppercase,
}

impl RelabelAction {
    /// The name in Prometheus' config.
    pub fn name(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }
}

/// One Prometheus `relabel_config`; fields left out take Prometheus' defaults and are not
/// rendered. Field order is Prometheus' own, so the rendered YAML reads like its docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a relabel rule mapping (source_labels, separator, target_label, regex, modulus, replacement, action)"
)]
pub struct RelabelRule {
    /// Labels whose values are joined with `separator` and matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    /// Joins the source label values (Prometheus' default `;`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Label written by replace, hashmod, lowercase, uppercase; compared by keepequal and
    /// dropequal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// RE2 regex, anchored at both ends by Prometheus (default `(.*)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Hash buckets for hashmod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    /// Value written by replace, name template for labelmap (default `$1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// What the rule does (default replace).
    #[serde(default)]
    pub action: RelabelAction,
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a label name as Prometheus (legacy validation) accepts it.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles `re` the way Prometheus applies it (anchored at both ends); the error text
/// is the regex crate's first line, which points at the broken part.
pub(crate) fn regex_problem(re: &str) -> Option<String> {
    if re.len() > MAX_REGEX_LEN {
        return Some(format!(
            "regex is {} bytes, more than {MAX_REGEX_LEN}; split it into several entries",
            re.len()
        ));
    }
    match regex::Regex::new(&format!("^(?:{re})$")) {
        Ok(_) => None,
        Err(e) => {
            let text = e.to_string();
            // The crate prints the pattern and a caret over several lines; the last line
            // says what is wrong, which is what fits on one line of `policy check`.
            let reason = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid regex")
                .trim()
                .trim_start_matches("error: ");
            Some(format!(
                "invalid regex {re:?}: {reason} (Prometheus uses RE2 syntax, anchored at both ends)"
            ))
        }
    }
}

/// Refuses a regex RE2 cannot compile and warns about syntax only recent collectors take.
fn check_regex(sink: &mut Sink, field: String, re: &str) {
    if let Some(m) = regex_problem(re) {
        sink.error(field, m);
    } else if let Some(w) = regex_portability(re) {
        sink.warn(field, w);
    }
}

/// Syntax that compiles here but not in every collector release: Go accepts the
/// `(?<name>…)` group only from Go 1.22 (2024), so Prometheus and Collector builds older
/// than that (Debian bookworm's Prometheus 2.42 among them) refuse the whole config at
/// reload. `(?P<name>…)` means the same everywhere.
pub(crate) fn regex_portability(re: &str) -> Option<String> {
    let bytes = re.as_bytes();
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'(' if bytes[i + 1..].starts_with(b"?<")
                && !bytes[i + 1..].starts_with(b"?<=")
                && !bytes[i + 1..].starts_with(b"?<!") =>
            {
                return Some(format!(
                    "regex {re:?} names a group with (?<name>…), which collectors built with Go before 1.22 (e.g. Prometheus 2.42) refuse at reload; write (?P<name>…)"
                ));
            }
            _ => {}
        }
    }
    None
}

fn reserved(s: &str) -> bool {
    s.contains(RESERVED_LABEL_PREFIX)
}

impl PrometheusFragment {
    /// Whether it renders no rule at all.
    pub fn is_empty(&self) -> bool {
        self.drop_metrics.is_empty()
            && self.keep_metrics.is_empty()
            && self.sample.is_none()
            && self.drop_labels.is_empty()
            && self.relabel.is_empty()
    }

    /// Structural problems, fields relative to the fragment. Does not know which labels
    /// the policy declares safe to drop; the policy checks that.
    pub fn problems(&self) -> Vec<FragmentProblem> {
        let mut sink = Sink::default();
        self.check(&mut sink);
        sink.problems
    }

    pub(crate) fn check(&self, sink: &mut Sink) {
        for (key, list) in [
            ("drop_metrics", &self.drop_metrics),
            ("keep_metrics", &self.keep_metrics),
        ] {
            for (i, re) in list.iter().enumerate() {
                let f = format!("{key}[{i}]");
                if re.trim().is_empty() {
                    sink.error(
                        f,
                        "empty regex; write the metric names to match, e.g. `go_gc_.*`",
                    );
                } else {
                    check_regex(sink, f, re);
                }
            }
        }
        if let Some(s) = &self.sample {
            self.check_sample(s, sink);
        }
        for (i, l) in self.drop_labels.iter().enumerate() {
            let f = format!("drop_labels[{i}]");
            if !is_label_name(l) {
                sink.error(
                    f,
                    format!("{l:?} must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            } else if l.starts_with("__") {
                sink.error(
                    f,
                    format!(
                        "{l:?} is internal to Prometheus (`__` prefix); drop_labels is for labels the series carry"
                    ),
                );
            } else if let Some(j) = self.drop_labels[..i].iter().position(|m| m == l) {
                sink.error(f, format!("{l:?} is already listed at drop_labels[{j}]"));
            }
        }
        for (i, r) in self.relabel.iter().enumerate() {
            check_rule(r, &format!("relabel[{i}]"), sink);
        }
    }

    fn check_sample(&self, s: &Sample, sink: &mut Sink) {
        if !is_label_name(&s.label) || s.label.starts_with("__") {
            sink.error(
                "sample.label",
                format!(
                    "{:?} must be a label the series carry ([a-zA-Z_][a-zA-Z0-9_]*, no `__` prefix)",
                    s.label
                ),
            );
        }
        match (s.keep_ratio, s.modulus, s.keep) {
            (Some(r), None, None) => {
                if !(r.is_finite() && (0.01..=0.99).contains(&r)) {
                    sink.error(
                        "sample.keep_ratio",
                        format!(
                            "{r} must be in [0.01, 0.99] (to keep everything remove `sample`; sampling is by whole percent)"
                        ),
                    );
                }
            }
            (None, Some(m), Some(k)) => {
                if !(2..=MAX_MODULUS).contains(&m) {
                    sink.error(
                        "sample.modulus",
                        format!("{m} must be in [2, {MAX_MODULUS}]"),
                    );
                } else if k == 0 || k >= m {
                    sink.error(
                        "sample.keep",
                        format!(
                            "{k} must be in [1, {}] (buckets kept out of modulus {m})",
                            m - 1
                        ),
                    );
                }
            }
            (None, None, None) => sink.error(
                "sample",
                "say how much to keep: `keep_ratio: 0.5`, or `modulus: 10` with `keep: 5`",
            ),
            (Some(_), _, _) => sink.error(
                "sample.keep_ratio",
                "give either keep_ratio or modulus with keep, not both",
            ),
            (None, Some(_), None) => sink.error(
                "sample.modulus",
                "modulus needs `keep` (buckets kept out of modulus)",
            ),
            (None, None, Some(_)) => sink.error(
                "sample.keep",
                "keep needs `modulus` (number of hash buckets)",
            ),
        }
        if let Some(re) = &s.metrics {
            if re.trim().is_empty() {
                sink.error(
                    "sample.metrics",
                    "empty regex; remove it to sample every metric",
                );
            } else {
                check_regex(sink, "sample.metrics".into(), re);
            }
        }
    }
}

/// The structural rules Prometheus applies to a relabel_config (its `Validate`), plus
/// Phoenix's own: no label removal outside `drop_labels`, no use of the renderer's labels.
fn check_rule(r: &RelabelRule, f: &str, sink: &mut Sink) {
    use RelabelAction as A;
    let a = r.action;
    let name = a.name();
    for l in r.source_labels.iter().flatten() {
        if !is_label_name(l) {
            sink.error(
                format!("{f}.source_labels"),
                format!("{l:?} must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            );
        }
    }
    let mentions_reserved = r.source_labels.iter().flatten().any(|l| reserved(l))
        || r.target_label.as_deref().is_some_and(reserved)
        || r.regex.as_deref().is_some_and(reserved);
    if mentions_reserved {
        sink.error(
            f,
            format!(
                "labels starting with {RESERVED_LABEL_PREFIX} belong to Phoenix's rendered rules; use another __tmp_ label"
            ),
        );
    }
    if let Some(re) = &r.regex {
        check_regex(sink, format!("{f}.regex"), re);
    }
    let no_sources = r.source_labels.as_ref().is_none_or(|v| v.is_empty());
    match a {
        A::LabelDrop | A::LabelKeep => {
            sink.error(
                format!("{f}.action"),
                format!(
                    "{name} removes labels, which can merge series; list the labels under drop_labels instead, where each is checked against safe_to_drop_labels"
                ),
            );
            return;
        }
        A::Keep
        | A::Drop
        | A::HashMod
        | A::Lowercase
        | A::Uppercase
        | A::KeepEqual
        | A::DropEqual
            if no_sources =>
        {
            sink.error(
                format!("{f}.source_labels"),
                format!("{name} needs source_labels (the labels it reads)"),
            );
        }
        _ => {}
    }
    let needs_target = matches!(
        a,
        A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    match r.target_label.as_deref() {
        None | Some("") if needs_target => sink.error(
            format!("{f}.target_label"),
            format!("{name} needs target_label"),
        ),
        Some(t) if a == A::Replace && t.contains('$') => {
            // A template: Prometheus checks it against its own pattern at load time.
        }
        Some(t) if needs_target && !is_label_name(t) => sink.error(
            format!("{f}.target_label"),
            format!("{t:?} is not a valid target_label for {name} ([a-zA-Z_][a-zA-Z0-9_]*)"),
        ),
        _ => {}
    }
    if a == A::HashMod && r.modulus.is_none_or(|m| m == 0) {
        sink.error(
            format!("{f}.modulus"),
            "hashmod needs a modulus > 0 (the number of hash buckets)",
        );
    }
    if matches!(a, A::KeepEqual | A::DropEqual)
        && (r.regex.is_some()
            || r.modulus.is_some()
            || r.separator.is_some()
            || r.replacement.is_some())
    {
        sink.error(
            f,
            format!("{name} takes only source_labels and target_label, no other fields"),
        );
    }
    if matches!(a, A::Lowercase | A::Uppercase) && r.replacement.is_some() {
        sink.error(
            format!("{f}.replacement"),
            format!("replacement cannot be set for {name}"),
        );
    }
    if matches!(a, A::Replace | A::LabelMap | A::Lowercase | A::Uppercase) {
        sink.warn(
            f,
            format!(
                "{name} rewrites labels: if two series end up with the same labels, Prometheus keeps only the first sample of each scrape and the rest is lost"
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------
// OpenTelemetry Collector
// ---------------------------------------------------------------------------------------

/// What a profile does to its pipeline's OpenTelemetry Collector service pipelines: these
/// processors, renamed per pipeline (`filter` → `filter/phoenix_<pipeline>`,
/// `filter/x` → `filter/phoenix_<pipeline>_x`), inserted in this order before
/// `insert_before` (or at the end of the pipeline's processors when it is absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtelcolFragment {
    /// The base config's processor the fragment's processors go in front of (`batch`).
    pub insert_before: Option<String>,
    /// Processor id as written (`type` or `type/name`) and its config, in file order.
    pub processors: Vec<(String, OtelProcessor)>,
}

/// One processor, in the collector's syntax.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OtelProcessor {
    /// `filter`: drops metrics or datapoints matching OTTL conditions.
    Filter(FilterProcessor),
    /// `transform`: OTTL statements (delete_key, keep_keys, limit, aggregate_on_attributes).
    Transform(TransformProcessor),
    /// `metricstransform`: aggregate_labels and friends.
    MetricsTransform(MetricsTransformProcessor),
}

impl OtelProcessor {
    /// The component type, as in the collector's config.
    pub fn kind(&self) -> &'static str {
        match self {
            OtelProcessor::Filter(_) => "filter",
            OtelProcessor::Transform(_) => "transform",
            OtelProcessor::MetricsTransform(_) => "metricstransform",
        }
    }
}

/// How an OTTL processor treats a statement's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    /// Log and go on (the collector's recommendation).
    Ignore,
    /// Go on without logging.
    Silent,
    /// Drop the payload.
    Propagate,
}

/// The filter processor, metrics only: telemetry matching any condition is dropped.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a filter processor mapping with error_mode and metrics"
)]
pub struct FilterProcessor {
    /// How condition errors are treated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_mode: Option<ErrorMode>,
    /// Conditions per OTTL context.
    pub metrics: FilterMetrics,
}

/// Filter conditions for metrics.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with metric and datapoint condition lists"
)]
pub struct FilterMetrics {
    /// Conditions in the metric context: a match drops the whole metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric: Vec<String>,
    /// Conditions in the datapoint context: a match drops the datapoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datapoint: Vec<String>,
}

/// The transform processor, metrics only.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a transform processor mapping with error_mode and metric_statements"
)]
pub struct TransformProcessor {
    /// How statement errors are treated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_mode: Option<ErrorMode>,
    /// Statements, or groups of them, run in order.
    pub metric_statements: Vec<StatementEntry>,
}

/// An item of `metric_statements`: a statement (basic config) or a group (advanced).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatementEntry {
    /// One OTTL statement; the collector infers its context.
    Statement(String),
    /// Statements sharing a context, conditions and error mode.
    Group(StatementGroup),
}

/// A group of OTTL statements (the transform processor's advanced config).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a statement group mapping with context, error_mode, conditions, statements"
)]
pub struct StatementGroup {
    /// OTTL context; inferred from the paths when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<TransformContext>,
    /// Overrides the processor's error mode for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_mode: Option<ErrorMode>,
    /// Where clauses ORed together, guarding every statement of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The statements.
    pub statements: Vec<String>,
}

/// OTTL contexts usable in `metric_statements`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformContext {
    /// Resource attributes.
    Resource,
    /// Instrumentation scope.
    Scope,
    /// The metric (name, type; aggregate_on_attributes works here).
    Metric,
    /// Each datapoint (its attributes).
    Datapoint,
}

impl<'de> Deserialize<'de> for StatementEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatementEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an OTTL statement string, or a group `{ context, statements: [...] }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatementEntry, E> {
                Ok(StatementEntry::Statement(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<StatementEntry, A::Error> {
                StatementGroup::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(StatementEntry::Group)
            }
        }
        d.deserialize_any(V)
    }
}

/// The metricstransform processor.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a metricstransform processor mapping with transforms"
)]
pub struct MetricsTransformProcessor {
    /// Transformations, each on the metrics `include` selects.
    pub transforms: Vec<MetricTransform>,
}

/// One metricstransform transformation.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a transform mapping with include, match_type, action, new_name, operations"
)]
pub struct MetricTransform {
    /// Metric name (strict) or regex (regexp) selecting the metrics.
    pub include: String,
    /// How `include` matches (collector default strict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<MatchType>,
    /// Change the metric in place, insert a copy, or combine matches into one.
    pub action: MetricAction,
    /// Name of the inserted or combined metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Operations applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<MetricOperation>,
}

/// How a metricstransform `include` matches metric names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    /// Exact name.
    Strict,
    /// RE2 regex.
    Regexp,
}

/// What a metricstransform transformation does with the selected metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricAction {
    /// In place.
    Update,
    /// On a copy named `new_name`.
    Insert,
    /// Merge every match into one metric named `new_name`.
    Combine,
}

/// One metricstransform operation (the ones that reduce cardinality, and renames).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an operation mapping such as `{ action: aggregate_labels, label_set: [a], aggregation_type: sum }`"
)]
pub struct MetricOperation {
    /// The operation.
    pub action: OperationAction,
    /// Label operated on (update_label, aggregate_label_values, delete_label_value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// New name of `label` (update_label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_label: Option<String>,
    /// Labels kept; the others are aggregated away (aggregate_labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_set: Option<Vec<String>>,
    /// Values of `label` merged into `new_value` (aggregate_label_values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated_values: Option<Vec<String>>,
    /// The merged value (aggregate_label_values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<String>,
    /// Value whose datapoints are deleted (delete_label_value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_value: Option<String>,
    /// How merged datapoints combine (aggregations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_type: Option<AggregationType>,
}

/// A metricstransform operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationAction {
    /// Keep only `label_set`, aggregating the rest away.
    AggregateLabels,
    /// Merge some values of a label into one.
    AggregateLabelValues,
    /// Delete the datapoints with one label value.
    DeleteLabelValue,
    /// Rename a label.
    UpdateLabel,
}

/// How metricstransform combines datapoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregationType {
    /// Sum (counters, and gauges that add up).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Number of datapoints.
    Count,
    /// Median.
    Median,
}

/// The processor types a fragment may define.
pub const PROCESSOR_TYPES: &[&str] = &["filter", "transform", "metricstransform"];

impl<'de> Deserialize<'de> for OtelcolFragment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            deny_unknown_fields,
            expecting = "an otelcol fragment mapping with insert_before and processors"
        )]
        struct Raw {
            #[serde(default)]
            insert_before: Option<String>,
            #[serde(default)]
            processors: Processors,
        }
        let raw = Raw::deserialize(d)?;
        Ok(OtelcolFragment {
            insert_before: raw.insert_before,
            processors: raw.processors.0,
        })
    }
}

/// `processors:` in file order, each value parsed by the type its key names.
#[derive(Default)]
struct Processors(Vec<(String, OtelProcessor)>);

impl<'de> Deserialize<'de> for Processors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Processors;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a mapping of processor ids (filter, transform/name, ...) to their config",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Processors, A::Error> {
                let mut out = Vec::new();
                while let Some(id) = m.next_key::<String>()? {
                    let kind = id.split('/').next().unwrap_or_default();
                    let p = match kind {
                        "filter" => OtelProcessor::Filter(m.next_value()?),
                        "transform" => OtelProcessor::Transform(m.next_value()?),
                        "metricstransform" => OtelProcessor::MetricsTransform(m.next_value()?),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "unknown processor type `{kind}` in `{id}`, expected one of: {}",
                                PROCESSOR_TYPES.join(", ")
                            )));
                        }
                    };
                    out.push((id, p));
                }
                Ok(Processors(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `type` or `type/name` with a name of `[A-Za-z0-9_-]`: what a collector component id
/// may be, kept to characters that are safe in a processor metric's label value too.
pub(crate) fn component_id_problem(id: &str) -> Option<String> {
    let (kind, name) = match id.split_once('/') {
        Some((k, n)) => (k, Some(n)),
        None => (id, None),
    };
    let kind_ok = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if kind_ok && name_ok {
        None
    } else {
        Some(format!(
            "{id:?} must be a component id `type` or `type/name` (name of A-Z, a-z, 0-9, '_', '-')"
        ))
    }
}

/// Editors that remove datapoint attributes, which can leave datapoints that only
/// differed by them with the same identity.
const ATTRIBUTE_REMOVERS: &[&str] = &[
    "delete_key",
    "delete_matching_keys",
    "keep_keys",
    "keep_matching_keys",
    "limit",
];

impl OtelcolFragment {
    /// Structural problems, fields relative to the fragment.
    pub fn problems(&self) -> Vec<FragmentProblem> {
        let mut sink = Sink::default();
        self.check(&mut sink);
        sink.problems
    }

    pub(crate) fn check(&self, sink: &mut Sink) {
        if let Some(b) = &self.insert_before {
            if let Some(m) = component_id_problem(b) {
                sink.error("insert_before", m);
            } else if b
                .split_once('/')
                .is_some_and(|(_, n)| n.starts_with("phoenix_"))
            {
                sink.error(
                    "insert_before",
                    format!("{b:?} is a processor Phoenix renders; name one of the base config's processors (e.g. batch)"),
                );
            }
        }
        // Whether some later processor aggregates, which makes removing attributes safe.
        let aggregates_at: Vec<bool> = self.processors.iter().map(|(_, p)| aggregates(p)).collect();
        for (i, (id, p)) in self.processors.iter().enumerate() {
            let f = format!("processors.{id}");
            if let Some(m) = component_id_problem(id) {
                sink.error(f.clone(), m);
            } else if id
                .split_once('/')
                .is_some_and(|(_, n)| n.starts_with("phoenix"))
            {
                sink.error(
                    f.clone(),
                    format!("{id:?}: names starting with `phoenix` are the renderer's; Phoenix adds phoenix_<pipeline> itself"),
                );
            }
            let aggregated_later = aggregates_at[i..].iter().any(|&a| a);
            match p {
                OtelProcessor::Filter(x) => check_filter(x, &f, sink),
                OtelProcessor::Transform(x) => check_transform(x, &f, aggregated_later, sink),
                OtelProcessor::MetricsTransform(x) => check_metricstransform(x, &f, sink),
            }
        }
    }
}

/// Whether a processor aggregates datapoints (so identical attribute sets are merged, not
/// duplicated).
fn aggregates(p: &OtelProcessor) -> bool {
    match p {
        OtelProcessor::Filter(_) => false,
        OtelProcessor::Transform(t) => t.metric_statements.iter().any(|e| {
            let stmts: &[String] = match e {
                StatementEntry::Statement(s) => std::slice::from_ref(s),
                StatementEntry::Group(g) => &g.statements,
            };
            stmts
                .iter()
                .any(|s| ottl::editor(s).is_some_and(|e| e.starts_with("aggregate_on_attribute")))
        }),
        OtelProcessor::MetricsTransform(m) => m.transforms.iter().any(|t| {
            t.operations.iter().any(|o| {
                matches!(
                    o.action,
                    OperationAction::AggregateLabels | OperationAction::AggregateLabelValues
                )
            })
        }),
    }
}

fn check_filter(x: &FilterProcessor, f: &str, sink: &mut Sink) {
    if x.metrics.metric.is_empty() && x.metrics.datapoint.is_empty() {
        sink.error(
            format!("{f}.metrics"),
            "no conditions; add OTTL conditions under metric: or datapoint: (matching telemetry is dropped)",
        );
    }
    for (key, ctx, list) in [
        ("metric", Ctx::Metric, &x.metrics.metric),
        ("datapoint", Ctx::Datapoint, &x.metrics.datapoint),
    ] {
        for (i, c) in list.iter().enumerate() {
            for m in ottl::lint(c, Kind::Condition, Some(ctx)) {
                sink.error(format!("{f}.metrics.{key}[{i}]"), m);
            }
        }
    }
}

fn check_transform(x: &TransformProcessor, f: &str, aggregated_later: bool, sink: &mut Sink) {
    if x.metric_statements.is_empty() {
        sink.error(
            format!("{f}.metric_statements"),
            "no statements; add OTTL statements such as `delete_key(datapoint.attributes, \"pod_uid\")`",
        );
    }
    // Basic-config statements form one group whose context the collector infers.
    let plain: Vec<(usize, &String)> = x
        .metric_statements
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            StatementEntry::Statement(s) => Some((i, s)),
            StatementEntry::Group(_) => None,
        })
        .collect();
    let mut removes_attributes = None;
    let mut group = |items: Vec<(String, &String)>, ctx: Option<Ctx>, sink: &mut Sink| {
        for (field, s) in &items {
            for m in ottl::lint(s, Kind::Statement, ctx) {
                sink.error(field.clone(), m);
            }
            if removes_attributes.is_none()
                && ottl::editor(s).is_some_and(|e| ATTRIBUTE_REMOVERS.contains(&e))
                && (ottl::mentions_datapoint(s) || ctx == Some(Ctx::Datapoint))
            {
                removes_attributes = Some(field.clone());
            }
        }
        if ctx.is_none()
            && let Some(m) = ottl::mixed_contexts(items.iter().map(|(_, s)| s.as_str()))
        {
            sink.error(items[0].0.clone(), m);
        }
    };
    if !plain.is_empty() {
        let items = plain
            .iter()
            .map(|(i, s)| (format!("{f}.metric_statements[{i}]"), *s))
            .collect();
        group(items, None, sink);
    }
    for (i, e) in x.metric_statements.iter().enumerate() {
        if let StatementEntry::Group(g) = e {
            let gf = format!("{f}.metric_statements[{i}]");
            if g.statements.is_empty() {
                sink.error(format!("{gf}.statements"), "no statements in this group");
            }
            let ctx = g.context.map(|c| match c {
                TransformContext::Resource => Ctx::Resource,
                TransformContext::Scope => Ctx::Scope,
                TransformContext::Metric => Ctx::Metric,
                TransformContext::Datapoint => Ctx::Datapoint,
            });
            for (j, c) in g.conditions.iter().enumerate() {
                for m in ottl::lint(c, Kind::Condition, ctx) {
                    sink.error(format!("{gf}.conditions[{j}]"), m);
                }
            }
            let items = g
                .statements
                .iter()
                .enumerate()
                .map(|(j, s)| (format!("{gf}.statements[{j}]"), s))
                .collect();
            group(items, ctx, sink);
        }
    }
    if let Some(field) = removes_attributes
        && !aggregated_later
    {
        sink.warn(
            field,
            "removing datapoint attributes can leave datapoints that differ only by them with the same identity, and exporters then reject or overwrite all but one; follow with aggregate_on_attributes (or metricstransform aggregate_labels) to merge them",
        );
    }
}

fn check_metricstransform(x: &MetricsTransformProcessor, f: &str, sink: &mut Sink) {
    if x.transforms.is_empty() {
        sink.error(format!("{f}.transforms"), "no transforms; add at least one");
    }
    for (i, t) in x.transforms.iter().enumerate() {
        let tf = format!("{f}.transforms[{i}]");
        if t.include.trim().is_empty() {
            sink.error(
                format!("{tf}.include"),
                "empty; name the metric (or regex) to transform",
            );
        } else if t.match_type == Some(MatchType::Regexp) {
            check_regex(sink, format!("{tf}.include"), &t.include);
        }
        match t.action {
            MetricAction::Insert | MetricAction::Combine if t.new_name.is_none() => sink.error(
                format!("{tf}.new_name"),
                "insert and combine need new_name (the name of the metric they create)",
            ),
            _ => {}
        }
        if t.action == MetricAction::Combine && t.match_type != Some(MatchType::Regexp) {
            sink.error(
                format!("{tf}.match_type"),
                "combine needs `match_type: regexp` (it merges every metric the regex matches)",
            );
        }
        if t.operations.is_empty() && t.action == MetricAction::Update {
            sink.error(
                format!("{tf}.operations"),
                "an update without operations changes nothing; add operations",
            );
        }
        for (j, o) in t.operations.iter().enumerate() {
            check_operation(o, &format!("{tf}.operations[{j}]"), sink);
        }
    }
}

fn check_operation(o: &MetricOperation, f: &str, sink: &mut Sink) {
    let need = |sink: &mut Sink, present: bool, field: &str, what: &str| {
        if !present {
            sink.error(format!("{f}.{field}"), format!("required here: {what}"));
        }
    };
    match o.action {
        OperationAction::AggregateLabels => {
            need(
                sink,
                o.label_set.is_some(),
                "label_set",
                "the labels kept ([] aggregates every datapoint of the metric into one)",
            );
            need(
                sink,
                o.aggregation_type.is_some(),
                "aggregation_type",
                "sum, mean, min, max, count or median",
            );
        }
        OperationAction::AggregateLabelValues => {
            need(
                sink,
                o.label.is_some(),
                "label",
                "the label whose values are merged",
            );
            need(
                sink,
                o.aggregated_values.as_ref().is_some_and(|v| !v.is_empty()),
                "aggregated_values",
                "the values merged (at least one)",
            );
            need(sink, o.new_value.is_some(), "new_value", "the merged value");
            need(
                sink,
                o.aggregation_type.is_some(),
                "aggregation_type",
                "sum, mean, min, max, count or median",
            );
        }
        OperationAction::DeleteLabelValue => {
            need(sink, o.label.is_some(), "label", "the label");
            need(
                sink,
                o.label_value.is_some(),
                "label_value",
                "the value whose datapoints are deleted",
            );
        }
        OperationAction::UpdateLabel => {
            need(sink, o.label.is_some(), "label", "the label renamed");
            need(sink, o.new_label.is_some(), "new_label", "its new name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prom(yaml: &str) -> Vec<(String, Severity, String)> {
        let f: PrometheusFragment = serde_yaml_ng::from_str(yaml).unwrap();
        f.problems()
            .into_iter()
            .map(|p| (p.field, p.severity, p.message))
            .collect()
    }

    fn otel(yaml: &str) -> Vec<(String, Severity, String)> {
        let f: OtelcolFragment = serde_yaml_ng::from_str(yaml).unwrap();
        f.problems()
            .into_iter()
            .map(|p| (p.field, p.severity, p.message))
            .collect()
    }

    #[test]
    fn raw_relabel_rules_follow_prometheus_validation() {
        let ok = "relabel:\n  - { source_labels: [__name__], regex: 'x_.*', action: drop }\n  - { source_labels: [a, b], target_label: h, modulus: 8, action: hashmod }\n  - { source_labels: [a], target_label: a, action: keepequal }\n";
        assert_eq!(prom(ok), vec![]);
        let cases = [
            (
                "{ action: hashmod, source_labels: [a], target_label: t }",
                "relabel[0].modulus",
                "modulus > 0",
            ),
            (
                "{ action: replace, source_labels: [a] }",
                "relabel[0].target_label",
                "replace needs target_label",
            ),
            (
                "{ action: hashmod, source_labels: [a], target_label: 'a-b', modulus: 2 }",
                "relabel[0].target_label",
                "not a valid target_label",
            ),
            (
                "{ action: drop, regex: x }",
                "relabel[0].source_labels",
                "drop needs source_labels",
            ),
            (
                "{ action: keepequal, source_labels: [a], target_label: b, regex: x }",
                "relabel[0]",
                "only source_labels and target_label",
            ),
            (
                "{ action: lowercase, source_labels: [a], target_label: b, replacement: x }",
                "relabel[0].replacement",
                "cannot be set",
            ),
            (
                "{ action: labelkeep, regex: x }",
                "relabel[0].action",
                "drop_labels instead",
            ),
            (
                "{ action: drop, source_labels: ['1a'] }",
                "relabel[0].source_labels",
                "label name",
            ),
            (
                "{ action: drop, source_labels: [__tmp_phoenix_x] }",
                "relabel[0]",
                "belong to Phoenix",
            ),
            (
                "{ action: drop, source_labels: [a], regex: '(?P<x' }",
                "relabel[0].regex",
                "invalid regex",
            ),
        ];
        for (rule, field, msg) in cases {
            let got = prom(&format!("relabel: [{rule}]\n"));
            assert!(
                got.iter()
                    .any(|(f, s, m)| f == field && *s == Severity::Error && m.contains(msg)),
                "{rule}: {got:#?}"
            );
        }
        // Rewrites are allowed, with a warning that they can merge series.
        let got = prom("relabel: [{ action: replace, source_labels: [a], target_label: b }]\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, Severity::Warning);
        // Templates in a replace target are Prometheus' to check.
        assert!(
            prom("relabel: [{ action: replace, source_labels: [a], target_label: '${1}_x' }]\n")
                .iter()
                .all(|p| p.1 == Severity::Warning)
        );
    }

    #[test]
    fn named_groups_old_collectors_refuse_are_warned_about() {
        let got = prom("drop_metrics: ['(?<debug>.+_debug_.+)', '(?P<ok>go_.+)', '\\(\\?<x']\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(got[0].0, "drop_metrics[0]");
        assert_eq!(got[0].1, Severity::Warning);
        assert!(got[0].2.contains("(?P<name>"), "{}", got[0].2);
        assert_eq!(regex_portability("(?P<a>x)|y"), None);
    }

    #[test]
    fn sample_forms() {
        let one = |y: &str| prom(y).into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            one("sample: { label: id, keep_ratio: 0.5 }"),
            Vec::<String>::new()
        );
        assert_eq!(
            one("sample: { label: id, modulus: 10, keep: 3 }"),
            Vec::<String>::new()
        );
        assert_eq!(one("sample: { label: id }"), ["sample"]);
        assert_eq!(
            one("sample: { label: id, keep_ratio: 0.5, modulus: 3 }"),
            ["sample.keep_ratio"]
        );
        assert_eq!(
            one("sample: { label: id, modulus: 10, keep: 10 }"),
            ["sample.keep"]
        );
        assert_eq!(
            one("sample: { label: id, modulus: 1001, keep: 1 }"),
            ["sample.modulus"]
        );
        assert_eq!(
            one("sample: { label: __id, keep_ratio: 0.5 }"),
            ["sample.label"]
        );
        assert_eq!(
            one("sample: { label: id, keep_ratio: .nan }"),
            ["sample.keep_ratio"]
        );
        assert_eq!(
            one("sample: { label: id, keep_ratio: 0.5, metrics: '[' }"),
            ["sample.metrics"]
        );
        let s: Sample = serde_yaml_ng::from_str("{ label: id, keep_ratio: 0.333 }").unwrap();
        assert_eq!(s.buckets(), Some((100, 33)));
        assert_eq!(
            one("drop_labels: [a, a, __b, 'c-d']"),
            ["drop_labels[1]", "drop_labels[2]", "drop_labels[3]"]
        );
    }

    #[test]
    fn otelcol_processor_checks() {
        assert_eq!(otel("insert_before: batch\nprocessors: {}\n"), vec![]);
        let fields = |y: &str| otel(y).into_iter().map(|p| (p.0, p.1)).collect::<Vec<_>>();
        assert_eq!(
            fields(
                "insert_before: filter/phoenix_a\nprocessors:\n  filter/phoenix: { metrics: {} }\n"
            ),
            [
                ("insert_before".to_string(), Severity::Error),
                ("processors.filter/phoenix".to_string(), Severity::Error),
                (
                    "processors.filter/phoenix.metrics".to_string(),
                    Severity::Error
                ),
            ]
        );
        assert_eq!(
            fields(
                "processors:\n  transform: { metric_statements: [] }\n  metricstransform: { transforms: [] }\n"
            ),
            [
                (
                    "processors.transform.metric_statements".to_string(),
                    Severity::Error
                ),
                (
                    "processors.metricstransform.transforms".to_string(),
                    Severity::Error
                ),
            ]
        );
        // Removing attributes warns unless a later processor aggregates.
        let removes = "processors:\n  transform/a:\n    metric_statements: ['delete_key(datapoint.attributes, \"x\")']\n";
        assert_eq!(
            fields(removes),
            [(
                "processors.transform/a.metric_statements[0]".to_string(),
                Severity::Warning
            )]
        );
        let then_agg = format!(
            "{removes}  metricstransform:\n    transforms:\n      - {{ include: m, action: update, operations: [{{ action: aggregate_labels, label_set: [a], aggregation_type: sum }}] }}\n"
        );
        assert_eq!(fields(&then_agg), []);
        let regexp = "processors:\n  metricstransform:\n    transforms:\n      - { include: '(', match_type: regexp, action: combine, new_name: x, operations: [{ action: update_label, label: a }] }\n";
        assert_eq!(
            fields(regexp),
            [
                (
                    "processors.metricstransform.transforms[0].include".to_string(),
                    Severity::Error
                ),
                (
                    "processors.metricstransform.transforms[0].operations[0].new_label".to_string(),
                    Severity::Error
                ),
            ]
        );
        // Serialization is the collector's syntax, without the fields left out.
        let f: OtelcolFragment = serde_yaml_ng::from_str(
            "processors:\n  filter: { metrics: { metric: ['name == \"x\"'] } }\n",
        )
        .unwrap();
        let v = serde_yaml_ng::to_value(&f.processors[0].1).unwrap();
        assert_eq!(
            serde_yaml_ng::to_string(&v).unwrap(),
            "metrics:\n  metric:\n  - name == \"x\"\n"
        );
    }
}
