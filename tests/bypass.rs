//! The bypass corpus (issue 5 item 8): every trick known to smuggle a
//! request past a path- or host-based gate, sent byte for byte as written.
//! Each row ends one of two ways: decided for exactly the bucket and key
//! that the upstream then acts on (the decision record and s3s-fs's files
//! say so), or refused. No row may reach the upstream as another bucket,
//! and after every table the store holds exactly what the allowed rows
//! wrote.
//!
//! The rig: s3s-fs serving path style and virtual hosts under
//! `s3.localhost`, behind a gate configured with the same names. 127.0.0.1
//! is a trusted proxy and lies in a Beijing network; 127.0.0.2 is a client
//! that is no proxy and that no network or GeoIP entry locates. From
//! Beijing, `acme-data` is allowed and `acme-eu` denied, for reads and
//! writes alike, so a smuggled bucket shows as the other decision.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use common::{Gate, Upstream, ACCESS_KEY, SECRET_KEY, TEST_RULES};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DOMAIN: &str = "s3.localhost";
const TRUSTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const UNTRUSTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// What a trusted proxy adds for a client in Hong Kong.
const FROM_HK: &str = "X-Forwarded-For: 2001:2e0::1";

/// A bucket on the same storage that the rules do not know: where a
/// request lands if the gate reads a Host other than s3s does.
const SHADOW: &str = "acme-data.s3.localhost";
const BUCKETS: [&str; 5] = ["acme-data", "acme-hr", "acme-sh", "acme-eu", SHADOW];

/// What every rig's store starts with: (bucket, key, body).
const SEED: &[(&str, &str, &str)] = &[
    ("acme-data", "report.txt", "report"),
    // Where a virtual-hosted request for acme-data with acme-hr's key in
    // its path lands.
    ("acme-data", "acme-hr/passport.jpg", "decoy"),
    ("acme-hr", "passport.jpg", "passport"),
    ("acme-sh", "k", "shanghai"),
    ("acme-eu", "k", "frankfurt"),
];

/// [`SEED`] as [`Rig::objects`] lists it.
fn seeded() -> BTreeSet<String> {
    SEED.iter().map(|(b, k, _)| format!("{b}/{k}")).collect()
}

struct Rig {
    up: Upstream,
    gate: Gate,
}

impl Rig {
    fn start() -> Rig {
        let up = Upstream::start_vhost(DOMAIN);
        let rules = TEST_RULES.replace(r#"cidr = "127.0.0.0/8""#, r#"cidr = "127.0.0.1/32""#);
        assert_ne!(rules, TEST_RULES, "the loopback network is narrowed");
        let dir = Gate::prepare(&format!("http://{}", up.addr), &rules, "");
        // s3s reads any name but the domain and IP literals as a CNAME
        // bucket, `localhost` included: the gate must not take it as a
        // path-style host.
        let path = dir.path().join("gatekeeper.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let narrowed = config.replace(
            r#"hosts = ["localhost", "127.0.0.1"]"#,
            r#"hosts = ["127.0.0.1"]"#,
        );
        assert_ne!(narrowed, config, "path-style hosts are narrowed");
        std::fs::write(&path, narrowed).unwrap();
        let rig = Rig {
            gate: Gate::spawn(dir),
            up,
        };
        // Straight to the store: the shadow bucket is nothing the gate
        // would let anyone create.
        let seed = |target: &str, body: &str| {
            let r = send(
                TRUSTED,
                rig.up.addr,
                &[
                    &format!("PUT {target} HTTP/1.1"),
                    &format!("Host: {}", rig.up.addr),
                ],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "seeding {target}: {}", r.text);
        };
        for bucket in BUCKETS {
            seed(&format!("/{bucket}"), "");
        }
        for (bucket, key, body) in SEED {
            seed(&format!("/{bucket}/{key}"), body);
        }
        rig
    }

    fn send(&self, from: Ipv4Addr, head: &[&str], body: &[u8]) -> Response {
        send(from, self.gate.s3, head, body)
    }

    /// Every object in the store as `bucket/key`, s3s-fs's own metadata
    /// files left out.
    fn objects(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                if prefix.is_empty() && name.starts_with('.') {
                    continue;
                }
                let path = format!("{prefix}{name}");
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path(), &format!("{path}/"), out);
                } else {
                    out.insert(path);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.up.dir.path(), "", &mut out);
        out
    }

    fn stored(&self, bucket: &str, key: &str) -> Option<String> {
        std::fs::read_to_string(self.up.dir.path().join(bucket).join(key)).ok()
    }

    /// The decision record of the request that got `response`.
    fn decision(&self, response: &Response, what: &str) -> Value {
        let id = response
            .header("x-gatekeeper-request-id")
            .unwrap_or_else(|| panic!("{what}: no request id in {}", response.text));
        self.gate
            .records_of(id, 1)
            .into_iter()
            .find(|r| r["event"] == "decision")
            .unwrap_or_else(|| panic!("{what}: no decision record"))
    }

    /// Runs one table; then the store must hold the seed plus exactly what
    /// the table's allowed rows wrote.
    fn run(&self, rows: &[Row]) {
        let mut written = seeded();
        let mut failed = Vec::new();
        for row in rows {
            // A write carries its row's name, so the file shows which row
            // put it there.
            let copies = matches!(
                row.expect,
                Expect::Allowed {
                    source: Some(_),
                    ..
                }
            );
            let body = if row.head[0].starts_with("PUT ") && !copies {
                row.what.as_bytes()
            } else {
                b""
            };
            let response = self.send(TRUSTED, row.head, body);
            // Every row runs, so one failure does not hide the others.
            match std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.check(row.what, &response, &row.expect, body)
            })) {
                Ok(object) => written.extend(object),
                Err(_) => failed.push(row.what),
            }
        }
        assert!(failed.is_empty(), "rows failed: {failed:?}");
        assert_eq!(self.objects(), written, "the store holds what was allowed");
    }

    /// Asserts one outcome; returns the object an allowed write made.
    fn check(&self, what: &str, r: &Response, expect: &Expect, sent: &[u8]) -> Option<String> {
        let text = &r.text;
        match *expect {
            Expect::Refused(status, code) => {
                assert_eq!(r.status, status, "{what}: {text}");
                assert!(
                    text.contains(&format!("<Code>{code}</Code>")),
                    "{what}: {text}"
                );
                assert_eq!(
                    r.header("x-gatekeeper-decision"),
                    Some("deny"),
                    "{what}: {text}"
                );
                None
            }
            Expect::Unparsed => {
                assert_eq!(r.status, 400, "{what}: {text}");
                assert!(!text.contains("x-gatekeeper-"), "{what}: {text}");
                None
            }
            Expect::Denied {
                bucket,
                key,
                source,
                reason,
            } => {
                assert_eq!(r.status, 403, "{what}: {text}");
                assert!(text.contains("<Code>AccessDenied</Code>"), "{what}: {text}");
                let rec = self.decision(r, what);
                assert_decided(what, &rec, bucket, key, source, "deny");
                assert_eq!(rec["reason"], reason, "{what}: {rec}");
                None
            }
            Expect::Allowed {
                bucket,
                key,
                source,
            } => {
                assert_eq!(r.status, 200, "{what}: {text}");
                let rec = self.decision(r, what);
                assert_decided(what, &rec, bucket, key, source, "allow");
                let stored = self
                    .stored(bucket, key)
                    .unwrap_or_else(|| panic!("{what}: s3s-fs has no {bucket}/{key}"));
                let expected = match source {
                    Some((b, k)) => self.stored(b, k).unwrap(),
                    None if sent.is_empty() => {
                        assert!(text.ends_with(&stored), "{what}: read {text}");
                        stored.clone()
                    }
                    None => String::from_utf8(sent.to_vec()).unwrap(),
                };
                assert_eq!(stored, expected, "{what}: {bucket}/{key}");
                // A read leaves the store as it was.
                (!sent.is_empty() || source.is_some()).then(|| format!("{bucket}/{key}"))
            }
        }
    }
}

#[track_caller]
fn assert_decided(
    what: &str,
    rec: &Value,
    bucket: &str,
    key: &str,
    source: Option<(&str, &str)>,
    decision: &str,
) {
    assert_eq!(rec["bucket"], bucket, "{what}: {rec}");
    assert_eq!(rec["key"], key, "{what}: {rec}");
    assert_eq!(
        rec["source"]["bucket"].as_str(),
        source.map(|s| s.0),
        "{what}: {rec}"
    );
    assert_eq!(rec["decision"], decision, "{what}: {rec}");
}

/// How a row must end.
enum Expect {
    /// Refused before any decision, with this status and S3 error code.
    Refused(u16, &'static str),
    /// Turned away by hyper's HTTP/1 parser: a bare 400.
    Unparsed,
    /// Decided and denied for exactly this bucket and key (and copy
    /// source); nothing forwarded.
    Denied {
        bucket: &'static str,
        key: &'static str,
        source: Option<(&'static str, &'static str)>,
        reason: &'static str,
    },
    /// Decided and allowed for exactly this object, which s3s-fs then
    /// wrote (the body sent, or the copy source's) or read.
    Allowed {
        bucket: &'static str,
        key: &'static str,
        source: Option<(&'static str, &'static str)>,
    },
}

use Expect::{Refused, Unparsed};

const fn denied(bucket: &'static str, key: &'static str, reason: &'static str) -> Expect {
    Expect::Denied {
        bucket,
        key,
        source: None,
        reason,
    }
}

const fn allowed(bucket: &'static str, key: &'static str) -> Expect {
    Expect::Allowed {
        bucket,
        key,
        source: None,
    }
}

const PIN: &str = "residency_pin";
const IA: Expect = Refused(400, "InvalidArgument");
const IR: Expect = Refused(400, "InvalidRequest");
const BN: Expect = Refused(400, "InvalidBucketName");
const NI: Expect = Refused(501, "NotImplemented");

/// One request: its head as lines (`{gate}` is the gate's address), sent
/// from the trusted loopback proxy, so from Beijing. A `PUT` carries the
/// row's name as its body.
struct Row {
    what: &'static str,
    head: &'static [&'static str],
    expect: Expect,
}

macro_rules! rows {
    ($($what:literal: [$($line:literal),+ $(,)?] => $expect:expr;)+) => {
        &[$(Row { what: $what, head: &[$($line),+], expect: $expect }),+]
    };
}

/// `..`, `.`, encoded and double-encoded separators, `//`, case: what
/// path-based gates and file-system backends read differently.
#[test]
fn path_tricks() {
    let rig = Rig::start();
    rig.run(rows![
        "raw dot-dot": ["PUT /acme-data/../acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "raw dot": ["PUT /acme-data/./x HTTP/1.1", "Host: {gate}"] => IA;
        "dot-dot as the bucket": ["PUT /../acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "dot as the bucket": ["PUT /./acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "encoded dot-dot": ["PUT /acme-data/%2e%2e/acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "encoded dot-dot, upper case": ["PUT /acme-data/%2E%2E/acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "half-encoded dot-dot": ["PUT /acme-data/.%2e/acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "encoded dot": ["PUT /acme-data/%2e/x HTTP/1.1", "Host: {gate}"] => IA;
        "encoded dot-dot as the bucket": ["PUT /%2e%2e/acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "encoded dot-dot and slashes": ["PUT /acme-data/..%2Facme-eu%2Fx HTTP/1.1", "Host: {gate}"] => IA;
        "encoded backslashes": ["PUT /acme-data/..%5Cacme-eu%5Cx HTTP/1.1", "Host: {gate}"] => IA;
        "NUL before dot-dot": ["PUT /acme-data/x%00/../../acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "overlong UTF-8 dots": ["PUT /acme-data/%c0%ae%c0%ae/acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "malformed escape": ["PUT /acme-data/%2/acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        // Decoded once, as S3 and s3s do: what is left is a literal name.
        "double-encoded dot-dot": ["PUT /acme-data/%252e%252e/acme-eu/double-dot HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "%2e%2e/acme-eu/double-dot");
        "double-encoded slashes": ["PUT /acme-data/..%252facme-eu%252fdouble-slash HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "..%2facme-eu%2fdouble-slash");
        "fullwidth dots": ["PUT /acme-data/%ef%bc%8e%ef%bc%8e/fullwidth HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "\u{ff0e}\u{ff0e}/fullwidth");
        "path parameter after dot-dot": ["PUT /acme-data/..;/acme-eu/path-param HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "..;/acme-eu/path-param");
        "encoded slash in the key": ["PUT /acme-data/sub%2Fencoded-slash HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "sub/encoded-slash");
        "encoded slash in the bucket": ["PUT /acme-data%2F..%2Facme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "encoded slash ends the bucket": ["PUT /acme-eu%2Fx HTTP/1.1", "Host: {gate}"] => IR;
        "encoded letters in the bucket": ["PUT /%61cme-data/encoded-bucket HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "encoded-bucket");
        "encoded dash in a denied bucket": ["PUT /acme%2Deu/x HTTP/1.1", "Host: {gate}"]
            => denied("acme-eu", "x", PIN);
        "path parameter on the bucket": ["PUT /acme-eu;/x HTTP/1.1", "Host: {gate}"] => BN;
        "trailing dot on the bucket": ["PUT /acme-data./x HTTP/1.1", "Host: {gate}"] => BN;
        // Backends that collapse or drop empty segments read another key.
        "leading double slash": ["PUT //acme-eu/x HTTP/1.1", "Host: {gate}"] => IR;
        "double slash after the bucket": ["PUT /acme-data//acme-eu/x HTTP/1.1", "Host: {gate}"] => IA;
        "double slash in the key": ["PUT /acme-data/staff//x HTTP/1.1", "Host: {gate}"] => IA;
        "upper-case bucket": ["PUT /ACME-EU/x HTTP/1.1", "Host: {gate}"] => BN;
        "mixed-case bucket": ["PUT /Acme-Data/x HTTP/1.1", "Host: {gate}"] => BN;
        "encoded upper-case bucket": ["PUT /%41cme-data/x HTTP/1.1", "Host: {gate}"] => BN;
        "query that looks like a path": ["PUT /acme-data/x?/../../acme-eu/x HTTP/1.1", "Host: {gate}"] => NI;
        "lower-case method": ["put /acme-eu/x HTTP/1.1", "Host: {gate}"] => NI;
        "space in the target": ["PUT /acme-data/a /acme-eu/x HTTP/1.1", "Host: {gate}"] => Unparsed;
    ]);
}

/// Which Host the bucket comes from: virtual host against path, names
/// that are neither, request targets that carry their own authority.
#[test]
fn host_and_target_tricks() {
    let rig = Rig::start();
    rig.run(rows![
        "bucket in Host, another in the path": ["PUT /acme-eu/vhost-path HTTP/1.1", "Host: acme-data.s3.localhost"]
            => allowed("acme-data", "acme-eu/vhost-path");
        "denied bucket in Host, allowed in the path": ["PUT /acme-data/x HTTP/1.1", "Host: acme-eu.s3.localhost"]
            => denied("acme-eu", "acme-data/x", PIN);
        "the virtual-host domain is path style": ["PUT /acme-eu/x HTTP/1.1", "Host: s3.localhost"]
            => denied("acme-eu", "x", PIN);
        "upper-case bucket label": ["PUT /x HTTP/1.1", "Host: ACME-EU.s3.localhost"] => IR;
        // s3s matches the domain case-sensitively and reads the rest as a
        // CNAME bucket: the shadow bucket.
        "upper-case domain": ["PUT /x HTTP/1.1", "Host: acme-data.S3.LOCALHOST"] => IR;
        "upper-case path-style host": ["PUT /acme-data/x HTTP/1.1", "Host: S3.localhost"] => IR;
        "trailing dot": ["PUT /x HTTP/1.1", "Host: acme-data.s3.localhost."] => IR;
        "two names in one Host": ["PUT /x HTTP/1.1", "Host: acme-data.s3.localhost, acme-eu.s3.localhost"] => BN;
        "neither a path-style host nor a virtual host": ["PUT /acme-data/x HTTP/1.1", "Host: evil.example"] => IR;
        "a bucket as a CNAME": ["PUT /x HTTP/1.1", "Host: acme-eu"] => IR;
        "a host s3s reads as a CNAME": ["PUT /acme-data/x HTTP/1.1", "Host: localhost"] => IR;
        "domain as a prefix": ["PUT /x HTTP/1.1", "Host: acme-data.s3.localhost.evil.example"] => IR;
        "IPv4-mapped host": ["PUT /acme-data/x HTTP/1.1", "Host: [::ffff:127.0.0.1]"] => IR;
        "user information": ["PUT /acme-data/x HTTP/1.1", "Host: acme-eu@{gate}"] => IR;
        "empty Host": ["PUT /acme-data/x HTTP/1.1", "Host: "] => IR;
        "no Host": ["PUT /acme-data/x HTTP/1.1"] => IR;
        "no Host, HTTP/1.0": ["PUT /acme-data/x HTTP/1.0"] => IR;
        "two Hosts": ["PUT /x HTTP/1.1", "Host: acme-data.s3.localhost", "Host: acme-eu.s3.localhost"] => IR;
        "the same Host twice": ["PUT /acme-data/x HTTP/1.1", "Host: {gate}", "Host: {gate}"] => IR;
        "upper-case Host name, padded value": ["PUT /x HTTP/1.1", "HOST:   acme-eu.s3.localhost  "]
            => denied("acme-eu", "x", PIN);
        "whitespace before the colon of Host": ["PUT /acme-data/x HTTP/1.1", "Host : acme-eu.s3.localhost"] => Unparsed;
        "X-Forwarded-Host": ["PUT /acme-data/forwarded-host HTTP/1.1", "Host: {gate}", "X-Forwarded-Host: acme-eu.s3.localhost"]
            => allowed("acme-data", "forwarded-host");
        "absolute form, own authority": ["PUT http://{gate}/acme-eu/x HTTP/1.1", "Host: {gate}"]
            => denied("acme-eu", "x", PIN);
        "absolute form, another authority": ["PUT http://acme-eu.s3.localhost/x HTTP/1.1", "Host: {gate}"] => IR;
        "absolute form against a virtual host": ["PUT http://{gate}/acme-eu/x HTTP/1.1", "Host: acme-data.s3.localhost"] => IR;
        "absolute form with user information": ["PUT http://acme-eu@{gate}/acme-data/x HTTP/1.1", "Host: {gate}"] => IR;
        "absolute form without Host": ["PUT http://acme-data.s3.localhost/absolute-no-host HTTP/1.1"]
            => allowed("acme-data", "absolute-no-host");
        "asterisk form": ["OPTIONS * HTTP/1.1", "Host: {gate}"] => NI;
        "CONNECT to the gate": ["CONNECT {gate} HTTP/1.1", "Host: {gate}"] => IR;
        "CONNECT to a virtual host": ["CONNECT acme-eu.s3.localhost:80 HTTP/1.1", "Host: acme-eu.s3.localhost:80"] => IR;
        "Upgrade: h2c": ["GET /acme-data/report.txt HTTP/1.1", "Host: {gate}", "Connection: Upgrade, HTTP2-Settings",
                         "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"] => IR;
        "Upgrade without Connection": ["GET /acme-data/report.txt HTTP/1.1", "Host: {gate}", "Upgrade: websocket"] => IR;
        "an allowed read, for contrast": ["GET /acme-data/report.txt HTTP/1.1", "Host: {gate}"]
            => allowed("acme-data", "report.txt");
    ]);
}

/// Headers that name the copy source, frame the body or tell a proxy what
/// to drop.
#[test]
fn header_tricks() {
    const fn copy(source: (&'static str, &'static str), key: &'static str) -> Expect {
        Expect::Allowed {
            bucket: "acme-data",
            key,
            source: Some(source),
        }
    }
    const FROM_EU: Expect = Expect::Denied {
        bucket: "acme-data",
        key: "copied",
        source: Some(("acme-eu", "k")),
        reason: "forbidden_category",
    };
    let rig = Rig::start();
    rig.run(rows![
        "copy, for contrast": ["PUT /acme-data/copy-plain HTTP/1.1", "Host: {gate}", "x-amz-copy-source: /acme-sh/k"]
            => copy(("acme-sh", "k"), "copy-plain");
        "copy source, odd case": ["PUT /acme-data/copy-odd-case HTTP/1.1", "Host: {gate}", "X-AMZ-Copy-SOURCE: acme-sh/k"]
            => copy(("acme-sh", "k"), "copy-odd-case");
        "denied copy source, odd case": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-AMZ-copy-source: /acme-eu/k"]
            => FROM_EU;
        "two copy sources": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}",
                             "x-amz-copy-source: /acme-sh/k", "x-amz-copy-source: /acme-eu/k"] => IR;
        "two copy sources, odd case": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}",
                                       "x-amz-copy-source: /acme-sh/k", "X-Amz-Copy-Source: /acme-eu/k"] => IR;
        "copy source with dot-dot": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source: acme-sh/../acme-eu/k"] => IA;
        "copy source with encoded slash": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source: acme-sh%2F..%2Facme-eu/k"] => IR;
        "copy source with encoded leading slash": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source: %2Facme-eu/k"] => IR;
        "copy source double-encoded": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source: acme-sh/%252e%252e/acme-eu/k"] => IR;
        "copy source, upper-case bucket": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source: ACME-EU/k"] => BN;
        "copy source in the query": ["PUT /acme-data/copied?x-amz-copy-source=acme-eu%2Fk HTTP/1.1", "Host: {gate}"] => IR;
        "whitespace before the colon": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x-amz-copy-source : /acme-eu/k"] => Unparsed;
        "copy source folded onto a second line": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}",
                                                  "x-amz-copy-source: /acme-sh/k", " /acme-eu/k"] => Unparsed;
        // CGI-style servers read `_` as `-`.
        "underscores for dashes": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}", "x_amz_copy_source: /acme-eu/k"] => IR;
        "Connection names the copy source": ["PUT /acme-data/copied HTTP/1.1", "Host: {gate}",
                                             "x-amz-copy-source: /acme-sh/k", "Connection: x-amz-copy-source"] => IR;
        "Connection names Host": ["PUT /acme-data/x HTTP/1.1", "Host: acme-eu.s3.localhost", "Connection: host"] => IR;
        "Connection names the category": ["PUT /acme-data/x HTTP/1.1", "Host: {gate}",
                                          "Connection: keep-alive, x-amz-meta-data-category", "x-amz-meta-data-category: public"] => IR;
        "Transfer-Encoding that is not chunked": ["PUT /acme-data/x HTTP/1.1", "Host: {gate}", "Transfer-Encoding: xchunked"] => Unparsed;
        "two different Content-Lengths": ["PUT /acme-data/x HTTP/1.1", "Host: {gate}", "Content-Length: 1", "Content-Length: 30"] => Unparsed;
        "whitespace before the colon of Transfer-Encoding": ["PUT /acme-data/x HTTP/1.1", "Host: {gate}",
                                                             "Transfer-Encoding : chunked", "Content-Length: 30"] => Unparsed;
        "method override": ["GET /acme-data/report.txt HTTP/1.1", "Host: {gate}", "X-HTTP-Method-Override: DELETE"]
            => allowed("acme-data", "report.txt");
    ]);
}

/// `Content-Length` with `Transfer-Encoding`, the body framing a second
/// request after its chunked end. hyper reads the body as chunked (RFC 9112
/// §6.3), drops `Content-Length` before the gate sees it, and closes the
/// connection after the response: the second request is never read, by
/// the gate or the upstream.
#[test]
fn a_smuggled_second_request_is_never_read() {
    let rig = Rig::start();
    let inner = "PUT /acme-eu/smuggled HTTP/1.1\r\nHost: {gate}\r\nContent-Length: 1\r\n\r\nx";
    let body = format!("3\r\nabc\r\n0\r\n\r\n{inner}");
    let length = format!("Content-Length: {}", body.len());
    let chunked = "Transfer-Encoding: chunked";
    for (key, framing) in [
        ("cl-te", [&*length, chunked]),
        ("te-cl", [chunked, &*length]),
    ] {
        let line = format!("PUT /acme-data/{key} HTTP/1.1");
        let head = [
            &*line,
            "Host: {gate}",
            framing[0],
            framing[1],
            "Connection: keep-alive",
        ];
        let r = rig.send(TRUSTED, &head, body.as_bytes());
        assert_eq!(r.text.matches("HTTP/1.1 ").count(), 1, "{key}: {}", r.text);
        let rec = rig.decision(&r, key);
        assert_decided(key, &rec, "acme-data", key, None, "allow");
    }
    assert!(rig.gate.audit().iter().all(|a| a["bucket"] != "acme-eu"));
    assert_eq!(rig.objects(), seeded());
}

/// The requester's address: X-Forwarded-For counts only from a trusted
/// proxy, and only its right-most untrusted entry; IPv4-mapped addresses
/// are their IPv4 selves. Every row reads `acme-data/report.txt`, allowed
/// from CN and HK, denied from GB and from nowhere.
#[test]
fn forwarded_addresses() {
    type Located = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    const GB: Located = ("deny", "no_legal_basis", Some("GB"), Some("geoip"));
    const CN: Located = ("allow", "same_jurisdiction", Some("CN"), Some("geoip"));
    const NOWHERE: Located = ("deny", "unknown_location", None, None);
    let rig = Rig::start();
    #[rustfmt::skip]
    let rows: &[(&str, Ipv4Addr, &[&str], Located)] = &[
        ("trusted, no header", TRUSTED, &[], ("allow", "same_jurisdiction", Some("CN"), Some("network"))),
        ("forged entry left of the proxy's", TRUSTED, &["X-Forwarded-For: 175.16.199.1, 81.2.69.142"], GB),
        ("forged line above the proxy's", TRUSTED,
         &["X-Forwarded-For: 175.16.199.1", "X-Forwarded-For: 81.2.69.142"], GB),
        ("trusted hops skipped", TRUSTED, &["X-Forwarded-For: 81.2.69.142, 127.0.0.1"], GB),
        ("IPv4-mapped trusted hop", TRUSTED, &["X-Forwarded-For: 81.2.69.142, ::ffff:127.0.0.1"], GB),
        ("IPv4-mapped client", TRUSTED, &["X-Forwarded-For: ::ffff:81.2.69.142"], GB),
        ("IPv4-mapped client, hex", TRUSTED, &["X-Forwarded-For: 0:0:0:0:0:FFFF:5102:458E"], GB),
        ("IPv4-mapped client with port", TRUSTED, &["X-Forwarded-For: [::ffff:81.2.69.142]:443"], GB),
        ("IPv4-mapped allowed client", TRUSTED, &["X-Forwarded-For: ::ffff:175.16.199.1"], CN),
        ("HK through the proxy", TRUSTED, &[FROM_HK], ("allow", "legal_basis", Some("HK"), Some("geoip"))),
        ("untrusted, no header", UNTRUSTED, &[], NOWHERE),
        ("untrusted, X-Forwarded-For", UNTRUSTED, &["X-Forwarded-For: 175.16.199.1"], NOWHERE),
        ("untrusted, claims the proxy", UNTRUSTED, &["X-Forwarded-For: 127.0.0.1"], NOWHERE),
        ("untrusted, IPv4-mapped", UNTRUSTED, &["X-Forwarded-For: ::ffff:175.16.199.1"], NOWHERE),
        ("untrusted, Forwarded", UNTRUSTED, &["Forwarded: for=175.16.199.1"], NOWHERE),
        ("untrusted, other client-address headers", UNTRUSTED,
         &["X-Real-IP: 175.16.199.1", "True-Client-IP: 175.16.199.1"], NOWHERE),
    ];
    for (what, from, extra, (decision, reason, jurisdiction, via)) in rows {
        let mut head = vec!["GET /acme-data/report.txt HTTP/1.1", "Host: {gate}"];
        head.extend_from_slice(extra);
        let r = rig.send(*from, &head, b"");
        let rec = rig.decision(&r, what);
        assert_decided(what, &rec, "acme-data", "report.txt", None, decision);
        assert_eq!(rec["reason"], *reason, "{what}: {rec}");
        assert_eq!(
            rec["to"]["jurisdiction"].as_str(),
            *jurisdiction,
            "{what}: {rec}"
        );
        assert_eq!(rec["to"]["via"].as_str(), *via, "{what}: {rec}");
        match *decision {
            "allow" => assert!(
                r.status == 200 && r.text.ends_with("report"),
                "{what}: {}",
                r.text
            ),
            _ => assert_eq!(r.status, 403, "{what}: {}", r.text),
        }
    }
}

/// Presigned URLs that boto3 made for virtual-hosted style, sent as they
/// are or with the bucket in Host swapped.
#[test]
fn presigned_urls_with_the_bucket_in_the_host() {
    let rig = Rig::start();
    let urls = rig.gate.boto(
        r#"
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="http://s3.localhost", aws_access_key_id=ACCESS_KEY,
                  aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "virtual"}, signature_version="s3v4"))
out([s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": k}, ExpiresIn=300)
     for b, k in [("acme-hr", "passport.jpg"), ("acme-data", "acme-hr/passport.jpg")]])
"#,
    );
    let urls: Vec<&str> = urls
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    // (what, url, Host to send instead of the URL's, expectation)
    let rows = [
        (
            "denied bucket in the host",
            urls[0],
            None,
            denied("acme-hr", "passport.jpg", "forbidden_category"),
        ),
        (
            "another bucket's key in the path",
            urls[1],
            None,
            allowed("acme-data", "acme-hr/passport.jpg"),
        ),
        (
            "bucket in the host swapped",
            urls[1],
            Some("acme-hr.s3.localhost"),
            denied("acme-hr", "acme-hr/passport.jpg", "forbidden_category"),
        ),
    ];
    for (what, url, host, expect) in rows {
        let rest = url.strip_prefix("http://").unwrap();
        let (url_host, target) = rest.split_at(rest.find('/').unwrap());
        assert!(target.contains("X-Amz-Signature="), "{url}");
        let line = format!("GET {target} HTTP/1.1");
        let host = format!("Host: {}", host.unwrap_or(url_host));
        let r = rig.send(TRUSTED, &[&line, &host, FROM_HK], b"");
        rig.check(what, &r, &expect, b"");
    }
    // The allowed row read the decoy in acme-data, not acme-hr's passport.
    assert_eq!(rig.objects(), seeded());
}

/// HTTP/2 names the host in `:authority`; a Host header beside it must
/// agree, or the gate and an HTTP/1.1 upstream could each pick one. The
/// gate passes `:authority` on as Host, which the requests are signed for.
#[test]
fn http2_authority() {
    let rig = Rig::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    #[rustfmt::skip]
    let rows = [
        ("only :authority", "acme-eu.s3.localhost", "/k", None, denied("acme-eu", "k", "no_legal_basis")),
        ("Host against :authority", "acme-data.s3.localhost", "/acme-hr/passport.jpg",
         Some("acme-hr.s3.localhost"), IR),
        ("another bucket's key in the path", "acme-data.s3.localhost", "/acme-hr/passport.jpg", None,
         allowed("acme-data", "acme-hr/passport.jpg")),
    ];
    for (what, authority, path, host, expect) in rows {
        let r = rt.block_on(h2_get(rig.gate.s3, authority, path, host));
        rig.check(what, &r, &expect, b"");
    }
    assert_eq!(rig.objects(), seeded());
}

/// One prior-knowledge HTTP/2 GET, signed for `authority`; the response
/// as HTTP/1.1 would have it in text.
async fn h2_get(gate: SocketAddr, authority: &str, path: &str, host: Option<&str>) -> Response {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(gate).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(format!("http://{authority}{path}"));
    for (name, value) in sig_v4("GET", authority, path) {
        req = req.header(name, value);
    }
    if let Some(host) = host {
        req = req.header("host", host);
    }
    let resp = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let head: String = resp
        .headers()
        .iter()
        .map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap_or("")))
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    Response {
        status,
        text: format!("HTTP/2 {status}\r\n{head}\r\n{body}"),
    }
}

/// A response as text, head and body.
struct Response {
    status: u16,
    text: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `head` (lines; `{gate}` becomes the address sent to) from `from`,
/// with SigV4 headers as boto3 would add them unless the target is
/// presigned, `Content-Length` unless the head frames the body itself, and
/// `Connection: close` unless the head already says `close` or `keep-alive`.
fn send(from: Ipv4Addr, to: SocketAddr, head: &[&str], body: &[u8]) -> Response {
    let addr = format!("127.0.0.1:{}", to.port());
    let mut lines: Vec<String> = head.iter().map(|l| l.replace("{gate}", &addr)).collect();
    let has = |name: &str, value: &str| {
        lines.iter().skip(1).any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(value)
            })
        })
    };
    let mut request_line = lines[0].split(' ');
    let method = request_line.next().unwrap().to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let (authority, origin) = match target.split_once("://") {
        Some((_, rest)) => rest.split_at(rest.find('/').unwrap_or(rest.len())),
        None => ("", target.as_str()),
    };
    let host = lines
        .iter()
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("host").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| authority.to_owned());
    let mut extra = Vec::new();
    if !origin.contains("X-Amz-Signature=") {
        extra.extend(sig_v4(&method, &host, origin).map(|(n, v)| format!("{n}: {v}")));
    }
    if !has("content-length", "") && !has("transfer-encoding", "") && !body.is_empty() {
        extra.push(format!("Content-Length: {}", body.len()));
    }
    if !has("connection", "close") && !has("connection", "keep-alive") {
        extra.push("Connection: close".into());
    }
    lines.extend(extra);
    let mut bytes = lines.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&body_with_addr(body, &addr));
    let text = exchange(from, to, &bytes);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response { status, text }
}

/// A body that frames a request of its own names the gate the same way.
fn body_with_addr(body: &[u8], addr: &str) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .replace("{gate}", addr)
        .into_bytes()
}

/// One connection from `from` (a loopback address) carrying exactly
/// `bytes`; returns what came back before the server closed or went quiet.
fn exchange(from: Ipv4Addr, to: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
        let mut stream = socket.connect(to).await.unwrap();
        // A gate that refuses early may close before it has read it all.
        let _ = stream.write_all(bytes).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The headers SigV4 adds for `method host target` with an unsigned
/// payload: the canonical URI is the path decoded once and encoded again,
/// as AWS SDKs and s3s compute it.
fn sig_v4(method: &str, host: &str, target: &str) -> [(&'static str, String); 3] {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
    let reencode = |raw: &str, set| {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        percent_encoding::percent_encode(&bytes, set).to_string()
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            format!("{}={}", reencode(n, UNRESERVED), reencode(v, UNRESERVED))
        })
        .collect();
    pairs.sort();
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let day = &stamp[..8];
    let canonical = format!(
        "{method}\n{}\n{}\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{stamp}\n\n\
         host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD",
        reencode(path, PATH),
        pairs.join("&"),
    );
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let hmac = |key: &[u8], msg: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(msg.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let mut key = format!("AWS4{SECRET_KEY}").into_bytes();
    for part in [day, "us-east-1", "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    [
        ("x-amz-date", stamp.clone()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".into()),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
        ),
    ]
}
