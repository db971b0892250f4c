//! The `data:` payloads of a server-sent event stream.

use std::time::Duration;

/// The `data:` payload of each event in `text` (events split on a blank
/// line; the first `data:` line of each, trimmed).
pub fn sse_payloads(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Reads a streamed answer to its end; its `data:` payloads.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    sse_payloads(&resp.text().await.unwrap())
}

/// Reads a streamed answer to its end, each piece within `per_chunk`
/// (a stall fails the test); its `data:` payloads.
pub async fn sse_data_within(mut resp: reqwest::Response, per_chunk: Duration) -> Vec<String> {
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(per_chunk, resp.chunk()).await.unwrap().unwrap() {
        text.extend_from_slice(&chunk);
    }
    sse_payloads(&String::from_utf8_lossy(&text))
}
