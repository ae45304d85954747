//! Policy errors: the one error type at the policy boundary, and the one-line problem form.
//!
//! Like Vector's `validate`, a bad policy yields *every* problem found, each on its own line
//! as `FILE:LINE:COL: field.path: message`, so an SRE can fix the file in one pass and an
//! editor can jump to each spot.

use std::fmt;
use std::path::PathBuf;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read at all.
    #[error("cannot read {}: {} ({})", path.display(), io_reason(source), io_hint(source))]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy; `problems` is never empty.
    #[error("{}", render_problems(problems))]
    Invalid {
        /// The file (or origin name) the problems are about.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    /// The individual problems (empty for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Io { .. } => &[],
            PolicyError::Invalid { problems, .. } => problems,
        }
    }
}

/// The OS's reason without the `(os error N)` suffix, which means nothing to an operator.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// What to do about a read failure, in words an operator can act on.
fn io_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "check the path",
        K::PermissionDenied => "check the file's permissions and the user Phoenix runs as",
        K::InvalidData => "the policy must be UTF-8 text",
        K::IsADirectory => "give the path of a .yaml file, not a directory",
        _ => "check the file",
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// One thing wrong with a policy, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or origin name) as given by the caller.
    pub path: String,
    /// 1-based line, when the problem can be pinned to a spot.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub col: Option<usize>,
    /// Dotted field path (`guards.min_dwell.relax`, `profiles[1].retention`); empty when the
    /// problem is about the whole file (a syntax error before any field).
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COL: field: message`, dropping the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}
