//! Stream translation: streamed GenerateContentResponses as OpenAI
//! `chat.completion.chunk` objects (Gemini has no terminal event).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{candidate_parts, check_response, finish_reason, usage_of, FILTER_REASONS};
use crate::providers::http::{Step, StreamTranslate};
use crate::providers::sse::SseEvent;
use crate::providers::types::{
    chunk_bytes, new_completion_id, unix_now, usage_chunk_bytes, StreamEvent, UpstreamError, UpstreamErrorKind, Usage,
};

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
