//! Accepting connections: HTTP/1.1 and HTTP/2 on one listener, one task per
//! connection, graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::pipeline::{ConnInfo, Gate};
use crate::tls::{ClientCert, Tls};

/// How long a client may take to send a request head: a slow-loris client
/// holds a connection, not the gate.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long requests in flight may take to finish once shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How long a TLS client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one S3 listener, plain or TLS, until `shutdown` resolves, then
/// drains.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gate>,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
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
            () = shutdown.as_mut() => break,
        };
        let _ = socket.set_nodelay(true);
        let conn = Conn {
            gate: gate.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            peer,
        };
        match &tls {
            None => {
                tokio::spawn(conn.serve(socket, None));
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let cert = crate::tls::client_cert(stream.get_ref().1);
                            conn.serve(stream, cert).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed with requests still in flight");
    }
}

/// One accepted connection, before it is known whether it speaks TLS.
struct Conn {
    gate: Arc<Gate>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    peer: SocketAddr,
}

impl Conn {
    async fn serve<I>(self, io: I, client_cert: Option<Arc<ClientCert>>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            gate,
            builder,
            watcher,
            peer,
        } = self;
        let info = ConnInfo { peer, client_cert };
        let service = service_fn(move |req| {
            let gate = gate.clone();
            let info = info.clone();
            async move { Ok::<_, Infallible>(gate.handle(info, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
