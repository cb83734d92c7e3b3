//! Seals and checkpoints: signed statements about the chain, in the file
//! format the `audit` module documentation gives.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};

use super::keys::{KeyRing, Signer};

/// The one checkpoint of a log, replaced as the log grows.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// What follows the signed bytes (without their closing brace).
const SIGNATURE_MEMBER: &[u8] = b",\"signature\":";

/// The members of a seal or checkpoint file, in file order; `kind` comes
/// first, `signature` (not part of these) last.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Statement {
    Seal(Seal),
    Checkpoint(Checkpoint),
}

/// Closes a segment: what it holds, so that a cut, an addition or a
/// rewrite of it shows even where the chain alone would not.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub instance: String,
    /// The segment's file name.
    pub segment: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    /// The earliest and the latest `ts` of its records.
    pub min_ts: String,
    pub max_ts: String,
    /// The `prev` of its first record: the last hash of the segment before.
    pub prev: String,
    /// The `hash` of its last record.
    pub last_hash: String,
    pub sealed_at: String,
    /// `null` when unsigned.
    pub key_id: Option<String>,
}

/// The newest record on disk when it was written: a log found shorter, or
/// different at that record, was cut or rewritten.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub instance: String,
    /// The file name of the segment that holds `seq`.
    pub segment: String,
    pub seq: u64,
    pub hash: String,
    /// When the checkpoint was written.
    pub ts: String,
    pub key_id: Option<String>,
}

impl Statement {
    pub(crate) fn key_id(&self) -> Option<&str> {
        match self {
            Statement::Seal(s) => s.key_id.as_deref(),
            Statement::Checkpoint(c) => c.key_id.as_deref(),
        }
    }
}

/// A sealed segment that may be archived off the host and then deleted
/// here: see [`archivable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub segment: PathBuf,
    /// Its seal, which must stay: `verify` reads it in place of the
    /// segment.
    pub seal: PathBuf,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// The segments of the log in `dir` that may be archived and then deleted
/// here, oldest first; their seals must stay. `verify` then reads the
/// seals in place of those segments, so what it may accept is bounded:
///
/// - only a run of the oldest segments may be gone, each with its seal
///   here, the seals chained from seq 1 to the first segment that is
///   here; a segment gone in the middle is still an error. The list is
///   therefore that run: it stops at the first segment without a readable
///   seal of its own, or whose seal does not end where the next segment
///   starts.
/// - the newest segment that holds records is never listed, nor any after
///   it: the writer picks up the chain from it when it starts, and it may
///   be the open one.
///
/// The writer never touches a sealed segment again, so this may run
/// beside it; a segment sealed meanwhile is listed next time.
pub fn archivable(dir: &Path) -> io::Result<Vec<SealedSegment>> {
    let segments = super::chain::segments(dir)?;
    // The newest segment with records; with none, nothing is listed.
    let mut tip = 0;
    for (i, (_, path)) in segments.iter().enumerate().rev() {
        if fs::metadata(path)?.len() > 0 {
            tip = i;
            break;
        }
    }
    let mut found = Vec::new();
    // `skip(1)`: an empty log has no `segments[1..]`.
    for pair in segments[..tip].iter().zip(segments.iter().skip(1)) {
        let ((first_seq, segment), (next_seq, _)) = pair;
        let seal = seal_path(segment);
        let Ok(Signed {
            statement: Statement::Seal(s),
            ..
        }) = read(&seal)
        else {
            break;
        };
        let name = segment.file_name().and_then(|n| n.to_str());
        if s.first_seq != *first_seq
            || name != Some(s.segment.as_str())
            || s.last_seq + 1 != *next_seq
        {
            break;
        }
        found.push(SealedSegment {
            segment: segment.clone(),
            seal,
            first_seq: s.first_seq,
            last_seq: s.last_seq,
        });
    }
    Ok(found)
}

/// `segment-<seq>.seal.json` beside `segment-<seq>.jsonl`.
pub(crate) fn seal_path(segment: &Path) -> PathBuf {
    segment.with_extension("seal.json")
}

/// Writes `statement` to `path`, signed by `signer` (whose id it must
/// carry), so that it is either whole or absent: a temporary file, fsynced,
/// renamed over `path`, and the directory fsynced.
pub(crate) fn write(path: &Path, statement: &Statement, signer: Option<&Signer>) -> io::Result<()> {
    debug_assert_eq!(statement.key_id(), signer.map(|s| s.id.as_str()));
    // Plain structs of strings and numbers: serializing cannot fail.
    let mut bytes = serde_json::to_vec(statement).expect("statements serialize to JSON");
    let signature = signer.map(|s| hex::encode(s.key.sign(&bytes).to_bytes()));
    bytes.pop();
    bytes.extend_from_slice(SIGNATURE_MEMBER);
    match signature {
        Some(sig) => {
            bytes.push(b'"');
            bytes.extend_from_slice(sig.as_bytes());
            bytes.push(b'"');
        }
        None => bytes.extend_from_slice(b"null"),
    }
    bytes.extend_from_slice(b"}\n");

    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    });
    if written.is_err() {
        // On a full disk, a half-written file would only take more room.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A statement as read back, with what its signature covers.
pub(crate) struct Signed {
    pub statement: Statement,
    signed: Vec<u8>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(flatten)]
    statement: Statement,
    signature: Option<String>,
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    Malformed(String),
}

pub(crate) fn read(path: &Path) -> Result<Signed, ReadError> {
    let bytes = fs::read(path).map_err(ReadError::Io)?;
    let malformed = |why: &str| ReadError::Malformed(why.to_owned());
    let line = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| malformed("does not end with a newline"))?;
    let at = line
        .windows(SIGNATURE_MEMBER.len())
        .rposition(|w| w == SIGNATURE_MEMBER)
        .ok_or_else(|| malformed("has no \"signature\" member"))?;
    let envelope: Envelope =
        serde_json::from_slice(line).map_err(|e| ReadError::Malformed(e.to_string()))?;
    let mut signed = line[..at].to_vec();
    signed.push(b'}');
    Ok(Signed {
        statement: envelope.statement,
        signed,
        signature: envelope.signature,
    })
}

/// How a statement's signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// Keys were given, and this statement carries no signature.
    Unsigned,
    UnknownKey(String),
    Bad(String),
}

impl Signed {
    /// With no keys there is nothing to check a signature against: the
    /// caller says so rather than this passing it.
    pub(crate) fn check(&self, keys: &KeyRing) -> Result<(), SignatureError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (Some(id), Some(signature)) = (self.statement.key_id(), &self.signature) else {
            return Err(SignatureError::Unsigned);
        };
        let key = keys
            .get(id)
            .ok_or_else(|| SignatureError::UnknownKey(id.to_owned()))?;
        let bytes: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignatureError::Bad("signature is not 128 hex digits".into()))?;
        key.verify_strict(&self.signed, &Signature::from_bytes(&bytes))
            .map_err(|_| {
                SignatureError::Bad(format!(
                    "signature does not match its contents under key {id}"
                ))
            })
    }
}
