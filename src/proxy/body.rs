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

use super::forward::UpBody;

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
    fn end(self, ending: Ending, bytes_out: u64);
}

/// A streamed upstream response body: counts bytes, cuts off an upstream
/// that goes quiet for longer than `idle`, and reports how it ended — also
/// when the client goes away and hyper drops it unfinished.
pub struct UpstreamBody<E: OnEnd, B: Body = UpBody> {
    inner: B,
    idle: Duration,
    /// Made the first time the upstream has nothing to send, so that a
    /// body that never waits (most small objects arrive with their head)
    /// reads no clock and registers no timer.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs from when the upstream last went quiet; each frame
    /// stops it.
    waiting: bool,
    bytes: u64,
    on_end: Option<E>,
}

impl<E: OnEnd, B: Body> UpstreamBody<E, B> {
    pub fn new(inner: B, idle: Duration, on_end: E) -> Self {
        UpstreamBody {
            inner,
            idle,
            timer: None,
            waiting: false,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, ending: Ending) {
        if let Some(e) = self.on_end.take() {
            e.end(ending, self.bytes);
        }
    }

    /// Whether the upstream has now been quiet for `idle`, starting the
    /// clock if it only just went quiet.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.idle;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
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

impl<E: OnEnd, B: Body> Body for UpstreamBody<E, B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
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
                this.waiting = false;
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
                if this.idle_expired(cx) {
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

impl<E: OnEnd, B: Body> Drop for UpstreamBody<E, B> {
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body the test feeds frame by frame, as an upstream would.
    struct Fed(mpsc::UnboundedReceiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    type Ended = Arc<Mutex<Option<(Ending, u64)>>>;

    struct Report(Ended);

    impl OnEnd for Report {
        fn end(self, ending: Ending, bytes_out: u64) {
            *self.0.lock().unwrap() = Some((ending, bytes_out));
        }
    }

    fn fed(
        idle: Duration,
    ) -> (
        mpsc::UnboundedSender<Bytes>,
        UpstreamBody<Report, Fed>,
        Ended,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ended = Ended::default();
        let body = UpstreamBody::new(Fed(rx), idle, Report(ended.clone()));
        (tx, body, ended)
    }

    /// Bounds a wait that a broken timer would make endless.
    async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("the body ended")
    }

    #[tokio::test]
    async fn an_upstream_quiet_for_the_idle_time_is_cut_off() {
        let (tx, mut body, ended) = fed(Duration::from_millis(100));
        tx.send(Bytes::from_static(b"part")).unwrap();
        let first = bounded(body.frame()).await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        let cut = bounded(body.frame()).await.unwrap().unwrap_err();
        assert!(cut.is::<IdleTimeout>(), "{cut}");
        assert_eq!(*ended.lock().unwrap(), Some((Ending::UpstreamError, 4)));
    }

    #[tokio::test]
    async fn each_frame_starts_the_idle_time_again() {
        // Four pauses of 300 ms under an idle time of 1 s: a timer that
        // kept running from the first wait would cut the body off.
        let (tx, body, ended) = fed(Duration::from_secs(1));
        let feed = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                tx.send(Bytes::from_static(b"x")).unwrap();
            }
        });
        let got = bounded(body.collect()).await.unwrap().to_bytes();
        assert_eq!(got, "xxxx");
        feed.await.unwrap();
        assert_eq!(*ended.lock().unwrap(), Some((Ending::Complete, 4)));
    }
}
