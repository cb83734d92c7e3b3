//! `audit query`: the records of a log that match a filter, as JSON Lines
//! or CSV. It streams, one line in memory at a time, so a month of logs
//! needs no more memory than a minute; a sealed segment whose time range
//! lies outside the filter's is not read at all.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::chain;
use super::record::{timestamp, Endpoint, Record, Text};
use super::seal::{self, Statement};

/// Which records to print. Time bounds are canonical `ts` strings (see
/// [`parse_time`]), half-open: `since <= ts < until`. The other fields are
/// those of decision records: when any is set, only decision records
/// match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub tenant: Option<String>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    /// A jurisdiction, region or country of the transfer's origin.
    pub from: Option<String>,
    /// A jurisdiction, region or country of its destination.
    pub to: Option<String>,
    pub basis: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The log's own lines, byte for byte: their hashes still check.
    Jsonl,
    /// One row per record under a fixed header (see [`CSV_COLUMNS`]).
    Csv,
}

/// `--since`/`--until`: an RFC 3339 time (any offset) or a UTC date
/// (`2026-03-01`, its midnight), as the canonical `ts` it compares with.
pub fn parse_time(s: &str) -> Result<String, String> {
    let date = time::macros::format_description!("[year]-[month]-[day]");
    let t = match time::Date::parse(s, &date) {
        Ok(d) => d.midnight().assume_utc(),
        Err(_) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD: {e}"))?,
    };
    Ok(timestamp(t))
}

#[derive(Debug)]
pub enum QueryError {
    /// Reading the log, or writing the output.
    Io(PathBuf, io::Error),
    /// A line that is not a record.
    Malformed {
        file: PathBuf,
        line: u64,
        why: String,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            QueryError::Malformed { file, line, why } => {
                write!(f, "{}:{line}: not a record: {why}", file.display())
            }
        }
    }
}

impl std::error::Error for QueryError {}

impl Filter {
    fn decision_fields(&self) -> bool {
        [
            &self.tenant,
            &self.decision,
            &self.reason,
            &self.from,
            &self.to,
            &self.basis,
        ]
        .iter()
        .any(|f| f.is_some())
    }

    fn matches(&self, rec: &Record) -> bool {
        let ts = match rec {
            Record::Decision(d) => &d.ts,
            Record::Completion(c) => &c.ts,
            Record::Recovery(r) => &r.ts,
        };
        if !self.in_range(ts, ts) {
            return false;
        }
        let Record::Decision(d) = rec else {
            return !self.decision_fields();
        };
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        let at = |want: &Option<String>, end: &Option<Endpoint>| {
            want.as_deref().is_none_or(|w| {
                end.as_ref().is_some_and(|e| {
                    [&e.jurisdiction, &e.region, &e.country]
                        .iter()
                        .any(|v| v.as_deref() == Some(w))
                })
            })
        };
        is(&self.tenant, d.tenant.as_deref())
            && is(&self.decision, Some(&d.decision))
            && is(&self.reason, Some(&d.reason))
            && is(&self.basis, d.basis.as_deref())
            && at(&self.from, &d.from)
            && at(&self.to, &d.to)
    }

    /// Whether records from `min` to `max` (inclusive) can meet the time
    /// bounds.
    fn in_range(&self, min: &str, max: &str) -> bool {
        self.since.as_deref().is_none_or(|s| max >= s)
            && self.until.as_deref().is_none_or(|u| min < u)
    }
}

/// The CSV header: the decision record's fields with endpoints flattened,
/// then the completion's.
pub const CSV_COLUMNS: [&str; 31] = [
    "event",
    "seq",
    "ts",
    "instance",
    "request_id",
    "tenant",
    "op",
    "direction",
    "bucket",
    "key",
    "category",
    "category_source",
    "from_jurisdiction",
    "from_region",
    "from_country",
    "from_via",
    "to_jurisdiction",
    "to_region",
    "to_country",
    "to_via",
    "client_ip",
    "decision",
    "reason",
    "basis",
    "basis_kind",
    "mode",
    "status",
    "outcome",
    "bytes_in",
    "bytes_out",
    "duration_ms",
];

/// Writes the records of the log in `dir` that `filter` selects to `out`,
/// oldest first; returns how many.
pub fn query(
    dir: &Path,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, QueryError> {
    if format == Format::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(",")).map_err(to_output)?;
    }
    let mut matched = 0;
    scan(dir, filter, |rec, line| {
        matched += 1;
        match format {
            Format::Jsonl => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Format::Csv => write_csv_row(out, rec),
        }
        .map(|()| ControlFlow::Continue(()))
    })?;
    out.flush().map_err(to_output)?;
    Ok(matched)
}

/// An error writing the output (`-`), not reading the log.
pub(crate) fn to_output(e: io::Error) -> QueryError {
    QueryError::Io(PathBuf::from("-"), e)
}

/// Calls `each` with every record of the log in `dir` that `filter`
/// selects, and its line (without the newline), oldest first, until it
/// breaks. One line is in memory at a time. An error from `each` is one
/// writing the output.
pub(crate) fn scan(
    dir: &Path,
    filter: &Filter,
    mut each: impl FnMut(&Record, &[u8]) -> io::Result<ControlFlow<()>>,
) -> Result<(), QueryError> {
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |e| QueryError::Io(path, e)
    };
    let mut line = Vec::new();
    for (_, path) in chain::segments(dir).map_err(io_at(dir))? {
        if !sealed_range_meets(&path, filter) {
            continue;
        }
        let mut reader = BufReader::new(File::open(&path).map_err(io_at(&path))?);
        let mut n = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io_at(&path))? == 0 {
                break;
            }
            n += 1;
            // A torn write the writer has not yet cut: not a record yet.
            if line.pop() != Some(b'\n') {
                break;
            }
            let rec: Record = serde_json::from_slice(&line).map_err(|e| QueryError::Malformed {
                file: path.clone(),
                line: n,
                why: e.to_string(),
            })?;
            if filter.matches(&rec) && each(&rec, &line).map_err(to_output)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// False only when the segment's seal shows that none of its records is
/// in the time range; an unreadable seal is left for `verify` to report.
fn sealed_range_meets(segment: &Path, filter: &Filter) -> bool {
    if filter.since.is_none() && filter.until.is_none() {
        return true;
    }
    match seal::read(&seal::seal_path(segment)) {
        Ok(signed) => match signed.statement {
            Statement::Seal(s) => filter.in_range(&s.min_ts, &s.max_ts),
            Statement::Checkpoint(_) => true,
        },
        Err(_) => true,
    }
}

fn write_csv_row(out: &mut impl Write, rec: &Record) -> io::Result<()> {
    let mut row: Vec<String> = vec![String::new(); CSV_COLUMNS.len()];
    let mut set = |column: &str, value: Option<String>| {
        let i = CSV_COLUMNS
            .iter()
            .position(|c| *c == column)
            .expect("a CSV column");
        row[i] = value.unwrap_or_default();
    };
    let text = |s: &str| Some(s.to_owned());
    let own = |s: &Option<Text>| s.as_deref().map(str::to_owned);
    match rec {
        Record::Decision(d) => {
            set("event", text("decision"));
            set("seq", Some(d.seq.to_string()));
            set("ts", text(&d.ts));
            set("instance", text(&d.instance));
            set("request_id", text(&d.request_id));
            set("tenant", own(&d.tenant));
            set("op", text(&d.op));
            set("direction", text(&d.direction));
            set("bucket", own(&d.bucket));
            set("key", own(&d.key));
            set("category", own(&d.category));
            set(
                "category_source",
                d.category_source.clone().map(Cow::into_owned),
            );
            for (side, end) in [("from", &d.from), ("to", &d.to)] {
                let end = end.clone().unwrap_or_default();
                set(
                    &format!("{side}_jurisdiction"),
                    end.jurisdiction.map(Cow::into_owned),
                );
                set(&format!("{side}_region"), end.region.map(Cow::into_owned));
                set(&format!("{side}_country"), end.country.map(Cow::into_owned));
                set(&format!("{side}_via"), end.via.map(Cow::into_owned));
            }
            set("client_ip", own(&d.client_ip));
            set("decision", text(&d.decision));
            set("reason", text(&d.reason));
            set("basis", own(&d.basis));
            set("basis_kind", d.basis_kind.clone().map(Cow::into_owned));
            set("mode", d.mode.clone().map(Cow::into_owned));
            set("status", d.status.map(|s| s.to_string()));
        }
        Record::Completion(c) => {
            set("event", text("completion"));
            set("seq", Some(c.seq.to_string()));
            set("ts", text(&c.ts));
            set("instance", text(&c.instance));
            set("request_id", text(&c.request_id));
            set("category", own(&c.category));
            set("status", Some(c.status.to_string()));
            set("outcome", text(&c.outcome));
            set("bytes_in", Some(c.bytes_in.to_string()));
            set("bytes_out", Some(c.bytes_out.to_string()));
            set("duration_ms", Some(c.duration_ms.to_string()));
        }
        Record::Recovery(r) => {
            set("event", text("recovery"));
            set("seq", Some(r.seq.to_string()));
            set("ts", text(&r.ts));
            set("instance", text(&r.instance));
            // Says what was cut, and how many bytes.
            set("reason", text(&r.reason));
        }
    }
    let cells: Vec<String> = row.iter().map(|v| csv_cell(v)).collect();
    writeln!(out, "{}", cells.join(","))
}

/// RFC 4180 quoting. A cell that a spreadsheet would run as a formula
/// (object keys and bucket names come from clients) is prefixed with `'`,
/// the usual guard against CSV injection.
pub(crate) fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}
