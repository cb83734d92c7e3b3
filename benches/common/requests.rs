//! The request shapes the benches classify, as hyper hands them to the
//! gate: an origin-form target, a Host header and the headers an AWS SDK
//! sends (their number matters: classification looks several up).

use gatekeeper::s3::Hosts;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Uri};

pub const PATH_HOST: &str = "s3.local";
pub const VHOST_DOMAIN: &str = "s3.example.com";

pub fn hosts() -> Hosts {
    Hosts {
        path_style: vec![PATH_HOST.into()],
        virtual_host_domains: vec![VHOST_DOMAIN.into()],
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// `GET /bucket/key`, SigV4 in the Authorization header.
    PathGet,
    /// `GET /key` on `bucket.s3.example.com`.
    VhostGet,
    /// `GET /bucket/key?X-Amz-Algorithm=…&X-Amz-Signature=…`.
    PresignedGet,
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyPut,
    /// `GET /bucket?list-type=2&prefix=…&delimiter=/`.
    ListPrefix,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::PathGet,
        Shape::VhostGet,
        Shape::PresignedGet,
        Shape::CopyPut,
        Shape::ListPrefix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::PathGet => "get_path",
            Shape::VhostGet => "get_vhost",
            Shape::PresignedGet => "get_presigned",
            Shape::CopyPut => "put_copy",
            Shape::ListPrefix => "list_prefix",
        }
    }
}

pub struct Sample {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// `key` names the object (for a listing, its directory is the prefix);
/// `source` is the copy source's bucket.
pub fn sample(shape: Shape, bucket: &str, key: &str, source: &str) -> Sample {
    let signed = [
        ("user-agent", "aws-sdk-rust/1.3.0 os/linux lang/rust/1.92.0"),
        ("x-amz-date", "20260601T101500Z"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260601/cn-beijing-6/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
        ),
    ];
    let path_host = PATH_HOST.to_owned();
    let (method, host, target, extra) = match shape {
        Shape::PathGet => (Method::GET, path_host, format!("/{bucket}/{key}"), None),
        Shape::VhostGet => (
            Method::GET,
            format!("{bucket}.{VHOST_DOMAIN}"),
            format!("/{key}"),
            None,
        ),
        Shape::PresignedGet => (
            Method::GET,
            path_host,
            format!(
                "/{bucket}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260601%2Fcn-beijing-6%2Fs3%2Faws4_request\
                 &X-Amz-Date=20260601T101500Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
            ),
            None,
        ),
        Shape::CopyPut => (
            Method::PUT,
            path_host,
            format!("/{bucket}/{key}"),
            Some(format!("/{source}/{key}")),
        ),
        Shape::ListPrefix => {
            let prefix = key.rsplit_once('/').map_or("", |(dir, _)| dir);
            (
                Method::GET,
                path_host,
                format!("/{bucket}?list-type=2&prefix={prefix}%2F&delimiter=%2F"),
                None,
            )
        }
    };
    let presigned = matches!(shape, Shape::PresignedGet);
    let mut headers = HeaderMap::new();
    headers.insert(HOST, value(&host));
    // A presigned URL carries its signature in the query: whoever follows
    // it sends no signing headers, only a user agent.
    let sent = if presigned { &signed[..1] } else { &signed[..] };
    for (name, v) in sent {
        headers.insert(HeaderName::from_static(name), value(v));
    }
    if let Some(copy) = extra {
        headers.insert(HeaderName::from_static("x-amz-copy-source"), value(&copy));
    }
    Sample {
        method,
        uri: target.parse().expect("a valid request target"),
        headers,
    }
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("a valid header value")
}
