//! `phoenix policy check FILE...`: validates policy files and prints every problem, one
//! line each (`FILE:LINE:COL: field.path: message`); the verdict is the exit code.

use crate::policy::check_files;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate policy files; exits non-zero if any has a problem.
    Check {
        /// Policy files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs a `policy` subcommand: success when every file is valid.
pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { files } => check(&files),
    }
}

/// Prints `FILE: ok (...)` for each valid file, its problems for each other one, and a
/// count of the failed files.
fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for (path, res) in check_files(files) {
        match res {
            Ok(p) => {
                let ladder: Vec<&str> = p.profiles().iter().map(|x| x.name.as_str()).collect();
                println!(
                    "{}: ok (policy {:?}, profiles {})",
                    path.display(),
                    p.name(),
                    ladder.join(" → ")
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} policy file(s) have problems", files.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
