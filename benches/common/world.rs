//! A provider-sized rule set, written as rule-file TOML and compiled the
//! way `gatekeeper check` and a reload compile it: 10,000 tenants with
//! 10 buckets each (100,000), 70,000 classify rules and 100,000 legal
//! bases of every kind, some expired or revoked.
//!
//! Generated from a fixed seed, so every run decides against the same
//! rules. The shape follows rules/ (the example rule set): a tenant is
//! based in one area and keeps most buckets in its home regions, and its
//! bases lead out of that area's jurisdiction.

use std::fmt::Write;

use gatekeeper::rules::compile::compile_str;
use gatekeeper::rules::model::{Mode, RuleSet};
use gatekeeper::snapshot::InstanceSettings;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use time::macros::date;
use time::Date;

pub const TENANTS: usize = 10_000;
pub const BUCKETS_PER_TENANT: usize = 10;
pub const BUCKETS: usize = TENANTS * BUCKETS_PER_TENANT;
pub const BASES: usize = 100_000;

/// The evaluation date: the generator's expired and revoked bases are
/// dated before it, the others after.
pub const TODAY: Date = date!(2026 - 06 - 01);

/// `(name, jurisdiction)`; the gate's own region is the first.
const REGIONS: [(&str, &str); 16] = [
    ("cn-beijing-6", "CN"),
    ("cn-shanghai-2", "CN"),
    ("cn-guangzhou-1", "CN"),
    ("cn-shenzhen-1", "CN"),
    ("cn-hongkong-2", "HK"),
    ("ap-singapore-1", "SG"),
    ("eu-frankfurt-1", "EU"),
    ("eu-paris-1", "EU"),
    ("eu-dublin-1", "EU"),
    ("eu-stockholm-1", "EU"),
    ("us-east-1", "US"),
    ("us-west-2", "US"),
    ("ap-tokyo-1", "JP"),
    ("ap-seoul-1", "KR"),
    ("uk-london-1", "GB"),
    ("ap-sydney-1", "AU"),
];

/// Where a tenant is based: its jurisdiction, the regions it picks its
/// homes from, and how many tenants in 100 are based there.
struct Area {
    jurisdiction: &'static str,
    regions: &'static [&'static str],
    share: u32,
    /// Kinds of basis a tenant of this area records, most common first.
    kinds: &'static [&'static str],
}

const AREAS: [Area; 5] = [
    Area {
        jurisdiction: "CN",
        regions: &[
            "cn-beijing-6",
            "cn-shanghai-2",
            "cn-guangzhou-1",
            "cn-shenzhen-1",
        ],
        share: 40,
        kinds: &[
            "pipl-standard-contract",
            "consent",
            "pipl-certification",
            "dpa",
            "pipl-security-assessment",
        ],
    },
    Area {
        jurisdiction: "EU",
        regions: &[
            "eu-frankfurt-1",
            "eu-paris-1",
            "eu-dublin-1",
            "eu-stockholm-1",
        ],
        share: 25,
        kinds: &["scc", "adequacy", "dpa", "bcr", "consent", "derogation"],
    },
    Area {
        jurisdiction: "US",
        regions: &["us-east-1", "us-west-2"],
        share: 15,
        kinds: &["dpa", "scc", "consent"],
    },
    Area {
        jurisdiction: "SG",
        regions: &["ap-singapore-1", "cn-hongkong-2"],
        share: 10,
        kinds: &["dpa", "consent", "scc"],
    },
    Area {
        jurisdiction: "JP",
        regions: &["ap-tokyo-1", "ap-seoul-1", "ap-sydney-1", "uk-london-1"],
        share: 10,
        kinds: &["dpa", "consent", "derogation"],
    },
];

/// Where transfers go: declared jurisdictions and countries of their own,
/// including every country the GeoIP test database places a client in.
const DESTINATIONS: [&str; 12] = [
    "CN", "HK", "SG", "EU", "US", "JP", "KR", "GB", "AU", "CH", "PH", "BT",
];

/// Categories that need a basis to cross a border (`identity` is `never`).
const BASIS_CATEGORIES: [&str; 4] = ["logs", "content", "account", "payment"];

/// `(suffix, category, max_category, classify rules)` of a tenant's ten
/// buckets, after what the example tenants keep.
type BucketKind = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
);
const BUCKET_KINDS: [BucketKind; BUCKETS_PER_TENANT] = [
    (
        "data",
        None,
        Some("payment"),
        &[
            ("logs/", "logs"),
            ("users/", "account"),
            ("orders/", "payment"),
            ("exports/", "content"),
        ],
    ),
    (
        "web",
        Some("public"),
        Some("content"),
        &[("internal/", "content")],
    ),
    ("hr", Some("identity"), None, &[("hr/public/", "public")]),
    ("logs", Some("logs"), Some("content"), &[]),
    ("backup", None, Some("payment"), &[]),
    ("media", Some("content"), None, &[("thumbnails/", "public")]),
    ("crm", Some("account"), None, &[]),
    ("exports", Some("content"), Some("account"), &[]),
    ("archive", None, None, &[]),
    ("tmp", Some("logs"), None, &[]),
];

/// Key prefixes the random requests use: the classify prefixes above, and
/// some that no rule names.
pub const KEY_PREFIXES: [&str; 8] = [
    "logs/2026/05/",
    "users/",
    "orders/",
    "exports/",
    "internal/",
    "hr/public/",
    "thumbnails/",
    "data/",
];

pub fn tenant_id(t: usize) -> String {
    format!("t{t:05}")
}

/// Bucket `b` of the `BUCKETS`: the `b % 10`th kind of tenant `b / 10`.
pub fn bucket_name(b: usize) -> String {
    let kind = BUCKET_KINDS[b % BUCKETS_PER_TENANT].0;
    format!("{}-{kind}", tenant_id(b / BUCKETS_PER_TENANT))
}

/// Unscoped EU adequacy decisions (`tenant = "*"`); every other basis
/// belongs to a tenant.
const STAR_BASES: [(&str, &str); 4] = [
    ("eu-adequacy-ch", "CH"),
    ("eu-adequacy-gb", "GB"),
    ("eu-adequacy-jp", "JP"),
    ("eu-adequacy-kr", "KR"),
];

pub fn generate() -> String {
    let mut rng = StdRng::seed_from_u64(0x6a7e);
    let mut out = String::with_capacity(48 << 20);
    header(&mut out);
    let mut area_of = Vec::with_capacity(TENANTS);
    for t in 0..TENANTS {
        let area = pick_area(&mut rng);
        area_of.push(area);
        tenant(&mut out, &mut rng, t, area);
    }
    for (b, &area) in (0..BUCKETS).zip(area_of.iter().flat_map(|a| [a; BUCKETS_PER_TENANT])) {
        bucket(&mut out, &mut rng, b, area);
    }
    for (id, to) in STAR_BASES {
        let _ = write!(
            out,
            "[[basis]]\nid = \"{id}\"\ntenant = \"*\"\nkind = \"adequacy\"\nfrom = \"EU\"\n\
             to = [\"{to}\"]\ncategories = [\"*\"]\nvalid_from = 2018-05-25\n\
             evidence = \"evidence/{id}.pdf\"\n\n"
        );
    }
    for n in 0..BASES - STAR_BASES.len() {
        let t = n % TENANTS;
        basis(&mut out, &mut rng, n, t, area_of[t]);
    }
    out
}

/// Compiles as a reload does, at `TODAY`; the generator writes no errors.
pub fn compile(text: &str) -> RuleSet {
    match compile_str(text, TODAY) {
        Ok(compiled) => compiled.rules,
        Err(diags) => panic!("the generated rules do not compile: {}", diags[0]),
    }
}

pub fn instance_settings() -> InstanceSettings {
    InstanceSettings {
        region: REGIONS[0].0.into(),
        default_mode: Mode::Enforce,
        unknown_bucket_monitor: false,
        unknown_location_allow: false,
    }
}

fn header(out: &mut String) {
    let eea = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
    ];
    let jurisdictions = [
        ("CN", vec!["CN"], false),
        ("HK", vec!["HK"], true),
        ("SG", vec!["SG"], false),
        ("EU", eea.to_vec(), false),
        ("US", vec!["US"], false),
    ];
    for (id, countries, free) in jurisdictions {
        let _ = writeln!(
            out,
            "[[jurisdiction]]\nid = \"{id}\"\ncountries = {}\n{}",
            list(&countries),
            if free { "export = \"free\"\n" } else { "" }
        );
    }
    for (id, j) in REGIONS {
        let _ = writeln!(out, "[[region]]\nid = \"{id}\"\njurisdiction = \"{j}\"\n");
    }
    let categories = [
        ("public", "free"),
        ("logs", "basis"),
        ("content", "basis"),
        ("account", "basis"),
        ("payment", "basis"),
        ("identity", "never"),
    ];
    for (rank, (id, cross_border)) in (1..).zip(categories) {
        let _ = writeln!(
            out,
            "[[category]]\nid = \"{id}\"\nrank = {}\ncross_border = \"{cross_border}\"\n",
            rank * 10
        );
    }
}

fn pick_area(rng: &mut StdRng) -> &'static Area {
    let mut roll = rng.gen_range(0..100);
    AREAS
        .iter()
        .find(|a| {
            let hit = roll < a.share;
            roll = roll.saturating_sub(a.share);
            hit
        })
        .expect("the shares add up to 100")
}

fn tenant(out: &mut String, rng: &mut StdRng, t: usize, area: &Area) {
    let homes = one_to_three(rng, area.regions);
    let _ = write!(
        out,
        "[[tenant]]\nid = \"{}\"\nhome_regions = {}\n",
        tenant_id(t),
        list(&homes)
    );
    // A quarter name no default: their unclassified data fails closed.
    if rng.gen_bool(0.75) {
        let c = BASIS_CATEGORIES.choose(rng).expect("not empty");
        let _ = writeln!(out, "default_category = \"{c}\"");
    }
    match rng.gen_range(0..10) {
        0 => out.push_str("mode = \"enforce\"\n"),
        1 => out.push_str("mode = \"monitor\"\nmonitor_until = 2026-03-31\n"),
        2 => out.push_str("mode = \"monitor\"\nmonitor_until = 2027-06-30\n"),
        _ => {}
    }
    out.push('\n');
}

fn bucket(out: &mut String, rng: &mut StdRng, b: usize, area: &Area) {
    let name = bucket_name(b);
    let (_, category, max, classify) = BUCKET_KINDS[b % BUCKETS_PER_TENANT];
    let _ = write!(
        out,
        "[[bucket]]\nname = \"{name}\"\ntenant = \"{}\"\n",
        tenant_id(b / BUCKETS_PER_TENANT)
    );
    // Mostly in the tenant's area; some legacy buckets elsewhere; a few
    // name no region and lie in the gate's own.
    let region = match rng.gen_range(0..20) {
        0 => None,
        1 | 2 => Some(REGIONS.choose(rng).expect("not empty").0),
        _ => Some(*area.regions.choose(rng).expect("not empty")),
    };
    if let Some(r) = region {
        let _ = writeln!(out, "region = \"{r}\"");
    }
    if let Some(c) = category {
        let _ = writeln!(out, "category = \"{c}\"");
    }
    if let Some(m) = max {
        let _ = writeln!(out, "max_category = \"{m}\"");
    }
    out.push('\n');
    for (prefix, c) in classify {
        let _ = writeln!(
            out,
            "[[classify]]\nbucket = \"{name}\"\nprefix = \"{prefix}\"\ncategory = \"{c}\"\n"
        );
    }
}

/// The `n`th tenant basis, of tenant `t`: 1 in 7 expired, 1 in 20 revoked.
fn basis(out: &mut String, rng: &mut StdRng, n: usize, t: usize, area: &Area) {
    let kind = *area.kinds.choose(rng).expect("not empty");
    let from = area.jurisdiction;
    let elsewhere: Vec<&str> = DESTINATIONS.into_iter().filter(|&d| d != from).collect();
    let to = one_to_three(rng, &elsewhere);
    let categories = match (kind, rng.gen_range(0..5)) {
        // Step 9: only an explicit `identity` opens the `never` category.
        ("pipl-security-assessment", _) => vec!["identity"],
        (_, 0) => vec!["*"],
        _ => one_to_three(rng, &BASIS_CATEGORIES),
    };
    let _ = write!(
        out,
        "[[basis]]\nid = \"{}-b{n:06}\"\ntenant = \"{}\"\nkind = \"{kind}\"\nfrom = \"{from}\"\n\
         to = {}\ncategories = {}\nrecipient = \"Recipient {n} Ltd.\"\n",
        tenant_id(t),
        tenant_id(t),
        list(&to),
        list(&categories)
    );
    if kind == "adequacy" {
        out.push_str("scope = \"recipient certified under the destination's framework\"\n");
    }
    let from_year = rng.gen_range(2019..=2025);
    let _ = writeln!(out, "valid_from = {from_year}-0{}-01", rng.gen_range(1..=9));
    match rng.gen_range(0..140) {
        0..20 => {
            let _ = writeln!(out, "valid_until = {}-12-31", from_year.min(2025));
        }
        20..27 => {
            let _ = writeln!(
                out,
                "valid_until = 2028-12-31\nrevoked_on = {}-11-30",
                from_year.min(2025)
            );
        }
        // Adequacy decisions often have no end date.
        _ if kind == "adequacy" && rng.gen_bool(0.5) => {}
        _ => {
            let _ = writeln!(out, "valid_until = {}-06-30", rng.gen_range(2027..=2031));
        }
    }
    let _ = writeln!(
        out,
        "evidence = \"contracts/{}-b{n:06}.pdf\"\n",
        tenant_id(t)
    );
}

/// One to three different items.
fn one_to_three<'a>(rng: &mut StdRng, items: &[&'a str]) -> Vec<&'a str> {
    let n = rng.gen_range(1..=3);
    items.choose_multiple(rng, n).copied().collect()
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}
