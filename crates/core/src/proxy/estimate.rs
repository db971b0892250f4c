//! Output tokens estimated when the upstream reported no usage: from the
//! content streamed so far, or from a completion's body.

/// Characters of content in one streamed chunk (for estimates when a stream
/// is cut). A scan of the chunk's JSON for the `"content":"…"` strings (an
/// escape counts as one character) instead of a parse: it runs for every
/// chunk of every stream.
pub(super) fn content_chars(chunk: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"content\"";
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let mut total = 0u64;
    let mut i = 0;
    while let Some(at) = chunk.get(i..).and_then(|rest| FINDER.find(rest)) {
        i += at + KEY.len();
        while chunk.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if chunk.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while chunk.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if chunk.get(i) != Some(&b'"') {
            continue;
        }
        i += 1;
        while let Some(&b) = chunk.get(i) {
            match b {
                b'"' => {
                    i += 1;
                    break;
                }
                b'\\' => {
                    total += 1;
                    i += if chunk.get(i + 1) == Some(&b'u') { 6 } else { 2 };
                }
                // UTF-8 continuation bytes are part of the character before.
                _ => {
                    if b & 0xC0 != 0x80 {
                        total += 1;
                    }
                    i += 1;
                }
            }
        }
    }
    total
}

/// Output tokens of a completion body without usage: ~4 characters a token.
pub(super) fn estimate_completion_tokens(body: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = v.pointer("/choices/0/message/content").and_then(|c| c.as_str()).unwrap_or("");
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::content_chars;

    #[test]
    fn content_chars_counts_characters_of_every_content_string() {
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"content":"Hello"}}]}"#), 5);
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#), 0);
        assert_eq!(content_chars(br#"{"choices":[{"delta":{"content":null}}]}"#), 0);
        // Escapes count once; multi-byte characters count once.
        assert_eq!(content_chars(r#"{"choices":[{"delta":{"content":"a\n\"b\u00e9 é—"}}]}"#.as_bytes()), 8);
        assert_eq!(
            content_chars(
                br#"{"choices":[{"index":0,"delta":{"content" : "ab"}},{"index":1,"delta":{"content":"c"}}]}"#
            ),
            3
        );
        assert_eq!(content_chars(b"not json"), 0);
        assert_eq!(content_chars(br#"{"content":"unterminated"#), 12);
        // A chunk cut inside an escape is counted without reading past its end.
        assert_eq!(content_chars(br#"{"content":"ab\u"#), 3);
        assert_eq!(content_chars(br#"{"content":"ab\"#), 3);
    }
}
