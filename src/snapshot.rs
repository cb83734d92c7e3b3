//! One immutable snapshot of everything a request is decided against: the
//! rules, the GeoIP reader and the instance settings resolved against those
//! rules. A request loads it once (`arc-swap`); a reload stores a new one
//! and never touches a request in flight.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::locate::geoip::GeoIp;
use crate::policy::Instance;
use crate::rules::model::{Mode, RuleSet};

pub struct Snapshot {
    pub rules: RuleSet,
    pub geoip: Arc<GeoIp>,
    pub instance: Instance,
    pub loaded_at: OffsetDateTime,
}

/// The instance settings of `gatekeeper.toml` before they are resolved
/// against a rule set (a reload may bring a rule set without the region).
#[derive(Clone, Debug)]
pub struct InstanceSettings {
    pub region: String,
    pub default_mode: Mode,
    pub unknown_bucket_monitor: bool,
    pub unknown_location_allow: bool,
}

impl Snapshot {
    pub fn build(
        rules: RuleSet,
        geoip: Arc<GeoIp>,
        settings: &InstanceSettings,
    ) -> Result<Snapshot, String> {
        let region = rules.region_by_id(&settings.region).ok_or_else(|| {
            format!(
                "the instance's region {:?} is not defined by any [[region]] rule",
                settings.region
            )
        })?;
        Ok(Snapshot {
            instance: Instance {
                region,
                default_mode: settings.default_mode,
                unknown_bucket_monitor: settings.unknown_bucket_monitor,
                unknown_location_allow: settings.unknown_location_allow,
            },
            rules,
            geoip,
            loaded_at: OffsetDateTime::now_utc(),
        })
    }
}
