//! Google Gemini (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`). The client's OpenAI Chat Completions body
//! is translated into a GenerateContentRequest; answers (and each streamed
//! GenerateContentResponse) are translated back into OpenAI objects.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::http::{self, Step, StreamTranslate, Timeouts, MAX_RESPONSE_BYTES};
use super::sse::SseEvent;
use super::types::{
    chunk_bytes, new_completion_id, unix_now, usage_chunk_bytes, ChatRequest, Completion, EventStream, RouteTarget,
    StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};
use crate::config::{ProviderSettings, Secret};

#[derive(Debug)]
pub struct Gemini {
    name: String,
    base: String,
    api_key: Option<Secret>,
    timeouts: Timeouts,
    http: super::http::HttpClient,
}

/// The URL of `method` (`generateContent`, `streamGenerateContent?alt=sse`)
/// for `model` under a base URL with or without its API version.
pub fn model_url(base_url: &str, model: &str, method: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let versioned = ["/v1beta", "/v1", "/v1alpha"].iter().any(|v| base.ends_with(v));
    let prefix = if versioned { base.to_string() } else { format!("{base}/v1beta") };
    // `models/x` and `tunedModels/x` are full resource names already.
    let resource = if model.contains('/') { model.to_string() } else { format!("models/{model}") };
    format!("{prefix}/{resource}:{method}")
}

impl Gemini {
    pub fn new(settings: &ProviderSettings, http: super::http::HttpClient) -> Self {
        Gemini {
            name: settings.name.clone(),
            base: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            timeouts: Timeouts::of(settings),
            http,
        }
    }

    fn request(&self, url: String, body: Vec<u8>) -> http::Post {
        let post = self.http.post_url(&url, body);
        match &self.api_key {
            Some(key) => post.secret_header("x-goog-api-key", key.expose()),
            None => post,
        }
    }

    pub async fn complete(&self, req: &ChatRequest, target: &RouteTarget) -> Result<Completion, UpstreamError> {
        let body = super::types::translate_body(req, to_gemini).await;
        let url = model_url(&self.base, &target.upstream_model, "generateContent");
        let (response, deadline) = http::send(&self.name, self.request(url, body), self.timeouts).await?;
        let bytes = http::read_body_until(&self.name, response, deadline, MAX_RESPONSE_BYTES).await?;
        let (body, usage) = from_gemini(&self.name, &bytes, &target.upstream_model)?;
        Ok(Completion { body: Bytes::from(body.to_string()), usage })
    }

    pub async fn stream(&self, req: &ChatRequest, target: &RouteTarget) -> Result<EventStream, UpstreamError> {
        let body = super::types::translate_body(req, to_gemini).await;
        let url = model_url(&self.base, &target.upstream_model, "streamGenerateContent?alt=sse");
        let (response, deadline) = http::send(&self.name, self.request(url, body), self.timeouts).await?;
        let events = http::sse_events(&self.name, response, self.timeouts, deadline);
        Ok(http::translate(events, StreamTranslator::new(&self.name, &target.upstream_model)))
    }
}

// ---------------------------------------------------------------------------
// Request translation
// ---------------------------------------------------------------------------

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| matches!(p.get("type").and_then(Value::as_str), Some("text") | None))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A MIME type guessed from a URL's file extension (`image/jpeg` otherwise).
pub fn mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

fn image_part(part: &Value) -> Option<Value> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => v.get("url").and_then(Value::as_str)?,
        None => return None,
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        let mime = if mime.is_empty() { "image/png" } else { mime };
        Some(json!({"inlineData": {"mimeType": mime, "data": data}}))
    } else {
        Some(json!({"fileData": {"mimeType": mime_from_url(url), "fileUri": url}}))
    }
}

fn parts_of(content: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    match content {
        Some(Value::String(s)) if !s.is_empty() => out.push(json!({"text": s})),
        Some(Value::Array(parts)) => {
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("refusal") => {
                        let key = if p.get("text").is_some() { "text" } else { "refusal" };
                        if let Some(t) = p.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(json!({"text": t}));
                        }
                    }
                    Some("image_url") => out.extend(image_part(p)),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

fn push_content(contents: &mut Vec<(String, Vec<Value>)>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some((r, existing)) if r == role => existing.extend(parts),
        _ => contents.push((role.to_string(), parts)),
    }
}

/// Gemini rejects an OBJECT schema with no properties; such a tool takes no parameters.
fn declared_parameters(p: Option<&Value>) -> Option<Value> {
    let p = p?;
    let empty_object = p.get("type").and_then(Value::as_str) == Some("object")
        && p.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
    (p.is_object() && !empty_object).then(|| p.clone())
}

/// Translates the client's OpenAI body into a GenerateContentRequest.
pub fn to_gemini(client: &Map<String, Value>) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // tool_call_id → function name, from the assistant turns seen so far (the
    // latest wins, so reused ids resolve to the nearest preceding call).
    let mut call_names: HashMap<String, String> = HashMap::new();
    let empty = Vec::new();
    for m in client.get("messages").and_then(Value::as_array).unwrap_or(&empty) {
        match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                let t = text_of(m.get("content"));
                if !t.is_empty() {
                    system.push(t);
                }
            }
            "user" => push_content(&mut contents, "user", parts_of(m.get("content"))),
            "assistant" => {
                let mut parts = parts_of(m.get("content"));
                for c in m.get("tool_calls").and_then(Value::as_array).unwrap_or(&empty) {
                    let f = c.get("function");
                    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
                    if let Some(id) = c.get("id").and_then(Value::as_str) {
                        call_names.insert(id.to_string(), name.to_string());
                    }
                    let args = match f.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => json!({}),
                        },
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => json!({}),
                    };
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_content(&mut contents, "model", parts);
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = call_names
                    .get(id)
                    .cloned()
                    .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| id.to_string());
                let text = text_of(m.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                push_content(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            _ => {}
        }
    }

    let mut out = Map::new();
    let contents: Vec<Value> =
        contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": [{"text": system.join("\n\n")}]}));
    }

    let declarations: Vec<Value> = client
        .get("tools")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
        .filter_map(|t| {
            let f = t.get("function")?;
            let mut d = json!({"name": f.get("name").and_then(Value::as_str)?});
            if let Some(desc) = f.get("description").and_then(Value::as_str) {
                d["description"] = Value::String(desc.to_string());
            }
            if let Some(p) = declared_parameters(f.get("parameters")) {
                d["parameters"] = p;
            }
            Some(d)
        })
        .collect();
    let has_tools = !declarations.is_empty();
    if has_tools {
        out.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        let config = match client.get("tool_choice") {
            Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|name| json!({"mode": "ANY", "allowedFunctionNames": [name]})),
            _ => None,
        };
        if let Some(c) = config {
            out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }

    let mut gen = Map::new();
    if let Some(t) = client.get("temperature").and_then(Value::as_f64) {
        gen.insert("temperature".into(), json!(t));
    }
    if let Some(p) = client.get("top_p").and_then(Value::as_f64) {
        gen.insert("topP".into(), json!(p));
    }
    if let Some(n) = client
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| client.get("max_tokens").and_then(Value::as_u64))
    {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    let stops: Vec<Value> = match client.get("stop") {
        Some(Value::String(s)) if !s.is_empty() => vec![Value::String(s.clone())],
        Some(Value::Array(a)) => a.iter().filter(|s| s.as_str().is_some_and(|s| !s.is_empty())).cloned().collect(),
        _ => Vec::new(),
    };
    if !stops.is_empty() {
        gen.insert("stopSequences".into(), Value::Array(stops));
    }
    if let Some(n) = client.get("n").and_then(Value::as_u64) {
        gen.insert("candidateCount".into(), json!(n));
    }
    for (from, to) in [("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")] {
        if let Some(v) = client.get(from).and_then(Value::as_f64) {
            gen.insert(to.into(), json!(v));
        }
    }
    if let Some(seed) = client.get("seed").and_then(Value::as_i64) {
        gen.insert("seed".into(), json!(seed));
    }
    match client.get("response_format").and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = client.get("response_format").and_then(|f| f.pointer("/json_schema/schema")) {
                gen.insert("responseSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if !gen.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gen));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Response translation
// ---------------------------------------------------------------------------

const FILTER_REASONS: [&str; 6] = ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"];

/// OpenAI `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    if FILTER_REASONS.contains(&reason) {
        "content_filter"
    } else if has_calls {
        "tool_calls"
    } else if reason == "MAX_TOKENS" {
        "length"
    } else {
        "stop"
    }
}

fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("promptTokenCount"),
        // Counts come from the upstream: saturate rather than overflow.
        output_tokens: n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
        cached_tokens: n("cachedContentTokenCount"),
    }
}

fn blocked_error(provider: &str, reason: &str) -> UpstreamError {
    UpstreamError::new(
        UpstreamErrorKind::ContentBlocked,
        format!("upstream {provider} blocked the prompt (blockReason {reason})"),
    )
}

/// `Err` when the response says the prompt was blocked or carries an error.
fn check_response(provider: &str, v: &Value) -> Result<(), UpstreamError> {
    if let Some(msg) = v.get("error").map(|e| e.get("message").and_then(Value::as_str).unwrap_or("error")) {
        return Err(UpstreamError::new(
            UpstreamErrorKind::Status,
            format!("upstream {provider} reported an error: {msg}"),
        ));
    }
    let no_candidates = v.get("candidates").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if let Some(reason) = v.pointer("/promptFeedback/blockReason").and_then(Value::as_str) {
        if no_candidates {
            return Err(blocked_error(provider, reason));
        }
    }
    Ok(())
}

/// The text (thought summaries excluded) and function calls of a candidate.
fn candidate_parts(c: &Value) -> (String, Vec<(String, String)>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in c.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let args = fc.get("args").filter(|a| !a.is_null()).map(Value::to_string).unwrap_or_else(|| "{}".into());
            calls.push((name, args));
        }
    }
    (text, calls)
}

/// Translates a GenerateContentResponse into an OpenAI `chat.completion`
/// (one choice per candidate).
pub fn from_gemini(provider: &str, body: &[u8], upstream_model: &str) -> Result<(Value, Option<Usage>), UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON")))?;
    check_response(provider, &v)?;
    let Some(candidates) = v.get("candidates").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return Err(UpstreamError::protocol(format!("upstream {provider} answer has no candidates")));
    };
    let mut next_call = 0u64;
    let mut choices = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let (text, calls) = candidate_parts(c);
        let tool_calls: Vec<Value> = calls
            .into_iter()
            .map(|(name, args)| {
                let id = format!("call_{next_call}");
                next_call += 1;
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            })
            .collect();
        let reason = c.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
        let finish = finish_reason(reason, !tool_calls.is_empty());
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && (!tool_calls.is_empty() || finish == "content_filter") { Value::Null } else { Value::String(text) },
        });
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish}));
    }
    let usage = v.get("usageMetadata").map(usage_of);
    let mut out = json!({
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": upstream_model,
        "choices": choices,
    });
    if let Some(u) = &usage {
        out["usage"] = u.to_openai();
    }
    Ok((out, usage))
}

// ---------------------------------------------------------------------------
// Stream translation
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct CandidateState {
    role_sent: bool,
    calls: u64,
    finished: bool,
}

/// Turns streamed GenerateContentResponses into OpenAI chunks. Gemini has no
/// terminal event: the stream is complete when it closes after every
/// candidate reported a `finishReason`.
#[derive(Debug)]
pub struct StreamTranslator {
    provider: String,
    id: String,
    created: i64,
    model: String,
    candidates: BTreeMap<u64, CandidateState>,
    next_call: u64,
    usage: Option<Usage>,
}

impl StreamTranslator {
    pub fn new(provider: &str, upstream_model: &str) -> Self {
        StreamTranslator {
            provider: provider.to_string(),
            id: new_completion_id(),
            created: unix_now(),
            model: upstream_model.to_string(),
            candidates: BTreeMap::new(),
            next_call: 0,
            usage: None,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Result<StreamEvent, UpstreamError> {
        let choices = json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        Ok(StreamEvent::Chunk(chunk_bytes(&self.id, self.created, &self.model, choices)))
    }

    fn usage_event(&self) -> Option<Result<StreamEvent, UpstreamError>> {
        let usage = self.usage?;
        let chunk = usage_chunk_bytes(&self.id, self.created, &self.model, &usage);
        Some(Ok(StreamEvent::Usage { usage, chunk }))
    }
}

impl StreamTranslate for StreamTranslator {
    fn event(&mut self, event: &SseEvent) -> Step {
        let provider = self.provider.clone();
        let data = event.data.trim();
        if data.is_empty() {
            return Step::default();
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                return Step::fail(UpstreamError::protocol(format!(
                    "upstream {provider} sent a malformed stream event"
                )))
            }
        };
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage_of(u));
        }
        if let Err(e) = check_response(&provider, &v) {
            let e = if e.kind == UpstreamErrorKind::Status {
                UpstreamError::new(e.kind, e.message.replace("reported an error", "reported an error mid-stream"))
            } else {
                e
            };
            return Step::fail(e);
        }
        let mut out = Vec::new();
        let candidates = v.get("candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (i, c) in candidates.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let state = self.candidates.entry(index).or_default();
            let send_role = !state.role_sent;
            state.role_sent = true;
            if send_role {
                out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
            }
            let (text, calls) = candidate_parts(c);
            if !text.is_empty() {
                out.push(self.chunk(index, json!({"content": text}), None));
            }
            for (name, args) in calls {
                let (tool_index, id) = {
                    let state = self.candidates.entry(index).or_default();
                    let t = state.calls;
                    state.calls += 1;
                    (t, format!("call_{}", self.next_call))
                };
                self.next_call += 1;
                out.push(self.chunk(
                    index,
                    json!({"tool_calls": [{"index": tool_index, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": args}}]}),
                    None,
                ));
            }
            if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
                let state = self.candidates.entry(index).or_default();
                if state.finished {
                    continue;
                }
                state.finished = true;
                let has_calls = state.calls > 0;
                if FILTER_REASONS.contains(&reason) {
                    // The answer was cut by a safety filter mid-stream: report the
                    // tokens spent, then fail the stream.
                    out.extend(self.usage_event());
                    out.push(Err(UpstreamError::new(
                        UpstreamErrorKind::ContentBlocked,
                        format!("upstream {provider} stopped the answer (finishReason {reason})"),
                    )));
                    return Step::done(out);
                }
                out.push(self.chunk(index, json!({}), Some(finish_reason(reason, has_calls))));
            }
        }
        Step::emit(out)
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, UpstreamError>> {
        let complete = !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished);
        if complete {
            self.usage_event().into_iter().collect()
        } else {
            vec![Err(UpstreamError::new(
                UpstreamErrorKind::Connect,
                format!("upstream {} stream ended before a finishReason", self.provider),
            ))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn huge_upstream_counts_saturate() {
        let answer = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}}],
            "usageMetadata": {"candidatesTokenCount": u64::MAX, "thoughtsTokenCount": 5}});
        let (v, usage) = from_gemini("g", answer.to_string().as_bytes(), "m").unwrap();
        assert_eq!(usage.map(|u| u.output_tokens), Some(u64::MAX));
        assert_eq!(v["usage"]["total_tokens"], u64::MAX);
    }

    #[test]
    fn urls() {
        let g = "https://generativelanguage.googleapis.com";
        assert_eq!(
            model_url(g, "gemini-2.5-flash", "generateContent"),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            model_url("http://h/v1", "m", "streamGenerateContent?alt=sse"),
            "http://h/v1/models/m:streamGenerateContent?alt=sse"
        );
        assert_eq!(model_url("http://h/v1alpha/", "m", "x"), "http://h/v1alpha/models/m:x");
        assert_eq!(model_url("http://h/v1beta", "tunedModels/t", "x"), "http://h/v1beta/tunedModels/t:x");
    }

    #[test]
    fn request_roles_system_and_config() {
        let b = body(json!({
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Use French."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Bonjour"},
                {"role": "user", "content": "Again"},
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 7, "stop": "END", "n": 2, "seed": 3,
            "response_format": {"type": "json_object"}, "logit_bias": {"1": 2}, "user": "u",
        }));
        let out = to_gemini(&b);
        assert_eq!(out["systemInstruction"], json!({"parts": [{"text": "Be brief.\n\nUse French."}]}));
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
                {"role": "model", "parts": [{"text": "Bonjour"}]},
                {"role": "user", "parts": [{"text": "Again"}]},
            ])
        );
        let g = &out["generationConfig"];
        assert_eq!(g["temperature"], 0.5);
        assert_eq!(g["topP"], 0.9);
        assert_eq!(g["maxOutputTokens"], 7);
        assert_eq!(g["stopSequences"], json!(["END"]));
        assert_eq!(g["candidateCount"], 2);
        assert_eq!(g["seed"], 3);
        assert_eq!(g["responseMimeType"], "application/json");
        for k in ["logit_bias", "user", "model", "messages"] {
            assert!(out.get(k).is_none(), "{k} leaked");
        }

        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9,
            "max_tokens": 1, "stop": ["a", "b"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}));
        let g = to_gemini(&b)["generationConfig"].clone();
        assert_eq!(g["maxOutputTokens"], 9);
        assert_eq!(g["stopSequences"], json!(["a", "b"]));
        assert_eq!(g["responseSchema"]["properties"]["a"]["type"], "string");
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        assert!(to_gemini(&b).get("generationConfig").is_none());
    }

    #[test]
    fn request_images() {
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What?"},
            {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a/cat.PNG?size=2"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/photo"}},
        ]}]}));
        let parts = to_gemini(&b)["contents"][0]["parts"].clone();
        assert_eq!(parts[1], json!({"inlineData": {"mimeType": "image/webp", "data": "UklGR"}}));
        assert_eq!(
            parts[2],
            json!({"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?size=2"}})
        );
        assert_eq!(parts[3], json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/photo"}}));
    }

    #[test]
    fn request_tools_calls_and_results() {
        let b = body(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21}"},
                {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
                {"role": "assistant", "content": "Noted.", "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "news", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Get weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
        }));
        let out = to_gemini(&b);
        let contents = out["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 5);
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(contents[1]["parts"][0], json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}}));
        assert_eq!(contents[1]["parts"][1], json!({"functionCall": {"name": "time", "args": {}}}));
        assert_eq!(contents[2]["role"], "user");
        assert_eq!(contents[2]["parts"][0], json!({"functionResponse": {"name": "weather", "response": {"temp": 21}}}));
        assert_eq!(
            contents[2]["parts"][1],
            json!({"functionResponse": {"name": "time", "response": {"result": "noon"}}})
        );
        assert_eq!(contents[3]["parts"][0], json!({"text": "Noted."}));
        // A reused id resolves to the nearest preceding call.
        assert_eq!(
            contents[4]["parts"][0],
            json!({"functionResponse": {"name": "news", "response": {"result": "[1, 2]"}}})
        );
        let decls = &out["tools"][0]["functionDeclarations"];
        assert_eq!(decls[0]["name"], "weather");
        assert_eq!(decls[0]["description"], "Get weather");
        assert_eq!(decls[0]["parameters"]["required"], json!(["city"]));
        assert_eq!(decls[1], json!({"name": "time"}));
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
        );

        let mode = |c: &str| {
            let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": c}));
            to_gemini(&b)["toolConfig"]["functionCallingConfig"]["mode"].clone()
        };
        assert_eq!(mode("auto"), "AUTO");
        assert_eq!(mode("none"), "NONE");
        assert_eq!(mode("required"), "ANY");
    }

    #[test]
    fn response_text_tools_usage() {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Hello "}, {"text": "world"},
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 5, "thoughtsTokenCount": 3,
                              "cachedContentTokenCount": 20, "totalTokenCount": 58},
            "modelVersion": "gemini-x",
        });
        let (v, usage) = from_gemini("g", answer.to_string().as_bytes(), "gemini-x").unwrap();
        assert_eq!(usage, Some(Usage { input_tokens: 50, output_tokens: 8, cached_tokens: 20 }));
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gemini-x");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["completion_tokens"], 8);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 20);

        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "time"}},
        ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}});
        let (v, _) = from_gemini("g", answer.to_string().as_bytes(), "m").unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert!(m["content"].is_null());
        assert_eq!(m["tool_calls"][0]["id"], "call_0");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "weather");
        let args: Value = serde_json::from_str(m["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(m["tool_calls"][1]["id"], "call_1");
        assert_eq!(m["tool_calls"][1]["function"]["arguments"], "{}");

        for (reason, finish) in [
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("SPII", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("OTHER", "stop"),
        ] {
            let a = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
            let (v, u) = from_gemini("g", a.to_string().as_bytes(), "m").unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{reason}");
            assert!(u.is_none() && v.get("usage").is_none());
        }
    }

    #[test]
    fn response_prompt_blocked() {
        let a = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                       "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}});
        let e = from_gemini("g", a.to_string().as_bytes(), "m").unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::ContentBlocked);
        assert!(e.message.contains("SAFETY") && e.message.contains("blocked"), "{}", e.message);
        assert_eq!(from_gemini("g", b"{}", "m").unwrap_err().kind, UpstreamErrorKind::Protocol);
        assert_eq!(from_gemini("g", b"[", "m").unwrap_err().kind, UpstreamErrorKind::Protocol);
    }

    fn ev(v: Value) -> SseEvent {
        SseEvent { event: String::new(), data: v.to_string() }
    }

    fn text_chunk(text: &str, finish: Option<&str>, candidates_tokens: u64) -> Value {
        let mut c = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if let Some(f) = finish {
            c["finishReason"] = json!(f);
        }
        json!({"candidates": [c], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": candidates_tokens,
               "cachedContentTokenCount": 4, "thoughtsTokenCount": 2}})
    }

    fn run(t: &mut StreamTranslator, events: &[Value]) -> (Vec<Value>, Vec<Usage>, Option<UpstreamError>, bool) {
        let mut chunks = Vec::new();
        let mut usages = Vec::new();
        let mut err = None;
        let mut items = Vec::new();
        let mut done = false;
        for e in events {
            let step = t.event(&ev(e.clone()));
            items.extend(step.events);
            if step.done {
                done = true;
                break;
            }
        }
        if !done {
            items.extend(t.end());
        }
        for i in items {
            match i {
                Ok(StreamEvent::Chunk(b)) => chunks.push(serde_json::from_slice(&b).unwrap()),
                Ok(StreamEvent::Usage { usage, .. }) => usages.push(usage),
                Err(e) => err = Some(e),
            }
        }
        (chunks, usages, err, done)
    }

    #[test]
    fn stream_text_and_usage() {
        let mut t = StreamTranslator::new("g", "gemini-x");
        let (chunks, usages, err, _) = run(
            &mut t,
            &[text_chunk("Hello", None, 1), text_chunk(" there", None, 2), text_chunk(" friend.", Some("STOP"), 3)],
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(usages, vec![Usage { input_tokens: 9, output_tokens: 5, cached_tokens: 4 }]);
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Hello there friend.");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
        assert!(chunks.iter().all(|c| c["model"] == "gemini-x" && c["object"] == "chat.completion.chunk"));
    }

    #[test]
    fn stream_tool_call() {
        let mut t = StreamTranslator::new("g", "m");
        let e = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 10}});
        let (chunks, usages, err, _) = run(&mut t, &[e]);
        assert!(err.is_none());
        assert_eq!(usages.len(), 1);
        let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["id"], "call_0");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn stream_cut_blocked_and_errors() {
        // Closed before any finishReason.
        let mut t = StreamTranslator::new("g", "m");
        let (chunks, usages, err, _) = run(&mut t, &[text_chunk("Hel", None, 1)]);
        assert_eq!(chunks.len(), 2);
        assert!(usages.is_empty());
        assert!(err.unwrap().message.contains("finishReason"));
        let mut t = StreamTranslator::new("g", "m");
        assert!(matches!(&t.end()[..], [Err(_)]));

        // Prompt blocked.
        let mut t = StreamTranslator::new("g", "m");
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}});
        let (chunks, _, err, done) = run(&mut t, &[blocked]);
        assert!(chunks.is_empty() && done);
        assert_eq!(err.unwrap().kind, UpstreamErrorKind::ContentBlocked);

        // Answer stopped by safety mid-stream: usage, then the error.
        let mut t = StreamTranslator::new("g", "m");
        let (chunks, usages, err, done) =
            run(&mut t, &[text_chunk("Some", None, 1), text_chunk("", Some("SAFETY"), 1)]);
        assert!(done);
        assert_eq!(chunks.len(), 2);
        assert_eq!(usages.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.kind, UpstreamErrorKind::ContentBlocked);
        assert!(err.message.contains("SAFETY"));

        // Malformed data and error objects.
        let mut t = StreamTranslator::new("g", "m");
        let step = t.event(&SseEvent { event: String::new(), data: "{\"candidates\": [".into() });
        assert!(step.done && matches!(&step.events[..], [Err(e)] if e.kind == UpstreamErrorKind::Protocol));
        let mut t = StreamTranslator::new("g", "m");
        let step = t.event(&ev(json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})));
        assert!(matches!(&step.events[..], [Err(e)] if e.message.contains("overloaded")));
    }
}
