//! The `for=` parameters of RFC 7239 `Forwarded`.
//!
//! Elements are split off a line from its right end. The right end is what
//! the trusted proxies wrote; the left may be a client's, and a client that
//! opens a quoted string there must not swallow the elements appended after
//! it, as a left-to-right reading would.

use std::net::{IpAddr, Ipv6Addr};

/// The elements of one `Forwarded` line, right to left. An unbalanced quote
/// makes the rest of the line one piece, which [`client`] refuses.
pub fn elements_rev(line: &str) -> ElementsRev<'_> {
    ElementsRev { rest: Some(line) }
}

pub struct ElementsRev<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ElementsRev<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        let mut quoted = false;
        let mut i = bytes.len();
        while i > 0 {
            i -= 1;
            match bytes[i] {
                b'"' if !escaped(&bytes[..i]) => quoted = !quoted,
                b',' if !quoted => {
                    self.rest = Some(&rest[..i]);
                    return Some(&rest[i + 1..]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(rest)
    }
}

/// Whether a quote after `before` is escaped: preceded by an odd run of
/// backslashes (an even run is escaped backslashes).
fn escaped(before: &[u8]) -> bool {
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The address in one element's `for=`; `None` when the element is
/// malformed, has no `for=` or more than one, or its node is `unknown` or
/// obfuscated (`_hidden`), none of which says where the client is.
pub fn client(element: &str) -> Option<IpAddr> {
    let mut node = None;
    for pair in pairs(element.trim_matches(is_ows))? {
        let (name, value) = pair.trim_matches(is_ows).split_once('=')?;
        if !is_token(name) {
            return None;
        }
        let value = unquote(value)?;
        if name.eq_ignore_ascii_case("for") && node.replace(value).is_some() {
            return None;
        }
    }
    parse_node(&node?)
}

/// An element's `;`-separated pairs, `None` on an unbalanced quote.
fn pairs(element: &str) -> Option<Vec<&str>> {
    let bytes = element.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut quoted, mut i) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                out.push(&element[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted || i > bytes.len() {
        return None;
    }
    out.push(&element[start..]);
    Some(out)
}

/// A token, or a quoted string with its escapes undone.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return is_token(value).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 7239 `node`: an IPv4 address or a bracketed IPv6 address, with an
/// optional port (a number or obfuscated). `unknown` and obfuscated names
/// give `None`, as does anything else.
fn parse_node(node: &str) -> Option<IpAddr> {
    let (ip, port) = match node.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?), port)
        }
        None => {
            let (ip, port) = match node.split_once(':') {
                Some((ip, port)) => (ip, Some(port)),
                None => (node, None),
            };
            (IpAddr::V4(ip.parse().ok()?), port)
        }
    };
    let port_ok = port.is_none_or(|p| {
        let digits = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
        digits || is_obfuscated(p)
    });
    port_ok.then(|| ip.to_canonical())
}

fn is_obfuscated(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// RFC 9110 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}
