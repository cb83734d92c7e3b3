//! S3 XML error responses.

/// An error the gate answers itself, before or instead of the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    /// The S3 error code SDKs match on (`AccessDenied`, `InvalidArgument`,
    /// `NotImplemented`, …).
    pub code: &'static str,
    pub message: String,
}
