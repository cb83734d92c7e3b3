//! One request through the pure phases of `Gate::handle`, in its order and
//! with its calls, against the provider-sized rule set: classify →
//! client address → locate → decide → describe → the audit record
//! serialized and chained.
//!
//! Not included, because they need a socket or a running gate: accepting
//! and parsing HTTP (hyper), the request id (`RequestIds::next` is
//! private; a fixed id stands in), metrics, the hand-over to the audit
//! writer thread and its write (see the `audit` bench), and forwarding.

#[path = "common/geo.rs"]
mod geo;
#[path = "common/requests.rs"]
mod requests;
#[path = "common/world.rs"]
mod world;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gatekeeper::audit::chain::Unchained;
use gatekeeper::audit::{ClientIpMode, RecordMut, GENESIS};
use gatekeeper::describe::{self, RecordSettings};
use gatekeeper::locate;
use gatekeeper::policy::{self, Facts, NoTrace, Reason, Verdict};
use gatekeeper::s3::{self, Hosts};
use gatekeeper::snapshot::Snapshot;
use requests::{Sample, Shape};
use time::OffsetDateTime;

const REQUEST_ID: &str = "5f3a9c1e00000004d2a1";

/// What `Gate::handle` reads besides the request: the snapshot, its
/// settings, and the TCP peer.
struct Phases {
    snap: Snapshot,
    settings: RecordSettings,
    hosts: Hosts,
    peer: SocketAddr,
}

impl Phases {
    /// What the gate goes on with: the verdict and reason, and the chained
    /// line's hash.
    fn handle(&self, s: &Sample, line: &mut Vec<u8>) -> (Verdict, Reason, [u8; 64]) {
        let snap = &self.snap;
        let s3req = s3::classify(&s.method, &s.uri, &s.headers, &self.hosts)
            .expect("the sample classifies");
        let client_ip = locate::client_ip(self.peer.ip(), &s.headers, &[]);
        let requester = locate::locate(&snap.rules, &snap.geoip, None, client_ip);
        let arrival = OffsetDateTime::now_utc();
        let facts = Facts {
            request: &s3req,
            destinations: &[],
            requester,
            stored_category: None,
            today: arrival.date(),
        };
        let decision = policy::decide(&snap.rules, &snap.instance, &facts, &mut NoTrace);
        let status = (!decision.verdict.forwards()).then(|| decision.reason.deny_status());
        let record = describe::decision_record(
            &self.settings,
            snap,
            &facts,
            &decision,
            client_ip,
            REQUEST_ID,
            arrival,
            status,
        );
        let mut record = record;
        let unchained = Unchained::new(RecordMut::Decision(&mut record), &self.settings.instance);
        line.clear();
        let hash = unchained.append_line(line, 1, GENESIS);
        (decision.verdict, decision.reason, hash)
    }

    /// The request of this shape on the first tenant's `data` bucket (a
    /// copy: from its `backup` bucket) that a legal basis allows, the
    /// longest path through the decision; failing that, the first allowed.
    fn pick(&self, shape: Shape, key: &str, line: &mut Vec<u8>) -> (Sample, Verdict, Reason) {
        let mut allowed = None;
        for t in 0..world::TENANTS {
            let first = t * world::BUCKETS_PER_TENANT;
            let s = requests::sample(
                shape,
                &world::bucket_name(first),
                key,
                &world::bucket_name(first + 4),
            );
            match self.handle(&s, line) {
                (verdict, Reason::LegalBasis, _) => return (s, verdict, Reason::LegalBasis),
                (Verdict::Allow, reason, _) if allowed.is_none() => {
                    allowed = Some((s, Verdict::Allow, reason))
                }
                _ => {}
            }
        }
        allowed.expect("some tenant is allowed")
    }
}

fn bench(c: &mut Criterion) {
    let rules = world::compile(&world::generate());
    let (client, _) = geo::KNOWN[0];
    let gate = Phases {
        snap: Snapshot::build(rules, Arc::new(geo::city()), &world::instance_settings())
            .expect("the instance's region is defined"),
        // `[audit]` defaults.
        settings: RecordSettings {
            instance: "edge-cn-beijing-6-a".into(),
            client_ip: ClientIpMode::Truncate,
            key_hash: false,
            hmac_key: Vec::new(),
        },
        hosts: requests::hosts(),
        peer: SocketAddr::new(client.parse::<IpAddr>().expect("an address"), 51234),
    };
    let key = format!("{}2026/0042137.json", world::KEY_PREFIXES[1]);

    let mut group = c.benchmark_group("pipeline");
    let mut line = Vec::new();
    for shape in Shape::ALL {
        let (s, verdict, reason) = gate.pick(shape, &key, &mut line);
        // Its own line, for the size.
        gate.handle(&s, &mut line);
        eprintln!(
            "{} {} {}: {} {}, record line {} bytes",
            shape.name(),
            s.method,
            s.uri,
            verdict.as_str(),
            reason.as_str(),
            line.len()
        );
        group.bench_function(shape.name(), |b| b.iter(|| gate.handle(&s, &mut line)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
