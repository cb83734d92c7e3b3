//! `audit verify`: recomputes every hash and link of a log, across
//! segments, checks each seal against its segment and each checkpoint
//! against the log, and names the first place where the log is not what
//! the writer wrote, with what was most likely done to it. Segments
//! archived off the host are stood in for by their seals, which must chain
//! from seq 1 (see *Archiving* in the `audit` module documentation).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::chain::{self, check_line, LineError, Link, GENESIS};
use super::keys::KeyRing;
use super::seal::{
    self, Checkpoint, ReadError, SignatureError, Signed, Statement, CHECKPOINT_FILE,
};

#[derive(Default)]
pub struct VerifyOptions {
    /// Public keys that seals and checkpoints must be signed with. None:
    /// signatures are not checked (and the summary says so).
    pub keys: KeyRing,
    /// Checkpoints kept away from the log (shipped off the host), checked
    /// besides the log's own `checkpoint.json`.
    pub checkpoints: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// The segments on this host, and how many of them are sealed.
    pub segments: usize,
    pub sealed: usize,
    /// The segment before the newest, closed and unsealed: its seal was
    /// being written when this looked, or when the writer stopped.
    pub awaiting_seal: Option<PathBuf>,
    /// The records read: those of the segments on this host.
    pub records: u64,
    /// The segments before them, archived off the host, that only their
    /// seals vouch for.
    pub archived: Option<Archived>,
    /// The last record's seq and hash: what a later check of a longer log
    /// must find unchanged.
    pub last_seq: Option<u64>,
    pub last_hash: String,
    /// Each checkpoint found to hold, with the seq it vouches for.
    pub checkpoints: Vec<(PathBuf, u64)>,
    /// Whether signatures were checked (keys were given).
    pub signatures_checked: bool,
    /// The keys that signed the seals and checkpoints.
    pub signed_by: BTreeSet<String>,
    /// Seals and checkpoints without a signature (none when keys were
    /// given: those fail).
    pub unsigned: usize,
}

impl VerifySummary {
    /// What `audit verify` prints, and the audit report shows, line by
    /// line.
    pub fn lines(&self) -> Vec<String> {
        let archived_to = self.archived.as_ref().map_or(0, |a| a.last_seq);
        let mut out = vec![match self.last_seq {
            Some(last) if self.records == 0 => format!(
                "verified: seq 1 to {last}, every segment archived; last hash {}",
                self.last_hash
            ),
            Some(last) => format!(
                "verified: seq {} to {last}, {} record(s) in {} segment(s), {} sealed; last hash {}",
                archived_to + 1,
                self.records,
                self.segments,
                self.sealed,
                self.last_hash
            ),
            None => "verified: the log is empty".to_owned(),
        }];
        if let Some(path) = &self.awaiting_seal {
            out.push(format!(
                "{}: closed, its seal not yet written (the writer writes it, or its next start does); the segment after it chains on from its last record",
                path.display()
            ));
        }
        if let Some(a) = &self.archived {
            out.push(format!(
                "archived: seq 1 to {} in {} segment(s), sealed, not read here: their seals chain from seq 1 to the segments here",
                a.last_seq, a.segments
            ));
        }
        for (path, seq) in &self.checkpoints {
            out.push(if *seq <= archived_to {
                format!(
                    "checkpoint {}: seq {seq} is archived, not read here",
                    path.display()
                )
            } else {
                format!("checkpoint {}: the log reaches seq {seq}", path.display())
            });
        }
        let keys = self
            .signed_by
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.signatures_checked {
            if !keys.is_empty() {
                out.push(format!("signatures: good, by key {keys}"));
            }
        } else if !keys.is_empty() {
            out.push(format!(
                "signatures: NOT checked (no --public-key); signed by key {keys}"
            ));
        }
        if self.unsigned > 0 {
            out.push(format!(
                "{} seal(s) or checkpoint(s) are unsigned (no audit.signing_key): they guard against accidents, not against someone who can write the log",
                self.unsigned
            ));
        }
        out
    }
}

/// The oldest segments of a log, gone from its directory (archived
/// elsewhere) while their seals stay: seq 1 to `last_seq`, in `segments`
/// segments, whose seals chain from the first record to the first segment
/// still here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archived {
    pub segments: usize,
    pub last_seq: u64,
}

/// The first place where the log is not what the writer wrote.
#[derive(Debug)]
pub struct VerifyError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: u64,
    /// The seq of the record at fault (claimed, or expected there).
    pub seq: Option<u64>,
    pub kind: Kind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A record's bytes were changed (or a record replaced).
    Edited,
    /// Records are missing from the middle of the log.
    Deleted,
    /// A record that the writer did not write.
    Inserted,
    /// Records out of their order.
    Reordered,
    /// Records are missing from the end of a segment or of the log.
    Truncated,
    /// The last line of the newest segment is incomplete: a crash the
    /// writer has not yet recovered from.
    TornWrite,
    /// A line that is not a record.
    Malformed,
    /// A segment's name does not give its first record's seq.
    Misnamed,
    BadSeal,
    /// A segment other than the newest has no seal.
    MissingSeal,
    BadCheckpoint,
    /// Signed by a key none of those given.
    UnknownKey,
    Unreadable,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Edited => "edited",
            Kind::Deleted => "deleted",
            Kind::Inserted => "inserted",
            Kind::Reordered => "reordered",
            Kind::Truncated => "truncated",
            Kind::TornWrite => "torn write",
            Kind::Malformed => "malformed",
            Kind::Misnamed => "misnamed",
            Kind::BadSeal => "bad seal",
            Kind::MissingSeal => "missing seal",
            Kind::BadCheckpoint => "bad checkpoint",
            Kind::UnknownKey => "unknown key",
            Kind::Unreadable => "unreadable",
        })
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for VerifyError {}

fn fault(
    file: &Path,
    line: u64,
    seq: Option<u64>,
    kind: Kind,
    detail: impl Into<String>,
) -> VerifyError {
    VerifyError {
        file: file.to_owned(),
        line,
        seq,
        kind,
        detail: detail.into(),
    }
}

/// A good record and where it is.
#[derive(Clone, Debug)]
struct Pos {
    file: PathBuf,
    line: u64,
    seq: u64,
    hash: String,
}

/// How many good records back a break looks for the record a line links
/// to, to tell inserted lines from other damage.
const HISTORY: usize = 16;

/// What one segment was found to hold: what its seal must say.
struct Span {
    lines: u64,
    prev: Option<String>,
    last_seq: Option<u64>,
    last_hash: String,
    min_ts: Option<String>,
    max_ts: Option<String>,
}

struct Verifier<'a> {
    keys: &'a KeyRing,
    summary: VerifySummary,
    /// The last good records, newest last.
    history: VecDeque<Pos>,
    /// The seqs that checkpoints vouch for, and where they were found.
    wanted: HashMap<u64, Option<Pos>>,
}

/// Checks the log in `dir`; see the module documentation.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<VerifySummary, VerifyError> {
    let mut v = Verifier {
        keys: &opts.keys,
        summary: VerifySummary {
            segments: 0,
            sealed: 0,
            awaiting_seal: None,
            records: 0,
            archived: None,
            last_seq: None,
            last_hash: GENESIS.to_owned(),
            checkpoints: Vec::new(),
            signatures_checked: !opts.keys.is_empty(),
            signed_by: BTreeSet::new(),
            unsigned: 0,
        },
        history: VecDeque::with_capacity(HISTORY),
        wanted: HashMap::new(),
    };
    let own = dir.join(CHECKPOINT_FILE);
    let checkpoint_files = own
        .exists()
        .then_some(own)
        .into_iter()
        .chain(opts.checkpoints.iter().cloned());
    let mut checkpoints = Vec::new();
    for path in checkpoint_files {
        let cp = v.checkpoint(&path)?;
        v.wanted.insert(cp.seq, None);
        checkpoints.push((path, cp));
    }

    let unreadable = |e: io::Error| fault(dir, 0, None, Kind::Unreadable, e.to_string());
    let segments = chain::segments(dir).map_err(unreadable)?;
    let mut seals: BTreeMap<u64, PathBuf> =
        chain::seals(dir).map_err(unreadable)?.into_iter().collect();
    // Seals older than every segment here: segments archived elsewhere.
    let oldest = segments.first().map_or(u64::MAX, |(seq, _)| *seq);
    let kept = seals.split_off(&oldest);
    let archived = std::mem::replace(&mut seals, kept);
    v.archived(dir, &archived)?;
    v.summary.segments = segments.len();
    let mut newest = None;
    for (i, (first_seq, path)) in segments.iter().enumerate() {
        // A seal whose segment is gone, before this one.
        if let Some(&gone) = seals.keys().filter(|&&s| s < *first_seq).min() {
            return Err(gone_segment(dir, gone));
        }
        let span = v.segment(path, *first_seq)?;
        let after = segments.len() - 1 - i;
        match seals.remove(first_seq) {
            Some(seal) => v.seal(&seal, path, *first_seq, &span)?,
            None if after == 0 => {}
            // The writer starts the next segment before it writes the seal
            // of the one it closed; the next segment's first record, read
            // next, must follow this one's last.
            None if after == 1 && !seals.contains_key(&segments[i + 1].0) => {
                v.summary.awaiting_seal = Some(path.clone());
            }
            None => {
                return Err(fault(
                    path,
                    0,
                    Some(*first_seq),
                    Kind::MissingSeal,
                    "only the newest segment, and while the newest is open the one before it, may be unsealed: its seal was removed, or the segments after it were put there",
                ))
            }
        }
        newest = Some((path, span.lines));
    }
    if let Some(&gone) = seals.keys().min() {
        return Err(gone_segment(dir, gone));
    }

    let last_seq = v.summary.last_seq.unwrap_or(0);
    for (path, cp) in checkpoints {
        if last_seq < cp.seq {
            let (file, lines) = newest.map_or((dir, 0), |(p, n)| (p.as_path(), n));
            return Err(fault(
                file,
                lines + 1,
                Some(last_seq + 1),
                Kind::Truncated,
                format!(
                    "the log ends at seq {last_seq}, but checkpoint {} (written {}) vouches for seq {} in {}",
                    path.display(),
                    cp.ts,
                    cp.seq,
                    cp.segment
                ),
            ));
        }
        if let Some(Some(at)) = v.wanted.get(&cp.seq) {
            if at.hash != cp.hash {
                return Err(fault(
                    &at.file,
                    at.line,
                    Some(at.seq),
                    Kind::Edited,
                    format!(
                        "the log was rewritten: this record's hash differs from the one checkpoint {} vouches for",
                        path.display()
                    ),
                ));
            }
        }
        v.summary.checkpoints.push((path, cp.seq));
    }
    Ok(v.summary)
}

fn gone_segment(dir: &Path, first_seq: u64) -> VerifyError {
    fault(
        &dir.join(chain::segment_name(first_seq)),
        0,
        Some(first_seq),
        Kind::Deleted,
        "the segment is gone; its seal remains",
    )
}

/// Just enough of a line to see where it belongs, after the chain broke.
#[derive(Deserialize)]
struct Peek {
    seq: u64,
    prev: String,
}

impl Verifier<'_> {
    fn segment(&mut self, path: &Path, first_seq: u64) -> Result<Span, VerifyError> {
        let file =
            File::open(path).map_err(|e| fault(path, 0, None, Kind::Unreadable, e.to_string()))?;
        let mut reader = BufReader::new(file);
        let mut span = Span {
            lines: 0,
            prev: None,
            last_seq: None,
            last_hash: String::new(),
            min_ts: None,
            max_ts: None,
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = span.lines + 1;
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| fault(path, n, None, Kind::Unreadable, e.to_string()))?;
            if read == 0 {
                return Ok(span);
            }
            span.lines = n;
            if line.pop() != Some(b'\n') {
                return Err(fault(
                    path,
                    n,
                    None,
                    Kind::TornWrite,
                    "the last line is incomplete; the writer cuts it when it starts",
                ));
            }
            let link = check_line(&line).map_err(|e| match e {
                LineError::Malformed(why) => fault(path, n, None, Kind::Malformed, why),
                LineError::HashMismatch { seq } => fault(
                    path,
                    n,
                    Some(seq),
                    Kind::Edited,
                    "the record does not match its hash",
                ),
            })?;
            let expected = self.summary.last_seq.map_or(1, |s| s + 1);
            if link.seq != expected || link.prev != self.summary.last_hash {
                return Err(self.classify(path, n, &link, &mut reader));
            }
            if n == 1 && link.seq != first_seq {
                return Err(fault(
                    path,
                    0,
                    Some(link.seq),
                    Kind::Misnamed,
                    format!("the name says the segment starts at seq {first_seq}"),
                ));
            }
            if span.prev.is_none() {
                span.prev = Some(link.prev.clone());
            }
            if span.min_ts.as_ref().is_none_or(|t| link.ts < *t) {
                span.min_ts = Some(link.ts.clone());
            }
            if span.max_ts.as_ref().is_none_or(|t| link.ts > *t) {
                span.max_ts = Some(link.ts.clone());
            }
            span.last_seq = Some(link.seq);
            span.last_hash.clone_from(&link.hash);
            self.accept(path, n, link);
        }
    }

    /// Takes the seals of archived segments, oldest first, in place of
    /// their records: they must chain from the first record, each one
    /// starting where the one before ends, so that the log may start later
    /// only when seals vouch for everything before it.
    fn archived(&mut self, dir: &Path, seals: &BTreeMap<u64, PathBuf>) -> Result<(), VerifyError> {
        for (&first_seq, path) in seals {
            let expected = self.summary.last_seq.map_or(1, |s| s + 1);
            if first_seq > expected {
                return Err(fault(
                    &dir.join(chain::segment_name(expected)),
                    0,
                    Some(expected),
                    Kind::Deleted,
                    format!(
                        "records {expected} to {} are gone, and so are the seals that would vouch for them",
                        first_seq - 1
                    ),
                ));
            }
            let bad = |detail: String| fault(path, 0, Some(first_seq), Kind::BadSeal, detail);
            let signed = self.statement(path, Some(first_seq), Kind::BadSeal)?;
            let Statement::Seal(seal) = signed.statement else {
                return Err(bad("this is a checkpoint, not a seal".into()));
            };
            let name = chain::segment_name(first_seq);
            if seal.segment != name || seal.first_seq != first_seq {
                return Err(bad(format!(
                    "it seals {} from seq {}, not {name}",
                    seal.segment, seal.first_seq
                )));
            }
            if first_seq < expected || seal.prev != self.summary.last_hash {
                let before = match expected {
                    1 => "the start of the log: its prev is not 64 0s".to_owned(),
                    _ => format!(
                        "the seal before it, which ends at seq {}: its first seq or prev is not that seal's",
                        expected - 1
                    ),
                };
                return Err(bad(format!(
                    "its segment is archived, and it does not follow {before}"
                )));
            }
            if seal.last_seq < first_seq || seal.records != seal.last_seq + 1 - first_seq {
                return Err(bad("its seq range and record count do not agree".into()));
            }
            self.summary.last_seq = Some(seal.last_seq);
            self.summary.last_hash = seal.last_hash;
            let archived = self.summary.archived.get_or_insert(Archived {
                segments: 0,
                last_seq: 0,
            });
            archived.segments += 1;
            archived.last_seq = seal.last_seq;
        }
        Ok(())
    }

    fn accept(&mut self, path: &Path, line: u64, link: Link) {
        let pos = Pos {
            file: path.to_owned(),
            line,
            seq: link.seq,
            hash: link.hash,
        };
        if let Some(slot) = self.wanted.get_mut(&link.seq) {
            *slot = Some(pos.clone());
        }
        self.summary.records += 1;
        self.summary.last_seq = Some(link.seq);
        self.summary.last_hash.clone_from(&pos.hash);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(pos);
    }

    /// Line `n` of `path` is a good record on its own but does not follow
    /// the one before. What it links to, and what comes after it, tell
    /// what was done.
    fn classify(&self, path: &Path, n: u64, link: &Link, rest: &mut impl BufRead) -> VerifyError {
        let expected = self.summary.last_seq.map_or(1, |s| s + 1);
        let at = |kind, detail: String| fault(path, n, Some(link.seq), kind, detail);
        // It links to an earlier good record: the lines in between are not
        // the writer's.
        let linked = self.history.iter().rposition(|p| p.hash == link.prev);
        if let Some(j) = linked.filter(|&j| j + 1 < self.history.len()) {
            let first = &self.history[j + 1];
            if first.hash == link.hash {
                return at(
                    Kind::Inserted,
                    format!("a copy of line {} (seq {})", first.line, first.seq),
                );
            }
            return fault(
                &first.file,
                first.line,
                Some(first.seq),
                Kind::Inserted,
                format!(
                    "not written by the writer: record {} ({}:{n}) links past it, to seq {}",
                    link.seq,
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    self.history[j].seq
                ),
            );
        }
        let mut later = rest
            .lines()
            .map_while(Result::ok)
            .enumerate()
            .filter_map(|(i, l)| {
                let peek: Peek = serde_json::from_str(&l).ok()?;
                Some((n + 1 + i as u64, peek))
            });
        if link.seq > expected {
            return match later.find(|(_, p)| p.seq == expected) {
                Some((m, _)) => at(
                    Kind::Reordered,
                    format!("seq {expected} should come here; it is at line {m}"),
                ),
                None if link.seq == expected + 1 => {
                    at(Kind::Deleted, format!("record {expected} is missing"))
                }
                None => at(
                    Kind::Deleted,
                    format!("records {expected} to {} are missing", link.seq - 1),
                ),
            };
        }
        if link.seq < expected {
            return at(
                Kind::Inserted,
                format!("seq {} was already used; expected {expected}", link.seq),
            );
        }
        // The right seq, the wrong prev. If the next record links to this
        // one, it is the record before that was edited and given a new
        // hash; otherwise this one replaced the original.
        let rehashed = later.next().is_some_and(|(_, next)| next.prev == link.hash);
        match self.history.back().filter(|_| rehashed) {
            Some(before) => fault(
                &before.file,
                before.line,
                Some(before.seq),
                Kind::Edited,
                format!(
                    "its hash was recomputed after an edit: record {} still links to the original",
                    link.seq
                ),
            ),
            None => at(
                Kind::Edited,
                "the record does not link to the one before it: it was replaced".into(),
            ),
        }
    }

    fn seal(
        &mut self,
        path: &Path,
        segment: &Path,
        first_seq: u64,
        span: &Span,
    ) -> Result<(), VerifyError> {
        let bad = |detail: String| fault(path, 0, Some(first_seq), Kind::BadSeal, detail);
        let signed = self.statement(path, Some(first_seq), Kind::BadSeal)?;
        let Statement::Seal(seal) = &signed.statement else {
            return Err(bad("this is a checkpoint, not a seal".into()));
        };
        let name = segment.file_name().unwrap_or_default().to_string_lossy();
        if seal.segment != name {
            return Err(bad(format!("it seals {}, not {name}", seal.segment)));
        }
        let last_seq = span.last_seq.unwrap_or(first_seq.saturating_sub(1));
        if last_seq < seal.last_seq {
            return Err(fault(
                segment,
                span.lines + 1,
                Some(last_seq + 1),
                Kind::Truncated,
                format!(
                    "the segment ends at seq {last_seq}; its seal vouches for seq {}",
                    seal.last_seq
                ),
            ));
        }
        if last_seq > seal.last_seq {
            let seq = seal.last_seq + 1;
            return Err(fault(
                segment,
                seq - first_seq + 1,
                Some(seq),
                Kind::Inserted,
                format!(
                    "appended after the seal, which ends at seq {}",
                    seal.last_seq
                ),
            ));
        }
        if span.last_hash != seal.last_hash {
            return Err(fault(
                segment,
                0,
                Some(first_seq),
                Kind::Edited,
                format!(
                    "the records were rewritten: the last hash is not the one its seal vouches for (seq {first_seq} to {last_seq})"
                ),
            ));
        }
        let matches = seal.first_seq == first_seq
            && span.prev.as_deref() == Some(seal.prev.as_str())
            && seal.records == last_seq + 1 - first_seq
            && span.min_ts.as_deref() == Some(seal.min_ts.as_str())
            && span.max_ts.as_deref() == Some(seal.max_ts.as_str());
        if !matches {
            return Err(bad(
                "its first seq, prev, record count or time range is not its segment's".into(),
            ));
        }
        self.summary.sealed += 1;
        Ok(())
    }

    fn checkpoint(&mut self, path: &Path) -> Result<Checkpoint, VerifyError> {
        let signed = self.statement(path, None, Kind::BadCheckpoint)?;
        match signed.statement {
            Statement::Checkpoint(cp) => Ok(cp),
            Statement::Seal(_) => Err(fault(
                path,
                0,
                None,
                Kind::BadCheckpoint,
                "this is a seal, not a checkpoint",
            )),
        }
    }

    /// Reads a seal (of the segment from `seq`) or checkpoint and checks its
    /// signature; `bad` is what a broken one is called.
    fn statement(
        &mut self,
        path: &Path,
        seq: Option<u64>,
        bad: Kind,
    ) -> Result<Signed, VerifyError> {
        let at = |kind, detail: String| fault(path, 0, seq, kind, detail);
        let signed = seal::read(path).map_err(|e| match e {
            ReadError::Io(e) => at(Kind::Unreadable, e.to_string()),
            ReadError::Malformed(why) => at(bad, why),
        })?;
        signed.check(self.keys).map_err(|e| match e {
            SignatureError::Unsigned => at(bad, "unsigned, and --public-key was given".into()),
            SignatureError::UnknownKey(id) => at(
                Kind::UnknownKey,
                format!("signed by key {id}, which is none of the --public-key files"),
            ),
            SignatureError::Bad(why) => at(bad, why),
        })?;
        match signed.statement.key_id() {
            Some(id) => {
                self.summary.signed_by.insert(id.to_owned());
            }
            None => self.summary.unsigned += 1,
        }
        Ok(signed)
    }
}
