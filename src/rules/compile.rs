//! `RawRules` → `RuleSet`: every error collected, each with file:line:col.
//!
//! Validation never stops at the first problem: a rule author running
//! `gatekeeper check` wants every mistake at once. Each item is resolved
//! field by field, every bad field reported where it is written; an item
//! with a bad field is left out of the tables, which is harmless because the
//! compile has then failed and the tables are dropped.
//!
//! The one exception is a file that TOML cannot read (syntax, unknown key,
//! wrong type): serde stops there, and since every reference into that file
//! would then look unknown, only the parse errors of all files are shown.

use std::cell::OnceCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use time::Date;
use toml::Spanned;

use super::model::{
    Basis, BasisKind, Bucket, BucketId, BucketName, Category, CategoryId, ClassifyIndex, Country,
    CrossBorder, Jurisdiction, JurisdictionDef, Mode, Network, Origin, Peer, Region, RegionId,
    RuleSet, Tables, Tenant, TenantId, Validity,
};
use super::raw::{
    LocalDate, Name, RawBasis, RawBucket, RawCategory, RawClassify, RawJurisdiction, RawNetwork,
    RawPeer, RawRegion, RawRules, RawTenant,
};

/// One rule file: where it was read from (as messages show it) and its text.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Severity {
    /// The rules (or config) cannot be used.
    Error,
    /// Usable, but probably not what the author meant.
    Warning,
}

/// A message that points a rule author at a place in a file. An origin with
/// line 0 is about the whole file (or directory): it cannot be read, or
/// something is missing from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    /// An error about a whole file or directory: it cannot be read.
    pub fn file_error(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            origin: Origin {
                file: path.to_path_buf(),
                line: 0,
                col: 0,
            },
            severity: Severity::Error,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.origin.line == 0 {
            write!(
                f,
                "{}: {severity}: {}",
                self.origin.file.display(),
                self.message
            )
        } else {
            write!(f, "{}: {severity}: {}", self.origin, self.message)
        }
    }
}

/// A rule set that passed validation, and what `check` should still say
/// about it.
#[derive(Debug)]
pub struct Compiled {
    pub rules: RuleSet,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles rule files given in memory, in the order given (which is the
/// order of messages). The version hashes each path as given.
pub fn compile(sources: &[Source], today: Date) -> Result<Compiled, Vec<Diagnostic>> {
    compile_rooted(sources, Path::new("."), today)
}

/// One rule file named `rules.toml`: for tests of the modules that use a
/// `RuleSet`.
pub fn compile_str(text: &str, today: Date) -> Result<Compiled, Vec<Diagnostic>> {
    let source = Source {
        path: PathBuf::from("rules.toml"),
        text: text.to_owned(),
    };
    compile(std::slice::from_ref(&source), today)
}

/// Compiles every `*.toml` under `dir`, recursively, in byte order of their
/// paths relative to `dir`. Names starting with `.` are skipped: editors'
/// lock files end in `.toml`, and a Kubernetes ConfigMap mount keeps a
/// second copy of every file under `..data`. Symbolic links to files are
/// followed (ConfigMap files are links); links to directories are not,
/// so a link cycle cannot make the walk endless.
pub fn load_dir(dir: &Path, today: Date) -> Result<Compiled, Vec<Diagnostic>> {
    let mut names = Vec::new();
    let mut diags = Vec::new();
    walk(dir, "", &mut names, &mut diags);
    names.sort();
    let mut sources = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source { path, text }),
            Err(e) => diags.push(Diagnostic::file_error(&path, format!("cannot read: {e}"))),
        }
    }
    if !diags.is_empty() {
        // Like a parse error: references into the missing file would all
        // look unknown.
        return Err(diags);
    }
    compile_rooted(&sources, dir, today)
}

fn walk(dir: &Path, rel: &str, names: &mut Vec<String>, diags: &mut Vec<Diagnostic>) {
    let here = if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rel)
    };
    let entries = match std::fs::read_dir(&here) {
        Ok(entries) => entries,
        Err(e) => {
            let message = format!("cannot read directory: {e}");
            return diags.push(Diagnostic::file_error(&here, message));
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let message = format!("cannot read directory: {e}");
                return diags.push(Diagnostic::file_error(&here, message));
            }
        };
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') {
            continue;
        }
        let name = if rel.is_empty() {
            file_name
        } else {
            format!("{rel}/{file_name}")
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(dir, &name, names, diags);
        } else if name.ends_with(".toml") {
            names.push(name);
        }
    }
}

fn compile_rooted(
    sources: &[Source],
    root: &Path,
    today: Date,
) -> Result<Compiled, Vec<Diagnostic>> {
    let files = sources.iter().map(|s| (s.path.as_path(), s.text.as_str()));
    // The root is the last "file", for problems that belong to no rule file.
    let mut report = Report::new(files.chain([(root, "")]));
    let root_file = sources.len();
    if sources.is_empty() {
        report.error(At::whole(root_file), "no *.toml rule files");
        return Err(report.finish());
    }
    let mut raws = Vec::with_capacity(sources.len());
    for (file, parsed) in parse_all(sources).into_iter().enumerate() {
        match parsed {
            Ok(raw) => raws.push(raw),
            Err(e) => report.parse_error(file, &e),
        }
    }
    if report.has_errors() {
        return Err(report.finish());
    }
    let tables = Compiler::new(report, root_file, today).run(&raws)?;
    let version = version(sources, root);
    Ok(Compiled {
        rules: RuleSet::new(tables.0, version),
        warnings: tables.1,
    })
}

/// Every file parsed, in parallel: TOML parsing is most of the time a large
/// rule set takes to compile, and files are independent until merged.
fn parse_all(sources: &[Source]) -> Vec<Result<RawRules, toml::de::Error>> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let next = AtomicUsize::new(0);
    let parsed: Vec<OnceLock<_>> = sources.iter().map(|_| OnceLock::new()).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(sources.len()) {
            scope.spawn(|| {
                // Each thread takes the next file, so one large file does
                // not hold up the others; each index is taken once.
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = sources.get(i) else { break };
                    let _ = parsed[i].set(toml::from_str(&source.text));
                }
            });
        }
    });
    parsed
        .into_iter()
        .map(|p| p.into_inner().expect("every file was parsed"))
        .collect()
}

/// Hex SHA-256 over each file's name relative to the rules directory and
/// its bytes, in name order: the same rules give the same version wherever
/// the directory is, and the audit trail keeps rule sets under it.
fn version(sources: &[Source], root: &Path) -> String {
    let mut files: Vec<(String, &[u8])> = sources
        .iter()
        .map(|s| {
            let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
            let parts: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            (parts.join("/"), s.text.as_bytes())
        })
        .collect();
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut hash = Sha256::new();
    for (name, bytes) in files {
        // Length-prefixed, so no two different file sets hash the same bytes.
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    }
    hex::encode(hash.finalize())
}

// ---------------------------------------------------------------------------
// Reporting, shared with `config`.

/// A position in one of a report's files; `offset: None` is the whole file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct At {
    file: usize,
    offset: Option<usize>,
}

impl At {
    pub(crate) fn of<T>(file: usize, value: &Spanned<T>) -> At {
        At {
            file,
            offset: Some(value.span().start),
        }
    }

    pub(crate) fn whole(file: usize) -> At {
        At { file, offset: None }
    }
}

/// Proof that an error was reported. A value that failed to resolve is an
/// `Err(Reported)` rather than a placeholder, so nothing half-resolved can
/// end up in a table; only `Report::error` makes one.
#[derive(Debug)]
pub(crate) struct Reported(());

/// The diagnostics of one compile (or one config file). Line tables are
/// built only for files that have something to report.
pub(crate) struct Report<'a> {
    files: Vec<ReportFile<'a>>,
    diags: Vec<(Severity, At, Diagnostic)>,
}

struct ReportFile<'a> {
    path: &'a Path,
    text: &'a str,
    line_starts: OnceCell<Vec<usize>>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(files: impl IntoIterator<Item = (&'a Path, &'a str)>) -> Report<'a> {
        let files = files
            .into_iter()
            .map(|(path, text)| ReportFile {
                path,
                text,
                line_starts: OnceCell::new(),
            })
            .collect();
        Report {
            files,
            diags: Vec::new(),
        }
    }

    /// Line 1-based; column 1-based and counted in characters, as editors
    /// count them.
    pub(crate) fn origin(&self, at: At) -> Origin {
        let f = &self.files[at.file];
        let Some(offset) = at.offset else {
            return Origin {
                file: f.path.to_path_buf(),
                line: 0,
                col: 0,
            };
        };
        let starts = f.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(f.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let offset = offset.min(f.text.len());
        let line = starts.partition_point(|&s| s <= offset);
        let start = starts[line - 1];
        let col = f.text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        Origin {
            file: f.path.to_path_buf(),
            line,
            col,
        }
    }

    fn push(&mut self, severity: Severity, at: At, message: String) {
        let origin = self.origin(at);
        self.diags.push((
            severity,
            at,
            Diagnostic {
                origin,
                severity,
                message,
            },
        ));
    }

    pub(crate) fn error(&mut self, at: At, message: impl Into<String>) -> Reported {
        self.push(Severity::Error, at, message.into());
        Reported(())
    }

    pub(crate) fn warning(&mut self, at: At, message: impl Into<String>) {
        self.push(Severity::Warning, at, message.into());
    }

    /// A TOML syntax error, unknown key or wrong type, at the place TOML
    /// names (its multi-line messages folded onto one line).
    pub(crate) fn parse_error(&mut self, file: usize, e: &toml::de::Error) {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim_end().replace('\n', ": ");
        self.error(
            At {
                file,
                offset: Some(offset),
            },
            message,
        );
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.0 == Severity::Error)
    }

    /// Errors, then warnings; each in file order, then position.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.0, d.1));
        self.diags.into_iter().map(|d| d.2).collect()
    }

    /// One of a fixed set of words (an enum written as a string).
    pub(crate) fn choice<T: Copy>(
        &mut self,
        file: usize,
        key: &str,
        value: &Name,
        options: &[(&str, T)],
    ) -> Result<T, Reported> {
        if let Some((_, t)) = options.iter().find(|(word, _)| word == value.get_ref()) {
            return Ok(*t);
        }
        let expected: Vec<String> = options
            .iter()
            .map(|(word, _)| format!("{word:?}"))
            .collect();
        let message = format!(
            "invalid {key} {:?}: expected one of {}",
            value.get_ref(),
            expected.join(", ")
        );
        Err(self.error(At::of(file, value), message))
    }

    /// `mode` and `monitor_until`, of a tenant or of the instance: monitor
    /// mode without an end date would let denials through forever.
    pub(crate) fn mode(
        &mut self,
        file: usize,
        mode: Option<&Name>,
        until: Option<&Spanned<LocalDate>>,
    ) -> Result<Option<Mode>, Reported> {
        let monitor = match mode {
            Some(m) => Some((
                self.choice(file, "mode", m, &[("enforce", false), ("monitor", true)])?,
                m,
            )),
            None => None,
        };
        match (monitor, until) {
            (None, None) => Ok(None),
            (Some((false, _)), None) => Ok(Some(Mode::Enforce)),
            (Some((true, _)), Some(until)) => Ok(Some(Mode::Monitor {
                until: until.get_ref().0,
            })),
            (Some((true, m)), None) => Err(self.error(
                At::of(file, m),
                "mode = \"monitor\" needs monitor_until, the last day denials are let through",
            )),
            (_, Some(until)) => Err(self.error(
                At::of(file, until),
                "monitor_until is set but mode is not \"monitor\"",
            )),
        }
    }

    /// A network in CIDR notation. Host bits must be clear: `10.0.0.1/8`
    /// usually means the author thought of one host, not 16 million.
    pub(crate) fn cidr(&mut self, file: usize, value: &Name) -> Result<IpNet, Reported> {
        let text = value.get_ref();
        match text.parse::<IpNet>() {
            Ok(net) if net.trunc() == net => Ok(net),
            Ok(net) => {
                let message = format!(
                    "CIDR {text:?} has host bits set: the network is \"{}\"",
                    net.trunc()
                );
                Err(self.error(At::of(file, value), message))
            }
            Err(_) => {
                let message = format!("invalid CIDR {text:?}: expected an address and prefix length like \"10.0.0.0/8\"");
                Err(self.error(At::of(file, value), message))
            }
        }
    }
}

/// Every result, each error reported along the way: unlike collecting into
/// a `Result`, this does not stop at the first error.
pub(crate) fn all<T>(
    results: impl IntoIterator<Item = Result<T, Reported>>,
) -> Result<Vec<T>, Reported> {
    let mut out = Vec::new();
    let mut failed = None;
    for result in results {
        match result {
            Ok(t) => out.push(t),
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(out), Err)
}

// ---------------------------------------------------------------------------
// Names and references.

/// Ids of one kind, with where each was first defined, so a duplicate can
/// say where the original is and a reference can be resolved.
struct Names<K, I> {
    what: &'static str,
    map: HashMap<K, (I, At)>,
}

impl<K: Hash + Eq, I: Copy> Names<K, I> {
    fn new(what: &'static str) -> Names<K, I> {
        Names {
            what,
            map: HashMap::new(),
        }
    }

    /// `describe` is called only for a duplicate, so the common case
    /// allocates nothing.
    fn declare(
        &mut self,
        report: &mut Report,
        key: K,
        at: At,
        id: I,
        describe: impl FnOnce() -> String,
    ) -> Result<(), Reported> {
        match self.map.entry(key) {
            Entry::Vacant(v) => {
                v.insert((id, at));
                Ok(())
            }
            Entry::Occupied(o) => {
                let first = report.origin(o.get().1);
                Err(report.error(
                    at,
                    format!("duplicate {}; first defined at {first}", describe()),
                ))
            }
        }
    }
}

impl<'a, I: Copy> Names<&'a str, I> {
    fn declare_id(
        &mut self,
        report: &mut Report,
        file: usize,
        name: &'a Name,
        id: I,
    ) -> Result<(), Reported> {
        let at = At::of(file, name);
        if name.get_ref() == "*" {
            return Err(report.error(
                at,
                "\"*\" cannot be an id: it is the wildcard of a [[basis]]",
            ));
        }
        let what = self.what;
        self.declare(report, name.get_ref(), at, id, || {
            format!("{what} {:?}", name.get_ref())
        })
    }

    fn get(&self, name: &str) -> Option<I> {
        self.map.get(name).map(|e| e.0)
    }

    fn resolve(&self, report: &mut Report, file: usize, name: &Name) -> Result<I, Reported> {
        self.get(name.get_ref()).ok_or_else(|| {
            report.error(
                At::of(file, name),
                format!("unknown {} {:?}", self.what, name.get_ref()),
            )
        })
    }
}

/// The codes ISO 3166-1 assigns, plus `XK` (Kosovo), which GeoIP databases
/// return although ISO has not assigned it. Sorted, for binary search.
const COUNTRY_CODES: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An assigned country code, written in upper case as GeoIP returns it.
fn country_code(s: &str) -> Option<Country> {
    COUNTRY_CODES
        .binary_search(&s)
        .ok()
        .and_then(|_| Country::parse(s))
}

/// Ids of jurisdictions, regions, categories and peers are 16-bit, and
/// jurisdiction ids at and above 0x8000 mean "a country no rule names"; this
/// bound leaves room for every own-country jurisdiction too.
const MAX_SMALL_TABLE: usize = 32_000;

/// The problem with an S3 bucket name (general purpose buckets), if any.
/// The gate must never own a name S3 would refuse or read differently.
fn bucket_name_problem(name: &str) -> Option<String> {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let b = name.as_bytes();
    let allowed = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-';
    let problem = if !(3..=63).contains(&b.len()) {
        "must be 3 to 63 characters long"
    } else if !b.iter().all(allowed) {
        "may hold only lower-case letters, digits, '.' and '-'"
    } else if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        "must begin and end with a letter or digit"
    } else if name.contains("..") {
        "must not contain two adjacent periods"
    } else if name.split('.').count() == 4 && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        // Four dotted numbers, valid octets or not (`999.1.1.1`), as S3
        // and `s3::classify` read it.
        "must not look like an IP address"
    } else if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Some(format!("the prefix {p:?} is reserved by S3"));
    } else {
        let suffix = RESERVED_SUFFIXES.iter().find(|s| name.ends_with(**s));
        return suffix.map(|s| format!("the suffix {s:?} is reserved by S3"));
    };
    Some(problem.to_owned())
}

/// SHA-256 fingerprint in hex; the colons of `openssl x509 -fingerprint`
/// output are accepted so it can be pasted as printed.
fn fingerprint(s: &str) -> Option<[u8; 32]> {
    let digits: String = s.chars().filter(|&c| c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

fn level(c: CrossBorder) -> u8 {
    match c {
        CrossBorder::Free => 0,
        CrossBorder::Basis => 1,
        CrossBorder::Never => 2,
    }
}

fn date(d: &Spanned<LocalDate>) -> Date {
    d.get_ref().0
}

/// Every item of one table across all files, with its file index, in file
/// order: the order that decides which of two duplicates is "first".
fn items<T>(raws: &[RawRules], table: fn(&RawRules) -> &Vec<T>) -> Vec<(usize, &T)> {
    raws.iter()
        .enumerate()
        .flat_map(|(file, raw)| table(raw).iter().map(move |t| (file, t)))
        .collect()
}

const CROSS_BORDER: [(&str, CrossBorder); 3] = [
    ("free", CrossBorder::Free),
    ("basis", CrossBorder::Basis),
    ("never", CrossBorder::Never),
];

// ---------------------------------------------------------------------------
// The compiler.

struct Compiler<'a> {
    report: Report<'a>,
    /// The report's pseudo-file for the rules directory.
    root: usize,
    today: Date,
    jurisdictions: Names<&'a str, u16>,
    /// Ids of declared jurisdictions by index, for messages.
    jurisdiction_names: Vec<&'a str>,
    /// Which declared jurisdiction lists a country, and where.
    country_home: HashMap<Country, (u16, At)>,
    own_countries: Vec<Country>,
    regions: Names<&'a str, RegionId>,
    categories: Names<&'a str, CategoryId>,
    /// Category ids by `CategoryId`, for messages.
    category_names: Vec<&'a str>,
    /// Whether a bucket, tenant, classify rule or basis names the category.
    category_used: Vec<bool>,
    tenants: Names<&'a str, TenantId>,
    tenant_has_bucket: Vec<bool>,
    buckets: Names<&'a str, BucketId>,
    peers: Names<&'a str, ()>,
    fingerprints: Names<[u8; 32], ()>,
    sans: Names<&'a str, ()>,
    bases: Names<&'a str, ()>,
}

impl<'a> Compiler<'a> {
    fn new(report: Report<'a>, root: usize, today: Date) -> Compiler<'a> {
        Compiler {
            report,
            root,
            today,
            jurisdictions: Names::new("jurisdiction"),
            jurisdiction_names: Vec::new(),
            country_home: HashMap::new(),
            own_countries: Vec::new(),
            regions: Names::new("region"),
            categories: Names::new("category"),
            category_names: Vec::new(),
            category_used: Vec::new(),
            tenants: Names::new("tenant"),
            tenant_has_bucket: Vec::new(),
            buckets: Names::new("bucket"),
            peers: Names::new("peer"),
            fingerprints: Names::new("cert_sha256"),
            sans: Names::new("san"),
            bases: Names::new("basis"),
        }
    }

    /// Tables in dependency order, so every reference can be resolved when
    /// it is met.
    fn run(mut self, raws: &'a [RawRules]) -> Result<(Tables, Vec<Diagnostic>), Vec<Diagnostic>> {
        let jurisdictions = items(raws, |r| &r.jurisdiction);
        let regions = items(raws, |r| &r.region);
        let categories = items(raws, |r| &r.category);
        let peers = items(raws, |r| &r.peer);
        self.limit(&jurisdictions, |j| &j.id, "jurisdictions");
        self.limit(&regions, |r| &r.id, "regions");
        self.limit(&categories, |c| &c.id, "categories");
        self.limit(&peers, |p| &p.id, "peers");

        let jurisdictions = self.jurisdictions(&jurisdictions);
        let Some(categories) = self.categories(&categories) else {
            // Every category reference and default would be an error too.
            return Err(self.report.finish());
        };
        let regions = self.build(&regions, Self::region);
        let tenants = items(raws, |r| &r.tenant);
        self.tenant_has_bucket = vec![false; tenants.len()];
        let tenants = self.build(&tenants, Self::tenant);
        let mut buckets = self.build(&items(raws, |r| &r.bucket), Self::bucket);
        self.classify(&items(raws, |r| &r.classify), &mut buckets);
        let network_raws = items(raws, |r| &r.network);
        let networks = self.build(&network_raws, Self::network);
        self.overlaps(&network_raws, &networks);
        let peers = self.build(&peers, Self::peer);
        let bases = self.build(&items(raws, |r| &r.basis), Self::basis);
        self.unused();

        if self.report.has_errors() {
            return Err(self.report.finish());
        }
        let tables = Tables {
            jurisdictions: jurisdictions.into_iter().flatten().collect(),
            own_countries: self.own_countries,
            regions: regions.into_iter().flatten().collect(),
            categories: categories.into_iter().flatten().collect(),
            tenants: tenants.into_iter().flatten().collect(),
            buckets: buckets.into_iter().flatten().collect(),
            networks: networks.into_iter().flatten().collect(),
            peers: peers.into_iter().flatten().collect(),
            bases: bases.into_iter().flatten().collect(),
        };
        Ok((tables, self.report.finish()))
    }

    /// One table, item by item. A bad item keeps its slot (as `None`) so
    /// that ids stay equal to positions.
    fn build<R, T>(
        &mut self,
        raws: &[(usize, &'a R)],
        item: fn(&mut Self, usize, usize, &'a R) -> Result<T, Reported>,
    ) -> Vec<Option<T>> {
        raws.iter()
            .enumerate()
            .map(|(i, &(file, raw))| item(self, i, file, raw).ok())
            .collect()
    }

    fn limit<R>(&mut self, raws: &[(usize, &R)], id: fn(&R) -> &Name, what: &str) {
        if let Some(&(file, raw)) = raws.get(MAX_SMALL_TABLE) {
            let message = format!("too many {what}: at most {MAX_SMALL_TABLE}");
            self.report.error(At::of(file, id(raw)), message);
        }
    }

    /// Every name of a list resolved: none missing, none twice. Lists are
    /// short (a tenant's regions, a basis's categories), so `contains` is
    /// cheap.
    fn list<I: PartialEq>(
        &mut self,
        file: usize,
        key: &str,
        list: &'a Spanned<Vec<Name>>,
        mut resolve: impl FnMut(&mut Self, &'a Name) -> Result<I, Reported>,
    ) -> Result<Vec<I>, Reported> {
        if list.get_ref().is_empty() {
            return Err(self
                .report
                .error(At::of(file, list), format!("{key} is empty")));
        }
        let mut seen = Vec::with_capacity(list.get_ref().len());
        let mut failed = None;
        for name in list.get_ref() {
            match resolve(self, name) {
                Ok(item) if seen.contains(&item) => {
                    let message = format!("{:?} is listed twice in {key}", name.get_ref());
                    failed = Some(self.report.error(At::of(file, name), message));
                }
                Ok(item) => seen.push(item),
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(seen), Err)
    }

    fn optional<T>(
        &mut self,
        file: usize,
        name: Option<&'a Name>,
        resolve: fn(&mut Self, usize, &'a Name) -> Result<T, Reported>,
    ) -> Result<Option<T>, Reported> {
        name.map(|n| resolve(self, file, n)).transpose()
    }

    // --- jurisdictions -----------------------------------------------------

    fn jurisdictions(
        &mut self,
        raws: &[(usize, &'a RawJurisdiction)],
    ) -> Vec<Option<JurisdictionDef>> {
        self.jurisdiction_names = raws.iter().map(|(_, j)| j.id.get_ref().as_str()).collect();
        self.build(raws, Self::jurisdiction_def)
    }

    fn jurisdiction_def(
        &mut self,
        i: usize,
        file: usize,
        j: &'a RawJurisdiction,
    ) -> Result<JurisdictionDef, Reported> {
        let declared = self
            .jurisdictions
            .declare_id(&mut self.report, file, &j.id, i as u16);
        let export = match &j.export {
            Some(e) => {
                self.report
                    .choice(file, "export", e, &[("restricted", false), ("free", true)])
            }
            None => Ok(false),
        };
        let mut countries = all(j.countries.iter().map(|code| {
            let c = self.country(file, code)?;
            self.claim(c, i as u16, At::of(file, code))
        }));
        if let (Some(c), Ok(cs)) = (country_code(j.id.get_ref()), &countries) {
            // Otherwise the name would mean this jurisdiction in rules and
            // the country's own one for a requester located there.
            if !cs.contains(&c) {
                let message = format!(
                    "jurisdiction {:?} has the name of a country, so its countries must include \"{c}\"",
                    j.id.get_ref()
                );
                countries = Err(self.report.error(At::of(file, &j.id), message));
            }
        }
        declared?;
        Ok(JurisdictionDef {
            id: j.id.get_ref().as_str().into(),
            countries: countries?,
            export_free: export?,
        })
    }

    fn country(&mut self, file: usize, code: &Name) -> Result<Country, Reported> {
        country_code(code.get_ref()).ok_or_else(|| {
            let message = format!(
                "invalid country code {:?}: expected ISO 3166-1 alpha-2, upper case",
                code.get_ref()
            );
            self.report.error(At::of(file, code), message)
        })
    }

    /// A country lies in at most one jurisdiction.
    fn claim(&mut self, c: Country, jurisdiction: u16, at: At) -> Result<Country, Reported> {
        match self.country_home.entry(c) {
            Entry::Vacant(v) => {
                v.insert((jurisdiction, at));
                Ok(c)
            }
            Entry::Occupied(o) => {
                let (other, first) = *o.get();
                let other = self.jurisdiction_names[other as usize];
                let first = self.report.origin(first);
                let message = format!("country {c} is already in jurisdiction {other:?} ({first})");
                Err(self.report.error(at, message))
            }
        }
    }

    /// A jurisdiction reference: a declared id, or a country listed in no
    /// declared jurisdiction (its own jurisdiction, appended after them).
    fn jurisdiction(&mut self, file: usize, name: &Name) -> Result<Jurisdiction, Reported> {
        let text = name.get_ref();
        if let Some(j) = self.jurisdictions.get(text) {
            return Ok(Jurisdiction(j));
        }
        let Some(c) = country_code(text) else {
            let message = format!("unknown jurisdiction {text:?}: neither a [[jurisdiction]] id nor an ISO 3166 country code");
            return Err(self.report.error(At::of(file, name), message));
        };
        if let Some(&(home, _)) = self.country_home.get(&c) {
            // Accepting it would make the country a second jurisdiction,
            // distinct from the one that lists it.
            let home = self.jurisdiction_names[home as usize];
            let message =
                format!("country {c} belongs to jurisdiction {home:?}: write {home:?} here");
            return Err(self.report.error(At::of(file, name), message));
        }
        let k = match self.own_countries.iter().position(|&o| o == c) {
            Some(k) => k,
            None => {
                self.own_countries.push(c);
                self.own_countries.len() - 1
            }
        };
        Ok(Jurisdiction((self.jurisdiction_names.len() + k) as u16))
    }

    // --- categories --------------------------------------------------------

    /// Ids are given in rank order, so `CategoryId` order is strictness.
    /// `None` when there are no categories at all.
    fn categories(&mut self, raws: &[(usize, &'a RawCategory)]) -> Option<Vec<Option<Category>>> {
        if raws.is_empty() {
            self.report
                .error(At::whole(self.root), "the rules define no [[category]]");
            return None;
        }
        // Stable, so of two equal ranks the first in file order comes first.
        let mut order: Vec<usize> = (0..raws.len()).collect();
        order.sort_by_key(|&i| *raws[i].1.rank.get_ref());
        let mut id_of = vec![CategoryId(0); raws.len()];
        for (pos, &i) in order.iter().enumerate() {
            id_of[i] = CategoryId(pos as u16);
        }
        let declared: Vec<bool> = raws
            .iter()
            .zip(&id_of)
            .map(|(&(file, c), &id)| {
                self.categories
                    .declare_id(&mut self.report, file, &c.id, id)
                    .is_ok()
            })
            .collect();
        self.category_names = order
            .iter()
            .map(|&i| raws[i].1.id.get_ref().as_str())
            .collect();
        self.category_used = vec![false; raws.len()];

        let mut out = Vec::with_capacity(raws.len());
        // The strictest cross_border among lower ranks, and who has it.
        let mut strictest_below: Option<(CrossBorder, &RawCategory)> = None;
        let mut previous: Option<(usize, &RawCategory)> = None;
        for &i in &order {
            let (file, c) = raws[i];
            let rank = c.rank.get_ref();
            let unique = match previous {
                Some((pfile, p)) if p.rank.get_ref() == rank => {
                    let first = self.report.origin(At::of(pfile, &p.rank));
                    let message = format!(
                        "rank {rank} is also the rank of category {:?} ({first}): ranks must be unique",
                        p.id.get_ref()
                    );
                    Err(self.report.error(At::of(file, &c.rank), message))
                }
                _ => Ok(()),
            };
            previous = Some((file, c));
            let cross_border =
                self.report
                    .choice(file, "cross_border", &c.cross_border, &CROSS_BORDER);
            let ordered = cross_border.and_then(|cb| match strictest_below {
                Some((below, other)) if level(below) > level(cb) => {
                    let message = format!(
                        "category {:?} ({}, rank {rank}) ranks above {:?} ({}, rank {}): every never category must rank above every basis one, and every basis above every free one",
                        c.id.get_ref(),
                        cb.as_str(),
                        other.id.get_ref(),
                        below.as_str(),
                        other.rank.get_ref(),
                    );
                    Err(self.report.error(At::of(file, &c.rank), message))
                }
                Some((below, _)) if level(below) == level(cb) => Ok(cb),
                _ => {
                    strictest_below = Some((cb, c));
                    Ok(cb)
                }
            });
            out.push(match (declared[i], unique, ordered) {
                (true, Ok(()), Ok(cross_border)) => Some(Category {
                    id: c.id.get_ref().as_str().into(),
                    rank: *rank,
                    cross_border,
                }),
                _ => None,
            });
        }
        Some(out)
    }

    /// The default where a rule names no category: the strictest, so that
    /// unclassified data fails closed.
    fn strictest(&self) -> CategoryId {
        CategoryId(self.category_used.len() as u16 - 1)
    }

    /// A category reference; naming it counts as using it.
    fn category(&mut self, file: usize, name: &Name) -> Result<CategoryId, Reported> {
        let id = self.categories.resolve(&mut self.report, file, name)?;
        self.category_used[id.0 as usize] = true;
        Ok(id)
    }

    /// Nothing stricter than a bucket's `max_category` may be stored in it.
    fn within_max(
        &mut self,
        file: usize,
        name: &Name,
        category: CategoryId,
        max: CategoryId,
        bucket: &str,
    ) -> Result<(), Reported> {
        if category <= max {
            return Ok(());
        }
        let message = format!(
            "category {:?} is stricter than max_category {:?} of bucket {bucket:?}",
            name.get_ref(),
            self.category_names[max.0 as usize],
        );
        Err(self.report.error(At::of(file, name), message))
    }

    // --- regions, tenants, buckets, classify -----------------------------------

    fn region(&mut self, i: usize, file: usize, r: &'a RawRegion) -> Result<Region, Reported> {
        let declared = self
            .regions
            .declare_id(&mut self.report, file, &r.id, RegionId(i as u16));
        let jurisdiction = self.jurisdiction(file, &r.jurisdiction);
        declared?;
        Ok(Region {
            id: r.id.get_ref().as_str().into(),
            jurisdiction: jurisdiction?,
        })
    }

    fn region_ref(&mut self, file: usize, name: &Name) -> Result<RegionId, Reported> {
        self.regions.resolve(&mut self.report, file, name)
    }

    fn tenant(&mut self, i: usize, file: usize, t: &'a RawTenant) -> Result<Tenant, Reported> {
        let declared = self
            .tenants
            .declare_id(&mut self.report, file, &t.id, TenantId(i as u32));
        let home_regions = self.list(file, "home_regions", &t.home_regions, |c, n| {
            c.region_ref(file, n)
        });
        let default_category = self.optional(file, t.default_category.as_ref(), Self::category);
        let mode = self
            .report
            .mode(file, t.mode.as_ref(), t.monitor_until.as_ref());
        declared?;
        Ok(Tenant {
            id: t.id.get_ref().as_str().into(),
            home_regions: home_regions?,
            default_category: default_category?.unwrap_or(self.strictest()),
            mode: mode?,
        })
    }

    fn bucket(&mut self, i: usize, file: usize, b: &'a RawBucket) -> Result<Bucket, Reported> {
        let name = b.name.get_ref();
        let valid = match bucket_name_problem(name) {
            Some(problem) => Err(self.report.error(
                At::of(file, &b.name),
                format!("invalid bucket name {name:?}: {problem}"),
            )),
            None => Ok(()),
        };
        let declared = self
            .buckets
            .declare_id(&mut self.report, file, &b.name, BucketId(i as u32));
        let tenant = self.tenants.resolve(&mut self.report, file, &b.tenant);
        if let Ok(t) = tenant {
            self.tenant_has_bucket[t.0 as usize] = true;
        }
        let region = self.optional(file, b.region.as_ref(), Self::region_ref);
        let category = self.optional(file, b.category.as_ref(), Self::category);
        let max = self.optional(file, b.max_category.as_ref(), Self::category);
        // Every field has been looked at; the rest needs them all.
        let (category, max) = (category?, max?);
        let max_category = max.or(category).unwrap_or(self.strictest());
        if let (Some(c), Some(written)) = (category, &b.category) {
            self.within_max(file, written, c, max_category, name)?;
        }
        valid?;
        declared?;
        Ok(Bucket {
            name: BucketName::new(name).expect("bucket_name_problem allows at most 63 bytes"),
            tenant: tenant?,
            region: region?,
            category,
            max_category,
            classify: ClassifyIndex::default(),
        })
    }

    fn classify(&mut self, raws: &[(usize, &'a RawClassify)], buckets: &mut [Option<Bucket>]) {
        let mut seen: Names<(BucketId, &str), ()> = Names::new("classify rule");
        let mut rules: Vec<Vec<(Box<str>, CategoryId)>> = vec![Vec::new(); buckets.len()];
        for &(file, r) in raws {
            let bucket = self.buckets.resolve(&mut self.report, file, &r.bucket);
            let category = self.category(file, &r.category);
            let (Ok(bucket), Ok(category)) = (bucket, category) else {
                continue;
            };
            let prefix = r.prefix.get_ref().as_str();
            let describe = || {
                format!(
                    "classify rule for bucket {:?} and prefix {prefix:?}",
                    r.bucket.get_ref()
                )
            };
            let unique = seen.declare(
                &mut self.report,
                (bucket, prefix),
                At::of(file, &r.prefix),
                (),
                describe,
            );
            // A bucket that failed has already been reported: nothing to
            // compare against.
            let fits = match &buckets[bucket.0 as usize] {
                Some(b) => self.within_max(
                    file,
                    &r.category,
                    category,
                    b.max_category,
                    r.bucket.get_ref(),
                ),
                None => Ok(()),
            };
            if unique.is_ok() && fits.is_ok() {
                rules[bucket.0 as usize].push((prefix.into(), category));
            }
        }
        for (bucket, rules) in buckets.iter_mut().zip(rules) {
            if let Some(b) = bucket {
                b.classify = ClassifyIndex::new(rules);
            }
        }
    }

    // --- networks and peers --------------------------------------------------

    fn network(&mut self, _: usize, file: usize, n: &'a RawNetwork) -> Result<Network, Reported> {
        let cidr = self.report.cidr(file, &n.cidr);
        let region = self.region_ref(file, &n.region);
        Ok(Network {
            cidr: cidr?,
            region: region?,
        })
    }

    /// CIDR ranges are either nested or disjoint, so after sorting by
    /// address (shorter prefix first on a tie) a range overlaps an earlier
    /// one exactly when the last range not itself nested holds its address.
    fn overlaps(&mut self, raws: &[(usize, &RawNetwork)], networks: &[Option<Network>]) {
        let mut nets: Vec<(IpNet, At)> = raws
            .iter()
            .zip(networks)
            .filter_map(|(&(file, raw), n)| Some((n.as_ref()?.cidr, At::of(file, &raw.cidr))))
            .collect();
        nets.sort_by_key(|n| n.0);
        let mut outer: Option<(IpNet, At)> = None;
        for (net, at) in nets {
            match outer {
                Some((o, o_at)) if o.contains(&net.network()) => {
                    let first = self.report.origin(o_at);
                    self.report
                        .error(at, format!("network {net} overlaps {o} ({first})"));
                }
                _ => outer = Some((net, at)),
            }
        }
    }

    fn peer(&mut self, _: usize, file: usize, p: &'a RawPeer) -> Result<Peer, Reported> {
        let declared = self.peers.declare_id(&mut self.report, file, &p.id, ());
        let region = self.region_ref(file, &p.region);
        let identified = match (&p.cert_sha256, &p.san) {
            (None, None) => {
                let message = format!(
                    "peer {:?} needs cert_sha256 or san: its client certificate is how it is recognised",
                    p.id.get_ref()
                );
                Err(self.report.error(At::of(file, &p.id), message))
            }
            _ => Ok(()),
        };
        let cert_sha256 = self.optional(file, p.cert_sha256.as_ref(), Self::fingerprint);
        let san = self.optional(file, p.san.as_ref(), |c, file, san| {
            let at = At::of(file, san);
            c.sans
                .declare(&mut c.report, san.get_ref().as_str(), at, (), || {
                    format!("san {:?}", san.get_ref())
                })?;
            Ok(san.get_ref().as_str().into())
        });
        declared?;
        identified?;
        Ok(Peer {
            id: p.id.get_ref().as_str().into(),
            region: region?,
            cert_sha256: cert_sha256?,
            san: san?,
        })
    }

    /// Two peers with one certificate would make the peer a request comes
    /// from depend on table order.
    fn fingerprint(&mut self, file: usize, value: &'a Name) -> Result<[u8; 32], Reported> {
        let at = At::of(file, value);
        let Some(fp) = fingerprint(value.get_ref()) else {
            let message = format!(
                "invalid cert_sha256 {:?}: expected 64 hex digits, the SHA-256 of the DER certificate",
                value.get_ref()
            );
            return Err(self.report.error(at, message));
        };
        self.fingerprints
            .declare(&mut self.report, fp, at, (), || {
                format!("cert_sha256 {:?}", value.get_ref())
            })?;
        Ok(fp)
    }

    // --- bases ---------------------------------------------------------------

    fn basis(&mut self, _: usize, file: usize, b: &'a RawBasis) -> Result<Basis, Reported> {
        let declared = self.bases.declare_id(&mut self.report, file, &b.id, ());
        let kinds = BasisKind::ALL.map(|k| (k.as_str(), k));
        let kind = self.report.choice(file, "kind", &b.kind, &kinds);
        let tenant = if b.tenant.get_ref() == "*" {
            self.any_tenant(file, b, kind.as_ref().ok().copied())
                .map(|()| None)
        } else {
            self.tenants
                .resolve(&mut self.report, file, &b.tenant)
                .map(Some)
        };
        let from = self.jurisdiction(file, &b.from);
        let to = self.list(file, "to", &b.to, |c, name| {
            let to = c.jurisdiction(file, name)?;
            if from.as_ref().is_ok_and(|&f| f == to) {
                let message = format!(
                    "to lists {:?}, the from jurisdiction: a transfer within one jurisdiction needs no basis",
                    name.get_ref()
                );
                return Err(c.report.error(At::of(file, name), message));
            }
            Ok(to)
        });
        let categories = self.basis_categories(file, &b.categories);
        let valid_from = date(&b.valid_from);
        let valid_until = self.not_before(file, "valid_until", b.valid_until.as_ref(), valid_from);
        let revoked_on = self.not_before(file, "revoked_on", b.revoked_on.as_ref(), valid_from);
        declared?;
        let basis = Basis {
            id: b.id.get_ref().as_str().into(),
            tenant: tenant?,
            kind: kind?,
            from: from?,
            to: to?,
            categories: categories?,
            recipient: b.recipient.as_deref().map(Into::into),
            scope: b.scope.as_ref().map(|s| s.get_ref().as_str().into()),
            valid_from,
            valid_until: valid_until?.unwrap_or(Date::MAX),
            revoked_on: revoked_on?,
            evidence: b.evidence.as_deref().map(Into::into),
        };
        match (basis.validity(self.today), &b.valid_until, &b.revoked_on) {
            (Validity::Expired, Some(until), _) => {
                let message = format!("basis {:?} expired on {}", b.id.get_ref(), date(until));
                self.report.warning(At::of(file, until), message);
            }
            (Validity::Revoked, _, Some(revoked)) => {
                let message = format!(
                    "basis {:?} was revoked on {}",
                    b.id.get_ref(),
                    date(revoked)
                );
                self.report.warning(At::of(file, revoked), message);
            }
            _ => {}
        }
        Ok(basis)
    }

    /// `tenant = "*"` is for adequacy decisions that cover every recipient
    /// in the destination; anything narrower is a tenant's own record.
    fn any_tenant(
        &mut self,
        file: usize,
        b: &RawBasis,
        kind: Option<BasisKind>,
    ) -> Result<(), Reported> {
        match (kind, &b.scope) {
            (Some(kind), _) if kind != BasisKind::Adequacy => {
                let message = format!(
                    "tenant = \"*\" is only for adequacy decisions: a {} record binds one tenant",
                    kind.as_str()
                );
                Err(self.report.error(At::of(file, &b.tenant), message))
            }
            (_, Some(scope)) => Err(self.report.error(
                At::of(file, scope),
                "a scoped adequacy decision cannot have tenant = \"*\": record it for each tenant whose recipient is inside the scope",
            )),
            _ => Ok(()),
        }
    }

    fn basis_categories(
        &mut self,
        file: usize,
        list: &'a Spanned<Vec<Name>>,
    ) -> Result<Option<Vec<CategoryId>>, Reported> {
        let names = list.get_ref();
        if let Some(star) = names.iter().find(|n| n.get_ref() == "*") {
            if names.len() == 1 {
                return Ok(None);
            }
            let message = "\"*\" already means every category: list nothing beside it";
            return Err(self.report.error(At::of(file, star), message));
        }
        self.list(file, "categories", list, |c, name| c.category(file, name))
            .map(Some)
    }

    fn not_before(
        &mut self,
        file: usize,
        key: &str,
        d: Option<&Spanned<LocalDate>>,
        valid_from: Date,
    ) -> Result<Option<Date>, Reported> {
        match d {
            Some(d) if date(d) < valid_from => {
                let message = format!("{key} {} is before valid_from {valid_from}", date(d));
                Err(self.report.error(At::of(file, d), message))
            }
            d => Ok(d.map(date)),
        }
    }

    // --- warnings ------------------------------------------------------------

    fn unused(&mut self) {
        let strictest = self.strictest();
        for (name, &(id, at)) in &self.categories.map {
            // The strictest is the default of every unnamed category.
            if !self.category_used[id.0 as usize] && id != strictest {
                let message = format!(
                    "category {name:?} is not used by any bucket, tenant, classify rule or basis"
                );
                self.report.warning(at, message);
            }
        }
        for (name, &(id, at)) in &self.tenants.map {
            if !self.tenant_has_bucket[id.0 as usize] {
                self.report
                    .warning(at, format!("tenant {name:?} owns no buckets"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
