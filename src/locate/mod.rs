//! Where the requester is: mTLS peer → `[[network]]` CIDR → GeoIP country →
//! unknown (DESIGN §2 phase 2), and which address is the client's.

pub mod geoip;

use crate::rules::model::{Country, Jurisdiction, PeerId, RegionId};

/// How a location was found; `Bucket` and `Instance` are the storage side of
/// a transfer (a bucket's own region, or the instance's region for a bucket
/// that names none).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Via {
    Peer,
    Network,
    Geoip,
    Bucket,
    Instance,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Peer => "peer",
            Via::Network => "network",
            Via::Geoip => "geoip",
            Via::Bucket => "bucket",
            Via::Instance => "instance",
        }
    }
}

/// One end of a transfer. An unknown requester has every field `None`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Location {
    pub region: Option<RegionId>,
    pub country: Option<Country>,
    pub jurisdiction: Option<Jurisdiction>,
    pub via: Option<Via>,
    pub peer: Option<PeerId>,
}

impl Location {
    pub const UNKNOWN: Location = Location {
        region: None,
        country: None,
        jurisdiction: None,
        via: None,
        peer: None,
    };
}
