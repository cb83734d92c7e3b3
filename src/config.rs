//! `gatekeeper.toml`: the settings of one edge instance (DESIGN §4).
//!
//! `RawConfig` is what serde reads, spans kept; `Config` is validated, with
//! defaults applied and relative paths resolved against the directory of the
//! config file (so a gate started from any working directory reads the same
//! files). Errors are the rule compiler's `Diagnostic`s, so `check` prints
//! both the same way, and every bad value is reported at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::rules::compile::{all, At, Diagnostic, Report, Reported, Severity};
use crate::rules::model::{Mode, Origin, RegionId, RuleSet};
use crate::rules::raw::{LocalDate, Name};

/// A validated `gatekeeper.toml`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was read from: a reload reads it again, messages name it.
    pub path: PathBuf,
    /// The region this instance guards, where a bucket without `region`
    /// lies. Kept as a name: it is checked against whichever rule set is
    /// loaded, by `region_id`.
    pub region: String,
    /// Where `region` is written, so that a region the rules lack can be
    /// pointed at.
    pub region_origin: Origin,
    /// The directory of rule files: every `*.toml` under it.
    pub rules: PathBuf,
    /// The mode of tenants that set none.
    pub mode: Mode,
    /// What a request for a bucket that no tenant owns gets.
    pub unknown_bucket: UnknownBucket,
    /// Where clients and operators connect.
    pub listen: Listen,
    /// The storage every allowed request is forwarded to.
    pub upstream: Upstream,
    /// How S3 requests are addressed and how much a denial says.
    pub s3: S3,
    /// Where a requester no rule locates is.
    pub geoip: Geoip,
    /// Which hops in front of the gate are believed.
    pub network: Network,
    /// The transfer log and how hard it tries to be complete.
    pub audit: Audit,
    /// What one client may hold of the S3 listeners.
    pub limits: Limits,
    /// How the gate stops on SIGTERM.
    pub shutdown: Shutdown,
    /// Who may use the admin listener's endpoints that change or reveal
    /// decisions.
    pub admin: Admin,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnknownBucket {
    /// `deny`: refused with reason `unknown_bucket`.
    Deny,
    /// `monitor`: forwarded as `monitor-deny`, to find the buckets the rules
    /// miss before enforcing.
    Monitor,
}

#[derive(Clone, Debug)]
pub struct Listen {
    /// The S3 listener (plain HTTP).
    pub s3: SocketAddr,
    /// Metrics, health, reload and explain; kept apart from S3 traffic so it
    /// can stay on loopback.
    pub admin: SocketAddr,
    pub tls: Option<Tls>,
    /// Every connection to the S3 listeners starts with a PROXY protocol
    /// header (v1 or v2) from one of `network.trusted_proxies`, whose
    /// client address stands for the connection's; connections from any
    /// other address are closed.
    pub proxy_protocol: bool,
}

#[derive(Clone, Debug)]
pub struct Tls {
    /// A second S3 listener, over TLS: the plain one can stay on loopback
    /// while peers connect over the network with client certificates.
    pub addr: SocketAddr,
    /// PEM certificate chain of the gate.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA that client certificates are checked against: without it no
    /// request can be located as a `[[peer]]`.
    pub client_ca: Option<PathBuf>,
    /// More (certificate, key) pairs, chosen by the name a client asks for
    /// (SNI); `cert` answers any other name.
    pub sni: Vec<(PathBuf, PathBuf)>,
}

impl Tls {
    pub fn files(&self) -> crate::tls::Files {
        crate::tls::Files {
            certs: std::iter::once((self.cert.clone(), self.key.clone()))
                .chain(self.sni.iter().cloned())
                .collect(),
            client_ca: self.client_ca.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Open S3 connections, across listeners; one more is closed at once.
    pub max_connections: usize,
    /// Concurrent requests on one HTTP/2 connection.
    pub max_streams: u32,
    /// A request head: the request line and headers for HTTP/1.1 (answered
    /// `431` beyond it; also the most hyper buffers of a connection at
    /// once), the header list for HTTP/2.
    pub max_header_bytes: usize,
    /// Header fields in an HTTP/1.1 request (`431` beyond it).
    pub max_headers: usize,
    /// From the first byte of a request to the end of its head, and for a
    /// PROXY protocol header or a TLS handshake: a slowloris client holds a
    /// connection this long, not forever.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// A connection whose client takes nothing of a response for this long
    /// (its socket stays full, or an HTTP/2 stream's window stays shut) is
    /// closed: a client that stops reading must not hold upstream
    /// connections and buffers forever.
    pub send_timeout: Duration,
    /// Configuration bodies the gate parses itself (replication and the
    /// like), refused with `400 MaxMessageLengthExceeded` beyond it.
    pub max_config_body_bytes: usize,
    /// `POST /v1/explain` bodies (`413` beyond it).
    pub max_explain_body_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct Shutdown {
    /// How long the gate keeps accepting after SIGTERM with `/readyz`
    /// already answering 503, for load balancers that must see it before
    /// they stop sending.
    pub delay: Duration,
    /// How long requests in flight may take to finish once the listeners
    /// close; what is left is then cut off.
    pub drain_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Admin {
    /// A file holding the bearer token that `POST` endpoints and
    /// `/v1/explain` require. Required when the admin listener is not on
    /// loopback; when set, required on loopback too.
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    /// Real storage, or the built-in store for trying the gate out.
    pub target: UpstreamTarget,
    /// Time to establish a connection to the upstream.
    pub connect_timeout: Duration,
    /// Time from sending the request head to the response head: a hung
    /// upstream becomes a 504, not a hung client.
    pub response_timeout: Duration,
    /// Longest pause while streaming a body in either direction.
    pub idle_timeout: Duration,
    /// How long an idle pooled upstream connection is kept for reuse.
    pub pool_idle: Duration,
    /// Credentials of the embedded store, which checks SigV4 like real
    /// storage; clients sign with them. Empty for an HTTP upstream, which
    /// checks its own credentials (the gate forwards signatures untouched).
    pub access_key: String,
    pub secret_key: String,
    /// For an `https://` upstream: the PEM CA to trust instead of the
    /// system's roots.
    pub ca: Option<PathBuf>,
    /// For an `https://` upstream that wants one: the gate's client
    /// certificate and key (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `http://…` or `https://…`: scheme, host and port only, since requests
    /// are forwarded with their own path and query.
    Http(http::Uri),
    /// `embedded:DIR`: a built-in S3 store over a local directory, for
    /// trying the gate out without running storage.
    Embedded(PathBuf),
}

#[derive(Clone, Debug)]
pub struct S3 {
    /// Host names (without port, lower case) under which path-style requests
    /// arrive. Any other Host is refused, because the gate could not know
    /// which bucket the upstream will read from it.
    pub hosts: Vec<String>,
    /// Domains under which `bucket.domain` arrives virtual-hosted.
    pub virtual_host_domains: Vec<String>,
    /// What a denial's error body tells the client.
    pub deny_detail: DenyDetail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DenyDetail {
    /// Only the reason: a denial tells the client nothing about the rules.
    Reason,
    /// Also tenant, category and jurisdictions (to anyone who asks).
    Full,
}

#[derive(Clone, Debug)]
pub struct Geoip {
    /// A MaxMind-format country (or city) database.
    pub database: PathBuf,
    /// What a requester no rule and no database entry locates gets, for
    /// data that is not `free`.
    pub unknown: UnknownLocation,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnknownLocation {
    Deny,
    Allow,
}

#[derive(Clone, Debug)]
pub struct Network {
    /// Proxies whose `X-Forwarded-For` (or `Forwarded`) and PROXY protocol
    /// headers are believed. Empty by default: an untrusted client could
    /// otherwise claim any location.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header those proxies write the client's address in; the
    /// other passes through them untouched, so it is never read.
    pub client_ip_header: ClientIpHeader,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientIpHeader {
    XForwardedFor,
    /// RFC 7239.
    Forwarded,
}

#[derive(Clone, Debug)]
pub struct Audit {
    /// Where segments, seals, checkpoints and rule-set copies are written.
    pub dir: PathBuf,
    /// How much a power cut may lose, against how long a request waits.
    pub fsync: Fsync,
    /// With `fsync = "batch"`: how long records may wait for an fsync, which
    /// is what a power cut can lose.
    pub batch_interval: Duration,
    /// Whether data may move when its record cannot be written.
    pub on_failure: OnAuditFailure,
    /// Ed25519 private key (PKCS#8 PEM) that signs seals and checkpoints;
    /// without it the chain is tamper-evident only against partial edits.
    pub signing_key: Option<PathBuf>,
    /// How much of a client's address a record keeps: the log is itself
    /// personal data.
    pub client_ip: ClientIp,
    /// Record object keys as a keyed HMAC instead of in clear: keys can be
    /// personal data (`users/alice@example.com/…`).
    pub key_hash: bool,
    /// The HMAC key for `client_ip = "hash"` and `key_hash`; one key across
    /// restarts keeps hashed values comparable.
    pub hash_key: Option<PathBuf>,
    /// Names this gate in every record, so logs of many gates can be merged.
    pub instance: String,
    /// Records buffered between requests and the writer; when full, a
    /// request waits (or is refused per `on_failure`) rather than losing a
    /// record.
    pub queue: usize,
    /// Size at which a segment is sealed and a new one started.
    pub segment_bytes: u64,
    /// Age of its first record at which a segment is sealed however small,
    /// so that a quiet gate's log is sealed too.
    pub segment_max_age: Duration,
    /// How often a signed checkpoint of the newest record is written while
    /// records come in: what truncation is detected against.
    pub checkpoint_interval: Duration,
    /// Where sealed segments are shipped, when anywhere.
    pub archive: Option<Archive>,
}

/// `[audit.archive]`: an S3 bucket that keeps the sealed segments of a
/// fleet of gates in one place of record.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Scheme, host and port of the storage.
    pub endpoint: http::Uri,
    pub bucket: String,
    /// Put before `<instance>/<file name>` in every key; empty or without
    /// slashes at either end.
    pub prefix: String,
    /// The region requests are signed for.
    pub region: String,
    /// Files holding the access key id and the secret key, so that neither
    /// is written in the config.
    pub access_key_file: PathBuf,
    pub secret_key_file: PathBuf,
    /// Object Lock retention of every object shipped, for a bucket with
    /// Object Lock; without it the bucket's default retention applies.
    pub retention: Option<Retention>,
    /// Delete a segment's data once its upload is confirmed (its seal is
    /// kept).
    pub delete_local: bool,
    /// How often sealed segments are looked for; failures are tried again
    /// then.
    pub interval: Duration,
    /// For an `https://` archive: the PEM CA to trust instead of the
    /// system's roots.
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retention {
    pub mode: LockMode,
    pub days: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockMode {
    /// Nobody can shorten the retention or delete the object before it
    /// ends, the account's root user included.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can.
    Governance,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fsync {
    /// Hold each forward until its decision record is on disk.
    Always,
    /// fsync every `batch_interval`.
    Batch,
    /// Leave it to the operating system.
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnAuditFailure {
    /// Refuse with 503: no data moves without a record.
    Deny,
    /// Forward anyway, and count the lost record.
    Allow,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientIp {
    Full,
    /// /24 for IPv4, /48 for IPv6: enough to see a network, not a person.
    Truncate,
    /// A keyed HMAC: the same client is recognisable, not identifiable.
    Hash,
}

impl Config {
    /// The instance's region in `rules`, or an error pointing at `region` in
    /// the config file.
    pub fn region_id(&self, rules: &RuleSet) -> Result<RegionId, Diagnostic> {
        rules.region_by_id(&self.region).ok_or_else(|| Diagnostic {
            origin: self.region_origin.clone(),
            severity: Severity::Error,
            message: format!(
                "region {:?} is not a [[region]] of the rules in {}",
                self.region,
                self.rules.display()
            ),
        })
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(vec![Diagnostic::file_error(
            path,
            format!("cannot read: {e}"),
        )]),
    }
}

/// Validates config text read from `path` (which names it in messages and
/// anchors its relative paths).
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut report = Report::new([(path, text)]);
    let raw = match toml::from_str::<RawConfig>(text) {
        Ok(raw) => raw,
        Err(e) => {
            report.parse_error(0, &e);
            return Err(report.finish());
        }
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut v = Validator { report, base, path };
    let config = v.config(&raw);
    match config {
        Ok(config) if !v.report.has_errors() => Ok(config),
        _ => Err(v.report.finish()),
    }
}

// ---------------------------------------------------------------------------
// What serde reads.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: Name,
    rules: Option<Name>,
    mode: Option<Name>,
    monitor_until: Option<Spanned<LocalDate>>,
    unknown_bucket: Option<Name>,
    #[serde(default)]
    listen: RawListen,
    upstream: RawUpstream,
    #[serde(default)]
    s3: RawS3,
    geoip: RawGeoip,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    shutdown: RawShutdown,
    #[serde(default)]
    admin: RawAdmin,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    s3: Option<Name>,
    admin: Option<Name>,
    tls: Option<RawTls>,
    proxy_protocol: Option<Spanned<bool>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<u64>>,
    max_streams: Option<Spanned<u64>>,
    max_header_bytes: Option<Spanned<u64>>,
    max_headers: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    send_timeout_ms: Option<Spanned<u64>>,
    max_config_body_bytes: Option<Spanned<u64>>,
    max_explain_body_bytes: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShutdown {
    delay_ms: Option<Spanned<u64>>,
    drain_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token_file: Option<Name>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    addr: Name,
    cert: Name,
    key: Name,
    client_ca: Option<Name>,
    #[serde(default)]
    sni: Vec<RawCertPair>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertPair {
    cert: Name,
    key: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Name,
    connect_timeout_ms: Option<Spanned<u64>>,
    response_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    pool_idle_ms: Option<Spanned<u64>>,
    access_key: Option<Name>,
    secret_key: Option<Name>,
    ca: Option<Name>,
    client_cert: Option<Name>,
    client_key: Option<Name>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    hosts: Option<Vec<Name>>,
    #[serde(default)]
    virtual_host_domains: Vec<Name>,
    deny_detail: Option<Name>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeoip {
    database: Name,
    unknown: Option<Name>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    trusted_proxies: Vec<Name>,
    client_ip_header: Option<Name>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    dir: Option<Name>,
    fsync: Option<Name>,
    batch_ms: Option<Spanned<u64>>,
    on_failure: Option<Name>,
    signing_key: Option<Name>,
    client_ip: Option<Name>,
    key_hash: Option<Spanned<bool>>,
    hash_key: Option<Name>,
    instance: Option<Name>,
    queue: Option<Spanned<u64>>,
    segment_bytes: Option<Spanned<u64>>,
    segment_max_age_s: Option<Spanned<u64>>,
    checkpoint_interval_ms: Option<Spanned<u64>>,
    archive: Option<RawArchive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    url: Name,
    region: Option<Name>,
    access_key_file: Name,
    secret_key_file: Name,
    retention_days: Option<Spanned<u64>>,
    mode: Option<Name>,
    delete_local: Option<Spanned<bool>>,
    interval_s: Option<Spanned<u64>>,
    ca: Option<Name>,
}

// ---------------------------------------------------------------------------
// Validation.

/// Path-style hosts when none are configured: what a client on the same
/// machine uses.
const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

struct Validator<'a> {
    report: Report<'a>,
    /// The config file's directory, which relative paths are relative to.
    base: PathBuf,
    path: &'a Path,
}

impl Validator<'_> {
    fn config(&mut self, raw: &RawConfig) -> Result<Config, Reported> {
        let region = match raw.region.get_ref().as_str() {
            "" => Err(self.error(&raw.region, "region is empty")),
            _ => Ok(()),
        };
        let rules = self.path_or(raw.rules.as_ref(), "rules", "rules");
        let mode = self
            .report
            .mode(0, raw.mode.as_ref(), raw.monitor_until.as_ref());
        let unknown_bucket = self.choice(
            raw.unknown_bucket.as_ref(),
            "unknown_bucket",
            &[
                ("deny", UnknownBucket::Deny),
                ("monitor", UnknownBucket::Monitor),
            ],
        );
        let listen = self.listen(&raw.listen);
        // With listen invalid (already reported), hosts get no listen address.
        let listen_ips: Vec<IpAddr> = listen.as_ref().map_or(Vec::new(), |l| {
            std::iter::once(l.s3)
                .chain(l.tls.as_ref().map(|t| t.addr))
                .map(|a| a.ip())
                .collect()
        });
        let s3 = self.s3(&raw.s3, &listen_ips);
        let upstream = self.upstream(&raw.upstream);
        let geoip = self.geoip(&raw.geoip);
        let network = self.network(&raw.network);
        let audit = self.audit(&raw.audit);
        let limits = self.limits(&raw.limits);
        let shutdown = self.shutdown(&raw.shutdown);
        let admin = self.admin(&raw.admin, &raw.listen, listen.as_ref().ok());
        // Only trusted proxies may send the header, and nobody may connect
        // without one: with none trusted the gate would refuse everyone.
        let proxied = match (&raw.listen.proxy_protocol, &network) {
            (Some(p), Ok(n)) if *p.get_ref() && n.trusted_proxies.is_empty() => Err(self.error(
                p,
                "listen.proxy_protocol = true needs network.trusted_proxies, the load balancers that send the header",
            )),
            _ => Ok(()),
        };
        region?;
        proxied?;
        Ok(Config {
            path: self.path.to_path_buf(),
            region: raw.region.get_ref().clone(),
            region_origin: self.report.origin(At::of(0, &raw.region)),
            rules: rules?,
            mode: mode?.unwrap_or(Mode::Enforce),
            unknown_bucket: unknown_bucket?,
            listen: listen?,
            upstream: upstream?,
            s3: s3?,
            geoip: geoip?,
            network: network?,
            audit: audit?,
            limits: limits?,
            shutdown: shutdown?,
            admin: admin?,
        })
    }

    fn listen(&mut self, raw: &RawListen) -> Result<Listen, Reported> {
        let s3 = self.addr_or(raw.s3.as_ref(), "listen.s3", "127.0.0.1:8080");
        let admin = self.addr_or(raw.admin.as_ref(), "listen.admin", "127.0.0.1:9090");
        let tls = raw.tls.as_ref().map(|t| self.tls(t)).transpose();
        Ok(Listen {
            s3: s3?,
            admin: admin?,
            tls: tls?,
            proxy_protocol: raw.proxy_protocol.as_ref().is_some_and(|p| *p.get_ref()),
        })
    }

    fn limits(&mut self, raw: &RawLimits) -> Result<Limits, Reported> {
        let max_connections = self.positive(
            raw.max_connections.as_ref(),
            "limits.max_connections",
            10_000,
        );
        let max_streams = self.within(
            raw.max_streams.as_ref(),
            "limits.max_streams",
            100,
            1,
            u32::MAX.into(),
        );
        // hyper's HTTP/1.1 buffer has a floor of 8 KiB.
        let max_header_bytes = self.within(
            raw.max_header_bytes.as_ref(),
            "limits.max_header_bytes",
            64 << 10,
            8 << 10,
            u32::MAX.into(),
        );
        let max_headers = self.positive(raw.max_headers.as_ref(), "limits.max_headers", 100);
        let header_timeout = self.positive(
            raw.header_timeout_ms.as_ref(),
            "limits.header_timeout_ms",
            15_000,
        );
        let idle_timeout = self.positive(
            raw.idle_timeout_ms.as_ref(),
            "limits.idle_timeout_ms",
            60_000,
        );
        let send_timeout = self.positive(
            raw.send_timeout_ms.as_ref(),
            "limits.send_timeout_ms",
            60_000,
        );
        // The replication parser refuses more than its own cap whatever this says.
        let max_config_body_bytes = self.within(
            raw.max_config_body_bytes.as_ref(),
            "limits.max_config_body_bytes",
            crate::s3::replication::MAX_CONFIG_BODY as u64,
            1,
            crate::s3::replication::MAX_CONFIG_BODY as u64,
        );
        let max_explain_body_bytes = self.positive(
            raw.max_explain_body_bytes.as_ref(),
            "limits.max_explain_body_bytes",
            2 << 20,
        );
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Limits {
            max_connections: size(max_connections?),
            max_streams: u32::try_from(max_streams?).unwrap_or(u32::MAX),
            max_header_bytes: size(max_header_bytes?),
            max_headers: size(max_headers?),
            header_timeout: Duration::from_millis(header_timeout?),
            idle_timeout: Duration::from_millis(idle_timeout?),
            send_timeout: Duration::from_millis(send_timeout?),
            max_config_body_bytes: size(max_config_body_bytes?),
            max_explain_body_bytes: size(max_explain_body_bytes?),
        })
    }

    fn shutdown(&mut self, raw: &RawShutdown) -> Result<Shutdown, Reported> {
        let drain = self.positive(
            raw.drain_timeout_ms.as_ref(),
            "shutdown.drain_timeout_ms",
            30_000,
        );
        Ok(Shutdown {
            delay: Duration::from_millis(raw.delay_ms.as_ref().map_or(0, |d| *d.get_ref())),
            drain_timeout: Duration::from_millis(drain?),
        })
    }

    /// An admin listener off loopback needs a token: anyone who reaches it
    /// could otherwise reload rules or probe them with explain.
    fn admin(
        &mut self,
        raw: &RawAdmin,
        raw_listen: &RawListen,
        listen: Option<&Listen>,
    ) -> Result<Admin, Reported> {
        let token_file = raw
            .token_file
            .as_ref()
            .map(|p| self.path(p, "admin.token_file"))
            .transpose()?;
        // The default admin address is loopback: only a configured one can be off it.
        match (&raw_listen.admin, listen, &token_file) {
            (Some(at), Some(l), None) if !l.admin.ip().to_canonical().is_loopback() => {
                let message = format!(
                    "listen.admin {} is not a loopback address: set admin.token_file, the file holding the bearer token its POST endpoints and /v1/explain require",
                    l.admin
                );
                Err(self.error(at, message))
            }
            _ => Ok(Admin { token_file }),
        }
    }

    fn tls(&mut self, raw: &RawTls) -> Result<Tls, Reported> {
        let addr = self.addr(&raw.addr, "listen.tls.addr");
        let cert = self.path(&raw.cert, "listen.tls.cert");
        let key = self.path(&raw.key, "listen.tls.key");
        let client_ca = raw
            .client_ca
            .as_ref()
            .map(|p| self.path(p, "listen.tls.client_ca"))
            .transpose();
        let sni: Vec<_> = raw
            .sni
            .iter()
            .map(|pair| {
                let cert = self.path(&pair.cert, "listen.tls.sni.cert");
                let key = self.path(&pair.key, "listen.tls.sni.key");
                Ok((cert?, key?))
            })
            .collect();
        Ok(Tls {
            addr: addr?,
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            sni: sni.into_iter().collect::<Result<_, Reported>>()?,
        })
    }

    fn upstream(&mut self, raw: &RawUpstream) -> Result<Upstream, Reported> {
        let target = self.upstream_target(&raw.url);
        let connect = self.positive(
            raw.connect_timeout_ms.as_ref(),
            "upstream.connect_timeout_ms",
            2_000,
        );
        let response = self.positive(
            raw.response_timeout_ms.as_ref(),
            "upstream.response_timeout_ms",
            30_000,
        );
        let idle = self.positive(
            raw.idle_timeout_ms.as_ref(),
            "upstream.idle_timeout_ms",
            60_000,
        );
        let pool_idle = self.positive(raw.pool_idle_ms.as_ref(), "upstream.pool_idle_ms", 90_000);
        let credentials = self.credentials(raw, target.as_ref().ok());
        let tls = self.upstream_tls(raw, target.as_ref().ok());
        let (access_key, secret_key) = credentials?;
        let (ca, client_cert) = tls?;
        Ok(Upstream {
            access_key,
            secret_key,
            ca,
            client_cert,
            target: target?,
            connect_timeout: Duration::from_millis(connect?),
            response_timeout: Duration::from_millis(response?),
            idle_timeout: Duration::from_millis(idle?),
            pool_idle: Duration::from_millis(pool_idle?),
        })
    }

    /// TLS settings mean something for an `https://` upstream only; a
    /// client certificate needs its key and the other way round.
    #[allow(clippy::type_complexity)]
    fn upstream_tls(
        &mut self,
        raw: &RawUpstream,
        target: Option<&UpstreamTarget>,
    ) -> Result<(Option<PathBuf>, Option<(PathBuf, PathBuf)>), Reported> {
        let https =
            matches!(target, Some(UpstreamTarget::Http(u)) if u.scheme_str() == Some("https"));
        let mut result = Ok(());
        for (value, key) in [
            (&raw.ca, "upstream.ca"),
            (&raw.client_cert, "upstream.client_cert"),
            (&raw.client_key, "upstream.client_key"),
        ] {
            if let (Some(v), false) = (value, https) {
                result = Err(self.error(v, format!("{key} is for an https:// upstream only")));
            }
        }
        let ca = raw
            .ca
            .as_ref()
            .map(|p| self.path(p, "upstream.ca"))
            .transpose();
        let pair = match (&raw.client_cert, &raw.client_key) {
            (Some(c), Some(k)) => {
                let cert = self.path(c, "upstream.client_cert");
                let key = self.path(k, "upstream.client_key");
                Ok(Some((cert?, key?)))
            }
            (Some(v), None) | (None, Some(v)) => Err(self.error(
                v,
                "upstream.client_cert and upstream.client_key go together",
            )),
            (None, None) => Ok(None),
        };
        result?;
        Ok((ca?, pair?))
    }

    /// Only the embedded store takes credentials, and it needs them.
    fn credentials(
        &mut self,
        raw: &RawUpstream,
        target: Option<&UpstreamTarget>,
    ) -> Result<(String, String), Reported> {
        let none = || (String::new(), String::new());
        match target {
            Some(UpstreamTarget::Embedded(_)) => match (&raw.access_key, &raw.secret_key) {
                (Some(access), Some(secret))
                    if !access.get_ref().is_empty() && !secret.get_ref().is_empty() =>
                {
                    Ok((access.get_ref().clone(), secret.get_ref().clone()))
                }
                _ => Err(self.error(
                    &raw.url,
                    "an embedded: upstream needs upstream.access_key and upstream.secret_key, the credentials clients sign with",
                )),
            },
            Some(UpstreamTarget::Http(_)) => match raw.access_key.as_ref().or(raw.secret_key.as_ref()) {
                Some(key) => Err(self.error(
                    key,
                    "upstream.access_key and upstream.secret_key are only for an embedded: upstream; any other checks its own credentials",
                )),
                None => Ok(none()),
            },
            // The url is wrong and reported: which keys it needs is unknown.
            None => Ok(none()),
        }
    }

    fn upstream_target(&mut self, url: &Name) -> Result<UpstreamTarget, Reported> {
        let text = url.get_ref();
        if let Some(dir) = text.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err(self.error(
                    url,
                    "upstream.url \"embedded:\" needs a directory, like \"embedded:data\"",
                ));
            }
            return Ok(UpstreamTarget::Embedded(self.base.join(dir)));
        }
        let uri = text.parse::<http::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        let Some(uri) = uri else {
            let message = format!(
                "invalid upstream.url {text:?}: expected \"http://host:port\", \"https://host:port\" or \"embedded:DIR\""
            );
            return Err(self.error(url, message));
        };
        if uri.path() != "/" || uri.query().is_some() {
            let message = format!(
                "upstream.url {text:?} has a path or query: requests are forwarded with their own, so give only scheme, host and port"
            );
            return Err(self.error(url, message));
        }
        Ok(UpstreamTarget::Http(uri))
    }

    fn s3(&mut self, raw: &RawS3, listen_ips: &[IpAddr]) -> Result<S3, Reported> {
        let hosts = match &raw.hosts {
            Some(hosts) => self.hosts(hosts, "s3.hosts"),
            None => {
                let mut hosts: Vec<String> = DEFAULT_HOSTS.map(String::from).to_vec();
                for ip in listen_ips.iter().filter(|ip| !ip.is_unspecified()) {
                    let ip = ip.to_string();
                    if !hosts.contains(&ip) {
                        hosts.push(ip);
                    }
                }
                Ok(hosts)
            }
        };
        let domains = self.hosts(&raw.virtual_host_domains, "s3.virtual_host_domains");
        let deny_detail = self.choice(
            raw.deny_detail.as_ref(),
            "s3.deny_detail",
            &[("reason", DenyDetail::Reason), ("full", DenyDetail::Full)],
        );
        Ok(S3 {
            hosts: hosts?,
            virtual_host_domains: domains?,
            deny_detail: deny_detail?,
        })
    }

    /// Host names as the Host header carries them, lower-cased (DNS names
    /// are case-insensitive), IPv6 without brackets.
    fn hosts(&mut self, raw: &[Name], key: &str) -> Result<Vec<String>, Reported> {
        all(raw.iter().map(|name| {
            let host = name.get_ref().to_ascii_lowercase();
            let is_name = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if is_name || host.parse::<IpAddr>().is_ok() {
                return Ok(host);
            }
            let message = format!(
                "invalid {key} entry {:?}: expected a host name or IP address, without port or scheme",
                name.get_ref()
            );
            Err(self.error(name, message))
        }))
    }

    fn geoip(&mut self, raw: &RawGeoip) -> Result<Geoip, Reported> {
        let database = self.path(&raw.database, "geoip.database");
        let unknown = self.choice(
            raw.unknown.as_ref(),
            "geoip.unknown",
            &[
                ("deny", UnknownLocation::Deny),
                ("allow", UnknownLocation::Allow),
            ],
        );
        Ok(Geoip {
            database: database?,
            unknown: unknown?,
        })
    }

    fn network(&mut self, raw: &RawNetwork) -> Result<Network, Reported> {
        let trusted_proxies = all(raw.trusted_proxies.iter().map(|c| self.report.cidr(0, c)));
        let client_ip_header = self.choice(
            raw.client_ip_header.as_ref(),
            "network.client_ip_header",
            &[
                ("x-forwarded-for", ClientIpHeader::XForwardedFor),
                ("forwarded", ClientIpHeader::Forwarded),
            ],
        );
        Ok(Network {
            trusted_proxies: trusted_proxies?,
            client_ip_header: client_ip_header?,
        })
    }

    fn audit(&mut self, raw: &RawAudit) -> Result<Audit, Reported> {
        let dir = self.path_or(raw.dir.as_ref(), "audit.dir", "audit");
        let fsync = self.choice(
            raw.fsync.as_ref(),
            "audit.fsync",
            &[
                ("batch", Fsync::Batch),
                ("always", Fsync::Always),
                ("never", Fsync::Never),
            ],
        );
        let batch = self.positive(raw.batch_ms.as_ref(), "audit.batch_ms", 5);
        let on_failure = self.choice(
            raw.on_failure.as_ref(),
            "audit.on_failure",
            &[
                ("deny", OnAuditFailure::Deny),
                ("allow", OnAuditFailure::Allow),
            ],
        );
        let signing_key = raw
            .signing_key
            .as_ref()
            .map(|p| self.path(p, "audit.signing_key"))
            .transpose();
        let client_ip = self.choice(
            raw.client_ip.as_ref(),
            "audit.client_ip",
            &[
                ("truncate", ClientIp::Truncate),
                ("full", ClientIp::Full),
                ("hash", ClientIp::Hash),
            ],
        );
        let key_hash = raw.key_hash.as_ref().is_some_and(|k| *k.get_ref());
        let hash_key = raw
            .hash_key
            .as_ref()
            .map(|p| self.path(p, "audit.hash_key"))
            .transpose();
        // Hashing without a key of our own would be a plain hash, which a
        // dictionary of IPs or keys reverses.
        let keyed = match (&hash_key, &raw.client_ip, &raw.key_hash) {
            (Ok(None), Some(c), _) if matches!(client_ip, Ok(ClientIp::Hash)) => Err(self.error(
                c,
                "audit.client_ip = \"hash\" needs audit.hash_key, the file holding the HMAC key",
            )),
            (Ok(None), _, Some(k)) if key_hash => Err(self.error(
                k,
                "audit.key_hash = true needs audit.hash_key, the file holding the HMAC key",
            )),
            _ => Ok(()),
        };
        let instance = match &raw.instance {
            Some(i) if i.get_ref().trim().is_empty() => {
                Err(self.error(i, "audit.instance is empty"))
            }
            Some(i) => Ok(i.get_ref().clone()),
            None => Ok(host_name()),
        };
        let queue = self.positive(raw.queue.as_ref(), "audit.queue", 65_536);
        let segment_bytes =
            self.positive(raw.segment_bytes.as_ref(), "audit.segment_bytes", 64 << 20);
        let max_age = self.positive(
            raw.segment_max_age_s.as_ref(),
            "audit.segment_max_age_s",
            3600,
        );
        let checkpoint = self.positive(
            raw.checkpoint_interval_ms.as_ref(),
            "audit.checkpoint_interval_ms",
            5000,
        );
        let archive = raw.archive.as_ref().map(|a| self.archive(a)).transpose();
        keyed?;
        Ok(Audit {
            dir: dir?,
            fsync: fsync?,
            batch_interval: Duration::from_millis(batch?),
            on_failure: on_failure?,
            signing_key: signing_key?,
            client_ip: client_ip?,
            key_hash,
            hash_key: hash_key?,
            instance: instance?,
            queue: usize::try_from(queue?).unwrap_or(usize::MAX),
            segment_bytes: segment_bytes?,
            segment_max_age: Duration::from_secs(max_age?),
            checkpoint_interval: Duration::from_millis(checkpoint?),
            archive: archive?,
        })
    }

    fn archive(&mut self, raw: &RawArchive) -> Result<Archive, Reported> {
        let url = self.archive_url(&raw.url);
        let region = match &raw.region {
            Some(r) if r.get_ref().trim().is_empty() => {
                Err(self.error(r, "audit.archive.region is empty"))
            }
            Some(r) => Ok(r.get_ref().clone()),
            None => Ok("us-east-1".to_owned()),
        };
        let access_key_file = self.path(&raw.access_key_file, "audit.archive.access_key_file");
        let secret_key_file = self.path(&raw.secret_key_file, "audit.archive.secret_key_file");
        let mode = self.choice(
            raw.mode.as_ref(),
            "audit.archive.mode",
            &[
                ("compliance", LockMode::Compliance),
                ("governance", LockMode::Governance),
            ],
        );
        // A century: far beyond any retention rule, and a date S3 takes.
        let days = self.within(
            raw.retention_days.as_ref(),
            "audit.archive.retention_days",
            1,
            1,
            36_500,
        );
        // A mode alone would be silently ignored: retention needs an end.
        let locked = match (&raw.retention_days, &raw.mode) {
            (None, Some(m)) => Err(self.error(
                m,
                "audit.archive.mode needs audit.archive.retention_days, how long each object is locked",
            )),
            (days, _) => Ok(days.is_some()),
        };
        let interval = self.positive(raw.interval_s.as_ref(), "audit.archive.interval_s", 60);
        let ca = match (&raw.ca, &url) {
            (Some(ca), Ok((endpoint, ..))) if endpoint.scheme_str() != Some("https") => {
                Err(self.error(ca, "audit.archive.ca is for an https:// archive only"))
            }
            (ca, _) => ca
                .as_ref()
                .map(|p| self.path(p, "audit.archive.ca"))
                .transpose(),
        };
        let (endpoint, bucket, prefix) = url?;
        let (mode, days) = (mode?, days?);
        Ok(Archive {
            endpoint,
            bucket,
            prefix,
            region: region?,
            access_key_file: access_key_file?,
            secret_key_file: secret_key_file?,
            retention: locked?.then_some(Retention { mode, days }),
            delete_local: raw.delete_local.as_ref().is_none_or(|d| *d.get_ref()),
            interval: Duration::from_secs(interval?),
            ca: ca?,
        })
    }

    /// `http(s)://host:port/bucket[/prefix]`: path-style, so that any
    /// S3-compatible storage takes it.
    fn archive_url(&mut self, url: &Name) -> Result<(http::Uri, String, String), Reported> {
        let text = url.get_ref();
        let parsed = text.parse::<http::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && u.query().is_none()
        });
        let found = parsed.and_then(|u| {
            let path = u.path().trim_matches('/');
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            let endpoint = http::Uri::builder()
                .scheme(u.scheme_str()?)
                .authority(u.authority()?.as_str())
                .path_and_query("/")
                .build()
                .ok()?;
            let prefix = prefix.trim_matches('/').to_owned();
            (!bucket.is_empty()).then(|| (endpoint, bucket.to_owned(), prefix))
        });
        found.ok_or_else(|| {
            let message = format!(
                "invalid audit.archive.url {text:?}: expected \"http://host:port/bucket\" or \"https://host:port/bucket/prefix\""
            );
            self.error(url, message)
        })
    }

    // --- value helpers ---------------------------------------------------------

    fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) -> Reported {
        self.report.error(At::of(0, at), message)
    }

    /// An enum-like value; absent means the first option, the default.
    fn choice<T: Copy>(
        &mut self,
        value: Option<&Name>,
        key: &str,
        options: &[(&str, T)],
    ) -> Result<T, Reported> {
        match value {
            Some(v) => self.report.choice(0, key, v, options),
            None => Ok(options[0].1),
        }
    }

    fn path(&mut self, value: &Name, key: &str) -> Result<PathBuf, Reported> {
        match value.get_ref().as_str() {
            "" => Err(self.error(value, format!("{key} is empty"))),
            p => Ok(self.base.join(p)),
        }
    }

    fn path_or(
        &mut self,
        value: Option<&Name>,
        key: &str,
        default: &str,
    ) -> Result<PathBuf, Reported> {
        match value {
            Some(v) => self.path(v, key),
            None => Ok(self.base.join(default)),
        }
    }

    fn addr(&mut self, value: &Name, key: &str) -> Result<SocketAddr, Reported> {
        value.get_ref().parse().map_err(|_| {
            let message = format!(
                "invalid {key} {:?}: expected an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"",
                value.get_ref()
            );
            self.error(value, message)
        })
    }

    fn addr_or(
        &mut self,
        value: Option<&Name>,
        key: &str,
        default: &str,
    ) -> Result<SocketAddr, Reported> {
        match value {
            Some(v) => self.addr(v, key),
            None => Ok(default.parse().expect("default listen addresses parse")),
        }
    }

    /// A number from `min` to `max`.
    fn within(
        &mut self,
        value: Option<&Spanned<u64>>,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, Reported> {
        match value {
            Some(v) if !(min..=max).contains(v.get_ref()) => {
                Err(self.error(v, format!("{key} must be from {min} to {max}")))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    /// A count or a time in milliseconds: zero would mean "never" or "fail
    /// at once", never what was meant.
    fn positive(
        &mut self,
        value: Option<&Spanned<u64>>,
        key: &str,
        default: u64,
    ) -> Result<u64, Reported> {
        match value {
            Some(v) if *v.get_ref() == 0 => {
                Err(self.error(v, format!("{key} must be greater than 0")))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }
}

/// The default `audit.instance`: the machine's host name, so records of
/// several gates can be told apart without configuration.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "gatekeeper".to_owned())
}

#[cfg(test)]
mod tests;
