//! Rendering tests: the shipped policy's fragments on the shipped base configs
//! (configs/prometheus/, configs/otelcol/), checked against each collector's structure,
//! by `promtool check config` (required: .ci/run installs Debian's prometheus package), and
//! by `otelcol validate` where an OpenTelemetry Collector binary is on PATH (none can be
//! installed on these machines; each test says plainly whether it ran). Property tests:
//! rendering is deterministic, independent of the order pipelines are given in, never
//! drops base content, and a rendered-from-nothing base renders like the base itself.

mod common;

use phoenix::policy::{OtelcolFragment, PrometheusFragment, ValidatedPolicy};
use phoenix::render::otelcol::{self, PipelineMapping};
use phoenix::render::prometheus::{self, JobMapping};
use phoenix::render::{HEADER, RenderError};
use proptest::prelude::*;
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn policy() -> ValidatedPolicy {
    ValidatedPolicy::from_file(&Path::new(ROOT).join("policies/default.yaml")).unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// The first executable named one of `names` on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

fn prom_fragment<'a>(p: &'a ValidatedPolicy, profile: &str) -> &'a PrometheusFragment {
    p.fragments(profile).unwrap().prometheus.as_ref().unwrap()
}

fn otel_fragment<'a>(p: &'a ValidatedPolicy, profile: &str) -> &'a OtelcolFragment {
    p.fragments(profile).unwrap().otelcol.as_ref().unwrap()
}

// ---------------------------------------------------------------------------------------
// OpenTelemetry Collector
// ---------------------------------------------------------------------------------------

/// A shipped otelcol base config, its mapping and its Phoenix pipelines.
struct OtelBase {
    file: &'static str,
    mapping: PipelineMapping,
    pipelines: Vec<&'static str>,
}

fn otel_bases() -> Vec<OtelBase> {
    vec![
        OtelBase {
            file: "configs/otelcol/gateway.yaml",
            mapping: PipelineMapping::default(),
            pipelines: vec!["checkout", "search"],
        },
        OtelBase {
            file: "configs/otelcol/agent.yaml",
            mapping: serde_yaml_ng::from_str("pipelines: { node: [metrics] }").unwrap(),
            pipelines: vec!["node"],
        },
        OtelBase {
            file: "configs/otelcol/spanmetrics.yaml",
            mapping: PipelineMapping::default(),
            pipelines: vec!["spanmetrics"],
        },
    ]
}

/// Runs `otelcol validate` on `config` when a collector binary is on PATH (or named by
/// PHOENIX_OTELCOL); returns whether it ran. The contrib build is preferred: the core
/// build has no transform or metricstransform processor.
fn otelcol_validate(config: &str, what: &str) -> bool {
    let bin = std::env::var_os("PHOENIX_OTELCOL")
        .map(PathBuf::from)
        .or_else(|| on_path(&["otelcol-contrib", "otelcol"]));
    let Some(bin) = bin else {
        return false;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(&bin)
        .arg("validate")
        .arg(format!("--config={}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} validate refused {what}:\n{}\n{config}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// The processor ids of a service pipeline.
fn procs_of(v: &Value, sp: &str) -> Vec<String> {
    v["service"]["pipelines"][sp]["processors"]
        .as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Checks one rendered otelcol config against its base: Phoenix processors defined (as
/// the fragment wrote them) and used exactly where they belong, everything else intact.
fn check_otel_render(base: &OtelBase, assignment: &[(&str, &OtelcolFragment)], out: &str) {
    otelcol::check(out).unwrap_or_else(|e| panic!("{}: {e}", base.file));
    assert!(out.starts_with(HEADER));
    let b = yaml(&read(base.file));
    let r = yaml(out);
    // Every top-level section but processors and service is carried over as is.
    for (k, v) in b.as_mapping().unwrap() {
        if k != "processors" && k != "service" {
            assert_eq!(&r[k], v, "{}: section {k:?}", base.file);
        }
    }
    // Base processors identical; Phoenix's defined as the fragment wrote them.
    let rp = r["processors"].as_mapping().unwrap();
    for (k, v) in b["processors"].as_mapping().unwrap() {
        assert_eq!(rp.get(k), Some(v), "{}: processor {k:?}", base.file);
    }
    let mut expected_phoenix = 0;
    for (pipeline, frag) in assignment {
        for (key, p) in &frag.processors {
            let id = otelcol::processor_id(pipeline, key).unwrap();
            assert_eq!(
                rp.get(id.as_str()),
                Some(&serde_yaml_ng::to_value(p).unwrap()),
                "{}: {id}",
                base.file
            );
            expected_phoenix += 1;
        }
    }
    let phoenix_defined = rp
        .keys()
        .filter(|k| k.as_str().unwrap().contains("/phoenix_"))
        .count();
    assert_eq!(phoenix_defined, expected_phoenix, "{}", base.file);
    // Service: pipelines intact, Phoenix processors inserted before batch.
    let bs = b["service"]["pipelines"].as_mapping().unwrap();
    let rs = r["service"]["pipelines"].as_mapping().unwrap();
    assert_eq!(
        bs.keys().collect::<Vec<_>>(),
        rs.keys().collect::<Vec<_>>(),
        "{}: same pipelines in the same order",
        base.file
    );
    for (sp, bpipe) in bs {
        let sp = sp.as_str().unwrap();
        let rpipe = &rs[sp];
        assert_eq!(
            rpipe["receivers"], bpipe["receivers"],
            "{}: {sp}",
            base.file
        );
        assert_eq!(
            rpipe["exporters"], bpipe["exporters"],
            "{}: {sp}",
            base.file
        );
        let owner = assignment
            .iter()
            .find(|(p, _)| base.mapping.service_pipelines_of(p).iter().any(|s| s == sp));
        let base_procs = procs_of(&b, sp);
        let got = procs_of(&r, sp);
        match owner {
            None => assert_eq!(got, base_procs, "{}: {sp} untouched", base.file),
            Some((pipeline, frag)) => {
                let ids: Vec<String> = frag
                    .processors
                    .iter()
                    .map(|(k, _)| otelcol::processor_id(pipeline, k).unwrap())
                    .collect();
                let mut want = base_procs.clone();
                let at = want.iter().position(|p| p == "batch").unwrap();
                for (i, id) in ids.into_iter().enumerate() {
                    want.insert(at + i, id);
                }
                assert_eq!(got, want, "{}: {sp}", base.file);
            }
        }
    }
    assert_eq!(r["service"]["extensions"], b["service"]["extensions"]);
    assert_eq!(r["service"]["telemetry"], b["service"]["telemetry"]);
}

#[test]
fn otelcol_bases_render_every_profile() {
    let policy = policy();
    let mut validated = 0;
    for base in otel_bases() {
        let text = read(base.file);
        otelcol::check(&text).unwrap_or_else(|e| panic!("{}: base: {e}", base.file));
        let profiles: Vec<&str> = policy.profiles().iter().map(|p| p.name.as_str()).collect();
        // Each profile on every pipeline, then the pipelines on different profiles.
        let mut cases: Vec<Vec<(&str, &str)>> = profiles
            .iter()
            .map(|prof| base.pipelines.iter().map(|p| (*p, *prof)).collect())
            .collect();
        cases.push(
            base.pipelines
                .iter()
                .enumerate()
                .map(|(i, p)| (*p, profiles[(i + 2) % profiles.len()]))
                .collect(),
        );
        for case in cases {
            let assignment: Vec<(&str, &OtelcolFragment)> = case
                .iter()
                .map(|(p, prof)| (*p, otel_fragment(&policy, prof)))
                .collect();
            let out = otelcol::render(&text, &base.mapping, &assignment)
                .unwrap_or_else(|e| panic!("{} {case:?}: {e}", base.file));
            check_otel_render(&base, &assignment, &out);
            // Stable: the same input gives the same bytes, whatever the order.
            let mut reversed = assignment.clone();
            reversed.reverse();
            assert_eq!(
                otelcol::render(&text, &base.mapping, &reversed).unwrap(),
                out
            );
            if otelcol_validate(&out, &format!("{} {case:?}", base.file)) {
                validated += 1;
            }
        }
    }
    if validated > 0 {
        println!("otelcol validate: ran on {validated} rendered configs, all valid");
    } else {
        println!(
            "otelcol validate: NOT run (no otelcol-contrib or otelcol on PATH, PHOENIX_OTELCOL unset); structural checks only"
        );
    }
}

#[test]
fn otelcol_render_refuses_what_the_collector_would() {
    let policy = policy();
    let text = read("configs/otelcol/gateway.yaml");
    let frag = otel_fragment(&policy, "balanced");
    // A mapping to a pipeline the config lacks, or to traces.
    let m: PipelineMapping =
        serde_yaml_ng::from_str("pipelines: { checkout: [metrics/cart] }").unwrap();
    let err = otelcol::render(&text, &m, &[("checkout", frag)]).unwrap_err();
    assert!(err.to_string().contains("\"metrics/cart\" is not in the base config's service.pipelines (logs, metrics/checkout, metrics/search, traces)"), "{err}");
    let m: PipelineMapping = serde_yaml_ng::from_str("pipelines: { checkout: [traces] }").unwrap();
    assert!(matches!(
        otelcol::render(&text, &m, &[("checkout", frag)]),
        Err(RenderError::NotMetrics { .. })
    ));
    // An insertion point the pipeline lacks.
    let mut f = frag.clone();
    f.insert_before = Some("resource/checkout".to_string());
    let err = otelcol::render(
        &text,
        &PipelineMapping::default(),
        &[("checkout", &f), ("search", &f)],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"metrics/search\" has no processor \"resource/checkout\""),
        "{err}"
    );
    // A base that references an undefined processor.
    let broken = text.replace(
        "processors: [memory_limiter, batch]\n      exporters: [otlp/logs]",
        "processors: [memory_limiter, attributes/pii, batch]\n      exporters: [otlp/logs]",
    );
    assert_ne!(broken, text);
    let err =
        otelcol::render(&broken, &PipelineMapping::default(), &[("checkout", frag)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service pipeline \"logs\" references processor \"attributes/pii\", which is not defined under processors; define it or remove the reference"
    );
    // A rendered config given back as the base.
    let out = otelcol::render(&text, &PipelineMapping::default(), &[("checkout", frag)]).unwrap();
    assert!(matches!(
        otelcol::render(&out, &PipelineMapping::default(), &[("checkout", frag)]),
        Err(RenderError::Reserved { .. })
    ));
    // A defined Phoenix processor no pipeline uses.
    let unused = out.replace("\n        - filter/phoenix_checkout\n", "\n");
    assert_ne!(unused, out);
    assert_eq!(
        otelcol::check(&unused).unwrap_err().to_string(),
        "processor \"filter/phoenix_checkout\" is defined but no service pipeline uses it; every processor Phoenix renders must be in a pipeline"
    );
}

// ---------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------

/// `promtool check config` on `config`; panics (never skips) when promtool is missing.
fn promtool_check(config: &str, what: &str) {
    let bin = on_path(&["promtool"]).unwrap_or_else(|| {
        panic!("promtool not found on PATH: install Debian's prometheus package (.ci/run does)")
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(&bin)
        .args(["check", "config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config refused {what}:\n{}{}\n{config}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_collector_renders_every_profile_and_promtool_accepts_it() {
    let policy = policy();
    let base = read("configs/prometheus/collector.yml");
    promtool_check(&base, "the base config");
    for prof in policy.profiles() {
        let f = prom_fragment(&policy, &prof.name);
        let out = prometheus::render(&base, &JobMapping::default(), &[("loadgen", f)])
            .unwrap_or_else(|e| panic!("{}: {e}", prof.name));
        assert_eq!(
            prometheus::render(&base, &JobMapping::default(), &[("loadgen", f)]).unwrap(),
            out,
            "stable"
        );
        let v = yaml(&out);
        let job = &v["scrape_configs"][0];
        assert_eq!(job["job_name"].as_str(), Some("loadgen"));
        let rules = job["metric_relabel_configs"].as_sequence().unwrap();
        let want: Vec<Value> = prometheus::rules(f)
            .iter()
            .map(|r| serde_yaml_ng::to_value(r).unwrap())
            .collect();
        assert_eq!(rules, &want, "{}", prof.name);
        // The sampling label never survives.
        let last_tmp = rules
            .iter()
            .rposition(|r| {
                serde_yaml_ng::to_string(r)
                    .unwrap()
                    .contains("__tmp_phoenix_sample")
            })
            .unwrap();
        assert_eq!(rules[last_tmp]["action"].as_str(), Some("labeldrop"));
        promtool_check(&out, &format!("profile {}", prof.name));
    }
    println!(
        "promtool check config: ran on the base and {} rendered configs",
        policy.profiles().len()
    );
}

#[test]
fn prometheus_rules_follow_the_jobs_own_and_other_jobs_stay() {
    let policy = policy();
    let base = "\
global:
  scrape_interval: 15s
rule_files: []
scrape_configs:
  - job_name: checkout-api
    honor_labels: true
    static_configs:
      - targets: ['10.0.0.1:8080', '10.0.0.2:8080']
        labels: { team: checkout, env: 'yes' }
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'tmp_.*'
        action: drop
  - job_name: checkout-worker
    static_configs:
      - targets: ['10.0.0.3:8080']
  - job_name: node
    static_configs:
      - targets: ['10.0.0.9:9100']
";
    let m: JobMapping =
        serde_yaml_ng::from_str("jobs: { checkout: [checkout-api, checkout-worker] }").unwrap();
    let f = prom_fragment(&policy, "aggressive");
    let out = prometheus::render(base, &m, &[("checkout", f)]).unwrap();
    let v = yaml(&out);
    let b = yaml(base);
    let api = v["scrape_configs"][0]["metric_relabel_configs"]
        .as_sequence()
        .unwrap();
    assert_eq!(
        api[0], b["scrape_configs"][0]["metric_relabel_configs"][0],
        "own rule first"
    );
    assert_eq!(api.len(), 1 + prometheus::rules(f).len());
    let worker = v["scrape_configs"][1]["metric_relabel_configs"]
        .as_sequence()
        .unwrap();
    assert_eq!(worker.len(), prometheus::rules(f).len());
    assert_eq!(
        v["scrape_configs"][2], b["scrape_configs"][2],
        "node job untouched"
    );
    // `'yes'` stays a string for Prometheus' YAML 1.1 parser.
    assert!(out.contains("env: \"yes\""), "{out}");
    promtool_check(&out, "a two-job mapping");
}

#[test]
fn prometheus_refuses_what_promtool_would_and_more() {
    let base = read("configs/prometheus/collector.yml");
    let e = PrometheusFragment::default();
    let err = prometheus::render(&base, &JobMapping::default(), &[("checkout", &e)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("scrape job \"checkout\" is not in the base config (jobs: loadgen)"),
        "{err}"
    );
    let raw: PrometheusFragment = serde_yaml_ng::from_str(
        "relabel:\n  - { source_labels: [a], action: hashmod, target_label: b }\n",
    )
    .unwrap();
    let err = prometheus::render(&base, &JobMapping::default(), &[("loadgen", &raw)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline \"loadgen\": fragment field relabel[0].modulus: hashmod needs a modulus > 0 (the number of hash buckets)"
    );
}

/// The rules do what they say in a real Prometheus scraping loadgen: the balanced profile
/// keeps about 60% of the per-id series (hashmod on `id`), keeps series without `id`,
/// and no `__tmp_phoenix_sample` label survives; the loaded config (what the actuator
/// will verify against) holds the rendered rules.
#[test]
fn rendered_rules_sample_series_in_a_real_prometheus() {
    let policy = policy();
    let loadgen =
        common::Loadgen::start(&["--mode", "series", "--pipelines", "2", "--level", "2000"]);
    let base = read("configs/prometheus/collector.yml").replace("127.0.0.1:9400", &loadgen.addr);
    assert!(base.contains(&loadgen.addr));
    let f = prom_fragment(&policy, "balanced");
    let out = prometheus::render(&base, &JobMapping::default(), &[("loadgen", f)]).unwrap();
    // The harness supplies the globals; hand it the rendered jobs (list items at two spaces).
    let jobs = out.split_once("scrape_configs:\n").unwrap().1;
    let prom = common::Prometheus::start_with(jobs);
    let kept =
        |q: &str| -> Option<f64> { common::query(&prom.url, q).ok()?.first().map(|(_, v)| *v) };
    let total = common::wait_until("sampled series to appear", Duration::from_secs(30), || {
        kept(r#"count(loadgen_series{job="loadgen"})"#)
            .filter(|&n| n > 0.0)
            .ok_or_else(|| "no loadgen_series yet".to_string())
    });
    // 2 pipelines × 2000 ids; the same ids hash alike in both pipelines.
    let share = total / 4000.0;
    assert!(
        (0.55..=0.65).contains(&share),
        "kept {total} of 4000 ({share})"
    );
    assert_eq!(
        kept(r#"count(loadgen_level{job="loadgen"})"#),
        Some(2.0),
        "series without id are kept"
    );
    assert_eq!(
        kept(r#"count({__tmp_phoenix_sample!=""})"#),
        None,
        "the sampling label is removed"
    );
    let (status, body) = common::get(&format!("{}/api/v1/status/config", prom.url)).unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("__tmp_phoenix_sample") && body.contains("hashmod"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}"
}

fn prom_fragment_strategy() -> impl Strategy<Value = PrometheusFragment> {
    (
        prop::collection::vec("[a-z_]{1,6}(\\.\\*)?", 0..3),
        prop::collection::vec("[a-z_]{1,6}", 0..2),
        prop::option::of((label(), 1u64..100, prop::option::of("[a-z_]{1,6}"))),
        prop::collection::btree_set(label(), 0..3),
    )
        .prop_map(|(drop, keep, sample, labels)| PrometheusFragment {
            drop_metrics: drop,
            keep_metrics: keep,
            sample: sample.map(|(label, k, metrics)| phoenix::policy::Sample {
                label,
                keep_ratio: None,
                modulus: Some(100),
                keep: Some(k),
                metrics,
            }),
            drop_labels: labels.into_iter().collect(),
            relabel: Vec::new(),
        })
}

/// A Prometheus base with `n` jobs, each maybe with its own rules and extra keys.
fn prom_base_strategy() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 1..5).prop_flat_map(|names| {
        let names: Vec<String> = names.into_iter().collect();
        let n = names.len();
        (
            Just(names),
            prop::collection::vec((any::<bool>(), any::<bool>(), "[a-z :/.0-9'\"#-]{0,10}"), n),
        )
            .prop_map(|(names, extras)| {
                let mut s = String::from("global:\n  scrape_interval: 15s\nscrape_configs:\n");
                for (name, (own, honor, note)) in names.iter().zip(extras) {
                    s.push_str(&format!("  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:9100']\n        labels: {{ note: {note:?} }}\n"));
                    if honor {
                        s.push_str("    honor_labels: true\n");
                    }
                    if own {
                        s.push_str("    metric_relabel_configs:\n      - { source_labels: [__name__], regex: 'own_.*', action: drop }\n");
                    }
                }
                (s, names)
            })
    })
}

fn otel_fragment_strategy() -> impl Strategy<Value = OtelcolFragment> {
    prop::collection::vec(("[a-z]{1,5}", "[a-z_.]{1,8}"), 0..3).prop_map(|names| {
        let mut seen = Vec::new();
        let mut processors = Vec::new();
        for (n, attr) in names {
            if seen.contains(&n) {
                continue;
            }
            seen.push(n.clone());
            let p: phoenix::policy::OtelProcessor = phoenix::policy::OtelProcessor::Filter(
                serde_yaml_ng::from_str(&format!(
                    "metrics: {{ datapoint: ['attributes[\"{attr}\"] == \"x\"'] }}"
                ))
                .unwrap(),
            );
            processors.push((format!("filter/{n}"), p));
        }
        OtelcolFragment {
            insert_before: Some("batch".to_string()),
            processors,
        }
    })
}

/// Every scalar leaf of `base` is in `out` at the same path, except inside the lists
/// `grown` names (which may only have gained items at their end).
fn contains_base(base: &Value, out: &Value, path: &str) -> Result<(), String> {
    match (base, out) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let kept: Vec<&Value> = o.keys().filter(|k| b.contains_key(*k)).collect();
            if kept != b.keys().collect::<Vec<_>>() {
                return Err(format!("{path}: keys reordered"));
            }
            for (k, v) in b {
                let key = k.as_str().unwrap_or("?");
                let Some(ov) = o.get(k) else {
                    return Err(format!("{path}.{key} is gone"));
                };
                contains_base(v, ov, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Sequence(b), Value::Sequence(o)) => {
            if o.len() < b.len() {
                return Err(format!("{path} lost items"));
            }
            for (i, v) in b.iter().enumerate() {
                contains_base(v, &o[i], &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (b, o) if b == o => Ok(()),
        (b, o) => Err(format!("{path}: {b:?} became {o:?}")),
    }
}

/// A fixed seed unless PROPTEST_RNG_SEED asks for another (CI must not pass or fail by
/// the draw), and no regression files written into the shared tree.
fn proptest_config() -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0e4d_e401);
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Prometheus: deterministic, order-free, keeps every base value (a job's own rules
    /// stay first), and rendering over the normalized base equals rendering over the base.
    #[test]
    fn prometheus_render_keeps_the_base(
        (base, jobs) in prom_base_strategy(),
        frags in prop::collection::vec(prom_fragment_strategy(), 1..5),
    ) {
        let assignment: Vec<(&str, &PrometheusFragment)> =
            jobs.iter().map(String::as_str).zip(frags.iter()).collect();
        let m = JobMapping::default();
        let out = prometheus::render(&base, &m, &assignment).unwrap();
        let mut rev = assignment.clone();
        rev.reverse();
        prop_assert_eq!(&prometheus::render(&base, &m, &rev).unwrap(), &out);
        let b = yaml(&base);
        let o = yaml(&out);
        contains_base(&b, &o, "").map_err(TestCaseError::fail)?;
        for (i, (job, f)) in assignment.iter().enumerate() {
            let own = b["scrape_configs"][i]["metric_relabel_configs"].as_sequence().map_or(0, Vec::len);
            let got = o["scrape_configs"][i]["metric_relabel_configs"].as_sequence().map_or(0, Vec::len);
            prop_assert_eq!(got, own + prometheus::rules(f).len(), "{}", job);
        }
        let normalized = prometheus::render(&base, &m, &[]).unwrap();
        prop_assert_eq!(&prometheus::render(&normalized, &m, &assignment).unwrap(), &out);
    }

    /// Otelcol: the same properties on a multi-pipeline base, and the result passes the
    /// structural checks.
    #[test]
    fn otelcol_render_keeps_the_base(
        frags in prop::collection::vec(otel_fragment_strategy(), 2),
        reversed in any::<bool>(),
    ) {
        let base = read("configs/otelcol/gateway.yaml");
        let m = PipelineMapping::default();
        let mut assignment: Vec<(&str, &OtelcolFragment)> = vec![("checkout", &frags[0]), ("search", &frags[1])];
        let out = otelcol::render(&base, &m, &assignment).unwrap();
        otelcol::check(&out).unwrap();
        if reversed {
            assignment.reverse();
        }
        prop_assert_eq!(&otelcol::render(&base, &m, &assignment).unwrap(), &out);
        let b = yaml(&base);
        let o = yaml(&out);
        // Inserted processors break positional comparison of the processor lists, so
        // compare those as subsequences.
        for (sp, p) in b["service"]["pipelines"].as_mapping().unwrap() {
            let sp = sp.as_str().unwrap();
            let got = procs_of(&o, sp);
            let base_procs = procs_of(&b, sp);
            let kept: Vec<&String> = got.iter().filter(|x| !x.contains("/phoenix_")).collect();
            prop_assert_eq!(kept, base_procs.iter().collect::<Vec<_>>(), "{}", sp);
            prop_assert_eq!(&o["service"]["pipelines"][sp]["receivers"], &p["receivers"]);
            prop_assert_eq!(&o["service"]["pipelines"][sp]["exporters"], &p["exporters"]);
        }
        let mut b_rest: Mapping = b.as_mapping().unwrap().clone();
        b_rest.remove("service");
        contains_base(&Value::Mapping(b_rest), &o, "").map_err(TestCaseError::fail)?;
        let normalized = otelcol::render(&base, &m, &[]).unwrap();
        prop_assert_eq!(&otelcol::render(&normalized, &m, &assignment).unwrap(), &out);
    }

    /// Whatever the base text, rendering and checking return, never panic.
    #[test]
    fn renderers_never_panic(
        base in "(scrape_configs|service|pipelines|processors|receivers|exporters|job_name|metric_relabel_configs|metrics/a|a|batch|[-:{}\\[\\], \n]|  ){0,60}",
        f in prom_fragment_strategy(),
        g in otel_fragment_strategy(),
    ) {
        let _ = prometheus::render(&base, &JobMapping::default(), &[("a", &f)]);
        let _ = otelcol::render(&base, &PipelineMapping::default(), &[("a", &g)]);
        let _ = otelcol::check(&base);
    }
}
