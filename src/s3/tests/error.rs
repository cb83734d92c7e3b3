use crate::s3::S3Error;

#[test]
fn xml_document() {
    let e = S3Error::access_denied("cross-border transfer denied: no_legal_basis");
    assert_eq!(
        e.xml("/acme-hr/staff/42.json", "req-1"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>cross-border transfer denied: no_legal_basis</Message>\
         <Resource>/acme-hr/staff/42.json</Resource><RequestId>req-1</RequestId></Error>"
    );
}

#[test]
fn xml_escapes_client_text() {
    let e = S3Error::bad_request("unknown query parameter \"<a&b>\" it's\u{1}\u{0}\tok");
    let xml = e.xml("/bkt/</Resource>&", "id\"'");
    assert!(xml.contains("<Message>unknown query parameter &quot;&lt;a&amp;b&gt;&quot; it&apos;s\u{FFFD}\u{FFFD}\tok</Message>"), "{xml}");
    assert!(
        xml.contains("<Resource>/bkt/&lt;/Resource&gt;&amp;</Resource>"),
        "{xml}"
    );
    assert!(
        xml.contains("<RequestId>id&quot;&apos;</RequestId>"),
        "{xml}"
    );
}

#[test]
fn constructors() {
    let cases = [
        (S3Error::bad_request("m"), 400, "InvalidRequest"),
        (S3Error::invalid_argument("m"), 400, "InvalidArgument"),
        (S3Error::malformed_xml("m"), 400, "MalformedXML"),
        (S3Error::not_implemented("m"), 501, "NotImplemented"),
        (S3Error::access_denied("m"), 403, "AccessDenied"),
        (
            S3Error::new(503, "ServiceUnavailable", "m".into()),
            503,
            "ServiceUnavailable",
        ),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.status, e.code, e.message.as_str()), (status, code, "m"));
    }
    assert_eq!(
        S3Error::not_implemented("no row").to_string(),
        "501 NotImplemented: no row"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(S3Error::access_denied("x"));
    assert_eq!(boxed.to_string(), "403 AccessDenied: x");
}
