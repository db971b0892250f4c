//! Comparing the two sides of a shadowed request: exact text match, a
//! normalized-text similarity, and whether the same tool calls were chosen.

use std::collections::HashSet;

use serde_json::Value;

/// What one side answered, reduced to what the comparison needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub text: String,
    /// (function name, parsed arguments).
    pub tool_calls: Vec<(String, Value)>,
}

impl Output {
    /// From an OpenAI `chat.completion` body.
    pub fn from_completion(body: &[u8]) -> Output {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if v["object"] == "list" {
            return Output::from_embeddings(&v);
        }
        if v["type"] == "message" {
            return Output::from_message(&v);
        }
        let msg = &v["choices"][0]["message"];
        let text = msg["content"].as_str().unwrap_or("").to_string();
        let tool_calls = msg["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| {
                        let name = c["function"]["name"].as_str().unwrap_or("").to_string();
                        let args = c["function"]["arguments"]
                            .as_str()
                            .and_then(|a| serde_json::from_str(a).ok())
                            .unwrap_or(Value::Null);
                        (name, args)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Output { text, tool_calls }
    }

    /// An Anthropic `message` (a Messages request passed through): its text
    /// blocks and `tool_use` blocks.
    fn from_message(v: &Value) -> Output {
        let blocks = v["content"].as_array().map(Vec::as_slice).unwrap_or_default();
        let text = blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
        let tool_calls = blocks
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .map(|b| (b["name"].as_str().unwrap_or("").to_string(), b["input"].clone()))
            .collect();
        Output { text, tool_calls }
    }

    /// An Embeddings answer, compared by its shape: how many vectors, of
    /// how many dimensions. Two models' vectors live in different spaces,
    /// so their values are not comparable; a route that answers another
    /// shape (a different `dimensions`, a missing input) is what breaks a
    /// client's index.
    fn from_embeddings(v: &Value) -> Output {
        let data = v["data"].as_array().map(Vec::as_slice).unwrap_or_default();
        let dims = |e: &Value| match &e["embedding"] {
            Value::Array(a) => a.len(),
            // base64 of little-endian f32s: 4 bytes per dimension.
            Value::String(s) => s.trim_end_matches('=').len() * 3 / 4 / 4,
            _ => 0,
        };
        let mut shapes: Vec<usize> = data.iter().map(dims).collect();
        shapes.dedup();
        let dims: Vec<String> = shapes.iter().map(usize::to_string).collect();
        Output { text: format!("{} embeddings of {} dimensions", data.len(), dims.join("/")), tool_calls: Vec::new() }
    }

    /// Adds one streamed chunk (content and tool-call deltas).
    pub fn add_chunk(&mut self, chunk: &[u8], args: &mut Vec<(String, String)>) {
        let Ok(v) = serde_json::from_slice::<Value>(chunk) else { return };
        let delta = &v["choices"][0]["delta"];
        if let Some(t) = delta["content"].as_str() {
            if self.text.len() < 256 * 1024 {
                self.text.push_str(t);
            }
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for c in calls {
                let index = c["index"].as_u64().unwrap_or(0) as usize;
                while args.len() <= index {
                    args.push((String::new(), String::new()));
                }
                if let Some(n) = c["function"]["name"].as_str() {
                    args[index].0.push_str(n);
                }
                if let Some(a) = c["function"]["arguments"].as_str() {
                    args[index].1.push_str(a);
                }
            }
        }
    }

    /// Finishes streamed tool calls gathered by `add_chunk`.
    pub fn finish_tools(&mut self, args: Vec<(String, String)>) {
        self.tool_calls = args.into_iter().map(|(n, a)| (n, serde_json::from_str(&a).unwrap_or(Value::Null))).collect();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub exact: bool,
    /// 0.0–1.0: Dice coefficient of word bigrams after normalization.
    pub similarity: f64,
    /// `None` when neither side called a tool.
    pub same_tools: Option<bool>,
}

fn normalize(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

fn bigrams(words: &[String]) -> HashSet<(String, String)> {
    if words.len() == 1 {
        return [(words[0].clone(), String::new())].into_iter().collect();
    }
    words.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect()
}

pub fn similarity(a: &str, b: &str) -> f64 {
    let (wa, wb) = (normalize(a), normalize(b));
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let (ba, bb) = (bigrams(&wa), bigrams(&wb));
    if ba.is_empty() || bb.is_empty() {
        return 0.0;
    }
    let common = ba.intersection(&bb).count();
    (2 * common) as f64 / (ba.len() + bb.len()) as f64
}

pub fn compare(from: &Output, to: &Output) -> Comparison {
    let same_tools = if from.tool_calls.is_empty() && to.tool_calls.is_empty() {
        None
    } else {
        Some(from.tool_calls == to.tool_calls)
    };
    Comparison {
        exact: from.text == to.text && same_tools != Some(false),
        similarity: similarity(&from.text, &to.text),
        same_tools,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_similarity() {
        assert_eq!(similarity("Hello, World!", "hello world"), 1.0);
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("a b c", ""), 0.0);
        let s = similarity("the quick brown fox jumps", "the quick brown dog jumps");
        assert!(s > 0.4 && s < 0.8, "{s}");
    }

    #[test]
    fn messages_answers_compare_like_completions() {
        let message = json!({"type": "message", "content": [{"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}]});
        let completion = json!({"choices": [{"message": {"content": "Hello", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}]});
        let c = compare(
            &Output::from_completion(message.to_string().as_bytes()),
            &Output::from_completion(completion.to_string().as_bytes()),
        );
        assert!(c.exact && c.same_tools == Some(true));
    }

    #[test]
    fn embeddings_compare_by_shape() {
        let floats = json!({"object": "list", "data": [{"embedding": [0.1, 0.2, 0.3, 0.4]}, {"embedding": [0.0, 1.0, 0.0, 0.0]}]});
        let a = Output::from_completion(floats.to_string().as_bytes());
        assert_eq!(a.text, "2 embeddings of 4 dimensions");
        // base64 of four f32s: 16 bytes, 24 characters.
        let b64 = json!({"object": "list", "data": [{"embedding": "AACAPwAAgD8AAIA/AACAPw=="}, {"embedding": "AACAPwAAgD8AAIA/AACAPw=="}]});
        assert!(compare(&a, &Output::from_completion(b64.to_string().as_bytes())).exact);
        let wider = json!({"object": "list", "data": [{"embedding": [0.1, 0.2, 0.3, 0.4, 0.5]}, {"embedding": [1, 0, 0, 0, 0]}]});
        assert!(!compare(&a, &Output::from_completion(wider.to_string().as_bytes())).exact);
    }

    #[test]
    fn tools_and_exactness() {
        let body = json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}]});
        let a = Output::from_completion(body.to_string().as_bytes());
        let mut b = Output::default();
        let mut args = Vec::new();
        b.add_chunk(br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"get_weather","arguments":"{\"city\":"}}]}}]}"#, &mut args);
        b.add_chunk(
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
            &mut args,
        );
        b.finish_tools(args);
        let c = compare(&a, &b);
        assert_eq!(c.same_tools, Some(true));
        assert!(c.exact);
        let other = Output { text: String::new(), tool_calls: vec![("get_time".into(), json!({}))] };
        assert_eq!(compare(&a, &other).same_tools, Some(false));
        assert!(!compare(&a, &other).exact);
    }
}
