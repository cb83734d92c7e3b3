//! Rule files as serde reads them, spans kept for messages.
//!
//! Nothing is validated here beyond TOML types: enum-like values stay
//! strings so that `compile` can report every bad one at once, each at its
//! own line and column, instead of serde stopping at the first. Unknown keys
//! are refused here, because a misspelt optional key (`max_categroy`) would
//! otherwise be silently ignored.

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A spanned string: an id, a reference to one, or an enum-like value.
pub type Name = Spanned<String>;

/// One rule file. Any file may hold any table; `compile` merges them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRules {
    pub jurisdiction: Vec<RawJurisdiction>,
    pub region: Vec<RawRegion>,
    pub category: Vec<RawCategory>,
    pub tenant: Vec<RawTenant>,
    pub bucket: Vec<RawBucket>,
    pub classify: Vec<RawClassify>,
    pub network: Vec<RawNetwork>,
    pub peer: Vec<RawPeer>,
    pub basis: Vec<RawBasis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJurisdiction {
    pub id: Name,
    #[serde(default)]
    pub countries: Vec<Name>,
    /// `restricted` (default) or `free`.
    pub export: Option<Name>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub id: Name,
    /// A declared jurisdiction, or a country code listed in none.
    pub jurisdiction: Name,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    pub id: Name,
    pub rank: Spanned<i64>,
    /// `free`, `basis` or `never`.
    pub cross_border: Name,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub id: Name,
    /// Spanned as a whole so that an empty list can be pointed at.
    pub home_regions: Spanned<Vec<Name>>,
    /// Absent: the strictest category, so unclassified data fails closed.
    pub default_category: Option<Name>,
    /// `enforce` or `monitor`; absent: the instance's mode.
    pub mode: Option<Name>,
    pub monitor_until: Option<Spanned<LocalDate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub name: Name,
    pub tenant: Name,
    /// Absent: the bucket lies in the instance's region.
    pub region: Option<Name>,
    pub category: Option<Name>,
    pub max_category: Option<Name>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassify {
    pub bucket: Name,
    pub prefix: Name,
    pub category: Name,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub cidr: Name,
    pub region: Name,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub id: Name,
    pub region: Name,
    /// SHA-256 of the DER certificate, hex.
    pub cert_sha256: Option<Name>,
    pub san: Option<Name>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasis {
    pub id: Name,
    /// A tenant id, or `*` for an unscoped adequacy decision.
    pub tenant: Name,
    pub kind: Name,
    pub from: Name,
    pub to: Spanned<Vec<Name>>,
    /// Category ids, or `["*"]`. Required: a record that silently covered
    /// every category would be the most dangerous default.
    pub categories: Spanned<Vec<Name>>,
    pub recipient: Option<String>,
    pub scope: Option<Name>,
    pub valid_from: Spanned<LocalDate>,
    /// Absent: open-ended (an adequacy decision without an end date).
    pub valid_until: Option<Spanned<LocalDate>>,
    pub revoked_on: Option<Spanned<LocalDate>>,
    pub evidence: Option<String>,
}

/// A TOML local date (`2025-01-01`, unquoted). Rule dates are UTC calendar
/// dates, so a time of day or an offset is refused rather than dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDate(pub time::Date);

impl<'de> Deserialize<'de> for LocalDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LocalDate, D::Error> {
        let dt = toml::value::Datetime::deserialize(d)?;
        let (Some(date), None, None) = (dt.date, dt.time, dt.offset) else {
            let message = format!("expected a date like 2025-01-01, found {dt}");
            return Err(serde::de::Error::custom(message));
        };
        time::Month::try_from(date.month)
            .and_then(|m| time::Date::from_calendar_date(i32::from(date.year), m, date.day))
            .map(LocalDate)
            .map_err(|_| serde::de::Error::custom(format!("{date} is not a calendar date")))
    }
}
