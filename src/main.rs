//! The `phoenix` binary: parses the command line, runs it (`phoenix::cli`, where the
//! commands live) and ends any error as one line `phoenix: ...` with exit code 1, never a
//! backtrace. Usage errors are clap's (exit code 2).

use clap::Parser as _;
use phoenix::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    restore_sigpipe();
    match cli::run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}`: the error and its causes, on one line.
            eprintln!("phoenix: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `phoenix ... | head` would panic on the closed pipe; like
/// other Unix tools, end quietly instead.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
