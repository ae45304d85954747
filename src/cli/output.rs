//! Checks on output paths, made before a command computes anything, so a typo in `--out`
//! or `--plot` fails in a second, not after a long run, and a failing second path does not
//! leave the first file written.

use std::path::{Path, PathBuf};

/// Why a path cannot be an output file.
#[derive(Debug, thiserror::Error)]
pub enum OutputPathError {
    /// The path is a directory.
    #[error("cannot write {}: it is a directory (give a file name)", path.display())]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The folder the file would go in does not exist.
    #[error(
        "cannot write {}: directory {} does not exist (create it first or choose another path)",
        path.display(),
        dir.display()
    )]
    NoDirectory {
        /// The path given.
        path: PathBuf,
        /// Its parent folder (`.` for a bare file name).
        dir: PathBuf,
    },
}

/// Fails early, with the path in the message, if `p` cannot be an output file.
pub fn check_output_path(p: &Path) -> Result<(), OutputPathError> {
    if p.is_dir() {
        return Err(OutputPathError::IsDirectory {
            path: p.to_path_buf(),
        });
    }
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(OutputPathError::NoDirectory {
            path: p.to_path_buf(),
            dir: parent.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_missing_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output_path(&dir.path().join("out.csv")).is_ok());
        assert!(check_output_path(Path::new("out.csv")).is_ok());
        let e = check_output_path(dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot write {}: it is a directory (give a file name)",
                dir.path().display()
            )
        );
        let missing = dir.path().join("missing");
        let e = check_output_path(&missing.join("out.csv")).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("directory {} does not exist", missing.display())),
            "{e}"
        );
    }
}
