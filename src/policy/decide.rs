//! DESIGN §3 steps 1–11. Step 12 (`audit_unavailable`) belongs to the
//! pipeline: only it knows whether the audit trail took the record.
//!
//! The egress and ingress paths look each name up once, touch the `*` bases
//! only when the tenant's own give no answer, and allocate nothing; every
//! trace detail is built inside a closure, which `NoTrace` never calls.
//!
//! Choices where DESIGN is silent:
//! - Ties in step 3 go to the more specific input: declared or stored, then
//!   classify, then the bucket's category, then the tenant's default, then a
//!   source's `max_category` (a worst-case assumption names the category
//!   only when it is strictly stricter than everything actually known).
//! - A copy, and a replication destination owned by another tenant, move the
//!   source tenant's data into the receiving tenant's bucket: T is the
//!   source tenant, both tenants' home regions pin it, the stricter mode
//!   applies, and the decision's `tenant` is the source tenant.
//! - `mode` is the mode in force for the transfer's tenants today: a monitor
//!   mode past its `monitor_until` is reported as `enforce`; of two monitor
//!   modes the one ending first is the stricter.
//! - Replication's top-level outcome is the first destination with the worst
//!   verdict (deny, then monitor-deny), else the last destination.
//! - When step 1 fails, every replication destination is listed with the
//!   request's verdict and `unknown_bucket`; the unknown ones have no tenant.
//! - A configuration write that names no destination names no other bucket,
//!   which DESIGN's operation table makes a control operation.

use time::Date;

use super::{
    CategorySource, Decision, DestinationOutcome, Facts, Instance, Reason, Trace, Verdict,
};
use crate::locate::{Location, Via};
use crate::rules::model::{
    Basis, BasisId, BasisKind, BucketHot, BucketId, CategoryId, CrossBorder, Day, Jurisdiction,
    Mode, RegionId, RuleSet, TenantHot, TenantId, Validity,
};
use crate::s3::Direction;

/// The decision for one request (DESIGN §3 steps 1–11), tracing each step
/// taken. Pure: "today" comes with the facts.
pub fn decide(
    rules: &RuleSet,
    inst: &Instance,
    facts: &Facts<'_>,
    trace: &mut impl Trace,
) -> Decision {
    let ctx = Ctx {
        rules,
        inst,
        today: facts.today,
    };
    let req = facts.request;
    let op = req.op;
    let direction = op.direction();

    let Some(name) = req.bucket.as_deref() else {
        if direction == Direction::Control {
            trace.step(2, "control", || {
                format!("{} names no bucket and moves no object data", op.name())
            });
            return blank(Verdict::Allow, Reason::ControlOperation);
        }
        // Classification gives every data-moving operation a bucket; should
        // one ever lack it, refuse rather than guess whose data it is.
        trace.step(1, "bucket", || format!("{} names no bucket", op.name()));
        return ctx.unknown_bucket(None, None, Vec::new(), trace);
    };
    let bucket = ctx.lookup("request", name, trace);
    let source = match (direction, &req.copy_source) {
        (Direction::Copy, Some(s)) => ctx.lookup("copy source", &s.bucket, trace),
        (Direction::Copy, None) => {
            trace.step(1, "bucket", || "the copy names no copy source".into());
            None
        }
        _ => None,
    };
    let destinations: Vec<Option<&BucketHot>> = if direction == Direction::Replication {
        facts
            .destinations
            .iter()
            .map(|d| ctx.lookup("destination", &d.bucket, trace))
            .collect()
    } else {
        Vec::new()
    };
    let all_known = (direction != Direction::Copy || source.is_some())
        && destinations.iter().all(Option::is_some);
    let Some(b) = bucket.filter(|_| all_known) else {
        let verdict = ctx.unknown_bucket_verdict();
        let outcomes = facts
            .destinations
            .iter()
            .zip(&destinations)
            .map(|(d, known)| DestinationOutcome {
                bucket: d.bucket.clone(),
                prefix: d.prefix.clone(),
                tenant: known.map(|b| b.tenant().id),
                to: known.map_or(Location::UNKNOWN, |b| ctx.bucket_end(b)),
                category: None,
                verdict,
                reason: Reason::UnknownBucket,
                basis: None,
            })
            .collect();
        return ctx.unknown_bucket(
            bucket.map(BucketHot::id),
            source.map(BucketHot::id),
            outcomes,
            trace,
        );
    };

    // The data comes from the copy source, else from the request's bucket.
    let data = source.unwrap_or(b);
    let here = ctx.bucket_end(b);
    let (from, to, pin) = match direction {
        Direction::Control => return ctx.control(b, "moves no object data", trace),
        Direction::Replication => return ctx.replicate(facts, b, &destinations, trace),
        Direction::Egress => (here, facts.requester, None),
        Direction::Ingress => (facts.requester, here, Some(ctx.bucket_region(b))),
        Direction::Copy => (ctx.bucket_end(data), here, Some(ctx.bucket_region(b))),
    };
    let leg = Leg {
        tenant: data.tenant(),
        receiver: (b.tenant().id != data.tenant().id).then_some(b.tenant()),
        from,
        to,
        pin,
        category: CategoryInput {
            bucket: b,
            probe: if op.is_list() {
                Some(Probe::ListPrefix(req.list_prefix.as_deref().unwrap_or("")))
            } else {
                req.key.as_deref().map(Probe::Key)
            },
            declared: req.declared_category.as_deref().filter(|_| op.is_write()),
            stored: facts
                .stored_category
                .filter(|_| direction == Direction::Egress),
            hidden_in: op.hides_object_category().then_some(data),
        },
    };
    ctx.evaluate(&leg, trace)
        .decision(b.id(), source.map(BucketHot::id), Vec::new())
}

/// What every step reads besides its own inputs.
struct Ctx<'r> {
    rules: &'r RuleSet,
    inst: &'r Instance,
    today: Date,
}

/// One transfer: tenant T's data moving from one end to the other.
struct Leg<'a> {
    /// Whose data moves: the source bucket's tenant, whose bases apply.
    tenant: &'a TenantHot,
    /// The receiving bucket's tenant when it is another one: its home
    /// regions and mode bind too.
    receiver: Option<&'a TenantHot>,
    from: Location,
    to: Location,
    /// The region the data comes to rest in (not for egress): step 4.
    pin: Option<RegionId>,
    category: CategoryInput<'a>,
}

/// The inputs of step 3.
struct CategoryInput<'a> {
    /// The bucket whose own category and classify rules describe the data:
    /// the one it is read from or written to.
    bucket: &'a BucketHot,
    probe: Option<Probe<'a>>,
    /// Only on writes.
    declared: Option<&'a str>,
    /// Only on egress.
    stored: Option<&'a str>,
    /// Where the object's own category cannot be seen: the bucket it comes
    /// from, whose `max_category` stands in for it.
    hidden_in: Option<&'a BucketHot>,
}

#[derive(Clone, Copy)]
enum Probe<'a> {
    Key(&'a str),
    ListPrefix(&'a str),
}

/// Steps 3–11 for one leg.
#[derive(Clone, Copy)]
struct Outcome {
    tenant: TenantId,
    from: Location,
    to: Location,
    category: Option<(CategoryId, CategorySource)>,
    verdict: Verdict,
    reason: Reason,
    basis: Option<BasisId>,
    mode: Mode,
}

impl Outcome {
    fn decision(
        &self,
        bucket: BucketId,
        source: Option<BucketId>,
        destinations: Vec<DestinationOutcome>,
    ) -> Decision {
        Decision {
            verdict: self.verdict,
            reason: self.reason,
            tenant: Some(self.tenant),
            bucket: Some(bucket),
            source,
            category: self.category.map(|(c, _)| c),
            category_source: self.category.map(|(_, s)| s),
            from: Some(self.from),
            to: Some(self.to),
            basis: self.basis,
            mode: Some(self.mode),
            destinations,
        }
    }
}

impl<'r> Ctx<'r> {
    /// Step 1 for one bucket.
    fn lookup(&self, role: &str, name: &str, trace: &mut impl Trace) -> Option<&'r BucketHot> {
        let found = self.rules.bucket_hot_by_name(name);
        trace.step(1, "bucket", || match found {
            Some(b) => format!(
                "{role} bucket {name}: tenant {}, in {}",
                self.rules.tenant(b.tenant().id).id,
                show(self.rules, &self.bucket_end(b))
            ),
            None => format!("{role} bucket {name}: no tenant owns it"),
        });
        found
    }

    fn unknown_bucket_verdict(&self) -> Verdict {
        if self.inst.unknown_bucket_monitor {
            Verdict::MonitorDeny
        } else {
            Verdict::Deny
        }
    }

    fn unknown_bucket(
        &self,
        bucket: Option<BucketId>,
        source: Option<BucketId>,
        destinations: Vec<DestinationOutcome>,
        trace: &mut impl Trace,
    ) -> Decision {
        let verdict = self.unknown_bucket_verdict();
        trace.step(1, "bucket", || match verdict {
            Verdict::MonitorDeny => "unknown_bucket = monitor: forwarded as monitor-deny".into(),
            _ => "unknown_bucket = deny".into(),
        });
        Decision {
            bucket,
            source,
            destinations,
            ..blank(verdict, Reason::UnknownBucket)
        }
    }

    /// Step 2.
    fn control(&self, b: &BucketHot, why: &str, trace: &mut impl Trace) -> Decision {
        let op_tenant = b.tenant();
        trace.step(2, "control", || format!("the operation {why}"));
        Decision {
            tenant: Some(op_tenant.id),
            bucket: Some(b.id()),
            mode: Some(self.applied_mode(op_tenant, None)),
            ..blank(Verdict::Allow, Reason::ControlOperation)
        }
    }

    fn bucket_region(&self, b: &BucketHot) -> RegionId {
        b.region().unwrap_or(self.inst.region)
    }

    fn bucket_end(&self, b: &BucketHot) -> Location {
        let region = self.bucket_region(b);
        Location {
            region: Some(region),
            country: None,
            jurisdiction: Some(self.rules.region(region).jurisdiction),
            via: Some(if b.region().is_some() {
                Via::Bucket
            } else {
                Via::Instance
            }),
            peer: None,
        }
    }

    /// One outcome per destination; any denied one denies the request.
    fn replicate(
        &self,
        facts: &Facts<'_>,
        b: &BucketHot,
        destinations: &[Option<&BucketHot>],
        trace: &mut impl Trace,
    ) -> Decision {
        let from = self.bucket_end(b);
        let mut outcomes = Vec::with_capacity(destinations.len());
        let mut top: Option<Outcome> = None;
        // Step 1 has made sure every destination is known.
        for (d, &dest) in facts.destinations.iter().zip(destinations.iter().flatten()) {
            let leg = Leg {
                tenant: b.tenant(),
                receiver: (dest.tenant().id != b.tenant().id).then_some(dest.tenant()),
                from,
                to: self.bucket_end(dest),
                pin: Some(self.bucket_region(dest)),
                category: CategoryInput {
                    bucket: b,
                    probe: Some(Probe::ListPrefix(&d.prefix)),
                    declared: None,
                    stored: None,
                    hidden_in: Some(b),
                },
            };
            let out = self.evaluate(
                &leg,
                &mut Labeled {
                    inner: &mut *trace,
                    label: &d.bucket,
                },
            );
            outcomes.push(DestinationOutcome {
                bucket: d.bucket.clone(),
                prefix: d.prefix.clone(),
                tenant: Some(dest.tenant().id),
                to: out.to,
                category: out.category.map(|(c, _)| c),
                verdict: out.verdict,
                reason: out.reason,
                basis: out.basis,
            });
            // The first destination with the worst verdict; of allows, the last.
            let replaces = top.is_none_or(|t| {
                let (new, old) = (severity(out.verdict), severity(t.verdict));
                new > old || (new, old) == (0, 0)
            });
            if replaces {
                top = Some(out);
            }
        }
        match top {
            Some(top) => top.decision(b.id(), None, outcomes),
            None => self.control(b, "names no other bucket", trace),
        }
    }

    /// Steps 3–11.
    fn evaluate(&self, leg: &Leg<'_>, trace: &mut impl Trace) -> Outcome {
        let mode = self.applied_mode(leg.tenant, leg.receiver);
        let (category, verdict, reason, basis) = match self.categorize(&leg.category, trace) {
            // Bad input, not a transfer decision: never monitored.
            Err(reason) => (None, Verdict::Deny, reason, None),
            Ok(c) => match self.judge(leg, c.0, trace) {
                Ok((reason, basis)) => (Some(c), Verdict::Allow, reason, basis),
                Err(reason) => (Some(c), self.monitor(leg, mode, trace), reason, None),
            },
        };
        Outcome {
            tenant: leg.tenant.id,
            from: leg.from,
            to: leg.to,
            category,
            verdict,
            reason,
            basis,
            mode,
        }
    }

    /// Step 3.
    fn categorize(
        &self,
        input: &CategoryInput<'_>,
        trace: &mut impl Trace,
    ) -> Result<(CategoryId, CategorySource), Reason> {
        let rules = self.rules;
        let bucket = input.bucket;
        let base = match bucket.category() {
            Some(c) => (c, CategorySource::Bucket),
            None => (
                bucket.tenant().default_category,
                CategorySource::TenantDefault,
            ),
        };
        let cold = || rules.bucket(bucket.id());
        let classify = input
            .probe
            .zip(bucket.classify(rules))
            .and_then(|(p, index)| match p {
                Probe::Key(k) => index.longest(k),
                Probe::ListPrefix(p) => index.strictest_overlapping(p),
            });
        let declared = match input.declared.map(|d| (d, rules.category_by_id(d))) {
            None => None,
            Some((_, Some(c))) if c <= bucket.max_category() => Some(c),
            Some((d, c)) => {
                trace.step(3, "category", || match c {
                    None => format!("declared category {d:?} is unknown to the rules"),
                    Some(c) => format!(
                        "declared category {} is above bucket {}'s max_category {}",
                        cat(rules, c),
                        cold().name,
                        cat(rules, bucket.max_category())
                    ),
                });
                return Err(Reason::InvalidCategory);
            }
        };
        // An unknown stored value may name something stricter than any
        // category this rule set knows.
        let stored = input.stored.map(|s| {
            rules
                .category_by_id(s)
                .unwrap_or_else(|| rules.strictest_category())
        });
        let ceiling = input.hidden_in.map(BucketHot::max_category);
        let won = [
            classify.map(|(_, c)| (c, CategorySource::Classify)),
            declared.map(|c| (c, CategorySource::Declared)),
            stored.map(|c| (c, CategorySource::Stored)),
            ceiling.map(|c| (c, CategorySource::MaxCategory)),
        ]
        .into_iter()
        .flatten()
        .fold(base, |best, next| {
            if precedence(next) > precedence(best) {
                next
            } else {
                best
            }
        });

        trace.step(3, "category", || {
            let mut parts = vec![match base {
                (c, CategorySource::Bucket) => {
                    format!("bucket {}: {}", cold().name, cat(rules, c))
                }
                (c, _) => format!(
                    "tenant {} default: {}",
                    rules.tenant(bucket.tenant().id).id,
                    cat(rules, c)
                ),
            }];
            parts.extend(input.probe.map(|p| {
                let (what, probe) = match p {
                    Probe::Key(k) => ("longest classify prefix of key", k),
                    Probe::ListPrefix(p) => ("strictest classify prefix overlapping", p),
                };
                match classify {
                    Some((prefix, c)) => {
                        format!("{what} {probe:?}: {prefix:?} → {}", cat(rules, c))
                    }
                    None => format!("{what} {probe:?}: none"),
                }
            }));
            parts.extend(declared.map(|c| format!("declared: {}", cat(rules, c))));
            parts.extend(input.stored.zip(stored).map(|(raw, c)| {
                let unknown = if rules.category_by_id(raw).is_none() {
                    " (unknown: counts as the strictest)"
                } else {
                    ""
                };
                format!("stored {raw:?}: {}{unknown}", cat(rules, c))
            }));
            parts.extend(input.hidden_in.map(|b| {
                format!(
                    "object category not visible: {}'s max_category {}",
                    rules.bucket(b.id()).name,
                    cat(rules, b.max_category())
                )
            }));
            format!(
                "{} → {} (from {})",
                parts.join("; "),
                cat(rules, won.0),
                won.1.as_str()
            )
        });
        Ok(won)
    }

    /// Steps 4–10: `Ok` allows with a reason (and basis), `Err` denies.
    fn judge(
        &self,
        leg: &Leg<'_>,
        category: CategoryId,
        trace: &mut impl Trace,
    ) -> Result<(Reason, Option<BasisId>), Reason> {
        let rules = self.rules;
        if let Some(region) = leg.pin {
            let at_home = |t: &TenantHot| t.is_home(rules, region);
            let pinned = at_home(leg.tenant) && leg.receiver.is_none_or(at_home);
            trace.step(4, "residency_pin", || {
                let homes = |t: &TenantHot| {
                    let tenant = rules.tenant(t.id);
                    let regions: Vec<&str> = tenant
                        .home_regions
                        .iter()
                        .map(|r| &*rules.region(*r).id)
                        .collect();
                    format!("{} [{}]", tenant.id, regions.join(", "))
                };
                let owners = match leg.receiver {
                    Some(r) => format!("{} and {}", homes(leg.tenant), homes(r)),
                    None => homes(leg.tenant),
                };
                let verdict = if pinned { "is" } else { "is not" };
                format!(
                    "{} {verdict} a home region of {owners}",
                    rules.region(region).id
                )
            });
            if !pinned {
                return Err(Reason::ResidencyPin);
            }
        }

        let cross = rules.category(category).cross_border;
        let route = leg.from.jurisdiction.zip(leg.to.jurisdiction);
        let lost = route.is_none() && cross != CrossBorder::Free;
        trace.step(5, "location", || {
            let ends = format!(
                "from {}, to {}",
                show(rules, &leg.from),
                show(rules, &leg.to)
            );
            match (lost, self.inst.unknown_location_allow) {
                (false, _) => ends,
                (true, allow) => format!(
                    "{ends}; {} is not free and geoip.unknown = {}",
                    cat(rules, category),
                    if allow { "allow" } else { "deny" }
                ),
            }
        });
        if lost {
            return if self.inst.unknown_location_allow {
                Ok((Reason::UnknownLocation, None))
            } else {
                Err(Reason::UnknownLocation)
            };
        }

        let same = route.is_some_and(|(f, t)| f == t);
        trace.step(6, "same_jurisdiction", || {
            let name =
                |j: Option<Jurisdiction>| j.map_or("unknown", |j| rules.jurisdiction_name(j));
            let relation = if same { "=" } else { "≠" };
            format!(
                "{} {relation} {}",
                name(leg.from.jurisdiction),
                name(leg.to.jurisdiction)
            )
        });
        if same {
            return Ok((Reason::SameJurisdiction, None));
        }

        let free_export = leg.from.jurisdiction.is_some_and(|j| rules.export_free(j));
        trace.step(7, "export", || match leg.from.jurisdiction {
            Some(j) if free_export => format!("{} has export = free", rules.jurisdiction_name(j)),
            Some(j) => format!("{} restricts export", rules.jurisdiction_name(j)),
            None => "the data comes from an unknown location".into(),
        });
        if free_export {
            return Ok((Reason::UnrestrictedExport, None));
        }

        trace.step(8, "category_rule", || {
            format!("{} is {}", cat(rules, category), cross.as_str())
        });
        // An unknown end gets past step 5 only with a free category.
        let Some(route) = route.filter(|_| cross != CrossBorder::Free) else {
            return Ok((Reason::UnrestrictedCategory, None));
        };

        let never = cross == CrossBorder::Never;
        match self.choose_basis(leg.tenant, route, category, never, trace) {
            Some(id) => Ok((Reason::LegalBasis, Some(id))),
            None if never => Err(Reason::ForbiddenCategory),
            None => Err(Reason::NoLegalBasis),
        }
    }

    /// Step 10, or step 9 when `never`: then only a PIPL security assessment
    /// naming the category itself can open it.
    fn choose_basis(
        &self,
        tenant: &TenantHot,
        (from, to): (Jurisdiction, Jurisdiction),
        category: CategoryId,
        never: bool,
        trace: &mut impl Trace,
    ) -> Option<BasisId> {
        let rules = self.rules;
        let (step, name) = if never {
            (9, "never_category")
        } else {
            (10, "legal_basis")
        };
        trace.step(step, name, || {
            let route = format!(
                "{} → {} for tenant {}",
                rules.jurisdiction_name(from),
                rules.jurisdiction_name(to),
                rules.tenant(tenant.id).id
            );
            if never {
                format!(
                    "{} is never: only a valid pipl-security-assessment naming it opens {route}",
                    cat(rules, category)
                )
            } else {
                format!("{} needs a legal basis {route}", cat(rules, category))
            }
        });
        // The `*` list is looked up only if the tenant's own has no answer.
        let candidates = tenant
            .bases_for(rules, from, to)
            .iter()
            .chain(std::iter::once_with(|| rules.star_bases(from, to)).flatten());
        // Derogations apply only when nothing else does, so even a `*` basis
        // outranks the tenant's own derogation: the first valid derogation
        // waits here until both lists are exhausted.
        let mut reserve: Option<BasisId> = None;
        let today = Day::of(self.today);
        for route_basis in candidates {
            let id = route_basis.id;
            let admissible = if never {
                route_basis.kind == BasisKind::PiplSecurityAssessment
                    && route_basis.names_category(rules, category)
            } else {
                route_basis.covers_category(rules, category)
            };
            if !admissible || !route_basis.valid_on(rules, today) {
                trace.step(step, name, || {
                    let basis = rules.basis(id);
                    let why = match basis.validity(self.today) {
                        _ if !admissible && never => {
                            "not a pipl-security-assessment naming the category"
                        }
                        _ if !admissible => "category not covered",
                        Validity::NotYetValid => "not yet valid",
                        Validity::Expired => "expired",
                        Validity::Revoked => "revoked",
                        // Not reached: `valid_on` agrees with `validity`
                        // (`rules::model`'s tests).
                        Validity::Valid => "valid",
                    };
                    format!("{}: rejected, {why}", describe(rules, basis))
                });
                continue;
            }
            if route_basis.kind != BasisKind::Derogation {
                trace.step(step, name, || match reserve {
                    Some(r) => format!(
                        "{}: chosen; derogation {} outranked",
                        describe(rules, rules.basis(id)),
                        rules.basis(r).id
                    ),
                    None => format!("{}: chosen", describe(rules, rules.basis(id))),
                });
                return Some(id);
            }
            trace.step(step, name, || match reserve {
                Some(r) => format!(
                    "{}: derogation outranked by {}",
                    describe(rules, rules.basis(id)),
                    rules.basis(r).id
                ),
                None => format!(
                    "{}: held back, a derogation applies only when nothing else does",
                    describe(rules, rules.basis(id))
                ),
            });
            reserve = reserve.or(Some(id));
        }
        trace.step(step, name, || match reserve {
            Some(r) => format!(
                "{}: chosen, nothing else applies",
                describe(rules, rules.basis(r))
            ),
            None => "no valid basis covers the transfer".into(),
        });
        reserve
    }

    /// The mode in force today for T and, in a transfer to another tenant's
    /// bucket, the receiver: enforce beats monitor, and of two monitors the
    /// one that ends first.
    fn applied_mode(&self, tenant: &TenantHot, receiver: Option<&TenantHot>) -> Mode {
        let in_force = |t: &TenantHot| match self.configured_mode(t) {
            Mode::Monitor { until } if self.today <= until => Mode::Monitor { until },
            _ => Mode::Enforce,
        };
        match (in_force(tenant), receiver.map(in_force)) {
            (mode, None) => mode,
            (Mode::Monitor { until: a }, Some(Mode::Monitor { until: b })) => {
                Mode::Monitor { until: a.min(b) }
            }
            _ => Mode::Enforce,
        }
    }

    fn configured_mode(&self, tenant: &TenantHot) -> Mode {
        tenant.mode.unwrap_or(self.inst.default_mode)
    }

    /// Step 11, for a deny of steps 4–10.
    fn monitor(&self, leg: &Leg<'_>, mode: Mode, trace: &mut impl Trace) -> Verdict {
        trace.step(11, "monitor", || {
            let show_mode = |t: &TenantHot| {
                let shown = match self.configured_mode(t) {
                    Mode::Monitor { until } => format!("monitor until {until}"),
                    Mode::Enforce => "enforce".into(),
                };
                format!("tenant {}: {shown}", self.rules.tenant(t.id).id)
            };
            let mut modes = show_mode(leg.tenant);
            if let Some(r) = leg.receiver {
                modes = format!("{modes}; {}", show_mode(r));
            }
            let effect = match mode {
                Mode::Monitor { .. } => "forwarded as monitor-deny",
                Mode::Enforce => "denied",
            };
            format!("{modes}; today {}: {effect}", self.today)
        });
        match mode {
            Mode::Monitor { .. } => Verdict::MonitorDeny,
            Mode::Enforce => Verdict::Deny,
        }
    }
}

/// A decision that names nothing but its verdict and reason.
fn blank(verdict: Verdict, reason: Reason) -> Decision {
    Decision {
        verdict,
        reason,
        tenant: None,
        bucket: None,
        source: None,
        category: None,
        category_source: None,
        from: None,
        to: None,
        basis: None,
        mode: None,
        destinations: Vec::new(),
    }
}

/// Step 3's order: the stricter category, then the more specific input.
fn precedence((category, source): (CategoryId, CategorySource)) -> (CategoryId, u8) {
    let specificity = match source {
        CategorySource::Declared | CategorySource::Stored => 4,
        CategorySource::Classify => 3,
        CategorySource::Bucket => 2,
        CategorySource::TenantDefault => 1,
        CategorySource::MaxCategory => 0,
    };
    (category, specificity)
}

/// A replication reports its worst destination.
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Allow => 0,
        Verdict::MonitorDeny => 1,
        Verdict::Deny => 2,
    }
}

fn cat(rules: &RuleSet, c: CategoryId) -> &str {
    &rules.category(c).id
}

fn show(rules: &RuleSet, loc: &Location) -> String {
    let Some(j) = loc.jurisdiction else {
        return "an unknown location".into();
    };
    let details: Vec<String> = [
        loc.region.map(|r| format!("region {}", rules.region(r).id)),
        loc.country.map(|c| format!("country {c}")),
        loc.peer.map(|p| format!("peer {}", rules.peer(p).id)),
        loc.via.map(|v| format!("via {}", v.as_str())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let name = rules.jurisdiction_name(j);
    if details.is_empty() {
        name.to_owned()
    } else {
        format!("{name} ({})", details.join(", "))
    }
}

fn describe(rules: &RuleSet, b: &Basis) -> String {
    let tenant = b.tenant.map_or("*", |t| &*rules.tenant(t).id);
    let revoked = b
        .revoked_on
        .map(|d| format!(", revoked {d}"))
        .unwrap_or_default();
    format!(
        "basis {} ({}, tenant {tenant}, valid {}..={}{revoked})",
        b.id,
        b.kind.as_str(),
        b.valid_from,
        b.valid_until
    )
}

/// Prefixes a replication destination's bucket to the steps taken for it.
struct Labeled<'t, T> {
    inner: &'t mut T,
    label: &'t str,
}

impl<T: Trace> Trace for Labeled<'_, T> {
    fn step(&mut self, step: u8, name: &'static str, detail: impl FnOnce() -> String) {
        let label = self.label;
        self.inner
            .step(step, name, || format!("destination {label}: {}", detail()));
    }
}
