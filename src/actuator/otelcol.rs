//! The `otelcol` backend's reload and verification. The collector reloads on SIGHUP (the
//! pid comes from a pidfile) or through whatever command an operator's setup provides
//! (run as an argv, never through a shell). It exits rather than run an invalid config,
//! which is why the config is validated first; after the reload, its health_check
//! extension must answer 200 within the timeout.

use super::{ApplyError, OtelReload, OtelcolSettings, run_command};
use std::time::{Duration, Instant};

const VERIFY_POLL: Duration = Duration::from_millis(100);

/// Probes the health endpoint once: `Unreachable` when nothing answers.
pub async fn probe(http: &reqwest::Client, s: &OtelcolSettings) -> Result<(), ApplyError> {
    health(http, s)
        .await
        .map_err(|reason| ApplyError::Unreachable {
            url: s.health_url.to_string(),
            reason,
        })
}

async fn health(http: &reqwest::Client, s: &OtelcolSettings) -> Result<(), String> {
    let resp = http
        .get(s.health_url.clone())
        .send()
        .await
        .map_err(|e| super::prometheus::error_text(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

/// Tells the collector to reload.
pub async fn reload(s: &OtelcolSettings) -> Result<(), ApplyError> {
    match &s.reload {
        OtelReload::Signal { pidfile } => {
            let via = format!("SIGHUP to the pid in {}", pidfile.display());
            let text = std::fs::read_to_string(pidfile).map_err(|e| ApplyError::Unreachable {
                url: pidfile.display().to_string(),
                reason: crate::fsutil::io_text(&e),
            })?;
            let pid: libc::pid_t = text.trim().parse().map_err(|_| ApplyError::Reload {
                via: via.clone(),
                reason: format!("{:?} is not a pid", text.trim()),
            })?;
            if pid <= 1 {
                return Err(ApplyError::Reload {
                    via,
                    reason: format!("refusing to signal pid {pid}"),
                });
            }
            // SAFETY: kill(2) with a positive pid read from the operator's pidfile.
            if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(ApplyError::Unreachable {
                    url: format!("pid {pid} (from {})", pidfile.display()),
                    reason: crate::fsutil::io_text(&e),
                });
            }
            Ok(())
        }
        OtelReload::Command { argv, timeout } => {
            let (program, args) = argv.split_first().ok_or_else(|| ApplyError::Reload {
                via: "reload.command".to_string(),
                reason: "empty command".to_string(),
            })?;
            let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            run_command(std::path::Path::new(program), &args, *timeout)
                .await
                .map_err(|reason| ApplyError::Reload {
                    via: argv.join(" "),
                    reason,
                })
        }
    }
}

/// Polls the health endpoint until it answers 200 or the timeout passes.
pub async fn verify(http: &reqwest::Client, s: &OtelcolSettings) -> Result<(), ApplyError> {
    let started = Instant::now();
    let max_polls = (s.verify_timeout.as_millis() / VERIFY_POLL.as_millis()) as u64 + 1;
    let mut last = String::from("not checked yet");
    for _ in 0..max_polls {
        match health(http, s).await {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("{}: {e}", s.health_url),
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
