//! Trace readers: turn a recorded demand trace (a CSV file or a saved Prometheus
//! `query_range` response) into a `Trace` of timestamps and named columns for the simulator.
//!
//! Parsing is by hand and in one pass, because the simulator must replay a year of 15 s
//! ticks (2.1 M rows) including parsing in well under a second. Every malformed input is an
//! error that names the file, the 1-based line, the column and what to do; nothing panics.
//! Missing values stay missing (NaN), never zero: the runner turns them into `Empty`
//! observations.

use crate::core::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A recorded or synthetic trace: one row per observation, one column per signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Where it came from: the file path, or `synthetic:<kind>`; used in reports and errors.
    pub origin: String,
    /// Time of each row, as given (rows may repeat, go backwards or have gaps).
    pub timestamps: Vec<Timestamp>,
    /// The signals, each as long as `timestamps`.
    pub columns: Vec<Column>,
}

/// One signal of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header name (CSV), `signal` label or label set (Prometheus), `input` (synthetic).
    pub name: String,
    /// One value per row; NaN means the row has no value (an `Empty` observation).
    pub values: Vec<f64>,
}

/// Largest magnitude a trace value may have: a trillion series, the largest budget too.
/// Anything above is a unit mistake (bytes for series) or a corrupt file, and would make
/// every figure of the report meaningless.
pub const MAX_VALUE: f64 = 1e12;

/// What a trace's values are, which decides what a value cell may hold. One rule for
/// every reader (CSV and Prometheus JSON alike): a value is a finite number of magnitude
/// at most [`MAX_VALUE`]; series counts may not be negative either. Missing values (an
/// empty cell, `NaN`) are always allowed and stay missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// Series counts used as they are (no rescaling): in [0, `MAX_VALUE`].
    SeriesCounts,
    /// A signal of any sign whose shape is used (rescaled onto a budget, or scored for
    /// anomalies): in [-`MAX_VALUE`, `MAX_VALUE`].
    Signal,
}

impl Values {
    /// Why `v` (finite) cannot be a value of this kind, or `None` if it can.
    fn problem(self, v: f64) -> Option<&'static str> {
        if v.abs() > MAX_VALUE {
            Some(
                "is above 1e12, the most series a trace may hold (check the unit, or rescale the trace)",
            )
        } else if v < 0.0 && self == Values::SeriesCounts {
            Some(
                "is negative, and a series count cannot be (fix the row, or rescale the trace onto the budget if it is a signal of another kind)",
            )
        } else {
            None
        }
    }
}

impl Trace {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True if the trace has no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The demand signal (series entering the pipeline): column `input` if present, else
    /// the first column (NAB files call their only signal `value`).
    pub fn demand(&self) -> &[f64] {
        match self.demand_index() {
            Some(i) => &self.columns[i].values,
            None => &[],
        }
    }

    /// Maps the demand column linearly so its minimum (ignoring NaN) becomes `lo` and its
    /// maximum `hi`; if all values are equal they all become `lo`. Missing values stay
    /// missing and other columns are left as they are.
    pub fn rescale(&mut self, lo: f64, hi: f64) {
        let Some(i) = self.demand_index() else { return };
        let values = &mut self.columns[i].values;
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in values.iter().filter(|v| !v.is_nan()) {
            min = min.min(v);
            max = max.max(v);
        }
        if min > max {
            return; // every value is missing
        }
        let span = max - min;
        for v in values.iter_mut().filter(|v| !v.is_nan()) {
            // (1 - f)·lo + f·hi is exact at both ends, so the maximum lands on `hi`.
            let f = if span > 0.0 { (*v - min) / span } else { 0.0 };
            *v = (1.0 - f) * lo + f * hi;
        }
    }

    fn demand_index(&self) -> Option<usize> {
        match self.columns.iter().position(|c| c.name == "input") {
            Some(i) => Some(i),
            None if self.columns.is_empty() => None,
            None => Some(0),
        }
    }
}

/// Why a trace could not be read. Each message is one line naming the file, the line (and
/// column or field where there is one) and what to do about it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {message} (check the path)")]
    Read {
        /// File path.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The file is not text (a binary file, or another encoding than UTF-8).
    #[error(
        "{path}: not a text file (invalid UTF-8 at byte {offset}); a trace is a CSV or a saved Prometheus JSON response, in UTF-8"
    )]
    NotText {
        /// File path.
        path: String,
        /// Offset of the first byte that is not UTF-8.
        offset: usize,
    },
    /// The file is empty, or its first line is data rather than column names.
    #[error(
        "{path}:{line}: no header row{found} (the first line must name the columns, like `timestamp,value` or `timestamp,input,output`)"
    )]
    NoHeader {
        /// File path.
        path: String,
        /// Line where a header was expected.
        line: usize,
        /// `: "…" looks like data` when the line exists, empty when the file is empty.
        found: String,
    },
    /// The header names the columns wrongly.
    #[error(
        "{path}:{line}: header: {problem} (the first line must be like `timestamp,value` or `timestamp,input,output`)"
    )]
    BadHeader {
        /// File path.
        path: String,
        /// Line of the header.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A header but no data rows, or a Prometheus response without points.
    #[error(
        "{path}: no data rows (add at least one row after the header, like `2024-01-01 00:00:00,1234`)"
    )]
    NoRows {
        /// File path.
        path: String,
    },
    /// A row with more or fewer cells than the header.
    #[error(
        "{path}:{line}: {found} cells but the header has {expected} (one timestamp and one value per column; leave a cell empty for a missing value)"
    )]
    CellCount {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// Cells in the header.
        expected: usize,
        /// Cells in this row.
        found: usize,
    },
    /// A timestamp cell in none of the accepted formats.
    #[error(
        "{path}:{line}: column {column:?}: {text:?} is not a timestamp (expected `YYYY-MM-DD HH:MM:SS` in UTC, RFC3339 like `2024-01-01T00:00:00Z`, or unix seconds)"
    )]
    BadTimestamp {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// Name of the timestamp column.
        column: String,
        /// The cell (shortened if long).
        text: String,
    },
    /// A value cell that is not a number.
    #[error(
        "{path}:{line}: column {column:?}: {text:?} is not a number (expected a decimal like 123.4, or an empty cell for a missing value)"
    )]
    BadNumber {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// Column name from the header.
        column: String,
        /// The cell (shortened if long).
        text: String,
    },
    /// A value cell holding infinity.
    #[error(
        "{path}:{line}: column {column:?}: {text:?} is not a finite number (write a finite value, or leave the cell empty for a missing value)"
    )]
    NonFinite {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// Column name from the header.
        column: String,
        /// The cell (shortened if long).
        text: String,
    },
    /// A value no trace of this kind can hold (see [`Values`]).
    #[error("{path}:{line}: column {column:?}: {text} {problem}")]
    OutOfRange {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// Column name from the header.
        column: String,
        /// The cell (shortened if long).
        text: String,
        /// What is wrong and what to do.
        problem: &'static str,
    },
    /// A sample value of a Prometheus response that no trace of this kind can hold.
    #[error("{path}:{line}:{column}: {message}")]
    JsonValue {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong with the value and what to do.
        message: String,
    },
    /// JSON that is malformed or not shaped like a `query_range` response.
    #[error(
        "{path}:{line}:{column}: {message} (expected the body of a Prometheus /api/v1/query_range response, saved as is)"
    )]
    Json {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser found.
        message: String,
    },
    /// Prometheus answered the query with an error.
    #[error(
        "{path}: Prometheus returned an error: {error_type}: {error} (fix the query and save a successful response)"
    )]
    PromError {
        /// File path.
        path: String,
        /// `errorType` from the response (`bad_data`, `timeout`, ...).
        error_type: String,
        /// `error` from the response.
        error: String,
    },
    /// A successful response of the wrong kind (an instant query, a scalar, ...).
    #[error(
        "{path}: resultType is {found:?}, expected \"matrix\" (save the response of /api/v1/query_range, not /api/v1/query)"
    )]
    PromResultType {
        /// File path.
        path: String,
        /// The `resultType` found.
        found: String,
    },
    /// A successful matrix response without any series.
    #[error(
        "{path}: the response has no series (check that the query matches series in the time range)"
    )]
    PromNoSeries {
        /// File path.
        path: String,
    },
}

/// Reads a trace file, choosing the format by content: a Prometheus `query_range` JSON
/// response if it starts with `{`, CSV otherwise; `values` says what a value may be.
pub fn read_trace(path: &Path, values: Values) -> Result<Trace, TraceError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TraceError::Read {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| TraceError::NotText {
        path: origin.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let body = strip_bom(&text);
    if body.trim_start().starts_with('{') {
        parse_prometheus_json_as(body, &origin, values)
    } else {
        parse_csv_as(body, &origin, values)
    }
}

/// Parses a CSV trace: a header `timestamp,<name>[,<name>...]`, then one row per
/// observation. Timestamps are `YYYY-MM-DD HH:MM:SS` (UTC, the NAB format), RFC3339, or unix
/// seconds (possibly fractional). An empty cell (or `NaN`) is a missing value. Tolerates a
/// UTF-8 BOM, CRLF line ends, blank lines and a missing final newline; rows are kept in file
/// order with their timestamps as given. `origin` names the file in errors. Values follow
/// the [`Values::Signal`] rule; see [`parse_csv_as`].
pub fn parse_csv(text: &str, origin: &str) -> Result<Trace, TraceError> {
    parse_csv_as(text, origin, Values::Signal)
}

/// [`parse_csv`] with the rule for values given.
pub fn parse_csv_as(text: &str, origin: &str, rule: Values) -> Result<Trace, TraceError> {
    let text = strip_bom(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));

    let (header_line, header) = loop {
        match lines.next() {
            None => {
                return Err(TraceError::NoHeader {
                    path: origin.into(),
                    line: 1,
                    found: String::new(),
                });
            }
            Some((_, l)) if is_blank(l) => continue,
            Some(header) => break header,
        }
    };
    let names: Vec<&str> = header.split(',').map(|c| unquote(c.trim_ascii())).collect();
    if parse_timestamp(names[0]).is_some() {
        return Err(TraceError::NoHeader {
            path: origin.into(),
            line: header_line,
            found: format!(": {:?} looks like data", clip(header)),
        });
    }
    let bad_header = |problem: String| TraceError::BadHeader {
        path: origin.into(),
        line: header_line,
        problem,
    };
    if names.len() < 2 {
        return Err(bad_header(format!(
            "{:?} has no value column",
            clip(header)
        )));
    }
    for (i, name) in names.iter().enumerate().skip(1) {
        if name.is_empty() {
            return Err(bad_header(format!("column {} has no name", i + 1)));
        }
        if names[1..i].contains(name) {
            return Err(bad_header(format!("column {name:?} appears twice")));
        }
    }

    let ncols = names.len() - 1;
    // Capacity from the file size and the header's length, not a counting pass: rows are
    // rarely shorter than the header, and an underestimate only costs a reallocation.
    let rows_hint = text.len() / (header.len() + 1).max(8) + 1;
    let mut timestamps = Vec::with_capacity(rows_hint);
    let mut values: Vec<Vec<f64>> = (0..ncols).map(|_| Vec::with_capacity(rows_hint)).collect();

    for (n, line) in lines {
        if is_blank(line) {
            continue;
        }
        let cell_count = || TraceError::CellCount {
            path: origin.into(),
            line: n,
            expected: names.len(),
            found: line.split(',').count(),
        };
        let mut cells = Cells(Some(line));
        let ts_cell = cells.next().unwrap_or_default().trim_ascii();
        let ts = parse_timestamp(ts_cell).ok_or_else(|| TraceError::BadTimestamp {
            path: origin.into(),
            line: n,
            column: names[0].to_string(),
            text: clip(ts_cell),
        })?;
        for (c, column) in values.iter_mut().enumerate() {
            let cell = cells.next().ok_or_else(cell_count)?;
            column.push(parse_value(cell, origin, n, names[c + 1], rule)?);
        }
        if cells.next().is_some() {
            return Err(cell_count());
        }
        timestamps.push(ts);
    }

    if timestamps.is_empty() {
        return Err(TraceError::NoRows {
            path: origin.into(),
        });
    }
    let columns = names[1..]
        .iter()
        .zip(values)
        .map(|(name, values)| Column {
            name: name.to_string(),
            values,
        })
        .collect();
    Ok(Trace {
        origin: origin.into(),
        timestamps,
        columns,
    })
}

/// Parses the body of a Prometheus `/api/v1/query_range` response. One series becomes
/// column `input`; several become one column each, named by their `signal` label when every
/// series has a distinct one, else by their label set (`name{k="v",...}`). Timestamps are
/// the sorted union over all series, with NaN where a series has no point; Prometheus'
/// `NaN` values are missing, `±Inf` values are errors (as in CSV). `origin` names the
/// file in errors. Values follow the [`Values::Signal`] rule; see
/// [`parse_prometheus_json_as`].
pub fn parse_prometheus_json(text: &str, origin: &str) -> Result<Trace, TraceError> {
    parse_prometheus_json_as(text, origin, Values::Signal)
}

/// [`parse_prometheus_json`] with the rule for values given.
pub fn parse_prometheus_json_as(
    text: &str,
    origin: &str,
    rule: Values,
) -> Result<Trace, TraceError> {
    let text = strip_bom(text);
    let json_err = |e: serde_json::Error| {
        let message = strip_json_location(&e.to_string());
        match message.strip_prefix(VALUE_PROBLEM) {
            Some(problem) => TraceError::JsonValue {
                path: origin.into(),
                line: e.line(),
                column: e.column(),
                message: problem.to_string(),
            },
            None => TraceError::Json {
                path: origin.into(),
                line: e.line(),
                column: e.column(),
                message,
            },
        }
    };

    // First pass: status and resultType only (the result is skipped without being built),
    // so an error response or an instant-query response gets a precise message.
    let head: PromHead = serde_json::from_str(text).map_err(json_err)?;
    if head.status != "success" {
        return Err(TraceError::PromError {
            path: origin.into(),
            error_type: head
                .error_type
                .unwrap_or_else(|| format!("status {:?}", head.status)),
            error: head
                .error
                .unwrap_or_else(|| "no error message in the response".into()),
        });
    }
    let result_type = head.data.and_then(|d| d.result_type).unwrap_or_default();
    if result_type != "matrix" {
        return Err(TraceError::PromResultType {
            path: origin.into(),
            found: result_type,
        });
    }

    let series = match rule {
        Values::SeriesCounts => serde_json::from_str::<PromFull<true>>(text)
            .map_err(json_err)?
            .data
            .result
            .into_iter()
            .map(PromSeries::from)
            .collect::<Vec<_>>(),
        Values::Signal => serde_json::from_str::<PromFull<false>>(text)
            .map_err(json_err)?
            .data
            .result
            .into_iter()
            .map(PromSeries::from)
            .collect(),
    };
    if series.is_empty() {
        return Err(TraceError::PromNoSeries {
            path: origin.into(),
        });
    }

    let (timestamps, columns) = if series.len() == 1 {
        let s = series.into_iter().next().unwrap_or_default();
        let (ts, vs) = s
            .values
            .into_iter()
            .map(|(t, v)| (secs_to_ts(t), v))
            .unzip();
        (
            ts,
            vec![Column {
                name: "input".into(),
                values: vs,
            }],
        )
    } else {
        let mut all: Vec<Timestamp> = series
            .iter()
            .flat_map(|s| s.values.iter().map(|p| secs_to_ts(p.0)))
            .collect();
        all.sort_unstable();
        all.dedup();
        let names = column_names(&series);
        let columns = series
            .iter()
            .zip(names)
            .map(|(s, name)| {
                let mut values = vec![f64::NAN; all.len()];
                for &(t, v) in &s.values {
                    if let Ok(i) = all.binary_search(&secs_to_ts(t)) {
                        values[i] = v;
                    }
                }
                Column { name, values }
            })
            .collect();
        (all, columns)
    };
    if timestamps.is_empty() {
        return Err(TraceError::NoRows {
            path: origin.into(),
        });
    }
    Ok(Trace {
        origin: origin.into(),
        timestamps,
        columns,
    })
}

/// `status`, the error fields and `data.resultType`; everything else is skipped.
#[derive(Deserialize)]
struct PromHead {
    status: String,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    data: Option<PromHeadData>,
}

#[derive(Deserialize)]
struct PromHeadData {
    #[serde(rename = "resultType")]
    result_type: Option<String>,
}

/// The response's series; `COUNTS` carries the rule of [`Values`] into the value visitor
/// (serde visitors take no arguments): true for series counts.
#[derive(Deserialize)]
struct PromFull<const COUNTS: bool> {
    data: PromData<COUNTS>,
}

#[derive(Deserialize)]
struct PromData<const COUNTS: bool> {
    result: Vec<PromRawSeries<COUNTS>>,
}

#[derive(Deserialize)]
struct PromRawSeries<const COUNTS: bool> {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, PromValue<COUNTS>)>,
}

/// One series' labels and points, values already checked.
#[derive(Default)]
struct PromSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, f64)>,
}

impl<const COUNTS: bool> From<PromRawSeries<COUNTS>> for PromSeries {
    fn from(s: PromRawSeries<COUNTS>) -> Self {
        PromSeries {
            metric: s.metric,
            values: s.values.into_iter().map(|(t, v)| (t, v.0)).collect(),
        }
    }
}

/// Starts a serde error message that is about a value's range, not the response's shape,
/// so the error says what is wrong with the value rather than what a response looks like.
const VALUE_PROBLEM: &str = "\u{1}value: ";

/// A sample value as Prometheus writes it (a string, parsed without allocating). `NaN`
/// is missing; infinities and values outside the rule of [`Values`] are errors.
#[derive(Clone, Copy)]
struct PromValue<const COUNTS: bool>(f64);

impl<'de, const COUNTS: bool> Deserialize<'de> for PromValue<COUNTS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const C: bool>;
        impl<const C: bool> Visitor<'_> for V<C> {
            type Value = PromValue<C>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value as a string, like \"42\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PromValue<C>, E> {
                match s.parse::<f64>() {
                    Ok(v) => checked(v, &format!("{:?}", clip(s))),
                    Err(_) => Err(E::custom(format!(
                        "sample value {:?} is not a number",
                        clip(s)
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PromValue<C>, E> {
                checked(v, &v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PromValue<C>, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PromValue<C>, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V::<COUNTS>)
    }
}

/// `v` (written `shown`) as a sample of a `COUNTS` trace: NaN is missing, infinities and
/// values outside the rule are errors marked with [`VALUE_PROBLEM`].
fn checked<const COUNTS: bool, E: de::Error>(v: f64, shown: &str) -> Result<PromValue<COUNTS>, E> {
    if v.is_nan() {
        return Ok(PromValue(f64::NAN));
    }
    if v.is_infinite() {
        return Err(E::custom(format!(
            "{VALUE_PROBLEM}sample value {shown} is not a finite number (a series count is finite; drop the point, or save a query that cannot divide by zero)"
        )));
    }
    let rule = if COUNTS {
        Values::SeriesCounts
    } else {
        Values::Signal
    };
    match rule.problem(v) {
        Some(problem) => Err(E::custom(format!(
            "{VALUE_PROBLEM}sample value {shown} {problem}"
        ))),
        None => Ok(PromValue(v)),
    }
}

/// Column names for several series: distinct `signal` labels if every series has one, else
/// the rendered label sets (made unique with `#2`, `#3`, ... if Prometheus sent duplicates).
fn column_names(series: &[PromSeries]) -> Vec<String> {
    let signals: Vec<Option<&String>> = series.iter().map(|s| s.metric.get("signal")).collect();
    let mut names: Vec<String> = if signals.iter().all(Option::is_some) {
        signals.iter().flatten().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let distinct = {
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len() == series.len()
    };
    if !distinct {
        names = series.iter().map(|s| render_labels(&s.metric)).collect();
    }
    for i in 1..names.len() {
        let mut k = 2;
        let base = names[i].clone();
        while names[..i].contains(&names[i]) {
            names[i] = format!("{base}#{k}");
            k += 1;
        }
    }
    names
}

/// `name{k="v",...}` the way Prometheus prints a series.
fn render_labels(metric: &BTreeMap<String, String>) -> String {
    let name = metric.get("__name__").map(String::as_str).unwrap_or("");
    let labels: Vec<String> = metric
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn secs_to_ts(secs: f64) -> Timestamp {
    Timestamp((secs * 1000.0).round() as i64)
}

/// One value cell: empty or `NaN` is missing; infinity, and a value the rule refuses, are
/// errors.
fn parse_value(
    cell: &str,
    origin: &str,
    line: usize,
    column: &str,
    rule: Values,
) -> Result<f64, TraceError> {
    let cell = cell.trim_ascii();
    if cell.is_empty() {
        return Ok(f64::NAN);
    }
    let v = match parse_decimal_fast(cell.as_bytes()) {
        Some(v) => v,
        None => match cell.parse::<f64>() {
            // `NaN` is how pandas and others write a missing value.
            Ok(v) if v.is_nan() => return Ok(v),
            Ok(v) if v.is_infinite() => {
                return Err(TraceError::NonFinite {
                    path: origin.into(),
                    line,
                    column: column.into(),
                    text: clip(cell),
                });
            }
            Ok(v) => v,
            Err(_) => {
                return Err(TraceError::BadNumber {
                    path: origin.into(),
                    line,
                    column: column.into(),
                    text: clip(cell),
                });
            }
        },
    };
    match rule.problem(v) {
        None => Ok(v),
        Some(problem) => Err(TraceError::OutOfRange {
            path: origin.into(),
            line,
            column: column.into(),
            text: clip(cell),
            problem,
        }),
    }
}

/// Plain decimals (`-123.45`, at most 15 digits, no exponent) without the general parser.
/// Exact: the digits form an integer below 2^53 and 10^k (k <= 15) is exact too, so one IEEE
/// division rounds correctly (Clinger's fast path). None sends the cell to `str::parse`.
fn parse_decimal_fast(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let (mut mantissa, mut count, mut frac, mut seen_dot) = (0u64, 0usize, 0usize, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
                frac += usize::from(seen_dot);
                if count > 15 {
                    return None;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let v = mantissa as f64 / POW10[frac];
    Some(if negative { -v } else { v })
}

/// Parses a timestamp cell: the NAB format by a fixed-position fast path, then unix seconds,
/// then RFC3339 and other ISO-8601 forms through chrono (naive ones taken as UTC).
fn parse_timestamp(s: &str) -> Option<Timestamp> {
    if let Some(t) = parse_civil_fast(s.as_bytes()) {
        return Some(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        // 1e13 s is ~300,000 years: beyond it the millisecond value would not fit.
        return (secs.is_finite() && secs.abs() < 1e13).then(|| secs_to_ts(secs));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(Timestamp(t.timestamp_millis()));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Timestamp(t.and_utc().timestamp_millis()));
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Timestamp(t.and_utc().timestamp_millis()))
}

/// `YYYY-MM-DD HH:MM:SS` (or with `T`) at fixed positions, as UTC; None for anything else,
/// including out-of-range fields, so the slow path can report it.
fn parse_civil_fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    // A fixed-size array lets the compiler drop every bounds check below.
    let b: &[u8; 19] = b.try_into().ok()?;
    let d = b.map(|c| c.wrapping_sub(b'0'));
    if [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter()
        .any(|&i| d[i] > 9)
    {
        return None;
    }
    let two = |i: usize| i64::from(d[i]) * 10 + i64::from(d[i + 1]);
    let year = two(0) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(Timestamp(
        (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000,
    ))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The comma-separated cells of a line. Faster than `str::split` on short lines, where
/// the searcher's setup costs more than scanning a few dozen bytes.
struct Cells<'a>(Option<&'a str>);

impl<'a> Iterator for Cells<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b',') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn is_blank(line: &str) -> bool {
    line.is_empty() || (line.as_bytes()[0].is_ascii_whitespace() && line.trim_ascii().is_empty())
}

fn unquote(cell: &str) -> &str {
    cell.strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(cell)
}

/// At most 40 characters of user text for an error message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// serde_json appends ` at line L column C`; the error already carries them as fields.
fn strip_json_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp(
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis(),
        )
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn nab_csv_with_crlf_bom_and_no_final_newline() {
        let text = "\u{feff}timestamp,value\r\n2014-04-01 00:00:00,20.5\r\n2014-04-01 00:05:00,21";
        let t = parse_csv(text, "nab.csv").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.timestamps,
            vec![ts("2014-04-01T00:00:00Z"), ts("2014-04-01T00:05:00Z")]
        );
        assert_eq!(t.columns[0].name, "value");
        assert_eq!(t.demand(), &[20.5, 21.0]);
        assert_eq!(t.origin, "nab.csv");
    }

    #[test]
    fn blank_trailing_lines_and_backwards_repeated_timestamps_are_kept_as_given() {
        let text = "timestamp,value\n100,1\n90,2\n90,3\n5000,4\n\n\r\n  \n";
        let t = parse_csv(text, "x.csv").unwrap();
        let secs: Vec<i64> = t.timestamps.iter().map(|t| t.as_millis() / 1000).collect();
        assert_eq!(secs, vec![100, 90, 90, 5000]);
        assert_eq!(t.demand(), &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn multi_column_with_missing_cells_and_timestamp_formats() {
        let text = "timestamp,output,input\n\
                    2024-01-01T00:00:00Z,5,10\n\
                    2024-01-01T01:00:15+01:00,,11\n\
                    1704067230.5,7,\n\
                    2024-01-01 00:00:45.250,NaN,13\n";
        let t = parse_csv(text, "m.csv").unwrap();
        assert_eq!(t.columns.len(), 2);
        assert!(same(t.demand(), &[10.0, 11.0, f64::NAN, 13.0]));
        assert!(same(
            &t.column("output").unwrap().values,
            &[5.0, f64::NAN, 7.0, f64::NAN]
        ));
        let ms: Vec<i64> = t
            .timestamps
            .iter()
            .map(|t| t.as_millis() - 1_704_067_200_000)
            .collect();
        assert_eq!(ms, vec![0, 15_000, 30_500, 45_250]);
    }

    #[test]
    fn fast_decimal_path_agrees_with_std() {
        for s in [
            "0",
            "-0",
            "1",
            "123.4",
            "0.1",
            "-99.999",
            "50123.5",
            "999999999999999",
            ".5",
            "5.",
            "0.00000000000001",
        ] {
            assert_eq!(
                parse_decimal_fast(s.as_bytes()).map(f64::to_bits),
                Some(s.parse::<f64>().unwrap().to_bits()),
                "{s}"
            );
        }
        for s in [
            "",
            "-",
            ".",
            "1e5",
            "1..2",
            "+1",
            "1234567890123456",
            "nan",
            "1,2",
        ] {
            assert_eq!(parse_decimal_fast(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn fast_nab_path_agrees_with_chrono() {
        for s in [
            "1970-01-01 00:00:00",
            "2000-02-29 23:59:59",
            "2024-12-31 12:34:56",
            "1969-07-20 20:17:40",
        ] {
            let fast = parse_civil_fast(s.as_bytes()).unwrap();
            let slow = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            assert_eq!(fast.as_millis(), slow.and_utc().timestamp_millis(), "{s}");
        }
        assert!(parse_civil_fast(b"2023-02-29 00:00:00").is_none());
        assert!(parse_timestamp("2023-02-29 00:00:00").is_none());
        assert!(parse_civil_fast(b"2023-13-01 00:00:00").is_none());
    }

    #[test]
    fn bad_number_names_line_column_and_fix() {
        let text = "timestamp,value\n2014-04-01 00:00:00,1\n\n2014-04-01 00:05:00,abc\n";
        let e = parse_csv(text, "data/x.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "data/x.csv:4: column \"value\": \"abc\" is not a number (expected a decimal like 123.4, or an empty cell for a missing value)"
        );
    }

    #[test]
    fn wrong_cell_counts_are_errors_with_lines() {
        let e = parse_csv("timestamp,input,output\n1,2,3\n4,5\n", "c.csv").unwrap_err();
        assert!(
            matches!(
                e,
                TraceError::CellCount {
                    line: 3,
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_csv("timestamp,value\n1,2,3\n", "c.csv").unwrap_err();
        assert!(
            matches!(
                e,
                TraceError::CellCount {
                    line: 2,
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("c.csv:2: 3 cells but the header has 2")
        );
    }

    #[test]
    fn bad_timestamp_infinity_header_and_empty_files() {
        let e = parse_csv("timestamp,value\n2014-04-01 25:00:00,1\n", "t.csv").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "t.csv:2: column \"timestamp\": \"2014-04-01 25:00:00\" is not a timestamp"
            ),
            "{e}"
        );
        let e = parse_csv("timestamp,value\n1,inf\n", "t.csv").unwrap_err();
        assert!(matches!(e, TraceError::NonFinite { line: 2, .. }), "{e:?}");
        let e = parse_csv("2014-04-01 00:00:00,1\n", "t.csv").unwrap_err();
        assert!(matches!(e, TraceError::NoHeader { line: 1, .. }), "{e:?}");
        assert!(matches!(
            parse_csv("", "t.csv"),
            Err(TraceError::NoHeader { line: 1, .. })
        ));
        assert!(matches!(
            parse_csv("\u{feff}", "t.csv"),
            Err(TraceError::NoHeader { .. })
        ));
        assert!(matches!(
            parse_csv("timestamp,value\r\n\r\n", "t.csv"),
            Err(TraceError::NoRows { .. })
        ));
        assert!(matches!(
            parse_csv("timestamp\n1\n", "t.csv"),
            Err(TraceError::BadHeader { .. })
        ));
        assert!(matches!(
            parse_csv("timestamp,a,a\n1,2,3\n", "t.csv"),
            Err(TraceError::BadHeader { .. })
        ));
    }

    #[test]
    fn messages_are_one_line_even_for_hostile_input() {
        let e = parse_csv("timestamp,value\n1,\"a\rb\"\n", "t.csv").unwrap_err();
        assert!(!e.to_string().contains(['\n', '\r']), "{e}");
        let long = format!("timestamp,value\n1,{}\n", "x".repeat(1000));
        assert!(parse_csv(&long, "t.csv").unwrap_err().to_string().len() < 300);
    }

    #[test]
    fn never_panics_on_junk() {
        for junk in [
            "\0",
            ",",
            ",,\n,,",
            "timestamp,\n",
            "é,ü\n1,2",
            "timestamp,value\n\u{feff}1,2",
            "\n\n\n",
            "{",
            "{}",
        ] {
            let _ = parse_csv(junk, "j");
            let _ = parse_prometheus_json(junk, "j");
        }
    }

    #[test]
    fn rescale_maps_min_and_max_ignoring_missing() {
        let mut t = parse_csv("timestamp,value\n1,10\n2,\n3,30\n4,20\n", "r").unwrap();
        t.rescale(100.0, 300.0);
        assert!(same(t.demand(), &[100.0, f64::NAN, 300.0, 200.0]));
        let mut flat = parse_csv("timestamp,value\n1,5\n2,5\n", "r").unwrap();
        flat.rescale(7.0, 9.0);
        assert_eq!(flat.demand(), &[7.0, 7.0]);
    }

    #[test]
    fn demand_prefers_input_column() {
        let t = parse_csv("timestamp,output,input\n1,1,2\n", "d").unwrap();
        assert_eq!(t.demand(), &[2.0]);
        let t = parse_csv("timestamp,a,b\n1,1,2\n", "d").unwrap();
        assert_eq!(t.demand(), &[1.0]);
    }

    #[test]
    fn prometheus_one_series_is_input() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"x","pipeline":"p"},"values":[[1700000000.123,"42"],[1700000015,"NaN"],[1700000045,"7e3"]]}]}}"#;
        let t = parse_prometheus_json(body, "p.json").unwrap();
        assert_eq!(t.columns[0].name, "input");
        assert_eq!(t.timestamps[0], Timestamp(1_700_000_000_123));
        assert!(same(t.demand(), &[42.0, f64::NAN, 7000.0]));
    }

    #[test]
    fn prometheus_two_series_union_of_timestamps() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"signal":"input","pipeline":"p"},"values":[[10,"1"],[20,"2"]]},
            {"metric":{"signal":"output","pipeline":"p"},"values":[[20,"3"],[30,"4"]]}]},"warnings":["w"]}"#;
        let t = parse_prometheus_json(body, "p.json").unwrap();
        assert_eq!(
            t.timestamps,
            vec![Timestamp(10_000), Timestamp(20_000), Timestamp(30_000)]
        );
        assert!(same(t.demand(), &[1.0, 2.0, f64::NAN]));
        assert!(same(
            &t.column("output").unwrap().values,
            &[f64::NAN, 3.0, 4.0]
        ));

        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"a"},"values":[[10,"1"]]},
            {"metric":{"__name__":"up","job":"b"},"values":[[10,"0"]]}]}}"#;
        let t = parse_prometheus_json(body, "p.json").unwrap();
        assert_eq!(t.columns[0].name, "up{job=\"a\"}");
        assert_eq!(t.columns[1].name, "up{job=\"b\"}");
    }

    #[test]
    fn one_value_rule_for_every_reader() {
        let csv =
            |v: &str, rule| parse_csv_as(&format!("timestamp,value\n1,5\n2,{v}\n"), "t.csv", rule);
        let json = |v: &str, rule| {
            let body = format!(
                "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[\n{{\"values\":[[1,\"5\"],[2,\"{v}\"]]}}]}}}}"
            );
            parse_prometheus_json_as(&body, "t.json", rule)
        };
        for rule in [Values::SeriesCounts, Values::Signal] {
            // Missing values stay missing in both formats.
            assert!(csv("NaN", rule).unwrap().demand()[1].is_nan());
            assert!(csv("", rule).unwrap().demand()[1].is_nan());
            assert!(json("NaN", rule).unwrap().demand()[1].is_nan());
            // Infinities and absurd magnitudes are errors in both.
            for bad in ["inf", "-inf", "1e300", "-2e12", "1000000000001"] {
                let e = csv(bad, rule).unwrap_err().to_string();
                assert!(e.starts_with("t.csv:3: column \"value\": "), "{bad}: {e}");
                let e = json(bad, rule).unwrap_err().to_string();
                assert!(e.starts_with("t.json:2:"), "{bad}: {e}");
                assert!(!e.contains("query_range"), "{bad}: {e}");
            }
            assert_eq!(csv("1e12", rule).unwrap().demand()[1], 1e12);
        }
        // Negative counts: only a signal (rescaled, or scored) may have them.
        let e = csv("-50", Values::SeriesCounts).unwrap_err().to_string();
        assert_eq!(
            e,
            "t.csv:3: column \"value\": -50 is negative, and a series count cannot be (fix the row, or rescale the trace onto the budget if it is a signal of another kind)"
        );
        let e = json("-50", Values::SeriesCounts).unwrap_err().to_string();
        assert!(
            e.starts_with("t.json:2:") && e.contains("sample value \"-50\" is negative"),
            "{e}"
        );
        assert_eq!(csv("-50", Values::Signal).unwrap().demand()[1], -50.0);
        assert_eq!(json("-50", Values::Signal).unwrap().demand()[1], -50.0);
        let e = csv("1e300", Values::SeriesCounts).unwrap_err().to_string();
        assert!(e.contains("1e300 is above 1e12"), "{e}");
    }

    #[test]
    fn prometheus_errors() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_prometheus_json(body, "e.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "e.json: Prometheus returned an error: bad_data: parse error at char 5 (fix the query and save a successful response)"
        );
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#;
        assert!(matches!(
            parse_prometheus_json(body, "e"),
            Err(TraceError::PromResultType { .. })
        ));
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(
            parse_prometheus_json(body, "e"),
            Err(TraceError::PromNoSeries { .. })
        ));
        let body = "{\"status\":\"success\",\n\"data\":{\"resultType\":\"matrix\",\"result\":[{\"values\":[[1,\"x\"]]}]}}";
        let e = parse_prometheus_json(body, "e.json").unwrap_err();
        assert!(matches!(e, TraceError::Json { line: 2, .. }), "{e:?}");
        assert!(
            e.to_string().contains("sample value \"x\" is not a number"),
            "{e}"
        );
        let e = parse_prometheus_json("{\"status\": ", "e.json").unwrap_err();
        assert!(matches!(e, TraceError::Json { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn read_trace_dispatches_by_content_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "timestamp,value\n1,2\n").unwrap();
        assert_eq!(
            read_trace(&csv, Values::SeriesCounts).unwrap().demand(),
            &[2.0]
        );
        let json = dir.path().join("a.json");
        std::fs::write(&json, "\u{feff}  {\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"values\":[[1,\"5\"]]}]}}").unwrap();
        assert_eq!(
            read_trace(&json, Values::SeriesCounts).unwrap().demand(),
            &[5.0]
        );
        let e = read_trace(&dir.path().join("missing.csv"), Values::SeriesCounts).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert!(e.to_string().ends_with("(check the path)"), "{e}");
        let bin = dir.path().join("b.csv");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        let e = read_trace(&bin, Values::SeriesCounts).unwrap_err();
        assert!(matches!(e, TraceError::NotText { offset: 0, .. }), "{e:?}");
        assert!(!e.to_string().contains("check the path"), "{e}");
    }
}
