//! Configuration: a TOML file plus `SHEEPDOG_<SECTION>__<KEY>` environment
//! overrides (SPEC §2), validated into [`Settings`]. Every error names the key
//! and where its value came from.

mod file;
mod limits;
mod load;
mod providers;
mod settings;
mod validate;

pub use file::{AccountingConfig, Config, ConsoleConfig, GatewayConfig, LogConfig, RedisConfig, TenantConfig};
pub use limits::ListenerLimits;
pub use providers::{
    ModelConfig, ModelMode, PriceValue, ProviderConfig, ProviderKind, DEFAULT_PRICES, SIMULATED_MAX_DELAY_MS,
};
pub use settings::{ConfigError, ModelSettings, ProviderSettings, Secret, Settings};
pub use sheepdog_store::config::{sqlite_path, DatabaseConfig};

#[cfg(test)]
mod tests {
    use super::load::describe_figment_error;
    use super::*;
    use figment::providers::{Format, Serialized, Toml};
    use figment::Figment;

    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        Settings::from_config(config, "test.toml", &|name| (name == "OPENAI_KEY").then(|| "sk-test".to_string()))
    }

    /// `ProviderConfig::default()` is a minimal `[providers.x]` table (only
    /// the required `kind`), and `ModelConfig::default()` with a provider is
    /// a minimal `[models.x]` table.
    #[test]
    fn defaults_equal_minimal_tables() {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[providers.p]\nkind = \"simulated\"\n\n[models.m]\nprovider = \"p\"\n"))
            .extract()
            .unwrap();
        assert_eq!(config.providers["p"], ProviderConfig::default());
        assert_eq!(config.models["m"], ModelConfig { provider: "p".into(), ..ModelConfig::default() });
    }

    #[test]
    fn redis_section_defaults_and_checks() {
        let s = from_toml("[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n").unwrap();
        let r = s.redis.unwrap();
        assert_eq!((r.key_prefix.as_str(), r.timeout_ms, r.on_failure.as_str()), ("sheepdog:", 50, "closed"));
        for (bad, key) in [
            ("url = \"http://x\"", "redis.url"),
            ("url = \"redis://x\"\non_failure = \"maybe\"", "redis.on_failure"),
            ("url = \"redis://x\"\ntimeout_ms = 0", "redis.timeout_ms"),
            ("url = \"redis://x\"\nkey_prefix = \"a b\"", "redis.key_prefix"),
        ] {
            let e = from_toml(&format!("[redis]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        assert_eq!(from_toml("").unwrap().accounting.journal_dir, "data/journal");
    }

    /// The deployment examples under `deploy/` are valid configurations.
    #[test]
    fn the_deployment_examples_load() {
        let systemd = include_str!("../../../../deploy/systemd/sheepdog.toml");
        let s = from_toml(systemd).unwrap();
        assert!(s.redis.is_some());
        let k8s = include_str!("../../../../deploy/kubernetes/sheepdog.yaml");
        let start = k8s.find("sheepdog.toml: |\n").unwrap() + "sheepdog.toml: |\n".len();
        let end = k8s[start..].find("\n---").unwrap() + start;
        let toml: String =
            k8s[start..end].lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
        let s = from_toml(&toml).unwrap();
        assert_eq!(s.accounting.journal_dir, "/var/lib/sheepdog/journal");
    }

    #[test]
    fn defaults_serve_the_price_table_from_the_simulator() {
        let s = from_toml("").unwrap();
        assert_eq!(s.providers.len(), 1);
        assert_eq!(s.providers[0].kind, ProviderKind::Simulated);
        let names: Vec<_> = s.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"]);
        let ds = &s.models[3];
        assert_eq!(ds.input_nanos_per_token, 100);
        assert_eq!(ds.output_nanos_per_token, 420);
        assert_eq!(s.models[2].input_nanos_per_token, 300);
        assert_eq!(s.models[2].output_nanos_per_token, 2500);
        assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.gateway.max_body_bytes, 33_554_432);
    }

    #[test]
    fn explicit_providers_and_prices() {
        let s = from_toml(
            r#"
            [providers.openai]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1/"
            api_key_env = "OPENAI_KEY"
            [models."gpt-4.1"]
            provider = "openai"
            input_per_mtok = 2.0
            output_per_mtok = "8"
            [models.mini]
            provider = "openai"
            upstream_model = "gpt-4.1-mini"
            input_per_mtok = 0.4
            output_per_mtok = 1.6
            fallbacks = ["gpt-4.1"]
            "#,
        )
        .unwrap();
        assert_eq!(s.providers[0].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.providers[0].api_key.as_ref().unwrap().expose(), "sk-test");
        assert!(!format!("{:?}", s.providers[0]).contains("sk-test"));
        let mini = s.models.iter().find(|m| m.name == "mini").unwrap();
        assert_eq!((mini.input_nanos_per_token, mini.output_nanos_per_token), (400, 1600));
        assert_eq!(mini.upstream_model, "gpt-4.1-mini");
    }

    #[test]
    fn errors_name_the_key() {
        let e = from_toml("[gateway]\nmax_body_bytes = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("gateway.max_body_bytes"), "{e}");
        let e = from_toml("[providers.x]\nkind = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("providers.x.kind"), "{e}");
        let e = from_toml(
            "[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"y\"\ninput_per_mtok=1\noutput_per_mtok=1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.\"m\".provider") && e.contains("test.toml"), "{e}");
        let e = from_toml(
            "[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"x\"\ninput_per_mtok=0.0001\noutput_per_mtok=1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input_per_mtok"), "{e}");
        let e = from_toml("[providers.x]\nkind = \"openai\"\n[models.m]\nprovider = \"x\"").unwrap_err().to_string();
        assert!(e.contains("is required"), "{e}");
        let e = from_toml("[gateway]\nworkers = 5000").unwrap_err().to_string();
        assert!(e.contains("gateway.workers"), "{e}");
        let e = from_toml("[gateway]\nworkers = -1").unwrap_err().to_string();
        assert!(e.contains("gateway.workers"), "{e}");
        let e = from_toml("[gateway]\nlisten = \"nowhere\"").unwrap_err().to_string();
        assert!(e.contains("gateway.listen"), "{e}");
        let e = from_toml("[gatewy]\nlisten = \"1.2.3.4:5\"").unwrap_err().to_string();
        assert!(e.contains("gatewy"), "{e}");
        let e = from_toml("[providers.s]\nkind = \"simulated\"\nttft_ms = 60001").unwrap_err().to_string();
        assert!(e.contains("providers.s.ttft_ms") && e.contains("60000"), "{e}");
        let e = from_toml("[tenant]\nmax_keys = 0").unwrap_err().to_string();
        assert!(e.contains("tenant.max_keys"), "{e}");
        let e = from_toml("[gateway]\nmetrics_listen = \"127.0.0.1:8080\"").unwrap_err().to_string();
        assert!(e.contains("gateway.metrics_listen"), "{e}");
    }

    #[test]
    fn metrics_token_and_key_limit() {
        let s = from_toml("").unwrap();
        assert_eq!((s.tenant.max_keys, s.metrics_token.is_none(), s.gateway.metrics_listen), (100, true, None));
        let s = from_toml(
            "[gateway]\nmetrics_token_env = \"OPENAI_KEY\"\nmetrics_listen = \"127.0.0.1:9100\"\n[tenant]\nmax_keys = 3",
        )
        .unwrap();
        assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some("sk-test"));
        assert_eq!((s.tenant.max_keys, s.gateway.metrics_listen.map(|a| a.port())), (3, Some(9100)));
        assert!(!format!("{s:?}").contains("sk-test"));
        // A variable that is unset (or empty) leaves /metrics public.
        let s = from_toml("[gateway]\nmetrics_token_env = \"UNSET_VARIABLE\"").unwrap();
        assert!(s.metrics_token.is_none());
    }

    #[test]
    fn connection_limits_default_per_spec_and_refuse_zero() {
        let s = from_toml("[console]\nidle_timeout_ms = 5000").unwrap();
        for l in [s.gateway.limits(), s.console.limits()] {
            assert_eq!(l.header_read_timeout, std::time::Duration::from_secs(10));
            assert_eq!(l.max_connections, 10_000);
            assert_eq!(l.shutdown_grace, std::time::Duration::from_secs(30));
        }
        assert_eq!(s.gateway.limits().idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(s.console.limits().idle_timeout, std::time::Duration::from_secs(5));
        // A zero grace is allowed (stop at once, still draining accounting).
        assert!(from_toml("[gateway]\nshutdown_grace_secs = 0").is_ok());
        for (section, key) in [
            ("gateway", "header_read_timeout_ms"),
            ("gateway", "idle_timeout_ms"),
            ("gateway", "max_connections"),
            ("console", "header_read_timeout_ms"),
            ("console", "idle_timeout_ms"),
            ("console", "max_connections"),
        ] {
            let e = from_toml(&format!("[{section}]\n{key} = 0")).unwrap_err().to_string();
            assert!(e.contains(&format!("{section}.{key}")) && e.contains("test.toml"), "{e}");
        }
        let e = from_toml("[console]\nshutdown_grace_secs = 100000").unwrap_err().to_string();
        assert!(e.contains("console.shutdown_grace_secs"), "{e}");
    }
}
