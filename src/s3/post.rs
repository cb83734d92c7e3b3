//! POST Object (browser form upload): the fields before the `file` part
//! name the key and may declare a category; the file itself streams through
//! unread.

use super::request::check_key;
use super::S3Error;

/// How much of a form the gate reads looking for the `file` part. S3 reads
/// fields only before it, so a form whose fields need more is refused.
pub const MAX_FORM_PREFIX: usize = 64 * 1024;

const DATA_CATEGORY: &str = "x-amz-meta-data-category";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostForm {
    /// The `key` field, literally: form fields are not percent-encoded.
    pub key: String,
    pub declared_category: Option<String>,
}

/// Whether a POST is a form upload. S3 implementations tell by the
/// Content-Type alone, before the query (s3s takes `POST /bucket?delete`
/// with a form body for PostObject), and some ignore a `+suffix`; a media
/// type they might take for a form but the gate would not is refused.
pub(crate) fn is_form_data(content_type: &str) -> Result<bool, S3Error> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let (kind, subtype) = media.split_once('/').unwrap_or((media, ""));
    let base = subtype.split('+').next().unwrap_or_default();
    if !kind.eq_ignore_ascii_case("multipart") || !base.eq_ignore_ascii_case("form-data") {
        return Ok(false);
    }
    if base.len() != subtype.len() {
        return Err(S3Error::bad_request(format!(
            "Content-Type {media} is refused: a form upload is multipart/form-data"
        )));
    }
    Ok(true)
}

/// The form fields before the `file` part of a POST upload body.
///
/// `Ok(None)`: `prefix` ends before the `file` part starts; call again with
/// more of the body. A body that ends while this still says `None` is a
/// `400` for the caller. Past [`MAX_FORM_PREFIX`] bytes it is an error here.
pub fn form_fields(content_type: &str, prefix: &[u8]) -> Result<Option<PostForm>, S3Error> {
    if !is_form_data(content_type)? {
        return Err(S3Error::bad_request(
            "POST upload without multipart/form-data",
        ));
    }
    let boundary = boundary(content_type)?;
    let scope = &prefix[..prefix.len().min(MAX_FORM_PREFIX)];
    match parse(boundary.as_bytes(), scope)? {
        None if prefix.len() >= MAX_FORM_PREFIX => Err(S3Error::bad_request(format!(
            "no file part within the first {MAX_FORM_PREFIX} bytes of the form"
        ))),
        form => Ok(form),
    }
}

fn boundary(content_type: &str) -> Result<&str, S3Error> {
    let params = content_type.split_once(';').map_or("", |(_, p)| p);
    let mut boundary = None;
    for param in Params(params) {
        let (name, value) = param?;
        if name.eq_ignore_ascii_case("boundary") && boundary.replace(value).is_some() {
            return Err(S3Error::bad_request("more than one multipart boundary"));
        }
    }
    // RFC 2046 §5.1.1: 1 to 70 characters.
    boundary
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or_else(|| S3Error::bad_request("missing or invalid multipart boundary"))
}

/// `;`-separated `name=value` parameters of a header, values optionally
/// quoted. Quoted-pair escapes are refused: implementations disagree on
/// them, and S3 form names never need them.
struct Params<'a>(&'a str);

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, &'a str), S3Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return None;
        }
        let bad = || Some(Err(S3Error::bad_request("malformed header parameter")));
        let Some((name, rest)) = rest.split_once('=').filter(|(name, _)| !name.contains(';'))
        else {
            return bad();
        };
        let (value, rest) = match rest.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, rest)) if !value.contains('\\') => (value, rest),
                _ => return bad(),
            },
            None => rest.split_at(rest.find(';').unwrap_or(rest.len())),
        };
        if !rest.trim_start().is_empty() && !rest.trim_start().starts_with(';') {
            return bad();
        }
        self.0 = rest;
        Some(Ok((name.trim(), value.trim_end())))
    }
}

/// `Ok(None)` when `body` ends before the answer is known.
fn parse(boundary: &[u8], body: &[u8]) -> Result<Option<PostForm>, S3Error> {
    let malformed = || S3Error::bad_request("malformed multipart/form-data body");
    // S3 tolerates one empty line before the first boundary, and nothing
    // else; neither does the gate, so both read the same first part.
    let mut rest = match body {
        [b'\r'] => return Ok(None),
        [b'\r', b'\n', tail @ ..] => tail,
        _ => body,
    };
    let Some(after) = expect(rest, &[b"--", boundary, b"\r\n"])? else {
        return Ok(None);
    };
    rest = after;

    let mut key: Option<String> = None;
    let mut category: Option<String> = None;
    loop {
        // A part without headers would make the search below take its
        // content for headers.
        if rest.starts_with(b"\r\n") {
            return Err(S3Error::bad_request("form part without headers"));
        }
        let Some(end) = find(rest, b"\r\n\r\n") else {
            return Ok(None);
        };
        let name = part_name(&rest[..end])?;
        rest = &rest[end + 4..];
        if name.eq_ignore_ascii_case("file") {
            break;
        }

        let Some(value_end) = find_delimiter(rest, boundary) else {
            return Ok(None);
        };
        let value = &rest[..value_end];
        let after = &rest[value_end + 4 + boundary.len()..];
        let slot = if name.eq_ignore_ascii_case("key") {
            Some(&mut key)
        } else if name.eq_ignore_ascii_case(DATA_CATEGORY) {
            Some(&mut category)
        } else {
            None
        };
        if let Some(slot) = slot {
            let value = std::str::from_utf8(value).map_err(|_| malformed())?;
            if slot.replace(value.to_owned()).is_some() {
                return Err(S3Error::invalid_argument(format!(
                    "form field {name:?} given twice"
                )));
            }
        }
        rest = match after {
            [] | [b'-'] | [b'\r'] => return Ok(None),
            [b'\r', b'\n', tail @ ..] => tail,
            [b'-', b'-', ..] => return Err(S3Error::invalid_argument("form has no file field")),
            _ => return Err(malformed()),
        };
    }

    let key =
        key.ok_or_else(|| S3Error::invalid_argument("form has no key field before the file"))?;
    if key.contains("${filename}") {
        return Err(S3Error::invalid_argument(
            "${filename} in the key is not supported: the gate must know the key before the file",
        ));
    }
    check_key(&key)?;
    Ok(Some(PostForm {
        key,
        declared_category: category,
    }))
}

/// The `name` of a part from its header block.
fn part_name(headers: &[u8]) -> Result<&str, S3Error> {
    let malformed = |what: &str| S3Error::bad_request(format!("form part: {what}"));
    let headers = std::str::from_utf8(headers).map_err(|_| malformed("headers are not UTF-8"))?;
    let mut disposition = None;
    for line in headers.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            return Err(malformed("folded header line"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("header line without ':'"))?;
        if name.eq_ignore_ascii_case("content-disposition")
            && disposition.replace(value.trim()).is_some()
        {
            return Err(malformed("more than one Content-Disposition"));
        }
    }
    let disposition = disposition.ok_or_else(|| malformed("no Content-Disposition"))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(malformed("Content-Disposition is not form-data"));
    }
    let mut field = None;
    for param in Params(params) {
        let (name, value) = param?;
        if name.eq_ignore_ascii_case("name") && field.replace(value).is_some() {
            return Err(malformed("more than one name"));
        }
    }
    field.ok_or_else(|| malformed("no name"))
}

/// `Some(rest after the literal)`, `None` if `body` is a strict prefix of
/// it, an error if it cannot be.
fn expect<'b>(body: &'b [u8], literal: &[&[u8]]) -> Result<Option<&'b [u8]>, S3Error> {
    let mut rest = body;
    for piece in literal {
        if let Some(tail) = rest.strip_prefix(*piece) {
            rest = tail;
        } else if piece.starts_with(rest) {
            return Ok(None);
        } else {
            return Err(S3Error::bad_request(
                "multipart body does not start with its boundary",
            ));
        }
    }
    Ok(Some(rest))
}

/// Where `\r\n--boundary` starts.
fn find_delimiter(body: &[u8], boundary: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = find(&body[from..], b"\r\n--") {
        let at = from + at;
        if body[at + 4..].starts_with(boundary) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
