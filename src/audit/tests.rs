use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::*;

pub(super) fn config(dir: &Path, fsync: FsyncMode, segment_bytes: u64) -> AuditConfig {
    AuditConfig {
        dir: dir.to_owned(),
        instance: "edge-test".into(),
        fsync,
        queue: 1024,
        segment_bytes,
        ..AuditConfig::default()
    }
}

/// Verification without keys or off-host checkpoints.
pub(super) fn verify_chain(dir: &Path) -> Result<VerifySummary, VerifyError> {
    verify(dir, &VerifyOptions::default())
}

/// The decisions `ids`, each in a task of its own, all spawned before any
/// is awaited: the seqs they were written at, in order.
pub(super) async fn decide_in_tasks(audit: &AuditHandle, ids: std::ops::Range<u64>) -> Vec<u64> {
    let tasks: Vec<_> = ids
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move { audit.decision(decision(i)).await.unwrap().seq })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    seqs
}

pub(super) fn decision(i: u64) -> DecisionRecord<'static> {
    DecisionRecord {
        request_id: format!("req-{i}").into(),
        tenant: Some("acme".into()),
        op: "GetObject".into(),
        direction: "egress".into(),
        bucket: Some("acme-hr".into()),
        key: Some(format!("staff/{i}.json").into()),
        category: Some("identity".into()),
        category_source: Some("bucket".into()),
        from: Some(Endpoint {
            region: Some("cn-beijing-6".into()),
            jurisdiction: Some("CN".into()),
            via: Some("bucket".into()),
            ..Endpoint::default()
        }),
        to: Some(Endpoint {
            country: Some("DE".into()),
            jurisdiction: Some("EU".into()),
            via: Some("geoip".into()),
            ..Endpoint::default()
        }),
        client_ip: Some("203.0.113.0/24".into()),
        decision: "deny".into(),
        reason: "no_legal_basis".into(),
        mode: Some("enforce".into()),
        status: Some(403),
        rules_version: "ab12".into(),
        geoip_build: Some(1_700_000_000),
        ..DecisionRecord::default()
    }
}

pub(super) fn completion(i: u64) -> CompletionRecord<'static> {
    CompletionRecord {
        request_id: format!("req-{i}").into(),
        outcome: "complete".into(),
        status: 200,
        bytes_out: 1234,
        duration_ms: 7,
        category: Some("content".into()),
        ..CompletionRecord::default()
    }
}

/// Waits for something the writer thread does after answering.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A fresh key pair in `dir`: the private key's path, and a ring holding
/// the public key.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, KeyRing) {
    let files = keygen(dir, name, false).unwrap();
    (files.private, KeyRing::load(&[files.public]).unwrap())
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn lines(dir: &Path) -> Vec<String> {
    chain::segments(dir)
        .unwrap()
        .iter()
        .flat_map(|(_, path)| {
            fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn newest_segment(dir: &Path) -> PathBuf {
    chain::segments(dir).unwrap().pop().unwrap().1
}

/// Stops the writer without a shutdown, so that it leaves the open segment
/// unsealed, as a crash would: the last handle dropped. The writer frees
/// the log's lock once it has stopped.
async fn stop_without_seal(audit: AuditHandle, dir: &Path) {
    drop(audit);
    let lock = fs::File::open(dir.join("writer.lock")).unwrap();
    eventually("the writer to stop", || lock.try_lock().is_ok()).await;
}

/// Waits until no closed segment waits for its seal: a test that writes
/// faster than the writer thread seals then sees segments cut at their
/// size.
async fn seals_written(audit: &AuditHandle) {
    let awaiting = &audit.stats().awaiting_seal;
    eventually("the closed segment's seal", || awaiting.load(Relaxed) == 0).await;
}

fn append(path: &Path, bytes: &[u8]) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn records_have_the_design_fields_in_order_with_nulls() {
    let json = serde_json::to_string(&Record::Decision(Box::default())).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut in_order = keys.clone();
    in_order.sort_by_key(|k| json.find(&format!("\"{k}\":")).unwrap());
    assert_eq!(
        in_order,
        [
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
            "source",
            "destinations",
            "category",
            "category_source",
            "from",
            "to",
            "client_ip",
            "decision",
            "reason",
            "basis",
            "basis_kind",
            "mode",
            "status",
            "rules_version",
            "geoip_build",
            "prev",
        ]
    );
    assert!(
        json.starts_with(r#"{"event":"decision","seq":0,"#),
        "{json}"
    );
    assert!(
        json.contains(r#""tenant":null"#) && json.ends_with(r#""prev":""}"#),
        "{json}"
    );

    let endpoint = serde_json::to_string(&Endpoint::default()).unwrap();
    assert_eq!(
        endpoint,
        r#"{"region":null,"country":null,"jurisdiction":null,"via":null,"peer":null}"#
    );
    let completion =
        serde_json::to_string(&Record::Completion(CompletionRecord::default())).unwrap();
    assert_eq!(
        completion,
        r#"{"event":"completion","seq":0,"ts":"","instance":"","request_id":"","outcome":"","status":0,"bytes_in":0,"bytes_out":0,"duration_ms":0,"category":null,"prev":""}"#
    );
    let recovery = serde_json::to_string(&Record::Recovery(RecoveryRecord::default())).unwrap();
    assert_eq!(
        recovery,
        r#"{"event":"recovery","seq":0,"ts":"","instance":"","cut_bytes":0,"reason":"","prev":""}"#
    );
}

#[test]
fn timestamps_are_utc_with_milliseconds() {
    let t = time::macros::datetime!(2026-03-01 12:34:56.789_999 +08:00);
    assert_eq!(timestamp(t), "2026-03-01T04:34:56.789Z");
}

#[test]
fn timestamps_pad_as_format_does_in_every_year() {
    let at = |year| {
        time::Date::from_calendar_date(year, time::Month::February, 3)
            .unwrap()
            .with_hms_milli(4, 5, 6, 7)
            .unwrap()
            .assume_utc()
    };
    for year in [-9999, -999, -10, -1, 0, 7, 99, 999, 1970, 2026, 9999] {
        let t = at(year);
        assert_eq!(
            timestamp(t),
            format!("{year:04}-02-03T04:05:06.007Z"),
            "year {year}"
        );
    }
    let t = time::macros::datetime!(2026-12-31 23:59:59.999 UTC);
    assert_eq!(timestamp(t), "2026-12-31T23:59:59.999Z");
}

#[test]
fn timestamps_stay_right_when_the_second_changes_back_and_forth() {
    // Each thread remembers the last second it formatted.
    let seconds = [
        time::macros::datetime!(2026-12-31 23:59:59.999 UTC),
        time::macros::datetime!(2027-01-01 00:00:00.000 UTC),
        time::macros::datetime!(2026-12-31 23:59:59.001 UTC),
        time::macros::datetime!(2026-12-31 23:59:59.500 +01:00),
        time::macros::datetime!(1969-12-31 23:59:59.999 UTC),
        time::macros::datetime!(1970-01-01 00:00:00.000 UTC),
    ];
    for _ in 0..2 {
        for t in seconds {
            let u = t.to_offset(time::UtcOffset::UTC);
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                u.year(),
                u8::from(u.month()),
                u.day(),
                u.hour(),
                u.minute(),
                u.second(),
                u.millisecond()
            );
            assert_eq!(timestamp(t), expected);
        }
    }
}

/// Draws the parts of records from a fixed seed: strings that need every
/// kind of escape (and non-ASCII, which needs none), numbers at the edges
/// of their digits, optional members absent or present.
struct Assorted(rand::rngs::StdRng);

impl Assorted {
    fn word<T: From<String>>(&mut self) -> T {
        const WORDS: &[&str] = &[
            "",
            "allow",
            "say \"hi\"",
            "back\\slash\\",
            "\n\r\t\u{8}\u{c}",
            "\u{0}\u{1}\u{1f}\u{7f} /",
            "Zürich 北京 🎉",
            "\u{2028}\u{2029}\u{fffd}",
            "\"",
            "a\u{1b}[31mred",
            // Each the one byte that needs escaping: at the edge of the
            // control characters, and just past it.
            "unit\u{1f}separator",
            "delete\u{7f}",
        ];
        WORDS[self.0.gen_range(0..WORDS.len())].to_owned().into()
    }

    fn number(&mut self) -> u64 {
        const NUMBERS: &[u64] = &[0, 1, 9, 10, 4096, 65535, u64::MAX];
        NUMBERS[self.0.gen_range(0..NUMBERS.len())]
    }

    fn maybe<T>(&mut self, some: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.0.gen_bool(0.5).then(|| some(self))
    }

    fn maybe_word<T: From<String>>(&mut self) -> Option<T> {
        self.maybe(Self::word)
    }

    fn endpoint(&mut self) -> Endpoint<'static> {
        Endpoint {
            region: self.maybe_word(),
            country: self.maybe_word(),
            jurisdiction: self.maybe_word(),
            via: self.maybe_word(),
            peer: self.maybe_word(),
        }
    }

    fn destination(&mut self) -> DestinationEntry<'static> {
        DestinationEntry {
            bucket: self.word(),
            prefix: self.maybe_word(),
            region: self.maybe_word(),
            jurisdiction: self.maybe_word(),
            decision: self.word(),
            reason: self.word(),
            basis: self.maybe_word(),
        }
    }

    fn decision(&mut self) -> DecisionRecord<'static> {
        DecisionRecord {
            seq: self.number(),
            ts: self.word(),
            instance: self.word(),
            request_id: self.word(),
            tenant: self.maybe_word(),
            op: self.word(),
            direction: self.word(),
            bucket: self.maybe_word(),
            key: self.maybe_word(),
            source: self.maybe(|a| SourceEntry {
                bucket: a.word(),
                region: a.maybe_word(),
                jurisdiction: a.maybe_word(),
            }),
            destinations: self.maybe(|a| {
                let n = a.0.gen_range(0..3);
                (0..n).map(|_| a.destination()).collect()
            }),
            category: self.maybe_word(),
            category_source: self.maybe_word(),
            from: self.maybe(Self::endpoint),
            to: self.maybe(Self::endpoint),
            client_ip: self.maybe_word(),
            decision: self.word(),
            reason: self.word(),
            basis: self.maybe_word(),
            basis_kind: self.maybe_word(),
            mode: self.maybe_word(),
            status: self.maybe(|a| a.number() as u16),
            rules_version: self.word(),
            geoip_build: self.maybe(Self::number),
            prev: self.word(),
            hash: self.word(),
        }
    }

    fn completion(&mut self) -> CompletionRecord<'static> {
        CompletionRecord {
            seq: self.number(),
            ts: self.word(),
            instance: self.word(),
            request_id: self.word(),
            outcome: self.word(),
            status: self.number() as u16,
            bytes_in: self.number(),
            bytes_out: self.number(),
            duration_ms: self.number(),
            category: self.maybe_word(),
            prev: self.word(),
            hash: self.word(),
        }
    }

    fn recovery(&mut self) -> RecoveryRecord<'static> {
        RecoveryRecord {
            seq: self.number(),
            ts: self.word(),
            instance: self.word(),
            cut_bytes: self.number(),
            reason: self.word(),
            prev: self.word(),
            hash: self.word(),
        }
    }
}

/// Records of every kind, 300 of each.
fn assorted_records() -> Vec<Record<'static>> {
    use rand::SeedableRng;
    let mut a = Assorted(rand::rngs::StdRng::seed_from_u64(6));
    (0..300)
        .flat_map(|_| {
            [
                Record::Decision(Box::new(a.decision())),
                Record::Completion(a.completion()),
                Record::Recovery(a.recovery()),
            ]
        })
        .collect()
}

#[test]
fn the_hand_written_encoder_writes_what_serde_json_writes() {
    let mut all = Vec::new();
    for rec in &assorted_records() {
        let mut json = Vec::new();
        let seq_at = rec.clone().as_mut().encode(&mut json);
        let expected = serde_json::to_vec(rec).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&json),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(json, expected);
        let seq = rec.clone().as_mut().chain_fields().seq.to_string();
        assert!(json[..seq_at].ends_with(b",\"seq\":"));
        assert!(json[seq_at..].starts_with(seq.as_bytes()));
        all.extend(json);
    }
    // The assortment holds what it is meant to.
    let all = String::from_utf8(all).unwrap();
    for part in [
        r#"\u0000"#,
        r#"\u001f"#,
        r#"\b"#,
        r#"\f"#,
        r#"\n"#,
        r#"\""#,
        r#"\\"#,
        "\u{7f}",
        "北京",
        "null",
        r#""hash":"#,
        r#""prev":""}"#,
        "18446744073709551615",
    ] {
        assert!(all.contains(part), "no {part}");
    }
}

#[test]
fn a_chained_line_is_the_serde_json_record_with_its_seq_prev_and_hash() {
    let prev = "9".repeat(64);
    for mut rec in assorted_records() {
        let mut line = Vec::new();
        let hash = chain::Unchained::new(rec.clone().as_mut(), "edge-\"x\"")
            .append_line(&mut line, 42, &prev);
        let mut view = rec.as_mut();
        let fields = view.chain_fields();
        let ts = fields.ts.clone();
        *fields.seq = 42;
        if fields.ts.is_empty() {
            // Filled in with the time of chaining: take the line's.
            let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
            *fields.ts = line["ts"].as_str().unwrap().to_owned().into();
        }
        *fields.instance = "edge-\"x\"".into();
        *fields.prev = prev.to_owned().into();
        *fields.hash = String::from_utf8(hash.to_vec()).unwrap().into();
        let mut expected = serde_json::to_vec(&rec).unwrap();
        expected.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&line),
            String::from_utf8_lossy(&expected),
            "ts was {ts:?}"
        );
        let link = chain::check_line(&line[..line.len() - 1]).unwrap();
        assert_eq!((link.seq, link.prev.as_str()), (42, prev.as_str()));
    }
}

#[test]
fn client_ips_are_minimized_as_configured() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        minimize_ip(ip("203.0.113.7"), ClientIpMode::Full, b""),
        "203.0.113.7"
    );
    assert_eq!(
        minimize_ip(ip("::ffff:203.0.113.7"), ClientIpMode::Full, b""),
        "203.0.113.7"
    );
    assert_eq!(
        minimize_ip(ip("203.0.113.7"), ClientIpMode::Truncate, b""),
        "203.0.113.0/24"
    );
    assert_eq!(
        minimize_ip(ip("::ffff:203.0.113.7"), ClientIpMode::Truncate, b""),
        "203.0.113.0/24"
    );
    assert_eq!(
        minimize_ip(ip("2001:db8:1:2::7"), ClientIpMode::Truncate, b""),
        "2001:db8:1::/48"
    );
    for a in [
        [0, 0, 0, 0],
        [9, 10, 99, 1],
        [100, 200, 255, 255],
        [255, 0, 9, 8],
    ] {
        let a = std::net::Ipv4Addr::from(a);
        assert_eq!(
            minimize_ip(a.into(), ClientIpMode::Truncate, b""),
            ipnet::Ipv4Net::new_assert(a, 24).trunc().to_string()
        );
    }

    let hashed = minimize_ip(ip("203.0.113.7"), ClientIpMode::Hash, b"k1");
    assert_eq!(hashed.len(), 64);
    assert_eq!(
        hashed,
        minimize_ip(ip("::ffff:203.0.113.7"), ClientIpMode::Hash, b"k1")
    );
    assert_ne!(
        hashed,
        minimize_ip(ip("203.0.113.7"), ClientIpMode::Hash, b"k2")
    );
    assert_ne!(
        hashed,
        minimize_ip(ip("203.0.113.8"), ClientIpMode::Hash, b"k1")
    );
    // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    assert_eq!(
        hash_key("what do ya want for nothing?", b"Jefe"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// The documented byte rule, applied with nothing but string handling and
/// SHA-256, as another tool would.
fn check_by_the_documented_rule(lines: &[String]) {
    let mut prev = "0".repeat(64);
    for (i, line) in lines.iter().enumerate() {
        let at = line.rfind(r#","hash":""#).unwrap();
        let hash = &line[at + 9..line.len() - 2];
        let canonical = format!("{}}}", &line[..at]);
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["prev"], prev.as_str(), "line {i}");
        assert_eq!(value["seq"], i as u64 + 1, "line {i}");
        let computed = hex::encode(
            Sha256::new()
                .chain_update(&prev)
                .chain_update(&canonical)
                .finalize(),
        );
        assert_eq!(hash, computed, "line {i}");
        prev = hash.to_owned();
    }
}

#[tokio::test]
async fn the_chain_recomputes() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    for i in 0..50 {
        let written = audit.decision(decision(i)).await.unwrap();
        assert_eq!(written.seq, 2 * i + 1);
        audit.completion(completion(i)).await;
    }
    audit.shutdown().await;

    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!(
        (summary.segments, summary.records, summary.last_seq),
        (1, 100, Some(100))
    );
    let lines = lines(dir.path());
    check_by_the_documented_rule(&lines);
    let first: Record = serde_json::from_str(&lines[0]).unwrap();
    let Record::Decision(first) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        (first.seq, &*first.instance, &*first.prev),
        (1, "edge-test", GENESIS)
    );
    assert_eq!(first.ts.len(), "2026-03-01T04:34:56.789Z".len());
    assert_eq!(first.hash.len(), 64);
    assert_eq!(audit.stats().records_total.load(Relaxed), 100);
}

#[tokio::test]
async fn verification_names_the_first_broken_record() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Never, 1 << 20)).unwrap();
    for i in 0..5 {
        audit.decision(decision(i)).await.unwrap();
    }
    audit.shutdown().await;
    let segment = newest_segment(dir.path());
    let original = fs::read_to_string(&segment).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let rewrite = |lines: &[&str]| {
        fs::write(
            &segment,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap()
    };

    let edited = lines[2].replace(r#""decision":"deny""#, r#""decision":"allow""#);
    rewrite(&[lines[0], lines[1], &edited, lines[3], lines[4]]);
    let err = verify_chain(dir.path()).unwrap_err();
    assert_eq!(
        (err.kind, err.line, err.seq),
        (Kind::Edited, 3, Some(3)),
        "{err}"
    );

    rewrite(&[lines[0], lines[1], lines[3], lines[4]]);
    let err = verify_chain(dir.path()).unwrap_err();
    assert_eq!(
        (err.kind, err.line, err.seq),
        (Kind::Deleted, 3, Some(4)),
        "{err}"
    );

    rewrite(&[lines[0], lines[2], lines[1], lines[3], lines[4]]);
    let err = verify_chain(dir.path()).unwrap_err();
    assert_eq!((err.kind, err.line), (Kind::Reordered, 2), "{err}");

    fs::write(&segment, &original[..original.len() - 10]).unwrap();
    let err = verify_chain(dir.path()).unwrap_err();
    assert_eq!(err.kind, Kind::TornWrite, "{err}");
    assert!(err.to_string().contains(":5"), "{err}");
}

#[tokio::test]
async fn a_torn_last_line_is_cut_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Always, 1 << 20)).unwrap();
    for i in 0..3 {
        audit.decision(decision(i)).await.unwrap();
    }
    stop_without_seal(audit, dir.path()).await;
    let torn = br#"{"event":"decision","seq":4,"ts":"2026-"#;
    append(&newest_segment(dir.path()), torn);
    assert_eq!(verify_chain(dir.path()).unwrap_err().kind, Kind::TornWrite);

    let audit = start(config(dir.path(), FsyncMode::Always, 1 << 20)).unwrap();
    assert_eq!(audit.decision(decision(3)).await.unwrap().seq, 5);
    audit.shutdown().await;

    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!(summary.records, 5);
    let recovery: Record = serde_json::from_str(&lines(dir.path())[3]).unwrap();
    let Record::Recovery(recovery) = recovery else {
        panic!("{recovery:?}")
    };
    assert_eq!((recovery.seq, recovery.cut_bytes), (4, torn.len() as u64));
    assert!(
        recovery.reason.contains("without a newline"),
        "{}",
        recovery.reason
    );
}

#[tokio::test]
async fn an_unparsable_last_line_and_torn_bytes_are_cut_together() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.decision(decision(0)).await.unwrap();
    stop_without_seal(audit, dir.path()).await;
    // A file's new length can reach the disk before its data: zeros.
    let garbage = [&[0_u8; 300][..], b"\n", &[0_u8; 100][..]].concat();
    append(&newest_segment(dir.path()), &garbage);

    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().records, 2);
    let Record::Recovery(recovery) = serde_json::from_str(&lines(dir.path())[1]).unwrap() else {
        panic!("no recovery record")
    };
    assert_eq!(recovery.cut_bytes, garbage.len() as u64);
    assert!(
        recovery.reason.contains("not a record"),
        "{}",
        recovery.reason
    );
}

#[tokio::test]
async fn an_altered_last_record_is_not_taken_for_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Never, 1 << 20)).unwrap();
    audit.decision(decision(0)).await.unwrap();
    audit.decision(decision(1)).await.unwrap();
    audit.shutdown().await;
    let segment = newest_segment(dir.path());
    let text = fs::read_to_string(&segment)
        .unwrap()
        .replace("staff/1.json", "staff/9.json");
    fs::write(&segment, text).unwrap();

    let err = start(config(dir.path(), FsyncMode::Never, 1 << 20))
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains("record 2 does not match its hash"),
        "{err}"
    );
}

#[tokio::test]
async fn seq_and_chain_continue_across_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let audit = start(config(dir.path(), FsyncMode::Batch, 2000)).unwrap();
        for i in 0..20 {
            let seq = audit.decision(decision(i)).await.unwrap().seq;
            assert_eq!(seq, round * 20 + i + 1);
            seals_written(&audit).await;
        }
        audit.shutdown().await;
    }
    let segments = chain::segments(dir.path()).unwrap();
    assert!(segments.len() >= 5, "{segments:?}");
    for (first_seq, path) in &segments {
        let first = fs::read_to_string(path)
            .unwrap()
            .lines()
            .next()
            .map(str::to_owned)
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(value["seq"], *first_seq);
    }
    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!((summary.records, summary.segments), (40, segments.len()));
    check_by_the_documented_rule(&lines(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Always, 1 << 30)).unwrap();
    let seqs = decide_in_tasks(&audit, 0..2000).await;
    assert_eq!(seqs, (1..=2000).collect::<Vec<_>>());

    let stats = audit.stats();
    let (writes, fsyncs) = (
        stats.writes_total.load(Relaxed),
        stats.fsyncs_total.load(Relaxed),
    );
    assert!(writes <= 200, "{writes} writes for 2000 records");
    assert_eq!(fsyncs, writes);
    assert_eq!(stats.queue_depth.load(Relaxed), 0);
    assert!(stats.write_nanos_sum.load(Relaxed) > 0);
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().records, 2000);
}

#[tokio::test]
async fn always_answers_only_after_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Always, 1 << 20)).unwrap();
    for i in 0..3 {
        audit.decision(decision(i)).await.unwrap();
        assert_eq!(audit.stats().fsyncs_total.load(Relaxed), i + 1);
    }
}

#[tokio::test]
async fn batch_mode_fsyncs_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncMode::Batch, 1 << 20);
    cfg.batch_ms = 200;
    let audit = start(cfg).unwrap();
    audit.decision(decision(0)).await.unwrap();
    audit.decision(decision(1)).await.unwrap();
    let after_writes = audit.stats().fsyncs_total.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(audit.stats().fsyncs_total.load(Relaxed) > after_writes);
}

/// `fsync = "batch"`: a decision is written by its caller's task, so it
/// is written when the call returns, without the writer thread. A
/// completion waits in the inbox while the thread's fsync is due within
/// `batch_ms`: the next decision takes it along in its own write, or else
/// the thread writes it when it wakes to fsync.
#[tokio::test]
async fn batch_mode_writes_decisions_at_once_and_completions_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), FsyncMode::Batch, 1 << 20);
    // Long enough that the thread's fsync cannot come between the steps.
    cfg.batch_ms = 1000;
    let audit = start(cfg).unwrap();
    let stats = audit.stats();
    let counts = || {
        (
            stats.records_total.load(Relaxed),
            stats.writes_total.load(Relaxed),
        )
    };
    assert_eq!(audit.decision(decision(0)).await.unwrap().seq, 1);
    assert_eq!(counts(), (1, 1));
    // The decision woke the thread to plan its fsync. Each time it wakes
    // it writes what is parked, so the completions are to park once it
    // sleeps again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..3 {
        assert!(audit.try_completion(completion(i)).is_none());
    }
    // On a loaded machine the thread may not have slept yet: then it
    // takes the three along in one write of its own. Never one each.
    eventually("the completions parked, or written together", || {
        stats.queue_depth.load(Relaxed) == 3 && counts() == (1, 1) || counts() == (4, 2)
    })
    .await;
    let writes = counts().1;
    // The completions go first, in one write with the decision.
    assert_eq!(audit.decision(decision(1)).await.unwrap().seq, 5);
    assert_eq!(counts(), (5, writes + 1));
    assert!(audit.try_completion(completion(3)).is_none());
    assert_eq!(counts(), (5, 2));
    eventually(
        "the thread's fsync, then the parked completion written",
        || counts() == (6, 3),
    )
    .await;
    let text = fs::read_to_string(newest_segment(dir.path())).unwrap();
    let events: Vec<_> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
        .collect();
    assert_eq!(
        events,
        [
            "decision",
            "completion",
            "completion",
            "completion",
            "decision",
            "completion"
        ]
    );
    eventually("every record fsynced", || {
        stats.synced_seq.load(Relaxed) == 6
    })
    .await;
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().records, 6);
}

/// A write that really fails: the next segment is `/dev/full`, where every
/// write(2) returns ENOSPC, as on a full disk.
#[tokio::test]
async fn a_failed_write_is_refused_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    // One batch per segment, so the next segment's name is known.
    let audit = start(config(dir.path(), FsyncMode::Always, 1)).unwrap();
    assert_eq!(audit.decision(decision(0)).await.unwrap().seq, 1);
    let next = dir.path().join(chain::segment_name(2));
    std::os::unix::fs::symlink("/dev/full", &next).unwrap();

    let err = audit.decision(decision(1)).await.unwrap_err();
    assert!(
        matches!(&err, AuditUnavailable::Write(e) if e.raw_os_error() == Some(28)),
        "{err}"
    );
    assert!(!audit.healthy());
    // A completion in the outage waits for the next good write.
    audit.completion(completion(0)).await;
    assert!(audit.decision(decision(2)).await.is_err());
    let stats = audit.stats();
    assert!(stats.write_errors_total.load(Relaxed) >= 2);
    assert_eq!(stats.lost_total.load(Relaxed), 2);

    fs::remove_file(&next).unwrap();
    let written = audit.decision(decision(3)).await.unwrap();
    assert!(audit.healthy());
    // The retried completion went first.
    assert_eq!(written.seq, 3);
    audit.shutdown().await;
    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!(summary.records, 3);
    assert_eq!(stats.records_total.load(Relaxed), 3);
}

/// The log directory replaced by a file: a new segment cannot be created.
#[tokio::test]
async fn a_vanished_directory_is_refused_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit");
    let moved = dir.path().join("moved");
    let audit = start(config(&log, FsyncMode::Batch, 1)).unwrap();
    audit.decision(decision(0)).await.unwrap();
    // Sealed and closed: the next record needs a new segment in the log's
    // directory.
    eventually("the seal", || audit.stats().seals_total.load(Relaxed) == 1).await;
    fs::rename(&log, &moved).unwrap();
    fs::write(&log, b"not a directory").unwrap();

    assert!(matches!(
        audit.decision(decision(1)).await,
        Err(AuditUnavailable::Write(_))
    ));
    assert!(!audit.healthy());

    fs::remove_file(&log).unwrap();
    fs::rename(&moved, &log).unwrap();
    assert_eq!(audit.decision(decision(2)).await.unwrap().seq, 2);
    assert!(audit.healthy());
    audit.shutdown().await;
    assert_eq!(verify_chain(&log).unwrap().records, 2);
}

#[tokio::test]
async fn one_writer_per_log() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(config(dir.path(), FsyncMode::Never, 1 << 20)).unwrap();
    let err = start(config(dir.path(), FsyncMode::Never, 1 << 20))
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
    first.shutdown().await;
    let second = start(config(dir.path(), FsyncMode::Never, 1 << 20)).unwrap();
    assert_eq!(second.decision(decision(0)).await.unwrap().seq, 1);
}

#[tokio::test]
async fn after_shutdown_records_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.decision(decision(0)).await.unwrap();
    audit.completion(completion(0)).await;
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().records, 2);
    assert!(matches!(
        audit.decision(decision(1)).await,
        Err(AuditUnavailable::Stopped)
    ));
    audit.completion(completion(1)).await;
    assert_eq!(audit.stats().lost_total.load(Relaxed), 2);
}

#[tokio::test]
async fn a_shutdown_seals_every_record_and_a_restart_goes_on_in_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, ring) = key_pair(keys.path(), "audit");
    let cfg = AuditConfig {
        signing_key: Some(private),
        ..config(dir.path(), FsyncMode::Batch, 1 << 20)
    };
    let signed = VerifyOptions {
        keys: ring,
        ..VerifyOptions::default()
    };
    let audit = start(cfg.clone()).unwrap();
    for i in 0..3 {
        audit.decision(decision(i)).await.unwrap();
    }
    audit.shutdown().await;
    assert_eq!(audit.stats().seals_total.load(Relaxed), 1);
    let first = dir.path().join(chain::segment_name(1));
    let seal = read_json(&seal::seal_path(&first));
    assert_eq!(
        (&seal["first_seq"], &seal["last_seq"]),
        (&1.into(), &3.into())
    );
    check_signature_by_the_documented_rule(
        &seal::seal_path(&first),
        &keys.path().join("audit.pub.pem"),
    );
    let summary = verify(dir.path(), &signed).unwrap();
    assert_eq!(
        (summary.segments, summary.sealed, summary.records),
        (1, 1, 3)
    );

    let audit = start(cfg).unwrap();
    assert_eq!(audit.decision(decision(3)).await.unwrap().seq, 4);
    audit.shutdown().await;
    let segments = chain::segments(dir.path()).unwrap();
    let second = dir.path().join(chain::segment_name(4));
    assert_eq!(segments, [(1, first.clone()), (4, second.clone())]);
    let next: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&second).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(next["prev"], seal["last_hash"]);
    assert_eq!(
        read_json(&seal::seal_path(&second))["prev"],
        seal["last_hash"]
    );
    let summary = verify(dir.path(), &signed).unwrap();
    assert_eq!(
        (summary.segments, summary.sealed, summary.records),
        (2, 2, 4)
    );
    assert!(
        summary.lines()[0]
            .starts_with("verified: seq 1 to 4, 4 record(s) in 2 segment(s), 2 sealed"),
        "{:?}",
        summary.lines()
    );
}

#[tokio::test]
async fn a_shutdown_with_nothing_new_seals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.shutdown().await;
    assert_eq!(audit.stats().seals_total.load(Relaxed), 0);
    assert!(chain::seals(dir.path()).unwrap().is_empty());

    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.decision(decision(0)).await.unwrap();
    audit.shutdown().await;
    // Restarted on a sealed log and stopped again: no empty segment is
    // opened, let alone sealed.
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    audit.shutdown().await;
    assert_eq!(audit.stats().seals_total.load(Relaxed), 0);
    assert_eq!(chain::segments(dir.path()).unwrap().len(), 1);
    assert_eq!(chain::seals(dir.path()).unwrap().len(), 1);
    assert_eq!(verify_chain(dir.path()).unwrap().sealed, 1);
}

#[tokio::test]
async fn after_a_crash_the_open_segment_goes_on_unsealed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    for i in 0..2 {
        audit.decision(decision(i)).await.unwrap();
    }
    stop_without_seal(audit, dir.path()).await;
    assert!(chain::seals(dir.path()).unwrap().is_empty());

    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    assert_eq!(audit.decision(decision(2)).await.unwrap().seq, 3);
    stop_without_seal(audit, dir.path()).await;
    assert_eq!(
        chain::segments(dir.path()).unwrap(),
        [(1, dir.path().join(chain::segment_name(1)))]
    );
    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!((summary.sealed, summary.records), (0, 3));
}

/// A log of 8 decisions in segments of a few (2,000 bytes), left by a
/// crash: its segments, the newest unsealed.
async fn crashed(dir: &Path) -> Vec<(u64, PathBuf)> {
    let audit = start(config(dir, FsyncMode::Batch, 2000)).unwrap();
    for i in 0..8 {
        audit.decision(decision(i)).await.unwrap();
        seals_written(&audit).await;
    }
    stop_without_seal(audit, dir).await;
    let segments = chain::segments(dir).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    segments
}

/// The same, the crash coming after the newest segment was started and
/// before the seal of the one before it was written: the segments, and
/// the seal removed.
async fn crashed_while_sealing(dir: &Path) -> (Vec<(u64, PathBuf)>, serde_json::Value) {
    let segments = crashed(dir).await;
    let seal = seal::seal_path(&segments[segments.len() - 2].1);
    let removed = read_json(&seal);
    fs::remove_file(seal).unwrap();
    (segments, removed)
}

/// The writer started on a log of `crashed` goes on at seq 9, and its
/// shutdown leaves every segment sealed.
async fn goes_on_sealed(audit: AuditHandle, log: &Path) {
    assert_eq!(audit.decision(decision(8)).await.unwrap().seq, 9);
    audit.shutdown().await;
    let summary = verify_chain(log).unwrap();
    assert_eq!(summary.awaiting_seal, None);
    assert_eq!((summary.sealed, summary.records), (summary.segments, 9));
}

#[tokio::test]
async fn a_seal_a_crash_left_unwritten_is_written_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path();
    let (segments, removed) = crashed_while_sealing(log).await;
    let before = &segments[segments.len() - 2].1;
    let summary = verify_chain(log).unwrap();
    assert_eq!(summary.awaiting_seal.as_deref(), Some(before.as_path()));
    assert_eq!(summary.sealed, segments.len() - 2);
    assert!(summary.lines()[1].contains("its seal not yet written"));

    let audit = start(config(log, FsyncMode::Batch, 2000)).unwrap();
    seals_written(&audit).await;
    let rewritten = read_json(&seal::seal_path(before));
    for field in [
        "segment",
        "first_seq",
        "last_seq",
        "records",
        "min_ts",
        "max_ts",
        "prev",
        "last_hash",
    ] {
        assert_eq!(rewritten[field], removed[field], "{field}");
    }
    goes_on_sealed(audit, log).await;
}

#[tokio::test]
async fn an_empty_segment_after_one_awaiting_its_seal_is_dropped_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path();
    let segments = crashed(log).await;
    // The crash came after the newest segment was closed and the next one
    // made, before any record was written to it.
    let newest = &segments[segments.len() - 1].1;
    let empty = log.join(chain::segment_name(9));
    fs::File::create(&empty).unwrap();
    let summary = verify_chain(log).unwrap();
    assert_eq!(summary.awaiting_seal.as_deref(), Some(newest.as_path()));

    let audit = start(config(log, FsyncMode::Batch, 2000)).unwrap();
    assert!(!empty.exists());
    goes_on_sealed(audit, log).await;
}

#[tokio::test]
async fn a_seal_that_cannot_be_written_is_tried_again_while_records_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path();
    // A directory holds the name of the first segment's seal.
    let blocked = seal::seal_path(&log.join(chain::segment_name(1)));
    fs::create_dir_all(&blocked).unwrap();
    let audit = start(config(log, FsyncMode::Batch, 2000)).unwrap();
    for i in 0..8 {
        audit.decision(decision(i)).await.unwrap();
    }
    let stats = audit.stats();
    eventually("a failed seal", || {
        stats.seal_errors_total.load(Relaxed) > 0
    })
    .await;
    assert_eq!(stats.awaiting_seal.load(Relaxed), 1);
    // The second segment holds the rest, past its size: one segment at a
    // time waits for its seal.
    let segments = chain::segments(log).unwrap();
    assert_eq!(segments.len(), 2, "{segments:?}");
    assert!(fs::metadata(&segments[1].1).unwrap().len() > 2000);

    fs::remove_dir(&blocked).unwrap();
    seals_written(&audit).await;
    audit.shutdown().await;
    let summary = verify_chain(log).unwrap();
    assert_eq!(
        (summary.segments, summary.sealed, summary.records),
        (2, 2, 8)
    );
}

#[tokio::test]
async fn only_the_segment_before_an_open_newest_may_await_its_seal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path();
    let (segments, _) = crashed_while_sealing(log).await;
    let n = segments.len();
    let (older_seq, older) = &segments[n - 3];
    fs::remove_file(seal::seal_path(older)).unwrap();
    verify_fails(log, Kind::MissingSeal, Some(*older_seq), older);

    // A sealed newest segment is not the open one: the one before it has
    // no seal to wait for.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path();
    let (segments, _) = crashed_while_sealing(log).await;
    let audit = start(config(log, FsyncMode::Batch, 1 << 20)).unwrap();
    seals_written(&audit).await;
    audit.shutdown().await;
    let (before_seq, before) = &segments[segments.len() - 2];
    fs::remove_file(seal::seal_path(before)).unwrap();
    verify_fails(log, Kind::MissingSeal, Some(*before_seq), before);
}

/// Verifies the log in `dir`, which must fail with `kind` at `seq` in
/// `file`.
fn verify_fails(dir: &Path, kind: Kind, seq: Option<u64>, file: &Path) -> VerifyError {
    let err = verify_chain(dir).unwrap_err();
    assert_eq!(
        (err.kind, err.seq, err.file.as_path()),
        (kind, seq, file),
        "{err}"
    );
    err
}

/// A log of 20 records in segments of a few, every one sealed, with the
/// data of the oldest `archived` segments deleted (their seals kept): all
/// its segments, those deleted included.
async fn sealed_segments(dir: &Path, archived: usize) -> Vec<(u64, PathBuf)> {
    let audit = start(config(dir, FsyncMode::Batch, 2000)).unwrap();
    for i in 0..20 {
        audit.decision(decision(i)).await.unwrap();
        seals_written(&audit).await;
    }
    audit.shutdown().await;
    let segments = chain::segments(dir).unwrap();
    assert!(segments.len() >= 4, "{segments:?}");
    for (_, path) in &segments[..archived] {
        fs::remove_file(path).unwrap();
    }
    segments
}

#[tokio::test]
async fn archivable_lists_the_sealed_segments_before_the_newest_with_records() {
    let dir = tempfile::tempdir().unwrap();
    // A gate's first look, before any record.
    assert_eq!(archivable(dir.path()).unwrap(), []);
    let segments = sealed_segments(dir.path(), 0).await;
    let listed = archivable(dir.path()).unwrap();
    let want: Vec<SealedSegment> = segments
        .windows(2)
        .map(|pair| SealedSegment {
            segment: pair[0].1.clone(),
            seal: seal::seal_path(&pair[0].1),
            first_seq: pair[0].0,
            last_seq: pair[1].0 - 1,
        })
        .collect();
    assert_eq!(listed, want);

    // A new empty segment (a crash just after it was created) does not
    // take the tip's place.
    let empty = dir.path().join(chain::segment_name(21));
    fs::write(&empty, b"").unwrap();
    assert_eq!(archivable(dir.path()).unwrap(), want);
    fs::remove_file(&empty).unwrap();

    // The list stops where a seal is missing: what it holds stays a run
    // of the oldest segments.
    fs::remove_file(seal::seal_path(&segments[2].1)).unwrap();
    assert_eq!(archivable(dir.path()).unwrap(), want[..2]);
    fs::remove_file(seal::seal_path(&segments[0].1)).unwrap();
    assert_eq!(archivable(dir.path()).unwrap(), []);
}

#[tokio::test]
async fn a_log_whose_oldest_segments_are_archived_verifies_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    sealed_segments(dir.path(), 0).await;
    let gone = archivable(dir.path()).unwrap();
    let gone = &gone[..2];
    for s in gone {
        fs::remove_file(&s.segment).unwrap();
    }
    let summary = verify_chain(dir.path()).unwrap();
    let archived_to = gone[1].last_seq;
    assert_eq!(
        summary.archived,
        Some(Archived {
            segments: 2,
            last_seq: archived_to
        })
    );
    assert_eq!(
        (summary.records, summary.last_seq),
        (20 - archived_to, Some(20))
    );
    let lines = summary.lines();
    assert!(
        lines[0].starts_with(&format!("verified: seq {} to 20,", archived_to + 1)),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("archived: seq 1 to {archived_to} in 2 segment(s)")),
        "{lines:?}"
    );

    // The writer picks up the chain from the segments still here.
    let audit = start(config(dir.path(), FsyncMode::Batch, 2000)).unwrap();
    assert_eq!(audit.decision(decision(20)).await.unwrap().seq, 21);
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().last_seq, Some(21));

    // Every segment gone, every seal here.
    for (_, path) in chain::segments(dir.path()).unwrap() {
        fs::remove_file(path).unwrap();
    }
    let summary = verify_chain(dir.path()).unwrap();
    assert_eq!((summary.records, summary.last_seq), (0, Some(21)));
    let lines = summary.lines();
    assert!(lines[0].contains("every segment archived"), "{lines:?}");
    // The log's own checkpoint vouches for a record no longer here.
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("seq 21 is archived, not read here")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn archived_segments_without_their_seals_are_gone_without_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let segments = sealed_segments(dir.path(), 3).await;
    let second = seal::seal_path(&segments[1].1);
    let kept = fs::read(&second).unwrap();

    // The seal of the second segment gone: the seals no longer chain.
    fs::remove_file(&second).unwrap();
    let err = verify_fails(
        dir.path(),
        Kind::Deleted,
        Some(segments[1].0),
        &segments[1].1,
    );
    assert!(
        err.to_string().contains(&format!(
            "records {} to {} are gone, and so are the seals",
            segments[1].0,
            segments[2].0 - 1
        )),
        "{err}"
    );

    // The first seal gone: the log starts after seq 1 with nothing to
    // vouch for what came before.
    fs::write(&second, kept).unwrap();
    fs::remove_file(seal::seal_path(&segments[0].1)).unwrap();
    verify_fails(dir.path(), Kind::Deleted, Some(1), &segments[0].1);
}

#[tokio::test]
async fn an_archived_seal_that_does_not_chain_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let segments = sealed_segments(dir.path(), 2).await;
    let second = seal::seal_path(&segments[1].1);
    let text = fs::read_to_string(&second).unwrap();
    let prev = read_json(&second)["prev"].as_str().unwrap().to_owned();
    fs::write(&second, text.replace(&prev, GENESIS)).unwrap();
    let err = verify_fails(dir.path(), Kind::BadSeal, Some(segments[1].0), &second);
    assert!(
        err.to_string()
            .contains("does not follow the seal before it"),
        "{err}"
    );
}

#[tokio::test]
async fn a_segment_gone_after_one_still_here_is_not_archived() {
    let dir = tempfile::tempdir().unwrap();
    let segments = sealed_segments(dir.path(), 1).await;
    fs::remove_file(&segments[2].1).unwrap();
    let err = verify_fails(
        dir.path(),
        Kind::Deleted,
        Some(segments[2].0),
        &segments[2].1,
    );
    assert!(err.to_string().contains("its seal remains"), "{err}");
}

/// The documented signature rule, applied with string handling and the
/// Ed25519 crate only: the signed bytes are the line up to its last
/// `,"signature":`, closed with `}`.
fn check_signature_by_the_documented_rule(path: &Path, public: &Path) {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text = fs::read_to_string(path).unwrap();
    let line = text.strip_suffix('\n').unwrap();
    let at = line.rfind(r#","signature":"#).unwrap();
    let signed = format!("{}}}", &line[..at]);
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    let signature: [u8; 64] = hex::decode(value["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key =
        ed25519_dalek::VerifyingKey::from_public_key_pem(&fs::read_to_string(public).unwrap())
            .unwrap();
    assert_eq!(value["key_id"], key_id(&key).as_str());
    key.verify_strict(
        signed.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .unwrap();
}

#[tokio::test]
async fn full_segments_are_sealed_with_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, ring) = key_pair(keys.path(), "audit");
    let log = dir.path();
    let audit = start(AuditConfig {
        signing_key: Some(private),
        ..config(log, FsyncMode::Batch, 3000)
    })
    .unwrap();
    for i in 0..30 {
        audit.decision(decision(i)).await.unwrap();
        seals_written(&audit).await;
    }
    audit.shutdown().await;

    let segments = chain::segments(log).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut prev = GENESIS.to_owned();
    // The last too: the shutdown sealed it.
    for (first_seq, path) in &segments {
        let seal_file = seal::seal_path(path);
        check_signature_by_the_documented_rule(&seal_file, &keys.path().join("audit.pub.pem"));
        let seal = read_json(&seal_file);
        let records: Vec<serde_json::Value> = fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let last = records.last().unwrap();
        assert_eq!(seal["kind"], "seal");
        assert_eq!(seal["instance"], "edge-test");
        assert_eq!(seal["segment"], chain::segment_name(*first_seq).as_str());
        assert_eq!(seal["first_seq"], *first_seq);
        assert_eq!(seal["last_seq"], last["seq"]);
        assert_eq!(seal["records"], records.len() as u64);
        assert_eq!(seal["min_ts"], records[0]["ts"]);
        assert_eq!(seal["max_ts"], last["ts"]);
        assert_eq!(seal["prev"], prev.as_str());
        assert_eq!(seal["last_hash"], last["hash"]);
        prev = last["hash"].as_str().unwrap().to_owned();
    }
    let summary = verify(
        log,
        &VerifyOptions {
            keys: ring,
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    assert_eq!(summary.records, 30);
    assert_eq!(summary.sealed, segments.len(), "{summary:?}");
    assert!(summary.signatures_checked);
    assert_eq!(summary.unsigned, 0);
}

#[tokio::test]
async fn an_old_segment_is_sealed_however_small() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(AuditConfig {
        segment_max_age: Duration::from_millis(100),
        ..config(dir.path(), FsyncMode::Batch, 1 << 20)
    })
    .unwrap();
    audit.decision(decision(0)).await.unwrap();
    let first = dir.path().join(chain::segment_name(1));
    eventually("the seal of the first segment", || {
        seal::seal_path(&first).exists()
    })
    .await;
    assert_eq!(audit.decision(decision(1)).await.unwrap().seq, 2);
    audit.shutdown().await;
    assert_eq!(chain::segments(dir.path()).unwrap().len(), 2);
    // Without a key the seal is written unsigned.
    let seal = read_json(&seal::seal_path(&first));
    assert_eq!(
        (&seal["key_id"], &seal["signature"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    let summary = verify_chain(dir.path()).unwrap();
    // The second segment sealed at shutdown.
    assert_eq!((summary.sealed, summary.records), (2, 2));
    assert!(summary.unsigned >= 1);
}

#[tokio::test]
async fn checkpoints_follow_the_log_and_catch_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (private, ring) = key_pair(keys.path(), "audit");
    let audit = start(AuditConfig {
        signing_key: Some(private),
        checkpoint_interval: Duration::from_millis(20),
        ..config(dir.path(), FsyncMode::Batch, 1 << 20)
    })
    .unwrap();
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    for i in 0..5 {
        let seq = audit.decision(decision(i)).await.unwrap().seq;
        eventually("a checkpoint of the last record", || {
            checkpoint.exists() && read_json(&checkpoint)["seq"] == seq
        })
        .await;
        // It vouches only for what is on disk.
        assert!(audit.stats().synced_seq.load(Relaxed) >= seq);
    }
    check_signature_by_the_documented_rule(&checkpoint, &keys.path().join("audit.pub.pem"));
    let cp = read_json(&checkpoint);
    assert_eq!(cp["kind"], "checkpoint");
    assert_eq!(cp["segment"], chain::segment_name(1).as_str());
    assert_eq!(
        cp["hash"],
        serde_json::from_str::<serde_json::Value>(&lines(dir.path())[4]).unwrap()["hash"]
    );
    // The segment left open, as by a crash, so that no seal vouches for
    // its end: only a checkpoint does.
    stop_without_seal(audit, dir.path()).await;
    let off_host = keys.path().join("shipped-checkpoint.json");
    fs::copy(&checkpoint, &off_host).unwrap();

    // The last record cut off whole, and the log's own checkpoint removed:
    // the chain alone is still good, the shipped checkpoint is not.
    let segment = newest_segment(dir.path());
    let text = fs::read_to_string(&segment).unwrap();
    let cut = &text[..text[..text.len() - 1].rfind('\n').unwrap() + 1];
    fs::write(&segment, cut).unwrap();
    fs::remove_file(&checkpoint).unwrap();
    assert_eq!(verify_chain(dir.path()).unwrap().records, 4);
    let err = verify(
        dir.path(),
        &VerifyOptions {
            keys: ring,
            checkpoints: vec![off_host],
        },
    )
    .unwrap_err();
    assert_eq!(
        (err.kind, err.line, err.seq),
        (Kind::Truncated, 5, Some(5)),
        "{err}"
    );
    assert_eq!(err.file, segment);
}

#[tokio::test]
async fn the_writer_will_not_start_on_a_log_cut_before_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Batch, 1 << 20)).unwrap();
    for i in 0..3 {
        audit.decision(decision(i)).await.unwrap();
    }
    // Shutting down checkpoints the last record.
    audit.shutdown().await;
    assert_eq!(read_json(&dir.path().join(CHECKPOINT_FILE))["seq"], 3);
    let segment = newest_segment(dir.path());
    let text = fs::read_to_string(&segment).unwrap();
    fs::write(&segment, &text[..text.find('\n').unwrap() + 1]).unwrap();

    let err = start(config(dir.path(), FsyncMode::Batch, 1 << 20))
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string()
            .contains("vouches for seq 3, but the log ends at seq 1"),
        "{err}"
    );
}

/// `fsync = "always"`: each answer comes after an fsync that covered its
/// record (the writer publishes the last synced seq only once `fsync(2)`
/// has returned, before it answers), and concurrent decisions share
/// fsyncs rather than taking one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_answers_each_decision_after_an_fsync_that_covered_it() {
    const N: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let audit = start(config(dir.path(), FsyncMode::Always, 1 << 30)).unwrap();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move {
                let seq = audit.decision(decision(i)).await.unwrap().seq;
                (seq, audit.stats().synced_seq.load(Relaxed))
            })
        })
        .collect();
    for task in tasks {
        let (seq, synced) = task.await.unwrap();
        assert!(
            synced >= seq,
            "seq {seq} answered when only {synced} was synced"
        );
    }
    let stats = audit.stats();
    let (writes, fsyncs) = (
        stats.writes_total.load(Relaxed),
        stats.fsyncs_total.load(Relaxed),
    );
    assert!(
        (1..=N).contains(&fsyncs),
        "{fsyncs} fsyncs for {N} decisions"
    );
    assert_eq!(fsyncs, writes, "one fsync per batch write");
    audit.shutdown().await;
    assert_eq!(verify_chain(dir.path()).unwrap().records, N);
}

/// Ten transfers a minute apart from 12:00, each a decision and (when
/// allowed) a completion, in segments of a few records each.
async fn transfers(dir: &Path) {
    let audit = start(config(dir, FsyncMode::Batch, 2000)).unwrap();
    for i in 0..10_u64 {
        let allowed = i % 2 == 0;
        let ts = format!("2026-03-01T12:{i:02}:00.000Z");
        audit
            .decision(DecisionRecord {
                ts: ts.clone().into(),
                tenant: Some(if i < 5 { "acme" } else { "globex" }.into()),
                key: Some(if i == 7 {
                    "=cmd,\"x\"".into()
                } else {
                    format!("staff/{i}.json").into()
                }),
                to: Some(Endpoint {
                    region: Some("us-east-1".into()),
                    country: Some("US".into()),
                    jurisdiction: Some(if i == 4 { "SG" } else { "US" }.into()),
                    via: Some("geoip".into()),
                    ..Endpoint::default()
                }),
                decision: if allowed { "allow" } else { "deny" }.into(),
                reason: if allowed { "basis" } else { "no_legal_basis" }.into(),
                basis: allowed.then(|| format!("scc-{}", i % 4).into()),
                status: (!allowed).then_some(403),
                ..decision(i)
            })
            .await
            .unwrap();
        if allowed {
            audit
                .completion(CompletionRecord {
                    ts: ts.replace(":00.000Z", ":30.000Z").into(),
                    ..completion(i)
                })
                .await;
        }
        seals_written(&audit).await;
    }
    audit.shutdown().await;
}

fn run_query(dir: &Path, filter: &query::Filter, format: query::Format) -> String {
    let mut out = Vec::new();
    query::query(dir, filter, format, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn request_ids(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                v["event"].as_str().unwrap(),
                v["request_id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn query_selects_by_time_and_decision_fields_and_keeps_lines_intact() {
    let dir = tempfile::tempdir().unwrap();
    transfers(dir.path()).await;
    let time = |s: &str| Some(query::parse_time(s).unwrap());
    let jsonl = |filter: query::Filter| run_query(dir.path(), &filter, query::Format::Jsonl);

    // Half-open, and completions are records too.
    let window = jsonl(query::Filter {
        since: time("2026-03-01T12:03:00Z"),
        until: time("2026-03-01T20:05:00+08:00"),
        ..query::Filter::default()
    });
    assert_eq!(
        request_ids(&window),
        ["decision:req-3", "decision:req-4", "completion:req-4"]
    );
    // Byte for byte the log's lines.
    let all = lines(dir.path());
    for line in window.lines() {
        assert!(all.iter().any(|l| l == line), "{line}");
    }

    let denied_globex = jsonl(query::Filter {
        tenant: Some("globex".into()),
        decision: Some("deny".into()),
        reason: Some("no_legal_basis".into()),
        ..query::Filter::default()
    });
    assert_eq!(
        request_ids(&denied_globex),
        ["decision:req-5", "decision:req-7", "decision:req-9"]
    );
    let by_basis = jsonl(query::Filter {
        basis: Some("scc-0".into()),
        ..query::Filter::default()
    });
    assert_eq!(
        request_ids(&by_basis),
        ["decision:req-0", "decision:req-4", "decision:req-8"]
    );
    // `to` matches a jurisdiction, region or country.
    for (to, expected) in [
        ("SG", &["decision:req-4"][..]),
        (
            "us-east-1",
            &["decision:req-0", "decision:req-4", "decision:req-8"],
        ),
    ] {
        let found = jsonl(query::Filter {
            basis: Some("scc-0".into()),
            to: Some(to.into()),
            since: time("2026-03-01"),
            ..query::Filter::default()
        });
        assert_eq!(request_ids(&found), expected, "{to}");
    }
}

#[tokio::test]
async fn query_skips_sealed_segments_outside_the_time_range() {
    let dir = tempfile::tempdir().unwrap();
    transfers(dir.path()).await;
    let segments = chain::segments(dir.path()).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    // The first segment made unreadable as records: a query that read it
    // would fail.
    let (_, first) = &segments[0];
    fs::write(first, b"not a record\n").unwrap();
    let filter = query::Filter {
        since: Some(query::parse_time("2026-03-01T12:09:00Z").unwrap()),
        ..query::Filter::default()
    };
    let out = run_query(dir.path(), &filter, query::Format::Jsonl);
    assert_eq!(request_ids(&out), ["decision:req-9"]);

    let mut sink = Vec::new();
    let err = query::query(
        dir.path(),
        &query::Filter::default(),
        query::Format::Jsonl,
        &mut sink,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with(":1: not a record: expected ident at line 1 column 2"),
        "{err}"
    );
}

#[tokio::test]
async fn query_writes_csv_that_a_spreadsheet_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    transfers(dir.path()).await;
    let csv = run_query(
        dir.path(),
        &query::Filter {
            tenant: Some("globex".into()),
            ..query::Filter::default()
        },
        query::Format::Csv,
    );
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], query::CSV_COLUMNS.join(","));
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(
        rows[1].starts_with("decision,9,2026-03-01T12:05:00.000Z,edge-test,req-5,globex,GetObject,egress,acme-hr,staff/5.json,"),
        "{}",
        rows[1]
    );
    // The key `=cmd,"x"`: quoted, quotes doubled, and not a formula.
    assert!(
        rows[3].contains(r#",acme-hr,"'=cmd,""x""","#),
        "{}",
        rows[3]
    );
    assert!(rows[1].contains(",US,us-east-1,US,geoip,"), "{}", rows[1]);
}

#[test]
fn query_times_are_rfc3339_or_dates() {
    assert_eq!(
        query::parse_time("2026-03-01").unwrap(),
        "2026-03-01T00:00:00.000Z"
    );
    assert_eq!(
        query::parse_time("2026-03-01T08:30:00+08:00").unwrap(),
        "2026-03-01T00:30:00.000Z"
    );
    assert!(query::parse_time("yesterday").is_err());
}

// ---------------------------------------------------------------------------
// Rule sets kept beside the log, replay and report.

/// Rules for replay and report: split over files (one in a subdirectory)
/// so that keeping them is tested on a tree. HK has a region for a peer.
const REPLAY_RULES: [(&str, &str); 2] = [
    (
        "world.toml",
        r#"
[[jurisdiction]]
id = "CN"
countries = ["CN"]

[[jurisdiction]]
id = "EU"
countries = ["DE", "FR", "NO"]

[[jurisdiction]]
id = "HK"
countries = ["HK"]

[[jurisdiction]]
id = "US"
countries = ["US"]
export = "free"

[[region]]
id = "cn-beijing-6"
jurisdiction = "CN"

[[region]]
id = "cn-shanghai-2"
jurisdiction = "CN"

[[region]]
id = "eu-frankfurt-1"
jurisdiction = "EU"

[[region]]
id = "hk-1"
jurisdiction = "HK"

[[region]]
id = "us-east-1"
jurisdiction = "US"

[[category]]
id = "public"
rank = 10
cross_border = "free"

[[category]]
id = "content"
rank = 20
cross_border = "basis"

[[category]]
id = "identity"
rank = 50
cross_border = "never"

[[network]]
cidr = "10.0.0.0/8"
region = "cn-shanghai-2"

[[peer]]
id = "hk-replicator"
region = "hk-1"
san = "hk.example"
"#,
    ),
    (
        "tenants/acme.toml",
        r#"
[[tenant]]
id = "acme"
home_regions = ["cn-beijing-6", "cn-shanghai-2"]
default_category = "content"

[[tenant]]
id = "globex"
home_regions = ["eu-frankfurt-1", "us-east-1"]
default_category = "content"

[[tenant]]
id = "initech"
home_regions = ["cn-beijing-6"]
default_category = "content"
mode = "monitor"
monitor_until = 2999-12-31

[[bucket]]
name = "acme-data"
tenant = "acme"
region = "cn-beijing-6"

[[bucket]]
name = "acme-sh"
tenant = "acme"
region = "cn-shanghai-2"

[[bucket]]
name = "acme-hr"
tenant = "acme"
category = "identity"

[[bucket]]
name = "acme-www"
tenant = "acme"
category = "public"
max_category = "public"

[[bucket]]
name = "acme-eu"
tenant = "acme"
region = "eu-frankfurt-1"

[[bucket]]
name = "globex-eu"
tenant = "globex"
region = "eu-frankfurt-1"

[[bucket]]
name = "globex-us"
tenant = "globex"
region = "us-east-1"

[[bucket]]
name = "initech-data"
tenant = "initech"

[[classify]]
bucket = "acme-data"
prefix = "staff/"
category = "identity"

[[classify]]
bucket = "acme-data"
prefix = "pub/"
category = "public"

[[basis]]
id = "acme-hk-contract"
tenant = "acme"
kind = "pipl-standard-contract"
from = "CN"
to = ["HK"]
categories = ["content"]
valid_from = 2024-01-01
valid_until = 2026-05-15
evidence = "test"
"#,
    ),
];

/// Answers of the test GeoIP database (geoip/README.md).
const IP_CN: &str = "175.16.199.1";
const IP_HK: &str = "2001:2e0::1";
const IP_GB: &str = "81.2.69.142";
const IP_US: &str = "216.160.83.56";
const IP_NOWHERE: &str = "214.1.1.1";

/// The day the recorded requests were made.
const DAY: &str = "2026-03-01";

/// Writes the rule files under `root/rules`, with an editor's lock file
/// and a README that are not rules.
fn write_rules(root: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join("rules");
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    fs::write(dir.join(".#world.toml"), "not = [toml").unwrap();
    fs::write(dir.join("README.md"), "notes").unwrap();
    dir
}

fn instance_settings() -> crate::snapshot::InstanceSettings {
    crate::snapshot::InstanceSettings {
        region: "cn-beijing-6".into(),
        default_mode: crate::rules::model::Mode::Enforce,
        unknown_bucket_monitor: false,
        unknown_location_allow: false,
    }
}

fn compile_dir(dir: &Path) -> crate::rules::model::RuleSet {
    crate::rules::compile::load_dir(dir, crate::explain::parse_date(DAY).unwrap())
        .unwrap()
        .rules
}

fn snapshot(rules_dir: &Path) -> crate::snapshot::Snapshot {
    let geoip = crate::locate::geoip::GeoIp::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/GeoIP2-Country-Test.mmdb"),
    )
    .unwrap();
    crate::snapshot::Snapshot::build(
        compile_dir(rules_dir),
        std::sync::Arc::new(geoip),
        &instance_settings(),
    )
    .unwrap()
}

/// A hypothetical request, as `explain` takes it.
struct Req {
    id: &'static str,
    method: &'static str,
    path: &'static str,
    ip: &'static str,
    headers: &'static [(&'static str, &'static str)],
    peer: Option<&'static str>,
    body: Option<&'static str>,
}

const fn req(id: &'static str, method: &'static str, path: &'static str, ip: &'static str) -> Req {
    Req {
        id,
        method,
        path,
        ip,
        headers: &[],
        peer: None,
        body: None,
    }
}

/// The decision record the gate writes for `r` on `DAY`: decided by the
/// same code as a live request (`explain` classifies, locates, decides and
/// describes it).
fn recorded(snap: &crate::snapshot::Snapshot, r: &Req) -> DecisionRecord<'static> {
    let settings = crate::describe::RecordSettings {
        instance: "edge-test".into(),
        client_ip: ClientIpMode::Truncate,
        key_hash: false,
        hmac_key: vec![7; 32],
    };
    let hosts = crate::s3::Hosts {
        path_style: vec!["localhost".into()],
        virtual_host_domains: vec![],
    };
    let q = crate::explain::Query {
        method: r.method.into(),
        url: format!("http://localhost{}", r.path),
        client_ip: r.ip.parse().unwrap(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        at: Some(DAY.into()),
        peer: r.peer.map(Into::into),
        stored_category: None,
        body: r.body.map(Into::into),
    };
    let mut v = crate::explain::explain(snap, &settings, &hosts, &q).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("trace");
    obj.insert("seq".into(), 0.into());
    obj.insert("prev".into(), "".into());
    obj.insert("request_id".into(), r.id.into());
    match serde_json::from_value(v).unwrap() {
        Record::Decision(d) => *d,
        other => panic!("{other:?}"),
    }
}

const REPLICATE_TO_EU: &str = "<ReplicationConfiguration><Rule><Status>Enabled</Status><Filter/>\
     <Destination><Bucket>arn:aws:s3:::globex-eu</Bucket></Destination></Rule></ReplicationConfiguration>";

/// One request for every decision reason and every way a requester is
/// located, with the reason `explain` gives it.
const EVERY_REASON: [(Req, &str); 19] = [
    (
        req("same", "GET", "/acme-data/report.txt", IP_CN),
        "same_jurisdiction",
    ),
    (
        req("basis", "GET", "/acme-data/report.txt", IP_HK),
        "legal_basis",
    ),
    (
        req("nobasis", "GET", "/acme-data/report.txt", IP_GB),
        "no_legal_basis",
    ),
    (
        req("forbidden", "GET", "/acme-hr/passport.jpg", IP_HK),
        "forbidden_category",
    ),
    (
        req("classified", "GET", "/acme-data/staff/1.json", IP_HK),
        "forbidden_category",
    ),
    (
        req("public", "GET", "/acme-www/index.html", IP_GB),
        "unrestricted_category",
    ),
    (
        req("export", "GET", "/globex-us/usage.csv", IP_CN),
        "unrestricted_export",
    ),
    (
        req("nowhere", "GET", "/acme-data/report.txt", IP_NOWHERE),
        "unknown_location",
    ),
    (
        req("unknown", "GET", "/nobody-owns-this/k", IP_CN),
        "unknown_bucket",
    ),
    (req("pin", "PUT", "/acme-eu/k", IP_CN), "residency_pin"),
    (
        req("control", "DELETE", "/acme-data/gone", IP_CN),
        "control_operation",
    ),
    (
        req("monitor", "GET", "/initech-data/x.txt", IP_GB),
        "no_legal_basis",
    ),
    (
        Req {
            headers: &[("x-amz-meta-data-category", "identity")],
            ..req("invalid", "PUT", "/acme-www/k", IP_CN)
        },
        "invalid_category",
    ),
    (
        Req {
            headers: &[("x-amz-meta-data-category", "identity")],
            ..req("declared", "PUT", "/acme-data/k", IP_US)
        },
        "unrestricted_export",
    ),
    (
        Req {
            peer: Some("hk-replicator"),
            ..req("peer", "GET", "/acme-data/report.txt", IP_CN)
        },
        "legal_basis",
    ),
    (
        req("network", "PUT", "/acme-sh/k", "10.1.2.3"),
        "same_jurisdiction",
    ),
    (
        Req {
            headers: &[("x-amz-copy-source", "/acme-data/report.txt")],
            ..req("copy", "PUT", "/acme-sh/copied", IP_CN)
        },
        "same_jurisdiction",
    ),
    (
        Req {
            body: Some(REPLICATE_TO_EU),
            ..req("replicate", "PUT", "/acme-data?replication", IP_CN)
        },
        "residency_pin",
    ),
    (
        req(
            "listing",
            "GET",
            "/acme-data?list-type=2&prefix=pub/",
            IP_GB,
        ),
        "no_legal_basis",
    ),
];

/// A log of `EVERY_REASON` decided under the rules in `rules_dir`, with
/// that rule set kept beside it as the gate keeps it.
async fn every_reason_log(dir: &Path, rules_dir: &Path) {
    let snap = snapshot(rules_dir);
    assert!(RuleStore::new(dir)
        .keep(rules_dir, &snap.rules.version)
        .unwrap());
    let audit = start(config(dir, FsyncMode::Never, 1 << 20)).unwrap();
    for (r, reason) in &EVERY_REASON {
        let rec = recorded(&snap, r);
        assert_eq!(rec.reason, *reason, "{}: {rec:?}", r.id);
        audit.decision(rec).await.unwrap();
    }
    audit.shutdown().await;
}

fn run_replay(dir: &Path, candidate: &Path) -> (replay::ReplaySummary, Vec<serde_json::Value>) {
    let judge = replay::Judge::new(compile_dir(candidate), &instance_settings()).unwrap();
    let mut out = Vec::new();
    let summary = replay::replay(
        dir,
        &query::Filter::default(),
        &judge,
        &instance_settings(),
        false,
        replay::ReplayFormat::Jsonl,
        &mut out,
    )
    .unwrap();
    let rows = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, rows)
}

#[test]
fn a_kept_rule_set_is_a_copy_that_compiles_to_its_version() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let version = compile_dir(&rules_dir).version;
    let log = root.path().join("audit");
    let store = RuleStore::new(&log);
    assert!(store.keep(&rules_dir, &version).unwrap());
    assert!(!store.keep(&rules_dir, &version).unwrap(), "kept once");

    let kept = log.join("rules").join(&version);
    assert_eq!(store.path(&version), kept);
    for (name, text) in REPLAY_RULES {
        assert_eq!(fs::read_to_string(kept.join(name)).unwrap(), text);
    }
    assert!(!kept.join(".#world.toml").exists() && !kept.join("README.md").exists());
    assert_eq!(compile_dir(&kept).version, version);
    assert_eq!(store.load(&version).unwrap().version, version);

    // A version the files do not have: nothing is kept under it, and no
    // temporary copy is left behind.
    let wrong = "0".repeat(64);
    match store.keep(&rules_dir, &wrong) {
        Err(KeepError::Changed { found }) => assert_eq!(found, version),
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = fs::read_dir(log.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [version.as_str()]);
    assert!(store.load(&wrong).unwrap_err().contains("not kept"));

    // An edited copy no longer has the version it is kept under.
    fs::write(
        kept.join("world.toml"),
        REPLAY_RULES[0].1.replace("HK", "MO"),
    )
    .unwrap();
    assert!(store.load(&version).unwrap_err().contains("altered"));

    // The log's own files are not mistaken for segments by the tools.
    assert!(verify_chain(&log).is_ok());
}

#[tokio::test]
async fn replay_under_the_recorded_rules_reproduces_the_recorded_decisions() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let log = root.path().join("audit");
    every_reason_log(&log, &rules_dir).await;
    let version = compile_dir(&rules_dir).version;

    let (summary, rows) = run_replay(&log, &log.join("rules").join(&version));
    assert_eq!(summary.decisions, EVERY_REASON.len() as u64);
    // What a refused write declared is not in its record.
    assert_eq!(
        summary.unreplayable.iter().collect::<Vec<_>>(),
        [(&"declared_category_not_recorded", &1)]
    );
    // Everything else comes out as recorded, but for the listing, whose
    // prefix the record does not keep: it is replayed as a listing of the
    // whole bucket, says so, and is counted as not reproduced.
    let replayed = EVERY_REASON.len() as u64 - 1;
    assert_eq!(
        summary.fidelity.get(&replay::Fidelity::Reproduced),
        Some(&(replayed - 1))
    );
    assert_eq!(
        summary.fidelity.get(&replay::Fidelity::NotReproduced),
        Some(&1)
    );
    assert_eq!(summary.changed, 1);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["request_id"], "listing");
    assert_eq!(row["fidelity"], "not_reproduced");
    assert_eq!(
        row["notes"],
        serde_json::json!(["listing_prefix_not_recorded"])
    );
    assert_eq!(row["old"]["reason"], "no_legal_basis");
    assert_eq!(row["new"]["reason"], "forbidden_category");
    assert!(summary.missing_rules.is_empty());
}

#[tokio::test]
async fn replay_lists_what_a_candidate_rule_set_would_change() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let log = root.path().join("audit");
    every_reason_log(&log, &rules_dir).await;

    // The contract with HK lapses before the recorded day, the unknown
    // bucket gets an owner, and GB becomes part of the EU.
    let candidate = tempfile::tempdir().unwrap();
    let tenants = REPLAY_RULES[1]
        .1
        .replace("valid_until = 2026-05-15", "valid_until = 2026-02-01")
        + "\n[[bucket]]\nname = \"nobody-owns-this\"\ntenant = \"acme\"\n";
    let world = REPLAY_RULES[0].1.replace("\"NO\"]", "\"NO\", \"GB\"]");
    let candidate_dir = write_rules(
        candidate.path(),
        &[("world.toml", &world), ("tenants/acme.toml", &tenants)],
    );
    let (summary, rows) = run_replay(&log, &candidate_dir);
    let outcome = |o: &serde_json::Value| {
        format!(
            "{} {}",
            o["decision"].as_str().unwrap(),
            o["reason"].as_str().unwrap()
        )
    };
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["request_id"].as_str().unwrap(),
                outcome(&r["old"]),
                outcome(&r["new"]),
                r["notes"].clone(),
            )
        })
        .collect();
    let none = serde_json::json!([]);
    let want = [
        (
            "basis",
            "allow legal_basis",
            "deny no_legal_basis",
            none.clone(),
        ),
        (
            "unknown",
            "deny unknown_bucket",
            "deny unknown_location",
            serde_json::json!(["requester_not_recorded"]),
        ),
        ("peer", "allow legal_basis", "deny no_legal_basis", none),
        (
            "listing",
            "deny no_legal_basis",
            "deny forbidden_category",
            serde_json::json!(["listing_prefix_not_recorded"]),
        ),
    ]
    .map(|(id, old, new, notes)| (id, old.to_owned(), new.to_owned(), notes));
    assert_eq!(got, want);
    assert_eq!(rows[0]["old"]["basis"], "acme-hk-contract");
    assert_eq!(rows[0]["new"]["basis"], serde_json::Value::Null);
    assert_eq!(rows[0]["fidelity"], "reproduced");
    assert_eq!(summary.changed, 4);
    // GB joining the EU changes no decision: the EU has no basis to CN's
    // data either, and GB clients still read acme-www's public data.
}

#[test]
fn records_of_unknown_operations_or_refused_declarations_are_not_replayed() {
    let mut d = decision(1);
    d.ts = "2026-03-01T10:00:00.000Z".into();
    assert!(replay::rebuild(&d, false).is_ok());
    d.reason = "invalid_category".into();
    assert_eq!(
        replay::rebuild(&d, false).err(),
        Some("declared_category_not_recorded")
    );
    d.reason = "no_legal_basis".into();
    d.op = "GetSomethingNew".into();
    assert_eq!(replay::rebuild(&d, false).err(), Some("unknown_operation"));
}

/// A request of the report's log: which, how many times, when, and the
/// (bytes_in, bytes_out) of each completion (none for denials). The
/// object's bytes are those out for egress, in for ingress; the other
/// direction carries a byte that must not count.
type Planned = (&'static str, u64, &'static str, Option<(u64, u64)>);

/// A log with known counts for the report: decisions from `EVERY_REASON`
/// at chosen times, completions with chosen byte counts, and records
/// outside the period.
async fn report_log(dir: &Path, rules_dir: &Path) {
    let snap = snapshot(rules_dir);
    RuleStore::new(dir)
        .keep(rules_dir, &snap.rules.version)
        .unwrap();
    let audit = start(config(dir, FsyncMode::Never, 1 << 20)).unwrap();
    let by_id = |id: &str| {
        let (r, _) = EVERY_REASON.iter().find(|(r, _)| r.id == id).unwrap();
        recorded(&snap, r)
    };
    let plan: [Planned; 9] = [
        ("before", 1, "2026-02-28T23:59:59.999Z", Some((1, 5))),
        ("same", 3, "2026-03-01T08:00:00.000Z", Some((1, 100))),
        ("basis", 2, "2026-03-01T09:00:00.000Z", Some((1, 1000))),
        ("nobasis", 1, "2026-03-01T09:30:00.000Z", None),
        ("monitor", 1, "2026-03-01T10:00:00.000Z", Some((1, 50))),
        ("unknown", 1, "2026-03-01T11:00:00.000Z", None),
        ("control", 1, "2026-03-01T12:00:00.000Z", Some((0, 0))),
        ("declared", 1, "2026-03-01T13:00:00.000Z", Some((7, 1))),
        ("after", 1, "2026-03-02T00:00:00.000Z", Some((1, 9))),
    ];
    for (id, times, ts, bytes) in plan {
        for n in 0..times {
            let source = match id {
                "before" | "after" => "same",
                _ => id,
            };
            let mut rec = by_id(source);
            rec.request_id = format!("{id}-{n}").into();
            rec.ts = ts.into();
            audit.decision(rec).await.unwrap();
            if let Some((bytes_in, bytes_out)) = bytes {
                audit
                    .completion(CompletionRecord {
                        request_id: format!("{id}-{n}").into(),
                        outcome: "complete".into(),
                        status: 200,
                        bytes_in,
                        bytes_out,
                        ts: ts.replace("00.000Z", "01.000Z").into(),
                        ..CompletionRecord::default()
                    })
                    .await;
            }
        }
    }
    // A hand-made record whose strings would run as script if the page
    // did not escape them, under a rule set not kept.
    let mut hostile = by_id("basis");
    hostile.request_id = "hostile".into();
    hostile.ts = "2026-03-01T14:00:00.000Z".into();
    hostile.basis = Some("<script>alert(1)</script>".into());
    hostile.to.as_mut().unwrap().jurisdiction = Some("\"><img src=x onerror=alert(2)>".into());
    hostile.rules_version = "not-kept".into();
    audit.decision(hostile).await.unwrap();
    audit.shutdown().await;
}

#[tokio::test]
async fn the_report_counts_flows_bases_denials_and_expiring_bases() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let log = root.path().join("audit");
    report_log(&log, &rules_dir).await;
    let version = compile_dir(&rules_dir).version;
    let r = report::build(
        &log,
        Some("2026-03-01T00:00:00.000Z".into()),
        Some("2026-03-02T00:00:00.000Z".into()),
        &VerifyOptions::default(),
    )
    .unwrap();

    assert!(r.verification.ok, "{:?}", r.verification);
    assert!(r.verification.lines[0].starts_with("verified: seq 1 to "));
    assert_eq!(r.first.as_deref(), Some("2026-03-01T08:00:00.000Z"));
    assert_eq!(r.last.as_deref(), Some("2026-03-01T14:00:00.000Z"));
    let t = &r.totals;
    assert_eq!(
        (
            t.decisions,
            t.allowed,
            t.denied,
            t.monitor_denied,
            t.control
        ),
        (11, 8, 2, 1, 1)
    );
    // Every forwarded request in the period but the hostile one completed:
    // 3×100 + 2×1000 + 50 + 0 + 7 object bytes.
    assert_eq!((t.completions, t.incomplete, t.bytes), (8, 1, 2357));

    let flow = |from: &str, to: &str| {
        r.flows
            .iter()
            .find(|f| f.from == from && f.to == to)
            .cloned()
            .unwrap_or_else(|| panic!("no flow {from}→{to}: {:?}", r.flows))
    };
    let tally = |requests, bytes| report::Tally { requests, bytes };
    let cn_cn = flow("CN", "CN");
    assert_eq!(cn_cn.allowed, tally(3, 300));
    let cn_hk = flow("CN", "HK");
    assert_eq!(cn_hk.allowed, tally(2, 2000));
    let cn_gb = flow("CN", "GB");
    assert_eq!(cn_gb.denied, tally(1, 0));
    assert_eq!(cn_gb.monitor_denied, tally(1, 50));
    assert_eq!(flow("unknown", "unknown").denied, tally(1, 0));
    assert_eq!(flow("US", "CN").allowed, tally(1, 7));
    let hostile_to = "\"><img src=x onerror=alert(2)>";
    assert_eq!(flow("CN", hostile_to).allowed, tally(1, 0));
    assert_eq!(r.flows.len(), 6, "{:?}", r.flows);

    let contract = r
        .bases
        .iter()
        .find(|b| b.basis == "acme-hk-contract")
        .unwrap();
    assert_eq!(contract.kind, "pipl-standard-contract");
    assert_eq!(contract.allowed, tally(2, 2000));
    assert_eq!(contract.routes.iter().collect::<Vec<_>>(), ["CN→HK"]);
    assert_eq!(r.bases.len(), 2);

    let denials: Vec<_> = r
        .denials
        .iter()
        .map(|d| {
            (
                d.reason.as_str(),
                d.tenant.as_str(),
                d.decision.as_str(),
                d.requests,
            )
        })
        .collect();
    assert_eq!(denials.len(), 3);
    for want in [
        ("no_legal_basis", "acme", "deny", 1),
        ("no_legal_basis", "initech", "monitor-deny", 1),
        ("unknown_bucket", "-", "deny", 1),
    ] {
        assert!(denials.contains(&want), "{denials:?}");
    }

    // The contract ends on 2026-05-15, 74 days after the period.
    assert_eq!(r.expiring.len(), 1);
    let e = &r.expiring[0];
    assert_eq!(
        (
            e.basis.as_str(),
            e.valid_until.as_str(),
            e.days_left,
            e.to.clone()
        ),
        ("acme-hk-contract", "2026-05-15", 74, vec!["HK".to_owned()])
    );
    assert_eq!(e.rules_version, version);
    let kept: Vec<_> = r
        .rules
        .iter()
        .map(|v| (v.version.as_str(), v.decisions, v.problem.is_none()))
        .collect();
    assert_eq!(kept, [(version.as_str(), 10, true), ("not-kept", 1, false)]);

    // Without bounds: the records before and after count too.
    let all = report::build(&log, None, None, &VerifyOptions::default()).unwrap();
    assert_eq!(all.totals.decisions, 13);
    assert_eq!(
        all.flows
            .iter()
            .find(|f| f.from == "CN" && f.to == "CN")
            .unwrap()
            .allowed,
        tally(5, 314)
    );

    // The page: verification first, everything from the log escaped, no
    // external reference.
    let mut page = Vec::new();
    report::write(&r, report::ReportFormat::Html, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    let at = |s: &str| {
        page.find(s)
            .unwrap_or_else(|| panic!("{s} not in the page"))
    };
    assert!(at("<h2>Verification</h2>") < at("<h2>Flows between jurisdictions</h2>"));
    assert!(at("The log verifies") < at("<svg"));
    assert!(!page.contains("<script") && !page.contains("<img"));
    at("&lt;script&gt;alert(1)&lt;/script&gt;");
    at("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;");
    // The SVG namespace is a name, not something fetched.
    let rest = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for external in ["http://", "https://", "src=\"", "href=", "url(", "@import"] {
        assert!(!rest.contains(external), "{external} in the page");
    }

    // CSV and JSON carry the same tables.
    let mut csv = Vec::new();
    report::write(&r, report::ReportFormat::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        report::REPORT_CSV_COLUMNS.join(",")
    );
    assert!(csv.contains("\nflow,CN,HK,allow,,,,,2,2000,,,\n"), "{csv}");
    assert!(csv.contains("\ndenial,,,monitor-deny,no_legal_basis,initech,,,1,,,,\n"));
    assert!(csv.contains(
        "\nexpiring,CN,HK,,,acme,acme-hk-contract,pipl-standard-contract,,,2026-05-15,74,\n"
    ));
    let mut json = Vec::new();
    report::write(&r, report::ReportFormat::Json, &mut json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["totals"]["bytes"], 2357);
    assert_eq!(json["flows"][0]["from"], "CN");
    assert_eq!(json["flows"][0]["allowed"]["requests"], 3);
}

#[tokio::test]
async fn a_report_on_a_log_that_does_not_verify_says_so_first() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let log = root.path().join("audit");
    report_log(&log, &rules_dir).await;
    let seg = newest_segment(&log);
    let text = fs::read_to_string(&seg).unwrap();
    fs::write(
        &seg,
        text.replacen(
            "\"reason\":\"no_legal_basis\"",
            "\"reason\":\"legal_basis\"",
            1,
        ),
    )
    .unwrap();
    let r = report::build(&log, None, None, &VerifyOptions::default()).unwrap();
    assert!(!r.verification.ok);
    assert!(
        r.verification.lines[0].contains("edited"),
        "{:?}",
        r.verification
    );
    let mut page = Vec::new();
    report::write(&r, report::ReportFormat::Html, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.find("does NOT verify").unwrap() < page.find("<svg").unwrap());
}

#[test]
fn every_rule_set_a_reload_brings_into_force_is_kept_first() {
    let root = tempfile::tempdir().unwrap();
    let rules_dir = write_rules(root.path(), &REPLAY_RULES);
    let log = root.path().join("audit");
    let sources = crate::reload::Sources {
        rules_dir: rules_dir.clone(),
        geoip: Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/GeoIP2-Country-Test.mmdb"),
        instance: instance_settings(),
    };
    let (first, _) = crate::reload::initial(&sources).unwrap();
    let first_version = first.rules.version.clone();
    let reloader = crate::reload::Reloader::new(
        sources,
        first,
        std::sync::Arc::new(crate::metrics::Metrics::new()),
        crate::describe::RecordSettings {
            instance: "edge-test".into(),
            client_ip: ClientIpMode::Truncate,
            key_hash: false,
            hmac_key: vec![7; 32],
        },
        crate::s3::Hosts {
            path_style: vec!["localhost".into()],
            virtual_host_domains: vec![],
        },
        RuleStore::new(&log),
    );
    fs::write(
        rules_dir.join("tenants/more.toml"),
        "[[bucket]]\nname = \"acme-new\"\ntenant = \"acme\"\n",
    )
    .unwrap();
    let second = reloader.reload().unwrap();
    assert_ne!(second, first_version);
    assert_eq!(reloader.current().rules.version, second);
    let store = RuleStore::new(&log);
    assert_eq!(store.load(&second).unwrap().version, second);
    assert!(store
        .load(&second)
        .unwrap()
        .bucket_by_name("acme-new")
        .is_some());
    // The first is kept by the gate's start-up, which refuses to run when
    // it cannot be; the reloader keeps those that follow.
    assert!(store.load(&first_version).is_err());
}
