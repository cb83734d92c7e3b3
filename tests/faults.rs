//! Failure behaviour of DESIGN §8 with real faults: an audit disk that
//! fills up (a size-capped tmpfs made by the test), and a client that goes
//! away mid-transfer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gate, Upstream};

/// A tmpfs of `kib` KiB mounted on `dir`, unmounted when dropped (after
/// the gate that writes to it, so declare it first).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "the disk-full tests mount a tmpfs: run them as root"
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills `dir` with one file until the disk is full, then frees `keep`
/// bytes so the next few records still fit and a later one does not.
fn fill(dir: &Path, keep: usize) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(keep as u64)).unwrap();
    path
}

const PUT_UNTIL_REFUSED: &str = r#"
results = []
s3 = client()
for i in range(200):
    r = attempt(s3.put_object, Bucket="acme-data", Key=f"k{i}", Body=b"x" * 10)
    results.append({"status": r["status"], "code": r.get("code"),
                    "reason": r["headers"].get("x-gatekeeper-reason")})
    if r["status"] == 503:
        break
out(results)
"#;

fn disk_full_gate(on_failure: &str) -> (Upstream, Tmpfs, Gate, PathBuf) {
    let upstream = Upstream::start();
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        &format!("fsync = \"always\"\non_failure = \"{on_failure}\""),
    );
    let disk = Tmpfs::mount(&dir.path().join("audit"), 256);
    let gate = Gate::spawn(dir);
    let made = gate.boto(r#"out(attempt(client().create_bucket, Bucket="acme-data")["ok"])"#);
    assert_eq!(made, true);
    let filler = fill(&gate.dir.path().join("audit"), 8 * 1024);
    (upstream, disk, gate, filler)
}

fn wait_ready(gate: &Gate, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = gate.admin_get("/readyz");
        if status == want {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(gate: &Gate, name: &str) -> f64 {
    let (_, text) = gate.admin_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn a_full_audit_disk_refuses_transfers_until_it_has_room_again() {
    let (_up, _disk, gate, filler) = disk_full_gate("deny");
    let results = gate.boto(PUT_UNTIL_REFUSED);
    let results = results.as_array().unwrap();
    let last = results.last().unwrap();
    assert!(results.len() > 1, "some records fit first: {results:?}");
    assert_eq!(last["status"], 503, "{results:?}");
    assert_eq!(last["reason"], "audit_unavailable");
    assert!(results[..results.len() - 1]
        .iter()
        .all(|r| r["status"] == 200));
    wait_ready(&gate, 503);
    assert!(metric(&gate, "gatekeeper_audit_write_errors_total") >= 1.0);

    std::fs::remove_file(filler).unwrap();
    let after = gate.boto(
        r#"out(attempt(client().put_object, Bucket="acme-data", Key="after", Body=b"y")["status"])"#,
    );
    assert_eq!(after, 200);
    wait_ready(&gate, 200);

    // Every forwarded request has its decision record, and the chain holds
    // across the failed writes.
    let records = gate.audit();
    let forwarded = results.len(); // the 200s before the 503, and "after"
    let allowed = records
        .iter()
        .filter(|r| r["event"] == "decision" && r["decision"] == "allow" && r["op"] == "PutObject")
        .count();
    assert_eq!(allowed, forwarded, "{records:?}");
    gate.assert_audit_verifies();
}

#[test]
fn on_failure_allow_forwards_and_counts_what_was_lost() {
    let (_up, _disk, gate, _filler) = disk_full_gate("allow");
    let results = gate.boto(
        r#"
s3 = client()
out([attempt(s3.put_object, Bucket="acme-data", Key=f"k{i}", Body=b"x")["status"] for i in range(60)])
"#,
    );
    assert!(
        results.as_array().unwrap().iter().all(|s| s == 200),
        "{results}"
    );
    wait_ready(&gate, 503);
    assert!(metric(&gate, "gatekeeper_audit_write_errors_total") >= 1.0);
    assert!(metric(&gate, "gatekeeper_audit_lost_records_total") >= 1.0);
}

/// The completion record of the `op` request for `key`, once written.
fn completion_for(gate: &Gate, op: &str, key: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = gate.audit();
        let id = records
            .iter()
            .find(|r| r["event"] == "decision" && r["op"] == op && r["key"] == key)
            .map(|r| r["request_id"].clone());
        if let Some(done) = records
            .iter()
            .find(|r| r["event"] == "completion" && id.as_ref() == Some(&r["request_id"]))
        {
            return done.clone();
        }
        assert!(Instant::now() < deadline, "no completion for {key}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_that_goes_away_cancels_the_upstream_request() {
    let upstream = Upstream::start();
    let gate = Gate::start(&format!("http://{}", upstream.addr), common::TEST_RULES, "");
    gate.boto(
        r#"
import socket, time, urllib.parse
s3 = client()
s3.create_bucket(Bucket="acme-data")
s3.put_object(Bucket="acme-data", Key="big", Body=b"z" * (32 << 20))

def raw(method, key, head, send=b"", read=0):
    url = s3.generate_presigned_url(method, Params={"Bucket": "acme-data", "Key": key})
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall(f"{'PUT' if method == 'put_object' else 'GET'} {u.path}?{u.query} HTTP/1.1\r\n"
                 f"Host: {u.netloc}\r\n{head}\r\n".encode() + send)
    got = 0
    while got < read:
        got += len(sock.recv(65536))
    time.sleep(0.3)
    sock.close()

raw("put_object", "half-sent", f"Content-Length: {8 << 20}\r\n", send=b"x" * (1 << 20))
raw("get_object", "big", "", read=1 << 20)
out(True)
"#,
    );
    let put = completion_for(&gate, "PutObject", "half-sent");
    assert_eq!(put["outcome"], "client_aborted", "{put}");
    let bytes_in = put["bytes_in"].as_u64().unwrap();
    assert!(bytes_in <= 1 << 20, "{put}");
    assert!(
        !upstream.dir.path().join("acme-data/half-sent").exists(),
        "the upstream stored a body the client never finished"
    );

    let get = completion_for(&gate, "GetObject", "big");
    assert_eq!(get["outcome"], "client_aborted", "{get}");
    let bytes_out = get["bytes_out"].as_u64().unwrap();
    assert!(
        (1 << 20..16 << 20).contains(&bytes_out),
        "the gate stopped pulling from the upstream soon after the client left: {get}"
    );
}
