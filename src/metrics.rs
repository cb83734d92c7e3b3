//! Prometheus metrics (DESIGN §7). Label values are bounded: directions,
//! decisions and reasons are closed sets, jurisdictions come from the rules
//! (or two-letter country codes), error kinds are a closed set.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use std::sync::atomic::Ordering::Relaxed;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use crate::audit::AuditHandle;
use crate::policy::{Reason, Verdict};
use crate::s3::Direction;

const VERDICTS: [Verdict; 3] = [Verdict::Allow, Verdict::Deny, Verdict::MonitorDeny];

pub struct Metrics {
    pub registry: Registry,
    /// Pre-resolved children of `gatekeeper_requests_total`, indexed by
    /// (direction, verdict, reason), so the hot path takes no lock.
    requests: Vec<IntCounter>,
    pub transfers: IntCounterVec,
    pub transfer_bytes: IntCounterVec,
    pub request_duration: Histogram,
    pub decision_duration: Histogram,
    pub upstream_errors: IntCounterVec,
    pub rules_reloads: IntCounterVec,
    pub rules_info: IntGaugeVec,
    pub refused: IntCounterVec,
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
            Box::new(rules_info.clone()),
            Box::new(refused.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            transfers,
            transfer_bytes,
            request_duration,
            decision_duration,
            upstream_errors,
            rules_reloads,
            rules_info,
            refused,
        }
    }

    pub fn request(&self, d: Direction, v: Verdict, r: Reason) {
        let i = (direction_index(d) * VERDICTS.len() + verdict_index(v)) * Reason::ALL.len()
            + reason_index(r);
        self.requests[i].inc();
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
        self.registry
            .register(Box::new(AuditCollector::new(audit)))
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

/// The audit writer keeps plain atomics (it must not depend on Prometheus);
/// this turns them into metric families when scraped.
struct AuditCollector {
    audit: AuditHandle,
    descs: Vec<Desc>,
}

const AUDIT_COUNTERS: [(&str, &str); 5] = [
    ("gatekeeper_audit_records_total", "Audit records written."),
    (
        "gatekeeper_audit_write_errors_total",
        "Failed audit writes and fsyncs.",
    ),
    (
        "gatekeeper_audit_lost_records_total",
        "Audit records accepted but never written.",
    ),
    (
        "gatekeeper_audit_fsyncs_total",
        "fsync calls made by the audit writer.",
    ),
    (
        "gatekeeper_audit_write_seconds_total",
        "Time spent writing (and syncing) audit batches.",
    ),
];

const AUDIT_GAUGES: [(&str, &str); 2] = [
    (
        "gatekeeper_audit_queue_depth",
        "Audit records waiting for the writer.",
    ),
    (
        "gatekeeper_audit_healthy",
        "1 when the last audit write succeeded.",
    ),
];

impl AuditCollector {
    fn new(audit: AuditHandle) -> AuditCollector {
        let descs = AUDIT_COUNTERS
            .iter()
            .chain(AUDIT_GAUGES.iter())
            .map(|(name, help)| {
                Desc::new((*name).into(), (*help).into(), vec![], Default::default()).expect("desc")
            })
            .collect();
        AuditCollector { audit, descs }
    }
}

fn family(name: &str, help: &str, kind: prometheus::proto::MetricType, value: f64) -> MetricFamily {
    let mut m = prometheus::proto::Metric::default();
    if kind == prometheus::proto::MetricType::COUNTER {
        let mut c = prometheus::proto::Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = prometheus::proto::Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.mut_metric().push(m);
    f
}

impl Collector for AuditCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        use prometheus::proto::MetricType::{COUNTER, GAUGE};
        let s = self.audit.stats();
        let counters = [
            s.records_total.load(Relaxed) as f64,
            s.write_errors_total.load(Relaxed) as f64,
            s.lost_total.load(Relaxed) as f64,
            s.fsyncs_total.load(Relaxed) as f64,
            s.write_nanos_sum.load(Relaxed) as f64 / 1e9,
        ];
        let gauges = [
            s.queue_depth.load(Relaxed) as f64,
            if self.audit.healthy() { 1.0 } else { 0.0 },
        ];
        AUDIT_COUNTERS
            .iter()
            .zip(counters)
            .map(|((n, h), v)| family(n, h, COUNTER, v))
            .chain(
                AUDIT_GAUGES
                    .iter()
                    .zip(gauges)
                    .map(|((n, h), v)| family(n, h, GAUGE, v)),
            )
            .collect()
    }
}
