//! What every answer carries: its `200` with content type, the model and
//! provider headers, and the SSE framing of one event.

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::routing::ModelRoute;

pub static X_SHEEPDOG_MODEL: HeaderName = HeaderName::from_static("x-sheepdog-model");
pub static X_SHEEPDOG_PROVIDER: HeaderName = HeaderName::from_static("x-sheepdog-provider");

pub(super) fn answer_headers(resp: &mut Response, route: &ModelRoute) {
    let h = resp.headers_mut();
    if let Some(v) = &route.model_header {
        h.insert(X_SHEEPDOG_MODEL.clone(), v.clone());
    }
    if let Some(v) = &route.provider_header {
        h.insert(X_SHEEPDOG_PROVIDER.clone(), v.clone());
    }
}

/// Headers an answer ends up with: content type, request id, six
/// rate-limit headers, model and provider (and three more for streams);
/// sized once instead of grown twice.
const ANSWER_HEADERS: usize = 16;

/// A `200` answer with its content type, its header map sized for the
/// headers added later.
pub(super) fn ok_answer(content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    // Sixteen headers always fit; the map stays as it is otherwise.
    let _ = h.try_reserve(ANSWER_HEADERS);
    h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Marks an answer already in the client's own format (an upstream of that
/// format answered a request passed through): the edge leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub(super) struct NativeAnswer;

pub(super) fn sse_data(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
