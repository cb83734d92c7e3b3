//! Phase 7: a decision record serialized and hash-chained by the code the
//! writer runs (`Unchained::new` in the caller's task, `append_line` in
//! the writer), and the writer's throughput with callers awaiting every
//! decision as the pipeline does (issue 6: ≥ 300,000 records/s with
//! `fsync = batch`).

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gatekeeper::audit::chain::Unchained;
use gatekeeper::audit::{
    start, AuditConfig, AuditHandle, DecisionRecord, Endpoint, FsyncMode, RecordMut, GENESIS,
};
use sha2::{Digest, Sha256};

const INSTANCE: &str = "edge-cn-beijing-6-a";

/// An egress allowed by an SCC, as `describe` fills it: ~500 bytes once
/// serialized without `prev` and `hash`.
fn record() -> DecisionRecord<'static> {
    DecisionRecord {
        ts: "2026-06-01T10:15:00.123Z".into(),
        request_id: "5f3a9c1e00000004d2a1".into(),
        tenant: Some("t04217".into()),
        op: "GetObject".into(),
        direction: "egress".into(),
        bucket: Some("t04217-data".into()),
        key: Some("users/2026/05/0042137.json".into()),
        category: Some("account".into()),
        category_source: Some("classify".into()),
        from: Some(Endpoint {
            region: Some("cn-beijing-6".into()),
            jurisdiction: Some("CN".into()),
            via: Some("bucket".into()),
            ..Endpoint::default()
        }),
        to: Some(Endpoint {
            country: Some("SE".into()),
            jurisdiction: Some("EU".into()),
            via: Some("geoip".into()),
            ..Endpoint::default()
        }),
        client_ip: Some("89.160.20.0/24".into()),
        decision: "allow".into(),
        reason: "legal_basis".into(),
        basis: Some("t04217-b042170".into()),
        basis_kind: Some("scc".into()),
        mode: Some("enforce".into()),
        rules_version: "9c4f0d6e2b7a41c8a3e5f1d09b6c2e7f4a8d3b1c0e9f7a6b5c4d3e2f1a0b9c8d".into(),
        geoip_build: Some(1_735_689_600),
        ..DecisionRecord::default()
    }
}

fn unchained(mut rec: DecisionRecord) -> Unchained {
    Unchained::new(RecordMut::Decision(&mut rec), INSTANCE)
}

fn encode(c: &mut Criterion) {
    let rec = record();
    let chained = unchained(rec.clone());
    let mut line = Vec::new();
    chained.append_line(&mut line, 1, GENESIS);
    // What `append_line` hashes: `prev`, then the line without its `hash`
    // member (the baseline hashes as many bytes).
    let hashed = GENESIS.len() + line.len() - 1 - ",\"hash\":\"\"".len() - 64 + 1;
    eprintln!(
        "decision record: {} bytes as a log line, {hashed} bytes hashed",
        line.len()
    );

    let mut group = c.benchmark_group("audit_record");
    group.bench_function("serialize", |b| {
        b.iter_batched(|| rec.clone(), unchained, BatchSize::SmallInput)
    });
    let mut seq = 1;
    group.bench_function("chain", |b| {
        b.iter(|| {
            line.clear();
            seq += 1;
            chained.append_line(&mut line, seq, GENESIS)
        })
    });
    group.bench_function("serialize_and_chain", |b| {
        b.iter_batched(
            || rec.clone(),
            |rec| {
                line.clear();
                seq += 1;
                unchained(rec).append_line(&mut line, seq, GENESIS)
            },
            BatchSize::SmallInput,
        )
    });
    let raw = vec![b'x'; hashed];
    group.bench_function("baseline_sha256_hex", |b| {
        b.iter(|| hex::encode(Sha256::digest(black_box(&raw))))
    });
    group.finish();
}

/// The decision records in flight at once: requests each awaiting theirs.
const CALLERS: [u64; 2] = [16, 256];

fn writer(c: &mut Criterion) {
    // Two workers as on the 2-core target machine; the writer has its own
    // thread, as in the gate.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let rec = record();
    let mut group = c.benchmark_group("audit_writer");
    group.throughput(Throughput::Elements(1));
    for (mode, fsync) in [("batch", FsyncMode::Batch), ("never", FsyncMode::Never)] {
        for callers in CALLERS {
            // On the disk (not tmpfs), so that fsync costs what it costs.
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary dir");
            let handle = start(AuditConfig {
                dir: dir.path().to_owned(),
                instance: INSTANCE.into(),
                fsync,
                ..AuditConfig::default()
            })
            .expect("the writer starts");
            group.bench_function(format!("fsync_{mode}/callers_{callers}"), |b| {
                b.iter_custom(|records| rt.block_on(send(&handle, &rec, records, callers)))
            });
            rt.block_on(handle.shutdown());
            let stats = handle.stats();
            let (records, writes) = (
                stats.records_total.load(Relaxed),
                stats.writes_total.load(Relaxed),
            );
            eprintln!(
                "  {records} records in {writes} writes ({} per write), {} fsyncs",
                records / writes.max(1),
                stats.fsyncs_total.load(Relaxed)
            );
        }
    }
    group.finish();
}

/// `records` decisions from `callers` tasks, each awaiting its answer
/// before the next, as a request does; a clone of the record stands in
/// for `describe` building it.
async fn send(
    handle: &AuditHandle,
    rec: &DecisionRecord<'static>,
    records: u64,
    callers: u64,
) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|t| {
            let handle = handle.clone();
            let rec = rec.clone();
            let n = records / callers + u64::from(t < records % callers);
            tokio::spawn(async move {
                for _ in 0..n {
                    handle.decision(rec.clone()).await.expect("written");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the caller finishes");
    }
    started.elapsed()
}

criterion_group!(benches, encode, writer);
criterion_main!(benches);
