//! The `otelcol` backend through the actuator's own steps (`phoenix::actuator`): render the
//! whole config with its state line from each shipped base config and every profile of
//! the default policy, check it structurally, and validate it with the collector's own
//! `otelcol validate` when a binary is configured or on PATH. No OpenTelemetry Collector
//! can be installed on these machines and no stand-in is used: the test output says
//! plainly whether `otelcol validate` ran. Also: a daemon with an otelcol collector and
//! no validator says so in its log at start.

mod common;

use phoenix::actuator::{Collector, OtelReload, OtelcolSettings, state_of};
use phoenix::daemon::actuator::ControlFile;
use phoenix::policy::ValidatedPolicy;
use phoenix::render::otelcol::PipelineMapping;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The validator a deployment would use: PHOENIX_OTELCOL, else the contrib build, else
/// the core build, on PATH.
fn validator() -> Option<PathBuf> {
    std::env::var_os("PHOENIX_OTELCOL")
        .map(PathBuf::from)
        .or_else(|| phoenix::actuator::on_path("otelcol-contrib"))
        .or_else(|| phoenix::actuator::on_path("otelcol"))
}

fn settings(base: &str, mapping: &str, out: &Path) -> OtelcolSettings {
    OtelcolSettings {
        base_config: root(base),
        config_path: out.to_path_buf(),
        pipelines: serde_yaml_ng::from_str::<PipelineMapping>(mapping).unwrap(),
        reload: OtelReload::Signal {
            pidfile: out.with_extension("pid"),
        },
        retry_for: Duration::from_secs(1),
        health_url: "http://127.0.0.1:13133/".parse().unwrap(),
        verify_timeout: Duration::from_secs(1),
        validator: validator(),
    }
}

#[test]
fn every_profile_renders_checks_and_validates_where_a_collector_exists() {
    let policy = ValidatedPolicy::from_file(&root("policies/default.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bases = [
        // Several service pipelines, two of them Phoenix's.
        (
            "configs/otelcol/gateway.yaml",
            "pipelines: {}",
            vec!["checkout", "search"],
        ),
        (
            "configs/otelcol/agent.yaml",
            "pipelines: { node: [metrics] }",
            vec!["node"],
        ),
        (
            "configs/otelcol/spanmetrics.yaml",
            "pipelines: {}",
            vec!["spanmetrics"],
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut validated = 0;
    let mut rendered = 0;
    for (base, mapping, pipelines) in &bases {
        let out = dir.path().join("otelcol.yaml");
        let c = Collector::Otelcol(settings(base, mapping, &out));
        for (g, profile) in policy.profiles().iter().enumerate() {
            let mut state = ControlFile {
                generation: g as u64 + 1,
                ..Default::default()
            };
            for p in pipelines {
                state.pipelines.insert(p.to_string(), profile.name.clone());
            }
            let text = c
                .render(&policy, &state)
                .unwrap_or_else(|e| panic!("{base} {}: {e}", profile.name));
            // The state line names what the file holds; the rest is a collector config
            // with its structure intact.
            assert_eq!(state_of(&text), Some(state.clone()), "{base}");
            phoenix::render::otelcol::check(&text)
                .unwrap_or_else(|e| panic!("{base} {}: {e}", profile.name));
            for p in pipelines {
                assert!(
                    text.contains(&format!("filter/phoenix_{p}")),
                    "{base}: {p} has no filter processor:\n{text}"
                );
            }
            // Stable: the same input renders the same bytes.
            assert_eq!(c.render(&policy, &state).unwrap(), text);
            rendered += 1;
            if runtime
                .block_on(c.validate(&text))
                .unwrap_or_else(|e| panic!("{base} {}: {e}", profile.name))
            {
                validated += 1;
            }
        }
    }
    // Nothing left beside the target by the validation.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    match validator() {
        Some(bin) => {
            assert_eq!(validated, rendered);
            eprintln!(
                "otelcol validate RAN ({}) on {rendered} rendered configs",
                bin.display()
            );
        }
        None => {
            assert_eq!(validated, 0);
            eprintln!(
                "otelcol validate DID NOT RUN: no otelcol or otelcol-contrib binary on PATH (set PHOENIX_OTELCOL); {rendered} rendered configs got the structural checks only"
            );
        }
    }
}

#[test]
fn an_unknown_pipeline_mapping_is_refused_at_render() {
    let policy = ValidatedPolicy::from_file(&root("policies/default.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::Otelcol(settings(
        "configs/otelcol/agent.yaml",
        "pipelines: { node: [metrics/nope] }",
        &dir.path().join("o.yaml"),
    ));
    let mut state = ControlFile::default();
    state.pipelines.insert("node".into(), "balanced".into());
    let e = c.render(&policy, &state).unwrap_err().to_string();
    assert!(e.contains("metrics/nope"), "{e}");
    state.pipelines.insert("node".into(), "nope".into());
    let e = c.render(&policy, &state).unwrap_err().to_string();
    assert!(e.contains("profile \"nope\" is not in the policy"), "{e}");
}

#[test]
fn a_daemon_without_an_otelcol_validator_says_so_at_start() {
    if validator().is_some() {
        eprintln!("an otelcol binary is on PATH: the no-validator warning cannot be shown here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        common::loadgen_policy(common::LOADGEN_INPUT),
    )
    .unwrap();
    // Nothing answers on this Prometheus URL: the daemon still starts and serves.
    let cfg = format!(
        "prometheus:\n  url: http://127.0.0.1:{port}\n  timeout: 1s\npolicy: {policy}\nstate_dir: {state}\ncollectors:\n  - name: gw\n    backend: otelcol\n    otelcol:\n      base_config: {base}\n      config_path: {out}\n      reload: {{ signal: {{ pidfile: {pid} }} }}\n      verify: {{ health_url: 'http://127.0.0.1:{port}/' }}\n",
        port = common::free_port(),
        policy = dir.path().join("policy.yaml").display(),
        state = dir.path().join("state").display(),
        base = root("configs/otelcol/gateway.yaml").display(),
        out = dir.path().join("otelcol.yaml").display(),
        pid = dir.path().join("otelcol.pid").display(),
    );
    let path = dir.path().join("phoenix.yaml");
    std::fs::write(&path, cfg).unwrap();
    let daemon = common::Daemon::start(&path, &dir.path().join("phoenix.log"));
    common::wait_until("the validator warning", Duration::from_secs(20), || {
        let log = daemon.log();
        log.contains("No otelcol (validate --config) binary available")
            .then_some(())
            .ok_or(log)
    });
    assert_eq!(
        common::get(&format!("{}/healthz", daemon.url)).unwrap().0,
        200
    );
}
