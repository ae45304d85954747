//! The control file as loadgen reads it: the daemon's `file` actuator writes which profile
//! each pipeline should use (`{ generation: 3, pipelines: { p0001: balanced } }`, YAML or
//! JSON), and a loadgen in signals mode exports output = input × that profile's retention,
//! which is how a pipeline obeying the file behaves.
//!
//! Reading never fails a scrape: a missing or unparsable file, a pipeline the file does not
//! name, or a profile loadgen does not know all mean the first (least reducing) profile,
//! and each distinct problem is logged once rather than on every scrape.

use crate::core::config::ProfileSpec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tracing::{info, warn};

/// The file as written by the daemon. Unknown fields are accepted: this is a data file
/// another program writes, and a newer daemon adding a field must not make loadgen fall
/// back to the first profile.
#[derive(Debug, Default, Deserialize)]
struct ControlDoc {
    /// Bumped by the daemon on every write; exported so tests can tell a file was seen.
    #[serde(default)]
    generation: Option<u64>,
    /// Pipeline name to profile name.
    #[serde(default)]
    pipelines: BTreeMap<String, String>,
}

/// What the control file says, resolved against this loadgen's pipelines and profiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    /// The file's `generation`, if it was read and has one.
    pub generation: Option<u64>,
    /// Retention in force for each pipeline, in export order.
    pub retentions: Vec<f64>,
}

/// Why the control file could not be used (the first profile is used instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Reading failed (other than the file being absent).
    #[error("cannot read control file {path}: {message}")]
    Read {
        /// File path.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// Neither valid JSON nor YAML of the expected shape.
    #[error(
        "control file {path}: {message} (expected e.g. `{{ generation: 3, pipelines: {{ p0001: balanced }} }}`)"
    )]
    Parse {
        /// File path.
        path: String,
        /// The parser's message.
        message: String,
    },
}

/// Parses a control file's text (JSON if it parses as JSON, else YAML, since JSON written
/// with tabs is not always valid YAML) and resolves it: each pipeline of `pipelines` gets
/// the retention of the profile the file names for it, or of the first profile. Returns
/// the notes about names the file uses that `profiles` lacks.
pub fn parse_control(
    text: &str,
    origin: &str,
    pipelines: &[String],
    profiles: &[ProfileSpec],
) -> Result<(Control, Vec<String>), ControlError> {
    let doc: ControlDoc = if text.trim().is_empty() {
        ControlDoc::default()
    } else {
        match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(_) => serde_yaml_ng::from_str(text).map_err(|e| ControlError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?,
        }
    };
    let first = profiles.first().map_or(1.0, |p| p.retention);
    let mut notes = Vec::new();
    let retentions = pipelines
        .iter()
        .map(|pipeline| match doc.pipelines.get(pipeline) {
            None => first,
            Some(name) => match profiles.iter().find(|p| &p.name == name) {
                Some(p) => p.retention,
                None => {
                    notes.push(format!(
                        "control file {origin}: pipeline {pipeline:?}: unknown profile {name:?}, using the first profile (loadgen knows {}; see --retention)",
                        profiles
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    first
                }
            },
        })
        .collect();
    Ok((
        Control {
            generation: doc.generation,
            retentions,
        },
        notes,
    ))
}

/// Identifies one version of the file without reading it: an atomic rename changes the
/// inode, an in-place write the modification time or the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }
}

/// The last version read, so a scrape only costs a `stat` while the file is unchanged.
struct Cache {
    /// `None` while the file is absent or could not be examined.
    stamp: Option<Stamp>,
    /// What was resolved from that version (or the fallback).
    control: Arc<Control>,
    /// The problem last logged, so it is logged once until it changes.
    problem: Option<String>,
}

/// Reads the control file on each scrape, re-parsing only when it changed.
pub struct ControlReader {
    /// The `--control-file` path.
    path: PathBuf,
    /// This loadgen's pipelines, in export order.
    pipelines: Arc<[String]>,
    /// The `--retention` ladder; the first profile is the fallback.
    profiles: Vec<ProfileSpec>,
    cache: Mutex<Cache>,
}

impl ControlReader {
    /// A reader of `path` for these pipelines and profiles; nothing is read yet.
    pub fn new(path: &Path, pipelines: Arc<[String]>, profiles: Vec<ProfileSpec>) -> Self {
        let control = Arc::new(fallback(&pipelines, &profiles));
        ControlReader {
            path: path.to_path_buf(),
            pipelines,
            profiles,
            cache: Mutex::new(Cache {
                stamp: None,
                control,
                problem: None,
            }),
        }
    }

    /// What the file says now (the first profile everywhere if it cannot be used).
    pub fn read(&self) -> Arc<Control> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let origin = self.path.display().to_string();
        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) => {
                let problem = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("control file {origin} does not exist yet: using the first profile")
                } else {
                    format!("cannot read control file {origin}: {e}: using the first profile")
                };
                self.fall_back(&mut cache, problem);
                return cache.control.clone();
            }
        };
        if cache.stamp == Some(stamp) {
            return cache.control.clone();
        }
        let parsed = std::fs::read_to_string(&self.path)
            .map_err(|e| ControlError::Read {
                path: origin.clone(),
                message: e.to_string(),
            })
            .and_then(|text| parse_control(&text, &origin, &self.pipelines, &self.profiles));
        // Remembered even when unusable: the same bad version is not parsed again.
        cache.stamp = Some(stamp);
        match parsed {
            Ok((control, notes)) => {
                info!(path = %origin, generation = ?control.generation, "Read the control file.");
                cache.problem = None;
                for note in notes {
                    warn!("{note}");
                }
                cache.control = Arc::new(control);
            }
            Err(e) => {
                let problem = format!("{e}: using the first profile");
                self.fall_back(&mut cache, problem);
                cache.stamp = Some(stamp);
            }
        }
        cache.control.clone()
    }

    /// Uses the first profile everywhere and logs `problem` unless it is the one last logged.
    fn fall_back(&self, cache: &mut Cache, problem: String) {
        if cache.problem.as_deref() != Some(problem.as_str()) {
            warn!("{problem}");
            cache.control = Arc::new(fallback(&self.pipelines, &self.profiles));
            cache.problem = Some(problem);
        }
        cache.stamp = None;
    }
}

/// The first profile for every pipeline, no generation.
fn fallback(pipelines: &[String], profiles: &[ProfileSpec]) -> Control {
    let first = profiles.first().map_or(1.0, |p| p.retention);
    Control {
        generation: None,
        retentions: vec![first; pipelines.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Vec<ProfileSpec> {
        [
            ("conservative", 0.9),
            ("balanced", 0.6),
            ("aggressive", 0.35),
        ]
        .iter()
        .map(|&(name, retention)| ProfileSpec {
            name: name.into(),
            retention,
        })
        .collect()
    }

    fn names(n: usize) -> Vec<String> {
        crate::loadgen::levels::numbered_pipelines(n)
    }

    #[test]
    fn yaml_and_json_name_a_profile_per_pipeline() {
        let yaml = "{ generation: 3, pipelines: { p0001: balanced, p0002: aggressive } }";
        let json =
            r#"{"generation": 3, "pipelines": {"p0001": "balanced", "p0002": "aggressive"}}"#;
        let block = "generation: 3\npipelines:\n  p0001: balanced\n  p0002: aggressive\n";
        // JSON indented with tabs is valid JSON but not valid YAML.
        let tabs = "{\n\t\"generation\": 3,\n\t\"pipelines\": {\n\t\t\"p0001\": \"balanced\",\n\t\t\"p0002\": \"aggressive\"\n\t}\n}\n";
        for text in [yaml, json, block, tabs] {
            let (control, notes) = parse_control(text, "c.yaml", &names(4), &ladder()).unwrap();
            assert_eq!(control.generation, Some(3), "{text}");
            assert_eq!(control.retentions, vec![0.9, 0.6, 0.35, 0.9], "{text}");
            assert!(notes.is_empty());
        }
    }

    #[test]
    fn unknown_names_and_fields_fall_back_without_failing() {
        let text = "generation: 1\nwritten_by: phoenix 0.2\npipelines: { p0000: turbo, p9999: balanced }\n";
        let (control, notes) = parse_control(text, "c.yaml", &names(2), &ladder()).unwrap();
        assert_eq!(control.retentions, vec![0.9, 0.9]);
        assert_eq!(
            notes,
            [
                "control file c.yaml: pipeline \"p0000\": unknown profile \"turbo\", using the first profile (loadgen knows conservative, balanced, aggressive; see --retention)"
            ]
        );
        let (control, _) = parse_control("", "c.yaml", &names(1), &ladder()).unwrap();
        assert_eq!(control.generation, None);
    }

    #[test]
    fn unparsable_files_are_errors_naming_the_file() {
        for text in [
            "pipelines: [a, b]",
            "{ generation: 3, pipelines: ",
            "generation: -1",
        ] {
            let e = parse_control(text, "c.yaml", &names(1), &ladder()).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("control file c.yaml: "), "{msg}");
            assert!(
                msg.ends_with(
                    "(expected e.g. `{ generation: 3, pipelines: { p0001: balanced } }`)"
                ),
                "{msg}"
            );
        }
    }

    #[test]
    fn the_reader_follows_the_file_and_falls_back_to_the_first_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.yaml");
        let reader = ControlReader::new(&path, names(2).into(), ladder());
        // Absent: the first profile.
        assert_eq!(reader.read().retentions, vec![0.9, 0.9]);
        std::fs::write(&path, "{ generation: 1, pipelines: { p0001: balanced } }").unwrap();
        let c = reader.read();
        assert_eq!(
            (c.generation, c.retentions.clone()),
            (Some(1), vec![0.9, 0.6])
        );
        // Unchanged: the same parse is served.
        assert!(Arc::ptr_eq(&c, &reader.read()));
        // Replaced atomically, as the daemon writes it.
        crate::fsutil::write_atomically(&path, |w| {
            std::io::Write::write_all(w, b"{ generation: 2, pipelines: { p0000: aggressive } }")
        })
        .unwrap();
        let c = reader.read();
        assert_eq!(
            (c.generation, c.retentions.clone()),
            (Some(2), vec![0.35, 0.9])
        );
        // Garbage: the first profile again, until the file is fixed.
        std::fs::write(&path, "pipelines: [").unwrap();
        assert_eq!(reader.read().retentions, vec![0.9, 0.9]);
        assert_eq!(reader.read().generation, None);
        std::fs::write(&path, "{ generation: 3, pipelines: { p0000: balanced } }").unwrap();
        assert_eq!(reader.read().retentions, vec![0.6, 0.9]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(reader.read().retentions, vec![0.9, 0.9]);
    }
}
