//! The SVG plot of a simulation: one panel per controller, stacked on a shared time axis
//! in hours, each showing demand, output and the budget over background bands coloured by
//! the profile in force, plus an anomaly-score strip (with the detectors' threshold) for
//! controllers that compute one. The title names the scenario; each panel's caption
//! summarises its controller (time over budget, retention, switches per hour) and marks
//! along its top show each decided switch, emergencies in red.
//!
//! Long runs are downsampled (per-bucket min/max for lines, the most reducing profile per
//! bucket for bands) so the file stays small; the file is written atomically.

use crate::fsutil::{WriteError, io_hint, io_text, write_atomically};
use crate::sim::record::{ControllerRun, Note};
use crate::sim::report;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Width of the image in pixels.
const WIDTH: u32 = 1200;
/// Height of the legend strip at the top.
const HEADER_H: u32 = 56;
/// Height of one controller's main panel.
const PANEL_H: u32 = 280;
/// Height of the anomaly-score strip under a panel.
const STRIP_H: u32 = 90;
/// Runs longer than this many ticks are drawn from per-bucket min/max points.
const MAX_POINTS: usize = 4000;
/// Above this many profile changes, bands are drawn per bucket.
const MAX_BANDS: usize = 1000;

const DEMAND: RGBColor = RGBColor(130, 130, 130);
const OUTPUT: RGBColor = RGBColor(31, 119, 180);
const BUDGET: RGBColor = RGBColor(214, 39, 40);
const ANOMALY: RGBColor = RGBColor(148, 103, 189);
/// Marks of ordinary switches and of emergencies.
const SWITCH: RGBColor = RGBColor(60, 60, 60);
const EMERGENCY: RGBColor = RGBColor(200, 0, 0);
/// Band colours, least to most reducing profile (cycled past the sixth).
const BANDS: [RGBColor; 6] = [
    RGBColor(199, 233, 192),
    RGBColor(255, 237, 160),
    RGBColor(253, 190, 133),
    RGBColor(251, 154, 153),
    RGBColor(218, 188, 255),
    RGBColor(198, 219, 239),
];

/// Why the plot could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Creating, writing, syncing or renaming the file failed; nothing was left at `path`
    /// (an existing file there is untouched).
    #[error("cannot write {}: {} ({})", path.display(), io_text(err), io_hint(err))]
    Write {
        /// The file the caller asked for.
        path: PathBuf,
        /// The underlying failure; its text is already part of the message.
        err: io::Error,
    },
    /// The drawing library refused to draw (a bug, not an operator error).
    #[error("cannot draw {}: {message} (a bug; please report it with the trace)", path.display())]
    Draw {
        /// The file the caller asked for.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

/// Draws every run into one SVG at `path`, one panel per run in the given order, under a
/// title naming the scenario (or trace) `name`.
pub fn write_plot(path: &Path, name: &str, runs: &[ControllerRun]) -> Result<(), PlotError> {
    let svg = render(name, runs).map_err(|e| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomically(path, |w| w.write_all(svg.as_bytes()))
        .map_err(|WriteError { path, err }| PlotError::Write { path, err })
}

/// What the plot needs of a run, in chart coordinates (hours since the first tick).
struct Panel<'a> {
    /// The run, for its name and budget.
    run: &'a ControllerRun,
    /// Demand line, broken where the trace had no value.
    input: Vec<Vec<(f64, f64)>>,
    /// Output line.
    output: Vec<Vec<(f64, f64)>>,
    /// `(from_h, to_h, profile)` background bands.
    bands: Vec<(f64, f64, u8)>,
    /// Anomaly score line, if the controller computed any.
    anomaly: Option<Vec<Vec<(f64, f64)>>>,
    /// Decided switches: `(hour, emergency)`.
    switches: Vec<(f64, bool)>,
    /// The caption: name and summary figures.
    caption: String,
}

/// Renders the SVG document into a string.
fn render(name: &str, runs: &[ControllerRun]) -> Result<String, Box<dyn Error>> {
    let t0 = runs
        .iter()
        .filter_map(|r| r.ticks.first())
        .map(|r| r.timestamp.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    let hours = |secs: f64| (secs - t0) / 3600.0;
    let panels: Vec<Panel<'_>> = runs.iter().map(|run| panel(run, &hours)).collect();

    let x_end = panels
        .iter()
        .flat_map(|p| p.bands.last().map(|b| b.1))
        .fold(0.0, f64::max);
    let x_end = if x_end > 0.0 { x_end } else { 1.0 };
    let y_top = runs
        .iter()
        .flat_map(|run| {
            let values = run.ticks.iter().flat_map(|r| [r.input, r.output]);
            values.chain([run.budget_series])
        })
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;

    let height = HEADER_H
        + panels
            .iter()
            .map(|p| PANEL_H + if p.anomaly.is_some() { STRIP_H } else { 0 })
            .sum::<u32>()
            .max(PANEL_H / 2);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, mut rest) = root.split_vertically(HEADER_H);
        draw_header(&header, name, runs)?;
        if panels.is_empty() {
            rest.draw(&Text::new("no controllers to plot", (20, 20), font(14)))?;
        }
        for p in &panels {
            let (main, below) = rest.split_vertically(PANEL_H);
            draw_panel(&main, p, x_end, y_top)?;
            rest = below;
            if let Some(scores) = &p.anomaly {
                let (strip, below) = rest.split_vertically(STRIP_H);
                draw_strip(&strip, scores, p.run.anomaly_threshold, x_end)?;
                rest = below;
            }
        }
        root.present()?;
    }
    Ok(svg)
}

/// Converts a run into chart data, downsampling long runs.
fn panel<'a>(run: &'a ControllerRun, hours: &dyn Fn(f64) -> f64) -> Panel<'a> {
    let xs: Vec<f64> = run
        .ticks
        .iter()
        .map(|r| hours(r.timestamp.as_secs_f64()))
        .collect();
    let input: Vec<f64> = run.ticks.iter().map(|r| r.input).collect();
    let output: Vec<f64> = run.ticks.iter().map(|r| r.output).collect();
    let profiles: Vec<u8> = run.ticks.iter().map(|r| r.profile).collect();
    let end = xs.last().map(|x| x + run.tick.as_secs_f64() / 3600.0);
    let anomaly = run.ticks.iter().any(|r| r.anomaly.is_some()).then(|| {
        let scores: Vec<f64> = run
            .ticks
            .iter()
            .map(|r| r.anomaly.map_or(f64::NAN, f64::from))
            .collect();
        downsample(&xs, &scores)
    });
    let switches = run
        .ticks
        .iter()
        .zip(&xs)
        .filter_map(|(r, &x)| match r.note {
            Note::Switched(i) => Some((x, run.is_emergency(i))),
            _ => None,
        })
        .collect();
    let m = report::metrics(run);
    let caption = format!(
        "{}: over budget {:.2}%, retention {:.3}, {:.2} switches/h",
        run.name, m.time_over_budget_pct, m.mean_retention, m.switches_per_hour
    );
    Panel {
        run,
        switches,
        caption,
        input: downsample(&xs, &input),
        output: downsample(&xs, &output),
        bands: end.map_or_else(Vec::new, |end| bands(&xs, &profiles, end)),
        anomaly,
    }
}

/// The line through `(xs[i], ys[i])`, broken into segments at NaN. Above [`MAX_POINTS`]
/// ticks, each bucket contributes its minimum and maximum (in time order), which keeps
/// spikes visible; a bucket with no value breaks the line.
fn downsample(xs: &[f64], ys: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    let bucket = if ys.len() > MAX_POINTS {
        ys.len().div_ceil(MAX_POINTS / 2)
    } else {
        1
    };
    for (start, chunk) in ys.chunks(bucket).enumerate().map(|(i, c)| (i * bucket, c)) {
        let finite = || chunk.iter().enumerate().filter(|(_, y)| y.is_finite());
        let lo = finite().min_by(|a, b| a.1.total_cmp(b.1));
        let hi = finite().max_by(|a, b| a.1.total_cmp(b.1));
        match (lo, hi) {
            (Some((i, _)), Some((j, _))) => {
                let (a, b) = (i.min(j), i.max(j));
                current.push((xs[start + a], chunk[a]));
                if b != a {
                    current.push((xs[start + b], chunk[b]));
                }
            }
            _ => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// Background bands `(from, to, profile)`: runs of the same in-force profile, tick `i`
/// covering `xs[i]..xs[i + 1]` (the last one up to `end`). When the profile changes more
/// than [`MAX_BANDS`] times, each bucket of ticks shows its most reducing profile.
fn bands(xs: &[f64], profiles: &[u8], end: f64) -> Vec<(f64, f64, u8)> {
    let changes = profiles.windows(2).filter(|w| w[0] != w[1]).count();
    let bucket = if changes > MAX_BANDS {
        profiles.len().div_ceil(MAX_BANDS)
    } else {
        1
    };
    let mut out: Vec<(f64, f64, u8)> = Vec::new();
    for (k, chunk) in profiles.chunks(bucket).enumerate() {
        let first = k * bucket;
        let from = xs[first];
        let to = xs.get(first + chunk.len()).copied().unwrap_or(end);
        let profile = chunk.iter().copied().max().unwrap_or(0);
        match out.last_mut() {
            Some(last) if last.2 == profile => last.1 = to,
            _ => out.push((from, to, profile)),
        }
    }
    out
}

/// The title and the legend: line styles, then one swatch per profile.
fn draw_header(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    name: &str,
    runs: &[ControllerRun],
) -> Result<(), Box<dyn Error>> {
    let title = match runs.first() {
        Some(run) => format!(
            "Phoenix simulation of {name}: {} controller{}, budget {} series",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            si(run.budget_series)
        ),
        None => format!("Phoenix simulation of {name}"),
    };
    area.draw(&Text::new(title, (12, 6), font(16)))?;

    let y = 36;
    let mut x = 12;
    let lines = [
        ("demand (input)", DEMAND),
        ("output", OUTPUT),
        ("budget", BUDGET),
    ];
    for (label, colour) in lines {
        area.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            colour.stroke_width(2),
        ))?;
        area.draw(&Text::new(label, (x + 30, y - 7), font(13)))?;
        x += 30 + text_width(label) + 18;
    }
    if runs
        .iter()
        .any(|r| r.ticks.iter().any(|t| t.anomaly.is_some()))
    {
        let label = "anomaly score (0-1)";
        area.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            ANOMALY.stroke_width(2),
        ))?;
        area.draw(&Text::new(label, (x + 30, y - 7), font(13)))?;
        x += 30 + text_width(label) + 18;
    }
    for (label, colour) in [("switch", SWITCH), ("emergency", EMERGENCY)] {
        area.draw(&Rectangle::new(
            [(x, y - 8), (x + 3, y + 8)],
            colour.filled(),
        ))?;
        area.draw(&Text::new(label, (x + 9, y - 7), font(13)))?;
        x += 9 + text_width(label) + 16;
    }
    let profiles = runs.first().map_or(&[][..], |r| &r.profiles[..]);
    if !profiles.is_empty() {
        let label = "profile in force:";
        area.draw(&Text::new(label, (x, y - 7), font(13)))?;
        x += text_width(label) + 8;
    }
    for (i, name) in profiles.iter().enumerate() {
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 18, y + 7)],
            band_colour(i).filled(),
        ))?;
        area.draw(&Text::new(name.as_str(), (x + 24, y - 7), font(13)))?;
        x += 24 + text_width(name) + 16;
    }
    Ok(())
}

/// One controller: bands, grid, demand, output, budget.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    p: &Panel<'_>,
    x_end: f64,
    y_top: f64,
) -> Result<(), Box<dyn Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(&p.caption, font(15))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_end, 0.0..y_top)?;
    chart.draw_series(p.bands.iter().map(|&(from, to, profile)| {
        Rectangle::new(
            [(from, 0.0), (to, y_top)],
            band_colour(usize::from(profile)).filled(),
        )
    }))?;
    let x_fmt = hours_formatter(x_end);
    chart
        .configure_mesh()
        .x_desc("time [h]")
        .y_desc("series")
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v| si(*v))
        .light_line_style(RGBAColor(0, 0, 0, 0.04))
        .bold_line_style(RGBAColor(0, 0, 0, 0.12))
        .label_style(font(12))
        .draw()?;
    for segment in &p.input {
        chart.draw_series(LineSeries::new(
            segment.iter().copied(),
            DEMAND.stroke_width(1),
        ))?;
    }
    for segment in &p.output {
        chart.draw_series(LineSeries::new(
            segment.iter().copied(),
            OUTPUT.stroke_width(2),
        ))?;
    }
    let budget = p.run.budget_series;
    chart.draw_series(DashedLineSeries::new(
        [(0.0, budget), (x_end, budget)],
        8,
        5,
        BUDGET.stroke_width(2),
    ))?;
    // Switch marks hang from the top, emergencies longer and in red, so a burst of
    // decisions reads at a glance against the bands.
    chart.draw_series(p.switches.iter().map(|&(x, emergency)| {
        let (len, colour) = if emergency {
            (0.12, EMERGENCY)
        } else {
            (0.06, SWITCH)
        };
        PathElement::new(
            vec![(x, y_top), (x, y_top * (1.0 - len))],
            colour.stroke_width(2),
        )
    }))?;
    Ok(())
}

/// The anomaly scores of one controller on a 0–1 scale.
fn draw_strip(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    scores: &[Vec<(f64, f64)>],
    threshold: Option<f64>,
    x_end: f64,
) -> Result<(), Box<dyn Error>> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(10)
        .margin_bottom(6)
        .x_label_area_size(0)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_end, 0.0..1.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(3)
        .y_desc("anomaly")
        .light_line_style(RGBAColor(0, 0, 0, 0.0))
        .bold_line_style(RGBAColor(0, 0, 0, 0.12))
        .label_style(font(12))
        .draw()?;
    for segment in scores {
        chart.draw_series(AreaSeries::new(
            segment.iter().copied(),
            0.0,
            ANOMALY.mix(0.25),
        ))?;
        chart.draw_series(LineSeries::new(
            segment.iter().copied(),
            ANOMALY.stroke_width(1),
        ))?;
    }
    if let Some(t) = threshold {
        chart.draw_series(DashedLineSeries::new(
            [(0.0, t), (x_end, t)],
            6,
            4,
            ANOMALY.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("threshold {t}"),
            (x_end * 0.005, (t + 0.04).min(0.96)),
            font(11),
        )))?;
    }
    Ok(())
}

/// The band colour of profile `i` (least reducing first).
fn band_colour(i: usize) -> RGBColor {
    BANDS[i % BANDS.len()]
}

/// A sans-serif text style; the SVG backend emits `<text>` and leaves the font to the viewer.
fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// Rough width of `s` at 13 px, for laying out the legend (the SVG has no font metrics).
fn text_width(s: &str) -> i32 {
    (s.chars().count() as f64 * 7.2).round() as i32
}

/// Axis labels in hours with as many decimals as the span needs.
fn hours_formatter(x_end: f64) -> impl Fn(&f64) -> String {
    let decimals = (-x_end.log10()).ceil().clamp(0.0, 3.0) as usize + usize::from(x_end < 10.0);
    move |v| format!("{v:.decimals$}")
}

/// A series count with an SI suffix (`950`, `12k`, `1.5M`).
fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Timestamp;
    use crate::sim::record::{Note, TickRecord};
    use std::time::Duration;

    fn run(name: &str, n: usize, anomaly: bool) -> ControllerRun {
        ControllerRun {
            name: name.to_string(),
            profiles: vec![
                "conservative".into(),
                "balanced".into(),
                "aggressive".into(),
            ],
            retentions: vec![0.9, 0.6, 0.3],
            budget_series: 50_000.0,
            tick: Duration::from_secs(15),
            ticks: (0..n)
                .map(|i| {
                    let demand = 40_000.0 + 30_000.0 * ((i as f64) / 50.0).sin();
                    let profile = ((i / 40) % 3) as u8;
                    TickRecord {
                        tick: i as u32,
                        timestamp: Timestamp::from_secs(1_700_000_000 + 15 * i as i64),
                        input: if i % 97 == 5 { f64::NAN } else { demand },
                        output: demand * [0.9, 0.6, 0.3][usize::from(profile)],
                        profile,
                        decided: profile,
                        note: Note::None,
                        anomaly: anomaly.then_some((i % 10) as f32 / 10.0),
                    }
                })
                .collect(),
            texts: Vec::new(),
            anomaly_threshold: None,
        }
    }

    #[test]
    fn writes_an_svg_naming_every_controller_and_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let mut runs = [run("threshold", 300, false), run("p&q <tuned>", 300, true)];
        runs[1].anomaly_threshold = Some(0.5);
        runs[1].ticks[10].note = Note::Switched(0);
        runs[1].ticks[20].note = Note::Switched(1);
        runs[1].texts = vec![
            "escalated conservative→balanced: output 70k".into(),
            "escalated balanced→aggressive: emergency: output 150k".into(),
        ];
        write_plot(&path, "flash-crowd", &runs).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "threshold",
            "p&amp;q &lt;tuned&gt;",
            "conservative",
            "balanced",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.contains("<text"));
        assert!(svg.contains("anomaly"));
        assert!(
            svg.contains("Phoenix simulation of flash-crowd"),
            "no title"
        );
        assert!(svg.contains("threshold 0.5"), "no anomaly threshold label");
        assert!(svg.contains("switches/h"), "no summary in the captions");
        assert!(svg.contains("over budget"), "no summary in the captions");
        assert!(svg.contains("emergency"), "no legend for the marks");
        assert!(
            svg.contains("#C80000") || svg.contains("rgb(200,0,0)") || svg.contains("#c80000"),
            "no emergency mark"
        );
        assert!(svg.contains("time [h]"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn long_runs_stay_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        write_plot(&path, "long", &[run("hpa", 200_000, true)]).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 1_000_000, "{size} bytes");
    }

    #[test]
    fn empty_input_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        write_plot(&path, "empty", &[]).unwrap();
        write_plot(&path, "empty", &[run("oracle", 0, false)]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("oracle"));
    }

    #[test]
    fn downsampling_keeps_extremes_and_gaps() {
        let n = 10 * MAX_POINTS;
        let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut ys = vec![1.0; n];
        ys[12_345] = 99.0;
        ys[30_000] = -5.0;
        let segments = downsample(&xs, &ys);
        let points: Vec<(f64, f64)> = segments.concat();
        assert!(points.len() <= MAX_POINTS);
        assert!(points.contains(&(12_345.0, 99.0)));
        assert!(points.contains(&(30_000.0, -5.0)));
        // Short runs: every point, broken at NaN.
        let segments = downsample(&[0.0, 1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0, 3.0]);
        assert_eq!(
            segments,
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]
        );
    }

    #[test]
    fn bands_merge_runs_and_bucket_when_flapping() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(
            bands(&xs, &[0, 0, 1, 1], 4.0),
            vec![(0.0, 2.0, 0), (2.0, 4.0, 1)]
        );
        let n = 10 * MAX_BANDS;
        let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let flapping: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let b = bands(&xs, &flapping, n as f64);
        assert_eq!(b, vec![(0.0, n as f64, 1)]);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_000.0), "12k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(hours_formatter(48.0)(&12.0), "12");
        assert_eq!(hours_formatter(5.0)(&1.5), "1.5");
        assert_eq!(hours_formatter(0.25)(&0.126), "0.13");
    }
}
