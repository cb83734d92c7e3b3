//! Records written as JSON by hand, for the request path: the bytes are
//! serde_json's compact form of the same record (its `Serialize` derive
//! stays, for the tools and for the test that holds the two equal), but
//! written straight into one buffer, without serde's per-member dispatch
//! or its growing of a fresh `Vec`.
//!
//! Members are written in declaration order, `null` for `None`; strings
//! are escaped as serde_json escapes them; `hash` is left out when empty.

use super::record::{
    CompletionRecord, DecisionRecord, DestinationEntry, Endpoint, Record, RecoveryRecord,
    SourceEntry,
};

/// A value as serde_json writes it.
pub(crate) trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        let bytes = self.as_bytes();
        // Copies the runs between escapes whole; every escaped byte is
        // ASCII, so a run never splits a UTF-8 sequence.
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
        out.push(b'"');
    }
}

const HEX: [u8; 16] = *b"0123456789abcdef";

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
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

    /// Writes one member and returns where its value starts in the buffer.
    fn member(&mut self, name: &str, value: &(impl Encode + ?Sized)) -> usize {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        let at = self.out.len();
        value.encode(self.out);
        at
    }

    /// `hash` is absent until the writer sets it.
    fn hash(&mut self, hash: &str) {
        if !hash.is_empty() {
            self.member("hash", hash);
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

impl Record {
    /// Appends the record as `serde_json::to_vec` writes it and returns
    /// where the value of its `seq` starts, for the writer to splice in the
    /// record's place in the chain.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> usize {
        let mut o = Object::new(out);
        let seq_at = match self {
            Record::Decision(r) => {
                o.member("event", "decision");
                r.members(&mut o)
            }
            Record::Completion(r) => {
                o.member("event", "completion");
                r.members(&mut o)
            }
            Record::Recovery(r) => {
                o.member("event", "recovery");
                r.members(&mut o)
            }
        };
        o.end();
        seq_at
    }
}

impl DecisionRecord {
    fn members(&self, o: &mut Object<'_>) -> usize {
        let seq_at = o.member("seq", &self.seq);
        o.member("ts", &self.ts);
        o.member("instance", &self.instance);
        o.member("request_id", &self.request_id);
        o.member("tenant", &self.tenant);
        o.member("op", &self.op);
        o.member("direction", &self.direction);
        o.member("bucket", &self.bucket);
        o.member("key", &self.key);
        o.member("source", &self.source);
        o.member("destinations", &self.destinations);
        o.member("category", &self.category);
        o.member("category_source", &self.category_source);
        o.member("from", &self.from);
        o.member("to", &self.to);
        o.member("client_ip", &self.client_ip);
        o.member("decision", &self.decision);
        o.member("reason", &self.reason);
        o.member("basis", &self.basis);
        o.member("basis_kind", &self.basis_kind);
        o.member("mode", &self.mode);
        o.member("status", &self.status);
        o.member("rules_version", &self.rules_version);
        o.member("geoip_build", &self.geoip_build);
        o.member("prev", &self.prev);
        o.hash(&self.hash);
        seq_at
    }
}

impl CompletionRecord {
    fn members(&self, o: &mut Object<'_>) -> usize {
        let seq_at = o.member("seq", &self.seq);
        o.member("ts", &self.ts);
        o.member("instance", &self.instance);
        o.member("request_id", &self.request_id);
        o.member("outcome", &self.outcome);
        o.member("status", &self.status);
        o.member("bytes_in", &self.bytes_in);
        o.member("bytes_out", &self.bytes_out);
        o.member("duration_ms", &self.duration_ms);
        o.member("category", &self.category);
        o.member("prev", &self.prev);
        o.hash(&self.hash);
        seq_at
    }
}

impl RecoveryRecord {
    fn members(&self, o: &mut Object<'_>) -> usize {
        let seq_at = o.member("seq", &self.seq);
        o.member("ts", &self.ts);
        o.member("instance", &self.instance);
        o.member("cut_bytes", &self.cut_bytes);
        o.member("reason", &self.reason);
        o.member("prev", &self.prev);
        o.hash(&self.hash);
        seq_at
    }
}

impl Encode for SourceEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.member("bucket", &self.bucket);
        o.member("region", &self.region);
        o.member("jurisdiction", &self.jurisdiction);
        o.end();
    }
}

impl Encode for DestinationEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.member("bucket", &self.bucket);
        o.member("prefix", &self.prefix);
        o.member("region", &self.region);
        o.member("jurisdiction", &self.jurisdiction);
        o.member("decision", &self.decision);
        o.member("reason", &self.reason);
        o.member("basis", &self.basis);
        o.end();
    }
}

impl Encode for Endpoint {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.member("region", &self.region);
        o.member("country", &self.country);
        o.member("jurisdiction", &self.jurisdiction);
        o.member("via", &self.via);
        o.member("peer", &self.peer);
        o.end();
    }
}
