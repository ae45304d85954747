//! Real components for integration tests (DESIGN.md, "Real components in tests"): a
//! Prometheus server (Debian's `prometheus` from PATH) on a free loopback port with its own
//! temporary storage, a `phoenix loadgen` process, a small blocking client for their HTTP
//! APIs, and [`wait_until`], which polls a condition up to a deadline instead of sleeping
//! and hoping. Every process is killed (and reaped) when its handle is dropped, also when
//! a test panics.
//!
//! Shared by the integration tests through `mod common;`; each test binary uses only part
//! of it, hence the `dead_code` allowance.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and the readiness checks poll.
pub const POLL: Duration = Duration::from_millis(100);

/// How long Prometheus may take to be ready (it replays an empty WAL: normally < 2 s).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long loadgen may take to print its address.
const LOADGEN_START_DEADLINE: Duration = Duration::from_secs(20);

/// Attempts to start Prometheus when the free port found was taken in between.
const START_ATTEMPTS: u32 = 5;

/// Bound of every HTTP request the helpers make.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `check` every [`POLL`] until it returns `Ok`, for at most `deadline`; panics
/// naming `what` and the last `Err` (what was seen instead) when time runs out.
pub fn wait_until<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let max_checks = (deadline.as_millis() / POLL.as_millis()) as u64 + 1;
    let mut last = String::from("never checked");
    for _ in 0..max_checks {
        match check() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        if start.elapsed() >= deadline {
            break;
        }
        thread::sleep(POLL);
    }
    panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}");
}

/// A loopback port that was free a moment ago (bound with port 0, then released); the
/// caller retries on the rare collision.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The `prometheus` binary on PATH. A missing binary fails the test: CI installs it, so a
/// skip would hide a broken setup.
fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the `prometheus` binary is not on PATH: these tests need a real Prometheus. \
                 CI installs it in .ci/run with `apt-get install -y prometheus`; do the same here"
            )
        })
}

/// The last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A scrape job: Prometheus scrapes `target` (`127.0.0.1:PORT`) every second as `job`.
pub fn static_job(job: &str, target: &str) -> String {
    format!("  - job_name: {job:?}\n    static_configs:\n      - targets: [{target:?}]\n")
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Storage and log (and the config, unless given); removed when dropped (after the
    /// process is gone).
    dir: tempfile::TempDir,
    /// The config file it reads.
    config: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `(job, target)` pairs every second, and waits until it
    /// is ready.
    pub fn start(jobs: &[(&str, &str)]) -> Prometheus {
        let scrape_configs: String = jobs.iter().map(|(j, t)| static_job(j, t)).collect();
        Prometheus::start_with(&scrape_configs)
    }

    /// Starts Prometheus with these `scrape_configs` entries (YAML list items indented by
    /// two spaces, like [`static_job`]'s) under a 1 s global scrape interval, and waits
    /// until `/-/ready` answers 200.
    pub fn start_with(scrape_configs: &str) -> Prometheus {
        Prometheus::start_with_rules(scrape_configs, &[])
    }

    /// [`start_with`](Self::start_with), also loading these rule files (evaluated every
    /// second, like the scrapes); waits until Prometheus is ready, which it is only once
    /// the rule files loaded.
    pub fn start_with_rules(scrape_configs: &str, rule_files: &[&Path]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("prometheus.yml");
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n{scrape_configs}",
                rules.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        Prometheus::launch(dir, config)
    }

    /// Starts Prometheus reading the config file at `config`, which the caller (or the
    /// daemon under test, with the `prometheus` backend) owns and may rewrite; reloads
    /// through `POST /-/reload` are enabled.
    pub fn start_collector(config: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("temporary directory");
        Prometheus::launch(dir, config.to_path_buf())
    }

    fn launch(dir: tempfile::TempDir, config: PathBuf) -> Prometheus {
        let binary = prometheus_binary();
        let log = dir.path().join("prometheus.log");
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let stderr = File::create(&log).expect("create prometheus.log");
            let data = dir.path().join("data");
            let mut child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-lifecycle")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &url, &data, &log) {
                Ok(()) => {
                    return Prometheus {
                        child,
                        url,
                        dir,
                        config,
                    };
                }
                Err(Exit::PortTaken) => last_failure = tail(&log, 5),
                Err(Exit::Failed(why)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{why}");
                }
            }
        }
        panic!("Prometheus found its port taken {START_ATTEMPTS} times; last log:\n{last_failure}");
    }

    /// Kills the server (as an outage would), keeping its folder for `restart`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, storage and config, and waits until it
    /// is ready.
    pub fn restart(&mut self) {
        let port = self.url.rsplit(':').next().expect("a port").to_string();
        let dir = self.dir.path();
        let log = dir.join("prometheus.log");
        let data = dir.join("data");
        let stderr = File::create(&log).expect("create prometheus.log");
        self.child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("restart prometheus");
        let url = self.url.clone();
        if wait_ready(&mut self.child, &url, &data, &log).is_err() {
            panic!("Prometheus did not come back on {url}: {}", tail(&log, 10));
        }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server: a stalled Prometheus, whose
    /// port still accepts connections but never answers.
    pub fn pause(&mut self, paused: bool) {
        let pid = self.child.id() as libc::pid_t;
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal prometheus");
    }

    /// Waits (up to 30 s) until `promql` returns something.
    pub fn wait_for(&self, what: &str, promql: &str) {
        wait_until(what, Duration::from_secs(30), || {
            let v = self.query(promql)?;
            (!v.is_empty())
                .then_some(())
                .ok_or_else(|| format!("{promql}: {v:?}"))
        });
    }

    /// Prometheus' log so far (for failure messages).
    pub fn log(&self) -> String {
        tail(&self.dir.path().join("prometheus.log"), 50)
    }

    /// Runs an instant query; see [`query`].
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        query(&self.url, promql)
    }
}

/// Whether the Prometheus at `url` stores its data in `data`.
fn serves_from(url: &str, data: &Path) -> bool {
    let Ok((200, body)) = get(&format!("{url}/api/v1/status/flags")) else {
        return false;
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    json["data"]["storage.tsdb.path"].as_str() == data.to_str()
}

/// How a start attempt ended.
enum Exit {
    /// The port was taken between finding it and Prometheus binding it: try another.
    PortTaken,
    /// Anything else: fail the test with this message.
    Failed(String),
}

/// Polls `/-/ready` until 200 from this very Prometheus (its storage path is `data`: a
/// server that took the port in between answers too), the process exits, or the deadline
/// passes.
fn wait_ready(child: &mut Child, url: &str, data: &Path, log: &Path) -> Result<(), Exit> {
    let ready = format!("{url}/-/ready");
    let start = Instant::now();
    let max_checks = (READY_DEADLINE.as_millis() / POLL.as_millis()) as u64 + 1;
    for _ in 0..max_checks {
        if let Some(status) = child.try_wait().expect("poll prometheus") {
            let text = tail(log, 20);
            if text.contains("address already in use") {
                return Err(Exit::PortTaken);
            }
            return Err(Exit::Failed(format!(
                "Prometheus exited ({status}) before it was ready; its log ends:\n{text}"
            )));
        }
        if matches!(get(&ready), Ok((200, _))) && serves_from(url, data) {
            return Ok(());
        }
        if start.elapsed() >= READY_DEADLINE {
            break;
        }
        thread::sleep(POLL);
    }
    Err(Exit::Failed(format!(
        "Prometheus was not ready within {READY_DEADLINE:?} at {ready}; its log ends:\n{}",
        tail(log, 20)
    )))
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `phoenix loadgen`, killed when dropped.
pub struct Loadgen {
    child: Child,
    /// `127.0.0.1:PORT`, as printed by loadgen (a scrape target).
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Holds loadgen's stderr.
    dir: tempfile::TempDir,
}

impl Loadgen {
    /// Starts `phoenix loadgen --listen 127.0.0.1:0 ARGS…` and reads the bound address from
    /// its first line of stdout.
    pub fn start(args: &[&str]) -> Loadgen {
        let dir = tempfile::tempdir().expect("temporary directory");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("create stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["loadgen", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start phoenix loadgen");
        let addr = listening_addr(&mut child, "loadgen", "loadgen listening on ", &stderr_path);
        Loadgen {
            child,
            url: format!("http://{addr}"),
            addr,
            dir,
        }
    }

    /// What loadgen wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for loadgen to exit; its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal_and_wait(
            &mut self.child,
            libc::SIGTERM,
            "loadgen",
            Duration::from_secs(10),
        )
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The blocking side of the helpers: one small runtime and client for the whole test
/// binary (reqwest's blocking client is not enabled in this crate).
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

fn http() -> &'static Http {
    static HTTP: OnceLock<Http> = OnceLock::new();
    HTTP.get_or_init(|| Http {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime for the test helpers"),
        client: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .expect("HTTP client"),
    })
}

/// Sends a request and returns the status and body, or what went wrong.
fn send(request: reqwest::RequestBuilder) -> Result<(u16, String), String> {
    http().runtime.block_on(async move {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// `GET url`: status and body.
pub fn get(url: &str) -> Result<(u16, String), String> {
    send(http().client.get(url))
}

/// `GET url` with the response's `Content-Type` too.
pub fn get_with_type(url: &str) -> Result<(u16, String, String), String> {
    http().runtime.block_on(async move {
        let response = http()
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, content_type, body))
    })
}

/// `PUT url` with a JSON body: status and body.
pub fn put_json(url: &str, body: &serde_json::Value) -> Result<(u16, String), String> {
    send(
        http()
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
    )
}

/// One element of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Runs an instant query against Prometheus at `prom_url`; the samples, or what went wrong
/// (transport, HTTP status, API error, or an answer that is not a vector).
pub fn query(prom_url: &str, promql: &str) -> Result<Vec<Sample>, String> {
    let results = api_results(prom_url, "query", &[("query", promql)], "vector")
        .map_err(|e| format!("{promql}: {e}"))?;
    results
        .iter()
        .map(|r| {
            let labels = labels_of(r);
            let value = r["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("no value in {r}"))?;
            Ok((labels, value))
        })
        .collect()
}

/// The `data.result` list of a successful answer of `GET /api/v1/ENDPOINT?PARAMS` of
/// type `result_type`, or what went wrong (transport, HTTP status, API error, another
/// type).
fn api_results(
    prom_url: &str,
    endpoint: &str,
    params: &[(&str, &str)],
    result_type: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let url = reqwest::Url::parse_with_params(&format!("{prom_url}/api/v1/{endpoint}"), params)
        .map_err(|e| e.to_string())?;
    let (status, body) = send(http().client.get(url))?;
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if json["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    if json["data"]["resultType"] != result_type {
        return Err(format!("not a {result_type}: {body}"));
    }
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The labels of one result of a query's answer.
fn labels_of(result: &serde_json::Value) -> BTreeMap<String, String> {
    result["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The samples as `label value -> sample value`, keyed by one label (e.g. `pipeline`).
pub fn by_label(samples: &[Sample], label: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|(labels, v)| (labels.get(label).cloned().unwrap_or_default(), *v))
        .collect()
}

/// Reads the address a child process announces as its first stdout line
/// (`PREFIX ADDR`), then keeps draining its stdout so a later line never blocks it on a
/// full pipe. Kills the child and panics with the tail of `log` when it exits or stays
/// silent.
fn listening_addr(child: &mut Child, what: &str, prefix: &str, log: &Path) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(LOADGEN_START_DEADLINE) {
        Ok(Some(Ok(line))) => line,
        first => {
            let _ = child.kill();
            let status = child.wait().expect("reap the child");
            panic!(
                "{what} ({status}) printed no address within {LOADGEN_START_DEADLINE:?} ({first:?}); log:\n{}",
                tail(log, 30)
            );
        }
    };
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line from {what}: {line:?}"))
        .to_string()
}

/// Sends `signal` to our own `child` and waits, up to `deadline`, for it to exit.
fn signal_and_wait(
    child: &mut Child,
    signal: libc::c_int,
    what: &str,
    deadline: Duration,
) -> ExitStatus {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {what}");
    wait_until(&format!("{what} to exit"), deadline, || {
        match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Asserts that the journal segment in `dir` replays with zero divergences and at least
/// one switch.
pub fn assert_journal_replays(dir: &Path) {
    let journal = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("a journal segment");
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .arg("replay")
        .arg(&journal)
        .output()
        .expect("phoenix replay runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("replayed with 0 divergences"), "{text}");
    assert!(!text.contains("(0 switches reproduced)"), "{text}");
}

/// Any request: method, URL, extra headers and an optional body; status and body.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = http().client.request(method, url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    send(r)
}

/// A running `phoenix run`, killed (and reaped) on drop.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its stderr (the log).
    log: PathBuf,
}

impl Daemon {
    /// Starts `phoenix run --config CONFIG --listen 127.0.0.1:0` and reads the bound
    /// address from its first line of stdout; the log goes to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let stderr = File::create(log).expect("create the daemon log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start phoenix run");
        let addr = listening_addr(&mut child, "phoenix run", "phoenix listening on ", log);
        Daemon {
            child,
            url: format!("http://{addr}"),
            log: log.to_path_buf(),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits (bounded) for the exit; its status.
    pub fn signal_and_wait(&mut self, signal: libc::c_int) -> ExitStatus {
        signal_and_wait(
            &mut self.child,
            signal,
            "phoenix run",
            Duration::from_secs(30),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first line of a Prometheus exposition `body` starting with `prefix`
/// (a metric name with its labels, as exposed).
pub fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The default policy on a 2 s tick, reading loadgen's gauges: `input` is the input
/// query (normally `sum by (pipeline) (loadgen_input_series)`), the output is loadgen's
/// output gauge.
pub fn loadgen_policy(input: &str) -> String {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.yaml"
    ))
    .expect("read policies/default.yaml");
    let text = base
        .replace("tick: 15s", "tick: 2s")
        .replace("max_sample_age: 1m", "max_sample_age: 10s")
        .replace(
            "sum by (pipeline) (rate(otelcol_processor_incoming_items{otel_signal=\"metrics\", processor=\"filter/phoenix\"}[1m])) * 60",
            input,
        )
        .replace(
            "sum by (pipeline) (rate(otelcol_processor_outgoing_items{otel_signal=\"metrics\", processor=\"filter/phoenix\"}[1m])) * 60",
            "sum by (pipeline) (loadgen_output_series)",
        );
    assert!(
        text.contains(input) && text.contains("loadgen_output_series"),
        "policies/default.yaml no longer has the queries these tests replace"
    );
    text
}

/// The default policy on `input` and `output` with short durations, so escalation, dwell
/// and relaxation fit in a test (or a benchmark's few minutes) and the anomaly detectors
/// off.
pub fn fast_policy(input: &str, output: &str) -> String {
    let text = loadgen_policy(input)
        .replace("sum by (pipeline) (loadgen_output_series)", output)
        .replace("    escalate: 15s\n", "    escalate: 2s\n")
        .replace("    relax: 5m\n", "    relax: 6s\n")
        .replace("relax_window: 5m\n", "relax_window: 6s\n")
        .replace("transient_confirm: 45s", "transient_confirm: 2s")
        .replace("settle: 30s", "settle: 2s")
        .replace(
            "  oscillation:\n    window: 2m\n    cooldown: 16m",
            "  oscillation:\n    window: 3s\n    cooldown: 2s",
        )
        .replace("lockout: 10m", "lockout: 4s")
        .replace(
            "  enabled: true\n  # zscore",
            "  enabled: false\n  # zscore",
        );
    for needle in [
        "    escalate: 2s\n",
        "    relax: 6s\n",
        "relax_window: 6s\n",
        "lockout: 4s",
        "cooldown: 2s",
        "enabled: false",
        output,
    ] {
        assert!(
            text.contains(needle),
            "policies/default.yaml changed: {needle}"
        );
    }
    text
}

/// The input query of [`loadgen_policy`] in the normal case.
pub const LOADGEN_INPUT: &str = "sum by (pipeline) (loadgen_input_series)";

/// Writes `dir/policy.yaml` ([`loadgen_policy`] on [`LOADGEN_INPUT`]) and
/// `dir/phoenix.yaml`: Prometheus at `prom`, a 2 s interval, `budget` for every
/// pipeline, state in `dir/state`, one `file` collector `edge` writing `control`
/// (no coalescing, no rate bound), and `extra` YAML appended (top-level sections such as
/// `http:` or `supervision:`). Returns the config's path.
pub fn daemon_config(dir: &Path, prom: &str, control: &Path, budget: f64, extra: &str) -> PathBuf {
    std::fs::write(dir.join("policy.yaml"), loadgen_policy(LOADGEN_INPUT))
        .expect("write the policy");
    daemon_config_with(dir, prom, control, budget, "2s", extra)
}

/// [`daemon_config`] with the sampling `interval` given and `dir/policy.yaml` left as
/// the caller wrote it.
pub fn daemon_config_with(
    dir: &Path,
    prom: &str,
    control: &Path,
    budget: f64,
    interval: &str,
    extra: &str,
) -> PathBuf {
    let policy = dir.join("policy.yaml");
    let text = format!(
        "prometheus:\n  url: {prom}\n  timeout: 2s\nsampling:\n  interval: {interval}\npolicy: {}\npipelines:\n  default_budget: {budget}\nstate_dir: {}\ncollectors:\n  - name: edge\n    backend: file\n    pipelines: [\"*\"]\n    file:\n      path: {}\n    coalesce: 0s\n    min_reload_interval: 0s\n{extra}",
        policy.display(),
        dir.join("state").display(),
        control.display()
    );
    let p = dir.join("phoenix.yaml");
    std::fs::write(&p, text).expect("write the daemon config");
    p
}

/// Loadgen serving pipeline `checkout` at `level` and obeying `control`, and a
/// Prometheus scraping it every second, once Prometheus has its first sample.
pub fn loadgen_and_prometheus(level: u64, control: &Path) -> (Loadgen, Prometheus) {
    let loadgen = Loadgen::start(&[
        "--pipeline",
        "checkout",
        "--level",
        &level.to_string(),
        "--control-file",
        control.to_str().expect("a UTF-8 path"),
    ]);
    let prom = Prometheus::start(&[("loadgen", &loadgen.addr)]);
    prom.wait_for("Prometheus to scrape loadgen", "loadgen_input_series");
    (loadgen, prom)
}

/// One series of a range query: its labels and `(unix seconds, value)` points.
pub type Series = (BTreeMap<String, String>, Vec<(f64, f64)>);

/// Runs a range query from `start` to `end` (unix seconds) every `step_secs` against
/// Prometheus at `prom_url`; the series, or what went wrong.
pub fn query_range(
    prom_url: &str,
    promql: &str,
    start: f64,
    end: f64,
    step_secs: f64,
) -> Result<Vec<Series>, String> {
    let (start, end, step) = (
        format!("{start:.3}"),
        format!("{end:.3}"),
        format!("{step_secs}"),
    );
    let params = [
        ("query", promql),
        ("start", &start),
        ("end", &end),
        ("step", &step),
    ];
    let results = api_results(prom_url, "query_range", &params, "matrix")
        .map_err(|e| format!("{promql}: {e}"))?;
    results
        .iter()
        .map(|r| {
            let labels = labels_of(r);
            let points = r["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let t = p[0].as_f64().ok_or_else(|| format!("no time in {p}"))?;
                    let v = p[1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .ok_or_else(|| format!("no value in {p}"))?;
                    Ok((t, v))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((labels, points))
        })
        .collect()
}

/// The `promtool` binary on PATH; a missing one fails the test (it comes with Debian's
/// prometheus package, which .ci/run installs).
pub fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`promtool` is not on PATH: these tests need it (apt-get install -y prometheus)")
        })
}

/// The default policy's aggressive profile with a drop regex that Rust's (and Phoenix's
/// policy) regex syntax accepts but Prometheus 2.x's Go RE2 refuses (`(?<name>…)` named
/// groups): with `promtool: off`, Prometheus refuses that profile at reload, a real
/// rollback.
pub fn unloadable_aggressive(text: String) -> String {
    let bad = text.replace(
        "drop_metrics: ['.+_debug_.+', 'go_.+', 'process_.+']",
        "drop_metrics: ['(?<debug>.+_debug_.+)', 'go_.+', 'process_.+']",
    );
    assert!(bad.contains("(?<debug>"), "policies/default.yaml changed");
    bad
}

/// The Grafana dashboard the operations files ship.
pub const DASHBOARD: &str = "configs/grafana/dashboards/phoenix-control.json";
/// The Prometheus rules the operations files ship.
pub const RULES: &str = "configs/prometheus/rules/phoenix.rules.yml";

/// What Grafana's variables expand to, so that a dashboard expression is PromQL.
pub struct GrafanaVars<'a> {
    /// `$pipeline` / `${pipeline}`: a regex (the queries match it with `=~`).
    pub pipeline: &'a str,
    /// `$__rate_interval`.
    pub rate_interval: &'a str,
    /// `$__interval`.
    pub interval: &'a str,
    /// `$__range`.
    pub range: &'a str,
}

/// `expr` with Grafana's variables replaced; panics on any other variable, which the
/// caller would not know how to expand.
pub fn grafana_to_promql(expr: &str, vars: &GrafanaVars) -> String {
    let e = expr
        .replace("$__rate_interval", vars.rate_interval)
        .replace("$__interval", vars.interval)
        .replace("$__range", vars.range)
        .replace("${pipeline}", vars.pipeline)
        .replace("$pipeline", vars.pipeline);
    assert!(!e.contains('$'), "unknown Grafana variable in {expr}");
    e
}

/// Every `expr` string anywhere in `v`, with its JSON path.
pub fn exprs_in(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push((format!("{path}.expr"), s.clone())),
                    _ => exprs_in(x, format!("{path}.{k}"), out),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                exprs_in(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The collector side of a closed loop on Prometheus (`prometheus` backend):
/// `phoenix loadgen --mode series` serving pipeline `checkout`, and a Prometheus that
/// scrapes it every second as the collector, from configs/prometheus/collector.yml,
/// reading the config file the daemon will rewrite.
pub struct CollectorLoop {
    pub loadgen: Loadgen,
    pub prom: Prometheus,
    /// The base config the daemon renders from.
    pub base: PathBuf,
    /// The file Prometheus reads and Phoenix writes (alone in its directory, so a test
    /// can make that directory unwritable).
    pub config: PathBuf,
}

/// How the daemon of a [`CollectorLoop`] runs.
pub struct LoopDaemon<'a> {
    /// Every pipeline's budget.
    pub budget: f64,
    /// The admin token of the override API.
    pub token: &'a str,
    /// The collector's coalescing window.
    pub coalesce: &'a str,
    /// The collector's `promtool:` (`auto` or `off`).
    pub promtool: &'a str,
    /// Bound of each signal query.
    pub query_timeout: &'a str,
    /// Top-level YAML appended to the config.
    pub extra: &'a str,
}

/// The collector's name in the daemon config of a [`CollectorLoop`].
pub const LOOP_COLLECTOR: &str = "prom";

impl CollectorLoop {
    /// Starts loadgen at `level` series and the collector Prometheus, with their files in
    /// `dir`, and waits for Prometheus' first scrape of loadgen.
    pub fn start(dir: &Path, level: u64) -> CollectorLoop {
        let loadgen = Loadgen::start(&[
            "--mode",
            "series",
            "--pipeline",
            "checkout",
            "--level",
            &level.to_string(),
        ]);
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/prometheus/collector.yml"
        ))
        .expect("read configs/prometheus/collector.yml")
        .replace("127.0.0.1:9400", &loadgen.addr)
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 5s", "scrape_timeout: 1s");
        assert!(text.contains(&loadgen.addr) && text.contains("scrape_interval: 1s"));
        let base = dir.join("base.yml");
        std::fs::write(&base, &text).expect("write base.yml");
        let collector_dir = dir.join("collector");
        std::fs::create_dir(&collector_dir).expect("create the collector directory");
        let config = collector_dir.join("prometheus.yml");
        std::fs::write(&config, &text).expect("write the collector config");
        let prom = Prometheus::start_collector(&config);
        prom.wait_for("Prometheus to scrape loadgen", "loadgen_level");
        CollectorLoop {
            loadgen,
            prom,
            base,
            config,
        }
    }

    /// Writes `dir/phoenix.yaml` for a daemon on this loop: the policy at
    /// `dir/policy.yaml` (the caller writes it), state in `dir/state`, a 2 s sampling
    /// interval, one collector [`LOOP_COLLECTOR`] with the `prometheus` backend mapping
    /// `checkout` to loadgen's job. Returns its path.
    pub fn daemon_config(&self, dir: &Path, o: &LoopDaemon) -> PathBuf {
        let text = format!(
            "prometheus:\n  url: {url}\n  timeout: {timeout}\nsampling:\n  interval: 2s\npolicy: {policy}\npipelines:\n  default_budget: {budget}\nstate_dir: {state}\nhttp:\n  listen: 127.0.0.1:0\n  admin_token: {token}\ncollectors:\n  - name: {LOOP_COLLECTOR}\n    backend: prometheus\n    pipelines: [\"*\"]\n    coalesce: {coalesce}\n    min_reload_interval: 0s\n    prometheus:\n      base_config: {base}\n      config_path: {config}\n      jobs: {{ checkout: [loadgen] }}\n      reload: {{ url: {url}/-/reload, retry_for: 60s }}\n      verify: {{ url: {url}, timeout: 10s }}\n      promtool: {promtool}\n{extra}",
            url = self.prom.url,
            timeout = o.query_timeout,
            policy = dir.join("policy.yaml").display(),
            budget = o.budget,
            state = dir.join("state").display(),
            token = o.token,
            coalesce = o.coalesce,
            base = self.base.display(),
            config = self.config.display(),
            promtool = o.promtool,
            extra = o.extra,
        );
        let path = dir.join("phoenix.yaml");
        std::fs::write(&path, text).expect("write the daemon config");
        path
    }
}

/// The profile the daemon at `daemon_url` reports in force for `pipeline` (status API).
pub fn in_force(daemon_url: &str, pipeline: &str) -> Result<String, String> {
    let (_, st) = get(&format!("{daemon_url}/api/v1/status"))?;
    let v: serde_json::Value = serde_json::from_str(&st).map_err(|e| e.to_string())?;
    v["pipelines"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["pipeline"] == pipeline))
        .and_then(|p| p["in_force"].as_str().map(str::to_string))
        .ok_or(st)
}

/// Pins `pipeline` to `profile` for `ttl` through the daemon's authenticated override
/// API; panics unless it answers 200.
pub fn pin(daemon_url: &str, token: &str, pipeline: &str, profile: &str, ttl: &str) {
    let (code, text) = request(
        "POST",
        &format!("{daemon_url}/api/v1/override"),
        &[("Authorization", &format!("Bearer {token}"))],
        Some(
            serde_json::json!({ "pipeline": pipeline, "profile": profile, "ttl": ttl, "reason": "test" })
                .to_string(),
        ),
    )
    .expect("the override API answers");
    assert_eq!(code, 200, "{text}");
}
