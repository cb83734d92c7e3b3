//! Hot reload under load (DESIGN §5, issue 3): while a client keeps
//! asking, the rules flip between a version that allows the transfer, one
//! that denies it, and a broken one. Every answer must be the decision of
//! the snapshot its request started with; the broken version never rules.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{http_raw, Gate, Upstream};

const GB: &str = "81.2.69.142";

/// acme's CN bucket may go to GB under this contract.
const ALLOWS: &str = r#"
[[basis]]
id = "acme-gb-scc"
tenant = "acme"
kind = "scc"
from = "CN"
to = ["GB"]
categories = ["content"]
valid_from = 2024-01-01
valid_until = 2999-12-31
evidence = "reload test"
"#;

/// Without it the same request has no legal basis.
const DENIES: &str = "# the contract is withdrawn\n";

/// A typo a rule author makes: an unknown key.
const BROKEN: &str = r#"
[[basis]]
id = "acme-gb-scc"
tenant = "acme"
knd = "scc"
"#;

fn reload(gate: &Gate) -> (u16, serde_json::Value) {
    let (status, text) = http_raw(
        gate.admin,
        "POST /-/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn rules_info(gate: &Gate) -> serde_json::Value {
    let (_, text) = gate.admin_get("/v1/rules");
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[test]
fn rules_flip_under_load_without_a_gap() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(&format!("http://{}", upstream.addr), common::TEST_RULES, "");
    let flip = dir.path().join("rules/flip.toml");
    std::fs::write(&flip, ALLOWS).unwrap();
    let gate = Gate::spawn(dir);
    gate.boto(
        r#"
s3 = client()
s3.create_bucket(Bucket="acme-data")
s3.put_object(Bucket="acme-data", Key="report.txt", Body=b"r" * 1000)
out(True)
"#,
    );
    let mut allows = rules_info(&gate)["version"].as_str().unwrap().to_owned();

    let load = format!(
        r#"
import threading, time
answers = []
def run():
    s3 = client("{GB}")
    end = time.time() + 8
    while time.time() < end:
        r = attempt(s3.get_object, Bucket="acme-data", Key="report.txt")
        if r["ok"]:
            r["result"]["Body"].read()
        h = r["headers"]
        answers.append([r["status"], r.get("code"), h.get("x-gatekeeper-decision"),
                        h.get("x-gatekeeper-reason"), h.get("x-gatekeeper-request-id")])
threads = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
out(answers)
"#
    );
    let mut denies = String::new();
    let mut broken_tries = 0;
    let answers = std::thread::scope(|s| {
        let client = s.spawn(|| gate.boto(&load));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(7) {
            for (text, good) in [
                (DENIES, true),
                (BROKEN, false),
                (ALLOWS, true),
                (BROKEN, false),
            ] {
                std::fs::write(&flip, text).unwrap();
                let (status, body) = reload(&gate);
                if good {
                    assert_eq!(status, 200, "{body}");
                    let version = body["version"].as_str().unwrap().to_owned();
                    if text == DENIES {
                        denies = version;
                    } else {
                        assert_eq!(version, allows, "the same rules hash the same");
                        allows = version;
                    }
                } else {
                    assert_eq!(status, 422, "{body}");
                    let errors = body["errors"].to_string();
                    assert!(errors.contains("flip.toml:5:1"), "{errors}");
                    broken_tries += 1;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        }
        client.join().unwrap()
    });

    let answers = answers.as_array().unwrap();
    assert!(
        answers.len() > 50,
        "the client kept asking: {}",
        answers.len()
    );
    let records: HashMap<String, serde_json::Value> = gate
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "decision")
        .map(|r| (r["request_id"].as_str().unwrap().to_owned(), r))
        .collect();
    let mut seen = HashMap::new();
    for a in answers {
        let a = a.as_array().unwrap();
        let (status, decision, reason) = (&a[0], &a[2], &a[3]);
        let record = &records[a[4].as_str().unwrap()];
        let version = record["rules_version"].as_str().unwrap();
        let expected = if version == allows {
            (200, "allow", "legal_basis")
        } else {
            assert_eq!(version, denies, "only the two good versions ever rule");
            (403, "deny", "no_legal_basis")
        };
        assert_eq!(
            (
                status.as_u64().unwrap(),
                decision.as_str().unwrap(),
                reason.as_str().unwrap()
            ),
            (expected.0, expected.1, expected.2),
            "{a:?} under {version}"
        );
        assert_eq!(record["decision"], expected.1);
        *seen.entry(expected.1).or_insert(0) += 1;
    }
    assert!(seen.len() == 2, "both versions answered: {seen:?}");

    let (_, metrics) = gate.admin_get("/metrics");
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatekeeper_rules_reloads_total{result=\"error\"}"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(errors >= broken_tries as f64, "{errors} < {broken_tries}");
    assert!(
        metrics.contains(&format!("gatekeeper_rules_info{{version=\"{allows}\"}} 1")),
        "the rules in force are named"
    );
    // The round ended on the broken version: shown until a good reload.
    let info = rules_info(&gate);
    assert!(
        info["last_error"].to_string().contains("flip.toml:5:1"),
        "{info}"
    );
    std::fs::write(&flip, ALLOWS).unwrap();
    assert_eq!(reload(&gate).0, 200);
    assert_eq!(rules_info(&gate)["last_error"], serde_json::Value::Null);
}

/// The GeoIP database reloads when its file is replaced; a corrupt
/// replacement keeps the one in force.
#[test]
fn a_replaced_geoip_database_is_picked_up_and_a_corrupt_one_is_not() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(&format!("http://{}", upstream.addr), common::TEST_RULES, "");
    let geo_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip");
    let db = dir.path().join("geo.mmdb");
    std::fs::copy(geo_dir.join("GeoIP2-Country-Test.mmdb"), &db).unwrap();
    let config = dir.path().join("gatekeeper.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(&common::geoip_db().display().to_string(), "geo.mmdb");
    std::fs::write(&config, text).unwrap();
    let gate = Gate::spawn(dir);
    gate.boto(r#"out(client().create_bucket(Bucket="acme-data") and True)"#);

    // The test databases share one build epoch; their type tells them apart.
    let db_type = |gate: &Gate| rules_info(gate)["geoip"]["database_type"].clone();
    let geo_of = |gate: &Gate| {
        let r = gate.boto(&format!(
            r#"out(attempt(client("{GB}").head_object, Bucket="acme-data", Key="k")["headers"])"#
        ));
        let id = r["x-gatekeeper-request-id"].as_str().unwrap().to_owned();
        gate.records_of(&id, 1)[0]["to"]["country"].clone()
    };
    let first = db_type(&gate);
    assert_eq!(first, "GeoIP2-Country");
    assert_eq!(geo_of(&gate), "GB");

    // Written beside and renamed over, as a database updater does.
    let replace = |from: &std::path::Path| {
        let tmp = gate.dir.path().join("geo.mmdb.new");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, &db).unwrap();
    };
    replace(&geo_dir.join("GeoLite2-City-Test.mmdb"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let b = db_type(&gate);
        if b != first {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "the new database never took effect"
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    replace(&geo_dir.join("libmaxminddb-corrupt-search-tree.mmdb"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while rules_info(&gate)["last_error"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the corrupt database was not reported"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(second, "GeoLite2-City");
    assert_eq!(db_type(&gate), second, "the corrupt database never rules");
    assert_eq!(geo_of(&gate), "GB");
}
