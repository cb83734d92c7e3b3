//! GeoIP country lookups (MaxMind DB: GeoIP2/GeoLite2 Country or City, and
//! the flat DB-IP / ip-location-db country schema).
//!
//! The two schemas keep the country in different places, and decoding one
//! with the other's path is not an error: it silently answers "no country",
//! which would turn the gate into one that denies (or, with
//! `geoip.unknown = "allow"`, allows) everything. So the schema is detected
//! once, at load, by probing records, and a database in which neither schema
//! answers is refused rather than served.
//!
//! The requester's location is `country` (where the network is), never
//! `registered_country` (where the block was registered): the two differ for
//! many networks, and only the first says where the data goes.
//!
//! Integrity: at load, every node of the search tree is checked, the tree
//! is walked, and every record it reaches is decoded once, whole and along
//! the country path, so a database that loads cannot fail (or answer
//! garbage) later on the hot path. This is not `Reader::verify`, which is
//! stricter than the format and refuses valid databases (one with an empty
//! `description`, as several writers produce), and which misses damage in
//! nodes no lookup reaches. It all costs about 0.2 s for a 100 MB City-like
//! database, once per load or reload, off the request path.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, Metadata, PathElement, Reader, WithinOptions};
use serde::de::IgnoredAny;

use crate::rules::model::Country;

/// Where a database keeps the country code of a network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Schema {
    /// GeoIP2 / GeoLite2 Country and City (and DB-IP's GeoIP2-compatible
    /// databases): `country.iso_code`.
    MaxMind,
    /// DB-IP / ip-location-db country databases: `country_code` at the top
    /// level of the record.
    Flat,
}

const MAXMIND_PATH: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];
const FLAT_PATH: [PathElement<'static>; 1] = [PathElement::Key("country_code")];

impl Schema {
    /// Tried in this order when probing: a record carrying both is read the
    /// MaxMind way, the schema operators are most likely to deploy.
    const ALL: [Schema; 2] = [Schema::MaxMind, Schema::Flat];

    fn path(self) -> &'static [PathElement<'static>] {
        match self {
            Schema::MaxMind => &MAXMIND_PATH,
            Schema::Flat => &FLAT_PATH,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Schema::MaxMind => "country.iso_code",
            Schema::Flat => "country_code",
        }
    }
}

/// How many records with data the schema probe decodes before it gives up.
/// Real databases answer on the first few; the bound only keeps the refusal
/// of a country-less database (ASN, anonymous-IP, …) cheap.
const PROBE_LIMIT: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot read GeoIP database {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("GeoIP database {origin} is corrupt or not a MaxMind DB: {source}")]
    Corrupt {
        origin: String,
        #[source]
        source: MaxMindDbError,
    },
    #[error(
        "GeoIP database {origin} ({database_type}) gives no country for any of the {sampled} \
         networks sampled: it has neither `country.iso_code` (GeoIP2/GeoLite2 Country or City) \
         nor `country_code` (DB-IP / ip-location-db country)"
    )]
    NoCountry {
        origin: String,
        database_type: String,
        sampled: usize,
    },
}

/// A verified GeoIP database and the schema its countries are read with.
#[derive(Debug)]
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    schema: Schema,
}

impl GeoIp {
    pub fn open(path: impl AsRef<Path>) -> Result<GeoIp, GeoIpError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GeoIpError::Read {
            path: path.to_owned(),
            source,
        })?;
        GeoIp::load(bytes, &path.display().to_string())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoIp, GeoIpError> {
        GeoIp::load(bytes, "(in memory)")
    }

    fn load(bytes: Vec<u8>, origin: &str) -> Result<GeoIp, GeoIpError> {
        let corrupt = |source| GeoIpError::Corrupt {
            origin: origin.to_owned(),
            source,
        };
        let metadata = Reader::from_source(bytes.as_slice())
            .map_err(corrupt)?
            .metadata()
            .clone();
        check_search_tree(&bytes, &metadata).map_err(corrupt)?;
        let reader = Reader::from_source(bytes).map_err(corrupt)?;
        let schema = detect_schema(&reader);
        // Damage is reported as such even when it also hides the country.
        check_every_record(&reader, schema.ok()).map_err(corrupt)?;
        let schema = schema.map_err(|sampled| GeoIpError::NoCountry {
            origin: origin.to_owned(),
            database_type: reader.metadata().database_type.clone(),
            sampled,
        })?;
        Ok(GeoIp { reader, schema })
    }

    /// The country of the network holding `ip`. IPv4-mapped IPv6 addresses
    /// are looked up as IPv4, so a dual-stack listener locates them the same
    /// as plain IPv4 even in databases without the `::ffff:0:0/96` alias.
    pub fn lookup(&self, ip: IpAddr) -> Option<Country> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        // Borrowing the code from the database's bytes keeps the hot path
        // free of allocation; only the two-letter code is decoded.
        let code: &str = found.decode_path(self.schema.path()).ok()??;
        Country::parse(code)
    }

    /// The database's build time, seconds since the Unix epoch (recorded in
    /// every audit record as `geoip_build`).
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The metadata's `database_type`, e.g. `GeoLite2-Country`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub fn schema(&self) -> Schema {
        self.schema
    }
}

/// The schema of the first record with data that yields a country under
/// it, among the first `PROBE_LIMIT`; else how many were sampled.
fn detect_schema(reader: &Reader<Vec<u8>>) -> Result<Schema, usize> {
    let networks = reader
        .networks(WithinOptions::default())
        .into_iter()
        .flatten();
    let mut sampled = 0;
    // An error here (in the walk, or a type mismatch on the other schema's
    // path, say a string `country`) only means no answer: damage is for
    // `check_every_record` to report.
    for network in networks.flatten().take(PROBE_LIMIT) {
        sampled += 1;
        let answers = |schema: &Schema| {
            network
                .decode_path::<&str>(schema.path())
                .is_ok_and(|code| code.and_then(Country::parse).is_some())
        };
        if let Some(schema) = Schema::ALL.into_iter().find(answers) {
            return Ok(schema);
        }
    }
    Err(sampled)
}

/// Reads every record of every search-tree node, reachable or not: none may
/// point back to the root (a loop) or into the 16 zero bytes that separate
/// the tree from the data. The walk below sees only reachable nodes, and a
/// damaged database can hide garbage among unreachable ones.
fn check_search_tree(bytes: &[u8], metadata: &Metadata) -> Result<(), MaxMindDbError> {
    let node_count = metadata.node_count as usize;
    let node_bytes = metadata.record_size as usize / 4;
    // `Reader::from_source` has checked that the tree fits in the file.
    let tree = &bytes[..node_count * node_bytes];
    for (node, b) in tree.chunks_exact(node_bytes).enumerate() {
        let be = |b: &[u8]| b.iter().fold(0_usize, |n, &x| n << 8 | x as usize);
        let (left, right) = match node_bytes {
            6 => (be(&b[..3]), be(&b[3..])),
            7 => (
                (b[3] as usize & 0xf0) << 20 | be(&b[..3]),
                (b[3] as usize & 0x0f) << 24 | be(&b[4..]),
            ),
            _ => (be(&b[..4]), be(&b[4..])),
        };
        for record in [left, right] {
            if record == 0 || (node_count + 1..node_count + 16).contains(&record) {
                return Err(MaxMindDbError::invalid_database(format!(
                    "search-tree node {node} has an invalid record {record} (node count {node_count})"
                )));
            }
        }
    }
    Ok(())
}

/// Walks the whole search tree and decodes every distinct record once, and
/// its country under `schema`: the tree's pointers, the data section's
/// structure and the type of every country are then known good.
fn check_every_record(
    reader: &Reader<Vec<u8>>,
    schema: Option<Schema>,
) -> Result<(), MaxMindDbError> {
    // A tree of n nodes has at most n + 1 leaves; a corrupt one can loop
    // back on itself, so the walk is bounded as `Reader::verify` bounds it.
    let limit = (reader.metadata().node_count as usize).saturating_mul(3);
    let options = WithinOptions::default().include_networks_without_data();
    let mut seen = HashSet::new();
    for (i, network) in reader.networks(options)?.enumerate() {
        if i > limit {
            return Err(MaxMindDbError::invalid_database(format!(
                "search tree has a cycle (over {limit} networks)"
            )));
        }
        let network = network?;
        if network.offset().is_some_and(|offset| seen.insert(offset)) {
            network.decode::<IgnoredAny>()?;
            if let Some(schema) = schema {
                network.decode_path::<&str>(schema.path())?;
            }
        }
    }
    Ok(())
}
