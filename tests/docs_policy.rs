//! `docs/policy.md` covers every policy field: the field names are read from the serde
//! structs of the policy schema (`src/policy/schema.rs`, `src/policy/fragment.rs`) at test
//! time, with their `rename`s, and so are the values of the schema's `rename_all` enums;
//! each must appear inside a code span of the reference. A field added to the schema
//! without a mention in the docs fails this test.

use std::collections::BTreeSet;

const SOURCES: &[&str] = &["src/policy/schema.rs", "src/policy/fragment.rs"];

fn read(path: &str) -> String {
    let p = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The value of `key = "..."` in an attribute line, if any.
fn attr_value(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("{key} = \""))? + key.len() + 4;
    Some(line[at..].split('"').next()?.to_string())
}

/// The items (`struct` or `enum`) deriving `Deserialize`: (kind, name, attributes before
/// the item, body lines at depth one with the attributes just before each).
struct Item {
    is_enum: bool,
    name: String,
    attrs: Vec<String>,
    members: Vec<(Vec<String>, String)>,
}

fn deserialized_items(src: &str) -> Vec<Item> {
    let lines: Vec<&str> = src.lines().collect();
    let mut items = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let l = lines[k].trim();
        if !(l.starts_with("#[derive(") && l.contains("Deserialize")) {
            k += 1;
            continue;
        }
        // Attributes up to the item's line.
        let mut attrs = Vec::new();
        let mut j = k + 1;
        while j < lines.len() && !lines[j].contains("struct ") && !lines[j].contains("enum ") {
            attrs.push(lines[j].trim().to_string());
            j += 1;
        }
        let head = lines[j].trim();
        let is_enum = head.contains("enum ");
        let name = head
            .split_whitespace()
            .skip_while(|w| *w != "struct" && *w != "enum")
            .nth(1)
            .unwrap()
            .trim_end_matches('{')
            .to_string();
        let mut members = Vec::new();
        let mut pending = Vec::new();
        let mut depth = head.matches('{').count() as i32 - head.matches('}').count() as i32;
        j += 1;
        while depth > 0 && j < lines.len() {
            let t = lines[j].trim();
            if depth == 1 {
                if t.starts_with("#[") {
                    pending.push(t.to_string());
                } else if !t.starts_with("//") && !t.is_empty() && t != "}" {
                    members.push((std::mem::take(&mut pending), t.to_string()));
                }
            }
            depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
            j += 1;
        }
        items.push(Item {
            is_enum,
            name,
            attrs,
            members,
        });
        k = j;
    }
    items
}

fn snake(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Every key a policy file may contain, and every enum value it may write.
fn schema_names() -> BTreeSet<(String, String)> {
    let mut names = BTreeSet::new();
    for path in SOURCES {
        for item in deserialized_items(&read(path)) {
            if item.is_enum {
                let rule = item.attrs.iter().find_map(|a| attr_value(a, "rename_all"));
                let Some(rule) = rule else { continue };
                for (_, m) in &item.members {
                    let variant: String = m
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    if variant.is_empty() {
                        continue;
                    }
                    let value = match rule.as_str() {
                        "lowercase" => variant.to_ascii_lowercase(),
                        "snake_case" => snake(&variant),
                        other => panic!("{}: rename_all = {other} not handled", item.name),
                    };
                    names.insert((item.name.clone(), value));
                }
            } else {
                for (attrs, m) in &item.members {
                    let decl = m.strip_prefix("pub(crate) ").unwrap_or(m);
                    let decl = decl.strip_prefix("pub ").unwrap_or(decl);
                    let Some((field, _)) = decl.split_once(':') else {
                        continue;
                    };
                    let key = attrs
                        .iter()
                        .find_map(|a| attr_value(a, "rename"))
                        .unwrap_or_else(|| field.trim().to_string());
                    names.insert((item.name.clone(), key));
                }
            }
        }
    }
    names
}

/// Every identifier inside a code span (`...`) of the text.
fn code_words(doc: &str) -> BTreeSet<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| {
            span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_policy_field_and_value_is_in_the_reference() {
    let names = schema_names();
    // The extraction itself must see the schema, not an empty file or a changed layout.
    for expected in [
        ("RawPolicy", "safe_to_drop_labels"),
        ("RawGuards", "override"),
        ("RawOverride", "max_ttl"),
        ("PrometheusFragment", "drop_labels"),
        ("MetricOperation", "aggregation_type"),
        ("RelabelAction", "hashmod"),
    ] {
        assert!(
            names.contains(&(expected.0.to_string(), expected.1.to_string())),
            "the schema extraction missed {expected:?}; found {names:?}"
        );
    }
    assert!(names.len() > 80, "{names:?}");
    let doc = read("docs/policy.md");
    let words = code_words(&doc);
    let missing: Vec<String> = names
        .iter()
        .filter(|(_, n)| !n.starts_with('_') && !words.contains(n))
        .map(|(item, n)| format!("{item}.{n}"))
        .collect();
    // `anomaly.detector`'s values come from the core's enum.
    let mut missing = missing;
    for kind in phoenix::core::anomaly::DetectorKind::ALL {
        if !words.contains(kind.name()) {
            missing.push(format!("DetectorKind.{}", kind.name()));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/policy.md does not mention these policy fields or values (in `code`): {missing:?}"
    );
}
