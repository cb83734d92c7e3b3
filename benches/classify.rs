//! Phase 1: an HTTP request to an S3 operation, bucket and key. The
//! baseline is what hyper does before the gate sees the request at all:
//! parse the same request target into an `http::Uri`.

#[path = "common/requests.rs"]
mod requests;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gatekeeper::s3::classify;
use http::Uri;
use requests::Shape;

fn bench(c: &mut Criterion) {
    let hosts = requests::hosts();
    let mut group = c.benchmark_group("classify");
    for shape in Shape::ALL {
        let s = requests::sample(shape, "acme-data", "users/2026/0042137.json", "acme-backup");
        classify(&s.method, &s.uri, &s.headers, &hosts).expect("the sample classifies");
        group.bench_function(shape.name(), |b| {
            b.iter(|| classify(&s.method, black_box(&s.uri), &s.headers, &hosts))
        });
        let target = s.uri.to_string();
        group.bench_function(format!("baseline_uri_parse/{}", shape.name()), |b| {
            b.iter(|| black_box(target.as_str()).parse::<Uri>())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
