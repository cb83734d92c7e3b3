use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method};

use super::assert_refused;
use crate::s3::{classify, Addressing, ConfigResource, CopySource, Hosts, Op, S3Error, S3Request};

fn hosts() -> Hosts {
    Hosts {
        path_style: ["s3.local", "localhost", "127.0.0.1", "::1"]
            .map(String::from)
            .to_vec(),
        virtual_host_domains: ["s3.local", "s3.example.com"].map(String::from).to_vec(),
    }
}

/// `url` is `host/target`: the part before the first `/` is the Host
/// header, the rest the origin-form target.
fn run(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<S3Request, S3Error> {
    let (host, target) = url.split_at(url.find('/').unwrap_or(url.len()));
    run_with(method, Some(host), target, headers, &hosts())
}

fn run_with(
    method: &str,
    host: Option<&str>,
    target: &str,
    headers: &[(&str, &str)],
    hosts: &Hosts,
) -> Result<S3Request, S3Error> {
    let mut map = HeaderMap::new();
    if let Some(host) = host {
        map.append(HOST, HeaderValue::from_str(host).unwrap());
    }
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    classify(&method, &target.parse().unwrap(), &map, hosts)
}

type Headers = &'static [(&'static str, &'static str)];
/// `(method, url, headers, op)`
type OpRow = (&'static str, &'static str, Headers, Op);
/// `(method, url, headers, (status, code), what the message says)`
type Refusal = (
    &'static str,
    &'static str,
    Headers,
    (u16, &'static str),
    &'static str,
);
/// `(url, addressing, bucket, key)` of a GET
type TargetRow = (
    &'static str,
    Option<Addressing>,
    Option<&'static str>,
    Option<&'static str>,
);

const FORM: (&str, &str) = ("content-type", "multipart/form-data; boundary=xyz");
const COPY: (&str, &str) = ("x-amz-copy-source", "/src-bucket/some/key");

/// One row per operation; together they name every `Op` and every
/// `ConfigResource` (checked below).
#[rustfmt::skip]
const OPS: &[OpRow] = {
    use ConfigResource::*;
    use Op::*;
    &[
        ("GET", "s3.local/", &[], ListBuckets),
        ("GET", "s3.local/?prefix=a&max-buckets=5&continuation-token=t&bucket-region=eu", &[], ListBuckets),
        // bucket level
        ("GET", "s3.local/bkt", &[], ListObjects),
        ("GET", "s3.local/bkt/", &[], ListObjects),
        ("GET", "s3.local/bkt?prefix=p&delimiter=/&marker=m&max-keys=2&encoding-type=url", &[], ListObjects),
        ("GET", "s3.local/bkt?list-type=2&start-after=a&continuation-token=c&fetch-owner=true", &[], ListObjectsV2),
        ("GET", "s3.local/bkt?versions&key-marker=k&version-id-marker=v", &[], ListObjectVersions),
        ("GET", "s3.local/bkt?uploads&upload-id-marker=u&max-uploads=3", &[], ListMultipartUploads),
        ("GET", "s3.local/bkt?location", &[], GetBucketLocation),
        ("HEAD", "s3.local/bkt", &[], HeadBucket),
        ("PUT", "s3.local/bkt", &[], CreateBucket),
        ("DELETE", "s3.local/bkt", &[], DeleteBucket),
        ("POST", "s3.local/bkt?delete", &[], DeleteObjects),
        ("POST", "s3.local/bkt?delete=", &[], DeleteObjects),
        ("POST", "s3.local/bkt?delete", &[("content-type", "multipart/mixed; boundary=x")], DeleteObjects),
        ("POST", "s3.local/bkt", &[FORM], PostObject),
        ("POST", "bkt.s3.local/", &[("content-type", "Multipart/Form-Data;boundary=x")], PostObject),
        ("PUT", "s3.local/bkt?replication", &[], PutBucketReplication),
        ("PUT", "s3.local/bkt?inventory&id=inv1", &[], PutBucketInventoryConfiguration),
        ("PUT", "s3.local/bkt?logging", &[], PutBucketLogging),
        ("PUT", "s3.local/bkt?analytics&id=a1", &[], PutBucketAnalyticsConfiguration),
        ("GET", "s3.local/bkt?replication", &[], BucketConfig(Replication)),
        ("DELETE", "s3.local/bkt?replication", &[], BucketConfig(Replication)),
        ("GET", "s3.local/bkt?inventory", &[], BucketConfig(Inventory)),
        ("GET", "s3.local/bkt?inventory&id=inv1", &[], BucketConfig(Inventory)),
        ("DELETE", "s3.local/bkt?inventory&id=inv1", &[], BucketConfig(Inventory)),
        ("GET", "s3.local/bkt?logging", &[], BucketConfig(Logging)),
        ("GET", "s3.local/bkt?analytics&id=a1", &[], BucketConfig(Analytics)),
        ("DELETE", "s3.local/bkt?analytics&id=a1", &[], BucketConfig(Analytics)),
        ("GET", "s3.local/bkt?notification", &[], BucketConfig(Notification)),
        ("GET", "s3.local/bkt?acl", &[], BucketConfig(Acl)),
        ("PUT", "s3.local/bkt?acl", &[], BucketConfig(Acl)),
        ("GET", "s3.local/bkt?cors", &[], BucketConfig(Cors)),
        ("PUT", "s3.local/bkt?cors", &[], BucketConfig(Cors)),
        ("DELETE", "s3.local/bkt?cors", &[], BucketConfig(Cors)),
        ("PUT", "s3.local/bkt?encryption", &[], BucketConfig(Encryption)),
        ("DELETE", "s3.local/bkt?lifecycle", &[], BucketConfig(Lifecycle)),
        ("PUT", "s3.local/bkt?policy", &[], BucketConfig(Policy)),
        ("GET", "s3.local/bkt?policyStatus", &[], BucketConfig(PolicyStatus)),
        ("PUT", "s3.local/bkt?tagging", &[], BucketConfig(Tagging)),
        ("DELETE", "s3.local/bkt?tagging", &[], BucketConfig(Tagging)),
        ("PUT", "s3.local/bkt?versioning", &[], BucketConfig(Versioning)),
        ("DELETE", "s3.local/bkt?website", &[], BucketConfig(Website)),
        ("PUT", "s3.local/bkt?accelerate", &[], BucketConfig(Accelerate)),
        ("GET", "s3.local/bkt?requestPayment", &[], BucketConfig(RequestPayment)),
        ("DELETE", "s3.local/bkt?ownershipControls", &[], BucketConfig(OwnershipControls)),
        ("PUT", "s3.local/bkt?publicAccessBlock", &[], BucketConfig(PublicAccessBlock)),
        ("PUT", "s3.local/bkt?object-lock", &[], BucketConfig(ObjectLock)),
        ("PUT", "s3.local/bkt?intelligent-tiering&id=t", &[], BucketConfig(IntelligentTiering)),
        ("GET", "s3.local/bkt?metrics", &[], BucketConfig(Metrics)),
        ("DELETE", "s3.local/bkt?metrics&id=m", &[], BucketConfig(Metrics)),
        // object level
        ("GET", "s3.local/bkt/k", &[], GetObject),
        ("GET", "s3.local/bkt/k?versionId=v&partNumber=2&response-content-type=a&response-content-language=b&response-expires=c&response-cache-control=d&response-content-disposition=e&response-content-encoding=f", &[], GetObject),
        ("GET", "s3.local/bkt/k?x-id=GetObject", &[], GetObject),
        ("HEAD", "s3.local/bkt/k", &[], HeadObject),
        ("HEAD", "s3.local/bkt/k?partNumber=1", &[], HeadObject),
        ("GET", "s3.local/bkt/k?attributes", &[], GetObjectAttributes),
        ("GET", "s3.local/bkt/k?torrent", &[], GetObjectTorrent),
        ("GET", "s3.local/bkt/k?tagging&versionId=v", &[], GetObjectTagging),
        ("GET", "s3.local/bkt/k?uploadId=u&max-parts=5&part-number-marker=2", &[], ListParts),
        ("PUT", "s3.local/bkt/k", &[], PutObject),
        ("PUT", "s3.local/bkt/k", &[FORM, ("content-type", "multipart/form-data+x")], PutObject),
        ("PUT", "s3.local/bkt/k?x-id=PutObject", &[], PutObject),
        ("PUT", "s3.local/bkt/k", &[COPY], CopyObject),
        ("PUT", "s3.local/bkt/k?partNumber=1&uploadId=u", &[], UploadPart),
        ("PUT", "s3.local/bkt/k?uploadId=u&partNumber=1", &[COPY], UploadPartCopy),
        ("POST", "s3.local/bkt/k?uploads", &[], CreateMultipartUpload),
        ("POST", "s3.local/bkt/k?uploadId=u", &[], CompleteMultipartUpload),
        ("POST", "s3.local/bkt/k?select&select-type=2", &[], SelectObjectContent),
        ("POST", "s3.local/bkt/k?restore&versionId=v", &[], ObjectConfig(Restore)),
        ("DELETE", "s3.local/bkt/k", &[], DeleteObject),
        ("DELETE", "s3.local/bkt/k?versionId=v", &[], DeleteObject),
        ("DELETE", "s3.local/bkt/k?uploadId=u", &[], AbortMultipartUpload),
        ("PUT", "s3.local/bkt/k?tagging", &[], PutObjectTagging),
        ("DELETE", "s3.local/bkt/k?tagging", &[], DeleteObjectTagging),
        ("GET", "s3.local/bkt/k?acl", &[], ObjectConfig(Acl)),
        ("PUT", "s3.local/bkt/k?acl", &[], ObjectConfig(Acl)),
        ("GET", "s3.local/bkt/k?retention", &[], ObjectConfig(Retention)),
        ("PUT", "s3.local/bkt/k?retention", &[], ObjectConfig(Retention)),
        ("GET", "s3.local/bkt/k?legal-hold", &[], ObjectConfig(LegalHold)),
        ("PUT", "s3.local/bkt/k?legal-hold", &[], ObjectConfig(LegalHold)),
    ]
};

#[test]
fn operation_table() {
    for (method, url, headers, op) in OPS {
        let req = run(method, url, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        assert_eq!(req.op, *op, "{method} {url}");
        assert_eq!(
            req.copy_source.is_some(),
            headers.contains(&COPY),
            "{method} {url}"
        );
    }
}

#[test]
fn operation_table_names_every_op_and_config_resource() {
    // Exhaustive on purpose: a new variant fails to compile here until it
    // gets a row above.
    fn id(op: Op) -> Op {
        use Op::*;
        match op {
            GetObject
            | HeadObject
            | SelectObjectContent
            | GetObjectAttributes
            | GetObjectTorrent
            | GetObjectTagging
            | ListObjects
            | ListObjectsV2
            | ListObjectVersions
            | ListParts
            | ListMultipartUploads
            | PutObject
            | PostObject
            | CreateMultipartUpload
            | UploadPart
            | CompleteMultipartUpload
            | CopyObject
            | UploadPartCopy
            | PutBucketReplication
            | PutBucketInventoryConfiguration
            | PutBucketLogging
            | PutBucketAnalyticsConfiguration
            | ListBuckets
            | CreateBucket
            | DeleteBucket
            | HeadBucket
            | GetBucketLocation
            | DeleteObject
            | DeleteObjects
            | AbortMultipartUpload
            | PutObjectTagging
            | DeleteObjectTagging => op,
            BucketConfig(r) | ObjectConfig(r) => {
                use ConfigResource::*;
                match r {
                    Acl | Cors | Encryption | Lifecycle | Policy | PolicyStatus | Tagging
                    | Versioning | Website | Accelerate | RequestPayment | OwnershipControls
                    | PublicAccessBlock | ObjectLock | Retention | LegalHold
                    | IntelligentTiering | Metrics | Replication | Inventory | Logging
                    | Analytics | Notification | Restore => op,
                }
            }
        }
    }
    let named: Vec<Op> = OPS.iter().map(|row| id(row.3)).collect();
    for op in Op::PLAIN {
        assert!(named.contains(&op), "no row for {op:?}");
    }
    use ConfigResource::*;
    for r in [
        Acl,
        Cors,
        Encryption,
        Lifecycle,
        Policy,
        PolicyStatus,
        Tagging,
        Versioning,
        Website,
        Accelerate,
        RequestPayment,
        OwnershipControls,
        PublicAccessBlock,
        ObjectLock,
        Retention,
        LegalHold,
        IntelligentTiering,
        Metrics,
        Replication,
        Inventory,
        Logging,
        Analytics,
        Notification,
        Restore,
    ] {
        let seen = named
            .iter()
            .any(|op| matches!(op, Op::BucketConfig(x) | Op::ObjectConfig(x) if *x == r));
        assert!(seen, "no row for {r:?}");
    }
}

const NI: (u16, &str) = (501, "NotImplemented");
const IR: (u16, &str) = (400, "InvalidRequest");
const IA: (u16, &str) = (400, "InvalidArgument");
const BN: (u16, &str) = (400, "InvalidBucketName");

/// Sub-resources are matched exactly; a request no row describes is `501`
/// (the upstream might read it as anything), a malformed one `400`.
#[rustfmt::skip]
const REFUSED: &[Refusal] = &[
    // look-alikes and unknown parameters
    ("GET", "s3.local/bkt?uploadsX", &[], NI, "unknown query parameter \"uploadsX\""),
    ("GET", "s3.local/bkt?Tagging", &[], NI, "unknown query parameter \"Tagging\""),
    ("GET", "s3.local/bkt?Versions", &[], NI, "unknown query parameter"),
    ("GET", "s3.local/bkt?list-type=3", &[], NI, "unknown list-type=3"),
    ("GET", "s3.local/bkt?list-type=1", &[], NI, "unknown list-type=1"),
    ("GET", "s3.local/bkt?list-type", &[], NI, "list-type="),
    ("GET", "s3.local/bkt?foo=bar", &[], NI, "unknown query parameter \"foo\""),
    ("GET", "s3.local/bkt?metadataTable", &[], NI, "unknown query parameter"),
    ("PUT", "s3.local/bkt/k?renameObject", &[], NI, "unknown query parameter"),
    ("GET", "s3.local/bkt?session", &[], NI, "unknown query parameter"),
    ("GET", "s3.local/bkt?acl=x", &[], IA, "?acl takes no value"),
    ("GET", "s3.local/bkt?acl&acl", &[], IR, "?acl given twice"),
    ("GET", "s3.local/bkt?acl&cors", &[], NI, "no S3 operation takes both ?acl and ?cors"),
    ("GET", "s3.local/bkt?list-type=2&versions", &[], NI, "both ?list-type=2 and ?versions"),
    ("GET", "s3.local/bkt?prefix=a&prefix=b", &[], IR, "\"prefix\" given twice"),
    ("GET", "s3.local/bkt/k?uploadId=a&uploadId=b", &[], IR, "\"uploadId\" given twice"),
    ("PUT", "s3.local/bkt/k?partNumber=1&partNumber=2&uploadId=u", &[], IR, "\"partNumber\" given twice"),
    ("GET", "s3.local/bkt?inventory&id=a&id=b", &[], IR, "\"id\" given twice"),
    ("GET", "s3.local/bkt/k?x-amz-copy-source=src/k", &[], IR, "only read from a header"),
    ("PUT", "s3.local/bkt/k?X-Amz-Copy-Source-If-Match=x", &[], IR, "only read from a header"),
    // select needs select-type=2, and select-type needs select
    ("POST", "s3.local/bkt/k?select", &[], NI, "select-type=2"),
    ("POST", "s3.local/bkt/k?select&select-type=1", &[], NI, "unknown select-type=1"),
    ("POST", "s3.local/bkt/k?select-type=2", &[], NI, "select-type=2"),
    // known names where the table has no row
    ("GET", "s3.local/bkt/k?restore", &[], NI, "no S3 operation is GET ?restore on an object"),
    ("GET", "s3.local/bkt/k?versions", &[], NI, "GET ?versions on an object"),
    ("GET", "s3.local/bkt/k?location", &[], NI, "GET ?location on an object"),
    ("PUT", "s3.local/bkt/k?cors", &[], NI, "PUT ?cors on an object"),
    ("GET", "s3.local/bkt?retention", &[], NI, "GET ?retention on a bucket"),
    ("POST", "s3.local/bkt?restore", &[], NI, "POST ?restore on a bucket"),
    ("GET", "s3.local/bkt?attributes", &[], NI, "GET ?attributes on a bucket"),
    ("DELETE", "s3.local/bkt?logging", &[], NI, "DELETE ?logging on a bucket"),
    ("DELETE", "s3.local/bkt?notification", &[], NI, "DELETE ?notification on a bucket"),
    ("DELETE", "s3.local/bkt?acl", &[], NI, "DELETE ?acl on a bucket"),
    ("DELETE", "s3.local/bkt?versioning", &[], NI, "DELETE ?versioning on a bucket"),
    ("PUT", "s3.local/bkt?policyStatus", &[], NI, "PUT ?policyStatus on a bucket"),
    ("PUT", "s3.local/bkt?location", &[], NI, "PUT ?location on a bucket"),
    ("HEAD", "s3.local/bkt?acl", &[], NI, "HEAD ?acl on a bucket"),
    ("HEAD", "s3.local/bkt/k?tagging", &[], NI, "HEAD ?tagging on an object"),
    ("POST", "s3.local/bkt/k", &[], NI, "no S3 operation is POST on an object"),
    // s3s reads any form POST to a bucket as PostObject, whatever the query
    ("POST", "s3.local/bkt/k", &[FORM], IR, "a form POST goes only to a bucket, without sub-resources"),
    ("POST", "s3.local/bkt?delete", &[FORM], IR, "a form POST goes only to a bucket, without sub-resources"),
    ("POST", "s3.local/bkt/k?uploads", &[FORM], IR, "form POST"),
    ("POST", "s3.local/", &[FORM], IR, "form POST"),
    ("POST", "s3.local/bkt?delete", &[("content-type", "multipart/form-data+xml; boundary=x")], IR, "is refused: a form upload is multipart/form-data"),
    ("POST", "s3.local/bkt", &[FORM, FORM], IR, "more than one content-type header"),
    ("POST", "s3.local/bkt", &[], NI, "POST on a bucket"),
    ("POST", "s3.local/bkt", &[("content-type", "application/xml")], NI, "POST on a bucket"),
    ("PUT", "s3.local/bkt/k?partNumber=1", &[], NI, "PUT ?partNumber on an object"),
    ("PUT", "s3.local/bkt/k?uploadId=u", &[], NI, "PUT ?uploadId on an object"),
    ("GET", "s3.local/bkt/k?uploadId=u&partNumber=1", &[], NI, "GET ?uploadId&partNumber on an object"),
    ("POST", "s3.local/bkt/k?uploads&uploadId=u", &[], NI, "POST ?uploads&uploadId on an object"),
    ("DELETE", "s3.local/bkt/k?tagging&uploadId=u", &[], NI, "DELETE ?tagging&uploadId"),
    ("GET", "s3.local/bkt?uploadId=u", &[], NI, "GET ?uploadId on a bucket"),
    ("HEAD", "s3.local/", &[], NI, "HEAD on the service"),
    ("PUT", "s3.local/", &[], NI, "PUT on the service"),
    ("GET", "s3.local/?acl", &[], NI, "GET ?acl on the service"),
    ("PUT", "s3.local/bkt?notification", &[], NI, "cannot tell where queue, topic and function"),
    // keyed configurations need their id to be written
    ("PUT", "s3.local/bkt?inventory", &[], IA, "PUT ?inventory needs ?id="),
    ("PUT", "s3.local/bkt?analytics", &[], IA, "PUT ?analytics needs ?id="),
    ("DELETE", "s3.local/bkt?metrics", &[], IA, "DELETE ?metrics needs ?id="),
    ("PUT", "s3.local/bkt?intelligent-tiering", &[], IA, "needs ?id="),
    // copy source only where the operation copies
    ("GET", "s3.local/bkt/k", &[COPY], IR, "x-amz-copy-source is not allowed on GetObject"),
    ("PUT", "s3.local/bkt/k?tagging", &[COPY], IR, "not allowed on PutObjectTagging"),
    ("POST", "s3.local/bkt/k?uploads", &[COPY], IR, "not allowed on CreateMultipartUpload"),
    ("PUT", "s3.local/bkt", &[COPY], IR, "not allowed on CreateBucket"),
    ("POST", "s3.local/bkt", &[FORM, COPY], IR, "not allowed on PostObject"),
    // methods
    ("PATCH", "s3.local/bkt/k", &[], NI, "method PATCH"),
    ("OPTIONS", "s3.local/bkt/k", &[], NI, "method OPTIONS"),
    ("TRACE", "s3.local/bkt/k", &[], NI, "method TRACE"),
    ("PROPFIND", "s3.local/bkt/k", &[], NI, "method PROPFIND"),
    ("CONNECT", "s3.local/bkt/k", &[], IR, "CONNECT"),
    // headers that would turn one request into another
    ("GET", "s3.local/bkt/k", &[("upgrade", "websocket")], IR, "Upgrade"),
    ("GET", "s3.local/bkt/k", &[("connection", "x-amz-copy-source")], IR, "Connection: x-amz-copy-source"),
    ("GET", "s3.local/bkt/k", &[("connection", "keep-alive, x-amz-meta-data-category")], IR, "Connection: x-amz-meta-data-category"),
    ("GET", "s3.local/bkt/k", &[("connection", "close"), ("connection", "upgrade")], IR, "Connection: upgrade"),
    ("PUT", "s3.local/bkt/k", &[("content-length", "5"), ("transfer-encoding", "chunked")], IR, "both Content-Length and Transfer-Encoding"),
    ("PUT", "s3.local/bkt/k", &[COPY, COPY], IR, "more than one x-amz-copy-source"),
    // CGI and WSGI servers read `_` in a header name as `-`
    ("PUT", "s3.local/bkt/k", &[("x_amz_copy_source", "/src-bucket/k")], IR, "reads as x-amz-copy-source"),
    ("PUT", "s3.local/bkt/k", &[("x-amz-meta_data-category", "public")], IR, "reads as x-amz-meta-data-category"),
    ("PUT", "s3.local/bkt/k", &[("transfer_encoding", "chunked")], IR, "reads as transfer-encoding"),
    ("PUT", "s3.local/bkt/k", &[("x-amz-meta-data-category", "a"), ("X-Amz-Meta-Data-Category", "b")], IR, "more than one x-amz-meta-data-category"),
    ("PUT", "s3.local/bkt/k?x-amz-meta-data-category=a", &[("x-amz-meta-data-category", "a")], IA, "both as a header and as a query parameter"),
    ("PUT", "s3.local/bkt/k?x-amz-meta-data-category=a&X-Amz-Meta-Data-Category=b", &[], IR, "given twice"),
    // hosts
    ("GET", "evil.example/bkt/k", &[], IR, "neither an S3 host"),
    ("GET", "cname.example.org/k", &[], IR, "neither an S3 host"),
    ("GET", "s3.local.evil.example/bkt/k", &[], IR, "neither an S3 host"),
    ("GET", "xs3.local/bkt/k", &[], IR, "neither an S3 host"),
    ("GET", ".s3.local/bkt/k", &[], IR, "neither an S3 host"),
    ("GET", "s3.local./bkt/k", &[], IR, "neither an S3 host"),
    ("GET", "::1/bkt/k", &[], IR, "malformed Host"),
    ("GET", "s3.local:/bkt/k", &[], IR, "malformed Host"),
    ("GET", "s3.local:80a/bkt/k", &[], IR, "malformed Host"),
    ("GET", "[::1/bkt/k", &[], IR, "malformed Host"),
    ("GET", "[::1]x/bkt/k", &[], IR, "malformed Host"),
    ("GET", ":8080/bkt/k", &[], IR, "malformed Host"),
    ("GET", "user@s3.local/bkt/k", &[], IR, "user information"),
    ("GET", "s3.local/bkt/k", &[("host", "s3.local")], IR, "more than one Host header"),
    // S3 servers differ on whether case matters in Host
    ("GET", "BKT.s3.local/k", &[], IR, "upper-case"),
    ("GET", "bkt.S3.local/k", &[], IR, "upper-case"),
    ("GET", "S3.local/bkt/k", &[], IR, "upper-case"),
    ("GET", "LOCALHOST:8080/bkt/k", &[], IR, "upper-case"),
    ("GET", "b_k.s3.local/k", &[], BN, "invalid bucket name"),
    ("GET", "ab.s3.local/k", &[], BN, "invalid bucket name \"ab\""),
    // paths: what two implementations could split or decode differently
    ("GET", "s3.local//bkt/k", &[], IR, "empty bucket name"),
    ("GET", "s3.local//", &[], IR, "empty bucket name"),
    ("GET", "s3.local/bkt//k", &[], IA, "empty segment"),
    ("GET", "s3.local/bkt/a//b/", &[], IA, "empty segment"),
    ("GET", "s3.local/bkt/a%2F%2Fb", &[], IA, "empty segment"),
    ("GET", "s3.local/bkt/a%5C%5Cb", &[], IA, "empty segment"),
    ("GET", "s3.local/bkt/dir//", &[], IA, "empty segment"),
    ("GET", "bkt.s3.local//k", &[], IA, "empty segment"),
    ("GET", "s3.local/bkt%2Fk", &[], IR, "encoded '/' in the bucket name"),
    ("GET", "s3.local/bkt%2fk/x", &[], IR, "encoded '/' in the bucket name"),
    ("GET", "s3.local/bkt%5Ck/x", &[], IR, "'\\' in the bucket name"),
    ("GET", "s3.local/../bkt/k", &[], IR, "'.' or '..' as the bucket name"),
    ("GET", "s3.local/./k", &[], IR, "'.' or '..' as the bucket name"),
    ("GET", "s3.local/%2e%2e/k", &[], IR, "'.' or '..' as the bucket name"),
    ("GET", "s3.local/%2E/k", &[], IR, "'.' or '..' as the bucket name"),
    ("GET", "s3.local/bkt/..", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/../other/k", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/a/./b", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/a/%2e%2e/b", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/a%2F..%2Fb", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/a%5C..%5Cb", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/bkt/%2E", &[], IA, "'.' or '..' segment"),
    ("GET", "bkt.s3.local/..", &[], IA, "'.' or '..' segment"),
    ("GET", "bkt.s3.local/a/%2e%2e/b", &[], IA, "'.' or '..' segment"),
    ("GET", "s3.local/BKT/k", &[], BN, "invalid bucket name \"BKT\""),
    ("GET", "s3.local/Bucket", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/bk/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/192.168.1.1/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/-bkt/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/bkt-/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/b..kt/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/b_kt/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/xn--bkt/k", &[], BN, "invalid bucket name"),
    // found by fuzzing: S3 reserves the prefix, and the rules refuse it
    ("POST", "s3.local/amzn-s3-demo-bkt?delete", &[], BN, "invalid bucket name"),
    ("GET", "amzn-s3-demo-bkt.s3.local/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/ap-123-s3alias/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/mybkt--ol-s3/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/mybkt--x-s3/k", &[], BN, "invalid bucket name"),
    ("GET", "s3.local/arn:aws:s3:us-east-1:123456789012:accesspoint/ap/k", &[], IR, "access point ARNs"),
    ("GET", "s3.local/bkt%ZZ/k", &[], IR, "malformed percent-encoding"),
    ("GET", "s3.local/bkt/a%2", &[], IR, "malformed percent-encoding"),
    ("GET", "s3.local/bkt/a%FF", &[], IR, "invalid UTF-8"),
    ("GET", "s3.local/bkt/a%C0%AE", &[], IR, "invalid UTF-8"),
    ("GET", "s3.local/bkt/a%00b", &[], IA, "control character"),
    ("GET", "s3.local/bkt/a%0Ab", &[], IA, "control character"),
    ("GET", "s3.local/bkt/a%7F", &[], IA, "control character"),
    ("GET", "s3.local/bkt?prefix=%ZZ", &[], IR, "malformed percent-encoding"),
    ("GET", "s3.local/bkt?%FF", &[], IR, "invalid UTF-8"),
];

#[test]
fn refusals() {
    for (method, url, headers, (status, code), why) in REFUSED {
        assert_refused(
            run(method, url, headers),
            *status,
            code,
            why,
            &format!("{method} {url}"),
        );
    }
}

#[test]
fn key_too_long() {
    let url = format!("s3.local/bkt/{}", "k".repeat(1025));
    assert_refused(
        run("GET", &url, &[]),
        400,
        "KeyTooLongError",
        "1024",
        "1025-byte key",
    );
    let url = format!("s3.local/bkt/{}", "k".repeat(1024));
    assert_eq!(run("GET", &url, &[]).unwrap().key.unwrap().len(), 1024);
}

#[rustfmt::skip]
const TARGETS: &[TargetRow] = {
    use Addressing::*;
    &[
        ("s3.local/", None, None, None),
        ("s3.local/bkt", Some(Path), Some("bkt"), None),
        ("s3.local/bkt/", Some(Path), Some("bkt"), None),
        ("s3.local/bkt/dir/object", Some(Path), Some("bkt"), Some("dir/object")),
        ("s3.local/bkt/dir/", Some(Path), Some("bkt"), Some("dir/")),
        ("s3.local/my.bkt-1/k", Some(Path), Some("my.bkt-1"), Some("k")),
        ("s3.local/b%6Bt/k", Some(Path), Some("bkt"), Some("k")),
        // decoded exactly once: what is left is a literal key, as S3 reads it
        ("s3.local/bkt/a%20b+c", Some(Path), Some("bkt"), Some("a b+c")),
        ("s3.local/bkt/%252e%252e", Some(Path), Some("bkt"), Some("%2e%2e")),
        ("s3.local/bkt/a%252Fb", Some(Path), Some("bkt"), Some("a%2Fb")),
        ("s3.local/bkt/..a/b..", Some(Path), Some("bkt"), Some("..a/b..")),
        ("s3.local/bkt/%E4%BD%A0%E5%A5%BD", Some(Path), Some("bkt"), Some("你好")),
        ("s3.local/bkt/a%3Fb", Some(Path), Some("bkt"), Some("a?b")),
        // Host: ports stripped, IPv6 literals unbracketed
        ("s3.local:8080/bkt/k", Some(Path), Some("bkt"), Some("k")),
        ("localhost/bkt/k", Some(Path), Some("bkt"), Some("k")),
        ("127.0.0.1:9000/bkt/k", Some(Path), Some("bkt"), Some("k")),
        ("[::1]:8080/bkt/k", Some(Path), Some("bkt"), Some("k")),
        ("[::1]/bkt/k", Some(Path), Some("bkt"), Some("k")),
        // virtual-hosted: the whole path is the key
        ("bkt.s3.local/", Some(VirtualHost), Some("bkt"), None),
        ("bkt.s3.local/k", Some(VirtualHost), Some("bkt"), Some("k")),
        ("bkt.s3.local:443/other/k", Some(VirtualHost), Some("bkt"), Some("other/k")),
        ("my.bkt.s3.example.com/a%2Fb", Some(VirtualHost), Some("my.bkt"), Some("a/b")),
        // a virtual-host domain itself is path style
        ("s3.example.com/bkt/k", Some(Path), Some("bkt"), Some("k")),
        ("s3.example.com/", None, None, None),
    ]
};

#[test]
fn addressing() {
    for (url, addressing, bucket, key) in TARGETS {
        let req = run("GET", url, &[]).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (req.addressing, req.bucket.as_deref(), req.key.as_deref()),
            (*addressing, *bucket, *key),
            "{url}"
        );
    }
}

#[test]
fn http2_authority_and_absolute_form() {
    let hosts = hosts();
    // HTTP/2: :authority, no Host header
    let req = run_with("GET", None, "https://bkt.s3.local:8443/k", &[], &hosts).unwrap();
    assert_eq!(
        (req.addressing, req.bucket.as_deref(), req.key.as_deref()),
        (Some(Addressing::VirtualHost), Some("bkt"), Some("k"))
    );
    // absolute-form that agrees with Host
    let req = run_with(
        "GET",
        Some("s3.local:8080"),
        "http://s3.local:8080/bkt/k",
        &[],
        &hosts,
    )
    .unwrap();
    assert_eq!(req.bucket.as_deref(), Some("bkt"));

    let refused: &[(Option<&str>, &str, &str)] = &[
        (
            Some("s3.local"),
            "http://evil.example/bkt/k",
            "differs from Host",
        ),
        (
            Some("s3.local"),
            "http://s3.local:8080/bkt/k",
            "differs from Host",
        ),
        (
            Some("s3.local:8080"),
            "http://S3.local:8080/bkt/k",
            "differs from Host",
        ),
        (
            Some("bkt.s3.local"),
            "http://other.s3.local/k",
            "differs from Host",
        ),
        (None, "http://evil.example/bkt/k", "neither an S3 host"),
        (None, "/bkt/k", "no Host header"),
    ];
    for (host, target, why) in refused {
        assert_refused(
            run_with("GET", *host, target, &[], &hosts),
            400,
            "InvalidRequest",
            why,
            target,
        );
    }
}

#[test]
fn overlapping_host_names_are_refused() {
    let hosts = Hosts {
        path_style: vec!["eu.s3.local".into()],
        virtual_host_domains: vec!["s3.local".into(), "s3.eu.s3.local".into()],
    };
    let cases = [
        // path-style host, or bucket `eu` under s3.local?
        "eu.s3.local",
        // bucket `bkt` under s3.eu.s3.local, or `bkt.s3.eu` under s3.local?
        "bkt.s3.eu.s3.local",
    ];
    for host in cases {
        assert_refused(
            run_with("GET", Some(host), "/bkt/k", &[], &hosts),
            400,
            "InvalidRequest",
            "more than one",
            host,
        );
    }
    // Names that only one configured name explains still work.
    let req = run_with("GET", Some("bkt.s3.local"), "/k", &[], &hosts).unwrap();
    assert_eq!(req.bucket.as_deref(), Some("bkt"));
    let req = run_with(
        "GET",
        Some("bkt.s3.eu.s3.local"),
        "/k",
        &[],
        &Hosts {
            virtual_host_domains: vec!["s3.eu.s3.local".into()],
            ..hosts.clone()
        },
    );
    assert_eq!(req.unwrap().bucket.as_deref(), Some("bkt"));
}

#[test]
fn presigned_urls() {
    let v4 = "bkt.s3.local/staff/42.json?X-Amz-Algorithm=AWS4-HMAC-SHA256\
              &X-Amz-Credential=AKIA%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z\
              &X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok&X-Amz-Signature=abcdef";
    let req = run("GET", v4, &[]).unwrap();
    assert_eq!(req.op, Op::GetObject);
    assert!(req.presigned);
    assert_eq!(
        (req.bucket.as_deref(), req.key.as_deref()),
        (Some("bkt"), Some("staff/42.json"))
    );
    assert_eq!(req.addressing, Some(Addressing::VirtualHost));

    let put = "bkt.s3.local/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab\
               &x-amz-meta-data-category=identity&x-amz-acl=private&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&x-id=PutObject";
    let req = run("PUT", put, &[]).unwrap();
    assert_eq!(
        (req.op, req.presigned, req.declared_category.as_deref()),
        (Op::PutObject, true, Some("identity"))
    );

    let v2 = "s3.local/bkt/k?AWSAccessKeyId=AKIA&Expires=1700000000&Signature=abc%2B%3D";
    let req = run("GET", v2, &[]).unwrap();
    assert!(req.presigned);
    assert_eq!(req.bucket.as_deref(), Some("bkt"));

    assert!(!run("GET", "s3.local/bkt/k", &[]).unwrap().presigned);
    assert!(
        !run("GET", "s3.local/bkt/k?X-Amz-Date=x", &[])
            .unwrap()
            .presigned
    );
}

#[test]
fn declared_category() {
    let cases: &[(&str, Headers, Option<&str>)] = &[
        ("s3.local/bkt/k", &[], None),
        (
            "s3.local/bkt/k",
            &[("x-amz-meta-data-category", "identity")],
            Some("identity"),
        ),
        (
            "s3.local/bkt/k",
            &[("X-AMZ-META-DATA-CATEGORY", "logs")],
            Some("logs"),
        ),
        (
            "s3.local/bkt/k?x-amz-meta-data-category=content",
            &[],
            Some("content"),
        ),
        (
            "s3.local/bkt/k?X-Amz-Meta-Data-Category=a%20b",
            &[],
            Some("a b"),
        ),
        ("s3.local/bkt/k", &[("x-amz-meta-other", "identity")], None),
    ];
    for (url, headers, want) in cases {
        assert_eq!(
            run("PUT", url, headers)
                .unwrap()
                .declared_category
                .as_deref(),
            *want,
            "{url} {headers:?}"
        );
    }
    let mut map = HeaderMap::new();
    map.insert(HOST, HeaderValue::from_static("s3.local"));
    map.insert(
        "x-amz-meta-data-category",
        HeaderValue::from_bytes("ïd".as_bytes()).unwrap(),
    );
    let refused = classify(&Method::PUT, &"/bkt/k".parse().unwrap(), &map, &hosts());
    assert_refused(
        refused,
        400,
        "InvalidRequest",
        "not visible ASCII",
        "non-ASCII category",
    );
}

#[test]
fn list_prefix() {
    let cases: &[(&str, Option<&str>)] = &[
        ("s3.local/bkt", Some("")),
        ("s3.local/bkt?prefix=logs%2F2025", Some("logs/2025")),
        ("s3.local/bkt?prefix=a+b%2Bc", Some("a b+c")),
        ("s3.local/bkt?prefix=", Some("")),
        ("s3.local/bkt?list-type=2&prefix=hr/", Some("hr/")),
        ("s3.local/bkt?versions&prefix=v", Some("v")),
        ("s3.local/bkt?uploads&prefix=u", Some("u")),
        ("s3.local/bkt/k?prefix=x", None),
        ("s3.local/?prefix=x", None),
        ("s3.local/bkt?location&prefix=x", None),
    ];
    for (url, want) in cases {
        assert_eq!(
            run("GET", url, &[]).unwrap().list_prefix.as_deref(),
            *want,
            "{url}"
        );
    }
}

#[test]
fn connection_tokens_that_change_nothing_pass() {
    let headers: &[(&str, &str)] = &[("connection", "Keep-Alive, close"), ("connection", "")];
    assert_eq!(
        run("GET", "s3.local/bkt/k", headers).unwrap().op,
        Op::GetObject
    );
}

fn copy(value: &str) -> Result<Option<CopySource>, S3Error> {
    run(
        "PUT",
        "s3.local/dst-bucket/k",
        &[("x-amz-copy-source", value)],
    )
    .map(|r| r.copy_source)
}

#[test]
fn copy_source() {
    let src = |bucket: &str, key: &str, version: Option<&str>| CopySource {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version.map(Into::into),
    };
    let good = [
        ("/src-bucket/k", src("src-bucket", "k", None)),
        ("src-bucket/k", src("src-bucket", "k", None)),
        (
            "/src-bucket/dir/a%20b.txt",
            src("src-bucket", "dir/a b.txt", None),
        ),
        ("/src-bucket/a+b", src("src-bucket", "a+b", None)),
        ("/src-bucket/%E4%BD%A0", src("src-bucket", "你", None)),
        ("/src-bucket/a%3Fb", src("src-bucket", "a?b", None)),
        (
            "/src-bucket/k?versionId=3HL4kqtJ",
            src("src-bucket", "k", Some("3HL4kqtJ")),
        ),
        (
            "/src-bucket/k?versionId=a%2Bb",
            src("src-bucket", "k", Some("a+b")),
        ),
    ];
    for (value, want) in good {
        assert_eq!(copy(value).unwrap(), Some(want), "{value}");
    }

    #[rustfmt::skip]
    let refused: &[(&str, &str, &str)] = &[
        ("arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k", "InvalidRequest", "access point ARNs"),
        ("/arn%3Aaws%3As3%3Aus-west-2%3A123456789012%3Aaccesspoint%2Fap/object/k", "InvalidRequest", "encoded '/'"),
        ("arn%3Aaws%3As3%3Aus-west-2%3A1%3Aaccesspoint/object/k", "InvalidRequest", "access point ARNs"),
        ("/src-bucket%2Fk/x", "InvalidRequest", "encoded '/' in the bucket name"),
        ("/src-bucket%2fk", "InvalidRequest", "encoded '/' in the bucket name"),
        ("/src-bucket/a%252Fb", "InvalidRequest", "encoded twice"),
        ("/src-bucket/%252e%252e/x", "InvalidRequest", "encoded twice"),
        ("/src%2562ucket/k", "InvalidRequest", "encoded twice"),
        ("/src-bucket/k?versionId=a%2541", "InvalidRequest", "encoded twice"),
        ("/src-bucket/", "InvalidArgument", "empty object key"),
        ("/src-bucket", "InvalidArgument", "empty object key"),
        ("//src-bucket/k", "InvalidRequest", "empty bucket name"),
        ("/", "InvalidRequest", "empty bucket name"),
        ("/SRC-bucket/k", "InvalidBucketName", "invalid bucket name"),
        ("/sr/k", "InvalidBucketName", "invalid bucket name"),
        ("/src-bucket/../k", "InvalidArgument", "'.' or '..' segment"),
        ("/src-bucket/a/%2e%2e/b", "InvalidArgument", "'.' or '..' segment"),
        ("/src-bucket/a%2F.%2Fb", "InvalidArgument", "'.' or '..' segment"),
        ("/src-bucket//k", "InvalidArgument", "empty segment"),
        ("/../k", "InvalidRequest", "'.' or '..' as the bucket name"),
        ("/src-bucket/a%00", "InvalidArgument", "control character"),
        ("/src-bucket/a%zz", "InvalidRequest", "malformed percent-encoding"),
        ("/src-bucket/a%FF", "InvalidRequest", "invalid UTF-8"),
        ("/src-bucket/k?versionId=", "InvalidRequest", "only ?versionId="),
        ("/src-bucket/k?versionid=v", "InvalidRequest", "only ?versionId="),
        ("/src-bucket/k?partNumber=1", "InvalidRequest", "only ?versionId="),
        ("/src-bucket/k?versionId=v&x=y", "InvalidRequest", "only ?versionId="),
    ];
    for (value, code, why) in refused {
        assert_refused(copy(value), 400, code, why, value);
    }

    let mut map = HeaderMap::new();
    map.insert(HOST, HeaderValue::from_static("s3.local"));
    map.insert(
        "x-amz-copy-source",
        HeaderValue::from_bytes("/src-bucket/ключ".as_bytes()).unwrap(),
    );
    let refused = classify(&Method::PUT, &"/bkt/k".parse().unwrap(), &map, &hosts());
    assert_refused(
        refused,
        400,
        "InvalidRequest",
        "not visible ASCII",
        "raw UTF-8 copy source",
    );
}
