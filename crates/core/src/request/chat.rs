//! The Chat Completions body: parsed and validated in one pass without a
//! JSON tree, its prompt tokens estimated on the way.

use axum::body::Bytes;
use serde::Deserialize;
use std::borrow::Cow;

use super::raw::{for_each, not_json, object_text, optional_positive_int, required_model, wrong_type, Kind, Raw};
use crate::admission::tokens::{Estimate, IMAGE_TOKENS};
use crate::error::GatewayError;
use crate::limited::bounded;
use crate::providers::types::ChatRequest;

const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// [`parse_chat`] of a body of any size without holding the event loop
/// (see [`bounded`]).
pub async fn parse_chat_bounded(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    bounded(raw.len(), move || parse_chat(raw)).await.unwrap_or(Err(GatewayError::Internal))
}

/// The top-level members that are checked, read in one pass; every other
/// member is skipped without being built.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(default, borrow)]
    model: Raw<'a>,
    #[serde(default, borrow)]
    messages: Raw<'a>,
    #[serde(default, borrow)]
    stream: Raw<'a>,
    #[serde(default, borrow)]
    stream_options: Raw<'a>,
    #[serde(default, borrow)]
    max_completion_tokens: Raw<'a>,
    #[serde(default, borrow)]
    max_tokens: Raw<'a>,
    #[serde(default, borrow)]
    n: Raw<'a>,
    #[serde(default, borrow)]
    temperature: Raw<'a>,
    #[serde(default, borrow)]
    top_p: Raw<'a>,
    #[serde(default, borrow)]
    presence_penalty: Raw<'a>,
    #[serde(default, borrow)]
    frequency_penalty: Raw<'a>,
    #[serde(default, borrow)]
    tools: Raw<'a>,
    #[serde(default, borrow)]
    stop: Raw<'a>,
    #[serde(default, borrow)]
    user: Raw<'a>,
}

/// The members of a message that are checked or counted.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Raw<'a>,
    #[serde(default, borrow)]
    content: Raw<'a>,
    #[serde(default, borrow)]
    name: Raw<'a>,
    #[serde(default, borrow)]
    tool_calls: Raw<'a>,
}

/// The members of a content part that are counted.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(default, borrow)]
    text: Raw<'a>,
}

#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(default, borrow)]
    include_usage: Raw<'a>,
}

/// Checks one message and adds it to the estimate.
fn check_message(i: usize, message: Raw<'_>, estimate: &mut Estimate) -> Result<(), GatewayError> {
    // Named only when something is wrong: no allocation per valid message.
    let name = || format!("messages[{i}]");
    let (Some(text), Some(kind)) = (message.text(), message.kind()) else { return Ok(()) };
    if kind != Kind::Object {
        return Err(wrong_type(&name(), "an object", kind));
    }
    let m: Message<'_> = serde_json::from_str(text).map_err(|e| {
        let param = name();
        GatewayError::invalid(format!("`{param}` is not a valid message: {e}."), Some(&param))
    })?;
    match (m.role.kind(), m.role.string()) {
        (Some(Kind::String), Some(r)) if ROLES.contains(&r.as_ref()) => {}
        (Some(Kind::String), Some(r)) => {
            let param = name();
            return Err(GatewayError::invalid(
                format!("`{param}.role` {r:?} is not one of {}.", ROLES.join(", ")),
                Some(&format!("{param}.role")),
            ));
        }
        (Some(other), _) => return Err(wrong_type(&format!("{}.role", name()), "a string", other)),
        (None, _) => {
            let param = name();
            return Err(GatewayError::invalid(
                format!("Missing required parameter: `{param}.role`."),
                Some(&format!("{param}.role")),
            ));
        }
    }
    estimate.message();
    match m.content.kind() {
        None | Some(Kind::Null) => {}
        Some(Kind::String) => estimate.text(&m.content.string().unwrap_or_default()),
        Some(Kind::Array) => {
            for_each(m.content.text().unwrap_or("[]"), |_, part| {
                count_part(part, estimate);
                Ok(())
            })?;
        }
        Some(other) => return Err(wrong_type(&format!("{}.content", name()), "a string or an array of parts", other)),
    }
    if let Some(n) = m.name.string() {
        estimate.text(&n);
        estimate.add(1);
    }
    if let Some(calls) = m.tool_calls.text().filter(|_| !m.tool_calls.is_none()) {
        estimate.text(calls);
    }
    Ok(())
}

/// A content part's tokens: its text, an image's allowance, or for any
/// other part its JSON text.
fn count_part(part: Raw<'_>, estimate: &mut Estimate) {
    let Some(text) = part.text() else { return };
    let parsed = match part.kind() {
        Some(Kind::Object) => serde_json::from_str::<Part<'_>>(text).ok(),
        _ => None,
    };
    match parsed.as_ref().and_then(|p| p.kind.string()).as_deref() {
        Some("text") => estimate.text(&parsed.and_then(|p| p.text.string()).unwrap_or_default()),
        Some("image_url") | Some("image") => estimate.add(IMAGE_TOKENS),
        _ => estimate.text(text),
    }
}

/// Parses and validates a Chat Completions body (kept as
/// [`ChatRequest::raw`]), and estimates its prompt tokens. No JSON tree is
/// built: the checked members are read as borrowed slices of the body and
/// every other member is skipped, so the memory this takes is a small
/// fraction of the body (at most one unescaped copy of a string that holds
/// escapes), whatever the body holds.
pub fn parse_chat(raw: Bytes) -> Result<ChatRequest, GatewayError> {
    let text = object_text(&raw)?;
    // From the checked text: serde does not check each string's UTF-8 again.
    let c: Top<'_> = serde_json::from_str(text).map_err(not_json)?;
    let model = required_model(c.model)?;
    let mut estimate = Estimate::default();
    match (c.messages.kind(), c.messages.text()) {
        (Some(Kind::Array), Some(msgs)) => {
            let empty = msgs.trim_start().strip_prefix('[').is_some_and(|rest| rest.trim_start().starts_with(']'));
            if empty {
                return Err(GatewayError::invalid("`messages` must not be empty.", Some("messages")));
            }
            for_each(msgs, |i, m| check_message(i, m, &mut estimate))?;
        }
        (Some(other), _) => return Err(wrong_type("messages", "an array", other)),
        (None, _) => return Err(GatewayError::invalid("Missing required parameter: `messages`.", Some("messages"))),
    }
    let stream = match c.stream.kind() {
        None | Some(Kind::Null) => false,
        Some(Kind::Bool) => c.stream.text() == Some("true"),
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    };
    let include_usage = match (c.stream_options.kind(), c.stream_options.text()) {
        (None | Some(Kind::Null), _) => false,
        (Some(Kind::Object), Some(text)) => {
            let o: StreamOptions<'_> = serde_json::from_str(text).map_err(|e| {
                GatewayError::invalid(format!("`stream_options` is not valid: {e}."), Some("stream_options"))
            })?;
            match o.include_usage.kind() {
                None | Some(Kind::Null) => false,
                Some(Kind::Bool) => o.include_usage.text() == Some("true"),
                Some(other) => return Err(wrong_type("stream_options.include_usage", "a boolean", other)),
            }
        }
        (Some(other), _) => return Err(wrong_type("stream_options", "an object", other)),
    };
    let (max_tokens, max_tokens_param) = match optional_positive_int(c.max_completion_tokens, "max_completion_tokens")?
    {
        Some(n) => (Some(n), "max_completion_tokens"),
        None => (optional_positive_int(c.max_tokens, "max_tokens")?, "max_tokens"),
    };
    optional_positive_int(c.n, "n")?;
    for (p, value) in [
        ("temperature", c.temperature),
        ("top_p", c.top_p),
        ("presence_penalty", c.presence_penalty),
        ("frequency_penalty", c.frequency_penalty),
    ] {
        match value.kind() {
            None | Some(Kind::Null) | Some(Kind::Number) => {}
            Some(other) => return Err(wrong_type(p, "a number", other)),
        }
    }
    match c.tools.kind() {
        None | Some(Kind::Null) => {}
        Some(Kind::Array) => estimate.text(c.tools.text().unwrap_or_default()),
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    }
    match c.stop.kind() {
        None | Some(Kind::Null) | Some(Kind::String) | Some(Kind::Array) => {}
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    }
    let user = c.user.string().filter(|u| !u.is_empty()).map(Cow::into_owned);
    Ok(ChatRequest {
        raw: raw.clone(),
        requested_model: model,
        stream,
        include_usage,
        max_tokens,
        max_tokens_param,
        user,
        prompt_tokens: estimate.total(),
        mode: crate::config::ModelMode::Chat,
        native: None,
    })
}
