//! The input formats (`--format`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::agg::NO_ENDPOINT;

/// Input formats (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// JSON lines of request/response records as applications log them.
    #[serde(rename = "jsonl")]
    Jsonl,
    /// LiteLLM's spend logs (`LiteLLM_SpendLogs` rows) as a JSON array or JSON lines.
    #[serde(rename = "litellm-json")]
    LitellmJson,
    /// LiteLLM's spend logs as CSV.
    #[serde(rename = "litellm-csv")]
    LitellmCsv,
    /// Sheepdog's own usage records (`usage_records` columns) as CSV.
    #[serde(rename = "sheepdog-csv")]
    SheepdogCsv,
    /// Sheepdog's own usage records as JSON lines.
    #[serde(rename = "sheepdog-jsonl")]
    SheepdogJsonl,
    /// Any CSV with a header; columns mapped by name or `--csv-map`.
    #[serde(rename = "csv")]
    Csv,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Jsonl,
        Format::LitellmJson,
        Format::LitellmCsv,
        Format::SheepdogCsv,
        Format::SheepdogJsonl,
        Format::Csv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::LitellmJson => "litellm-json",
            Format::LitellmCsv => "litellm-csv",
            Format::SheepdogCsv => "sheepdog-csv",
            Format::SheepdogJsonl => "sheepdog-jsonl",
            Format::Csv => "csv",
        }
    }

    pub(super) fn is_csv(self) -> bool {
        matches!(self, Format::LitellmCsv | Format::SheepdogCsv | Format::Csv)
    }

    /// The endpoint of records that do not name one.
    pub(super) fn default_endpoint(self) -> &'static str {
        match self {
            Format::SheepdogCsv | Format::SheepdogJsonl => "/v1/chat/completions",
            _ => NO_ENDPOINT,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| f.as_str() == t || (t == "json" && *f == Format::Jsonl)).ok_or_else(|| {
            format!(
                "unknown format {s:?}: use one of {}",
                Format::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert!("xml".parse::<Format>().unwrap_err().contains("litellm-csv"));
    }
}
