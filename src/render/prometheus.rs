//! Renders a Prometheus (acting as the collector) config: each pipeline's profile becomes
//! relabel rules appended to its scrape jobs' `metric_relabel_configs`.
//!
//! Metric relabelling runs on every scraped sample before it is stored, so a rule there
//! is the only place a Prometheus collector can reduce series. It cannot aggregate: a
//! `labeldrop` that leaves two series with the same labels keeps only the first sample,
//! which is why `drop_labels` is limited to labels the policy declares safe.
//!
//! The job's own rules run first and stay as they are; everything else in the base config
//! (globals, other jobs, rule files, remote write) is carried over unchanged.

use super::{RenderError, finish, fragment_errors, names, parse_base, sorted};
use crate::policy::{PrometheusFragment, RelabelAction, RelabelRule, SAMPLE_LABEL};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;

/// Which scrape jobs carry each pipeline's series. A pipeline not listed maps to the one
/// job whose `job_name` is the pipeline's name, so a collector with a job per pipeline
/// needs no mapping at all. In a daemon config:
///
/// ```yaml
/// jobs:
///   checkout: [checkout-api, checkout-worker]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `jobs: { PIPELINE: [JOB_NAME, ...] }`"
)]
pub struct JobMapping {
    /// Pipeline → the `job_name`s of its scrape jobs.
    #[serde(default)]
    pub jobs: BTreeMap<String, Vec<String>>,
}

impl JobMapping {
    /// The jobs of `pipeline`: as mapped, or the job named like the pipeline.
    pub fn jobs_of<'a>(&'a self, pipeline: &'a str) -> Vec<&'a str> {
        match self.jobs.get(pipeline) {
            Some(jobs) => jobs.iter().map(String::as_str).collect(),
            None => vec![pipeline],
        }
    }
}

/// The relabel rules a fragment renders to, in the order they run: `drop_metrics`,
/// `keep_metrics`, `sample` (hashmod into [`SAMPLE_LABEL`], drop of the buckets not kept,
/// labeldrop of [`SAMPLE_LABEL`]), `drop_labels`, then the raw `relabel` rules. The
/// fragment is assumed valid ([`PrometheusFragment::problems`] empty of errors);
/// [`render`] checks that first.
pub fn rules(f: &PrometheusFragment) -> Vec<RelabelRule> {
    let mut out = Vec::new();
    let name = || Some(vec!["__name__".to_string()]);
    for re in &f.drop_metrics {
        out.push(RelabelRule {
            source_labels: name(),
            regex: Some(re.clone()),
            action: RelabelAction::Drop,
            ..RelabelRule::default()
        });
    }
    if !f.keep_metrics.is_empty() {
        // One rule: successive keep rules would intersect, keeping nothing that is not
        // matched by all of them.
        out.push(RelabelRule {
            source_labels: name(),
            regex: Some(alternation(&f.keep_metrics)),
            action: RelabelAction::Keep,
            ..RelabelRule::default()
        });
    }
    if let Some(s) = &f.sample
        && let Some((modulus, keep)) = s.buckets()
    {
        out.push(RelabelRule {
            source_labels: Some(vec![s.label.clone()]),
            target_label: Some(SAMPLE_LABEL.to_string()),
            modulus: Some(modulus),
            action: RelabelAction::HashMod,
            ..RelabelRule::default()
        });
        let dropped: Vec<String> = (keep..modulus).map(|b| b.to_string()).collect();
        // `.+` on the label: a series without it hashes the empty string, and sampling it
        // would keep or drop every such series at once.
        let (sources, regex) = match &s.metrics {
            Some(m) => (
                vec![
                    "__name__".to_string(),
                    s.label.clone(),
                    SAMPLE_LABEL.to_string(),
                ],
                format!("(?:{m});.+;(?:{})", dropped.join("|")),
            ),
            None => (
                vec![s.label.clone(), SAMPLE_LABEL.to_string()],
                format!(".+;(?:{})", dropped.join("|")),
            ),
        };
        out.push(RelabelRule {
            source_labels: Some(sources),
            regex: Some(regex),
            action: RelabelAction::Drop,
            ..RelabelRule::default()
        });
        out.push(RelabelRule {
            regex: Some(SAMPLE_LABEL.to_string()),
            action: RelabelAction::LabelDrop,
            ..RelabelRule::default()
        });
    }
    if !f.drop_labels.is_empty() {
        out.push(RelabelRule {
            regex: Some(f.drop_labels.join("|")),
            action: RelabelAction::LabelDrop,
            ..RelabelRule::default()
        });
    }
    out.extend(f.relabel.iter().cloned());
    out
}

/// `(?:a)|(?:b)`: one regex matching any of them (Prometheus anchors the whole).
fn alternation(res: &[String]) -> String {
    if res.len() == 1 {
        return res[0].clone();
    }
    res.iter()
        .map(|r| format!("(?:{r})"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Renders the whole config: `base` (the hand-written config) with each pipeline's
/// fragment appended to its jobs' `metric_relabel_configs`. A pipeline whose fragment
/// is empty leaves its jobs as they are, but its mapping is still checked, so a wrong
/// mapping shows at the first render rather than at the first escalation.
pub fn render(
    base: &str,
    mapping: &JobMapping,
    pipelines: &[(&str, &PrometheusFragment)],
) -> Result<String, RenderError> {
    let mut root = parse_base(base)?;
    let jobs = scrape_jobs(&root)?;
    let job_names: Vec<String> = jobs.iter().map(|(n, _)| n.clone()).collect();
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    let mut additions: BTreeMap<String, Vec<RelabelRule>> = BTreeMap::new();
    for (pipeline, fragment) in sorted(pipelines)? {
        fragment_errors(pipeline, fragment.problems())?;
        let mapped = mapping.jobs_of(pipeline);
        if mapped.is_empty() {
            return Err(RenderError::NothingMapped {
                pipeline: pipeline.to_string(),
                what: "scrape job",
            });
        }
        let rules = rules(fragment);
        for job in mapped {
            if !job_names.iter().any(|j| j == job) {
                return Err(RenderError::UnknownJob {
                    pipeline: pipeline.to_string(),
                    job: job.to_string(),
                    known: names(job_names.iter().map(String::as_str)),
                });
            }
            if let Some(first) = owner.insert(job.to_string(), pipeline)
                && first != pipeline
            {
                return Err(RenderError::Shared {
                    what: "scrape job",
                    target: job.to_string(),
                    first: first.to_string(),
                    second: pipeline.to_string(),
                });
            }
            if !rules.is_empty() {
                additions
                    .entry(job.to_string())
                    .or_default()
                    .extend(rules.iter().cloned());
            }
        }
    }
    let Some(Value::Sequence(configs)) = root.get_mut("scrape_configs") else {
        // No jobs: then no pipeline was given (any would have failed to map).
        return finish(root);
    };
    for (name, idx) in jobs {
        let Some(rules) = additions.remove(&name) else {
            continue;
        };
        let Some(Value::Mapping(job)) = configs.get_mut(idx) else {
            continue;
        };
        // Edited in place, so the job's keys keep their order.
        let slot = job
            .entry(Value::String("metric_relabel_configs".to_string()))
            .or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Sequence(Vec::new());
        }
        let Value::Sequence(list) = slot else {
            return Err(RenderError::BaseShape(format!(
                "job {name:?}: metric_relabel_configs must be a list of relabel rules"
            )));
        };
        for r in rules {
            list.push(serde_yaml_ng::to_value(&r).map_err(|e| RenderError::Write(e.to_string()))?);
        }
    }
    finish(root)
}

/// `job_name` → index in `scrape_configs`, checking the shape Prometheus requires and
/// refusing Phoenix's own labels in the base.
fn scrape_jobs(root: &Mapping) -> Result<Vec<(String, usize)>, RenderError> {
    let configs = match root.get("scrape_configs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(s)) => s,
        Some(_) => {
            return Err(RenderError::BaseShape(
                "scrape_configs must be a list of scrape jobs".to_string(),
            ));
        }
    };
    let mut out: Vec<(String, usize)> = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let Value::Mapping(job) = c else {
            return Err(RenderError::BaseShape(format!(
                "scrape_configs[{i}] must be a mapping with a job_name"
            )));
        };
        let Some(Value::String(name)) = job.get("job_name") else {
            return Err(RenderError::BaseShape(format!(
                "scrape_configs[{i}] has no job_name; Prometheus requires one"
            )));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(RenderError::BaseShape(format!(
                "job_name {name:?} appears twice in scrape_configs; Prometheus requires unique job names"
            )));
        }
        if let Some(rules) = job.get("metric_relabel_configs") {
            let text = serde_yaml_ng::to_string(rules).unwrap_or_default();
            if text.contains(crate::policy::RESERVED_LABEL_PREFIX) {
                return Err(RenderError::Reserved {
                    what: format!(
                        "a {}* label in job {name:?}'s metric_relabel_configs",
                        crate::policy::RESERVED_LABEL_PREFIX
                    ),
                });
            }
        }
        out.push((name.clone(), i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: loadgen
    static_configs:
      - targets: ['127.0.0.1:9400']
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: other
    static_configs:
      - targets: ['127.0.0.1:9401']
";

    fn frag(yaml: &str) -> PrometheusFragment {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn job<'a>(v: &'a Value, name: &str) -> &'a Mapping {
        v["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|j| j["job_name"].as_str() == Some(name))
            .and_then(Value::as_mapping)
            .unwrap()
    }

    #[test]
    fn appends_after_the_jobs_own_rules() {
        let f = frag(
            "drop_metrics: ['debug_.*']\nsample: { label: id, keep_ratio: 0.6 }\ndrop_labels: [pod_uid]\n",
        );
        let out = render(BASE, &JobMapping::default(), &[("loadgen", &f)]).unwrap();
        assert!(out.starts_with(super::super::HEADER));
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        let rules = job(&v, "loadgen")["metric_relabel_configs"]
            .as_sequence()
            .unwrap();
        assert_eq!(rules.len(), 1 + 1 + 3 + 1);
        assert_eq!(rules[0]["regex"].as_str(), Some("go_.*"), "base rule first");
        assert_eq!(rules[1]["regex"].as_str(), Some("debug_.*"));
        assert_eq!(rules[2]["action"].as_str(), Some("hashmod"));
        assert_eq!(rules[2]["modulus"].as_u64(), Some(100));
        assert_eq!(rules[2]["target_label"].as_str(), Some(SAMPLE_LABEL));
        let drop = rules[3]["regex"].as_str().unwrap();
        assert!(
            drop.starts_with(".+;(?:60|61|") && drop.ends_with("|99)"),
            "{drop}"
        );
        assert_eq!(rules[4]["action"].as_str(), Some("labeldrop"));
        assert_eq!(rules[4]["regex"].as_str(), Some(SAMPLE_LABEL));
        assert_eq!(rules[5]["regex"].as_str(), Some("pod_uid"));
        assert!(
            job(&v, "other").get("metric_relabel_configs").is_none(),
            "other job untouched"
        );
        assert_eq!(v["global"]["scrape_interval"].as_str(), Some("15s"));
        // Order of the input does not matter; the same input gives the same bytes.
        let e = PrometheusFragment::default();
        let a = render(
            BASE,
            &JobMapping::default(),
            &[("loadgen", &f), ("other", &e)],
        )
        .unwrap();
        let b = render(
            BASE,
            &JobMapping::default(),
            &[("other", &e), ("loadgen", &f)],
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, out);
    }

    #[test]
    fn sample_scoped_to_metrics_and_keep_merged() {
        let f = frag(
            "keep_metrics: ['a_.*', 'b']\nsample: { label: id, modulus: 4, keep: 3, metrics: 'loadgen_series' }\n",
        );
        let r = rules(&f);
        assert_eq!(r[0].regex.as_deref(), Some("(?:a_.*)|(?:b)"));
        assert_eq!(r[0].action, RelabelAction::Keep);
        assert_eq!(r[2].regex.as_deref(), Some("(?:loadgen_series);.+;(?:3)"));
        assert_eq!(
            r[2].source_labels.as_deref(),
            Some(
                &[
                    "__name__".to_string(),
                    "id".to_string(),
                    SAMPLE_LABEL.to_string()
                ][..]
            )
        );
    }

    #[test]
    fn mapping_errors_name_the_job_and_pipeline() {
        let e = PrometheusFragment::default();
        let err = render(BASE, &JobMapping::default(), &[("checkout", &e)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipeline \"checkout\": scrape job \"checkout\" is not in the base config (jobs: loadgen, other); fix the pipeline's job mapping or add the job"
        );
        let m = JobMapping {
            jobs: [
                ("a".to_string(), vec!["loadgen".to_string()]),
                ("b".to_string(), vec!["loadgen".to_string()]),
            ]
            .into_iter()
            .collect(),
        };
        let err = render(BASE, &m, &[("a", &e), ("b", &e)]).unwrap_err();
        assert!(matches!(err, RenderError::Shared { .. }), "{err}");
        let err = render(BASE, &m, &[("a", &e), ("a", &e)]).unwrap_err();
        assert!(
            matches!(err, RenderError::DuplicatePipeline { .. }),
            "{err}"
        );
        let bad = frag("drop_metrics: ['(']\n");
        let err = render(BASE, &JobMapping::default(), &[("loadgen", &bad)]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pipeline \"loadgen\": fragment field drop_metrics[0]: invalid regex"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_rendered_config_as_base() {
        let f = frag("sample: { label: id, keep_ratio: 0.5 }\n");
        let once = render(BASE, &JobMapping::default(), &[("loadgen", &f)]).unwrap();
        let err = render(&once, &JobMapping::default(), &[("loadgen", &f)]).unwrap_err();
        assert!(matches!(err, RenderError::Reserved { .. }), "{err}");
    }

    #[test]
    fn bad_bases_are_errors_not_panics() {
        let e = PrometheusFragment::default();
        for base in [
            "[",
            "- a",
            "scrape_configs: 3",
            "scrape_configs: [3]",
            "scrape_configs: [{}]",
            "scrape_configs: [{job_name: a}, {job_name: a}]",
            "scrape_configs: [{job_name: a, metric_relabel_configs: 3}]",
        ] {
            let r = render(
                base,
                &JobMapping::default(),
                &[("a", &frag("drop_labels: [x]\n"))],
            );
            assert!(r.is_err(), "{base}");
            let _ = render(base, &JobMapping::default(), &[("a", &e)]);
        }
        assert_eq!(
            render("", &JobMapping::default(), &[]).unwrap(),
            format!("{}{{}}\n", super::super::HEADER)
        );
    }
}
