//! The hash chain: how a record becomes a line and how a line is checked.
//! The rules are in the `audit` module documentation; this is their one
//! implementation.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::record::{timestamp, RecordMut};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What follows the canonical bytes' closing brace: `,"hash":"` + 64 hex
/// digits + `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
const SUFFIX_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// A record serialized with `seq` 0 and an empty `prev`, waiting for its
/// place in the chain. Callers serialize in their own tasks, in parallel,
/// so that the one writer only splices in `seq` and `prev` and hashes.
///
/// Public only for the benches, which time exactly this code.
#[doc(hidden)]
pub struct Unchained {
    json: Vec<u8>,
    /// Where the `0` of `seq` is.
    seq_at: usize,
    /// For the segment's seal.
    pub(crate) ts: String,
}

/// How every record's JSON ends before chaining: `prev` is its last member.
const EMPTY_PREV: &[u8] = b",\"prev\":\"\"}";

/// Room from the start for a typical decision record (a line of about 900
/// bytes, 140 of them `prev` and `hash`), so that encoding one does not
/// reallocate.
const CAPACITY: usize = 1024;

impl Unchained {
    /// Fills in the writer's fields that do not depend on the record's
    /// place in the chain: `instance`, and `ts` when the caller left it
    /// empty (the time of this call). `hash` is never part of the
    /// canonical bytes.
    pub fn new<'a>(mut rec: RecordMut<'_, 'a>, instance: &'a str) -> Unchained {
        let fields = rec.chain_fields();
        *fields.seq = 0;
        if fields.ts.is_empty() {
            *fields.ts = timestamp(OffsetDateTime::now_utc()).into();
        }
        *fields.instance = instance.into();
        *fields.prev = "".into();
        *fields.hash = "".into();
        let mut json = Vec::with_capacity(CAPACITY);
        let seq_at = rec.encode(&mut json);
        debug_assert!(json[seq_at] == b'0' && json.ends_with(EMPTY_PREV));
        // The record is spent once encoded: its `ts` moves, uncopied.
        let ts = std::mem::take(rec.chain_fields().ts).into_owned();
        Unchained { json, seq_at, ts }
    }

    /// Appends the line of this record as number `seq` after `prev`,
    /// newline included, and returns its hash as hex digits.
    pub fn append_line(&self, out: &mut Vec<u8>, seq: u64, prev: &str) -> [u8; 64] {
        let start = out.len();
        out.extend_from_slice(&self.json[..self.seq_at]);
        out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        // Up to and including `"prev":"`.
        out.extend_from_slice(&self.json[self.seq_at + 1..self.json.len() - 2]);
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(b"\"}");
        let digest = Sha256::new()
            .chain_update(prev)
            .chain_update(&out[start..])
            .finalize();
        let mut hash = [0; 64];
        hex::encode_to_slice(digest, &mut hash).expect("64 hex digits hold 32 bytes");
        out.pop();
        out.extend_from_slice(HASH_MEMBER);
        out.extend_from_slice(&hash);
        out.extend_from_slice(b"\"}\n");
        hash
    }
}

/// A record line whose hash matches its own `prev` and canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub seq: u64,
    pub ts: String,
    pub prev: String,
    pub hash: String,
}

#[derive(Deserialize)]
struct LinkFields<'a> {
    seq: u64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    prev: Cow<'a, str>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineError {
    /// Not a record line at all (torn, garbage, or a JSON object without
    /// the fields every record has).
    Malformed(String),
    /// A well-formed record whose hash is not that of its bytes: it was
    /// altered after it was written.
    HashMismatch { seq: u64 },
}

/// Checks one line (without its newline) on its own: its shape, and that
/// its hash is SHA-256 over its `prev` and canonical bytes.
pub(crate) fn check_line(line: &[u8]) -> Result<Link, LineError> {
    let malformed = |why: &str| LineError::Malformed(why.to_owned());
    let n = line.len();
    if n < SUFFIX_LEN + 2
        || !line.ends_with(b"\"}")
        || &line[n - SUFFIX_LEN..n - SUFFIX_LEN + HASH_MEMBER.len()] != HASH_MEMBER
    {
        return Err(malformed("does not end with a \"hash\" member"));
    }
    let hash = &line[n - 66..n - 2];
    if !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed("hash is not 64 lowercase hex digits"));
    }
    let fields: LinkFields = serde_json::from_slice(line)
        .map_err(|e| LineError::Malformed(format!("not a record: {e}")))?;
    let computed = Sha256::new()
        .chain_update(fields.prev.as_bytes())
        .chain_update(&line[..n - SUFFIX_LEN])
        .chain_update(b"}")
        .finalize();
    let mut computed_hex = [0; 64];
    hex::encode_to_slice(computed, &mut computed_hex).expect("64 hex digits hold 32 bytes");
    if computed_hex != hash {
        return Err(LineError::HashMismatch { seq: fields.seq });
    }
    Ok(Link {
        seq: fields.seq,
        ts: fields.ts.into_owned(),
        prev: fields.prev.into_owned(),
        // Checked above to be ASCII hex.
        hash: String::from_utf8_lossy(hash).into_owned(),
    })
}

/// `segment-<first seq, 20 digits>.jsonl`: the name sorts as the number.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("segment-{first_seq:020}.jsonl")
}

/// The segments in `dir`, oldest first, with the first seq their names give.
pub(crate) fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    numbered(dir, ".jsonl")
}

/// The seals in `dir` (`segment-<seq>.seal.json`), by the first seq of
/// their segments.
pub(crate) fn seals(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    numbered(dir, ".seal.json")
}

fn numbered(dir: &Path, suffix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_prefix("segment-")?.strip_suffix(suffix))
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(seq) = seq {
            found.push((seq, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}
