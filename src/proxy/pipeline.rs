//! The phases of DESIGN §2, once per request: classify, locate, decide,
//! audit, forward, recheck, complete.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::body::{BodyProgress, Ending, OnEnd, ReqBody, RespBody, UpstreamBody};
use super::forward::{Upstream, UpstreamError};
use crate::audit::record::{CompletionRecord, Text};
use crate::audit::AuditHandle;
use crate::describe::{self, RecordSettings};
use crate::locate::{self, Location};
use crate::metrics::Metrics;
use crate::policy::{self, Decision, Facts, NoTrace, Reason, Verdict};
use crate::s3::post::{self, PostForm};
use crate::s3::{self, replication, Direction, Hosts, Op, S3Error, S3Request};
use crate::snapshot::Snapshot;
use crate::tls::ClientCert;
use prometheus::IntCounter;

/// The header that carries a stored or declared category.
const CATEGORY_HEADER: &str = "x-amz-meta-data-category";
// Pre-parsed: a `&str` name is validated, and a custom one copied, on
// every use.
const STORED_CATEGORY: HeaderName = HeaderName::from_static(CATEGORY_HEADER);
const DECISION: HeaderName = HeaderName::from_static("x-gatekeeper-decision");
const REASON: HeaderName = HeaderName::from_static("x-gatekeeper-reason");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-gatekeeper-request-id");

/// What the connection tells about the requester.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The verified client certificate of a TLS connection.
    pub client_cert: Option<Arc<ClientCert>>,
}

/// Settings of the S3 listener that no reload changes.
pub struct Settings {
    pub hosts: Hosts,
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write the client's address in.
    pub client_ip_header: locate::ForwardedHeader,
    /// `[s3] deny_detail = "full"`: denials name tenant, category and
    /// jurisdictions to the client.
    pub deny_detail_full: bool,
    /// `audit.on_failure = "allow"`: forward even when the decision record
    /// could not be written.
    pub on_failure_allow: bool,
    /// An upstream body that goes quiet this long is cut off.
    pub idle_timeout: Duration,
    /// `limits.max_config_body_bytes`: the most of a configuration body the
    /// gate reads to decide.
    pub max_config_body: usize,
    pub record: RecordSettings,
}

/// Request ids unique across restarts and gates: a random prefix per process
/// and a counter.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        RequestIds {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> RequestId {
        let mut id = [0; 20];
        let (prefix, count) = id.split_at_mut(8);
        hex(prefix, self.prefix.into());
        // 12 digits hold 2^48 requests: centuries at any rate one process
        // can serve.
        hex(count, self.next.fetch_add(1, Ordering::Relaxed));
        RequestId(id)
    }
}

/// The low `out.len()` hex digits of `n`, lower case.
fn hex(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// A request's id, 20 hex digits held inline: naming the request in its
/// header, records and errors copies it only where they keep it.
#[derive(Clone, Copy)]
pub struct RequestId([u8; 20]);

impl RequestId {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }

    fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).expect("hex digits are a header value")
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

pub struct Gate {
    pub snapshots: Arc<ArcSwap<Snapshot>>,
    pub settings: Settings,
    pub upstream: Upstream,
    pub audit: AuditHandle,
    pub metrics: Arc<Metrics>,
    pub ids: RequestIds,
    /// Held (shared) by each forwarded request from its decision until its
    /// completion record reaches the audit writer, so that
    /// [`Gate::settle`] can wait for them all.
    pub completions: Arc<tokio::sync::RwLock<()>>,
}

pub type Body = RespBody<Completion>;

/// Proof that a decision let the request through; `forward` takes nothing
/// else, so a request cannot reach the upstream undecided.
pub struct Permit(());

/// A classified request whose body turned out malformed.
struct Malformed<'a> {
    snap: &'a Snapshot,
    request: &'a S3Request,
    requester: Location,
    client_ip: IpAddr,
    error: S3Error,
    resource: &'a str,
    request_id: RequestId,
    close: bool,
}

/// What the gate answers itself: a decision it enforces, or bad input.
struct Refusal<'a> {
    error: S3Error,
    decision: &'static str,
    reason: &'static str,
    resource: &'a str,
    request_id: RequestId,
    /// The request body was left unread: the connection cannot be reused.
    close: bool,
}

impl Gate {
    /// Waits until every forwarded request has ended and its completion
    /// record has reached the audit writer's queue: the trail must not close
    /// ahead of them. An HTTP/2 stream runs in a task of its own, which
    /// outlives its connection's task by a moment when a drain cuts it off.
    pub async fn settle(&self) {
        let _ = self.completions.write().await;
    }

    pub async fn handle(self: Arc<Self>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let request_id = self.ids.next();
        let snap = self.snapshots.load_full();
        // Refusals name the path; the request itself goes upstream.
        let uri = req.uri().clone();
        let resource = uri.path();
        let unread = has_body(req.headers());

        let mut s3req =
            match s3::classify(req.method(), req.uri(), req.headers(), &self.settings.hosts) {
                Ok(r) => r,
                Err(error) => {
                    self.metrics
                        .refused
                        .with_label_values(&[&error.status.to_string()])
                        .inc();
                    let reason = if error.status == 501 {
                        "not_implemented"
                    } else {
                        "bad_request"
                    };
                    return refuse(Refusal {
                        error,
                        decision: "deny",
                        reason,
                        resource,
                        request_id,
                        close: unread,
                    });
                }
            };

        let proxies = locate::Proxies {
            trusted: &self.settings.trusted_proxies,
            header: self.settings.client_ip_header,
        };
        let client_ip = locate::client_ip_via(conn.peer.ip(), req.headers(), proxies);
        let peer = conn.client_cert.as_ref().and_then(|c| c.peer(&snap.rules));
        let requester = locate::locate(&snap.rules, &snap.geoip, peer, client_ip);

        let (parts, body) = req.into_parts();
        let progress = Arc::new(BodyProgress::default());
        let malformed = |error: S3Error, close: bool| Malformed {
            snap: &snap,
            request: &s3req,
            requester,
            client_ip,
            error,
            resource,
            request_id,
            close,
        };
        let (destinations, body) = match s3req.op.config_body() {
            Some(kind) => {
                match read_config_body(&parts.headers, body, self.settings.max_config_body).await {
                    Ok(bytes) => match replication::destinations(kind, &bytes) {
                        Ok(d) => (d, ReqBody::Bytes(Some(bytes))),
                        Err(error) => return self.malformed(malformed(error, false)).await,
                    },
                    Err(error) => return self.malformed(malformed(error, true)).await,
                }
            }
            // S3 takes a form upload's key and metadata from the fields
            // before the file, so the gate reads that far before deciding;
            // the file itself still streams.
            None if s3req.op == Op::PostObject => match read_form(&parts.headers, body).await {
                Ok((form, prefix, inner)) => {
                    s3req.key = Some(form.key);
                    s3req.declared_category = form.declared_category;
                    (
                        Vec::new(),
                        ReqBody::Stream {
                            prefix: Some(prefix),
                            inner,
                            progress: progress.clone(),
                        },
                    )
                }
                Err(error) => return self.malformed(malformed(error, true)).await,
            },
            None => (
                Vec::new(),
                ReqBody::Stream {
                    prefix: None,
                    inner: body,
                    progress: progress.clone(),
                },
            ),
        };

        let arrival = OffsetDateTime::now_utc();
        let facts = Facts {
            request: &s3req,
            destinations: &destinations,
            requester,
            stored_category: None,
            today: arrival.date(),
        };
        let decision = policy::decide(&snap.rules, &snap.instance, &facts, &mut NoTrace);
        self.metrics
            .decision_duration
            .observe(start.elapsed().as_secs_f64());

        let mut verdict = decision.verdict;
        let mut reason = decision.reason;
        let status = if verdict.forwards() {
            None
        } else {
            Some(reason.deny_status())
        };
        let record = describe::decision_record(
            &self.settings.record,
            &snap,
            &facts,
            &decision,
            client_ip,
            request_id.as_str(),
            arrival,
            status,
        );
        if self.audit.decision(record).await.is_err()
            && verdict.forwards()
            && !self.settings.on_failure_allow
        {
            verdict = Verdict::Deny;
            reason = Reason::AuditUnavailable;
        }
        self.count(&snap, &s3req, &decision, verdict, reason);

        if !verdict.forwards() {
            let error = self.denial(&snap, &decision, reason);
            return refuse(Refusal {
                error,
                decision: verdict.as_str(),
                reason: reason.as_str(),
                resource,
                request_id,
                close: unread,
            });
        }

        let completion = Completion {
            // Fails only once shutdown waits in `settle`, after every
            // listener has stopped.
            open: self.completions.clone().try_read_owned().ok(),
            moved: self.transfer_bytes(&snap, &decision, s3req.op.direction()),
            gate: self.clone(),
            request_id,
            start,
            status: 0,
            progress,
            category: decision
                .category
                .map(|c| snap.rules.category(c).id.to_string()),
        };
        let permit = Permit(());
        self.forward(
            permit,
            resource,
            &snap,
            &s3req,
            &facts,
            &decision,
            verdict,
            reason,
            completion,
            Request::from_parts(parts, body),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        _permit: Permit,
        resource: &str,
        snap: &Snapshot,
        s3req: &S3Request,
        facts: &Facts<'_>,
        decision: &Decision,
        verdict: Verdict,
        reason: Reason,
        mut completion: Completion,
        req: Request<ReqBody>,
    ) -> Response<Body> {
        let request_id = completion.request_id;
        let resp = match self.upstream.send(req).await {
            Ok(r) => r,
            // The upload failed because the client went away, not the
            // upstream: whatever is answered reaches nobody.
            Err(_) if completion.progress.failed.load(Ordering::Relaxed) => {
                let error = S3Error::new(
                    400,
                    "IncompleteBody",
                    "the client closed the connection mid-body".into(),
                );
                completion.status = error.status;
                completion.record(Outcome::ClientAborted, 0);
                return refuse(Refusal {
                    error,
                    decision: verdict.as_str(),
                    reason: reason.as_str(),
                    resource,
                    request_id,
                    close: true,
                });
            }
            Err(e) => {
                self.metrics
                    .upstream_errors
                    .with_label_values(&[e.kind()])
                    .inc();
                let error = match &e {
                    UpstreamError::Timeout => S3Error::new(
                        504,
                        "GatewayTimeout",
                        "the upstream did not answer in time".into(),
                    ),
                    UpstreamError::Unavailable(_) | UpstreamError::Fetch(_) => {
                        tracing::warn!(error = %e, "upstream request failed");
                        S3Error::new(502, "BadGateway", "the upstream is unavailable".into())
                    }
                };
                completion.status = error.status;
                completion.record(Outcome::UpstreamError, 0);
                return refuse(Refusal {
                    error,
                    decision: verdict.as_str(),
                    reason: reason.as_str(),
                    resource,
                    request_id,
                    close: false,
                });
            }
        };

        let (mut parts, body) = resp.into_parts();
        let mut verdict = verdict;
        let mut reason = reason;
        if s3req.op.direction() == Direction::Egress && parts.status.is_success() {
            if let Some(stored) = parts.headers.get(STORED_CATEGORY) {
                let stored = stored.to_str().unwrap_or("\u{fffd}");
                let recheck = Facts {
                    stored_category: Some(stored),
                    ..*facts
                };
                let second = policy::decide(&snap.rules, &snap.instance, &recheck, &mut NoTrace);
                completion.category = second
                    .category
                    .map(|c| snap.rules.category(c).id.to_string());
                if second.verdict != decision.verdict || second.reason != decision.reason {
                    self.count(snap, s3req, &second, second.verdict, second.reason);
                }
                if !second.verdict.forwards() {
                    // Every upstream header and the body are dropped here.
                    drop(body);
                    let error = self.denial(snap, &second, second.reason);
                    completion.status = error.status;
                    completion.record(Outcome::RecheckDenied, 0);
                    return refuse(Refusal {
                        error,
                        decision: second.verdict.as_str(),
                        reason: second.reason.as_str(),
                        resource,
                        request_id,
                        close: false,
                    });
                }
                verdict = second.verdict;
                reason = second.reason;
            }
        }
        completion.status = parts.status.as_u16();
        mark(
            &mut parts.headers,
            verdict.as_str(),
            reason.as_str(),
            request_id,
        );
        Response::from_parts(
            parts,
            RespBody::Upstream(UpstreamBody::new(
                body,
                self.settings.idle_timeout,
                completion,
            )),
        )
    }

    /// Refuses a request whose body the gate could not read as S3 defines
    /// it; the audit record names the tenant when the bucket has one.
    async fn malformed(&self, m: Malformed<'_>) -> Response<Body> {
        self.metrics
            .refused
            .with_label_values(&[&m.error.status.to_string()])
            .inc();
        let arrival = OffsetDateTime::now_utc();
        let decision = policy::malformed(&m.snap.rules, m.request);
        let facts = Facts {
            request: m.request,
            destinations: &[],
            requester: m.requester,
            stored_category: None,
            today: arrival.date(),
        };
        if decision.tenant.is_some() {
            let record = describe::decision_record(
                &self.settings.record,
                m.snap,
                &facts,
                &decision,
                m.client_ip,
                m.request_id.as_str(),
                arrival,
                Some(m.error.status),
            );
            // Refused either way: a lost record cannot let anything through.
            let _ = self.audit.decision(record).await;
        }
        self.count(
            m.snap,
            m.request,
            &decision,
            decision.verdict,
            decision.reason,
        );
        refuse(Refusal {
            error: m.error,
            decision: "deny",
            reason: decision.reason.as_str(),
            resource: m.resource,
            request_id: m.request_id,
            close: m.close,
        })
    }

    /// The client-facing error of a denial: the reason only, or with
    /// `deny_detail = "full"` who, what and where.
    fn denial(&self, snap: &Snapshot, d: &Decision, reason: Reason) -> S3Error {
        let mut message = match reason {
            Reason::InvalidCategory => format!("invalid {CATEGORY_HEADER}: {}", reason.as_str()),
            Reason::AuditUnavailable => "the audit trail cannot record this request".to_owned(),
            _ => format!("cross-border transfer denied: {}", reason.as_str()),
        };
        if self.settings.deny_detail_full {
            let rules = &snap.rules;
            let jur = |l: Option<crate::locate::Location>| {
                l.and_then(|l| l.jurisdiction)
                    .map_or("unknown", |j| rules.jurisdiction_name(j))
                    .to_owned()
            };
            message.push_str(&format!(
                " (tenant {}, category {}, {} -> {})",
                d.tenant.map_or("none", |t| &rules.tenant(t).id),
                d.category.map_or("none", |c| &rules.category(c).id),
                jur(d.from),
                jur(d.to),
            ));
        }
        let (status, code) = match reason.deny_status() {
            400 => (400, "InvalidArgument"),
            503 => (503, "ServiceUnavailable"),
            s => (s, "AccessDenied"),
        };
        S3Error::new(status, code, message)
    }

    /// The `gatekeeper_transfer_bytes_total` series a forwarded request
    /// adds its bytes to, looked up once at its decision.
    fn transfer_bytes(
        &self,
        snap: &Snapshot,
        d: &Decision,
        direction: Direction,
    ) -> Option<(IntCounter, Direction)> {
        let from = d.from?.jurisdiction?;
        let to = d.to?.jurisdiction?;
        let series = self.metrics.transfer_bytes(
            snap.rules.jurisdiction_name(from),
            snap.rules.jurisdiction_name(to),
            direction,
        );
        Some((series, direction))
    }

    fn count(
        &self,
        snap: &Snapshot,
        s3req: &S3Request,
        d: &Decision,
        verdict: Verdict,
        reason: Reason,
    ) {
        self.metrics.request(s3req.op.direction(), verdict, reason);
        if let (Some(from), Some(to)) = (
            d.from.and_then(|l| l.jurisdiction),
            d.to.and_then(|l| l.jurisdiction),
        ) {
            self.metrics.transfer(
                snap.rules.jurisdiction_name(from),
                snap.rules.jurisdiction_name(to),
                verdict,
            );
        }
    }
}

/// Whether the request announces a body (which an early answer leaves
/// unread on the connection).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Reads a configuration body the gate must parse, refusing it past the cap
/// before reading when Content-Length already says so.
async fn read_config_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, S3Error> {
    let too_big = || {
        S3Error::new(
            400,
            "MaxMessageLengthExceeded",
            format!("configuration body over {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Err(_) => Err(S3Error::new(
            400,
            "IncompleteBody",
            "the request body ended early".into(),
        )),
    }
}

/// Reads a POST upload up to the end of the fields that precede its file
/// part, returning them with the bytes read and the unread rest.
async fn read_form(
    headers: &HeaderMap,
    mut body: Incoming,
) -> Result<(PostForm, Bytes, Incoming), S3Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut read = BytesMut::new();
    loop {
        let data = match body.frame().await {
            Some(Ok(frame)) => frame.into_data().map_err(|_| {
                S3Error::bad_request("trailers before the file part of a form upload")
            })?,
            Some(Err(_)) | None => {
                return Err(S3Error::new(
                    400,
                    "IncompleteBody",
                    "the form ended before its file part".into(),
                ))
            }
        };
        read.extend_from_slice(&data);
        if let Some(form) = post::form_fields(content_type, &read)? {
            return Ok((form, read.freeze(), body));
        }
    }
}

fn mark(headers: &mut HeaderMap, decision: &'static str, reason: &'static str, id: RequestId) {
    headers.insert(DECISION, HeaderValue::from_static(decision));
    headers.insert(REASON, HeaderValue::from_static(reason));
    headers.insert(REQUEST_ID, id.header_value());
}

fn refuse(r: Refusal<'_>) -> Response<Body> {
    let xml = r.error.xml(r.resource, r.request_id.as_str());
    let mut resp = Response::new(RespBody::Full(Some(Bytes::from(xml))));
    *resp.status_mut() = StatusCode::from_u16(r.error.status).unwrap_or(StatusCode::FORBIDDEN);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if r.close {
        // An `Expect: 100-continue` body was never asked for, and any other
        // unread body cannot be skipped safely: end the connection.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    mark(headers, r.decision, r.reason, r.request_id);
    resp
}

/// `outcome` of a completion record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Complete,
    ClientAborted,
    UpstreamError,
    RecheckDenied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientAborted => "client_aborted",
            Outcome::UpstreamError => "upstream_error",
            Outcome::RecheckDenied => "recheck_denied",
        }
    }
}

/// Writes the completion record of a forwarded request when it ends.
pub struct Completion {
    gate: Arc<Gate>,
    /// A share of [`Gate::completions`] until the record is queued.
    open: Option<tokio::sync::OwnedRwLockReadGuard<()>>,
    request_id: RequestId,
    start: Instant,
    status: u16,
    progress: Arc<BodyProgress>,
    category: Option<String>,
    /// The `gatekeeper_transfer_bytes_total` series of (from, to,
    /// direction), and that direction.
    moved: Option<(IntCounter, Direction)>,
}

impl Completion {
    fn record(self, outcome: Outcome, bytes_out: u64) {
        let bytes_in = self.progress.bytes.load(Ordering::Relaxed);
        let outcome =
            if outcome == Outcome::Complete && self.progress.failed.load(Ordering::Relaxed) {
                Outcome::ClientAborted
            } else {
                outcome
            };
        let elapsed = self.start.elapsed();
        let gate = &self.gate;
        gate.metrics.request_duration.observe(elapsed.as_secs_f64());
        if let Some((series, direction)) = &self.moved {
            series.inc_by(if *direction == Direction::Egress {
                bytes_out
            } else {
                bytes_in
            });
        }
        let rec = CompletionRecord {
            request_id: self.request_id.as_str().into(),
            outcome: outcome.as_str().into(),
            status: self.status,
            bytes_in,
            bytes_out,
            duration_ms: elapsed.as_millis() as u64,
            category: self.category.map(Text::Owned),
            ..CompletionRecord::default()
        };
        // Usually the queue has room: no task, no wait.
        let Some(rec) = gate.audit.try_completion(rec) else {
            return;
        };
        let rec = rec.into_owned();
        let audit = gate.audit.clone();
        let open = self.open;
        tokio::spawn(async move {
            audit.completion(rec).await;
            drop(open);
        });
    }
}

impl OnEnd for Completion {
    fn end(self, ending: Ending, bytes_out: u64) {
        let outcome = match ending {
            Ending::Complete => Outcome::Complete,
            Ending::ClientAborted => Outcome::ClientAborted,
            Ending::UpstreamError => Outcome::UpstreamError,
        };
        self.record(outcome, bytes_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_the_prefix_and_the_count_in_hex() {
        let ids = RequestIds {
            prefix: 0x5f3a9c1e,
            next: AtomicU64::new(0x4d2a1),
        };
        assert_eq!(ids.next().as_str(), "5f3a9c1e00000004d2a1");
        assert_eq!(ids.next().as_str(), "5f3a9c1e00000004d2a2");
        let ids = RequestIds {
            prefix: 7,
            next: AtomicU64::new(0xfedc_ba98_7654),
        };
        assert_eq!(ids.next().as_str(), "00000007fedcba987654");
    }
}
