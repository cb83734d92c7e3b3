use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

use super::geoip::{GeoIp, GeoIpError, Schema};
use super::*;
use crate::rules::model::{JurisdictionDef, Network, Peer, Region, Tables};

fn db(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("geoip")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn country(geoip: &GeoIp, addr: &str) -> Option<String> {
    geoip.lookup(ip(addr)).map(|c| c.as_str().to_owned())
}

/// File, `database_type`, and the addresses of `KNOWN` that the file has
/// no record for (the answers in geoip/README.md are those of
/// GeoIP2-Country-Test; the other test databases hold fewer networks).
const MAXMIND_DBS: [(&str, &str, &[&str]); 4] = [
    ("GeoIP2-Country-Test.mmdb", "GeoIP2-Country", &[]),
    (
        "GeoIP2-City-Test.mmdb",
        "GeoIP2-City",
        &["74.209.24.1", "111.235.160.5"],
    ),
    (
        "GeoLite2-Country-Test.mmdb",
        "GeoLite2-Country",
        &["74.209.24.1", "175.16.199.1"],
    ),
    (
        "GeoLite2-City-Test.mmdb",
        "GeoLite2-City",
        &["74.209.24.1", "111.235.160.5"],
    ),
];

/// geoip/README.md: `country.iso_code`. `registered_country` differs for
/// the first four and 67.43.156.1, and must never be the answer.
const KNOWN: [(&str, Option<&str>); 17] = [
    ("81.2.69.142", Some("GB")),
    ("2.125.160.216", Some("GB")),
    ("89.160.20.112", Some("SE")),
    ("216.160.83.56", Some("US")),
    ("74.209.24.1", Some("US")),
    ("175.16.199.1", Some("CN")),
    ("111.235.160.5", Some("CN")),
    ("202.196.224.1", Some("PH")),
    ("67.43.156.1", Some("BT")),
    ("2001:2e0::1", Some("HK")),
    ("2001:218::1", Some("JP")),
    ("2a02:d180::1", Some("DE")),
    ("214.1.1.1", None),
    ("1.1.1.1", None),
    ("10.0.0.1", None),
    ("127.0.0.1", None),
    ("::1", None),
];

#[test]
fn every_maxmind_flavour_gives_the_known_countries() {
    for (file, database_type, absent) in MAXMIND_DBS {
        let geoip = GeoIp::open(db(file)).unwrap();
        assert_eq!(geoip.database_type(), database_type);
        assert_eq!(geoip.schema(), Schema::MaxMind, "{file}");
        assert!(geoip.build_epoch() > 1_400_000_000, "{file}");
        for (addr, known) in KNOWN {
            let want = known.filter(|_| !absent.contains(&addr));
            assert_eq!(country(&geoip, addr).as_deref(), want, "{file} {addr}");
        }
    }
}

#[test]
fn ipv4_mapped_addresses_are_looked_up_as_ipv4() {
    let geoip = GeoIp::open(db("GeoIP2-Country-Test.mmdb")).unwrap();
    assert_eq!(country(&geoip, "::ffff:81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(
        country(&geoip, "::ffff:175.16.199.1").as_deref(),
        Some("CN")
    );
    assert_eq!(country(&geoip, "::ffff:214.1.1.1"), None);
}

#[test]
fn corrupt_databases_are_refused() {
    for file in [
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
        "libmaxminddb-corrupt-search-tree.mmdb",
    ] {
        let err = GeoIp::open(db(file)).unwrap_err();
        assert!(matches!(err, GeoIpError::Corrupt { .. }), "{file}: {err}");
        assert!(err.to_string().contains(file), "{err}");
    }
    let truncated = std::fs::read(db("GeoIP2-Country-Test.mmdb")).unwrap()[..4000].to_vec();
    assert!(matches!(
        GeoIp::from_bytes(truncated),
        Err(GeoIpError::Corrupt { .. })
    ));
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = GeoIp::open(db("no-such.mmdb")).unwrap_err();
    assert!(matches!(err, GeoIpError::Read { .. }), "{err}");
}

/// A fixed build time, so the fixtures are byte-identical on every run.
const FIXTURE_EPOCH: u64 = 1_700_000_000;

fn fixture(database_type: &str, ip_version: IpVersion, records: &[(&str, Value)]) -> Vec<u8> {
    let mut writer = Writer::builder(database_type)
        .ip_version(ip_version)
        .build_epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_EPOCH))
        .build();
    for (net, value) in records {
        writer
            .insert_value(net.parse::<IpNet>().unwrap(), value.clone())
            .unwrap();
    }
    writer.to_bytes().unwrap()
}

/// The ip-location-db / DB-IP country layout: a flat map per network.
fn flat_country_db(ip_version: IpVersion) -> Vec<u8> {
    let flat = |code: &str| Value::map([("country_code", Value::from(code))]);
    let mut records = vec![
        ("81.2.69.0/24", flat("GB")),
        ("175.16.199.0/24", flat("CN")),
        // A record without a country, like 214.1.1.1 in MaxMind's data.
        (
            "214.1.1.0/24",
            Value::map([("note", Value::from("no country"))]),
        ),
    ];
    if ip_version == IpVersion::V6 {
        records.push(("2001:218::/32", flat("JP")));
    }
    fixture("ip-location-db-country", ip_version, &records)
}

#[test]
fn the_flat_schema_is_detected_and_read() {
    let bytes = flat_country_db(IpVersion::V6);
    assert_eq!(
        bytes,
        flat_country_db(IpVersion::V6),
        "fixture must be reproducible"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.mmdb");
    std::fs::write(&path, &bytes).unwrap();

    let geoip = GeoIp::open(&path).unwrap();
    assert_eq!(geoip.schema(), Schema::Flat);
    assert_eq!(geoip.database_type(), "ip-location-db-country");
    assert_eq!(geoip.build_epoch(), FIXTURE_EPOCH);
    assert_eq!(country(&geoip, "81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(
        country(&geoip, "::ffff:175.16.199.1").as_deref(),
        Some("CN")
    );
    assert_eq!(country(&geoip, "2001:218::1").as_deref(), Some("JP"));
    assert_eq!(country(&geoip, "214.1.1.1"), None);
    assert_eq!(country(&geoip, "1.1.1.1"), None);
}

#[test]
fn an_ipv4_only_database_answers_no_country_for_ipv6() {
    let geoip = GeoIp::from_bytes(flat_country_db(IpVersion::V4)).unwrap();
    assert_eq!(country(&geoip, "81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(country(&geoip, "::ffff:81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(country(&geoip, "2001:218::1"), None);
}

#[test]
fn a_database_that_answers_no_country_is_refused() {
    // An ASN database is a valid MaxMind DB with no country anywhere; so is
    // one keyed by `registered_country` alone.
    let asn = fixture(
        "GeoLite2-ASN",
        IpVersion::V6,
        &[(
            "1.0.0.0/24",
            Value::map([("autonomous_system_number", Value::from(13335_u32))]),
        )],
    );
    let registered_only = fixture(
        "Registered-Only",
        IpVersion::V6,
        &[(
            "81.2.69.0/24",
            Value::map([(
                "registered_country",
                Value::map([("iso_code", Value::from("US"))]),
            )]),
        )],
    );
    for bytes in [asn, registered_only] {
        let err = GeoIp::from_bytes(bytes).unwrap_err();
        assert!(
            matches!(err, GeoIpError::NoCountry { sampled: 1, .. }),
            "{err}"
        );
    }
}

#[test]
fn a_country_of_the_wrong_type_is_refused() {
    let bytes = fixture(
        "ip-location-db-country",
        IpVersion::V6,
        &[
            (
                "81.2.69.0/24",
                Value::map([("country_code", Value::from("GB"))]),
            ),
            (
                "175.16.199.0/24",
                Value::map([("country_code", Value::from(86_u32))]),
            ),
        ],
    );
    let err = GeoIp::from_bytes(bytes).unwrap_err();
    assert!(matches!(err, GeoIpError::Corrupt { .. }), "{err}");
}

/// EU = {SE, DE}, CN; regions cn-beijing-6 (CN) and eu-stockholm-1 (EU);
/// 10.20.0.0/16 is cn-beijing-6; peer sg-replicator is in eu-stockholm-1.
fn rules() -> RuleSet {
    let country = |c: &str| Country::parse(c).unwrap();
    let tables = Tables {
        jurisdictions: vec![
            JurisdictionDef {
                id: "EU".into(),
                countries: vec![country("SE"), country("DE")],
                export_free: false,
            },
            JurisdictionDef {
                id: "CN".into(),
                countries: vec![country("CN")],
                export_free: false,
            },
        ],
        regions: vec![
            Region {
                id: "cn-beijing-6".into(),
                jurisdiction: Jurisdiction(1),
            },
            Region {
                id: "eu-stockholm-1".into(),
                jurisdiction: Jurisdiction(0),
            },
        ],
        networks: vec![Network {
            cidr: "10.20.0.0/16".parse().unwrap(),
            region: RegionId(0),
        }],
        peers: vec![Peer {
            id: "sg-replicator".into(),
            region: RegionId(1),
            cert_sha256: None,
            san: Some("replicator.example".into()),
        }],
        ..Tables::default()
    };
    RuleSet::new(tables, "test".into())
}

#[test]
fn locate_prefers_peer_then_network_then_geoip() {
    let rules = rules();
    let geoip = GeoIp::open(db("GeoLite2-City-Test.mmdb")).unwrap();
    let peer = rules.peer_by_id("sg-replicator");

    let by_peer = locate(&rules, &geoip, peer, ip("10.20.1.1"));
    assert_eq!(
        by_peer,
        Location {
            region: Some(RegionId(1)),
            country: None,
            jurisdiction: Some(Jurisdiction(0)),
            via: Some(Via::Peer),
            peer,
        }
    );

    for addr in ["10.20.1.1", "::ffff:10.20.255.255"] {
        let by_network = locate(&rules, &geoip, None, ip(addr));
        assert_eq!(
            by_network,
            Location {
                region: Some(RegionId(0)),
                country: None,
                jurisdiction: Some(Jurisdiction(1)),
                via: Some(Via::Network),
                peer: None,
            },
            "{addr}"
        );
    }

    let sweden = locate(&rules, &geoip, None, ip("89.160.20.112"));
    assert_eq!(
        sweden,
        Location {
            region: None,
            country: Country::parse("SE"),
            jurisdiction: Some(Jurisdiction(0)),
            via: Some(Via::Geoip),
            peer: None,
        }
    );
    // A country no rule names is its own jurisdiction.
    let britain = locate(&rules, &geoip, None, ip("81.2.69.142"));
    assert_eq!(
        britain.jurisdiction,
        Some(Jurisdiction::own_country(Country::parse("GB").unwrap()))
    );
    assert_eq!(rules.jurisdiction_name(britain.jurisdiction.unwrap()), "GB");

    for addr in ["1.1.1.1", "214.1.1.1", "10.21.0.1"] {
        assert_eq!(
            locate(&rules, &geoip, None, ip(addr)),
            Location::UNKNOWN,
            "{addr}"
        );
    }
}

fn xff(lines: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
    }
    headers
}

fn proxies() -> Vec<IpNet> {
    vec![
        "10.0.0.5/32".parse().unwrap(),
        "192.168.0.0/16".parse().unwrap(),
    ]
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
    let headers = xff(&["81.2.69.142"]);
    assert_eq!(
        client_ip(ip("203.0.113.9"), &headers, &proxies()),
        ip("203.0.113.9")
    );
    // Nothing is trusted by default.
    assert_eq!(client_ip(ip("10.0.0.5"), &headers, &[]), ip("10.0.0.5"));
    assert_eq!(
        client_ip(ip("::ffff:203.0.113.9"), &headers, &[]),
        ip("203.0.113.9")
    );
}

#[test]
fn a_trusted_peer_yields_the_rightmost_untrusted_entry() {
    let p = proxies();
    let from = |peer: &str, lines: &[&str]| client_ip(ip(peer), &xff(lines), &p);
    // The client forged the left-most entry; the proxies appended the rest.
    assert_eq!(
        from("10.0.0.5", &["1.2.3.4, 81.2.69.142, 192.168.1.1"]),
        ip("81.2.69.142")
    );
    // Header lines are joined in order: the last line holds the nearest hop.
    assert_eq!(
        from("10.0.0.5", &["1.2.3.4, 81.2.69.142", "192.168.1.1"]),
        ip("81.2.69.142")
    );
    assert_eq!(from("10.0.0.5", &["81.2.69.142", "1.2.3.4"]), ip("1.2.3.4"));
    // A mapped peer still matches an IPv4 proxy range; entries normalise.
    assert_eq!(
        from("::ffff:10.0.0.5", &["::ffff:81.2.69.142"]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from("10.0.0.5", &["2001:db8::1 , 192.168.7.7"]),
        ip("2001:db8::1")
    );
    // Ports, as some load balancers add them.
    assert_eq!(from("10.0.0.5", &["81.2.69.142:5123"]), ip("81.2.69.142"));
    assert_eq!(from("10.0.0.5", &["[2001:db8::1]:443"]), ip("2001:db8::1"));
    // No header: the peer itself.
    assert_eq!(from("10.0.0.5", &[]), ip("10.0.0.5"));
    // Every entry a trusted proxy: the left-most, the last hop known.
    assert_eq!(
        from("10.0.0.5", &["192.168.1.2, 192.168.1.1"]),
        ip("192.168.1.2")
    );
}

#[test]
fn a_malformed_entry_stops_at_the_last_trusted_hop() {
    let p = proxies();
    let from = |lines: &[&str]| client_ip(ip("10.0.0.5"), &xff(lines), &p);
    assert_eq!(from(&["81.2.69.142, garbage"]), ip("10.0.0.5"));
    assert_eq!(
        from(&["81.2.69.142, unknown, 192.168.1.1"]),
        ip("192.168.1.1")
    );
    assert_eq!(from(&["81.2.69.142,,192.168.1.1"]), ip("192.168.1.1"));
    assert_eq!(from(&["81.2.69.142", ""]), ip("10.0.0.5"));
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", HeaderValue::from_static("81.2.69.142"));
    headers.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
    assert_eq!(client_ip(ip("10.0.0.5"), &headers, &p), ip("10.0.0.5"));
}

fn forwarded(lines: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append("forwarded", HeaderValue::from_str(line).unwrap());
    }
    headers
}

/// `client_ip` behind proxies that write `Forwarded`.
fn via_forwarded(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = proxies();
    let proxies = Proxies {
        trusted: &trusted,
        header: ForwardedHeader::Forwarded,
    };
    client_ip_via(peer, headers, proxies)
}

#[test]
fn forwarded_yields_the_rightmost_untrusted_for() {
    let from = |peer: &str, lines: &[&str]| via_forwarded(ip(peer), &forwarded(lines));
    assert_eq!(
        from(
            "10.0.0.5",
            &["for=1.2.3.4, for=81.2.69.142;proto=https, for=192.168.1.1;by=10.0.0.5"]
        ),
        ip("81.2.69.142")
    );
    // Lines join in order; parameter names are case-insensitive and the
    // pair order free.
    assert_eq!(
        from("10.0.0.5", &["for=1.2.3.4", "proto=http;For=81.2.69.142"]),
        ip("81.2.69.142")
    );
    // Quoted forms, as RFC 7239 requires for IPv6 and for ports.
    assert_eq!(
        from("10.0.0.5", &[r#"for="[2001:db8:cafe::17]:4711""#]),
        ip("2001:db8:cafe::17")
    );
    assert_eq!(
        from("10.0.0.5", &[r#"for="[2001:db8:cafe::17]""#]),
        ip("2001:db8:cafe::17")
    );
    assert_eq!(
        from("10.0.0.5", &[r#"for="81.2.69.142:47011""#]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from("10.0.0.5", &[r#"for="81.2.69.142:_port""#]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from("10.0.0.5", &[r#"for="\8\1.2.69.142""#]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from("10.0.0.5", &[r#"for="[::ffff:81.2.69.142]""#]),
        ip("81.2.69.142")
    );
    // Whitespace around list and pair separators.
    assert_eq!(
        from(
            "10.0.0.5",
            &["for=1.2.3.4 ,\tfor=81.2.69.142 ; proto=https"]
        ),
        ip("81.2.69.142")
    );
    // Every hop trusted: the left-most; no header: the peer.
    assert_eq!(
        from("10.0.0.5", &["for=192.168.1.2, for=192.168.1.1"]),
        ip("192.168.1.2")
    );
    assert_eq!(from("10.0.0.5", &[]), ip("10.0.0.5"));
    // From an untrusted peer nothing is believed.
    assert_eq!(from("203.0.113.9", &["for=81.2.69.142"]), ip("203.0.113.9"));
}

#[test]
fn forwarded_stops_at_hops_that_name_no_address() {
    let from = |lines: &[&str]| via_forwarded(ip("10.0.0.5"), &forwarded(lines));
    for hidden in [
        "for=unknown",
        "for=UNKNOWN",
        "for=_hidden",
        r#"for="_gazonk""#,
        "by=10.0.0.5;proto=https",
        "",
        "for=81.2.69.142;for=1.2.3.4",
        "for=2001:db8::1",
        "for=[2001:db8::1]",
        r#"for="2001:db8::1""#,
        "for=81.2.69.142:80",
        r#"for="81.2.69.142:""#,
        r#"for="81.2.69.142:123456""#,
        r#"for="[2001:db8::1]x""#,
        "for=81.2.69.142 junk",
        "for = 81.2.69.142",
        r#"for="81.2.69.142"x"#,
        r#"for="81.2.69.142"#,
        "for=example.com",
        r#"for=81.2.69.142;proto="https"#,
    ] {
        assert_eq!(
            from(&[&format!("for=1.2.3.4, {hidden}, for=192.168.1.1")]),
            ip("192.168.1.1"),
            "{hidden:?}"
        );
    }
    assert_eq!(from(&["for=81.2.69.142", "for=unknown"]), ip("10.0.0.5"));
}

#[test]
fn a_forged_forwarded_cannot_hide_the_proxys_entry() {
    let from = |lines: &[&str]| via_forwarded(ip("10.0.0.5"), &forwarded(lines));
    // A client opens a quote (or escapes one) that a left-to-right reading
    // would take the proxy's appended element into.
    assert_eq!(
        from(&[r#"for="1.2.3.4, for=81.2.69.142"#]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from(&[r#"for="1.2.3.4\", for=81.2.69.142"#]),
        ip("81.2.69.142")
    );
    // A quoted comma belongs to its element.
    assert_eq!(
        from(&[r#"for=81.2.69.142;x="a,b", for=192.168.1.1"#]),
        ip("81.2.69.142")
    );
    assert_eq!(
        from(&[r#"for=81.2.69.142;x="a\"b,c", for=192.168.1.1"#]),
        ip("81.2.69.142")
    );
}

#[test]
fn only_the_configured_header_is_read() {
    let mut headers = xff(&["1.2.3.4"]);
    headers.append("forwarded", HeaderValue::from_static("for=81.2.69.142"));
    let peer = ip("10.0.0.5");
    assert_eq!(client_ip(peer, &headers, &proxies()), ip("1.2.3.4"));
    assert_eq!(via_forwarded(peer, &headers), ip("81.2.69.142"));
    // A proxy that writes one header passes the other on untouched: a
    // client's own is never read in its place.
    assert_eq!(
        client_ip(peer, &forwarded(&["for=81.2.69.142"]), &proxies()),
        peer
    );
    assert_eq!(via_forwarded(peer, &xff(&["1.2.3.4"])), peer);
}
