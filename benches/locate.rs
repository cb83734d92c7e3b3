//! Phase 2: where the requester is, on the real GeoIP2 City test database
//! and the example rule set in rules/ (whose rules/local.toml puts
//! loopback in a `[[network]]`). The baseline decodes the whole City
//! record with maxminddb, as an integration that wants "the country" often
//! does; the gate decodes only `country.iso_code`.

#[path = "common/geo.rs"]
mod geo;

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use gatekeeper::locate::{locate, Via};
use gatekeeper::rules::compile::load_dir;
use maxminddb::{geoip2, Reader};
use time::OffsetDateTime;

fn bench(c: &mut Criterion) {
    let geoip = geo::city();
    let today = OffsetDateTime::now_utc().date();
    let rules = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"), today)
        .expect("the example rules compile")
        .rules;
    let full = Reader::open_readfile(geo::CITY_DB).expect("the City test database opens");

    let mut group = c.benchmark_group("locate");
    for (addr, country) in geo::KNOWN {
        let ip: IpAddr = addr.parse().expect("an address");
        let found = geoip.lookup(ip);
        assert_eq!(found.as_ref().map(|c| c.as_str()), country, "{addr}");
        group.bench_function(format!("geoip_lookup/{addr}"), |b| {
            b.iter(|| geoip.lookup(black_box(ip)))
        });
        group.bench_function(format!("locate/{addr}"), |b| {
            b.iter(|| locate(&rules, &geoip, None, black_box(ip)))
        });
        if country.is_some() {
            group.bench_function(format!("baseline_full_city_record/{addr}"), |b| {
                b.iter(|| {
                    full.lookup(black_box(ip).to_canonical())
                        .and_then(|r| r.decode::<geoip2::City>())
                        .map(|city| city.and_then(|c| c.country.iso_code))
                })
            });
        }
    }
    let loopback: IpAddr = "127.0.0.1".parse().expect("an address");
    assert_eq!(
        locate(&rules, &geoip, None, loopback).via,
        Some(Via::Network)
    );
    group.bench_function("locate/network/127.0.0.1", |b| {
        b.iter(|| locate(&rules, &geoip, None, black_box(loopback)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
