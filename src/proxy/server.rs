//! Accepting connections: HTTP/1.1 and HTTP/2 on one listener, one task per
//! connection, graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::pipeline::{ConnInfo, Gate};

/// How long a client may take to send a request head: a slow-loris client
/// holds a connection, not the gate.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long requests in flight may take to finish once shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Serves the S3 listener until `shutdown` resolves, then drains.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
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
        let conn_gate = gate.clone();
        let info = ConnInfo {
            peer,
            peer_id: None,
        };
        let service = service_fn(move |req| {
            let gate = conn_gate.clone();
            async move { Ok::<_, Infallible>(gate.handle(info, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(socket), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed with requests still in flight");
    }
}
