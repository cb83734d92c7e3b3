//! The S3 wire protocol: which operation a request is, on which bucket and
//! key, what it names besides (copy source, replication destinations), and
//! the XML errors clients parse. Nothing else in Gatekeeper parses S3.

pub mod error;
pub mod post;
pub mod replication;
pub mod request;

#[cfg(test)]
mod tests;

pub use error::S3Error;
pub use request::{classify, Hosts};

/// Which way object data moves (DESIGN §1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    Egress,
    Ingress,
    Copy,
    Replication,
    Control,
}

impl Direction {
    pub const ALL: [Direction; 5] = [
        Direction::Egress,
        Direction::Ingress,
        Direction::Copy,
        Direction::Replication,
        Direction::Control,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
            Direction::Copy => "copy",
            Direction::Replication => "replication",
            Direction::Control => "control",
        }
    }
}

/// How the bucket was named.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Addressing {
    /// `host/bucket/key`
    Path,
    /// `bucket.domain/key`
    VirtualHost,
}

/// A configuration write that names other buckets, whose body the gate must
/// read (bounded) to find them. The kinds differ only in where the XML keeps
/// the destination bucket.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfigBody {
    Replication,
    Inventory,
    Logging,
    Analytics,
}

/// The closed operation table of DESIGN §3. Every variant has a row in the
/// classification tests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    // egress
    GetObject,
    HeadObject,
    SelectObjectContent,
    GetObjectAttributes,
    GetObjectTorrent,
    GetObjectTagging,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListParts,
    ListMultipartUploads,
    // ingress
    PutObject,
    PostObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    // copy
    CopyObject,
    UploadPartCopy,
    // replication: configuration writes that name another bucket
    PutBucketReplication,
    PutBucketInventoryConfiguration,
    PutBucketLogging,
    PutBucketAnalyticsConfiguration,
    // control
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    DeleteObject,
    DeleteObjects,
    AbortMultipartUpload,
    PutObjectTagging,
    DeleteObjectTagging,
    /// Any other bucket or object configuration read, write or delete that
    /// names no other bucket (versioning, policy, cors, lifecycle, acl, …);
    /// the sub-resource is kept so the record says which.
    BucketConfig(ConfigResource),
    ObjectConfig(ConfigResource),
}

/// Sub-resources the gate knows for configuration that names no other
/// bucket. Anything else is `501 NotImplemented`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ConfigResource {
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
    /// Reads and deletes of the configurations that, written, name another
    /// bucket (replication, inventory, logging, analytics): no data moves.
    Replication,
    Inventory,
    Logging,
    Analytics,
    Notification,
    Restore,
}

impl Op {
    /// Every operation that a name alone tells apart: all but the
    /// configuration reads and writes, which differ by sub-resource.
    pub const PLAIN: [Op; 32] = [
        Op::GetObject,
        Op::HeadObject,
        Op::SelectObjectContent,
        Op::GetObjectAttributes,
        Op::GetObjectTorrent,
        Op::GetObjectTagging,
        Op::ListObjects,
        Op::ListObjectsV2,
        Op::ListObjectVersions,
        Op::ListParts,
        Op::ListMultipartUploads,
        Op::PutObject,
        Op::PostObject,
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::CompleteMultipartUpload,
        Op::CopyObject,
        Op::UploadPartCopy,
        Op::PutBucketReplication,
        Op::PutBucketInventoryConfiguration,
        Op::PutBucketLogging,
        Op::PutBucketAnalyticsConfiguration,
        Op::ListBuckets,
        Op::CreateBucket,
        Op::DeleteBucket,
        Op::HeadBucket,
        Op::GetBucketLocation,
        Op::DeleteObject,
        Op::DeleteObjects,
        Op::AbortMultipartUpload,
        Op::PutObjectTagging,
        Op::DeleteObjectTagging,
    ];

    pub fn direction(self) -> Direction {
        use Op::*;
        match self {
            GetObject | HeadObject | SelectObjectContent | GetObjectAttributes
            | GetObjectTorrent | GetObjectTagging | ListObjects | ListObjectsV2
            | ListObjectVersions | ListParts | ListMultipartUploads => Direction::Egress,
            PutObject
            | PostObject
            | CreateMultipartUpload
            | UploadPart
            | CompleteMultipartUpload => Direction::Ingress,
            CopyObject | UploadPartCopy => Direction::Copy,
            PutBucketReplication
            | PutBucketInventoryConfiguration
            | PutBucketLogging
            | PutBucketAnalyticsConfiguration => Direction::Replication,
            ListBuckets | CreateBucket | DeleteBucket | HeadBucket | GetBucketLocation
            | DeleteObject | DeleteObjects | AbortMultipartUpload | PutObjectTagging
            | DeleteObjectTagging | BucketConfig(_) | ObjectConfig(_) => Direction::Control,
        }
    }

    /// Whether the gate must read the body (bounded) to find the buckets it
    /// names.
    pub fn config_body(self) -> Option<ConfigBody> {
        match self {
            Op::PutBucketReplication => Some(ConfigBody::Replication),
            Op::PutBucketInventoryConfiguration => Some(ConfigBody::Inventory),
            Op::PutBucketLogging => Some(ConfigBody::Logging),
            Op::PutBucketAnalyticsConfiguration => Some(ConfigBody::Analytics),
            _ => None,
        }
    }

    /// Where the gate cannot see the object's own category (DESIGN §3
    /// step 3): the source bucket's `max_category` applies.
    pub fn hides_object_category(self) -> bool {
        matches!(
            self,
            Op::SelectObjectContent | Op::GetObjectAttributes | Op::CopyObject | Op::UploadPartCopy
        ) || self.direction() == Direction::Replication
    }

    /// Whether the client writes object data whose category it may declare.
    pub fn is_write(self) -> bool {
        matches!(self.direction(), Direction::Ingress | Direction::Copy)
    }

    /// Listings decide on every classify prefix overlapping the listed
    /// prefix.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Op::ListObjects | Op::ListObjectsV2 | Op::ListObjectVersions | Op::ListMultipartUploads
        )
    }

    pub fn name(self) -> &'static str {
        use Op::*;
        match self {
            GetObject => "GetObject",
            HeadObject => "HeadObject",
            SelectObjectContent => "SelectObjectContent",
            GetObjectAttributes => "GetObjectAttributes",
            GetObjectTorrent => "GetObjectTorrent",
            GetObjectTagging => "GetObjectTagging",
            ListObjects => "ListObjects",
            ListObjectsV2 => "ListObjectsV2",
            ListObjectVersions => "ListObjectVersions",
            ListParts => "ListParts",
            ListMultipartUploads => "ListMultipartUploads",
            PutObject => "PutObject",
            PostObject => "PostObject",
            CreateMultipartUpload => "CreateMultipartUpload",
            UploadPart => "UploadPart",
            CompleteMultipartUpload => "CompleteMultipartUpload",
            CopyObject => "CopyObject",
            UploadPartCopy => "UploadPartCopy",
            PutBucketReplication => "PutBucketReplication",
            PutBucketInventoryConfiguration => "PutBucketInventoryConfiguration",
            PutBucketLogging => "PutBucketLogging",
            PutBucketAnalyticsConfiguration => "PutBucketAnalyticsConfiguration",
            ListBuckets => "ListBuckets",
            CreateBucket => "CreateBucket",
            DeleteBucket => "DeleteBucket",
            HeadBucket => "HeadBucket",
            GetBucketLocation => "GetBucketLocation",
            DeleteObject => "DeleteObject",
            DeleteObjects => "DeleteObjects",
            AbortMultipartUpload => "AbortMultipartUpload",
            PutObjectTagging => "PutObjectTagging",
            DeleteObjectTagging => "DeleteObjectTagging",
            BucketConfig(_) => "BucketConfiguration",
            ObjectConfig(_) => "ObjectConfiguration",
        }
    }
}

/// `x-amz-copy-source`, decoded once.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// A bucket named by a configuration write (replication destination,
/// inventory/analytics export target, logging target), with the prefix that
/// chooses which objects go there.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Destination {
    pub bucket: String,
    /// The rule's filter prefix; `""` when the rule takes every object.
    pub prefix: String,
}

/// What classification found in one request: everything the decision needs
/// from the S3 protocol, nothing it does not.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct S3Request {
    pub op: Op,
    pub addressing: Option<Addressing>,
    pub bucket: Option<String>,
    /// Percent-decoded once.
    pub key: Option<String>,
    /// The `prefix` parameter of a listing (`""` when absent).
    pub list_prefix: Option<String>,
    pub copy_source: Option<CopySource>,
    /// `x-amz-meta-data-category` from a header or a presigned query; for a
    /// POST upload it is filled in from the form by the pipeline.
    pub declared_category: Option<String>,
    /// Auth is in the query string.
    pub presigned: bool,
}
