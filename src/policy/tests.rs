//! DESIGN §3 steps 1–11, case by case, against the world of `testkit`.
//! Every decision is made twice, with and without a trace, and must agree.

use std::collections::HashSet;

use time::macros::date;

use super::testkit::*;
use super::CategorySource::{self, *};
use super::Reason::*;
use super::Verdict::*;
use super::{Decision, Reason, TraceStep, Verdict};
use crate::locate::{Location, Via};
use crate::rules::model::BasisKind::{self, *};
use crate::rules::model::{Basis, BucketId, CategoryId, Jurisdiction, Mode, RuleSet};
use crate::s3::{ConfigResource, Op};

const MONITOR_2026: Mode = Mode::Monitor {
    until: date!(2026 - 12 - 31),
};

fn world() -> RuleSet {
    build(tables())
}

fn id(rules: &RuleSet, bucket: &str) -> Option<BucketId> {
    rules.bucket_by_name(bucket)
}

fn chosen<'r>(rules: &'r RuleSet, d: &Decision) -> Option<&'r str> {
    d.basis.map(|b| &*rules.basis(b).id)
}

/// A basis of acme's for mainland China → the EU.
fn acme(id: &str, kind: BasisKind) -> Basis {
    basis(id, Some(ACME), kind, CN, &[EU])
}

/// A `*` basis for mainland China → the EU.
fn anyone(id: &str, kind: BasisKind) -> Basis {
    basis(id, None, kind, CN, &[EU])
}

/// An egress of acme's content from mainland China to Germany.
fn to_germany(rules: &RuleSet) -> Ask {
    get("acme-data", "k").by(geo(rules, "DE"))
}

fn monitored(a: Ask) -> Ask {
    a.instance(|i| i.default_mode = MONITOR_2026)
}

fn unknown(a: Ask) -> Ask {
    a.by(Location::UNKNOWN)
}

#[track_caller]
fn check(label: &str, rules: &RuleSet, a: &Ask, verdict: Verdict, reason: Reason) -> Decision {
    let d = a.decide(rules);
    assert_eq!((d.verdict, d.reason), (verdict, reason), "{label}: {d:#?}");
    d
}

/// Rows of (label, request, verdict, reason) against one rule set.
#[track_caller]
fn check_all(rules: &RuleSet, cases: &[(&str, Ask, Verdict, Reason)]) {
    for (label, a, verdict, reason) in cases {
        check(label, rules, a, *verdict, *reason);
    }
}

// ---- every reason ---------------------------------------------------------

#[test]
fn every_reason_but_audit_unavailable_is_reachable() {
    let w = world();
    let scc = with_bases([acme("scc", Scc)]);
    let de = geo(&w, "DE");
    let monitor_unknown = |a: Ask| a.instance(|i| i.unknown_bucket_monitor = true);
    let allow_unknown = |a: Ask| a.instance(|i| i.unknown_location_allow = true);
    #[rustfmt::skip]
    let cases: Vec<(&RuleSet, Ask, Verdict, Reason)> = vec![
        (&w,   get("nobody", "k"),                            Deny,        UnknownBucket),
        (&w,   monitor_unknown(get("nobody", "k")),           MonitorDeny, UnknownBucket),
        (&w,   ask(Op::ListBuckets, None, None),              Allow,       ControlOperation),
        (&w,   put("acme-data", "k").declared("secret"),      Deny,        InvalidCategory),
        (&w,   put("acme-hk", "k").by(geo(&w, "HK")),         Deny,        ResidencyPin),
        (&w,   unknown(get("acme-data", "k")),                Deny,        UnknownLocation),
        (&w,   allow_unknown(unknown(get("acme-data", "k"))), Allow,       UnknownLocation),
        (&w,   get("acme-data", "k"),                         Allow,       SameJurisdiction),
        (&w,   get("initech-us", "k"),                        Allow,       UnrestrictedExport),
        (&w,   get("acme-www", "k").by(de),                   Allow,       UnrestrictedCategory),
        (&w,   get("acme-hr", "k").by(de),                    Deny,        ForbiddenCategory),
        (&scc, to_germany(&scc),                              Allow,       LegalBasis),
        (&w,   to_germany(&w),                                Deny,        NoLegalBasis),
    ];
    let mut seen = HashSet::new();
    for (rules, a, verdict, reason) in &cases {
        let d = check(reason.as_str(), rules, a, *verdict, *reason);
        let status = if *reason == InvalidCategory { 400 } else { 403 };
        assert_eq!(d.reason.deny_status(), status);
        seen.insert(*reason);
    }
    let unreached: Vec<Reason> = Reason::ALL
        .into_iter()
        .filter(|r| !seen.contains(r))
        .collect();
    // Step 12 is the pipeline's: only it knows whether the record was taken;
    // and a malformed body stops a request before the steps run.
    assert_eq!(unreached, [AuditUnavailable, BadRequest]);
}

#[test]
fn a_malformed_request_names_its_tenant_and_nothing_it_did_not_find() {
    let w = world();
    let d = super::malformed(&w, &put("acme-data", "k").request);
    assert_eq!((d.verdict, d.reason), (Deny, BadRequest));
    assert_eq!(d.reason.deny_status(), 400);
    assert_eq!(d.tenant, w.tenant_by_id("acme"));
    assert!(d.category.is_none() && d.from.is_none() && d.to.is_none());
    assert_eq!(
        super::malformed(&w, &put("nobody", "k").request).tenant,
        None
    );
}

// ---- step 1: unknown buckets ---------------------------------------------

#[test]
fn an_unknown_request_bucket_names_no_tenant() {
    let w = world();
    for op in [
        Op::GetObject,
        Op::PutObject,
        Op::DeleteObject,
        Op::CreateBucket,
    ] {
        let label = op.name();
        let d = check(
            label,
            &w,
            &ask(op, Some("nobody"), Some("k")),
            Deny,
            UnknownBucket,
        );
        let transfer = (d.tenant, d.bucket, d.category, d.from, d.to, d.mode);
        assert_eq!(transfer, (None, None, None, None, None, None), "{label}");
    }
}

#[test]
fn an_unknown_copy_source_denies_the_copy() {
    let w = world();
    let d = check(
        "source",
        &w,
        &copy("nobody", "acme-data", "k"),
        Deny,
        UnknownBucket,
    );
    assert_eq!(
        (d.tenant, d.bucket, d.source),
        (None, id(&w, "acme-data"), None)
    );

    let d = check(
        "destination",
        &w,
        &copy("acme-sh", "nobody", "k"),
        Deny,
        UnknownBucket,
    );
    assert_eq!((d.bucket, d.source), (None, id(&w, "acme-sh")));

    let mut no_source = copy("acme-sh", "acme-data", "k");
    no_source.request.copy_source = None;
    check("no copy source", &w, &no_source, Deny, UnknownBucket);

    let monitor = copy("nobody", "acme-data", "k").instance(|i| i.unknown_bucket_monitor = true);
    check("monitor", &w, &monitor, MonitorDeny, UnknownBucket);
}

#[test]
fn a_data_operation_without_a_bucket_is_refused() {
    let w = world();
    check(
        "",
        &w,
        &ask(Op::GetObject, None, Some("k")),
        Deny,
        UnknownBucket,
    );
}

#[test]
fn an_unknown_replication_destination_denies_and_every_destination_is_listed() {
    let w = world();
    for (monitor, verdict) in [(false, Deny), (true, MonitorDeny)] {
        let a = replicate("acme-data", &[("acme-sh", ""), ("nobody", "x/")])
            .instance(|i| i.unknown_bucket_monitor = monitor);
        let d = check("", &w, &a, verdict, UnknownBucket);
        assert_eq!((d.tenant, d.bucket), (None, id(&w, "acme-data")));
        let listed: Vec<_> = d
            .destinations
            .iter()
            .map(|o| (&*o.bucket, &*o.prefix, o.tenant, o.to, o.verdict, o.reason))
            .collect();
        let shanghai = bucket_end(SHANGHAI, CN, Via::Bucket);
        #[rustfmt::skip]
        let expected = [
            ("acme-sh", "",   Some(ACME), shanghai,          verdict, UnknownBucket),
            ("nobody",  "x/", None,       Location::UNKNOWN, verdict, UnknownBucket),
        ];
        assert_eq!(listed, expected);
    }
}

// ---- step 2: control -----------------------------------------------------

#[test]
fn control_operations_allow() {
    let w = world();
    let enforce = Some(Mode::Enforce);
    let monitor = Some(Mode::Monitor {
        until: GLOBEX_UNTIL,
    });
    let versioning = Op::BucketConfig(ConfigResource::Versioning);
    #[rustfmt::skip]
    let cases = [
        (ask(Op::ListBuckets, None, None),                      None,         None),
        (ask(Op::DeleteObject, Some("acme-hr"), Some("k")),     Some(ACME),   enforce),
        (ask(Op::PutObjectTagging, Some("acme-hr"), Some("k")), Some(ACME),   enforce),
        (ask(versioning, Some("globex-eu"), None),              Some(GLOBEX), monitor),
        // A configuration write that names no other bucket moves nothing.
        (replicate("acme-data", &[]),                           Some(ACME),   enforce),
    ];
    for (a, tenant, mode) in cases {
        let label = a.request.op.name();
        let d = check(label, &w, &a, Allow, ControlOperation);
        let transfer = (d.tenant, d.mode, d.category, d.from, d.to);
        assert_eq!(transfer, (tenant, mode, None, None, None), "{label}");
    }
}

// ---- step 3: category ------------------------------------------------------

#[test]
fn the_category_is_the_strictest_input_and_a_tie_goes_to_the_more_specific() {
    let w = world();
    let data = |key| get("acme-data", key);
    let write = |key| put("acme-data", key);
    let listing = |prefix| list("acme-data", prefix);
    let select = |b| ask(Op::SelectObjectContent, Some(b), Some("k"));
    let attributes = ask(Op::GetObjectAttributes, Some("acme-sh"), Some("k"));
    let at_max = put("acme-sh", "k").declared("account");
    let copy_declared = copy("acme-www", "acme-data", "k").declared("account");
    let replication = |bucket, prefix| replicate(bucket, &[("acme-sh", prefix)]);
    #[rustfmt::skip]
    let cases: Vec<(&str, Ask, CategoryId, CategorySource)> = vec![
        ("tenant default",    data("readme"),                         CONTENT,  TenantDefault),
        ("bucket category",   get("acme-hr", "k"),                    IDENTITY, Bucket),
        ("laxer classify",    data("logs/x"),                         CONTENT,  TenantDefault),
        ("longest, stricter", data("logs/audit/x"),                   ACCOUNT,  Classify),
        ("longest, laxer",    data("hr/public/x"),                    CONTENT,  TenantDefault),
        ("shorter alone",     data("hr/x"),                           IDENTITY, Classify),
        ("key too short",     data("hr"),                             CONTENT,  TenantDefault),
        ("tie: classify",     data("content/x"),                      CONTENT,  Classify),
        ("list ''",           listing(""),                            IDENTITY, Classify),
        ("list: rule under",  listing("logs/"),                       ACCOUNT,  Classify),
        ("list: in a rule",   listing("logs/a"),                      ACCOUNT,  Classify),
        ("list: laxer",       listing("logs/x"),                      CONTENT,  TenantDefault),
        ("list: mid-word",    listing("h"),                           IDENTITY, Classify),
        ("list: no overlap",  listing("other/"),                      CONTENT,  TenantDefault),
        ("stored raises",     data("k").stored("account"),            ACCOUNT,  Stored),
        ("stored is lower",   data("k").stored("logs"),               CONTENT,  TenantDefault),
        ("tie: stored",       data("k").stored("content"),            CONTENT,  Stored),
        ("tie: stored, rule", data("logs/audit/x").stored("account"), ACCOUNT,  Stored),
        ("unknown stored",    data("k").stored("top-secret"),         IDENTITY, Stored),
        ("stored on put",     write("k").stored("identity"),          CONTENT,  TenantDefault),
        ("declared on get",   data("k").declared("account"),          CONTENT,  TenantDefault),
        ("select",            select("acme-sh"),                      ACCOUNT,  MaxCategory),
        ("object attributes", attributes,                             ACCOUNT,  MaxCategory),
        ("tie: bucket, max",  select("acme-hr"),                      IDENTITY, Bucket),
        ("declared raises",   write("k").declared("account"),         ACCOUNT,  Declared),
        ("declared is lower", write("k").declared("logs"),            CONTENT,  TenantDefault),
        ("declared, rule",    write("hr/x").declared("account"),      IDENTITY, Classify),
        ("declared = max",    at_max,                                 ACCOUNT,  Declared),
        ("copy: source max",  copy("acme-sh", "acme-data", "k"),      ACCOUNT,  MaxCategory),
        ("copy: classify",    copy("acme-sh", "acme-data", "hr/x"),   IDENTITY, Classify),
        ("copy: bucket",      copy("acme-www", "acme-sh", "k"),       CONTENT,  Bucket),
        ("copy: declared",    copy_declared,                          ACCOUNT,  Declared),
        ("repl.: prefix",     replication("acme-data", "hr/"),        IDENTITY, Classify),
        ("repl.: source max", replication("acme-data", "logs/"),      IDENTITY, MaxCategory),
        ("repl.: bucket",     replication("acme-hr", ""),             IDENTITY, Bucket),
    ];
    for (label, a, category, source) in cases {
        let d = a.decide(&w);
        let got = (d.verdict, d.category, d.category_source);
        assert_eq!(
            got,
            (Allow, Some(category), Some(source)),
            "{label}: {d:#?}"
        );
    }
}

#[test]
fn a_bad_declared_category_is_bad_input_and_never_monitored() {
    let w = world();
    #[rustfmt::skip]
    let cases = [
        ("unknown",                  put("acme-data", "k").declared("secret")),
        ("empty",                    put("acme-data", "k").declared("")),
        ("above max_category",       put("acme-sh", "k").declared("identity")),
        ("above the copy's max",     copy("acme-data", "acme-sh", "k").declared("identity")),
        ("before the residency pin", put("acme-hk", "k").declared("secret")),
        ("tenant in monitor",        put("globex-bj", "k").declared("identity")),
        ("instance in monitor",      monitored(put("acme-data", "k").declared("secret"))),
    ];
    for (label, a) in cases {
        let d = check(label, &w, &a, Deny, InvalidCategory);
        assert_eq!(d.reason.deny_status(), 400);
        assert_eq!((d.category, d.category_source), (None, None), "{label}");
    }
}

// ---- step 4: residency pin ---------------------------------------------

#[test]
fn the_residency_pin_binds_where_data_comes_to_rest() {
    let w = world();
    let hk = geo(&w, "HK");
    let replication = |bucket, to| replicate(bucket, &[(to, "")]);
    #[rustfmt::skip]
    let cases = [
        ("ingress, home",          put("acme-data", "k"),                 Allow, SameJurisdiction),
        ("ingress, away",          put("acme-hk", "k").by(hk),            Deny,  ResidencyPin),
        ("egress is not pinned",   get("acme-hk", "k").by(hk),            Allow, SameJurisdiction),
        ("copy, home",             copy("acme-data", "acme-sh", "k"),     Allow, SameJurisdiction),
        ("copy, away",             copy("acme-data", "acme-hk", "k"),     Deny,  ResidencyPin),
        ("copy: both homes",       copy("acme-data", "initech-bj", "k"),  Allow, SameJurisdiction),
        ("copy: receiver's home",  copy("initech-bj", "acme-hk", "k"),    Deny,  ResidencyPin),
        ("copy: source's home",    copy("acme-hk", "initech-hk", "k"),    Deny,  ResidencyPin),
        ("copy: pin passes",       copy("initech-bj", "initech-hk", "k"), Deny,  NoLegalBasis),
        ("replication, away",      replication("acme-data", "acme-hk"),   Deny,  ResidencyPin),
        ("repl.: source's home",   replication("initech-bj", "acme-sh"),  Deny,  ResidencyPin),
        ("repl.: receiver's home", replication("initech-bj", "acme-hk"),  Deny,  ResidencyPin),
    ];
    check_all(&w, &cases);
}

// ---- step 5: unknown location ------------------------------------------

#[test]
fn an_unknown_requester_needs_a_free_category() {
    let w = world();
    let allow = |a: Ask| a.instance(|i| i.unknown_location_allow = true);
    let egress = || unknown(get("acme-data", "k"));
    let in_china = unknown(copy("acme-data", "acme-sh", "k"));
    #[rustfmt::skip]
    let cases = [
        ("egress",             egress(),                        Deny,        UnknownLocation),
        ("ingress",            unknown(put("acme-data", "k")),  Deny,        UnknownLocation),
        ("allowed",            allow(egress()),                 Allow,       UnknownLocation),
        ("monitor",            monitored(egress()),             MonitorDeny, UnknownLocation),
        ("before export",      unknown(get("initech-us", "k")), Deny,        UnknownLocation),
        ("free category",      unknown(get("acme-www", "k")),   Allow,       UnrestrictedCategory),
        ("copy: no requester", in_china,                        Allow,       SameJurisdiction),
    ];
    check_all(&w, &cases);
}

#[test]
fn a_free_category_out_of_an_export_free_jurisdiction_is_unrestricted_export() {
    let mut t = tables();
    let us = t.buckets.iter_mut().find(|b| &*b.name == "initech-us");
    us.expect("initech-us").category = Some(PUBLIC);
    let rules = build(t);
    let a = unknown(get("initech-us", "k"));
    check("", &rules, &a, Allow, UnrestrictedExport);
}

// ---- steps 6–8 -----------------------------------------------------------

#[test]
fn jurisdictions_export_and_free_categories() {
    let w = world();
    let at = |code| geo(&w, code);
    #[rustfmt::skip]
    let cases = [
        ("same",               get("acme-data", "k"),               Allow, SameJurisdiction),
        ("one jurisdiction",   get("acme-eu", "k").by(at("IE")),    Allow, SameJurisdiction),
        ("named own country",  get("acme-sg", "k").by(at("SG")),    Allow, SameJurisdiction),
        ("out of own country", get("acme-sg", "k"),                 Deny,  NoLegalBasis),
        ("to unnamed country", get("acme-data", "k").by(at("JP")),  Deny,  NoLegalBasis),
        ("export free",        get("initech-us", "k"),              Allow, UnrestrictedExport),
        ("export free, JP",    get("initech-us", "k").by(at("JP")), Allow, UnrestrictedExport),
        ("export free, in",    put("initech-bj", "k").by(at("US")), Allow, UnrestrictedExport),
        ("into export free",   put("initech-us", "k"),              Deny,  NoLegalBasis),
        ("free category",      get("acme-www", "k").by(at("DE")),   Allow, UnrestrictedCategory),
        ("free category, JP",  get("acme-www", "k").by(at("JP")),   Allow, UnrestrictedCategory),
    ];
    check_all(&w, &cases);
}

#[test]
fn an_unnamed_country_is_its_own_jurisdiction() {
    let rules = with_bases([basis("to-sg", Some(ACME), Scc, CN, &[SG])]);
    let jp = geo(&rules, "JP");
    assert_eq!(
        jp.jurisdiction,
        Some(Jurisdiction::own_country(country("JP")))
    );
    assert_eq!(geo(&rules, "SG").jurisdiction, Some(SG));

    let to_sg = get("acme-data", "k").by(geo(&rules, "SG"));
    let d = check("to SG", &rules, &to_sg, Allow, LegalBasis);
    assert_eq!(chosen(&rules, &d), Some("to-sg"));
    let d = check(
        "to JP",
        &rules,
        &get("acme-data", "k").by(jp),
        Deny,
        NoLegalBasis,
    );
    assert_eq!(d.to, Some(jp));
}

#[test]
fn the_ends_of_a_transfer() {
    let w = world();
    let de = geo(&w, "DE");
    let beijing = bucket_end(BEIJING, CN, Via::Instance);
    let d = get("acme-data", "k").by(de).decide(&w);
    assert_eq!((d.from, d.to), (Some(beijing), Some(de)));
    assert_eq!(d.tenant, Some(ACME));

    let ingress = put("acme-hr", "k");
    let d = ingress.decide(&w);
    let to = bucket_end(BEIJING, CN, Via::Bucket);
    assert_eq!((d.from, d.to), (Some(ingress.requester), Some(to)));

    let d = copy("acme-sh", "acme-data", "k").decide(&w);
    let from = bucket_end(SHANGHAI, CN, Via::Bucket);
    assert_eq!((d.from, d.to), (Some(from), Some(beijing)));
    assert_eq!(d.bucket, id(&w, "acme-data"));
    assert_eq!(d.source, id(&w, "acme-sh"));
    assert!(d.destinations.is_empty());
}

// ---- step 9: never -------------------------------------------------------

#[test]
fn never_opens_only_to_a_pipl_security_assessment_naming_the_category() {
    let psa = |id: &str| acme(id, PiplSecurityAssessment).only(&[IDENTITY]);
    let (expired, late) = (date!(2025 - 12 - 31), date!(2031 - 01 - 01));
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Basis>, Option<&str>)> = vec![
        ("none",              vec![],                                              None),
        ("named",             vec![psa("psa")],                                    Some("psa")),
        ("through *",         vec![acme("psa", PiplSecurityAssessment)],           None),
        ("another category",  vec![psa("psa").only(&[ACCOUNT])],                   None),
        ("an scc",            vec![Basis { kind: Scc, ..psa("scc") }],             None),
        ("an adequacy",       vec![anyone("adq", Adequacy).only(&[IDENTITY])],     None),
        ("expired",           vec![psa("psa").until(expired)],                     None),
        ("another route",     vec![Basis { to: vec![HK], ..psa("psa") }],          None),
        ("another tenant",    vec![Basis { tenant: Some(INITECH), ..psa("psa") }], None),
        ("over a * adequacy", vec![anyone("adq", Adequacy), psa("psa")],           Some("psa")),
        ("latest until",      vec![psa("early"), psa("late").until(late)],         Some("late")),
    ];
    for (label, bases, expected) in cases {
        let rules = with_bases(bases);
        let d = get("acme-hr", "k").by(geo(&rules, "DE")).decide(&rules);
        let (verdict, reason) = match expected {
            Some(_) => (Allow, LegalBasis),
            None => (Deny, ForbiddenCategory),
        };
        let got = (d.verdict, d.reason, chosen(&rules, &d));
        assert_eq!(got, (verdict, reason, expected), "{label}");
    }
}

// ---- step 10: legal basis ------------------------------------------------

#[test]
fn the_choice_of_a_legal_basis() {
    let scc = || acme("scc", Scc);
    let adq = || anyone("adq", Adequacy);
    let derogation = |id| acme(id, Derogation);
    let to = |to: &[_]| basis("scc", Some(ACME), Scc, CN, to);
    let (y2027, y2028) = (date!(2027 - 01 - 01), date!(2028 - 01 - 01));
    let expired = date!(2025 - 12 - 31);
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Basis>, Option<&str>)> = vec![
        ("none", vec![], None),
        ("tenant basis", vec![scc()], Some("scc")),
        ("* basis", vec![adq()], Some("adq")),
        ("tenant before *", vec![adq(), scc()], Some("scc")),
        ("adequacy, contract", vec![scc(), acme("adq", Adequacy)], Some("adq")),
        ("contract, dpa", vec![acme("dpa", Dpa), acme("cert", PiplCertification)], Some("cert")),
        ("dpa, consent", vec![acme("consent", Consent), acme("dpa", Dpa)], Some("dpa")),
        ("consent, derogation", vec![derogation("d"), acme("c", Consent)], Some("c")),
        ("derogation alone", vec![derogation("d")], Some("d")),
        ("derogation, *", vec![derogation("d"), adq()], Some("adq")),
        ("derogation, * expired", vec![derogation("d"), adq().until(expired)], Some("d")),
        ("tenant's derogation", vec![anyone("a", Derogation), derogation("z")], Some("z")),
        ("latest until", vec![scc().until(y2027), acme("bcr", Bcr).until(y2028)], Some("bcr")),
        ("id byte order", vec![acme("a", PiplStandardContract), acme("Z", Scc)], Some("Z")),
        ("derogation until", vec![derogation("a").until(y2027), derogation("b")], Some("b")),
        ("not covered", vec![scc().only(&[ACCOUNT]), acme("dpa", Dpa)], Some("dpa")),
        ("category named", vec![scc().only(&[CONTENT, ACCOUNT])], Some("scc")),
        ("one of its routes", vec![to(&[US, EU])], Some("scc")),
        ("another route", vec![to(&[HK])], None),
        ("other direction", vec![basis("scc", Some(ACME), Scc, EU, &[CN])], None),
        ("another tenant", vec![basis("scc", Some(INITECH), Scc, CN, &[EU])], None),
    ];
    for (label, bases, expected) in cases {
        let rules = with_bases(bases);
        let d = to_germany(&rules).decide(&rules);
        let (verdict, reason) = match expected {
            Some(_) => (Allow, LegalBasis),
            None => (Deny, NoLegalBasis),
        };
        let got = (d.verdict, d.reason, chosen(&rules, &d));
        assert_eq!(got, (verdict, reason, expected), "{label}");
    }
}

#[test]
fn basis_validity_date_edges() {
    let (yesterday, tomorrow) = (date!(2026 - 01 - 14), date!(2026 - 01 - 16));
    let scc = || acme("scc", Scc);
    #[rustfmt::skip]
    let cases = [
        ("valid_from today",      scc().valid_from(TODAY),    true),
        ("valid_from tomorrow",   scc().valid_from(tomorrow), false),
        ("valid_until today",     scc().until(TODAY),       true),
        ("valid_until yesterday", scc().until(yesterday),   false),
        ("revoked today",         scc().revoked(TODAY),     false),
        ("revoked yesterday",     scc().revoked(yesterday), false),
        ("revoked tomorrow",      scc().revoked(tomorrow),  true),
    ];
    for (label, b, valid) in cases {
        let rules = with_bases([b]);
        let d = to_germany(&rules).decide(&rules);
        assert_eq!(d.reason == LegalBasis, valid, "{label}: {d:#?}");
    }
}

#[test]
fn a_copy_between_tenants_takes_the_source_tenants_bases() {
    let a = copy("initech-bj", "globex-eu", "k");
    let rules = with_bases([basis("initech", Some(INITECH), Scc, CN, &[EU])]);
    let d = check("source's basis", &rules, &a, Allow, LegalBasis);
    assert_eq!(chosen(&rules, &d), Some("initech"));
    assert_eq!(d.tenant, Some(INITECH));
    assert_eq!(d.bucket, id(&rules, "globex-eu"));
    assert_eq!(d.source, id(&rules, "initech-bj"));
    assert_eq!(d.category, Some(ACCOUNT));
    assert_eq!(d.category_source, Some(MaxCategory));

    let rules = with_bases([basis("globex", Some(GLOBEX), Scc, CN, &[EU])]);
    check("receiver's basis", &rules, &a, Deny, NoLegalBasis);
}

// ---- step 11: monitor ----------------------------------------------------

#[test]
fn monitor_until_is_inclusive() {
    let w = world();
    let monitor = Mode::Monitor {
        until: GLOBEX_UNTIL,
    };
    #[rustfmt::skip]
    let cases = [
        (date!(2026 - 06 - 29), MonitorDeny, monitor),
        (GLOBEX_UNTIL,          MonitorDeny, monitor),
        (date!(2026 - 07 - 01), Deny,        Mode::Enforce),
    ];
    for (day, verdict, mode) in cases {
        let label = day.to_string();
        let d = check(
            &label,
            &w,
            &get("globex-eu", "k").on(day),
            verdict,
            NoLegalBasis,
        );
        assert_eq!(d.mode, Some(mode), "{label}");
    }
}

#[test]
fn monitor_turns_every_transfer_deny_into_monitor_deny() {
    let w = world();
    let de = geo(&w, "DE");
    let pin = put("acme-hk", "k").by(geo(&w, "HK"));
    #[rustfmt::skip]
    let cases = [
        ("pin",              pin,                            MonitorDeny, ResidencyPin),
        ("location",         unknown(get("acme-data", "k")), MonitorDeny, UnknownLocation),
        ("never",            get("acme-hr", "k").by(de),     MonitorDeny, ForbiddenCategory),
        ("no basis",         get("acme-data", "k").by(de),   MonitorDeny, NoLegalBasis),
        ("an allow",         get("acme-data", "k"),          Allow,       SameJurisdiction),
        ("unknown bucket",   get("nobody", "k"),             Deny,        UnknownBucket),
        ("tenant's enforce", get("initech-bj", "k").by(de),  Deny,        NoLegalBasis),
    ];
    check_all(
        &w,
        &cases.map(|(label, a, v, r)| (label, monitored(a), v, r)),
    );
}

#[test]
fn a_copy_between_tenants_takes_the_stricter_mode() {
    let initech_until = date!(2026 - 03 - 31);
    let (globex, initech) = (
        Mode::Monitor {
            until: GLOBEX_UNTIL,
        },
        Mode::Monitor {
            until: initech_until,
        },
    );
    let mut t = tables();
    t.tenants[INITECH.0 as usize].mode = Some(initech);
    let both = build(t);
    let w = world();
    let april = date!(2026 - 04 - 01);
    let enforce = Mode::Enforce;
    let (g_bj, g_eu, i_bj, i_eu) = ("globex-bj", "globex-eu", "initech-bj", "initech-eu");
    #[rustfmt::skip]
    let cases = [
        ("one tenant",       &w,    copy(g_bj, g_eu, "k"),           MonitorDeny, globex),
        ("monitor, enforce", &w,    copy(g_bj, i_eu, "k"),           Deny,        enforce),
        ("enforce, monitor", &w,    copy(i_bj, g_eu, "k"),           Deny,        enforce),
        ("two monitors",     &both, copy(g_bj, i_eu, "k"),           MonitorDeny, initech),
        ("one has ended",    &both, copy(g_bj, i_eu, "k").on(april), Deny,        enforce),
    ];
    for (label, rules, a, verdict, mode) in cases {
        let d = check(label, rules, &a, verdict, NoLegalBasis);
        assert_eq!(d.mode, Some(mode), "{label}");
    }
}

// ---- replication ---------------------------------------------------------

#[test]
fn one_denied_destination_denies_the_replication() {
    let w = world();
    let destinations = [("acme-sh", ""), ("acme-sg", "logs/"), ("acme-hk", "")];
    let d = check(
        "",
        &w,
        &replicate("acme-data", &destinations),
        Deny,
        ForbiddenCategory,
    );
    let beijing = bucket_end(BEIJING, CN, Via::Instance);
    let singapore = bucket_end(SINGAPORE, SG, Via::Bucket);
    assert_eq!((d.tenant, d.bucket), (Some(ACME), id(&w, "acme-data")));
    assert_eq!((d.from, d.to), (Some(beijing), Some(singapore)));
    assert_eq!(
        (d.category, d.category_source),
        (Some(IDENTITY), Some(MaxCategory))
    );
    let outcomes: Vec<_> = d
        .destinations
        .iter()
        .map(|o| (&*o.bucket, &*o.prefix, o.tenant, o.verdict, o.reason))
        .collect();
    #[rustfmt::skip]
    let expected = [
        ("acme-sh", "",      Some(ACME), Allow, SameJurisdiction),
        ("acme-sg", "logs/", Some(ACME), Deny,  ForbiddenCategory),
        ("acme-hk", "",      Some(ACME), Deny,  ResidencyPin),
    ];
    assert_eq!(outcomes, expected);
}

#[test]
fn an_allowed_replication_reports_its_last_destination() {
    let rules = with_bases([basis("to-sg", Some(ACME), Scc, CN, &[SG])]);
    let a = replicate("acme-sh", &[("acme-hr", ""), ("acme-sg", "")]);
    let d = check("", &rules, &a, Allow, LegalBasis);
    let singapore = bucket_end(SINGAPORE, SG, Via::Bucket);
    assert_eq!((d.to, chosen(&rules, &d)), (Some(singapore), Some("to-sg")));
    let outcomes: Vec<_> = d
        .destinations
        .iter()
        .map(|o| (o.reason, o.basis, o.category))
        .collect();
    let expected = [
        (SameJurisdiction, None, Some(ACCOUNT)),
        (LegalBasis, d.basis, Some(ACCOUNT)),
    ];
    assert_eq!(outcomes, expected);
}

#[test]
fn a_replication_reports_its_worst_destination() {
    let w = world();
    let a = monitored(replicate(
        "acme-data",
        &[("acme-hk", ""), ("initech-hk", "")],
    ));
    let d = check("", &w, &a, Deny, ResidencyPin);
    let hongkong = bucket_end(HONGKONG, HK, Via::Bucket);
    assert_eq!((d.to, d.mode), (Some(hongkong), Some(Mode::Enforce)));
    let verdicts: Vec<_> = d
        .destinations
        .iter()
        .map(|o| (o.tenant, o.verdict))
        .collect();
    assert_eq!(verdicts, [(Some(ACME), MonitorDeny), (Some(INITECH), Deny)]);
}

// ---- trace ---------------------------------------------------------------

fn steps(trace: &[TraceStep]) -> Vec<(u8, &'static str)> {
    let mut steps: Vec<_> = trace.iter().map(|s| (s.step, s.name)).collect();
    steps.dedup();
    steps
}

#[track_caller]
fn assert_mentions(trace: &[TraceStep], step: u8, text: &str) {
    assert!(
        trace
            .iter()
            .any(|s| s.step == step && s.detail.contains(text)),
        "step {step} should mention {text:?}: {trace:#?}"
    );
}

#[test]
fn a_trace_names_every_step_taken() {
    let rules = with_bases([acme("scc", Scc)]);
    let a = get("acme-data", "logs/audit/x").by(geo(&rules, "DE"));
    let (d, trace) = a.explain(&rules);
    assert_eq!(d.reason, LegalBasis);
    #[rustfmt::skip]
    let expected = [
        (1, "bucket"), (3, "category"), (5, "location"), (6, "same_jurisdiction"),
        (7, "export"), (8, "category_rule"), (10, "legal_basis"),
    ];
    assert_eq!(steps(&trace), expected);
    assert_mentions(&trace, 1, "tenant acme");
    assert_mentions(&trace, 3, "\"logs/audit/\" → account");
    assert_mentions(&trace, 3, "→ account (from classify)");
    assert_mentions(&trace, 6, "CN ≠ EU");
    assert_mentions(&trace, 7, "CN restricts export");
    assert_mentions(&trace, 10, "basis scc (scc, tenant acme");
    assert_mentions(&trace, 10, "chosen");
}

#[test]
fn a_trace_says_why_each_basis_was_passed_over() {
    let rules = with_bases([
        acme("old", Scc).until(date!(2025 - 12 - 31)),
        acme("future", Bcr).valid_from(date!(2026 - 06 - 01)),
        acme("gone", Dpa).revoked(date!(2026 - 01 - 01)),
        acme("narrow", Consent).only(&[ACCOUNT]),
        acme("d1", Derogation),
        acme("d2", Derogation),
        anyone("adq", Adequacy),
    ]);
    let (d, trace) = to_germany(&rules).explain(&rules);
    assert_eq!(chosen(&rules, &d), Some("adq"));
    let valid = "valid 2020-01-01..=2030-12-31";
    for text in [
        "old (scc, tenant acme, valid 2020-01-01..=2025-12-31): rejected, expired".to_owned(),
        "future (bcr, tenant acme, valid 2026-06-01..=2030-12-31): rejected, not yet valid".into(),
        format!("gone (dpa, tenant acme, {valid}, revoked 2026-01-01): rejected, revoked"),
        format!("narrow (consent, tenant acme, {valid}): rejected, category not covered"),
        format!("d1 (derogation, tenant acme, {valid}): held back"),
        format!("d2 (derogation, tenant acme, {valid}): derogation outranked by d1"),
        format!("adq (adequacy, tenant *, {valid}): chosen; derogation d1 outranked"),
    ] {
        assert_mentions(&trace, 10, &text);
    }

    let rules = with_bases([acme("d1", Derogation)]);
    let (_, trace) = to_germany(&rules).explain(&rules);
    assert_mentions(
        &trace,
        10,
        &format!("d1 (derogation, tenant acme, {valid}): chosen, nothing else"),
    );

    let (_, trace) = to_germany(&rules).explain(&world());
    assert_mentions(&trace, 10, "no valid basis covers the transfer");
}

#[test]
fn traces_of_the_other_steps() {
    let w = world();
    let (_, trace) = ask(Op::ListBuckets, None, None).explain(&w);
    assert_eq!(steps(&trace), [(2, "control")]);

    let (_, trace) = get("nobody", "k").explain(&w);
    assert_eq!(steps(&trace), [(1, "bucket")]);
    assert_mentions(&trace, 1, "nobody: no tenant owns it");

    let (_, trace) = put("acme-data", "k").declared("secret").explain(&w);
    assert_mentions(&trace, 3, "\"secret\" is unknown");

    let (_, trace) = get("acme-data", "k").stored("top-secret").explain(&w);
    assert_mentions(&trace, 3, "counts as the strictest");

    let (_, trace) = put("acme-hk", "k").by(geo(&w, "HK")).explain(&w);
    assert_mentions(&trace, 4, "cn-hongkong is not a home region of acme");
    assert_eq!(steps(&trace).last(), Some(&(11, "monitor")));

    let (_, trace) = unknown(get("acme-data", "k")).explain(&w);
    assert_mentions(&trace, 5, "content is not free and geoip.unknown = deny");

    let (_, trace) = get("acme-hr", "k").by(geo(&w, "DE")).explain(&w);
    assert!(steps(&trace).contains(&(9, "never_category")), "{trace:#?}");

    let (_, trace) = get("globex-eu", "k").explain(&w);
    assert_mentions(&trace, 11, "monitor until 2026-06-30");
    assert_mentions(&trace, 11, "forwarded as monitor-deny");
}

#[test]
fn a_replication_trace_names_each_destination() {
    let w = world();
    let (_, trace) = replicate("acme-data", &[("acme-sh", ""), ("acme-hk", "")]).explain(&w);
    assert_mentions(&trace, 3, "destination acme-sh: ");
    assert_mentions(&trace, 4, "destination acme-hk: cn-hongkong is not");
}
