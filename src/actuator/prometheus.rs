//! The `prometheus` backend's reload and verification: `POST /-/reload`, then proof from
//! Prometheus itself that the new config is in force, not merely that it is alive: its
//! `prometheus_config_last_reload_successful` is 1, the success timestamp moved past the
//! one read before the reload, and the config it serves at `/api/v1/status/config` has
//! the rendered `metric_relabel_configs` on every job.

use super::{ApplyError, PrometheusSettings};
use serde_yaml_ng::Value;
use std::time::{Duration, Instant};

/// How often verification polls.
const VERIFY_POLL: Duration = Duration::from_millis(100);

/// What Prometheus' own `/metrics` says about its last reload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReloadStatus {
    /// `prometheus_config_last_reload_successful`.
    pub successful: bool,
    /// `prometheus_config_last_reload_success_timestamp_seconds`.
    pub success_at: f64,
}

fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Reads the reload status; `Unreachable` when Prometheus does not answer.
pub async fn reload_status(
    http: &reqwest::Client,
    s: &PrometheusSettings,
) -> Result<ReloadStatus, ApplyError> {
    let url = s
        .verify_url
        .join("metrics")
        .map_err(|e| ApplyError::Unreachable {
            url: s.verify_url.to_string(),
            reason: e.to_string(),
        })?;
    let unreachable = |reason: String| ApplyError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| unreachable(error_text(&e)))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!("HTTP {}", resp.status())));
    }
    let body = resp.text().await.map_err(|e| unreachable(error_text(&e)))?;
    let successful = metric_value(&body, "prometheus_config_last_reload_successful");
    let success_at = metric_value(
        &body,
        "prometheus_config_last_reload_success_timestamp_seconds",
    );
    match (successful, success_at) {
        (Some(ok), Some(at)) => Ok(ReloadStatus {
            successful: ok == 1.0,
            success_at: at,
        }),
        _ => Err(unreachable(
            "no prometheus_config_last_reload_* metrics there; is verify.url Prometheus' own base URL?"
                .to_string(),
        )),
    }
}

/// `POST` to the reload URL. A refused connection is `Unreachable` (nothing was reloaded);
/// an answer other than 2xx is a refused reload with Prometheus' own words.
pub async fn reload(http: &reqwest::Client, s: &PrometheusSettings) -> Result<(), ApplyError> {
    let url = s.reload_url.to_string();
    let resp =
        http.post(s.reload_url.clone())
            .send()
            .await
            .map_err(|e| ApplyError::Unreachable {
                url: url.clone(),
                reason: error_text(&e),
            })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let hint =
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::NOT_FOUND {
            " (start Prometheus with --web.enable-lifecycle)"
        } else {
            ""
        };
    Err(ApplyError::Reload {
        via: url,
        reason: format!(
            "HTTP {status}: {}{hint}",
            body.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    })
}

/// Polls until the new config is in force or `verify_timeout` passes. `before` is the
/// success timestamp read before the reload; `rendered` the config written.
pub async fn verify(
    http: &reqwest::Client,
    s: &PrometheusSettings,
    before: f64,
    rendered: &str,
) -> Result<(), ApplyError> {
    let want = expected_rules(rendered);
    let started = Instant::now();
    let max_polls = (s.verify_timeout.as_millis() / VERIFY_POLL.as_millis()) as u64 + 1;
    let mut last = String::from("not checked yet");
    for _ in 0..max_polls {
        match check_once(http, s, before, &want).await {
            Ok(()) => return Ok(()),
            // A reload Prometheus reports as failed will not turn into a success.
            Err(Check::Final(reason)) => {
                return Err(ApplyError::Verify {
                    timeout: s.verify_timeout,
                    reason,
                });
            }
            Err(Check::NotYet(reason)) => last = reason,
        }
        if started.elapsed() >= s.verify_timeout {
            break;
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
    Err(ApplyError::Verify {
        timeout: s.verify_timeout,
        reason: last,
    })
}

enum Check {
    NotYet(String),
    Final(String),
}

async fn check_once(
    http: &reqwest::Client,
    s: &PrometheusSettings,
    before: f64,
    want: &[(String, Vec<RuleShape>)],
) -> Result<(), Check> {
    let st = reload_status(http, s)
        .await
        .map_err(|e| Check::NotYet(e.to_string()))?;
    if !st.successful {
        return Err(Check::Final(
            "prometheus_config_last_reload_successful is 0: Prometheus refused the config (see its log)".to_string(),
        ));
    }
    if st.success_at <= before {
        return Err(Check::NotYet(format!(
            "prometheus_config_last_reload_success_timestamp_seconds is still {}",
            st.success_at
        )));
    }
    let url = s
        .verify_url
        .join("api/v1/status/config")
        .map_err(|e| Check::NotYet(e.to_string()))?;
    let body = http
        .get(url)
        .send()
        .await
        .map_err(|e| Check::NotYet(error_text(&e)))?
        .text()
        .await
        .map_err(|e| Check::NotYet(error_text(&e)))?;
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| Check::NotYet(format!("status/config: {e}")))?;
    let yaml = json["data"]["yaml"]
        .as_str()
        .ok_or_else(|| Check::NotYet("status/config has no data.yaml".to_string()))?;
    let loaded = expected_rules(yaml);
    for (job, rules) in want {
        match loaded.iter().find(|(j, _)| j == job) {
            None => {
                return Err(Check::Final(format!(
                    "the loaded config has no scrape job {job:?}"
                )));
            }
            Some((_, got)) if got != rules => {
                return Err(Check::Final(format!(
                    "scrape job {job:?} is loaded with {} metric_relabel_configs rule(s) ({}), the rendered config has {} ({})",
                    got.len(),
                    shapes(got),
                    rules.len(),
                    shapes(rules)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// What identifies a relabel rule across Prometheus' normalisation of it (it fills in
/// defaults and rewrites regexes, but keeps the action, target and modulus).
#[derive(Clone, Debug, PartialEq)]
struct RuleShape {
    action: String,
    target: Option<String>,
    modulus: Option<u64>,
}

fn shapes(r: &[RuleShape]) -> String {
    r.iter()
        .map(|s| s.action.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Per scrape job, the shapes of its `metric_relabel_configs`.
fn expected_rules(yaml: &str) -> Vec<(String, Vec<RuleShape>)> {
    let Ok(v) = serde_yaml_ng::from_str::<Value>(yaml) else {
        return Vec::new();
    };
    let Some(jobs) = v.get("scrape_configs").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    jobs.iter()
        .filter_map(|j| {
            let name = j.get("job_name")?.as_str()?.to_string();
            let rules = j
                .get("metric_relabel_configs")
                .and_then(Value::as_sequence)
                .map(|rs| {
                    rs.iter()
                        .map(|r| RuleShape {
                            action: r
                                .get("action")
                                .and_then(Value::as_str)
                                .unwrap_or("replace")
                                .to_ascii_lowercase(),
                            target: r
                                .get("target_label")
                                .and_then(Value::as_str)
                                .filter(|t| !t.is_empty())
                                .map(str::to_string),
                            modulus: r.get("modulus").and_then(Value::as_u64).filter(|m| *m > 0),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some((name, rules))
        })
        .collect()
}

/// reqwest's error with its cause chain, on one line.
pub fn error_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_shapes_ignore_prometheus_defaults() {
        let rendered = "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - source_labels: [id]\n        target_label: __tmp_phoenix_sample\n        modulus: 10\n        action: hashmod\n      - regex: x\n        action: drop\n  - job_name: b\n";
        let loaded = "scrape_configs:\n- job_name: a\n  metric_relabel_configs:\n  - source_labels: [id]\n    separator: ;\n    regex: (.*)\n    target_label: __tmp_phoenix_sample\n    modulus: 10\n    replacement: $1\n    action: hashmod\n  - separator: ;\n    regex: x\n    replacement: $1\n    action: drop\n- job_name: b\n";
        assert_eq!(expected_rules(rendered), expected_rules(loaded));
        assert_eq!(expected_rules(rendered)[0].1.len(), 2);
        assert_eq!(
            metric_value(
                "# HELP x\nprometheus_config_last_reload_successful 1\n",
                "prometheus_config_last_reload_successful"
            ),
            Some(1.0)
        );
    }
}
