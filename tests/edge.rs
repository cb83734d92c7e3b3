//! The edge: PROXY protocol from load balancers, limits on what a client
//! may hold (slowloris included), the admin token, and a drain on SIGTERM
//! that cuts no request short.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{add_to_section, eventually, http_raw, Gate, Upstream};

fn gate_with(upstream: &Upstream, sections: &[(&str, &str)], extra: &str) -> Gate {
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        extra,
    );
    for (section, line) in sections {
        add_to_section(&dir, section, line);
    }
    Gate::spawn(dir)
}

/// Writes `bytes` on a new connection and reads until the gate closes it;
/// `None` when it closed without answering.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The gate may close before taking it all in.
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned())
}

/// Whether the gate has closed `s` (read returns end of file or a reset).
fn closed(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn header<'a>(response: &'a str, name: &str) -> &'a str {
    response
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

fn status(response: &str) -> u16 {
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const GET: &str = "GET /acme-data/report.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";

fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    h.extend_from_slice(addrs);
    h
}

/// An IPv6 source and destination with ports, as v2 carries them.
fn v6_addrs(src: &str) -> Vec<u8> {
    let ip = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut a = ip(src).to_vec();
    a.extend_from_slice(&ip("::1"));
    a.extend_from_slice(&[0x14, 0x03, 0x00, 0x50]);
    a
}

#[test]
fn the_proxy_protocol_names_the_client_and_only_a_trusted_proxy_may_send_it() {
    let upstream = Upstream::start();
    let gate = gate_with(&upstream, &[("listen", "proxy_protocol = true")], "");
    // The decision record of the request `request` (head lines after the
    // request line) sent after `preamble`.
    let decided = |preamble: &[u8], request: &str| {
        let mut wire = preamble.to_vec();
        wire.extend_from_slice(format!("{request}\r\n").as_bytes());
        let response = exchange(gate.s3, &wire).expect("an answer");
        let id = header(&response, "x-gatekeeper-request-id").to_owned();
        gate.records_of(&id, 1).remove(0)
    };

    // v1 from a GB client: content of a CN bucket may not go there.
    let r = decided(b"PROXY TCP4 81.2.69.142 127.0.0.1 5123 80\r\n", GET);
    assert_eq!(
        (&r["decision"], &r["to"]["country"]),
        (&"deny".into(), &"GB".into()),
        "{r}"
    );
    // v2 from an HK client over IPv6: covered by acme's contract.
    let r = decided(&v2(1, 0x21, &v6_addrs("2001:2e0::1")), GET);
    assert_eq!(
        (&r["decision"], &r["to"]["jurisdiction"], &r["basis"]),
        (&"allow".into(), &"HK".into(), &"acme-hk-contract".into()),
        "{r}"
    );
    // v2 LOCAL (a health check) and v1 UNKNOWN: the socket's peer, which is
    // loopback, a [[network]] in Beijing.
    for preamble in [v2(0, 0x00, &[]), b"PROXY UNKNOWN\r\n".to_vec()] {
        let r = decided(&preamble, GET);
        assert_eq!(r["to"]["via"], "network", "{r}");
    }
    // The address in the header is the hop X-Forwarded-For is trusted
    // from: a trusted proxy behind the load balancer is believed, a client
    // is not.
    let xff = format!("{GET}X-Forwarded-For: 81.2.69.142\r\n");
    let r = decided(b"PROXY TCP4 127.0.0.1 127.0.0.1 5123 80\r\n", &xff);
    assert_eq!(r["to"]["country"], "GB", "{r}");
    let r = decided(b"PROXY TCP4 175.16.199.1 127.0.0.1 5123 80\r\n", &xff);
    assert_eq!(r["to"]["country"], "CN", "{r}");

    // No header, or a broken one: closed without an answer.
    let refused = "gatekeeper_connections_refused_total{reason=\"proxy_protocol\"}";
    assert_eq!(exchange(gate.s3, format!("{GET}\r\n").as_bytes()), None);
    assert_eq!(
        exchange(
            gate.s3,
            b"PROXY TCP4 81.2.69.142 127.0.0.1 5123\r\nGET / HTTP/1.1\r\n\r\n"
        ),
        None
    );
    gate.expect_metric(refused, 2.0);

    // From a peer that is not a trusted proxy, even a valid header is not
    // read: it could name anyone.
    let mut s = connect_from("127.0.0.2", gate.s3);
    let _ = s.write_all(b"PROXY TCP4 81.2.69.142 127.0.0.1 5123 80\r\n");
    assert!(closed(&mut s, Duration::from_secs(5)));
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"untrusted_proxy\"}",
        1.0,
    );
}

#[test]
fn the_proxy_protocol_header_comes_before_tls_and_http2() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        "[listen.tls]\naddr = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\nkey = \"certs/server-key.pem\"",
    );
    add_to_section(&dir, "listen", "proxy_protocol = true");
    common::certs_dev(&dir.path().join("certs"), &[]);
    let gate = Gate::spawn(dir);
    let ca = gate.dir.path().join("certs/ca.pem");
    let url = format!("https://127.0.0.1:{}/acme-data/k", gate.tls.unwrap().port());
    let curl = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--http2",
                "-o",
                "/dev/null",
                "-D",
                "-",
            ])
            .args(["-w", "http/%{http_version}\n", "--cacert"])
            .arg(&ca)
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // curl sends a v1 header naming its own end of the connection.
    let (ok, out) = curl(&["--haproxy-protocol"]);
    assert!(ok, "{out}");
    assert!(out.ends_with("http/2\n"), "{out}");
    let r = gate.records_of(header(&out, "x-gatekeeper-request-id"), 1);
    assert_eq!(r[0]["to"]["via"], "network", "{}", r[0]);
    // Without it the TLS handshake is taken for a header, and refused.
    let (ok, out) = curl(&[]);
    assert!(!ok, "{out}");
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"proxy_protocol\"}",
        1.0,
    );
}

#[test]
fn behind_proxies_that_write_forwarded_only_forwarded_is_read() {
    let upstream = Upstream::start();
    let gate = gate_with(
        &upstream,
        &[("network", "client_ip_header = \"forwarded\"")],
        "",
    );
    let located = |head: &str| {
        let response = exchange(gate.s3, format!("{GET}{head}\r\n").as_bytes()).unwrap();
        let id = header(&response, "x-gatekeeper-request-id").to_owned();
        gate.records_of(&id, 1).remove(0)["to"].clone()
    };
    let to = located("Forwarded: for=81.2.69.142, for=\"[2001:2e0::1]:4711\";proto=http\r\n");
    assert_eq!(to["jurisdiction"], "HK", "{to}");
    // X-Forwarded-For passes such proxies untouched: a client wrote it.
    let to = located("X-Forwarded-For: 81.2.69.142\r\n");
    assert_eq!(to["via"], "network", "{to}");
    let to = located("Forwarded: for=unknown\r\nX-Forwarded-For: 81.2.69.142\r\n");
    assert_eq!(to["via"], "network", "{to}");
}

/// A connection from another loopback address than 127.0.0.1.
fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

#[test]
fn oversized_heads_are_answered_431_and_counted() {
    let upstream = Upstream::start();
    let gate = gate_with(
        &upstream,
        &[],
        "[limits]\nmax_header_bytes = 16384\nmax_headers = 20",
    );
    let big = format!("{GET}X-Pad: {}\r\n\r\n", "p".repeat(20_000));
    let response = exchange(gate.s3, big.as_bytes()).unwrap();
    assert_eq!(status(&response), 431, "{response}");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = exchange(gate.s3, format!("{GET}{many}\r\n").as_bytes()).unwrap();
    assert_eq!(status(&response), 431, "{response}");
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"header_too_large\"}",
        2.0,
    );
    // HTTP/2 (h2c here) caps the header list at the same size.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
        ])
        .args([
            "-w",
            "%{http_code}",
            "-H",
            &format!("X-Pad: {}", "p".repeat(20_000)),
        ])
        .arg(format!(
            "http://127.0.0.1:{}/acme-data/report.csv",
            gate.s3.port()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "431", "{out:?}");
    // Within the limits all is as usual.
    let few: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = exchange(gate.s3, format!("{GET}{few}\r\n").as_bytes()).unwrap();
    assert_eq!(header(&response, "x-gatekeeper-decision"), "allow");
    // Garbage is a 400 from hyper, counted too.
    let response = exchange(gate.s3, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").unwrap();
    assert_eq!(status(&response), 400, "{response}");
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"malformed\"}",
        1.0,
    );
}

#[test]
fn bodies_the_gate_reads_are_capped() {
    let upstream = Upstream::start();
    let gate = gate_with(
        &upstream,
        &[],
        "[limits]\nmax_config_body_bytes = 1024\nmax_explain_body_bytes = 512",
    );
    let body = "x".repeat(2048);
    let (code, response) = http_raw(
        gate.s3,
        &format!(
            "PUT /acme-data?replication HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 400, "{response}");
    assert!(
        response.contains("<Code>MaxMessageLengthExceeded</Code>"),
        "{response}"
    );
    assert!(response.contains("over 1024 bytes"), "{response}");

    let explain = format!(
        r#"{{"method": "GET", "url": "http://127.0.0.1/acme-data/k", "client_ip": "81.2.69.142", "headers": {{"x-pad": "{}"}}}}"#,
        "p".repeat(600)
    );
    let (code, response) = http_raw(
        gate.admin,
        &format!(
            "POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{explain}",
            explain.len()
        ),
    );
    assert_eq!(code, 413, "{response}");
    gate.expect_metric(
        "gatekeeper_admin_refused_total{reason=\"body_too_large\"}",
        1.0,
    );
}

#[test]
fn connections_beyond_the_limit_are_closed_and_idle_ones_expire() {
    let upstream = Upstream::start();
    let gate = gate_with(
        &upstream,
        &[],
        "[limits]\nmax_connections = 2\nidle_timeout_ms = 1500",
    );
    let mut first = TcpStream::connect(gate.s3).unwrap();
    let mut second = TcpStream::connect(gate.s3).unwrap();
    // Both are held open; a third is closed at once.
    let mut third = TcpStream::connect(gate.s3).unwrap();
    assert!(closed(&mut third, Duration::from_secs(1)));
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"max_connections\"}",
        1.0,
    );
    gate.expect_metric("gatekeeper_connections_open", 2.0);

    // A kept-alive connection that answered a request and went quiet, and
    // one that never sent anything, are closed after the idle timeout.
    first
        .write_all(b"GET /acme-data/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).unwrap();
    assert!(closed(&mut first, Duration::from_secs(5)));
    assert!(closed(&mut second, Duration::from_secs(5)));
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(1000)..Duration::from_secs(4)).contains(&waited),
        "{waited:?}"
    );
    // Their places are free again.
    let response = exchange(gate.s3, format!("{GET}\r\n").as_bytes()).unwrap();
    assert_eq!(header(&response, "x-gatekeeper-decision"), "allow");
}

#[test]
fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let upstream = Upstream::start();
    let gate = gate_with(
        &upstream,
        &[],
        "[limits]\nheader_timeout_ms = 3000\nidle_timeout_ms = 30000",
    );
    let addr = gate.s3;
    let slowloris = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!("{GET}X-Slow: {}\r\n\r\n", "s".repeat(60));
        let started = Instant::now();
        for byte in head.as_bytes() {
            if s.write_all(&[*byte]).is_err() {
                break;
            }
            if closed(&mut s, Duration::from_secs(1)) {
                break;
            }
        }
        started.elapsed()
    });
    // Meanwhile other clients' requests go through, one a second.
    let mut served = 0;
    while !slowloris.is_finished() {
        let response = exchange(gate.s3, format!("{GET}\r\n").as_bytes()).unwrap();
        assert_eq!(header(&response, "x-gatekeeper-decision"), "allow");
        served += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let held = slowloris.join().unwrap();
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&held),
        "the slow client held its connection for {held:?}"
    );
    assert!(served >= 4, "{served}");
    gate.expect_metric(
        "gatekeeper_connections_refused_total{reason=\"header_timeout\"}",
        1.0,
    );
}

/// `POST path` on the admin listener with an explain body, and
/// `Authorization: auth` if given.
fn admin_post(gate: &Gate, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let body =
        r#"{"method": "GET", "url": "http://127.0.0.1/acme-data/k", "client_ip": "81.2.69.142"}"#;
    http_raw(
        gate.admin,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn the_admin_token_guards_post_endpoints_and_explain() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        "[admin]\ntoken_file = \"admin.token\"",
    );
    std::fs::write(dir.path().join("admin.token"), "s3cret-t0ken\n").unwrap();
    let gate = Gate::spawn(dir);
    let post = |path: &str, auth: Option<&str>| admin_post(&gate, path, auth);
    for path in ["/-/reload", "/v1/explain"] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-t0ke"),
            Some("Bearer s3cret-t0ken2"),
            Some("Basic s3cret-t0ken"),
            Some("Bearer  s3cret-t0ken"),
            Some("s3cret-t0ken"),
        ] {
            let (code, response) = post(path, auth);
            assert_eq!(code, 401, "{path} {auth:?}: {response}");
            assert!(response.contains("www-authenticate: Bearer"), "{response}");
        }
        let (code, response) = post(path, Some("Bearer s3cret-t0ken"));
        assert_eq!(code, 200, "{path}: {response}");
        let (code, _) = post(path, Some("bearer s3cret-t0ken"));
        assert_eq!(code, 200, "{path}");
    }
    // Reading stays open: scrapers and probes carry no token.
    for path in ["/metrics", "/healthz", "/readyz", "/v1/rules"] {
        assert_eq!(gate.admin_get(path).0, 200, "{path}");
    }
    gate.expect_metric(
        "gatekeeper_admin_refused_total{reason=\"unauthorized\"}",
        14.0,
    );
}

#[test]
fn a_rotated_admin_token_is_taken_up_and_a_broken_file_keeps_the_one_in_force() {
    let upstream = Upstream::start();
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        "[admin]\ntoken_file = \"admin.token\"",
    );
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "first-token\n").unwrap();
    let gate = Gate::spawn(dir);
    let explain =
        |token: &str| admin_post(&gate, "/v1/explain", Some(&format!("Bearer {token}"))).0;
    let reloads = |result: &str| {
        gate.metric(&format!(
            "gatekeeper_admin_token_reloads_total{{result=\"{result}\"}}"
        ))
    };
    assert_eq!(explain("first-token"), 200);

    std::fs::write(&file, "second-token-rotated\n").unwrap();
    eventually("the rotated token admitted", || {
        explain("second-token-rotated") == 200
    });
    assert_eq!(explain("first-token"), 401);
    assert_eq!((reloads("ok"), reloads("error")), (1.0, 0.0));

    // Emptied, then removed: each is a failed reload, and the token in
    // force stays; the listener never goes open.
    std::fs::write(&file, "").unwrap();
    eventually("the empty file refused", || reloads("error") == 1.0);
    std::fs::remove_file(&file).unwrap();
    eventually("the missing file refused", || reloads("error") == 2.0);
    assert_eq!(explain("second-token-rotated"), 200);
    let (code, _) = admin_post(&gate, "/-/reload", None);
    assert_eq!(code, 401);
    assert_eq!(explain(""), 401);

    // Back with a new token: taken up again.
    std::fs::write(&file, "third\n").unwrap();
    eventually("the restored file read", || explain("third") == 200);
    assert_eq!(explain("second-token-rotated"), 401);
    assert_eq!(reloads("ok"), 2.0);
}

/// A gate with `[shutdown] shutdown` (its keys) whose audit records are
/// on disk before anything is forwarded, for tests that stop it.
fn stopping_gate(upstream: &Upstream, shutdown: &str) -> Gate {
    let dir = Gate::prepare(
        &format!("http://{}", upstream.addr),
        common::TEST_RULES,
        &format!("[shutdown]\n{shutdown}"),
    );
    add_to_section(&dir, "audit", "fsync = \"always\"");
    Gate::spawn(dir)
}

/// Stores `key` in acme-data, `mib` MiB of random bytes, and returns a
/// presigned GET target for it (path and query).
fn big_object(gate: &Gate, key: &str, mib: usize) -> String {
    let report = gate.boto(&format!(
        r#"
import os, urllib.parse
s3 = client()
attempt(s3.create_bucket, Bucket="acme-data")
s3.put_object(Bucket="acme-data", Key="{key}", Body=os.urandom({mib} << 20))
u = urllib.parse.urlsplit(s3.generate_presigned_url("get_object", Params={{"Bucket": "acme-data", "Key": "{key}"}}))
out({{"target": f"{{u.path}}?{{u.query}}"}})
"#
    ));
    report["target"].as_str().unwrap().to_owned()
}

/// Sends `GET target` and reads the response head only, as a client that
/// then stops reading; returns the connection and the request id.
fn stalled_get(addr: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert_eq!(status(&head), 200, "{head}");
    let id = header(&head, "x-gatekeeper-request-id").to_owned();
    (s, id)
}

/// Whether the S3 listener still accepts connections.
fn accepting(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// What a gate that has exited left in its audit trail: `audit verify`
/// passes, and every decision has exactly one completion record, whose
/// outcome is returned by request id. (Checks every drain test wants of
/// the trail belong here.)
fn trail_after_exit(gate: &Gate) -> std::collections::HashMap<String, serde_json::Value> {
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_gatekeeper"))
        .args(["audit", "verify"])
        .arg(gate.dir.path().join("audit"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Every record sealed: as many seals as segments, the last one's
    // written on the way out.
    let (segments, sealed) = stdout
        .split_once(" record(s) in ")
        .and_then(|(_, rest)| rest.split_once(" sealed;"))
        .and_then(|(counts, _)| counts.split_once(" segment(s), "))
        .unwrap_or_else(|| panic!("no segment count in {stdout}"));
    assert_eq!(segments, sealed, "{stdout}");
    assert_ne!(segments, "0", "{stdout}");
    let records = gate.audit();
    let mut completions = std::collections::HashMap::new();
    for r in records.iter().filter(|r| r["event"] == "decision") {
        let done: Vec<_> = records
            .iter()
            .filter(|c| c["event"] == "completion" && c["request_id"] == r["request_id"])
            .collect();
        assert_eq!(done.len(), 1, "completions of {r}");
        let id = r["request_id"].as_str().unwrap().to_owned();
        completions.insert(id, done[0].clone());
    }
    completions
}

#[test]
fn sigterm_drains_requests_in_flight_and_seals_the_trail() {
    let upstream = Upstream::start();
    let mut gate = stopping_gate(&upstream, "delay_ms = 1000\ndrain_timeout_ms = 30000");
    let report = gate.boto(&format!(
        r#"
import hashlib, http.client, os, signal, socket, threading, time, urllib.parse, urllib.request
s3 = client()
s3.create_bucket(Bucket="acme-data")
SIZE = 32 << 20
blobs = {{f"big{{i}}": os.urandom(SIZE) for i in range(3)}}
for key, blob in blobs.items():
    s3.put_object(Bucket="acme-data", Key=key, Body=blob)

def presigned(method, key):
    url = s3.generate_presigned_url(method, Params={{"Bucket": "acme-data", "Key": key}})
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port, f"{{u.path}}?{{u.query}}"

started = threading.Barrier(5)
results = {{}}

def slow_get(key):
    host, port, target = presigned("get_object", key)
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("GET", target)
    r = c.getresponse()
    got = [r.read(64 << 10)]
    started.wait()
    while True:
        chunk = r.read(256 << 10)
        if not chunk:
            break
        got.append(chunk)
        time.sleep(0.03)
    data = b"".join(got)
    results[key] = {{"status": r.status, "same": data == blobs[key], "len": len(data)}}

def slow_put():
    host, port, target = presigned("put_object", "upload")
    body = os.urandom(2 << 20)
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.putrequest("PUT", target, skip_accept_encoding=True)
    c.putheader("Content-Length", str(len(body)))
    c.endheaders()
    c.send(body[:64 << 10])
    started.wait()
    for i in range(64 << 10, len(body), 64 << 10):
        c.send(body[i:i + (64 << 10)])
        time.sleep(0.15)
    r = c.getresponse()
    r.read()
    results["upload"] = {{"status": r.status, "sha": hashlib.sha256(body).hexdigest()}}

# Busy clients: small uploads and downloads back to back, each checked,
# until the gate stops taking connections. A request refused or whose
# connection closed before it was read never started; any other failure
# is a request cut short.
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
busy = {{"checked": 0, "cut": [], "ended_by": []}}
busy_started = threading.Barrier(4, timeout=120)

def busy_client(n):
    c = client()
    i = 0
    while True:
        key, body = f"small{{n}}-{{i}}", os.urandom(1024 + 97 * i)
        try:
            c.put_object(Bucket="acme-data", Key=key, Body=body)
            got = c.get_object(Bucket="acme-data", Key=key)["Body"].read()
        except (ConnectionClosedError, EndpointConnectionError) as e:
            busy["ended_by"].append(type(e).__name__)
            return
        except Exception as e:
            busy["cut"].append(f"{{key}}: {{e!r}}")
            return
        if got != body:
            busy["cut"].append(f"{{key}}: {{len(got)}} of {{len(body)}} bytes")
        busy["checked"] += 1
        i += 1
        if i == 3:
            busy_started.wait()

busy_threads = [threading.Thread(target=busy_client, args=(n,)) for n in range(3)]
for t in busy_threads:
    t.start()
busy_started.wait()

threads = [threading.Thread(target=slow_get, args=(k,)) for k in blobs]
threads.append(threading.Thread(target=slow_put))
for t in threads:
    t.start()
started.wait()
os.kill({pid}, signal.SIGTERM)

def readyz():
    try:
        return urllib.request.urlopen("http://{admin}/readyz", timeout=5).status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)

# Polled, not slept: readiness turns as soon as the signal is taken.
deadline = time.time() + 10
while readyz()[0] == 200 and time.time() < deadline:
    time.sleep(0.01)
results["readyz"] = readyz()
# Within the delay new requests are still taken; after it, not.
results["during_delay"] = attempt(s3.head_bucket, Bucket="acme-data")["status"]

def connect():
    try:
        socket.create_connection(("127.0.0.1", {s3_port}), timeout=2).close()
        return "accepted"
    except OSError as e:
        return type(e).__name__

deadline = time.time() + 10
while (after := connect()) == "accepted" and time.time() < deadline:
    time.sleep(0.05)
results["after_delay"] = after
results["readyz_later"] = readyz()
results["in_flight_when_closed"] = sum(t.is_alive() for t in threads)
for t in threads + busy_threads:
    t.join()
results["busy"] = busy
out(results)
"#,
        pid = gate.pid(),
        admin = gate.admin,
        s3_port = gate.s3.port(),
    ));
    for key in ["big0", "big1", "big2"] {
        assert_eq!(report[key]["status"], 200, "{report}");
        assert_eq!(
            report[key]["same"], true,
            "{key} came through altered: {report}"
        );
    }
    assert_eq!(report["upload"]["status"], 200, "{report}");
    let stored = std::fs::read(upstream.dir.path().join("acme-data/upload")).unwrap();
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored)),
        report["upload"]["sha"].as_str().unwrap(),
        "the upload was stored altered"
    );
    assert_eq!(
        report["readyz"],
        serde_json::json!([503, "draining\n"]),
        "{report}"
    );
    assert_eq!(report["during_delay"], 200, "{report}");
    assert_eq!(report["after_delay"], "ConnectionRefusedError", "{report}");
    assert_eq!(report["in_flight_when_closed"], 4, "{report}");

    let busy = &report["busy"];
    assert_eq!(busy["cut"], serde_json::json!([]), "{report}");
    assert!(busy["checked"].as_u64().unwrap() >= 9, "{report}");
    assert_eq!(busy["ended_by"].as_array().unwrap().len(), 3, "{report}");

    let status = gate.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "{status:?}");

    let completions = trail_after_exit(&gate);
    assert!(completions.len() >= 9 + 9, "{}", completions.len());
    for done in completions.values() {
        assert_eq!(done["outcome"], "complete", "{done}");
    }
    // The last record is vouched for by the checkpoint written on the way
    // out.
    let last = gate.audit().pop().unwrap();
    let checkpoint: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(gate.dir.path().join("audit/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&checkpoint["seq"], &checkpoint["hash"]),
        (&last["seq"], &last["hash"]),
        "{checkpoint}"
    );
}

#[test]
fn a_second_sigterm_skips_the_rest_of_the_drain_and_still_flushes_the_trail() {
    let upstream = Upstream::start();
    let mut gate = stopping_gate(&upstream, "drain_timeout_ms = 600000");
    let target = big_object(&gate, "big", 64);
    let (_held, id) = stalled_get(gate.s3, &target);

    gate.terminate();
    eventually("the listener closed", || !accepting(gate.s3));
    // The download would hold the drain for its whole ten minutes.
    gate.terminate();
    let status = gate.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");

    let completions = trail_after_exit(&gate);
    let cut = &completions[&id];
    assert_eq!(cut["outcome"], "client_aborted", "{cut}");
    assert!(cut["bytes_out"].as_u64().unwrap() < 64 << 20, "{cut}");
}

/// A gate whose clients must take some of a response every 2 s.
fn send_timeout_gate(upstream: &Upstream) -> Gate {
    gate_with(
        upstream,
        &[],
        "[limits]\nsend_timeout_ms = 2000\nidle_timeout_ms = 600000",
    )
}

/// Whether the request `id` has its completion record.
fn completed(gate: &Gate, id: &str) -> bool {
    gate.audit()
        .iter()
        .any(|r| r["event"] == "completion" && r["request_id"] == id)
}

/// The download `id` of an object of `size` bytes ended cut off by the
/// send timeout, the only one so far.
fn assert_cut_for_send_timeout(gate: &Gate, id: &str, size: u64) {
    let done = gate.records_of(id, 2).remove(1);
    assert_eq!(done["outcome"], "client_aborted", "{done}");
    assert!(done["bytes_out"].as_u64().unwrap() < size, "{done}");
    gate.expect_metric(
        "gatekeeper_connections_cut_total{reason=\"send_timeout\"}",
        1.0,
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    let upstream = Upstream::start();
    let gate = send_timeout_gate(&upstream);
    let target = big_object(&gate, "big", 64);
    let (mut stalled, id) = stalled_get(gate.s3, &target);
    let recs = gate.records_of(&id, 1);
    assert_eq!(recs[0]["decision"], "allow", "{}", recs[0]);

    // Meanwhile others are served.
    eventually("the stalled download's completion record", || {
        let response = exchange(gate.s3, format!("{GET}\r\n").as_bytes()).unwrap();
        assert_eq!(header(&response, "x-gatekeeper-decision"), "allow");
        completed(&gate, &id)
    });
    assert_cut_for_send_timeout(&gate, &id, 64 << 20);
    // What the kernel had buffered still arrives, then the end: the
    // connection is gone, not merely paused.
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {received} bytes: {e}"),
        }
    }
    assert!(received < 64 << 20, "{received}");
}

#[test]
fn an_http2_download_cut_off_at_the_drain_deadline_is_audited() {
    let upstream = Upstream::start();
    let mut gate = stopping_gate(&upstream, "drain_timeout_ms = 1000");
    let target = big_object(&gate, "big", 16);
    let heads = gate.dir.path().join("heads.txt");
    // h2c, read slowly: still running at the deadline.
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--limit-rate", "256K"])
        .args(["-o", "/dev/null", "-D"])
        .arg(&heads)
        .arg(format!("http://127.0.0.1:{}{target}", gate.s3.port()))
        .spawn()
        .unwrap();
    eventually("the response head", || {
        std::fs::read_to_string(&heads).is_ok_and(|h| h.contains("x-gatekeeper-request-id"))
    });
    let heads = std::fs::read_to_string(&heads).unwrap();
    assert!(heads.starts_with("HTTP/2 200"), "{heads}");
    let id = header(&heads, "x-gatekeeper-request-id").to_owned();

    gate.terminate();
    let status = gate.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert!(!curl.wait().unwrap().success(), "the download was not cut");

    let completions = trail_after_exit(&gate);
    let cut = &completions[&id];
    assert_eq!(cut["outcome"], "client_aborted", "{cut}");
}

#[test]
fn an_http2_stream_whose_window_the_client_keeps_shut_is_cut_off() {
    let upstream = Upstream::start();
    let gate = send_timeout_gate(&upstream);
    let target = big_object(&gate, "big", 16);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = gate.s3;
    // A 16 KiB stream window that the client never reopens: the gate's
    // socket never fills, so only the stream shows the stall.
    let (id, send, _unread) = rt.block_on(async move {
        let io = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_stream_window_size(16 << 10)
                .adaptive_window(false)
                .handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("http://127.0.0.1:{}{target}", addr.port()))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-gatekeeper-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (id, send, resp)
    });
    eventually("the stalled stream's completion record", || {
        completed(&gate, &id)
    });
    assert_cut_for_send_timeout(&gate, &id, 16 << 20);
    eventually("the connection closed", || send.is_closed());
}
