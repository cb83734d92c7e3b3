//! The audit trail (DESIGN §6): one JSON Lines record per decision and per
//! completed request, hash-chained so that an edited, deleted, inserted,
//! reordered or truncated record shows.
//!
//! # Files
//!
//! The log is a directory of segments, `segment-<seq of the first record,
//! 20 digits>.jsonl`, each a sequence of lines; a line is one record
//! followed by `\n`. `seq` starts at 1 and goes up by one per record,
//! across segments. A segment is closed once it holds `segment_bytes`, or
//! once its first record is `segment_max_age` old, by writing its seal,
//! `segment-<same digits>.seal.json`, and when the writer shuts down; only
//! the newest segment may be unsealed (the open one while the writer runs,
//! or after a crash), and while it is, the one before it: the writer
//! starts the next segment before the closed one's seal is written, and
//! after a crash the next start writes it. The oldest segments may be archived off the
//! host and deleted here, their seals staying: see *Archiving*.
//! `checkpoint.json` vouches for the newest record on disk.
//! `writer.lock` is locked by the one writer of the log. `rules/<version>/`
//! holds each rule set that was in force, as its `*.toml` files, under the
//! `rules_version` its records name: see [`rulesets`].
//!
//! # Canonical form and chain
//!
//! A line is a JSON object whose members are, in order, `event`, the
//! record's fields in the order of DESIGN §6 (see [`record`]), ending with
//! `prev` and then `hash`. Every member is always present; absent values
//! are `null`.
//!
//! - The **canonical bytes** of a record are its line without the trailing
//!   `\n` and without the final `,"hash":"…"` member: everything before
//!   the last `,"hash":"`, followed by `}`.
//! - `hash` is the lowercase hex SHA-256 of `prev` (64 ASCII hex digits)
//!   followed by the canonical bytes.
//! - `prev` is the `hash` of the record before; for the first record, 64
//!   `0`s. A new segment's first record links to the previous segment's
//!   last.
//!
//! A checker needs only these byte rules and a JSON parser for `seq` and
//! `prev`; it never re-serializes. (The writer produces the canonical bytes
//! in serde_json's compact form: no whitespace, non-ASCII as raw UTF-8,
//! escapes only for `"`, `\` and control characters.) The line is the
//! canonical bytes with `,"hash":"<hash>"` put before the closing `}`.
//!
//! # Seals and checkpoints
//!
//! Each is a file of one line, a JSON object followed by `\n`, written to a
//! temporary name and renamed into place, so it is whole or absent. Its
//! first member is `kind`; its last is `signature`.
//!
//! A **seal** (`"kind":"seal"`) has, in this order: `instance`, `segment`
//! (the segment's file name), `first_seq`, `last_seq`, `records` (their
//! count), `min_ts` and `max_ts` (the earliest and latest `ts` of its
//! records, compared as strings), `prev` (the `prev` of its first record),
//! `last_hash` (the `hash` of its last), `sealed_at`, `key_id`,
//! `signature`.
//!
//! A **checkpoint** (`"kind":"checkpoint"`) has `instance`, `segment` (the
//! file name of the segment holding the record), `seq`, `hash` (that
//! record's), `ts` (when the checkpoint was written), `key_id`,
//! `signature`. It is replaced every `checkpoint_interval` while records
//! come in, and when the writer stops. A copy kept off the host shows a log
//! that was cut back to before `seq`, or rewritten up to it: `verify
//! --checkpoint FILE`.
//!
//! Both vouch only for records already fsynced, whatever `fsync` says, so
//! no crash or power cut can leave one ahead of the log.
//!
//! - The **signed bytes** are the line without its `\n`, up to its last
//!   `,"signature":`, followed by `}`.
//! - `signature` is the Ed25519 signature (RFC 8032, not pre-hashed) of
//!   the signed bytes, as 128 lowercase hex digits.
//! - `key_id` names the key: the first 16 lowercase hex digits of SHA-256
//!   over the 32 bytes of the Ed25519 public key. Keys rotate; a verifier
//!   given several picks the one named.
//! - Without `audit.signing_key` both `key_id` and `signature` are `null`.
//!   Unsigned seals and checkpoints still show a segment or a tail that was
//!   cut by accident, but not one cut by someone who could also rewrite
//!   them; `verify --public-key` refuses them.
//!
//! The members are serialized as the records are (compact, in this
//! order), but a checker needs only the byte rule and a JSON parser.
//!
//! # Verification
//!
//! `verify` ([`verify()`]) checks every record's hash and link, every seal
//! against its segment (a segment gone while its seal remains, records
//! missing from its end or added after it, a rewritten segment), that only
//! the newest segment is unsealed, and each checkpoint against the log. It
//! names the first problem by file, line and seq, and says what was most
//! likely done: see [`Kind`]. What the chain cannot show without a
//! checkpoint kept elsewhere is a log cut back at the end of a segment
//! along with everything after it.
//!
//! # Archiving
//!
//! Segments are archived off the host and deleted here, oldest first, but
//! their seals stay (a few hundred bytes each). [`archivable`] lists the
//! segments that may go. `verify` then reads the seals in the place of
//! the segments that are gone: the seals older than every segment here
//! must chain from seq 1 (the first's `prev` is 64 `0`s) with no gap, each
//! `first_seq` one past the `last_seq` before and each `prev` the
//! `last_hash` before, checked against their signatures when keys are
//! given; the first segment here must continue from the last of them. It
//! says "archived: seq 1 to N in K segment(s), sealed, not read here".
//! Still an error: a gone segment after one that is here (its seal
//! remaining, or not), and a log that starts after seq 1 without a seal
//! for every segment before. The archived segments themselves are
//! checked where they are kept: `verify` on a directory that holds them
//! and their seals from seq 1.
//!
//! [`archive`] ships sealed segments with their seals to an S3 bucket,
//! under Object Lock where the bucket has it, and deletes the data of
//! those [`archivable`] lists once their uploads are confirmed.
//!
//! # Reading
//!
//! [`query`] selects records, [`replay`] re-decides them under other rules,
//! [`report`] sums a period up for an auditor. All stream the log.
//!
//! # Writing
//!
//! One writer per log: see [`writer`]. A shutdown seals the open segment
//! and the next start opens a new one, its first record linked to the
//! sealed one's last. After a crash the writer cuts a torn last line of
//! the still open segment, appends a `recovery` record that says what it
//! cut, and goes on in that segment.

pub mod archive;
pub mod chain;
pub mod cli;
mod encode;
pub mod keys;
pub mod query;
pub mod record;
pub mod replay;
pub mod report;
pub mod rulesets;
pub mod seal;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod tests;

pub use chain::GENESIS;
pub use keys::{key_id, keygen, KeyFiles, KeyRing};
pub use record::{
    hash_key, minimize_ip, timestamp, ClientIpMode, CompletionRecord, DecisionRecord,
    DestinationEntry, Endpoint, Record, RecordMut, RecoveryRecord, SourceEntry,
};
pub use rulesets::{KeepError, RuleStore};
pub use seal::{archivable, Checkpoint, Seal, SealedSegment, Statement, CHECKPOINT_FILE};
pub use verify::{verify, Archived, Kind, VerifyError, VerifyOptions, VerifySummary};
pub use writer::{
    start, AuditConfig, AuditHandle, AuditStats, AuditUnavailable, FsyncMode, Latencies, Written,
    WRITE_LATENCY_BOUNDS,
};
