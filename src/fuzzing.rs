//! The fuzz targets: how each reads its input bytes, and the invariants it
//! checks beyond "no panic". `fuzz/fuzz_targets/*` (libFuzzer, outside CI)
//! and `tests/fuzz_corpus.rs` (CI replays every corpus and regression file)
//! both call these functions, so the two can never check different things.
//!
//! Each function takes one input and panics if an invariant fails; an
//! input it cannot read as a request, document or file is simply ignored.
//! Inputs are text-like on purpose: seeds are real requests, documents and
//! rule files from the tests, a crash file can be read as it is, and
//! libFuzzer's mutators and dictionaries work well on text.
//!
//! The invariants are written from the specifications (S3's bucket naming
//! rules, RFC 3986 percent-encoding, the documented XML layouts), not by
//! calling the code under test's own helpers, so a bug in those helpers
//! shows up here instead of being agreed with.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Uri};
use ipnet::IpNet;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::locate::{self, ForwardedHeader, Proxies};
use crate::rules::compile::{compile, Compiled, Diagnostic, Severity, Source};
use crate::s3::{classify as s3_classify, Addressing, ConfigBody, Hosts, Op, S3Error, S3Request};

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directories `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/` name it.
pub const TARGETS: &[(&str, Target)] = &[
    ("classify", classify),
    ("client_ip", client_ip),
    ("replication", replication),
    ("post_form", post_form),
    ("rules", rules),
];

/// One fuzz target: panics if an invariant fails for the input.
pub type Target = fn(&[u8]);

// ---------------------------------------------------------------------------
// Shared input format: an HTTP/1.1-like head.

/// `first line`, then `Name: value` header lines, `\n` or `\r\n` ended,
/// up to an empty line (the rest is ignored). `None` if a header line
/// is not one HTTP could carry (hyper would not hand it to the gate).
struct Head<'a> {
    first: &'a [u8],
    headers: HeaderMap,
}

fn head(data: &[u8]) -> Option<Head<'_>> {
    let mut lines = Lines(data);
    let first = lines.next()?;
    let mut headers = HeaderMap::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = trim(&line[colon + 1..]);
        headers.append(name, HeaderValue::from_bytes(value).ok()?);
    }
    Some(Head { first, headers })
}

struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let end = self.0.iter().position(|&b| b == b'\n');
        let (line, rest) = match end {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (self.0, &[][..]),
        };
        self.0 = rest;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t'));
    let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &b[s..=e],
        _ => &[],
    }
}

// ---------------------------------------------------------------------------
// Specifications the invariants are written against.

/// S3's naming rules for general purpose buckets, as AWS documents them.
pub fn spec_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ip_like = name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| p.bytes().all(|c| c.is_ascii_digit()));
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| alnum(c) || c == b'.' || c == b'-')
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && !name.contains("..")
        && !ip_like
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// What the gate promises of every key it passes (DESIGN §3): 1 to 1024
/// bytes, no control characters, no `.`/`..` or empty segment between
/// `/` or `\` (a trailing separator, a folder marker, is fine).
pub fn spec_key(key: &str) -> bool {
    let body = key
        .strip_suffix('/')
        .or_else(|| key.strip_suffix('\\'))
        .unwrap_or(key);
    (1..=1024).contains(&key.len())
        && !key.chars().any(char::is_control)
        && !key.split(['/', '\\']).any(|s| s == "." || s == "..")
        && !body.split(['/', '\\']).any(str::is_empty)
}

fn pct_decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// RFC 3986 unreserved characters and `/` stay; everything else is encoded.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn assert_error(e: &S3Error, what: &str) {
    assert!(
        matches!(e.status, 400..=599) && !e.code.is_empty() && !e.message.is_empty(),
        "{what}: malformed error {e:?}"
    );
}

// ---------------------------------------------------------------------------
// classify

/// The `[s3]` settings the classify target runs against: those of the
/// classification tests, plus the bypass corpus's `s3.localhost`.
pub fn fuzz_hosts() -> Hosts {
    Hosts {
        path_style: ["s3.local", "localhost", "127.0.0.1", "::1"]
            .map(String::from)
            .to_vec(),
        virtual_host_domains: ["s3.local", "s3.example.com", "s3.localhost"]
            .map(String::from)
            .to_vec(),
    }
}

/// Input: `METHOD target [HTTP/x]`, header lines.
pub fn classify(data: &[u8]) {
    let Some(head) = head(data) else { return };
    let mut words = head.first.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method), Uri::try_from(target)) else {
        return;
    };
    check_classify(&method, &uri, &head.headers);
}

/// The invariants of classification, for one request.
pub fn check_classify(method: &Method, uri: &Uri, headers: &HeaderMap) {
    let hosts = fuzz_hosts();
    let result = s3_classify(method, uri, headers, &hosts);
    let again = s3_classify(method, uri, headers, &hosts);
    assert_eq!(result, again, "classify is not deterministic");
    let r = match result {
        Ok(r) => r,
        Err(e) => return assert_error(&e, "classify"),
    };

    // Every bucket and key the gate decides on is one S3 can have.
    for bucket in r
        .bucket
        .iter()
        .chain(r.copy_source.as_ref().map(|c| &c.bucket))
    {
        assert!(
            spec_bucket_name(bucket),
            "bucket {bucket:?} breaks S3's naming rules: {r:?}"
        );
    }
    for key in r.key.iter().chain(r.copy_source.as_ref().map(|c| &c.key)) {
        assert!(spec_key(key), "key {key:?} passed: {r:?}");
    }

    // The result is consistent with the operation table.
    assert_eq!(r.addressing.is_some(), r.bucket.is_some(), "{r:?}");
    assert_eq!(r.bucket.is_none(), r.op == Op::ListBuckets, "{r:?}");
    assert_eq!(r.list_prefix.is_some(), r.op.is_list(), "{r:?}");
    assert_eq!(
        r.copy_source.is_some(),
        matches!(r.op, Op::CopyObject | Op::UploadPartCopy),
        "{r:?}"
    );
    if r.key.is_some() {
        assert!(
            !r.op.is_list()
                && !matches!(
                    r.op,
                    Op::ListBuckets
                        | Op::CreateBucket
                        | Op::DeleteBucket
                        | Op::HeadBucket
                        | Op::GetBucketLocation
                        | Op::DeleteObjects
                        | Op::PostObject
                        | Op::BucketConfig(_)
                ),
            "a key on a bucket operation: {r:?}"
        );
    }

    // Bucket and key are what the request names, decoded once.
    let Some(bucket) = &r.bucket else { return };
    let path = uri
        .path()
        .strip_prefix('/')
        .expect("classified: absolute path");
    let raw_key = match r.addressing {
        Some(Addressing::Path) => {
            let (raw_bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
            assert_eq!(pct_decode(raw_bucket).as_ref(), Some(bucket), "{r:?}");
            raw_key
        }
        Some(Addressing::VirtualHost) => {
            let host = headers
                .get(HOST)
                .map(|h| h.to_str().expect("classified: ASCII Host"))
                .or(uri.authority().map(|a| a.as_str()))
                .expect("classified: a host");
            let label = host.split_once('.').map(|(l, _)| l);
            let dotted = host.strip_prefix(bucket.as_str());
            assert!(
                label == Some(bucket) || dotted.is_some_and(|d| d.starts_with('.')),
                "virtual-host bucket {bucket:?} is not in Host {host:?}"
            );
            path
        }
        None => unreachable!("a bucket has an addressing"),
    };
    let want_key = (!raw_key.is_empty()).then(|| pct_decode(raw_key).expect("decodable"));
    assert_eq!(r.key, want_key, "key is not the target decoded once");

    // The same request written canonically, path style and virtual-host
    // style, classifies the same.
    let encoded_key = r
        .key
        .as_deref()
        .map(|k| utf8_percent_encode(k, PATH).to_string());
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let path_style = match &encoded_key {
        Some(k) => format!("/{bucket}/{k}{query}"),
        None => format!("/{bucket}{query}"),
    };
    let vhost = format!("/{}{query}", encoded_key.as_deref().unwrap_or(""));
    for (addressing, target, host) in [
        (Addressing::Path, path_style, "s3.local".to_owned()),
        (
            Addressing::VirtualHost,
            vhost,
            format!("{bucket}.s3.example.com"),
        ),
    ] {
        let uri: Uri = target.parse().expect("canonical target parses");
        let mut headers = headers.clone();
        headers.insert(HOST, HeaderValue::from_str(&host).expect("canonical Host"));
        let canonical = s3_classify(method, &uri, &headers, &hosts);
        let want = S3Request {
            addressing: Some(addressing),
            ..r.clone()
        };
        assert_eq!(
            canonical.as_ref(),
            Ok(&want),
            "the request written as {host} {target} classifies differently"
        );
    }
}

// ---------------------------------------------------------------------------
// client_ip

/// Input: `peer [trusted CIDR …]` on the first line, then header lines.
/// A trusted entry without a prefix length is one address. Each input runs
/// twice: with the proxies writing `X-Forwarded-For`, and `Forwarded`.
pub fn client_ip(data: &[u8]) {
    let Some(head) = head(data) else { return };
    let Ok(first) = std::str::from_utf8(head.first) else {
        return;
    };
    let mut words = first.split_ascii_whitespace();
    let Some(Ok(peer)) = words.next().map(str::parse::<IpAddr>) else {
        return;
    };
    let mut trusted = Vec::new();
    for word in words {
        let net = match word.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match word.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => return,
            },
        };
        trusted.push(net);
    }
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let proxies = Proxies {
            trusted: &trusted,
            header,
        };
        check_client_ip(peer, &head.headers, proxies);
    }
}

/// The invariants of the client address, for one request.
pub fn check_client_ip(peer: IpAddr, headers: &HeaderMap, proxies: Proxies<'_>) {
    let ip = locate::client_ip_via(peer, headers, proxies);
    assert_eq!(
        ip,
        locate::client_ip_via(peer, headers, proxies),
        "not deterministic"
    );
    if proxies.header == ForwardedHeader::XForwardedFor {
        assert_eq!(ip, locate::client_ip(peer, headers, proxies.trusted));
    }
    assert_eq!(ip, ip.to_canonical(), "{ip} is not canonical");

    let name = proxies.header.name();
    let peer = peer.to_canonical();
    if !proxies.trusted.iter().any(|n| n.contains(&peer)) {
        assert_eq!(ip, peer, "headers from an untrusted peer were read");
    }
    if ip != peer {
        let named = addresses_in(headers, name);
        assert!(
            named.contains(&ip),
            "{ip} is neither the peer {peer} nor in {name} ({named:?})"
        );
    }

    // Only the configured header counts.
    let mut only = HeaderMap::new();
    for value in headers.get_all(name) {
        only.append(name, value.clone());
    }
    assert_eq!(
        locate::client_ip_via(peer, &only, proxies),
        ip,
        "a header other than {name} changed the client address"
    );
}

/// Every address written in the header, in any of the forms
/// X-Forwarded-For and RFC 7239 use (bare, `ip:port`, `[v6]`, `[v6]:port`,
/// quoted, with quoted-pair escapes), canonical.
fn addresses_in(headers: &HeaderMap, name: &str) -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    for value in headers.get_all(name) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for text in [text.to_string(), text.replace('\\', "")] {
            for token in text.split([',', ';', '=', '"', ' ', '\t', '\\']) {
                // `[v6]` or `[v6]:port`, `v4:port`; ports may be obfuscated,
                // and a socket address may carry a zone (`[fe80::1%2]:80`).
                let host = match token.strip_prefix('[') {
                    Some(v6) => v6.split_once(']').map_or(v6, |(ip, _)| ip),
                    None if token.matches(':').count() == 1 => token.split(':').next().unwrap(),
                    None => token,
                };
                let host = host.split('%').next().unwrap_or(host);
                for candidate in [token, host] {
                    if let Ok(ip) = candidate.parse::<IpAddr>() {
                        out.insert(ip.to_canonical());
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// replication (configuration bodies that name other buckets)

/// Input: `replication`, `inventory`, `logging` or `analytics` on the first
/// line; the rest is the body.
pub fn replication(data: &[u8]) {
    let (kind, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => return,
    };
    let kind = match kind.strip_suffix(b"\r").unwrap_or(kind) {
        b"replication" => ConfigBody::Replication,
        b"inventory" => ConfigBody::Inventory,
        b"logging" => ConfigBody::Logging,
        b"analytics" => ConfigBody::Analytics,
        _ => return,
    };
    check_destinations(kind, body);
}

/// Where each kind keeps its destination bucket (AWS API reference), and
/// whether it is written as an ARN.
fn bucket_path(kind: ConfigBody) -> (&'static [&'static str], bool) {
    match kind {
        ConfigBody::Replication => (
            &["ReplicationConfiguration", "Rule", "Destination", "Bucket"],
            true,
        ),
        ConfigBody::Inventory => (
            &[
                "InventoryConfiguration",
                "Destination",
                "S3BucketDestination",
                "Bucket",
            ],
            true,
        ),
        ConfigBody::Logging => (
            &["BucketLoggingStatus", "LoggingEnabled", "TargetBucket"],
            false,
        ),
        ConfigBody::Analytics => (
            &[
                "AnalyticsConfiguration",
                "StorageClassAnalysis",
                "DataExport",
                "Destination",
                "S3BucketDestination",
                "Bucket",
            ],
            true,
        ),
    }
}

/// The invariants of destination extraction, for one body.
pub fn check_destinations(kind: ConfigBody, body: &[u8]) {
    let result = crate::s3::replication::destinations(kind, body);
    assert_eq!(
        result,
        crate::s3::replication::destinations(kind, body),
        "not deterministic"
    );
    let dests = match result {
        Ok(d) => d,
        Err(e) => {
            assert_error(&e, "destinations");
            assert_eq!(e.status, 400, "{e:?}");
            assert!(
                matches!(e.code, "MalformedXML" | "InvalidArgument"),
                "{e:?}"
            );
            return;
        }
    };
    let (path, arn) = bucket_path(kind);
    let elements = xml_texts(body).expect("accepted, yet a plain XML reading fails");
    let buckets: Vec<&String> = elements
        .iter()
        .filter(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
        .map(|(_, t)| t)
        .collect();
    // Every destination is a bucket the document names where S3 reads it,
    // and every bucket named there is a destination.
    assert_eq!(
        dests.len(),
        buckets.len(),
        "destinations {dests:?} against bucket elements {buckets:?}"
    );
    let prefixes: HashSet<&str> = elements
        .iter()
        .filter(|(p, _)| p.last().is_some_and(|n| n == "Prefix"))
        .map(|(_, t)| t.as_str())
        .collect();
    for (dest, text) in dests.iter().zip(buckets) {
        let named = if arn {
            ["arn:aws:s3:::", "arn:aws-cn:s3:::", "arn:aws-us-gov:s3:::"]
                .iter()
                .find_map(|p| text.strip_prefix(p))
        } else {
            Some(text.as_str())
        };
        assert_eq!(named, Some(dest.bucket.as_str()), "element text {text:?}");
        assert!(spec_bucket_name(&dest.bucket), "destination {dest:?}");
        assert!(
            dest.prefix.is_empty() || prefixes.contains(dest.prefix.as_str()),
            "prefix of {dest:?} is not a <Prefix> of the document"
        );
    }
}

/// Every element of a document as (path of names, its own text with
/// entities resolved and CDATA included), in document order.
fn xml_texts(body: &[u8]) -> Result<Vec<(Vec<String>, String)>, quick_xml::Error> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let mut path: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
                path.push(name.clone());
                stack.push((name, out.len()));
                out.push((path, String::new()));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                if let Some((_, i)) = stack.last() {
                    out[*i].1.push_str(&t.unescape()?);
                }
            }
            Event::CData(c) => {
                if let Some((_, i)) = stack.last() {
                    out[*i].1.push_str(&c.decode()?);
                }
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// post_form

/// Input: the Content-Type on the first line; the rest is the body.
pub fn post_form(data: &[u8]) {
    let Some(i) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(content_type) = std::str::from_utf8(&data[..i]) else {
        return;
    };
    check_form_fields(content_type.trim_end_matches('\r'), &data[i + 1..]);
}

/// The invariants of form field reading, for one body.
pub fn check_form_fields(content_type: &str, body: &[u8]) {
    use crate::s3::post::form_fields;
    let full = form_fields(content_type, body);
    assert_eq!(full, form_fields(content_type, body), "not deterministic");
    match &full {
        Ok(Some(form)) => {
            assert!(spec_key(&form.key), "key {:?} passed", form.key);
            assert!(!form.key.contains("${filename}"), "{form:?}");
            for value in std::iter::once(&form.key).chain(&form.declared_category) {
                assert!(
                    contains(body, value.as_bytes()),
                    "{value:?} is not in the body"
                );
            }
        }
        Ok(None) => {}
        Err(e) => assert_error(e, "form_fields"),
    }
    // The pipeline calls again as more of the body arrives: an answer on a
    // prefix (fields, or an error) is final.
    let lengths: Vec<usize> = if body.len() <= 512 {
        (0..body.len()).collect()
    } else {
        (0..64).map(|i| i * body.len() / 64).collect()
    };
    for len in lengths {
        match form_fields(content_type, &body[..len]) {
            Ok(None) => {}
            Ok(Some(early)) => assert_eq!(
                full.as_ref(),
                Ok(&Some(early)),
                "fields read from the first {len} bytes change with more"
            ),
            Err(early) => assert!(
                full.is_err(),
                "the first {len} bytes are refused ({early}) but the whole body is not"
            ),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// rules

/// Input: rule files separated by NUL bytes, each valid UTF-8.
pub fn rules(data: &[u8]) {
    let mut sources = Vec::new();
    for (i, text) in data.split(|&b| b == 0).enumerate() {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        sources.push(Source {
            path: PathBuf::from(format!("f{i}.toml")),
            text: text.to_owned(),
        });
    }
    check_rules(&sources);
}

/// The invariants of rule compilation, for one set of files.
pub fn check_rules(sources: &[Source]) {
    let today = time::macros::date!(2026 - 06 - 01);
    let result = compile(sources, today);
    let again = compile(sources, today);
    match (&result, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.rules.version, b.rules.version);
            assert_eq!(a.warnings, b.warnings);
            assert_eq!(summary(a), summary(b), "not deterministic");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "not deterministic"),
        _ => panic!("compiles once and fails once"),
    }
    let compiled = match result {
        Ok(c) => c,
        Err(diags) => {
            assert!(
                diags.iter().any(|d| d.severity == Severity::Error),
                "failed without an error: {diags:?}"
            );
            for d in &diags {
                check_origin(sources, d);
            }
            return;
        }
    };
    for d in &compiled.warnings {
        assert_eq!(d.severity, Severity::Warning, "{d}");
        check_origin(sources, d);
    }
    let rules = &compiled.rules;
    let t = &rules.tables;
    assert!(
        rules.version.len() == 64 && rules.version.bytes().all(|b| b.is_ascii_hexdigit()),
        "version {:?}",
        rules.version
    );
    for (i, b) in t.buckets.iter().enumerate() {
        assert!(spec_bucket_name(&b.name), "rules own bucket {:?}", b.name);
        assert_eq!(
            rules.bucket_by_name(&b.name).map(|id| id.0 as usize),
            Some(i)
        );
        assert!((b.tenant.0 as usize) < t.tenants.len());
        assert!(b.category.is_none_or(|c| c <= b.max_category), "{b:?}");
    }
    for (i, r) in t.regions.iter().enumerate() {
        assert_eq!(rules.region_by_id(&r.id).map(|id| id.0 as usize), Some(i));
    }
    for (i, c) in t.categories.iter().enumerate() {
        assert_eq!(rules.category_by_id(&c.id).map(|id| id.0 as usize), Some(i));
    }
    assert!(
        t.categories.windows(2).all(|w| w[0].rank < w[1].rank),
        "categories are not in strict rank order"
    );
    for (i, tenant) in t.tenants.iter().enumerate() {
        assert_eq!(
            rules.tenant_by_id(&tenant.id).map(|id| id.0 as usize),
            Some(i)
        );
        assert!(!tenant.home_regions.is_empty());
    }
    for n in &t.networks {
        assert_eq!(n.cidr, n.cidr.trunc(), "host bits in {}", n.cidr);
        // Ranges do not overlap, so each range's ends find it.
        assert_eq!(rules.network_region(n.cidr.network()), Some(n.region));
        assert_eq!(rules.network_region(n.cidr.broadcast()), Some(n.region));
    }
    for (i, p) in t.peers.iter().enumerate() {
        assert_eq!(rules.peer_by_id(&p.id).map(|id| id.0 as usize), Some(i));
    }
}

/// What two compiles of the same files must agree on (the tables hold hash
/// maps, whose debug output has no fixed order).
fn summary(c: &Compiled) -> Vec<String> {
    let t = &c.rules.tables;
    let mut out: Vec<String> = Vec::new();
    out.extend(t.jurisdictions.iter().map(|j| format!("{j:?}")));
    out.extend(t.own_countries.iter().map(|c| format!("{c:?}")));
    out.extend(t.regions.iter().map(|r| format!("{r:?}")));
    out.extend(t.categories.iter().map(|c| format!("{c:?}")));
    out.extend(t.tenants.iter().map(|t| format!("{t:?}")));
    out.extend(t.buckets.iter().map(|b| {
        let prefixes = b.classify.len();
        format!(
            "{} {:?} {:?} {:?} {:?} {prefixes}",
            b.name, b.tenant, b.region, b.category, b.max_category
        )
    }));
    out.extend(t.networks.iter().map(|n| format!("{n:?}")));
    out.extend(t.peers.iter().map(|p| format!("{p:?}")));
    out.extend(t.bases.iter().map(|b| format!("{b:?}")));
    out
}

/// A diagnostic points into one of the files (or at the rules directory),
/// at a line and column that exist.
fn check_origin(sources: &[Source], d: &Diagnostic) {
    let o = &d.origin;
    if o.line == 0 {
        assert_eq!(o.col, 0, "{d}");
        return;
    }
    let source = sources
        .iter()
        .find(|s| s.path == o.file)
        .unwrap_or_else(|| panic!("{d}: not one of the files"));
    let lines: Vec<&str> = source.text.split('\n').collect();
    let line = lines
        .get(o.line - 1)
        .unwrap_or_else(|| panic!("{d}: the file has {} lines", lines.len()));
    assert!(
        o.col >= 1 && o.col <= line.chars().count() + 1,
        "{d}: line {} has {} characters",
        o.line,
        line.chars().count()
    );
}
