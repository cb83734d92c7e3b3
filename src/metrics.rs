//! Prometheus metrics (DESIGN §7). Label values are bounded: directions,
//! decisions and reasons are closed sets, jurisdictions come from the rules
//! (or two-letter country codes), error kinds are a closed set.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use crate::audit::archive::ArchiveStats;
use crate::audit::{AuditHandle, WRITE_LATENCY_BOUNDS};
use crate::policy::{Reason, Verdict};
use crate::s3::Direction;

const VERDICTS: [Verdict; 3] = [Verdict::Allow, Verdict::Deny, Verdict::MonitorDeny];

thread_local! {
    /// The children of the two per-pair vectors that requests on this
    /// thread have counted on. Prometheus keeps a vector's children behind
    /// an `RwLock` whose count every request on every core would bump;
    /// here a request finds its child without touching anything shared.
    /// Keyed by the label text, not by jurisdiction ids, which a reload
    /// may renumber. One entry per child a thread has used; the entries
    /// of a dropped registry stay, which only tests do.
    static PAIRS: RefCell<hashbrown::HashMap<PairKey, IntCounter>> = RefCell::default();
}

enum Pair {
    Transfer(Verdict),
    Bytes(Direction),
}

#[derive(Hash, PartialEq, Eq)]
struct PairKey {
    metrics: u64,
    /// The vector and its third label: a verdict's index, or
    /// `VERDICTS.len()` plus a direction's.
    series: usize,
    from: Box<str>,
    to: Box<str>,
}

/// A [`PairKey`] to look up without allocating; it hashes the same (`str`
/// hashes alike whether boxed or borrowed).
#[derive(Hash)]
struct PairRef<'a> {
    metrics: u64,
    series: usize,
    from: &'a str,
    to: &'a str,
}

impl hashbrown::Equivalent<PairKey> for PairRef<'_> {
    fn equivalent(&self, key: &PairKey) -> bool {
        self.metrics == key.metrics
            && self.series == key.series
            && self.from == &*key.from
            && self.to == &*key.to
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Pre-resolved children of `gatekeeper_requests_total`, indexed by
    /// (direction, verdict, reason), so the hot path takes no lock.
    requests: Vec<IntCounter>,
    /// Tells this registry's children apart in [`PAIRS`], whatever other
    /// `Metrics` the process holds (tests run many gates).
    id: u64,
    transfers: IntCounterVec,
    transfer_bytes: IntCounterVec,
    pub request_duration: Histogram,
    pub decision_duration: Histogram,
    pub upstream_errors: IntCounterVec,
    pub rules_reloads: IntCounterVec,
    pub tls_reloads: IntCounterVec,
    pub admin_token_reloads: IntCounterVec,
    pub rules_info: IntGaugeVec,
    pub refused: IntCounterVec,
}

/// Reloads of a watched file by `result`, both series exported from the
/// start so that a scrape can tell "no failure" from "no series".
fn file_reloads(name: &str, help: &str) -> IntCounterVec {
    let reloads = IntCounterVec::new(Opts::new(name, help), &["result"]).expect("metric");
    for result in ["ok", "error"] {
        reloads.with_label_values(&[result]);
    }
    reloads
}

fn direction_index(d: Direction) -> usize {
    Direction::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

fn verdict_index(v: Verdict) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(0)
}

fn reason_index(r: Reason) -> usize {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "gatekeeper_requests_total",
                "Requests decided, by direction, decision and reason.",
            ),
            &["direction", "decision", "reason"],
        )
        .expect("metric");
        let mut requests = Vec::new();
        for d in Direction::ALL {
            for v in VERDICTS {
                for r in Reason::ALL {
                    requests.push(requests_vec.with_label_values(&[
                        d.as_str(),
                        v.as_str(),
                        r.as_str(),
                    ]));
                }
            }
        }
        let transfers = IntCounterVec::new(
            Opts::new(
                "gatekeeper_transfers_total",
                "Transfers between jurisdictions, by decision.",
            ),
            &["from", "to", "decision"],
        )
        .expect("metric");
        let transfer_bytes = IntCounterVec::new(
            Opts::new(
                "gatekeeper_transfer_bytes_total",
                "Object bytes moved between jurisdictions.",
            ),
            &["from", "to", "direction"],
        )
        .expect("metric");
        let request_duration = Histogram::with_opts(
            HistogramOpts::new(
                "gatekeeper_request_duration_seconds",
                "Whole request time, to the last body byte.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.5, 14).expect("buckets")),
        )
        .expect("metric");
        let decision_duration = Histogram::with_opts(
            HistogramOpts::new(
                "gatekeeper_decision_duration_seconds",
                "Time from request head to decision.",
            )
            .buckets(prometheus::exponential_buckets(0.000_001, 4.0, 12).expect("buckets")),
        )
        .expect("metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "gatekeeper_upstream_errors_total",
                "Upstream failures, by kind.",
            ),
            &["kind"],
        )
        .expect("metric");
        let rules_reloads = IntCounterVec::new(
            Opts::new("gatekeeper_rules_reloads_total", "Rule reloads, by result."),
            &["result"],
        )
        .expect("metric");
        let tls_reloads = file_reloads(
            "gatekeeper_tls_reloads_total",
            "TLS certificate reloads after a file changed, by result.",
        );
        let admin_token_reloads = file_reloads(
            "gatekeeper_admin_token_reloads_total",
            "Admin token reloads after admin.token_file changed, by result.",
        );
        let rules_info = IntGaugeVec::new(
            Opts::new(
                "gatekeeper_rules_info",
                "The rule set in force (value 1), by version hash.",
            ),
            &["version"],
        )
        .expect("metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "gatekeeper_refused_requests_total",
                "Requests refused before a decision (malformed, unknown operation), by status.",
            ),
            &["status"],
        )
        .expect("metric");
        for c in [
            Box::new(requests_vec) as Box<dyn prometheus::core::Collector>,
            Box::new(transfers.clone()),
            Box::new(transfer_bytes.clone()),
            Box::new(request_duration.clone()),
            Box::new(decision_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(rules_reloads.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(admin_token_reloads.clone()),
            Box::new(rules_info.clone()),
            Box::new(refused.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        static IDS: AtomicU64 = AtomicU64::new(0);
        Metrics {
            registry,
            requests,
            id: IDS.fetch_add(1, Relaxed),
            transfers,
            transfer_bytes,
            request_duration,
            decision_duration,
            upstream_errors,
            rules_reloads,
            tls_reloads,
            admin_token_reloads,
            rules_info,
            refused,
        }
    }

    pub fn request(&self, d: Direction, v: Verdict, r: Reason) {
        let i = (direction_index(d) * VERDICTS.len() + verdict_index(v)) * Reason::ALL.len()
            + reason_index(r);
        self.requests[i].inc();
    }

    /// Counts a request between two jurisdictions.
    pub fn transfer(&self, from: &str, to: &str, v: Verdict) {
        self.pair(Pair::Transfer(v), from, to, IntCounter::inc);
    }

    /// The series that counts the object bytes a request moves from one
    /// jurisdiction to another.
    pub fn transfer_bytes(&self, from: &str, to: &str, d: Direction) -> IntCounter {
        self.pair(Pair::Bytes(d), from, to, IntCounter::clone)
    }

    /// Finds the (from, to, word) child in this thread's [`PAIRS`], asking
    /// prometheus only the first time, and hands it to `f`.
    fn pair<T>(&self, pair: Pair, from: &str, to: &str, f: impl FnOnce(&IntCounter) -> T) -> T {
        let (series, vec, word) = match pair {
            Pair::Transfer(v) => (verdict_index(v), &self.transfers, v.as_str()),
            Pair::Bytes(d) => (
                VERDICTS.len() + direction_index(d),
                &self.transfer_bytes,
                d.as_str(),
            ),
        };
        let key = PairRef {
            metrics: self.id,
            series,
            from,
            to,
        };
        PAIRS.with_borrow_mut(|pairs| {
            if let Some(child) = pairs.get(&key) {
                return f(child);
            }
            let child = vec.with_label_values(&[from, to, word]);
            let out = f(&child);
            let key = PairKey {
                metrics: self.id,
                series,
                from: from.into(),
                to: to.into(),
            };
            pairs.insert(key, child);
            out
        })
    }

    /// Names the rule set in force: the old version's series is removed so
    /// exactly one is 1.
    pub fn set_rules_version(&self, old: Option<&str>, new: &str) {
        if let Some(old) = old {
            let _ = self.rules_info.remove_label_values(&[old]);
        }
        self.rules_info.with_label_values(&[new]).set(1);
    }

    /// Exposes the audit writer's counters, read at scrape time.
    pub fn register_audit(&self, audit: AuditHandle) {
        self.register(Scalars::new(audit.clone(), &AUDIT_SERIES));
        self.register(WriteSeconds::new(audit));
    }

    /// Exposes the audit archiver's counters, read at scrape time.
    pub fn register_archive(&self, stats: Arc<ArchiveStats>) {
        self.register(Scalars::new(stats, &ARCHIVE_SERIES));
    }

    fn register(&self, collector: impl Collector + 'static) {
        self.registry
            .register(Box::new(collector))
            .expect("unique metric names");
    }

    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A metric whose value is read from plain atomics when scraped: the audit
/// writer and archiver keep those, as they must not depend on Prometheus.
type Series<T> = (&'static str, &'static str, MetricType, fn(&T) -> f64);

const AUDIT_SERIES: [Series<AuditHandle>; 12] = [
    (
        "gatekeeper_audit_records_total",
        "Audit records written.",
        MetricType::COUNTER,
        |a| a.stats().records_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_write_errors_total",
        "Failed audit writes and fsyncs.",
        MetricType::COUNTER,
        |a| a.stats().write_errors_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_lost_records_total",
        "Audit records accepted but never written.",
        MetricType::COUNTER,
        |a| a.stats().lost_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_writes_total",
        "Batches of audit records written (group commits).",
        MetricType::COUNTER,
        |a| a.stats().writes_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_fsyncs_total",
        "fsync calls made by the audit writer.",
        MetricType::COUNTER,
        |a| a.stats().fsyncs_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_seals_total",
        "Audit segments closed with a seal.",
        MetricType::COUNTER,
        |a| a.stats().seals_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_checkpoints_total",
        "Audit checkpoints written.",
        MetricType::COUNTER,
        |a| a.stats().checkpoints_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_seal_errors_total",
        "Audit seals and checkpoints that could not be written (tried again).",
        MetricType::COUNTER,
        |a| a.stats().seal_errors_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_segments_awaiting_seal",
        "Closed audit segments whose seal is not yet written (0 or 1; one that stays 1 is a seal that cannot be written).",
        MetricType::GAUGE,
        |a| a.stats().awaiting_seal.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_queue_depth",
        "Audit records waiting for the writer.",
        MetricType::GAUGE,
        |a| a.stats().queue_depth.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_synced_seq",
        "The last audit record known to be on disk (0 for none).",
        MetricType::GAUGE,
        |a| a.stats().synced_seq.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_healthy",
        "1 when the last audit write succeeded.",
        MetricType::GAUGE,
        |a| if a.healthy() { 1.0 } else { 0.0 },
    ),
];

const ARCHIVE_SERIES: [Series<Arc<ArchiveStats>>; 3] = [
    (
        "gatekeeper_audit_archived_segments_total",
        "Sealed audit segments confirmed in the archive bucket with their seals.",
        MetricType::COUNTER,
        |s| s.segments_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_archived_bytes_total",
        "Bytes of audit segments and seals uploaded to the archive bucket.",
        MetricType::COUNTER,
        |s| s.bytes_total.load(Relaxed) as f64,
    ),
    (
        "gatekeeper_audit_archive_errors_total",
        "Audit archive rounds that failed (tried again the next round).",
        MetricType::COUNTER,
        |s| s.errors_total.load(Relaxed) as f64,
    ),
];

const WRITE_SECONDS: (&str, &str) = (
    "gatekeeper_audit_write_seconds",
    "Time from the start of an audit batch write to its answer, fsync included.",
);

fn desc((name, help): (&str, &str)) -> Desc {
    Desc::new(name.into(), help.into(), vec![], Default::default()).expect("desc")
}

/// Counters and gauges of one source, without labels.
struct Scalars<T: 'static> {
    source: T,
    series: &'static [Series<T>],
    descs: Vec<Desc>,
}

impl<T> Scalars<T> {
    fn new(source: T, series: &'static [Series<T>]) -> Scalars<T> {
        let descs = series
            .iter()
            .map(|(name, help, ..)| desc((name, help)))
            .collect();
        Scalars {
            source,
            series,
            descs,
        }
    }
}

impl<T: Send + Sync> Collector for Scalars<T> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.series
            .iter()
            .map(|&(name, help, kind, read)| {
                let value = read(&self.source);
                let mut m = prometheus::proto::Metric::default();
                if kind == MetricType::COUNTER {
                    let mut c = prometheus::proto::Counter::default();
                    c.set_value(value);
                    m.set_counter(c);
                } else {
                    let mut g = prometheus::proto::Gauge::default();
                    g.set_value(value);
                    m.set_gauge(g);
                }
                family((name, help), kind, m)
            })
            .collect()
    }
}

/// The audit writer's latency histogram.
struct WriteSeconds {
    audit: AuditHandle,
    desc: Desc,
}

impl WriteSeconds {
    fn new(audit: AuditHandle) -> WriteSeconds {
        WriteSeconds {
            audit,
            desc: desc(WRITE_SECONDS),
        }
    }
}

impl Collector for WriteSeconds {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.audit.stats();
        let cumulative = stats.write_latency.cumulative();
        let mut h = prometheus::proto::Histogram::default();
        h.set_sample_sum(stats.write_nanos_sum.load(Relaxed) as f64 / 1e9);
        h.set_sample_count(cumulative[WRITE_LATENCY_BOUNDS.len()]);
        h.set_bucket(
            WRITE_LATENCY_BOUNDS
                .iter()
                .zip(cumulative)
                .map(|(bound, count)| {
                    let mut b = prometheus::proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(count);
                    b
                })
                .collect(),
        );
        let mut m = prometheus::proto::Metric::default();
        m.set_histogram(h);
        vec![family(WRITE_SECONDS, MetricType::HISTOGRAM, m)]
    }
}

fn family(
    (name, help): (&str, &str),
    kind: MetricType,
    m: prometheus::proto::Metric,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.mut_metric().push(m);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{start, AuditConfig, DecisionRecord, FsyncMode};

    /// The value of an unlabelled series in the text exposition.
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn pair_series_are_told_apart_by_registry_labels_and_thread() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.transfer("EU", "US", Verdict::Allow);
        a.transfer("EU", "US", Verdict::Allow);
        a.transfer("EU", "US", Verdict::Deny);
        a.transfer("US", "EU", Verdict::Allow);
        b.transfer("EU", "US", Verdict::Allow);
        a.transfer_bytes("EU", "US", Direction::Egress).inc_by(5);
        a.transfer_bytes("EU", "US", Direction::Ingress).inc_by(7);
        // Another thread finds the same children through its own cache.
        std::thread::scope(|s| {
            s.spawn(|| {
                a.transfer("EU", "US", Verdict::Allow);
                a.transfer_bytes("EU", "US", Direction::Egress).inc_by(1);
            });
        });
        let text = a.encode();
        for (series, want) in [
            (
                r#"gatekeeper_transfers_total{decision="allow",from="EU",to="US"}"#,
                3,
            ),
            (
                r#"gatekeeper_transfers_total{decision="deny",from="EU",to="US"}"#,
                1,
            ),
            (
                r#"gatekeeper_transfers_total{decision="allow",from="US",to="EU"}"#,
                1,
            ),
            (
                r#"gatekeeper_transfer_bytes_total{direction="egress",from="EU",to="US"}"#,
                6,
            ),
            (
                r#"gatekeeper_transfer_bytes_total{direction="ingress",from="EU",to="US"}"#,
                7,
            ),
        ] {
            assert_eq!(value(&text, series), f64::from(want), "{series}");
        }
        let other = b.encode();
        assert_eq!(
            value(
                &other,
                r#"gatekeeper_transfers_total{decision="allow",from="EU",to="US"}"#
            ),
            1.0
        );
        assert!(!other.contains("gatekeeper_transfer_bytes_total{"));
    }

    #[tokio::test]
    async fn the_audit_writer_is_exported_with_its_write_latency() {
        let dir = tempfile::tempdir().unwrap();
        let audit = start(AuditConfig {
            dir: dir.path().to_owned(),
            fsync: FsyncMode::Always,
            segment_bytes: 1,
            checkpoint_interval: std::time::Duration::from_millis(1),
            ..AuditConfig::default()
        })
        .unwrap();
        let metrics = Metrics::new();
        metrics.register_audit(audit.clone());
        let before = metrics.encode();
        assert_eq!(value(&before, "gatekeeper_audit_records_total"), 0.0);
        assert_eq!(value(&before, "gatekeeper_audit_write_seconds_count"), 0.0);
        assert_eq!(value(&before, "gatekeeper_audit_healthy"), 1.0);

        for i in 0..3 {
            let rec = DecisionRecord {
                request_id: format!("r{i}").into(),
                decision: "allow".into(),
                ..DecisionRecord::default()
            };
            audit.decision(rec).await.unwrap();
        }
        // Each record fills its one-byte segment, which the writer thread
        // closes and seals before it writes the next (`fsync = "always"`);
        // the last is sealed on its timer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while audit.stats().seals_total.load(Relaxed) < 3 {
            assert!(std::time::Instant::now() < deadline, "seals");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Stopped, so that its timer (a checkpoint after the last seal)
        // cannot move a counter between the two reads below.
        audit.shutdown().await;
        let text = metrics.encode();
        let stats = audit.stats();
        for (series, want) in [
            ("gatekeeper_audit_records_total", 3),
            (
                "gatekeeper_audit_writes_total",
                stats.writes_total.load(Relaxed),
            ),
            (
                "gatekeeper_audit_fsyncs_total",
                stats.fsyncs_total.load(Relaxed),
            ),
            (
                "gatekeeper_audit_seals_total",
                stats.seals_total.load(Relaxed),
            ),
            (
                "gatekeeper_audit_checkpoints_total",
                stats.checkpoints_total.load(Relaxed),
            ),
            ("gatekeeper_audit_seal_errors_total", 0),
            ("gatekeeper_audit_lost_records_total", 0),
            ("gatekeeper_audit_queue_depth", 0),
            ("gatekeeper_audit_segments_awaiting_seal", 0),
            ("gatekeeper_audit_synced_seq", 3),
        ] {
            assert_eq!(value(&text, series), want as f64, "{series}");
        }
        // With fsync = "always" each of the three writes was synced.
        assert!(value(&text, "gatekeeper_audit_fsyncs_total") >= 3.0);
        assert!(value(&text, "gatekeeper_audit_seals_total") >= 3.0);
        // Every batch write is in the histogram, in a bucket at or below
        // +Inf, and its time in the sum.
        let writes = value(&text, "gatekeeper_audit_write_seconds_count");
        assert_eq!(writes, value(&text, "gatekeeper_audit_writes_total"));
        assert_eq!(
            value(&text, "gatekeeper_audit_write_seconds_bucket{le=\"+Inf\"}"),
            writes
        );
        assert!(value(&text, "gatekeeper_audit_write_seconds_sum") > 0.0);
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("gatekeeper_audit_write_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), WRITE_LATENCY_BOUNDS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert!(text.contains("# TYPE gatekeeper_audit_write_seconds histogram"));
        audit.shutdown().await;
    }
}
