//! `gatekeeper audit …`: the auditor's side of the log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::keys::{keygen, KeyRing};
use super::query::{parse_time, query, Filter, Format, QueryError};
use super::verify::{verify, VerifyOptions, VerifySummary};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check every hash link, seal and checkpoint of the log in DIR; name
    /// the first problem as FILE:LINE (seq N): KIND: … and exit 1.
    Verify {
        dir: PathBuf,
        /// A public key (PEM) that seals and checkpoints must be signed
        /// with; repeat it for keys that were rotated. Without one,
        /// signatures are not checked, and the output says so.
        #[arg(long = "public-key", value_name = "FILE")]
        public_keys: Vec<PathBuf>,
        /// A checkpoint kept away from the log (shipped off the host): the
        /// log must still reach it. DIR/checkpoint.json is always checked.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
    },
    /// Print the records of the log in DIR that match every filter given,
    /// oldest first, streaming. Filters other than time select decision
    /// records only.
    Query {
        dir: PathBuf,
        /// From this time on (RFC 3339, or YYYY-MM-DD for its midnight UTC).
        #[arg(long, value_parser = parse_time)]
        since: Option<String>,
        /// Before this time.
        #[arg(long, value_parser = parse_time)]
        until: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// allow, deny or monitor-deny.
        #[arg(long)]
        decision: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// A jurisdiction, region or country the data came from.
        #[arg(long)]
        from: Option<String>,
        /// A jurisdiction, region or country the data went to.
        #[arg(long)]
        to: Option<String>,
        /// A legal basis id.
        #[arg(long)]
        basis: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Make an Ed25519 key pair for `audit.signing_key`: NAME.pem (private,
    /// mode 0600) and NAME.pub.pem (for verify --public-key); print its
    /// key_id.
    Keygen {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        #[arg(long, default_value = "audit-ed25519")]
        name: String,
        /// Replace an existing key pair. Keep its public key: the logs it
        /// signed are checked with it.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify {
            dir,
            public_keys,
            checkpoints,
        } => {
            let keys = match KeyRing::load(&public_keys) {
                Ok(keys) => keys,
                Err(e) => {
                    eprintln!("error: --public-key {e}");
                    return ExitCode::from(2);
                }
            };
            match verify(&dir, &VerifyOptions { keys, checkpoints }) {
                Ok(summary) => {
                    print_summary(&summary);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCommand::Query {
            dir,
            since,
            until,
            tenant,
            decision,
            reason,
            from,
            to,
            basis,
            format,
        } => {
            let filter = Filter {
                since,
                until,
                tenant,
                decision,
                reason,
                from,
                to,
                basis,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match query(&dir, &filter, format, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                // `| head` closed the pipe: it has what it wanted.
                Err(QueryError::Io(_, e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        AuditCommand::Keygen { out, name, force } => match keygen(&out, &name, force) {
            Ok(files) => {
                println!("key_id {}", files.key_id);
                println!(
                    "private key {} (audit.signing_key)",
                    files.private.display()
                );
                println!(
                    "public key {} (audit verify --public-key)",
                    files.public.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn print_summary(s: &VerifySummary) {
    match s.last_seq {
        Some(last) => println!(
            "verified: seq 1 to {last}, {} record(s) in {} segment(s), {} sealed; last hash {}",
            s.records, s.segments, s.sealed, s.last_hash
        ),
        None => println!("verified: the log is empty"),
    }
    for (path, seq) in &s.checkpoints {
        println!("checkpoint {}: the log reaches seq {seq}", path.display());
    }
    let keys = s.signed_by.iter().cloned().collect::<Vec<_>>().join(", ");
    if s.signatures_checked {
        if !keys.is_empty() {
            println!("signatures: good, by key {keys}");
        }
    } else if !keys.is_empty() {
        println!("signatures: NOT checked (no --public-key); signed by key {keys}");
    }
    if s.unsigned > 0 {
        println!(
            "{} seal(s) or checkpoint(s) are unsigned (no audit.signing_key): they guard against accidents, not against someone who can write the log",
            s.unsigned
        );
    }
}
