//! "Would this request be allowed, and why?" — one hypothetical request
//! decided against a snapshot, answered with the fields of an audit record
//! and the trace of DESIGN §3's steps. Shared by `gatekeeper explain` and
//! `POST /v1/explain`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};

use crate::describe::{self, RecordSettings};
use crate::locate;
use crate::policy::{self, Facts, TraceStep};
use crate::s3::{self, replication, Hosts};
use crate::snapshot::Snapshot;

/// A hypothetical request (the body of `POST /v1/explain`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub method: String,
    pub url: String,
    pub client_ip: IpAddr,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `YYYY-MM-DD`: decide as on that (UTC) day.
    #[serde(default)]
    pub at: Option<String>,
    /// A `[[peer]]` id standing in for an mTLS client certificate.
    #[serde(default)]
    pub peer: Option<String>,
    /// What the upstream would answer in `x-amz-meta-data-category`.
    #[serde(default)]
    pub stored_category: Option<String>,
    /// The body of a configuration write (replication, inventory, …).
    #[serde(default)]
    pub body: Option<String>,
}

pub fn from_json(bytes: &[u8]) -> Result<Query, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("explain request: {e}"))
}

pub fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("--at {s:?}: expected YYYY-MM-DD ({e})"))
}

/// Decides `q` against `snap` and describes the decision.
pub fn explain(
    snap: &Snapshot,
    record: &RecordSettings,
    hosts: &Hosts,
    q: &Query,
) -> Result<serde_json::Value, String> {
    let method = Method::from_bytes(q.method.to_ascii_uppercase().as_bytes())
        .map_err(|e| format!("method: {e}"))?;
    let uri: Uri = q.url.parse().map_err(|e| format!("url {:?}: {e}", q.url))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &q.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k:?}: {e}"))?;
        let value = HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST) {
        let authority = uri
            .authority()
            .ok_or("url needs a host, as in http://localhost/bucket/key")?;
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
        );
    }
    // Classification takes the origin form, as a listener receives it.
    let target: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| format!("url: {e}"))?;
    let request = s3::classify(&method, &target, &headers, hosts).map_err(|e| {
        format!(
            "the gate would refuse this request: {} {}: {}",
            e.status, e.code, e.message
        )
    })?;
    let destinations = match request.op.config_body() {
        Some(kind) => {
            let body = q.body.as_deref().ok_or_else(|| {
                format!("{} needs the configuration in \"body\"", request.op.name())
            })?;
            replication::destinations(kind, body.as_bytes()).map_err(|e| e.message)?
        }
        None => Vec::new(),
    };

    let rules = &snap.rules;
    let peer = match &q.peer {
        Some(id) => Some(
            rules
                .peer_by_id(id)
                .ok_or_else(|| format!("no [[peer]] with id {id:?}"))?,
        ),
        None => None,
    };
    let requester = locate::locate(rules, &snap.geoip, peer, q.client_ip);
    let now = OffsetDateTime::now_utc();
    let arrival = match &q.at {
        Some(d) => parse_date(d)?.with_time(Time::MIDNIGHT).assume_utc(),
        None => now,
    };
    let facts = Facts {
        request: &request,
        destinations: &destinations,
        requester,
        stored_category: q.stored_category.as_deref(),
        today: arrival.date(),
    };
    let mut trace: Vec<TraceStep> = Vec::new();
    let decision = policy::decide(rules, &snap.instance, &facts, &mut trace);
    let status = (!decision.verdict.forwards()).then(|| decision.reason.deny_status());
    let rec = describe::decision_record(
        record,
        snap,
        &facts,
        &decision,
        q.client_ip,
        "explain",
        arrival,
        status,
    );
    let mut value = serde_json::to_value(crate::audit::Record::Decision(Box::new(rec)))
        .map_err(|e| e.to_string())?;
    if let Some(obj) = value.as_object_mut() {
        // Nothing was written: a chain position would be a lie.
        for k in ["seq", "prev", "hash"] {
            obj.remove(k);
        }
        obj.insert(
            "trace".into(),
            serde_json::to_value(&trace).map_err(|e| e.to_string())?,
        );
    }
    Ok(value)
}
