//! The command line (DESIGN §5).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::audit::{AuditConfig, ClientIpMode, FsyncMode};
use crate::config::{self, Config};
use crate::describe::RecordSettings;
use crate::explain;
use crate::reload::{self, Reloader};
use crate::s3::Hosts;
use crate::snapshot::InstanceSettings;

#[derive(Parser, Debug)]
#[command(
    name = "gatekeeper",
    version,
    about = "Data-residency gate for S3-compatible storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gate.
    Serve {
        #[arg(short, long, default_value = "gatekeeper.toml")]
        config: PathBuf,
    },
    /// Validate the config and every rule file; print errors and warnings as
    /// file:line:col. Exit 0 when valid (warnings allowed), 1 on errors.
    Check {
        #[arg(short, long, default_value = "gatekeeper.toml")]
        config: PathBuf,
    },
    /// Decide a hypothetical request and say why.
    ///
    /// Prints one JSON object: the fields of an audit decision record plus
    /// `trace`, the steps of the decision. Exit status: 0 allow, 1 deny,
    /// 3 monitor-deny (would be denied; forwarded in monitor mode),
    /// 2 error (bad config, rules or arguments).
    Explain {
        #[arg(short, long, default_value = "gatekeeper.toml")]
        config: PathBuf,
        /// The requester's address (after any trusted proxies).
        #[arg(long)]
        client_ip: IpAddr,
        /// Decide as on this UTC date (YYYY-MM-DD), e.g. after a contract lapses.
        #[arg(long)]
        at: Option<String>,
        /// Decide as if this [[peer]] presented its mTLS certificate.
        #[arg(long)]
        peer: Option<String>,
        /// The category the upstream would report for the object.
        #[arg(long)]
        stored_category: Option<String>,
        /// A configuration body (replication, inventory, …) from this file.
        #[arg(long)]
        body: Option<PathBuf>,
        /// Request header, as 'Name: value'; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        method: String,
        url: String,
    },
    /// Certificates for trying TLS out.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Read and verify the audit trail.
    Audit {
        #[command(subcommand)]
        command: crate::audit::cli::AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CertsCommand {
    /// Make a development CA, a server certificate and client certificates
    /// (unencrypted keys: for local use and tests only).
    Dev {
        #[arg(long, default_value = "certs/dev")]
        out: PathBuf,
        /// Server certificate name or address; repeatable.
        #[arg(long = "name", default_values = ["localhost", "127.0.0.1", "::1"])]
        names: Vec<String>,
        /// Client certificate DNS name, e.g. a [[peer]]'s san; repeatable.
        #[arg(long = "client", default_values = ["sg-replicator.gatekeeper.test"])]
        clients: Vec<String>,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            client_ip,
            at,
            peer,
            stored_category,
            body,
            headers,
            method,
            url,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for h in &headers {
                let Some((k, v)) = h.split_once(':') else {
                    eprintln!("error: -H {h:?}: expected 'Name: value'");
                    return ExitCode::from(2);
                };
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let body = match body.map(std::fs::read_to_string).transpose() {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: --body: {e}");
                    return ExitCode::from(2);
                }
            };
            let q = explain::Query {
                method,
                url,
                client_ip,
                headers: map,
                at,
                peer,
                stored_category,
                body,
            };
            run_explain(&config, &q)
        }
        Command::Certs {
            command:
                CertsCommand::Dev {
                    out,
                    names,
                    clients,
                    force,
                },
        } => {
            let req = crate::devcerts::Request {
                out,
                server_names: names,
                clients,
                force,
            };
            match crate::devcerts::make(&req) {
                Ok(issued) => {
                    for i in issued {
                        println!(
                            "{}: {} {} sha256:{}",
                            i.name,
                            i.cert.display(),
                            i.key.display(),
                            i.sha256
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Audit { command } => crate::audit::cli::run(command),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("gatekeeper=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub(crate) fn reload_sources(cfg: &Config) -> reload::Sources {
    reload::Sources {
        rules_dir: cfg.rules.clone(),
        geoip: cfg.geoip.database.clone(),
        instance: InstanceSettings {
            region: cfg.region.clone(),
            default_mode: cfg.mode,
            unknown_bucket_monitor: cfg.unknown_bucket == config::UnknownBucket::Monitor,
            unknown_location_allow: cfg.geoip.unknown == config::UnknownLocation::Allow,
        },
    }
}

fn hosts(cfg: &Config) -> Hosts {
    Hosts {
        path_style: cfg.s3.hosts.clone(),
        virtual_host_domains: cfg.s3.virtual_host_domains.clone(),
    }
}

/// The HMAC key comes from `audit.hash_key`; without one, a random key per
/// process still hides addresses and keys, but hashes are then comparable
/// only within one run.
fn record_settings(cfg: &Config) -> Result<RecordSettings, String> {
    let hmac_key = match &cfg.audit.hash_key {
        Some(p) => std::fs::read(p).map_err(|e| format!("audit.hash_key {}: {e}", p.display()))?,
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    Ok(RecordSettings {
        instance: cfg.audit.instance.clone(),
        client_ip: match cfg.audit.client_ip {
            config::ClientIp::Full => ClientIpMode::Full,
            config::ClientIp::Truncate => ClientIpMode::Truncate,
            config::ClientIp::Hash => ClientIpMode::Hash,
        },
        key_hash: cfg.audit.key_hash,
        hmac_key,
    })
}

fn audit_config(cfg: &Config) -> AuditConfig {
    AuditConfig {
        dir: cfg.audit.dir.clone(),
        instance: cfg.audit.instance.clone(),
        fsync: match cfg.audit.fsync {
            config::Fsync::Always => FsyncMode::Always,
            config::Fsync::Batch => FsyncMode::Batch,
            config::Fsync::Never => FsyncMode::Never,
        },
        batch_ms: cfg.audit.batch_interval.as_millis() as u64,
        queue: cfg.audit.queue,
        segment_bytes: cfg.audit.segment_bytes,
        segment_max_age: cfg.audit.segment_max_age,
        checkpoint_interval: cfg.audit.checkpoint_interval,
        signing_key: cfg.audit.signing_key.clone(),
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        ExitCode::from(2)
    })
}

fn check(path: &Path) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(_) => return ExitCode::FAILURE,
    };
    let sources = reload_sources(&cfg);
    match reload::initial(&sources) {
        Ok((snap, warnings)) => {
            for w in &warnings {
                println!("{w}");
            }
            let t = &snap.rules.tables;
            println!(
                "ok: rules {} ({} tenants, {} buckets, {} bases), {} warning(s)",
                snap.rules.version,
                t.tenants.len(),
                t.buckets.len(),
                t.bases.len(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            println!("{} error(s)", errors.len());
            ExitCode::FAILURE
        }
    }
}

fn run_explain(path: &Path, q: &explain::Query) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let snap = match reload::initial(&reload_sources(&cfg)) {
        Ok((snap, _)) => snap,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let record = match record_settings(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match explain::explain(&snap, &record, &hosts(&cfg), q) {
        Ok(answer) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            match answer["decision"].as_str() {
                Some("allow") => ExitCode::SUCCESS,
                Some("monitor-deny") => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    init_tracing();
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Polls a watched file once a second until the process ends: `check`
/// reloads it if it changed (`None` if not); a failed reload keeps what is
/// in force, and is logged and counted.
async fn watch_file<F>(what: &'static str, check: F, reloads: prometheus::IntCounterVec)
where
    F: Fn() -> Option<Result<(), String>> + Clone + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let result = match tokio::task::spawn_blocking(check.clone()).await {
            Ok(Some(Ok(()))) => {
                tracing::info!("{what} reloaded");
                "ok"
            }
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "{what} reload failed; keeping the one in force");
                "error"
            }
            _ => continue,
        };
        reloads.with_label_values(&[result]).inc();
    }
}

/// SIGTERM and SIGINT, as a stream: once handlers are installed a repeated
/// signal no longer kills the process, and the second one is seen.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
        Ok(StopSignals {
            term: handler(SignalKind::terminate())?,
            int: handler(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    use crate::proxy::forward::{start_embedded, Upstream, UpstreamOptions};
    use crate::proxy::pipeline::{Gate, RequestIds, Settings};

    let sources = reload_sources(&cfg);
    let (first, warnings) = reload::initial(&sources).map_err(|e| e.join("\n"))?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let record = record_settings(&cfg)?;
    let audit = crate::audit::start(audit_config(&cfg))
        .map_err(|e| format!("audit trail {}: {e}", cfg.audit.dir.display()))?;
    metrics.register_audit(audit.clone());
    let archiver = match &cfg.audit.archive {
        Some(a) => {
            let stats = Arc::new(crate::audit::archive::ArchiveStats::default());
            metrics.register_archive(stats.clone());
            tracing::info!(endpoint = %a.endpoint, bucket = %a.bucket, "archiving sealed audit segments");
            let dir = &cfg.audit.dir;
            Some(crate::audit::archive::start(
                a.clone(),
                dir,
                &cfg.audit.instance,
                stats,
            )?)
        }
        None => None,
    };
    let kept = crate::audit::RuleStore::new(&cfg.audit.dir);
    kept.keep(&sources.rules_dir, &first.rules.version)
        .map_err(|e| format!("keeping rule set {}: {e}", first.rules.version))?;
    let reloader = Arc::new(Reloader::new(
        sources,
        first,
        metrics.clone(),
        record.clone(),
        hosts(&cfg),
        kept,
    ));

    let upstream_uri = match &cfg.upstream.target {
        config::UpstreamTarget::Http(uri) => uri.clone(),
        config::UpstreamTarget::Embedded(dir) => {
            if !cfg.s3.virtual_host_domains.is_empty() {
                return Err(
                    "the built-in store (upstream embedded:) serves path-style requests only: \
                     remove [s3] virtual_host_domains"
                        .into(),
                );
            }
            let addr = start_embedded(dir, &cfg.upstream.access_key, &cfg.upstream.secret_key)
                .await
                .map_err(|e| format!("embedded store {}: {e}", dir.display()))?;
            tracing::info!(dir = %dir.display(), %addr, "built-in local store started");
            format!("http://{addr}")
                .parse()
                .map_err(|e| format!("{e}"))?
        }
    };
    let upstream = Upstream::new(
        &upstream_uri,
        &UpstreamOptions {
            connect_timeout: cfg.upstream.connect_timeout,
            response_timeout: cfg.upstream.response_timeout,
            pool_idle: cfg.upstream.pool_idle,
            ca: cfg.upstream.ca.clone(),
            client_cert: cfg.upstream.client_cert.clone(),
        },
    )?;

    let s3_listener = tokio::net::TcpListener::bind(cfg.listen.s3)
        .await
        .map_err(|e| format!("listen {}: {e}", cfg.listen.s3))?;
    let admin_listener = tokio::net::TcpListener::bind(cfg.listen.admin)
        .await
        .map_err(|e| format!("listen {}: {e}", cfg.listen.admin))?;
    let s3_addr = s3_listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match &cfg.listen.tls {
        Some(t) => {
            let config = Arc::new(crate::tls::Tls::load(t.files())?);
            let listener = tokio::net::TcpListener::bind(t.addr)
                .await
                .map_err(|e| format!("listen {}: {e}", t.addr))?;
            let watched = config.clone();
            tokio::spawn(watch_file(
                "TLS certificates",
                move || watched.reload_if_changed(),
                metrics.tls_reloads.clone(),
            ));
            Some((listener, config))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };

    let gate = Arc::new(Gate {
        snapshots: reloader.snapshots(),
        settings: Settings {
            hosts: hosts(&cfg),
            trusted_proxies: cfg.network.trusted_proxies.clone(),
            client_ip_header: match cfg.network.client_ip_header {
                config::ClientIpHeader::XForwardedFor => {
                    crate::locate::ForwardedHeader::XForwardedFor
                }
                config::ClientIpHeader::Forwarded => crate::locate::ForwardedHeader::Forwarded,
            },
            deny_detail_full: cfg.s3.deny_detail == config::DenyDetail::Full,
            on_failure_allow: cfg.audit.on_failure == config::OnAuditFailure::Allow,
            idle_timeout: cfg.upstream.idle_timeout,
            max_config_body: cfg.limits.max_config_body_bytes,
            record,
        },
        upstream,
        audit: audit.clone(),
        metrics: metrics.clone(),
        ids: RequestIds::new(),
        completions: Arc::default(),
    });
    let edge_metrics = Arc::new(crate::proxy::server::EdgeMetrics::register(
        &metrics.registry,
    ));
    let edge = Arc::new(crate::proxy::server::Edge {
        limits: cfg.limits.clone(),
        proxy_protocol: cfg.listen.proxy_protocol,
        connections: Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_connections)),
        drain_timeout: cfg.shutdown.drain_timeout,
        metrics: edge_metrics.clone(),
    });
    let token = match &cfg.admin.token_file {
        Some(path) => {
            let token = Arc::new(crate::admin::TokenFile::load(path)?);
            let watched = token.clone();
            tokio::spawn(watch_file(
                "admin token",
                move || watched.reload_if_changed(),
                metrics.admin_token_reloads.clone(),
            ));
            Some(token)
        }
        None => None,
    };
    let draining = Arc::new(AtomicBool::new(false));
    let admin = Arc::new(crate::admin::Admin {
        metrics,
        edge_metrics,
        reloader: reloader.clone(),
        audit: audit.clone(),
        draining: draining.clone(),
        token,
        max_explain_body: cfg.limits.max_explain_body_bytes,
        header_timeout: cfg.limits.header_timeout,
    });

    tokio::spawn(reloader.clone().watch(Duration::from_secs(1)));
    {
        let reloader = reloader.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload()).await;
            }
        });
    }

    // The S3 listeners stop first; the admin listener stays to answer
    // /readyz (and be scraped) until the audit trail is closed.
    let (stop_s3, s3_stopped) = tokio::sync::watch::channel(());
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(());
    let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    let admin_task = tokio::spawn(crate::admin::serve(
        admin_listener,
        admin,
        stopped(admin_stopped),
    ));
    let mut signals = StopSignals::install()?;
    // Scripts and tests read the bound addresses from this line.
    let tls_field = tls_addr.map_or(String::new(), |a| format!(" tls={a}"));
    println!("gatekeeper listening s3={s3_addr} admin={admin_addr}{tls_field}");
    tracing::info!(s3 = %s3_addr, admin = %admin_addr, tls = ?tls_addr, "gatekeeper started");

    let (hurry_s3, s3_hurried) = tokio::sync::watch::channel(());
    let listen = |listener, tls| {
        crate::proxy::server::serve(
            listener,
            gate.clone(),
            edge.clone(),
            tls,
            stopped(s3_stopped.clone()),
            stopped(s3_hurried.clone()),
        )
    };
    let plain = listen(s3_listener, None);
    let secure = async {
        if let Some((listener, config)) = tls {
            listen(listener, Some(config)).await;
        }
    };
    // A second SIGTERM or SIGINT, as an operator repeats an impatient
    // Ctrl-C, skips the rest of the delay and the drain; the audit trail
    // is still flushed and the exit status is still 0.
    let signals = async {
        signals.next().await;
        draining.store(true, Ordering::Relaxed);
        tracing::info!(delay = ?cfg.shutdown.delay, drain_timeout = ?cfg.shutdown.drain_timeout, "stopping: not ready, draining");
        let repeated = tokio::select! {
            () = tokio::time::sleep(cfg.shutdown.delay) => false,
            () = signals.next() => true,
        };
        let _ = stop_s3.send(());
        if !repeated {
            signals.next().await;
        }
        tracing::warn!("stop signal repeated: skipping the rest of the drain");
        let _ = hurry_s3.send(());
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = async { tokio::join!(plain, secure) } => {}
        () = signals => {}
    }
    if let Some(archiver) = archiver {
        archiver.stop().await;
    }
    // Bounded: a request that never ended must not keep the trail open.
    if tokio::time::timeout(cfg.shutdown.drain_timeout, gate.settle())
        .await
        .is_err()
    {
        tracing::error!(
            "requests still open after the drain; their completion records are missing"
        );
    }
    audit.shutdown().await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    tracing::info!("gatekeeper stopped");
    Ok(())
}
