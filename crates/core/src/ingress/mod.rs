//! Client formats other than OpenAI Chat Completions, as adapters at the
//! gateway's edge: each turns its request into the internal request (the
//! Chat Completions body every route takes) and the internal answer back
//! into its own shape, so every format shares one path — authentication,
//! admission, routing, accounting.

pub mod messages;
pub mod responses;

/// One stream event of a client format: its `event:` name and its data.
pub type Event = (&'static str, serde_json::Value);

/// An event as SSE bytes (`event: NAME`, `data: JSON`, blank line).
pub fn sse(event: &Event) -> Vec<u8> {
    format!("event: {}\ndata: {}\n\n", event.0, event.1).into_bytes()
}

#[cfg(test)]
mod tests;
