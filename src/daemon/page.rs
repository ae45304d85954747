//! The read-only status page at `/`: server-rendered HTML of the status board (so the
//! first paint needs no JavaScript), plus a little plain JavaScript that polls the status
//! and decisions APIs and re-renders the same markup. No build chain, no external asset:
//! the CSS and JS are compiled into the binary from `src/daemon/page/`.
//!
//! The page shows, per pipeline, the profile in force and since when, the profile
//! decided, the pin, the latest explanation, the active guards with their deadlines, the
//! last decisions with their sentences and an inline SVG chart of input and output
//! against the budget over the last hour. It has no controls: the override stays an
//! authenticated API call.

use super::status::{Board, HISTORY_SPAN, LogEntry, PipelineStatus};
use crate::core::Timestamp;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Decision-log entries shown per pipeline (the page and its poll ask for the same).
pub const DECISIONS_PER_PIPELINE: usize = 5;

/// The chart's size in SVG user units (the CSS scales it to the card).
const CHART_W: f64 = 360.0;
/// See [`CHART_W`].
const CHART_H: f64 = 100.0;

const CSS: &str = include_str!("page/page.css");
const JS: &str = include_str!("page/page.js");

/// How often the page polls: the sampling interval, kept within [1 s, 60 s] because a
/// replay samples many times a second (a browser need not) and an hourly tick would
/// leave overrides and applies unseen for an hour.
pub fn poll_interval(sampling: Duration) -> Duration {
    sampling.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page for the board as it is now; the script polls every `poll`.
pub fn render(board: &Board, poll: Duration) -> String {
    let decisions = group_by_pipeline(board.recent_per_pipeline(DECISIONS_PER_PIPELINE));
    let mut h = String::with_capacity(4096 + 2048 * board.pipelines.len());
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Phoenix status</title>\n<style>\n{CSS}</style>\n</head>\n\
         <body data-poll-ms=\"{}\">\n",
        poll.as_millis()
    );
    let (policy, sha) = &board.policy;
    let _ = write!(
        h,
        "<header>\n<h1>Phoenix</h1>\n<p>Policy <span id=\"policy\">{}</span> \
         <code id=\"policy-sha\" title=\"SHA-256 of the policy file\">{}</code> · \
         <span id=\"ready\">{}</span> · <span id=\"updated\" data-polls=\"0\">\
         rendered by the server; polling the status API every {}</span></p>\n</header>\n",
        escape(policy),
        escape(sha.get(..12).unwrap_or(sha)),
        if board.ready() { "ready" } else { "not ready" },
        crate::core::time::fmt_duration(poll),
    );
    let _ = writeln!(
        h,
        "<div id=\"safe-hold\" class=\"banner\"{}>Safe hold: every pipeline keeps its \
         profile. <span id=\"safe-hold-reason\">{}</span></div>",
        if board.safe_hold { "" } else { " hidden" },
        escape(board.safe_hold_reason.as_deref().unwrap_or_default()),
    );
    h.push_str("<section id=\"sources\">\n");
    render_sources(&mut h, &board.sources);
    h.push_str("</section>\n<main id=\"pipelines\" data-rendered-by=\"server\">\n");
    if board.pipelines.is_empty() {
        h.push_str("<p class=\"none\">No pipeline yet: waiting for the first sample.</p>\n");
    }
    for st in board.pipelines.values() {
        let st = &*st.lock();
        render_pipeline(
            &mut h,
            st,
            decisions
                .get(st.pipeline.as_str())
                .map_or(&[], Vec::as_slice),
        );
    }
    // The script is ours (no user data in it), so inlining it cannot close the tag early.
    let _ = write!(h, "</main>\n<script>\n{JS}</script>\n</body>\n</html>\n");
    h
}

fn group_by_pipeline(entries: Vec<LogEntry>) -> BTreeMap<String, Vec<LogEntry>> {
    let mut out: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
    for e in entries {
        out.entry(e.pipeline.clone()).or_default().push(e);
    }
    out
}

fn render_sources(h: &mut String, sources: &BTreeMap<String, String>) {
    if sources.is_empty() {
        h.push_str("<p class=\"none\">No query has run yet.</p>\n");
        return;
    }
    h.push_str("<table>\n<tr><th>Query</th><th>Last result</th></tr>\n");
    for (query, state) in sources {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"state-{}\">{}</td></tr>",
            escape(query),
            escape(state),
            escape(state)
        );
    }
    h.push_str("</table>\n");
}

fn series(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |v| format!("{v:.0}"))
}

fn render_pipeline(h: &mut String, st: &PipelineStatus, decisions: &[LogEntry]) {
    let name = escape(&st.pipeline);
    let _ = write!(
        h,
        "<article class=\"pipeline\" data-pipeline=\"{name}\">\n<h2>{name} \
         <span class=\"collector\">on collector {}</span></h2>\n<dl>\n",
        escape(&st.collector)
    );
    let _ = writeln!(
        h,
        "<dt>In force</dt><dd class=\"in-force\">{}</dd>",
        escape(&st.in_force)
    );
    let _ = writeln!(
        h,
        "<dt>Since</dt><dd class=\"since\">{}</dd>",
        st.in_force_since
            .map_or_else(|| "unknown".to_string(), time)
    );
    if st.decided != st.in_force {
        let _ = writeln!(
            h,
            "<dt>Decided</dt><dd class=\"decided pending\">{} (being applied)</dd>",
            escape(&st.decided)
        );
    }
    if let Some((profile, until)) = &st.pinned {
        let _ = writeln!(
            h,
            "<dt>Pinned</dt><dd class=\"pinned\">{} until {}</dd>",
            escape(profile),
            time(*until)
        );
    }
    let explanation = st.explanation.text();
    let _ = writeln!(
        h,
        "<dt>Now</dt><dd class=\"explanation\">{}</dd>",
        if explanation.is_empty() {
            "no step yet".to_string()
        } else {
            escape(&explanation)
        }
    );
    let _ = writeln!(
        h,
        "<dt>Series</dt><dd class=\"series\">input {}, output {}, budget {:.0}</dd>",
        series(st.input_series),
        series(st.output_series),
        st.budget_series
    );
    if st.vanished {
        h.push_str("<dt>Query</dt><dd class=\"vanished\">missing from the latest results</dd>\n");
    }
    h.push_str("</dl>\n");
    chart(h, st);
    h.push_str("<h3>Active guards</h3>\n");
    if st.active_guards.is_empty() {
        h.push_str("<p class=\"none guards\">none</p>\n");
    } else {
        h.push_str("<ul class=\"guards\">\n");
        for g in &st.active_guards {
            let _ = writeln!(
                h,
                "<li><span class=\"guard\">{}</span> until {}</li>",
                escape(g.guard),
                time(g.until)
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h3>Last decisions</h3>\n");
    if decisions.is_empty() {
        h.push_str("<p class=\"none decisions\">none yet</p>\n");
    } else {
        h.push_str("<ol class=\"decisions\">\n");
        for e in decisions {
            let _ = writeln!(
                h,
                "<li>{} <span class=\"kind\">{}</span> <span class=\"sentence\">{}</span></li>",
                time(e.at),
                escape(e.kind),
                escape(&e.sentence)
            );
        }
        h.push_str("</ol>\n");
    }
    h.push_str("</article>\n");
}

/// A `<time>` element; the text is the same UTC form the script writes
/// (`Date.toISOString`).
fn time(t: Timestamp) -> String {
    let iso = t.to_string();
    format!("<time datetime=\"{iso}\">{iso}</time>")
}

/// The compact count the chart's axis label shows (`140k`, `1.2M`); the script's
/// `compact` is the same function.
fn compact(v: f64) -> String {
    let (div, unit) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = format!("{:.1}", v / div);
    format!("{}{unit}", x.strip_suffix(".0").unwrap_or(&x))
}

/// The chart: input and output over the hour before the newest point, against the
/// budget, on a scale from zero to a tenth above the largest of the three.
fn chart(h: &mut String, st: &PipelineStatus) {
    let _ = write!(
        h,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"input and output series against the budget, last hour\">"
    );
    let Some(&(end, _, _)) = st.history.back() else {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no samples in the last hour</text></svg>",
            CHART_W / 2.0,
            CHART_H / 2.0
        );
        return;
    };
    let span = HISTORY_SPAN.as_millis() as f64;
    let top = st.history.iter().fold(st.budget_series, |m, &(_, i, o)| {
        m.max(i.into()).max(o.into())
    }) * 1.1;
    let top = if top > 0.0 { top } else { 1.0 };
    let x = |t: Timestamp| CHART_W - (end.as_millis() - t.as_millis()) as f64 / span * CHART_W;
    let y = |v: f64| CHART_H - v / top * CHART_H;
    let path = |pick: fn(&(Timestamp, f32, f32)) -> f32| {
        let mut d = String::new();
        for (k, p) in st.history.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if k == 0 { "M" } else { " L" },
                x(p.0),
                y(pick(p).into())
            );
        }
        d
    };
    let _ = writeln!(
        h,
        "<path class=\"budget\" d=\"M0,{by:.1} H{CHART_W}\"/>\
         <path class=\"input\" d=\"{}\"/><path class=\"output\" d=\"{}\"/>\
         <text x=\"2\" y=\"9\">{}</text><text x=\"2\" y=\"{}\">-1h</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>",
        path(|p| p.1),
        path(|p| p.2),
        compact(top),
        CHART_H - 2.0,
        CHART_W - 2.0,
        CHART_H - 2.0,
        time_text(end),
        by = y(st.budget_series),
    );
    h.push_str(
        "<p class=\"legend\"><span class=\"input\">— input</span>\
         <span class=\"output\">— output</span><span class=\"budget\">- - budget</span></p>\n",
    );
}

/// `HH:MM` (UTC) of the chart's newest point.
fn time_text(t: Timestamp) -> String {
    let s = t.to_string();
    s.get(11..16).unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::{GuardStatus, StatusCell};

    fn board_with(st: PipelineStatus) -> Board {
        let mut b = Board {
            policy: ("default".into(), "0123456789abcdef0123".into()),
            sampled: true,
            ..Board::default()
        };
        b.pipelines.insert(st.pipeline.clone(), StatusCell::new(st));
        b
    }

    fn article<'a>(page: &'a str, pipeline: &str) -> &'a str {
        let start = page
            .find(&format!("data-pipeline=\"{pipeline}\""))
            .unwrap_or_else(|| panic!("no article for {pipeline} in {page}"));
        let end = page[start..].find("</article>").unwrap() + start;
        &page[start..end]
    }

    #[test]
    fn user_controlled_text_is_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        let mut st = PipelineStatus {
            pipeline: evil.into(),
            collector: evil.into(),
            in_force: evil.into(),
            decided: evil.into(),
            explanation: evil.into(),
            ..PipelineStatus::default()
        };
        st.active_guards.push(GuardStatus {
            guard: "lockout",
            until: Timestamp::from_secs(1_700_000_000),
        });
        let mut b = board_with(st);
        b.policy.0 = evil.into();
        b.sources.insert(evil.into(), "ok".into());
        b.safe_hold = true;
        b.safe_hold_reason = Some(evil.into());
        b.log(LogEntry {
            at: Timestamp::from_secs(1_700_000_000),
            pipeline: evil.into(),
            kind: "switched",
            sentence: evil.into(),
        });
        let page = render(&b, Duration::from_secs(15));
        // The only <script> is ours, once; the payload appears escaped only.
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
        assert!(!page.contains("alert('x')"), "{page}");
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;";
        // policy, safe hold reason, source, pipeline (attribute and heading), collector,
        // in force, explanation, sentence.
        assert!(page.matches(escaped).count() >= 9, "{page}");
        assert!(!page.contains("id=\"safe-hold\" class=\"banner\" hidden"));
    }

    #[test]
    fn a_pipeline_with_no_data_renders_placeholders() {
        let st = PipelineStatus {
            pipeline: "checkout".into(),
            collector: "edge".into(),
            in_force: "conservative".into(),
            decided: "conservative".into(),
            budget_series: 1000.0,
            ..PipelineStatus::default()
        };
        let page = render(&board_with(st), Duration::from_secs(15));
        let a = article(&page, "checkout");
        assert!(
            a.contains("<dd class=\"in-force\">conservative</dd>"),
            "{a}"
        );
        assert!(a.contains("<dd class=\"since\">unknown</dd>"), "{a}");
        assert!(
            a.contains("input no data, output no data, budget 1000"),
            "{a}"
        );
        assert!(a.contains("no samples in the last hour"), "{a}");
        assert!(!a.contains("<path"), "{a}");
        assert!(a.contains("<p class=\"none guards\">none</p>"), "{a}");
        assert!(
            a.contains("<p class=\"none decisions\">none yet</p>"),
            "{a}"
        );
        assert!(a.contains("no step yet"), "{a}");
        // Not in safe hold: the banner is there for the script, hidden.
        assert!(page.contains("id=\"safe-hold\" class=\"banner\" hidden"));
        assert!(page.contains("data-poll-ms=\"15000\""));
    }

    #[test]
    fn an_empty_board_says_it_waits() {
        let page = render(&Board::default(), Duration::from_secs(2));
        assert!(page.contains("No pipeline yet"), "{page}");
        assert!(page.contains("not ready"), "{page}");
        assert!(page.contains("No query has run yet."), "{page}");
    }

    #[test]
    fn a_held_pipeline_shows_why_its_pin_guards_and_chart() {
        let t0 = Timestamp::from_secs(1_700_000_000);
        let mut st = PipelineStatus {
            pipeline: "checkout".into(),
            collector: "edge".into(),
            in_force: "balanced".into(),
            decided: "aggressive".into(),
            in_force_since: Some(t0),
            explanation: "Holding balanced: the input query returned no series since 2023-11-14T22:13:20.000Z.".into(),
            budget_series: 1000.0,
            pinned: Some(("balanced".into(), t0.plus(Duration::from_secs(1800)))),
            ..PipelineStatus::default()
        };
        for k in 0..30 {
            st.record(t0.plus(Duration::from_secs(60 * k)), 900.0, 450.0);
        }
        st.input_series = Some(900.0);
        st.output_series = Some(450.0);
        st.active_guards.push(GuardStatus {
            guard: "min_dwell_relax",
            until: t0.plus(Duration::from_secs(600)),
        });
        let mut b = board_with(st);
        b.sources.insert("input".into(), "empty".into());
        b.log(LogEntry {
            at: t0.plus(Duration::from_secs(1700)),
            pipeline: "checkout".into(),
            kind: "held",
            sentence: "Holding balanced: the input query returned no series.".into(),
        });
        let page = render(&b, Duration::from_secs(15));
        let a = article(&page, "checkout");
        assert!(a.contains("Holding balanced: the input query"), "{a}");
        assert!(
            a.contains("<dd class=\"decided pending\">aggressive (being applied)</dd>"),
            "{a}"
        );
        assert!(
            a.contains(
                "<dd class=\"pinned\">balanced until <time datetime=\"2023-11-14T22:43:20.000Z\">"
            ),
            "{a}"
        );
        assert!(
            a.contains("<span class=\"guard\">min_dwell_relax</span> until <time datetime=\"2023-11-14T22:23:20.000Z\">"),
            "{a}"
        );
        assert!(a.contains("<span class=\"kind\">held</span>"), "{a}");
        assert!(a.contains("input 900, output 450, budget 1000"), "{a}");
        // The chart: budget at 1000 of a 1100 scale; the newest point at the right edge.
        assert!(
            a.contains("<path class=\"budget\" d=\"M0,9.1 H360\"/>"),
            "{a}"
        );
        assert!(a.contains("<path class=\"input\" d=\"M"), "{a}");
        assert!(a.contains(" L360.0,18.2\"/>"), "{a}");
        assert!(a.contains(">1.1k</text>"), "{a}");
        assert!(
            page.contains("<td class=\"state-empty\">empty</td>"),
            "{page}"
        );
    }

    #[test]
    fn the_poll_interval_is_bounded() {
        assert_eq!(
            poll_interval(Duration::from_millis(62)),
            Duration::from_secs(1)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(15)),
            Duration::from_secs(15)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_inlined_assets_cannot_close_their_tags_or_load_anything() {
        assert!(!JS.to_ascii_lowercase().contains("</script"));
        assert!(!CSS.to_ascii_lowercase().contains("</style"));
        // No CDN or other origin: the page must work on an air-gapped host.
        for asset in [JS, CSS] {
            assert!(!asset.contains("//cdn") && !asset.contains("https://"));
            assert!(!asset.contains("@import"));
        }
        // The script asks for as many entries per pipeline as the server renders.
        assert!(JS.contains(&format!("var PER_PIPELINE = {DECISIONS_PER_PIPELINE};")));
    }

    #[test]
    fn compact_counts() {
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(1100.0), "1.1k");
        assert_eq!(compact(140_000.0), "140k");
        assert_eq!(compact(2_500_000.0), "2.5M");
    }
}
