//! A decision as the audit trail (and explain) shows it: ids become names,
//! client addresses are minimised, keys hashed when configured.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::audit::record::{
    self, ClientIpMode, DecisionRecord, DestinationEntry, Endpoint, SourceEntry, Text,
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

fn endpoint<'a>(rules: &'a RuleSet, l: &'a Location) -> Endpoint<'a> {
    Endpoint {
        region: l.region.map(|r| Text::Borrowed(&rules.region(r).id)),
        country: l.country.as_ref().map(|c| c.as_str().into()),
        jurisdiction: l.jurisdiction.map(|j| rules.jurisdiction_name(j).into()),
        via: l.via.map(|v| v.as_str().into()),
        peer: l.peer.map(|p| Text::Borrowed(&rules.peer(p).id)),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn decision_record<'a>(
    settings: &'a RecordSettings,
    snap: &'a Snapshot,
    facts: &'a Facts<'_>,
    d: &'a Decision,
    client_ip: IpAddr,
    request_id: &'a str,
    ts: OffsetDateTime,
    status: Option<u16>,
) -> DecisionRecord<'a> {
    let rules = &snap.rules;
    let req = facts.request;
    let region = |r| Text::Borrowed(&rules.region(r).id);
    let key = req.key.as_deref().map(|k| {
        if settings.key_hash {
            record::hash_key(k, &settings.hmac_key).into()
        } else {
            k.into()
        }
    });
    let source = req.copy_source.as_ref().map(|cs| {
        let from = d
            .source
            .map(|b| rules.bucket(b).region.unwrap_or(snap.instance.region));
        SourceEntry {
            bucket: cs.bucket.as_str().into(),
            region: from.map(region),
            jurisdiction: from
                .map(|r| rules.jurisdiction_name(rules.region(r).jurisdiction).into()),
        }
    });
    let destinations = (!d.destinations.is_empty()).then(|| {
        d.destinations
            .iter()
            .map(|o| DestinationEntry {
                bucket: o.bucket.as_str().into(),
                prefix: Some(o.prefix.as_str().into()),
                region: o.to.region.map(region),
                jurisdiction: o.to.jurisdiction.map(|j| rules.jurisdiction_name(j).into()),
                decision: o.verdict.as_str().into(),
                reason: o.reason.as_str().into(),
                basis: o.basis.map(|b| Text::Borrowed(&rules.basis(b).id)),
            })
            .collect()
    });
    let basis = d.basis.map(|b| rules.basis(b));
    DecisionRecord {
        ts: record::timestamp(ts).into(),
        instance: settings.instance.as_str().into(),
        request_id: request_id.into(),
        tenant: d.tenant.map(|t| Text::Borrowed(&rules.tenant(t).id)),
        op: req.op.name().into(),
        direction: req.op.direction().as_str().into(),
        bucket: req.bucket.as_deref().map(Text::Borrowed),
        key,
        source,
        destinations,
        category: d.category.map(|c| Text::Borrowed(&rules.category(c).id)),
        category_source: d.category_source.map(|s| s.as_str().into()),
        from: d.from.as_ref().map(|l| endpoint(rules, l)),
        to: d.to.as_ref().map(|l| endpoint(rules, l)),
        client_ip: Some(
            record::minimize_ip(client_ip, settings.client_ip, &settings.hmac_key).into(),
        ),
        decision: d.verdict.as_str().into(),
        reason: d.reason.as_str().into(),
        basis: basis.map(|b| Text::Borrowed(&b.id)),
        basis_kind: basis.map(|b| b.kind.as_str().into()),
        mode: d.mode.map(|m| m.as_str().into()),
        status,
        rules_version: rules.version.as_str().into(),
        geoip_build: Some(snap.geoip.build_epoch()),
        ..DecisionRecord::default()
    }
}
