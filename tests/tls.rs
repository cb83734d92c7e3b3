//! The TLS listener with real clients: boto3 over TLS with and without a
//! client certificate, curl over HTTP/2, openssl s_client for protocol
//! versions, and certificates replaced on disk while the gate runs.
//! Certificates come from `gatekeeper certs dev`, made fresh per test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::{eventually, Gate, Upstream};

const GB: &str = "81.2.69.142";

fn certs_dev(out: &Path, clients: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatekeeper"));
    cmd.args(["certs", "dev", "--out"]).arg(out);
    for c in clients {
        cmd.args(["--client", c]);
    }
    let made = cmd.output().unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// TEST_RULES plus a Hong Kong region and a replication peer there.
fn rules() -> String {
    format!(
        r#"{}
[[region]]
id = "cn-hongkong-2"
jurisdiction = "HK"

[[peer]]
id = "hk-replica"
region = "cn-hongkong-2"
san = "hk-replica.gatekeeper.test"
"#,
        common::TEST_RULES
    )
}

fn tls_gate() -> (Upstream, Gate) {
    let upstream = Upstream::start();
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        &rules(),
        r#"
[listen.tls]
addr = "127.0.0.1:0"
cert = "certs/server.pem"
key = "certs/server-key.pem"
client_ca = "certs/ca.pem"
"#,
    );
    certs_dev(
        &dir.path().join("certs"),
        &["hk-replica.gatekeeper.test", "stranger.example"],
    );
    let gate = Gate::spawn(dir);
    assert!(gate.tls.is_some());
    (upstream, gate)
}

/// boto3 over TLS to the gate, trusting `ca`, presenting `client` if any.
fn boto_tls(gate: &Gate, ca: &Path, client: Option<&str>, body: &str) -> serde_json::Value {
    let certs = gate.dir.path().join("certs");
    let client_cert = match client {
        Some(c) => format!(
            "({:?}, {:?})",
            certs.join(format!("{c}.pem")),
            certs.join(format!("{c}-key.pem"))
        ),
        None => "None".into(),
    };
    gate.boto(&format!(
        r#"
def tls_client(xff=None):
    c = boto3.client("s3", endpoint_url="https://localhost:{port}", verify={ca:?},
                     aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                     region_name="us-east-1",
                     config=Config(client_cert={client_cert}, s3={{"addressing_style": "path"}},
                                   retries={{"max_attempts": 1}}))
    if xff:
        c.meta.events.register("before-sign.s3.*",
                               lambda request, **_: request.headers.__setitem__("X-Forwarded-For", xff))
    return c
{body}
"#,
        port = gate.tls.unwrap().port(),
    ))
}

#[test]
fn a_peer_certificate_locates_the_requester_in_its_region() {
    let (_up, gate) = tls_gate();
    let ca = gate.dir.path().join("certs/ca.pem");
    gate.boto(
        r#"
s3 = client()
s3.create_bucket(Bucket="acme-data")
s3.put_object(Bucket="acme-data", Key="r.txt", Body=b"replicate me")
out(True)
"#,
    );
    let script = format!(
        r#"
r = attempt(tls_client("{GB}").get_object, Bucket="acme-data", Key="r.txt")
if r["ok"]:
    r["body"] = r.pop("result")["Body"].read().decode()
out(r)
"#
    );
    // The peer is in Hong Kong, wherever its address says it is.
    let peer = boto_tls(&gate, &ca, Some("hk-replica.gatekeeper.test"), &script);
    assert_eq!(peer["ok"], true, "{peer}");
    assert_eq!(peer["body"], "replicate me");
    assert_eq!(peer["headers"]["x-gatekeeper-reason"], "legal_basis");
    let id = peer["headers"]["x-gatekeeper-request-id"].as_str().unwrap();
    let rec = &gate.records_of(id, 1)[0];
    assert_eq!(rec["to"]["via"], "peer", "{rec}");
    assert_eq!(rec["to"]["peer"], "hk-replica");
    assert_eq!(rec["to"]["region"], "cn-hongkong-2");
    assert_eq!(rec["basis"], "acme-hk-contract");

    // A certificate that verifies but names no peer is an ordinary client.
    let stranger = boto_tls(&gate, &ca, Some("stranger.example"), &script);
    assert_eq!(stranger["code"], "AccessDenied", "{stranger}");
    assert_eq!(stranger["headers"]["x-gatekeeper-reason"], "no_legal_basis");
    // And so is a client without one.
    let anonymous = boto_tls(&gate, &ca, None, &script);
    assert_eq!(
        anonymous["headers"]["x-gatekeeper-reason"],
        "no_legal_basis"
    );
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn resolve(addr: SocketAddr) -> String {
    format!("localhost:{}:127.0.0.1", addr.port())
}

#[test]
fn http2_and_tls_versions_over_the_tls_listener() {
    let (_up, gate) = tls_gate();
    let tls = gate.tls.unwrap();
    let ca = gate.dir.path().join("certs/ca.pem");
    let url = format!("https://localhost:{}/acme-data/missing", tls.port());
    let (ok, out) = curl(&[
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "--cacert",
        ca.to_str().unwrap(),
        &url,
    ]);
    // Unsigned, so the upstream refuses it; what matters is the protocol.
    assert!(ok, "{out}");
    assert!(out.starts_with("2 "), "served over HTTP/2: {out}");

    for (flag, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &tls.to_string(), flag, "-CAfile"])
            .arg(&ca)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.contains("Server certificate"),
            accepted,
            "{flag}: {text}"
        );
    }
}

#[test]
fn replaced_certificates_take_effect_and_broken_ones_do_not() {
    let (_up, gate) = tls_gate();
    let tls = gate.tls.unwrap();
    let certs = gate.dir.path().join("certs");
    let fresh = gate.dir.path().join("fresh");
    certs_dev(&fresh, &[]);
    let url = format!("https://localhost:{}/", tls.port());
    let trusts = |ca: &Path| {
        curl(&[
            "-o",
            "/dev/null",
            "--resolve",
            &resolve(tls),
            "--cacert",
            ca.to_str().unwrap(),
            &url,
        ])
        .0
    };
    assert!(trusts(&certs.join("ca.pem")));
    assert!(!trusts(&fresh.join("ca.pem")));

    for f in ["server.pem", "server-key.pem"] {
        std::fs::copy(fresh.join(f), certs.join(f)).unwrap();
    }
    eventually("the new certificate in effect", || {
        trusts(&fresh.join("ca.pem"))
    });

    // Counted from here: the watcher may already have failed once on the
    // pair above, seen half-copied.
    let failed = r#"gatekeeper_tls_reloads_total{result="error"}"#;
    let errors = gate.metric(failed);
    std::fs::write(certs.join("server.pem"), "not a certificate").unwrap();
    eventually("the broken certificate file read", || {
        gate.metric(failed) != errors
    });
    assert!(
        trusts(&fresh.join("ca.pem")),
        "a broken certificate file keeps the one in force"
    );
}

/// A gate in front of an https:// upstream that wants a client certificate.
fn gate_to_tls_upstream(upstream: &Upstream, certs: &Path, client: bool) -> Gate {
    let dir = Gate::prepare(
        &format!("https://127.0.0.1:{}", upstream.addr.port()),
        common::TEST_RULES,
        "",
    );
    let config = dir.path().join("gatekeeper.toml");
    let mut tls = format!("ca = {:?}\n", certs.join("ca.pem"));
    if client {
        tls += &format!(
            "client_cert = {:?}\nclient_key = {:?}\n",
            certs.join("gate.upstream.test.pem"),
            certs.join("gate.upstream.test-key.pem")
        );
    }
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "response_timeout_ms = 120000\n",
        &format!("response_timeout_ms = 120000\n{tls}"),
    );
    std::fs::write(&config, text).unwrap();
    Gate::spawn(dir)
}

#[test]
fn an_https_upstream_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    certs_dev(certs.path(), &["gate.upstream.test"]);
    let c = certs.path();
    let upstream = Upstream::start_tls(
        &c.join("server.pem"),
        &c.join("server-key.pem"),
        &c.join("ca.pem"),
    );

    let gate = gate_to_tls_upstream(&upstream, c, true);
    let r = gate.boto(
        r#"
s3 = client()
s3.create_bucket(Bucket="acme-data")
body = bytes(range(256)) * 300
s3.put_object(Bucket="acme-data", Key="k", Body=body)
out(s3.get_object(Bucket="acme-data", Key="k")["Body"].read() == body)
"#,
    );
    assert_eq!(r, true);
    assert!(upstream.dir.path().join("acme-data/k").exists());

    // Without the certificate the upstream refuses the handshake: a 502.
    let gate = gate_to_tls_upstream(&upstream, c, false);
    let r = gate.boto(r#"out(attempt(client().head_bucket, Bucket="acme-data")["status"])"#);
    assert_eq!(r, 502);
}

/// An object downloaded over HTTP/2 through the TLS listener arrives byte
/// for byte, with the presigned signature still valid at the upstream.
#[test]
fn an_http2_download_through_the_tls_listener() {
    let (_up, gate) = tls_gate();
    let tls = gate.tls.unwrap();
    let r = gate.boto(&format!(
        r#"
s3 = client()
s3.create_bucket(Bucket="acme-data")
s3.put_object(Bucket="acme-data", Key="h2.bin", Body=bytes(range(256)) * 8192)
signer = boto3.client("s3", endpoint_url="https://localhost:{port}", region_name="us-east-1",
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                      config=Config(s3={{"addressing_style": "path"}}))
out(signer.generate_presigned_url("get_object", Params={{"Bucket": "acme-data", "Key": "h2.bin"}}))
"#,
        port = tls.port()
    ));
    let out = gate.dir.path().join("h2.bin");
    let ca = gate.dir.path().join("certs/ca.pem");
    let (ok, text) = curl(&[
        "--http2",
        "--resolve",
        &resolve(tls),
        "--cacert",
        ca.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-w",
        "%{http_version} %{http_code}",
        r.as_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(text, "2 200");
    let expected: Vec<u8> = (0..=255u8).cycle().take(256 * 8192).collect();
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "the body arrived intact"
    );
}
