//! Scenario files (`simulations/*.yaml`): which demand to replay (a recorded trace or a
//! synthetic shape), how the collector reacts to each profile (the plant), the budget, and
//! which policies and baselines to compare.
//!
//! Loading is strict like the policy files, and reads them the same way (section by
//! section with the policy module's `Sections`, positions from its YAML walk): unknown
//! fields are errors, ranges are checked on the fields themselves, and every problem of a
//! file is reported at once, each at its `file:line:column` with its field path, in plain
//! words (no Rust type names). A policy file given as a scenario is recognised and the
//! message says to pass it with `--policy`. Paths inside a scenario are relative to its
//! folder.

use crate::core::Timestamp;
use crate::core::config::ProfileSpec;
use crate::policy::{
    LadderProblem, MIN_PROFILES, Positions, Problem, Reporter, Sections, check_ladder,
};
use crate::sim::runner::Plant;
use crate::sim::synth::{SynthSpec, deserialize_map_checked, generate};
use crate::sim::trace::{Trace, TraceError, Values, read_trace};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Start of every synthetic trace (2024-01-01T00:00:00Z), fixed so runs are reproducible.
pub const SYNTHETIC_START: Timestamp = Timestamp::from_secs(1_704_067_200);

/// Longest reload delay a scenario may model, in ticks.
pub const MAX_DELAY_TICKS: u32 = 100;

/// A loaded and checked scenario; paths are resolved against the scenario's folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The scenario file, for reports and messages.
    pub path: PathBuf,
    /// Short name; it names the output files, so it is limited to `[A-Za-z0-9._-]`.
    pub name: String,
    /// What the scenario exercises, for the report.
    pub description: String,
    /// Where the demand comes from.
    pub source: TraceSource,
    /// Optional mapping of the demand's min/max onto multiples of the budget, so a trace
    /// recorded at any scale challenges this budget.
    pub rescale: Option<Rescale>,
    /// Virtual time between ticks (and between synthetic rows).
    pub tick: Duration,
    /// Series budget of the simulated pipeline.
    pub budget_series: f64,
    /// The simulated collector: each profile's true retention (which may differ from what
    /// the policy expects; the engine measures it online), reload delay and output noise.
    pub plant: Plant,
    /// Policy files to run, resolved.
    pub policies: Vec<PathBuf>,
    /// Whether to run the built-in threshold, HPA-style and oracle controllers too.
    pub baselines: bool,
}

/// The demand of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceSource {
    /// A CSV or Prometheus JSON file (resolved path).
    File(PathBuf),
    /// A generated shape.
    Synthetic(SynthSpec),
}

/// Demand min and max after rescaling, as multiples of the budget (0.4 = 40 % of budget).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale {
    /// Multiple of the budget the trace's minimum maps to.
    pub min: f64,
    /// Multiple of the budget the trace's maximum maps to.
    pub max: f64,
}

/// Why a scenario could not be loaded. Each message is one line naming the file, and the
/// line and column or the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("cannot read {path}: {message} ({hint})")]
    Read {
        /// Scenario path.
        path: String,
        /// The operating system's reason.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// Every problem of the file, one line each (`FILE:LINE:COL: field: message`), in
    /// file order; never empty.
    #[error("{}", render(.problems))]
    Invalid {
        /// Scenario path.
        path: String,
        /// Each problem, located where it can be.
        problems: Vec<Problem>,
    },
    /// The scenario is fine but its trace file is not.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Top-level keys of a scenario, in the order the shipped files write them.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "name",
    "description",
    "trace",
    "synthetic",
    "rescale",
    "tick",
    "budget_series",
    "plant",
    "policies",
    "baselines",
];

/// Keys only a policy file has: a scenario with them is a policy given by mistake.
const POLICY_KEYS: [&str; 6] = [
    "profiles",
    "signals",
    "hysteresis",
    "guards",
    "pid",
    "initial_profile",
];

impl Scenario {
    /// Reads, parses and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            message: match e.kind() {
                std::io::ErrorKind::InvalidData => "not UTF-8 text".to_string(),
                _ => crate::fsutil::io_text(&e),
            },
            hint: match e.kind() {
                std::io::ErrorKind::InvalidData => {
                    "a scenario is a YAML file like those in simulations/"
                }
                std::io::ErrorKind::IsADirectory => "give the path of a .yaml file",
                std::io::ErrorKind::PermissionDenied => "check the file's permissions",
                _ => "check the path",
            },
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses and checks scenario text as if read from `path` (which locates relative
    /// paths and names the file in errors). Every problem is reported at once.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let positions = Positions::of(text);
        let mut rep = Reporter {
            origin: &shown,
            positions: &positions,
            problems: Vec::new(),
            // Scenarios have no warnings; every problem refuses the file.
            warnings: Vec::new(),
        };
        let scenario = read(text, path, &mut rep);
        match scenario {
            Some(s) if rep.problems.is_empty() => Ok(s),
            _ => {
                let mut problems = rep.problems;
                for p in &mut problems {
                    p.message = plain_words(&p.message);
                }
                if problems.is_empty() {
                    // Unreachable by construction; never hand out an error without a reason.
                    problems.push(Problem {
                        path: shown.clone(),
                        line: None,
                        col: None,
                        field: String::new(),
                        message: "scenario rejected".to_string(),
                    });
                }
                problems.sort_by_key(|p| (p.line.is_none(), p.line, p.col));
                Err(ScenarioError::Invalid {
                    path: shown,
                    problems,
                })
            }
        }
    }

    /// The demand trace: the file read or the shape generated (from `SYNTHETIC_START`, one
    /// row per `tick`), then rescaled onto the budget if `rescale` is set.
    pub fn trace(&self) -> Result<Trace, ScenarioError> {
        let mut trace = match &self.source {
            // A rescaled trace is a shape of any sign; one used as is holds series counts.
            TraceSource::File(path) => read_trace(
                path,
                if self.rescale.is_some() {
                    Values::Signal
                } else {
                    Values::SeriesCounts
                },
            )?,
            TraceSource::Synthetic(spec) => generate(spec, self.tick, SYNTHETIC_START),
        };
        if let Some(r) = self.rescale {
            trace.rescale(r.min * self.budget_series, r.max * self.budget_series);
        }
        Ok(trace)
    }
}

/// Reads every section, reporting each problem; `None` when something is missing or wrong.
fn read(text: &str, path: &Path, rep: &mut Reporter<'_>) -> Option<Scenario> {
    if let Some(pos) = rep.positions.too_deep {
        rep.problems.push(Problem {
            path: rep.origin.to_string(),
            line: Some(pos.line),
            col: Some(pos.col),
            field: String::new(),
            message: "nested far deeper than a scenario ever is (at most 3 levels)".into(),
        });
        return None;
    }
    if !rep.positions.duplicates.is_empty() {
        for (field, pos) in rep.positions.duplicates.clone() {
            rep.problems.push(Problem {
                path: rep.origin.to_string(),
                line: Some(pos.line),
                col: Some(pos.col),
                field,
                message: "duplicate key; each key may appear only once".into(),
            });
        }
        return None;
    }
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            rep.serde(&e);
            return None;
        }
    };
    let mapping = match value {
        serde_yaml_ng::Value::Mapping(m) => m,
        serde_yaml_ng::Value::Null => {
            rep.at(
                "",
                "the scenario is empty; it needs name, tick, budget_series, plant, and a trace or synthetic demand (see simulations/*.yaml)",
            );
            return None;
        }
        _ => {
            rep.problems.push(Problem {
                path: rep.origin.to_string(),
                line: Some(1),
                col: Some(1),
                field: String::new(),
                message:
                    "a scenario must be a mapping of `key: value` lines (see simulations/*.yaml)"
                        .into(),
            });
            return None;
        }
    };
    let keys: Vec<&str> = mapping.keys().filter_map(|k| k.as_str()).collect();
    let has = |k: &str| keys.contains(&k);
    if POLICY_KEYS.iter().any(|k| has(k)) && !has("plant") && !has("synthetic") && !has("trace") {
        rep.problems.push(Problem {
            path: rep.origin.to_string(),
            line: Some(1),
            col: Some(1),
            field: String::new(),
            message: "this is a policy file, not a scenario; pass it with --policy (e.g. `phoenix simulate SCENARIO --policy FILE`, or `phoenix simulate --trace TRACE.csv --policy FILE`)".into(),
        });
        return None;
    }
    for key in mapping.keys() {
        match key.as_str() {
            Some(k) if TOP_LEVEL_KEYS.contains(&k) => {}
            Some(k) => rep.at(
                k,
                format!(
                    "unknown field `{k}`, expected one of: {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ),
            None => rep.at(
                "",
                format!(
                    "keys must be field names, expected one of: {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ),
        }
    }

    let mut failed = BTreeSet::new();
    let mut s = Sections {
        text,
        rep,
        failed: &mut failed,
    };
    let name = s.required::<String>("name");
    let description = s.optional::<Option<String>>("description").flatten();
    let trace = s.optional::<Option<TraceFile>>("trace").flatten();
    let synthetic = s.optional::<Option<SynthSpec>>("synthetic").flatten();
    let rescale = s.optional::<Option<Rescale>>("rescale").flatten();
    let tick = s.required::<Tick>("tick");
    let budget = s.required::<Budget>("budget_series");
    let plant = s.required::<PlantFile>("plant");
    let policies = s.optional::<Option<Vec<PathBuf>>>("policies").flatten();
    let baselines = s.optional::<Option<Flag>>("baselines").flatten();
    let broken = |k: &str| failed.contains(k);
    if broken("plant")
        && let Some(serde_yaml_ng::Value::Mapping(m)) = mapping.get("plant")
    {
        plant_fields(m, rep);
    }

    let dir = path.parent().unwrap_or(Path::new(""));
    if let Some(name) = &name
        && (name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        rep.at(
            "name",
            format!(
                "{name:?} is not a valid name (use letters, digits, '.', '_' and '-'; it names the output files)"
            ),
        );
    }
    let source = match (&trace, &synthetic) {
        (Some(t), None) if !broken("synthetic") => {
            let resolved = dir.join(&t.file);
            if !resolved.is_file() {
                rep.at(
                    "trace.file",
                    format!(
                        "{} not found (paths are relative to the scenario's folder)",
                        resolved.display()
                    ),
                );
            }
            Some(TraceSource::File(resolved))
        }
        (None, Some(spec)) if !broken("trace") => Some(TraceSource::Synthetic(spec.clone())),
        (Some(_), Some(_)) => {
            rep.at(
                "synthetic",
                "both trace and synthetic are set (keep exactly one)",
            );
            None
        }
        (None, None) if !broken("trace") && !broken("synthetic") => {
            rep.at(
                "",
                "trace, synthetic: neither is set (add `trace: { file: ... }` or `synthetic: { kind: ... }`)",
            );
            None
        }
        _ => None,
    };
    let policies: Vec<PathBuf> = policies
        .unwrap_or_default()
        .iter()
        .map(|p| dir.join(p))
        .collect();
    for (i, p) in policies.iter().enumerate() {
        if !p.is_file() {
            rep.at(
                &format!("policies[{i}]"),
                format!(
                    "{} not found (paths are relative to the scenario's folder)",
                    p.display()
                ),
            );
        }
    }
    let baselines = baselines.is_none_or(|f| f.0);
    if policies.is_empty() && !baselines && !broken("policies") {
        rep.at(
            "policies",
            "empty while baselines is false (nothing to simulate; list a policy or set baselines: true)",
        );
    }
    let (name, source, tick, budget, plant) = (name?, source?, tick?, budget?, plant?);
    Some(Scenario {
        path: path.to_path_buf(),
        name,
        description: description.unwrap_or_default(),
        source,
        rescale,
        tick: tick.0,
        budget_series: budget.0,
        plant: Plant {
            ladder: plant.retention.0,
            delay_ticks: plant.delay_ticks,
            noise: plant.noise,
            seed: plant.seed,
            failure_rate: plant.failure_rate,
        },
        policies,
        baselines,
    })
}

/// The plant's other problems: serde stopped at the section's first (already reported),
/// so each field is read again on its own and reported at its key.
fn plant_fields(plant: &serde_yaml_ng::Mapping, rep: &mut Reporter<'_>) {
    use serde_yaml_ng::from_value;
    let reported: Vec<String> = rep.problems.iter().map(|p| p.field.clone()).collect();
    for (key, value) in plant {
        let Some(k) = key.as_str() else { continue };
        let field = format!("plant.{k}");
        if reported
            .iter()
            .any(|f| f == &field || f.starts_with(&format!("{field}.")))
        {
            continue;
        }
        let v = value.clone();
        let err = match k {
            "retention" => from_value::<Ladder>(v).err(),
            "delay_ticks" => from_value::<Delay>(v).err(),
            "noise" => from_value::<Noise>(v).err(),
            "seed" => from_value::<u64>(v).err(),
            "failure_rate" => from_value::<FailureRate>(v).err(),
            _ => {
                rep.at(
                    &field,
                    format!(
                        "unknown field `{k}`, expected one of: retention, delay_ticks, noise, seed, failure_rate"
                    ),
                );
                continue;
            }
        };
        if let Some(e) = err {
            rep.at(&field, e.to_string());
        }
    }
}

/// serde's words for Rust types, in the words of the file's reader.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, plain) in [
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list, like [../policies/default.yaml]",
        ),
        ("expected a borrowed string", "expected a string"),
        ("expected path string", "expected a file path"),
        ("expected a path string", "expected a file path"),
    ] {
        m = m.replace(rust, plain);
    }
    // Any struct or enum name left (`expected struct X`) says nothing to an SRE.
    if let Some(i) = m
        .find("expected struct ")
        .or_else(|| m.find("expected enum "))
    {
        m = format!("{}expected a mapping of `key: value` fields", &m[..i]);
    }
    if let Some(rest) = m.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        m = format!("required field `{}` is missing", &rest[..end]);
    }
    m
}

/// `tick`, checked while it is read so the error points at the value.
struct Tick(Duration);

impl<'de> Deserialize<'de> for Tick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_tick(d).map(Tick)
    }
}

/// `budget_series`, checked while it is read.
struct Budget(f64);

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_budget(d).map(Budget)
    }
}

/// `plant.delay_ticks` on its own, for [`plant_fields`].
struct Delay;

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_delay(d).map(|_| Delay)
    }
}

/// `plant.noise` on its own.
struct Noise;

impl<'de> Deserialize<'de> for Noise {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_noise(d).map(|_| Noise)
    }
}

/// `plant.failure_rate` on its own.
struct FailureRate;

impl<'de> Deserialize<'de> for FailureRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_failure_rate(d).map(|_| FailureRate)
    }
}

/// `baselines`, with a message in words.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
        }
        d.deserialize_bool(V)
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping like `{ file: traces/label-leak.csv }`"
)]
struct TraceFile {
    file: PathBuf,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping like `{ retention: { conservative: 0.9, aggressive: 0.35 }, delay_ticks: 1 }`"
)]
struct PlantFile {
    retention: Ladder,
    #[serde(default = "one", deserialize_with = "de_delay")]
    delay_ticks: u32,
    #[serde(default, deserialize_with = "de_noise")]
    noise: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default, deserialize_with = "de_failure_rate")]
    failure_rate: f64,
}

fn one() -> u32 {
    1
}

/// A number checked against a range while it is read, so the error points at the value.
#[derive(Clone, Copy)]
struct Ranged {
    expected: &'static str,
    ok: fn(f64) -> bool,
}

impl<'de> Visitor<'de> for Ranged {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.expected)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if (self.ok)(v) {
            Ok(v)
        } else {
            Err(E::custom(format!(
                "{v} is out of range (expected {})",
                self.expected
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
}

impl<'de> DeserializeSeed<'de> for Ranged {
    type Value = f64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(self)
    }
}

fn de_budget<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ranged {
        expected: "a whole number of series from 1 to 1e12, like 100000",
        ok: |v| (1.0..=1e12).contains(&v) && v.fract() == 0.0,
    }
    .deserialize(d)
}

fn de_noise<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ranged {
        expected: "a relative std from 0 to 1, like 0.02",
        ok: |v| (0.0..=1.0).contains(&v),
    }
    .deserialize(d)
}

fn de_failure_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ranged {
        expected: "a share of applies that fail, from 0 to 1, like 0.05",
        ok: |v| (0.0..=1.0).contains(&v),
    }
    .deserialize(d)
}

fn de_delay<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Ranged {
        expected: "a whole number of ticks from 1 to 100: a decision at tick t is in force from t + delay_ticks",
        ok: |v| v.fract() == 0.0 && (1.0..=f64::from(MAX_DELAY_TICKS)).contains(&v),
    }
    .deserialize(d)?;
    Ok(v as u32)
}

fn de_tick<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct Tick;
    impl Visitor<'_> for Tick {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like `15s`")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            match humantime::parse_duration(s) {
                Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(86_400) => Ok(d),
                Ok(_) => Err(E::custom(format!(
                    "{s:?} is out of range (expected 1ms to 24h, like `15s`)"
                ))),
                Err(e) => Err(E::custom(format!(
                    "{s:?} is not a duration: {e} (write it like `15s` or `1m`)"
                ))),
            }
        }
    }
    d.deserialize_str(Tick)
}

impl<'de> Deserialize<'de> for Rescale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(deserialize_with = "de_multiple")]
            min: f64,
            #[serde(deserialize_with = "de_multiple")]
            max: f64,
        }
        fn de_multiple<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            Ranged {
                expected: "a multiple of the budget from 0 to 1000, like 1.5",
                ok: |v| (0.0..=1000.0).contains(&v),
            }
            .deserialize(d)
        }
        deserialize_map_checked(
            d,
            "`{ min: 0.4, max: 2.2 }` (multiples of the budget)",
            |r: Raw| {
                if r.min <= r.max {
                    Ok(Rescale {
                        min: r.min,
                        max: r.max,
                    })
                } else {
                    Err(format!(
                        "min ({}) is above max ({}) (min maps the trace's lowest value, max its highest)",
                        r.min, r.max
                    ))
                }
            },
        )
    }
}

/// The retention ladder as an ordered YAML mapping `{ name: retention, ... }`, least to
/// most reducing; a custom visitor keeps the document's order and checks each rung as it
/// is read ([`Rung`]), so a problem points at the value that causes it.
struct Ladder(Vec<ProfileSpec>);

impl<'de> Deserialize<'de> for Ladder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ladder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("profiles and what they keep, like `{ conservative: 0.9, balanced: 0.6, aggressive: 0.35 }`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ladder, A::Error> {
                let mut profiles: Vec<ProfileSpec> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let retention = map.next_value_seed(Rung {
                        before: &profiles,
                        name: &name,
                    })?;
                    profiles.push(ProfileSpec { name, retention });
                }
                // Every rung passed; what can be left is about the whole ladder.
                match check_ladder(&profiles).first() {
                    Some(problem) => Err(de::Error::custom(ladder_message(problem, &profiles))),
                    None => Ok(Ladder(profiles)),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// The retention of the profile `name`, read after the profiles `before` and checked with
/// them against the ladder rules ([`check_ladder`]) while it is read, so the error carries
/// the value's location and field path (`plant.retention.NAME`).
struct Rung<'a> {
    /// The profiles already read, in order.
    before: &'a [ProfileSpec],
    /// This profile's name.
    name: &'a str,
}

impl<'de> Visitor<'de> for Rung<'_> {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a fraction of series kept, in (0, 1]")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        let mut ladder = self.before.to_vec();
        ladder.push(ProfileSpec {
            name: self.name.to_string(),
            retention: v,
        });
        // This rung's problems depend only on the rungs before it.
        let index = self.before.len();
        match check_ladder(&ladder)
            .iter()
            .find(|p| p.index() == Some(index))
        {
            Some(problem) => Err(E::custom(ladder_message(problem, &ladder))),
            None => Ok(v),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
}

impl<'de> DeserializeSeed<'de> for Rung<'_> {
    type Value = f64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(self)
    }
}

/// A ladder problem in a scenario's words. Rung problems are reported at the rung, whose
/// field path already names the profile.
fn ladder_message(problem: &LadderProblem, ladder: &[ProfileSpec]) -> String {
    match *problem {
        LadderProblem::TooFewProfiles { found } => format!(
            "the ladder needs at least {MIN_PROFILES} profiles, found {found} (list them from least to most reducing, like `{{ conservative: 0.9, aggressive: 0.35 }}`)"
        ),
        LadderProblem::EmptyName { .. } => {
            "a profile has an empty name (name it, like `conservative: 0.9`)".to_string()
        }
        LadderProblem::DuplicateName { first, .. } => {
            format!("profile {:?} appears twice", ladder[first].name)
        }
        LadderProblem::RetentionOutOfRange { retention, .. } => {
            format!("{retention} is out of range (expected a fraction of series kept, in (0, 1])")
        }
        LadderProblem::NotDecreasing {
            index,
            retention,
            previous,
        } => format!(
            "{retention} must be below {}'s {previous} (list profiles from least to most reducing)",
            ladder[index - 1].name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::synth::Synth;

    /// A folder with `policies/default.yaml` and `simulations/` as in the repository.
    fn sandbox() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::create_dir_all(dir.path().join("simulations/traces")).unwrap();
        std::fs::write(dir.path().join("policies/default.yaml"), "# stand-in\n").unwrap();
        dir
    }

    fn parse_in(dir: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, &dir.join("simulations/s.yaml"))
    }

    const GOOD: &str = "\
name: flash-crowd
description: label explosion
synthetic: { kind: explosion, base: 60000, at_tick: 200, factor: 10, over_ticks: 80, ticks: 960, seed: 7, noise: 0.02 }
rescale: { min: 0.4, max: 2.2 }
tick: 15s
budget_series: 100000
plant:
  retention: { conservative: 0.9, balanced: 0.6, aggressive: 0.35 }
  delay_ticks: 1
  seed: 1
policies: [../policies/default.yaml]
";

    #[test]
    fn loads_a_synthetic_scenario_with_defaults() {
        let dir = sandbox();
        let s = parse_in(dir.path(), GOOD).unwrap();
        assert_eq!(s.name, "flash-crowd");
        assert_eq!(s.tick, Duration::from_secs(15));
        assert_eq!(s.budget_series, 100_000.0);
        let names: Vec<&str> = s.plant.ladder.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["conservative", "balanced", "aggressive"]);
        assert_eq!(
            (s.plant.delay_ticks, s.plant.noise, s.plant.seed),
            (1, 0.0, 1)
        );
        assert!(s.baselines);
        assert_eq!(
            s.policies,
            vec![dir.path().join("simulations/../policies/default.yaml")]
        );
        let TraceSource::Synthetic(spec) = &s.source else {
            panic!("not synthetic")
        };
        assert!(matches!(spec.shape, Synth::Explosion { factor: 10.0, .. }));

        let trace = s.trace().unwrap();
        assert_eq!(trace.len(), 960);
        assert_eq!(trace.timestamps[0], SYNTHETIC_START);
        let min = trace.demand().iter().cloned().fold(f64::INFINITY, f64::min);
        let max = trace
            .demand()
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            (min - 40_000.0).abs() < 1e-6 && (max - 220_000.0).abs() < 1e-6,
            "{min} {max}"
        );
    }

    #[test]
    fn loads_a_file_scenario_relative_to_its_folder() {
        let dir = sandbox();
        std::fs::write(
            dir.path().join("simulations/traces/t.csv"),
            "timestamp,value\n1,10\n2,20\n",
        )
        .unwrap();
        let text = GOOD.replace(
            "synthetic: { kind: explosion, base: 60000, at_tick: 200, factor: 10, over_ticks: 80, ticks: 960, seed: 7, noise: 0.02 }",
            "trace: { file: traces/t.csv }",
        );
        let path = dir.path().join("simulations/s.yaml");
        std::fs::write(&path, text).unwrap();
        let s = Scenario::load(&path).unwrap();
        assert_eq!(
            s.source,
            TraceSource::File(dir.path().join("simulations/traces/t.csv"))
        );
        let demand = s.trace().unwrap().demand().to_vec();
        assert!(
            (demand[0] - 40_000.0).abs() < 1e-6 && (demand[1] - 220_000.0).abs() < 1e-6,
            "{demand:?}"
        );
    }

    fn parse_error(text: &str) -> String {
        let dir = sandbox();
        let e = parse_in(dir.path(), text).unwrap_err();
        let shown = dir.path().join("simulations/s.yaml").display().to_string();
        // One problem per line; these tests each make one.
        let msg = e.to_string();
        msg.replace(&shown, "s.yaml")
    }

    #[test]
    fn unknown_field_is_reported_at_file_line_col() {
        let e = parse_error(&GOOD.replace("  delay_ticks: 1\n", "  delay_tick: 1\n"));
        assert!(
            e.starts_with(
                "s.yaml:9:3: plant.delay_tick: unknown field `delay_tick`, expected one of"
            ),
            "{e}"
        );
        let e = parse_error(&format!("{GOOD}colour: blue\n"));
        assert!(
            e.starts_with("s.yaml:12:1: colour: unknown field `colour`"),
            "{e}"
        );
    }

    #[test]
    fn ranges_are_reported_at_the_value() {
        let e = parse_error(&GOOD.replace("budget_series: 100000", "budget_series: 0"));
        assert!(
            e.starts_with(
                "s.yaml:6:16: budget_series: 0 is out of range (expected a whole number of series from 1 to 1e12"
            ),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("delay_ticks: 1", "delay_ticks: 101"));
        assert!(
            e.starts_with("s.yaml:9:16: plant.delay_ticks: 101 is out of range"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("delay_ticks: 1", "delay_ticks: 0"));
        assert!(e.contains("plant.delay_ticks: 0 is out of range (expected a whole number of ticks from 1 to 100"), "{e}");
        let e = parse_error(&GOOD.replace("aggressive: 0.35", "balanced: 0.35"));
        assert!(
            e.contains("profile \"balanced\" appears twice") || e.contains("duplicate"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("tick: 15s", "tick: 15 parsecs"));
        assert!(
            e.starts_with("s.yaml:5:7: tick: \"15 parsecs\" is not a duration"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("tick: 15s", "tick: 0s"));
        assert!(e.contains("tick: \"0s\" is out of range"), "{e}");
        let e = parse_error(&GOOD.replace("balanced: 0.6", "balanced: 1.2"));
        assert!(e.starts_with("s.yaml:8:"), "{e}");
        assert!(
            e.contains("plant.retention.balanced: 1.2 is out of range"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("balanced: 0.6", "balanced: 0.95"));
        assert!(
            e.contains("balanced: 0.95 must be below conservative's 0.9"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("{ min: 0.4, max: 2.2 }", "{ min: 3, max: 2.2 }"));
        assert!(
            e.starts_with("s.yaml:4:10: rescale: min (3) is above max (2.2)"),
            "{e}"
        );
        let e = parse_error(&GOOD.replace("factor: 10", "factor: -1"));
        assert!(
            e.starts_with("s.yaml:3:12: synthetic: kind explosion: factor: -1 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn the_plant_ladder_follows_the_policy_ladder_rules() {
        let ladder = |l: &str| {
            parse_error(&GOOD.replace("{ conservative: 0.9, balanced: 0.6, aggressive: 0.35 }", l))
        };
        // A name given twice is a duplicate key, pointed at where it repeats.
        let e = ladder("{ conservative: 0.9, balanced: 0.6, balanced: 0.35 }");
        assert!(
            e.starts_with("s.yaml:8:50: plant.retention.balanced: duplicate key"),
            "{e}"
        );
        let e = ladder("{ conservative: 0.9, balanced: 0.95 }");
        assert!(
            e.starts_with(
                "s.yaml:8:45: plant.retention.balanced: 0.95 must be below conservative's 0.9"
            ),
            "{e}"
        );
        let e = ladder("{ conservative: 0.9, '': 0.5 }");
        assert!(e.contains("a profile has an empty name"), "{e}");
        let e = ladder("{ conservative: .nan, aggressive: 0.35 }");
        assert!(
            e.contains("plant.retention.conservative: NaN is out of range"),
            "{e}"
        );
        // The count is about the whole mapping.
        for (l, found) in [("{ conservative: 0.9 }", 1), ("{}", 0)] {
            let e = ladder(l);
            assert!(
                e.starts_with(&format!(
                    "s.yaml:8:14: plant.retention: the ladder needs at least 2 profiles, found {found}"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn cross_field_problems_are_all_reported() {
        let text = GOOD
            .replace("name: flash-crowd", "name: flash crowd")
            .replace(
                "policies: [../policies/default.yaml]",
                "policies: [../policies/nope.yaml]",
            )
            .replace("rescale:", "trace: { file: traces/missing.csv }\nrescale:");
        let e = parse_error(&text);
        assert!(
            e.starts_with("s.yaml:1:1: name: \"flash crowd\" is not a valid name"),
            "{e}"
        );
        assert!(
            e.contains("synthetic: both trace and synthetic are set"),
            "{e}"
        );
        assert!(
            e.contains("policies[0]: ") && e.contains("nope.yaml not found"),
            "{e}"
        );
        // One line per problem, in file order.
        assert_eq!(e.lines().count(), 3, "{e}");
        let e = parse_error(&GOOD.replace("synthetic:", "synthetix:"));
        assert!(e.contains("unknown field `synthetix`"), "{e}");
        let no_source: String = GOOD
            .lines()
            .filter(|l| !l.starts_with("synthetic"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse_error(&no_source).contains("trace, synthetic: neither is set"));
        let e = parse_error(&GOOD.replace(
            "policies: [../policies/default.yaml]",
            "policies: []\nbaselines: false",
        ));
        assert!(
            e.contains("policies: empty while baselines is false"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_at_once_in_plain_words() {
        let text = GOOD
            .replace("tick: 15s", "tick: 15")
            .replace("delay_ticks: 1", "delay_ticks: 0\n  colour: red")
            .replace("seed: 1\n", "seed: -1\n")
            .replace("factor: 10", "factor: ten");
        let e = parse_error(&format!("{text}baselines: maybe\ntrace: 5\n"));
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 7, "{e}");
        for (line, start) in lines.iter().zip([
            "s.yaml:3:",
            "s.yaml:5:7: tick: ",
            "s.yaml:9:16: plant.delay_ticks: 0 is out of range",
            "s.yaml:10:3: plant.colour: unknown field",
            "s.yaml:11:3: plant.seed: ",
            "s.yaml:13:12: baselines: invalid type: string \"maybe\", expected true or false",
            "s.yaml:14:8: trace: invalid type: integer `5`, expected a mapping like",
        ]) {
            assert!(
                line.starts_with(start),
                "{line:?} should start with {start:?}\n{e}"
            );
        }
        for jargon in ["struct", "u64", "u32", "f64", "TraceFile", "PlantFile"] {
            assert!(!e.contains(jargon), "{jargon} in\n{e}");
        }
    }

    #[test]
    fn a_policy_given_as_a_scenario_is_told_to_use_policy() {
        let policy = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml"),
        )
        .unwrap();
        let e = parse_error(&policy);
        assert!(
            e.starts_with(
                "s.yaml:1:1: this is a policy file, not a scenario; pass it with --policy"
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_and_unreadable_files() {
        let e = Scenario::load(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/x.yaml: "),
            "{e}"
        );
        assert!(parse_error("").starts_with("s.yaml: the scenario is empty"));
        assert!(parse_error("name: [").starts_with("s.yaml:"));
    }

    #[test]
    fn shipped_scenarios_load_and_challenge_the_budget() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations");
        let mut seen = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                let trace = s.trace().unwrap_or_else(|e| panic!("{e}"));
                let max = trace.demand().iter().cloned().fold(0.0, f64::max);
                let first = s.plant.ladder[0].retention;
                assert!(
                    max * first > s.budget_series,
                    "{}: demand never exceeds the first profile",
                    s.name
                );
                assert_eq!(path.file_stem().unwrap().to_str().unwrap(), s.name);
                seen += 1;
            }
        }
        assert!(seen >= 5, "only {seen} scenarios");
    }
}
