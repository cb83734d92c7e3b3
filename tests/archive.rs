//! `[audit.archive]`: sealed segments shipped to real S3 servers on
//! loopback — the built-in s3s-fs store, which checks SigV4 and has no
//! Object Lock, and moto, which has Object Lock — and deleted locally only
//! once the upload is confirmed.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{boto_at, eventually, Gate, Upstream, ACCESS_KEY, SECRET_KEY};

const PREFIX: &str = "fleet/eu";
const ARCHIVED: &str = "gatekeeper_audit_archived_segments_total";
const BYTES: &str = "gatekeeper_audit_archived_bytes_total";
const ERRORS: &str = "gatekeeper_audit_archive_errors_total";

/// A gate in front of `upstream` whose segments hold a few records each,
/// archiving to `bucket_url` every second.
fn gate_dir(upstream: &Upstream, bucket_url: &str, archive: &str) -> tempfile::TempDir {
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        &format!(
            "segment_bytes = 2048\n[audit.archive]\nurl = \"{bucket_url}/{PREFIX}\"\n\
             access_key_file = \"archive.ak\"\nsecret_key_file = \"archive.sk\"\ninterval_s = 1\n{archive}"
        ),
    );
    std::fs::write(dir.path().join("archive.ak"), format!("{ACCESS_KEY}\n")).unwrap();
    std::fs::write(dir.path().join("archive.sk"), format!("{SECRET_KEY}\n")).unwrap();
    dir
}

/// Enough requests through the gate to seal several segments.
fn traffic(gate: &Gate) {
    let r = gate.boto(
        r#"
s3 = client()
ok = [attempt(s3.create_bucket, Bucket="acme-data")["ok"]]
for i in range(1, 13):
    ok.append(attempt(s3.put_object, Bucket="acme-data", Key=f"k{i}", Body=b"x" * i)["ok"])
out(ok)
"#,
    );
    assert!(r.as_array().unwrap().iter().all(|v| v == true), "{r}");
}

fn create_bucket(endpoint: &str, args: &str) {
    let r = boto_at(
        endpoint,
        &format!("out(attempt(client().create_bucket, {args})['ok'])"),
    );
    assert_eq!(r, true, "create_bucket({args})");
}

fn audit_dir(gate: &Gate) -> PathBuf {
    gate.dir.path().join("audit")
}

/// The file names in `dir` ending in `suffix`, sorted (by seq).
fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("segment-") && n.ends_with(suffix))
        .collect();
    found.sort();
    found
}

fn seal_of(segment: &str) -> String {
    segment.replace(".jsonl", ".seal.json")
}

/// Waits until every sealed segment is archived: the counter reaches the
/// number of seals.
fn wait_archived(gate: &Gate, at_least: usize) -> Vec<String> {
    let mut seals = Vec::new();
    eventually("every sealed segment archived", || {
        seals = names(&audit_dir(gate), ".seal.json");
        seals.len() >= at_least && gate.metric(ARCHIVED) == seals.len() as f64
    });
    seals
}

fn stop(mut gate: Gate) -> tempfile::TempDir {
    gate.terminate();
    assert!(gate.wait_exit(Duration::from_secs(30)).success());
    gate.crash()
}

/// The newest segment holding records: the writer resumes from it, so
/// it is never deleted.
fn resume_from(dir: &Path) -> String {
    names(dir, ".jsonl")
        .into_iter()
        .rev()
        .find(|n| std::fs::metadata(dir.join(n)).unwrap().len() > 0)
        .unwrap()
}

#[test]
fn sealed_segments_reach_the_store_byte_for_byte_and_only_then_leave_the_disk() {
    let upstream = Upstream::start();
    let store = format!("http://{}", upstream.addr);
    create_bucket(&store, "Bucket='audit-archive'");

    // First without deleting: what is in the store can be compared with
    // every sealed segment still on disk.
    let dir = gate_dir(
        &upstream,
        &format!("{store}/audit-archive"),
        "delete_local = false\n",
    );
    let gate = Gate::spawn(dir);
    traffic(&gate);
    let seals = wait_archived(&gate, 3);
    let local = audit_dir(&gate);
    let bucket_dir = upstream.dir.path().join("audit-archive");
    let archived = bucket_dir.join(PREFIX).join("test-gate");
    let mut uploaded = 0;
    for seal in &seals {
        let segment = seal.replace(".seal.json", ".jsonl");
        for name in [seal, &segment] {
            let sent = std::fs::read(local.join(name)).unwrap();
            let stored = std::fs::read(archived.join(name))
                .unwrap_or_else(|e| panic!("{name} is not in the store: {e}"));
            assert!(sent == stored, "{name} differs in the store");
            uploaded += sent.len();
        }
    }
    assert_eq!(gate.metric(BYTES), uploaded as f64);
    assert_eq!(gate.metric(ERRORS), 0.0);
    for seal in &seals {
        assert!(
            local.join(seal.replace(".seal.json", ".jsonl")).exists(),
            "{seal}: deleted"
        );
    }
    let before = names(&local, ".jsonl");

    // Restarted with deletion. The shutdown sealed the open segment; the
    // others are in the store already, so only that one is sent, and all
    // but the one the writer resumes from are deleted; every seal stays.
    let dir = stop(gate);
    let config = dir.path().join("gatekeeper.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("delete_local = false", "")).unwrap();
    let gate = Gate::spawn(dir);
    let local = audit_dir(&gate);
    let keep = resume_from(&local);
    let sealed_at_stop: Vec<String> = names(&local, ".seal.json")
        .into_iter()
        .filter(|s| !seals.contains(s))
        .collect();
    let new_bytes: u64 = sealed_at_stop
        .iter()
        .flat_map(|s| [s.clone(), s.replace(".seal.json", ".jsonl")])
        .map(|n| std::fs::metadata(local.join(n)).unwrap().len())
        .sum();
    let seals = wait_archived(&gate, seals.len() + sealed_at_stop.len());
    eventually("deletion", || {
        names(&local, ".jsonl")
            .iter()
            .all(|n| *n >= keep || !seals.contains(&seal_of(n)))
    });
    let after = names(&local, ".jsonl");
    let expected: Vec<String> = before.iter().filter(|n| **n >= keep).cloned().collect();
    assert_eq!(after, expected);
    assert!(after.len() < before.len());
    assert_eq!(gate.metric(BYTES), new_bytes as f64, "nothing sent twice");
    assert_eq!(gate.metric(ERRORS), 0.0);

    // What is left verifies on its own, the archived segments' seals in
    // their place.
    let verify = |dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
            .args(["audit", "verify"])
            .arg(dir)
            .output()
            .unwrap();
        let summary = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{summary}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        summary
    };
    let summary = verify(&local);
    assert!(summary.contains("archived: seq 1 to "), "{summary}");

    // The archive and what is left on disk are the whole log.
    let whole = tempfile::tempdir().unwrap();
    for name in names(&archived, ".jsonl") {
        std::fs::copy(archived.join(&name), whole.path().join(&name)).unwrap();
    }
    for name in after
        .iter()
        .chain(&seals)
        .map(String::as_str)
        .chain(["checkpoint.json"])
    {
        std::fs::copy(local.join(name), whole.path().join(name)).unwrap();
    }
    let summary = verify(whole.path());
    assert!(
        summary.contains(&format!("{} sealed", seals.len())),
        "{summary}"
    );
}

/// moto (`python3 -m moto.server`) on a loopback port.
struct Moto {
    child: Child,
    endpoint: String,
}

/// A loopback port nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    fn start(port: u16) -> Moto {
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto is installed (tests/client/requirements.txt)");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        eventually("moto to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_bucket_with_object_lock_gets_the_configured_retention() {
    let moto = Moto::start(free_port());
    create_bucket(
        &moto.endpoint,
        "Bucket='audit-lock', ObjectLockEnabledForBucket=True",
    );
    let upstream = Upstream::start();
    let started = unix_now();
    let gate = Gate::spawn(gate_dir(
        &upstream,
        &format!("{}/audit-lock", moto.endpoint),
        "retention_days = 3\nmode = \"governance\"\n",
    ));
    traffic(&gate);
    let seals = wait_archived(&gate, 2);
    let finished = unix_now();

    let r = boto_at(
        &moto.endpoint,
        &format!(
            r#"
s3 = client()
objects = {{}}
for o in s3.list_objects_v2(Bucket="audit-lock", Prefix="{PREFIX}/test-gate/")["Contents"]:
    # moto 5.2.1 has no GetObjectRetention; HeadObject reports the same.
    head = s3.head_object(Bucket="audit-lock", Key=o["Key"])
    body = s3.get_object(Bucket="audit-lock", Key=o["Key"])["Body"].read()
    objects[o["Key"].rsplit("/", 1)[1]] = {{
        "mode": head["ObjectLockMode"], "until": int(head["ObjectLockRetainUntilDate"].timestamp()),
        "body": body.decode()}}
out(objects)
"#
        ),
    );
    let objects = r.as_object().unwrap();
    let keys: BTreeSet<&str> = objects.keys().map(String::as_str).collect();
    for seal in &seals {
        let segment = seal.replace(".seal.json", ".jsonl");
        assert!(
            keys.contains(seal.as_str()) && keys.contains(segment.as_str()),
            "{keys:?}"
        );
        let local = std::fs::read_to_string(audit_dir(&gate).join(seal)).unwrap();
        assert_eq!(objects[seal]["body"], local.as_str());
    }
    let three_days = 3 * 86_400;
    for (name, o) in objects {
        assert_eq!(o["mode"], "GOVERNANCE", "{name}");
        let until = o["until"].as_u64().unwrap();
        assert!(
            (started + three_days..=finished + three_days).contains(&until),
            "{name} retained until {until}, uploaded between {started} and {finished}"
        );
    }
    assert_eq!(gate.metric(ERRORS), 0.0);
}

#[test]
fn an_archive_that_is_down_deletes_nothing_and_is_tried_again() {
    let port = free_port();
    let upstream = Upstream::start();
    let gate = Gate::spawn(gate_dir(
        &upstream,
        &format!("http://127.0.0.1:{port}/audit-later"),
        "",
    ));
    traffic(&gate);
    let local = audit_dir(&gate);
    eventually("two failed rounds", || gate.metric(ERRORS) >= 2.0);
    let seals = names(&local, ".seal.json");
    assert!(seals.len() >= 3, "{seals:?}");
    for seal in &seals {
        let segment = seal.replace(".seal.json", ".jsonl");
        assert!(local.join(&segment).exists(), "{segment} deleted");
    }
    assert_eq!(gate.metric(ARCHIVED), 0.0);

    let moto = Moto::start(port);
    create_bucket(&moto.endpoint, "Bucket='audit-later'");
    let seals = wait_archived(&gate, seals.len());
    let keep = resume_from(&local);
    eventually("deletion", || {
        names(&local, ".jsonl")
            .iter()
            .all(|n| *n >= keep || !seals.contains(&seal_of(n)))
    });
    let r = boto_at(
        &moto.endpoint,
        "out(sorted(o['Key'] for o in client().list_objects_v2(Bucket='audit-later')['Contents']))",
    );
    let stored: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for seal in &seals {
        let segment = seal.replace(".seal.json", ".jsonl");
        for name in [seal.as_str(), segment.as_str()] {
            let key = format!("{PREFIX}/test-gate/{name}");
            assert!(stored.contains(&key.as_str()), "{key} not in {stored:?}");
        }
    }
}

#[test]
fn an_https_archive_is_trusted_through_its_ca() {
    let certs = tempfile::tempdir().unwrap();
    common::certs_dev(certs.path(), &[]);
    let c = certs.path();
    let archive = Upstream::start_https(&c.join("server.pem"), &c.join("server-key.pem"));
    // s3s-fs keeps a bucket as a directory.
    std::fs::create_dir(archive.dir.path().join("audit-tls")).unwrap();
    let upstream = Upstream::start();
    let url = format!("https://127.0.0.1:{}/audit-tls", archive.addr.port());

    // The system's roots do not know the dev CA: every round fails.
    let gate = Gate::spawn(gate_dir(&upstream, &url, ""));
    traffic(&gate);
    eventually("a failed round", || gate.metric(ERRORS) >= 1.0);
    assert_eq!(gate.metric(ARCHIVED), 0.0);

    let dir = stop(gate);
    common::add_to_section(
        &dir,
        "audit.archive",
        &format!("ca = \"{}\"", c.join("ca.pem").display()),
    );
    let gate = Gate::spawn(dir);
    let seals = wait_archived(&gate, 3);
    let stored = archive
        .dir
        .path()
        .join("audit-tls")
        .join(PREFIX)
        .join("test-gate");
    for seal in &seals {
        let local = std::fs::read(audit_dir(&gate).join(seal)).unwrap();
        assert!(std::fs::read(stored.join(seal)).unwrap() == local, "{seal}");
        assert!(stored.join(seal.replace(".seal.json", ".jsonl")).exists());
    }
}
