//! Prompt-token estimates before the call, with a real BPE tokenizer:
//! OpenAI's o200k_base (gpt-4o/4.1 family). No public tokenizer exists for
//! Claude or Gemini models; o200k_base is used for them too and the estimate
//! is settled to the provider's reported usage after the call, so the error
//! only affects how much is reserved for a moment, never what is billed.

use serde_json::{Map, Value};

/// Framing tokens OpenAI's chat format adds per message, and per reply.
const PER_MESSAGE: u64 = 3;
const PER_REPLY: u64 = 3;

fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let tokenize = |t: &str| tiktoken_rs::o200k_base_singleton().encode_ordinary(t).len() as u64;
    SEEN.try_with(|seen| seen.count(text, tokenize)).unwrap_or_else(|_| tokenize(text))
}

/// Texts counted recently on this thread, by a hash of the text and its
/// length: system prompts and tool definitions repeat from request to
/// request, and tokenizing them is the costly part of an estimate (a
/// 2,000-token prompt takes about a million instructions, a lookup a few
/// hundred). Bounded: cleared when full. A hash collision could only change
/// an estimate, never what is billed.
struct Seen {
    hasher: foldhash::fast::RandomState,
    counts: std::cell::RefCell<crate::fastmap::FastMap<(u64, usize), u64>>,
}

/// Entries kept per thread before the cache starts over.
const SEEN_MAX: usize = 4096;

thread_local! {
    static SEEN: Seen = Seen {
        hasher: foldhash::fast::RandomState::default(),
        counts: std::cell::RefCell::new(crate::fastmap::FastMap::default()),
    };
}

impl Seen {
    /// The remembered count of `text`, or `tokenize(text)` remembered.
    fn count(&self, text: &str, tokenize: impl FnOnce(&str) -> u64) -> u64 {
        use std::hash::BuildHasher;
        let key = (self.hasher.hash_one(text), text.len());
        if let Some(n) = self.counts.borrow().get(&key) {
            return *n;
        }
        let n = tokenize(text);
        let mut counts = self.counts.borrow_mut();
        if counts.len() >= SEEN_MAX {
            counts.clear();
        }
        counts.insert(key, n);
        n
    }
}

fn content_tokens(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(s)) => count(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => count(p.get("text").and_then(Value::as_str).unwrap_or("")),
                // Images: a fixed allowance (a 512×512 tile costs 170 + 85 on OpenAI).
                Some("image_url") | Some("image") => 255,
                _ => count(&p.to_string()),
            })
            .sum(),
        _ => 0,
    }
}

/// Loads the tokenizer tables (about a second in debug builds) so the first
/// request does not pay for it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| count("warm up")).await;
}

/// Estimated prompt tokens of a Chat Completions body.
pub fn estimate_prompt_tokens(body: &Map<String, Value>) -> u64 {
    let mut total = PER_REPLY;
    if let Some(Value::Array(msgs)) = body.get("messages") {
        for m in msgs {
            total += PER_MESSAGE + content_tokens(m.get("content"));
            if let Some(name) = m.get("name").and_then(Value::as_str) {
                total += count(name) + 1;
            }
            if let Some(calls) = m.get("tool_calls") {
                total += count(&calls.to_string());
            }
        }
    }
    if let Some(tools) = body.get("tools") {
        total += count(&tools.to_string());
    }
    total
}

/// The prompt estimate with a safety margin for tokenizers other than
/// o200k_base (Claude, Gemini count up to ~20 % more on some text), used for
/// worst-case reservations.
pub fn reserve_prompt_tokens(estimate: u64) -> u64 {
    estimate + estimate / 4 + 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn counts_like_openai() {
        // "Hello, world!" is 4 tokens in o200k_base; + 3 per message + 3 for the reply.
        let b = body(json!({"messages": [{"role": "user", "content": "Hello, world!"}]}));
        assert_eq!(estimate_prompt_tokens(&b), 4 + 3 + 3);
        let long = "word ".repeat(1000);
        let b = body(json!({"messages": [{"role": "user", "content": long}]}));
        let n = estimate_prompt_tokens(&b);
        assert!((1000..=1010).contains(&n), "{n}");
        let b = body(
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}),
        );
        assert_eq!(estimate_prompt_tokens(&b), 1 + 255 + 3 + 3);
        assert!(reserve_prompt_tokens(100) > 120);
    }

    #[test]
    fn remembered_counts_equal_fresh_ones_and_the_memory_is_bounded() {
        let fresh = |t: &str| tiktoken_rs::o200k_base_singleton().encode_ordinary(t).len() as u64;
        let prompt = "You are a careful assistant. Answer in one sentence. ".repeat(40);
        assert_eq!(count(&prompt), fresh(&prompt));
        assert_eq!(count(&prompt), fresh(&prompt), "second count (remembered)");
        // Same length, other text: not confused with the remembered one.
        let other = prompt.replacen("careful", "CAREFUL", 1);
        assert_eq!(count(&other), fresh(&other));
        for i in 0..(SEEN_MAX + 10) {
            let t = format!("text number {i}");
            assert_eq!(count(&t), fresh(&t));
        }
        assert!(SEEN.with(|s| s.counts.borrow().len()) <= SEEN_MAX);
    }
}
