//! Client formats other than OpenAI Chat Completions, as adapters at the
//! gateway's edge: each turns its request into the internal request (the
//! Chat Completions body every route takes) and the internal answer back
//! into its own shape, so every format shares one path — authentication,
//! admission, routing, accounting.

pub mod messages;
pub mod responses;

#[cfg(test)]
mod tests;
