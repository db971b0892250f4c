//! Local HTTP emulators of three LLM provider wire formats (OpenAI Chat
//! Completions, Anthropic Messages, Gemini generateContent), written from the
//! providers' public API documentation. They validate what the real APIs
//! require (answering a provider-shaped 400 when violated), answer in each
//! provider's exact wire shape (streams included) and can be steered by
//! markers in the text of the last user message:
//!
//! - default: "Hello from the <wire> emulator." with deterministic usage
//!   (prompt = words over all message texts + 5, completion = reply words),
//!   streamed one word per chunk;
//! - `[emu:usage=IN,OUT]` exact usage; `[emu:cached=N]` N prompt tokens cached;
//! - `[emu:error=STATUS]` that status with the provider's error body
//!   ("emulated error STATUS"; 429/503 carry `Retry-After: 1`);
//! - `[emu:tool]` a call of the first declared tool with `{"city":"Paris"}`;
//! - `[emu:break]` streams stop after two content pieces with a broken body;
//! - `[emu:stall_ms=N]` wait N ms before answering;
//! - `[emu:malformed]` streams send a data line that is not JSON;
//! - `[emu:safety]` (Gemini) the prompt is blocked (`promptFeedback.blockReason`).
//!
//! Embeddings too: OpenAI's `POST /v1/embeddings` (strings, arrays of
//! strings or token arrays; `dimensions`; `encoding_format` float or base64)
//! and Gemini's `:embedContent` / `:batchEmbedContents`, with deterministic
//! unit vectors; markers (`[emu:error=…]`, `[emu:usage=…]`, `[emu:stall_ms=…]`)
//! are read from the first input's text.

// Validation helpers return the ready-made error `Response` as their `Err`.
#![allow(clippy::result_large_err)]

mod anthropic;
mod common;
mod embeddings;
mod emulator;
mod gemini;
mod openai;
mod shared;

pub use common::Script;
pub use emulator::Emulator;
pub use shared::{Recorded, Wire, MAX_RECORDED};
