//! The compiled, immutable rule set that every request is decided against.
//!
//! Names from the rule files are resolved to small integer ids once, at
//! compile time, so the hot path compares integers and does one hash lookup
//! per table it touches. Nothing here reads a file or a clock.
//!
//! The maps are hashbrown's with foldhash, not std's SipHash, which made
//! hashing a tenth of a decision; the bucket names, which every decision
//! looks up, are hashed the same way into `BucketLines`, an open-addressed
//! table of the buckets' hot lines themselves. foldhash is seeded at random
//! per map, and only the rule set inserts keys, so a client choosing names
//! can make no probe sequence longer than the rule author's keys do.
//!
//! The lookups a decision makes are `#[inline]`: the crate's codegen units
//! made them calls from `policy::decide`, and their results (a
//! `ClassifyView` is 40 bytes) went through memory and back.

use std::hash::{BuildHasher, Hasher};

use hashbrown::{DefaultHashBuilder, HashMap};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use time::Date;

/// An ISO 3166-1 alpha-2 country code, upper case ASCII.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// Parses a two-letter code; lower case is accepted and folded.
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Country([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
        ]))
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    fn index(self) -> u16 {
        (self.0[0] - b'A') as u16 * 26 + (self.0[1] - b'A') as u16
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A jurisdiction. Ids below `OWN_COUNTRY` index `RuleSet::jurisdictions`
/// (declared ones, and undeclared countries that a rule names). A country
/// that no rule names is its own jurisdiction, encoded as
/// `OWN_COUNTRY | country index`, so it needs no allocation and can equal
/// nothing a rule mentions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Jurisdiction(pub u16);

const OWN_COUNTRY: u16 = 0x8000;

/// Every two-letter code, so an unnamed country's jurisdiction can be shown
/// as a `&str` without allocating.
static ALL_CODES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut s = String::with_capacity(26 * 26 * 2);
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            s.push(a as char);
            s.push(b as char);
        }
    }
    s
});

impl Jurisdiction {
    pub fn own_country(c: Country) -> Jurisdiction {
        Jurisdiction(OWN_COUNTRY | c.index())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RegionId(pub u16);
/// Ordered by rank: a higher id is a stricter category, so `max` picks the
/// strictest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CategoryId(pub u16);
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TenantId(pub u32);
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BucketId(pub u32);
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BasisId(pub u32);
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(pub u16);

#[derive(Clone, Debug)]
pub struct JurisdictionDef {
    pub id: Box<str>,
    pub countries: Vec<Country>,
    /// `export = "free"`: transfers out of it need no basis.
    pub export_free: bool,
}

#[derive(Clone, Debug)]
pub struct Region {
    pub id: Box<str>,
    pub jurisdiction: Jurisdiction,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrossBorder {
    Free,
    Basis,
    Never,
}

impl CrossBorder {
    pub fn as_str(self) -> &'static str {
        match self {
            CrossBorder::Free => "free",
            CrossBorder::Basis => "basis",
            CrossBorder::Never => "never",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Category {
    pub id: Box<str>,
    pub rank: i64,
    pub cross_border: CrossBorder,
}

/// A tenant's (or the instance's) enforcement mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Enforce,
    /// Denials are let through and flagged until this date (inclusive).
    Monitor {
        until: Date,
    },
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor { .. } => "monitor",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Box<str>,
    pub home_regions: Vec<RegionId>,
    pub default_category: CategoryId,
    /// `None`: the instance's `mode` applies.
    pub mode: Option<Mode>,
}

/// Classify rules of one bucket, sorted by prefix, their bytes side by
/// side: a lookup reads two short runs of memory, however many rules the
/// bucket has.
///
/// The longest rule that is a prefix of a key is found by binary search
/// for the greatest prefix not above the key, then up that rule's chain of
/// shorter rules that are prefixes of it. Every rule between a key's
/// longest matching prefix and the key itself in sorted order begins with
/// that prefix, so the chain leads to it; the walk is at most as long as
/// the deepest nesting of rules within the bucket.
#[derive(Clone, Debug, Default)]
pub struct ClassifyIndex {
    rules: Box<[ClassifyRule]>,
    /// The prefixes, in the order of `rules`.
    bytes: Box<str>,
}

#[derive(Clone, Copy, Debug)]
struct ClassifyRule {
    end: u32,
    category: CategoryId,
    /// The longest other rule that is a prefix of this one.
    parent: Option<u32>,
}

impl ClassifyIndex {
    /// Rules with distinct prefixes (compile reports duplicates).
    pub fn new(rules: impl IntoIterator<Item = (Box<str>, CategoryId)>) -> ClassifyIndex {
        let mut sorted: Vec<(Box<str>, CategoryId)> = rules.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        let mut bytes = String::with_capacity(sorted.iter().map(|(p, _)| p.len()).sum());
        let mut rules: Vec<ClassifyRule> = Vec::with_capacity(sorted.len());
        // The rules that are prefixes of the one before, longest last: in
        // sorted order, a rule's prefixes among the rules come before it.
        let mut open: Vec<u32> = Vec::new();
        for (i, (prefix, category)) in sorted.iter().enumerate() {
            while let Some(&top) = open.last() {
                if prefix.starts_with(&*sorted[top as usize].0) {
                    break;
                }
                open.pop();
            }
            bytes.push_str(prefix);
            rules.push(ClassifyRule {
                end: bytes.len() as u32,
                category: *category,
                parent: open.last().copied(),
            });
            open.push(i as u32);
        }
        ClassifyIndex {
            rules: rules.into(),
            bytes: bytes.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    fn view(&self) -> ClassifyView<'_> {
        ClassifyView(Form::Run {
            rules: &self.rules,
            bytes: &self.bytes,
            start: 0,
        })
    }

    /// The rule with the longest prefix of `key`.
    pub fn longest(&self, key: &str) -> Option<(&str, CategoryId)> {
        self.view().longest(key)
    }

    /// The strictest rule whose prefix overlaps a listing of `prefix`.
    pub fn strictest_overlapping(&self, prefix: &str) -> Option<(&str, CategoryId)> {
        self.view().strictest_overlapping(prefix)
    }
}

/// One bucket's classify rules, read where they lie: in its own
/// `ClassifyIndex`, in the rule set's copy of all buckets' rules side by
/// side, or in a `ClassifyLine`, which a `BucketHot` points into without a
/// `Bucket` in between.
#[derive(Clone, Copy)]
pub struct ClassifyView<'a>(Form<'a>);

#[derive(Clone, Copy)]
enum Form<'a> {
    Run {
        rules: &'a [ClassifyRule],
        /// Holds the rules' prefixes, from `start` on.
        bytes: &'a str,
        start: u32,
    },
    Line(&'a ClassifyLine),
}

/// The classify rules of a bucket with a few short ones, their prefixes
/// beside them in one cache line: the rules and their bytes in two runs
/// of memory cost a miss for each, the second only after the first, since
/// where a prefix lies is read from the rules.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct ClassifyLine {
    categories: [CategoryId; LINE_RULES],
    len: u8,
    /// Where each rule's prefix ends in `bytes`.
    ends: [u8; LINE_RULES],
    /// The longest other rule that is a prefix of each, as its index + 1;
    /// 0 for none.
    parents: [u8; LINE_RULES],
    /// The prefixes, in the order of the rules.
    bytes: [u8; LINE_BYTES],
}

const LINE_RULES: usize = 6;
const LINE_BYTES: usize = 64 - 1 - LINE_RULES * 4;

impl ClassifyLine {
    /// `None` when the rules do not fit.
    fn new(index: &ClassifyIndex) -> Option<ClassifyLine> {
        if index.len() > LINE_RULES || index.bytes.len() > LINE_BYTES {
            return None;
        }
        let mut line = ClassifyLine {
            categories: [CategoryId(0); LINE_RULES],
            len: index.len() as u8,
            ends: [0; LINE_RULES],
            parents: [0; LINE_RULES],
            bytes: [0; LINE_BYTES],
        };
        line.bytes[..index.bytes.len()].copy_from_slice(index.bytes.as_bytes());
        for (i, r) in index.rules.iter().enumerate() {
            line.categories[i] = r.category;
            line.ends[i] = r.end as u8;
            line.parents[i] = r.parent.map_or(0, |p| p as u8 + 1);
        }
        Some(line)
    }
}

impl<'a> ClassifyView<'a> {
    fn len(self) -> usize {
        match self.0 {
            Form::Run { rules, .. } => rules.len(),
            Form::Line(line) => line.len.into(),
        }
    }

    fn category(self, i: usize) -> CategoryId {
        match self.0 {
            Form::Run { rules, .. } => rules[i].category,
            Form::Line(line) => line.categories[i],
        }
    }

    fn parent(self, i: usize) -> Option<usize> {
        match self.0 {
            Form::Run { rules, .. } => rules[i].parent.map(|p| p as usize),
            Form::Line(line) => (line.parents[i] as usize).checked_sub(1),
        }
    }

    /// Rule `i`'s prefix as bytes: the search compares bytes, which order
    /// as the strings do, and only the rule it finds is made a `&str`.
    #[inline]
    fn prefix_bytes(self, i: usize) -> &'a [u8] {
        match self.0 {
            Form::Run {
                rules,
                bytes,
                start,
            } => {
                let start = i.checked_sub(1).map_or(start, |j| rules[j].end);
                &bytes.as_bytes()[start as usize..rules[i].end as usize]
            }
            Form::Line(line) => {
                let start = i.checked_sub(1).map_or(0, |j| line.ends[j]);
                &line.bytes[start as usize..line.ends[i] as usize]
            }
        }
    }

    fn prefix(self, i: usize) -> &'a str {
        // Each prefix was copied whole from a `&str`.
        std::str::from_utf8(self.prefix_bytes(i)).unwrap_or_default()
    }

    /// The rule with the longest prefix of `key`.
    #[inline]
    pub fn longest(self, key: &str) -> Option<(&'a str, CategoryId)> {
        let key = key.as_bytes();
        // Binary search for the number of prefixes not above `key`.
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if not_above(self.prefix_bytes(mid), key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut at = lo.checked_sub(1)?;
        loop {
            if is_prefix(self.prefix_bytes(at), key) {
                return Some((self.prefix(at), self.category(at)));
            }
            at = self.parent(at)?;
        }
    }

    /// The strictest rule whose prefix overlaps a listing of `prefix`: the
    /// listing may return keys under any such rule. Lists are rarer than
    /// object reads, and this walks only one bucket's rules.
    pub fn strictest_overlapping(self, prefix: &str) -> Option<(&'a str, CategoryId)> {
        // On bytes, as `longest`: only the rule chosen is made a `&str`.
        let prefix = prefix.as_bytes();
        (0..self.len())
            .filter(|&i| {
                let p = self.prefix_bytes(i);
                is_prefix(prefix, p) || is_prefix(p, prefix)
            })
            .max_by(|&a, &b| {
                (self.category(a).cmp(&self.category(b)))
                    .then_with(|| self.prefix_bytes(b).cmp(self.prefix_bytes(a)))
            })
            .map(|i| (self.prefix(i), self.category(i)))
    }
}

// The comparisons `ClassifyView`'s searches make, byte by byte: a bucket's
// prefixes are a few bytes long, and for those a loop costs less than the
// `memcmp` call that `<=` and `starts_with` on slices make.

/// `a <= b`.
fn not_above(a: &[u8], b: &[u8]) -> bool {
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => x < y,
        None => a.len() <= b.len(),
    }
}

/// `b.starts_with(a)`.
fn is_prefix(a: &[u8], b: &[u8]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A bucket name held inline: S3 names are at most 63 bytes, so the name
/// shares the `Bucket`'s cache lines and the name lookup confirms a probe
/// without chasing a pointer to a string elsewhere in memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BucketName {
    len: u8,
    bytes: [u8; 63],
}

impl BucketName {
    pub const MAX_LEN: usize = 63;

    /// `None` when longer than any S3 bucket name can be.
    pub fn new(name: &str) -> Option<BucketName> {
        let mut bytes = [0; Self::MAX_LEN];
        bytes
            .get_mut(..name.len())?
            .copy_from_slice(name.as_bytes());
        Some(BucketName {
            len: name.len() as u8,
            bytes,
        })
    }
}

impl std::ops::Deref for BucketName {
    type Target = str;

    fn deref(&self) -> &str {
        // Copied whole from a `&str` by `new`.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: BucketName,
    pub tenant: TenantId,
    /// `None`: the bucket lies in the instance's region.
    pub region: Option<RegionId>,
    pub category: Option<CategoryId>,
    /// Resolved: the declared `max_category`, else `category`, else the
    /// strictest category that exists.
    pub max_category: CategoryId,
    pub classify: ClassifyIndex,
}

#[derive(Clone, Debug)]
pub struct Network {
    pub cidr: IpNet,
    pub region: RegionId,
}

#[derive(Clone, Debug)]
pub struct Peer {
    pub id: Box<str>,
    pub region: RegionId,
    pub cert_sha256: Option<[u8; 32]>,
    pub san: Option<Box<str>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum BasisKind {
    Adequacy,
    Scc,
    Bcr,
    Dpa,
    Consent,
    PiplStandardContract,
    PiplSecurityAssessment,
    PiplCertification,
    Derogation,
}

impl BasisKind {
    pub const ALL: [BasisKind; 9] = [
        BasisKind::Adequacy,
        BasisKind::Scc,
        BasisKind::Bcr,
        BasisKind::Dpa,
        BasisKind::Consent,
        BasisKind::PiplStandardContract,
        BasisKind::PiplSecurityAssessment,
        BasisKind::PiplCertification,
        BasisKind::Derogation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BasisKind::Adequacy => "adequacy",
            BasisKind::Scc => "scc",
            BasisKind::Bcr => "bcr",
            BasisKind::Dpa => "dpa",
            BasisKind::Consent => "consent",
            BasisKind::PiplStandardContract => "pipl-standard-contract",
            BasisKind::PiplSecurityAssessment => "pipl-security-assessment",
            BasisKind::PiplCertification => "pipl-certification",
            BasisKind::Derogation => "derogation",
        }
    }

    pub fn parse(s: &str) -> Option<BasisKind> {
        BasisKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// DESIGN §3 step 10: adequacy, then contracts and certifications, then
    /// DPA, then consent, then derogations. Lower is preferred.
    pub fn preference(self) -> u8 {
        match self {
            BasisKind::Adequacy => 0,
            BasisKind::Scc
            | BasisKind::Bcr
            | BasisKind::PiplStandardContract
            | BasisKind::PiplSecurityAssessment
            | BasisKind::PiplCertification => 1,
            BasisKind::Dpa => 2,
            BasisKind::Consent => 3,
            BasisKind::Derogation => 4,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Basis {
    pub id: Box<str>,
    /// `None` is `tenant = "*"` (adequacy records only).
    pub tenant: Option<TenantId>,
    pub kind: BasisKind,
    pub from: Jurisdiction,
    pub to: Vec<Jurisdiction>,
    /// `None` is `categories = ["*"]`.
    pub categories: Option<Vec<CategoryId>>,
    pub recipient: Option<Box<str>>,
    pub scope: Option<Box<str>>,
    pub valid_from: Date,
    pub valid_until: Date,
    pub revoked_on: Option<Date>,
    pub evidence: Option<Box<str>>,
}

/// Why a basis does not apply on a given date, or `None` when it does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Validity {
    Valid,
    NotYetValid,
    Expired,
    Revoked,
}

impl Basis {
    pub fn validity(&self, today: Date) -> Validity {
        if self.revoked_on.is_some_and(|r| today >= r) {
            Validity::Revoked
        } else if today < self.valid_from {
            Validity::NotYetValid
        } else if today > self.valid_until {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }

    pub fn covers_category(&self, c: CategoryId) -> bool {
        self.categories.as_ref().is_none_or(|cs| cs.contains(&c))
    }

    /// Names `c` itself, not through `*` (what lets a PIPL security
    /// assessment open a `never` category).
    pub fn names_category(&self, c: CategoryId) -> bool {
        self.categories.as_ref().is_some_and(|cs| cs.contains(&c))
    }
}

/// What choosing a basis reads of it (DESIGN §3 steps 9 and 10), copied
/// beside the other bases of its route: choosing reads one run of memory
/// rather than a `Basis` and its category list for each candidate.
///
/// Sixteen bytes, four to a cache line: a tenant's block of runs is read
/// from its start, and on this VM a line not in the cache costs a DRAM
/// miss (about 150 ns), so the fewer lines a block spans the better. The
/// dates and categories are therefore held in the 16 bits each that
/// decisions need, and the `Basis` is read where they cannot say.
#[derive(Clone, Copy, Debug)]
pub struct RouteBasis {
    pub id: BasisId,
    pub kind: BasisKind,
    /// (from, to) as `route_key` makes it: what a scan of the tenant's
    /// block looks for, one compare per entry.
    route: u32,
    /// The days it applies on, [first, end), counted from `Day::EPOCH`,
    /// both clamped to the `u16` range: a day inside that range (as
    /// `Day::of` gives it) compares with them as with the dates.
    valid: (u16, u16),
    /// A bit per category id, or `ALL_CATEGORIES` (`*`) or
    /// `LISTED_CATEGORIES` (an id past 14: ask the `Basis`).
    categories: u16,
}

const ALL_CATEGORIES: u16 = u16::MAX;
const LISTED_CATEGORIES: u16 = 1 << 15;

/// A date as `RouteBasis` counts days, once per decision rather than once
/// per basis compared. `None`: outside the days a `u16` counts.
#[derive(Clone, Copy, Debug)]
pub struct Day {
    date: Date,
    count: Option<u16>,
}

impl Day {
    /// 1970-01-01: the `u16` counts days to 2149.
    const EPOCH: i32 = 2_440_588;

    #[inline]
    pub fn of(date: Date) -> Day {
        Day {
            date,
            count: u16::try_from(date.to_julian_day() - Self::EPOCH)
                .ok()
                .filter(|&d| d < u16::MAX),
        }
    }

    /// A day's count, clamped: what a window's ends are stored as.
    fn clamped(julian_day: i32) -> u16 {
        (julian_day - Self::EPOCH).clamp(0, u16::MAX.into()) as u16
    }
}

/// A set of small ids as a bit mask, so membership reads no list. A set
/// with an id past 62 cannot be one: the top bit, `LISTED`, sends the
/// question to the list it was made from. Eight bytes, not an enum's
/// sixteen: it is copied into every `BucketHot`.
#[derive(Clone, Copy, Debug)]
struct IdMask(u64);

impl IdMask {
    const LISTED: u64 = 1 << 63;

    fn of(ids: impl IntoIterator<Item = u16>) -> IdMask {
        let mut mask = 0u64;
        for id in ids {
            match 1u64
                .checked_shl(id.into())
                .filter(|&bit| bit != Self::LISTED)
            {
                Some(bit) => mask |= bit,
                None => return IdMask(Self::LISTED),
            }
        }
        IdMask(mask)
    }

    /// `None`: ask the list.
    fn contains(self, id: u16) -> Option<bool> {
        (self.0 != Self::LISTED)
            .then(|| 1u64.checked_shl(id.into()).is_some_and(|b| self.0 & b != 0))
    }
}

impl RouteBasis {
    fn new(id: BasisId, b: &Basis, to: Jurisdiction) -> RouteBasis {
        // The last day it applies on is the day before it is revoked, if
        // that comes before its end.
        let end = (b.valid_until.to_julian_day() + 1)
            .min(b.revoked_on.map_or(i32::MAX, Date::to_julian_day));
        RouteBasis {
            id,
            kind: b.kind,
            route: route_key(b.from, to),
            valid: (
                Day::clamped(b.valid_from.to_julian_day()),
                Day::clamped(end),
            ),
            categories: b.categories.as_ref().map_or(ALL_CATEGORIES, |cs| {
                u16::try_from(IdMask::of(cs.iter().map(|c| c.0)).0)
                    .ok()
                    .filter(|m| m & LISTED_CATEGORIES == 0)
                    .unwrap_or(LISTED_CATEGORIES)
            }),
        }
    }

    /// `Basis::validity(today) == Validity::Valid`, reading the `Basis`
    /// only for a day past the range the window counts.
    pub fn valid_on(&self, rules: &RuleSet, today: Day) -> bool {
        match today.count {
            Some(t) => (self.valid.0..self.valid.1).contains(&t),
            None => rules.basis(self.id).validity(today.date) == Validity::Valid,
        }
    }

    /// `Basis::covers_category`, reading the `Basis` only for an id past
    /// the mask's 15 bits.
    pub fn covers_category(&self, rules: &RuleSet, c: CategoryId) -> bool {
        match self.categories {
            ALL_CATEGORIES => true,
            LISTED_CATEGORIES => rules.basis(self.id).covers_category(c),
            mask => has_bit(mask, c),
        }
    }

    /// `Basis::names_category`, likewise.
    pub fn names_category(&self, rules: &RuleSet, c: CategoryId) -> bool {
        match self.categories {
            ALL_CATEGORIES => false,
            LISTED_CATEGORIES => rules.basis(self.id).names_category(c),
            mask => has_bit(mask, c),
        }
    }
}

fn route_key(from: Jurisdiction, to: Jurisdiction) -> u32 {
    u32::from(from.0) << 16 | u32::from(to.0)
}

fn has_bit(mask: u16, c: CategoryId) -> bool {
    1u16.checked_shl(c.0.into()).is_some_and(|b| mask & b != 0)
}

/// Where a rule came from, for messages that point a rule author at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: std::path::PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// The tables of a rule set, ids already resolved. `compile` validates and
/// builds one; `RuleSet::new` indexes it.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub jurisdictions: Vec<JurisdictionDef>,
    /// Countries named by a rule but listed in no declared jurisdiction: each
    /// is its own jurisdiction, appended after the declared ones.
    pub own_countries: Vec<Country>,
    pub regions: Vec<Region>,
    /// Sorted by rank, ascending.
    pub categories: Vec<Category>,
    pub tenants: Vec<Tenant>,
    pub buckets: Vec<Bucket>,
    pub networks: Vec<Network>,
    pub peers: Vec<Peer>,
    pub bases: Vec<Basis>,
}

/// What every decision reads of a tenant, a fraction of the size of a
/// `Tenant`: copied into each of its buckets' `BucketHot`, so that the
/// decision finds it in the cache line it has already read.
#[derive(Clone, Copy, Debug)]
pub struct TenantHot {
    pub id: TenantId,
    pub default_category: CategoryId,
    /// `Tenant::mode`.
    pub mode: Option<Mode>,
    homes: IdMask,
    /// The tenant's own bases in `RuleSet::route_bases`: (start, len).
    routes: (u32, u32),
}

impl TenantHot {
    fn new(id: TenantId, t: &Tenant, routes: (u32, u32)) -> TenantHot {
        TenantHot {
            id,
            default_category: t.default_category,
            mode: t.mode,
            homes: IdMask::of(t.home_regions.iter().map(|r| r.0)),
            routes,
        }
    }

    /// The tenant's own bases for (from, to), in order of preference.
    ///
    /// A tenant's bases for all its routes lie in one block, sorted by
    /// route, and are scanned from the start: each entry's address is known
    /// before the one before it is read, so the CPU reads the block's few
    /// cache lines at once, where a hash map's probe leads to a slot and
    /// the slot to the run, one miss after the other.
    #[inline]
    pub fn bases_for<'r>(
        &self,
        rules: &'r RuleSet,
        from: Jurisdiction,
        to: Jurisdiction,
    ) -> &'r [RouteBasis] {
        let (start, len) = self.routes;
        let block = &rules.route_bases[start as usize..][..len as usize];
        let route = route_key(from, to);
        let Some(first) = block.iter().position(|b| b.route == route) else {
            return &[];
        };
        let run = &block[first..];
        let len = run.iter().take_while(|b| b.route == route).count();
        &run[..len]
    }

    /// Whether `region` is one of the tenant's `home_regions`.
    #[inline]
    pub fn is_home(&self, rules: &RuleSet, region: RegionId) -> bool {
        self.homes
            .contains(region.0)
            .unwrap_or_else(|| rules.tenant(self.id).home_regions.contains(&region))
    }
}

/// What a decision reads of a bucket and its tenant, in one cache line,
/// the one the name lookup lands on (`BucketLines`): a random bucket costs
/// one memory miss here where the `Bucket`, its classify rules and its
/// tenant cost three. Only a name
/// longer than the head held here, a bucket with more classify rules than
/// a `u16` counts, and a trace read the `Bucket`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct BucketHot {
    fields: HotFields,
    /// The name's length, then its first bytes: most names end within
    /// them, and a longer one is compared on with the `Bucket`'s copy.
    name: NameKey,
}

/// The options are 16-bit ids with `NONE` for `None` (compile allows at
/// most 32,000 regions and categories), so that the fields leave the name
/// 15 bytes.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct HotFields {
    tenant: TenantHot,
    id: BucketId,
    /// The bucket's run in `RuleSet::classify_rules`, or with `IN_LINE`
    /// its `RuleSet::classify_lines` entry.
    classify_start: u32,
    /// `TOO_MANY`: more than a `u16` counts; ask the `Bucket`.
    classify_len: u16,
    region: u16,
    category: u16,
    max_category: CategoryId,
}

const NONE: u16 = u16::MAX;
const TOO_MANY: u16 = u16::MAX;
const IN_LINE: u16 = u16::MAX - 1;

const NAME_HEAD: usize = 15;

/// A name's length byte and its first `NAME_HEAD` bytes, zero-padded, as
/// one little-endian number: two names of at most `NAME_HEAD` bytes are
/// equal exactly when their keys are, so a probe compares each line it
/// passes in one 16-byte compare, not a `memcmp` call of the name's
/// length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct NameKey(u128);

impl NameKey {
    /// `name` is at most `BucketName::MAX_LEN` bytes. The head is read in
    /// two loads that may overlap, as foldhash reads a short string: bytes
    /// stored one by one and read back as a whole would wait for the
    /// stores (a store-forwarding stall of a dozen cycles).
    fn of(name: &[u8]) -> NameKey {
        let head = &name[..name.len().min(NAME_HEAD)];
        let word = |a: u64, b: u64, size: usize| {
            u128::from(a) | u128::from(b) << (8 * (head.len() - size))
        };
        let bytes = match (head.first_chunk(), head.last_chunk()) {
            (Some(a), Some(b)) => word(u64::from_le_bytes(*a), u64::from_le_bytes(*b), 8),
            _ => match (head.first_chunk(), head.last_chunk()) {
                (Some(a), Some(b)) => word(
                    u32::from_le_bytes(*a).into(),
                    u32::from_le_bytes(*b).into(),
                    4,
                ),
                _ => (head.iter().rev()).fold(0, |k, &b| k << 8 | u128::from(b)),
            },
        };
        NameKey(name.len() as u128 | bytes << 8)
    }

    fn len(&self) -> usize {
        (self.0 & 0xff) as usize
    }
}

/// A name being looked up, its key made once for all the lines a probe
/// passes.
struct NameProbe<'a> {
    key: NameKey,
    name: &'a [u8],
}

impl NameProbe<'_> {
    fn new(name: &str) -> NameProbe<'_> {
        NameProbe {
            key: NameKey::of(name.as_bytes()),
            name: name.as_bytes(),
        }
    }
}

impl BucketHot {
    /// `(classify_start, classify_len)` as `HotFields` has them.
    fn new(
        id: BucketId,
        b: &Bucket,
        tenant: TenantHot,
        (classify_start, classify_len): (u32, u16),
    ) -> BucketHot {
        BucketHot {
            fields: HotFields {
                tenant,
                id,
                classify_start,
                classify_len,
                region: b.region.map_or(NONE, |r| r.0),
                category: b.category.map_or(NONE, |c| c.0),
                max_category: b.max_category,
            },
            name: NameKey::of(b.name.as_bytes()),
        }
    }

    /// What fills a `BucketLines` slot that holds no bucket.
    const EMPTY: BucketHot = BucketHot {
        fields: HotFields {
            tenant: TenantHot {
                id: TenantId(0),
                default_category: CategoryId(0),
                mode: None,
                homes: IdMask(0),
                routes: (0, 0),
            },
            id: BucketId(0),
            classify_start: 0,
            classify_len: 0,
            region: NONE,
            category: NONE,
            max_category: CategoryId(0),
        },
        name: NameKey(0),
    };

    fn is_empty(&self) -> bool {
        self.name.len() == 0
    }

    /// Whether the bucket is named `name`; `cold` is its `Bucket`, read
    /// only for a name longer than the head held here.
    #[inline]
    fn is_named<'r>(&self, name: &NameProbe<'_>, cold: impl FnOnce() -> &'r Bucket) -> bool {
        self.name == name.key
            && (name.name.len() <= NAME_HEAD
                || name.name[NAME_HEAD..] == cold().name.as_bytes()[NAME_HEAD..])
    }

    pub fn id(&self) -> BucketId {
        self.fields.id
    }
    pub fn tenant(&self) -> &TenantHot {
        &self.fields.tenant
    }
    /// `Bucket::region`.
    pub fn region(&self) -> Option<RegionId> {
        (self.fields.region != NONE).then_some(RegionId(self.fields.region))
    }
    /// `Bucket::category`.
    pub fn category(&self) -> Option<CategoryId> {
        (self.fields.category != NONE).then_some(CategoryId(self.fields.category))
    }
    /// `Bucket::max_category`.
    pub fn max_category(&self) -> CategoryId {
        self.fields.max_category
    }
    /// The bucket's classify rules, `None` when it has none.
    #[inline(always)]
    pub fn classify<'r>(&self, rules: &'r RuleSet) -> Option<ClassifyView<'r>> {
        let start = self.fields.classify_start as usize;
        match self.fields.classify_len {
            0 => None,
            TOO_MANY => Some(rules.bucket(self.id()).classify.view()),
            IN_LINE => Some(ClassifyView(Form::Line(&rules.classify_lines[start]))),
            len => Some(ClassifyView(Form::Run {
                rules: &rules.classify_rules[start..][..len.into()],
                bytes: &rules.classify_bytes,
                // Where the run's first prefix starts: the previous run's
                // last one ends there.
                start: start
                    .checked_sub(1)
                    .map_or(0, |i| rules.classify_rules[i].end),
            })),
        }
    }
}

/// The `BucketHot` lines themselves, open-addressed by name: a name's
/// hash picks its home line and a probe reads on from there, so finding a
/// bucket reads the line it needs and, when the home is taken by another,
/// the next ones, which lie beside it. (A hash index in front of the lines,
/// hashbrown's `HashTable` of ids, cost its control bytes and its slot, two
/// more dependent reads.)
///
/// Homes are a fixed multiple of the buckets, so most names are at home
/// or one line on; a probe never wraps around, because the lines a home
/// run spills into are appended past the last home. foldhash is seeded at
/// random per rule set, so a client choosing names cannot aim at a run.
#[derive(Debug)]
struct BucketLines {
    /// Empty lines (name length 0) end a probe: no bucket name is empty.
    lines: Vec<BucketHot>,
    homes: u64,
    hasher: DefaultHashBuilder,
}

impl BucketLines {
    /// Homes per bucket, as a fraction: a load of 3/4.
    const HOMES_PER_BUCKET: (usize, usize) = (4, 3);

    fn with_buckets(n: usize) -> BucketLines {
        let (num, den) = Self::HOMES_PER_BUCKET;
        Self::with_homes((n * num).div_ceil(den).max(1))
    }

    fn with_homes(homes: usize) -> BucketLines {
        BucketLines {
            lines: vec![BucketHot::EMPTY; homes],
            homes: homes as u64,
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The name's home line: the hash scaled to the homes, which need not
    /// be a power of two.
    #[inline]
    fn home(&self, name: &str) -> usize {
        // The bytes alone: `str`'s `Hash` adds a terminator byte, one more
        // round of the hasher, which a table keyed by names only does not
        // need.
        let mut hasher = self.hasher.build_hasher();
        hasher.write(name.as_bytes());
        ((u128::from(hasher.finish()) * u128::from(self.homes)) >> 64) as usize
    }

    /// `name` is distinct from every name inserted before (compile reports
    /// duplicates) and not empty.
    fn insert(&mut self, name: &str, hot: BucketHot) {
        let home = self.home(name);
        match self.lines[home..].iter().position(BucketHot::is_empty) {
            Some(free) => self.lines[home + free] = hot,
            None => self.lines.push(hot),
        }
    }

    /// `cold` is a bucket's `Bucket`, read only to compare a name longer
    /// than a line holds.
    #[inline]
    fn find<'r>(
        &'r self,
        name: &str,
        cold: impl Fn(BucketId) -> &'r Bucket,
    ) -> Option<&'r BucketHot> {
        if name.is_empty() || name.len() > BucketName::MAX_LEN {
            return None;
        }
        let probe = NameProbe::new(name);
        self.lines[self.home(name)..]
            .iter()
            .take_while(|line| !line.is_empty())
            .find(|line| line.is_named(&probe, || cold(line.id())))
    }
}

/// The immutable, indexed rule set.
#[derive(Debug)]
pub struct RuleSet {
    pub tables: Tables,
    /// Hex SHA-256 over the rule files' names and bytes.
    pub version: String,
    /// Names of all jurisdictions, declared then own-country ones.
    jurisdiction_names: Vec<Box<str>>,
    export_free: Vec<bool>,
    by_country: HashMap<Country, Jurisdiction>,
    region_by_id: HashMap<Box<str>, RegionId>,
    category_by_id: HashMap<Box<str>, CategoryId>,
    tenant_by_id: HashMap<Box<str>, TenantId>,
    buckets_by_name: BucketLines,
    /// The classify rules of each bucket whose rules fit one line.
    classify_lines: Vec<ClassifyLine>,
    /// Every other bucket's classify rules side by side (those of a bucket
    /// with `TOO_MANY` left out), their prefixes in `classify_bytes`.
    classify_rules: Vec<ClassifyRule>,
    classify_bytes: String,
    peer_by_id: HashMap<Box<str>, PeerId>,
    peer_by_fingerprint: HashMap<[u8; 32], PeerId>,
    peer_by_san: HashMap<Box<str>, PeerId>,
    /// Sorted by network address; ranges do not overlap (compile checks).
    networks_v4: Vec<(ipnet::Ipv4Net, RegionId)>,
    networks_v6: Vec<(ipnet::Ipv6Net, RegionId)>,
    /// (from, to) of a `*` basis → a run of `route_bases`, sorted by
    /// route: a few, found by a binary search with no hashing.
    star_routes: Vec<StarRoute>,
    /// Runs of bases by route, each in order of preference (kind, latest
    /// `valid_until`, id), expired ones included so explain can say why
    /// each was passed over: each tenant's runs in one block (see
    /// `TenantHot::bases_for`), then the `*` runs.
    route_bases: Vec<RouteBasis>,
}

impl RuleSet {
    pub fn new(tables: Tables, version: String) -> RuleSet {
        let mut jurisdiction_names: Vec<Box<str>> = Vec::new();
        let mut export_free = Vec::new();
        let mut by_country = HashMap::new();
        for (i, j) in tables.jurisdictions.iter().enumerate() {
            jurisdiction_names.push(j.id.clone());
            export_free.push(j.export_free);
            for c in &j.countries {
                by_country.insert(*c, Jurisdiction(i as u16));
            }
        }
        for c in &tables.own_countries {
            by_country.insert(*c, Jurisdiction(jurisdiction_names.len() as u16));
            jurisdiction_names.push(c.as_str().into());
            export_free.push(false);
        }
        let region_by_id = index(&tables.regions, |r| &r.id, |i| RegionId(i as u16));
        let category_by_id = index(&tables.categories, |c| &c.id, |i| CategoryId(i as u16));
        let tenant_by_id = index(&tables.tenants, |t| &t.id, |i| TenantId(i as u32));
        let routes = route_bases(&tables);
        let tenant_hot: Vec<TenantHot> = (tables.tenants.iter().enumerate())
            .map(|(i, t)| TenantHot::new(TenantId(i as u32), t, routes.tenants[i]))
            .collect();
        let mut classify_lines: Vec<ClassifyLine> = Vec::new();
        let mut classify_rules: Vec<ClassifyRule> = Vec::new();
        let mut classify_bytes = String::new();
        let mut buckets_by_name = BucketLines::with_buckets(tables.buckets.len());
        for (i, b) in tables.buckets.iter().enumerate() {
            let tenant = tenant_hot[b.tenant.0 as usize];
            let run_len = u16::try_from(b.classify.len())
                .ok()
                .filter(|&len| len < IN_LINE);
            let classify = match (ClassifyLine::new(&b.classify), run_len) {
                _ if b.classify.is_empty() => (0, 0),
                (Some(line), _) => {
                    classify_lines.push(line);
                    (classify_lines.len() as u32 - 1, IN_LINE)
                }
                (None, Some(len)) => {
                    let start = classify_rules.len() as u32;
                    let offset = classify_bytes.len() as u32;
                    classify_bytes.push_str(&b.classify.bytes);
                    classify_rules.extend(b.classify.rules.iter().map(|r| ClassifyRule {
                        end: r.end + offset,
                        ..*r
                    }));
                    (start, len)
                }
                (None, None) => (0, TOO_MANY),
            };
            let hot = BucketHot::new(BucketId(i as u32), b, tenant, classify);
            buckets_by_name.insert(&b.name, hot);
        }
        let peer_by_id = index(&tables.peers, |p| &p.id, |i| PeerId(i as u16));
        let mut peer_by_fingerprint = HashMap::new();
        let mut peer_by_san = HashMap::new();
        for (i, p) in tables.peers.iter().enumerate() {
            if let Some(fp) = p.cert_sha256 {
                peer_by_fingerprint.insert(fp, PeerId(i as u16));
            }
            if let Some(san) = &p.san {
                peer_by_san.insert(san.clone(), PeerId(i as u16));
            }
        }
        let mut networks_v4 = Vec::new();
        let mut networks_v6 = Vec::new();
        for n in &tables.networks {
            match n.cidr {
                IpNet::V4(net) => networks_v4.push((net.trunc(), n.region)),
                IpNet::V6(net) => networks_v6.push((net.trunc(), n.region)),
            }
        }
        networks_v4.sort_by_key(|(n, _)| n.network());
        networks_v6.sort_by_key(|(n, _)| n.network());

        RuleSet {
            tables,
            version,
            jurisdiction_names,
            export_free,
            by_country,
            region_by_id,
            category_by_id,
            tenant_by_id,
            buckets_by_name,
            classify_lines,
            classify_rules,
            classify_bytes,
            peer_by_id,
            peer_by_fingerprint,
            peer_by_san,
            networks_v4,
            networks_v6,
            star_routes: routes.star,
            route_bases: routes.bases,
        }
    }

    pub fn jurisdiction_of(&self, c: Country) -> Jurisdiction {
        self.by_country
            .get(&c)
            .copied()
            .unwrap_or_else(|| Jurisdiction::own_country(c))
    }

    pub fn jurisdiction_name(&self, j: Jurisdiction) -> &str {
        if j.0 & OWN_COUNTRY != 0 {
            let i = (j.0 & !OWN_COUNTRY) as usize * 2;
            &ALL_CODES[i..i + 2]
        } else {
            &self.jurisdiction_names[j.0 as usize]
        }
    }

    /// A jurisdiction by name: declared, or a country code (its own
    /// jurisdiction unless a declared one lists it).
    pub fn jurisdiction_by_name(&self, name: &str) -> Option<Jurisdiction> {
        if let Some(i) = self.jurisdiction_names.iter().position(|n| &**n == name) {
            return Some(Jurisdiction(i as u16));
        }
        Country::parse(name)
            .filter(|c| c.as_str() == name)
            .map(|c| self.jurisdiction_of(c))
    }

    pub fn export_free(&self, j: Jurisdiction) -> bool {
        j.0 & OWN_COUNTRY == 0 && self.export_free[j.0 as usize]
    }

    pub fn region(&self, id: RegionId) -> &Region {
        &self.tables.regions[id.0 as usize]
    }
    pub fn region_by_id(&self, id: &str) -> Option<RegionId> {
        self.region_by_id.get(id).copied()
    }
    pub fn category(&self, id: CategoryId) -> &Category {
        &self.tables.categories[id.0 as usize]
    }
    pub fn category_by_id(&self, id: &str) -> Option<CategoryId> {
        self.category_by_id.get(id).copied()
    }
    /// The strictest category that exists (what an unknown stored category
    /// counts as).
    pub fn strictest_category(&self) -> CategoryId {
        CategoryId(self.tables.categories.len().saturating_sub(1) as u16)
    }
    pub fn tenant(&self, id: TenantId) -> &Tenant {
        &self.tables.tenants[id.0 as usize]
    }
    pub fn tenant_by_id(&self, id: &str) -> Option<TenantId> {
        self.tenant_by_id.get(id).copied()
    }
    pub fn bucket(&self, id: BucketId) -> &Bucket {
        &self.tables.buckets[id.0 as usize]
    }
    pub fn bucket_by_name(&self, name: &str) -> Option<BucketId> {
        self.bucket_hot_by_name(name).map(BucketHot::id)
    }
    #[inline]
    pub fn bucket_hot_by_name(&self, name: &str) -> Option<&BucketHot> {
        self.buckets_by_name
            .find(name, |id| &self.tables.buckets[id.0 as usize])
    }
    pub fn basis(&self, id: BasisId) -> &Basis {
        &self.tables.bases[id.0 as usize]
    }
    pub fn peer(&self, id: PeerId) -> &Peer {
        &self.tables.peers[id.0 as usize]
    }
    pub fn peer_by_id(&self, id: &str) -> Option<PeerId> {
        self.peer_by_id.get(id).copied()
    }
    pub fn peer_by_fingerprint(&self, sha256: &[u8; 32]) -> Option<PeerId> {
        self.peer_by_fingerprint.get(sha256).copied()
    }
    pub fn peer_by_san(&self, san: &str) -> Option<PeerId> {
        self.peer_by_san.get(san).copied()
    }

    /// The `[[network]]` range holding `ip`, if any. IPv4-mapped IPv6
    /// addresses are looked up as IPv4.
    pub fn network_region(&self, ip: IpAddr) -> Option<RegionId> {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let i = self.networks_v4.partition_point(|(n, _)| n.network() <= a);
                let (net, r) = self.networks_v4.get(i.checked_sub(1)?)?;
                net.contains(&a).then_some(*r)
            }
            IpAddr::V6(a) => {
                let i = self.networks_v6.partition_point(|(n, _)| n.network() <= a);
                let (net, r) = self.networks_v6.get(i.checked_sub(1)?)?;
                net.contains(&a).then_some(*r)
            }
        }
    }

    /// The `*` bases for (from, to) in order of preference; a tenant's own
    /// are read through its buckets' [`TenantHot`].
    #[inline]
    pub fn star_bases(&self, from: Jurisdiction, to: Jurisdiction) -> &[RouteBasis] {
        match (self.star_routes).binary_search_by_key(&(from, to), |r| r.route) {
            Ok(i) => {
                let (start, len) = self.star_routes[i].run;
                &self.route_bases[start as usize..][..len as usize]
            }
            Err(_) => &[],
        }
    }
}

/// `RuleSet::route_bases` and where in it each tenant's block and each `*`
/// route's run lie.
struct Routes {
    bases: Vec<RouteBasis>,
    /// By `TenantId`: (start, len).
    tenants: Vec<(u32, u32)>,
    star: Vec<StarRoute>,
}

#[derive(Debug)]
struct StarRoute {
    route: (Jurisdiction, Jurisdiction),
    /// (start, len) in `RuleSet::route_bases`.
    run: (u32, u32),
}

fn route_bases(tables: &Tables) -> Routes {
    // (tenant or `*` last, from, to, preference): each tenant's routes in
    // one block, each route's bases in one run.
    let mut entries: Vec<(Option<TenantId>, Jurisdiction, Jurisdiction, BasisId)> = Vec::new();
    for (i, b) in tables.bases.iter().enumerate() {
        entries.extend(
            b.to.iter()
                .map(|&to| (b.tenant, b.from, to, BasisId(i as u32))),
        );
    }
    let basis = |id: BasisId| &tables.bases[id.0 as usize];
    entries.sort_by(|a, b| {
        (a.0.is_none(), a.0, a.1, a.2)
            .cmp(&(b.0.is_none(), b.0, b.1, b.2))
            .then_with(|| {
                let (a, b) = (basis(a.3), basis(b.3));
                a.kind
                    .preference()
                    .cmp(&b.kind.preference())
                    .then_with(|| b.valid_until.cmp(&a.valid_until))
                    .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
            })
    });
    let bases = entries
        .iter()
        .map(|&(_, _, to, id)| RouteBasis::new(id, basis(id), to))
        .collect();
    let mut tenants = vec![(0, 0); tables.tenants.len()];
    let mut star: Vec<StarRoute> = Vec::new();
    for (at, e) in entries.iter().enumerate() {
        let run = match e.0 {
            Some(t) => &mut tenants[t.0 as usize],
            // The `*` entries come last, sorted by route.
            None => {
                let route = (e.1, e.2);
                if star.last().is_none_or(|r| r.route != route) {
                    star.push(StarRoute { route, run: (0, 0) });
                }
                let last = star.len() - 1;
                &mut star[last].run
            }
        };
        if run.1 == 0 {
            run.0 = at as u32;
        }
        run.1 += 1;
    }
    Routes {
        bases,
        tenants,
        star,
    }
}

fn index<T, I: Copy>(
    items: &[T],
    name: impl Fn(&T) -> &Box<str>,
    id: impl Fn(usize) -> I,
) -> HashMap<Box<str>, I> {
    items
        .iter()
        .enumerate()
        .map(|(i, t)| (name(t).clone(), id(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use std::collections::HashMap;

    use super::{
        Basis, BasisKind, Bucket, BucketHot, BucketId, BucketLines, BucketName, CategoryId,
        ClassifyIndex, Day, Jurisdiction, NameKey, NameProbe, RouteBasis, RuleSet, Tables, Tenant,
        TenantHot, TenantId, Validity, IN_LINE, NAME_HEAD, TOO_MANY,
    };

    fn tenant(id: &str) -> Tenant {
        Tenant {
            id: id.into(),
            home_regions: Vec::new(),
            default_category: CategoryId(0),
            mode: None,
        }
    }

    fn bucket(name: &str, tenant: TenantId, classify: ClassifyIndex) -> Bucket {
        Bucket {
            name: BucketName::new(name).expect("at most 63 bytes"),
            tenant,
            region: None,
            category: None,
            max_category: CategoryId(0),
            classify,
        }
    }

    /// A rule set of these buckets, all of one tenant.
    fn one_tenants<'a>(buckets: impl Iterator<Item = (&'a str, ClassifyIndex)>) -> RuleSet {
        let tables = Tables {
            tenants: vec![tenant("t")],
            buckets: buckets
                .map(|(name, classify)| bucket(name, TenantId(0), classify))
                .collect(),
            ..Tables::default()
        };
        RuleSet::new(tables, "test".into())
    }

    /// Each name, and near misses of it: one byte fewer, one more, one
    /// changed.
    fn probes_of(names: &[String], rng: &mut StdRng) -> Vec<String> {
        let mut probes = Vec::new();
        for name in names {
            probes.push(name.clone());
            probes.push(name[..name.len() - 1].to_owned());
            probes.push(format!("{name}a"));
            let mut changed = name.clone().into_bytes();
            let at = rng.gen_range(0..changed.len());
            changed[at] = b'z';
            probes.push(String::from_utf8(changed).expect("ASCII"));
        }
        probes
    }

    #[test]
    fn a_bucket_hot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<BucketHot>(), 64);
        assert_eq!(std::mem::align_of::<BucketHot>(), 64);
    }

    /// The key read in overlapping words is the length byte and the
    /// zero-padded head, for every length a name can have.
    #[test]
    fn a_name_key_is_its_length_and_head() {
        let name: Vec<u8> = (1..=BucketName::MAX_LEN as u8).collect();
        for len in 0..=BucketName::MAX_LEN {
            let mut expected = [0u8; 16];
            expected[0] = len as u8;
            let head = len.min(NAME_HEAD);
            expected[1..=head].copy_from_slice(&name[..head]);
            assert_eq!(
                NameKey::of(&name[..len]),
                NameKey(u128::from_le_bytes(expected)),
                "{len}"
            );
        }
    }

    /// Names of every length an S3 bucket can have, many alike but for
    /// their last byte (past the inline head for the long ones), against a
    /// plain `HashMap`: every name finds its own bucket, and no near miss
    /// (one byte changed, one byte more or fewer) finds one.
    #[test]
    fn bucket_by_name_agrees_with_a_hash_map() {
        let mut names: Vec<String> = Vec::new();
        for len in 3..=BucketName::MAX_LEN {
            for last in ['a', 'b', '7', '-'] {
                let mut name: String = "x".repeat(len - 1);
                name.push(last);
                names.push(name);
            }
        }
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..2_000 {
            let len = rng.gen_range(3..=BucketName::MAX_LEN);
            names.push(
                (0..len)
                    .map(|_| rng.gen_range(b'a'..=b'd') as char)
                    .collect(),
            );
        }
        names.sort();
        names.dedup();
        let rules = one_tenants(names.iter().map(|n| (n.as_str(), ClassifyIndex::default())));
        let expected: HashMap<&str, BucketId> = (names.iter())
            .zip(0..)
            .map(|(n, i)| (n.as_str(), BucketId(i)))
            .collect();
        for probe in &probes_of(&names, &mut rng) {
            assert_eq!(
                rules.bucket_by_name(probe),
                expected.get(probe.as_str()).copied(),
                "{probe:?}"
            );
        }
        // The index's hash tags keep most near misses from the name check;
        // ask it directly, the last byte being past the head for the long
        // names.
        for (name, &id) in &expected {
            let hot = rules.bucket_hot_by_name(name).expect("found above");
            let cold = || rules.bucket(id);
            let mut other = name.to_string();
            other.pop();
            other.push('!');
            assert!(hot.is_named(&NameProbe::new(name), cold), "{name}");
            assert!(!hot.is_named(&NameProbe::new(&other), cold), "{name}");
        }
    }

    /// The open-addressed lines along long probe runs: tables with one
    /// home, a few, and one per name, so that names share runs and spill
    /// past the last home. Names of every length 1–63, many alike in their
    /// first 15 bytes (what a line holds), against a `HashMap`, and probes
    /// that no bucket has: near misses, the empty name, names too long.
    #[test]
    fn bucket_lines_agree_with_a_hash_map_along_long_probe_runs() {
        let mut rng = StdRng::seed_from_u64(17);
        let mut names: Vec<String> = Vec::new();
        for len in 1..=BucketName::MAX_LEN {
            for last in ['a', 'b'] {
                names.push("y".repeat(len - 1) + &last.to_string());
            }
            names.push((0..len).map(|_| ['a', 'b'][rng.gen_range(0..2)]).collect());
        }
        names.sort();
        names.dedup();
        let tenant = TenantHot::new(TenantId(0), &tenant("t"), (0, 0));
        let buckets: Vec<Bucket> = (names.iter())
            .map(|n| bucket(n, TenantId(0), ClassifyIndex::default()))
            .collect();
        let expected: HashMap<&str, BucketId> = (names.iter())
            .zip(0..)
            .map(|(n, i)| (n.as_str(), BucketId(i)))
            .collect();
        let mut probes = probes_of(&names, &mut rng);
        probes.extend([String::new(), "y".repeat(64), "a".repeat(100)]);
        for homes in [1, 7, names.len()] {
            let mut lines = BucketLines::with_homes(homes);
            for (i, b) in buckets.iter().enumerate() {
                lines.insert(
                    &b.name,
                    BucketHot::new(BucketId(i as u32), b, tenant, (0, 0)),
                );
            }
            assert!(lines.lines.len() >= names.len(), "{homes} homes");
            for probe in &probes {
                let found = lines.find(probe, |id| &buckets[id.0 as usize]);
                assert_eq!(
                    found.map(BucketHot::id),
                    expected.get(probe.as_str()).copied(),
                    "{homes} homes, {probe:?}"
                );
            }
        }
    }

    /// Each tenant's block of runs against the definition: the bases of
    /// that tenant (or `*`) naming the route, in order of preference.
    #[test]
    fn bases_for_agrees_with_filtering_every_basis() {
        let mut rng = StdRng::seed_from_u64(3);
        let day = |d: i32| time::Date::from_julian_day(2_460_000 + d).expect("a date");
        let tenants: Vec<Tenant> = (0..4).map(|t| tenant(&format!("t{t}"))).collect();
        let bases: Vec<Basis> = (0..300)
            .map(|i| Basis {
                id: format!("b{i:03}").into(),
                tenant: (rng.gen_range(0..5) < 4).then(|| TenantId(rng.gen_range(0..4))),
                kind: BasisKind::ALL[rng.gen_range(0..BasisKind::ALL.len())],
                from: Jurisdiction(rng.gen_range(0..3)),
                to: vec![Jurisdiction(rng.gen_range(0..3)), Jurisdiction(3)],
                categories: None,
                recipient: None,
                scope: None,
                valid_from: day(0),
                valid_until: day(rng.gen_range(0..5)),
                revoked_on: None,
                evidence: None,
            })
            .collect();
        // Bucket i is tenant i's: a tenant's block is reached through the
        // `TenantHot` in its buckets' lines.
        let buckets = (0..4)
            .map(|t| bucket(&format!("b{t}"), TenantId(t), ClassifyIndex::default()))
            .collect();
        let rules = RuleSet::new(
            Tables {
                tenants,
                buckets,
                bases: bases.clone(),
                ..Tables::default()
            },
            "test".into(),
        );
        for tenant in [
            None,
            Some(TenantId(0)),
            Some(TenantId(1)),
            Some(TenantId(3)),
        ] {
            for (from, to) in (0..4).flat_map(|f| (0..4).map(move |t| (f, t))) {
                let (from, to) = (Jurisdiction(from), Jurisdiction(to));
                let mut expected: Vec<&Basis> = (bases.iter())
                    .filter(|b| b.tenant == tenant && b.from == from && b.to.contains(&to))
                    .collect();
                expected.sort_by_key(|b| {
                    (b.kind.preference(), std::cmp::Reverse(b.valid_until), &b.id)
                });
                let run = match tenant {
                    Some(t) => (rules.bucket_hot_by_name(&format!("b{}", t.0)))
                        .expect("bucket i is tenant i's")
                        .tenant()
                        .bases_for(&rules, from, to),
                    None => rules.star_bases(from, to),
                };
                let found: Vec<&str> = (run.iter()).map(|r| &*rules.basis(r.id).id).collect();
                let expected: Vec<&str> = expected.iter().map(|b| &*b.id).collect();
                assert_eq!(found, expected, "{tenant:?} {from:?} → {to:?}");
            }
        }
    }

    #[test]
    fn a_route_basis_is_a_quarter_line() {
        assert_eq!(std::mem::size_of::<RouteBasis>(), 16);
    }

    /// The 16-bit window and category mask against the `Basis` they were
    /// made from: dates on both sides of the range the window counts and
    /// at its clamped ends, revocations before, inside and after it, and
    /// category ids past the mask's bits.
    #[test]
    fn route_basis_agrees_with_its_basis() {
        let mut rng = StdRng::seed_from_u64(5);
        let epoch = Day::EPOCH;
        let edges = [
            epoch - 400,
            epoch - 1,
            epoch,
            epoch + 1,
            epoch + 20_000,
            epoch + i32::from(u16::MAX) - 2,
            epoch + i32::from(u16::MAX) - 1,
            epoch + i32::from(u16::MAX),
            epoch + i32::from(u16::MAX) + 1,
            epoch + 70_000,
        ];
        let day = |rng: &mut StdRng| {
            let at = edges[rng.gen_range(0..edges.len())] + rng.gen_range(-2..=2);
            time::Date::from_julian_day(at).expect("a date")
        };
        let categories = |rng: &mut StdRng| -> Option<Vec<CategoryId>> {
            let top = [4, 15, 16, 70][rng.gen_range(0..4)];
            (rng.gen_range(0..4) > 0).then(|| {
                (0..rng.gen_range(0..4))
                    .map(|_| CategoryId(rng.gen_range(0..top)))
                    .collect()
            })
        };
        let bases: Vec<Basis> = (0..2_000)
            .map(|i| Basis {
                id: format!("b{i}").into(),
                tenant: None,
                kind: BasisKind::ALL[rng.gen_range(0..BasisKind::ALL.len())],
                from: Jurisdiction(0),
                to: vec![Jurisdiction(1)],
                categories: categories(&mut rng),
                recipient: None,
                scope: None,
                valid_from: day(&mut rng),
                valid_until: day(&mut rng),
                revoked_on: rng.gen_bool(0.3).then(|| day(&mut rng)),
                evidence: None,
            })
            .collect();
        let rules = RuleSet::new(
            Tables {
                bases: bases.clone(),
                ..Tables::default()
            },
            "test".into(),
        );
        let route = rules.star_bases(Jurisdiction(0), Jurisdiction(1));
        assert_eq!(route.len(), bases.len());
        for r in route {
            let basis = rules.basis(r.id);
            for _ in 0..20 {
                let today = day(&mut rng);
                assert_eq!(
                    r.valid_on(&rules, Day::of(today)),
                    basis.validity(today) == Validity::Valid,
                    "{basis:?} on {today}"
                );
            }
            for c in (0..72).map(CategoryId) {
                assert_eq!(r.covers_category(&rules, c), basis.covers_category(c));
                assert_eq!(r.names_category(&rules, c), basis.names_category(c));
            }
        }
    }

    /// Every bucket's rules as its `BucketHot` finds them, in a
    /// `ClassifyLine` or in the shared copy, against its own
    /// `ClassifyIndex`: buckets with none, a few (short ones in a line,
    /// more or longer ones, some of two-byte characters, in the copy), and
    /// more than a `u16` counts (read from the `Bucket` itself).
    #[test]
    fn classify_through_the_hot_line_agrees_with_the_buckets_own() {
        let mut rng = StdRng::seed_from_u64(9);
        let word = |rng: &mut StdRng| -> String {
            (0..rng.gen_range(0..8))
                .map(|_| ['a', 'b', '/', 'é'][rng.gen_range(0..4)])
                .collect()
        };
        let mut classifies: Vec<ClassifyIndex> = (0..300)
            .map(|_| {
                let n = rng.gen_range(0..10);
                ClassifyIndex::new((0..n).map(|c| (word(&mut rng).into(), CategoryId(c))))
            })
            .collect();
        classifies.insert(
            100,
            ClassifyIndex::new((0..70_000).map(|i| (format!("k{i:05}/").into(), CategoryId(1)))),
        );
        let names: Vec<String> = (0..classifies.len()).map(|i| format!("b{i:03}")).collect();
        let rules = one_tenants(names.iter().map(|n| n.as_str()).zip(classifies));
        let mut keys: Vec<String> = (0..50).map(|_| word(&mut rng) + &word(&mut rng)).collect();
        keys.extend(["k00000/x", "k69999/", "k7", "k12345/a/b"].map(String::from));
        let mut forms = HashMap::new();
        for (i, b) in rules.tables.buckets.iter().enumerate() {
            let hot = rules
                .bucket_hot_by_name(&b.name)
                .expect("a bucket of the set");
            let form = match hot.fields.classify_len {
                0 => "none",
                IN_LINE => "line",
                TOO_MANY => "bucket",
                _ => "copy",
            };
            *forms.entry(form).or_insert(0) += 1;
            let view = hot.classify(&rules);
            assert_eq!(view.is_none(), b.classify.is_empty(), "bucket {i}");
            for key in &keys {
                let hot = view.and_then(|v| v.longest(key));
                assert_eq!(hot, b.classify.longest(key), "bucket {i}, key {key:?}");
                let hot = view.and_then(|v| v.strictest_overlapping(key));
                assert_eq!(
                    hot,
                    b.classify.strictest_overlapping(key),
                    "bucket {i}, {key:?}"
                );
            }
        }
        assert_eq!(forms.len(), 4, "{forms:?}");
    }

    /// The binary search and parent walk against the definition: the
    /// longest rule that is a prefix of the key, over nested and sibling
    /// prefixes from a small alphabet, so that most keys meet several; and
    /// the listing's search: the strictest rule overlapping the prefix, of
    /// those the least prefix (categories repeat, so that ties occur).
    #[test]
    fn longest_prefix_agrees_with_trying_every_rule() {
        let mut rng = StdRng::seed_from_u64(11);
        let word = |rng: &mut StdRng, max: usize| -> String {
            (0..rng.gen_range(0..=max))
                .map(|_| ['a', 'b', '/', 'é'][rng.gen_range(0..4)])
                .collect()
        };
        for _ in 0..500 {
            let mut rules: Vec<(String, CategoryId)> = Vec::new();
            for c in 0..rng.gen_range(0..12) {
                let p = word(&mut rng, 5);
                if !rules.iter().any(|(q, _)| *q == p) {
                    rules.push((p, CategoryId(c % 4)));
                }
            }
            let index = ClassifyIndex::new(rules.iter().map(|(p, c)| (p.as_str().into(), *c)));
            assert_eq!(index.len(), rules.len());
            for _ in 0..50 {
                let key = word(&mut rng, 7);
                let expected = rules
                    .iter()
                    .filter(|(p, _)| key.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(p, c)| (p.as_str(), *c));
                assert_eq!(index.longest(&key), expected, "{key:?} in {rules:?}");
                let expected = rules
                    .iter()
                    .filter(|(p, _)| key.starts_with(p.as_str()) || p.starts_with(&key))
                    .max_by_key(|(p, c)| (*c, std::cmp::Reverse(p)))
                    .map(|(p, c)| (p.as_str(), *c));
                assert_eq!(
                    index.strictest_overlapping(&key),
                    expected,
                    "{key:?} in {rules:?}"
                );
            }
        }
    }
}
