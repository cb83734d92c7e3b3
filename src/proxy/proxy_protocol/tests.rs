use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    h.extend_from_slice(addrs);
    h
}

/// IPv4 addresses 81.2.69.142:5123 → 10.0.0.1:443, and a TLV to skip.
const V4_ADDRS: [u8; 17] = [
    81, 2, 69, 142, 10, 0, 0, 1, 0x14, 0x03, 0x01, 0xbb, 0x04, 0x00, 0x02, b'h', b'i',
];

fn v6_addrs() -> Vec<u8> {
    let mut a = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    a.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    a.extend_from_slice(&[0x14, 0x03, 0x01, 0xbb]);
    a
}

#[test]
fn v1_lines() {
    let ok = |line: &str, header: Header| {
        let with_request = format!("{line}GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(with_request.as_bytes()),
            Ok(Some((header, line.len()))),
            "{line:?}"
        );
    };
    ok(
        "PROXY TCP4 81.2.69.142 10.0.0.1 5123 443\r\n",
        Header::Proxied(addr("81.2.69.142:5123")),
    );
    ok(
        "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n",
        Header::Proxied(addr("[2001:db8::7]:65535")),
    );
    ok("PROXY UNKNOWN\r\n", Header::Local);
    ok("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", Header::Local);
    // The longest lines there are.
    let v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    ok(
        &format!("PROXY TCP6 {v6} {v6} 65535 65535\r\n"),
        Header::Proxied(addr(&format!("[{v6}]:65535"))),
    );
    let longest = format!("PROXY UNKNOWN {v6} {v6} 65535 65535\r\n");
    assert_eq!(longest.len(), V1_MAX);
    ok(&longest, Header::Local);
}

#[test]
fn v1_incomplete_until_its_line_ends() {
    let line = b"PROXY TCP4 81.2.69.142 10.0.0.1 5123 443\r\n";
    for n in 0..line.len() {
        assert_eq!(parse(&line[..n]), Ok(None), "{n} bytes");
    }
}

#[test]
fn v1_refused() {
    for line in [
        "PROXY TCP4 81.2.69.142 10.0.0.1 5123\r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 5123 443 9\r\n",
        "PROXY TCP4 2001:db8::7 10.0.0.1 5123 443\r\n",
        "PROXY TCP6 81.2.69.142 2001:db8::1 5123 443\r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 65536 443\r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 05123 443\r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 +5123 443\r\n",
        "PROXY TCP4  81.2.69.142 10.0.0.1 5123 443\r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 5123 443 \r\n",
        "PROXY UDP4 81.2.69.142 10.0.0.1 5123 443\r\n",
        "PROXY tcp4 81.2.69.142 10.0.0.1 5123 443\r\n",
        "PROXY \r\n",
        "PROXY TCP4 81.2.69.142 10.0.0.1 5123 \u{e9}43\r\n",
        "GET / HTTP/1.1\r\n",
        "proxy TCP4 81.2.69.142 10.0.0.1 5123 443\r\n",
    ] {
        assert!(parse(line.as_bytes()).is_err(), "{line:?}");
    }
    // No CRLF within 107 bytes.
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
    assert!(parse(long.as_bytes()).is_err());
    assert!(parse(&long.as_bytes()[..V1_MAX]).is_err());
    // A bare LF does not end the line.
    assert_eq!(parse(b"PROXY UNKNOWN\n"), Ok(None));
}

#[test]
fn v2_headers() {
    let h = v2(1, 0x11, &V4_ADDRS);
    let mut with_request = h.clone();
    with_request.extend_from_slice(b"\x16\x03\x01");
    assert_eq!(
        parse(&with_request),
        Ok(Some((Header::Proxied(addr("81.2.69.142:5123")), h.len())))
    );
    let h = v2(1, 0x21, &v6_addrs());
    assert_eq!(
        parse(&h),
        Ok(Some((Header::Proxied(addr("[2001:db8::7]:5123")), h.len())))
    );
    // LOCAL ignores whatever addresses it carries; UNSPEC and Unix sockets
    // name no IP client.
    for (command, family, addrs) in [
        (0, 0x00, &[][..]),
        (0, 0x11, &V4_ADDRS[..]),
        (1, 0x00, &[][..]),
        (1, 0x31, &[0u8; 216][..]),
    ] {
        let h = v2(command, family, addrs);
        assert_eq!(parse(&h), Ok(Some((Header::Local, h.len()))));
    }
}

#[test]
fn v2_incomplete_until_its_length() {
    let h = v2(1, 0x11, &V4_ADDRS);
    for n in 0..h.len() {
        assert_eq!(parse(&h[..n]), Ok(None), "{n} bytes");
    }
}

#[test]
fn v2_refused() {
    let mut wrong_version = v2(1, 0x11, &V4_ADDRS);
    wrong_version[12] = 0x11;
    for h in [
        wrong_version,
        v2(2, 0x11, &V4_ADDRS),
        v2(1, 0x12, &V4_ADDRS),
        v2(1, 0x22, &v6_addrs()),
        v2(1, 0x11, &V4_ADDRS[..11]),
        v2(1, 0x21, &v6_addrs()[..35]),
        v2(1, 0x41, &V4_ADDRS),
    ] {
        assert!(parse(&h).is_err(), "{h:?}");
    }
    let mut bad_signature = v2(1, 0x11, &V4_ADDRS);
    bad_signature[11] = b'X';
    assert!(parse(&bad_signature).is_err());
}

#[tokio::test]
async fn read_leaves_what_follows() {
    let mut wire = v2(1, 0x11, &V4_ADDRS);
    wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (mut client, mut server) = tokio::io::duplex(1024);
    tokio::io::AsyncWriteExt::write_all(&mut client, &wire)
        .await
        .unwrap();
    drop(client);
    let (header, rest) = read(&mut server).await.unwrap();
    assert_eq!(header, Header::Proxied(addr("81.2.69.142:5123")));
    let mut io = Rewind {
        read: rest,
        inner: server,
    };
    let mut request = String::new();
    io.read_to_string(&mut request).await.unwrap();
    assert_eq!(request, "GET / HTTP/1.1\r\n\r\n");

    let (client, mut server) = tokio::io::duplex(64);
    let mut client = client;
    tokio::io::AsyncWriteExt::write_all(&mut client, b"PROXY TCP4 1.2")
        .await
        .unwrap();
    drop(client);
    let e = read(&mut server).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}
