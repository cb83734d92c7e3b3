//! The audit trail (DESIGN §6): one JSON Lines record per decision and per
//! completed request, hash-chained so that an edited, deleted, inserted,
//! reordered or truncated record shows.
//!
//! # Files
//!
//! The log is a directory of segments, `segment-<seq of the first record,
//! 20 digits>.jsonl`, each a sequence of lines; a line is one record
//! followed by `\n`. `seq` starts at 1 and goes up by one per record,
//! across segments; a segment is closed once it holds `segment_bytes`.
//! `writer.lock` is locked by the one writer of the log.
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
//! with serde_json's compact form: no whitespace, non-ASCII as raw UTF-8,
//! escapes only for `"`, `\` and control characters.) The line is the
//! canonical bytes with `,"hash":"<hash>"` put before the closing `}`.
//!
//! # Writing
//!
//! One writer per log: see [`writer`]. After a crash the writer cuts a
//! torn last line and appends a `recovery` record that says what it cut.

pub mod chain;
pub mod cli;
pub mod record;
pub mod writer;

#[cfg(test)]
mod tests;

pub use chain::{verify_chain, Problem, VerifyError, VerifySummary, GENESIS};
pub use record::{
    hash_key, minimize_ip, timestamp, ClientIpMode, CompletionRecord, DecisionRecord,
    DestinationEntry, Endpoint, Record, RecoveryRecord, SourceEntry,
};
pub use writer::{
    start, AuditConfig, AuditHandle, AuditStats, AuditUnavailable, FsyncMode, Written,
};
