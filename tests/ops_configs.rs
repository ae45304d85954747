//! The operations files in `configs/` checked against the daemon they describe: the
//! Grafana dashboard and the Prometheus rules name only metrics the daemon exports (the
//! code's own list, `phoenix::daemon::metrics::METRICS`, cross-checked against a real
//! demo daemon's `/metrics`) or that a recording rule produces, every PromQL
//! expression parses, and a real Prometheus scraping that daemon evaluates every rule
//! without error and accepts every dashboard query; `promtool` checks and unit-tests the rules; the Kubernetes
//! manifests parse and their embedded daemon configs pass `phoenix run --check` on a
//! simulated pod file system; the systemd unit passes `systemd-analyze verify` (a
//! structural check where that tool does not exist) and its `ExecReload` SIGHUP really
//! reloads the policy; the Dockerfile builds locked and runs unprivileged.

mod common;

use common::{DASHBOARD, Daemon, Prometheus, RULES, exprs_in, get, metric, query, wait_until};
use phoenix::daemon::metrics::{Kind, METRICS};
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RULES_TEST: &str = "configs/prometheus/rules/phoenix.rules_test.yml";
const UNIT: &str = "configs/systemd/phoenix.service";
const K8S: &[&str] = &[
    "configs/kubernetes/otelcol-sidecar.yaml",
    "configs/kubernetes/prometheus-agent-sidecar.yaml",
];
/// The datasource every panel and annotation must use: the dashboard's own variable, so
/// one import works against any Prometheus.
const DS_VAR: &str = "${datasource}";

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Metric names as they appear in the exposition, from the code's list: a histogram is
/// rendered by the exporter as a summary, with `_sum` and `_count` beside it.
fn names_in_code() -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for m in METRICS {
        s.insert(m.name.to_string());
        if m.kind == Kind::Histogram {
            s.insert(format!("{}_sum", m.name));
            s.insert(format!("{}_count", m.name));
        }
    }
    s
}

/// The demo config (configs/demo.yaml) rewritten into `dir`, with its policy copied there
/// too, so a test may edit the policy.
fn demo_config(dir: &Path) -> PathBuf {
    let policy = dir.join("policy.yaml");
    std::fs::copy(Path::new(ROOT).join("policies/default.yaml"), &policy).unwrap();
    let text = read("configs/demo.yaml")
        .replace("../simulations/", &format!("{ROOT}/simulations/"))
        .replace("../policies/default.yaml", &policy.display().to_string())
        .replace("demo-out/", &format!("{}/", dir.display()));
    assert!(text.contains(&policy.display().to_string()), "{text}");
    let cfg = dir.join("demo.yaml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `# TYPE` of every `phoenix_` family in an exposition, and every sample's name.
fn exposition(body: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut types = BTreeMap::new();
    let mut samples = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                types.insert(n.to_string(), t.to_string());
            }
        } else if line.starts_with("phoenix_") {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (types, samples)
}

/// Starts the demo daemon, waits for its first decisions, and returns it with the
/// `phoenix_` names it exposes, after checking each against the code's list and its
/// type: the list is what the dashboard and rules are checked against, so it must be the
/// truth.
fn running_daemon(dir: &Path) -> (Daemon, BTreeSet<String>) {
    let cfg = demo_config(dir);
    let d = Daemon::start(&cfg, &dir.join("demo.log"));
    // The leak starts about 15 s into the replay; wait for a decision so the decision
    // counters are in the exposition too.
    let body = wait_until(
        "a decision on the demo daemon",
        Duration::from_secs(60),
        || {
            let (code, body) = get(&format!("{}/metrics", d.url))?;
            (code == 200 && body.contains("phoenix_decisions_total{"))
                .then_some(body.clone())
                .ok_or(body)
        },
    );
    let (types, samples) = exposition(&body);
    for m in METRICS {
        if let Some(t) = types.get(m.name) {
            // The dashboard's latency panels read the `quantile` label: if the exporter
            // ever renders histograms as histograms, they must change with it.
            let want = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "summary",
            };
            assert_eq!(t, want, "{} is exposed as {t}", m.name);
        }
    }
    let code = names_in_code();
    for s in &samples {
        assert!(code.contains(s), "{s} is exposed but not in METRICS");
    }
    for must in [
        "phoenix_profile_in_force",
        "phoenix_decisions_total",
        "phoenix_input_series",
        "phoenix_safe_hold",
    ] {
        assert!(samples.contains(must), "{must} not exposed:\n{body}");
    }
    (d, samples)
}

/// Every metric name a PromQL expression selects.
#[derive(Default)]
struct Selected(BTreeSet<String>);

impl ExprVisitor for Selected {
    type Error = String;
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
        let vs = match e {
            Expr::VectorSelector(v) => v,
            Expr::MatrixSelector(m) => &m.vs,
            _ => return Ok(true),
        };
        // A selector without a name (`{job="x"}`) could match anything: not allowed in
        // files whose every name is checked.
        let name = vs
            .name
            .clone()
            .ok_or_else(|| format!("selector without a metric name: {vs}"))?;
        self.0.insert(name);
        Ok(true)
    }
}

fn selected(expr: &str) -> Result<BTreeSet<String>, String> {
    let ast = parser::parse(expr).map_err(|e| format!("does not parse: {e}"))?;
    let mut v = Selected::default();
    walk_expr(&mut v, &ast)?;
    Ok(v.0)
}

/// Grafana's variables as the static checks expand them: every pipeline, the
/// dashboard's default 6 h range.
const VARS: common::GrafanaVars = common::GrafanaVars {
    pipeline: ".*",
    rate_interval: "1m",
    interval: "1m",
    range: "6h",
};

fn grafana_to_promql(expr: &str) -> String {
    common::grafana_to_promql(expr, &VARS)
}

/// The rules file's recording rule names and (name, expr) of every rule.
fn rules() -> (BTreeSet<String>, Vec<(String, String)>) {
    let doc = yaml(RULES);
    let mut recorded = BTreeSet::new();
    let mut all = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["record"]
                .as_str()
                .or_else(|| r["alert"].as_str())
                .expect("record or alert")
                .to_string();
            if r["record"].is_string() {
                recorded.insert(name.clone());
            }
            all.push((name, r["expr"].as_str().expect("expr").to_string()));
        }
    }
    (recorded, all)
}

/// A real Prometheus (the version the project tests with) scraping the daemon with the
/// rules loaded: every rule evaluates without error, the recording rules produce data,
/// and every dashboard query is accepted. promql-parser is not Prometheus: this catches
/// what only the server refuses (a function it lacks, a matching error at run time).
fn evaluated_by_prometheus(
    daemon: &Daemon,
    rules: &[(String, String)],
    exprs: &[(String, String)],
) {
    let target = daemon.url.trim_start_matches("http://");
    let prom = Prometheus::start_with_rules(
        &common::static_job("phoenix", target),
        &[&Path::new(ROOT).join(RULES)],
    );
    // The recording rules chain (cost on data points on the constants); the forecast
    // needs two samples.
    for series in [
        "phoenix:reduction_ratio",
        "phoenix:estimated_cost_per_hour",
        "phoenix:estimated_cost_saved_per_hour",
        "phoenix:output_series:predict_linear_1h",
    ] {
        wait_until(series, Duration::from_secs(30), || {
            let v = query(&prom.url, series)?;
            (!v.is_empty())
                .then_some(())
                .ok_or_else(|| format!("{v:?}"))
        });
    }
    wait_until(
        "every rule evaluated without error",
        Duration::from_secs(30),
        || {
            let (_, body) = get(&format!("{}/api/v1/rules", prom.url))?;
            let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let mut health = BTreeMap::new();
            for g in v["data"]["groups"].as_array().into_iter().flatten() {
                for r in g["rules"].as_array().into_iter().flatten() {
                    let name = r["name"].as_str().unwrap_or("?").to_string();
                    if r["health"] == "err" {
                        panic!("rule {name}: {}", r["lastError"]);
                    }
                    health.insert(name, r["health"].as_str().unwrap_or("?").to_string());
                }
            }
            let all = rules
                .iter()
                .all(|(n, _)| health.get(n).is_some_and(|h| h == "ok"));
            all.then_some(()).ok_or_else(|| format!("{health:?}"))
        },
    );
    for (path, expr) in exprs {
        if let Err(e) = query(&prom.url, &grafana_to_promql(expr)) {
            panic!("{DASHBOARD}{path}: Prometheus refuses {expr}: {e}");
        }
    }
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, scraped) = running_daemon(dir.path());
    let mut allowed = names_in_code();
    allowed.extend(scraped);
    let (recorded, rules) = rules();
    allowed.extend(recorded.iter().cloned());
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();

    for (name, expr) in &rules {
        match selected(expr) {
            Ok(names) => {
                for n in names.difference(&allowed) {
                    problems.push(format!("{RULES}: {name}: {n} is not exported"));
                }
            }
            Err(e) => problems.push(format!("{RULES}: {name}: {e}: {expr}")),
        }
    }

    let dash: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let mut exprs = Vec::new();
    exprs_in(&dash, String::new(), &mut exprs);
    assert!(exprs.len() > 20, "{exprs:?}");
    for (path, expr) in &exprs {
        match selected(&grafana_to_promql(expr)) {
            Ok(names) => {
                for n in names.difference(&allowed) {
                    problems.push(format!("{DASHBOARD}{path}: {n} is not exported"));
                }
                used.extend(names);
            }
            Err(e) => problems.push(format!("{DASHBOARD}{path}: {e}: {expr}")),
        }
    }
    // The pipeline variable's label_values(METRIC, pipeline) is Grafana syntax, not PromQL.
    let var = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "pipeline")
        .expect("pipeline variable");
    let q = var["query"]["query"].as_str().expect("pipeline query");
    let metric = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(", pipeline)"))
        .unwrap_or_else(|| panic!("pipeline variable: {q}"));
    assert!(allowed.contains(metric), "pipeline variable reads {metric}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    evaluated_by_prometheus(&daemon, &rules, &exprs);

    // What issue 11 asks the dashboard to show, each by the metric that carries it.
    for need in [
        "phoenix_profile_in_force",
        "phoenix_input_series",
        "phoenix_output_series",
        "phoenix_budget_series",
        "phoenix_decisions_total",
        "phoenix_switches_blocked_total",
        "phoenix_pid_p",
        "phoenix_pid_i",
        "phoenix_pid_d",
        "phoenix_pid_output",
        "phoenix_measured_retention_ratio",
        "phoenix_anomaly_score",
        "phoenix_source_state",
        "phoenix_applies_total",
        "phoenix_reloads_total",
        "phoenix_rollbacks_total",
        "phoenix_last_apply_success_timestamp_seconds",
        "phoenix_actor_restarts_total",
        "phoenix_safe_hold",
        "phoenix_policy_reload_success",
    ] {
        assert!(used.contains(need), "no panel shows {need}");
    }
}

#[test]
fn the_dashboard_is_current_grafana_with_its_variables_and_datasource() {
    let dash: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 39);
    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |n: &str| {
        vars.iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("variable {n}"))
    };
    let ds = var("datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let p = var("pipeline");
    assert_eq!(p["type"], "query");
    assert_eq!(p["multi"], true);
    assert_eq!(p["includeAll"], true);
    assert_eq!(p["datasource"]["uid"], DS_VAR);

    let mut ids = BTreeSet::new();
    let mut count = 0;
    for panel in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{panel}");
        let g = &panel["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{g}"
        );
        // Rows carry no queries.
        if panel["type"] == "row" {
            continue;
        }
        count += 1;
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], DS_VAR, "{title}");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], DS_VAR, "{title}");
        }
    }
    assert!(count >= 20, "{count} panels");
    let timeline = dash["panels"].as_array().unwrap().iter().find(|p| {
        p["type"] == "state-timeline" && p.to_string().contains("phoenix_profile_in_force")
    });
    assert!(
        timeline.is_some(),
        "no state timeline of the profile in force"
    );

    let annotations: Vec<&Value> = dash["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["builtIn"] != 1)
        .collect();
    for a in &annotations {
        assert_eq!(a["datasource"]["uid"], DS_VAR, "{a}");
    }
    for counter in ["phoenix_decisions_total", "phoenix_rollbacks_total"] {
        assert!(
            annotations
                .iter()
                .any(|a| a["expr"].as_str().unwrap_or("").contains(counter)),
            "no annotation on {counter}"
        );
    }
}

/// `operations.md`'s `###` headings as GitHub anchors (lower case, spaces to dashes).
fn doc_anchors() -> BTreeSet<String> {
    read("docs/operations.md")
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase().replace(' ', "-"))
        .collect()
}

#[test]
fn every_alert_is_documented_and_tested_firing_and_not_firing() {
    let doc = yaml(RULES);
    let anchors = doc_anchors();
    let mut alerts = BTreeSet::new();
    for g in doc["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let Some(name) = r["alert"].as_str() else {
                continue;
            };
            alerts.insert(name.to_string());
            let a = &r["annotations"];
            for k in ["summary", "description", "runbook_url"] {
                assert!(a[k].as_str().is_some_and(|s| !s.is_empty()), "{name}: {k}");
            }
            let url = a["runbook_url"].as_str().unwrap();
            let anchor = name.to_lowercase();
            assert_eq!(url, format!("docs/operations.md#{anchor}"), "{name}");
            assert!(
                anchors.contains(&anchor),
                "docs/operations.md has no `### {name}`"
            );
            assert!(r["labels"]["severity"].is_string(), "{name}");
        }
    }
    for need in [
        "PhoenixSafeHold",
        "PhoenixSwitchBudgetExhausted",
        "PhoenixFlapping",
        "PhoenixOutputOverBudget",
        "PhoenixSourceDown",
        "PhoenixRollback",
        "PhoenixConfigNotVerified",
        "PhoenixPolicyReloadFailed",
    ] {
        assert!(alerts.contains(need), "no alert {need}");
    }

    // promtool decides whether the tests pass; this checks they exist for every rule.
    let tests = yaml(RULES_TEST);
    let (mut firing, mut quiet, mut evaluated) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().unwrap() {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            let n = a["alertname"].as_str().unwrap().to_string();
            if a["exp_alerts"].as_array().is_some_and(|v| !v.is_empty()) {
                firing.insert(n);
            } else {
                quiet.insert(n);
            }
        }
        for e in t["promql_expr_test"].as_array().into_iter().flatten() {
            evaluated.extend(selected(e["expr"].as_str().unwrap()).unwrap());
        }
    }
    assert_eq!(firing, alerts, "alerts tested firing");
    assert_eq!(quiet, alerts, "alerts tested not firing");
    let (recorded, _) = rules();
    let untested: Vec<_> = recorded.difference(&evaluated).collect();
    assert!(
        untested.is_empty(),
        "recording rules without a value test: {untested:?}"
    );
}

/// Runs `promtool ARGS` in the repository root; a missing promtool fails the test (it
/// comes with Debian's prometheus package, which .ci/run installs).
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("promtool must be on PATH (Debian's prometheus package; .ci/run installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    promtool(&["check", "rules", RULES]);
    promtool(&["test", "rules", RULES_TEST]);
}

/// One Kubernetes manifest file's documents.
fn k8s_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect();
    for d in &docs {
        for k in ["apiVersion", "kind"] {
            assert!(d[k].is_string(), "{rel}: a document without {k}");
        }
        assert!(
            d["metadata"]["name"].is_string(),
            "{rel}: a nameless document"
        );
    }
    docs
}

/// The lines of `ours` that differ from `shipped` must be the queries right after
/// `input: >-` and `output: >-`: the ConfigMap carries the shipped policy, with at most
/// its two signals written for its collector.
fn assert_shipped_policy(ours: &str, shipped: &str, what: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), shipped.lines().collect());
    assert_eq!(a.len(), b.len(), "{what}: not the shipped policy");
    for i in 0..a.len() {
        if a[i] != b[i] {
            let prev = b.get(i.wrapping_sub(1)).map(|l| l.trim());
            assert!(
                matches!(prev, Some("input: >-" | "output: >-")),
                "{what}: line {} differs from the shipped policy: {}",
                i + 1,
                a[i]
            );
        }
    }
}

#[test]
fn the_kubernetes_sidecars_parse_and_their_phoenix_configs_pass_check() {
    for rel in K8S {
        let docs = k8s_docs(rel);
        let config_maps: BTreeMap<&str, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
            .collect();
        let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
        assert_eq!(deployments.len(), 1, "{rel}");
        let template = &deployments[0]["spec"]["template"];
        // What the API server would refuse: a selector that does not select the pod, a
        // port name that is not an IANA service name (at most 15 characters).
        for (k, v) in deployments[0]["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&template["metadata"]["labels"][k], v, "{rel}: selector {k}");
        }
        let spec = &template["spec"];
        for c in spec["containers"].as_array().unwrap() {
            assert!(c["image"].is_string(), "{rel}: {}", c["name"]);
            for p in c["ports"].as_array().into_iter().flatten() {
                let n = p["name"].as_str().unwrap();
                assert!(
                    n.len() <= 15
                        && n.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "{rel}: port name {n}"
                );
            }
        }
        let volumes: BTreeMap<&str, &Value> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        for v in volumes.values() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                assert!(
                    config_maps.contains_key(cm),
                    "{rel}: ConfigMap {cm} is not in the file"
                );
            }
        }
        let containers = spec["containers"].as_array().unwrap();
        let phoenix = containers
            .iter()
            .find(|c| c["name"] == "phoenix")
            .unwrap_or_else(|| panic!("{rel}: no phoenix container"));
        for c in containers
            .iter()
            .chain(spec["initContainers"].as_array().into_iter().flatten())
        {
            for m in c["volumeMounts"].as_array().unwrap() {
                let n = m["name"].as_str().unwrap();
                assert!(volumes.contains_key(n), "{rel}: {}: volume {n}", c["name"]);
            }
        }
        // Requests are set (sized from the measurements, says the comment beside them).
        for k in ["cpu", "memory"] {
            assert!(
                phoenix["resources"]["requests"][k].is_string(),
                "{rel}: phoenix requests.{k}"
            );
        }

        // The pod's file system for the phoenix container, in a temporary folder: each
        // mount a folder, ConfigMaps written as files.
        let tmp = tempfile::tempdir().unwrap();
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in phoenix["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(cm) = volumes[name]["configMap"]["name"].as_str() {
                for (k, text) in config_maps[cm]["data"].as_object().unwrap() {
                    std::fs::write(dir.join(k), text.as_str().unwrap()).unwrap();
                }
            }
            mounts.push((m["mountPath"].as_str().unwrap().to_string(), dir));
        }
        let args: Vec<&str> = phoenix["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let cfg_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
        let in_pod = |p: &str| -> PathBuf {
            let (m, dir) = mounts
                .iter()
                .filter(|(m, _)| p.starts_with(&format!("{m}/")) || p == m)
                .max_by_key(|(m, _)| m.len())
                .unwrap_or_else(|| panic!("{rel}: {p} is on no volume of the phoenix container"));
            dir.join(p[m.len()..].trim_start_matches('/'))
        };
        let cfg_text = std::fs::read_to_string(in_pod(cfg_path)).unwrap();
        let cfg: Value = serde_yaml_ng::from_str(&cfg_text).unwrap();

        // Every path the daemon uses must be on a volume (else the pod loses it, or the
        // read-only root refuses it), and the collector reads the file Phoenix writes.
        let mut paths = vec![
            cfg["policy"].as_str().unwrap().to_string(),
            cfg["state_dir"].as_str().unwrap().to_string(),
        ];
        for c in cfg["collectors"].as_array().unwrap() {
            let backend = c["backend"].as_str().unwrap();
            let b = &c[backend];
            for k in ["base_config", "config_path"] {
                paths.push(b[k].as_str().unwrap().to_string());
            }
            let written = b["config_path"].as_str().unwrap();
            let collector_reads = containers
                .iter()
                .any(|k| k["name"] != "phoenix" && k["args"].to_string().contains(written));
            assert!(
                collector_reads,
                "{rel}: no collector container reads {written}"
            );
            if backend == "otelcol" {
                // The signal (or a command sending it) reaches the collector only in a
                // shared process namespace.
                assert_eq!(spec["shareProcessNamespace"], true, "{rel}");
            }
        }
        let mut text = cfg_text.clone();
        for p in &paths {
            let host = in_pod(p);
            text = text.replace(p.as_str(), host.to_str().unwrap());
        }
        // The config's HTTP port is the one the container declares and probes.
        let listen = cfg["http"]["listen"].as_str().unwrap();
        let port = phoenix["ports"][0]["containerPort"].as_u64().unwrap();
        assert_eq!(listen, format!("0.0.0.0:{port}"), "{rel}");
        let port_name = phoenix["ports"][0]["name"].as_str().unwrap();
        assert_eq!(phoenix["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(phoenix["livenessProbe"]["httpGet"]["path"], "/healthz");
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                phoenix[probe]["httpGet"]["port"], port_name,
                "{rel}: {probe}"
            );
        }

        // The embedded policy is the shipped one (the prometheus one for the prometheus
        // backend).
        let policy = std::fs::read_to_string(in_pod(cfg["policy"].as_str().unwrap())).unwrap();
        let backend = cfg["collectors"][0]["backend"].as_str().unwrap();
        let shipped = match backend {
            "prometheus" => read("policies/prometheus-collector.yaml"),
            _ => read("policies/default.yaml"),
        };
        assert_shipped_policy(&policy, &shipped, rel);

        let check = tmp.path().join("check.yaml");
        std::fs::write(&check, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["run", "--check", "--config"])
            .arg(&check)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rel}: phoenix run --check:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The unit's `[Service]` keys (a key may repeat).
fn unit_service(text: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('[') {
            in_service = l == "[Service]";
        } else if in_service && !l.starts_with('#') {
            if let Some((k, v)) = l.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_systemd_unit_is_valid_and_names_the_real_flags() {
    let text = read(UNIT);
    let svc = unit_service(&text);
    let get = |k: &str| -> Vec<&str> {
        svc.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("User"), ["phoenix"]);
    assert_eq!(get("ProtectSystem"), ["strict"]);
    assert_eq!(get("Restart"), ["on-failure"]);
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    let rw = get("ReadWritePaths").join(" ");
    assert!(rw.split(' ').any(|p| p == "/var/lib/phoenix"), "{rw}");
    let help = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for exec in get("ExecStart").iter().chain(get("ExecStartPre").iter()) {
        assert!(exec.starts_with("/usr/local/bin/phoenix run "), "{exec}");
        for flag in exec.split(' ').filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(flag),
                "{flag} is not a flag of phoenix run:\n{help}"
            );
        }
    }

    // systemd's own checker, where this machine has it (the issue's acceptance: "where
    // available, else a structural check", done above). It needs the executables to
    // exist, so it checks a copy that runs the binary under test.
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(_) => {
            let dir = tempfile::tempdir().unwrap();
            let unit = dir.path().join("phoenix.service");
            std::fs::write(
                &unit,
                text.replace("/usr/local/bin/phoenix", env!("CARGO_BIN_EXE_phoenix")),
            )
            .unwrap();
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&unit)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // Unknown keys and bad values are only warnings (exit 0): refuse those too.
            assert!(
                out.status.success() && err.trim().is_empty(),
                "systemd-analyze verify: {}\n{err}",
                out.status
            );
        }
        Err(e) => eprintln!("systemd-analyze not available ({e}): structural checks only"),
    }
}

#[test]
fn sighup_reloads_the_policy_as_the_units_exec_reload_expects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(dir.path());
    let mut d = Daemon::start(&cfg, &dir.path().join("demo.log"));
    let metrics = || get(&format!("{}/metrics", d.url)).map(|(_, b)| b);
    // Ready: the signal handler is installed before the daemon reports ready.
    wait_until("the daemon ready", Duration::from_secs(30), || {
        get(&format!("{}/readyz", d.url)).and_then(|(c, b)| (c == 200).then_some(()).ok_or(b))
    });
    let policy = dir.path().join("policy.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    // A changed comment changes the file's hash, so the reload is not "unchanged". The
    // signal comes at once, before the watcher's debounced poll (two 1 s polls) could
    // notice the change.
    std::fs::write(&policy, format!("{text}\n# edited\n")).unwrap();
    let pid = i32::try_from(d.pid()).unwrap();
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_until("a policy reload on SIGHUP", Duration::from_secs(10), || {
        let log = d.log();
        log.lines()
            .any(|l| l.contains("Policy reloaded.") && l.contains("SIGHUP"))
            .then_some(())
            .ok_or(log)
    });
    let m = metrics().unwrap();
    assert_eq!(
        metric(&m, "phoenix_policy_reloads_total{outcome=\"ok\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "phoenix_policy_reload_success "),
        Some(1.0),
        "{m}"
    );

    // An invalid policy is rejected and the alert's gauge goes to 0.
    std::fs::write(&policy, "name: [unclosed\n").unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_until("the policy rejected", Duration::from_secs(10), || {
        let m = metrics()?;
        (metric(&m, "phoenix_policy_reload_success ") == Some(0.0))
            .then_some(())
            .ok_or(m)
    });
    // Still running, on the previous policy.
    let status = d.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status}; log:\n{}", d.log());
}

#[test]
fn the_dockerfile_builds_locked_and_runs_unprivileged_from_what_the_context_holds() {
    // No Docker daemon where the tests run: these are the properties a build would show.
    let text = read("Dockerfile");
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        froms,
        [
            "FROM rust:1-slim-bookworm AS build",
            "FROM debian:bookworm-slim"
        ]
    );
    assert!(text.contains("cargo build --release --locked"));
    assert!(ignored.contains(&"target/"), "{ignore}");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    // What the runtime stage copies from the context exists and is not ignored; the
    // build stage copies everything, and cargo needs these.
    for l in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let src = l.split_whitespace().nth(1).unwrap();
        if src == "." {
            continue;
        }
        assert!(Path::new(ROOT).join(src).exists(), "{l}");
        assert!(!ignored.contains(&src), "{l}: ignored by .dockerignore");
    }
    for needed in ["src/", "Cargo.lock", "Cargo.toml", "benches/", "policies/"] {
        assert!(!ignored.contains(&needed), ".dockerignore drops {needed}");
    }
    // The binary the image runs is the one the build stage makes.
    assert!(text.contains("COPY --from=build /src/target/release/phoenix /usr/local/bin/phoenix"));
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/phoenix\"]"));
}
