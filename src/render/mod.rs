//! Renderers: a collector's whole config from its base config and the profile in force
//! for each of its pipelines. Pure: text and fragments in, text out, no I/O, no clock.
//!
//! - [`prometheus::render`]: a Prometheus acting as the collector. Each pipeline maps to
//!   scrape jobs ([`prometheus::JobMapping`]); the profile's rules are appended to those
//!   jobs' `metric_relabel_configs`, after the job's own.
//! - [`otelcol::render`]: an OpenTelemetry Collector. Each pipeline maps to service
//!   pipelines ([`otelcol::PipelineMapping`]); the profile's processors are defined under
//!   per-pipeline names (`filter/phoenix_<pipeline>`) and inserted into those pipelines.
//!
//! The `file` backend has nothing to render: it writes the profile's name.
//!
//! Both renderers read the base with serde_yaml_ng (comments are not kept: the rendered
//! file is generated, and its header says to edit the base instead), refuse a base that
//! already holds Phoenix's own rules or processors (it would be a rendered file, and
//! rendering over it would stack profiles), check the result's structure, and write it
//! with [`yaml`]'s writer, so the same input always yields the same bytes whatever the
//! order of the pipelines given.
//!
//! The actuator (`src/daemon/`) validates the result with the collector's own checker
//! where installed, writes it atomically, reloads and verifies; none of that is here.

pub mod otelcol;
pub mod prometheus;
mod yaml;

use serde_yaml_ng::{Mapping, Value};

/// The first lines of every rendered config.
pub const HEADER: &str = "# Rendered by Phoenix from the collector's base config and the profile in force for\n# each pipeline. Phoenix rewrites this file on every switch: edit the base config.\n";

/// Why a config could not be rendered. Each message is one line naming the job, service
/// pipeline, processor or fragment field at fault, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The base config is not YAML.
    #[error("base config is not valid YAML: {0}")]
    BaseYaml(String),
    /// The base config is YAML but not shaped like the collector's config.
    #[error("base config: {0}")]
    BaseShape(String),
    /// The base config already holds what only Phoenix writes.
    #[error(
        "base config already contains {what}, which only Phoenix renders: give Phoenix the hand-written base config, not a rendered one"
    )]
    Reserved {
        /// What was found and where.
        what: String,
    },
    /// A pipeline appears twice in the input.
    #[error("pipeline {pipeline:?} is given twice; give each pipeline's profile once")]
    DuplicatePipeline {
        /// The pipeline.
        pipeline: String,
    },
    /// A pipeline name cannot be used in the collector's config.
    #[error("pipeline {pipeline:?}: {reason}")]
    BadPipeline {
        /// The pipeline.
        pipeline: String,
        /// Why.
        reason: String,
    },
    /// A fragment fails its structural checks.
    #[error("pipeline {pipeline:?}: fragment field {field}: {message}")]
    Fragment {
        /// The pipeline whose profile's fragment it is.
        pipeline: String,
        /// The field inside the fragment.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A pipeline maps to a scrape job the base config lacks.
    #[error(
        "pipeline {pipeline:?}: scrape job {job:?} is not in the base config (jobs: {known}); fix the pipeline's job mapping or add the job"
    )]
    UnknownJob {
        /// The pipeline.
        pipeline: String,
        /// The job it maps to.
        job: String,
        /// The base config's jobs.
        known: String,
    },
    /// Two pipelines map to one scrape job or service pipeline, so their rules would
    /// compound.
    #[error(
        "{what} {target:?} is mapped to pipelines {first:?} and {second:?}; each may belong to one pipeline only"
    )]
    Shared {
        /// `scrape job` or `service pipeline`.
        what: &'static str,
        /// Its name.
        target: String,
        /// One pipeline.
        first: String,
        /// The other.
        second: String,
    },
    /// A pipeline maps to no target at all.
    #[error("pipeline {pipeline:?} is mapped to no {what}; map it to at least one")]
    NothingMapped {
        /// The pipeline.
        pipeline: String,
        /// `scrape job` or `service pipeline`.
        what: &'static str,
    },
    /// A pipeline maps to a service pipeline the base config lacks.
    #[error(
        "pipeline {pipeline:?}: service pipeline {service_pipeline:?} is not in the base config's service.pipelines ({known}); fix the pipeline mapping"
    )]
    UnknownServicePipeline {
        /// The pipeline.
        pipeline: String,
        /// The service pipeline it maps to.
        service_pipeline: String,
        /// The base config's service pipelines.
        known: String,
    },
    /// A pipeline maps to a service pipeline of traces or logs.
    #[error(
        "pipeline {pipeline:?}: service pipeline {service_pipeline:?} does not carry metrics; map the pipeline to a metrics pipeline (metrics or metrics/NAME)"
    )]
    NotMetrics {
        /// The pipeline.
        pipeline: String,
        /// The service pipeline.
        service_pipeline: String,
    },
    /// The fragment's insertion point is not in a service pipeline.
    #[error(
        "service pipeline {service_pipeline:?} has no processor {processor:?} to insert the profile's processors before (it has: {known}); fix insert_before in the profile's otelcol fragment"
    )]
    MissingInsertPoint {
        /// The service pipeline.
        service_pipeline: String,
        /// The processor named by insert_before.
        processor: String,
        /// The pipeline's processors.
        known: String,
    },
    /// A service pipeline references a component no section defines.
    #[error(
        "service pipeline {service_pipeline:?} references {kind} {id:?}, which is not defined under {section}; define it or remove the reference"
    )]
    Undefined {
        /// The service pipeline.
        service_pipeline: String,
        /// receiver, processor or exporter.
        kind: &'static str,
        /// The component id.
        id: String,
        /// Where it should be defined.
        section: &'static str,
    },
    /// A Phoenix processor is defined but in no pipeline.
    #[error(
        "processor {processor:?} is defined but no service pipeline uses it; every processor Phoenix renders must be in a pipeline"
    )]
    Unused {
        /// The processor id.
        processor: String,
    },
    /// Another structural fault of the rendered collector config.
    #[error("service pipeline {service_pipeline:?}: {message}")]
    Structure {
        /// The service pipeline.
        service_pipeline: String,
        /// What is wrong.
        message: String,
    },
    /// The result could not be written as YAML.
    #[error("rendered config cannot be written as YAML: {0}")]
    Write(String),
}

/// Parses a base config into its top-level mapping; an empty document is an empty
/// mapping. Merge keys (`<<`) are resolved, so the renderer works on what the collector
/// would see.
fn parse_base(text: &str) -> Result<Mapping, RenderError> {
    let mut v: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| RenderError::BaseYaml(one_line(&e.to_string())))?;
    v.apply_merge()
        .map_err(|e| RenderError::BaseYaml(one_line(&e.to_string())))?;
    match v {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => Err(RenderError::BaseShape(
            "the document must be a mapping of top-level sections".to_string(),
        )),
    }
}

/// The rendered document: header, then the YAML.
fn finish(root: Mapping) -> Result<String, RenderError> {
    let body = yaml::to_string(&Value::Mapping(root)).map_err(|e| RenderError::Write(e.0))?;
    Ok(format!("{HEADER}{body}"))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The pipelines in name order, refusing duplicates: the output must not depend on the
/// order the caller happens to hold them in.
fn sorted<'a, F>(pipelines: &[(&'a str, &'a F)]) -> Result<Vec<(&'a str, &'a F)>, RenderError> {
    let mut v = pipelines.to_vec();
    v.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(RenderError::DuplicatePipeline {
            pipeline: w[0].0.to_string(),
        });
    }
    Ok(v)
}

/// The first structural error of a fragment, as a render error.
fn fragment_errors(
    pipeline: &str,
    problems: Vec<crate::policy::FragmentProblem>,
) -> Result<(), RenderError> {
    match problems
        .into_iter()
        .find(|p| p.severity == crate::policy::Severity::Error)
    {
        Some(p) => Err(RenderError::Fragment {
            pipeline: pipeline.to_string(),
            field: if p.field.is_empty() {
                "(whole fragment)".to_string()
            } else {
                p.field
            },
            message: p.message,
        }),
        None => Ok(()),
    }
}

/// A list of names for messages.
fn names<'a>(it: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.into_iter().collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}
