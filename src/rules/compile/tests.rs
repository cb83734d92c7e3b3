//! One test per validation: each asserts the file, line, column and text of
//! what `check` would print.

use std::path::{Path, PathBuf};

use time::macros::date;
use time::Date;

use super::{compile, compile_str, load_dir, Diagnostic, Source};
use crate::rules::model::{BasisKind, CategoryId, Country, CrossBorder, Jurisdiction, Mode};

/// Fixed, so that which bases count as expired does not change with the
/// calendar.
const TODAY: Date = date!(2026 - 06 - 01);

/// A small valid rule set that tests add a file to, so that every message
/// comes from the added file unless it names this one.
const BASE: &str = r#"[[jurisdiction]]
id = "CN"
countries = ["CN"]

[[jurisdiction]]
id = "EU"
countries = ["DE", "FR"]

[[region]]
id = "bj"
jurisdiction = "CN"

[[region]]
id = "fra"
jurisdiction = "EU"

[[category]]
id = "public"
rank = 10
cross_border = "free"

[[category]]
id = "account"
rank = 20
cross_border = "basis"

[[category]]
id = "identity"
rank = 30
cross_border = "never"

[[tenant]]
id = "acme"
home_regions = ["bj"]
default_category = "account"

[[bucket]]
name = "acme-data"
tenant = "acme"
category = "public"
"#;

fn sources(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(path, text)| Source {
            path: PathBuf::from(path),
            text: text.to_string(),
        })
        .collect()
}

/// Everything `check` would print: the errors and warnings of a failed
/// compile, or the warnings of a successful one.
fn messages(files: &[(&str, &str)]) -> Vec<String> {
    let diags = match compile(&sources(files), TODAY) {
        Ok(c) => c.warnings,
        Err(d) => d,
    };
    diags.iter().map(ToString::to_string).collect()
}

/// The messages of `BASE` plus `extra` as `test.toml`.
fn check(extra: &str) -> Vec<String> {
    messages(&[("base.toml", BASE), ("test.toml", extra)])
}

fn compiled(extra: &str) -> crate::rules::model::RuleSet {
    match compile(
        &sources(&[("base.toml", BASE), ("test.toml", extra)]),
        TODAY,
    ) {
        Ok(c) => {
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            c.rules
        }
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(check(""), Vec::<String>::new());
}

// --- TOML itself -------------------------------------------------------------

#[test]
fn syntax_error_points_at_it() {
    assert_eq!(
        check("[[region]]\nid = \"x\"\njurisdiction = [\n"),
        ["test.toml:3:17: error: unclosed array, expected `]`"]
    );
}

#[test]
fn unknown_key_is_an_error() {
    assert_eq!(
        check("[[bucket]]\nname = \"acme-logs\"\ntenant = \"acme\"\nmax_categroy = \"public\"\n"),
        ["test.toml:4:1: error: unknown field `max_categroy`, expected one of `name`, `tenant`, `region`, `category`, `max_category`"]
    );
}

#[test]
fn unknown_table_is_an_error() {
    assert_eq!(
        check("[[buckets]]\nname = \"x\"\n"),
        ["test.toml:1:3: error: unknown field `buckets`, expected one of `jurisdiction`, `region`, `category`, `tenant`, `bucket`, `classify`, `network`, `peer`, `basis`"]
    );
}

#[test]
fn wrong_type_is_an_error() {
    assert_eq!(
        check("[[category]]\nid = \"logs\"\nrank = \"high\"\ncross_border = \"basis\"\n"),
        ["test.toml:3:8: error: invalid type: string \"high\", expected i64"]
    );
}

#[test]
fn missing_field_points_at_the_table() {
    assert_eq!(
        check("[[region]]\nid = \"x\"\n"),
        ["test.toml:1:1: error: missing field `jurisdiction`"]
    );
}

#[test]
fn date_must_be_a_local_date() {
    assert_eq!(
        check("[[tenant]]\nid = \"t\"\nhome_regions = [\"bj\"]\nmode = \"monitor\"\nmonitor_until = 2027-01-01T00:00:00Z\n"),
        ["test.toml:5:17: error: expected a date like 2025-01-01, found 2027-01-01T00:00:00Z"]
    );
}

#[test]
fn parse_errors_of_every_file_are_shown_and_nothing_else() {
    // The bucket's unknown tenant is not reported: the tenant might be in
    // the file that did not parse.
    let d = messages(&[
        ("a.toml", "[[tenant]\n"),
        (
            "b.toml",
            "[[bucket]]\nname = \"acme-data\"\ntenant = \"nobody\"\n",
        ),
        ("c.toml", "x = 1\n"),
    ]);
    assert_eq!(
        d,
        [
            "a.toml:1:10: error: unclosed array table, expected `]`",
            "c.toml:1:1: error: unknown field `x`, expected one of `jurisdiction`, `region`, `category`, `tenant`, `bucket`, `classify`, `network`, `peer`, `basis`",
        ]
    );
}

// --- ids and references -----------------------------------------------------

#[test]
fn duplicate_ids_name_the_first_definition_in_another_file() {
    let cases = [
        (
            "[[jurisdiction]]\nid = \"EU\"\ncountries = [\"IT\"]\n",
            "test.toml:2:6: error: duplicate jurisdiction \"EU\"; first defined at base.toml:6:6",
        ),
        (
            "[[region]]\nid = \"bj\"\njurisdiction = \"CN\"\n",
            "test.toml:2:6: error: duplicate region \"bj\"; first defined at base.toml:10:6",
        ),
        (
            "[[category]]\nid = \"public\"\nrank = 5\ncross_border = \"free\"\n",
            "test.toml:2:6: error: duplicate category \"public\"; first defined at base.toml:18:6",
        ),
        (
            "[[tenant]]\nid = \"acme\"\nhome_regions = [\"bj\"]\n",
            "test.toml:2:6: error: duplicate tenant \"acme\"; first defined at base.toml:33:6",
        ),
        (
            "[[bucket]]\nname = \"acme-data\"\ntenant = \"acme\"\n",
            "test.toml:2:8: error: duplicate bucket \"acme-data\"; first defined at base.toml:38:8",
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(check(extra), [expected], "{extra}");
    }
}

#[test]
fn duplicate_ids_within_a_file() {
    let d = check(
        r#"[[peer]]
id = "p"
region = "bj"
san = "a.example"

[[peer]]
id = "p"
region = "bj"
san = "b.example"

[[basis]]
id = "b"
tenant = "acme"
kind = "consent"
from = "CN"
to = ["EU"]
categories = ["account"]
valid_from = 2025-01-01

[[basis]]
id = "b"
tenant = "acme"
kind = "consent"
from = "CN"
to = ["EU"]
categories = ["account"]
valid_from = 2025-01-01
"#,
    );
    assert_eq!(
        d,
        [
            "test.toml:7:6: error: duplicate peer \"p\"; first defined at test.toml:2:6",
            "test.toml:21:6: error: duplicate basis \"b\"; first defined at test.toml:12:6",
        ]
    );
}

#[test]
fn wildcard_is_not_an_id() {
    assert_eq!(
        check("[[tenant]]\nid = \"*\"\nhome_regions = [\"bj\"]\n"),
        ["test.toml:2:6: error: \"*\" cannot be an id: it is the wildcard of a [[basis]]"]
    );
}

#[test]
fn every_reference_is_checked() {
    let d = check(
        r#"[[region]]
id = "sh"
jurisdiction = "Mars"

[[tenant]]
id = "t"
home_regions = ["nowhere"]
default_category = "secret"

[[bucket]]
name = "t-data"
tenant = "nobody"
region = "nowhere"
category = "secret"
max_category = "secret2"

[[classify]]
bucket = "no-such-bucket"
prefix = "a/"
category = "public"

[[classify]]
bucket = "acme-data"
prefix = "b/"
category = "secret"

[[network]]
cidr = "10.0.0.0/8"
region = "nowhere"

[[peer]]
id = "p"
region = "nowhere"
san = "p.example"

[[basis]]
id = "b"
tenant = "nobody"
kind = "scc"
from = "Mars"
to = ["Venus"]
categories = ["secret"]
valid_from = 2025-01-01
"#,
    );
    assert_eq!(
        d,
        [
            "test.toml:3:16: error: unknown jurisdiction \"Mars\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
            "test.toml:7:17: error: unknown region \"nowhere\"",
            "test.toml:8:20: error: unknown category \"secret\"",
            "test.toml:12:10: error: unknown tenant \"nobody\"",
            "test.toml:13:10: error: unknown region \"nowhere\"",
            "test.toml:14:12: error: unknown category \"secret\"",
            "test.toml:15:16: error: unknown category \"secret2\"",
            "test.toml:18:10: error: unknown bucket \"no-such-bucket\"",
            "test.toml:25:12: error: unknown category \"secret\"",
            "test.toml:29:10: error: unknown region \"nowhere\"",
            "test.toml:33:10: error: unknown region \"nowhere\"",
            "test.toml:38:10: error: unknown tenant \"nobody\"",
            "test.toml:40:8: error: unknown jurisdiction \"Mars\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
            "test.toml:41:7: error: unknown jurisdiction \"Venus\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
            "test.toml:42:15: error: unknown category \"secret\"",
            // Its only bucket names another tenant.
            "test.toml:6:6: warning: tenant \"t\" owns no buckets",
        ]
    );
}

// --- jurisdictions and regions ----------------------------------------------

#[test]
fn country_in_two_jurisdictions() {
    assert_eq!(
        check("[[jurisdiction]]\nid = \"EFTA\"\ncountries = [\"CH\", \"FR\"]\n"),
        ["test.toml:3:20: error: country FR is already in jurisdiction \"EU\" (base.toml:7:20)"]
    );
}

#[test]
fn invalid_country_codes() {
    assert_eq!(
        check("[[jurisdiction]]\nid = \"X\"\ncountries = [\"XX\", \"it\", \"ITA\"]\n"),
        [
            "test.toml:3:14: error: invalid country code \"XX\": expected ISO 3166-1 alpha-2, upper case",
            "test.toml:3:20: error: invalid country code \"it\": expected ISO 3166-1 alpha-2, upper case",
            "test.toml:3:26: error: invalid country code \"ITA\": expected ISO 3166-1 alpha-2, upper case",
        ]
    );
}

#[test]
fn jurisdiction_named_after_a_country_must_list_it() {
    assert_eq!(
        check("[[jurisdiction]]\nid = \"JP\"\ncountries = [\"KR\"]\n"),
        ["test.toml:2:6: error: jurisdiction \"JP\" has the name of a country, so its countries must include \"JP\""]
    );
}

#[test]
fn invalid_export() {
    assert_eq!(
        check("[[jurisdiction]]\nid = \"HK\"\ncountries = [\"HK\"]\nexport = \"open\"\n"),
        ["test.toml:4:10: error: invalid export \"open\": expected one of \"restricted\", \"free\""]
    );
}

#[test]
fn country_of_a_declared_jurisdiction_must_be_written_as_it() {
    assert_eq!(
        check("[[region]]\nid = \"paris\"\njurisdiction = \"FR\"\n"),
        ["test.toml:3:16: error: country FR belongs to jurisdiction \"EU\": write \"EU\" here"]
    );
}

#[test]
fn undeclared_country_is_its_own_jurisdiction() {
    let rules = compiled(
        r#"[[region]]
id = "moscow"
jurisdiction = "RU"

[[region]]
id = "macau"
jurisdiction = "MO"

[[region]]
id = "moscow-2"
jurisdiction = "RU"
"#,
    );
    assert_eq!(
        rules.tables.own_countries,
        [Country(*b"RU"), Country(*b"MO")]
    );
    let moscow = rules.region(rules.region_by_id("moscow").unwrap());
    let moscow2 = rules.region(rules.region_by_id("moscow-2").unwrap());
    assert_eq!(moscow.jurisdiction, Jurisdiction(2));
    assert_eq!(moscow2.jurisdiction, Jurisdiction(2));
    assert_eq!(rules.jurisdiction_of(Country(*b"RU")), Jurisdiction(2));
    assert_eq!(rules.jurisdiction_name(Jurisdiction(3)), "MO");
    assert_eq!(rules.jurisdiction_by_name("MO"), Some(Jurisdiction(3)));
}

// --- categories --------------------------------------------------------------

#[test]
fn ranks_must_be_unique() {
    assert_eq!(
        check("[[category]]\nid = \"logs\"\nrank = 20\ncross_border = \"basis\"\n"),
        [
            "test.toml:3:8: error: rank 20 is also the rank of category \"account\" (base.toml:24:8): ranks must be unique",
            "test.toml:2:6: warning: category \"logs\" is not used by any bucket, tenant, classify rule or basis",
        ]
    );
}

#[test]
fn basis_category_may_not_rank_above_a_never_one() {
    assert_eq!(
        check("[[category]]\nid = \"payment\"\nrank = 40\ncross_border = \"basis\"\n"),
        [
            "test.toml:3:8: error: category \"payment\" (basis, rank 40) ranks above \"identity\" (never, rank 30): every never category must rank above every basis one, and every basis above every free one",
            // payment is now the strictest, so identity is the unused one.
            "base.toml:28:6: warning: category \"identity\" is not used by any bucket, tenant, classify rule or basis",
        ]
    );
}

#[test]
fn free_category_may_not_rank_above_a_basis_one() {
    assert_eq!(
        check("[[category]]\nid = \"docs\"\nrank = 25\ncross_border = \"free\"\n"),
        [
            "test.toml:3:8: error: category \"docs\" (free, rank 25) ranks above \"account\" (basis, rank 20): every never category must rank above every basis one, and every basis above every free one",
            "test.toml:2:6: warning: category \"docs\" is not used by any bucket, tenant, classify rule or basis",
        ]
    );
}

#[test]
fn invalid_cross_border() {
    assert_eq!(
        check("[[category]]\nid = \"logs\"\nrank = 15\ncross_border = \"sometimes\"\n"),
        [
            "test.toml:4:16: error: invalid cross_border \"sometimes\": expected one of \"free\", \"basis\", \"never\"",
            "test.toml:2:6: warning: category \"logs\" is not used by any bucket, tenant, classify rule or basis",
        ]
    );
}

#[test]
fn rules_without_categories_are_refused() {
    let d = messages(&[(
        "only.toml",
        "[[region]]\nid = \"r\"\njurisdiction = \"CN\"\n",
    )]);
    assert_eq!(d, [".: error: the rules define no [[category]]"]);
}

#[test]
fn categories_are_ordered_by_rank_whatever_the_file_order() {
    let rules = compiled("[[category]]\nid = \"logs\"\nrank = 15\ncross_border = \"basis\"\n\n[[classify]]\nbucket = \"acme-data\"\nprefix = \"x/\"\ncategory = \"public\"\n\n[[tenant]]\nid = \"logger\"\nhome_regions = [\"bj\"]\ndefault_category = \"logs\"\n\n[[bucket]]\nname = \"logger-data\"\ntenant = \"logger\"\n");
    let ids: Vec<&str> = rules.tables.categories.iter().map(|c| &*c.id).collect();
    assert_eq!(ids, ["public", "logs", "account", "identity"]);
    assert_eq!(rules.category_by_id("logs"), Some(CategoryId(1)));
    assert_eq!(rules.strictest_category(), CategoryId(3));
    assert_eq!(
        rules.category(CategoryId(3)).cross_border,
        CrossBorder::Never
    );
}

// --- tenants -----------------------------------------------------------------

#[test]
fn home_regions_must_not_be_empty() {
    assert_eq!(
        check("[[tenant]]\nid = \"t\"\nhome_regions = []\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n"),
        ["test.toml:3:16: error: home_regions is empty"]
    );
}

#[test]
fn home_region_listed_twice() {
    assert_eq!(
        check("[[tenant]]\nid = \"t\"\nhome_regions = [\"bj\", \"fra\", \"bj\"]\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n"),
        ["test.toml:3:30: error: \"bj\" is listed twice in home_regions"]
    );
}

#[test]
fn monitor_needs_monitor_until() {
    assert_eq!(
        check("[[tenant]]\nid = \"t\"\nhome_regions = [\"bj\"]\nmode = \"monitor\"\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n"),
        ["test.toml:4:8: error: mode = \"monitor\" needs monitor_until, the last day denials are let through"]
    );
}

#[test]
fn monitor_until_needs_monitor() {
    let expected = ["test.toml:5:17: error: monitor_until is set but mode is not \"monitor\""];
    for mode in ["", "mode = \"enforce\"\n"] {
        let extra = format!("[[tenant]]\nid = \"t\"\nhome_regions = [\"bj\"]\n{mode}monitor_until = 2027-01-01\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n");
        let d = check(&extra);
        let line = if mode.is_empty() { 4 } else { 5 };
        assert_eq!(
            d,
            [expected[0].replace("5:17", &format!("{line}:17"))],
            "{extra}"
        );
    }
}

#[test]
fn invalid_mode() {
    assert_eq!(
        check("[[tenant]]\nid = \"t\"\nhome_regions = [\"bj\"]\nmode = \"audit\"\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n"),
        ["test.toml:4:8: error: invalid mode \"audit\": expected one of \"enforce\", \"monitor\""]
    );
}

#[test]
fn tenant_fields_resolve() {
    let rules = compiled("[[tenant]]\nid = \"t\"\nhome_regions = [\"fra\", \"bj\"]\nmode = \"monitor\"\nmonitor_until = 2027-03-31\n\n[[bucket]]\nname = \"t-data\"\ntenant = \"t\"\n");
    let t = rules.tenant(rules.tenant_by_id("t").unwrap());
    assert_eq!(
        t.home_regions,
        [
            rules.region_by_id("fra").unwrap(),
            rules.region_by_id("bj").unwrap()
        ]
    );
    // No default_category: the strictest, so unclassified data fails closed.
    assert_eq!(t.default_category, rules.strictest_category());
    assert_eq!(
        t.mode,
        Some(Mode::Monitor {
            until: date!(2027 - 03 - 31)
        })
    );
    let acme = rules.tenant(rules.tenant_by_id("acme").unwrap());
    assert_eq!(acme.mode, None);
}

// --- buckets and classify ------------------------------------------------------

#[test]
fn invalid_bucket_names() {
    let cases = [
        ("ab", "must be 3 to 63 characters long"),
        (
            "Acme-Data",
            "may hold only lower-case letters, digits, '.' and '-'",
        ),
        (
            "acme_data",
            "may hold only lower-case letters, digits, '.' and '-'",
        ),
        ("-acme", "must begin and end with a letter or digit"),
        ("acme.", "must begin and end with a letter or digit"),
        ("acme..data", "must not contain two adjacent periods"),
        ("192.168.5.4", "must not look like an IP address"),
        // found by fuzzing: S3 and the gate's classification read these
        // as IP-formatted too, though they are no IPv4 address
        ("999.1.1.1", "must not look like an IP address"),
        ("01.2.3.4", "must not look like an IP address"),
        ("xn--acme", "the prefix \"xn--\" is reserved by S3"),
        ("acme-s3alias", "the suffix \"-s3alias\" is reserved by S3"),
        ("acme--x-s3", "the suffix \"--x-s3\" is reserved by S3"),
    ];
    for (name, problem) in cases {
        let extra = format!("[[bucket]]\nname = \"{name}\"\ntenant = \"acme\"\n");
        assert_eq!(
            check(&extra),
            [format!(
                "test.toml:2:8: error: invalid bucket name \"{name}\": {problem}"
            )]
        );
    }
    let long = "a".repeat(64);
    assert_eq!(
        check(&format!(
            "[[bucket]]\nname = \"{long}\"\ntenant = \"acme\"\n"
        )),
        [format!(
            "test.toml:2:8: error: invalid bucket name \"{long}\": must be 3 to 63 characters long"
        )]
    );
    compiled(&format!("[[bucket]]\nname = \"{}\"\ntenant = \"acme\"\n\n[[bucket]]\nname = \"a.b-1\"\ntenant = \"acme\"\n", "a".repeat(63)));
}

#[test]
fn bucket_category_above_its_max_category() {
    assert_eq!(
        check("[[bucket]]\nname = \"acme-hr\"\ntenant = \"acme\"\ncategory = \"identity\"\nmax_category = \"account\"\n"),
        ["test.toml:4:12: error: category \"identity\" is stricter than max_category \"account\" of bucket \"acme-hr\""]
    );
}

#[test]
fn classify_category_above_the_bucket_max_category() {
    // acme-data has category public and no max_category: public is its max.
    assert_eq!(
        check("[[classify]]\nbucket = \"acme-data\"\nprefix = \"users/\"\ncategory = \"account\"\n"),
        ["test.toml:4:12: error: category \"account\" is stricter than max_category \"public\" of bucket \"acme-data\""]
    );
}

#[test]
fn duplicate_classify_prefix() {
    assert_eq!(
        check("[[classify]]\nbucket = \"acme-data\"\nprefix = \"logs/\"\ncategory = \"public\"\n\n[[classify]]\nbucket = \"acme-data\"\nprefix = \"logs/\"\ncategory = \"public\"\n"),
        ["test.toml:8:10: error: duplicate classify rule for bucket \"acme-data\" and prefix \"logs/\"; first defined at test.toml:3:10"]
    );
}

#[test]
fn max_category_resolves_declared_then_category_then_strictest() {
    let rules = compiled(
        r#"[[bucket]]
name = "declared"
tenant = "acme"
max_category = "account"

[[bucket]]
name = "from-category"
tenant = "acme"
category = "account"

[[bucket]]
name = "neither"
tenant = "acme"
region = "fra"

[[classify]]
bucket = "neither"
prefix = "a/"
category = "account"

[[classify]]
bucket = "neither"
prefix = "a/b/"
category = "identity"
"#,
    );
    let max = |name: &str| {
        rules
            .bucket(rules.bucket_by_name(name).unwrap())
            .max_category
    };
    assert_eq!(max("declared"), rules.category_by_id("account").unwrap());
    assert_eq!(
        max("from-category"),
        rules.category_by_id("account").unwrap()
    );
    assert_eq!(max("neither"), rules.strictest_category());
    let neither = rules.bucket(rules.bucket_by_name("neither").unwrap());
    assert_eq!(neither.region, rules.region_by_id("fra"));
    assert_eq!(neither.category, None);
    assert_eq!(
        neither.classify.longest("a/b/c"),
        Some(("a/b/", CategoryId(2)))
    );
    assert_eq!(neither.classify.longest("a/c"), Some(("a/", CategoryId(1))));
    assert!(rules
        .bucket(rules.bucket_by_name("declared").unwrap())
        .classify
        .is_empty());
}

// --- networks and peers ------------------------------------------------------

#[test]
fn invalid_cidr() {
    assert_eq!(
        check("[[network]]\ncidr = \"10.0.0.0\"\nregion = \"bj\"\n\n[[network]]\ncidr = \"10.1.0.0/33\"\nregion = \"bj\"\n"),
        [
            "test.toml:2:8: error: invalid CIDR \"10.0.0.0\": expected an address and prefix length like \"10.0.0.0/8\"",
            "test.toml:6:8: error: invalid CIDR \"10.1.0.0/33\": expected an address and prefix length like \"10.0.0.0/8\"",
        ]
    );
}

#[test]
fn cidr_with_host_bits() {
    assert_eq!(
        check("[[network]]\ncidr = \"10.1.2.3/16\"\nregion = \"bj\"\n\n[[network]]\ncidr = \"2001:db8::1/32\"\nregion = \"bj\"\n"),
        [
            "test.toml:2:8: error: CIDR \"10.1.2.3/16\" has host bits set: the network is \"10.1.0.0/16\"",
            "test.toml:6:8: error: CIDR \"2001:db8::1/32\" has host bits set: the network is \"2001:db8::/32\"",
        ]
    );
}

#[test]
fn overlapping_networks() {
    let d = check(
        r#"[[network]]
cidr = "10.1.0.0/16"
region = "bj"

[[network]]
cidr = "10.0.0.0/8"
region = "fra"

[[network]]
cidr = "10.2.3.0/24"
region = "bj"

[[network]]
cidr = "11.0.0.0/8"
region = "bj"

[[network]]
cidr = "2001:db8::/32"
region = "bj"

[[network]]
cidr = "2001:db8::/32"
region = "bj"

[[network]]
cidr = "::/0"
region = "fra"
"#,
    );
    assert_eq!(
        d,
        [
            "test.toml:2:8: error: network 10.1.0.0/16 overlaps 10.0.0.0/8 (test.toml:6:8)",
            "test.toml:10:8: error: network 10.2.3.0/24 overlaps 10.0.0.0/8 (test.toml:6:8)",
            "test.toml:18:8: error: network 2001:db8::/32 overlaps ::/0 (test.toml:26:8)",
            "test.toml:22:8: error: network 2001:db8::/32 overlaps ::/0 (test.toml:26:8)",
        ]
    );
}

#[test]
fn adjacent_networks_do_not_overlap() {
    let rules = compiled("[[network]]\ncidr = \"10.0.0.0/9\"\nregion = \"bj\"\n\n[[network]]\ncidr = \"10.128.0.0/9\"\nregion = \"fra\"\n\n[[network]]\ncidr = \"::ffff:0:0/96\"\nregion = \"fra\"\n");
    assert_eq!(
        rules.network_region("10.200.0.1".parse().unwrap()),
        rules.region_by_id("fra")
    );
    assert_eq!(
        rules.network_region("10.1.0.1".parse().unwrap()),
        rules.region_by_id("bj")
    );
}

#[test]
fn peer_needs_cert_sha256_or_san() {
    assert_eq!(
        check("[[peer]]\nid = \"p\"\nregion = \"bj\"\n"),
        ["test.toml:2:6: error: peer \"p\" needs cert_sha256 or san: its client certificate is how it is recognised"]
    );
}

#[test]
fn bad_fingerprint_hex() {
    assert_eq!(
        check("[[peer]]\nid = \"p\"\nregion = \"bj\"\ncert_sha256 = \"abc123\"\n\n[[peer]]\nid = \"q\"\nregion = \"bj\"\ncert_sha256 = \"zz\"\n"),
        [
            "test.toml:4:15: error: invalid cert_sha256 \"abc123\": expected 64 hex digits, the SHA-256 of the DER certificate",
            "test.toml:9:15: error: invalid cert_sha256 \"zz\": expected 64 hex digits, the SHA-256 of the DER certificate",
        ]
    );
}

#[test]
fn one_certificate_or_san_names_one_peer() {
    let fp = "ab".repeat(32);
    let colons = vec!["AB"; 32].join(":");
    let extra = format!("[[peer]]\nid = \"p\"\nregion = \"bj\"\ncert_sha256 = \"{fp}\"\nsan = \"p.example\"\n\n[[peer]]\nid = \"q\"\nregion = \"bj\"\ncert_sha256 = \"{colons}\"\nsan = \"p.example\"\n");
    assert_eq!(
        check(&extra),
        [
            format!("test.toml:10:15: error: duplicate cert_sha256 \"{colons}\"; first defined at test.toml:4:15"),
            "test.toml:11:7: error: duplicate san \"p.example\"; first defined at test.toml:5:7".to_string(),
        ]
    );
}

#[test]
fn peers_resolve() {
    let fp = "0f".repeat(32);
    let rules = compiled(&format!("[[peer]]\nid = \"p\"\nregion = \"fra\"\ncert_sha256 = \"{fp}\"\n\n[[peer]]\nid = \"q\"\nregion = \"bj\"\nsan = \"q.example\"\n"));
    let p = rules.peer_by_fingerprint(&[0x0f; 32]).unwrap();
    assert_eq!(rules.peer(p).region, rules.region_by_id("fra").unwrap());
    assert_eq!(rules.peer_by_san("q.example"), rules.peer_by_id("q"));
}

// --- bases ---------------------------------------------------------------------

#[test]
fn basis_with_unknown_kind() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"contract\"\nfrom = \"CN\"\nto = [\"EU\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        ["test.toml:4:8: error: invalid kind \"contract\": expected one of \"adequacy\", \"scc\", \"bcr\", \"dpa\", \"consent\", \"pipl-standard-contract\", \"pipl-security-assessment\", \"pipl-certification\", \"derogation\""]
    );
}

#[test]
fn any_tenant_only_on_adequacy() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"*\"\nkind = \"scc\"\nfrom = \"EU\"\nto = [\"US\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        ["test.toml:3:10: error: tenant = \"*\" is only for adequacy decisions: a scc record binds one tenant"]
    );
}

#[test]
fn any_tenant_only_on_unscoped_adequacy() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"*\"\nkind = \"adequacy\"\nfrom = \"EU\"\nto = [\"US\"]\ncategories = [\"*\"]\nscope = \"DPF-certified recipients\"\nvalid_from = 2023-07-10\n"),
        ["test.toml:8:9: error: a scoped adequacy decision cannot have tenant = \"*\": record it for each tenant whose recipient is inside the scope"]
    );
}

#[test]
fn to_must_not_be_empty() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = []\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        ["test.toml:6:6: error: to is empty"]
    );
}

#[test]
fn from_must_not_be_in_to() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = [\"EU\", \"CN\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        ["test.toml:6:13: error: to lists \"CN\", the from jurisdiction: a transfer within one jurisdiction needs no basis"]
    );
}

#[test]
fn to_listed_twice() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = [\"JP\", \"EU\", \"JP\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        ["test.toml:6:19: error: \"JP\" is listed twice in to"]
    );
}

#[test]
fn basis_categories() {
    let d = check(
        r#"[[basis]]
id = "b1"
tenant = "acme"
kind = "scc"
from = "CN"
to = ["EU"]
categories = []
valid_from = 2025-01-01

[[basis]]
id = "b2"
tenant = "acme"
kind = "scc"
from = "CN"
to = ["EU"]
categories = ["account", "*"]
valid_from = 2025-01-01

[[basis]]
id = "b3"
tenant = "acme"
kind = "scc"
from = "CN"
to = ["EU"]
categories = ["account", "secret", "account"]
valid_from = 2025-01-01
"#,
    );
    assert_eq!(
        d,
        [
            "test.toml:7:14: error: categories is empty",
            "test.toml:16:26: error: \"*\" already means every category: list nothing beside it",
            "test.toml:25:26: error: unknown category \"secret\"",
            "test.toml:25:36: error: \"account\" is listed twice in categories",
        ]
    );
}

#[test]
fn valid_until_before_valid_from() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = [\"EU\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\nvalid_until = 2024-12-31\n"),
        ["test.toml:9:15: error: valid_until 2024-12-31 is before valid_from 2025-01-01"]
    );
}

#[test]
fn revoked_on_before_valid_from() {
    assert_eq!(
        check("[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = [\"EU\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\nrevoked_on = 2024-06-30\n"),
        ["test.toml:9:14: error: revoked_on 2024-06-30 is before valid_from 2025-01-01"]
    );
}

#[test]
fn bases_resolve() {
    let rules = compiled(
        r#"[[basis]]
id = "any"
tenant = "*"
kind = "adequacy"
from = "EU"
to = ["CH", "GB"]
categories = ["*"]
valid_from = 2018-05-25

[[basis]]
id = "kyc"
tenant = "acme"
kind = "pipl-security-assessment"
from = "CN"
to = ["SG"]
categories = ["identity"]
recipient = "Acme SG"
valid_from = 2025-01-01
valid_until = 2027-12-31
revoked_on = 2027-06-30
evidence = "evidence/cac.pdf"
"#,
    );
    let eu = rules.jurisdiction_by_name("EU").unwrap();
    let ch = rules.jurisdiction_by_name("CH").unwrap();
    let any = rules.basis(rules.star_bases(eu, ch)[0].id);
    assert_eq!(&*any.id, "any");
    assert_eq!(any.tenant, None);
    assert_eq!(any.categories, None);
    assert_eq!(any.valid_until, Date::MAX);
    let cn = rules.jurisdiction_by_name("CN").unwrap();
    let sg = rules.jurisdiction_by_name("SG").unwrap();
    // A tenant's own bases are read through its buckets' lines.
    let acme = rules.bucket_hot_by_name("acme-data").unwrap().tenant();
    let kyc = rules.basis(acme.bases_for(&rules, cn, sg)[0].id);
    assert_eq!(kyc.kind, BasisKind::PiplSecurityAssessment);
    assert!(kyc.names_category(rules.category_by_id("identity").unwrap()));
    assert_eq!(kyc.revoked_on, Some(date!(2027 - 06 - 30)));
    assert_eq!(kyc.recipient.as_deref(), Some("Acme SG"));
    assert_eq!(kyc.evidence.as_deref(), Some("evidence/cac.pdf"));
}

// --- warnings --------------------------------------------------------------------

#[test]
fn expired_and_revoked_bases_warn() {
    let d = check(
        r#"[[basis]]
id = "old"
tenant = "acme"
kind = "scc"
from = "CN"
to = ["EU"]
categories = ["account"]
valid_from = 2020-01-01
valid_until = 2026-05-31

[[basis]]
id = "withdrawn"
tenant = "acme"
kind = "consent"
from = "CN"
to = ["EU"]
categories = ["account"]
valid_from = 2025-01-01
valid_until = 2027-12-31
revoked_on = 2026-06-01

[[basis]]
id = "last-day"
tenant = "acme"
kind = "dpa"
from = "CN"
to = ["EU"]
categories = ["account"]
valid_from = 2025-01-01
valid_until = 2026-06-01
revoked_on = 2026-06-02
"#,
    );
    assert_eq!(
        d,
        [
            "test.toml:9:15: warning: basis \"old\" expired on 2026-05-31",
            "test.toml:20:14: warning: basis \"withdrawn\" was revoked on 2026-06-01",
        ]
    );
}

#[test]
fn tenant_without_buckets_warns() {
    assert_eq!(
        check("[[tenant]]\nid = \"idle\"\nhome_regions = [\"bj\"]\n"),
        ["test.toml:2:6: warning: tenant \"idle\" owns no buckets"]
    );
}

#[test]
fn unused_category_warns_unless_strictest() {
    // `identity` is named by nothing in BASE either, but it is the strictest:
    // the default of everything unclassified.
    assert_eq!(
        check("[[category]]\nid = \"logs\"\nrank = 15\ncross_border = \"basis\"\n"),
        ["test.toml:2:6: warning: category \"logs\" is not used by any bucket, tenant, classify rule or basis"]
    );
}

#[test]
fn errors_come_before_warnings_in_file_order() {
    let d = messages(&[
        ("a.toml", BASE),
        (
            "b.toml",
            "[[tenant]]\nid = \"idle\"\nhome_regions = [\"bj\"]\n",
        ),
        (
            "c.toml",
            "[[region]]\nid = \"x\"\njurisdiction = \"Mars\"\n",
        ),
        (
            "d.toml",
            "[[region]]\nid = \"y\"\njurisdiction = \"Venus\"\n",
        ),
    ]);
    assert_eq!(d.len(), 3);
    assert!(d[0].starts_with("c.toml:3:16: error:"), "{d:?}");
    assert!(d[1].starts_with("d.toml:3:16: error:"), "{d:?}");
    assert_eq!(d[2], "b.toml:2:6: warning: tenant \"idle\" owns no buckets");
}

// --- positions, files, versions ----------------------------------------------------

#[test]
fn columns_count_characters() {
    assert_eq!(
        check("[[region]]\nid = \"über\"\njurisdiction = \"Mars\"\n\n[[basis]]\nid = \"b\"\ntenant = \"acme\"\nkind = \"scc\"\nfrom = \"CN\"\nto = [\"Ärger\", \"Mars\"]\ncategories = [\"account\"]\nvalid_from = 2025-01-01\n"),
        [
            "test.toml:3:16: error: unknown jurisdiction \"Mars\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
            "test.toml:10:7: error: unknown jurisdiction \"Ärger\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
            "test.toml:10:16: error: unknown jurisdiction \"Mars\": neither a [[jurisdiction]] id nor an ISO 3166 country code",
        ]
    );
}

#[test]
fn whole_file_diagnostics_have_no_position() {
    let d = Diagnostic::file_error(Path::new("rules/x.toml"), "cannot read: denied");
    assert_eq!(d.to_string(), "rules/x.toml: error: cannot read: denied");
}

#[test]
fn compile_str_names_its_file_rules_toml() {
    let err = compile_str("[[region]]\n", TODAY).err().unwrap();
    assert_eq!(
        err[0].to_string(),
        "rules.toml:1:1: error: missing field `id`"
    );
    assert!(compile_str(BASE, TODAY).is_ok());
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn load_dir_reads_every_toml_file_recursively_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let (base, rest) = BASE.split_at(BASE.find("[[category]]").unwrap());
    write(dir.path(), "b.toml", rest);
    write(dir.path(), "a/places.toml", base);
    write(
        dir.path(),
        "z/deeper/idle.toml",
        "[[tenant]]\nid = \"idle\"\nhome_regions = [\"bj\"]\n",
    );
    // Not rules: other extensions, hidden files (editor locks, ConfigMap
    // `..data` copies).
    write(dir.path(), "notes.md", "not toml");
    write(dir.path(), ".#b.toml", "garbage");
    write(dir.path(), "..data/b.toml", rest);
    let compiled = load_dir(dir.path(), TODAY).unwrap_or_else(|d| panic!("{d:?}"));
    let expected = dir.path().join("z/deeper/idle.toml");
    assert_eq!(compiled.warnings.len(), 1);
    assert_eq!(compiled.warnings[0].origin.file, expected);
    assert_eq!(
        compiled.warnings[0].to_string(),
        format!(
            "{}:2:6: warning: tenant \"idle\" owns no buckets",
            expected.display()
        )
    );
}

#[test]
fn load_dir_reports_a_missing_or_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let d = load_dir(&missing, TODAY).err().unwrap();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].to_string().starts_with(&format!(
            "{}: error: cannot read directory: ",
            missing.display()
        )),
        "{}",
        d[0]
    );
    let d = load_dir(dir.path(), TODAY).err().unwrap();
    assert_eq!(
        d[0].to_string(),
        format!("{}: error: no *.toml rule files", dir.path().display())
    );
}

#[test]
fn load_dir_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules.toml", BASE);
    std::fs::write(dir.path().join("bad.toml"), [0xff, 0xfe]).unwrap();
    let d = load_dir(dir.path(), TODAY).err().unwrap();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].to_string().starts_with(&format!(
            "{}: error: cannot read: ",
            dir.path().join("bad.toml").display()
        )),
        "{}",
        d[0]
    );
}

#[test]
fn version_hashes_names_relative_to_the_directory_and_bytes() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for dir in [one.path(), two.path()] {
        write(dir, "sub/base.toml", BASE);
    }
    let v1 = load_dir(one.path(), TODAY).unwrap().rules.version;
    let v2 = load_dir(two.path(), TODAY).unwrap().rules.version;
    assert_eq!(v1, v2, "the same rules in another place");
    assert_eq!(v1.len(), 64);
    let in_memory = compile(&sources(&[("sub/base.toml", BASE)]), TODAY)
        .unwrap()
        .rules
        .version;
    assert_eq!(v1, in_memory);

    write(two.path(), "sub/base.toml", &format!("{BASE}\n"));
    assert_ne!(
        v1,
        load_dir(two.path(), TODAY).unwrap().rules.version,
        "a changed byte"
    );
    std::fs::rename(
        two.path().join("sub/base.toml"),
        two.path().join("sub/other.toml"),
    )
    .unwrap();
    write(two.path(), "sub/other.toml", BASE);
    assert_ne!(
        v1,
        load_dir(two.path(), TODAY).unwrap().rules.version,
        "a renamed file"
    );
}

// --- the example rule set ------------------------------------------------------------

#[test]
fn example_rule_set_compiles_with_only_the_expected_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let compiled = load_dir(&dir, date!(2026 - 12 - 01)).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    // Positions looked up, so that editing the comments of bases.toml does
    // not break this test.
    let bases = dir.join("bases.toml");
    let text = std::fs::read_to_string(&bases).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l == needle).unwrap() + 1;
    assert_eq!(
        warnings,
        [
            format!(
                "{}:{}:15: warning: basis \"globex-scc-2019\" expired on 2022-12-26",
                bases.display(),
                line_of("valid_until = 2022-12-26")
            ),
            format!(
                "{}:{}:14: warning: basis \"acme-consent-hk-2024\" was revoked on 2025-03-31",
                bases.display(),
                line_of("revoked_on = 2025-03-31")
            ),
        ]
    );
    let rules = compiled.rules;
    let t = &rules.tables;
    let ids = |v: Vec<&str>| v.join(" ");
    assert_eq!(
        ids(t.tenants.iter().map(|x| &*x.id).collect()),
        "acme globex initech"
    );
    assert_eq!(t.buckets.len(), 10);
    assert_eq!(t.bases.len(), 14);
    assert_eq!(
        ids(t.categories.iter().map(|x| &*x.id).collect()),
        "public logs content account payment identity"
    );
    assert_eq!(
        rules.jurisdiction_name(rules.jurisdiction_of(Country(*b"GR"))),
        "EU"
    );
    assert_eq!(
        t.jurisdictions
            .iter()
            .find(|j| &*j.id == "EU")
            .unwrap()
            .countries
            .len(),
        30
    );
    // Loopback is a client in Beijing.
    assert_eq!(
        rules.network_region("127.0.0.1".parse().unwrap()),
        rules.region_by_id("cn-beijing-6")
    );
    assert_eq!(
        rules.network_region("::1".parse().unwrap()),
        rules.region_by_id("cn-beijing-6")
    );
    // Hong Kong and Macau are outside the mainland.
    let cn = rules.jurisdiction_by_name("CN").unwrap();
    assert_ne!(rules.jurisdiction_of(Country(*b"HK")), cn);
    assert_ne!(rules.jurisdiction_of(Country(*b"MO")), cn);
}
