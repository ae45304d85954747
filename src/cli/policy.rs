//! `phoenix policy check FILE...`: validates policy files and prints every problem, one
//! line each (`FILE:LINE:COL: field.path: message`); the verdict is the exit code.
//! Warnings (`FILE:LINE:COL: warning: field.path: message`) do not fail the check: they
//! mark what validated but may lose data, such as a labeldrop that could merge series.
//! `phoenix policy show-default` prints the default policy built into the binary, the one
//! `phoenix simulate --trace` runs without `--policy`.

use crate::policy::check_files;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// `policies/default.yaml`, built into the binary so commands that default to it work
/// from any folder, with only the binary installed.
pub(crate) const DEFAULT_POLICY: &str = include_str!("../../policies/default.yaml");

/// How the built-in default names itself in messages and reports.
pub(crate) const DEFAULT_POLICY_ORIGIN: &str = "policies/default.yaml (built in)";

/// The `policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate policy files; exits non-zero if any has a problem.
    Check {
        /// Policy files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the default policy built into this binary (save it to start a policy of
    /// your own).
    ShowDefault,
}

/// Runs a `policy` subcommand: success when every file is valid.
pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { files } => check(&files),
        PolicyCommand::ShowDefault => {
            print!("{DEFAULT_POLICY}");
            ExitCode::SUCCESS
        }
    }
}

/// Prints `FILE: ok (...)` for each valid file, its problems for each other one, and a
/// count of the failed files.
fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for (path, res) in check_files(files) {
        match res {
            Ok(p) => {
                for w in p.warnings() {
                    eprintln!("{}", warning_line(w));
                }
                let ladder: Vec<&str> = p.profiles().iter().map(|x| x.name.as_str()).collect();
                let warned = match p.warnings().len() {
                    0 => String::new(),
                    1 => ", 1 warning".to_string(),
                    n => format!(", {n} warnings"),
                };
                println!(
                    "{}: ok (policy {:?}, profiles {}{warned})",
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

/// `FILE:LINE:COL: warning: field: message`, the problem form with the word a compiler
/// uses, so editors list it with the errors.
/// A warning as one line, `FILE:LINE:COL: warning: field: message`.
pub(crate) fn warning_line(w: &crate::policy::Problem) -> String {
    let mut out = w.path.clone();
    if let Some(line) = w.line {
        out.push_str(&format!(":{line}"));
        if let Some(col) = w.col {
            out.push_str(&format!(":{col}"));
        }
    }
    out.push_str(": warning: ");
    if !w.field.is_empty() {
        out.push_str(&w.field);
        out.push_str(": ");
    }
    out.push_str(&w.message);
    out
}
