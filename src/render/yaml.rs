//! A small block-style YAML writer for rendered collector configs.
//!
//! serde_yaml_ng writes strings plain whenever YAML 1.2 would read them back as strings,
//! but Prometheus reads its config with a YAML 1.1 parser, for which a plain `yes`, `on`
//! or `1:30` is not a string. So the renderers write their own YAML: a string is plain
//! only when it is an unmistakable word (letters, digits, `_ . / -`, starting with a letter,
//! `_` or `/`, and no YAML 1.1 keyword); everything else is double-quoted. The output
//! depends only on the value, so the same config always renders to the same bytes.

use serde_yaml_ng::{Mapping, Value};
use std::fmt::Write as _;

/// Why a value cannot be written (only keys that are themselves lists or mappings,
/// which no collector config uses).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsupported(pub String);

/// The document for `v`, ending in a newline.
pub(crate) fn to_string(v: &Value) -> Result<String, Unsupported> {
    let mut out = String::new();
    match v {
        Value::Mapping(m) if !m.is_empty() => map(&mut out, m, 0, false)?,
        Value::Sequence(s) if !s.is_empty() => seq(&mut out, s, 0, false)?,
        other => {
            out.push_str(&inline(other)?);
            out.push('\n');
        }
    }
    Ok(out)
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A mapping's entries at `indent`; when `continued`, the first line's indentation is
/// already written (the mapping is a sequence item after `- `).
fn map(out: &mut String, m: &Mapping, indent: usize, continued: bool) -> Result<(), Unsupported> {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !continued {
            pad(out, indent);
        }
        out.push_str(&key(k)?);
        out.push(':');
        value_after(out, v, indent)?;
    }
    Ok(())
}

/// A sequence's items at `indent`, `continued` as for [`map`].
fn seq(out: &mut String, s: &[Value], indent: usize, continued: bool) -> Result<(), Unsupported> {
    for (i, item) in s.iter().enumerate() {
        if i > 0 || !continued {
            pad(out, indent);
        }
        out.push('-');
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push(' ');
                map(out, m, indent + 2, true)?;
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push(' ');
                seq(out, s, indent + 2, true)?;
            }
            Value::Tagged(t) => {
                out.push(' ');
                out.push_str(&t.tag.to_string());
                value_after(out, &t.value, indent)?;
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// What follows `key:` (or a tag): a space and a scalar, or a nested block.
fn value_after(out: &mut String, v: &Value, indent: usize) -> Result<(), Unsupported> {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, indent + 2, false)
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            seq(out, s, indent + 2, false)
        }
        Value::Tagged(t) => {
            out.push(' ');
            out.push_str(&t.tag.to_string());
            value_after(out, &t.value, indent)
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other)?);
            out.push('\n');
            Ok(())
        }
    }
}

fn key(k: &Value) -> Result<String, Unsupported> {
    match k {
        Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => Err(Unsupported(format!(
            "a mapping key that is itself a list, mapping or tagged value ({k:?})"
        ))),
        other => inline(other),
    }
}

/// A scalar, or an empty container, on one line.
fn inline(v: &Value) -> Result<String, Unsupported> {
    Ok(match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => string(s),
        Value::Sequence(s) if s.is_empty() => "[]".to_string(),
        Value::Mapping(m) if m.is_empty() => "{}".to_string(),
        Value::Tagged(t) => format!("{} {}", t.tag, inline(&t.value)?),
        other => {
            return Err(Unsupported(format!(
                "{other:?} where a scalar was expected"
            )));
        }
    })
}

fn number(n: &serde_yaml_ng::Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_nan() {
            ".nan".to_string()
        } else if f.is_infinite() {
            if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
        } else {
            // Debug keeps a `.0` or an exponent, so the value reads back as a float.
            format!("{f:?}")
        }
    } else {
        n.to_string()
    }
}

/// Words a YAML 1.1 parser reads as booleans or null when plain.
const KEYWORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !KEYWORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn string(s: &str) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn back(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }

    #[test]
    fn quotes_what_yaml_1_1_would_misread() {
        for s in [
            "yes", "On", "0755", "1:30", "15s", "", " x", "a: b", "#x", "-x", ".inf", "null", "~",
            "x\ny", "é",
        ] {
            let out = string(s);
            assert!(out.starts_with('"'), "{s:?} → {out}");
        }
        for s in [
            "loadgen",
            "filter/phoenix_a",
            "__name__",
            "http.server.duration",
            "a-b",
        ] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn nested_blocks_read_back() {
        let text = "a: 1\nb:\n  - x\n  - k: v\n    l: [1, 2]\n    m: {}\n  - - 1\n    - 2\nc: {d: -1.5, e: .inf, f: null, g: true}\nh: []\n";
        let v = back(text);
        let out = to_string(&v).unwrap();
        assert_eq!(back(&out), v, "{out}");
        assert_eq!(to_string(&back(&out)).unwrap(), out);
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            (-1e12f64..1e12).prop_map(|f| Value::Number(f.into())),
            any::<String>().prop_map(Value::String),
            "[a-z0-9:._/ -]{0,12}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
                prop::collection::vec(("[a-z_:. 0-9]{0,8}", inner), 0..5).prop_map(|kv| {
                    Value::Mapping(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x7a31),
            ..ProptestConfig::default()
        })]

        /// Whatever the value, the text reads back as the same value.
        #[test]
        fn round_trips(v in value()) {
            let out = to_string(&v).unwrap();
            prop_assert_eq!(back(&out), v, "{}", out);
        }
    }
}
