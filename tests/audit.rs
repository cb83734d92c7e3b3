//! `gatekeeper audit keygen` and `gatekeeper audit verify`, run as the
//! binary, on logs written by the real writer and then tampered with in
//! every way DESIGN §6 lists: verify must name the file, line, seq and
//! kind of the first problem.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatekeeper::audit::{self, AuditConfig, DecisionRecord, FsyncMode};
use sha2::{Digest, Sha256};

fn gatekeeper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
        .args(args)
        .output()
        .expect("gatekeeper runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `audit keygen` into `dir`; the key_id it printed.
fn keygen(dir: &Path, name: &str) -> String {
    let out = gatekeeper(&[
        "audit",
        "keygen",
        "--out",
        dir.to_str().unwrap(),
        "--name",
        name,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("key_id "))
        .unwrap_or_else(|| panic!("no key_id in {stdout}"))
        .to_owned()
}

fn decision(i: u64) -> DecisionRecord<'static> {
    DecisionRecord {
        request_id: format!("req-{i}").into(),
        tenant: Some("acme".into()),
        op: "GetObject".into(),
        direction: "egress".into(),
        bucket: Some("acme-hr".into()),
        key: Some(format!("staff/{i}.json").into()),
        decision: "deny".into(),
        reason: "no_legal_basis".into(),
        status: Some(403),
        rules_version: "ab12".into(),
        ..DecisionRecord::default()
    }
}

/// Appends `n` decisions to the log in `dir`, signed with `key`, in
/// segments of about five records; the writer seals the last segment and
/// checkpoints when it stops.
fn write_log(dir: &Path, key: &Path, n: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let writer = audit::start(AuditConfig {
            dir: dir.to_owned(),
            instance: "edge-test".into(),
            fsync: FsyncMode::Batch,
            segment_bytes: 2500,
            signing_key: Some(key.to_owned()),
            ..AuditConfig::default()
        })
        .unwrap();
        for i in 0..n {
            writer.decision(decision(i)).await.unwrap();
            // The writer thread seals a closed segment while the next one
            // fills; one written faster than that would grow past its size.
            let awaiting = &writer.stats().awaiting_seal;
            let deadline = Instant::now() + Duration::from_secs(10);
            while awaiting.load(Ordering::Relaxed) > 0 {
                assert!(Instant::now() < deadline, "a seal took 10 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        writer.shutdown().await;
    });
}

/// A signed log of 22 records in several segments, every one sealed (the
/// newest at shutdown), and its public key.
struct Fixture {
    tmp: tempfile::TempDir,
    log: PathBuf,
    public: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let certs = tmp.path().join("certs");
        keygen(&certs, "audit");
        let log = tmp.path().join("audit");
        write_log(&log, &certs.join("audit.pem"), 22);
        let f = Fixture {
            log,
            public: certs.join("audit.pub.pem"),
            tmp,
        };
        let segments = f.segments();
        assert!(segments.len() >= 4, "{segments:?}");
        assert!(seal_of(segments.last().unwrap()).exists());
        f
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        found.sort();
        found
    }

    /// The second segment: sealed, with a sealed one before it.
    fn middle(&self) -> PathBuf {
        self.segments()[1].clone()
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "audit",
            "verify",
            self.log.to_str().unwrap(),
            "--public-key",
            self.public.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        gatekeeper(&args)
    }

    /// Runs verify, expects it to fail, and checks where and what it says:
    /// `FILE[:LINE] (seq N): KIND: …`.
    fn fails_at(&self, file: &Path, line: Option<u64>, seq: u64, kind: &str) -> String {
        let out = self.verify(&[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}{stderr}", text(&out.stdout));
        let spot = match line {
            Some(n) => format!("{}:{n} (seq {seq}): {kind}: ", file.display()),
            None => format!("{} (seq {seq}): {kind}: ", file.display()),
        };
        assert!(stderr.starts_with(&spot), "expected {spot:?}, got {stderr}");
        stderr
    }
}

fn seal_of(segment: &Path) -> PathBuf {
    segment.with_extension("seal.json")
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn first_seq(segment: &Path) -> u64 {
    let name = segment.file_name().unwrap().to_str().unwrap();
    name["segment-".len()..name.len() - ".jsonl".len()]
        .parse()
        .unwrap()
}

fn field(line: &str, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()[name].clone()
}

/// The line with its hash recomputed by the documented rule, as someone
/// who edits the log without the signing key can.
fn rehash(line: &str) -> String {
    let at = line.rfind(r#","hash":""#).unwrap();
    let prev = field(line, "prev");
    let hash = hex::encode(
        Sha256::new()
            .chain_update(prev.as_str().unwrap())
            .chain_update(&line[..at])
            .chain_update("}")
            .finalize(),
    );
    format!("{},\"hash\":\"{hash}\"}}", &line[..at])
}

/// `line` linked to `before` and rehashed.
fn relink(line: &str, before: &str) -> String {
    let prev = field(line, "prev");
    rehash(&line.replace(
        prev.as_str().unwrap(),
        field(before, "hash").as_str().unwrap(),
    ))
}

/// A record of the forger's own, like `template` but allowed, chained
/// after `before` as record `seq`.
fn forge(template: &str, before: &str, seq: u64) -> String {
    let line = template
        .replacen(
            &format!("\"seq\":{},", field(template, "seq")),
            &format!("\"seq\":{seq},"),
            1,
        )
        .replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    relink(&line, before)
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_one() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let id = keygen(&certs, "audit");
    assert_eq!(id.len(), 16);
    let private = certs.join("audit.pem");
    let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(fs::read_to_string(&private)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(fs::read_to_string(certs.join("audit.pub.pem"))
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let before = fs::read_to_string(&private).unwrap();
    let again = gatekeeper(&[
        "audit",
        "keygen",
        "--out",
        certs.to_str().unwrap(),
        "--name",
        "audit",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists; --force replaces it"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(fs::read_to_string(&private).unwrap(), before);

    let forced = gatekeeper(&[
        "audit",
        "keygen",
        "--out",
        certs.to_str().unwrap(),
        "--name",
        "audit",
        "--force",
    ]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(
        !text(&forced.stdout).contains(&id),
        "a new key has a new id"
    );
}

#[test]
fn an_untouched_log_verifies_with_its_range_count_and_key() {
    let f = Fixture::new();
    let out = f.verify(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let segments = f.segments().len();
    assert!(
        stdout.contains(&format!(
            "verified: seq 1 to 22, 22 record(s) in {segments} segment(s), {segments} sealed"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint.json: the log reaches seq 22"),
        "{stdout}"
    );
    assert!(stdout.contains("signatures: good, by key "), "{stdout}");

    // Without a key, nothing is claimed about the signatures.
    let unkeyed = gatekeeper(&["audit", "verify", f.log.to_str().unwrap()]);
    assert!(unkeyed.status.success());
    assert!(text(&unkeyed.stdout).contains("signatures: NOT checked"));
}

#[test]
fn an_edited_record_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    lines[1] = lines[1].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    write_lines(&seg, &lines);
    f.fails_at(&seg, Some(2), first_seq(&seg) + 1, "edited");
}

#[test]
fn an_edited_and_rehashed_record_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    lines[1] = rehash(&lines[1].replace("staff/", "other/"));
    write_lines(&seg, &lines);
    let err = f.fails_at(&seg, Some(2), first_seq(&seg) + 1, "edited");
    assert!(err.contains("hash was recomputed"), "{err}");
}

#[test]
fn a_rewritten_segment_is_caught_by_its_seal() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    // Edited, and every record after it rehashed and relinked: the chain
    // in the segment holds, its last hash is not the sealed one.
    lines[1] = rehash(&lines[1].replace("staff/", "other/"));
    for i in 2..lines.len() {
        lines[i] = relink(&lines[i], &lines[i - 1]);
    }
    write_lines(&seg, &lines);
    let err = f.fails_at(&seg, None, first_seq(&seg), "edited");
    assert!(err.contains("rewritten"), "{err}");
}

#[test]
fn a_deleted_record_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    lines.remove(2);
    write_lines(&seg, &lines);
    f.fails_at(&seg, Some(3), first_seq(&seg) + 3, "deleted");
}

#[test]
fn a_copied_record_is_named_as_inserted() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    lines.insert(2, lines[1].clone());
    write_lines(&seg, &lines);
    let err = f.fails_at(&seg, Some(3), first_seq(&seg) + 1, "inserted");
    assert!(err.contains("a copy of line 2"), "{err}");
}

#[test]
fn a_forged_record_is_named_as_inserted() {
    let f = Fixture::new();
    let seg = f.middle();
    let seq = first_seq(&seg) + 1;
    let mut lines = read_lines(&seg);
    // Chained after line 1 with the seq of line 2, so that it checks out on
    // its own; line 2 still links to line 1.
    let forged = forge(&lines[1], &lines[0], seq);
    lines.insert(1, forged);
    write_lines(&seg, &lines);
    f.fails_at(&seg, Some(2), seq, "inserted");
}

#[test]
fn reordered_records_are_named() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    lines.swap(1, 2);
    write_lines(&seg, &lines);
    let err = f.fails_at(&seg, Some(2), first_seq(&seg) + 2, "reordered");
    assert!(err.contains("it is at line 3"), "{err}");
}

#[test]
fn a_sealed_segment_cut_short_is_named_as_truncated() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    let last = lines.pop().unwrap();
    write_lines(&seg, &lines);
    let seq = field(&last, "seq").as_u64().unwrap();
    f.fails_at(&seg, Some(lines.len() as u64 + 1), seq, "truncated");
}

#[test]
fn a_record_appended_to_a_sealed_segment_is_named_as_inserted() {
    let f = Fixture::new();
    let seg = f.middle();
    let mut lines = read_lines(&seg);
    let last = lines.last().unwrap().clone();
    let seq = field(&last, "seq").as_u64().unwrap() + 1;
    lines.push(forge(&last, &last, seq));
    write_lines(&seg, &lines);
    f.fails_at(&seg, Some(lines.len() as u64), seq, "inserted");
}

#[test]
fn a_cut_tail_is_named_against_the_checkpoint_shipped_off_host() {
    let f = Fixture::new();
    let shipped = f.tmp.path().join("shipped.json");
    fs::rename(f.log.join("checkpoint.json"), &shipped).unwrap();
    let newest = f.segments().pop().unwrap();
    let mut lines = read_lines(&newest);
    lines.pop();
    write_lines(&newest, &lines);
    // The newest segment's seal removed too, as if a crash had left it
    // open: the chain alone cannot tell.
    fs::remove_file(seal_of(&newest)).unwrap();
    assert!(f.verify(&[]).status.success());

    let out = f.verify(&["--checkpoint", shipped.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let spot = format!(
        "{}:{} (seq 22): truncated: ",
        newest.display(),
        lines.len() + 1
    );
    assert!(stderr.starts_with(&spot), "expected {spot:?}, got {stderr}");
    assert!(stderr.contains("vouches for seq 22"), "{stderr}");
}

#[test]
fn a_deleted_segment_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    fs::remove_file(&seg).unwrap();
    let err = f.fails_at(&seg, None, first_seq(&seg), "deleted");
    assert!(err.contains("its seal remains"), "{err}");

    fs::remove_file(seal_of(&seg)).unwrap();
    let next = f.segments()[1].clone();
    let err = f.fails_at(&next, Some(1), first_seq(&next), "deleted");
    assert!(
        err.contains(&format!(
            "records {} to {} are missing",
            first_seq(&seg),
            first_seq(&next) - 1
        )),
        "{err}"
    );
}

/// The data of the first `n` segments deleted, as after archiving them
/// off the host; their seals stay.
fn archive_oldest(f: &Fixture, n: usize) -> Vec<PathBuf> {
    let gone: Vec<PathBuf> = f.segments()[..n].to_vec();
    for seg in &gone {
        fs::remove_file(seg).unwrap();
    }
    gone
}

#[test]
fn a_log_whose_oldest_segments_are_archived_verifies_and_says_so() {
    let f = Fixture::new();
    let gone = archive_oldest(&f, 2);
    let here = f.segments();
    let from = first_seq(&here[0]);
    let out = f.verify(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "verified: seq {from} to 22, {} record(s) in {n} segment(s), {n} sealed",
            23 - from,
            n = here.len()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "archived: seq 1 to {} in 2 segment(s), sealed, not read here",
            from - 1
        )),
        "{stdout}"
    );

    // With a key given, the seals standing in for the archived segments
    // must be signed by it like any other.
    let seal = seal_of(&gone[1]);
    let original = fs::read_to_string(&seal).unwrap();
    let at = original.rfind(",\"signature\":").unwrap();
    fs::write(&seal, format!("{},\"signature\":null}}\n", &original[..at])).unwrap();
    let err = f.fails_at(&seal, None, first_seq(&gone[1]), "bad seal");
    assert!(err.contains("unsigned"), "{err}");
}

#[test]
fn an_archived_segment_without_its_seal_is_named() {
    let f = Fixture::new();
    let gone = archive_oldest(&f, 2);
    fs::remove_file(seal_of(&gone[0])).unwrap();
    let err = f.fails_at(&gone[0], None, 1, "deleted");
    assert!(
        err.contains(&format!(
            "records 1 to {} are gone, and so are the seals that would vouch for them",
            first_seq(&gone[1]) - 1
        )),
        "{err}"
    );
}

#[test]
fn a_segment_gone_after_an_archived_run_is_named() {
    let f = Fixture::new();
    archive_oldest(&f, 1);
    let seg = f.segments()[1].clone();
    fs::remove_file(&seg).unwrap();
    let err = f.fails_at(&seg, None, first_seq(&seg), "deleted");
    assert!(err.contains("its seal remains"), "{err}");
}

#[test]
fn a_missing_seal_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    fs::remove_file(seal_of(&seg)).unwrap();
    f.fails_at(&seg, None, first_seq(&seg), "missing seal");
}

#[test]
fn an_altered_or_unsigned_seal_is_named() {
    let f = Fixture::new();
    let seg = f.middle();
    let seal = seal_of(&seg);
    let original = fs::read_to_string(&seal).unwrap();
    fs::write(&seal, original.replace("\"records\":", "\"records\":1")).unwrap();
    let err = f.fails_at(&seal, None, first_seq(&seg), "bad seal");
    assert!(err.contains("signature does not match"), "{err}");

    let at = original.rfind(",\"signature\":").unwrap();
    fs::write(&seal, format!("{},\"signature\":null}}\n", &original[..at])).unwrap();
    let err = f.fails_at(&seal, None, first_seq(&seg), "bad seal");
    assert!(err.contains("unsigned"), "{err}");
}

#[test]
fn a_seal_or_checkpoint_by_another_key_is_named() {
    let f = Fixture::new();
    let other = f.tmp.path().join("other");
    keygen(&other, "audit");
    let out = gatekeeper(&[
        "audit",
        "verify",
        f.log.to_str().unwrap(),
        "--public-key",
        other.join("audit.pub.pem").to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let spot = format!("{}: unknown key: ", f.log.join("checkpoint.json").display());
    assert!(stderr.starts_with(&spot), "expected {spot:?}, got {stderr}");
}

#[test]
fn a_log_signed_by_rotated_keys_verifies_with_both() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let (old, new) = (keygen(&certs, "old"), keygen(&certs, "new"));
    let log = tmp.path().join("audit");
    write_log(&log, &certs.join("old.pem"), 12);
    write_log(&log, &certs.join("new.pem"), 12);
    let dir = log.to_str().unwrap();
    let (old_pub, new_pub) = (certs.join("old.pub.pem"), certs.join("new.pub.pem"));

    let both = gatekeeper(&[
        "audit",
        "verify",
        dir,
        "--public-key",
        old_pub.to_str().unwrap(),
        "--public-key",
        new_pub.to_str().unwrap(),
    ]);
    let stdout = text(&both.stdout);
    assert!(both.status.success(), "{stdout}{}", text(&both.stderr));
    let (a, b) = if old < new {
        (&old, &new)
    } else {
        (&new, &old)
    };
    assert!(
        stdout.contains(&format!("signatures: good, by key {a}, {b}")),
        "{stdout}"
    );

    let only_new = gatekeeper(&[
        "audit",
        "verify",
        dir,
        "--public-key",
        new_pub.to_str().unwrap(),
    ]);
    let stderr = text(&only_new.stderr);
    assert_eq!(only_new.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("unknown key: signed by key {old}")),
        "{stderr}"
    );
    assert!(
        stderr.starts_with(
            &log.join("segment-00000000000000000001.seal.json")
                .display()
                .to_string()
        ),
        "{stderr}"
    );
}

#[test]
fn query_prints_matching_records_as_csv_or_as_the_log_lines() {
    let f = Fixture::new();
    let dir = f.log.to_str().unwrap();
    let csv = gatekeeper(&[
        "audit",
        "query",
        dir,
        "--tenant",
        "acme",
        "--decision",
        "deny",
        "--format",
        "csv",
    ]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let stdout = text(&csv.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(
        rows[0].starts_with("event,seq,ts,instance,request_id,tenant,"),
        "{stdout}"
    );
    assert_eq!(rows.len(), 23, "{stdout}");
    assert!(rows[22].starts_with("decision,22,"), "{stdout}");

    let none = gatekeeper(&["audit", "query", dir, "--tenant", "globex"]);
    assert!(none.status.success());
    assert_eq!(text(&none.stdout), "");

    let jsonl = gatekeeper(&["audit", "query", dir, "--since", "2000-01-01"]);
    let log: String = f
        .segments()
        .iter()
        .map(|s| fs::read_to_string(s).unwrap())
        .collect();
    assert_eq!(text(&jsonl.stdout), log);

    let bad = gatekeeper(&["audit", "query", dir, "--until", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("neither RFC 3339 nor YYYY-MM-DD"),
        "{}",
        text(&bad.stderr)
    );
}
