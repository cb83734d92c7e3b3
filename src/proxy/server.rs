//! Accepting connections: an optional PROXY protocol header, optional TLS,
//! HTTP/1.1 and HTTP/2 on one listener, one task per connection; the limits
//! on what one client may hold; the drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use super::pipeline::{ConnInfo, Gate};
use super::proxy_protocol::{self, Rewind};
use crate::config::Limits;
use crate::tls::{ClientCert, Tls};

/// What the S3 listeners of one process share.
pub struct Edge {
    pub limits: Limits,
    /// `[listen] proxy_protocol`: every connection starts with a PROXY
    /// protocol header, and only trusted proxies may connect.
    pub proxy_protocol: bool,
    /// `limits.max_connections` permits, one per open connection on any
    /// listener.
    pub connections: Arc<Semaphore>,
    /// `[shutdown] drain_timeout_ms`.
    pub drain_timeout: Duration,
    pub metrics: Arc<EdgeMetrics>,
}

/// Why a connection was closed before the gate decided anything.
pub const CONNECTION_REFUSALS: [&str; 7] = [
    "max_connections",
    "untrusted_proxy",
    "proxy_protocol",
    "tls_handshake",
    "header_timeout",
    "header_too_large",
    "malformed",
];

/// Why a connection was closed with a request in flight.
pub const CONNECTION_CUTS: [&str; 2] = ["drain", "send_timeout"];

/// Why the admin listener refused a request.
pub const ADMIN_REFUSALS: [&str; 2] = ["unauthorized", "body_too_large"];

/// The metrics of the edge: connections and admin requests turned away
/// before any decision. Registered with the other metrics, kept here with
/// the code that counts them.
pub struct EdgeMetrics {
    connections_refused: prometheus::IntCounterVec,
    connections_cut: prometheus::IntCounterVec,
    admin_refused: prometheus::IntCounterVec,
    pub open_connections: prometheus::IntGauge,
}

impl EdgeMetrics {
    pub fn register(registry: &prometheus::Registry) -> EdgeMetrics {
        let open_connections = prometheus::IntGauge::new(
            "gatekeeper_connections_open",
            "S3 connections open, counted against limits.max_connections.",
        )
        .expect("metric");
        registry
            .register(Box::new(open_connections.clone()))
            .expect("unique metric names");
        EdgeMetrics {
            connections_refused: reasons(
                registry,
                "gatekeeper_connections_refused_total",
                "S3 connections closed before a request was decided, by reason.",
                &CONNECTION_REFUSALS,
            ),
            connections_cut: reasons(
                registry,
                "gatekeeper_connections_cut_total",
                "S3 connections cut off while serving: at the end of a drain, or after the send timeout.",
                &CONNECTION_CUTS,
            ),
            admin_refused: reasons(
                registry,
                "gatekeeper_admin_refused_total",
                "Admin requests refused, by reason.",
                &ADMIN_REFUSALS,
            ),
            open_connections,
        }
    }

    /// `reason` is one of [`CONNECTION_REFUSALS`].
    pub fn connection_refused(&self, reason: &'static str) {
        debug_assert!(CONNECTION_REFUSALS.contains(&reason), "{reason}");
        self.connections_refused.with_label_values(&[reason]).inc();
    }

    /// `reason` is one of [`CONNECTION_CUTS`].
    pub fn connections_cut(&self, reason: &'static str, n: usize) {
        debug_assert!(CONNECTION_CUTS.contains(&reason), "{reason}");
        self.connections_cut
            .with_label_values(&[reason])
            .inc_by(n as u64);
    }

    /// `reason` is one of [`ADMIN_REFUSALS`].
    pub fn admin_refused(&self, reason: &'static str) {
        debug_assert!(ADMIN_REFUSALS.contains(&reason), "{reason}");
        self.admin_refused.with_label_values(&[reason]).inc();
    }
}

/// A counter by `reason` over a closed set, every series present from the
/// start at 0 so that a rate over it is defined before the first event.
fn reasons(
    registry: &prometheus::Registry,
    name: &str,
    help: &str,
    all: &[&str],
) -> prometheus::IntCounterVec {
    let counter = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), &["reason"])
        .expect("metric");
    for r in all {
        counter.with_label_values(&[r]);
    }
    registry
        .register(Box::new(counter.clone()))
        .expect("unique metric names");
    counter
}

/// Serves one S3 listener, plain or TLS, until `shutdown` resolves; then
/// lets requests in flight finish for up to `drain_timeout`, or until
/// `hurry` resolves, and cuts off the rest.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gate>,
    edge: Arc<Edge>,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
    hurry: impl Future<Output = ()>,
) {
    let builder = Arc::new(http_builder(&edge.limits));
    let drain = Drain::default();
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = shutdown.as_mut() => break,
        };
        // Over the limit a connection is closed at once rather than left
        // waiting in the backlog: a load balancer sees it fail and tries
        // another gate, where a queued client would only time out.
        let Ok(permit) = edge.connections.clone().try_acquire_owned() else {
            edge.metrics.connection_refused("max_connections");
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let conn = Conn {
            slot: Slot::new(permit, &edge),
            gate: gate.clone(),
            edge: edge.clone(),
            builder: builder.clone(),
            drain: drain.signal(),
            tls: tls.clone(),
            peer,
        };
        tasks.spawn(conn.run(socket));
    }
    drop(listener);
    drain.start();
    let drained = async { while tasks.join_next().await.is_some() {} };
    let why = tokio::select! {
        drained = tokio::time::timeout(edge.drain_timeout, drained) => match drained {
            Ok(()) => None,
            Err(_) => Some("drain deadline passed"),
        },
        () = hurry => Some("stop signal repeated"),
    };
    if let Some(why) = why {
        tracing::warn!(
            connections = tasks.len(),
            "{why} with requests still in flight; cutting them off"
        );
        edge.metrics.connections_cut("drain", tasks.len());
    }
    // Dropping what is left ends its requests, which writes their
    // completion records before the audit trail is closed.
    tasks.shutdown().await;
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout also runs while a kept-alive connection
    // waits for its next request, so it would cap idle connections too;
    // `Clock` keeps the two apart.
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_streams);
    builder
}

/// Tells a listener's connections to finish what they are serving and
/// close, as hyper-util's `GracefulShutdown` does, but with nothing shared
/// on the request path: its watcher polls a `watch` receiver at every poll
/// of every connection, and each such poll locks the waiter list of the one
/// channel all the listener's connections share. Here a connection is
/// registered once, when it is accepted, and reads a flag of its own.
#[derive(Default)]
struct Drain {
    connections: Mutex<Vec<Weak<DrainSignal>>>,
}

#[derive(Default)]
struct DrainSignal {
    draining: AtomicBool,
    waker: AtomicWaker,
}

impl Drain {
    fn signal(&self) -> Arc<DrainSignal> {
        let signal = Arc::new(DrainSignal::default());
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Ended connections are swept out before the list would grow, so it
        // stays within twice the connections open.
        if connections.len() == connections.capacity() {
            connections.retain(|c| c.strong_count() > 0);
        }
        connections.push(Arc::downgrade(&signal));
        signal
    }

    fn start(&self) {
        let connections = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for signal in connections.iter().filter_map(Weak::upgrade) {
            signal.draining.store(true, Ordering::Release);
            signal.waker.wake();
        }
    }
}

impl DrainSignal {
    /// Serves `conn` until it ends, shutting it down gracefully once the
    /// drain starts. Pinned by the caller: an async fn keeps its arguments
    /// for its whole life, and a connection taken by value would sit in the
    /// task twice (4 KiB more per idle connection).
    async fn watch<C: GracefulConnection>(&self, mut conn: Pin<&mut C>) -> C::Output {
        let mut draining = false;
        // The task's waker, as last registered: it does not change between
        // polls, so registering it again is skipped.
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(|cx| {
            if !draining {
                if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    self.waker.register(cx.waker());
                    registered = Some(cx.waker().clone());
                }
                if self.draining.load(Ordering::Acquire) {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            conn.as_mut().poll(cx)
        })
        .await
    }
}

/// `fut`, failed with `TimedOut` if it takes longer than `limit`.
async fn within<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// A connection's place under `limits.max_connections`.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: prometheus::IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, edge: &Edge) -> Slot {
        let open = edge.metrics.open_connections.clone();
        open.inc();
        Slot {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// One accepted connection, before its PROXY header and TLS handshake.
struct Conn {
    slot: Slot,
    gate: Arc<Gate>,
    edge: Arc<Edge>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// Set when the listener stops: finish the request in flight, then close.
    drain: Arc<DrainSignal>,
    tls: Option<Arc<Tls>>,
    peer: SocketAddr,
}

impl Conn {
    async fn run(self, mut socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let limits = &self.edge.limits;
        let (peer, read) = if self.edge.proxy_protocol {
            // Only a trusted proxy may say who the client is; anyone else
            // could name any address.
            let ip = self.peer.ip().to_canonical();
            if !self
                .gate
                .settings
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&ip))
            {
                tracing::debug!(peer = %self.peer, "PROXY protocol from an untrusted peer; closing");
                self.edge.metrics.connection_refused("untrusted_proxy");
                return;
            }
            match within(limits.header_timeout, proxy_protocol::read(&mut socket)).await {
                Ok((proxy_protocol::Header::Proxied(client), read)) => (client, read),
                Ok((proxy_protocol::Header::Local, read)) => (self.peer, read),
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "no valid PROXY protocol header");
                    self.edge.metrics.connection_refused("proxy_protocol");
                    return;
                }
            }
        } else {
            (self.peer, Bytes::new())
        };
        let io = Rewind {
            read,
            inner: socket,
        };
        match self.tls.clone() {
            None => self.serve_http(io, peer, None).await,
            // Boxed: the handshake's and the TLS stream's state would
            // otherwise size every connection's task, plain ones too.
            Some(tls) => Box::pin(self.serve_tls(tls, io, peer)).await,
        }
    }

    async fn serve_tls(self, tls: Arc<Tls>, io: Rewind<TcpStream>, peer: SocketAddr) {
        let limits = &self.edge.limits;
        match within(limits.header_timeout, tls.acceptor().accept(io)).await {
            Ok(stream) => {
                let cert = crate::tls::client_cert(stream.get_ref().1);
                self.serve_http(stream, peer, cert).await;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                self.edge.metrics.connection_refused("tls_handshake");
            }
        }
    }

    async fn serve_http<I>(self, io: I, peer: SocketAddr, client_cert: Option<Arc<ClientCert>>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            slot: _slot,
            gate,
            edge,
            builder,
            drain,
            ..
        } = self;
        let clock = Arc::new(Clock::new(&edge.limits));
        let io = Timed::new(io, clock.clone());
        let info = ConnInfo { peer, client_cert };
        let requests = clock.clone();
        let service = service_fn(move |req| {
            let busy = Clock::busy(&requests);
            let gate = gate.clone();
            let info = info.clone();
            // Boxed: hyper keeps a slot for the request's future in every
            // connection, idle ones too, and this one is 4 KB.
            Box::pin(async move {
                let resp = gate.handle(info, req).await;
                Ok::<_, Infallible>(resp.map(|inner| Tracked { inner, busy }))
            })
        });
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let conn = std::pin::pin!(conn.into_owned());
        let ended = drain.watch(conn).await;
        let reason = match (clock.expired(), &ended) {
            (Some(Expiry::Send), _) => {
                tracing::debug!(%peer, "client stopped reading a response; connection cut");
                edge.metrics.connections_cut("send_timeout", 1);
                return;
            }
            (Some(Expiry::Header), _) => Some("header_timeout"),
            (Some(Expiry::Idle), _) | (None, Ok(())) => None,
            (None, Err(e)) => match e.downcast_ref::<hyper::Error>() {
                Some(e) if e.is_parse_too_large() => Some("header_too_large"),
                Some(e) if e.is_parse() => Some("malformed"),
                _ => None,
            },
        };
        match (reason, ended) {
            (Some(reason), _) => {
                tracing::debug!(%peer, reason, "connection refused");
                edge.metrics.connection_refused(reason);
            }
            (None, Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            (None, Ok(())) => {}
        }
    }
}

/// Which limit cut a connection off.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    /// A request head took longer than `limits.header_timeout` from its
    /// first byte (slowloris).
    Header,
    /// No request for `limits.idle_timeout`.
    Idle,
    /// The client took nothing of a response for `limits.send_timeout`.
    Send,
}

/// When a connection with no request in flight is cut off:
/// `idle_timeout` after its last request ended (or it was accepted), or
/// `header_timeout` after the first byte of its next request arrived.
/// With requests in flight only `send_timeout` runs, from when a response
/// handed hyper a frame that the client has not made room for since (for
/// HTTP/2, a stream whose flow-control window the client keeps shut);
/// otherwise their bodies have their own timeouts, and a slow download is
/// not an idle connection.
///
/// Works alike for HTTP/1.1 and HTTP/2, which has no timeouts of its own in
/// hyper; for HTTP/2 any frame on a connection without streams (a PING, a
/// SETTINGS) starts the header clock.
struct Clock {
    header_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
    state: Mutex<ClockState>,
}

struct ClockState {
    in_flight: usize,
    /// When the connection went idle, or when the first byte of the next
    /// request arrived: read from the clock only once the reader has to
    /// wait, as on a busy connection the next request is mostly there
    /// already. `None` until then.
    since: Option<Instant>,
    reading_head: bool,
    /// The connection's reader, woken when the last request ends so that
    /// the idle clock is armed without waiting for a byte.
    reader: Option<Waker>,
    expired: Option<Expiry>,
    /// Responses waiting for the client to take what they handed over, by
    /// request, with since when.
    waiting: Vec<(u64, Instant)>,
    /// The reader's timer is set for the oldest of `waiting`.
    send_armed: bool,
    requests: u64,
}

impl Clock {
    fn new(limits: &Limits) -> Clock {
        Clock {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
            state: Mutex::new(ClockState {
                in_flight: 0,
                since: None,
                reading_head: false,
                reader: None,
                expired: None,
                waiting: Vec::new(),
                send_armed: false,
                requests: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's head has been read: no clock runs until it ends.
    fn busy(this: &Arc<Clock>) -> Busy {
        let mut state = this.state();
        state.in_flight += 1;
        state.reading_head = false;
        state.requests += 1;
        Busy {
            clock: this.clone(),
            id: state.requests,
            handed: false,
        }
    }

    fn expired(&self) -> Option<Expiry> {
        self.state().expired
    }
}

/// A request in flight on a connection.
struct Busy {
    clock: Arc<Clock>,
    /// Its number on the connection.
    id: u64,
    /// It may be in `waiting`: most responses are taken whole, and leave
    /// the clock's lock alone until they end.
    handed: bool,
}

impl Busy {
    /// The response handed hyper a frame: the client must make room for
    /// the next within `send_timeout`.
    fn handed(&mut self) {
        self.handed = true;
        let mut state = self.clock.state();
        state.waiting.push((self.id, Instant::now()));
        if !state.send_armed {
            if let Some(reader) = &state.reader {
                reader.wake_by_ref();
            }
        }
    }

    /// Hyper asks for the next frame: the client made room.
    fn taken(&mut self) {
        if std::mem::take(&mut self.handed) {
            let id = self.id;
            self.clock.state().waiting.retain(|w| w.0 != id);
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.clock.state();
        if self.handed {
            state.waiting.retain(|w| w.0 != self.id);
        }
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.since = None;
            state.reading_head = false;
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }
}

/// A response body that keeps its request in flight until it is sent or
/// dropped.
struct Tracked<B> {
    inner: B,
    busy: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        this.busy.taken();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(Some(Ok(_)))) && !this.inner.is_end_stream() {
            this.busy.handed();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

const SEND_TIMED_OUT: &str = "the client took nothing of a response in time";

/// A connection whose reads fail once its [`Clock`] runs out, and whose
/// writes fail once the client has taken nothing for `send_timeout`; either
/// makes hyper close it.
struct Timed<I> {
    inner: I,
    clock: Arc<Clock>,
    sleep: Pin<Box<Sleep>>,
    /// Armed while a write waits for the client: allocated only for
    /// connections that ever wait, so that idle ones stay small.
    send_sleep: Option<Pin<Box<Sleep>>>,
    /// When the write waiting now must have gone through.
    send_deadline: Option<Instant>,
}

impl<I> Timed<I> {
    fn new(inner: I, clock: Arc<Clock>) -> Timed<I> {
        let sleep = Box::pin(tokio::time::sleep(clock.idle_timeout));
        Timed {
            inner,
            clock,
            sleep,
            send_sleep: None,
            send_deadline: None,
        }
    }

    /// `polled`, a write or a flush, failed with `TimedOut` once writes
    /// have waited `send_timeout` without the client taking a byte.
    fn sending<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.send_deadline = None;
            return polled;
        }
        let deadline = *self
            .send_deadline
            .get_or_insert_with(|| Instant::now() + self.clock.send_timeout);
        let sleep = self
            .send_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.clock.state().expired = Some(Expiry::Send);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, SEND_TIMED_OUT)))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Timed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let mut state = this.clock.state();
        match polled {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && state.in_flight == 0 && !state.reading_head {
                    state.reading_head = true;
                    state.since = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if !state
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.reader = Some(cx.waker().clone());
                }
                let (expiry, since, limit, why) = if state.in_flight > 0 {
                    let oldest = state.waiting.iter().map(|w| w.1).min();
                    state.send_armed = oldest.is_some();
                    let Some(oldest) = oldest else {
                        return Poll::Pending;
                    };
                    (
                        Expiry::Send,
                        oldest,
                        this.clock.send_timeout,
                        SEND_TIMED_OUT,
                    )
                } else if state.reading_head {
                    (
                        Expiry::Header,
                        *state.since.get_or_insert_with(Instant::now),
                        this.clock.header_timeout,
                        "request head not received in time",
                    )
                } else {
                    (
                        Expiry::Idle,
                        *state.since.get_or_insert_with(Instant::now),
                        this.clock.idle_timeout,
                        "connection idle",
                    )
                };
                let deadline = since + limit;
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                state.expired = Some(expiry);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            failed => failed,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Timed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.sending(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.sending(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.sending(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.sending(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_reaches_every_open_connection_and_forgets_ended_ones() {
        let drain = Drain::default();
        let open: Vec<_> = (0..10).map(|_| drain.signal()).collect();
        for _ in 0..10_000 {
            drop(drain.signal());
        }
        let listed = drain.connections.lock().unwrap().len();
        assert!(listed <= 2 * open.len(), "{listed} listed for 10 open");
        assert!(!open.iter().any(|s| s.draining.load(Ordering::Acquire)));
        drain.start();
        assert!(open.iter().all(|s| s.draining.load(Ordering::Acquire)));
        assert!(drain.connections.lock().unwrap().is_empty());
    }
}
