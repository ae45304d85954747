//! Renders an OpenTelemetry Collector config: each pipeline's profile processors are
//! defined under names of their own and inserted into the pipeline's service pipelines.
//!
//! A processor id is `type/name` and one definition is shared by every service pipeline
//! that lists it, so two pipelines on different profiles need different processors:
//! `filter` in a fragment becomes `filter/phoenix_<pipeline>`, `filter/x` becomes
//! `filter/phoenix_<pipeline>_x`. The names do not carry the profile, so a switch
//! changes a processor's config but not its id, and the collector's own metrics
//! (`otelcol_processor_*{processor="filter/phoenix_checkout"}`) stay one series across
//! switches.
//!
//! The collector exits on a config it cannot load, so the result is checked before it is
//! handed back ([`check`]): every component a service pipeline references is defined,
//! every processor Phoenix defined is used, no pipeline lists a processor twice, every
//! connector used on one side of a pipeline is used on the other.

use super::{RenderError, finish, fragment_errors, names, parse_base, sorted};
use crate::policy::OtelcolFragment;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Prefix of the name part of every processor id Phoenix renders.
pub const NAME_PREFIX: &str = "phoenix_";

/// Which service pipelines carry each pipeline's metrics. A pipeline not listed maps to
/// the service pipeline `metrics/<pipeline>`. In a daemon config:
///
/// ```yaml
/// pipelines:
///   checkout: [metrics/checkout, metrics/checkout-canary]
///   edge: [metrics]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `pipelines: { PIPELINE: [SERVICE_PIPELINE, ...] }`"
)]
pub struct PipelineMapping {
    /// Pipeline → service pipeline ids (`metrics`, `metrics/NAME`).
    #[serde(default)]
    pub pipelines: BTreeMap<String, Vec<String>>,
}

impl PipelineMapping {
    /// The service pipelines of `pipeline`: as mapped, or `metrics/<pipeline>`.
    pub fn service_pipelines_of(&self, pipeline: &str) -> Vec<String> {
        match self.pipelines.get(pipeline) {
            Some(v) => v.clone(),
            None => vec![format!("metrics/{pipeline}")],
        }
    }
}

/// The id Phoenix gives a fragment processor written `key` (`filter`, `filter/x`) for
/// `pipeline`; `None` when the pipeline's name cannot be part of a component id.
pub fn processor_id(pipeline: &str, key: &str) -> Option<String> {
    if !pipeline_name_ok(pipeline) {
        return None;
    }
    Some(match key.split_once('/') {
        Some((kind, name)) => format!("{kind}/{NAME_PREFIX}{pipeline}_{name}"),
        None => format!("{key}/{NAME_PREFIX}{pipeline}"),
    })
}

/// Pipeline names become part of component ids: keep them to characters every
/// collector version accepts there.
fn pipeline_name_ok(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether a processor id is one Phoenix renders.
fn is_phoenix(id: &str) -> bool {
    id.split_once('/')
        .is_some_and(|(_, name)| name.starts_with(NAME_PREFIX))
}

/// Renders the whole config: `base` (the hand-written config) with each pipeline's
/// fragment processors defined and inserted into its service pipelines, before the
/// fragment's `insert_before` processor (or at the end of the pipeline's processors).
/// The service pipelines' receivers and exporters, and their own processors and their
/// order, stay as they are. A pipeline whose fragment has no processors still has its
/// mapping checked.
pub fn render(
    base: &str,
    mapping: &PipelineMapping,
    pipelines: &[(&str, &OtelcolFragment)],
) -> Result<String, RenderError> {
    let mut root = parse_base(base)?;
    if let Some(Value::Mapping(procs)) = root.get("processors")
        && let Some(id) = procs
            .keys()
            .filter_map(Value::as_str)
            .find(|id| is_phoenix(id))
    {
        return Err(RenderError::Reserved {
            what: format!("processor {id:?}"),
        });
    }
    let known: Vec<String> = service_pipelines(&root)?.keys().cloned().collect();
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    // Definitions in order, then insertions per service pipeline.
    let mut defined: Vec<(String, Value)> = Vec::new();
    let mut inserts: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    for (pipeline, fragment) in sorted(pipelines)? {
        if !pipeline_name_ok(pipeline) {
            return Err(RenderError::BadPipeline {
                pipeline: pipeline.to_string(),
                reason: "an otelcol pipeline name becomes part of processor ids, so it must be letters, digits, '_' or '-'".to_string(),
            });
        }
        fragment_errors(pipeline, fragment.problems())?;
        let targets = mapping.service_pipelines_of(pipeline);
        if targets.is_empty() {
            return Err(RenderError::NothingMapped {
                pipeline: pipeline.to_string(),
                what: "service pipeline",
            });
        }
        let mut ids = Vec::with_capacity(fragment.processors.len());
        for (key, p) in &fragment.processors {
            // Checked above: the key is a valid id and the pipeline name is usable.
            let id = processor_id(pipeline, key).unwrap_or_default();
            if defined.iter().any(|(d, _)| *d == id) {
                return Err(RenderError::BadPipeline {
                    pipeline: pipeline.to_string(),
                    reason: format!(
                        "processor id {id:?} would be rendered twice; rename a fragment processor"
                    ),
                });
            }
            let v = serde_yaml_ng::to_value(p).map_err(|e| RenderError::Write(e.to_string()))?;
            defined.push((id.clone(), v));
            ids.push(id);
        }
        for sp in targets {
            if !known.contains(&sp) {
                return Err(RenderError::UnknownServicePipeline {
                    pipeline: pipeline.to_string(),
                    service_pipeline: sp,
                    known: names(known.iter().map(String::as_str)),
                });
            }
            if !(sp == "metrics" || sp.starts_with("metrics/")) {
                return Err(RenderError::NotMetrics {
                    pipeline: pipeline.to_string(),
                    service_pipeline: sp,
                });
            }
            if let Some(first) = owner.insert(sp.clone(), pipeline)
                && first != pipeline
            {
                return Err(RenderError::Shared {
                    what: "service pipeline",
                    target: sp,
                    first: first.to_string(),
                    second: pipeline.to_string(),
                });
            }
            if !ids.is_empty() {
                inserts.push((sp, fragment.insert_before.clone(), ids.clone()));
            }
        }
    }

    if !defined.is_empty() {
        let key = Value::String("processors".to_string());
        let procs = root
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if procs.is_null() {
            *procs = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(procs) = procs else {
            return Err(RenderError::BaseShape(
                "processors must be a mapping of processor ids to their config".to_string(),
            ));
        };
        for (id, v) in defined {
            procs.insert(Value::String(id), v);
        }
    }
    let sps = service_pipelines_mut(&mut root)?;
    for (sp, before, ids) in inserts {
        let Some(Value::Mapping(p)) = sps.get_mut(sp.as_str()) else {
            continue;
        };
        // Edited in place, so the pipeline's keys keep their order.
        let key = Value::String("processors".to_string());
        let slot = p.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Sequence(Vec::new());
        }
        let Value::Sequence(list) = slot else {
            return Err(RenderError::Structure {
                service_pipeline: sp,
                message: "processors must be a list of processor ids".to_string(),
            });
        };
        let at = match &before {
            None => list.len(),
            Some(b) => match list.iter().position(|v| v.as_str() == Some(b.as_str())) {
                Some(i) => i,
                None => {
                    return Err(RenderError::MissingInsertPoint {
                        service_pipeline: sp,
                        processor: b.clone(),
                        known: names(list.iter().filter_map(Value::as_str)),
                    });
                }
            },
        };
        for (k, id) in ids.into_iter().enumerate() {
            list.insert(at + k, Value::String(id));
        }
    }
    check_root(&root)?;
    finish(root)
}

/// Checks a collector config's structure (any config, rendered or not): what the
/// collector itself refuses at load, as far as it can be seen without its component
/// schemas.
pub fn check(config: &str) -> Result<(), RenderError> {
    check_root(&parse_base(config)?)
}

fn service_pipelines(root: &Mapping) -> Result<BTreeMap<String, &Mapping>, RenderError> {
    let Some(Value::Mapping(service)) = root.get("service") else {
        return Err(RenderError::BaseShape(
            "no service section; the collector needs service.pipelines".to_string(),
        ));
    };
    let Some(Value::Mapping(pipelines)) = service.get("pipelines") else {
        return Err(RenderError::BaseShape(
            "service.pipelines must be a mapping of pipeline ids to their receivers, processors and exporters".to_string(),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in pipelines {
        let Some(id) = k.as_str() else {
            return Err(RenderError::BaseShape(format!(
                "service.pipelines has a key that is not a pipeline id: {k:?}"
            )));
        };
        let Value::Mapping(p) = v else {
            return Err(RenderError::Structure {
                service_pipeline: id.to_string(),
                message: "must be a mapping with receivers, processors and exporters".to_string(),
            });
        };
        out.insert(id.to_string(), p);
    }
    Ok(out)
}

fn service_pipelines_mut(root: &mut Mapping) -> Result<&mut Mapping, RenderError> {
    match root.get_mut("service").and_then(|s| s.get_mut("pipelines")) {
        Some(Value::Mapping(m)) => Ok(m),
        _ => Err(RenderError::BaseShape(
            "service.pipelines must be a mapping".to_string(),
        )),
    }
}

/// The ids defined in a top-level section (`receivers`, `processors`, ...).
fn defined_in<'a>(root: &'a Mapping, section: &str) -> BTreeSet<&'a str> {
    match root.get(section) {
        Some(Value::Mapping(m)) => m.keys().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

fn id_list<'a>(p: &'a Mapping, key: &str, sp: &str) -> Result<Vec<&'a str>, RenderError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| RenderError::Structure {
                    service_pipeline: sp.to_string(),
                    message: format!("{key} must list component ids, found {v:?}"),
                })
            })
            .collect(),
        Some(_) => Err(RenderError::Structure {
            service_pipeline: sp.to_string(),
            message: format!("{key} must be a list of component ids"),
        }),
    }
}

fn check_root(root: &Mapping) -> Result<(), RenderError> {
    let receivers = defined_in(root, "receivers");
    let processors = defined_in(root, "processors");
    let exporters = defined_in(root, "exporters");
    let connectors = defined_in(root, "connectors");
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let mut connector_as_exporter: BTreeSet<&str> = BTreeSet::new();
    let mut connector_as_receiver: BTreeSet<&str> = BTreeSet::new();
    for (sp, p) in service_pipelines(root)? {
        let rs = id_list(p, "receivers", &sp)?;
        let ps = id_list(p, "processors", &sp)?;
        let es = id_list(p, "exporters", &sp)?;
        if rs.is_empty() || es.is_empty() {
            return Err(RenderError::Structure {
                service_pipeline: sp,
                message: "needs at least one receiver and one exporter".to_string(),
            });
        }
        for r in rs {
            if connectors.contains(r) {
                connector_as_receiver.insert(r);
            } else if !receivers.contains(r) {
                return Err(undefined(&sp, "receiver", r, "receivers or connectors"));
            }
        }
        for (i, x) in ps.iter().enumerate() {
            if !processors.contains(x) {
                return Err(undefined(&sp, "processor", x, "processors"));
            }
            if ps[..i].contains(x) {
                return Err(RenderError::Structure {
                    service_pipeline: sp,
                    message: format!("lists processor {x:?} twice; the collector refuses that"),
                });
            }
            used.insert(x);
        }
        for e in es {
            if connectors.contains(e) {
                connector_as_exporter.insert(e);
            } else if !exporters.contains(e) {
                return Err(undefined(&sp, "exporter", e, "exporters or connectors"));
            }
        }
    }
    if let Some(unused) = processors
        .iter()
        .find(|p| is_phoenix(p) && !used.contains(*p))
    {
        return Err(RenderError::Unused {
            processor: unused.to_string(),
        });
    }
    if let Some(c) = connector_as_exporter
        .symmetric_difference(&connector_as_receiver)
        .next()
    {
        let side = if connector_as_exporter.contains(c) {
            "an exporter but in no pipeline as a receiver"
        } else {
            "a receiver but in no pipeline as an exporter"
        };
        return Err(RenderError::BaseShape(format!(
            "connector {c:?} is used as {side}; a connector joins two pipelines"
        )));
    }
    Ok(())
}

fn undefined(sp: &str, kind: &'static str, id: &str, section: &'static str) -> RenderError {
    RenderError::Undefined {
        service_pipeline: sp.to_string(),
        kind,
        id: id.to_string(),
        section,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
receivers:
  otlp:
    protocols: { grpc: { endpoint: 127.0.0.1:4317 } }
processors:
  memory_limiter: { check_interval: 1s, limit_percentage: 80 }
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    metrics/checkout:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [debug]
    metrics/search:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [debug]
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
";

    fn frag(yaml: &str) -> OtelcolFragment {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const FILTER: &str = "insert_before: batch\nprocessors:\n  filter:\n    error_mode: ignore\n    metrics:\n      datapoint: ['attributes[\"debug\"] == \"true\"']\n  transform/trim:\n    metric_statements:\n      - context: metric\n        statements: ['aggregate_on_attributes(\"sum\", [\"http.route\"]) where metric.name == \"x\"']\n";

    fn procs(v: &Value, sp: &str) -> Vec<String> {
        v["service"]["pipelines"][sp]["processors"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn defines_and_inserts_per_pipeline() {
        let f = frag(FILTER);
        let e = OtelcolFragment::default();
        let out = render(
            BASE,
            &PipelineMapping::default(),
            &[("search", &e), ("checkout", &f)],
        )
        .unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(
            procs(&v, "metrics/checkout"),
            [
                "memory_limiter",
                "filter/phoenix_checkout",
                "transform/phoenix_checkout_trim",
                "batch"
            ]
        );
        assert_eq!(procs(&v, "metrics/search"), ["memory_limiter", "batch"]);
        assert_eq!(procs(&v, "traces"), ["batch"]);
        assert_eq!(
            v["processors"]["filter/phoenix_checkout"]["metrics"]["datapoint"][0].as_str(),
            Some("attributes[\"debug\"] == \"true\"")
        );
        check(&out).unwrap();
        let again = render(
            BASE,
            &PipelineMapping::default(),
            &[("checkout", &f), ("search", &e)],
        )
        .unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn errors_name_pipeline_and_processor() {
        let f = frag(
            "insert_before: nope\nprocessors:\n  filter: { metrics: { metric: ['name == \"x\"'] } }\n",
        );
        let err = render(BASE, &PipelineMapping::default(), &[("checkout", &f)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service pipeline \"metrics/checkout\" has no processor \"nope\" to insert the profile's processors before (it has: memory_limiter, batch); fix insert_before in the profile's otelcol fragment"
        );
        let e = OtelcolFragment::default();
        let err = render(BASE, &PipelineMapping::default(), &[("cart", &e)]).unwrap_err();
        assert!(
            matches!(err, RenderError::UnknownServicePipeline { .. }),
            "{err}"
        );
        let m = PipelineMapping {
            pipelines: [("checkout".to_string(), vec!["traces".to_string()])]
                .into_iter()
                .collect(),
        };
        let err = render(BASE, &m, &[("checkout", &e)]).unwrap_err();
        assert!(matches!(err, RenderError::NotMetrics { .. }), "{err}");
        let err = render(BASE, &PipelineMapping::default(), &[("a.b", &e)]).unwrap_err();
        assert!(matches!(err, RenderError::BadPipeline { .. }), "{err}");
    }

    #[test]
    fn structure_checks() {
        let undefined = BASE.replace("processors: [batch]", "processors: [batch, attributes/x]");
        let err = check(&undefined).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service pipeline \"traces\" references processor \"attributes/x\", which is not defined under processors; define it or remove the reference"
        );
        let unused = BASE.replace("  batch: {}\n", "  batch: {}\n  filter/phoenix_x: {}\n");
        assert!(matches!(check(&unused), Err(RenderError::Unused { .. })));
        // A base holding Phoenix processors is a rendered file.
        let err = render(&unused, &PipelineMapping::default(), &[]).unwrap_err();
        assert!(matches!(err, RenderError::Reserved { .. }), "{err}");
        let twice = BASE.replace("processors: [batch]", "processors: [batch, batch]");
        assert!(matches!(check(&twice), Err(RenderError::Structure { .. })));
        let no_exporter = BASE.replace(
            "      processors: [batch]\n      exporters: [debug]\n",
            "      processors: [batch]\n      exporters: []\n",
        );
        assert!(matches!(
            check(&no_exporter),
            Err(RenderError::Structure { .. })
        ));
        for bad in [
            "",
            "service: 1",
            "service: { pipelines: [a] }",
            "[",
            "service: { pipelines: { m: 1 } }",
        ] {
            assert!(check(bad).is_err(), "{bad}");
            assert!(
                render(bad, &PipelineMapping::default(), &[]).is_err(),
                "{bad}"
            );
        }
    }
}
