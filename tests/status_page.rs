//! The status page at `/` on the real demo daemon: the server-rendered HTML names every
//! pipeline and its profile, and Debian's headless Chromium runs the page's script, which
//! polls the status API and redraws the cards and their SVG charts from it (checked in
//! the DOM Chromium dumps). A screenshot of the page is saved under the test's target
//! temporary folder. A second test keeps one page open over the DevTools protocol while
//! the replayed leak makes the daemon switch, and checks that the page, never reloaded,
//! shows the new profile. Chromium is required: CI installs it (`.ci/run`); a missing
//! browser fails the tests rather than skipping them, so a broken setup cannot pass
//! silently.

mod common;

use common::{Daemon, get, get_with_type, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The shipped demo config with its paths made absolute and its output in `dir`.
fn demo_config(dir: &Path) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/configs/demo.yaml"))
        .unwrap()
        .replace("../simulations/", &format!("{root}/simulations/"))
        .replace("../policies/", &format!("{root}/policies/"))
        .replace("demo-out/", &format!("{}/", dir.display()));
    let cfg = dir.join("demo.yaml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Runs headless Chromium on `url` with `args` (after the common ones) and returns its
/// stdout; panics with its stderr when it fails.
fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: this test needs Debian's `chromium` package. CI installs it in \
         .ci/run with `apt-get install -y --no-install-recommends chromium`; do the same here"
    );
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        // Its own profile folder, so parallel runs never share a lock.
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The text of the first element whose opening tag contains `marker`, inside `within`.
fn text_after<'a>(within: &'a str, marker: &str) -> Option<&'a str> {
    let start = within.find(marker)?;
    let open_end = within[start..].find('>')? + start + 1;
    let close = within[open_end..].find('<')? + open_end;
    Some(&within[open_end..close])
}

/// The markup of the card of `pipeline` in a page or DOM dump.
fn card<'a>(page: &'a str, pipeline: &str) -> &'a str {
    let start = page
        .find(&format!("data-pipeline=\"{pipeline}\""))
        .unwrap_or_else(|| panic!("no card for {pipeline}:\n{page}"));
    let end = page[start..]
        .find("</article>")
        .map_or(page.len(), |e| e + start);
    &page[start..end]
}

#[test]
fn the_status_page_shows_every_pipeline_and_the_script_redraws_it_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(dir.path());
    let d = Daemon::start(&cfg, &dir.path().join("demo.log"));
    let profiles = ["conservative", "balanced", "aggressive"];

    // Server-rendered: the demo's only pipeline, its collector and the profile in force.
    let page = wait_until("the demo pipeline on /", Duration::from_secs(20), || {
        let (code, ctype, body) = get_with_type(&format!("{}/", d.url))?;
        (code == 200 && body.contains("data-pipeline=\"demo\""))
            .then_some((ctype, body.clone()))
            .ok_or(format!("HTTP {code}: {body}"))
    });
    let (ctype, page) = page;
    assert_eq!(ctype, "text/html; charset=utf-8");
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(
        page.contains("<span id=\"policy\">default</span>"),
        "{page}"
    );
    let c = card(&page, "demo");
    assert!(c.contains("on collector demo"), "{c}");
    let in_force = text_after(c, "class=\"in-force\"").unwrap();
    assert!(profiles.contains(&in_force), "in force {in_force:?} in {c}");
    assert!(c.contains("budget 100000"), "{c}");
    // Read-only: no form, no button, and no token anywhere.
    for forbidden in ["<form", "<button", "override"] {
        assert!(!page.contains(forbidden), "{forbidden} in {page}");
    }

    // Wait for the leak's escalation and an applied profile, so the API has a switch
    // with its sentence and a chart with points.
    let status = wait_until(
        "an escalation on the status API",
        Duration::from_secs(60),
        || {
            let (_, body) = get(&format!("{}/api/v1/status", d.url))?;
            let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let p = &json["pipelines"][0];
            (p["last_decision"]["sentence"]
                .as_str()
                .is_some_and(|s| s.contains("escalated"))
                && p["in_force"] == p["decided"]
                && p["history"].as_array().is_some_and(|h| h.len() >= 2))
            .then_some(json.clone())
            .ok_or(body)
        },
    );
    assert_ne!(status["pipelines"][0]["in_force"], "conservative");

    // Chromium runs the script: virtual time lets several polls happen at once.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/", d.url);
    let dom = chromium(
        profile.path(),
        &["--virtual-time-budget=5000", "--dump-dom"],
        &url,
    );
    assert!(
        dom.contains("id=\"pipelines\" data-rendered-by=\"script\""),
        "the script did not redraw the cards:\n{dom}"
    );
    let polls: u32 = text_after(&dom, "id=\"updated\"")
        .and_then(|_| {
            let at = dom.find("data-polls=\"")? + "data-polls=\"".len();
            dom[at..].split('"').next()?.parse().ok()
        })
        .unwrap_or(0);
    assert!(polls >= 1, "no poll completed:\n{dom}");
    let updated = text_after(&dom, "id=\"updated\"").unwrap();
    assert!(updated.starts_with("updated "), "{updated}");
    let c = card(&dom, "demo");
    let shown = text_after(c, "class=\"in-force\"").unwrap();
    assert!(
        profiles[1..].contains(&shown),
        "after the escalation the page shows {shown:?}:\n{c}"
    );
    // The chart drawn by the script, with its input and output lines.
    assert!(
        c.contains("data-rendered-by=\"script\""),
        "no script-drawn chart:\n{c}"
    );
    for line in [
        "class=\"input\" d=\"M",
        "class=\"output\" d=\"M",
        "class=\"budget\" d=\"M0,",
    ] {
        assert!(c.contains(line), "{line} missing in the chart:\n{c}");
    }
    // The last decisions with their sentences.
    assert!(c.contains("<span class=\"kind\">switched</span>"), "{c}");
    assert!(c.contains("escalated"), "{c}");

    // A screenshot for the humans reading the test run.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        profile.path(),
        &[
            "--virtual-time-budget=5000",
            "--window-size=1280,900",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    eprintln!("status page screenshot: {}", shot.display());
}

/// A headless Chromium driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: it reads commands on fd 3 and writes on fd 4, each message
/// NUL-terminated), so a test can keep one page open and read its DOM as time passes.
struct Browser {
    child: std::process::Child,
    to: std::fs::File,
    from: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        use std::io::{BufRead as _, BufReader};
        use std::os::fd::FromRawFd as _;
        use std::os::unix::process::CommandExt as _;
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: this test needs Debian's `chromium` package (.ci/run \
             installs it with `apt-get install -y --no-install-recommends chromium`)"
        );
        let profile = tempfile::tempdir().unwrap();
        let (mut down, mut up) = ([0; 2], [0; 2]);
        // SAFETY: pipe2 fills the two arrays with new descriptors, close-on-exec so no
        // other child inherits them.
        unsafe {
            assert_eq!(libc::pipe2(down.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::pipe2(up.as_mut_ptr(), libc::O_CLOEXEC), 0);
        }
        let (child_in, child_out) = (down[0], up[1]);
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec: move the pipe ends
        // above 10 first (so placing one cannot clobber the other), then onto 3 and 4
        // (dup2 clears close-on-exec on the copies).
        unsafe {
            cmd.pre_exec(move || {
                let i = libc::fcntl(child_in, libc::F_DUPFD, 10);
                let o = libc::fcntl(child_out, libc::F_DUPFD, 10);
                if i < 0 || o < 0 || libc::dup2(i, 3) < 0 || libc::dup2(o, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        // SAFETY: the descriptors are ours; each is wrapped once and the child's ends
        // are closed here (the child has its copies).
        let (to, from) = unsafe {
            libc::close(child_in);
            libc::close(child_out);
            (
                std::fs::File::from_raw_fd(down[1]),
                std::fs::File::from_raw_fd(up[0]),
            )
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for msg in BufReader::new(from).split(0).map_while(Result::ok) {
                if let Ok(v) = serde_json::from_slice(&msg)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            session: None,
            _profile: profile,
        }
    }

    /// Sends a command (to the attached page, once there is one) and waits for its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use std::io::Write as _;
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = serde_json::json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let v = self
                .from
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("chromium did not answer {method}: {e}"));
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page and attaches to it.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", serde_json::json!({ "url": url }));
        let attached = self.call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_open_page_follows_a_switch_without_reloading() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config(dir.path());
    let d = Daemon::start(&cfg, &dir.path().join("demo.log"));
    let in_force_api = || -> Result<String, String> {
        let (_, body) = get(&format!("{}/api/v1/status", d.url))?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        json["pipelines"][0]["in_force"]
            .as_str()
            .map(str::to_string)
            .ok_or(body)
    };
    wait_until("the demo pipeline", Duration::from_secs(20), in_force_api);

    let mut browser = Browser::start();
    browser.open(&format!("{}/", d.url));
    let shown = "(() => { const e = document.querySelector('[data-pipeline=\"demo\"] .in-force'); \
                 const m = document.getElementById('pipelines'); \
                 return e && m.getAttribute('data-rendered-by') === 'script' ? e.textContent : null; })()";
    // What the page shows once its script has polled.
    let first = wait_until("the script's first render", Duration::from_secs(20), || {
        browser
            .eval(shown)
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "not rendered by the script yet".to_string())
    });
    // The replayed leak makes the daemon switch (escalate, later relax) within the
    // minute; wait for the API to report a profile other than the one the page showed.
    let next = wait_until(
        "a switch after the page loaded",
        Duration::from_secs(90),
        || {
            let now = in_force_api()?;
            (now != first).then_some(now.clone()).ok_or(now)
        },
    );
    // The same page, never reloaded, catches up within a few polls (1 s apart here).
    let polls_before = browser.eval("Number(document.getElementById('updated').dataset.polls)");
    wait_until(
        "the open page to show the switch",
        Duration::from_secs(20),
        || {
            let now = browser.eval(shown);
            let api = in_force_api()?;
            // The daemon may move on again meanwhile: the page must follow the API, and not
            // still show the profile it first showed.
            (now.as_str() == Some(api.as_str()) && now.as_str() != Some(first.as_str()))
                .then_some(())
                .ok_or(format!(
                    "page {now}, API {api} (first {first}, then {next})"
                ))
        },
    );
    eprintln!("the open page showed {first}, then followed the daemon's switch to {next}");
    let polls_after = browser.eval("Number(document.getElementById('updated').dataset.polls)");
    assert!(
        polls_after.as_u64() > polls_before.as_u64(),
        "{polls_before} → {polls_after}"
    );
    let sentences = browser.eval(
        "Array.from(document.querySelectorAll('[data-pipeline=\"demo\"] .sentence')).map(e => e.textContent).join('\\n')",
    );
    assert!(
        sentences.as_str().is_some_and(|s| s.contains("→")),
        "no switch sentence on the page: {sentences}"
    );
}
