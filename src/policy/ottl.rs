//! A light lint of OTTL text (the OpenTelemetry Transformation Language of the filter and
//! transform processors), so a typo shows up in `policy check` rather than as a collector
//! that refuses its config at reload.
//!
//! It is not an OTTL parser: it checks what is cheap and certain (strings closed, brackets
//! balanced, the statement's editor is one the transform processor has, the context can
//! reach the paths used) and leaves the rest to `otelcol validate`, which the actuator
//! runs where a collector binary is installed.

/// What a piece of OTTL text must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A boolean expression (filter conditions, group conditions).
    Condition,
    /// An editor call with an optional `where` clause (transform statements).
    Statement,
}

/// The OTTL context the text is evaluated in, when it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx {
    Resource,
    Scope,
    Metric,
    Datapoint,
}

/// Editors the transform processor offers for metrics: the common OTTL editors and the
/// processor's metric functions.
const EDITORS: &[&str] = &[
    "set",
    "delete_key",
    "delete_matching_keys",
    "keep_keys",
    "keep_matching_keys",
    "limit",
    "truncate_all",
    "replace_pattern",
    "replace_all_patterns",
    "replace_match",
    "replace_all_matches",
    "merge_maps",
    "append",
    "flatten",
    "aggregate_on_attributes",
    "aggregate_on_attribute_value",
    "convert_sum_to_gauge",
    "convert_gauge_to_sum",
    "extract_sum_metric",
    "extract_count_metric",
    "copy_metric",
    "scale_metric",
];

/// Editors the transform processor only accepts in the metric context.
const METRIC_ONLY: &[&str] = &[
    "aggregate_on_attributes",
    "aggregate_on_attribute_value",
    "convert_sum_to_gauge",
    "convert_gauge_to_sum",
    "extract_sum_metric",
    "extract_count_metric",
    "copy_metric",
    "scale_metric",
];

/// Aggregation functions of aggregate_on_attributes and aggregate_on_attribute_value.
const AGGREGATIONS: &[&str] = &["sum", "max", "min", "mean", "median", "count"];

/// The text with string literals emptied (`"a(b"` → `""`), so brackets and paths are
/// only looked for in code; `None` when a string is not closed.
fn code_only(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            out.push('"');
            loop {
                match chars.next()? {
                    '\\' => {
                        chars.next()?;
                    }
                    '"' => break,
                    _ => {}
                }
            }
            out.push('"');
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The editor a statement calls: its leading identifier when a `(` follows it.
pub(crate) fn editor(text: &str) -> Option<&str> {
    let t = text.trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    let name = &t[..end];
    (!name.is_empty() && t[end..].trim_start().starts_with('(')).then_some(name)
}

/// Whether the code (not the strings) of `text` reads a `datapoint.` path.
pub(crate) fn mentions_datapoint(text: &str) -> bool {
    code_only(text).is_some_and(|c| has_path(&c, "datapoint"))
}

/// Whether `code` contains `prefix.` as a path start (not inside another identifier).
fn has_path(code: &str, prefix: &str) -> bool {
    let pat = format!("{prefix}.");
    code.match_indices(&pat).any(|(i, _)| {
        code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    })
}

/// Problems with one condition or statement; empty when it looks right.
pub(crate) fn lint(text: &str, kind: Kind, ctx: Option<Ctx>) -> Vec<String> {
    let mut out = Vec::new();
    if text.trim().is_empty() {
        out.push(match kind {
            Kind::Condition => "empty condition; write an OTTL boolean expression such as `metric.name == \"http.server.duration\"`".to_string(),
            Kind::Statement => "empty statement; write an OTTL editor call such as `delete_key(datapoint.attributes, \"pod_uid\")`".to_string(),
        });
        return out;
    }
    let Some(code) = code_only(text) else {
        out.push(format!(
            "{text:?}: a string literal is not closed (OTTL strings use double quotes)"
        ));
        return out;
    };
    if let Some(m) = bracket_problem(&code) {
        out.push(format!("{text:?}: {m}"));
    }
    let ed = editor(text);
    match kind {
        Kind::Condition => {
            if let Some(e) = ed.filter(|e| EDITORS.contains(e)) {
                out.push(format!(
                    "`{e}(...)` is a transform statement; a condition is a boolean expression such as `metric.name == \"x\"` or `IsMatch(metric.name, \"x.*\")`"
                ));
            }
        }
        Kind::Statement => match ed {
            None => out.push(format!(
                "{text:?} does not start with an editor call; a statement looks like `delete_key(datapoint.attributes, \"pod_uid\") where ...`"
            )),
            Some(e) if !EDITORS.contains(&e) => out.push(format!(
                "`{e}` is not an editor the transform processor offers for metrics; expected one of: {}",
                EDITORS.join(", ")
            )),
            Some(e) => {
                if METRIC_ONLY.contains(&e) && matches!(ctx, Some(Ctx::Datapoint | Ctx::Resource | Ctx::Scope)) {
                    out.push(format!(
                        "`{e}` works only in the metric context; put it in a group with `context: metric`"
                    ));
                }
                if e.starts_with("aggregate_on_attribute") {
                    let args = &text[text.find('(').map_or(0, |i| i + 1)..];
                    let first = args.trim_start();
                    let func = first
                        .strip_prefix('"')
                        .and_then(|r| r.split('"').next());
                    match func {
                        Some(f) if AGGREGATIONS.contains(&f) => {}
                        Some(f) => out.push(format!(
                            "`{e}`: aggregation {f:?} is not one of: {}",
                            AGGREGATIONS.join(", ")
                        )),
                        None => out.push(format!(
                            "`{e}` takes the aggregation function first, as a string: `{e}(\"sum\", ...)`"
                        )),
                    }
                }
            }
        },
    }
    if matches!(ctx, Some(Ctx::Metric | Ctx::Resource | Ctx::Scope)) && has_path(&code, "datapoint")
    {
        out.push(format!(
            "{text:?} reads datapoint fields, which this context cannot reach; move it to the datapoint context"
        ));
    }
    out
}

/// The first unbalanced `(`, `[` or `{`, described.
fn bracket_problem(code: &str) -> Option<String> {
    let mut stack = Vec::new();
    for (i, c) in code.char_indices() {
        match c {
            '(' | '[' | '{' => stack.push((c, i)),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    _ => return Some(format!("unbalanced `{c}` at character {}", i + 1)),
                }
            }
            _ => {}
        }
    }
    stack
        .last()
        .map(|(c, i)| format!("`{c}` at character {} is never closed", i + 1))
}

/// When statements whose context the collector infers cannot share one: a metric-only
/// editor next to a datapoint path (the transform processor refuses the whole group).
pub(crate) fn mixed_contexts<'a>(stmts: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    let metric_only = stmts
        .clone()
        .find_map(|s| editor(s).filter(|e| METRIC_ONLY.contains(e)))?;
    stmts.clone().any(mentions_datapoint).then(|| {
        format!(
            "`{metric_only}` needs the metric context but these statements also read datapoint paths, so the collector cannot infer one context; put them in separate groups (`- statements: [...]`)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_forms() {
        for (s, k, c) in [
            (
                "delete_key(datapoint.attributes, \"pod_uid\")",
                Kind::Statement,
                None,
            ),
            (
                "keep_keys(datapoint.attributes, [\"http.route\", \"http.method\"])",
                Kind::Statement,
                Some(Ctx::Datapoint),
            ),
            (
                "limit(datapoint.attributes, 10, [\"service.name\"])",
                Kind::Statement,
                None,
            ),
            (
                "aggregate_on_attributes(\"sum\", [\"http.route\"]) where metric.name == \"x\"",
                Kind::Statement,
                Some(Ctx::Metric),
            ),
            (
                "name == \"rpc.server.duration\"",
                Kind::Condition,
                Some(Ctx::Metric),
            ),
            (
                "metric.name == \"x\" and attributes[\"debug\"] == \"true\"",
                Kind::Condition,
                Some(Ctx::Datapoint),
            ),
            (
                "IsMatch(name, \"^go_.*(\")",
                Kind::Condition,
                Some(Ctx::Metric),
            ),
        ] {
            assert_eq!(lint(s, k, c), Vec::<String>::new(), "{s}");
        }
    }

    #[test]
    fn finds_typical_mistakes() {
        let one = |s, k, c| {
            let v = lint(s, k, c);
            assert_eq!(v.len(), 1, "{s}: {v:?}");
            v[0].clone()
        };
        assert!(
            one(
                "delete_key(datapoint.attributes, \"x)",
                Kind::Statement,
                None
            )
            .contains("not closed")
        );
        assert!(
            one(
                "delete_key(datapoint.attributes, \"x\"",
                Kind::Statement,
                None
            )
            .contains("never closed")
        );
        assert!(
            one("drop_key(attributes, \"x\")", Kind::Statement, None).contains("not an editor")
        );
        assert!(one("metric.name == \"x\"", Kind::Statement, None).contains("editor call"));
        assert!(
            one("delete_key(attributes, \"x\")", Kind::Condition, None)
                .contains("transform statement")
        );
        assert!(
            one(
                "aggregate_on_attributes(\"sum\")",
                Kind::Statement,
                Some(Ctx::Datapoint)
            )
            .contains("metric context")
        );
        assert!(
            one("aggregate_on_attributes(\"avg\")", Kind::Statement, None).contains("not one of")
        );
        assert!(
            one(
                "datapoint.attributes[\"a\"] == \"b\"",
                Kind::Condition,
                Some(Ctx::Metric)
            )
            .contains("cannot reach")
        );
        assert!(
            mixed_contexts(
                [
                    "aggregate_on_attributes(\"sum\")",
                    "delete_key(datapoint.attributes, \"a\")"
                ]
                .into_iter()
            )
            .is_some()
        );
        assert!(
            mixed_contexts(
                [
                    "aggregate_on_attributes(\"sum\")",
                    "set(metric.description, \"datapoint.x\")"
                ]
                .into_iter()
            )
            .is_none()
        );
    }
}
