//! `audit replay`: the recorded requests re-decided under a candidate rule
//! set, and those whose decision, reason or basis would change.
//!
//! A decision record keeps the facts the decision was made from, as far as
//! DESIGN §6 has fields for them; the request is rebuilt from those and
//! decided again with the pure [`policy::decide`], on the date of its `ts`.
//! What the record does not keep is taken as follows, and each replayed row
//! says which of these applied (`notes`):
//!
//! - The requester's location is the recorded one: its peer or region is
//!   looked up in the rule set replayed against (a peer's region may have
//!   moved), a GeoIP country is mapped to that rule set's jurisdiction. It
//!   is not located afresh: the address is minimised in the record, so a
//!   `[[network]]` range added since is not applied.
//!   (`requester_not_in_rules` when the recorded peer or region is not in
//!   the rule set; `requester_not_recorded` when a denial before locating,
//!   such as an unknown bucket, left no requester: replayed as unknown.)
//! - A listing's prefix is not recorded: it is replayed as a listing of the
//!   whole bucket, which takes the strictest overlapping classify rule
//!   (`listing_prefix_not_recorded`).
//! - Hashed keys (`audit.key_hash`) cannot be matched to classify prefixes
//!   (`key_hashed`).
//! - A declared or stored category is the recorded category when the
//!   record says it came from there; one that lost to a stricter input is
//!   not recorded. A write refused for its declared category
//!   (`invalid_category`) does not record what was declared, so it cannot
//!   be re-decided; such records are counted, not listed.
//!
//! To show how far this goes, every record is also re-decided under its
//! own rule set, kept beside the log (see [`super::rulesets`]): `fidelity`
//! is `reproduced` when that gives the recorded decision, reason and
//! basis, `not_reproduced` when not, `rules_not_kept` when that rule set is
//! not there.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::query::{scan, Filter, QueryError};
use super::record::{DecisionRecord, Endpoint, Record};
use super::rulesets::RuleStore;
use crate::locate::{Location, Via};
use crate::policy::{self, Facts, Instance, NoTrace};
use crate::rules::model::{Country, RegionId, RuleSet};
use crate::s3::{ConfigResource, CopySource, Destination, Direction, Op, S3Request};
use crate::snapshot::InstanceSettings;

/// A rule set with the instance settings resolved against it.
pub struct Judge {
    pub rules: RuleSet,
    pub instance: Instance,
}

impl Judge {
    pub fn new(rules: RuleSet, settings: &InstanceSettings) -> Result<Judge, String> {
        let region = rules.region_by_id(&settings.region).ok_or_else(|| {
            format!(
                "rule set {}: the instance's region {:?} is not defined",
                rules.version, settings.region
            )
        })?;
        Ok(Judge {
            instance: Instance {
                region,
                default_mode: settings.default_mode,
                unknown_bucket_monitor: settings.unknown_bucket_monitor,
                unknown_location_allow: settings.unknown_location_allow,
            },
            rules,
        })
    }
}

/// What a decision came to, as the record names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub decision: String,
    pub reason: String,
    pub basis: Option<String>,
    pub basis_kind: Option<String>,
}

impl Outcome {
    fn recorded(d: &DecisionRecord) -> Outcome {
        Outcome {
            decision: d.decision.to_string(),
            reason: d.reason.to_string(),
            basis: d.basis.as_deref().map(str::to_owned),
            basis_kind: d.basis_kind.clone().map(Cow::into_owned),
        }
    }

    /// The kind of a basis is the rule's, not the decision's: the same
    /// basis with a reclassified kind is the same decision.
    fn same_decision(&self, other: &Outcome) -> bool {
        (&self.decision, &self.reason, &self.basis)
            == (&other.decision, &other.reason, &other.basis)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decision, self.reason)?;
        if let Some(b) = &self.basis {
            write!(f, " ({b})")?;
        }
        Ok(())
    }
}

/// A recorded request, rebuilt.
pub struct Rebuilt<'r> {
    record: &'r DecisionRecord<'r>,
    request: S3Request,
    destinations: Vec<Destination>,
    stored_category: Option<&'r str>,
    today: Date,
    notes: Vec<&'static str>,
}

/// Rebuilds the request of a decision record, or says why it cannot be.
/// `keys_hashed`: the log's keys are HMACs (`audit.key_hash`).
pub fn rebuild<'r>(
    d: &'r DecisionRecord<'r>,
    keys_hashed: bool,
) -> Result<Rebuilt<'r>, &'static str> {
    // Configuration reads and writes that name no other bucket are control
    // operations whatever their sub-resource, which the record does not
    // keep and the decision does not read: one stands for them all.
    let op = Op::PLAIN
        .into_iter()
        .chain([
            Op::BucketConfig(ConfigResource::Acl),
            Op::ObjectConfig(ConfigResource::Acl),
        ])
        .find(|op| op.name() == d.op)
        .ok_or("unknown_operation")?;
    match &*d.reason {
        "invalid_category" => return Err("declared_category_not_recorded"),
        // Step 12 is the pipeline's, not the rules'.
        "audit_unavailable" => return Err("audit_unavailable"),
        _ => {}
    }
    let today = OffsetDateTime::parse(&d.ts, &Rfc3339)
        .map_err(|_| "bad_timestamp")?
        .date();
    let mut notes = Vec::new();
    let from_category = |source: &str| {
        d.category
            .as_deref()
            .filter(|_| d.category_source.as_deref() == Some(source))
            .map(str::to_owned)
    };
    let key = if keys_hashed && d.key.is_some() {
        notes.push("key_hashed");
        None
    } else {
        d.key.as_deref().map(str::to_owned)
    };
    if op.is_list() {
        notes.push("listing_prefix_not_recorded");
    }
    let request = S3Request {
        op,
        addressing: None,
        bucket: d.bucket.as_deref().map(str::to_owned),
        key,
        list_prefix: None,
        copy_source: d.source.as_ref().map(|s| CopySource {
            bucket: s.bucket.to_string(),
            // The decision reads only the source's bucket.
            key: String::new(),
            version_id: None,
        }),
        declared_category: from_category("declared"),
        presigned: false,
    };
    let destinations = d
        .destinations
        .iter()
        .flatten()
        .map(|e| Destination {
            bucket: e.bucket.to_string(),
            prefix: e.prefix.as_deref().unwrap_or_default().to_owned(),
        })
        .collect();
    Ok(Rebuilt {
        record: d,
        request,
        destinations,
        stored_category: d
            .category
            .as_deref()
            .filter(|_| d.category_source.as_deref() == Some("stored")),
        today,
        notes,
    })
}

impl Rebuilt<'_> {
    /// The recorded requester, if the direction has one: the end that is
    /// not the bucket.
    fn requester(&self) -> Option<Option<&Endpoint<'_>>> {
        match self.request.op.direction() {
            Direction::Egress => Some(self.record.to.as_ref()),
            Direction::Ingress => Some(self.record.from.as_ref()),
            _ => None,
        }
    }

    /// Decides the request under `judge`; adds to `notes` what it had to
    /// assume there.
    pub fn decide(&self, judge: &Judge, notes: &mut Vec<&'static str>) -> Outcome {
        let rules = &judge.rules;
        let requester = match self.requester() {
            None => Location::UNKNOWN,
            Some(None) => {
                notes.push("requester_not_recorded");
                Location::UNKNOWN
            }
            Some(Some(end)) => locate(end, rules).unwrap_or_else(|| {
                notes.push("requester_not_in_rules");
                Location::UNKNOWN
            }),
        };
        let facts = Facts {
            request: &self.request,
            destinations: &self.destinations,
            requester,
            stored_category: self.stored_category,
            today: self.today,
        };
        let d = policy::decide(rules, &judge.instance, &facts, &mut NoTrace);
        let basis = d.basis.map(|b| rules.basis(b));
        Outcome {
            decision: d.verdict.as_str().to_owned(),
            reason: d.reason.as_str().to_owned(),
            basis: basis.map(|b| b.id.to_string()),
            basis_kind: basis.map(|b| b.kind.as_str().to_owned()),
        }
    }
}

/// A recorded requester in terms of `rules`; `None` when its peer or
/// region is not in them.
fn locate(end: &Endpoint, rules: &RuleSet) -> Option<Location> {
    let in_region = |region: RegionId, via: Via| Location {
        region: Some(region),
        country: None,
        jurisdiction: Some(rules.region(region).jurisdiction),
        via: Some(via),
        peer: None,
    };
    match end.via.as_deref() {
        Some("peer") => {
            let peer = rules.peer_by_id(end.peer.as_deref()?)?;
            Some(Location {
                peer: Some(peer),
                ..in_region(rules.peer(peer).region, Via::Peer)
            })
        }
        Some("network") => Some(in_region(
            rules.region_by_id(end.region.as_deref()?)?,
            Via::Network,
        )),
        Some("geoip") => {
            let country = Country::parse(end.country.as_deref()?)?;
            Some(Location {
                region: None,
                country: Some(country),
                jurisdiction: Some(rules.jurisdiction_of(country)),
                via: Some(Via::Geoip),
                peer: None,
            })
        }
        None => Some(Location::UNKNOWN),
        Some(_) => None,
    }
}

/// One listed change.
#[derive(Serialize)]
pub struct Change<'r> {
    pub request_id: &'r str,
    pub ts: &'r str,
    pub tenant: Option<&'r str>,
    pub op: &'r str,
    pub bucket: Option<&'r str>,
    pub key: Option<&'r str>,
    pub old: Outcome,
    pub new: Outcome,
    pub fidelity: Fidelity,
    pub notes: Vec<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    Reproduced,
    NotReproduced,
    RulesNotKept,
}

impl Fidelity {
    fn as_str(self) -> &'static str {
        match self {
            Fidelity::Reproduced => "reproduced",
            Fidelity::NotReproduced => "not_reproduced",
            Fidelity::RulesNotKept => "rules_not_kept",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// One JSON object per changed decision.
    Jsonl,
    /// Aligned columns for a terminal.
    Table,
}

#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub decisions: u64,
    pub changed: u64,
    /// Records that could not be re-decided, by why.
    pub unreplayable: BTreeMap<&'static str, u64>,
    /// How the re-decided records fared under their own rule sets.
    pub fidelity: BTreeMap<Fidelity, u64>,
    /// Recorded rule sets that could not be loaded, and why.
    pub missing_rules: BTreeMap<String, String>,
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replayed: u64 = self.fidelity.values().sum();
        writeln!(
            f,
            "replayed {replayed} of {} decision record(s): {} would change",
            self.decisions, self.changed
        )?;
        for (why, n) in &self.unreplayable {
            writeln!(f, "not replayable ({why}): {n}")?;
        }
        for (fidelity, n) in &self.fidelity {
            writeln!(f, "under their recorded rules: {} {n}", fidelity.as_str())?;
        }
        for (version, why) in &self.missing_rules {
            writeln!(f, "recorded rule set {version}: {why}")?;
        }
        Ok(())
    }
}

/// Re-decides the decision records of the log in `dir` that `filter`
/// selects under `candidate`, and writes those whose decision, reason or
/// basis would change to `out`. The records' own rule sets are loaded from
/// the copies kept beside the log, once each.
pub fn replay(
    dir: &Path,
    filter: &Filter,
    candidate: &Judge,
    settings: &InstanceSettings,
    keys_hashed: bool,
    format: ReplayFormat,
    out: &mut impl Write,
) -> Result<ReplaySummary, QueryError> {
    let store = RuleStore::new(dir);
    let mut recorded_rules: HashMap<String, Option<Judge>> = HashMap::new();
    let mut summary = ReplaySummary::default();
    if format == ReplayFormat::Table {
        writeln!(
            out,
            "{:<24} {:<20} {:<10} {:<16} {:<40} {:<48} NEW",
            "TS", "REQUEST_ID", "TENANT", "OP", "BUCKET/KEY", "OLD"
        )
        .map_err(super::query::to_output)?;
    }
    scan(dir, filter, |rec, _| {
        let Record::Decision(d) = rec else {
            return Ok(ControlFlow::Continue(()));
        };
        summary.decisions += 1;
        let rebuilt = match rebuild(d, keys_hashed) {
            Ok(r) => r,
            Err(why) => {
                *summary.unreplayable.entry(why).or_default() += 1;
                return Ok(ControlFlow::Continue(()));
            }
        };
        let old = Outcome::recorded(d);
        let own = recorded_rules
            .entry(d.rules_version.to_string())
            .or_insert_with(|| {
                match store
                    .load(&d.rules_version)
                    .and_then(|rules| Judge::new(rules, settings))
                {
                    Ok(judge) => Some(judge),
                    Err(why) => {
                        summary
                            .missing_rules
                            .insert(d.rules_version.to_string(), why);
                        None
                    }
                }
            });
        let fidelity = match own {
            Some(judge) if rebuilt.decide(judge, &mut Vec::new()).same_decision(&old) => {
                Fidelity::Reproduced
            }
            Some(_) => Fidelity::NotReproduced,
            None => Fidelity::RulesNotKept,
        };
        *summary.fidelity.entry(fidelity).or_default() += 1;
        let mut notes = rebuilt.notes.clone();
        let new = rebuilt.decide(candidate, &mut notes);
        if new.same_decision(&old) {
            return Ok(ControlFlow::Continue(()));
        }
        summary.changed += 1;
        let change = Change {
            request_id: &d.request_id,
            ts: &d.ts,
            tenant: d.tenant.as_deref(),
            op: &d.op,
            bucket: d.bucket.as_deref(),
            key: d.key.as_deref(),
            old,
            new,
            fidelity,
            notes,
        };
        write_change(out, &change, format).map(|()| ControlFlow::Continue(()))
    })?;
    out.flush().map_err(super::query::to_output)?;
    Ok(summary)
}

fn write_change(out: &mut impl Write, c: &Change<'_>, format: ReplayFormat) -> io::Result<()> {
    match format {
        ReplayFormat::Jsonl => {
            serde_json::to_writer(&mut *out, c)?;
            out.write_all(b"\n")
        }
        ReplayFormat::Table => {
            let object = format!("{}/{}", c.bucket.unwrap_or("-"), c.key.unwrap_or(""));
            let mut new = c.new.to_string();
            if c.fidelity != Fidelity::Reproduced || !c.notes.is_empty() {
                let mut caveats = vec![c.fidelity.as_str()];
                caveats.extend(&c.notes);
                new = format!("{new} [{}]", caveats.join(", "));
            }
            // Bucket names and keys come from clients: no control
            // characters reach the terminal.
            let clean = |s: &str| s.replace(|ch: char| ch.is_control(), "?");
            writeln!(
                out,
                "{:<24} {:<20} {:<10} {:<16} {:<40} {:<48} {}",
                c.ts,
                clean(c.request_id),
                clean(c.tenant.unwrap_or("-")),
                c.op,
                clean(&object),
                c.old.to_string(),
                new
            )
        }
    }
}
