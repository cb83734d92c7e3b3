//! `gatekeeper audit …`: the auditor's side of the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::keys::{keygen, KeyRing};
use super::query::{parse_time, query, to_output, Filter, Format, QueryError};
use super::replay::{replay, Judge, ReplayFormat};
use super::report::{self, ReportFormat};
use super::verify::{verify, VerifyOptions};

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
    /// Re-decide the decision records of the log in DIR under the rule set
    /// in NEWDIR, and list those whose decision, reason or basis would
    /// change, with how faithfully each could be replayed (see the docs:
    /// the requester's location is taken as recorded). A summary goes to
    /// stderr. Exit status: 0 nothing would change, 1 something would,
    /// 2 error.
    Replay {
        dir: PathBuf,
        /// The candidate rules directory.
        #[arg(long, value_name = "NEWDIR")]
        rules: PathBuf,
        /// The gate's config: its region, mode, unknown_bucket,
        /// geoip.unknown and audit.key_hash apply to the replay.
        #[arg(short, long, default_value = "gatekeeper.toml")]
        config: PathBuf,
        #[arg(long, value_parser = parse_time)]
        since: Option<String>,
        #[arg(long, value_parser = parse_time)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = ReplayFormat::Jsonl)]
        format: ReplayFormat,
    },
    /// Report on a period of the log in DIR for an auditor: verification,
    /// flows between jurisdictions, legal bases used, denials, and bases
    /// about to expire; one self-contained HTML page, or CSV or JSON.
    /// Exit status 1 when the log does not verify (the report says so too).
    Report {
        dir: PathBuf,
        #[arg(long, value_parser = parse_time)]
        since: Option<String>,
        #[arg(long, value_parser = parse_time)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// As for verify.
        #[arg(long = "public-key", value_name = "FILE")]
        public_keys: Vec<PathBuf>,
        /// As for verify.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// Write here rather than to stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
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
                    for line in summary.lines() {
                        println!("{line}");
                    }
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
        AuditCommand::Replay {
            dir,
            rules,
            config,
            since,
            until,
            format,
        } => run_replay(&dir, &rules, &config, since, until, format),
        AuditCommand::Report {
            dir,
            since,
            until,
            format,
            public_keys,
            checkpoints,
            output,
        } => {
            let keys = match KeyRing::load(&public_keys) {
                Ok(keys) => keys,
                Err(e) => {
                    eprintln!("error: --public-key {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = VerifyOptions { keys, checkpoints };
            let written = report::build(&dir, since, until, &opts).and_then(|r| {
                let write = |out: &mut dyn std::io::Write| {
                    use std::io::Write;
                    let mut out = std::io::BufWriter::new(out);
                    report::write(&r, format, &mut out).and_then(|()| out.flush())
                };
                match &output {
                    Some(path) => std::fs::File::create(path)
                        .and_then(|mut f| write(&mut f))
                        .map_err(|e| QueryError::Io(path.clone(), e)),
                    None => write(&mut std::io::stdout().lock()).map_err(to_output),
                }
                .map(|()| r.verification.ok)
            });
            match written {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
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

fn run_replay(
    dir: &Path,
    rules: &Path,
    config: &Path,
    since: Option<String>,
    until: Option<String>,
    format: ReplayFormat,
) -> ExitCode {
    let cfg = match crate::config::load(config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let settings = crate::cli::reload_sources(&cfg).instance;
    let today = time::OffsetDateTime::now_utc().date();
    let candidate = match crate::rules::compile::load_dir(rules, today) {
        Ok(compiled) => Judge::new(compiled.rules, &settings),
        Err(errors) => Err(errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")),
    };
    let candidate = match candidate {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = Filter {
        since,
        until,
        ..Filter::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let keys_hashed = cfg.audit.key_hash;
    match replay(
        dir,
        &filter,
        &candidate,
        &settings,
        keys_hashed,
        format,
        &mut out,
    ) {
        Ok(summary) => {
            eprint!("{summary}");
            if summary.changed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(QueryError::Io(_, e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
