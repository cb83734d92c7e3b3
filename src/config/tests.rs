//! `gatekeeper.toml`: defaults, path resolution, and one test per error,
//! each asserting file, line, column and text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::macros::date;

use super::*;

const MINIMAL: &str = "region = \"bj\"\n[upstream]\nurl = \"http://127.0.0.1:9000\"\n[geoip]\ndatabase = \"geo.mmdb\"\n";

fn config(text: &str) -> Config {
    parse(Path::new("/etc/gk/gatekeeper.toml"), text).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The messages for `MINIMAL` with `extra` appended (so errors are on line
/// 6 and later), as `check` prints them.
fn errors(extra: &str) -> Vec<String> {
    errors_of(&format!("{MINIMAL}{extra}"))
}

fn errors_of(text: &str) -> Vec<String> {
    match parse(Path::new("gk.toml"), text) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn defaults() {
    let c = config(MINIMAL);
    assert_eq!(c.path, Path::new("/etc/gk/gatekeeper.toml"));
    assert_eq!(c.region, "bj");
    assert_eq!(c.region_origin.to_string(), "/etc/gk/gatekeeper.toml:1:10");
    assert_eq!(c.rules, Path::new("/etc/gk/rules"));
    assert_eq!(c.mode, Mode::Enforce);
    assert_eq!(c.unknown_bucket, UnknownBucket::Deny);
    assert_eq!(c.listen.s3, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(
        c.listen.admin,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert!(c.listen.tls.is_none());
    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Http("http://127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(2_000));
    assert_eq!(c.upstream.response_timeout, Duration::from_millis(30_000));
    assert_eq!(c.upstream.idle_timeout, Duration::from_millis(60_000));
    assert_eq!(c.upstream.pool_idle, Duration::from_secs(90));
    assert_eq!(c.s3.hosts, ["localhost", "127.0.0.1", "::1"]);
    assert!(c.s3.virtual_host_domains.is_empty());
    assert_eq!(c.s3.deny_detail, DenyDetail::Reason);
    assert_eq!(c.geoip.database, Path::new("/etc/gk/geo.mmdb"));
    assert_eq!(c.geoip.unknown, UnknownLocation::Deny);
    assert!(c.network.trusted_proxies.is_empty());
    assert_eq!(c.audit.dir, Path::new("/etc/gk/audit"));
    assert_eq!(c.audit.fsync, Fsync::Batch);
    assert_eq!(c.audit.batch_interval, Duration::from_millis(5));
    assert_eq!(c.audit.on_failure, OnAuditFailure::Deny);
    assert_eq!(c.audit.signing_key, None);
    assert_eq!(c.audit.client_ip, ClientIp::Truncate);
    assert!(!c.audit.key_hash);
    assert_eq!(c.audit.hash_key, None);
    assert!(!c.audit.instance.is_empty());
    assert_eq!(c.audit.queue, 65_536);
    assert_eq!(c.audit.segment_bytes, 64 * 1024 * 1024);
    assert_eq!(c.audit.segment_max_age, Duration::from_secs(3600));
    assert_eq!(c.audit.checkpoint_interval, Duration::from_secs(5));
    assert!(!c.listen.proxy_protocol);
    assert_eq!(c.network.client_ip_header, ClientIpHeader::XForwardedFor);
    assert_eq!(c.limits.max_connections, 10_000);
    assert_eq!(c.limits.max_streams, 100);
    assert_eq!(c.limits.max_header_bytes, 64 * 1024);
    assert_eq!(c.limits.max_headers, 100);
    assert_eq!(c.limits.header_timeout, Duration::from_secs(15));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.send_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.max_config_body_bytes, 1 << 20);
    assert_eq!(c.limits.max_explain_body_bytes, 2 << 20);
    assert_eq!(c.shutdown.delay, Duration::ZERO);
    assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.admin.token_file, None);
}

#[test]
fn every_key_set() {
    let c = config(
        r#"region = "bj"
rules = "/srv/rules"
mode = "monitor"
monitor_until = 2027-03-31
unknown_bucket = "monitor"

[listen]
s3 = "0.0.0.0:80"
admin = "[::1]:9999"
tls = { addr = "192.0.2.10:443", cert = "certs/server.pem", key = "certs/server.key", client_ca = "certs/ca.pem" }
proxy_protocol = true

[upstream]
url = "https://storage.internal:9000"
connect_timeout_ms = 100
response_timeout_ms = 200
idle_timeout_ms = 300
pool_idle_ms = 400

[s3]
virtual_host_domains = ["S3.Example.com"]
deny_detail = "full"

[geoip]
database = "/var/lib/GeoLite2-Country.mmdb"
unknown = "allow"

[network]
trusted_proxies = ["10.0.0.5/32", "fd00::/8"]
client_ip_header = "forwarded"

[audit]
dir = "/var/log/gatekeeper"
fsync = "always"
batch_ms = 10
on_failure = "allow"
signing_key = "certs/audit.pem"
client_ip = "hash"
key_hash = true
hash_key = "certs/hmac.key"
instance = "edge-bj6-a"
queue = 1024
segment_bytes = 1048576
segment_max_age_s = 600
checkpoint_interval_ms = 2500

[limits]
max_connections = 500
max_streams = 10
max_header_bytes = 8192
max_headers = 20
header_timeout_ms = 1500
idle_timeout_ms = 2500
send_timeout_ms = 7000
max_config_body_bytes = 4096
max_explain_body_bytes = 8192

[shutdown]
delay_ms = 5000
drain_timeout_ms = 60000

[admin]
token_file = "secrets/admin.token"
"#,
    );
    assert_eq!(c.rules, Path::new("/srv/rules"));
    assert_eq!(
        c.mode,
        Mode::Monitor {
            until: date!(2027 - 03 - 31)
        }
    );
    assert_eq!(c.unknown_bucket, UnknownBucket::Monitor);
    let tls = c.listen.tls.unwrap();
    assert_eq!(tls.addr, "192.0.2.10:443".parse::<SocketAddr>().unwrap());
    assert_eq!(tls.cert, Path::new("/etc/gk/certs/server.pem"));
    assert_eq!(tls.key, Path::new("/etc/gk/certs/server.key"));
    assert_eq!(
        tls.client_ca.as_deref(),
        Some(Path::new("/etc/gk/certs/ca.pem"))
    );
    assert_eq!(c.listen.admin, "[::1]:9999".parse::<SocketAddr>().unwrap());
    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Http("https://storage.internal:9000".parse().unwrap())
    );
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(100));
    assert_eq!(c.upstream.response_timeout, Duration::from_millis(200));
    assert_eq!(c.upstream.idle_timeout, Duration::from_millis(300));
    assert_eq!(c.upstream.pool_idle, Duration::from_millis(400));
    // Unspecified 0.0.0.0 is not a host name; the TLS address is.
    assert_eq!(c.s3.hosts, ["localhost", "127.0.0.1", "::1", "192.0.2.10"]);
    assert_eq!(c.s3.virtual_host_domains, ["s3.example.com"]);
    assert_eq!(c.s3.deny_detail, DenyDetail::Full);
    assert_eq!(
        c.geoip.database,
        Path::new("/var/lib/GeoLite2-Country.mmdb")
    );
    assert_eq!(c.geoip.unknown, UnknownLocation::Allow);
    let proxies: Vec<String> = c
        .network
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.5/32", "fd00::/8"]);
    assert_eq!(c.audit.dir, Path::new("/var/log/gatekeeper"));
    assert_eq!(c.audit.fsync, Fsync::Always);
    assert_eq!(c.audit.batch_interval, Duration::from_millis(10));
    assert_eq!(c.audit.on_failure, OnAuditFailure::Allow);
    assert_eq!(
        c.audit.signing_key.as_deref(),
        Some(Path::new("/etc/gk/certs/audit.pem"))
    );
    assert_eq!(c.audit.client_ip, ClientIp::Hash);
    assert!(c.audit.key_hash);
    assert_eq!(
        c.audit.hash_key.as_deref(),
        Some(Path::new("/etc/gk/certs/hmac.key"))
    );
    assert_eq!(c.audit.instance, "edge-bj6-a");
    assert_eq!(c.audit.queue, 1024);
    assert_eq!(c.audit.segment_bytes, 1 << 20);
    assert_eq!(c.audit.segment_max_age, Duration::from_secs(600));
    assert_eq!(c.audit.checkpoint_interval, Duration::from_millis(2500));
    assert!(c.listen.proxy_protocol);
    assert_eq!(c.network.client_ip_header, ClientIpHeader::Forwarded);
    assert_eq!(c.limits.max_connections, 500);
    assert_eq!(c.limits.max_streams, 10);
    assert_eq!(c.limits.max_header_bytes, 8192);
    assert_eq!(c.limits.max_headers, 20);
    assert_eq!(c.limits.header_timeout, Duration::from_millis(1500));
    assert_eq!(c.limits.idle_timeout, Duration::from_millis(2500));
    assert_eq!(c.limits.send_timeout, Duration::from_millis(7000));
    assert_eq!(c.limits.max_config_body_bytes, 4096);
    assert_eq!(c.limits.max_explain_body_bytes, 8192);
    assert_eq!(c.shutdown.delay, Duration::from_secs(5));
    assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(60));
    assert_eq!(
        c.admin.token_file.as_deref(),
        Some(Path::new("/etc/gk/secrets/admin.token"))
    );
}

#[test]
fn default_hosts_include_the_listen_address() {
    let c = config(&format!("{MINIMAL}[listen]\ns3 = \"192.0.2.7:8080\"\n"));
    assert_eq!(c.s3.hosts, ["localhost", "127.0.0.1", "::1", "192.0.2.7"]);
    // Configured hosts are taken as they are.
    let c = config(&format!(
        "{MINIMAL}[listen]\ns3 = \"192.0.2.7:8080\"\n[s3]\nhosts = [\"S3.Local\", \"::1\"]\n"
    ));
    assert_eq!(c.s3.hosts, ["s3.local", "::1"]);
}

#[test]
fn relative_paths_follow_the_config_file() {
    let c = parse(Path::new("gatekeeper.toml"), MINIMAL).unwrap();
    assert_eq!(c.rules, Path::new("rules"));
    let text = "region = \"bj\"\n[upstream]\nurl = \"embedded:./data\"\naccess_key = \"ak\"\nsecret_key = \"sk\"\n[geoip]\ndatabase = \"geo.mmdb\"\n";
    let c = parse(Path::new("conf/gk.toml"), text).unwrap();
    assert_eq!(
        (
            c.upstream.access_key.as_str(),
            c.upstream.secret_key.as_str()
        ),
        ("ak", "sk")
    );
    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Embedded(PathBuf::from("conf/./data"))
    );
    assert_eq!(c.geoip.database, Path::new("conf/geo.mmdb"));
}

#[test]
fn quickstart_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = load(&dir.join("gatekeeper.toml")).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(c.region, "cn-beijing-6");
    assert_eq!(c.rules, dir.join("rules"));
    assert_eq!(
        c.upstream.target,
        UpstreamTarget::Embedded(dir.join("data"))
    );
    assert_eq!(c.geoip.database, dir.join("geoip/GeoLite2-City-Test.mmdb"));
    assert_eq!(c.s3.hosts, ["localhost", "127.0.0.1", "::1"]);
    assert!(c.s3.virtual_host_domains.is_empty());
    assert_eq!(c.audit.dir, dir.join("audit"));
    assert_eq!(c.audit.instance, "quickstart");
    assert_eq!(c.upstream.access_key, "quickstart");
    assert_eq!(c.upstream.secret_key, "quickstart-secret");
    // Its region is one of the example rules'.
    let rules = crate::rules::compile::load_dir(&c.rules, date!(2026 - 12 - 01))
        .unwrap()
        .rules;
    assert_eq!(
        c.region_id(&rules).unwrap(),
        rules.region_by_id("cn-beijing-6").unwrap()
    );
}

#[test]
fn region_missing_from_the_rules() {
    let c = parse(Path::new("gk.toml"), MINIMAL).unwrap();
    let rules = crate::rules::compile::compile_str(
        "[[region]]\nid = \"sh\"\njurisdiction = \"CN\"\n[[category]]\nid = \"c\"\nrank = 1\ncross_border = \"never\"\n",
        date!(2026 - 12 - 01),
    )
    .unwrap()
    .rules;
    assert_eq!(
        c.region_id(&rules).unwrap_err().to_string(),
        "gk.toml:1:10: error: region \"bj\" is not a [[region]] of the rules in rules"
    );
}

#[test]
fn unreadable_file() {
    let d = load(Path::new("/nonexistent/gatekeeper.toml")).unwrap_err();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].to_string()
            .starts_with("/nonexistent/gatekeeper.toml: error: cannot read: "),
        "{}",
        d[0]
    );
}

// --- errors ----------------------------------------------------------------

#[test]
fn unknown_key() {
    assert_eq!(
        errors("[audit]\nfsynk = \"always\"\n"),
        ["gk.toml:7:1: error: unknown field `fsynk`, expected one of `dir`, `fsync`, `batch_ms`, `on_failure`, `signing_key`, `client_ip`, `key_hash`, `hash_key`, `instance`, `queue`, `segment_bytes`, `segment_max_age_s`, `checkpoint_interval_ms`, `archive`"]
    );
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        errors_of("region = \"bj\"\n[upstream]\nurl = \"embedded:data\"\n"),
        ["gk.toml:1:1: error: missing field `geoip`"]
    );
    assert_eq!(
        errors_of(
            "region = \"bj\"\n[upstream]\nurl = \"embedded:data\"\n[geoip]\nunknown = \"deny\"\n"
        ),
        ["gk.toml:4:1: error: missing field `database`"]
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors("[audit]\nqueue = -1\n"),
        ["gk.toml:7:9: error: invalid value: integer `-1`, expected u64"]
    );
}

#[test]
fn invalid_choices() {
    // MINIMAL ends inside [geoip], so a key appended to it lands there.
    let cases = [
        (
            format!("unknown_bucket = \"allow\"\n{MINIMAL}"),
            "gk.toml:1:18: error: invalid unknown_bucket \"allow\": expected one of \"deny\", \"monitor\"",
        ),
        (
            format!("{MINIMAL}unknown = \"monitor\"\n"),
            "gk.toml:6:11: error: invalid geoip.unknown \"monitor\": expected one of \"deny\", \"allow\"",
        ),
        (
            format!("{MINIMAL}[s3]\ndeny_detail = \"all\"\n"),
            "gk.toml:7:15: error: invalid s3.deny_detail \"all\": expected one of \"reason\", \"full\"",
        ),
        (
            format!("{MINIMAL}[audit]\nfsync = \"sometimes\"\n"),
            "gk.toml:7:9: error: invalid audit.fsync \"sometimes\": expected one of \"batch\", \"always\", \"never\"",
        ),
        (
            format!("{MINIMAL}[audit]\non_failure = \"retry\"\n"),
            "gk.toml:7:14: error: invalid audit.on_failure \"retry\": expected one of \"deny\", \"allow\"",
        ),
        (
            format!("{MINIMAL}[audit]\nclient_ip = \"mask\"\n"),
            "gk.toml:7:13: error: invalid audit.client_ip \"mask\": expected one of \"truncate\", \"full\", \"hash\"",
        ),
        (
            format!("{MINIMAL}[network]\nclient_ip_header = \"x-real-ip\"\n"),
            "gk.toml:7:20: error: invalid network.client_ip_header \"x-real-ip\": expected one of \"x-forwarded-for\", \"forwarded\"",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(errors_of(&text), [expected], "{text}");
    }
}

#[test]
fn monitor_mode_needs_its_end_date() {
    assert_eq!(
        errors_of(&format!("mode = \"audit\"\n{MINIMAL}")),
        ["gk.toml:1:8: error: invalid mode \"audit\": expected one of \"enforce\", \"monitor\""]
    );
    assert_eq!(
        errors_of(&format!("mode = \"monitor\"\n{MINIMAL}")),
        ["gk.toml:1:8: error: mode = \"monitor\" needs monitor_until, the last day denials are let through"]
    );
    assert_eq!(
        errors_of(&format!("monitor_until = 2027-01-01\n{MINIMAL}")),
        ["gk.toml:1:17: error: monitor_until is set but mode is not \"monitor\""]
    );
}

#[test]
fn empty_region_and_paths() {
    assert_eq!(
        errors_of("region = \"\"\nrules = \"\"\n[upstream]\nurl = \"embedded:\"\n[geoip]\ndatabase = \"\"\n"),
        [
            "gk.toml:1:10: error: region is empty",
            "gk.toml:2:9: error: rules is empty",
            "gk.toml:4:7: error: upstream.url \"embedded:\" needs a directory, like \"embedded:data\"",
            "gk.toml:6:12: error: geoip.database is empty",
        ]
    );
}

#[test]
fn invalid_listen_addresses() {
    assert_eq!(
        errors("[listen]\ns3 = \"localhost:8080\"\nadmin = \"9090\"\ntls = { addr = \"0.0.0.0\", cert = \"c.pem\", key = \"k.pem\" }\n"),
        [
            "gk.toml:7:6: error: invalid listen.s3 \"localhost:8080\": expected an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "gk.toml:8:9: error: invalid listen.admin \"9090\": expected an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "gk.toml:9:16: error: invalid listen.tls.addr \"0.0.0.0\": expected an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"",
        ]
    );
}

#[test]
fn invalid_upstream_urls() {
    let cases = [
        ("ftp://storage:21", "invalid upstream.url \"ftp://storage:21\": expected \"http://host:port\", \"https://host:port\" or \"embedded:DIR\""),
        ("storage:9000", "invalid upstream.url \"storage:9000\": expected \"http://host:port\", \"https://host:port\" or \"embedded:DIR\""),
        ("http://storage:9000/prefix", "upstream.url \"http://storage:9000/prefix\" has a path or query: requests are forwarded with their own, so give only scheme, host and port"),
        ("http://storage:9000/?x=1", "upstream.url \"http://storage:9000/?x=1\" has a path or query: requests are forwarded with their own, so give only scheme, host and port"),
    ];
    for (url, message) in cases {
        let text = MINIMAL.replace("http://127.0.0.1:9000", url);
        assert_eq!(errors_of(&text), [format!("gk.toml:3:7: error: {message}")]);
    }
    // A trailing slash is no path.
    config(&MINIMAL.replace("http://127.0.0.1:9000", "http://storage:9000/"));
}

#[test]
fn only_the_embedded_store_takes_credentials() {
    let embedded = MINIMAL.replace("http://127.0.0.1:9000", "embedded:data");
    let needs = "gk.toml:3:7: error: an embedded: upstream needs upstream.access_key and upstream.secret_key, the credentials clients sign with";
    assert_eq!(errors_of(&embedded), [needs]);
    let empty = embedded.replace("[geoip]", "access_key = \"ak\"\nsecret_key = \"\"\n[geoip]");
    assert_eq!(errors_of(&empty), [needs]);
    let http = MINIMAL.replace("[geoip]", "secret_key = \"sk\"\n[geoip]");
    assert_eq!(
        errors_of(&http),
        ["gk.toml:4:14: error: upstream.access_key and upstream.secret_key are only for an embedded: upstream; any other checks its own credentials"]
    );
}

#[test]
fn zero_is_not_a_timeout_or_size() {
    assert_eq!(
        errors("[audit]\nbatch_ms = 0\nqueue = 0\nsegment_bytes = 0\nsegment_max_age_s = 0\ncheckpoint_interval_ms = 0\n"),
        [
            "gk.toml:7:12: error: audit.batch_ms must be greater than 0",
            "gk.toml:8:9: error: audit.queue must be greater than 0",
            "gk.toml:9:17: error: audit.segment_bytes must be greater than 0",
            "gk.toml:10:21: error: audit.segment_max_age_s must be greater than 0",
            "gk.toml:11:26: error: audit.checkpoint_interval_ms must be greater than 0",
        ]
    );
    let text = MINIMAL.replace("[geoip]", "connect_timeout_ms = 0\nresponse_timeout_ms = 0\nidle_timeout_ms = 0\npool_idle_ms = 0\n[geoip]");
    assert_eq!(
        errors_of(&text),
        [
            "gk.toml:4:22: error: upstream.connect_timeout_ms must be greater than 0",
            "gk.toml:5:23: error: upstream.response_timeout_ms must be greater than 0",
            "gk.toml:6:19: error: upstream.idle_timeout_ms must be greater than 0",
            "gk.toml:7:16: error: upstream.pool_idle_ms must be greater than 0",
        ]
    );
}

#[test]
fn limits_out_of_range() {
    assert_eq!(
        errors("[limits]\nmax_connections = 0\nmax_streams = 4294967296\nmax_header_bytes = 8191\nmax_headers = 0\nheader_timeout_ms = 0\nidle_timeout_ms = 0\nsend_timeout_ms = 0\nmax_config_body_bytes = 1048577\nmax_explain_body_bytes = 0\n[shutdown]\ndrain_timeout_ms = 0\n"),
        [
            "gk.toml:7:19: error: limits.max_connections must be greater than 0",
            "gk.toml:8:15: error: limits.max_streams must be from 1 to 4294967295",
            "gk.toml:9:20: error: limits.max_header_bytes must be from 8192 to 4294967295",
            "gk.toml:10:15: error: limits.max_headers must be greater than 0",
            "gk.toml:11:21: error: limits.header_timeout_ms must be greater than 0",
            "gk.toml:12:19: error: limits.idle_timeout_ms must be greater than 0",
            "gk.toml:13:19: error: limits.send_timeout_ms must be greater than 0",
            "gk.toml:14:25: error: limits.max_config_body_bytes must be from 1 to 1048576",
            "gk.toml:15:26: error: limits.max_explain_body_bytes must be greater than 0",
            "gk.toml:17:20: error: shutdown.drain_timeout_ms must be greater than 0",
        ]
    );
    // No delay is the default, and allowed.
    config(&format!("{MINIMAL}[shutdown]\ndelay_ms = 0\n"));
}

#[test]
fn the_proxy_protocol_needs_trusted_proxies() {
    assert_eq!(
        errors("[listen]\nproxy_protocol = true\n"),
        ["gk.toml:7:18: error: listen.proxy_protocol = true needs network.trusted_proxies, the load balancers that send the header"]
    );
    config(&format!(
        "{MINIMAL}[listen]\nproxy_protocol = true\n[network]\ntrusted_proxies = [\"10.0.0.0/8\"]\n"
    ));
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let message = |addr: &str| {
        format!("gk.toml:7:9: error: listen.admin {addr} is not a loopback address: set admin.token_file, the file holding the bearer token its POST endpoints and /v1/explain require")
    };
    assert_eq!(
        errors("[listen]\nadmin = \"0.0.0.0:9090\"\n"),
        [message("0.0.0.0:9090")]
    );
    assert_eq!(
        errors("[listen]\nadmin = \"[::ffff:192.0.2.1]:9090\"\n"),
        [message("[::ffff:192.0.2.1]:9090")]
    );
    let c = config(&format!(
        "{MINIMAL}[listen]\nadmin = \"192.0.2.1:9090\"\n[admin]\ntoken_file = \"admin.token\"\n"
    ));
    assert_eq!(
        c.admin.token_file.as_deref(),
        Some(Path::new("/etc/gk/admin.token"))
    );
    for loopback in ["127.0.0.2:9090", "[::1]:9090", "[::ffff:127.0.0.1]:9090"] {
        config(&format!("{MINIMAL}[listen]\nadmin = \"{loopback}\"\n"));
    }
}

#[test]
fn invalid_hosts() {
    assert_eq!(
        errors("[s3]\nhosts = [\"localhost:8080\", \"http://s3.local\", \"\", \"[::1]\", \"ok.example\"]\nvirtual_host_domains = [\".s3.local\"]\n"),
        [
            "gk.toml:7:10: error: invalid s3.hosts entry \"localhost:8080\": expected a host name or IP address, without port or scheme",
            "gk.toml:7:28: error: invalid s3.hosts entry \"http://s3.local\": expected a host name or IP address, without port or scheme",
            "gk.toml:7:47: error: invalid s3.hosts entry \"\": expected a host name or IP address, without port or scheme",
            "gk.toml:7:51: error: invalid s3.hosts entry \"[::1]\": expected a host name or IP address, without port or scheme",
            "gk.toml:8:25: error: invalid s3.virtual_host_domains entry \".s3.local\": expected a host name or IP address, without port or scheme",
        ]
    );
}

#[test]
fn invalid_trusted_proxies() {
    assert_eq!(
        errors("[network]\ntrusted_proxies = [\"10.0.0.5\", \"10.0.0.5/24\"]\n"),
        [
            "gk.toml:7:20: error: invalid CIDR \"10.0.0.5\": expected an address and prefix length like \"10.0.0.0/8\"",
            "gk.toml:7:32: error: CIDR \"10.0.0.5/24\" has host bits set: the network is \"10.0.0.0/24\"",
        ]
    );
}

#[test]
fn hashing_needs_a_key() {
    assert_eq!(
        errors("[audit]\nclient_ip = \"hash\"\n"),
        ["gk.toml:7:13: error: audit.client_ip = \"hash\" needs audit.hash_key, the file holding the HMAC key"]
    );
    assert_eq!(
        errors("[audit]\nkey_hash = true\n"),
        ["gk.toml:7:12: error: audit.key_hash = true needs audit.hash_key, the file holding the HMAC key"]
    );
}

#[test]
fn empty_instance() {
    assert_eq!(
        errors("[audit]\ninstance = \" \"\n"),
        ["gk.toml:7:12: error: audit.instance is empty"]
    );
}

#[test]
fn every_error_at_once() {
    let d = errors_of("region = \"bj\"\nmode = \"x\"\n[listen]\ns3 = \"x\"\n[upstream]\nurl = \"x\"\n[geoip]\ndatabase = \"g\"\nunknown = \"x\"\n[audit]\nfsync = \"x\"\n");
    let lines: Vec<&str> = d
        .iter()
        .map(|m| m.split(": error").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "gk.toml:2:8",
            "gk.toml:4:6",
            "gk.toml:6:7",
            "gk.toml:9:11",
            "gk.toml:11:9"
        ]
    );
}

#[test]
fn upstream_tls_settings_belong_to_an_https_upstream_and_go_in_pairs() {
    let c = config(
        "region = \"bj\"\n[upstream]\nurl = \"https://s3.internal:9000\"\nca = \"ca.pem\"\n\
         client_cert = \"gate.pem\"\nclient_key = \"gate-key.pem\"\n[geoip]\ndatabase = \"g.mmdb\"\n",
    );
    assert_eq!(c.upstream.ca.as_deref(), Some(Path::new("/etc/gk/ca.pem")));
    assert_eq!(
        c.upstream.client_cert,
        Some((
            PathBuf::from("/etc/gk/gate.pem"),
            PathBuf::from("/etc/gk/gate-key.pem")
        ))
    );
    assert_eq!(
        errors_of("region = \"bj\"\n[upstream]\nurl = \"http://s3:9000\"\nca = \"ca.pem\"\n[geoip]\ndatabase = \"g\"\n"),
        ["gk.toml:4:6: error: upstream.ca is for an https:// upstream only"]
    );
    assert_eq!(
        errors_of("region = \"bj\"\n[upstream]\nurl = \"https://s3:9000\"\nclient_key = \"k.pem\"\n[geoip]\ndatabase = \"g\"\n"),
        ["gk.toml:4:14: error: upstream.client_cert and upstream.client_key go together"]
    );
}

const ARCHIVE: &str = "[audit.archive]\nurl = \"http://127.0.0.1:9000/audit-bucket/fleet/eu\"\naccess_key_file = \"archive.ak\"\nsecret_key_file = \"archive.sk\"\n";

#[test]
fn archive_defaults_and_every_key() {
    assert!(config(MINIMAL).audit.archive.is_none());
    let a = config(&format!("{MINIMAL}{ARCHIVE}"))
        .audit
        .archive
        .unwrap();
    assert_eq!(
        a.endpoint,
        "http://127.0.0.1:9000/".parse::<http::Uri>().unwrap()
    );
    assert_eq!(a.bucket, "audit-bucket");
    assert_eq!(a.prefix, "fleet/eu");
    assert_eq!(a.region, "us-east-1");
    assert_eq!(a.access_key_file, Path::new("/etc/gk/archive.ak"));
    assert_eq!(a.secret_key_file, Path::new("/etc/gk/archive.sk"));
    assert_eq!(a.retention, None);
    assert!(a.delete_local);
    assert_eq!(a.interval, Duration::from_secs(60));
    assert_eq!(a.ca, None);

    let a = config(&format!(
        "{MINIMAL}[audit.archive]\nurl = \"https://s3.internal/audit/\"\nregion = \"eu-central-1\"\n\
         access_key_file = \"ak\"\nsecret_key_file = \"sk\"\nretention_days = 400\nmode = \"governance\"\n\
         delete_local = false\ninterval_s = 5\nca = \"ca.pem\"\n"
    ))
    .audit
    .archive
    .unwrap();
    assert_eq!(
        a.endpoint,
        "https://s3.internal/".parse::<http::Uri>().unwrap()
    );
    assert_eq!(a.bucket, "audit");
    assert_eq!(a.prefix, "");
    assert_eq!(a.region, "eu-central-1");
    assert_eq!(
        a.retention,
        Some(Retention {
            mode: LockMode::Governance,
            days: 400
        })
    );
    assert!(!a.delete_local);
    assert_eq!(a.interval, Duration::from_secs(5));
    assert_eq!(a.ca.as_deref(), Some(Path::new("/etc/gk/ca.pem")));

    let a = config(&format!("{MINIMAL}{ARCHIVE}retention_days = 30\n"))
        .audit
        .archive
        .unwrap();
    assert_eq!(
        a.retention,
        Some(Retention {
            mode: LockMode::Compliance,
            days: 30
        })
    );
}

#[test]
fn archive_errors_point_at_their_values() {
    // MINIMAL is 5 lines: [audit.archive] is line 6, url line 7.
    let bad_url = |url: &str| {
        format!("gk.toml:7:7: error: invalid audit.archive.url \"{url}\": expected \"http://host:port/bucket\" or \"https://host:port/bucket/prefix\"")
    };
    for url in [
        "http://127.0.0.1:9000",
        "http://127.0.0.1:9000/",
        "ftp://h/b",
        "h:9000/b",
        "http://h/b?x=1",
    ] {
        let text = format!("{MINIMAL}{ARCHIVE}")
            .replace("http://127.0.0.1:9000/audit-bucket/fleet/eu", url);
        assert_eq!(errors_of(&text), [bad_url(url)], "{url}");
    }
    assert_eq!(
        errors(&format!("{ARCHIVE}mode = \"compliance\"\n")),
        ["gk.toml:10:8: error: audit.archive.mode needs audit.archive.retention_days, how long each object is locked"]
    );
    assert_eq!(
        errors(&format!("{ARCHIVE}retention_days = 0\ninterval_s = 0\nmode = \"legal\"\nca = \"ca.pem\"\nregion = \" \"\nsecret = \"x\"\n")),
        ["gk.toml:15:1: error: unknown field `secret`, expected one of `url`, `region`, `access_key_file`, `secret_key_file`, `retention_days`, `mode`, `delete_local`, `interval_s`, `ca`"]
    );
    assert_eq!(
        errors(&format!("{ARCHIVE}retention_days = 0\ninterval_s = 0\nmode = \"legal\"\nca = \"ca.pem\"\nregion = \" \"\n")),
        [
            "gk.toml:10:18: error: audit.archive.retention_days must be from 1 to 36500",
            "gk.toml:11:14: error: audit.archive.interval_s must be greater than 0",
            "gk.toml:12:8: error: invalid audit.archive.mode \"legal\": expected one of \"compliance\", \"governance\"",
            "gk.toml:13:6: error: audit.archive.ca is for an https:// archive only",
            "gk.toml:14:10: error: audit.archive.region is empty",
        ]
    );
    assert_eq!(
        errors("[audit.archive]\nurl = \"http://h/b\"\n"),
        ["gk.toml:6:1: error: missing field `access_key_file`"]
    );
}
