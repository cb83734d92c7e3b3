//! Bodies that stream through the gate: counted, never buffered whole.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// What a request body has done so far, shared with the request's
/// completion record.
#[derive(Default, Debug)]
pub struct BodyProgress {
    pub bytes: AtomicU64,
    /// The client's body stream failed (it went away mid-upload).
    pub failed: AtomicBool,
}

/// The body sent upstream: the client's stream, or bytes the gate had to
/// read itself (configuration XML), forwarded exactly as received.
pub enum ReqBody {
    Stream {
        /// Bytes the gate already read to decide (a POST form's fields),
        /// sent on before the rest of `inner`.
        prefix: Option<Bytes>,
        inner: Incoming,
        progress: Arc<BodyProgress>,
    },
    Bytes(Option<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Stream {
                prefix,
                inner,
                progress,
            } => {
                if let Some(p) = prefix.take() {
                    progress.bytes.fetch_add(p.len() as u64, Ordering::Relaxed);
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                match &frame {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            progress.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Some(Err(_)) => progress.failed.store(true, Ordering::Relaxed),
                    None => {}
                }
                Poll::Ready(frame)
            }
            ReqBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream { prefix, inner, .. } => prefix.is_none() && inner.is_end_stream(),
            ReqBody::Bytes(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream { prefix, inner, .. } => {
                let rest = inner.size_hint();
                let read = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut hint = SizeHint::new();
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + read);
                }
                hint.set_lower(rest.lower() + read);
                hint
            }
            ReqBody::Bytes(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Bytes(None) => SizeHint::with_exact(0),
        }
    }
}

/// How a response body ended, for the completion record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ending {
    Complete,
    ClientAborted,
    UpstreamError,
}

/// Called once when a response body is finished with, however it ended.
pub trait OnEnd: Send + Unpin + 'static {
    fn end(&mut self, ending: Ending, bytes_out: u64);
}

/// A streamed upstream response body: counts bytes, cuts off an upstream
/// that goes quiet for longer than `idle`, and reports how it ended — also
/// when the client goes away and hyper drops it unfinished.
pub struct UpstreamBody<E: OnEnd> {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    bytes: u64,
    on_end: Option<E>,
}

impl<E: OnEnd> UpstreamBody<E> {
    pub fn new(inner: Incoming, idle: Duration, on_end: E) -> Self {
        UpstreamBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, ending: Ending) {
        if let Some(mut e) = self.on_end.take() {
            e.end(ending, self.bytes);
        }
    }
}

/// The upstream went quiet mid-body.
#[derive(Debug)]
pub struct IdleTimeout;

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream body idle timeout")
    }
}

impl std::error::Error for IdleTimeout {}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<E: OnEnd> Body for UpstreamBody<E> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                let deadline = Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                if this.inner.is_end_stream() {
                    this.finish(Ending::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Ending::UpstreamError);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish(Ending::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.finish(Ending::UpstreamError);
                    return Poll::Ready(Some(Err(Box::new(IdleTimeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<E: OnEnd> Drop for UpstreamBody<E> {
    fn drop(&mut self) {
        // A body hyper never had to poll (HEAD, 204, 304) ended normally.
        let ending = if self.inner.is_end_stream() {
            Ending::Complete
        } else {
            Ending::ClientAborted
        };
        self.finish(ending);
    }
}

/// Every response the S3 listener sends: the gate's own (errors, denials)
/// or the upstream's, streamed.
pub enum RespBody<E: OnEnd> {
    Full(Option<Bytes>),
    Upstream(UpstreamBody<E>),
}

impl<E: OnEnd> Body for RespBody<E> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Upstream(u) => Pin::new(u).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Upstream(u) => u.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Upstream(u) => u.size_hint(),
        }
    }
}
