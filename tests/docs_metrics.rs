//! `docs/metrics.md` cannot drift from the daemon: every `phoenix_*` family a running demo
//! daemon exposes on `/metrics`, and every entry of the code's own list
//! (`phoenix::daemon::metrics::METRICS`), is documented with its type and labels; and
//! every metric the page documents is a name that appears in `src/` (read at test time).

mod common;

use common::{Daemon, get, wait_until};
use phoenix::daemon::metrics::{Kind, METRICS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// A documented metric: its type and labels as the table row gives them.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

/// The code spans of a table cell.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The metric tables of docs/metrics.md: rows whose first cell is a `phoenix_` name.
fn documented() -> BTreeMap<String, Documented> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let text = std::fs::read_to_string(path).expect("docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `phoenix_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(
            cells.len() >= 4,
            "a metric row needs name, type, labels: {line}"
        );
        let name = spans(cells[0]).remove(0);
        let labels = spans(cells[2]).into_iter().collect();
        let previous = out.insert(
            name.clone(),
            Documented {
                kind: cells[1].to_string(),
                labels,
            },
        );
        assert!(previous.is_none(), "{name} documented twice");
    }
    out
}

/// The type the exposition shows for a kind: the exporter renders histograms as
/// summaries (no buckets configured).
fn exposed_kind(k: Kind) -> &'static str {
    match k {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "summary",
    }
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn every_metric_the_daemon_exports_is_documented_and_every_documented_one_exists() {
    let docs = documented();
    assert!(docs.len() >= METRICS.len(), "{docs:?}");

    // The code's list: each entry documented with its type and labels.
    for m in METRICS {
        let d = docs
            .get(m.name)
            .unwrap_or_else(|| panic!("{} is in METRICS but not in docs/metrics.md", m.name));
        assert_eq!(d.kind, exposed_kind(m.kind), "type of {}", m.name);
        let labels: BTreeSet<String> = m.labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(d.labels, labels, "labels of {}", m.name);
    }

    // Every documented name is in the code (not only in the list: a literal in src/).
    let mut src = String::new();
    sources(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut src,
    );
    for name in docs.keys() {
        assert!(
            src.contains(&format!("\"{name}\"")),
            "docs/metrics.md documents {name}, which no source file under src/ names"
        );
    }

    // A real scrape of the demo daemon once it has switched and applied.
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/configs/demo.yaml"))
        .unwrap()
        .replace("../simulations/", &format!("{root}/simulations/"))
        .replace("../policies/", &format!("{root}/policies/"))
        .replace("demo-out/", &format!("{}/", dir.path().display()));
    let cfg = dir.path().join("demo.yaml");
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(&cfg, &dir.path().join("demo.log"));
    let body = wait_until(
        "a switch and an apply on /metrics",
        Duration::from_secs(60),
        || {
            let (code, body) = get(&format!("{}/metrics", d.url))?;
            (code == 200
                && body.contains("phoenix_decisions_total{")
                && body.contains("phoenix_applies_total{"))
            .then_some(body.clone())
            .ok_or(body)
        },
    );
    let mut exposed: BTreeMap<String, String> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            exposed.insert(name.to_string(), kind.to_string());
        }
    }
    // Sample lines without a TYPE line would be families too.
    for line in body.lines().filter(|l| l.starts_with("phoenix_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| exposed.get(*f).is_some_and(|k| k == "summary"))
            })
            .unwrap_or(name);
        assert!(
            exposed.contains_key(family),
            "{family} has samples but no # TYPE line"
        );
    }
    let phoenix: Vec<(&String, &String)> = exposed
        .iter()
        .filter(|(n, _)| n.starts_with("phoenix_"))
        .collect();
    // The demo exercises most of the list (no rendered collector, no watch signal).
    assert!(
        phoenix.len() >= 25,
        "only {} families:\n{body}",
        phoenix.len()
    );
    for (name, kind) in phoenix {
        let doc = docs.get(name).unwrap_or_else(|| {
            panic!("/metrics exposes {name}, which docs/metrics.md does not document")
        });
        assert_eq!(&doc.kind, kind, "docs/metrics.md gives {name} another type");
    }
}
