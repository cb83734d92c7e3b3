//! `kill -9` in the middle of a load (issue 4, item 3): the log left
//! behind recovers and verifies, and every request that reached the
//! upstream has its decision record. A killed process loses nothing it
//! has handed to the kernel, so this holds for `batch` as for `always`: it
//! shows that the writer keeps no record in user space once the request
//! goes on. (That `always` also waits for the disk is shown by counting
//! fsyncs, in the writer's own tests.)

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

use common::{eventually, Gate, Upstream, ACCESS_KEY, SECRET_KEY};

/// PUTs from many threads until the gate is gone (a few refusals in a
/// row) or `GK_SECONDS` have passed; prints how many succeeded and failed.
const LOAD: &str = r#"
import threading, time
deadline = time.time() + float(os.environ["GK_SECONDS"])
done = {"ok": 0, "failed": 0}
lock = threading.Lock()

def put(t):
    c = client()
    i, refused = 0, 0
    while time.time() < deadline and refused < 3:
        try:
            c.put_object(Bucket="acme-data", Key=f"load/{t}-{i}", Body=b"x" * 2048)
            refused = 0
            with lock:
                done["ok"] += 1
        except Exception:
            refused += 1
            with lock:
                done["failed"] += 1
            time.sleep(0.05)
        i += 1

threads = [threading.Thread(target=put, args=(t,)) for t in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out(done)
"#;

fn start_load(gate: &Gate, seconds: u32) -> Child {
    let prelude = include_str!("client/prelude.py");
    Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{LOAD}"))
        .env("GK_ENDPOINT", gate.endpoint())
        .env("GK_ACCESS_KEY", ACCESS_KEY)
        .env("GK_SECRET_KEY", SECRET_KEY)
        .env("GK_SECONDS", seconds.to_string())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs")
}

/// The keys of the objects the upstream stored under `load/`.
fn stored(upstream: &Upstream) -> BTreeSet<String> {
    match std::fs::read_dir(upstream.dir.path().join("acme-data/load")) {
        Ok(entries) => entries
            .map(|e| format!("load/{}", e.unwrap().file_name().to_string_lossy()))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs `gatekeeper audit ARGS…`, which must succeed; returns its stdout
/// and stderr.
fn audit_tool(args: &[&std::ffi::OsStr]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "audit {args:?} failed:\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

fn killed_under_load_recovers(fsync: &str) {
    let upstream = Upstream::start();
    let url = format!("http://{}", upstream.addr);
    let extra = format!("fsync = \"{fsync}\"\nbatch_ms = 20\n");
    let gate = Gate::start(&url, common::TEST_RULES, &extra);
    gate.boto(r#"out(attempt(client().create_bucket, Bucket="acme-data")["ok"])"#);

    let load = start_load(&gate, 120);
    eventually("the load stored 40 objects", || {
        stored(&upstream).len() >= 40
    });
    let dir = gate.crash();
    let at_kill = stored(&upstream).len();
    let load = load.wait_with_output().unwrap();
    let done: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert!(
        done["failed"].as_u64().unwrap() > 0,
        "the gate was not killed mid-load: {done}"
    );
    // Requests in flight at the kill may still have landed upstream.
    let objects = stored(&upstream);
    assert!(objects.len() >= at_kill);

    // Restarted on the same directory, the writer recovers (cutting a torn
    // tail, if there was one, with a record saying so) and the log checks.
    let gate = Gate::spawn(dir);
    let after = gate.boto(
        r#"out(attempt(client().put_object, Bucket="acme-data", Key="after-restart", Body=b"x")["ok"])"#,
    );
    assert_eq!(after, true);
    let audit_dir = gate.dir.path().join("audit");
    let (summary, _) = audit_tool(&["verify".as_ref(), audit_dir.as_ref()]);
    assert!(summary.starts_with("verified: seq 1 to "), "{summary}");

    let records = gate.audit();
    let decided: BTreeSet<String> = records
        .iter()
        .filter(|r| r["event"] == "decision" && r["decision"] == "allow")
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = objects.difference(&decided).collect();
    assert!(
        missing.is_empty(),
        "objects the upstream stored without a decision record ({fsync}): {missing:?}"
    );
    // Every rule set a record names is kept beside the log.
    let versions: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["rules_version"].as_str())
        .collect();
    assert_eq!(versions.len(), 1);
    for v in versions {
        assert!(audit_dir.join("rules").join(v).join("test.toml").is_file());
    }
    // Replayed against the rules it was written under, the log comes out
    // as recorded (exit 0: nothing would change), and its report agrees.
    let config = gate.dir.path().join("gatekeeper.toml");
    let rules = gate.dir.path().join("rules");
    let (changes, replayed) = audit_tool(&[
        "replay".as_ref(),
        audit_dir.as_ref(),
        "--rules".as_ref(),
        rules.as_ref(),
        "-c".as_ref(),
        config.as_ref(),
    ]);
    assert_eq!(changes, "");
    let decisions = records.iter().filter(|r| r["event"] == "decision").count();
    assert!(
        replayed.contains(&format!(
            "replayed {decisions} of {decisions} decision record(s): 0 would change"
        )),
        "{replayed}"
    );
    assert!(
        replayed.contains(&format!("reproduced {decisions}\n")),
        "{replayed}"
    );
    let (report, _) = audit_tool(&[
        "report".as_ref(),
        audit_dir.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["verification"]["ok"], true);
    assert_eq!(report["totals"]["decisions"], decisions);
    for r in records.iter().filter(|r| r["event"] == "recovery") {
        assert!(
            r["reason"].as_str().unwrap().starts_with("torn write"),
            "{r}"
        );
    }
    // The chain goes on after the restart: the last record is the one
    // made after it, and it verified above.
    let last = records.iter().rfind(|r| r["event"] == "decision").unwrap();
    assert_eq!(last["key"], "after-restart");
}

#[test]
fn kill_9_under_load_with_fsync_always() {
    killed_under_load_recovers("always");
}

#[test]
fn kill_9_under_load_with_fsync_batch() {
    killed_under_load_recovers("batch");
}
