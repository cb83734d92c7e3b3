//! The decision of DESIGN §3: a pure function from the facts of one request
//! and one immutable rule set to a decision, its reason and basis. No I/O,
//! no clock: "today" is one of the facts.

pub mod decide;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use decide::decide;

use time::Date;

use crate::locate::Location;
use crate::rules::model::{BasisId, BucketId, CategoryId, Mode, RegionId, RuleSet, TenantId};
use crate::s3::{Destination, S3Request};

/// Instance settings from `gatekeeper.toml` that the decision needs,
/// resolved against the rule set the snapshot holds.
#[derive(Clone, Copy, Debug)]
pub struct Instance {
    /// The region this gate guards: where a bucket without `region` lies.
    pub region: RegionId,
    /// Mode of tenants that set none.
    pub default_mode: Mode,
    /// `unknown_bucket = "monitor"`.
    pub unknown_bucket_monitor: bool,
    /// `geoip.unknown = "allow"`.
    pub unknown_location_allow: bool,
}

/// Everything one decision is made from.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub request: &'a S3Request,
    /// Buckets named by a configuration write's body (replication,
    /// inventory, logging, analytics), as parsed by `s3::replication`.
    pub destinations: &'a [Destination],
    pub requester: Location,
    /// `x-amz-meta-data-category` of the upstream response (phase 6); `None`
    /// before the response or when absent.
    pub stored_category: Option<&'a str>,
    /// The UTC date of the request's arrival.
    pub today: Date,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Allow,
    Deny,
    /// Would be denied; forwarded because the tenant is in monitor mode (or
    /// `unknown_bucket = "monitor"`).
    MonitorDeny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::MonitorDeny => "monitor-deny",
        }
    }

    /// Whether the request goes on to the upstream.
    pub fn forwards(self) -> bool {
        self != Verdict::Deny
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Reason {
    UnknownBucket,
    ControlOperation,
    /// A declared category unknown to the rules or above the bucket's
    /// `max_category`: `400 InvalidArgument`.
    InvalidCategory,
    ResidencyPin,
    UnknownLocation,
    SameJurisdiction,
    UnrestrictedExport,
    UnrestrictedCategory,
    ForbiddenCategory,
    LegalBasis,
    NoLegalBasis,
    AuditUnavailable,
    /// The request (its body, for what the gate reads) is malformed: `400`.
    BadRequest,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::UnknownBucket,
        Reason::ControlOperation,
        Reason::InvalidCategory,
        Reason::ResidencyPin,
        Reason::UnknownLocation,
        Reason::SameJurisdiction,
        Reason::UnrestrictedExport,
        Reason::UnrestrictedCategory,
        Reason::ForbiddenCategory,
        Reason::LegalBasis,
        Reason::NoLegalBasis,
        Reason::AuditUnavailable,
        Reason::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownBucket => "unknown_bucket",
            Reason::ControlOperation => "control_operation",
            Reason::InvalidCategory => "invalid_category",
            Reason::ResidencyPin => "residency_pin",
            Reason::UnknownLocation => "unknown_location",
            Reason::SameJurisdiction => "same_jurisdiction",
            Reason::UnrestrictedExport => "unrestricted_export",
            Reason::UnrestrictedCategory => "unrestricted_category",
            Reason::ForbiddenCategory => "forbidden_category",
            Reason::LegalBasis => "legal_basis",
            Reason::NoLegalBasis => "no_legal_basis",
            Reason::AuditUnavailable => "audit_unavailable",
            Reason::BadRequest => "bad_request",
        }
    }

    /// The HTTP status of a denial for this reason.
    pub fn deny_status(self) -> u16 {
        match self {
            Reason::InvalidCategory | Reason::BadRequest => 400,
            Reason::AuditUnavailable => 503,
            _ => 403,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CategorySource {
    Classify,
    Bucket,
    TenantDefault,
    Declared,
    Stored,
    MaxCategory,
}

impl CategorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CategorySource::Classify => "classify",
            CategorySource::Bucket => "bucket",
            CategorySource::TenantDefault => "tenant_default",
            CategorySource::Declared => "declared",
            CategorySource::Stored => "stored",
            CategorySource::MaxCategory => "max_category",
        }
    }
}

/// The outcome for one bucket named by a configuration write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationOutcome {
    pub bucket: String,
    pub prefix: String,
    pub tenant: Option<TenantId>,
    pub to: Location,
    pub category: Option<CategoryId>,
    pub verdict: Verdict,
    pub reason: Reason,
    pub basis: Option<BasisId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    pub tenant: Option<TenantId>,
    /// The bucket of the request, if the rules know it.
    pub bucket: Option<BucketId>,
    /// The copy source's bucket, if the rules know it.
    pub source: Option<BucketId>,
    pub category: Option<CategoryId>,
    pub category_source: Option<CategorySource>,
    pub from: Option<Location>,
    pub to: Option<Location>,
    pub basis: Option<BasisId>,
    /// The mode that applied (after the stricter-of-two rule for copies).
    pub mode: Option<Mode>,
    /// One per configuration destination, in body order.
    pub destinations: Vec<DestinationOutcome>,
}

/// The decision on a request refused as malformed before the steps of
/// DESIGN §3 could run: it names the bucket and tenant, if known, and
/// nothing it did not find.
pub fn malformed(rules: &RuleSet, request: &S3Request) -> Decision {
    let bucket = request
        .bucket
        .as_deref()
        .and_then(|b| rules.bucket_by_name(b));
    Decision {
        verdict: Verdict::Deny,
        reason: Reason::BadRequest,
        tenant: bucket.map(|b| rules.bucket(b).tenant),
        bucket,
        source: None,
        category: None,
        category_source: None,
        from: None,
        to: None,
        basis: None,
        mode: None,
        destinations: Vec::new(),
    }
}

/// One numbered step of DESIGN §3 as explain shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceStep {
    pub step: u8,
    pub name: &'static str,
    pub detail: String,
}

/// Collects the steps a decision took. The hot path passes `NoTrace`, whose
/// closures are never called, so tracing costs nothing there.
pub trait Trace {
    fn step(&mut self, step: u8, name: &'static str, detail: impl FnOnce() -> String);
}

pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: u8, _: &'static str, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<TraceStep> {
    fn step(&mut self, step: u8, name: &'static str, detail: impl FnOnce() -> String) {
        self.push(TraceStep {
            step,
            name,
            detail: detail(),
        });
    }
}
