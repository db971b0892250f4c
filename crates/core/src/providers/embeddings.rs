//! Embeddings as the adapters see them: the client's (validated, see
//! `request::parse_embeddings`) OpenAI Embeddings body read into
//! [`EmbeddingsRequest`] for the adapters that translate it, and the OpenAI
//! `list` answer built from vectors for those that do not get one from
//! their upstream. OpenAI-kind upstreams get the client's body as it came
//! (only `model` rewritten) and answer in this format themselves.

use bytes::Bytes;
use serde_json::{json, Value};

use super::types::{ChatRequest, UpstreamError, Usage};
use crate::jsonscan;

/// The inputs of an Embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    Texts(Vec<String>),
    /// Token arrays (one array of integers is one input).
    Tokens(Vec<Vec<u64>>),
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Tokens(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a translating adapter reads of an Embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsRequest {
    pub inputs: Inputs,
    pub dimensions: Option<u64>,
    /// `encoding_format: "base64"` (little-endian `f32`s, standard base64).
    pub base64: bool,
}

impl EmbeddingsRequest {
    /// The members of a validated Embeddings body.
    pub fn of(req: &ChatRequest) -> EmbeddingsRequest {
        let m = req.members(&["input", "dimensions", "encoding_format"]);
        let inputs = match m.get("input") {
            Some(Value::String(s)) => Inputs::Texts(vec![s.clone()]),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                Inputs::Texts(a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            }
            Some(Value::Array(a)) if a.iter().all(Value::is_u64) => {
                Inputs::Tokens(vec![a.iter().filter_map(Value::as_u64).collect()])
            }
            Some(Value::Array(a)) => Inputs::Tokens(
                a.iter()
                    .map(|inner| {
                        inner.as_array().map(|i| i.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
                    })
                    .collect(),
            ),
            _ => Inputs::Texts(Vec::new()),
        };
        EmbeddingsRequest {
            inputs,
            dimensions: m.get("dimensions").and_then(Value::as_u64),
            base64: m.get("encoding_format").and_then(Value::as_str) == Some("base64"),
        }
    }
}

/// Standard base64 (with padding) of the vector's little-endian `f32`s, as
/// OpenAI answers `encoding_format: "base64"`.
pub fn base64_f32(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The OpenAI Embeddings answer (`object: "list"`) of `vectors`, in input
/// order, with usage of `input_tokens`.
pub fn openai_answer(vectors: &[Vec<f32>], model: &str, input_tokens: u64, base64: bool) -> Bytes {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 { json!(base64_f32(v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    });
    Bytes::from(body.to_string())
}

/// Reads `usage.prompt_tokens` out of an OpenAI Embeddings answer (the body
/// itself passes through); an answer without `data` is a protocol error.
pub fn parse_usage(provider: &str, body: &[u8]) -> Result<Option<Usage>, UpstreamError> {
    let invalid = || UpstreamError::protocol(format!("upstream {provider} answered with invalid JSON"));
    let mut data = false;
    let mut usage = None;
    jsonscan::members(body, |m| match m.key {
        b"data" => data = !jsonscan::is_null(body, &m.value),
        b"usage" if !jsonscan::is_null(body, &m.value) => usage = Some(m.value),
        _ => {}
    })
    .map_err(|_| invalid())?;
    if !data {
        return Err(UpstreamError::protocol(format!("upstream {provider} embeddings answer has no data")));
    }
    let Some(range) = usage else { return Ok(None) };
    let u: Value = serde_json::from_slice(&body[range]).map_err(|_| invalid())?;
    let input = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    Ok(Some(Usage { input_tokens: input, output_tokens: 0, cached_tokens: 0 }))
}

/// The 400 of an upstream without an embeddings API.
pub fn unsupported(provider: &str) -> UpstreamError {
    let body = json!({"error": {"message": "this upstream has no embeddings API"}});
    UpstreamError::from_status(provider, 400, body.to_string().as_bytes(), None)
}

/// The 400 of an upstream that cannot embed token arrays.
pub fn tokens_unsupported(provider: &str) -> UpstreamError {
    let body =
        json!({"error": {"message": "this upstream embeds text only; send `input` as strings, not token arrays"}});
    UpstreamError::from_status(provider, 400, body.to_string().as_bytes(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> ChatRequest {
        crate::request::parse_embeddings(Bytes::from(body.to_string())).unwrap()
    }

    #[test]
    fn reads_inputs_dimensions_and_encoding() {
        let r =
            EmbeddingsRequest::of(&req(r#"{"model":"e","input":["a","b"],"dimensions":8,"encoding_format":"base64"}"#));
        assert_eq!(
            r,
            EmbeddingsRequest {
                inputs: Inputs::Texts(vec!["a".into(), "b".into()]),
                dimensions: Some(8),
                base64: true
            }
        );
        let one = EmbeddingsRequest::of(&req(r#"{"model":"e","input":"a"}"#));
        assert_eq!((one.inputs, one.dimensions, one.base64), (Inputs::Texts(vec!["a".into()]), None, false));
        assert_eq!(
            EmbeddingsRequest::of(&req(r#"{"model":"e","input":[5,6]}"#)).inputs,
            Inputs::Tokens(vec![vec![5, 6]])
        );
        assert_eq!(
            EmbeddingsRequest::of(&req(r#"{"model":"e","input":[[1,2],[3]]}"#)).inputs,
            Inputs::Tokens(vec![vec![1, 2], vec![3]])
        );
    }

    /// OpenAI's documented example: `1.0f32` is `00 00 80 3F`.
    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]), "AACAPwAAgD8AAIA/");
    }

    #[test]
    fn answers_and_usage_round_trip() {
        let body = openai_answer(&[vec![0.5, -0.5], vec![1.0, 0.0]], "text-embedding-3-small", 7, false);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][0]["embedding"], json!([0.5, -0.5]));
        assert_eq!(
            parse_usage("p", &body).unwrap(),
            Some(Usage { input_tokens: 7, output_tokens: 0, cached_tokens: 0 })
        );
        assert!(parse_usage("p", br#"{"object":"list"}"#).is_err());
        assert!(parse_usage("p", b"nope").is_err());
    }
}
