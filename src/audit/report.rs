//! `audit report`: what crossed which border in a period, on what basis,
//! and what was refused, for an auditor to hand on: one self-contained
//! HTML page (inline CSS and SVG, nothing fetched), or the same tables as
//! CSV or JSON.
//!
//! The log is streamed once. Decision records in the period are counted as
//! they come; the bytes a transfer moved are in its completion record,
//! joined by `request_id`, so only the forwarded requests whose completion
//! has not come yet are held (a few small numbers each). Reading goes on
//! past the end of the period until no completion is awaited and records
//! are [`DISORDER`] past it, or until they are [`GRACE`] past it (a crash
//! leaves some requests never completed).
//!
//! Bytes are the decoded body bytes of the object data: those sent to the
//! client for egress, those received from it otherwise, as in
//! `gatekeeper_transfer_bytes_total`. A copy or replication moves data
//! inside the storage, which the gate does not see: its bytes are its
//! request's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

use super::query::{csv_cell, scan, Filter, QueryError};
use super::record::{timestamp, DecisionRecord, Endpoint, Record};
use super::rulesets::RuleStore;
use super::verify::{verify, VerifyOptions};

/// How far out of `ts` order records can be written: a record's `ts` is
/// taken when it is handed to the writer, and it may wait in its queue.
pub const DISORDER: Duration = Duration::minutes(1);

/// How far past the end of the period completions are looked for: a long
/// download ends long after its decision.
pub const GRACE: Duration = Duration::days(1);

/// Bases whose `valid_until` is at most this many days after the end of
/// the period are listed.
pub const EXPIRY_HORIZON_DAYS: i64 = 90;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Csv,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub requests: u64,
    pub bytes: u64,
}

/// Requests between two jurisdictions (`unknown` where the record has
/// none), by decision. Denied requests move no bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub from: String,
    pub to: String,
    pub allowed: Tally,
    pub denied: Tally,
    pub monitor_denied: Tally,
}

impl Flow {
    fn tallies(&mut self) -> [&mut Tally; 3] {
        [
            &mut self.allowed,
            &mut self.denied,
            &mut self.monitor_denied,
        ]
    }

    fn total(&self) -> u64 {
        self.allowed.requests + self.denied.requests + self.monitor_denied.requests
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BasisUse {
    pub basis: String,
    pub kind: String,
    pub allowed: Tally,
    /// `from→to` jurisdiction pairs it was used for.
    pub routes: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub reason: String,
    /// `-` for a bucket no tenant owns.
    pub tenant: String,
    /// `deny`, or `monitor-deny` (forwarded, but would have been denied).
    pub decision: String,
    pub requests: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiring {
    pub basis: String,
    pub kind: String,
    /// `*` for every tenant.
    pub tenant: String,
    pub from: String,
    pub to: Vec<String>,
    pub valid_until: String,
    pub revoked_on: Option<String>,
    /// From the end of the period to `valid_until`; negative once expired.
    pub days_left: i64,
    pub rules_version: String,
}

/// A rule set that decisions in the period were made under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RulesInForce {
    pub version: String,
    pub decisions: u64,
    /// Why its copy beside the log could not be read; `None` when it was.
    pub problem: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub decisions: u64,
    pub allowed: u64,
    pub denied: u64,
    pub monitor_denied: u64,
    /// Decisions on operations that move no object data.
    pub control: u64,
    pub completions: u64,
    /// Forwarded requests whose completion was not found.
    pub incomplete: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// `audit verify`'s output: its summary, or the first problem.
    pub lines: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub log: String,
    pub generated_at: String,
    /// As asked (`null`: from the start, to the end).
    pub since: Option<String>,
    pub until: Option<String>,
    /// The first and last decision in the period.
    pub first: Option<String>,
    pub last: Option<String>,
    pub verification: Verification,
    pub totals: Totals,
    pub flows: Vec<Flow>,
    pub bases: Vec<BasisUse>,
    pub denials: Vec<Denial>,
    pub expiring: Vec<Expiring>,
    pub rules: Vec<RulesInForce>,
}

/// A forwarded request waiting for its completion.
struct Pending {
    flow: Option<usize>,
    verdict: usize,
    basis: Option<usize>,
    egress: bool,
}

const VERDICTS: [&str; 3] = ["allow", "deny", "monitor-deny"];

#[derive(Default)]
struct Tables {
    totals: Totals,
    first: Option<String>,
    last: Option<String>,
    flow_index: HashMap<(String, String), usize>,
    flows: Vec<Flow>,
    basis_index: HashMap<String, usize>,
    bases: Vec<BasisUse>,
    denials: BTreeMap<(String, String, String), u64>,
    /// Version → (decisions, last ts).
    versions: HashMap<String, (u64, String)>,
    pending: HashMap<String, Pending>,
}

fn jurisdiction(end: &Option<Endpoint>) -> String {
    end.as_ref()
        .and_then(|e| e.jurisdiction.as_deref())
        .unwrap_or("unknown")
        .to_owned()
}

impl Tables {
    fn decision(&mut self, d: &DecisionRecord) {
        let t = &mut self.totals;
        t.decisions += 1;
        let Some(verdict) = VERDICTS.iter().position(|v| *v == d.decision) else {
            return;
        };
        *[&mut t.allowed, &mut t.denied, &mut t.monitor_denied][verdict] += 1;
        if self.first.is_none() {
            self.first = Some(d.ts.to_string());
        }
        self.last = Some(d.ts.to_string());
        let v = self
            .versions
            .entry(d.rules_version.to_string())
            .or_insert_with(|| (0, String::new()));
        v.0 += 1;
        d.ts.as_ref().clone_into(&mut v.1);
        if verdict != 0 {
            let tenant = d.tenant.as_deref().unwrap_or("-").to_owned();
            *self
                .denials
                .entry((d.reason.to_string(), tenant, d.decision.to_string()))
                .or_default() += 1;
        }
        let flow = if d.direction == "control" {
            self.totals.control += 1;
            None
        } else {
            let key = (jurisdiction(&d.from), jurisdiction(&d.to));
            let i = *self.flow_index.entry(key.clone()).or_insert_with(|| {
                self.flows.push(Flow {
                    from: key.0.clone(),
                    to: key.1.clone(),
                    ..Flow::default()
                });
                self.flows.len() - 1
            });
            self.flows[i].tallies()[verdict].requests += 1;
            Some(i)
        };
        let basis = d.basis.as_ref().map(|b| {
            let i = *self.basis_index.entry(b.to_string()).or_insert_with(|| {
                self.bases.push(BasisUse {
                    basis: b.to_string(),
                    kind: d.basis_kind.as_deref().unwrap_or_default().to_owned(),
                    ..BasisUse::default()
                });
                self.bases.len() - 1
            });
            let used = &mut self.bases[i];
            used.allowed.requests += 1;
            used.routes
                .insert(format!("{}→{}", jurisdiction(&d.from), jurisdiction(&d.to)));
            i
        });
        if verdict != 1 {
            self.pending.insert(
                d.request_id.to_string(),
                Pending {
                    flow,
                    verdict,
                    basis,
                    egress: d.direction == "egress",
                },
            );
        }
    }

    fn completion(&mut self, request_id: &str, bytes_in: u64, bytes_out: u64) {
        let Some(p) = self.pending.remove(request_id) else {
            return;
        };
        let bytes = if p.egress { bytes_out } else { bytes_in };
        self.totals.completions += 1;
        self.totals.bytes += bytes;
        if let Some(i) = p.flow {
            self.flows[i].tallies()[p.verdict].bytes += bytes;
        }
        if let Some(i) = p.basis {
            self.bases[i].allowed.bytes += bytes;
        }
    }
}

/// Streams the log in `dir` once and builds the report of the decisions
/// from `since` (inclusive) to `until` (exclusive), canonical `ts` strings.
pub fn build(
    dir: &Path,
    since: Option<String>,
    until: Option<String>,
    verify_opts: &VerifyOptions,
) -> Result<Report, QueryError> {
    let verification = match verify(dir, verify_opts) {
        Ok(summary) => Verification {
            ok: true,
            lines: summary.lines(),
        },
        Err(e) => Verification {
            ok: false,
            lines: vec![e.to_string()],
        },
    };
    let parse = |ts: &str| OffsetDateTime::parse(ts, &Rfc3339).ok();
    let past = |by: Duration| until.as_deref().and_then(parse).map(|t| timestamp(t + by));
    let (settled, given_up) = (past(DISORDER), past(GRACE));
    let mut tables = Tables::default();
    let filter = Filter {
        since: since.clone(),
        ..Filter::default()
    };
    scan(dir, &filter, |rec, _| {
        match rec {
            Record::Decision(d) if until.as_deref().is_none_or(|u| &*d.ts < u) => {
                tables.decision(d);
            }
            Record::Completion(c) => tables.completion(&c.request_id, c.bytes_in, c.bytes_out),
            Record::Decision(d) => {
                let beyond = |t: &Option<String>| t.as_deref().is_some_and(|t| &*d.ts >= t);
                if beyond(&given_up) || (tables.pending.is_empty() && beyond(&settled)) {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Record::Recovery(_) => {}
        }
        Ok(ControlFlow::Continue(()))
    })?;
    tables.totals.incomplete = tables.pending.len() as u64;

    let end = until
        .as_deref()
        .or(tables.last.as_deref())
        .and_then(parse)
        .unwrap_or_else(OffsetDateTime::now_utc)
        .date();
    let start = since
        .as_deref()
        .or(tables.first.as_deref())
        .and_then(parse)
        .map_or(end, |t| t.date());
    let (expiring, rules) = expiring(dir, &tables.versions, start, end);

    let mut flows = tables.flows;
    flows.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then((&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    let mut bases = tables.bases;
    bases.sort_by(|a, b| {
        b.allowed
            .requests
            .cmp(&a.allowed.requests)
            .then(a.basis.cmp(&b.basis))
    });
    let mut denials: Vec<Denial> = tables
        .denials
        .into_iter()
        .map(|((reason, tenant, decision), requests)| Denial {
            reason,
            tenant,
            decision,
            requests,
        })
        .collect();
    denials.sort_by_key(|d| std::cmp::Reverse(d.requests));
    Ok(Report {
        log: dir.display().to_string(),
        generated_at: timestamp(OffsetDateTime::now_utc()),
        since,
        until,
        first: tables.first,
        last: tables.last,
        verification,
        totals: tables.totals,
        flows,
        bases,
        denials,
        expiring,
        rules,
    })
}

/// The bases of the rule sets in force in the period (from their copies
/// beside the log) whose `valid_until` falls from `start` to the horizon
/// after `end`; where a basis is in several, the latest rule set's
/// definition counts.
fn expiring(
    dir: &Path,
    versions: &HashMap<String, (u64, String)>,
    start: Date,
    end: Date,
) -> (Vec<Expiring>, Vec<RulesInForce>) {
    let store = RuleStore::new(dir);
    let mut by_last_use: Vec<(&String, &(u64, String))> = versions.iter().collect();
    by_last_use.sort_by(|a, b| (&a.1 .1, a.0).cmp(&(&b.1 .1, b.0)));
    let horizon = end + Duration::days(EXPIRY_HORIZON_DAYS);
    let date = |d: Date| d.to_string();
    let mut found: BTreeMap<String, Expiring> = BTreeMap::new();
    let mut rules = Vec::new();
    for (version, (decisions, _)) in by_last_use {
        let problem = match store.load(version) {
            Ok(set) => {
                for b in &set.tables.bases {
                    if b.valid_until < start || b.valid_until > horizon {
                        continue;
                    }
                    found.insert(
                        b.id.to_string(),
                        Expiring {
                            basis: b.id.to_string(),
                            kind: b.kind.as_str().to_owned(),
                            tenant: b
                                .tenant
                                .map_or("*".to_owned(), |t| set.tenant(t).id.to_string()),
                            from: set.jurisdiction_name(b.from).to_owned(),
                            to: b
                                .to
                                .iter()
                                .map(|j| set.jurisdiction_name(*j).to_owned())
                                .collect(),
                            valid_until: date(b.valid_until),
                            revoked_on: b.revoked_on.map(date),
                            days_left: (b.valid_until - end).whole_days(),
                            rules_version: version.clone(),
                        },
                    );
                }
                None
            }
            Err(why) => Some(why),
        };
        rules.push(RulesInForce {
            version: version.clone(),
            decisions: *decisions,
            problem,
        });
    }
    let mut expiring: Vec<Expiring> = found.into_values().collect();
    expiring.sort_by(|a, b| (&a.valid_until, &a.basis).cmp(&(&b.valid_until, &b.basis)));
    (expiring, rules)
}

/// Writes `report` as `format` asks.
pub fn write(report: &Report, format: ReportFormat, out: &mut impl Write) -> io::Result<()> {
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            out.write_all(b"\n")
        }
        ReportFormat::Csv => write_csv(report, out),
        ReportFormat::Html => out.write_all(html(report).as_bytes()),
    }
}

/// One table in long form, so every section shares one header and a
/// spreadsheet can pivot it: `table` names the section, unused cells are
/// empty.
pub const REPORT_CSV_COLUMNS: [&str; 13] = [
    "table",
    "from",
    "to",
    "decision",
    "reason",
    "tenant",
    "basis",
    "basis_kind",
    "requests",
    "bytes",
    "valid_until",
    "days_left",
    "note",
];

fn write_csv(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", REPORT_CSV_COLUMNS.join(","))?;
    let mut row = |cells: &[(&str, String)]| -> io::Result<()> {
        let line: Vec<String> = REPORT_CSV_COLUMNS
            .iter()
            .map(|c| {
                cells
                    .iter()
                    .find(|(name, _)| name == c)
                    .map_or(String::new(), |(_, v)| csv_cell(v))
            })
            .collect();
        writeln!(out, "{}", line.join(","))
    };
    let verdict = if r.verification.ok { "ok" } else { "failed" };
    for line in &r.verification.lines {
        row(&[
            ("table", "verification".into()),
            ("decision", verdict.into()),
            ("note", line.clone()),
        ])?;
    }
    let t = &r.totals;
    for (what, n) in [
        ("allow", t.allowed),
        ("deny", t.denied),
        ("monitor-deny", t.monitor_denied),
    ] {
        row(&[
            ("table", "totals".into()),
            ("decision", what.into()),
            ("requests", n.to_string()),
        ])?;
    }
    row(&[
        ("table", "totals".into()),
        ("note", "control".into()),
        ("requests", t.control.to_string()),
    ])?;
    row(&[
        ("table", "totals".into()),
        ("note", "completed".into()),
        ("requests", t.completions.to_string()),
        ("bytes", t.bytes.to_string()),
    ])?;
    for f in &r.flows {
        for (decision, tally) in [
            ("allow", f.allowed),
            ("deny", f.denied),
            ("monitor-deny", f.monitor_denied),
        ] {
            if tally.requests > 0 {
                row(&[
                    ("table", "flow".into()),
                    ("from", f.from.clone()),
                    ("to", f.to.clone()),
                    ("decision", decision.into()),
                    ("requests", tally.requests.to_string()),
                    ("bytes", tally.bytes.to_string()),
                ])?;
            }
        }
    }
    for b in &r.bases {
        row(&[
            ("table", "basis".into()),
            ("basis", b.basis.clone()),
            ("basis_kind", b.kind.clone()),
            ("requests", b.allowed.requests.to_string()),
            ("bytes", b.allowed.bytes.to_string()),
            (
                "note",
                b.routes.iter().cloned().collect::<Vec<_>>().join(" "),
            ),
        ])?;
    }
    for d in &r.denials {
        row(&[
            ("table", "denial".into()),
            ("reason", d.reason.clone()),
            ("tenant", d.tenant.clone()),
            ("decision", d.decision.clone()),
            ("requests", d.requests.to_string()),
        ])?;
    }
    for e in &r.expiring {
        row(&[
            ("table", "expiring".into()),
            ("basis", e.basis.clone()),
            ("basis_kind", e.kind.clone()),
            ("tenant", e.tenant.clone()),
            ("from", e.from.clone()),
            ("to", e.to.join(" ")),
            ("valid_until", e.valid_until.clone()),
            ("days_left", e.days_left.to_string()),
            (
                "note",
                e.revoked_on
                    .as_ref()
                    .map_or(String::new(), |d| format!("revoked on {d}")),
            ),
        ])?;
    }
    for v in &r.rules {
        row(&[
            ("table", "rules".into()),
            ("requests", v.decisions.to_string()),
            (
                "note",
                match &v.problem {
                    None => format!("{} kept", v.version),
                    Some(p) => format!("{}: {p}", v.version),
                },
            ),
        ])?;
    }
    Ok(())
}

/// Text for HTML element content and attribute values alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1.5 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;margin:0;background:#f4f6f9}
main{max-width:1100px;margin:0 auto;padding:28px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 10px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
.meta{color:#5b6675;margin:0 0 18px}
.verify{border-radius:6px;padding:12px 16px;margin:0 0 10px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;white-space:pre-wrap;word-break:break-all}
.ok{background:#e8f6ec;border:1px solid #8fd0a2}.bad{background:#fdecec;border:1px solid #e69a9a}
.verdict{font:600 15px system-ui,sans-serif;display:block;margin-bottom:6px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:130px;border:1px solid #dde3ea;border-radius:6px;padding:10px 14px}
.card b{display:block;font-size:22px}.card span{color:#5b6675;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e8ecf1}
th{background:#f0f3f7;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.deny{color:#b42318}.monitor{color:#9a6700}.allow{color:#1a7f37}.none{color:#5b6675;font-style:italic}
code{font-size:12px}svg text{font-family:system-ui,sans-serif}
"#;

fn html(r: &Report) -> String {
    let mut h = String::new();
    let period = format!(
        "{} to {}",
        r.since
            .as_deref()
            .or(r.first.as_deref())
            .unwrap_or("the start"),
        r.until
            .as_deref()
            .or(r.last.as_deref())
            .unwrap_or("the end")
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Gatekeeper audit report: {}</title><style>{CSS}</style></head><body><main>\
         <h1>Cross-border transfer report</h1>\
         <p class=\"meta\">Log <code>{}</code> · period {} · generated {}</p>",
        esc(&period),
        esc(&r.log),
        esc(&period),
        esc(&r.generated_at)
    );

    let (class, verdict) = if r.verification.ok {
        (
            "ok",
            "✔ The log verifies: every hash link, seal and checkpoint holds.",
        )
    } else {
        (
            "bad",
            "✘ The log does NOT verify: the figures below may not be complete or true.",
        )
    };
    let _ = write!(
        h,
        "<h2>Verification</h2><div class=\"verify {class}\"><span class=\"verdict\">{}</span>{}</div>",
        esc(verdict),
        esc(&r.verification.lines.join("\n"))
    );

    let t = &r.totals;
    let _ = write!(h, "<h2>Summary</h2><div class=\"cards\">");
    for (label, value, class) in [
        ("decisions", t.decisions.to_string(), ""),
        ("allowed", t.allowed.to_string(), "allow"),
        ("denied", t.denied.to_string(), "deny"),
        ("monitor-denied", t.monitor_denied.to_string(), "monitor"),
        ("control ops", t.control.to_string(), ""),
        ("bytes moved", bytes(t.bytes), ""),
    ] {
        let _ = write!(
            h,
            "<div class=\"card\"><b class=\"{class}\">{}</b><span>{label}</span></div>",
            esc(&value)
        );
    }
    h.push_str("</div>");
    if t.incomplete > 0 {
        let _ = write!(
            h,
            "<p class=\"none\">{} forwarded request(s) have no completion record (in flight at the end, or cut off by a crash): their bytes are not counted.</p>",
            t.incomplete
        );
    }

    h.push_str("<h2>Flows between jurisdictions</h2>");
    h.push_str(&heat_map(&r.flows));
    h.push_str("<h2>Legal bases used</h2>");
    table(
        &mut h,
        &["Basis", "Kind", "Routes", "Requests", "Bytes"],
        r.bases.iter().map(|b| {
            vec![
                format!("<code>{}</code>", esc(&b.basis)),
                esc(&b.kind),
                esc(&b.routes.iter().cloned().collect::<Vec<_>>().join(", ")),
                b.allowed.requests.to_string(),
                bytes(b.allowed.bytes),
            ]
        }),
        3,
    );

    h.push_str("<h2>Denials by reason and tenant</h2>");
    table(
        &mut h,
        &["Reason", "Tenant", "Decision", "Requests"],
        r.denials.iter().map(|d| {
            let class = if d.decision == "deny" {
                "deny"
            } else {
                "monitor"
            };
            vec![
                format!("<code>{}</code>", esc(&d.reason)),
                esc(&d.tenant),
                format!("<span class=\"{class}\">{}</span>", esc(&d.decision)),
                d.requests.to_string(),
            ]
        }),
        3,
    );

    let _ = write!(
        h,
        "<h2>Bases expiring within {EXPIRY_HORIZON_DAYS} days of the period's end</h2>"
    );
    table(
        &mut h,
        &[
            "Basis",
            "Kind",
            "Tenant",
            "Route",
            "Valid until",
            "Days left",
            "Note",
        ],
        r.expiring.iter().map(|e| {
            let left = if e.days_left < 0 {
                format!(
                    "<span class=\"deny\">expired {} days before</span>",
                    -e.days_left
                )
            } else {
                e.days_left.to_string()
            };
            vec![
                format!("<code>{}</code>", esc(&e.basis)),
                esc(&e.kind),
                esc(&e.tenant),
                esc(&format!("{}→{}", e.from, e.to.join(", "))),
                esc(&e.valid_until),
                left,
                e.revoked_on
                    .as_ref()
                    .map_or(String::new(), |d| format!("revoked on {}", esc(d))),
            ]
        }),
        5,
    );

    h.push_str("<h2>Flows in detail</h2>");
    table(
        &mut h,
        &[
            "From",
            "To",
            "Allowed",
            "Bytes",
            "Denied",
            "Monitor-denied",
            "Bytes",
        ],
        r.flows.iter().map(|f| {
            vec![
                esc(&f.from),
                esc(&f.to),
                f.allowed.requests.to_string(),
                bytes(f.allowed.bytes),
                f.denied.requests.to_string(),
                f.monitor_denied.requests.to_string(),
                bytes(f.monitor_denied.bytes),
            ]
        }),
        2,
    );

    h.push_str("<h2>Rule sets in force</h2>");
    table(
        &mut h,
        &["Version", "Decisions", "Kept beside the log"],
        r.rules.iter().map(|v| {
            vec![
                format!("<code>{}</code>", esc(&v.version)),
                v.decisions.to_string(),
                match &v.problem {
                    None => "<span class=\"allow\">yes</span>".into(),
                    Some(p) => format!("<span class=\"deny\">{}</span>", esc(p)),
                },
            ]
        }),
        1,
    );
    h.push_str("</main></body></html>\n");
    h
}

/// An HTML table of cells already escaped; columns from `numeric` on are
/// right-aligned numbers.
fn table(h: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>>, numeric: usize) {
    let class = |i: usize| if i >= numeric { " class=\"n\"" } else { "" };
    h.push_str("<table><thead><tr>");
    for (i, c) in head.iter().enumerate() {
        let _ = write!(h, "<th{}>{}</th>", class(i), esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    let mut any = false;
    for row in rows {
        any = true;
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(h, "<td{}>{c}</td>", class(i));
        }
        h.push_str("</tr>");
    }
    if !any {
        let _ = write!(
            h,
            "<tr><td colspan=\"{}\" class=\"none\">none in this period</td></tr>",
            head.len()
        );
    }
    h.push_str("</tbody></table>");
}

/// The flow matrix as an SVG heat map: a row per origin, a column per
/// destination; a cell's shade grows with its requests (on a log scale),
/// its hue goes from blue to red with the share denied or monitor-denied.
fn heat_map(flows: &[Flow]) -> String {
    if flows.is_empty() {
        return "<p class=\"none\">No data-moving requests in this period.</p>".into();
    }
    let axis = |end: fn(&Flow) -> &String| {
        let set: BTreeSet<&String> = flows.iter().map(end).collect();
        set.into_iter().collect::<Vec<_>>()
    };
    let (rows, cols) = (axis(|f| &f.from), axis(|f| &f.to));
    let (cw, ch, left, top) = (118.0, 66.0, 110.0, 46.0);
    let width = left + cw * cols.len() as f64 + 20.0;
    let height = top + ch * rows.len() as f64 + 48.0;
    let max = flows.iter().map(Flow::total).max().unwrap_or(1).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Flow matrix\">"
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"14\" font-size=\"12\" fill=\"#5b6675\" text-anchor=\"middle\">to (destination jurisdiction) →</text>",
        left + cw * cols.len() as f64 / 2.0
    );
    let _ = write!(
        s,
        "<text x=\"8\" y=\"{}\" font-size=\"12\" fill=\"#5b6675\">from ↓</text>",
        top - 8.0
    );
    for (i, c) in cols.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"600\" text-anchor=\"middle\">{}</text>",
            left + cw * (i as f64 + 0.5),
            top - 10.0,
            esc(c)
        );
    }
    for (j, r) in rows.iter().enumerate() {
        let y = top + ch * j as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"600\" text-anchor=\"end\">{}</text>",
            left - 10.0,
            y + ch / 2.0 + 4.0,
            esc(r)
        );
        for (i, c) in cols.iter().enumerate() {
            let x = left + cw * i as f64;
            let cx = x + cw / 2.0;
            let cell = flows.iter().find(|f| &&f.from == r && &&f.to == c);
            let Some(f) = cell else {
                let _ = write!(
                    s,
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"#f7f8fa\" stroke=\"#fff\" stroke-width=\"2\"/>"
                );
                continue;
            };
            let total = f.total() as f64;
            let refused = (f.denied.requests + f.monitor_denied.requests) as f64 / total;
            let shade = 0.18 + 0.82 * (1.0 + total).ln() / (1.0 + max).ln();
            // Blue (allowed) to red (refused), lighter for fewer requests.
            let mix = |allowed: f64, refused_c: f64| {
                let full = allowed + (refused_c - allowed) * refused;
                (255.0 - (255.0 - full) * shade).round() as u8
            };
            let fill = format!(
                "#{:02x}{:02x}{:02x}",
                mix(37.0, 200.0),
                mix(99.0, 40.0),
                mix(235.0, 40.0)
            );
            let ink = if shade > 0.6 { "#fff" } else { "#1d2430" };
            let moved = f.allowed.bytes + f.monitor_denied.bytes;
            let _ = write!(
                s,
                "<g><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"2\"/>\
                 <text x=\"{cx}\" y=\"{}\" font-size=\"14\" font-weight=\"700\" fill=\"{ink}\" text-anchor=\"middle\">{} req</text>\
                 <text x=\"{cx}\" y=\"{}\" font-size=\"11.5\" fill=\"{ink}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{cx}\" y=\"{}\" font-size=\"11.5\" fill=\"{ink}\" text-anchor=\"middle\">✔{} ✘{} ◐{}</text></g>",
                esc(&format!(
                    "{} → {}: {} allowed, {} denied, {} monitor-denied; {} moved",
                    f.from,
                    f.to,
                    f.allowed.requests,
                    f.denied.requests,
                    f.monitor_denied.requests,
                    bytes(moved)
                )),
                y + 22.0,
                f.total(),
                y + 39.0,
                esc(&bytes(moved)),
                y + 56.0,
                f.allowed.requests,
                f.denied.requests,
                f.monitor_denied.requests
            );
        }
    }
    let ly = top + ch * rows.len() as f64 + 26.0;
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{ly}\" font-size=\"11.5\" fill=\"#5b6675\">✔ allowed  ✘ denied  ◐ monitor-denied (forwarded). Darker: more requests; redder: more of them refused.</text></svg>"
    );
    s
}
