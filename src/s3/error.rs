//! S3 XML error responses.

use std::fmt;

/// An error the gate answers itself, before or instead of the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    /// The S3 error code SDKs match on (`AccessDenied`, `InvalidArgument`,
    /// `NotImplemented`, …).
    pub code: &'static str,
    pub message: String,
}

impl S3Error {
    pub fn new(status: u16, code: &'static str, message: String) -> Self {
        S3Error {
            status,
            code,
            message,
        }
    }

    /// A request the gate will not pass because it cannot be sure how the
    /// upstream would read it (ambiguous host, smuggling headers, …).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequest", message.into())
    }

    /// A well-formed request with a value the gate refuses (a bad key, an
    /// unknown declared category, …).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidArgument", message.into())
    }

    pub fn malformed_xml(message: impl Into<String>) -> Self {
        Self::new(400, "MalformedXML", message.into())
    }

    /// A request outside the closed operation table (DESIGN §3).
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", message.into())
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(403, "AccessDenied", message.into())
    }

    /// The S3 error document of DESIGN §3 "Deny response".
    pub fn xml(&self, resource: &str, request_id: &str) -> String {
        let mut out = String::with_capacity(
            128 + self.code.len() + self.message.len() + resource.len() + request_id.len(),
        );
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
        for (tag, value) in [
            ("Code", self.code),
            ("Message", self.message.as_str()),
            ("Resource", resource),
            ("RequestId", request_id),
        ] {
            out.push('<');
            out.push_str(tag);
            out.push('>');
            escape_into(&mut out, value);
            out.push_str("</");
            out.push_str(tag);
            out.push('>');
        }
        out.push_str("</Error>");
        out
    }
}

/// Escapes text for an XML element. Messages and resources can echo client
/// input, and XML 1.0 cannot carry most control characters even as
/// character references, so those become U+FFFD rather than breaking the
/// document an SDK has to parse.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for S3Error {}
