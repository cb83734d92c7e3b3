//! GET and HEAD to a plain-HTTP upstream, over pooled HTTP/1.1 connections
//! of the gate's own: the read path, where a small object's request is
//! almost all overhead. hyper-util's client hands each request, response
//! head and body chunk across to a task per connection, through channels
//! and a pool keyed in a map: about 14,000 of the ~128,000 instructions of
//! a 4 KiB GET, and a fifth of its CPU with the wake-ups (issue 6,
//! BENCHMARKS.md "Session 7"). Here the request's own task writes the head,
//! reads the response and streams the body from the socket.
//!
//! Deliberately narrow, so that every response is framed one unambiguous
//! way: no request body (other methods, uploads and https upstreams stay
//! on hyper); a response with both `Transfer-Encoding` and
//! `Content-Length`, differing lengths, a transfer coding other than a
//! final `chunked`, a malformed chunk or an oversized head is an error and
//! its connection is closed. A connection goes back to the pool only after
//! its response was read to the end under a length or chunked framing,
//! with HTTP/1.1 keep-alive on both sides. A chunked body's trailers are
//! read and dropped (S3 sends none).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::BoxError;

/// A response head larger than this is refused (hyper's client default is
/// ~400 KiB of buffer; S3 heads are a few hundred bytes).
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 100;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Idle connections kept per shard (per thread, in effect): nginx's
/// `keepalive` for an upstream is of this order, and counts per worker
/// too; more only hold sockets open on both sides.
const MAX_IDLE: usize = 256;
/// A pooled connection idle for longer is checked with one non-blocking
/// read before it is used: the upstream may have closed it meanwhile.
const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Body reads start at this size and double, up to `MAX_READ`, while each
/// fills what it was given: small objects take one read, large ones are
/// streamed in few system calls (hyper's client adapts its reads alike).
const FIRST_READ: usize = 16 << 10;
const MAX_READ: usize = 512 << 10;

/// Why a GET or HEAD got no response head.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting to the upstream: {0}")]
    Connect(io::Error),
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("upstream response: {0}")]
    Protocol(&'static str),
}

impl FetchError {
    pub fn is_connect(&self) -> bool {
        matches!(self, FetchError::Connect(_))
    }
}

pub struct Fetcher {
    host: String,
    port: u16,
    connect_timeout: Duration,
    pool_idle: Duration,
    /// One pool per shard of threads, as nginx keeps one per worker: a
    /// thread takes and gives back on its own shard, so that requests on
    /// different cores share no lock (tokio may move a task between
    /// threads, and then a connection changes shard; that is all).
    shards: Box<[Mutex<Vec<Idle>>]>,
}

struct Idle {
    conn: TcpStream,
    since: Instant,
}

impl Fetcher {
    pub fn new(host: &str, port: u16, connect_timeout: Duration, pool_idle: Duration) -> Fetcher {
        let shards = std::thread::available_parallelism().map_or(1, usize::from);
        Fetcher {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            connect_timeout,
            pool_idle,
            shards: (0..shards).map(|_| Mutex::default()).collect(),
        }
    }

    /// Whether this client takes `req`: a GET or HEAD without a body.
    pub fn takes<B: Body>(req: &Request<B>) -> bool {
        // A chunked request body is never at its end before it is read.
        (req.method() == Method::GET || req.method() == Method::HEAD) && req.body().is_end_stream()
    }

    /// Sends `req` (its method, target and headers as they are) and reads
    /// the response head. A reused connection that turns out closed before
    /// any of the response arrived is replaced once: GET and HEAD can be
    /// sent again.
    pub async fn send<B>(
        self: &Arc<Self>,
        req: &Request<B>,
    ) -> Result<Response<Fetched>, FetchError> {
        let head = request_head(req);
        let head_only = req.method() == Method::HEAD;
        let mut keep = !names_close(req.headers());
        let (mut conn, mut reused) = self.checkout().await?;
        let (parts, framing, buf) = loop {
            match exchange(&mut conn, &head, head_only).await {
                Ok(got) => break got,
                Err(Exchange::Unanswered(_)) if reused => {
                    conn = Box::pin(self.connect()).await?;
                    reused = false;
                }
                Err(Exchange::Unanswered(e)) => return Err(e),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        };
        keep &= parts.version == Version::HTTP_11 && !names_close(&parts.headers);
        let body = Fetched {
            conn: Some(conn),
            buf,
            framing,
            keep,
            read: FIRST_READ,
            pool: self.clone(),
        };
        Ok(Response::from_parts(parts, body))
    }

    async fn checkout(&self) -> Result<(TcpStream, bool), FetchError> {
        loop {
            let idle = self.pool().pop();
            let Some(Idle { conn, since }) = idle else {
                return Ok((Box::pin(self.connect()).await?, false));
            };
            let idle_for = since.elapsed();
            if idle_for >= self.pool_idle {
                // The newest are at the end: every other one is older.
                self.pool().clear();
                continue;
            }
            if idle_for >= CHECK_AFTER && !still_open(&conn) {
                continue;
            }
            return Ok((conn, true));
        }
    }

    async fn connect(&self) -> Result<TcpStream, FetchError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let conn = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| FetchError::Connect(io::ErrorKind::TimedOut.into()))?
            .map_err(FetchError::Connect)?;
        conn.set_nodelay(true).map_err(FetchError::Connect)?;
        Ok(conn)
    }

    /// The calling thread's shard.
    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        thread_local! {
            /// This thread's shard, handed out in turn as threads first
            /// use a pool.
            static SHARD: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Relaxed)
            };
        }
        let shard = SHARD.with(|s| *s) % self.shards.len();
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, conn: TcpStream) {
        let now = Instant::now();
        let mut idle = self.pool();
        // Checkouts take the newest, so under steady load the oldest would
        // sit there long after the upstream closed them: one is dropped
        // per return once it is past `pool_idle`.
        if idle
            .first()
            .is_some_and(|c| now.saturating_duration_since(c.since) >= self.pool_idle)
        {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }
}

/// A connection that has been idle: open if a read would block. Data or an
/// end of stream before a request was sent mean it cannot carry one.
fn still_open(conn: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn names_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

fn request_head<B>(req: &Request<B>) -> Vec<u8> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(256 + req.headers().len() * 48);
    head.extend_from_slice(req.method().as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

enum Exchange {
    /// Nothing of a response arrived: on a reused connection, the
    /// upstream had closed it.
    Unanswered(FetchError),
    Failed(FetchError),
}

/// Writes the request head and reads up to the final response's head.
async fn exchange(
    conn: &mut TcpStream,
    head: &[u8],
    head_only: bool,
) -> Result<(http::response::Parts, Framing, BytesMut), Exchange> {
    if let Err(e) = conn.write_all(head).await {
        return Err(Exchange::Unanswered(e.into()));
    }
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let mut interim = 0;
    loop {
        let n = conn.read_buf(&mut buf).await.map_err(|e| {
            if buf.is_empty() && interim == 0 {
                Exchange::Unanswered(e.into())
            } else {
                Exchange::Failed(e.into())
            }
        })?;
        if n == 0 {
            let e = FetchError::Protocol("the upstream closed the connection before a response");
            return Err(if buf.is_empty() && interim == 0 {
                Exchange::Unanswered(e)
            } else {
                Exchange::Failed(e)
            });
        }
        while let Some(parsed) = parse_head(&mut buf).map_err(Exchange::Failed)? {
            if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                // Nothing the gate forwards upgrades; waiting for a final
                // answer after it would only time out.
                return Err(Exchange::Failed(FetchError::Protocol("an upgrade (101)")));
            }
            if parsed.status.is_informational() {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(Exchange::Failed(FetchError::Protocol(
                        "too many 1xx responses",
                    )));
                }
                continue;
            }
            let framing = framing(&parsed, head_only).map_err(Exchange::Failed)?;
            let mut parts = Response::new(()).into_parts().0;
            parts.status = parsed.status;
            parts.version = parsed.version;
            parts.headers = parsed.headers;
            return Ok((parts, framing, buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(Exchange::Failed(FetchError::Protocol(
                "response head too large",
            )));
        }
    }
}

struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// Takes one complete response head off the front of `buf`, if there is
/// one. Header values share the head's bytes, uncopied.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, FetchError> {
    // Uninitialised: a hundred empty headers are 3 KiB to fill for
    // every response.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(FetchError::Protocol("too many response headers"))
        }
        Err(_) => return Err(FetchError::Protocol("malformed response head")),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(FetchError::Protocol("malformed status"))?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Where each name and value lies in the head, so that the head can be
    // split off `buf` (which `parsed` borrows) and shared by the values.
    let start = buf.as_ptr() as usize;
    let spans: Vec<_> = parsed
        .headers
        .iter()
        .map(|h| {
            let name = h.name.as_ptr() as usize - start;
            let value = h.value.as_ptr() as usize - start;
            (name, name + h.name.len(), value, value + h.value.len())
        })
        .collect();
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(name_from, name_to, value_from, value_to) in &spans {
        let name = HeaderName::from_bytes(&head[name_from..name_to])
            .map_err(|_| FetchError::Protocol("malformed header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_from..value_to))
            .map_err(|_| FetchError::Protocol("malformed header value"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers,
    }))
}

/// How the response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunks),
    /// Up to the end of the connection, which is then not reused.
    Close,
}

fn framing(head: &Head, head_only: bool) -> Result<Framing, FetchError> {
    let status = head.status;
    if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    let lengths = head.headers.get_all(CONTENT_LENGTH);
    if head.headers.contains_key(TRANSFER_ENCODING) {
        if lengths.iter().next().is_some() {
            return Err(FetchError::Protocol(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        // Only `chunked` itself: the body is passed on as it came, so a
        // coding before it would reach the client undone and unannounced.
        let mut codings = head
            .headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty());
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => {
                Ok(Framing::Chunked(Chunks::Size { size: 0, digits: 0 }))
            }
            _ => Err(FetchError::Protocol("a transfer coding other than chunked")),
        };
    }
    let mut length = None;
    for value in lengths {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part.trim_ascii())?;
            if length.is_some_and(|l| l != n) {
                return Err(FetchError::Protocol("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

fn parse_length(digits: &[u8]) -> Result<u64, FetchError> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FetchError::Protocol("malformed Content-Length"));
    }
    Ok(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Where a chunked body's decoder is (RFC 9112 §7.1). Line ends are CRLF,
/// strictly, as hyper reads them.
#[derive(Debug, PartialEq, Eq)]
enum Chunks {
    /// Reading a chunk-size line: the size so far, and how many digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// In the line's extensions, up to its CR; bytes of them so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// The LF of a chunk-size line.
    SizeLf(u64),
    /// This much of a chunk's data left.
    Data(u64),
    /// The CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// The trailer section, up to its empty line: whether the line being
    /// read is empty so far, bytes of the section so far.
    Trailers {
        line_empty: bool,
        len: usize,
    },
    TrailersLf {
        line_empty: bool,
        len: usize,
    },
    Done,
}

/// Chunk extensions and trailers kept within this, as a response head is.
const MAX_CHUNK_META: usize = MAX_HEAD;

/// A response body read from the upstream connection, which goes back to
/// the pool when the body ends cleanly and is closed otherwise.
pub struct Fetched {
    conn: Option<TcpStream>,
    /// Read from the connection and not yet handed on.
    buf: BytesMut,
    framing: Framing,
    keep: bool,
    /// The size of the next read from the connection.
    read: usize,
    pool: Arc<Fetcher>,
}

impl Fetched {
    fn ended(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length(0) | Framing::Chunked(Chunks::Done)
        ) || (self.framing == Framing::Close && self.conn.is_none())
    }

    /// The next piece of body in `buf`, or `None` if more must be read.
    fn next_data(&mut self) -> Result<Option<Bytes>, FetchError> {
        match &mut self.framing {
            Framing::Length(left) => {
                let n = (*left).min(self.buf.len() as u64) as usize;
                *left -= n as u64;
                Ok((n > 0).then(|| self.buf.split_to(n).freeze()))
            }
            Framing::Close => Ok((!self.buf.is_empty()).then(|| self.buf.split().freeze())),
            Framing::Chunked(state) => decode(state, &mut self.buf),
        }
    }

    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep && self.buf.is_empty() && self.framing != Framing::Close {
                self.pool.give_back(conn);
            }
        }
    }

    fn fail(&mut self, e: FetchError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

/// Decodes chunked framing from the front of `buf`: the next data, or
/// `None` once `buf` holds no more of it (or the body has ended).
fn decode(state: &mut Chunks, buf: &mut BytesMut) -> Result<Option<Bytes>, FetchError> {
    const BAD: FetchError = FetchError::Protocol("malformed chunked body");
    while !buf.is_empty() {
        match state {
            Chunks::Data(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    *state = Chunks::DataCr;
                }
                return Ok(Some(buf.split_to(n).freeze()));
            }
            Chunks::Done => return Ok(None),
            _ => {}
        }
        let b = buf[0];
        buf.advance(1);
        *state = match (&*state, b) {
            (&Chunks::Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                if digits == 16 {
                    return Err(FetchError::Protocol("chunk size too large"));
                }
                let digit = (b as char).to_digit(16).expect("a hex digit");
                Chunks::Size {
                    size: size << 4 | u64::from(digit),
                    digits: digits + 1,
                }
            }
            (&Chunks::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => {
                Chunks::Extension { size, len: 0 }
            }
            (&Chunks::Size { size, digits }, b'\r') if digits > 0 => Chunks::SizeLf(size),
            (&Chunks::Extension { size, .. }, b'\r') => Chunks::SizeLf(size),
            (&Chunks::Extension { size, len }, b) if b != b'\n' && len < MAX_CHUNK_META => {
                Chunks::Extension { size, len: len + 1 }
            }
            (&Chunks::SizeLf(0), b'\n') => Chunks::Trailers {
                line_empty: true,
                len: 0,
            },
            (&Chunks::SizeLf(size), b'\n') => Chunks::Data(size),
            (Chunks::DataCr, b'\r') => Chunks::DataLf,
            (Chunks::DataLf, b'\n') => Chunks::Size { size: 0, digits: 0 },
            (&Chunks::Trailers { line_empty, len }, b'\r') => {
                Chunks::TrailersLf { line_empty, len }
            }
            (&Chunks::Trailers { len, .. }, b) if b != b'\n' && len < MAX_CHUNK_META => {
                Chunks::Trailers {
                    line_empty: false,
                    len: len + 1,
                }
            }
            (
                &Chunks::TrailersLf {
                    line_empty: true, ..
                },
                b'\n',
            ) => Chunks::Done,
            (&Chunks::TrailersLf { len, .. }, b'\n') => Chunks::Trailers {
                line_empty: true,
                len,
            },
            _ => return Err(BAD),
        };
    }
    Ok(None)
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // A body nobody polled to its end (a HEAD's, or one the client
        // walked away from) leaves its connection closed unless it had
        // ended anyway.
        if self.ended() {
            self.finish();
        }
    }
}

impl Body for Fetched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.next_data() {
                Ok(Some(data)) => {
                    if this.ended() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) if this.ended() => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            let Some(conn) = this.conn.as_ref() else {
                return Poll::Ready(None);
            };
            if let Err(e) = std::task::ready!(conn.poll_read_ready(cx)) {
                return this.fail(e.into());
            }
            this.buf.reserve(this.read);
            match conn.try_read_buf(&mut this.buf) {
                Ok(n) if n >= this.read => this.read = (this.read * 2).min(MAX_READ),
                Ok(0) if this.framing == Framing::Close => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(FetchError::Protocol(
                        "the upstream closed the connection mid-body",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended() && self.buf.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback origin that answers each request it reads, on whatever
    /// connection, with the next of `replies`, and closes the connection
    /// after it when the reply says so (`None` ends the script there).
    struct Origin {
        port: u16,
        accepted: Arc<AtomicUsize>,
    }

    struct Reply {
        bytes: &'static [u8],
        then_close: bool,
    }

    fn reply(bytes: &'static [u8]) -> Reply {
        Reply {
            bytes,
            then_close: false,
        }
    }

    impl Origin {
        async fn start(replies: Vec<Reply>) -> Origin {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let accepted = Arc::new(AtomicUsize::new(0));
            let replies = Arc::new(Mutex::new(replies.into_iter()));
            let counter = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let replies = replies.clone();
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        loop {
                            let mut chunk = [0u8; 4096];
                            let n = conn.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            got.extend_from_slice(&chunk[..n]);
                            while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                                got.drain(..end + 4);
                                let next = replies.lock().unwrap().next();
                                let Some(r) = next else { return };
                                if conn.write_all(r.bytes).await.is_err() || r.then_close {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            Origin { port, accepted }
        }

        fn fetcher(&self) -> Arc<Fetcher> {
            Arc::new(Fetcher::new(
                "127.0.0.1",
                self.port,
                Duration::from_secs(5),
                Duration::from_secs(90),
            ))
        }

        fn connections(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    fn get(method: Method) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("/bucket/key?x=1")
            .header("host", "s3.local")
            .body(())
            .unwrap()
    }

    async fn fetch(f: &Arc<Fetcher>, method: Method) -> Result<(StatusCode, Vec<u8>), String> {
        let resp = f.send(&get(method)).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes().to_vec()))
    }

    #[tokio::test]
    async fn bodies_framed_by_length_or_chunks_keep_the_connection() {
        let origin = Origin::start(vec![
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3;name=value\r\nabc\r\n0004\r\ndefg\r\n0\r\nx-trailer: t\r\n\r\n",
            ),
            reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ])
        .await;
        let f = origin.fetcher();
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"hello".to_vec()))
        );
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"abcdefg".to_vec()))
        );
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::NOT_FOUND, vec![]))
        );
        assert_eq!(origin.connections(), 1);
    }

    #[tokio::test]
    async fn a_body_up_to_the_close_or_a_close_said_is_not_reused() {
        let origin = Origin::start(vec![
            Reply {
                bytes: b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
                then_close: true,
            },
            reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
            reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ])
        .await;
        let f = origin.fetcher();
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"until the end".to_vec()))
        );
        for _ in 0..3 {
            assert_eq!(
                fetch(&f, Method::GET).await,
                Ok((StatusCode::OK, b"ok".to_vec()))
            );
        }
        assert_eq!(origin.connections(), 4);
    }

    #[tokio::test]
    async fn head_no_content_and_interim_responses() {
        let origin = Origin::start(vec![
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
            reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
            reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ])
        .await;
        let f = origin.fetcher();
        let head = f.send(&get(Method::HEAD)).await.unwrap();
        assert_eq!(head.headers()["content-length"], "1234");
        assert!(head.body().is_end_stream());
        drop(head);
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::NO_CONTENT, vec![]))
        );
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"ok".to_vec()))
        );
        assert_eq!(origin.connections(), 1);
    }

    #[tokio::test]
    async fn ambiguous_or_malformed_framing_is_an_error() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            b"HTTP/1.1 2000 Odd\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        ] {
            let origin = Origin::start(vec![Reply {
                bytes: bad,
                then_close: true,
            }])
            .await;
            let f = origin.fetcher();
            let got = fetch(&f, Method::GET).await;
            assert!(got.is_err(), "{:?} gave {got:?}", String::from_utf8_lossy(bad));
            assert!(f.pool().is_empty(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// The decoder against random chunkings of random bodies, fed in
    /// pieces cut at random: whatever the reads split (a size line, a CRLF,
    /// an extension, the trailers), the data comes out whole and in order,
    /// and nothing after the last chunk is taken.
    #[test]
    fn chunked_decoding_does_not_depend_on_where_reads_split() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..2_000 {
            let body: Vec<u8> = (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect();
            let mut wire = Vec::new();
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = rng.gen_range(1..=rest.len().min(70));
                let size = if rng.gen_bool(0.3) {
                    format!("{n:04X}")
                } else {
                    format!("{n:x}")
                };
                wire.extend_from_slice(size.as_bytes());
                if rng.gen_bool(0.2) {
                    wire.extend_from_slice(b";ext=\"v\"");
                }
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n");
            if rng.gen_bool(0.3) {
                wire.extend_from_slice(b"x-checksum: abc\r\n");
            }
            wire.extend_from_slice(b"\r\nNEXT");
            let mut state = Chunks::Size { size: 0, digits: 0 };
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut fed = 0;
            while state != Chunks::Done {
                assert!(fed < wire.len(), "ran out of input in {state:?}");
                let n = rng.gen_range(1..=(wire.len() - fed).min(40));
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
                while let Some(data) = decode(&mut state, &mut buf).unwrap() {
                    out.extend_from_slice(&data);
                }
            }
            assert_eq!(out, body);
            let unread = [&buf[..], &wire[fed..]].concat();
            assert_eq!(unread, b"NEXT");
        }
    }

    #[tokio::test]
    async fn an_upgrade_is_an_error() {
        let origin = Origin::start(vec![reply(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        )])
        .await;
        let got = fetch(&origin.fetcher(), Method::GET).await;
        assert!(got.is_err(), "{got:?}");
    }

    #[tokio::test]
    async fn connections_idle_past_the_limit_leave_the_pool() {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let origin = Origin::start((0..5).map(|_| reply(ok)).collect()).await;
        let f = Arc::new(Fetcher::new(
            "127.0.0.1",
            origin.port,
            Duration::from_secs(5),
            Duration::from_millis(1000),
        ));
        // Two at once: two connections, both pooled.
        let (a, b) = tokio::join!(fetch(&f, Method::GET), fetch(&f, Method::GET));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(f.pool().len(), 2);
        // The newer one is taken and returned while fresh; on a return
        // after the older one's limit, the older one goes.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(fetch(&f, Method::GET).await.is_ok());
        assert_eq!(f.pool().len(), 2);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(fetch(&f, Method::GET).await.is_ok());
        assert_eq!(f.pool().len(), 1);
        // Past the limit, the newest too: the pool is emptied and a new
        // connection made.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(fetch(&f, Method::GET).await.is_ok());
        assert_eq!(f.pool().len(), 1);
        assert_eq!(origin.connections(), 3);
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_by_the_upstream_is_replaced() {
        let origin = Origin::start(vec![
            Reply {
                bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                then_close: true,
            },
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
        ])
        .await;
        let f = origin.fetcher();
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"a".to_vec()))
        );
        // Pooled, though the origin has closed it: the request goes out on
        // it, finds it closed, and goes again on a new one.
        assert_eq!(f.pool().len(), 1);
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"b".to_vec()))
        );
        assert_eq!(origin.connections(), 2);
    }

    #[tokio::test]
    async fn a_body_left_unread_closes_its_connection() {
        static BIG: [u8; 200_000] = [b'x'; 200_000];
        let head: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
        let whole: &'static [u8] = Box::leak([head, &BIG[..]].concat().into_boxed_slice());
        let origin = Origin::start(vec![
            reply(whole),
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ])
        .await;
        let f = origin.fetcher();
        let mut body = f.send(&get(Method::GET)).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(!first.data_ref().unwrap().is_empty());
        drop(body);
        assert!(f.pool().is_empty());
        assert_eq!(
            fetch(&f, Method::GET).await,
            Ok((StatusCode::OK, b"ok".to_vec()))
        );
        assert_eq!(origin.connections(), 2);
    }

    #[tokio::test]
    async fn the_request_goes_out_as_it_came() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = conn.read(&mut chunk).await.unwrap();
                got.extend_from_slice(&chunk[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let f = Arc::new(Fetcher::new(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Duration::from_secs(90),
        ));
        let req = Request::builder()
            .uri("http://u/bucket/a%20key?versionId=3")
            .header("host", "bucket.s3.local")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
            .header("x-amz-date", "20260601T000000Z")
            .body(())
            .unwrap();
        f.send(&req).await.unwrap();
        assert_eq!(
            seen.await.unwrap(),
            "GET /bucket/a%20key?versionId=3 HTTP/1.1\r\nhost: bucket.s3.local\r\n\
             authorization: AWS4-HMAC-SHA256 Credential=x\r\nx-amz-date: 20260601T000000Z\r\n\r\n"
        );
    }
}
