//! An answer's body: a stream read by whoever polls it, giving its
//! connection back when it ends (or is dropped with its rest on hand).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::Stream;
use hyper::http::uri::Authority;

use super::conn::{give_back, Conn, READ_SIZE};
use super::framing::{Framing, Step};
use crate::providers::body::BodyError;

/// The most of an abandoned answer's rest read (only what is already on hand)
/// to keep its connection.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// An answer's body, read by whoever polls it (no task of its own). Read to
/// the end, or dropped with the rest already on hand, it gives its
/// connection back to the idle list of the thread it ends on.
pub struct Body {
    /// `None` once the body has ended or failed.
    pub(super) conn: Option<Conn>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) client: u64,
    pub(super) authority: Authority,
}

impl Body {
    /// The body is complete: the connection goes back when it can be reused
    /// (kept alive, nothing unasked-for behind the answer).
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                give_back(self.client, &self.authority, conn);
            }
        }
    }

    fn fail(&mut self, err: BodyError) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.framing.step(&mut conn.buf) {
                Err(why) => return this.fail(BodyError::Protocol(why)),
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Protocol("the upstream closed the connection mid-answer")),
                Ok(_) => {}
                Err(e) => return this.fail(BodyError::Io(e)),
            }
        }
    }
}

impl Drop for Body {
    /// An abandoned answer keeps its connection only if the rest of it is
    /// already on hand (nothing is waited for).
    fn drop(&mut self) {
        if !self.keep_alive {
            return;
        }
        let mut drained = 0usize;
        while let Some(conn) = self.conn.as_mut() {
            match self.framing.step(&mut conn.buf) {
                Ok(Step::Data(bytes)) => {
                    drained += bytes.len();
                    if drained > MAX_DRAIN_BYTES {
                        return;
                    }
                }
                Ok(Step::End) => self.finish(),
                Ok(Step::NeedMore) => {
                    conn.buf.reserve(READ_SIZE);
                    if !matches!(conn.stream.try_read_buf(&mut conn.buf), Ok(1..)) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}
