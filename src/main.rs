//! The `phoenix` binary: parses the command line, runs it (`phoenix::cli`, where the
//! commands live) and ends any error as one line `phoenix: ...` with exit code 1, never a
//! backtrace. Usage errors are clap's (exit code 2).

use clap::Parser as _;
use phoenix::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    restore_sigpipe();
    // Fail points exist only in a `--features failpoints` build; a FAILPOINTS variable
    // given to any other build would silently inject nothing, so refuse it.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    #[cfg(not(feature = "failpoints"))]
    if std::env::var_os("FAILPOINTS").is_some() {
        eprintln!(
            "phoenix: FAILPOINTS is set but this build has no fail points; build with `--features failpoints` or unset it"
        );
        return ExitCode::FAILURE;
    }
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
