//! `gatekeeper explain` and `POST /v1/explain` on the example rule set in
//! `rules/` (through the quickstart `gatekeeper.toml`): one case per kind of
//! answer a customer asks about, each pinned to a date with `--at` so the
//! contracts' validity does not drift with the calendar.

mod common;

use std::path::Path;
use std::process::Command;

use common::{http_raw, Gate, Upstream};
use serde_json::Value;

const HK: &str = "2001:2e0::1";
const GB: &str = "81.2.69.142";
const SE: &str = "89.160.20.112";
const LOCAL: &str = "127.0.0.1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `gatekeeper explain` on the quickstart config; the exit code and
/// the JSON it printed.
fn explain(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
        .current_dir(repo())
        .arg("explain")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), json)
}

fn trace(v: &Value) -> String {
    v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}: {}\n",
                s["step"],
                s["name"].as_str().unwrap(),
                s["detail"].as_str().unwrap()
            )
        })
        .collect()
}

struct Case<'a> {
    args: &'a [&'a str],
    exit: i32,
    reason: &'static str,
    basis: Option<&'static str>,
    /// Lines the trace must hold.
    steps: &'static [&'static str],
}

#[test]
fn each_kind_of_answer_with_its_trace_and_exit_status() {
    const URL: &str = "http://localhost:8080/acme-data/users/1.json";
    let cases = [
        Case {
            args: &["--at", "2026-06-01", "--client-ip", HK, "GET", URL],
            exit: 0,
            reason: "legal_basis",
            basis: Some("acme-pipl-sc-hk"),
            steps: &[
                "3 category: tenant acme default: content; longest classify prefix of key \"users/1.json\": \"users/\" → account",
                "5 location: from CN (region cn-beijing-6, via bucket), to HK (country HK, via geoip)",
                "10 legal_basis: basis acme-pipl-sc-hk (pipl-standard-contract, tenant acme, valid 2025-01-01..=2027-12-31): chosen",
            ],
        },
        // The same request once the PIPL standard contract has lapsed.
        Case {
            args: &["--at", "2028-01-15", "--client-ip", HK, "GET", URL],
            exit: 1,
            reason: "no_legal_basis",
            basis: None,
            steps: &[
                "10 legal_basis: basis acme-pipl-sc-hk (pipl-standard-contract, tenant acme, valid 2025-01-01..=2027-12-31): rejected, expired",
                "11 monitor: tenant acme: enforce; today 2028-01-15: denied",
            ],
        },
        Case {
            args: &["--at", "2026-06-01", "--client-ip", GB, "GET", URL],
            exit: 1,
            reason: "no_legal_basis",
            basis: None,
            steps: &["10 legal_basis: no valid basis covers the transfer"],
        },
        Case {
            args: &["--at", "2026-06-01", "--client-ip", LOCAL, "GET", URL],
            exit: 0,
            reason: "same_jurisdiction",
            basis: None,
            steps: &["6 same_jurisdiction: CN = CN"],
        },
        // What the upstream reports about the object can only make it stricter.
        Case {
            args: &[
                "--at", "2026-06-01", "--client-ip", HK, "--stored-category", "identity", "GET", URL,
            ],
            exit: 1,
            reason: "forbidden_category",
            basis: None,
            steps: &["8 category_rule: identity is never"],
        },
        // initech is in monitor mode until 2027-06-30: denied, yet forwarded.
        Case {
            args: &[
                "--at", "2026-06-01", "--client-ip", GB, "GET",
                "http://localhost:8080/initech-payments/2026/05.csv",
            ],
            exit: 3,
            reason: "no_legal_basis",
            basis: None,
            steps: &["11 monitor: tenant initech: monitor until 2027-06-30"],
        },
        // A replication peer stands in for its mTLS certificate; the
        // tenant default (content) outranks the logs/ prefix.
        Case {
            args: &[
                "--at", "2026-06-01", "--client-ip", SE, "--peer", "sg-replicator", "GET",
                "http://localhost:8080/acme-data/logs/app.log",
            ],
            exit: 1,
            reason: "no_legal_basis",
            basis: None,
            steps: &[
                "5 location: from CN (region cn-beijing-6, via bucket), to SG (region ap-singapore-1, peer sg-replicator, via peer)",
                "basis acme-consent-sg (consent, tenant acme, valid 2025-06-01..=2028-05-31): rejected, category not covered",
            ],
        },
    ];
    for case in &cases {
        let (exit, v) = explain(case.args);
        let t = trace(&v);
        assert_eq!(exit, case.exit, "{:?}\n{t}", case.args);
        assert_eq!(v["reason"], case.reason, "{:?}\n{t}", case.args);
        if let Some(basis) = case.basis {
            assert_eq!(v["basis"], basis, "{:?}\n{t}", case.args);
        }
        for step in case.steps {
            assert!(t.contains(step), "{:?}: no {step:?} in\n{t}", case.args);
        }
    }
}

#[test]
fn bad_questions_exit_2_with_a_message() {
    for args in [
        &[
            "--client-ip",
            LOCAL,
            "GET",
            "http://localhost:8080/acme-data/../x",
        ][..],
        &[
            "--client-ip",
            LOCAL,
            "--at",
            "next tuesday",
            "GET",
            "http://localhost:8080/acme-data/k",
        ],
        &[
            "--client-ip",
            LOCAL,
            "--peer",
            "nobody",
            "GET",
            "http://localhost:8080/acme-data/k",
        ],
        &[
            "-c",
            "missing.toml",
            "--client-ip",
            LOCAL,
            "GET",
            "http://localhost:8080/acme-data/k",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
            .current_dir(repo())
            .arg("explain")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}

/// `POST /v1/explain` answers what the command line answers, against the
/// rules in force in a running gate.
#[test]
fn the_endpoint_answers_as_the_command_line_does() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(&format!("http://{}", upstream.addr), "", "");
    std::fs::remove_file(dir.path().join("rules/test.toml")).unwrap();
    for f in std::fs::read_dir(repo().join("rules")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&f, dir.path().join("rules").join(f.file_name().unwrap())).unwrap();
        }
    }
    let gate = Gate::spawn(dir);
    let url = "http://localhost:8080/acme-data/users/1.json";
    for (at, want) in [("2026-06-01", "allow"), ("2028-01-15", "deny")] {
        let (_, cli) = explain(&["--at", at, "--client-ip", HK, "GET", url]);
        let body = serde_json::json!({
            "method": "GET", "url": url, "client_ip": HK, "at": at,
        })
        .to_string();
        let (status, text) = http_raw(
            gate.admin,
            &format!(
                "POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(status, 200, "{text}");
        let mut served: Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(served["decision"], want);
        // Only who answered differs.
        let mut cli = cli;
        for v in [&mut served, &mut cli] {
            v["instance"] = Value::Null;
        }
        assert_eq!(served, cli);
    }
    let (status, _) = http_raw(
        gate.admin,
        "POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"url\":1}",
    );
    assert_eq!(status, 400);
}
