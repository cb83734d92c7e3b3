//! A small world of rules for the policy tests, built as `Tables` directly
//! so the tests do not depend on the rules compiler.
//!
//! Ids are constants because `RuleSet::new` numbers every table in order.

use time::macros::date;
use time::Date;

use super::{decide, Decision, Facts, Instance, NoTrace, TraceStep};
use crate::locate::{Location, Via};
use crate::rules::model::{
    Basis, BasisKind, Bucket, BucketName, Category, CategoryId, ClassifyIndex, Country,
    CrossBorder, Jurisdiction, JurisdictionDef, Mode, Region, RegionId, RuleSet, Tables, Tenant,
    TenantId,
};
use crate::s3::{CopySource, Destination, Op, S3Request};

pub const CN: Jurisdiction = Jurisdiction(0);
pub const HK: Jurisdiction = Jurisdiction(1);
pub const EU: Jurisdiction = Jurisdiction(2);
/// `export = "free"`.
pub const US: Jurisdiction = Jurisdiction(3);
/// Named by a region but listed in no jurisdiction: its own.
pub const SG: Jurisdiction = Jurisdiction(4);

pub const BEIJING: RegionId = RegionId(0);
pub const SHANGHAI: RegionId = RegionId(1);
pub const HONGKONG: RegionId = RegionId(2);
pub const FRANKFURT: RegionId = RegionId(3);
pub const VIRGINIA: RegionId = RegionId(4);
pub const SINGAPORE: RegionId = RegionId(5);

pub const PUBLIC: CategoryId = CategoryId(0);
pub const LOGS: CategoryId = CategoryId(1);
pub const CONTENT: CategoryId = CategoryId(2);
pub const ACCOUNT: CategoryId = CategoryId(3);
pub const IDENTITY: CategoryId = CategoryId(4);

/// Home: Beijing, Shanghai, Singapore; default category content; the
/// instance's mode.
pub const ACME: TenantId = TenantId(0);
/// Home: Beijing, Frankfurt; default logs; monitor until `GLOBEX_UNTIL`.
pub const GLOBEX: TenantId = TenantId(1);
/// Home: Beijing, Hong Kong, Frankfurt, Virginia; default account; enforce.
pub const INITECH: TenantId = TenantId(2);

pub const GLOBEX_UNTIL: Date = date!(2026 - 06 - 30);
pub const TODAY: Date = date!(2026 - 01 - 15);

pub fn tables() -> Tables {
    let jurisdiction = |id: &str, countries: &[&str], export_free| JurisdictionDef {
        id: id.into(),
        countries: countries.iter().map(|c| country(c)).collect(),
        export_free,
    };
    let region = |id: &str, jurisdiction| Region {
        id: id.into(),
        jurisdiction,
    };
    let category = |id: &str, rank, cross_border| Category {
        id: id.into(),
        rank,
        cross_border,
    };
    let tenant = |id: &str, home_regions: &[RegionId], default_category, mode| Tenant {
        id: id.into(),
        home_regions: home_regions.to_vec(),
        default_category,
        mode,
    };
    Tables {
        jurisdictions: vec![
            jurisdiction("CN", &["CN"], false),
            jurisdiction("HK", &["HK"], false),
            jurisdiction("EU", &["DE", "FR", "IE"], false),
            jurisdiction("US", &["US"], true),
        ],
        own_countries: vec![country("SG")],
        regions: vec![
            region("cn-beijing-6", CN),
            region("cn-shanghai-2", CN),
            region("cn-hongkong", HK),
            region("eu-frankfurt-1", EU),
            region("us-east-1", US),
            region("ap-singapore-1", SG),
        ],
        categories: vec![
            category("public", 0, CrossBorder::Free),
            category("logs", 10, CrossBorder::Basis),
            category("content", 20, CrossBorder::Basis),
            category("account", 30, CrossBorder::Basis),
            category("identity", 50, CrossBorder::Never),
        ],
        tenants: vec![
            tenant("acme", &[BEIJING, SHANGHAI, SINGAPORE], CONTENT, None),
            tenant(
                "globex",
                &[BEIJING, FRANKFURT],
                LOGS,
                Some(Mode::Monitor {
                    until: GLOBEX_UNTIL,
                }),
            ),
            tenant(
                "initech",
                &[BEIJING, HONGKONG, FRANKFURT, VIRGINIA],
                ACCOUNT,
                Some(Mode::Enforce),
            ),
        ],
        buckets: vec![
            bucket(
                "acme-data",
                ACME,
                None,
                None,
                IDENTITY,
                &[
                    ("logs/", LOGS),
                    ("logs/audit/", ACCOUNT),
                    ("hr/", IDENTITY),
                    ("hr/public/", PUBLIC),
                    ("content/", CONTENT),
                ],
            ),
            bucket(
                "acme-hr",
                ACME,
                Some(BEIJING),
                Some(IDENTITY),
                IDENTITY,
                &[],
            ),
            bucket("acme-sh", ACME, Some(SHANGHAI), Some(CONTENT), ACCOUNT, &[]),
            bucket("acme-hk", ACME, Some(HONGKONG), None, ACCOUNT, &[]),
            bucket("acme-sg", ACME, Some(SINGAPORE), None, ACCOUNT, &[]),
            bucket("acme-eu", ACME, Some(FRANKFURT), None, ACCOUNT, &[]),
            bucket("acme-www", ACME, None, Some(PUBLIC), PUBLIC, &[]),
            bucket("globex-bj", GLOBEX, Some(BEIJING), None, CONTENT, &[]),
            bucket("globex-eu", GLOBEX, Some(FRANKFURT), None, ACCOUNT, &[]),
            bucket("initech-bj", INITECH, Some(BEIJING), None, ACCOUNT, &[]),
            bucket("initech-hk", INITECH, Some(HONGKONG), None, ACCOUNT, &[]),
            bucket("initech-eu", INITECH, Some(FRANKFURT), None, ACCOUNT, &[]),
            bucket("initech-us", INITECH, Some(VIRGINIA), None, ACCOUNT, &[]),
        ],
        networks: Vec::new(),
        peers: Vec::new(),
        bases: Vec::new(),
    }
}

fn bucket(
    name: &str,
    tenant: TenantId,
    region: Option<RegionId>,
    category: Option<CategoryId>,
    max_category: CategoryId,
    classify: &[(&str, CategoryId)],
) -> Bucket {
    Bucket {
        name: BucketName::new(name).expect("a bucket name of at most 63 bytes"),
        tenant,
        region,
        category,
        max_category,
        classify: ClassifyIndex::new(classify.iter().map(|(p, c)| (Box::from(*p), *c))),
    }
}

pub fn country(code: &str) -> Country {
    Country::parse(code).expect("a two-letter code")
}

pub fn build(tables: Tables) -> RuleSet {
    RuleSet::new(tables, "test".into())
}

/// The world with these bases.
pub fn with_bases(bases: impl IntoIterator<Item = Basis>) -> RuleSet {
    let mut t = tables();
    t.bases = bases.into_iter().collect();
    build(t)
}

/// A basis valid 2020–2030 for every category.
pub fn basis(
    id: &str,
    tenant: Option<TenantId>,
    kind: BasisKind,
    from: Jurisdiction,
    to: &[Jurisdiction],
) -> Basis {
    Basis {
        id: id.into(),
        tenant,
        kind,
        from,
        to: to.to_vec(),
        categories: None,
        recipient: None,
        scope: None,
        valid_from: date!(2020 - 01 - 01),
        valid_until: date!(2030 - 12 - 31),
        revoked_on: None,
        evidence: None,
    }
}

/// Narrows a `basis` in one expression, so tables of bases stay one row each.
pub trait Narrow {
    fn only(self, categories: &[CategoryId]) -> Self;
    fn valid_from(self, day: Date) -> Self;
    fn until(self, day: Date) -> Self;
    fn revoked(self, day: Date) -> Self;
}

impl Narrow for Basis {
    fn only(self, categories: &[CategoryId]) -> Basis {
        Basis {
            categories: Some(categories.to_vec()),
            ..self
        }
    }
    fn valid_from(self, valid_from: Date) -> Basis {
        Basis { valid_from, ..self }
    }
    fn until(self, valid_until: Date) -> Basis {
        Basis {
            valid_until,
            ..self
        }
    }
    fn revoked(self, day: Date) -> Basis {
        Basis {
            revoked_on: Some(day),
            ..self
        }
    }
}

/// A requester located by GeoIP.
pub fn geo(rules: &RuleSet, code: &str) -> Location {
    let c = country(code);
    Location {
        region: None,
        country: Some(c),
        jurisdiction: Some(rules.jurisdiction_of(c)),
        via: Some(Via::Geoip),
        peer: None,
    }
}

pub fn bucket_end(region: RegionId, jurisdiction: Jurisdiction, via: Via) -> Location {
    Location {
        region: Some(region),
        country: None,
        jurisdiction: Some(jurisdiction),
        via: Some(via),
        peer: None,
    }
}

/// One hypothetical request: by default from a requester in mainland China,
/// on `TODAY`, at a gate in Beijing that enforces.
#[derive(Clone, Debug)]
pub struct Ask {
    pub request: S3Request,
    pub destinations: Vec<Destination>,
    pub requester: Location,
    pub stored: Option<&'static str>,
    pub today: Date,
    pub inst: Instance,
}

/// A request of `op` on `bucket` and `key`.
pub fn ask(op: Op, bucket: Option<&str>, key: Option<&str>) -> Ask {
    Ask {
        request: S3Request {
            op,
            addressing: None,
            bucket: bucket.map(Into::into),
            key: key.map(Into::into),
            list_prefix: None,
            copy_source: None,
            declared_category: None,
            presigned: false,
        },
        destinations: Vec::new(),
        requester: Location {
            region: None,
            country: Some(country("CN")),
            jurisdiction: Some(CN),
            via: Some(Via::Geoip),
            peer: None,
        },
        stored: None,
        today: TODAY,
        inst: Instance {
            region: BEIJING,
            default_mode: Mode::Enforce,
            unknown_bucket_monitor: false,
            unknown_location_allow: false,
        },
    }
}

pub fn get(bucket: &str, key: &str) -> Ask {
    ask(Op::GetObject, Some(bucket), Some(key))
}

pub fn put(bucket: &str, key: &str) -> Ask {
    ask(Op::PutObject, Some(bucket), Some(key))
}

pub fn list(bucket: &str, prefix: &str) -> Ask {
    let mut a = ask(Op::ListObjectsV2, Some(bucket), None);
    a.request.list_prefix = Some(prefix.into());
    a
}

pub fn copy(source: &str, bucket: &str, key: &str) -> Ask {
    let mut a = ask(Op::CopyObject, Some(bucket), Some(key));
    a.request.copy_source = Some(CopySource {
        bucket: source.into(),
        key: key.into(),
        version_id: None,
    });
    a
}

/// `(bucket, prefix)` per destination.
pub fn replicate(bucket: &str, destinations: &[(&str, &str)]) -> Ask {
    let mut a = ask(Op::PutBucketReplication, Some(bucket), None);
    a.destinations = destinations
        .iter()
        .map(|(b, p)| Destination {
            bucket: (*b).into(),
            prefix: (*p).into(),
        })
        .collect();
    a
}

impl Ask {
    pub fn by(mut self, requester: Location) -> Ask {
        self.requester = requester;
        self
    }

    pub fn on(mut self, today: Date) -> Ask {
        self.today = today;
        self
    }

    pub fn declared(mut self, category: &str) -> Ask {
        self.request.declared_category = Some(category.into());
        self
    }

    pub fn stored(mut self, category: &'static str) -> Ask {
        self.stored = Some(category);
        self
    }

    pub fn instance(mut self, change: impl FnOnce(&mut Instance)) -> Ask {
        change(&mut self.inst);
        self
    }

    /// The decision and its trace; also checks that tracing does not change
    /// the decision.
    pub fn explain(&self, rules: &RuleSet) -> (Decision, Vec<TraceStep>) {
        let facts = Facts {
            request: &self.request,
            destinations: &self.destinations,
            requester: self.requester,
            stored_category: self.stored,
            today: self.today,
        };
        let mut trace = Vec::new();
        let traced = decide(rules, &self.inst, &facts, &mut trace);
        assert_eq!(
            decide(rules, &self.inst, &facts, &mut NoTrace),
            traced,
            "tracing changed the decision"
        );
        (traced, trace)
    }

    pub fn decide(&self, rules: &RuleSet) -> Decision {
        self.explain(rules).0
    }
}
