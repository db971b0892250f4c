//! The optional tenants file (`--tenants FILE`): display names, current
//! tiers and tags (such as data residency) of the identifiers found in the
//! logs. TOML or JSON:
//!
//! ```toml
//! dedicated_tags = ["data-residency", "hipaa"]   # optional; these are the defaults plus more
//!
//! [tenants."acme"]            # the identifier as it appears in the logs
//! name = "Acme Corp"
//! tier = "shared"
//! tags = ["data-residency:eu"]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Tags that call for the dedicated tier when no `dedicated_tags` are given.
pub const DEFAULT_DEDICATED_TAGS: &[&str] = &[
    "data-residency",
    "data_residency",
    "residency",
    "dedicated",
    "isolation",
    "hipaa",
    "pci",
    "pci-dss",
    "sovereign",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    #[serde(default)]
    pub dedicated_tags: Option<Vec<String>>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantInfo>,
}

impl TenantsFile {
    /// Parses TOML, or JSON when the text starts with `{`.
    pub fn parse(text: &str, label: &str) -> Result<TenantsFile, String> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("{label}: invalid tenants file (JSON): {e}"))
        } else {
            toml::from_str(text).map_err(|e| format!("{label}: invalid tenants file (TOML): {e}"))
        }
    }

    pub fn get(&self, tenant: &str) -> Option<&TenantInfo> {
        self.tenants.get(tenant)
    }

    /// The tags of `tenant` that call for the dedicated tier: a tag equal to
    /// one of the dedicated tags, or starting with one followed by `:` or `=`
    /// (`data-residency:eu`). Case-insensitive.
    pub fn dedicated_tags_of(&self, tenant: &str) -> Vec<String> {
        let Some(info) = self.get(tenant) else { return Vec::new() };
        let list: Vec<String> = match &self.dedicated_tags {
            Some(l) => l.iter().map(|s| s.to_ascii_lowercase()).collect(),
            None => DEFAULT_DEDICATED_TAGS.iter().map(|s| s.to_string()).collect(),
        };
        info.tags
            .iter()
            .filter(|tag| {
                let t = tag.trim().to_ascii_lowercase();
                list.iter().any(|d| {
                    t == *d
                        || t.strip_prefix(d.as_str()).is_some_and(|rest| rest.starts_with(':') || rest.starts_with('='))
                })
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json() {
        let t = TenantsFile::parse(
            "[tenants.acme]\nname = \"Acme\"\ntags = [\"data-residency:eu\", \"vip\"]\n[tenants.b]\ntags = [\"HIPAA\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(t.dedicated_tags_of("acme"), vec!["data-residency:eu".to_string()]);
        assert_eq!(t.dedicated_tags_of("b"), vec!["HIPAA".to_string()]);
        assert!(t.dedicated_tags_of("nobody").is_empty());
        let j = TenantsFile::parse(
            r#"{"dedicated_tags":["vip"],"tenants":{"acme":{"tags":["vip","residency"]}}}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(j.dedicated_tags_of("acme"), vec!["vip".to_string()]);
        assert!(TenantsFile::parse("[tenants.a]\ncolour = 1\n", "x").unwrap_err().contains("colour"));
    }
}
