//! A connection's watch: one word of state (head / busy / idle, and since
//! when), written by its socket, its service and its answer's body, and read
//! by the watchdog in [`super::serve_connection`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::ListenerLimits;

/// What a connection is doing, and since when: one word, `(micros << 2) | state`.
#[derive(Debug)]
pub(super) struct Watch {
    epoch: Instant,
    word: AtomicU64,
}

/// Waiting for (the rest of) a request head: the header timeout runs.
pub(super) const HEAD: u64 = 0;
/// A request is being served (its body read or its answer written).
pub(super) const BUSY: u64 = 1;
/// Keep-alive, between requests: the idle timeout runs.
const IDLE: u64 = 2;

impl Watch {
    pub(super) fn new(now: Instant) -> Watch {
        Watch { epoch: now, word: AtomicU64::new(HEAD) }
    }

    fn set(&self, state: u64, at: Instant) {
        let micros = at.saturating_duration_since(self.epoch).as_micros() as u64;
        self.word.store((micros << 2) | state, Ordering::Relaxed);
    }

    pub(super) fn state(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & 3
    }

    /// Bytes arrived: an idle connection starts its next request head.
    #[inline]
    fn read_some(&self) {
        if self.state() == IDLE {
            self.set(HEAD, Instant::now());
        }
    }

    #[inline]
    fn busy(&self) {
        self.word.store(BUSY, Ordering::Relaxed);
    }

    #[inline]
    fn idle(&self) {
        self.set(IDLE, Instant::now());
    }

    /// When the connection is to be closed if nothing changes (none while busy).
    pub(super) fn deadline(&self, limits: &ListenerLimits) -> Option<Instant> {
        let word = self.word.load(Ordering::Relaxed);
        let since = self.epoch + Duration::from_micros(word >> 2);
        match word & 3 {
            HEAD => Some(since + limits.header_read_timeout),
            IDLE => Some(since + limits.idle_timeout),
            _ => None,
        }
    }
}

/// The connection's socket, telling the watch when bytes arrive.
pub(super) struct WatchedIo<I> {
    pub(super) io: I,
    pub(super) watch: Arc<Watch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.read_some();
        }
        polled
    }
}

/// The methods of an `AsyncWrite` that only passes every call on to its
/// field `$field` (an `AsyncWrite + Unpin`): writes need no watching.
macro_rules! delegate_async_write {
    ($field:ident) => {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$field).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.$field.is_write_vectored()
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$field).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.$field).poll_shutdown(cx)
        }
    };
}
pub(crate) use delegate_async_write;

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    delegate_async_write!(io);
}

/// The connection's service: busy from the call until the answer's body is dropped.
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) watch: Arc<Watch>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Watched<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = WatchedCall<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.watch.busy();
        WatchedCall { inner: self.inner.call(request), watch: Some(self.watch.clone()) }
    }
}

pub(super) struct WatchedCall<F> {
    inner: F,
    watch: Option<Arc<Watch>>,
}

impl<F, B, E> Future for WatchedCall<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                let watch = this.watch.take();
                Poll::Ready(result.map(|r| r.map(|body| Tracked { inner: body, watch })))
            }
        }
    }
}

/// An answer's body; when hyper drops it (written, or abandoned) the
/// connection is idle.
pub struct Tracked<B> {
    inner: B,
    watch: Option<Arc<Watch>>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(w) = &self.watch {
            w.idle();
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
