//! Price tables and model mappings. Prices are integer nano-USD per token
//! (a USD price per 1M tokens with at most three decimal places, exactly as
//! Sheepdog's configuration takes them), so every cost is exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sheepdog_types::money::parse_decimal_scaled;
use sheepdog_types::Nanos;

/// Prices of one model in nano-USD per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub input: Nanos,
    pub output: Nanos,
    /// Prompt tokens served from the provider's cache.
    pub cached_input: Nanos,
}

impl Price {
    /// Cost of a token mix: uncached input, cached input (at most `input`)
    /// and output times their prices, in nano-USD (i128: never overflows).
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> i128 {
        let cached = cached.min(input);
        i128::from(input - cached) * i128::from(self.input)
            + i128::from(cached) * i128::from(self.cached_input)
            + i128::from(output) * i128::from(self.output)
    }
}

/// The default price table of SPEC §2 (USD per 1M tokens, input/output);
/// the same as `sheepdog_gateway::config::DEFAULT_PRICES` (a gateway test
/// checks that they agree).
pub const DEFAULT_PRICES: [(&str, &str, &str); 4] = [
    ("gpt-4.1", "2", "8"),
    ("claude-sonnet-4.5", "3", "15"),
    ("gemini-2.5-flash", "0.30", "2.50"),
    ("deepseek-v3.2", "0.10", "0.42"),
];

/// A price table: model name → prices, with a label saying where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub label: String,
    models: BTreeMap<String, Price>,
}

/// Parses a USD price per 1M tokens (≤ 3 decimal places) into nano-USD per token.
pub fn nanos_per_token(text: &str) -> Result<Nanos, String> {
    let v = parse_decimal_scaled(text, 3)
        .map_err(|e| format!("{text:?} is not a USD price per 1M tokens with at most 3 decimal places ({e})"))?;
    if v < 0 {
        return Err(format!("{text:?} is negative"));
    }
    Ok(v)
}

fn toml_price(v: &toml::Value, what: &str) -> Result<Nanos, String> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) if f.is_finite() => format!("{f}"),
        toml::Value::String(s) => s.clone(),
        _ => return Err(format!("{what}: not a number or decimal string")),
    };
    nanos_per_token(&text).map_err(|e| format!("{what}: {e}"))
}

impl PriceTable {
    pub fn new(label: impl Into<String>) -> Self {
        PriceTable { label: label.into(), models: BTreeMap::new() }
    }

    /// SPEC §2's default table.
    pub fn default_table() -> Self {
        let mut t = PriceTable::new("default price table (SPEC §2)");
        for (name, i, o) in DEFAULT_PRICES {
            // The constants are valid; a failure would show as a missing price.
            if let (Ok(i), Ok(o)) = (nanos_per_token(i), nanos_per_token(o)) {
                t.insert(name, Price { input: i, output: o, cached_input: i });
            }
        }
        t
    }

    pub fn insert(&mut self, model: &str, price: Price) {
        self.models.insert(model.to_string(), price);
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn contains(&self, model: &str) -> bool {
        self.lookup(model).is_some()
    }

    /// Parses a TOML price file: `[models."NAME"]` tables (the shape of
    /// Sheepdog's configuration, whose other keys are ignored) or top-level
    /// `["NAME"]` tables, each with `input_per_mtok`, `output_per_mtok` and
    /// optionally `cached_input_per_mtok` (USD per 1M tokens).
    pub fn from_toml(text: &str, label: &str) -> Result<PriceTable, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("{label}: not valid TOML: {e}"))?;
        let models = match doc.get("models") {
            Some(toml::Value::Table(m)) => m.clone(),
            Some(_) => return Err(format!("{label}: `models` must be a table of models")),
            None => doc.clone(),
        };
        let mut t = PriceTable::new(label);
        for (name, v) in &models {
            let Some(m) = v.as_table() else {
                // Top-level keys that are not tables (e.g. in a full config) are not models.
                continue;
            };
            let key = format!("{label}: models.\"{name}\"");
            let input = match m.get("input_per_mtok") {
                Some(v) => toml_price(v, &format!("{key}.input_per_mtok"))?,
                None => match m.get("provider") {
                    // A Sheepdog config model without prices takes the default table's.
                    Some(_) => match PriceTable::default_table().models.get(name.as_str()) {
                        Some(p) => p.input,
                        None => return Err(format!("{key}.input_per_mtok is required")),
                    },
                    None => continue,
                },
            };
            let output = match m.get("output_per_mtok") {
                Some(v) => toml_price(v, &format!("{key}.output_per_mtok"))?,
                None => match PriceTable::default_table().models.get(name.as_str()) {
                    Some(p) => p.output,
                    None => return Err(format!("{key}.output_per_mtok is required")),
                },
            };
            let cached_input = match m.get("cached_input_per_mtok") {
                Some(v) => toml_price(v, &format!("{key}.cached_input_per_mtok"))?,
                None => input,
            };
            t.insert(name, Price { input, output, cached_input });
        }
        if t.is_empty() {
            return Err(format!("{label}: no model prices found (expected [models.\"NAME\"] tables with input_per_mtok and output_per_mtok)"));
        }
        Ok(t)
    }

    /// This table with `other`'s models added or replacing.
    pub fn overlay(&self, other: &PriceTable) -> PriceTable {
        let mut t = self.clone();
        t.label = format!("{} over {}", other.label, self.label);
        for (k, v) in &other.models {
            t.models.insert(k.clone(), *v);
        }
        t
    }

    /// The price of a model as logs name it: the exact name, else
    /// case-insensitively, else without a provider prefix (`openai/gpt-4.1`)
    /// or a date suffix (`gpt-4.1-2025-04-14`, `…-20250414`). Returns the
    /// table's name for it too.
    pub fn lookup(&self, model: &str) -> Option<(&str, &Price)> {
        if let Some((k, v)) = self.models.get_key_value(model) {
            return Some((k.as_str(), v));
        }
        let mut candidates = vec![model.to_string()];
        if let Some((_, last)) = model.rsplit_once('/') {
            candidates.push(last.to_string());
        }
        for c in candidates.clone() {
            if let Some(s) = strip_date_suffix(&c) {
                candidates.push(s.to_string());
            }
        }
        for c in &candidates {
            if let Some((k, v)) = self.models.iter().find(|(k, _)| k.eq_ignore_ascii_case(c)) {
                return Some((k.as_str(), v));
            }
        }
        None
    }
}

/// `gpt-4.1-2025-04-14` → `gpt-4.1`; `claude-x-20250929` → `claude-x`.
fn strip_date_suffix(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let is_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if b.len() > 11 {
        let tail = &b[b.len() - 11..];
        if tail[0] == b'-'
            && is_digits(&tail[1..5])
            && tail[5] == b'-'
            && is_digits(&tail[6..8])
            && tail[8] == b'-'
            && is_digits(&tail[9..11])
        {
            return Some(&name[..name.len() - 11]);
        }
    }
    if b.len() > 9 {
        let tail = &b[b.len() - 9..];
        if tail[0] == b'-' && is_digits(&tail[1..]) {
            return Some(&name[..name.len() - 9]);
        }
    }
    None
}

/// A model mapping for the projection: `gpt-4.1=deepseek-v3.2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMap(pub BTreeMap<String, String>);

impl ModelMap {
    /// Parses `FROM=TO[,FROM=TO...]`; may be called for each repeated flag.
    pub fn parse_into(&mut self, text: &str) -> Result<(), String> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = part
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| format!("model mapping {part:?} must look like FROM=TO (e.g. gpt-4.1=deepseek-v3.2)"))?;
            self.0.insert(from.to_string(), to.to_string());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The model a request for `model` (whose price-table name is `priced_as`) moves to.
    pub fn target<'a>(&'a self, model: &'a str, priced_as: Option<&'a str>) -> &'a str {
        if let Some(t) = self.0.get(model) {
            return t;
        }
        if let Some(p) = priced_as {
            if let Some(t) = self.0.get(p) {
                return t;
            }
        }
        model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_is_exact() {
        let t = PriceTable::default_table();
        let p = t.lookup("deepseek-v3.2").unwrap().1;
        assert_eq!((p.input, p.output, p.cached_input), (100, 420, 100));
        let p = t.lookup("gemini-2.5-flash").unwrap().1;
        assert_eq!((p.input, p.output), (300, 2500));
        assert_eq!(t.lookup("gpt-4.1").unwrap().1.cost(1_000_000, 0, 1_000_000), 10_000_000_000);
    }

    #[test]
    fn lookup_normalizes_names() {
        let t = PriceTable::default_table();
        assert_eq!(t.lookup("gpt-4.1-2025-04-14").unwrap().0, "gpt-4.1");
        assert_eq!(t.lookup("openai/gpt-4.1").unwrap().0, "gpt-4.1");
        assert_eq!(t.lookup("GPT-4.1").unwrap().0, "gpt-4.1");
        assert_eq!(t.lookup("claude-sonnet-4.5-20250929").unwrap().0, "claude-sonnet-4.5");
        assert!(t.lookup("gpt-4.1-mini").is_none());
        assert!(t.lookup("llama").is_none());
    }

    #[test]
    fn toml_tables_and_overlay() {
        let t = PriceTable::from_toml(
            "[models.\"gpt-4.1\"]\ninput_per_mtok = 1.5\noutput_per_mtok = \"6\"\ncached_input_per_mtok = 0.375\n\n[mini]\ninput_per_mtok = 0.4\noutput_per_mtok = 1.6\n",
            "p.toml",
        );
        // `models` present: only its tables count.
        let t = t.unwrap();
        let p = t.lookup("gpt-4.1").unwrap().1;
        assert_eq!((p.input, p.output, p.cached_input), (1500, 6000, 375));
        assert!(t.lookup("mini").is_none());
        let flat = PriceTable::from_toml("[mini]\ninput_per_mtok = 0.4\noutput_per_mtok = 1.6\n", "f.toml").unwrap();
        assert_eq!(flat.lookup("mini").unwrap().1.output, 1600);
        let o = PriceTable::default_table().overlay(&t);
        assert_eq!(o.lookup("gpt-4.1").unwrap().1.input, 1500);
        assert_eq!(o.lookup("deepseek-v3.2").unwrap().1.input, 100);
        let e = PriceTable::from_toml("[m]\ninput_per_mtok = 0.0001\noutput_per_mtok = 1\n", "x.toml").unwrap_err();
        assert!(e.contains("input_per_mtok") && e.contains("x.toml"), "{e}");
        assert!(PriceTable::from_toml("nonsense = [", "y").is_err());
        assert!(PriceTable::from_toml("a = 1", "y").unwrap_err().contains("no model prices"));
    }

    #[test]
    fn sheepdog_config_shape() {
        let t = PriceTable::from_toml(
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[providers.x]\nkind = \"openai\"\n[models.\"gpt-4.1\"]\nprovider = \"x\"\n[models.m]\nprovider = \"x\"\ninput_per_mtok = 1\noutput_per_mtok = 2\n",
            "sheepdog.toml",
        )
        .unwrap();
        assert_eq!(t.lookup("gpt-4.1").unwrap().1.output, 8000);
        assert_eq!(t.lookup("m").unwrap().1.output, 2000);
    }

    #[test]
    fn mappings() {
        let mut m = ModelMap::default();
        m.parse_into("gpt-4.1=deepseek-v3.2, claude-sonnet-4.5 = gemini-2.5-flash").unwrap();
        assert_eq!(m.target("gpt-4.1", None), "deepseek-v3.2");
        assert_eq!(m.target("gpt-4.1-2025-04-14", Some("gpt-4.1")), "deepseek-v3.2");
        assert_eq!(m.target("other", None), "other");
        assert!(m.parse_into("nope").is_err());
        assert!(m.parse_into("a=").is_err());
    }
}
