//! Loading: the TOML file (or text) merged over the defaults, then the
//! `SHEEPDOG_<SECTION>__<KEY>` environment; errors name the key and where
//! its value came from.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use super::file::Config;
use super::settings::{ConfigError, Settings};

impl Settings {
    /// Loads the file (if any) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let source = match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!("config file {} does not exist", path.display())));
                }
                fig = fig.merge(Toml::file_exact(path));
                path.display().to_string()
            }
            None => "built-in defaults".to_string(),
        };
        fig = fig.merge(Env::prefixed("SHEEPDOG_").filter(|k| k.as_str().contains("__")).split("__"));
        let config: Config = fig.extract().map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, &source, &|name| std::env::var(name).ok())
    }

    /// Loads a configuration from TOML text (no file, no environment
    /// overrides), then validates it as [`Settings::load`] does. `source`
    /// names the text in errors; `env` looks up environment variables (for keys).
    pub fn from_toml_str(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, source, env)
    }
}

pub(super) fn describe_figment_error(e: figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e {
        let key = if err.path.is_empty() {
            String::from("(top level)")
        } else {
            err.path.iter().filter(|p| p.as_str() != "default").cloned().collect::<Vec<_>>().join(".")
        };
        let source = match &err.metadata {
            Some(md) if md.name.contains("environment") => {
                format!("environment variable SHEEPDOG_{}", key.to_uppercase().replace('.', "__"))
            }
            Some(md) => match &md.source {
                Some(src) => format!("{} ({src})", md.name),
                None => md.name.to_string(),
            },
            None => "configuration".into(),
        };
        parts.push(format!("{key}: {} (from {source})", err.kind));
    }
    parts.join("; ")
}
