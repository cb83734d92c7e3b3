//! Real parts on loopback for the integration tests: an s3s-fs S3 server
//! that checks SigV4, the `gatekeeper` binary itself, and boto3 as the
//! signing client. Everything binds 127.0.0.1 on port 0.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatekeeper::proxy::forward::StoreOptions;

pub const ACCESS_KEY: &str = "AKIDGATEKEEPERTEST";
pub const SECRET_KEY: &str = "gatekeeper-test-secret-key";

/// The repository's own test GeoIP database (known answers in geoip/README.md).
pub fn geoip_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/GeoIP2-Country-Test.mmdb")
}

/// An s3s-fs server on its own runtime, as the upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_with(StoreOptions::default())
    }
}

/// The gatekeeper binary, started on a config and rules written for the
/// test.
pub struct Gate {
    child: Child,
    pub s3: SocketAddr,
    pub admin: SocketAddr,
    /// The TLS listener, when `[listen.tls]` is configured.
    pub tls: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
}

/// A small rule set the tests decide against: loopback is a trusted proxy
/// inside Beijing, so a test chooses the requester's country with
/// `X-Forwarded-For` (answers from the test GeoIP database).
pub const TEST_RULES: &str = r#"
[[jurisdiction]]
id = "CN"
countries = ["CN"]

[[jurisdiction]]
id = "EU"
countries = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"]

[[jurisdiction]]
id = "HK"
countries = ["HK"]

[[jurisdiction]]
id = "US"
countries = ["US"]
export = "free"

[[region]]
id = "cn-beijing-6"
jurisdiction = "CN"

[[region]]
id = "cn-shanghai-2"
jurisdiction = "CN"

[[region]]
id = "eu-frankfurt-1"
jurisdiction = "EU"

[[region]]
id = "us-east-1"
jurisdiction = "US"

[[category]]
id = "public"
rank = 10
cross_border = "free"

[[category]]
id = "content"
rank = 20
cross_border = "basis"

[[category]]
id = "account"
rank = 30
cross_border = "basis"

[[category]]
id = "identity"
rank = 50
cross_border = "never"

[[tenant]]
id = "acme"
home_regions = ["cn-beijing-6", "cn-shanghai-2"]
default_category = "content"

[[tenant]]
id = "globex"
home_regions = ["eu-frankfurt-1", "us-east-1"]
default_category = "account"

[[tenant]]
id = "initech"
home_regions = ["cn-beijing-6"]
default_category = "content"
mode = "monitor"
monitor_until = 2999-12-31

[[bucket]]
name = "acme-data"
tenant = "acme"
region = "cn-beijing-6"

[[bucket]]
name = "acme-sh"
tenant = "acme"
region = "cn-shanghai-2"

[[bucket]]
name = "acme-hr"
tenant = "acme"
category = "identity"

[[bucket]]
name = "acme-www"
tenant = "acme"
category = "public"
max_category = "public"

[[bucket]]
name = "globex-eu"
tenant = "globex"
region = "eu-frankfurt-1"

[[bucket]]
name = "acme-eu"
tenant = "acme"
region = "eu-frankfurt-1"

[[bucket]]
name = "globex-us"
tenant = "globex"
region = "us-east-1"

[[bucket]]
name = "initech-data"
tenant = "initech"

[[classify]]
bucket = "acme-data"
prefix = "staff/"
category = "identity"

[[classify]]
bucket = "acme-data"
prefix = "pub/"
category = "public"

[[network]]
cidr = "127.0.0.0/8"
region = "cn-beijing-6"

[[basis]]
id = "acme-hk-contract"
tenant = "acme"
kind = "pipl-standard-contract"
from = "CN"
to = ["HK"]
categories = ["content"]
valid_from = 2024-01-01
valid_until = 2999-12-31
evidence = "test"

[[basis]]
id = "gb-adequacy"
tenant = "*"
kind = "adequacy"
from = "EU"
to = ["GB"]
categories = ["*"]
valid_from = 2021-06-28
valid_until = 2999-12-31
evidence = "test"
"#;

impl Gate {
    /// Starts the gate with `TEST_RULES` (or `rules`), in front of
    /// `upstream`; `extra` is appended to the generated gatekeeper.toml.
    pub fn start(upstream_url: &str, rules: &str, extra: &str) -> Gate {
        Gate::spawn(Gate::prepare(upstream_url, rules, extra))
    }

    /// The directory `start` runs the gate in, for a test that changes it
    /// before the gate starts.
    pub fn prepare(upstream_url: &str, rules: &str, extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/test.toml"), rules).unwrap();
        let config = format!(
            r#"
region = "cn-beijing-6"
rules = "rules"

[listen]
s3 = "127.0.0.1:0"
admin = "127.0.0.1:0"

[upstream]
url = "{upstream_url}"
response_timeout_ms = 120000

[s3]
hosts = ["localhost", "127.0.0.1"]
virtual_host_domains = ["s3.localhost"]

[geoip]
database = "{geoip}"

[network]
trusted_proxies = ["127.0.0.1/32"]

[audit]
dir = "audit"
instance = "test-gate"
{extra}
"#,
            geoip = geoip_db().display(),
        );
        std::fs::write(dir.path().join("gatekeeper.toml"), config).unwrap();
        dir
    }

    /// Starts the binary on the gatekeeper.toml in `dir`; waits for the line
    /// that names its listeners.
    pub fn spawn(dir: tempfile::TempDir) -> Gate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
            .arg("serve")
            .arg("-c")
            .arg(dir.path().join("gatekeeper.toml"))
            .env("RUST_LOG", "gatekeeper=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gatekeeper printed its listeners");
        // "gatekeeper listening s3=ADDR admin=ADDR[ tls=ADDR]"
        let field = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|a| a.parse().unwrap())
        };
        Gate {
            s3: field("s3=").unwrap_or_else(|| panic!("no s3= in {line:?}")),
            admin: field("admin=").unwrap_or_else(|| panic!("no admin= in {line:?}")),
            tls: field("tls="),
            child,
            dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3.port())
    }

    /// Runs boto3 with the test prelude and `script`; returns what the
    /// script printed as JSON.
    pub fn boto(&self, script: &str) -> serde_json::Value {
        boto_at(&self.endpoint(), script)
    }

    /// Every audit record written so far, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("audit"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                // A line without its newline is one the writer is still
                // writing: it is read on a later look.
                std::fs::read_to_string(f)
                    .unwrap()
                    .split_inclusive('\n')
                    .filter_map(|l| l.strip_suffix('\n'))
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The records of one request (decision, then completion), waiting
    /// briefly for the completion record, which is written when the body
    /// ends.
    pub fn records_of(&self, request_id: &str, want: usize) -> Vec<serde_json::Value> {
        for _ in 0..100 {
            let recs: Vec<_> = self
                .audit()
                .into_iter()
                .filter(|r| r["request_id"] == request_id)
                .collect();
            if recs.len() >= want {
                return recs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fewer than {want} audit records for {request_id}");
    }

    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_raw(
            self.admin,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs boto3 against `endpoint` (the gate, or storage directly) with the
/// test prelude and `script`; returns what the script printed as JSON.
pub fn boto_at(endpoint: &str, script: &str) -> serde_json::Value {
    let prelude = include_str!("../client/prelude.py");
    let output = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .env("GK_ENDPOINT", endpoint)
        .env("GK_ACCESS_KEY", ACCESS_KEY)
        .env("GK_SECRET_KEY", SECRET_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "boto3 script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("bad JSON from script ({e}): {stdout}"))
}

/// One raw HTTP/1.1 exchange: what is on the wire is exactly what the test
/// wrote. Returns the status and the whole response text.
pub fn http_raw(addr: SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

impl Upstream {
    /// Like [`Upstream::start`], but s3s also reads `bucket.{domain}` as
    /// virtual-hosted style, `{domain}` and IP literals as path style, and
    /// any other name as a CNAME bucket, as S3 does. s3s compares the whole
    /// Host, port included, so clients send `domain` without a port.
    pub fn start_vhost(domain: &str) -> Upstream {
        Upstream::start_with(StoreOptions {
            domain: Some(domain.to_owned()),
            ..StoreOptions::default()
        })
    }

    /// Over TLS with `cert`/`key`, asking no client certificate.
    pub fn start_https(cert: &Path, key: &Path) -> Upstream {
        Upstream::start_tls_with(cert, key, None)
    }

    /// Over TLS with `cert`/`key`, requiring a client certificate from `ca`.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Upstream {
        Upstream::start_tls_with(cert, key, Some(ca))
    }

    fn start_tls_with(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Upstream {
        use rustls_pki_types::pem::PemObject;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in pem_certs(ca) {
                    roots.add(c).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(
                pem_certs(cert),
                rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap();
        Upstream::start_with(StoreOptions {
            tls: Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))),
            ..StoreOptions::default()
        })
    }

    fn start_with(opts: StoreOptions) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt
            .block_on(gatekeeper::proxy::forward::start_store(
                dir.path(),
                ACCESS_KEY,
                SECRET_KEY,
                opts,
            ))
            .unwrap();
        Upstream { addr, dir, _rt: rt }
    }
}

fn pem_certs(path: &Path) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Puts `line` right under the `[section]` header of the gatekeeper.toml
/// in `dir` (for keys of a section `prepare` already writes).
pub fn add_to_section(dir: &tempfile::TempDir, section: &str, line: &str) {
    let path = dir.path().join("gatekeeper.toml");
    let header = format!("[{section}]\n");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&header), "no [{section}] in gatekeeper.toml");
    std::fs::write(
        &path,
        text.replacen(&header, &format!("{header}{line}\n"), 1),
    )
    .unwrap();
}

impl Gate {
    /// The value of one series in /metrics, named with its labels as the
    /// text format writes them (`name{label="value"}`).
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    /// Waits (briefly) for a series to reach `want`: counters of closed
    /// connections move just after the client sees the close.
    pub fn expect_metric(&self, series: &str, want: f64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.metric(series);
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{series} is {got}, not {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `gatekeeper audit verify` passes on the gate's audit directory.
    pub fn assert_audit_verifies(&self) {
        let verify = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
            .args(["audit", "verify"])
            .arg(self.dir.path().join("audit"))
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    /// Sends SIGTERM, as a service manager stops the gate.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the gate to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gate did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Gate {
    /// Kills the gate with SIGKILL, as a crash would, and hands back its
    /// directory for a restart with [`Gate::spawn`].
    pub fn crash(mut self) -> tempfile::TempDir {
        // `Child::kill` sends SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

/// `gatekeeper certs dev --out OUT`: a CA, a server certificate for
/// localhost and loopback, and client certificates for `clients`.
pub fn certs_dev(out: &Path, clients: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatekeeper"));
    cmd.args(["certs", "dev", "--out"]).arg(out);
    for c in clients {
        cmd.args(["--client", c]);
    }
    let made = cmd.output().unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// Waits for `done` to hold, polling, for as long as a busy machine may
/// need (60 s), and fails the test naming `what` if it never does.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
