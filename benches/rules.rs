//! The rule set at provider scale (issue 3: compiles in under 2 s; issue 6:
//! resolve + decide on uniformly random buckets, p50 ≤ 200 ns).
//!
//! "Resolve + decide" is `policy::decide` as the pipeline calls it: the
//! bucket → tenant lookup, category, bases and mode are all inside it. Its
//! inputs are made the pipeline's way too (`classify`, `client_ip`,
//! `locate`), but beforehand, so that neither they nor the random draws
//! are timed.

#[path = "common/geo.rs"]
mod geo;
#[path = "common/requests.rs"]
mod requests;
#[path = "common/world.rs"]
mod world;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gatekeeper::locate::{self, Location};
use gatekeeper::policy::{decide, Facts, NoTrace};
use gatekeeper::s3::{classify, S3Request};
use gatekeeper::snapshot::Snapshot;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use requests::Shape;

/// More draws than fit in the CPU caches along with the rule set's
/// indexes, so lookups miss as random traffic makes them.
const DRAWS: usize = 1 << 16;

/// Draws few enough to stay in the L1/L2 caches with what they touch.
const HOT: usize = 64;

/// One request as the decision sees it.
struct Draw {
    shape: Shape,
    request: S3Request,
    requester: Location,
}

impl Draw {
    /// The pipeline's `Facts` for a request with no configuration body,
    /// before the upstream has answered.
    fn facts(&self) -> Facts<'_> {
        Facts {
            request: &self.request,
            destinations: &[],
            requester: self.requester,
            stored_category: None,
            today: world::TODAY,
        }
    }
}

/// Uniformly random buckets, request shapes, keys and clients; a copy's
/// source is another bucket of the same tenant.
fn draws(snap: &Snapshot) -> Vec<Draw> {
    let mut rng = StdRng::seed_from_u64(7);
    let hosts = requests::hosts();
    (0..DRAWS)
        .map(|_| {
            let b = rng.gen_range(0..world::BUCKETS);
            let source =
                b - b % world::BUCKETS_PER_TENANT + rng.gen_range(0..world::BUCKETS_PER_TENANT);
            let prefix = world::KEY_PREFIXES.choose(&mut rng).expect("not empty");
            let key = format!("{prefix}{:07}.json", rng.gen_range(0..10_000_000));
            let shape = *Shape::ALL.choose(&mut rng).expect("not empty");
            let s = requests::sample(
                shape,
                &world::bucket_name(b),
                &key,
                &world::bucket_name(source),
            );
            let request =
                classify(&s.method, &s.uri, &s.headers, &hosts).expect("every sample classifies");
            let (peer, _) = geo::KNOWN.choose(&mut rng).expect("not empty");
            let ip = locate::client_ip(peer.parse().expect("an address"), &s.headers, &[]);
            let requester = locate::locate(&snap.rules, &snap.geoip, None, ip);
            Draw {
                shape,
                request,
                requester,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let started = Instant::now();
    let text = world::generate();
    eprintln!(
        "generated {} MB of rule TOML in {:.2} s",
        text.len() >> 20,
        started.elapsed().as_secs_f64()
    );

    let mut compile = c.benchmark_group("rules");
    compile.sample_size(10);
    compile.bench_function("compile_100k", |b| {
        b.iter_with_large_drop(|| world::compile(&text))
    });
    compile.finish();

    let rules = world::compile(&text);
    eprintln!(
        "rule set: {} tenants, {} buckets, {} bases",
        rules.tables.tenants.len(),
        rules.tables.buckets.len(),
        rules.tables.bases.len()
    );
    let snap = Snapshot::build(rules, Arc::new(geo::city()), &world::instance_settings())
        .expect("the instance's region is defined");
    let draws = draws(&snap);
    let decide_one = |d: &Draw| decide(&snap.rules, &snap.instance, &d.facts(), &mut NoTrace);
    // Baseline: the one hash lookup no decision can do without, keyed the
    // way `RuleSet` keys it.
    let by_name: HashMap<Box<str>, u32> = snap
        .rules
        .tables
        .buckets
        .iter()
        .zip(0..)
        .map(|(b, i)| (Box::from(&*b.name), i))
        .collect();
    let lookup_one = |d: &Draw| {
        by_name
            .get(d.request.bucket.as_deref().expect("a bucket"))
            .copied()
    };

    // The decision's first step alone: the name lookup, which lands on the
    // bucket's `BucketHot` line. What `decide` costs beyond it is the
    // classify run, the route's bases and the steps' own work.
    let resolve_line = |d: &Draw| {
        snap.rules
            .bucket_hot_by_name(d.request.bucket.as_deref().expect("a bucket"))
    };
    let resolve_one = |d: &Draw| resolve_line(d).map(|b| b.tenant().id);

    // The reads a decision makes after the line, each alone and both: the
    // bucket's classify run for the draw's key, and its tenant's bases for
    // the route as an egress would take it (the bucket's jurisdiction to the
    // client's). What they add to `resolve_bucket` says where `decide`'s
    // time goes; the route's reads are the same for every shape.
    let parts = |d: &Draw, classify: bool, route: bool| {
        let b = resolve_line(d)?;
        let here = snap
            .rules
            .region(b.region().unwrap_or(snap.instance.region));
        let to = d.requester.jurisdiction.unwrap_or(here.jurisdiction);
        let bases = route.then(|| {
            b.tenant()
                .bases_for(&snap.rules, here.jurisdiction, to)
                .len()
        });
        let category = (classify.then(|| b.classify(&snap.rules)).flatten())
            .zip(d.request.key.as_deref())
            .and_then(|(index, key)| index.longest(key));
        Some((bases, category.map(|(_, c)| c)))
    };
    let mut reasons: HashMap<&str, usize> = HashMap::new();
    for d in &draws {
        *reasons.entry(decide_one(d).reason.as_str()).or_default() += 1;
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_unstable_by_key(|&(_, n)| std::cmp::Reverse(n));
    eprintln!("reasons drawn: {reasons:?}");
    report("decide", per_call(&draws, decide_one), true);
    report("resolve_bucket", per_call(&draws, resolve_one), false);
    for (what, classify, route) in [
        ("resolve_classify", true, false),
        ("resolve_route", false, true),
        ("resolve_classify_route", true, true),
    ] {
        report(what, per_call(&draws, |d| parts(d, classify, route)), false);
    }
    report(
        "baseline_hashmap_bucket",
        per_call(&draws, lookup_one),
        false,
    );

    let mut group = c.benchmark_group("decide");
    let mut i = 0;
    let mut next = || {
        i += 1;
        &draws[i % DRAWS]
    };
    group.bench_function("random_bucket", |b| b.iter(|| decide_one(next())));
    // The same decisions with everything they touch in cache: what the
    // random ones spend on memory is the difference.
    let mut hot = 0;
    group.bench_function("hot_64_draws", |b| {
        b.iter(|| {
            hot += 1;
            decide_one(&draws[hot % HOT])
        })
    });
    group.bench_function("baseline_hashmap_bucket", |b| b.iter(|| lookup_one(next())));
    group.finish();
}

/// Each call timed on its own, `ROUNDS` times over the draws, less the
/// cost of reading the clock twice (its median): the distribution over
/// single calls, which criterion's per-sample means hide.
fn per_call<T>(draws: &[Draw], call: impl Fn(&Draw) -> T) -> Vec<(Shape, Duration)> {
    const ROUNDS: usize = 4;
    let mut clock: Vec<Duration> = (0..DRAWS * ROUNDS)
        .map(|_| {
            let t = Instant::now();
            t.elapsed()
        })
        .collect();
    let overhead = percentile(&mut clock, 0.5);
    let mut times = Vec::with_capacity(DRAWS * ROUNDS);
    for _ in 0..ROUNDS {
        for d in draws {
            warm(d);
            let t = Instant::now();
            black_box(call(black_box(d)));
            times.push((d.shape, t.elapsed().saturating_sub(overhead)));
        }
    }
    times
}

/// Reads the draw's own request before the clock starts. In the gate,
/// `decide` runs on a request `classify` has just built, so its strings are
/// in the L1 cache; here the 65,536 draws are not, and their misses would
/// be charged to the rule set.
fn warm(d: &Draw) {
    let r = &d.request;
    let strings = [
        r.bucket.as_deref(),
        r.key.as_deref(),
        r.list_prefix.as_deref(),
        r.copy_source.as_ref().map(|s| &*s.bucket),
        r.copy_source.as_ref().map(|s| &*s.key),
    ];
    let sum = strings
        .into_iter()
        .flatten()
        .flat_map(str::bytes)
        .fold(0u8, |a, b| a ^ b);
    black_box(sum);
}

fn report(what: &str, times: Vec<(Shape, Duration)>, by_shape: bool) {
    let ns = |mut t: Vec<Duration>, qs: &[f64]| {
        qs.iter()
            .map(|&q| format!("p{} {} ns", q * 100.0, percentile(&mut t, q).as_nanos()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = times.iter().map(|&(_, t)| t).collect();
    eprintln!(
        "{what} per call ({} calls, clock overhead subtracted): {}",
        times.len(),
        ns(all, &[0.5, 0.9, 0.99, 0.999])
    );
    for shape in Shape::ALL.into_iter().filter(|_| by_shape) {
        let of_shape = times
            .iter()
            .filter(|&&(s, _)| s == shape)
            .map(|&(_, t)| t)
            .collect();
        eprintln!("  {:<14} {}", shape.name(), ns(of_shape, &[0.5, 0.99]));
    }
}

fn percentile(times: &mut [Duration], q: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() - 1) as f64 * q) as usize]
}

criterion_group!(benches, bench);
criterion_main!(benches);
