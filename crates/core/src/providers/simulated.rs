//! The `simulated` provider: deterministic answers without any network, for
//! demos, load tests and tests. Every answer is labelled (`system_fingerprint`
//! `sheepdog-simulated`, and the text says so).
//!
//! Behaviour is configured per provider (`latency_ms`, `ttft_ms`,
//! `chunk_interval_ms`, `error_ppm`) and can be steered per request by markers
//! in the last user message:
//! - `[sim:error=STATUS]` fails with that HTTP status (e.g. 500, 429, 400);
//! - `[sim:tokens=N]` answers with exactly N completion tokens;
//! - `[sim:tool]` calls the first declared tool (when `tools` are given);
//! - `[sim:break]` breaks a stream after its first chunks.
//!
//! Every directive is bounded: `tokens` at most [`MAX_TOKENS`], `error` an
//! HTTP status from 400 to 599, and the configured delays at most
//! [`MAX_DELAY_MS`] each (checked when the configuration loads). A marker
//! outside its bound (or not a number) is refused with a 400
//! `invalid_request_error` naming the bound, before anything is generated.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::embeddings::{self, EmbeddingsRequest, Inputs};
use super::types::{
    chunk_bytes, new_completion_id, unix_now, usage_chunk_bytes, ChatRequest, Completion, EventStream, RouteTarget,
    StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};
use crate::config::ProviderSettings;

pub const FINGERPRINT: &str = "sheepdog-simulated";

/// Largest `[sim:tokens=N]` the simulator answers (a long real completion).
pub const MAX_TOKENS: u64 = 32_768;
/// Largest configured delay (`latency_ms`, `ttft_ms`, `chunk_interval_ms`), in ms.
pub use crate::config::SIMULATED_MAX_DELAY_MS as MAX_DELAY_MS;

const WORDS: [&str; 32] = [
    "sheep", "graze", "quietly", "while", "the", "dog", "keeps", "watch", "over", "every", "tenant", "and", "its",
    "tokens", "flow", "through", "a", "gateway", "that", "counts", "each", "one", "exactly", "before", "rolling",
    "hills", "fade", "into", "evening", "light", "calm", "again",
];

#[derive(Debug)]
pub struct Simulated {
    name: String,
    latency: Duration,
    ttft: Duration,
    chunk_interval: Duration,
    error_ppm: u32,
}

/// What the simulator will answer for one request (pure, deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub words: Vec<String>,
    pub finish_reason: &'static str,
    pub tool_call: Option<(String, String)>,
    pub usage: Usage,
    pub error_status: Option<u16>,
    pub break_stream: bool,
    /// Why the request's markers are refused (a 400), when they are.
    pub refused: Option<String>,
}

impl Simulated {
    pub fn new(settings: &ProviderSettings) -> Self {
        Simulated {
            name: settings.name.clone(),
            latency: Duration::from_millis(settings.latency_ms),
            ttft: Duration::from_millis(settings.ttft_ms),
            chunk_interval: Duration::from_millis(settings.chunk_interval_ms),
            error_ppm: settings.error_ppm,
        }
    }

    fn injected_error(&self, plan: &Plan) -> Option<UpstreamError> {
        if let Some(why) = &plan.refused {
            let body = json!({"error": {"message": why, "type": "invalid_request_error"}});
            return Some(UpstreamError::from_status(&self.name, 400, body.to_string().as_bytes(), None));
        }
        let status = plan
            .error_status
            .or_else(|| (self.error_ppm > 0 && rand::random::<u32>() % 1_000_000 < self.error_ppm).then_some(500))?;
        let body = json!({"error": {"message": format!("simulated failure ({status})"), "type": "simulated"}});
        let retry = (status == 429).then(|| Duration::from_secs(1));
        Some(UpstreamError::from_status(&self.name, status, body.to_string().as_bytes(), retry))
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let p = plan_bounded(req).await;
        if p.refused.is_none() && !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if let Some(e) = self.injected_error(&p) {
            return Err(e);
        }
        let message = match &p.tool_call {
            Some((name, args)) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": format!("call_{}", fnv(name.as_bytes())), "type": "function",
                                 "function": {"name": name, "arguments": args}}],
            }),
            None => json!({"role": "assistant", "content": p.words.concat()}),
        };
        let body = json!({
            "id": new_completion_id(),
            "object": "chat.completion",
            "created": unix_now(),
            "model": target.upstream_model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": p.finish_reason}],
            "usage": p.usage.to_openai(),
        });
        Ok(Completion { body: Bytes::from(body.to_string()), usage: Some(p.usage), native: false })
    }

    /// Embeddings: a deterministic unit vector per input (the same text
    /// always gives the same vector), [`EMBED_DIMENSIONS`] values unless
    /// `dimensions` asks for fewer (at most [`EMBED_MAX_DIMENSIONS`]).
    /// `[sim:error=STATUS]` in an input fails the call; usage is the
    /// gateway's estimate of the input.
    pub async fn embed(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let e = EmbeddingsRequest::of(req);
        let texts: Vec<String> = match &e.inputs {
            Inputs::Texts(t) => t.clone(),
            Inputs::Tokens(t) => {
                t.iter().map(|ids| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")).collect()
            }
        };
        let refused = |why: String| {
            let body = json!({"error": {"message": why, "type": "invalid_request_error"}});
            UpstreamError::from_status(&self.name, 400, body.to_string().as_bytes(), None)
        };
        let dims = match e.dimensions {
            None => EMBED_DIMENSIONS,
            Some(d) if d <= EMBED_MAX_DIMENSIONS as u64 => d as usize,
            Some(d) => return Err(refused(format!("`dimensions` must be at most {EMBED_MAX_DIMENSIONS} (got {d})."))),
        };
        let mut error_status = None;
        for t in &texts {
            if let Some(s) = marker(t, "error") {
                match s.trim().parse::<u16>() {
                    Ok(s) if (400..=599).contains(&s) => error_status = Some(s),
                    _ => {
                        return Err(refused(format!(
                            "[sim:error=STATUS] must be an HTTP status from 400 to 599 (got {:?}).",
                            truncated(s)
                        )))
                    }
                }
            }
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let plan = Plan { error_status, ..Plan::default() };
        if let Some(err) = self.injected_error(&plan) {
            return Err(err);
        }
        let usage = Usage { input_tokens: req.prompt_tokens, output_tokens: 0, cached_tokens: 0 };
        let model = target.upstream_model.clone();
        let base64 = e.base64;
        let work = texts.len().saturating_mul(dims).saturating_mul(8);
        let body = crate::limited::bounded(work, move || {
            let vectors: Vec<Vec<f32>> = texts.iter().map(|t| unit_vector(t, dims)).collect();
            embeddings::openai_answer(&vectors, &model, usage.input_tokens, base64)
        })
        .await
        .ok_or_else(|| UpstreamError::protocol(format!("simulated {} could not build the answer", self.name)))?;
        Ok(Completion { body, usage: Some(usage), native: false })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let p = plan_bounded(req).await;
        if let Some(e) = self.injected_error(&p) {
            return Err(e);
        }
        let id = new_completion_id();
        let created = unix_now();
        let model = target.upstream_model.clone();
        let mut items: Vec<Result<StreamEvent, UpstreamError>> = Vec::new();
        items.push(Ok(StreamEvent::Chunk(chunk_bytes(
            &id,
            created,
            &model,
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ))));
        if let Some((name, args)) = &p.tool_call {
            items.push(Ok(StreamEvent::Chunk(chunk_bytes(
                &id,
                created,
                &model,
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": format!("call_{}", fnv(name.as_bytes())),
                    "type": "function", "function": {"name": name, "arguments": args}}]}, "finish_reason": null}]),
            ))));
        } else {
            for (i, w) in p.words.iter().enumerate() {
                if p.break_stream && i == 2 {
                    items.push(Err(UpstreamError::new(
                        UpstreamErrorKind::Connect,
                        format!("upstream {} stream broke before it finished", self.name),
                    )));
                    break;
                }
                items.push(Ok(StreamEvent::Chunk(chunk_bytes(
                    &id,
                    created,
                    &model,
                    json!([{"index": 0, "delta": {"content": w}, "finish_reason": null}]),
                ))));
            }
        }
        if !items.iter().any(|i| i.is_err()) {
            items.push(Ok(StreamEvent::Chunk(chunk_bytes(
                &id,
                created,
                &model,
                json!([{"index": 0, "delta": {}, "finish_reason": p.finish_reason}]),
            ))));
            items.push(Ok(StreamEvent::Usage {
                usage: p.usage,
                chunk: usage_chunk_bytes(&id, created, &model, &p.usage),
            }));
        }
        let ttft = self.ttft;
        let gap = self.chunk_interval;
        let stream = futures::stream::unfold((items.into_iter(), 0usize), move |(mut it, n)| async move {
            let item = it.next()?;
            let wait = if n == 0 { ttft } else { gap };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Some((item, (it, n + 1)))
        });
        Ok(Box::pin(stream))
    }
}

/// FNV-1a, for deterministic choices.
/// Dimensions of a simulated embedding (OpenAI's `text-embedding-3-small`).
pub const EMBED_DIMENSIONS: usize = 1536;
/// The most dimensions a simulated embedding may ask for.
pub const EMBED_MAX_DIMENSIONS: usize = 3072;

/// A deterministic unit vector of `dims` values for `text`: FNV-1a seeds a
/// xorshift generator.
pub fn unit_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut x = fnv(text.as_bytes()) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|f| f * f).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    for f in &mut v {
        *f /= norm;
    }
    v
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Text of a message's `content` (string, or the text parts of an array).
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// A rough but stable prompt-token count: about four characters per token
/// plus a few tokens of framing per message (close to what BPE tokenizers give
/// for English text).
pub fn estimate_prompt_tokens(body: &Map<String, Value>) -> u64 {
    let mut total = 3u64;
    if let Some(Value::Array(msgs)) = body.get("messages") {
        for m in msgs {
            let text = content_text(m.get("content"));
            total += 4 + (text.chars().count() as u64).div_ceil(4);
            if let Some(calls) = m.get("tool_calls") {
                total += (calls.to_string().len() as u64).div_ceil(4);
            }
        }
    }
    if let Some(tools) = body.get("tools") {
        total += (tools.to_string().len() as u64).div_ceil(4);
    }
    total
}

fn marker<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("[sim:{name}");
    let start = text.find(&open)? + open.len();
    let rest = &text[start..];
    let end = rest.find(']')?;
    Some(rest[..end].trim_start_matches('='))
}

/// [`plan`] without holding the event loop for a large body.
async fn plan_bounded(req: &ChatRequest) -> Plan {
    let r = req.clone();
    match crate::limited::bounded(req.raw.len(), move || plan(&r)).await {
        Some(p) => p,
        None => plan(req),
    }
}

/// Decides the answer for a request.
pub fn plan(req: &ChatRequest) -> Plan {
    let body = req.translated();
    let last_user = match body.get("messages") {
        Some(Value::Array(msgs)) => msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| content_text(m.get("content")))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let seed = fnv(body.get("messages").map(|m| m.to_string()).unwrap_or_default().as_bytes());
    let mut refused = None;
    let wanted = match marker(&last_user, "tokens") {
        None => None,
        Some(n) => match n.trim().parse::<u64>() {
            Ok(n) if n <= MAX_TOKENS => Some(n),
            _ => {
                refused = Some(format!(
                    "[sim:tokens=N] must be a whole number from 0 to {MAX_TOKENS} (got {:?}).",
                    truncated(n)
                ));
                None
            }
        },
    };
    let error_status = match marker(&last_user, "error") {
        None => None,
        Some(s) => match s.trim().parse::<u16>() {
            Ok(s) if (400..=599).contains(&s) => Some(s),
            _ => {
                refused.get_or_insert_with(|| {
                    format!("[sim:error=STATUS] must be an HTTP status from 400 to 599 (got {:?}).", truncated(s))
                });
                None
            }
        },
    };
    let natural = 12 + seed % 40;
    let mut n = if refused.is_some() { 0 } else { wanted.unwrap_or(natural) };
    let mut finish_reason = "stop";
    if let Some(max) = req.max_tokens {
        if n > max {
            n = max;
            finish_reason = "length";
        }
    }
    let mut words = Vec::with_capacity(n as usize);
    let mut h = seed;
    for i in 0..n {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let w = WORDS[((h >> 33) % WORDS.len() as u64) as usize];
        words.push(if i == 0 { capitalize(w) } else { format!(" {w}") });
    }
    if let Some(last) = words.last_mut() {
        if finish_reason == "stop" {
            last.push('.');
        }
    }
    let tool_call = if last_user.contains("[sim:tool]") {
        body.get("tools")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .and_then(|t| t.pointer("/function/name"))
            .and_then(Value::as_str)
            .map(|name| (name.to_string(), json!({"simulated": true}).to_string()))
    } else {
        None
    };
    let (output_tokens, finish_reason) = match &tool_call {
        Some((_, args)) => ((args.len() as u64).div_ceil(4) + 8, "tool_calls"),
        None => (n, finish_reason),
    };
    Plan {
        words,
        finish_reason,
        tool_call,
        usage: Usage { input_tokens: estimate_prompt_tokens(&body), output_tokens, cached_tokens: 0 },
        error_status,
        break_stream: last_user.contains("[sim:break]"),
        refused,
    }
}

/// At most 40 characters of a marker's value, for a message.
fn truncated(text: &str) -> String {
    text.chars().take(40).collect()
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn req(text: &str, max_tokens: Option<u64>) -> ChatRequest {
        let mut body = json!({
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": text}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        });
        if let Some(n) = max_tokens {
            body["max_tokens"] = json!(n);
        }
        crate::request::parse_chat(bytes::Bytes::from(body.to_string())).unwrap()
    }

    fn sim() -> Simulated {
        Simulated::new(&ProviderSettings::simulated("simulated"))
    }

    fn target() -> RouteTarget {
        RouteTarget { upstream_model: "gpt-4.1".into() }
    }

    #[test]
    fn deterministic_and_counted() {
        let a = plan(&req("hello there", None));
        let b = plan(&req("hello there", None));
        assert_eq!(a, b);
        assert_eq!(a.usage.output_tokens, a.words.len() as u64);
        assert!(a.usage.input_tokens > 4);
        let c = plan(&req("hello [sim:tokens=7]", None));
        assert_eq!(c.usage.output_tokens, 7);
        let d = plan(&req("hello [sim:tokens=70]", Some(5)));
        assert_eq!((d.usage.output_tokens, d.finish_reason), (5, "length"));
    }

    #[tokio::test]
    async fn complete_is_labelled_and_has_usage() {
        let c = sim().complete(&req("hi [sim:tokens=3]", None), &target()).await.unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["system_fingerprint"], FINGERPRINT);
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(c.usage.unwrap().output_tokens, 3);
    }

    #[tokio::test]
    async fn errors_and_tools() {
        let e = sim().complete(&req("x [sim:error=503]", None), &target()).await.unwrap_err();
        assert_eq!(e.status, Some(503));
        let c = sim().complete(&req("weather? [sim:tool]", None), &target()).await.unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn stream_ends_with_usage_or_error() {
        let items: Vec<_> = sim().stream(&req("hi [sim:tokens=4]", None), &target()).await.unwrap().collect().await;
        assert_eq!(items.len(), 1 + 4 + 1 + 1);
        assert!(matches!(items.last(), Some(Ok(StreamEvent::Usage { usage, .. })) if usage.output_tokens == 4));
        let items: Vec<_> = sim().stream(&req("hi [sim:break]", None), &target()).await.unwrap().collect().await;
        assert!(matches!(items.last(), Some(Err(_))));
    }

    #[tokio::test]
    async fn markers_are_bounded() {
        let at_cap = plan(&req(&format!("x [sim:tokens={MAX_TOKENS}]"), None));
        assert_eq!((at_cap.usage.output_tokens, at_cap.refused.as_deref()), (MAX_TOKENS, None));
        for text in [
            format!("x [sim:tokens={}]", MAX_TOKENS + 1),
            "x [sim:tokens=18446744073709551615]".into(),
            "x [sim:tokens=99999999999999999999999]".into(),
            "x [sim:tokens=-1]".into(),
            "x [sim:tokens=lots]".into(),
            "x [sim:error=200]".into(),
            "x [sim:error=70000]".into(),
            "x [sim:error=é]".into(),
        ] {
            let p = plan(&req(&text, None));
            assert!(p.refused.is_some(), "{text}");
            assert!(p.words.is_empty(), "{text}: nothing is generated for a refused request");
            for e in [
                sim().complete(&req(&text, None), &target()).await.unwrap_err(),
                sim().stream(&req(&text, None), &target()).await.err().unwrap(),
            ] {
                assert_eq!(e.status, Some(400), "{text}");
                assert!(e.message.contains("must be"), "{}", e.message);
            }
        }
        let e = sim().complete(&req("x [sim:error=599]", None), &target()).await.unwrap_err();
        assert_eq!(e.status, Some(599));
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_unit_vectors_billed_on_input() {
        let req = |body: &str| crate::request::parse_embeddings(bytes::Bytes::from(body.to_string())).unwrap();
        let c = sim()
            .embed(&req(r#"{"model":"e","input":["hello world","bye"],"dimensions":16}"#), &target())
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        let first: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(first, unit_vector("hello world", 16));
        let norm: f32 = first.iter().map(|f| f * f).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        let usage = c.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (3, 0));
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let b64 = sim()
            .embed(&req(r#"{"model":"e","input":"hello world","dimensions":16,"encoding_format":"base64"}"#), &target())
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&b64.body).unwrap();
        assert_eq!(v["data"][0]["embedding"], embeddings::base64_f32(&first));
        let failed = sim().embed(&req(r#"{"model":"e","input":"x [sim:error=503]"}"#), &target()).await.unwrap_err();
        assert_eq!(failed.status, Some(503));
        let too_wide =
            sim().embed(&req(r#"{"model":"e","input":"x","dimensions":4000}"#), &target()).await.unwrap_err();
        assert_eq!(too_wide.status, Some(400));
    }
}
