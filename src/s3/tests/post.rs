use super::assert_refused;
use crate::s3::post::{form_fields, PostForm, MAX_FORM_PREFIX};

const CT: &str = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
const B: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

/// A form body of `(name, value)` fields, then the file part's headers
/// and the start of its content.
fn form(fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\
         \u{0}binary\r\n--{B}--\r\n"
    ));
    body
}

fn fields(key: &str, category: Option<&str>) -> PostForm {
    PostForm {
        key: key.into(),
        declared_category: category.map(Into::into),
    }
}

#[test]
fn reads_fields_before_the_file() {
    let cases: Vec<(String, PostForm)> = vec![
        (
            form(&[
                ("key", "uploads/a b.txt"),
                ("x-amz-meta-data-category", "identity"),
            ]),
            fields("uploads/a b.txt", Some("identity")),
        ),
        (
            form(&[("Key", "k"), ("X-Amz-Meta-Data-Category", "logs")]),
            fields("k", Some("logs")),
        ),
        (
            form(&[
                ("acl", "private"),
                ("key", "k"),
                ("policy", "eyJ9"),
                ("x-amz-signature", "s"),
            ]),
            fields("k", None),
        ),
        // form values are literal, not percent-decoded
        (form(&[("key", "a%2Fb")]), fields("a%2Fb", None)),
        // S3 accepts one empty line before the first boundary
        (format!("\r\n{}", form(&[("key", "k")])), fields("k", None)),
        // fields after the file part are S3's to ignore, and the gate's
        (
            format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n\
                 --{B}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n\
                 --{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nother\r\n--{B}--\r\n"
            ),
            fields("k", None),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            form_fields(CT, body.as_bytes()).unwrap(),
            Some(want),
            "{body:?}"
        );
    }
    let quoted = "multipart/form-data; charset=utf-8; boundary=\"x y\"";
    let body = "--x y\r\nContent-Disposition: form-data; name=key\r\n\r\nk\r\n--x y\r\ncontent-disposition:form-data;name=\"file\"\r\n\r\n";
    assert_eq!(
        form_fields(quoted, body.as_bytes()).unwrap(),
        Some(fields("k", None))
    );
}

/// Every cut of a good form short of the file part's headers asks for more;
/// none is an error.
#[test]
fn asks_for_more_until_the_file_part() {
    let body = form(&[("key", "k"), ("x-amz-meta-data-category", "identity")]);
    let file_headers_end = body.find("\r\n\r\n\u{0}").unwrap() + 4;
    for cut in 0..file_headers_end {
        assert_eq!(
            form_fields(CT, &body.as_bytes()[..cut]).unwrap(),
            None,
            "cut at {cut}"
        );
    }
    for cut in file_headers_end..=body.len() {
        assert_eq!(
            form_fields(CT, &body.as_bytes()[..cut]).unwrap(),
            Some(fields("k", Some("identity"))),
            "cut at {cut}"
        );
    }
}

#[test]
fn gives_up_past_the_prefix_limit() {
    let big = form(&[("key", "k"), ("padding", &"x".repeat(MAX_FORM_PREFIX))]);
    assert_refused(
        form_fields(CT, big.as_bytes()),
        400,
        "InvalidRequest",
        "no file part within",
        "padding",
    );
    assert_eq!(
        form_fields(CT, &big.as_bytes()[..MAX_FORM_PREFIX - 1]).unwrap(),
        None
    );
}

#[test]
fn refusals() {
    let file = format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (CT, form(&[]), "InvalidArgument", "no key field"),
        (CT, form(&[("x-amz-meta-data-category", "identity")]), "InvalidArgument", "no key field"),
        (CT, form(&[("key", "uploads/${filename}")]), "InvalidArgument", "${filename}"),
        (CT, form(&[("key", "a"), ("KEY", "b")]), "InvalidArgument", "given twice"),
        (CT, form(&[("key", "a"), ("x-amz-meta-data-category", "x"), ("x-amz-meta-data-category", "y")]), "InvalidArgument", "given twice"),
        (CT, form(&[("key", "")]), "InvalidArgument", "empty object key"),
        (CT, form(&[("key", "a/../b")]), "InvalidArgument", "'.' or '..' segment"),
        (CT, form(&[("key", "multi\r\nline")]), "InvalidArgument", "control character"),
        (CT, form(&[("key", &"k".repeat(1025))]), "KeyTooLongError", "1024"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n"), "InvalidArgument", "no file field"),
        (CT, format!("preamble\r\n{}", form(&[("key", "k")])), "InvalidRequest", "does not start with its boundary"),
        (CT, format!("--other\r\n{file}"), "InvalidRequest", "does not start with its boundary"),
        (CT, format!("--{B}\r\n\r\nk\r\n{file}"), "InvalidRequest", "without headers"),
        (CT, format!("--{B}\r\nContent-Type: text/plain\r\n\r\nk\r\n{file}"), "InvalidRequest", "no Content-Disposition"),
        (CT, format!("--{B}\r\nContent-Disposition: attachment; name=\"key\"\r\n\r\nk\r\n{file}"), "InvalidRequest", "not form-data"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data\r\n\r\nk\r\n{file}"), "InvalidRequest", "no name"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"; name=\"file\"\r\n\r\nk\r\n{file}"), "InvalidRequest", "more than one name"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"k\\\"ey\"\r\n\r\nk\r\n{file}"), "InvalidRequest", "malformed header parameter"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"x\r\n\r\nk\r\n{file}"), "InvalidRequest", "malformed header parameter"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nk\r\n{file}"), "InvalidRequest", "more than one Content-Disposition"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data;\r\n name=\"key\"\r\n\r\nk\r\n{file}"), "InvalidRequest", "folded header line"),
        (CT, format!("--{B}\r\nContent-Disposition form-data\r\n\r\nk\r\n{file}"), "InvalidRequest", "without ':'"),
        (CT, format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}xx{file}"), "InvalidRequest", "malformed multipart"),
        ("application/x-www-form-urlencoded", form(&[("key", "k")]), "InvalidRequest", "multipart/form-data"),
        ("multipart/form-data", form(&[("key", "k")]), "InvalidRequest", "boundary"),
        ("multipart/form-data+json; boundary=x", form(&[("key", "k")]), "InvalidRequest", "is refused"),
        ("multipart/form-data; boundary=", form(&[("key", "k")]), "InvalidRequest", "boundary"),
        ("multipart/form-data; boundary=a; boundary=b", form(&[("key", "k")]), "InvalidRequest", "more than one multipart boundary"),
        ("multipart/form-data; charset", form(&[("key", "k")]), "InvalidRequest", "malformed header parameter"),
    ];
    for (ct, body, code, why) in cases {
        assert_refused(
            form_fields(ct, body.as_bytes()),
            400,
            code,
            why,
            &format!("{ct} {body:?}"),
        );
    }
    let mut not_utf8 = form(&[("key", "k~")]).into_bytes();
    let at = not_utf8.iter().position(|&b| b == b'~').unwrap();
    not_utf8[at] = 0xff;
    assert_refused(
        form_fields(CT, &not_utf8),
        400,
        "InvalidRequest",
        "malformed multipart",
        "non-UTF-8 key",
    );
}
