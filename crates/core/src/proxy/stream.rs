//! A streamed answer: the stream opened (retried or sent elsewhere until its
//! first event), relayed as SSE, ended by `[DONE]` or an error event; chunks
//! ready together leave in one write (`coalesce`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::answer::{answer_headers, ok_answer, sse_data, NativeAnswer};
use super::attempts::{failure_response, kind_label, log_upstream_failure, Attempts};
use super::closing::{next_or_closing, shut_down, until_closing};
use super::pending::{Outcome, Pending};
use crate::error::GatewayError;
use crate::providers::EventStream;
use crate::providers::{ChatRequest, StreamEvent, UpstreamError};
use crate::resilience::retry::is_upstream_fault;
use crate::rollout::compare;
use crate::routing::ModelRoute;

/// Opens a stream and waits for its first event, so that a stream failing
/// before its first byte can still be retried or fall back.
async fn open_stream(route: Arc<ModelRoute>, chat: &ChatRequest) -> Result<EventStream, UpstreamError> {
    let mut events = route.provider.client.stream(chat, &route.target).await?;
    match events.next().await {
        Some(Ok(first)) => Ok(Box::pin(futures::stream::once(async move { Ok(first) }).chain(events))),
        Some(Err(e)) => Err(e),
        None => Err(UpstreamError::protocol(format!("upstream {} sent an empty stream", route.provider.name))),
    }
}

pub(super) async fn stream_response(attempts: Attempts<'_>, mut pending: Pending) -> Response {
    let chat = attempts.chat;
    let include_usage = chat.include_usage;
    let stage = attempts.state.shutdown_stage().clone();
    let opened = until_closing(&stage, attempts.run(&mut pending, |route: Arc<ModelRoute>| open_stream(route, chat)));
    let (route, events) = match opened.await {
        Some(Ok(ok)) => ok,
        Some(Err(failed)) => return failure_response(failed, &mut pending).await,
        None => return shut_down(&mut pending).await.into_response(),
    };
    pending.served = Some(route.clone());
    if pending.shadow.is_some() {
        pending.output = Some(compare::Output::default());
    }
    // The upstream's own events pass as they came (`Raw`); their chunks are
    // only counted, and errors end the stream in the client's format.
    let native = route.provider.client.answers_natively(chat);
    let error_event = move |status: u16, body: &sheepdog_types::ErrorBody| {
        if native {
            super::edge::native_error_event(status, &body.error.message)
        } else {
            sse_data(&serde_json::to_vec(body).unwrap_or_default())
        }
    };
    let sse = futures::stream::unfold((events, Some(pending), stage), move |(mut events, pending, stage)| async move {
        let mut pending = pending?;
        loop {
            let Some(next) = next_or_closing(&mut events, &stage).await else {
                // The shutdown grace is over: billed for what was streamed.
                let err = shut_down(&mut pending).await;
                return Some((Ok(error_event(err.status().as_u16(), &err.body())), (events, None, stage)));
            };
            match next {
                Some(Ok(StreamEvent::Raw(raw))) => {
                    return Some((Ok::<Bytes, Infallible>(raw), (events, Some(pending), stage)));
                }
                Some(Ok(StreamEvent::Chunk(chunk))) => {
                    pending.saw_chunk(&chunk);
                    if !native {
                        return Some((Ok(sse_data(&chunk)), (events, Some(pending), stage)));
                    }
                }
                Some(Ok(StreamEvent::Usage { usage, chunk })) => {
                    pending.usage = Some(usage);
                    if include_usage && !native {
                        return Some((Ok(sse_data(&chunk)), (events, Some(pending), stage)));
                    }
                }
                Some(Err(e)) => {
                    let err = GatewayError::Upstream(e.clone());
                    if let Some(route) = pending.served.clone() {
                        log_upstream_failure(&route, &e, &pending.request_id);
                        pending.state.metrics().upstream_error(&route.provider.name, kind_label(&e));
                        if is_upstream_fault(&e) {
                            route.provider.breaker.record(tokio::time::Instant::now(), false);
                        }
                    }
                    pending.finish(Outcome::UpstreamError, err.status().as_u16(), Some(err.code()));
                    pending.queue().await;
                    return Some((Ok(error_event(err.status().as_u16(), &err.body())), (events, None, stage)));
                }
                None => {
                    pending.finish(Outcome::Ok, 200, None);
                    pending.queue().await;
                    if native {
                        // The upstream's `message_stop` ended it.
                        return None;
                    }
                    return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), (events, None, stage)));
                }
            }
        }
    });
    let mut resp = ok_answer("text/event-stream", Body::from_stream(coalesce(sse)));
    if native {
        resp.extensions_mut().insert(NativeAnswer);
    }
    let h = resp.headers_mut();
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    answer_headers(&mut resp, &route);
    resp
}

/// At most this many bytes of ready chunks go out in one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Chunks that are ready one after another go to the client in one write.
///
/// hyper hands an upstream's body over one HTTP chunk at a time, each after a
/// turn of the upstream connection's task: an upstream that sends six events
/// in one packet still reaches the client as six writes (six packets for the
/// client to read) unless the events are gathered. After each chunk this takes
/// what is ready; when nothing is, it lets the other tasks run (the upstream
/// connection's task hands over one chunk per turn, and measured, needs up to
/// three turns) before sending what it has. A chunk never waits for a later
/// one: nothing is delayed by more than three scheduler turns.
fn coalesce<S>(inner: S) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    use futures::FutureExt;
    futures::stream::unfold((Box::pin(inner), false), |(mut inner, ended)| async move {
        if ended {
            return None;
        }
        let first = match inner.next().await? {
            Ok(chunk) => chunk,
            Err(never) => match never {},
        };
        let mut gathered: Option<bytes::BytesMut> = None;
        let mut ended = false;
        // A poll that finds nothing asks the upstream connection for more; a
        // few scheduler turns later it is there if it had already arrived.
        let mut turns = 0u32;
        while gathered.as_ref().map_or(first.len(), |g| g.len()) < COALESCE_LIMIT {
            match inner.next().now_or_never() {
                Some(Some(Ok(more))) => {
                    gathered.get_or_insert_with(|| bytes::BytesMut::from(&first[..])).extend_from_slice(&more);
                    turns = 0;
                }
                Some(Some(Err(never))) => match never {},
                Some(None) => {
                    ended = true;
                    break;
                }
                None if turns >= 3 => break,
                None => {
                    tokio::task::yield_now().await;
                    turns += 1;
                }
            }
        }
        let chunk = gathered.map_or(first, bytes::BytesMut::freeze);
        Some((Ok(chunk), (inner, ended)))
    })
}

#[cfg(test)]
mod tests {
    use super::coalesce;
    use axum::body::Bytes;
    use futures::StreamExt;
    use std::convert::Infallible;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn ready_chunks_go_out_together_and_late_ones_alone() {
        // Three chunks ready at once, then one after a pause, then the end.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        for part in ["a", "b", "c"] {
            let _ = tx.unbounded_send(Ok(Bytes::from_static(part.as_bytes())));
        }
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tx.unbounded_send(Ok(Bytes::from_static(b"d")));
        });
        let out: Vec<Bytes> = coalesce(rx).map(|c| c.unwrap_or_default()).collect().await;
        assert_eq!(out, vec![Bytes::from_static(b"abc"), Bytes::from_static(b"d")]);
        let _ = late.await;
    }
}
