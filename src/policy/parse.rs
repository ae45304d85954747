//! YAML text → `RawPolicy`, turning every serde error into a located `Problem`.
//!
//! serde stops at the first error, but an SRE wants them all. So: the whole file is parsed
//! into the strict `RawPolicy` first (the schema of record). If that fails, each top-level
//! section is deserialized on its own from the same text, which yields one error per broken
//! section with serde_yaml_ng's own line, column and field path, plus our own check for
//! unknown or missing top-level keys. Sections that failed are replaced by their defaults
//! and listed in `Parsed::failed`, so semantic validation can still check the rest without
//! piling follow-on errors onto a section that is already reported.

use super::error::Problem;
use super::locate::Positions;
use super::schema::{self, RawPolicy, TOP_LEVEL_KEYS};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

/// The result of the serde stage.
pub(crate) struct Parsed {
    /// Parsed values; failed sections hold their defaults.
    pub raw: RawPolicy,
    /// Top-level keys whose section did not parse (already reported).
    pub failed: BTreeSet<&'static str>,
    /// Profile fragments that did not parse (already reported): index and backend key.
    pub failed_fragments: BTreeSet<(usize, &'static str)>,
}

/// Builds problems for one origin.
pub(crate) struct Reporter<'a> {
    /// Name used in messages (usually the file path).
    pub origin: &'a str,
    /// Field positions.
    pub positions: &'a Positions,
    /// Problems so far.
    pub problems: Vec<Problem>,
    /// Warnings so far: accepted, but an SRE should look (a labeldrop that may merge
    /// series).
    pub warnings: Vec<Problem>,
}

impl Reporter<'_> {
    /// Adds a problem about `field`, located by the position map.
    pub fn at(&mut self, field: &str, message: impl Into<String>) {
        let pos = self.positions.find(field);
        self.problems.push(Problem {
            path: self.origin.to_string(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Adds a warning about `field`, located like a problem.
    pub fn warn(&mut self, field: &str, message: impl Into<String>) {
        let pos = self.positions.find(field);
        self.warnings.push(Problem {
            path: self.origin.to_string(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Adds a problem from a serde_yaml_ng error, keeping its own location.
    pub fn serde(&mut self, e: &serde_yaml_ng::Error) {
        let (field, message) = split_serde_message(e);
        let loc = e.location();
        self.problems.push(Problem {
            path: self.origin.to_string(),
            line: loc.as_ref().map(|l| l.line()),
            col: loc.as_ref().map(|l| l.column()),
            field,
            message,
        });
    }
}

/// Splits serde_yaml_ng's `path: message at line L column C` into (field, message).
fn split_serde_message(e: &serde_yaml_ng::Error) -> (String, String) {
    let mut msg = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(cut) = msg.find(&suffix) {
            // Keep any trailing context ("..., while parsing a flow node").
            msg = format!("{}{}", &msg[..cut], &msg[cut + suffix.len()..]);
        }
    }
    let mut field = String::new();
    if let Some(i) = msg.find(": ") {
        let head = &msg[..i];
        let is_path = head.starts_with(|c: char| c.is_ascii_alphabetic())
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
        if is_path {
            field = head.to_string();
            msg = msg[i + 2..].to_string();
        }
    }
    // Point at the offending key itself, not at the mapping that holds it.
    for (prefix, replacement) in [
        ("unknown field `", None),
        ("missing field `", Some("required field is missing")),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some(end) = rest.find('`')
        {
            let key = rest[..end].to_string();
            field = if field.is_empty() {
                key
            } else {
                format!("{field}.{key}")
            };
            if let Some(r) = replacement {
                msg = r.to_string();
            }
            break;
        }
    }
    (field, msg)
}

/// Parses `text`; `None` when nothing usable came out (problems say why).
pub(crate) fn parse(text: &str, rep: &mut Reporter<'_>) -> Option<Parsed> {
    // Absurd nesting: stop before serde_yaml_ng, whose loader reads every event first
    // (slow on megabytes of `[[[[`) only to reject the depth afterwards.
    if let Some(pos) = rep.positions.too_deep {
        rep.problems.push(Problem {
            path: rep.origin.to_string(),
            line: Some(pos.line),
            col: Some(pos.col),
            field: String::new(),
            message: format!(
                "nested deeper than {} levels; a policy needs at most 4",
                super::locate::MAX_DEPTH
            ),
        });
        return None;
    }
    // Duplicate keys: serde_yaml_ng reports them at 1:1, the walk knows where they are.
    if !rep.positions.duplicates.is_empty() {
        for (field, pos) in &rep.positions.duplicates {
            rep.problems.push(Problem {
                path: rep.origin.to_string(),
                line: Some(pos.line),
                col: Some(pos.col),
                field: field.clone(),
                message: "duplicate key; each key may appear only once".to_string(),
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
                "the policy is empty; it needs at least `name` and `profiles` (see docs/policy.md)",
            );
            return None;
        }
        other => {
            let kind = match other {
                serde_yaml_ng::Value::Sequence(_) => "a list",
                serde_yaml_ng::Value::Tagged(_) => "a tagged value",
                _ => "a single value",
            };
            rep.problems.push(Problem {
                path: rep.origin.to_string(),
                line: Some(1),
                col: Some(1),
                field: String::new(),
                message: format!("a policy must be a mapping of `key: value` lines, found {kind}"),
            });
            return None;
        }
    };

    let full_err = match serde_yaml_ng::from_str::<RawPolicy>(text) {
        Ok(raw) => {
            return Some(Parsed {
                raw,
                failed: BTreeSet::new(),
                failed_fragments: BTreeSet::new(),
            });
        }
        Err(e) => e,
    };
    let before = rep.problems.len();

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
                    "keys must be field names, found {key:?}; expected one of: {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ),
        }
    }

    let mut failed = BTreeSet::new();
    let mut failed_fragments = BTreeSet::new();
    let mut ctx = Sections {
        text,
        rep,
        failed: &mut failed,
    };
    let name = ctx.required::<String>("name");
    let profiles = ctx.profiles(&mut failed_fragments);
    let raw = RawPolicy {
        name: name.unwrap_or_default(),
        description: ctx.optional::<Option<String>>("description").flatten(),
        target_ratio: ctx
            .optional("target_ratio")
            .unwrap_or_else(schema::defaults::target_ratio),
        budget_series: ctx.optional::<Option<f64>>("budget_series").flatten(),
        tick: ctx.optional("tick").unwrap_or_else(schema::defaults::tick),
        profiles: profiles.unwrap_or_default(),
        initial_profile: ctx.optional::<Option<String>>("initial_profile").flatten(),
        signals: ctx.optional("signals").unwrap_or_default(),
        pid: ctx.optional("pid").unwrap_or_default(),
        hysteresis: ctx.optional("hysteresis").unwrap_or_default(),
        prediction: ctx.optional("prediction").unwrap_or_default(),
        guards: ctx.optional("guards").unwrap_or_default(),
        bad_input: ctx.optional("bad_input").unwrap_or_default(),
        settle: ctx
            .optional("settle")
            .unwrap_or_else(schema::defaults::settle),
        anomaly: ctx.optional("anomaly").unwrap_or_default(),
        safe_to_drop_labels: ctx.optional("safe_to_drop_labels").unwrap_or_default(),
    };
    if rep.problems.len() == before {
        // The section-wise pass found nothing, yet the whole file failed: report serde's
        // own verdict rather than accept a file the strict schema rejects.
        rep.serde(&full_err);
        return None;
    }
    Some(Parsed {
        raw,
        failed,
        failed_fragments,
    })
}

/// Deserializes top-level sections one at a time (scenario files are read this way too).
pub(crate) struct Sections<'t, 'r, 'o> {
    /// The whole document.
    pub text: &'t str,
    /// Where problems go.
    pub rep: &'r mut Reporter<'o>,
    /// Keys whose section did not parse (already reported).
    pub failed: &'r mut BTreeSet<&'static str>,
}

impl Sections<'_, '_, '_> {
    /// A section that may be absent; `None` when absent or broken (broken is reported).
    pub fn optional<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let de = serde_yaml_ng::Deserializer::from_str(self.text);
        match (Section::<T> {
            key,
            _t: PhantomData,
        })
        .deserialize(de)
        {
            Ok(v) => v,
            Err(e) => {
                self.rep.serde(&e);
                self.failed.insert(key);
                None
            }
        }
    }

    /// The ladder. When it does not parse as a whole, each profile's own keys and each of
    /// its fragments are parsed on their own, so every broken one is reported (serde stops
    /// at the first error of whatever it reads) and a broken fragment leaves the ladder
    /// checkable. Fragments that failed are recorded in `failed_fragments`.
    fn profiles(
        &mut self,
        failed_fragments: &mut BTreeSet<(usize, &'static str)>,
    ) -> Option<Vec<schema::RawProfile>> {
        let de = serde_yaml_ng::Deserializer::from_str(self.text);
        let whole = At::<Vec<schema::RawProfile>>::new(&[Step::Key("profiles")]).deserialize(de);
        let first_err = match whole {
            Ok(Some(v)) => return Some(v),
            Ok(None) => {
                self.rep.at("profiles", "required field is missing");
                self.failed.insert("profiles");
                return None;
            }
            Err(e) => e,
        };
        let de = serde_yaml_ng::Deserializer::from_str(self.text);
        let count = At::<Vec<IgnoredAny>>::new(&[Step::Key("profiles")])
            .deserialize(de)
            .ok()
            .flatten()
            .map(|v| v.len());
        let Some(count) = count else {
            self.rep.serde(&first_err);
            self.failed.insert("profiles");
            return None;
        };
        let before = self.rep.problems.len();
        let mut core_failed = false;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let core = self.at::<schema::RawProfileCore>(&[Step::Key("profiles"), Step::Index(i)]);
            let prometheus = self.fragment(i, "prometheus", failed_fragments);
            let otelcol = self.fragment(i, "otelcol", failed_fragments);
            match core {
                Ok(Some(c)) => out.push(schema::RawProfile {
                    name: c.name,
                    retention: c.retention,
                    prometheus,
                    otelcol,
                }),
                _ => {
                    core_failed = true;
                    out.push(schema::RawProfile {
                        name: String::new(),
                        retention: f64::NAN,
                        prometheus,
                        otelcol,
                    });
                }
            }
        }
        if self.rep.problems.len() == before {
            // Every part parsed alone yet the whole did not: report serde's own verdict.
            self.rep.serde(&first_err);
            core_failed = true;
        }
        if core_failed {
            self.failed.insert("profiles");
        }
        Some(out)
    }

    /// Profile `i`'s fragment for `backend`, reporting (and recording) its error.
    fn fragment<T: DeserializeOwned>(
        &mut self,
        i: usize,
        backend: &'static str,
        failed_fragments: &mut BTreeSet<(usize, &'static str)>,
    ) -> Option<T> {
        // As `Option<T>`, so `prometheus: null` is accepted here as in the whole parse.
        let r = self.at::<Option<T>>(&[Step::Key("profiles"), Step::Index(i), Step::Key(backend)]);
        if r.is_err() {
            failed_fragments.insert((i, backend));
        }
        r.ok().flatten().flatten()
    }

    /// The value at `path`, reporting its error; `Ok(None)` when absent.
    fn at<T: DeserializeOwned>(&mut self, path: &[Step<'_>]) -> Result<Option<T>, ()> {
        let de = serde_yaml_ng::Deserializer::from_str(self.text);
        At::<T>::new(path).deserialize(de).map_err(|e| {
            self.rep.serde(&e);
        })
    }

    /// A section that must be present.
    pub fn required<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let was_failed = self.failed.contains(key);
        let v = self.optional::<T>(key);
        if v.is_none() && !was_failed && !self.failed.contains(key) {
            self.rep.at(key, "required field is missing");
            self.failed.insert(key);
        }
        v
    }
}

/// Reads the top-level mapping, deserializing only the value under `key` as `T`.
struct Section<T> {
    key: &'static str,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Section<T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Section<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a policy mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut out = None;
        while let Some(k) = map.next_key::<serde_yaml_ng::Value>()? {
            if out.is_none() && k.as_str() == Some(self.key) {
                out = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// One step of a path into the document.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// Deserializes only the value at `path` as `T`, skipping everything else, so an error
/// elsewhere cannot hide this value's own (and serde_yaml_ng still locates the error).
/// `None` when the path is absent or leads through a value of another shape.
struct At<'p, T> {
    path: &'p [Step<'p>],
    _t: PhantomData<T>,
}

impl<'p, T> At<'p, T> {
    fn new(path: &'p [Step<'p>]) -> Self {
        At {
            path,
            _t: PhantomData,
        }
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for At<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        if self.path.is_empty() {
            return T::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for At<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut out = None;
        let key = match self.path[0] {
            Step::Key(k) => Some(k),
            Step::Index(_) => None,
        };
        while let Some(k) = map.next_key::<serde_yaml_ng::Value>()? {
            if out.is_none() && key.is_some() && k.as_str() == key {
                out = map.next_value_seed(At::<T>::new(&self.path[1..]))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        let want = match self.path[0] {
            Step::Index(i) => Some(i),
            Step::Key(_) => None,
        };
        let mut out = None;
        let mut i = 0;
        loop {
            if Some(i) == want {
                match seq.next_element_seed(At::<T>::new(&self.path[1..]))? {
                    Some(v) => out = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(out)
    }

    // Scalars where a container was expected: the path is absent here.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}
