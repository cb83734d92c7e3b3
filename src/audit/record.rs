//! The records of the audit trail (DESIGN §6) and the privacy helpers that
//! fill some of their fields.
//!
//! Plain strings and numbers only: the policy and proxy modules map their
//! decisions into these, so the log format does not move when their
//! internals do. The strings are borrowed while the gate builds a record,
//! from the rule snapshot and the request it has at hand, since the record
//! is encoded before either goes; a record read back owns them.
//! Every field is always written; an absent value is `null`. Field order is
//! declaration order, and it is part of the canonical form (see the module
//! documentation of `audit`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

/// A value from a fixed set of words (`egress`, `allow`, …): borrowed
/// when the gate builds a record, so that none costs an allocation on the
/// request path; owned when a record is read back.
pub type Word = Cow<'static, str>;

/// Text a record borrows from what the gate holds while it builds the
/// record (the rule snapshot, the request, the settings), and owns when a
/// record is read back: the record is encoded before any of it is dropped.
pub type Text<'a> = Cow<'a, str>;

/// One line of the log. The variant is written first, as `event`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Record<'a> {
    /// Boxed: four times the size of the others, and tools that read the
    /// log hold many records.
    Decision(Box<DecisionRecord<'a>>),
    Completion(CompletionRecord<'a>),
    Recovery(RecoveryRecord<'a>),
}

/// Written before anything is forwarded. The audit handle fills `seq`,
/// `instance`, `prev` and `hash`, and `ts` when it is left empty (with the
/// time the record is handed to it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionRecord<'a> {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds: see [`timestamp`].
    pub ts: Text<'a>,
    pub instance: Text<'a>,
    pub request_id: Text<'a>,
    /// `null` for a bucket that no tenant owns.
    pub tenant: Option<Text<'a>>,
    pub op: Word,
    /// `egress`, `ingress`, `copy`, `replication` or `control`.
    pub direction: Word,
    pub bucket: Option<Text<'a>>,
    /// The object key, or its keyed hash (see [`hash_key`]).
    pub key: Option<Text<'a>>,
    /// A copy's source.
    pub source: Option<SourceEntry<'a>>,
    /// Buckets a replication (or other configuration write) names.
    pub destinations: Option<Vec<DestinationEntry<'a>>>,
    pub category: Option<Text<'a>>,
    /// `classify`, `bucket`, `tenant_default`, `declared`, `stored` or
    /// `max_category`.
    pub category_source: Option<Word>,
    pub from: Option<Endpoint<'a>>,
    pub to: Option<Endpoint<'a>>,
    /// As `audit.client_ip` says: see [`minimize_ip`].
    pub client_ip: Option<Text<'a>>,
    /// `allow`, `deny` or `monitor-deny`.
    pub decision: Word,
    pub reason: Word,
    pub basis: Option<Text<'a>>,
    pub basis_kind: Option<Word>,
    /// The tenant's mode, `enforce` or `monitor`.
    pub mode: Option<Word>,
    /// The HTTP status of a denial.
    pub status: Option<u16>,
    pub rules_version: Text<'a>,
    /// The GeoIP database's build epoch.
    pub geoip_build: Option<u64>,
    pub prev: Text<'a>,
    /// Never part of the canonical form: empty until the writer sets it.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub hash: Text<'a>,
}

/// Written when a forwarded request ends (same `request_id`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CompletionRecord<'a> {
    pub seq: u64,
    pub ts: Text<'a>,
    pub instance: Text<'a>,
    pub request_id: Text<'a>,
    /// `complete`, `client_aborted`, `upstream_error` or `recheck_denied`.
    pub outcome: Text<'a>,
    pub status: u16,
    /// Decoded body bytes.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// After the recheck (DESIGN §2 phase 6).
    pub category: Option<Text<'a>>,
    pub prev: Text<'a>,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub hash: Text<'a>,
}

impl CompletionRecord<'_> {
    /// The record with nothing borrowed, for a task of its own.
    pub fn into_owned(self) -> CompletionRecord<'static> {
        let own = |t: Text<'_>| Text::Owned(t.into_owned());
        CompletionRecord {
            seq: self.seq,
            ts: own(self.ts),
            instance: own(self.instance),
            request_id: own(self.request_id),
            outcome: own(self.outcome),
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_ms: self.duration_ms,
            category: self.category.map(own),
            prev: own(self.prev),
            hash: own(self.hash),
        }
    }
}

/// Written by the writer itself after it cut a torn tail off the log at
/// start-up, so that the cut is on the record and the chain goes on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryRecord<'a> {
    pub seq: u64,
    pub ts: Text<'a>,
    pub instance: Text<'a>,
    pub cut_bytes: u64,
    pub reason: Text<'a>,
    pub prev: Text<'a>,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub hash: Text<'a>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceEntry<'a> {
    pub bucket: Text<'a>,
    pub region: Option<Text<'a>>,
    pub jurisdiction: Option<Text<'a>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationEntry<'a> {
    pub bucket: Text<'a>,
    pub prefix: Option<Text<'a>>,
    pub region: Option<Text<'a>>,
    pub jurisdiction: Option<Text<'a>>,
    pub decision: Word,
    pub reason: Word,
    pub basis: Option<Text<'a>>,
}

/// One end of a transfer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub region: Option<Text<'a>>,
    pub country: Option<Text<'a>>,
    pub jurisdiction: Option<Text<'a>>,
    /// `peer`, `network`, `geoip`, `bucket` or `instance`; `null` when
    /// unknown.
    pub via: Option<Word>,
    pub peer: Option<Text<'a>>,
}

/// The fields that the writer owns: set on every record it chains.
pub(crate) struct ChainFields<'r, 'a> {
    pub seq: &'r mut u64,
    pub ts: &'r mut Text<'a>,
    pub instance: &'r mut Text<'a>,
    pub prev: &'r mut Text<'a>,
    pub hash: &'r mut Text<'a>,
}

/// A record as the writer fills in and encodes it, borrowed: a decision's
/// record, the largest, is encoded where the request built it, neither
/// boxed nor moved into the future that waits for its write.
pub enum RecordMut<'r, 'a> {
    Decision(&'r mut DecisionRecord<'a>),
    Completion(&'r mut CompletionRecord<'a>),
    Recovery(&'r mut RecoveryRecord<'a>),
}

#[cfg(test)]
impl<'a> Record<'a> {
    pub(crate) fn as_mut(&mut self) -> RecordMut<'_, 'a> {
        match self {
            Record::Decision(r) => RecordMut::Decision(r),
            Record::Completion(r) => RecordMut::Completion(r),
            Record::Recovery(r) => RecordMut::Recovery(r),
        }
    }
}

impl<'a> RecordMut<'_, 'a> {
    pub(crate) fn chain_fields(&mut self) -> ChainFields<'_, 'a> {
        let (seq, ts, instance, prev, hash) = match self {
            RecordMut::Decision(r) => (
                &mut r.seq,
                &mut r.ts,
                &mut r.instance,
                &mut r.prev,
                &mut r.hash,
            ),
            RecordMut::Completion(r) => (
                &mut r.seq,
                &mut r.ts,
                &mut r.instance,
                &mut r.prev,
                &mut r.hash,
            ),
            RecordMut::Recovery(r) => (
                &mut r.seq,
                &mut r.ts,
                &mut r.instance,
                &mut r.prev,
                &mut r.hash,
            ),
        };
        ChainFields {
            seq,
            ts,
            instance,
            prev,
            hash,
        }
    }
}

/// `2026-03-01T12:34:56.789Z`: RFC 3339 in UTC with milliseconds, the one
/// form every `ts` has, so timestamps sort as strings.
pub fn timestamp(t: OffsetDateTime) -> String {
    thread_local! {
        /// The last second formatted on this thread, up to its `:SS`: two
        /// records per request, and thousands of requests a second, share it.
        static SECOND: RefCell<(Option<i64>, String)> = const { RefCell::new((None, String::new())) };
    }
    let t = t.to_offset(time::UtcOffset::UTC);
    let second = t.unix_timestamp();
    SECOND.with_borrow_mut(|(at, prefix)| {
        if *at != Some(second) {
            prefix.clear();
            up_to_the_second(prefix, t);
            *at = Some(second);
        }
        let mut s = String::with_capacity(prefix.len() + 5);
        s.push_str(prefix);
        s.push('.');
        zero_padded(&mut s, t.millisecond().into(), 3);
        s.push('Z');
        s
    })
}

fn up_to_the_second(s: &mut String, t: OffsetDateTime) {
    // By hand rather than `format!`: `format!` pads each number through
    // the generic formatting machinery.
    let year = t.year();
    if year < 0 {
        // As `{:04}` pads a negative number: the sign counts in the width.
        s.push('-');
        zero_padded(s, year.unsigned_abs(), 3);
    } else {
        zero_padded(s, year.unsigned_abs(), 4);
    }
    for (sep, n) in [
        ('-', u32::from(u8::from(t.month()))),
        ('-', t.day().into()),
        ('T', t.hour().into()),
        (':', t.minute().into()),
        (':', t.second().into()),
    ] {
        s.push(sep);
        zero_padded(s, n, 2);
    }
}

/// `n` in at least `width` digits, zeros in front.
fn zero_padded(s: &mut String, n: u32, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    s.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    s.push_str(digits);
}

/// `audit.client_ip`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ClientIpMode {
    Full,
    /// To the /24 (IPv4) or /48 (IPv6) network: enough to see where a
    /// request came from, not who sent it.
    #[default]
    Truncate,
    /// A keyed HMAC: the same client can be followed through the log, and
    /// nobody without the key can test a guess of who it was.
    Hash,
}

/// The client address as `mode` says. IPv4-mapped IPv6 addresses count as
/// IPv4. `Truncate` writes the network (`203.0.113.0/24`) so the value
/// cannot be mistaken for a host; `Hash` is the lowercase hex
/// HMAC-SHA256, under `key`, of the address as text (`203.0.113.7`).
pub fn minimize_ip(ip: IpAddr, mode: ClientIpMode, key: &[u8]) -> String {
    let ip = ip.to_canonical();
    match mode {
        ClientIpMode::Full => ip.to_string(),
        ClientIpMode::Truncate => match ip {
            // By hand: `Display` for the network took more instructions
            // than the rest of the decision record.
            IpAddr::V4(a) => {
                let mut s = String::with_capacity(18);
                for octet in &a.octets()[..3] {
                    s.push_str(itoa::Buffer::new().format(*octet));
                    s.push('.');
                }
                s.push_str("0/24");
                s
            }
            IpAddr::V6(a) => Ipv6Net::new_assert(a, 48).trunc().to_string(),
        },
        ClientIpMode::Hash => hmac_hex(key, ip.to_string().as_bytes()),
    }
}

/// An object key replaced by the lowercase hex HMAC-SHA256 of its bytes
/// under `hmac_key`: records of the same object still line up.
pub fn hash_key(key: &str, hmac_key: &[u8]) -> String {
    hmac_hex(hmac_key, key.as_bytes())
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}
