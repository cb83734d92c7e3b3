//! Records written as JSON by hand, for the request path: the bytes are
//! serde_json's compact form of the same record (its `Serialize` derive
//! stays, for the tools and for the test that holds the two equal), but
//! written straight into one buffer, without serde's per-member dispatch
//! or its growing of a fresh `Vec`.
//!
//! Members are written in declaration order, `null` for `None`; strings
//! are escaped as serde_json escapes them; `hash` is left out when empty.

use std::borrow::Cow;

use super::record::{DestinationEntry, Endpoint, RecordMut, SourceEntry};

/// A value as serde_json writes it.
pub(crate) trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        let bytes = self.as_bytes();
        // Almost no value needs an escape: one pass without an early exit,
        // which the compiler vectorizes, then one copy.
        if bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
            escape(bytes, out);
        } else {
            out.extend_from_slice(bytes);
        }
        out.push(b'"');
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    // Copies the runs between escapes whole; every escaped byte is ASCII,
    // so a run never splits a UTF-8 sequence.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escape);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

const HEX: [u8; 16] = *b"0123456789abcdef";

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
}

impl Encode for Cow<'_, str> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl Encode for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Encode for u16 {
    fn encode(&self, out: &mut Vec<u8>) {
        u64::from(*self).encode(out);
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.encode(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            v.encode(out);
        }
        out.push(b']');
    }
}

/// An object being written: members, then [`Object::end`].
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Writes one member, its `key` given as `,"name":`, and returns where
    /// its value starts in the buffer.
    // Forced: left to itself the compiler calls it for each of a request's
    // ~40 members, which cost a fifth of the encoding (callgrind).
    #[inline(always)]
    fn member(&mut self, key: &str, value: &(impl Encode + ?Sized)) -> usize {
        let key = if self.first { &key[1..] } else { key };
        self.first = false;
        self.out.extend_from_slice(key.as_bytes());
        let at = self.out.len();
        value.encode(self.out);
        at
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// The named fields of `$rec` as members of `$o`, in this order, each
/// under its own name; evaluates to where the first one's value starts.
macro_rules! members {
    ($o:expr, $rec:expr; $first:ident $(, $field:ident)* $(,)?) => {{
        let at = $o.member(concat!(",\"", stringify!($first), "\":"), &$rec.$first);
        $($o.member(concat!(",\"", stringify!($field), "\":"), &$rec.$field);)*
        at
    }};
}

impl RecordMut<'_, '_> {
    /// Appends the record as `serde_json::to_vec` writes it and returns
    /// where the value of its `seq` starts, for the writer to splice in the
    /// record's place in the chain.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> usize {
        let mut o = Object::new(out);
        let (seq_at, hash) = match self {
            RecordMut::Decision(r) => {
                o.member(EVENT, "decision");
                let seq_at = members!(o, r;
                    seq, ts, instance, request_id, tenant, op, direction, bucket, key,
                    source, destinations, category, category_source, from, to,
                    client_ip, decision, reason, basis, basis_kind, mode, status,
                    rules_version, geoip_build, prev,
                );
                (seq_at, &r.hash)
            }
            RecordMut::Completion(r) => {
                o.member(EVENT, "completion");
                let seq_at = members!(o, r;
                    seq, ts, instance, request_id, outcome, status, bytes_in,
                    bytes_out, duration_ms, category, prev,
                );
                (seq_at, &r.hash)
            }
            RecordMut::Recovery(r) => {
                o.member(EVENT, "recovery");
                let seq_at = members!(o, r; seq, ts, instance, cut_bytes, reason, prev);
                (seq_at, &r.hash)
            }
        };
        // Absent until the writer sets it.
        if !hash.is_empty() {
            o.member(",\"hash\":", hash);
        }
        o.end();
        seq_at
    }
}

const EVENT: &str = ",\"event\":";

impl Encode for SourceEntry<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        members!(o, self; bucket, region, jurisdiction);
        o.end();
    }
}

impl Encode for DestinationEntry<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        members!(o, self; bucket, prefix, region, jurisdiction, decision, reason, basis);
        o.end();
    }
}

impl Encode for Endpoint<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        members!(o, self; region, country, jurisdiction, via, peer);
        o.end();
    }
}
