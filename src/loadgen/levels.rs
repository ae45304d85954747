//! Levels: how many input series each pipeline has at a given time since start. A level
//! follows [`Steps`] (a constant, a `--schedule`, or a recorded trace replayed at some
//! speed) until a test overrides it through the HTTP API.
//!
//! Nothing here reads a clock: the server passes the time elapsed since it started, so the
//! schedule and trace semantics are unit-tested on plain durations.

use crate::sim::trace::{Column, Trace};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

/// The largest level loadgen accepts: far above any real pipeline, and low enough that a
/// typo (an extra few zeros) fails loudly instead of making a scrape run for hours.
pub const MAX_LEVEL: u64 = 1_000_000_000;

/// A piecewise-constant level over time since start: each step holds from its time until
/// the next step's; the last one holds forever. Never empty, times strictly increasing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steps {
    steps: Vec<(Duration, u64)>,
}

impl Steps {
    /// The same level from start to end.
    pub fn constant(level: u64) -> Steps {
        Steps {
            steps: vec![(Duration::ZERO, level)],
        }
    }

    /// Parses a `--schedule` value, `TIME=SERIES,...` like `0s=50000,2m=200000,5m=50000`:
    /// the first step at `0s`, times (humantime, since start) strictly increasing, levels
    /// whole numbers of series up to [`MAX_LEVEL`].
    pub fn parse_schedule(text: &str) -> Result<Steps, ScheduleError> {
        if text.trim().is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut steps: Vec<(Duration, u64)> = Vec::new();
        let mut previous = "";
        for part in text.split(',') {
            let step = part.trim();
            let bad = |problem: String| ScheduleError::BadStep {
                step: step.to_string(),
                problem,
            };
            let (time, level) = step
                .split_once('=')
                .ok_or_else(|| bad("expected TIME=SERIES, e.g. 2m=200000".into()))?;
            let (time, level) = (time.trim(), level.trim());
            let at = humantime::parse_duration(time).map_err(|e| {
                bad(format!(
                    "{time:?} is not a time since start ({e}; write e.g. 0s, 90s, 2m)"
                ))
            })?;
            let level = parse_level(level).map_err(bad)?;
            match steps.last() {
                None if !at.is_zero() => {
                    return Err(bad(
                        "the first step must be at 0s (it is the level from the start)".into(),
                    ));
                }
                Some(&(last, _)) if at <= last => {
                    return Err(bad(format!(
                        "not later than the step before, {previous:?} (list steps in increasing time)"
                    )));
                }
                _ => steps.push((at, level)),
            }
            previous = step;
        }
        Ok(Steps { steps })
    }

    /// Follows `column` of `trace`: row `i` holds from `(t_i - t_0) / speed` after start,
    /// values rounded to whole series. Missing values (NaN) keep the level of the row
    /// before (a gap in a recording is not a drop to zero); before the first present value
    /// the level is that value. Rows with the same timestamp: the last one wins.
    pub fn from_trace(
        trace: &Trace,
        column: &Column,
        speed: f64,
    ) -> Result<Steps, TraceLevelError> {
        let origin = || trace.origin.clone();
        let start = trace.timestamps.first().copied().unwrap_or_default();
        let mut steps: Vec<(Duration, u64)> = Vec::new();
        for (row, (&ts, &value)) in trace.timestamps.iter().zip(&column.values).enumerate() {
            if row > 0 && ts < trace.timestamps[row - 1] {
                return Err(TraceLevelError::Backwards {
                    path: origin(),
                    row: row + 1,
                });
            }
            if value.is_nan() {
                continue;
            }
            let bad_value = |problem: &str| TraceLevelError::BadValue {
                path: origin(),
                column: column.name.clone(),
                row: row + 1,
                value,
                problem: problem.to_string(),
            };
            if value < 0.0 {
                return Err(bad_value("a series count cannot be negative"));
            }
            let level = value.round();
            if level > MAX_LEVEL as f64 {
                return Err(bad_value(&format!(
                    "more than loadgen serves (at most {MAX_LEVEL}; scale the trace with --rescale)"
                )));
            }
            let at = Duration::from_secs_f64(ts.saturating_since(start).as_secs_f64() / speed);
            match steps.last_mut() {
                Some(last) if last.0 == at => last.1 = level as u64,
                _ => steps.push((at, level as u64)),
            }
        }
        match steps.first_mut() {
            None => Err(TraceLevelError::NoValues {
                path: origin(),
                column: column.name.clone(),
            }),
            Some(first) => {
                // Before the first present value: that value (so the steps start at 0s).
                first.0 = Duration::ZERO;
                Ok(Steps { steps })
            }
        }
    }

    /// The level `elapsed` after start.
    pub fn at(&self, elapsed: Duration) -> u64 {
        let after = self.steps.partition_point(|&(t, _)| t <= elapsed);
        self.steps[after.saturating_sub(1)].1
    }

    /// The steps, as (time since start, level).
    pub fn steps(&self) -> &[(Duration, u64)] {
        &self.steps
    }
}

/// A whole number of series up to [`MAX_LEVEL`]; the error says what is wrong with it.
pub fn parse_level(text: &str) -> Result<u64, String> {
    let level: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of series (write e.g. 200000)"))?;
    if level > MAX_LEVEL {
        return Err(format!(
            "{level} series is more than loadgen serves (at most {MAX_LEVEL})"
        ));
    }
    Ok(level)
}

/// Why a `--schedule` value is wrong; the message names the bad step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing was given.
    #[error("the schedule is empty (write steps like 0s=50000,2m=200000)")]
    Empty,
    /// One step is malformed or out of order.
    #[error("step {step:?}: {problem}")]
    BadStep {
        /// The step as written.
        step: String,
        /// What is wrong with it and what to write instead.
        problem: String,
    },
}

/// Why a trace cannot drive the levels; the message names the file and the data row
/// (1-based, not counting the header).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TraceLevelError {
    /// Timestamps go back in time.
    #[error(
        "{path}: data row {row} is earlier than the row before (loadgen follows the timestamps; sort the trace by time)"
    )]
    Backwards {
        /// Trace file.
        path: String,
        /// 1-based data row.
        row: usize,
    },
    /// A value that is not a series count.
    #[error("{path}: column {column:?}, data row {row}: {value}: {problem}")]
    BadValue {
        /// Trace file.
        path: String,
        /// Column followed.
        column: String,
        /// 1-based data row.
        row: usize,
        /// The value.
        value: f64,
        /// What is wrong with it.
        problem: String,
    },
    /// Every value of the column is missing.
    #[error("{path}: column {column:?} has no values (fill in at least one row)")]
    NoValues {
        /// Trace file.
        path: String,
        /// Column followed.
        column: String,
    },
}

/// Why a pipeline list is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PipelinesError {
    /// No pipeline at all.
    #[error("no pipelines (give --pipelines N with N >= 1, or --pipeline NAME)")]
    None,
    /// An empty name.
    #[error("--pipeline: a pipeline name cannot be empty")]
    EmptyName,
    /// The same name twice.
    #[error("--pipeline {0:?} is given twice (name each pipeline once)")]
    Duplicate(String),
}

/// `pipeline` in a level change names no pipeline of this loadgen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown pipeline {0:?} (GET /api/v1/level lists them)")]
pub struct UnknownPipeline(pub String);

/// The pipelines, their level sources and the levels set through the API.
#[derive(Clone, Debug)]
pub struct Levels {
    /// Pipeline names, in the order given (and exported).
    names: Vec<String>,
    /// Name to position, for API calls naming one pipeline among thousands.
    index: HashMap<String, usize>,
    /// Where each pipeline's level comes from; shared when pipelines follow the same steps.
    sources: Vec<Arc<Steps>>,
    /// A level set through the API replaces the source from then on.
    overrides: Vec<Option<u64>>,
}

impl Levels {
    /// Every pipeline follows `steps`.
    pub fn new(names: Vec<String>, steps: Steps) -> Result<Levels, PipelinesError> {
        let steps = Arc::new(steps);
        let sources = vec![steps; names.len()];
        Levels::with_sources(names, sources)
    }

    /// Each pipeline follows the trace column named like it, if there is one, else the
    /// demand column (`input`, or the first), replayed at `speed`× the timestamps' pace.
    pub fn from_trace(
        names: Vec<String>,
        trace: &Trace,
        speed: f64,
    ) -> Result<Levels, LevelsFromTraceError> {
        let demand_name = trace
            .columns
            .iter()
            .find(|c| c.name == "input")
            .or(trace.columns.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let mut by_column: HashMap<&str, Arc<Steps>> = HashMap::new();
        let mut sources = Vec::with_capacity(names.len());
        for name in &names {
            let column_name = if trace.column(name).is_some() {
                name.as_str()
            } else {
                demand_name.as_str()
            };
            let steps = match by_column.entry(column_name) {
                Entry::Occupied(e) => e.get().clone(),
                Entry::Vacant(e) => {
                    let column =
                        trace
                            .column(column_name)
                            .ok_or_else(|| TraceLevelError::NoValues {
                                path: trace.origin.clone(),
                                column: column_name.to_string(),
                            })?;
                    e.insert(Arc::new(Steps::from_trace(trace, column, speed)?))
                        .clone()
                }
            };
            sources.push(steps);
        }
        Ok(Levels::with_sources(names, sources)?)
    }

    fn with_sources(
        names: Vec<String>,
        sources: Vec<Arc<Steps>>,
    ) -> Result<Levels, PipelinesError> {
        if names.is_empty() {
            return Err(PipelinesError::None);
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(PipelinesError::EmptyName);
            }
            if index.insert(name.clone(), i).is_some() {
                return Err(PipelinesError::Duplicate(name.clone()));
            }
        }
        let overrides = vec![None; names.len()];
        Ok(Levels {
            names,
            index,
            sources,
            overrides,
        })
    }

    /// Pipeline names, in export order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The level of pipeline number `i`, `elapsed` after start.
    pub fn level(&self, i: usize, elapsed: Duration) -> u64 {
        self.overrides[i].unwrap_or_else(|| self.sources[i].at(elapsed))
    }

    /// Every pipeline's level, `elapsed` after start, in export order.
    pub fn all(&self, elapsed: Duration) -> Vec<u64> {
        (0..self.names.len())
            .map(|i| self.level(i, elapsed))
            .collect()
    }

    /// Sets the level of `pipeline` (all of them for `None`) from now on, replacing its
    /// schedule or trace.
    pub fn set(&mut self, pipeline: Option<&str>, level: u64) -> Result<(), UnknownPipeline> {
        match pipeline {
            None => self.overrides.fill(Some(level)),
            Some(name) => {
                let &i = self
                    .index
                    .get(name)
                    .ok_or_else(|| UnknownPipeline(name.to_string()))?;
                self.overrides[i] = Some(level);
            }
        }
        Ok(())
    }
}

/// Why levels could not be built from a trace.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LevelsFromTraceError {
    /// The trace cannot drive a level.
    #[error(transparent)]
    Trace(#[from] TraceLevelError),
    /// The pipeline list is unusable.
    #[error(transparent)]
    Pipelines(#[from] PipelinesError),
}

/// Pipeline names `p0000`, `p0001`, … for `--pipelines N`.
pub fn numbered_pipelines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i:04}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::parse_csv;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn schedule_is_piecewise_constant_in_time_since_start() {
        let s = Steps::parse_schedule("0s=50000, 2m=200000,5m=50000").unwrap();
        assert_eq!(
            s.steps(),
            &[(secs(0), 50_000), (secs(120), 200_000), (secs(300), 50_000)]
        );
        assert_eq!(s.at(secs(0)), 50_000);
        assert_eq!(s.at(secs(119)), 50_000);
        assert_eq!(s.at(secs(120)), 200_000);
        assert_eq!(s.at(secs(299)), 200_000);
        assert_eq!(s.at(secs(100_000)), 50_000);
        assert_eq!(Steps::parse_schedule("0s=7").unwrap(), Steps::constant(7));
    }

    #[test]
    fn schedule_errors_name_the_bad_step_and_what_to_write() {
        let err = |s: &str| Steps::parse_schedule(s).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "the schedule is empty (write steps like 0s=50000,2m=200000)"
        );
        assert_eq!(
            err("0s=1,2m"),
            "step \"2m\": expected TIME=SERIES, e.g. 2m=200000"
        );
        let e = err("0s=1,2x=5");
        assert!(
            e.starts_with("step \"2x=5\": \"2x\" is not a time since start ("),
            "{e}"
        );
        assert!(e.ends_with("write e.g. 0s, 90s, 2m)"), "{e}");
        assert_eq!(
            err("0s=1,1m=lots"),
            "step \"1m=lots\": \"lots\" is not a whole number of series (write e.g. 200000)"
        );
        assert_eq!(
            err("0s=-5"),
            "step \"0s=-5\": \"-5\" is not a whole number of series (write e.g. 200000)"
        );
        assert_eq!(
            err("0s=1,1m=2000000000"),
            "step \"1m=2000000000\": 2000000000 series is more than loadgen serves (at most 1000000000)"
        );
        assert_eq!(
            err("1m=5"),
            "step \"1m=5\": the first step must be at 0s (it is the level from the start)"
        );
        assert_eq!(
            err("0s=1,2m=5,2m=6"),
            "step \"2m=6\": not later than the step before, \"2m=5\" (list steps in increasing time)"
        );
        assert_eq!(
            err("0s=1,,2m=5"),
            "step \"\": expected TIME=SERIES, e.g. 2m=200000"
        );
    }

    fn trace(csv: &str) -> Trace {
        parse_csv(csv, "t.csv").unwrap()
    }

    #[test]
    fn trace_rows_advance_at_speed_times_their_pace() {
        // Rows a minute apart at speed 60: one row per second.
        let t = trace("timestamp,value\n0,10\n60,20.4\n120,\n180,30\n180,31\n");
        let s = Steps::from_trace(&t, &t.columns[0], 60.0).unwrap();
        // The missing row keeps 20; the repeated timestamp keeps the later row.
        assert_eq!(s.steps(), &[(secs(0), 10), (secs(1), 20), (secs(3), 31)]);
        assert_eq!(s.at(Duration::from_millis(2_999)), 20);
        assert_eq!(s.at(secs(10)), 31);
    }

    #[test]
    fn trace_problems_name_the_file_and_row() {
        let t = trace("timestamp,value\n60,1\n0,2\n");
        assert_eq!(
            Steps::from_trace(&t, &t.columns[0], 1.0)
                .unwrap_err()
                .to_string(),
            "t.csv: data row 2 is earlier than the row before (loadgen follows the timestamps; sort the trace by time)"
        );
        let t = trace("timestamp,value\n0,1\n60,-2\n");
        assert_eq!(
            Steps::from_trace(&t, &t.columns[0], 1.0)
                .unwrap_err()
                .to_string(),
            "t.csv: column \"value\", data row 2: -2: a series count cannot be negative"
        );
        let t = trace("timestamp,value\n0,\n60,\n");
        assert_eq!(
            Steps::from_trace(&t, &t.columns[0], 1.0)
                .unwrap_err()
                .to_string(),
            "t.csv: column \"value\" has no values (fill in at least one row)"
        );
    }

    #[test]
    fn a_leading_gap_takes_the_first_value() {
        let t = trace("timestamp,value\n0,\n60,5\n120,6\n");
        let s = Steps::from_trace(&t, &t.columns[0], 1.0).unwrap();
        assert_eq!(s.steps(), &[(secs(0), 5), (secs(120), 6)]);
    }

    #[test]
    fn pipelines_follow_their_own_trace_column_or_the_demand() {
        let t = trace("timestamp,input,p0001\n0,10,100\n60,20,200\n");
        let levels = Levels::from_trace(numbered_pipelines(3), &t, 60.0).unwrap();
        assert_eq!(levels.all(secs(0)), vec![10, 100, 10]);
        assert_eq!(levels.all(secs(1)), vec![20, 200, 20]);
    }

    #[test]
    fn levels_set_through_the_api_replace_the_source() {
        let steps = Steps::parse_schedule("0s=1,1m=2").unwrap();
        let mut levels = Levels::new(numbered_pipelines(3), steps).unwrap();
        assert_eq!(levels.names(), ["p0000", "p0001", "p0002"]);
        levels.set(Some("p0001"), 50).unwrap();
        assert_eq!(levels.all(secs(0)), vec![1, 50, 1]);
        assert_eq!(levels.all(secs(60)), vec![2, 50, 2]);
        levels.set(None, 7).unwrap();
        assert_eq!(levels.all(secs(60)), vec![7, 7, 7]);
        assert_eq!(
            levels.set(Some("p9"), 1).unwrap_err().to_string(),
            "unknown pipeline \"p9\" (GET /api/v1/level lists them)"
        );
    }

    #[test]
    fn pipeline_lists_are_checked() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let new = |v: &[&str]| Levels::new(names(v), Steps::constant(1)).unwrap_err();
        assert_eq!(new(&[]), PipelinesError::None);
        assert_eq!(new(&["a", ""]), PipelinesError::EmptyName);
        assert_eq!(
            new(&["a", "b", "a"]).to_string(),
            "--pipeline \"a\" is given twice (name each pipeline once)"
        );
    }
}
