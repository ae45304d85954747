//! Stressed variants of a recorded series for the validation protocol: the same data
//! resampled hourly, cropped, with dropouts and outages, or both, with labelled windows
//! snapped to the rows that remain. Deterministic: a variant of a series is a pure
//! function of the series, the variant and its name.
//!
//! The variants imitate what real series that are not in the shared corpus look like
//! (issue "A control law and detectors that generalise"): shorter, hourly, irregular steps
//! with a quarter to two-thirds of steps off the median, outages from hours to days. A
//! parameter that only works at 5-minute regular sampling fails on them.

use crate::core::Timestamp;
use crate::sim::synth::Normal;
use std::time::Duration;

/// A series as the protocol sees it: row timestamps, values and labelled windows as
/// inclusive row ranges `(first, last)`, sorted and disjoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Row timestamps, strictly increasing.
    pub timestamps: Vec<Timestamp>,
    /// Row values (NaN where a cell was empty).
    pub values: Vec<f64>,
    /// Labelled windows as inclusive row ranges; empty for unlabelled data.
    pub windows: Vec<(usize, usize)>,
}

impl Series {
    /// The labelled windows as `(start, end)` times, to snap onto other rows.
    fn window_times(&self) -> Vec<(Timestamp, Timestamp)> {
        self.windows
            .iter()
            .map(|&(s, e)| (self.timestamps[s], self.timestamps[e]))
            .collect()
    }
}

/// One way of stressing a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The series as recorded.
    Original,
    /// Hourly means; a row's timestamp is that of the last sample in its hour, when its
    /// value is known (so a causal detector sees nothing early).
    Hourly,
    /// The last 2,000 rows (shorter series: less history before the first window).
    CropLast2000,
    /// A third of rows dropped at random plus three outages of 6 hours to 3 days: steps
    /// become irregular and long gaps appear.
    Dropouts,
    /// Hourly, then dropouts of a third of the rows and outages.
    HourlyDropouts,
}

impl Variant {
    /// Every variant, the original first.
    pub const ALL: [Variant; 5] = [
        Variant::Original,
        Variant::Hourly,
        Variant::CropLast2000,
        Variant::Dropouts,
        Variant::HourlyDropouts,
    ];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Hourly => "hourly",
            Variant::CropLast2000 => "crop-2000",
            Variant::Dropouts => "dropouts",
            Variant::HourlyDropouts => "hourly-dropouts",
        }
    }

    /// Parses a name as `name` writes it.
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The variant of `series`. `key` (e.g. the file name) seeds the random parts, so a
    /// file always gets the same dropouts. Windows left without a row are dropped: no
    /// detector can see an anomaly that was never sampled.
    pub fn apply(self, series: &Series, key: &str) -> Series {
        match self {
            Variant::Original => series.clone(),
            Variant::Hourly => resample(series, Duration::from_secs(3600)),
            Variant::CropLast2000 => crop_last(series, 2000),
            Variant::Dropouts => drop_rows(series, key),
            Variant::HourlyDropouts => drop_rows(&resample(series, Duration::from_secs(3600)), key),
        }
    }
}

/// Share of rows dropped at random by the dropout variants.
const DROP_SHARE: f64 = 1.0 / 3.0;
/// Outages per series in the dropout variants.
const OUTAGES: usize = 3;
/// Shortest and longest outage.
const OUTAGE_MIN: Duration = Duration::from_secs(6 * 3600);
const OUTAGE_MAX: Duration = Duration::from_secs(3 * 86_400);

/// Keeps the rows for which `keep` holds (by index) and snaps the windows to them.
fn select(series: &Series, keep: impl Fn(usize) -> bool) -> Series {
    let kept: Vec<usize> = (0..series.timestamps.len()).filter(|&i| keep(i)).collect();
    let timestamps: Vec<Timestamp> = kept.iter().map(|&i| series.timestamps[i]).collect();
    let values = kept.iter().map(|&i| series.values[i]).collect();
    let windows = snap(&timestamps, &series.window_times());
    Series {
        timestamps,
        values,
        windows,
    }
}

/// Windows given by time, resolved to rows of `timestamps`: from the first row at or
/// after the start to the last row at or before the end; a window whose start falls
/// within a row's period but after that row's timestamp (coarser rows) starts on the
/// next row and, when it is shorter than a row, is that one row. Windows with no row at
/// or after their start before the next window begins are dropped.
pub fn snap(timestamps: &[Timestamp], bounds: &[(Timestamp, Timestamp)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let median = median_step(timestamps);
    for &(start, end) in bounds {
        let first = timestamps.partition_point(|t| *t < start);
        if first == timestamps.len() {
            continue;
        }
        let last = timestamps.partition_point(|t| *t <= end).saturating_sub(1);
        let last = last.max(first);
        // A later window can snap onto the row the previous one ended on; keep them
        // disjoint, as the scorer requires.
        if let Some(&(_, prev_last)) = out.last()
            && first <= prev_last
        {
            if last > prev_last {
                out.last_mut().expect("checked above").1 = last;
            }
            continue;
        }
        // No row inside the window: the row after it holds the window only if it is a
        // normal step after the previous row (coarse rows); after an outage, or before
        // the series begins, that anomaly was never sampled.
        if timestamps[first] > end {
            let covered = match first.checked_sub(1) {
                Some(prev) => timestamps[first].saturating_since(timestamps[prev]) <= median * 4,
                None => timestamps[first].saturating_since(start) <= median,
            };
            if !covered {
                continue;
            }
        }
        out.push((first, last));
    }
    out
}

/// The median step between rows (1 s for fewer than two rows).
pub fn median_step(timestamps: &[Timestamp]) -> Duration {
    let mut steps: Vec<Duration> = timestamps
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]))
        .collect();
    if steps.is_empty() {
        return Duration::from_secs(1);
    }
    let mid = steps.len() / 2;
    *steps.select_nth_unstable(mid).1
}

/// Means over `period`-long buckets aligned on the epoch; a bucket's timestamp is its last
/// sample's. Empty cells (NaN) are left out of a mean; a bucket of only NaN stays NaN.
fn resample(series: &Series, period: Duration) -> Series {
    let period_ms = period.as_millis() as i64;
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    let mut i = 0;
    let n = series.timestamps.len();
    while i < n {
        let bucket = series.timestamps[i].as_millis().div_euclid(period_ms);
        let (mut sum, mut count) = (0.0, 0usize);
        let mut j = i;
        while j < n && series.timestamps[j].as_millis().div_euclid(period_ms) == bucket {
            let v = series.values[j];
            if !v.is_nan() {
                sum += v;
                count += 1;
            }
            j += 1;
        }
        timestamps.push(series.timestamps[j - 1]);
        values.push(if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        });
        i = j;
    }
    let windows = snap(&timestamps, &series.window_times());
    Series {
        timestamps,
        values,
        windows,
    }
}

/// The last `rows` rows.
fn crop_last(series: &Series, rows: usize) -> Series {
    let from = series.timestamps.len().saturating_sub(rows);
    select(series, |i| i >= from)
}

/// Drops a third of the rows at random and cuts three outages of 6 h to 3 days at random
/// places (never the first or last row, so the series keeps its span).
fn drop_rows(series: &Series, key: &str) -> Series {
    let n = series.timestamps.len();
    if n < 3 {
        return series.clone();
    }
    let mut rng = Normal::new(fnv1a(key));
    let start = series.timestamps[0];
    let span = series.timestamps[n - 1].saturating_since(start);
    let mut outages = Vec::with_capacity(OUTAGES);
    for _ in 0..OUTAGES {
        let len = OUTAGE_MIN
            + Duration::from_secs_f64(rng.uniform() * (OUTAGE_MAX - OUTAGE_MIN).as_secs_f64());
        let len = len.min(span / 8);
        let room = span.saturating_sub(len);
        let from = start.plus(Duration::from_secs_f64(rng.uniform() * room.as_secs_f64()));
        outages.push((from, from.plus(len)));
    }
    let drops: Vec<bool> = (0..n).map(|_| rng.uniform() < DROP_SHARE).collect();
    select(series, |i| {
        if i == 0 || i == n - 1 {
            return true;
        }
        let t = series.timestamps[i];
        !drops[i] && !outages.iter().any(|&(a, b)| t >= a && t < b)
    })
}

/// FNV-1a of a key: a stable seed across platforms and releases (std's hasher is not).
fn fnv1a(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` rows every 5 minutes with values 0, 1, 2, … and the given windows.
    fn five_minute(rows: usize, windows: Vec<(usize, usize)>) -> Series {
        Series {
            timestamps: (0..rows as i64)
                .map(|i| Timestamp::from_secs(1_700_000_400 + 300 * i))
                .collect(),
            values: (0..rows).map(|i| i as f64).collect(),
            windows,
        }
    }

    #[test]
    fn original_is_unchanged() {
        let s = five_minute(100, vec![(10, 20)]);
        assert_eq!(Variant::Original.apply(&s, "k"), s);
    }

    #[test]
    fn hourly_means_twelve_rows_and_stamps_the_last() {
        // 1_700_000_400 is 22:20 UTC: the first hour holds 8 rows, the next ones 12.
        let s = five_minute(8 + 24, vec![]);
        let h = Variant::Hourly.apply(&s, "k");
        assert_eq!(h.timestamps.len(), 3);
        assert_eq!(h.values[0], 3.5);
        assert_eq!(h.values[1], (8..20).sum::<usize>() as f64 / 12.0);
        assert_eq!(h.timestamps[0], s.timestamps[7]);
        assert_eq!(median_step(&h.timestamps), Duration::from_secs(3600));
    }

    #[test]
    fn hourly_windows_snap_to_the_hours_that_hold_them() {
        // Rows 10..=14 lie in the second hour (rows 8..=19), which is hourly row 1.
        let s = five_minute(8 + 48, vec![(10, 14), (30, 50)]);
        let h = Variant::Hourly.apply(&s, "k");
        assert_eq!(h.windows[0], (1, 1));
        // Rows 30..=50: starts in hour 2 (rows 20..=31), ends in hour 4 (rows 44..=55):
        // hour 4's row is stamped after the window's end, so the window ends on hour 3.
        assert_eq!(h.windows[1], (2, 3));
    }

    #[test]
    fn crop_keeps_the_last_rows_and_drops_earlier_windows() {
        let s = five_minute(3000, vec![(100, 200), (950, 1100), (2500, 2600)]);
        let c = Variant::CropLast2000.apply(&s, "k");
        assert_eq!(c.timestamps.len(), 2000);
        assert_eq!(c.values[0], 1000.0);
        assert_eq!(c.windows, vec![(0, 100), (1500, 1600)]);
    }

    #[test]
    fn dropouts_are_deterministic_irregular_and_keep_the_span() {
        let s = five_minute(4000, vec![(1000, 1200), (3000, 3100)]);
        let a = Variant::Dropouts.apply(&s, "file.csv");
        assert_eq!(a, Variant::Dropouts.apply(&s, "file.csv"));
        assert_ne!(a, Variant::Dropouts.apply(&s, "other.csv"));
        assert_eq!(a.timestamps[0], s.timestamps[0]);
        assert_eq!(a.timestamps.last(), s.timestamps.last());
        let share = a.timestamps.len() as f64 / s.timestamps.len() as f64;
        assert!((0.35..0.7).contains(&share), "kept {share}");
        let median = median_step(&a.timestamps);
        let off = a
            .timestamps
            .windows(2)
            .filter(|w| w[1].saturating_since(w[0]) != median)
            .count() as f64
            / (a.timestamps.len() - 1) as f64;
        assert!((0.25..=0.67).contains(&off), "steps off the median: {off}");
        let longest = a
            .timestamps
            .windows(2)
            .map(|w| w[1].saturating_since(w[0]))
            .max()
            .unwrap();
        assert!(longest >= Duration::from_secs(6 * 3600), "{longest:?}");
        for &(first, last) in &a.windows {
            assert!(first <= last && last < a.timestamps.len());
        }
    }

    #[test]
    fn windows_stay_sorted_and_disjoint_when_they_snap_together() {
        let ts: Vec<Timestamp> = [0, 3600, 7200].map(Timestamp::from_secs).to_vec();
        let bounds = [
            (Timestamp::from_secs(100), Timestamp::from_secs(200)),
            (Timestamp::from_secs(300), Timestamp::from_secs(4000)),
        ];
        assert_eq!(snap(&ts, &bounds), vec![(1, 1)]);
    }

    #[test]
    fn a_window_inside_an_outage_is_dropped() {
        let ts: Vec<Timestamp> = [0, 300, 600, 90_000, 90_300]
            .map(Timestamp::from_secs)
            .to_vec();
        let bounds = [(Timestamp::from_secs(10_000), Timestamp::from_secs(20_000))];
        assert!(snap(&ts, &bounds).is_empty());
    }
}
