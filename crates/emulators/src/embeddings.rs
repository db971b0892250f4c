//! Embeddings, as OpenAI (`POST /v1/embeddings`) and Gemini
//! (`:embedContent`, `:batchEmbedContents`) answer them, written from their
//! public API references. Vectors are deterministic (the same text always
//! gives the same unit vector) so tests can compare them; token counts
//! follow the emulator's word rule (words + 5 per input, or the length of a
//! token array).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::common::{json_response, words, Script};
use crate::shared::{Incoming, Shared};

/// OpenAI's default dimensions (`text-embedding-3-small`).
pub const OPENAI_DIMENSIONS: usize = 1536;
/// Gemini's default dimensions (`gemini-embedding-001`).
pub const GEMINI_DIMENSIONS: usize = 3072;
/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// A deterministic unit vector of `dims` values for `text`.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seeds a xorshift generator: no dependency, stable across runs.
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0100_0000_01b3);
    }
    let mut x = seed | 1;
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

/// Standard base64 of the vector's little-endian `f32`s (OpenAI's
/// `encoding_format: "base64"`).
pub fn base64_f32(v: &[f32]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn openai_error(status: u16, message: &str, param: Option<&str>) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}}),
    )
}

/// One input of an OpenAI request: its text (for the vector) and tokens.
fn openai_inputs(input: Option<&Value>) -> Result<Vec<(String, u64)>, Response> {
    let bad = |m: &str| Err(openai_error(400, m, Some("input")));
    let tokens_of = |a: &[Value]| -> Option<(String, u64)> {
        let ids: Option<Vec<u64>> = a.iter().map(Value::as_u64).collect();
        let ids = ids?;
        Some((ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" "), ids.len() as u64))
    };
    let text = |s: &str| (s.to_string(), words(s) + 5);
    let inputs = match input {
        None | Some(Value::Null) => return bad("'input' is a required property"),
        Some(Value::String(s)) if s.is_empty() => return bad("'$.input' is invalid: it must not be empty."),
        Some(Value::String(s)) => vec![text(s)],
        Some(Value::Array(a)) if a.is_empty() => return bad("'$.input' is invalid: [] should be non-empty."),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if a.iter().any(|s| s.as_str().is_some_and(str::is_empty)) {
                return bad("'$.input' is invalid: inputs must not be empty strings.");
            }
            a.iter().filter_map(Value::as_str).map(text).collect()
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_u64) => match tokens_of(a) {
            Some(t) => vec![t],
            None => return bad("'$.input' is invalid."),
        },
        Some(Value::Array(a)) if a.iter().all(Value::is_array) => {
            let mut out = Vec::new();
            for inner in a {
                match inner.as_array().and_then(|i| tokens_of(i).filter(|_| !i.is_empty())) {
                    Some(t) => out.push(t),
                    None => return bad("'$.input' is invalid: token arrays must hold integers."),
                }
            }
            out
        }
        Some(_) => return bad("'$.input' is invalid: expected a string, an array of strings or of token arrays."),
    };
    if inputs.len() > MAX_INPUTS {
        return bad(&format!("'$.input' is invalid: at most {MAX_INPUTS} inputs per request."));
    }
    Ok(inputs)
}

/// `POST /v1/embeddings`.
pub(crate) async fn openai(shared: &Shared, req: Incoming) -> Response {
    let first = req.body.as_ref().and_then(|b| b.get("input")).map(|i| match i {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    });
    let script = shared.script_for(first.as_deref().unwrap_or_default());
    script.stall().await;
    if let Some(status) = script.error {
        return openai_error(status, &crate::common::emulated_message(status), None);
    }
    let Some(body) = req.body.as_ref().and_then(Value::as_object) else {
        return openai_error(400, "We could not parse the JSON body of your request.", None);
    };
    let Some(model) = body.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return openai_error(400, "you must provide a model parameter", Some("model"));
    };
    let inputs = match openai_inputs(body.get("input")) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => OPENAI_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=OPENAI_DIMENSIONS as u64).contains(&d) => d as usize,
            _ => return openai_error(400, "'dimensions' must be an integer from 1 to 1536.", Some("dimensions")),
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return openai_error(
                400,
                &format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
                Some("encoding_format"),
            )
        }
    };
    let tokens: u64 = inputs.iter().map(|(_, t)| t).sum();
    let (prompt_tokens, _, _) = script.usage(tokens, 0);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = vector(text, dims);
            let embedding = if base64 { json!(base64_f32(&v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}),
    )
}

fn gemini_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let state = if status == 400 { "INVALID_ARGUMENT" } else { "INTERNAL" };
    json_response(code, &json!({"error": {"code": status, "message": message, "status": state}}))
}

/// The text of one Gemini `EmbedContentRequest`, and its dimensions.
fn gemini_one(r: &Value, at: &str) -> Result<(String, usize), Response> {
    let parts = r.pointer("/content/parts").and_then(Value::as_array);
    let Some(parts) = parts.filter(|p| !p.is_empty()) else {
        return Err(gemini_error(400, &format!("* {at}content.parts: must not be empty")));
    };
    let text: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
    if text.is_empty() {
        return Err(gemini_error(400, &format!("* {at}content.parts[0].text: a text part is required")));
    }
    let dims = match r.get("outputDimensionality") {
        None | Some(Value::Null) => GEMINI_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=GEMINI_DIMENSIONS as u64).contains(&d) => d as usize,
            _ => return Err(gemini_error(400, &format!("* {at}output_dimensionality: out of range"))),
        },
    };
    Ok((text.join(" "), dims))
}

/// `…:embedContent` (`batch` false) and `…:batchEmbedContents`.
pub(crate) async fn gemini(shared: &Shared, req: Incoming, model: &str, batch: bool) -> Response {
    let first_text = req
        .body
        .as_ref()
        .and_then(|b| b.pointer("/requests/0/content/parts/0/text").or_else(|| b.pointer("/content/parts/0/text")))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let script: Script = shared.script_for(first_text);
    script.stall().await;
    if let Some(status) = script.error {
        return gemini_error(status, &crate::common::emulated_message(status));
    }
    let Some(body) = req.body.as_ref() else {
        return gemini_error(400, "Invalid JSON payload received.");
    };
    if !batch {
        return match gemini_one(body, "") {
            Ok((text, dims)) => json_response(StatusCode::OK, &json!({"embedding": {"values": vector(&text, dims)}})),
            Err(r) => r,
        };
    }
    let Some(requests) = body.get("requests").and_then(Value::as_array).filter(|r| !r.is_empty()) else {
        return gemini_error(400, "* BatchEmbedContentsRequest.requests: must not be empty");
    };
    if requests.len() > 100 {
        return gemini_error(400, "* BatchEmbedContentsRequest.requests: at most 100 requests in a batch");
    }
    let mut embeddings = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let want = format!("models/{model}");
        if r.get("model").and_then(Value::as_str).is_some_and(|m| m != want) {
            return gemini_error(
                400,
                &format!("* BatchEmbedContentsRequest.requests[{i}].model: the model must be {want}, as in the URL"),
            );
        }
        match gemini_one(r, &format!("BatchEmbedContentsRequest.requests[{i}].")) {
            Ok((text, dims)) => embeddings.push(json!({"values": vector(&text, dims)})),
            Err(resp) => return resp,
        }
    }
    json_response(StatusCode::OK, &json!({"embeddings": embeddings}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = vector("hello world", 8);
        assert_eq!(a, vector("hello world", 8));
        assert_ne!(a, vector("hello there", 8));
        let norm: f32 = a.iter().map(|f| f * f).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn base64_is_standard_with_padding() {
        // 1.0f32 = 00 00 80 3F.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]), "AACAPwAAgD8AAIA/");
    }

    #[test]
    fn inputs_are_strings_arrays_or_token_arrays() {
        let ok = |v: Value| openai_inputs(Some(&v)).unwrap();
        assert_eq!(ok(json!("a b c")), vec![("a b c".to_string(), 8)]);
        assert_eq!(ok(json!(["a", "b c"])).len(), 2);
        assert_eq!(ok(json!([1, 2, 3])), vec![("1 2 3".to_string(), 3)]);
        assert_eq!(ok(json!([[1, 2], [3]])).iter().map(|(_, t)| *t).collect::<Vec<_>>(), vec![2, 1]);
        for bad in [json!(""), json!([]), json!([""]), json!([[]]), json!({"a": 1}), json!([1, "a"])] {
            assert!(openai_inputs(Some(&bad)).is_err(), "{bad}");
        }
        assert!(openai_inputs(None).is_err());
    }
}
