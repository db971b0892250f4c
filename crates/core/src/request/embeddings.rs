//! The Embeddings body (`POST /v1/embeddings`): parsed and validated in one
//! pass without a JSON tree, its input tokens estimated on the way. The
//! body itself is kept as it came ([`ChatRequest::raw`]): OpenAI-kind
//! upstreams get it with only `model` rewritten, the others read it in
//! `providers::embeddings`.

use axum::body::Bytes;
use serde::Deserialize;
use std::borrow::Cow;

use super::raw::{for_each, not_json, object_text, optional_positive_int, required_model, wrong_type, Kind, Raw};
use crate::admission::tokens::Estimate;
use crate::config::ModelMode;
use crate::error::GatewayError;
use crate::providers::types::ChatRequest;

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(default, borrow)]
    model: Raw<'a>,
    #[serde(default, borrow)]
    input: Raw<'a>,
    #[serde(default, borrow)]
    dimensions: Raw<'a>,
    #[serde(default, borrow)]
    encoding_format: Raw<'a>,
    #[serde(default, borrow)]
    user: Raw<'a>,
}

/// Parses and validates an Embeddings body and estimates its input tokens
/// (the text's tokens, or a token array's length; no chat framing).
pub fn parse_embeddings(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let text = object_text(&raw)?;
    let top: Top<'_> = serde_json::from_str(text).map_err(not_json)?;
    let model = required_model(top.model)?;
    let mut estimate = Estimate::bare();
    walk_inputs(top.input, |input| {
        match input {
            Input::Text(t) => estimate.text(&t),
            Input::Tokens(n) => estimate.add(n as u64),
        }
        Ok(())
    })?;
    optional_positive_int(top.dimensions, "dimensions")?;
    encoding_base64(top.encoding_format)?;
    let user = top.user.string().filter(|u| !u.is_empty()).map(Cow::into_owned);
    Ok(ChatRequest {
        raw: raw.clone(),
        requested_model: model,
        stream: false,
        include_usage: false,
        max_tokens: Some(0),
        max_tokens_param: "max_tokens",
        user,
        prompt_tokens: estimate.total(),
        mode: ModelMode::Embedding,
        native: None,
    })
}

/// One input as it is counted.
enum Input<'a> {
    Text(Cow<'a, str>),
    /// A token array of this length.
    Tokens(usize),
}

fn invalid_input(message: &str) -> GatewayError {
    GatewayError::invalid(format!("`input` is invalid: {message}"), Some("input"))
}

/// Checks `input` (a string, an array of strings, an array of integers, or
/// an array of integer arrays; non-empty, at most [`MAX_INPUTS`]) and calls
/// `f` with each input.
fn walk_inputs<'a>(
    input: Raw<'a>,
    mut f: impl FnMut(Input<'a>) -> Result<(), GatewayError>,
) -> Result<(), GatewayError> {
    match input.kind() {
        None | Some(Kind::Null) => Err(GatewayError::invalid("Missing required parameter: `input`.", Some("input"))),
        Some(Kind::String) => {
            let s = input.string().unwrap_or_default();
            if s.is_empty() {
                return Err(invalid_input("it must not be an empty string."));
            }
            f(Input::Text(s))
        }
        Some(Kind::Array) => {
            let text = input.text().unwrap_or("[]");
            // What the first element is decides what the rest must be.
            let mut shape: Option<Kind> = None;
            let mut ints = 0usize;
            let n = for_each(text, |i, item| {
                let kind = item.kind().unwrap_or(Kind::Null);
                if *shape.get_or_insert(kind) != kind {
                    return Err(invalid_input(
                        "its elements must all be strings, all integers, or all arrays of integers.",
                    ));
                }
                if i >= MAX_INPUTS && kind != Kind::Number {
                    return Err(invalid_input(&format!("at most {MAX_INPUTS} inputs per request.")));
                }
                match kind {
                    Kind::String => {
                        let s = item.string().unwrap_or_default();
                        if s.is_empty() {
                            return Err(invalid_input(&format!("`input[{i}]` must not be an empty string.")));
                        }
                        f(Input::Text(s))
                    }
                    Kind::Number => {
                        token_id(item)?;
                        ints += 1;
                        Ok(())
                    }
                    Kind::Array => {
                        let len = for_each(item.text().unwrap_or("[]"), |_, t| token_id(t))?;
                        if len == 0 {
                            return Err(invalid_input(&format!("`input[{i}]` must not be an empty array.")));
                        }
                        f(Input::Tokens(len))
                    }
                    other => Err(invalid_input(&format!(
                        "expected strings, integers or arrays of integers, got {}.",
                        other.name()
                    ))),
                }
            })?;
            if n == 0 {
                return Err(invalid_input("it must not be empty."));
            }
            if ints > 0 {
                f(Input::Tokens(ints))?;
            }
            Ok(())
        }
        Some(other) => Err(wrong_type("input", "a string or an array", other)),
    }
}

/// A token id: a non-negative integer.
fn token_id(item: Raw<'_>) -> Result<(), GatewayError> {
    match item.text().map(serde_json::from_str::<u64>) {
        Some(Ok(_)) => Ok(()),
        _ => Err(invalid_input("token ids must be non-negative integers.")),
    }
}

/// `encoding_format`: `float` (default) or `base64`.
fn encoding_base64(value: Raw<'_>) -> Result<bool, GatewayError> {
    if value.is_none() {
        return Ok(false);
    }
    match value.string().as_deref() {
        Some("float") => Ok(false),
        Some("base64") => Ok(true),
        _ => Err(GatewayError::invalid("`encoding_format` must be \"float\" or \"base64\".", Some("encoding_format"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ChatRequest, String> {
        parse_embeddings(Bytes::from(body.to_string()))
            .map_err(|e| format!("{}|{:?}|{}", e.code(), e.body().error.param, e.message()))
    }

    #[test]
    fn accepts_every_documented_input_shape() {
        let one = parse(r#"{"model":"e","input":"The food was delicious and the waiter was kind."}"#).unwrap();
        assert_eq!(one.mode, ModelMode::Embedding);
        assert_eq!((one.stream, one.max_tokens), (false, Some(0)));
        // o200k_base: 10 tokens, no chat framing.
        assert_eq!(one.prompt_tokens, 10);
        let many = parse(r#"{"model":"e","input":["a b","c"],"dimensions":256,"encoding_format":"base64"}"#).unwrap();
        assert_eq!(many.prompt_tokens, 3);
        assert_eq!(parse(r#"{"model":"e","input":[1,2,3]}"#).unwrap().prompt_tokens, 3);
        assert_eq!(parse(r#"{"model":"e","input":[[1,2],[3]]}"#).unwrap().prompt_tokens, 3);
    }

    #[test]
    fn refuses_bad_input_with_the_parameter_named() {
        for (body, param) in [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"e"}"#, "input"),
            (r#"{"model":"e","input":""}"#, "input"),
            (r#"{"model":"e","input":[]}"#, "input"),
            (r#"{"model":"e","input":[""]}"#, "input"),
            (r#"{"model":"e","input":[[]]}"#, "input"),
            (r#"{"model":"e","input":["a",1]}"#, "input"),
            (r#"{"model":"e","input":[-1]}"#, "input"),
            (r#"{"model":"e","input":[[1.5]]}"#, "input"),
            (r#"{"model":"e","input":{"a":1}}"#, "input"),
            (r#"{"model":"e","input":"x","dimensions":0}"#, "dimensions"),
            (r#"{"model":"e","input":"x","encoding_format":"int8"}"#, "encoding_format"),
        ] {
            let e = parse(body).expect_err(body);
            assert!(e.starts_with(&format!("invalid_request_error|Some(\"{param}\")")), "{body}: {e}");
        }
        let too_many = format!(r#"{{"model":"e","input":[{}]}}"#, vec!["\"a\""; MAX_INPUTS + 1].join(","));
        assert!(parse(&too_many).unwrap_err().contains("at most 2048"));
        assert!(parse("[1]").unwrap_err().contains("JSON object"));
    }
}
