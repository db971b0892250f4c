//! The end of the shutdown grace as the request path sees it: work cut
//! short, the request billed for what was streamed.

use futures::StreamExt;

use super::pending::{Outcome, Pending};
use crate::error::GatewayError;
use crate::listener::Stage;
use crate::providers::{EventStream, StreamEvent, UpstreamError};

/// `work`, unless the shutdown grace ends first (`None`): one atomic load
/// per poll.
pub(super) async fn until_closing<F: std::future::Future>(stage: &Stage, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    futures::future::poll_fn(|cx| {
        if stage.closing() {
            return std::task::Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The next upstream event, unless the shutdown grace ends first (`None`).
pub(super) async fn next_or_closing(
    events: &mut EventStream,
    stage: &Stage,
) -> Option<Option<Result<StreamEvent, UpstreamError>>> {
    futures::future::poll_fn(|cx| {
        if stage.closing() {
            return std::task::Poll::Ready(None);
        }
        events.poll_next_unpin(cx).map(Some)
    })
    .await
}

/// Ends a request cut by the end of the shutdown grace: finished (billed
/// for what was streamed) and queued; returns the error it ends with.
pub(super) async fn shut_down(pending: &mut Pending) -> GatewayError {
    let err = GatewayError::ShuttingDown;
    pending.finish(Outcome::ServerShutdown, err.status().as_u16(), Some(err.code()));
    pending.queue().await;
    err
}
