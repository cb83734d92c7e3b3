//! `gatekeeper audit …`: the auditor's side of the log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check every hash link across every segment; name the first break.
    Verify { dir: PathBuf },
}

pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { dir } => match super::verify_chain(&dir) {
            Ok(summary) => {
                println!(
                    "verified: {} record(s) in {} segment(s); last seq {}, hash {}",
                    summary.records,
                    summary.segments,
                    summary.last_seq.map_or("-".to_owned(), |s| s.to_string()),
                    summary.last_hash
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}
