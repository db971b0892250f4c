//! Format and reading mode from an input's first bytes.

use std::io::{self, Read};

use serde::de::IgnoredAny;

use super::format::Format;

/// How an input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Lines,
    Document,
    Csv,
}

const HEAD: usize = 64 * 1024;

fn first_line(b: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', b).unwrap_or(b.len());
    let l = &b[..end];
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn keys_of(line: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line)
        .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

fn json_format(keys: &[String]) -> Format {
    let has = |k: &str| keys.iter().any(|x| x == k);
    if has("starttime") && (has("spend") || has("call_type")) {
        Format::LitellmJson
    } else if has("created_ms") && has("model_requested") {
        Format::SheepdogJsonl
    } else {
        Format::Jsonl
    }
}

fn csv_format(header: &[u8]) -> Format {
    let h = String::from_utf8_lossy(header).to_ascii_lowercase();
    let cols: Vec<&str> = h.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let has = |k: &str| cols.contains(&k);
    if has("starttime") && (has("spend") || has("call_type")) {
        Format::LitellmCsv
    } else if has("created_ms") && has("model_requested") {
        Format::SheepdogCsv
    } else {
        Format::Csv
    }
}

/// Decides the format and reading mode from the first bytes (BOM and
/// leading whitespace skipped). `None`: the input is empty.
pub(super) fn detect(head: &[u8], forced: Option<Format>) -> Option<(Format, Mode)> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let b = &head[start..];
    let line = first_line(b);
    let json_mode = |b: &[u8]| -> Mode {
        if b[0] == b'[' {
            return Mode::Document;
        }
        if serde_json::from_slice::<IgnoredAny>(line).is_ok() || memchr::memchr(b'\n', b).is_none() {
            return Mode::Lines;
        }
        // The first line is not a JSON value: a malformed first record of
        // JSON lines (a later line parses) or a pretty-printed document.
        let later_line_parses = b
            .split(|c| *c == b'\n')
            .skip(1)
            .take(8)
            .any(|l| l.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(l).is_ok());
        let t = String::from_utf8_lossy(line);
        let t = t.trim();
        if !later_line_parses && (t == "{" || t.ends_with('{') || t.ends_with('[') || t.ends_with(',')) {
            Mode::Document
        } else {
            Mode::Lines
        }
    };
    if let Some(f) = forced {
        if f.is_csv() {
            return Some((f, Mode::Csv));
        }
        return Some((f, json_mode(b)));
    }
    match b[0] {
        b'[' | b'{' => {
            let mode = json_mode(b);
            if mode == Mode::Lines {
                return Some((json_format(&keys_of(line)), mode));
            }
            // A document: the first record's keys decide between LiteLLM and others.
            let sample = String::from_utf8_lossy(&b[..b.len().min(4096)]).to_ascii_lowercase();
            let f = if sample.contains("\"starttime\"")
                && (sample.contains("\"spend\"") || sample.contains("\"call_type\""))
            {
                Format::LitellmJson
            } else if sample.contains("\"created_ms\"") && sample.contains("\"model_requested\"") {
                Format::SheepdogJsonl
            } else {
                Format::Jsonl
            };
            Some((f, mode))
        }
        _ => {
            // JSON lines whose first line is garbage: a later line is a JSON object.
            let later = b
                .split(|c| *c == b'\n')
                .skip(1)
                .take(8)
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .find(|l| l.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(l).is_ok());
            match later {
                Some(l) => Some((json_format(&keys_of(l)), Mode::Lines)),
                None => Some((csv_format(line), Mode::Csv)),
            }
        }
    }
}

pub(super) fn read_head(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let d = |s: &str| detect(s.as_bytes(), None).map(|(f, m)| (f.as_str(), m));
        assert_eq!(d(""), None);
        assert_eq!(d("  \n\n"), None);
        assert_eq!(d("{\"timestamp\":1}\n{\"timestamp\":2}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(d("{\"startTime\":\"x\",\"spend\":0.1}\n"), Some(("litellm-json", Mode::Lines)));
        assert_eq!(d("[{\"startTime\":\"x\",\"spend\":0.1}]"), Some(("litellm-json", Mode::Document)));
        assert_eq!(d("{\n  \"data\": [\n"), Some(("jsonl", Mode::Document)));
        assert_eq!(d("{\"created_ms\":1,\"model_requested\":\"m\"}\n"), Some(("sheepdog-jsonl", Mode::Lines)));
        assert_eq!(d("request_id,startTime,endTime,spend,model\n"), Some(("litellm-csv", Mode::Csv)));
        assert_eq!(d("id,request_id,tenant_id,model_requested,created_ms\n"), Some(("sheepdog-csv", Mode::Csv)));
        assert_eq!(d("when,who,what\n"), Some(("csv", Mode::Csv)));
        assert_eq!(d("garbage\n{\"timestamp\":2}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(d("{broken\n{\"timestamp\":1}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(detect(b"{\n \"a\": 1\n}", Some(Format::Jsonl)).map(|x| x.1), Some(Mode::Document));
        assert_eq!(detect(b"{broken\n", Some(Format::Jsonl)).map(|x| x.1), Some(Mode::Lines));
        assert_eq!(detect(b"a,b\n", Some(Format::LitellmCsv)).map(|x| x.1), Some(Mode::Csv));
    }
}
