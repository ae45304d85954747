//! File-system helpers shared by every part that writes files an operator or another
//! program reads: the atomic write (a reader sees the old file or the complete new one,
//! never a torn one) and the wording of I/O errors in one-line messages.
//!
//! The simulator's tick file and plot, the NAB result files, and later the collector
//! actuator's rendered configs and the daemon's state store all go through
//! [`write_atomically`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Size of the write buffer: large writes (tick files of long runs) go out in big chunks.
const BUFFER_BYTES: usize = 1 << 20;

/// Most names tried for the temporary file before giving up (each is created exclusively,
/// so a clash only means a leftover or a concurrent writer).
const TEMP_ATTEMPTS: u32 = 100;

/// An atomic write failed; nothing new was left at `path` (an existing file there is
/// untouched).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {} ({})", path.display(), io_text(err), io_hint(err))]
pub struct WriteError {
    /// The file the caller asked for (not the temporary file).
    pub path: PathBuf,
    /// The underlying failure. Its text is already part of the message, so it is not
    /// exposed as `source()`: a chain printer would otherwise repeat it.
    pub err: io::Error,
}

/// Writes `path` so that it is either the old file or the complete new one, never torn:
/// `content` writes into a temporary file in the same directory (with a name no other
/// writer uses), which is flushed, fsynced and renamed over `path`; the directory is then
/// fsynced so the rename survives a crash. On failure, including an error returned by
/// `content`, the temporary file is removed.
pub fn write_atomically(
    path: &Path,
    content: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), WriteError> {
    write_atomically_io(path, content).map_err(|err| WriteError {
        path: path.to_path_buf(),
        err,
    })
}

/// [`write_atomically`] with the bare I/O error.
fn write_atomically_io(
    path: &Path,
    content: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let (tmp, file) = create_temp(dir, &name.to_string_lossy())?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(BUFFER_BYTES, file);
        content(&mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Some filesystems cannot fsync a directory; the file itself is already durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates a fresh temporary file next to the target, never reusing an existing one (a
/// leftover from a crash, or another writer).
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempt = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.{pid}.{attempt}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < TEMP_ATTEMPTS => {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error's description without the `(os error N)` suffix, for messages an operator
/// reads.
pub fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// What the operator can do about a failed write.
pub fn io_hint(err: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match err.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => "choose a writable path",
        K::NotFound => "create the directory first or choose another path",
        K::IsADirectory | K::InvalidInput => "give a file name, not a directory",
        K::NotADirectory => "check that every parent in the path is a directory",
        K::StorageFull | K::QuotaExceeded => "free some disk space",
        _ => "check the path and free disk space",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// More than the write buffer holds, so a failing write has already reached the
    /// temporary file on disk, not only the buffer.
    fn big(fill: u8) -> Vec<u8> {
        vec![fill; 3 * BUFFER_BYTES + 17]
    }

    /// The names in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A content closure that writes `bytes`, then fails.
    fn fail_after(bytes: &[u8]) -> impl FnOnce(&mut BufWriter<File>) -> io::Result<()> + '_ {
        move |w| {
            w.write_all(bytes)?;
            Err(io::Error::other("the content ran out halfway"))
        }
    }

    #[test]
    fn target_is_old_or_whole_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let old = big(b'o');
        fs::write(&path, &old).unwrap();

        // Fails midway, after more than a buffer's worth: still the old content.
        let err = write_atomically(&path, fail_after(&big(b'n'))).unwrap_err();
        assert_eq!(err.err.to_string(), "the content ran out halfway");
        assert_eq!(fs::read(&path).unwrap(), old);

        // Succeeds: the whole new content, nothing of the old.
        let new = big(b'n');
        write_atomically(&path, |w| w.write_all(&new)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), new);
    }

    #[test]
    fn no_temporary_file_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        // A failed first write leaves no file at all.
        write_atomically(&path, fail_after(b"partial")).unwrap_err();
        assert_eq!(entries(dir.path()), Vec::<String>::new());
        write_atomically(&path, |w| w.write_all(b"one")).unwrap();
        write_atomically(&path, fail_after(&big(b'x'))).unwrap_err();
        write_atomically(&path, |w| w.write_all(b"two")).unwrap();
        assert_eq!(entries(dir.path()), ["out.txt"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
    }

    #[test]
    fn a_leftover_temporary_file_is_neither_reused_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let leftover = dir
            .path()
            .join(format!(".out.txt.{}.0.tmp", std::process::id()));
        fs::write(&leftover, "from a crashed run").unwrap();
        write_atomically(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::read_to_string(&leftover).unwrap(), "from a crashed run");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.txt");
        let err = write_atomically(&path, |w| w.write_all(b"x")).unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(err.err.kind(), io::ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot write {}: ", path.display())),
            "{msg}"
        );
        assert!(
            msg.ends_with("(create the directory first or choose another path)"),
            "{msg}"
        );
        assert!(!msg.contains("os error"), "{msg}");
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_directory_is_not_a_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomically(dir.path(), |w| w.write_all(b"x")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write {}: ", dir.path().display())),
            "{err}"
        );
        assert!(dir.path().is_dir());
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn an_existing_target_survives_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "{\"kept\": true}\n").unwrap();
        for bytes in [&b""[..], b"{\"half", &big(b'z')] {
            write_atomically(&path, fail_after(bytes)).unwrap_err();
            assert_eq!(fs::read_to_string(&path).unwrap(), "{\"kept\": true}\n");
        }
        assert_eq!(entries(dir.path()), ["state.json"]);
    }

    #[test]
    fn io_text_drops_the_os_error_suffix() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(err.to_string().contains("(os error "), "{err}");
        assert!(!io_text(&err).contains("os error"), "{}", io_text(&err));
        assert_eq!(io_text(&io::Error::other("plain")), "plain");
    }
}
