//! A fast walk over the top-level members of a JSON object, for the hot
//! paths that only need a few fields of a body they pass on unchanged: the
//! `usage` of an upstream answer, the `model` of a client body to replace.
//! Values are skipped, not built: strings are crossed with `memchr`, nested
//! objects and arrays by bracket matching. The walk checks the structure
//! (every string closed, brackets matched, members separated by commas,
//! nothing after the object) and that scalars are made of JSON's scalar
//! characters; it does not check number grammar or escape sequences inside
//! values, which the callers either parse themselves (the fields they read)
//! or pass through untouched.

use std::ops::Range;

/// One top-level member: its key as written between the quotes (escapes
/// not decoded) and the byte ranges of the whole member and of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub key: &'a [u8],
    /// From the key's opening quote to the value's last byte.
    pub span: Range<usize>,
    pub value: Range<usize>,
}

impl Member<'_> {
    /// Whether the key holds an escape (then `key` is not its decoded text).
    pub fn key_escaped(&self) -> bool {
        self.key.contains(&b'\\')
    }
}

/// Why a body is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject;

/// Nesting deeper than this is refused (serde_json's own limit is 128).
const MAX_DEPTH: usize = 128;

/// Calls `f` for each top-level member of the JSON object in `bytes`, in
/// order; fails when `bytes` is not one well-formed object.
pub fn members<'a>(bytes: &'a [u8], mut f: impl FnMut(Member<'a>)) -> Result<(), NotAnObject> {
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return Err(NotAnObject);
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return trailing(bytes, i + 1);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return Err(NotAnObject);
        }
        let key_start = i;
        let key_end = skip_string(bytes, i)?;
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return Err(NotAnObject);
        }
        let value_start = skip_ws(bytes, i + 1);
        let value_end = skip_value(bytes, value_start)?;
        f(Member {
            key: &bytes[key_start + 1..key_end - 1],
            span: key_start..value_end,
            value: value_start..value_end,
        });
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return trailing(bytes, i + 1),
            _ => return Err(NotAnObject),
        }
    }
}

/// Whether a value (a range from [`members`]) is `null`.
pub fn is_null(bytes: &[u8], value: &Range<usize>) -> bool {
    &bytes[value.clone()] == b"null"
}

/// Whether a value is an array with at least one element.
pub fn is_non_empty_array(bytes: &[u8], value: &Range<usize>) -> bool {
    bytes.get(value.start) == Some(&b'[') && bytes.get(skip_ws(bytes, value.start + 1)) != Some(&b']')
}

fn trailing(bytes: &[u8], i: usize) -> Result<(), NotAnObject> {
    if skip_ws(bytes, i) == bytes.len() {
        Ok(())
    } else {
        Err(NotAnObject)
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// `bytes[i]` is an opening quote; returns the index after the closing one.
fn skip_string(bytes: &[u8], i: usize) -> Result<usize, NotAnObject> {
    let mut at = i + 1;
    loop {
        let rest = bytes.get(at..).ok_or(NotAnObject)?;
        let n = quote_or_backslash(rest).ok_or(NotAnObject)?;
        if rest[n] == b'"' {
            return Ok(at + n + 1);
        }
        // A backslash escapes the next byte, whatever it is.
        at += n + 2;
    }
}

/// Bytes examined eight at a time before handing over to `memchr`: keys
/// and short values end within them, where `memchr`'s set-up costs more
/// than the search.
const SHORT: usize = 64;

/// The first `"` or `\` in `s`.
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let head = &s[..s.len().min(SHORT)];
    let mut words = head.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let x = u64::from_le_bytes(word);
        // The lowest flagged byte is exact (borrows only flag bytes above it).
        let hits = has_zero_byte(x ^ (ONES * u64::from(b'"'))) | has_zero_byte(x ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if let Some(n) = words.remainder().iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(at + n);
    }
    if s.len() <= SHORT {
        return None;
    }
    memchr::memchr2(b'"', b'\\', &s[SHORT..]).map(|n| SHORT + n)
}

/// Byte classes of the scan (one table lookup per byte inside nested values).
const INVALID: u8 = 0;
/// Scalar characters, whitespace, `,` and `:`.
const PLAIN: u8 = 1;
const QUOTE: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if is_scalar_byte(c) {
            PLAIN
        } else {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => PLAIN,
                b'"' => QUOTE,
                b'{' | b'[' => OPEN,
                b'}' | b']' => CLOSE,
                _ => INVALID,
            }
        };
        b += 1;
    }
    t
};

/// Characters of `true`, `false`, `null` and numbers.
const fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

/// Returns the index after the value starting at `i`.
fn skip_value(bytes: &[u8], i: usize) -> Result<usize, NotAnObject> {
    match bytes.get(i) {
        Some(b'"') => skip_string(bytes, i),
        Some(b'{' | b'[') => skip_nested(bytes, i),
        Some(&b) if is_scalar_byte(b) => {
            let mut end = i + 1;
            while bytes.get(end).is_some_and(|&b| is_scalar_byte(b)) {
                end += 1;
            }
            Ok(end)
        }
        _ => Err(NotAnObject),
    }
}

/// Skips an object or array by matching brackets (strings crossed whole).
fn skip_nested(bytes: &[u8], i: usize) -> Result<usize, NotAnObject> {
    let mut open = [0u8; MAX_DEPTH];
    let mut depth = 0usize;
    let mut at = i;
    while let Some(&b) = bytes.get(at) {
        match CLASS[usize::from(b)] {
            PLAIN => {}
            QUOTE => {
                at = skip_string(bytes, at)?;
                continue;
            }
            OPEN => {
                if depth == MAX_DEPTH {
                    return Err(NotAnObject);
                }
                open[depth] = if b == b'{' { b'}' } else { b']' };
                depth += 1;
            }
            CLOSE => {
                if depth == 0 || open[depth - 1] != b {
                    return Err(NotAnObject);
                }
                depth -= 1;
                if depth == 0 {
                    return Ok(at + 1);
                }
            }
            _ => return Err(NotAnObject),
        }
        at += 1;
    }
    Err(NotAnObject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Result<Vec<(String, String)>, NotAnObject> {
        let mut out = Vec::new();
        members(body.as_bytes(), |m| {
            out.push((String::from_utf8_lossy(m.key).into_owned(), body[m.value.clone()].to_string()));
            assert_eq!(&body[m.span.clone()][..1], "\"");
        })?;
        Ok(out)
    }

    #[test]
    fn walks_top_level_members_and_skips_nested_values() {
        let body = r#" { "id":"c\"1}" , "choices":[{"message":{"content":"a ] } \\"}}],"n":-1.5e3,"ok":true,
            "usage":{"prompt_tokens":5}, "x":null } "#;
        let got = keys(body).unwrap();
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["id", "choices", "n", "ok", "usage", "x"]);
        assert_eq!(got[0].1, r#""c\"1}""#);
        assert_eq!(got[1].1, r#"[{"message":{"content":"a ] } \\"}}]"#);
        assert_eq!(got[2].1, "-1.5e3");
        assert_eq!(got[4].1, r#"{"prompt_tokens":5}"#);
        assert_eq!(keys("{}").unwrap(), vec![]);
        let long = r#"{"a":"0123456789abcdefghij \" still inside \\","b":["0123456789abcdefghij]\"]"]}"#;
        assert_eq!(keys(long).unwrap()[1].1, r#"["0123456789abcdefghij]\"]"]"#);
        assert_eq!(keys(r#"{"a\"b":1}"#).unwrap()[0].0, r#"a\"b"#);
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for bad in [
            "",
            "[1]",
            "not json",
            r#"{"a":1"#,
            r#"{"a":[1,2}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a":}"#,
            r#"{"a":[1,#]}"#,
            r#"{"a":"x\"#,
        ] {
            assert_eq!(keys(bad), Err(NotAnObject), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(keys(&deep), Err(NotAnObject));
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(keys(&ok).is_ok());
    }

    #[test]
    fn finds_the_first_quote_or_backslash_at_any_offset() {
        for len in 0..150 {
            for at in 0..=len {
                let mut s = vec![b'a'; len];
                if at < len {
                    s[at] = if at % 2 == 0 { b'"' } else { b'\\' };
                    // Later specials and bytes that differ from them by one bit must not matter.
                    for (i, b) in s.iter_mut().enumerate().skip(at + 1) {
                        *b = [b'"', b'#', b'!', b'\\', b'\x80', b'\xa2'][i % 6];
                    }
                }
                let want = (at < len).then_some(at);
                assert_eq!(quote_or_backslash(&s), want, "len {len} at {at}");
            }
        }
        assert_eq!(quote_or_backslash(&[0x22 ^ 0x80, b'!', b'#', 0x5c ^ 0x80, b'"']), Some(4));
    }

    #[test]
    fn value_helpers() {
        let body = br#"{"a":null,"b":[],"c":[ ],"d":[{}],"e":{}}"#;
        let mut values = Vec::new();
        members(body, |m| values.push(m.value)).unwrap();
        assert!(is_null(body, &values[0]) && !is_null(body, &values[1]));
        assert!(!is_non_empty_array(body, &values[1]));
        assert!(!is_non_empty_array(body, &values[2]));
        assert!(is_non_empty_array(body, &values[3]));
        assert!(!is_non_empty_array(body, &values[4]));
    }
}
