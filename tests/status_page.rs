//! The status page at `/` on the real demo daemon: the server-rendered HTML names every
//! pipeline and its profile, and Debian's headless Chromium runs the page's script, which
//! polls the status API and redraws the cards and their SVG charts from it (checked in
//! the DOM Chromium dumps). A screenshot of the page is saved under the test's target
//! temporary folder. Chromium is required: CI installs it (`.ci/run`); a missing browser
//! fails the test rather than skipping it, so a broken setup cannot pass silently.

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
