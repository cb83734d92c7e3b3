//! End to end: boto3 signs, the gate decides and streams, s3s-fs checks the
//! signature and stores. Each decision reason is seen by the SDK.

mod common;

use common::{http_raw, Gate, Upstream};
use serde_json::Value;

/// Requester addresses with known answers in the test GeoIP database.
const GB: &str = "81.2.69.142";
const HK: &str = "2001:2e0::1";
const CN: &str = "175.16.199.1";
const US: &str = "216.160.83.56";
const NO_COUNTRY: &str = "214.1.1.1";

fn setup() -> (Upstream, Gate) {
    let upstream = Upstream::start();
    let gate = Gate::start(&format!("http://{}", upstream.addr), common::TEST_RULES, "");
    let made = gate.boto(
        r#"
s3 = client()
out([attempt(s3.create_bucket, Bucket=b)["ok"] for b in
     ["acme-data", "acme-sh", "acme-hr", "acme-www", "acme-eu", "globex-eu", "globex-us", "initech-data"]])
"#,
    );
    assert!(
        made.as_array().unwrap().iter().all(|v| v == true),
        "buckets: {made}"
    );
    (upstream, gate)
}

fn header<'a>(r: &'a Value, name: &str) -> &'a str {
    r["headers"][name].as_str().unwrap_or("")
}

#[test]
fn objects_round_trip_byte_for_byte_with_signatures_checked_upstream() {
    let (_up, gate) = setup();
    let r = gate.boto(
        r#"
import hashlib
s3 = client()
body = bytes(range(256)) * 4096 + b"tail"
put = attempt(s3.put_object, Bucket="acme-data", Key="docs/a b=c%.bin", Body=body)
got = s3.get_object(Bucket="acme-data", Key="docs/a b=c%.bin")
data = got["Body"].read()
head = attempt(s3.head_object, Bucket="acme-data", Key="docs/a b=c%.bin")
lst = attempt(s3.list_objects_v2, Bucket="acme-data", Prefix="docs/")
rng = s3.get_object(Bucket="acme-data", Key="docs/a b=c%.bin", Range="bytes=10-19")["Body"].read()
out({"put": put, "same": data == body, "len": len(data), "head": head,
     "keys": [o["Key"] for o in lst["result"].get("Contents", [])],
     "range": rng == body[10:20], "get_headers": got["ResponseMetadata"]["HTTPHeaders"]})
"#,
    );
    assert_eq!(r["put"]["ok"], true, "{r}");
    assert_eq!(r["same"], true);
    assert_eq!(r["range"], true);
    assert_eq!(r["len"], 256 * 4096 + 4);
    assert_eq!(r["keys"], serde_json::json!(["docs/a b=c%.bin"]));
    assert_eq!(header(&r["put"], "x-gatekeeper-decision"), "allow");
    assert_eq!(
        header(&r["put"], "x-gatekeeper-reason"),
        "same_jurisdiction"
    );
    assert_eq!(r["head"]["ok"], true);
    assert_eq!(r["get_headers"]["x-gatekeeper-decision"], "allow");

    let id = r["get_headers"]["x-gatekeeper-request-id"]
        .as_str()
        .unwrap();
    let recs = gate.records_of(id, 2);
    assert_eq!(recs[0]["event"], "decision");
    assert_eq!(recs[0]["op"], "GetObject");
    assert_eq!(recs[0]["tenant"], "acme");
    assert_eq!(recs[0]["from"]["jurisdiction"], "CN");
    assert_eq!(recs[0]["to"]["via"], "network");
    assert_eq!(recs[1]["event"], "completion");
    assert_eq!(recs[1]["outcome"], "complete");
    assert_eq!(recs[1]["status"], 200);
    assert_eq!(recs[1]["bytes_out"], 256 * 4096 + 4);
}

/// One row per decision reason: who asks (X-Forwarded-For through the
/// trusted loopback proxy), what, and what the SDK must see.
#[test]
fn every_reason_reaches_the_sdk() {
    let (_up, gate) = setup();
    let r = gate.boto(&format!(
        r#"
for b, k, xff in [("acme-data", "report.txt", None), ("acme-hr", "passport.jpg", None),
                 ("acme-www", "index.html", None), ("globex-us", "usage.csv", "{US}"),
                 ("initech-data", "x.txt", None)]:
    client(xff).put_object(Bucket=b, Key=k, Body=b"x" * 100)
cases = {{
  "same_jurisdiction": attempt(client().get_object, Bucket="acme-data", Key="report.txt"),
  "legal_basis": attempt(client("{HK}").get_object, Bucket="acme-data", Key="report.txt"),
  "no_legal_basis": attempt(client("{GB}").get_object, Bucket="acme-data", Key="report.txt"),
  "forbidden_category": attempt(client("{HK}").get_object, Bucket="acme-hr", Key="passport.jpg"),
  "unrestricted_category": attempt(client("{GB}").get_object, Bucket="acme-www", Key="index.html"),
  "unrestricted_export": attempt(client("{CN}").get_object, Bucket="globex-us", Key="usage.csv"),
  "unknown_location": attempt(client("{NO_COUNTRY}").get_object, Bucket="acme-data", Key="report.txt"),
  "unknown_bucket": attempt(client().get_object, Bucket="nobody-owns-this", Key="k"),
  "residency_pin": attempt(client().put_object, Bucket="acme-eu", Key="k", Body=b"x"),
  "control_operation": attempt(client().delete_object, Bucket="acme-data", Key="gone"),
  "monitor": attempt(client("{GB}").get_object, Bucket="initech-data", Key="x.txt"),
  "invalid_category": attempt(client().put_object, Bucket="acme-www", Key="k", Body=b"x",
                              Metadata={{"data-category": "identity"}}),
  "unknown_declared": attempt(client().put_object, Bucket="acme-data", Key="k", Body=b"x",
                              Metadata={{"data-category": "secret-sauce"}}),
}}
for v in cases.values():
    v.pop("result", None)
out(cases)
"#
    ));
    let expect = [
        ("same_jurisdiction", 200, "allow", "same_jurisdiction", ""),
        ("legal_basis", 200, "allow", "legal_basis", ""),
        (
            "no_legal_basis",
            403,
            "deny",
            "no_legal_basis",
            "AccessDenied",
        ),
        (
            "forbidden_category",
            403,
            "deny",
            "forbidden_category",
            "AccessDenied",
        ),
        (
            "unrestricted_category",
            200,
            "allow",
            "unrestricted_category",
            "",
        ),
        (
            "unrestricted_export",
            200,
            "allow",
            "unrestricted_export",
            "",
        ),
        (
            "unknown_location",
            403,
            "deny",
            "unknown_location",
            "AccessDenied",
        ),
        (
            "unknown_bucket",
            403,
            "deny",
            "unknown_bucket",
            "AccessDenied",
        ),
        (
            "residency_pin",
            403,
            "deny",
            "residency_pin",
            "AccessDenied",
        ),
        ("control_operation", 204, "allow", "control_operation", ""),
        ("monitor", 200, "monitor-deny", "no_legal_basis", ""),
        (
            "invalid_category",
            400,
            "deny",
            "invalid_category",
            "InvalidArgument",
        ),
        (
            "unknown_declared",
            400,
            "deny",
            "invalid_category",
            "InvalidArgument",
        ),
    ];
    for (case, status, decision, reason, code) in expect {
        let c = &r[case];
        assert_eq!(c["status"], status, "{case}: {c}");
        assert_eq!(header(c, "x-gatekeeper-decision"), decision, "{case}: {c}");
        assert_eq!(header(c, "x-gatekeeper-reason"), reason, "{case}: {c}");
        if !code.is_empty() {
            assert_eq!(c["code"], code, "{case}: {c}");
            assert!(
                c["message"].as_str().unwrap().contains(reason),
                "{case}: {c}"
            );
        }
    }
    // Every decision above left a record naming its reason.
    let audit = gate.audit();
    for (case, _, decision, reason, _) in expect {
        let id = header(&r[case], "x-gatekeeper-request-id");
        let rec = audit
            .iter()
            .find(|a| a["request_id"] == id && a["event"] == "decision")
            .unwrap_or_else(|| panic!("no decision record for {case}"));
        assert_eq!(rec["decision"], decision, "{case}");
        assert_eq!(rec["reason"], reason, "{case}");
    }
    let basis = audit
        .iter()
        .find(|a| a["request_id"] == header(&r["legal_basis"], "x-gatekeeper-request-id"))
        .unwrap();
    assert_eq!(basis["basis"], "acme-hk-contract");
    assert_eq!(basis["basis_kind"], "pipl-standard-contract");
    assert_eq!(basis["to"]["jurisdiction"], "HK");
    assert_eq!(basis["to"]["via"], "geoip");
}

#[test]
fn a_denied_head_is_a_bare_403() {
    let (_up, gate) = setup();
    let r = gate.boto(&format!(
        r#"
client().put_object(Bucket="acme-hr", Key="p.jpg", Body=b"face")
out(attempt(client("{GB}").head_object, Bucket="acme-hr", Key="p.jpg"))
"#
    ));
    assert_eq!(r["status"], 403);
    assert_eq!(r["code"], "403");
    assert_eq!(header(&r, "x-gatekeeper-reason"), "forbidden_category");
}

#[test]
fn stored_category_raises_before_the_first_body_byte() {
    let (_up, gate) = setup();
    let r = gate.boto(&format!(
        r#"
client().put_object(Bucket="acme-data", Key="scan.pdf", Body=b"secret" * 1000,
                    Metadata={{"data-category": "identity"}})
out(attempt(client("{HK}").get_object, Bucket="acme-data", Key="scan.pdf"))
"#
    ));
    assert_eq!(r["status"], 403, "{r}");
    assert_eq!(r["code"], "AccessDenied");
    assert_eq!(header(&r, "x-gatekeeper-reason"), "forbidden_category");
    // No upstream header leaks through a recheck denial.
    assert!(
        r["headers"].get("x-amz-meta-data-category").is_none(),
        "{r}"
    );
    assert!(r["headers"].get("etag").is_none(), "{r}");
    let id = header(&r, "x-gatekeeper-request-id");
    let recs = gate.records_of(id, 2);
    assert_eq!(
        recs[0]["decision"], "allow",
        "the first decision saw only the bucket"
    );
    assert_eq!(recs[1]["outcome"], "recheck_denied");
    assert_eq!(recs[1]["category"], "identity");
    assert_eq!(recs[1]["bytes_out"], 0);
}

#[test]
fn a_denied_expect_continue_upload_is_answered_without_reading_the_body() {
    let (_up, gate) = setup();
    let (status, text) = http_raw(
        gate.s3,
        &format!(
            "PUT /acme-hr/big.bin HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Forwarded-For: {GB}\r\n\
             Content-Length: 104857600\r\nExpect: 100-continue\r\n\r\n",
            gate.s3.port()
        ),
    );
    assert_eq!(status, 403, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
}

/// An allowed upload gets `100 Continue` only after its decision, and the
/// body that follows reaches the upstream whole.
#[test]
fn an_allowed_expect_continue_upload_goes_through() {
    let (up, gate) = setup();
    let r = gate.boto(
        r#"
import socket, urllib.parse
s3 = client()
url = s3.generate_presigned_url("put_object", Params={"Bucket": "acme-data", "Key": "continued"})
u = urllib.parse.urlsplit(url)
sock = socket.create_connection((u.hostname, u.port), timeout=30)
body = b"c" * 300000
sock.sendall(f"PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n"
             f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
interim = sock.recv(4096).decode()
sock.sendall(body)
final = b""
while b"\r\n\r\n" not in final:
    final += sock.recv(4096)
out({"interim": interim, "final": final.decode(errors="replace")})
"#,
    );
    let interim = r["interim"].as_str().unwrap();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{r}");
    let last = r["final"].as_str().unwrap();
    assert!(last.starts_with("HTTP/1.1 200"), "{r}");
    assert!(last.contains("x-gatekeeper-decision: allow"), "{r}");
    let stored = std::fs::read(up.dir.path().join("acme-data/continued")).unwrap();
    assert_eq!(stored, vec![b'c'; 300000]);
}

#[test]
fn presigned_multipart_and_copy_pass_through() {
    let (_up, gate) = setup();
    let r = gate.boto(
        r#"
import urllib.request
from boto3.s3.transfer import TransferConfig
s3 = client()
s3.put_object(Bucket="acme-data", Key="p.txt", Body=b"presigned body")
url = s3.generate_presigned_url("get_object", Params={"Bucket": "acme-data", "Key": "p.txt"}, ExpiresIn=300)
with urllib.request.urlopen(url) as resp:
    presigned = resp.read().decode()
    presigned_decision = resp.headers["x-gatekeeper-decision"]
import io
blob = b"m" * (6 * 1024 * 1024) + b"end"
s3.upload_fileobj(io.BytesIO(blob), "acme-data", "multi.bin",
                  Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
multi = s3.get_object(Bucket="acme-data", Key="multi.bin")["Body"].read() == blob
copy = attempt(s3.copy_object, Bucket="acme-sh", Key="copied.txt", CopySource={"Bucket": "acme-data", "Key": "p.txt"})
copied = s3.get_object(Bucket="acme-sh", Key="copied.txt")["Body"].read().decode()
pinned = attempt(s3.copy_object, Bucket="globex-eu", Key="stolen.txt", CopySource={"Bucket": "acme-data", "Key": "p.txt"})
out({"presigned": presigned, "presigned_decision": presigned_decision, "multi": multi,
     "copy": copy["status"], "copy_reason": copy["headers"].get("x-gatekeeper-reason"), "copied": copied,
     "pinned": pinned["status"], "pinned_reason": pinned["headers"].get("x-gatekeeper-reason")})
"#,
    );
    assert_eq!(r["presigned"], "presigned body", "{r}");
    assert_eq!(r["presigned_decision"], "allow");
    assert_eq!(r["multi"], true);
    assert_eq!(r["copy"], 200, "{r}");
    assert_eq!(r["copy_reason"], "same_jurisdiction");
    assert_eq!(r["copied"], "presigned body");
    assert_eq!(r["pinned"], 403);
    assert_eq!(r["pinned_reason"], "residency_pin");
}

#[test]
fn malformed_and_unknown_requests_get_s3_errors() {
    let (_up, gate) = setup();
    let host = format!("127.0.0.1:{}", gate.s3.port());
    let cases = [
        (
            "GET /acme-data/a/../../globex-eu/x HTTP/1.1",
            400,
            "InvalidArgument",
        ),
        ("GET /acme-data/%2e%2e/x HTTP/1.1", 400, "InvalidArgument"),
        ("GET /acme-data?frobnicate HTTP/1.1", 501, "NotImplemented"),
        (
            "PUT /acme-data?notification HTTP/1.1",
            501,
            "NotImplemented",
        ),
    ];
    for (line, status, code) in cases {
        let (got, text) = http_raw(
            gate.s3,
            &format!("{line}\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(got, status, "{line}: {text}");
        assert!(
            text.contains(&format!("<Code>{code}</Code>")),
            "{line}: {text}"
        );
        assert!(text.contains("x-gatekeeper-request-id"), "{line}: {text}");
    }
    let (got, text) = http_raw(
        gate.s3,
        "GET /acme-data/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(got, 400, "{text}");

    // A body the gate must read and cannot: refused, and audited under the
    // bucket's tenant.
    let xml = "<ReplicationConfiguration><Rule>";
    let (got, text) = http_raw(
        gate.s3,
        &format!(
            "PUT /acme-data?replication HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{xml}",
            xml.len()
        ),
    );
    assert_eq!(got, 400, "{text}");
    assert!(text.contains("<Code>MalformedXML</Code>"), "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("x-gatekeeper-request-id: "))
        .unwrap();
    let rec = &gate.records_of(id.trim(), 1)[0];
    assert_eq!(rec["tenant"], "acme");
    assert_eq!(rec["op"], "PutBucketReplication");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["reason"], "bad_request");
    assert_eq!(rec["status"], 400);
}

#[test]
fn replication_destinations_are_decided_before_forwarding() {
    let (_up, gate) = setup();
    let body = |dest: &str| {
        format!(
            "<ReplicationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Role>arn:aws:iam::1:role/r</Role>\
             <Rule><ID>r1</ID><Status>Enabled</Status><Filter><Prefix>docs/</Prefix></Filter>\
             <Destination><Bucket>arn:aws:s3:::{dest}</Bucket></Destination></Rule></ReplicationConfiguration>"
        )
    };
    let host = format!("127.0.0.1:{}", gate.s3.port());
    let send = |dest: &str| {
        let b = body(dest);
        http_raw(
            gate.s3,
            &format!(
                "PUT /acme-data?replication HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            ),
        )
    };
    let (status, text) = send("globex-eu");
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("x-gatekeeper-reason: residency_pin"),
        "{text}"
    );
    // Allowed: forwarded to s3s-fs, which does not implement replication
    // (and does not accept the unsigned request); the gate let it through.
    let (_, text) = send("acme-sh");
    assert!(text.contains("x-gatekeeper-decision: allow"), "{text}");
    let rec = gate
        .audit()
        .into_iter()
        .find(|r| r["op"] == "PutBucketReplication" && r["decision"] == "deny")
        .unwrap();
    assert_eq!(rec["destinations"][0]["bucket"], "globex-eu");
}

#[test]
fn an_upstream_that_is_down_is_a_502_with_a_record() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let gate = Gate::start(&format!("http://{addr}"), common::TEST_RULES, "");
    let r = gate.boto(r#"out(attempt(client().get_object, Bucket="acme-data", Key="k"))"#);
    assert_eq!(r["status"], 502, "{r}");
    assert_eq!(r["code"], "BadGateway");
    let recs = gate.records_of(header(&r, "x-gatekeeper-request-id"), 2);
    assert_eq!(recs[1]["outcome"], "upstream_error");
    assert_eq!(recs[1]["status"], 502);
}

#[test]
fn metrics_count_what_happened() {
    let (_up, gate) = setup();
    gate.boto(&format!(
        r#"
attempt(client().get_object, Bucket="acme-data", Key="none")
attempt(client("{GB}").get_object, Bucket="acme-data", Key="none")
out(1)
"#
    ));
    let (status, text) = gate.admin_get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        r#"gatekeeper_requests_total{decision="allow",direction="egress",reason="same_jurisdiction"} 1"#,
        r#"gatekeeper_requests_total{decision="deny",direction="egress",reason="no_legal_basis"} 1"#,
        r#"gatekeeper_transfers_total{decision="deny",from="CN",to="GB"} 1"#,
        "gatekeeper_decision_duration_seconds_count",
        "gatekeeper_audit_records_total",
        "gatekeeper_rules_info{version=",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (status, _) = gate.admin_get("/readyz");
    assert_eq!(status, 200);
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_256_mib_download_streams_in_bounded_memory() {
    let (up, gate) = setup();
    // Written straight into the store, so only the download crosses the gate.
    let size: u64 = 256 << 20;
    let f = std::fs::File::create(up.dir.path().join("acme-data/big.bin")).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    // Warm up: the first request's allocations are not the stream's.
    gate.boto(r#"out(attempt(client().head_object, Bucket="acme-data", Key="big.bin")["status"])"#);
    let before = peak_rss_kib(gate.pid());
    let r = gate.boto(
        r#"
body = client().get_object(Bucket="acme-data", Key="big.bin")["Body"]
n = 0
while True:
    chunk = body.read(1 << 20)
    if not chunk:
        break
    n += len(chunk)
out(n)
"#,
    );
    assert_eq!(r, size);
    let growth = peak_rss_kib(gate.pid()).saturating_sub(before);
    assert!(
        growth < 64 * 1024,
        "peak RSS grew by {growth} KiB while streaming 256 MiB"
    );
}

/// A browser form upload names its key and category in fields before the
/// file: the gate decides on those, and the file streams on unchanged.
#[test]
fn a_form_upload_is_decided_on_its_fields() {
    let (_up, gate) = setup();
    let r = gate.boto(
        r#"
import http.client, urllib.parse, uuid
s3 = client()

def post(bucket, key, body, category=None):
    fields = {"x-amz-meta-data-category": category} if category else {}
    conditions = [{"x-amz-meta-data-category": category}] if category else []
    p = s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions)
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in p["fields"].items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode() + body
                 + f'\r\n--{boundary}--\r\n'.encode())
    data = b"".join(parts)
    url = urllib.parse.urlsplit(p["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", url.path, body=data,
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = conn.getresponse()
    return {"status": resp.status, "body": resp.read().decode(errors="replace"),
            "id": resp.getheader("x-gatekeeper-request-id"),
            "reason": resp.getheader("x-gatekeeper-reason")}

body = bytes(range(256)) * 1024
ok = post("acme-data", "forms/upload.bin", body)
got = attempt(s3.get_object, Bucket="acme-data", Key="forms/upload.bin")
same = got["ok"] and got["result"]["Body"].read() == body
denied = post("acme-www", "forms/id.jpg", b"face", category="identity")
out({"ok": ok, "same": same, "denied": denied})
"#,
    );
    assert!(
        (200..300).contains(&r["ok"]["status"].as_u64().unwrap()),
        "{r}"
    );
    assert_eq!(r["same"], true, "{r}");
    let recs = gate.records_of(r["ok"]["id"].as_str().unwrap(), 2);
    assert_eq!(recs[0]["op"], "PostObject");
    assert_eq!(recs[0]["key"], "forms/upload.bin");
    assert_eq!(recs[0]["decision"], "allow");
    assert!(recs[1]["bytes_in"].as_u64().unwrap() > 256 * 1024);

    assert_eq!(r["denied"]["status"], 400, "{r}");
    assert_eq!(r["denied"]["reason"], "invalid_category");
    assert!(r["denied"]["body"]
        .as_str()
        .unwrap()
        .contains("<Code>InvalidArgument</Code>"));
    let recs = gate.records_of(r["denied"]["id"].as_str().unwrap(), 1);
    assert_eq!(recs[0]["key"], "forms/id.jpg");
    assert_eq!(recs[0]["reason"], "invalid_category");
}
