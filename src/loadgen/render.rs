//! The Prometheus text exposition format (version 0.0.4) of loadgen's metrics: each family
//! once, `# HELP` and `# TYPE` first, then all of its samples, label values escaped.
//!
//! Signals mode is a few lines per pipeline and is rendered whole. Series mode can be
//! millions of lines, so [`SeriesChunks`] renders it in chunks of about [`CHUNK_BYTES`] as
//! the client reads, and memory stays bounded whatever the level.

use axum::body::Bytes;

/// The `Content-Type` of the text format, which Prometheus checks.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Size a series-mode chunk grows to before it is handed to the connection: large enough
/// that per-chunk overhead does not matter, small enough to keep memory flat.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Input series per pipeline (the level loadgen follows).
pub const INPUT_SERIES: &str = "loadgen_input_series";
/// Output series per pipeline under the profile the control file names.
pub const OUTPUT_SERIES: &str = "loadgen_output_series";
/// The control file's `generation`, once a file with one was read.
pub const CONTROL_GENERATION: &str = "loadgen_control_generation";
/// Series mode: the number of `loadgen_series` per pipeline.
pub const LEVEL: &str = "loadgen_level";
/// Series mode: one real series per id.
pub const SERIES: &str = "loadgen_series";

/// Escapes a label value for the text format: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends a family's `# HELP` and `# TYPE gauge` lines (help texts here are constants
/// without backslashes or line feeds, so they need no escaping).
fn header(out: &mut Vec<u8>, name: &str, help: &str) {
    for part in ["# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// Appends `value` in decimal without going through `fmt` (series mode writes millions).
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `name{pipeline="…"} value`.
fn per_pipeline(out: &mut Vec<u8>, name: &str, pipeline: &str, value: u64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"{pipeline=\"");
    out.extend_from_slice(pipeline.as_bytes());
    out.extend_from_slice(b"\"} ");
    push_u64(out, value);
    out.push(b'\n');
}

/// Output series of a pipeline: input × retention, to the nearest series.
pub fn output_series(input: u64, retention: f64) -> u64 {
    (input as f64 * retention).round() as u64
}

/// Renders signals mode: input and output per pipeline, and the control file's generation
/// when known. `pipelines` are already escaped; the slices are in the same order.
pub fn render_signals(
    pipelines: &[String],
    levels: &[u64],
    retentions: &[f64],
    generation: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + pipelines.len() * 96);
    header(
        &mut out,
        INPUT_SERIES,
        "Series entering the pipeline: the level loadgen follows.",
    );
    for (p, &level) in pipelines.iter().zip(levels) {
        per_pipeline(&mut out, INPUT_SERIES, p, level);
    }
    header(
        &mut out,
        OUTPUT_SERIES,
        "Series leaving the pipeline: input times the retention of the profile the control file names for it.",
    );
    for ((p, &level), &retention) in pipelines.iter().zip(levels).zip(retentions) {
        per_pipeline(&mut out, OUTPUT_SERIES, p, output_series(level, retention));
    }
    if let Some(g) = generation {
        header(
            &mut out,
            CONTROL_GENERATION,
            "Generation of the control file loadgen last read.",
        );
        out.extend_from_slice(CONTROL_GENERATION.as_bytes());
        out.push(b' ');
        push_u64(&mut out, g);
        out.push(b'\n');
    }
    out
}

/// Series mode, rendered lazily: `loadgen_level` per pipeline, then `loadgen_series` with
/// ids `0..level` per pipeline, as chunks of about [`CHUNK_BYTES`].
pub struct SeriesChunks {
    /// Escaped pipeline names, shared with the server (no copy per scrape).
    pipelines: std::sync::Arc<[String]>,
    /// Levels at the start of the scrape, so one response is consistent.
    levels: Vec<u64>,
    /// Whether the `loadgen_level` family and the `loadgen_series` header are written.
    started: bool,
    /// Next pipeline to write series of.
    pipeline: usize,
    /// Next id within it.
    id: u64,
}

impl SeriesChunks {
    /// A response for `pipelines` (escaped) at `levels` (same order).
    pub fn new(pipelines: std::sync::Arc<[String]>, levels: Vec<u64>) -> Self {
        SeriesChunks {
            pipelines,
            levels,
            started: false,
            pipeline: 0,
            id: 0,
        }
    }
}

impl Iterator for SeriesChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut out = Vec::with_capacity(CHUNK_BYTES + 256);
        if !self.started {
            self.started = true;
            header(
                &mut out,
                LEVEL,
                "Number of loadgen_series the pipeline exports.",
            );
            for (p, &level) in self.pipelines.iter().zip(&self.levels) {
                per_pipeline(&mut out, LEVEL, p, level);
            }
            header(
                &mut out,
                SERIES,
                "One synthetic series of the pipeline; ids run from 0 to loadgen_level - 1.",
            );
        }
        while self.pipeline < self.pipelines.len() && out.len() < CHUNK_BYTES {
            let level = self.levels[self.pipeline];
            if self.id >= level {
                self.pipeline += 1;
                self.id = 0;
                continue;
            }
            // The line up to the id is the same for the whole pipeline.
            let mut prefix = Vec::with_capacity(64);
            prefix.extend_from_slice(SERIES.as_bytes());
            prefix.extend_from_slice(b"{pipeline=\"");
            prefix.extend_from_slice(self.pipelines[self.pipeline].as_bytes());
            prefix.extend_from_slice(b"\",id=\"");
            while self.id < level && out.len() < CHUNK_BYTES {
                out.extend_from_slice(&prefix);
                push_u64(&mut out, self.id);
                out.extend_from_slice(b"\"} 1\n");
                self.id += 1;
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    /// Checks the text format as Prometheus parses it: every family's HELP and TYPE come
    /// once and before its samples, samples of a family are contiguous, each sample is
    /// `name{labels} value` with well-formed quoted label values, and no series repeats.
    /// Returns the samples as (name, raw labels, value).
    fn parse_exposition(text: &str) -> Vec<(String, String, f64)> {
        assert!(text.ends_with('\n'), "must end with a line feed");
        let mut seen_families: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut typed: HashSet<String> = HashSet::new();
        let mut series: HashSet<String> = HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen_families.insert(name.clone()), "family {name} twice");
                current = Some(name);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(Some(name), current.as_deref(), "TYPE after its HELP");
                assert_eq!(kind, "gauge");
                typed.insert(name.to_string());
                continue;
            }
            let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap());
            assert_eq!(
                Some(name),
                current.as_deref(),
                "sample {line:?} outside its family"
            );
            assert!(typed.contains(name));
            let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
                // Walk the quoted values so escaped quotes do not end them.
                let bytes = rest.as_bytes();
                let (mut i, mut quoted) = (0, false);
                while i < bytes.len() {
                    match (bytes[i], quoted) {
                        (b'\\', true) => {
                            assert!(matches!(bytes[i + 1], b'\\' | b'"' | b'n'), "{line}");
                            i += 1;
                        }
                        (b'"', q) => quoted = !q,
                        (b'\n', true) => panic!("raw line feed in {line}"),
                        (b'}', false) => break,
                        _ => {}
                    }
                    i += 1;
                }
                (rest[..i].to_string(), rest[i + 1..].trim_start())
            } else {
                (String::new(), rest.trim_start())
            };
            assert!(
                series.insert(format!("{name}{{{labels}}}")),
                "{line} repeats a series"
            );
            samples.push((name.to_string(), labels, value.parse::<f64>().unwrap()));
        }
        samples
    }

    fn escaped(names: &[&str]) -> Arc<[String]> {
        names.iter().map(|n| escape_label_value(n)).collect()
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("p0001"), "p0001");
        assert_eq!(escape_label_value("a\\b\"c\nd é"), "a\\\\b\\\"c\\nd é");
    }

    #[test]
    fn signals_are_two_gauges_per_pipeline() {
        let names = escaped(&["p0000", "p0001"]);
        let text =
            String::from_utf8(render_signals(&names, &[48000, 10], &[0.9, 0.35], None)).unwrap();
        assert_eq!(
            text,
            "# HELP loadgen_input_series Series entering the pipeline: the level loadgen follows.\n\
             # TYPE loadgen_input_series gauge\n\
             loadgen_input_series{pipeline=\"p0000\"} 48000\n\
             loadgen_input_series{pipeline=\"p0001\"} 10\n\
             # HELP loadgen_output_series Series leaving the pipeline: input times the retention of the profile the control file names for it.\n\
             # TYPE loadgen_output_series gauge\n\
             loadgen_output_series{pipeline=\"p0000\"} 43200\n\
             loadgen_output_series{pipeline=\"p0001\"} 4\n"
        );
        parse_exposition(&text);
    }

    #[test]
    fn odd_pipeline_names_still_give_valid_exposition() {
        let names = escaped(&["we\"ird\\", "line\nfeed", "0"]);
        let text =
            String::from_utf8(render_signals(&names, &[1, 2, 0], &[0.6; 3], Some(7))).unwrap();
        let samples = parse_exposition(&text);
        assert_eq!(samples.len(), 7);
        assert_eq!(samples[0].1, "pipeline=\"we\\\"ird\\\\\"");
        assert_eq!(samples[1].1, "pipeline=\"line\\nfeed\"");
        assert_eq!(
            samples[6],
            ("loadgen_control_generation".to_string(), String::new(), 7.0)
        );
        let body: Vec<u8> = SeriesChunks::new(names, vec![2, 1, 0]).flatten().collect();
        let samples = parse_exposition(std::str::from_utf8(&body).unwrap());
        assert_eq!(samples.len(), 3 + 3);
        assert_eq!(samples[5].1, "pipeline=\"line\\nfeed\",id=\"0\"");
    }

    #[test]
    fn series_mode_streams_every_id_in_bounded_chunks() {
        let names = escaped(&["p0000", "p0001", "p0002"]);
        let levels = vec![50_000, 0, 1_234];
        let chunks: Vec<Bytes> = SeriesChunks::new(names, levels).collect();
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 256));
        let body: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = std::str::from_utf8(&body).unwrap();
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 3 + 50_000 + 1_234);
        assert_eq!(
            samples[..3].iter().map(|s| s.2).collect::<Vec<_>>(),
            [50_000.0, 0.0, 1_234.0]
        );
        assert_eq!(samples[3].1, "pipeline=\"p0000\",id=\"0\"");
        assert_eq!(samples[3 + 49_999].1, "pipeline=\"p0000\",id=\"49999\"");
        assert_eq!(samples[3 + 50_000].1, "pipeline=\"p0002\",id=\"0\"");
        assert!(samples[3..].iter().all(|s| s.0 == SERIES && s.2 == 1.0));
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for v in [0, 7, 10, 99, 1_000_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
