//! Classification of an HTTP request into an S3 operation (phase 1).
//!
//! The gate reads a request exactly as the upstream will, or refuses it:
//! anything two S3 implementations could read differently (two Hosts, a
//! percent-encoded `/` in a bucket, a sub-resource the table does not know,
//! a parameter given twice, …) is a `400` or a `501`, never a guess.

use std::borrow::Cow;

use http::header::{self, HeaderName};
use http::{HeaderMap, Method, Uri};

use super::{post, Addressing, ConfigResource, CopySource, Op, S3Error, S3Request};

/// `[s3] hosts` and `[s3] virtual_host_domains`, lower case, without ports.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    pub path_style: Vec<String>,
    pub virtual_host_domains: Vec<String>,
}

/// S3 keys are at most 1024 bytes of UTF-8.
const MAX_KEY_LEN: usize = 1024;

const COPY_SOURCE: &str = "x-amz-copy-source";
const DATA_CATEGORY: &str = "x-amz-meta-data-category";
// Pre-parsed: a `&str` lookup would validate and lower-case the name on
// every request.
const COPY_SOURCE_HEADER: HeaderName = HeaderName::from_static(COPY_SOURCE);
const DATA_CATEGORY_HEADER: HeaderName = HeaderName::from_static(DATA_CATEGORY);

pub fn classify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    hosts: &Hosts,
) -> Result<S3Request, S3Error> {
    let verb = verb(method)?;
    check_hop_headers(headers)?;
    let target = target(uri, headers, hosts)?;
    let query = parse_query(uri.query())?;

    let copy_source = match single_header(headers, &COPY_SOURCE_HEADER)? {
        Some(raw) => Some(copy_source(raw)?),
        None => None,
    };
    let is_form = match verb {
        Verb::Post => single_header(headers, &header::CONTENT_TYPE)?
            .map(post::is_form_data)
            .transpose()?
            .unwrap_or(false),
        _ => false,
    };
    let op = route(verb, target.level(), &query, copy_source.is_some(), is_form)?;
    if copy_source.is_some() && !matches!(op, Op::CopyObject | Op::UploadPartCopy) {
        return Err(S3Error::bad_request(format!(
            "{COPY_SOURCE} is not allowed on {}",
            op.name()
        )));
    }

    let declared_category = match (
        single_header(headers, &DATA_CATEGORY_HEADER)?,
        query.category,
    ) {
        (Some(_), Some(_)) => {
            return Err(S3Error::invalid_argument(format!(
                "{DATA_CATEGORY} given both as a header and as a query parameter"
            )))
        }
        (Some(h), None) => Some(h.to_owned()),
        (None, q) => q.map(Cow::into_owned),
    };
    let list_prefix = op
        .is_list()
        .then(|| query.prefix.map(Cow::into_owned).unwrap_or_default());

    Ok(S3Request {
        op,
        addressing: target.addressing,
        bucket: target.bucket,
        key: target.key,
        list_prefix,
        copy_source,
        declared_category,
        presigned: query.presigned,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verb {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

fn verb(method: &Method) -> Result<Verb, S3Error> {
    Ok(match *method {
        Method::GET => Verb::Get,
        Method::HEAD => Verb::Head,
        Method::PUT => Verb::Put,
        Method::POST => Verb::Post,
        Method::DELETE => Verb::Delete,
        Method::CONNECT => return Err(S3Error::bad_request("CONNECT is not allowed")),
        ref other => {
            return Err(S3Error::not_implemented(format!(
                "method {other} is not an S3 operation"
            )))
        }
    })
}

/// Headers the gate reads to classify and frame a request.
const READ_HEADERS: [HeaderName; 8] = [
    header::HOST,
    COPY_SOURCE_HEADER,
    DATA_CATEGORY_HEADER,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
];

/// Headers that would let a request become something other than the one
/// request the gate decided on (DESIGN §2 phase 5).
fn check_hop_headers(headers: &HeaderMap) -> Result<(), S3Error> {
    // CGI and WSGI servers name headers `HTTP_X_AMZ_COPY_SOURCE`, so
    // `x_amz_copy_source` is the copy source to them and nothing to the
    // gate.
    for name in headers.keys().filter(|n| n.as_str().contains('_')) {
        let dashed = name.as_str().replace('_', "-");
        if READ_HEADERS.iter().any(|h| h.as_str() == dashed) {
            return Err(S3Error::bad_request(format!(
                "header {name} reads as {dashed} to some servers"
            )));
        }
    }
    if headers.contains_key(header::UPGRADE) {
        return Err(S3Error::bad_request("Upgrade is not allowed"));
    }
    for value in headers.get_all(header::CONNECTION) {
        let value = value
            .to_str()
            .map_err(|_| S3Error::bad_request("Connection header is not ASCII"))?;
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            // Any other token makes a proxy strip the header it names; a
            // client could hide x-amz-copy-source from the upstream.
            if !token.eq_ignore_ascii_case("close") && !token.eq_ignore_ascii_case("keep-alive") {
                return Err(S3Error::bad_request(format!(
                    "Connection: {token} is not allowed"
                )));
            }
        }
    }
    if headers.contains_key(header::CONTENT_LENGTH)
        && headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(S3Error::bad_request(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(())
}

/// The value of a header the gate reads; twice would let the gate and the
/// upstream each read a different one.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, S3Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(S3Error::bad_request(format!("more than one {name} header")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| S3Error::bad_request(format!("{name} header is not visible ASCII")))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Service,
    Bucket,
    Object,
}

/// Where the request points: bucket and key as the upstream reads them.
struct Target {
    addressing: Option<Addressing>,
    bucket: Option<String>,
    key: Option<String>,
}

impl Target {
    fn level(&self) -> Level {
        match (&self.bucket, &self.key) {
            (None, _) => Level::Service,
            (Some(_), None) => Level::Bucket,
            (Some(_), Some(_)) => Level::Object,
        }
    }
}

fn target(uri: &Uri, headers: &HeaderMap, hosts: &Hosts) -> Result<Target, S3Error> {
    let host = host_name(authority(uri, headers)?)?;
    // DNS ignores case, but not every S3 server does: s3s matches its
    // domain case-sensitively and reads anything else as a CNAME bucket.
    // SDKs send lower case.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(S3Error::bad_request(format!(
            "Host {host:?} has upper-case letters"
        )));
    }
    let path = uri.path();
    let Some(path) = path.strip_prefix('/') else {
        return Err(S3Error::bad_request(
            "request target is not an absolute path",
        ));
    };
    match vhost_bucket(host, hosts)? {
        Some(bucket) => {
            if !valid_bucket_name(bucket) {
                return Err(invalid_bucket_name(bucket));
            }
            Ok(Target {
                addressing: Some(Addressing::VirtualHost),
                bucket: Some(bucket.to_owned()),
                key: object_key(path)?,
            })
        }
        None if path.is_empty() => Ok(Target {
            addressing: None,
            bucket: None,
            key: None,
        }),
        None => {
            let (raw_bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
            Ok(Target {
                addressing: Some(Addressing::Path),
                bucket: Some(decode_bucket(raw_bucket)?),
                key: object_key(raw_key)?,
            })
        }
    }
}

/// The Host header (HTTP/1.1) or `:authority` (HTTP/2); an absolute-form
/// target must agree with Host, or the gate and upstream could each pick a
/// different one.
fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<&'a str, S3Error> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(S3Error::bad_request("more than one Host header"));
    }
    let host_header = host_header
        .map(|v| {
            v.to_str()
                .map_err(|_| S3Error::bad_request("Host header is not ASCII"))
        })
        .transpose()?;
    let authority = match (host_header, uri.authority()) {
        (Some(h), Some(a)) if h != a.as_str() => {
            return Err(S3Error::bad_request(
                "request target authority differs from Host",
            ));
        }
        (Some(h), _) => h,
        (None, Some(a)) => a.as_str(),
        (None, None) => return Err(S3Error::bad_request("no Host header")),
    };
    if authority.contains('@') {
        return Err(S3Error::bad_request("Host must not carry user information"));
    }
    Ok(authority)
}

/// The host without its port; an IPv6 literal without its brackets.
fn host_name(authority: &str) -> Result<&str, S3Error> {
    let bad = || S3Error::bad_request(format!("malformed Host {authority:?}"));
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty()
        || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(host)
}

/// `Some(bucket)` for virtual-hosted style, `None` for path style. A Host
/// that more than one configured name could explain is refused: the
/// upstream might resolve it the other way.
fn vhost_bucket<'h>(host: &'h str, hosts: &Hosts) -> Result<Option<&'h str>, S3Error> {
    let mut path_style = hosts.path_style.iter().any(|h| h == host);
    let mut bucket = None;
    for domain in &hosts.virtual_host_domains {
        if host == domain {
            path_style = true;
        } else if let Some(b) = bucket_label(host, domain) {
            if bucket.is_some_and(|prev| prev != b) {
                return Err(ambiguous_host(host));
            }
            bucket = Some(b);
        }
    }
    match (path_style, bucket) {
        (true, Some(_)) => Err(ambiguous_host(host)),
        (true, None) => Ok(None),
        (false, Some(b)) => Ok(Some(b)),
        (false, None) => Err(S3Error::bad_request(format!(
            "Host {host:?} is neither an S3 host nor bucket.domain of a virtual-host domain"
        ))),
    }
}

/// `bucket` of `bucket.domain`.
fn bucket_label<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!label.is_empty()).then_some(label)
}

fn ambiguous_host(host: &str) -> S3Error {
    S3Error::bad_request(format!(
        "Host {host:?} matches more than one configured S3 host"
    ))
}

fn invalid_bucket_name(bucket: &str) -> S3Error {
    S3Error::new(
        400,
        "InvalidBucketName",
        format!("invalid bucket name {bucket:?}"),
    )
}

/// A path-style bucket segment or a copy-source bucket: decoded once, and
/// only if it then is a plain bucket name (no `/` smuggled in as `%2F`, no
/// access point ARN, no dot segment).
fn decode_bucket(raw: &str) -> Result<String, S3Error> {
    if raw.is_empty() {
        return Err(S3Error::bad_request("empty bucket name"));
    }
    let bucket = decode(raw, false)?;
    if bucket.contains('/') {
        return Err(S3Error::bad_request("encoded '/' in the bucket name"));
    }
    if bucket.contains('\\') {
        return Err(S3Error::bad_request("'\\' in the bucket name"));
    }
    if is_dot_segment(&bucket) {
        return Err(S3Error::bad_request("'.' or '..' as the bucket name"));
    }
    if bucket
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("arn:"))
    {
        return Err(S3Error::bad_request("access point ARNs are not supported"));
    }
    if !valid_bucket_name(&bucket) {
        return Err(invalid_bucket_name(&bucket));
    }
    Ok(bucket.into_owned())
}

/// The object key from the rest of the path; an empty rest is the bucket
/// itself (`/bucket/` is `/bucket`, as S3 reads it).
fn object_key(raw: &str) -> Result<Option<String>, S3Error> {
    if raw.is_empty() {
        return Ok(None);
    }
    let key = decode(raw, false)?;
    check_key(&key)?;
    Ok(Some(key.into_owned()))
}

/// S3 bucket naming rules, plus the reserved forms that name something
/// other than a bucket (access point aliases, directory and table buckets),
/// which the upstream would resolve to a bucket the gate cannot see.
pub(crate) fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| alnum(b) || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && !name.contains("..")
        && !(name.split('.').count() == 4 && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// An object key as the upstream stores it. `\` counts as a separator too:
/// a file-system backend on Windows would treat it as one.
pub(crate) fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(S3Error::invalid_argument("empty object key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::new(
            400,
            "KeyTooLongError",
            "object key longer than 1024 bytes".into(),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(S3Error::invalid_argument(
            "control character in the object key",
        ));
    }
    if key.split(['/', '\\']).any(is_dot_segment) {
        return Err(S3Error::invalid_argument(
            "'.' or '..' segment in the object key",
        ));
    }
    // S3 keeps `a//b` and `/a` as they are; s3s can be set to collapse
    // them, and a file-system backend stores `a//b` as the file of `a/b`:
    // either way the upstream acts on a key whose prefix the gate did not
    // classify. A trailing `/` (a folder marker) is read alike everywhere.
    let body = key.strip_suffix(['/', '\\']).unwrap_or(key);
    if body.split(['/', '\\']).any(str::is_empty) {
        return Err(S3Error::invalid_argument(
            "empty segment ('//' or a leading '/') in the object key",
        ));
    }
    Ok(())
}

fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

/// Percent-decodes exactly once, as S3 does. A malformed escape or invalid
/// UTF-8 is refused rather than passed through, since implementations
/// differ on what they make of it. `+` is a space only in query strings.
fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, S3Error> {
    let bytes = raw.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?))
                    .ok_or_else(|| S3Error::bad_request("malformed percent-encoding"))?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| S3Error::bad_request("percent-encoding decodes to invalid UTF-8"))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `x-amz-copy-source` (DESIGN §3 "Copy source").
fn copy_source(raw: &str) -> Result<CopySource, S3Error> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    // After one decode such a value would still hold an escape: an upstream
    // that decodes twice would read another bucket or key than the gate.
    let twice = |w: &[u8]| {
        w[..3].eq_ignore_ascii_case(b"%25") && hex(w[3]).is_some() && hex(w[4]).is_some()
    };
    if raw.as_bytes().windows(5).any(twice) {
        return Err(S3Error::bad_request(format!(
            "{COPY_SOURCE} is encoded twice"
        )));
    }
    let (path, query) = match raw.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (raw, None),
    };
    let version_id = match query {
        None => None,
        Some(q) => {
            let raw = q
                .strip_prefix("versionId=")
                .filter(|v| !v.is_empty() && !v.contains('&'))
                .ok_or_else(|| {
                    S3Error::bad_request(format!("{COPY_SOURCE} may carry only ?versionId=…"))
                })?;
            Some(decode(raw, false)?.into_owned())
        }
    };
    let (raw_bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
    let bucket = decode_bucket(raw_bucket)?;
    let key = decode(raw_key, false)?;
    check_key(&key)?;
    Ok(CopySource {
        bucket,
        key: key.into_owned(),
        version_id,
    })
}

/// A query parameter that selects the operation; the table has a row for
/// at most one per request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sub {
    Config(ConfigResource),
    Versions,
    Uploads,
    Location,
    Delete,
    Attributes,
    Torrent,
    Select,
    /// `list-type=2`
    ListV2,
}

/// Valueless sub-resources, matched exactly and case-sensitively as S3
/// does: `?Tagging` or `?uploadsX` is unknown, not a near miss.
const FLAG_SUBS: &[(&str, Sub)] = {
    use ConfigResource::*;
    use Sub::Config;
    &[
        ("acl", Config(Acl)),
        ("cors", Config(Cors)),
        ("encryption", Config(Encryption)),
        ("lifecycle", Config(Lifecycle)),
        ("policy", Config(Policy)),
        ("policyStatus", Config(PolicyStatus)),
        ("tagging", Config(Tagging)),
        ("versioning", Config(Versioning)),
        ("website", Config(Website)),
        ("accelerate", Config(Accelerate)),
        ("requestPayment", Config(RequestPayment)),
        ("ownershipControls", Config(OwnershipControls)),
        ("publicAccessBlock", Config(PublicAccessBlock)),
        ("object-lock", Config(ObjectLock)),
        ("retention", Config(Retention)),
        ("legal-hold", Config(LegalHold)),
        ("intelligent-tiering", Config(IntelligentTiering)),
        ("metrics", Config(Metrics)),
        ("replication", Config(Replication)),
        ("inventory", Config(Inventory)),
        ("logging", Config(Logging)),
        ("analytics", Config(Analytics)),
        ("notification", Config(Notification)),
        ("restore", Config(Restore)),
        ("versions", Sub::Versions),
        ("uploads", Sub::Uploads),
        ("location", Sub::Location),
        ("delete", Sub::Delete),
        ("attributes", Sub::Attributes),
        ("torrent", Sub::Torrent),
        ("select", Sub::Select),
    ]
};

impl Sub {
    fn query(self) -> &'static str {
        match self {
            Sub::ListV2 => "list-type=2",
            sub => FLAG_SUBS
                .iter()
                .find(|(_, s)| *s == sub)
                .map_or("", |(name, _)| name),
        }
    }
}

/// What the query says that the gate reads.
#[derive(Default)]
struct Query<'a> {
    sub: Option<Sub>,
    upload_id: bool,
    part_number: bool,
    id: bool,
    select_type: bool,
    prefix: Option<Cow<'a, str>>,
    category: Option<Cow<'a, str>>,
    presigned: bool,
}

/// How the gate treats one query parameter name.
enum Param {
    Flag(Sub),
    ListType,
    SelectType,
    UploadId,
    PartNumber,
    Id,
    Prefix,
    Category,
    Signature,
    /// Known, and changes nothing the gate decides on: list paging,
    /// `response-*` overrides, auth, SDK tracing, header-like `x-amz-*`.
    Ignored,
}

fn param(name: &str) -> Result<Param, S3Error> {
    Ok(match name {
        "list-type" => Param::ListType,
        "select-type" => Param::SelectType,
        "uploadId" => Param::UploadId,
        "partNumber" => Param::PartNumber,
        "id" => Param::Id,
        "prefix" => Param::Prefix,
        "Signature" => Param::Signature,
        "delimiter"
        | "marker"
        | "max-keys"
        | "continuation-token"
        | "start-after"
        | "fetch-owner"
        | "encoding-type"
        | "key-marker"
        | "version-id-marker"
        | "upload-id-marker"
        | "max-uploads"
        | "max-parts"
        | "part-number-marker"
        | "allow-unordered"
        | "max-buckets"
        | "bucket-region"
        | "versionId"
        | "response-content-type"
        | "response-content-language"
        | "response-expires"
        | "response-cache-control"
        | "response-content-disposition"
        | "response-content-encoding"
        | "AWSAccessKeyId"
        | "Expires"
        | "x-id" => Param::Ignored,
        // Presigned URLs carry auth (`X-Amz-Signature`, …) and hoisted
        // headers as `x-amz-*` parameters; S3 reads those names without
        // regard to case.
        _ if name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-")) =>
        {
            if name.eq_ignore_ascii_case(DATA_CATEGORY) {
                Param::Category
            } else if name.eq_ignore_ascii_case("x-amz-signature") {
                Param::Signature
            } else if name
                .get(..COPY_SOURCE.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(COPY_SOURCE))
            {
                return Err(S3Error::bad_request(format!(
                    "{COPY_SOURCE} is only read from a header"
                )));
            } else {
                Param::Ignored
            }
        }
        _ => match FLAG_SUBS.iter().find(|(n, _)| *n == name) {
            Some((_, sub)) => Param::Flag(*sub),
            None => {
                return Err(S3Error::not_implemented(format!(
                    "unknown query parameter {name:?}"
                )))
            }
        },
    })
}

/// Values are decoded only where the gate reads them: the others are the
/// upstream's to judge.
fn parse_query(query: Option<&str>) -> Result<Query<'_>, S3Error> {
    let mut q = Query::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name, true)?;
        let value = || decode(raw_value, true);
        let twice = || S3Error::bad_request(format!("query parameter {name:?} given twice"));
        match param(&name)? {
            Param::Flag(sub) if raw_value.is_empty() => set_sub(&mut q.sub, sub)?,
            Param::Flag(_) => {
                return Err(S3Error::invalid_argument(format!("?{name} takes no value")))
            }
            Param::ListType => match &*value()? {
                "2" => set_sub(&mut q.sub, Sub::ListV2)?,
                v => return Err(S3Error::not_implemented(format!("unknown list-type={v}"))),
            },
            Param::SelectType => match &*value()? {
                "2" => set_once(&mut q.select_type, twice)?,
                v => return Err(S3Error::not_implemented(format!("unknown select-type={v}"))),
            },
            Param::UploadId => set_once(&mut q.upload_id, twice)?,
            Param::PartNumber => set_once(&mut q.part_number, twice)?,
            Param::Id => set_once(&mut q.id, twice)?,
            Param::Prefix if q.prefix.is_some() => return Err(twice()),
            Param::Prefix => q.prefix = Some(value()?),
            Param::Category if q.category.is_some() => return Err(twice()),
            Param::Category => q.category = Some(value()?),
            Param::Signature => q.presigned = true,
            Param::Ignored => {}
        }
    }
    if q.select_type != (q.sub == Some(Sub::Select)) {
        return Err(S3Error::not_implemented(
            "?select goes only with select-type=2, and the other way round",
        ));
    }
    Ok(q)
}

fn set_sub(slot: &mut Option<Sub>, sub: Sub) -> Result<(), S3Error> {
    match slot.replace(sub) {
        None => Ok(()),
        Some(prev) if prev == sub => Err(S3Error::bad_request(format!(
            "?{} given twice",
            sub.query()
        ))),
        Some(prev) => Err(S3Error::not_implemented(format!(
            "no S3 operation takes both ?{} and ?{}",
            prev.query(),
            sub.query()
        ))),
    }
}

fn set_once(flag: &mut bool, twice: impl FnOnce() -> S3Error) -> Result<(), S3Error> {
    if std::mem::replace(flag, true) {
        return Err(twice());
    }
    Ok(())
}

/// The closed operation table of DESIGN §3: one arm per row.
fn route(verb: Verb, level: Level, q: &Query, copy: bool, is_form: bool) -> Result<Op, S3Error> {
    use ConfigResource::{Acl, LegalHold, Restore, Retention, Tagging};
    use Level::{Bucket, Object, Service};
    use Sub::Config;
    use Verb::{Delete, Get, Head, Post, Put};
    let op = match (level, verb, q.sub, q.upload_id, q.part_number) {
        (Bucket, Post, None, false, false) if is_form => Op::PostObject,
        (_, Post, ..) if is_form => {
            return Err(S3Error::bad_request(
                "a form POST goes only to a bucket, without sub-resources",
            ))
        }

        (Service, Get, None, false, false) => Op::ListBuckets,

        (Bucket, Get, None, false, false) => Op::ListObjects,
        (Bucket, Get, Some(Sub::ListV2), false, false) => Op::ListObjectsV2,
        (Bucket, Get, Some(Sub::Versions), false, false) => Op::ListObjectVersions,
        (Bucket, Get, Some(Sub::Uploads), false, false) => Op::ListMultipartUploads,
        (Bucket, Get, Some(Sub::Location), false, false) => Op::GetBucketLocation,
        (Bucket, Head, None, false, false) => Op::HeadBucket,
        (Bucket, Put, None, false, false) => Op::CreateBucket,
        (Bucket, Delete, None, false, false) => Op::DeleteBucket,
        (Bucket, Post, Some(Sub::Delete), false, false) => Op::DeleteObjects,
        (Bucket, _, Some(Config(resource)), false, false) => {
            return bucket_config(verb, resource, q)
        }

        // partNumber on GET/HEAD reads one part of a multipart object.
        (Object, Get, None, false, _) => Op::GetObject,
        (Object, Head, None, false, _) => Op::HeadObject,
        (Object, Get, Some(Sub::Attributes), false, false) => Op::GetObjectAttributes,
        (Object, Get, Some(Sub::Torrent), false, false) => Op::GetObjectTorrent,
        (Object, Get, None, true, false) => Op::ListParts,
        (Object, Put, None, false, false) if copy => Op::CopyObject,
        (Object, Put, None, false, false) => Op::PutObject,
        (Object, Put, None, true, true) if copy => Op::UploadPartCopy,
        (Object, Put, None, true, true) => Op::UploadPart,
        (Object, Post, Some(Sub::Uploads), false, false) => Op::CreateMultipartUpload,
        (Object, Post, None, true, false) => Op::CompleteMultipartUpload,
        (Object, Post, Some(Sub::Select), false, false) => Op::SelectObjectContent,
        (Object, Delete, None, false, false) => Op::DeleteObject,
        (Object, Delete, None, true, false) => Op::AbortMultipartUpload,
        (Object, Get, Some(Config(Tagging)), false, false) => Op::GetObjectTagging,
        (Object, Put, Some(Config(Tagging)), false, false) => Op::PutObjectTagging,
        (Object, Delete, Some(Config(Tagging)), false, false) => Op::DeleteObjectTagging,
        (Object, Get | Put, Some(Config(r @ (Acl | Retention | LegalHold))), false, false)
        | (Object, Post, Some(Config(r @ Restore)), false, false) => Op::ObjectConfig(r),

        _ => return Err(no_row(verb, level, q)),
    };
    Ok(op)
}

/// Bucket configuration: the methods the S3 API defines per sub-resource,
/// and no others — an upstream that does not know `DELETE ?logging` may
/// well read it as `DELETE` of the bucket.
fn bucket_config(verb: Verb, resource: ConfigResource, q: &Query) -> Result<Op, S3Error> {
    use ConfigResource::*;
    use Verb::{Delete, Get, Put};
    let verbs: &[Verb] = match resource {
        PolicyStatus | Logging | Notification => &[Get],
        Acl | Versioning | Accelerate | RequestPayment | ObjectLock => &[Get, Put],
        Replication | Inventory | Analytics => &[Get, Delete],
        Cors | Encryption | Lifecycle | Policy | Tagging | Website | OwnershipControls
        | PublicAccessBlock | IntelligentTiering | Metrics => &[Get, Put, Delete],
        Retention | LegalHold | Restore => &[],
    };
    let keyed = matches!(
        resource,
        Inventory | Analytics | Metrics | IntelligentTiering
    );
    if keyed && matches!(verb, Put | Delete) && !q.id {
        return Err(S3Error::invalid_argument(format!(
            "{} ?{} needs ?id=",
            verb_name(verb),
            Sub::Config(resource).query()
        )));
    }
    match (verb, resource) {
        (Put, Replication) => Ok(Op::PutBucketReplication),
        (Put, Inventory) => Ok(Op::PutBucketInventoryConfiguration),
        (Put, Logging) => Ok(Op::PutBucketLogging),
        (Put, Analytics) => Ok(Op::PutBucketAnalyticsConfiguration),
        (Put, Notification) => Err(S3Error::not_implemented(
            "PUT ?notification is refused: the gate cannot tell where queue, topic and function \
             destinations are, so it cannot check whether notifications carry data across borders",
        )),
        _ if verbs.contains(&verb) => Ok(Op::BucketConfig(resource)),
        _ => Err(no_row(verb, Level::Bucket, q)),
    }
}

fn verb_name(verb: Verb) -> &'static str {
    match verb {
        Verb::Get => "GET",
        Verb::Head => "HEAD",
        Verb::Put => "PUT",
        Verb::Post => "POST",
        Verb::Delete => "DELETE",
    }
}

fn no_row(verb: Verb, level: Level, q: &Query) -> S3Error {
    let level = match level {
        Level::Service => "the service",
        Level::Bucket => "a bucket",
        Level::Object => "an object",
    };
    let mut what = String::new();
    for (on, name) in [
        (q.sub.is_some(), q.sub.map_or("", Sub::query)),
        (q.upload_id, "uploadId"),
        (q.part_number, "partNumber"),
    ] {
        if on {
            what.push_str(if what.is_empty() { " ?" } else { "&" });
            what.push_str(name);
        }
    }
    S3Error::not_implemented(format!(
        "no S3 operation is {}{what} on {level}",
        verb_name(verb)
    ))
}
