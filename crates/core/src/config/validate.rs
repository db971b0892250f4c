//! Validation: a parsed [`Config`] checked key by key into [`Settings`]
//! (providers and models resolved, prices made exact).

use sheepdog_types::Nanos;

use super::file::Config;
use super::limits::check_limits;
use super::providers::{ModelMode, PriceValue, ProviderKind, DEFAULT_PRICES, SIMULATED_MAX_DELAY_MS};
use super::settings::{ConfigError, ModelSettings, ProviderSettings, Secret, Settings};

impl Settings {
    /// Validates a parsed config. `env` looks up environment variables (for keys).
    pub fn from_config(
        config: Config,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let err = |key: &str, msg: String| ConfigError(format!("{key}: {msg} (in {source})"));
        if config.gateway.max_body_bytes == 0 {
            return Err(err("gateway.max_body_bytes", "must be greater than 0".into()));
        }
        if config.gateway.workers > 1024 {
            return Err(err("gateway.workers", format!("{} is more than 1024 threads", config.gateway.workers)));
        }
        if !(config.database.url.starts_with("sqlite:")
            || config.database.url.starts_with("postgres://")
            || config.database.url.starts_with("postgresql://"))
        {
            return Err(err("database.url", "must start with sqlite: or postgres://".into()));
        }
        if config.accounting.batch_size == 0 || config.accounting.queue_capacity == 0 {
            return Err(err("accounting", "batch_size and queue_capacity must be greater than 0".into()));
        }
        if let Some(r) = &config.redis {
            if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://") || r.url.starts_with("unix://")) {
                return Err(err("redis.url", "must start with redis://, rediss:// or unix://".into()));
            }
            if !matches!(r.on_failure.as_str(), "closed" | "open") {
                return Err(err("redis.on_failure", format!("{:?} is not closed or open", r.on_failure)));
            }
            if r.timeout_ms == 0 || r.timeout_ms > 10_000 {
                return Err(err("redis.timeout_ms", format!("{} is not from 1 to 10000", r.timeout_ms)));
            }
            if r.key_prefix.len() > 64 || r.key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(err("redis.key_prefix", "must be at most 64 characters without spaces".into()));
            }
        }
        if !matches!(config.log.format.as_str(), "text" | "json") {
            return Err(err("log.format", format!("{:?} is not text or json", config.log.format)));
        }
        if !(config.console.gateway_url.starts_with("http://") || config.console.gateway_url.starts_with("https://")) {
            return Err(err("console.gateway_url", "must be an http:// or https:// URL".into()));
        }
        if let Some(u) = &config.console.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.trim_end_matches('/').matches('/').count() != 2
            {
                return Err(err("console.public_url", "must be an origin such as https://console.example.com".into()));
            }
        }
        if config.console.session_idle_timeout_secs == 0
            || config.console.session_absolute_timeout_secs < config.console.session_idle_timeout_secs
        {
            return Err(err(
                "console.session_absolute_timeout_secs",
                "timeouts must be positive and the absolute timeout at least the idle one".into(),
            ));
        }
        for (section, l) in [("gateway", config.gateway.limits()), ("console", config.console.limits())] {
            check_limits(section, &l).map_err(|(key, msg)| err(&key, msg))?;
        }
        for (i, p) in config.console.trusted_proxies.iter().enumerate() {
            sheepdog_types::net::Cidr::parse(p).map_err(|e| err(&format!("console.trusted_proxies[{i}]"), e))?;
        }
        let admin_token = env(&config.gateway.admin_token_env).filter(|s| !s.is_empty()).map(Secret::new);
        let metrics_token = match config.gateway.metrics_token_env.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(var) => env(var).filter(|s| !s.is_empty()).map(Secret::new),
        };
        if config.gateway.metrics_listen.is_some_and(|m| m == config.gateway.listen) {
            return Err(err("gateway.metrics_listen", "must differ from gateway.listen".into()));
        }
        if config.tenant.max_keys == 0 {
            return Err(err("tenant.max_keys", "must be at least 1".into()));
        }

        let mut providers = Vec::new();
        let explicit = !config.providers.is_empty();
        if explicit {
            for (name, p) in &config.providers {
                let key = format!("providers.{name}");
                let base_url = match (&p.base_url, p.kind) {
                    (Some(u), _) => {
                        if !(u.starts_with("http://") || u.starts_with("https://")) {
                            return Err(err(&format!("{key}.base_url"), format!("{u:?} is not an http(s) URL")));
                        }
                        u.trim_end_matches('/').to_string()
                    }
                    (None, ProviderKind::Openai) => "https://api.openai.com/v1".into(),
                    (None, ProviderKind::Anthropic) => "https://api.anthropic.com/v1".into(),
                    (None, ProviderKind::Gemini) => "https://generativelanguage.googleapis.com/v1beta".into(),
                    (None, ProviderKind::Simulated) => String::new(),
                };
                let api_key = match &p.api_key_env {
                    Some(var) => env(var).filter(|s| !s.is_empty()).map(Secret::new),
                    None => None,
                };
                let reserved_total: u64 = p.reserved.values().map(|v| u64::from(*v)).sum();
                match p.max_concurrency {
                    Some(0) => return Err(err(&format!("{key}.max_concurrency"), "must be at least 1".into())),
                    Some(max) if reserved_total >= u64::from(max) => {
                        return Err(err(
                            &format!("{key}.reserved"),
                            format!("reserves {reserved_total} slots, leaving none of max_concurrency = {max} shared"),
                        ))
                    }
                    None if reserved_total > 0 => {
                        return Err(err(&format!("{key}.reserved"), "needs max_concurrency to reserve from".into()))
                    }
                    _ => {}
                }
                if p.max_queue_per_tenant == 0 || p.queue_timeout_ms == 0 {
                    return Err(err(&format!("{key}.max_queue_per_tenant"), "queue limits must be at least 1".into()));
                }
                if p.error_ppm > 1_000_000 {
                    return Err(err(&format!("{key}.error_ppm"), "must be at most 1000000".into()));
                }
                let max_delay = SIMULATED_MAX_DELAY_MS;
                for (field, v) in
                    [("latency_ms", p.latency_ms), ("ttft_ms", p.ttft_ms), ("chunk_interval_ms", p.chunk_interval_ms)]
                {
                    if v > max_delay {
                        return Err(err(&format!("{key}.{field}"), format!("{v} is more than {max_delay} ms")));
                    }
                }
                providers.push(ProviderSettings {
                    name: name.clone(),
                    kind: p.kind,
                    base_url,
                    api_key,
                    api_version: p.api_version.clone(),
                    connect_timeout_ms: p.connect_timeout_ms,
                    first_byte_timeout_ms: p.first_byte_timeout_ms,
                    stream_idle_timeout_ms: p.stream_idle_timeout_ms,
                    total_timeout_ms: p.total_timeout_ms,
                    latency_ms: p.latency_ms,
                    ttft_ms: p.ttft_ms,
                    chunk_interval_ms: p.chunk_interval_ms,
                    error_ppm: p.error_ppm,
                    max_concurrency: p.max_concurrency,
                    requests_per_minute: p.requests_per_minute,
                    tokens_per_minute: p.tokens_per_minute,
                    reserved: p.reserved.clone().into_iter().collect(),
                    queue_timeout_ms: p.queue_timeout_ms,
                    max_queue_per_tenant: p.max_queue_per_tenant,
                    max_retries: p.max_retries,
                    retry_base_ms: p.retry_base_ms,
                    retry_max_ms: p.retry_max_ms,
                    breaker_failure_threshold: p.breaker_failure_threshold.max(1),
                    breaker_error_rate_percent: p.breaker_error_rate_percent.clamp(1, 100),
                    breaker_min_samples: p.breaker_min_samples.max(1),
                    breaker_window_ms: p.breaker_window_ms.max(1),
                    breaker_open_ms: p.breaker_open_ms.max(1),
                });
            }
        } else {
            providers.push(ProviderSettings::simulated("simulated"));
        }

        let mut models = Vec::new();
        if config.models.is_empty() {
            // Every model of the default price table, served by the first provider
            // (the simulated one when no provider is configured).
            let provider = providers.first().map(|p| p.name.clone()).unwrap_or_default();
            for (name, input, output) in DEFAULT_PRICES {
                let i = PriceValue::Text(input.into()).nanos_per_token().map_err(|e| err("models", e))?;
                let o = PriceValue::Text(output.into()).nanos_per_token().map_err(|e| err("models", e))?;
                models.push(ModelSettings {
                    name: name.into(),
                    provider: provider.clone(),
                    upstream_model: name.into(),
                    input_nanos_per_token: i,
                    output_nanos_per_token: o,
                    cached_input_nanos_per_token: i,
                    fallbacks: Vec::new(),
                    max_output_tokens: None,
                    mode: ModelMode::Chat,
                });
            }
        }
        for (name, m) in &config.models {
            let key = format!("models.\"{name}\"");
            if !providers.iter().any(|p| p.name == m.provider) {
                return Err(err(
                    &format!("{key}.provider"),
                    format!("{:?} names no provider in [providers]", m.provider),
                ));
            }
            let upstream_model = m.upstream_model.clone().unwrap_or_else(|| name.clone());
            let default_price =
                DEFAULT_PRICES.iter().find(|(n, _, _)| *n == name.as_str() || *n == upstream_model.as_str());
            let price = |v: &Option<PriceValue>, field: &str, fallback: Option<&str>| -> Result<Nanos, ConfigError> {
                match (v, fallback) {
                    (Some(p), _) => p.nanos_per_token().map_err(|e| err(&format!("{key}.{field}"), e)),
                    (None, Some(d)) => {
                        PriceValue::Text(d.into()).nanos_per_token().map_err(|e| err(&format!("{key}.{field}"), e))
                    }
                    (None, None) => Err(err(
                        &format!("{key}.{field}"),
                        "is required (the model is not in the default price table)".into(),
                    )),
                }
            };
            let embedding = m.mode == ModelMode::Embedding;
            if embedding {
                let kind = providers.iter().find(|p| p.name == m.provider).map(|p| p.kind);
                if kind == Some(ProviderKind::Anthropic) {
                    return Err(err(
                        &format!("{key}.mode"),
                        format!("\"embedding\" needs an openai, gemini or simulated provider; {:?} is anthropic, which has no embeddings API", m.provider),
                    ));
                }
            }
            let input = price(&m.input_per_mtok, "input_per_mtok", default_price.map(|d| d.1))?;
            // An embedding produces no output tokens: its output price defaults to 0.
            let output_default = if embedding { Some("0") } else { default_price.map(|d| d.2) };
            let output = price(&m.output_per_mtok, "output_per_mtok", output_default)?;
            let cached = match &m.cached_input_per_mtok {
                Some(p) => p.nanos_per_token().map_err(|e| err(&format!("{key}.cached_input_per_mtok"), e))?,
                None => input,
            };
            models.push(ModelSettings {
                name: name.clone(),
                provider: m.provider.clone(),
                upstream_model,
                input_nanos_per_token: input,
                output_nanos_per_token: output,
                cached_input_nanos_per_token: cached,
                fallbacks: m.fallbacks.clone(),
                max_output_tokens: m.max_output_tokens,
                mode: m.mode,
            });
        }
        for m in &models {
            for f in &m.fallbacks {
                let key = format!("models.\"{}\".fallbacks", m.name);
                match models.iter().find(|x| &x.name == f) {
                    None => return Err(err(&key, format!("{f:?} is not a configured model"))),
                    Some(x) if x.mode != m.mode => {
                        return Err(err(
                            &key,
                            format!(
                                "{f:?} is a {} model and {:?} a {} model: a fallback must serve the same mode",
                                x.mode.as_str(),
                                m.name,
                                m.mode.as_str()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Settings {
            source: source.to_string(),
            gateway: config.gateway,
            console: config.console,
            database: config.database,
            redis: config.redis,
            accounting: config.accounting,
            log: config.log,
            tenant: config.tenant,
            metrics_token,
            admin_token,
            process_admin_token: None,
            providers,
            models,
        })
    }
}
