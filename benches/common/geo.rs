//! The real MaxMind City test database and addresses whose answers
//! geoip/README.md documents, so a bench can check it times real hits.

use gatekeeper::locate::geoip::GeoIp;

/// `(address, country.iso_code)` in GeoIP2-City-Test.mmdb: IPv4, IPv6, an
/// IPv4-mapped IPv6 address (looked up as IPv4), and a miss.
pub const KNOWN: [(&str, Option<&str>); 6] = [
    ("81.2.69.142", Some("GB")),
    ("175.16.199.1", Some("CN")),
    ("2001:218::1", Some("JP")),
    ("2a02:d180::1", Some("DE")),
    ("::ffff:81.2.69.142", Some("GB")),
    ("1.1.1.1", None),
];

pub const CITY_DB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/GeoIP2-City-Test.mmdb");

pub fn city() -> GeoIp {
    GeoIp::open(CITY_DB).expect("the City test database loads")
}
