//! The tick file of a simulation: one CSV row per tick per controller
//! (`tick,timestamp,controller,input,output,profile,decided,reason`, plus `anomaly_score`
//! when some controller computed one), written atomically so a reader never sees a torn
//! file (`crate::fsutil::write_atomically`).

use crate::core::Timestamp;
use crate::fsutil::{WriteError, io_hint, io_text, write_atomically};
use crate::sim::record::{ControllerRun, TickRecord};
use std::borrow::Cow;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The fixed columns; `anomaly_score` is appended only when a record carries a score.
const HEADER: &str = "tick,timestamp,controller,input,output,profile,decided,reason";

/// Why the tick file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TicksError {
    /// Creating, writing, syncing or renaming the file failed; nothing was left at `path`
    /// (an existing file there is untouched).
    #[error("cannot write {}: {} ({})", path.display(), io_text(err), io_hint(err))]
    Write {
        /// The file the caller asked for (not the temporary file).
        path: PathBuf,
        /// The underlying failure; its text is already part of the message.
        err: io::Error,
    },
}

/// Writes every tick of every run to `path` as CSV, runs one after the other.
///
/// Profiles are written by name; a missing input or output (NaN) is an empty field;
/// `reason` is [`ControllerRun::reason`]. Text fields are quoted when they contain a comma,
/// a quote or a line break.
pub fn write_ticks(path: &Path, runs: &[ControllerRun]) -> Result<(), TicksError> {
    let with_anomaly = runs
        .iter()
        .any(|run| run.ticks.iter().any(|r| r.anomaly.is_some()));
    write_atomically(path, |w| {
        w.write_all(HEADER.as_bytes())?;
        if with_anomaly {
            w.write_all(b",anomaly_score")?;
        }
        w.write_all(b"\n")?;
        let mut stamps = StampWriter::default();
        for run in runs {
            write_run(w, run, with_anomaly, &mut stamps)?;
        }
        Ok(())
    })
    .map_err(|WriteError { path, err }| TicksError::Write { path, err })
}

/// The rows of one controller.
fn write_run(
    w: &mut impl Write,
    run: &ControllerRun,
    with_anomaly: bool,
    stamps: &mut StampWriter,
) -> io::Result<()> {
    // Escape the per-run names once, not once per tick.
    let controller = csv_field(&run.name);
    let names: Vec<Cow<'_, str>> = run.profiles.iter().map(|p| csv_field(p)).collect();
    let profile = |i: u8| -> Cow<'_, str> {
        match names.get(usize::from(i)) {
            Some(name) => Cow::Borrowed(name.as_ref()),
            None => Cow::Owned(i.to_string()),
        }
    };
    for r in &run.ticks {
        let TickRecord {
            tick,
            timestamp,
            input,
            output,
            profile: in_force,
            decided,
            note,
            anomaly,
        } = *r;
        write!(w, "{tick},")?;
        stamps.write(w, timestamp)?;
        write!(w, ",{controller},")?;
        write_value(w, input)?;
        w.write_all(b",")?;
        write_value(w, output)?;
        write!(
            w,
            ",{},{},{}",
            profile(in_force),
            profile(decided),
            csv_field(run.reason(note))
        )?;
        if with_anomaly {
            match anomaly {
                Some(score) => write!(w, ",{score}")?,
                None => w.write_all(b",")?,
            }
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes timestamps exactly as `Timestamp`'s `Display` does (RFC 3339, milliseconds, `Z`)
/// but without going through chrono's format parser on every row, which dominated the
/// time to write a long run: the date part is computed once per day.
#[derive(Default)]
struct StampWriter {
    /// Day number (since the epoch) of the cached date, and `YYYY-MM-DDT` for it; `None`
    /// for years outside 0..=9999, which fall back to `Display`.
    cached: Option<(i64, Option<[u8; 11]>)>,
}

impl StampWriter {
    const MS_PER_DAY: i64 = 86_400_000;

    fn write(&mut self, w: &mut impl Write, ts: Timestamp) -> io::Result<()> {
        let ms = ts.as_millis();
        let day = ms.div_euclid(Self::MS_PER_DAY);
        let prefix = match self.cached {
            Some((d, prefix)) if d == day => prefix,
            _ => {
                let prefix = date_prefix(day);
                self.cached = Some((day, prefix));
                prefix
            }
        };
        let Some(prefix) = prefix else {
            return write!(w, "{ts}");
        };
        let of_day = ms.rem_euclid(Self::MS_PER_DAY);
        let (h, m, s, milli) = (
            of_day / 3_600_000,
            of_day / 60_000 % 60,
            of_day / 1000 % 60,
            of_day % 1000,
        );
        let mut buf = [0u8; 24];
        buf[..11].copy_from_slice(&prefix);
        put_digits(&mut buf[11..13], h);
        buf[13] = b':';
        put_digits(&mut buf[14..16], m);
        buf[16] = b':';
        put_digits(&mut buf[17..19], s);
        buf[19] = b'.';
        put_digits(&mut buf[20..23], milli);
        buf[23] = b'Z';
        w.write_all(&buf)
    }
}

/// `YYYY-MM-DDT` of a day counted from 1970-01-01 (proleptic Gregorian), or `None` when the
/// year does not have four digits.
fn date_prefix(day: i64) -> Option<[u8; 11]> {
    // Howard Hinnant's civil_from_days.
    let z = day.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe.checked_add(era.checked_mul(400)?)? + i64::from(m <= 2);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut buf = [0u8; 11];
    put_digits(&mut buf[..4], y);
    buf[4] = b'-';
    put_digits(&mut buf[5..7], m);
    buf[7] = b'-';
    put_digits(&mut buf[8..10], d);
    buf[10] = b'T';
    Some(buf)
}

/// Writes `v` (non-negative) zero-padded into all of `out`.
fn put_digits(out: &mut [u8], mut v: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// A series count; NaN (no value in the trace) is an empty field.
fn write_value(w: &mut impl Write, v: f64) -> io::Result<()> {
    if v.is_nan() { Ok(()) } else { write!(w, "{v}") }
}

/// `s` as a CSV field: quoted, with quotes doubled, when it contains a separator, a quote
/// or a line break (RFC 4180).
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Timestamp;
    use crate::core::event::{Guard, HoldReason};
    use crate::sim::record::Note;
    use std::fs;
    use std::time::Duration;

    fn run(name: &str, anomaly: Option<f32>) -> ControllerRun {
        let rec =
            |tick: u32, input: f64, output: f64, profile: u8, decided: u8, note: Note| TickRecord {
                tick,
                timestamp: Timestamp::from_secs(15 * i64::from(tick)),
                input,
                output,
                profile,
                decided,
                note,
                anomaly,
            };
        ControllerRun {
            name: name.to_string(),
            profiles: vec!["conservative".into(), "aggressive".into()],
            retentions: vec![0.9, 0.4],
            budget_series: 1000.0,
            tick: Duration::from_secs(15),
            ticks: vec![
                rec(0, 1200.0, 1080.0, 0, 1, Note::Switched(0)),
                rec(1, f64::NAN, 1080.5, 0, 1, Note::Hold(HoldReason::Stale)),
                rec(
                    2,
                    1300.0,
                    520.0,
                    1,
                    1,
                    Note::Blocked {
                        guard: Guard::DwellRelax,
                        to: 0,
                        until: Some(Timestamp::from_secs(60)),
                    },
                ),
            ],
            texts: vec!["over budget: 1080 > 1000, \"escalate\"".to_string()],
            anomaly_threshold: None,
        }
    }

    #[test]
    fn writes_every_tick_with_names_and_escaped_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.csv");
        write_ticks(&path, &[run("threshold", None), run("hpa, tuned", None)]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "0,1970-01-01T00:00:00.000Z,threshold,1200,1080,conservative,aggressive,\
             \"over budget: 1080 > 1000, \"\"escalate\"\"\""
        );
        assert_eq!(
            lines[2],
            "1,1970-01-01T00:00:15.000Z,threshold,,1080.5,conservative,aggressive,stale"
        );
        assert_eq!(
            lines[3],
            "2,1970-01-01T00:00:30.000Z,threshold,1300,520,aggressive,aggressive,min_dwell_relax"
        );
        assert!(lines[4].starts_with("0,1970-01-01T00:00:00.000Z,\"hpa, tuned\",1200,"));
        // Only the file itself is left in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn anomaly_column_only_when_some_record_has_a_score() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.csv");
        write_ticks(&path, &[run("threshold", None), run("p", Some(0.25))]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{HEADER},anomaly_score"));
        assert!(lines[3].ends_with("min_dwell_relax,"));
        assert!(lines[6].ends_with("min_dwell_relax,0.25"));
    }

    #[test]
    fn replaces_an_existing_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.csv");
        fs::write(
            &path,
            "old content that is much longer than nothing".repeat(100),
        )
        .unwrap();
        write_ticks(&path, &[]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{HEADER}\n"));
    }

    #[test]
    fn errors_name_the_path_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("ticks.csv");
        let err = write_ticks(&path, &[run("threshold", None)]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot write {}: ", path.display())),
            "{msg}"
        );
        assert!(
            msg.ends_with("(create the directory first or choose another path)"),
            "{msg}"
        );
        assert!(!msg.contains("os error"), "{msg}");
        // A directory is not a file name.
        let err = write_ticks(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn timestamps_match_display() {
        let mut stamps = StampWriter::default();
        let mut check = |ms: i64| {
            let mut out = Vec::new();
            stamps.write(&mut out, Timestamp(ms)).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                Timestamp(ms).to_string(),
                "{ms}"
            );
        };
        // Year 0 to 9999 and beyond, before and after the epoch, leap days included.
        let (first, last) = (-62_167_219_200_000i64, 253_402_300_799_999i64);
        for ms in [
            first - 1,
            first,
            -1,
            0,
            1,
            951_782_400_000,
            1_709_164_799_999,
            last,
            last + 1,
        ] {
            check(ms);
        }
        let mut ms = first - 10_000_000_000;
        while ms < last + 10_000_000_000 {
            check(ms);
            check(ms + 86_399_999);
            ms += 3_777_777_777_777;
        }
        for ms in (1_700_000_000_000..1_700_000_000_000 + 3 * 86_400_000).step_by(15_001) {
            check(ms);
        }
        check(i64::MIN);
        check(i64::MAX);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain text"), "plain text");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
