//! A decision as the audit trail (and explain) shows it: ids become names,
//! client addresses are minimised, keys hashed when configured.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::audit::record::{
    self, ClientIpMode, DecisionRecord, DestinationEntry, Endpoint, SourceEntry,
};
use crate::locate::Location;
use crate::policy::{Decision, Facts};
use crate::rules::model::RuleSet;
use crate::snapshot::Snapshot;

/// What `[audit]` says about the contents of a record.
#[derive(Clone, Debug)]
pub struct RecordSettings {
    pub instance: String,
    pub client_ip: ClientIpMode,
    /// Replace object keys by their keyed HMAC.
    pub key_hash: bool,
    /// The HMAC key for hashed client addresses and keys.
    pub hmac_key: Vec<u8>,
}

fn endpoint(rules: &RuleSet, l: &Location) -> Endpoint {
    Endpoint {
        region: l.region.map(|r| str::to_owned(&rules.region(r).id)),
        country: l.country.map(|c| c.as_str().to_owned()),
        jurisdiction: l
            .jurisdiction
            .map(|j| rules.jurisdiction_name(j).to_owned()),
        via: l.via.map(|v| v.as_str().into()),
        peer: l.peer.map(|p| str::to_owned(&rules.peer(p).id)),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn decision_record(
    settings: &RecordSettings,
    snap: &Snapshot,
    facts: &Facts<'_>,
    d: &Decision,
    client_ip: IpAddr,
    request_id: &str,
    ts: OffsetDateTime,
    status: Option<u16>,
) -> DecisionRecord {
    let rules = &snap.rules;
    let req = facts.request;
    let key = req.key.as_deref().map(|k| {
        if settings.key_hash {
            record::hash_key(k, &settings.hmac_key)
        } else {
            k.to_owned()
        }
    });
    let source = req.copy_source.as_ref().map(|cs| {
        let region = d
            .source
            .map(|b| rules.bucket(b).region.unwrap_or(snap.instance.region));
        SourceEntry {
            bucket: cs.bucket.clone(),
            region: region.map(|r| str::to_owned(&rules.region(r).id)),
            jurisdiction: region.map(|r| {
                rules
                    .jurisdiction_name(rules.region(r).jurisdiction)
                    .to_owned()
            }),
        }
    });
    let destinations = (!d.destinations.is_empty()).then(|| {
        d.destinations
            .iter()
            .map(|o| DestinationEntry {
                bucket: o.bucket.clone(),
                prefix: Some(o.prefix.clone()),
                region: o.to.region.map(|r| str::to_owned(&rules.region(r).id)),
                jurisdiction: o
                    .to
                    .jurisdiction
                    .map(|j| rules.jurisdiction_name(j).to_owned()),
                decision: o.verdict.as_str().into(),
                reason: o.reason.as_str().into(),
                basis: o.basis.map(|b| str::to_owned(&rules.basis(b).id)),
            })
            .collect()
    });
    let basis = d.basis.map(|b| rules.basis(b));
    DecisionRecord {
        ts: record::timestamp(ts),
        instance: settings.instance.clone(),
        request_id: request_id.to_owned(),
        tenant: d.tenant.map(|t| str::to_owned(&rules.tenant(t).id)),
        op: req.op.name().into(),
        direction: req.op.direction().as_str().into(),
        bucket: req.bucket.clone(),
        key,
        source,
        destinations,
        category: d.category.map(|c| str::to_owned(&rules.category(c).id)),
        category_source: d.category_source.map(|s| s.as_str().into()),
        from: d.from.as_ref().map(|l| endpoint(rules, l)),
        to: d.to.as_ref().map(|l| endpoint(rules, l)),
        client_ip: Some(record::minimize_ip(
            client_ip,
            settings.client_ip,
            &settings.hmac_key,
        )),
        decision: d.verdict.as_str().into(),
        reason: d.reason.as_str().into(),
        basis: basis.map(|b| str::to_owned(&b.id)),
        basis_kind: basis.map(|b| b.kind.as_str().into()),
        mode: d.mode.map(|m| m.as_str().into()),
        status,
        rules_version: rules.version.clone(),
        geoip_build: Some(snap.geoip.build_epoch()),
        ..DecisionRecord::default()
    }
}
