//! The zero-delay OpenAI-compatible upstream: a bare hyper HTTP/1.1 server that
//! answers `POST /v1/chat/completions` with a canned `chat.completion` (with a
//! `usage` object) or, when the body asks for `"stream":true`, a canned SSE
//! stream that ends with a usage chunk and `data: [DONE]`. It runs as a child
//! process of the benchmark (`sheepdog-bench upstream`), prints its port on the
//! first line of stdout and exits when its stdin closes (the benchmark died or
//! finished), so it can never outlive the run.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Tokens the canned answers report (the accounting check multiplies by these).
pub const PROMPT_TOKENS: u64 = 9;
pub const COMPLETION_TOKENS: u64 = 9;

/// The canned non-streamed answer.
pub const COMPLETION: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1735689600,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#;

/// The canned stream, one SSE event per body frame (sent chunked).
pub const SSE_EVENTS: [&[u8]; 6] = [
    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello!\"},\"finish_reason\":null}]}\n\n",
    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" How can I help you today?\"},\"finish_reason\":null}]}\n\n",
    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9,\"total_tokens\":18}}\n\n",
    b"data: [DONE]\n\n",
];

/// The whole canned stream as one buffer (what a client reads back).
pub fn sse_bytes() -> Vec<u8> {
    SSE_EVENTS.concat()
}

/// A body that yields the canned SSE events one frame at a time.
struct SseBody {
    next: usize,
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match SSE_EVENTS.get(self.next) {
            Some(ev) => {
                self.next += 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(ev)))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next >= SSE_EVENTS.len()
    }
}

type UpBody = Either<Full<Bytes>, SseBody>;

fn simple(status: StatusCode, text: &'static str) -> Response<UpBody> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *r.status_mut() = status;
    r
}

/// Whether the body holds `"stream": true` (any whitespace around the
/// colon: a gateway may forward the client's bytes as they came).
fn asks_for_stream(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"stream\"";
    let skip_ws = |s: &[u8]| -> usize { s.iter().take_while(|b| b.is_ascii_whitespace()).count() };
    (0..body.len().saturating_sub(KEY.len() - 1)).filter(|&i| body[i..].starts_with(KEY)).any(|i| {
        let mut at = i + KEY.len();
        at += skip_ws(&body[at..]);
        if body.get(at) != Some(&b':') {
            return false;
        }
        at += 1;
        at += skip_ws(&body[at..]);
        body[at..].starts_with(b"true")
    })
}

async fn handle(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/v1/chat/completions" {
        return Ok(simple(StatusCode::NOT_FOUND, "{\"error\":{\"message\":\"not found\"}}"));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(simple(StatusCode::BAD_REQUEST, "{\"error\":{\"message\":\"unreadable body\"}}")),
    };
    let resp = if asks_for_stream(&body) {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, "text/event-stream")
            .header(hyper::header::CACHE_CONTROL, "no-cache")
            .body(Either::Right(SseBody { next: 0 }))
    } else {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Either::Left(Full::new(Bytes::from_static(COMPLETION))))
    };
    Ok(resp.unwrap_or_else(|_| simple(StatusCode::INTERNAL_SERVER_ERROR, "{}")))
}

/// `sheepdog-bench upstream`: serve until stdin closes.
pub fn main(threads: usize) -> anyhow::Result<()> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    // Exit as soon as the parent closes our stdin (normal end or its death).
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
    rt.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("upstream: cannot bind 127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}")?;
        out.flush()?;
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("upstream: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_requests_are_recognised_with_any_spacing() {
        assert!(super::asks_for_stream(br#"{"model":"m","stream":true}"#));
        assert!(super::asks_for_stream(b"{\"stream\" :\n true}"));
        assert!(!super::asks_for_stream(br#"{"stream": false}"#));
        assert!(!super::asks_for_stream(br#"{"stream_options":{"include_usage":true}}"#));
        assert!(!super::asks_for_stream(br#"{"a":"stream"}"#));
    }
}
