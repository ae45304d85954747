//! From query results to per-pipeline samples: the sampler's classification, kept out of
//! the actor so it is tested directly.
//!
//! One query per signal covers every pipeline; each result series names its pipeline in
//! the policy's `group_by` label. A query that failed is `Error` for every pipeline; a
//! pipeline absent from a result is `Empty` for that signal (never zero); a sample older
//! than the policy's `max_sample_age` is `Stale`; several series for one pipeline (a
//! query that does not aggregate by the label) are an error for that pipeline rather than
//! a silent pick.

use crate::core::{Sample, Timestamp};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::time::Duration;

/// One series of a query result: its pipeline label (if any), value and sample time.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultSeries {
    /// Value of the group-by label; `None` when the series lacks it.
    pub pipeline: Option<String>,
    /// The sample's value.
    pub value: f64,
    /// The sample's timestamp.
    pub at: Timestamp,
}

/// What one signal's query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalResult {
    /// The query ran; these series came back (possibly none).
    Ok(Vec<ResultSeries>),
    /// The query failed; the one-line reason.
    Error(String),
}

/// Classifies one signal's result for one pipeline.
pub fn classify(
    result: &SignalResult,
    pipeline: &str,
    now: Timestamp,
    max_age: Duration,
) -> Sample {
    Indexed::new(result).classify(pipeline, now, max_age)
}

/// A result indexed by pipeline, so classifying every pipeline is linear in the series
/// rather than pipelines × series (10,000 pipelines made that 10^8 string compares).
struct Indexed<'a> {
    error: Option<&'a str>,
    /// Per pipeline: its first series and how many there were.
    by_pipeline: FxHashMap<&'a str, (&'a ResultSeries, usize)>,
}

impl<'a> Indexed<'a> {
    fn new(result: &'a SignalResult) -> Self {
        // Built every tick over every pipeline's names: a fast non-keyed hash (the names
        // come from our own Prometheus, and a collision flood only costs time) and no
        // regrowth.
        let mut by_pipeline: FxHashMap<&str, (&ResultSeries, usize)> = FxHashMap::default();
        if let SignalResult::Ok(series) = result {
            by_pipeline.reserve(series.len());
        }
        match result {
            SignalResult::Error(message) => Indexed {
                error: Some(message),
                by_pipeline,
            },
            SignalResult::Ok(series) => {
                for s in series {
                    if let Some(p) = s.pipeline.as_deref() {
                        by_pipeline.entry(p).or_insert((s, 0)).1 += 1;
                    }
                }
                Indexed {
                    error: None,
                    by_pipeline,
                }
            }
        }
    }

    fn classify(&self, pipeline: &str, now: Timestamp, max_age: Duration) -> Sample {
        if let Some(message) = self.error {
            return Sample::Error {
                message: message.to_string(),
            };
        }
        match self.by_pipeline.get(pipeline) {
            None => Sample::Empty,
            Some((_, n)) if *n > 1 => Sample::Error {
                message: format!(
                    "several series for pipeline {pipeline}; the query must aggregate by its group label"
                ),
            },
            Some((s, _)) => {
                let age = now.saturating_since(s.at);
                if age > max_age {
                    Sample::Stale { age }
                } else {
                    Sample::ok(s.value, s.at)
                }
            }
        }
    }
}

/// Pipelines named by the results, in order, borrowed from them (a tick at 10,000
/// pipelines would otherwise copy every name twice only to find it known).
pub fn pipelines_in<'a>(results: impl IntoIterator<Item = &'a SignalResult>) -> BTreeSet<&'a str> {
    results
        .into_iter()
        .filter_map(|r| match r {
            SignalResult::Ok(s) => Some(s),
            SignalResult::Error(_) => None,
        })
        .flatten()
        .filter_map(|s| s.pipeline.as_deref())
        .collect()
}

/// How a query fared, for `phoenix_source_state{query}`: `ok` if every pipeline it should
/// cover got a fresh sample, otherwise the worst of `empty`, `stale`, `error`.
pub fn source_state<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> &'static str {
    let mut worst = 0;
    let mut any = false;
    for s in samples {
        any = true;
        let rank = match s {
            Sample::Ok { .. } => 0,
            Sample::Empty => 1,
            Sample::Stale { .. } => 2,
            Sample::Error { .. } => 3,
        };
        worst = worst.max(rank);
    }
    if !any {
        return "empty";
    }
    ["ok", "empty", "stale", "error"][worst]
}

/// Each pipeline's (input, output) samples, in the order `pipelines` names them.
pub fn classify_each<'a>(
    input: &SignalResult,
    output: &SignalResult,
    pipelines: impl IntoIterator<Item = &'a str>,
    now: Timestamp,
    max_age: Duration,
) -> Vec<(Sample, Sample)> {
    let (input, output) = (Indexed::new(input), Indexed::new(output));
    pipelines
        .into_iter()
        .map(|p| {
            (
                input.classify(p, now, max_age),
                output.classify(p, now, max_age),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &str, v: f64, at: i64) -> ResultSeries {
        ResultSeries {
            pipeline: Some(p.to_string()),
            value: v,
            at: Timestamp::from_secs(at),
        }
    }

    const AGE: Duration = Duration::from_secs(60);

    #[test]
    fn each_case_has_its_sample() {
        let now = Timestamp::from_secs(1000);
        let r = SignalResult::Ok(vec![
            s("a", 5.0, 990),
            s("b", 7.0, 900),
            s("c", 1.0, 995),
            s("c", 2.0, 995),
        ]);
        assert_eq!(
            classify(&r, "a", now, AGE),
            Sample::ok(5.0, Timestamp::from_secs(990))
        );
        assert_eq!(
            classify(&r, "b", now, AGE),
            Sample::Stale {
                age: Duration::from_secs(100)
            }
        );
        assert!(
            matches!(classify(&r, "c", now, AGE), Sample::Error { message } if message.contains("several series"))
        );
        // Missing is empty, never zero.
        assert_eq!(classify(&r, "zzz", now, AGE), Sample::Empty);
        let e = SignalResult::Error("timeout after 10s".into());
        assert!(matches!(classify(&e, "a", now, AGE), Sample::Error { .. }));
        assert_eq!(
            classify(&SignalResult::Ok(vec![]), "a", now, AGE),
            Sample::Empty
        );
    }

    #[test]
    fn source_state_is_the_worst() {
        let ok = Sample::ok(1.0, Timestamp(0));
        assert_eq!(source_state([&ok, &ok]), "ok");
        assert_eq!(source_state([&ok, &Sample::Empty]), "empty");
        assert_eq!(
            source_state([
                &Sample::Error {
                    message: String::new()
                },
                &Sample::Empty
            ]),
            "error"
        );
        assert_eq!(source_state(std::iter::empty()), "empty");
    }

    #[test]
    fn pipelines_come_from_every_result() {
        let a = SignalResult::Ok(vec![s("a", 1.0, 0)]);
        let b = SignalResult::Ok(vec![s("b", 1.0, 0), s("a", 1.0, 0)]);
        let e = SignalResult::Error("x".into());
        let got: Vec<&str> = pipelines_in([&a, &b, &e]).into_iter().collect();
        assert_eq!(got, ["a", "b"]);
    }
}
