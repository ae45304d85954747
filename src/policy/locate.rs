//! Where each field sits in the YAML text, so semantic problems get a line and column.
//!
//! serde only reports positions for errors it raises itself. For a value that parsed fine
//! but is out of range (`relax: 0s`), we walk the document once with yaml-rust2's event
//! parser and record the position of every key (and of every sequence item) under its
//! dotted path: `guards.min_dwell.relax`, `profiles[1]`, `profiles[1].retention`.
//! Duplicate keys, which serde would report without a useful position, are collected too.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based but columns 0-based; serde_yaml_ng's are both
        // 1-based. Report 1-based everywhere, as editors expect.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// Field path → position of its key (or of the item, for sequence items).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    map: HashMap<String, Pos>,
    /// Keys that appear twice in the same mapping, with the second occurrence.
    pub duplicates: Vec<(String, Pos)>,
    /// Where nesting passed `MAX_DEPTH`, if it did; the walk stopped there.
    pub too_deep: Option<Pos>,
}

impl Positions {
    /// Walks the first document of `text`. A YAML error stops the walk; what was recorded
    /// so far is kept (the syntax error itself is reported from serde_yaml_ng, which sees
    /// it too).
    pub fn of(text: &str) -> Positions {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        // Pull events one by one rather than `Parser::load`, which recurses per nesting
        // level and asserts on document structure: this walk must survive any input.
        loop {
            let (ev, mark) = match parser.next_token() {
                Ok(x) => x,
                Err(e) => {
                    // yaml-rust2 caps flow nesting itself; treat that like our own cap.
                    if e.info().contains("recursion limit") {
                        walker.out.too_deep = Some(Pos::from(*e.marker()));
                    }
                    break;
                }
            };
            let last = matches!(ev, Event::DocumentEnd | Event::StreamEnd);
            walker.on_event(ev, mark);
            if walker.stack.len() > MAX_DEPTH {
                walker.out.too_deep = Some(Pos::from(mark));
                break;
            }
            if last {
                break;
            }
        }
        walker.out
    }

    /// Whether the file spells out this exact field.
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// Position of `field`, or of its nearest ancestor present in the file (a defaulted
    /// field is best pointed at through the section that left it out); `None` when no
    /// part of the path is in the file.
    pub fn find(&self, field: &str) -> Option<Pos> {
        let mut f = field;
        loop {
            if let Some(p) = self.map.get(f) {
                return Some(*p);
            }
            let cut = f.rfind(['.', '['])?;
            f = &f[..cut];
        }
    }
}

/// Which half of a mapping entry the next node is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    Key,
    Value,
}

/// An open container while walking.
enum Frame {
    Map {
        path: String,
        /// The key of the entry being read (None while a non-scalar key is read).
        key: Option<String>,
        half: Half,
        /// Opened as a sequence item: its first key is a better position for the item
        /// than the mapping-start marker (which yaml-rust2 puts after the first key).
        item_pending: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

/// Nesting depth past which the walk stops. serde_yaml_ng rejects documents nested deeper
/// than 128 anyway, and paths grow with depth, so an unbounded walk over `- - - - ...`
/// would be quadratic.
pub(crate) const MAX_DEPTH: usize = 128;

/// Marker used as a path prefix for nodes under complex (non-scalar) keys; never recorded.
const IGNORED: &str = "\u{1}";

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    out: Positions,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    fn record(&mut self, path: &str, pos: Pos) {
        if !path.starts_with(IGNORED) {
            self.out.map.entry(path.to_string()).or_insert(pos);
        }
    }

    /// A node begins; returns its path. `scalar` is its text when it is a scalar.
    fn enter(&mut self, scalar: Option<&str>, pos: Pos) -> String {
        let mut record_key: Option<(String, String, bool)> = None;
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
            Some(Frame::Map {
                path,
                key,
                half: Half::Key,
                item_pending,
            }) => {
                *key = scalar.map(str::to_string);
                match scalar {
                    Some(k) if !path.starts_with(IGNORED) => {
                        let full = join(path, k);
                        record_key = Some((full.clone(), path.clone(), *item_pending));
                        *item_pending = false;
                        full
                    }
                    _ => IGNORED.to_string(),
                }
            }
            Some(Frame::Map {
                path,
                key,
                half: Half::Value,
                ..
            }) => match key {
                Some(k) if !path.starts_with(IGNORED) => join(path, k),
                _ => IGNORED.to_string(),
            },
        };
        match record_key {
            Some((full, parent, item_pending)) => {
                match self.out.map.entry(full) {
                    Entry::Occupied(e) => self.out.duplicates.push((e.key().clone(), pos)),
                    Entry::Vacant(e) => {
                        e.insert(pos);
                    }
                }
                if item_pending {
                    self.out.map.insert(parent, pos);
                }
            }
            None => {
                if matches!(self.stack.last(), Some(Frame::Seq { .. })) {
                    self.record(&path, pos);
                }
            }
        }
        path
    }

    /// A node ended: the enclosing mapping moves from key to value or value to key.
    fn leave(&mut self) {
        if let Some(Frame::Map { half, .. }) = self.stack.last_mut() {
            *half = if *half == Half::Key {
                Half::Value
            } else {
                Half::Key
            };
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(text, ..) => {
                self.enter(Some(&text), pos);
                self.leave();
            }
            Event::Alias(_) => {
                self.enter(None, pos);
                self.leave();
            }
            Event::MappingStart(..) => {
                let item_pending = matches!(self.stack.last(), Some(Frame::Seq { .. }));
                let path = self.enter(None, pos);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    half: Half::Key,
                    item_pending,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.enter(None, pos);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.leave();
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_items_and_duplicates() {
        let text = "name: a\nguards:\n  min_dwell:\n    relax: 0s\nprofiles:\n  - { name: x, retention: 0.9 }\n  - name: y\n    retention: 0.5\nname: b\n";
        let p = Positions::of(text);
        assert_eq!(p.find("name"), Some(Pos { line: 1, col: 1 }));
        assert_eq!(
            p.find("guards.min_dwell.relax"),
            Some(Pos { line: 4, col: 5 })
        );
        assert_eq!(p.find("profiles[0]"), Some(Pos { line: 6, col: 7 }));
        assert_eq!(
            p.find("profiles[0].retention"),
            Some(Pos { line: 6, col: 16 })
        );
        assert_eq!(p.find("profiles[1]"), Some(Pos { line: 7, col: 5 }));
        assert_eq!(
            p.find("profiles[1].retention"),
            Some(Pos { line: 8, col: 5 })
        );
        // Absent field: nearest ancestor.
        assert_eq!(
            p.find("guards.min_dwell.escalate"),
            Some(Pos { line: 3, col: 3 })
        );
        assert_eq!(p.find("pid.kp"), None);
        assert_eq!(
            p.duplicates,
            vec![("name".to_string(), Pos { line: 9, col: 1 })]
        );
    }

    #[test]
    fn complex_keys_and_garbage_do_not_panic() {
        for text in [
            "? [a, b]\n: {c: 1}\nd: 2\n",
            "a: [\n",
            "{{{",
            "- - - x",
            "&a x: *a",
            "",
        ] {
            let _ = Positions::of(text);
        }
        let p = Positions::of("? [a, b]\n: {c: 1}\nd: 2\n");
        assert_eq!(p.find("d"), Some(Pos { line: 3, col: 1 }));
    }
}
