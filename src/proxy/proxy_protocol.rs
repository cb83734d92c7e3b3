//! The PROXY protocol header (HAProxy, versions 1 and 2) that a load
//! balancer sends before anything else on a connection, naming the client
//! it accepted the connection from.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const V1_PREFIX: &[u8] = b"PROXY ";
/// A v1 line is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;

/// What the header says about the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Header {
    /// The load balancer accepted the connection from this client.
    Proxied(SocketAddr),
    /// The connection is the load balancer's own (a v2 `LOCAL` health
    /// check) or its client has no IP address (v1 `UNKNOWN`, v2 `UNSPEC` or
    /// a Unix socket): the socket's peer is all there is.
    Local,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Invalid(pub &'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid PROXY protocol header: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

/// Parses a header at the start of `buf`: the header and its length, or
/// `None` while `buf` could still grow into one.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    if starts_as(buf, V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    if starts_as(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(Invalid("the connection does not start with one"))
}

/// Whether `buf` and `prefix` agree as far as both go.
fn starts_as(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    let scope = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = scope.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(Invalid("v1 line longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&scope[V1_PREFIX.len()..cr])
        .map_err(|_| Invalid("v1 line is not ASCII"))?;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        // The rest of an UNKNOWN line is to be ignored.
        Some("UNKNOWN") => Header::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let fields: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = fields[..] else {
                return Err(Invalid("v1 TCP line needs four fields"));
            };
            let v4 = family == "TCP4";
            // The destination is not needed, but a line wrong anywhere is
            // not believed anywhere.
            v1_addr(dst, v4)?;
            v1_port(dport)?;
            Header::Proxied(SocketAddr::new(v1_addr(src, v4)?, v1_port(sport)?))
        }
        _ => return Err(Invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Some((header, cr + 2)))
}

fn v1_addr(s: &str, v4: bool) -> Result<IpAddr, Invalid> {
    let ip = if v4 {
        s.parse::<Ipv4Addr>().map(IpAddr::from)
    } else {
        s.parse::<Ipv6Addr>().map(IpAddr::from)
    };
    ip.map_err(|_| Invalid("v1 address does not match its family"))
}

/// A decimal port without sign or leading zeros, as the spec writes them.
fn v1_port(s: &str) -> Result<u16, Invalid> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical
        .then(|| s.parse().ok())
        .flatten()
        .ok_or(Invalid("v1 port is not a number from 0 to 65535"))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    if buf.len() < V2_FIXED {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(Invalid("v2 signature with another version"));
    }
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < len {
        return Ok(None);
    }
    let addrs = &buf[V2_FIXED..len];
    let header = match command {
        0x0 => Header::Local,
        0x1 => match (family, transport) {
            (0x0, _) | (0x3, _) => Header::Local,
            (0x1, 0x1) => {
                let a = addrs
                    .get(..12)
                    .ok_or(Invalid("v2 IPv4 addresses cut short"))?;
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Header::Proxied(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
            }
            (0x2, 0x1) => {
                let a = addrs
                    .get(..36)
                    .ok_or(Invalid("v2 IPv6 addresses cut short"))?;
                let octets: [u8; 16] = a[..16].try_into().expect("16 bytes");
                let ip = Ipv6Addr::from(octets);
                Header::Proxied(SocketAddr::new(
                    ip.into(),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            (0x1 | 0x2, _) => return Err(Invalid("v2 transport is not a stream")),
            _ => return Err(Invalid("v2 address family unknown")),
        },
        _ => return Err(Invalid("v2 command is neither LOCAL nor PROXY")),
    };
    Ok(Some((header, len)))
}

/// Reads the header off `io`; returns it with whatever was read past it,
/// which belongs to the protocol that follows (TLS or HTTP).
pub async fn read<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<(Header, Bytes)> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside its PROXY protocol header",
            ));
        }
        if let Some((header, len)) = parse(&buf).map_err(io::Error::other)? {
            buf.advance(len);
            return Ok((header, buf.freeze()));
        }
    }
}

/// A connection with bytes already read off it put back in front.
pub struct Rewind<I> {
    pub read: Bytes,
    pub inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let n = this.read.len().min(out.remaining());
        out.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

write_through!(Rewind);

#[cfg(test)]
mod tests;
