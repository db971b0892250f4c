//! Routing: which provider and upstream model serve a requested model, and
//! in which order routes are tried — the chosen route (the model's own, or a
//! rollout's side) then the model's `fallbacks` chain. Built once from the
//! configuration (rollout routes are built from it on demand); the request
//! path only reads it.

use crate::fastmap::FastMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ModelSettings, ProviderKind, ProviderSettings, Settings};
use crate::providers::{Provider, RouteTarget};
use crate::resilience::breaker::{Breaker, BreakerConfig};
use crate::resilience::retry::RetryPolicy;

/// A configured upstream with its breaker and retry policy.
#[derive(Debug)]
pub struct ProviderHandle {
    pub name: String,
    pub client: Provider,
    pub breaker: Breaker,
    pub retry: RetryPolicy,
}

impl ProviderHandle {
    fn new(p: &ProviderSettings, http: crate::providers::http::HttpClient) -> Self {
        ProviderHandle {
            name: p.name.clone(),
            client: Provider::new(p, http),
            breaker: Breaker::new(BreakerConfig {
                failure_threshold: p.breaker_failure_threshold,
                error_rate_percent: p.breaker_error_rate_percent,
                min_samples: p.breaker_min_samples,
                window: Duration::from_millis(p.breaker_window_ms),
                open_for: Duration::from_millis(p.breaker_open_ms),
                probe_timeout: Duration::from_millis(p.total_timeout_ms),
            }),
            retry: RetryPolicy {
                max_retries: p.max_retries,
                base: Duration::from_millis(p.retry_base_ms),
                max: Duration::from_millis(p.retry_max_ms),
                ..RetryPolicy::default()
            },
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.client.kind() == ProviderKind::Simulated
    }
}

/// One way to serve a model: a provider, an upstream model, and the prices
/// that apply.
#[derive(Debug)]
pub struct ModelRoute {
    /// The model's name as clients use it, and its prices on this route.
    pub model: ModelSettings,
    pub provider: Arc<ProviderHandle>,
    pub target: RouteTarget,
    /// `x-sheepdog-model` / `x-sheepdog-provider` of answers served by this
    /// route, built once (`None` for a name that is not a valid header value).
    pub model_header: Option<axum::http::HeaderValue>,
    pub provider_header: Option<axum::http::HeaderValue>,
}

impl ModelRoute {
    pub fn new(model: ModelSettings, provider: Arc<ProviderHandle>, target: RouteTarget) -> Self {
        let header = |name: &str| axum::http::HeaderValue::from_str(name).ok();
        ModelRoute {
            model_header: header(&model.name),
            provider_header: header(&provider.name),
            model,
            provider,
            target,
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.provider.is_simulated()
    }
}

#[derive(Debug, Default)]
pub struct Models {
    by_name: FastMap<String, Arc<ModelRoute>>,
    order: Vec<String>,
    providers: FastMap<String, Arc<ProviderHandle>>,
}

impl Models {
    pub fn build(settings: &Settings, http: crate::providers::http::HttpClient) -> Models {
        let providers: FastMap<String, Arc<ProviderHandle>> = settings
            .providers
            .iter()
            .map(|p| (p.name.clone(), Arc::new(ProviderHandle::new(p, http.clone()))))
            .collect();
        let mut models = Models { providers, ..Models::default() };
        for m in &settings.models {
            let Some(provider) = models.providers.get(m.provider.as_str()).cloned() else { continue };
            models.order.push(m.name.clone());
            models.by_name.insert(
                m.name.clone(),
                Arc::new(ModelRoute::new(
                    m.clone(),
                    provider,
                    RouteTarget { upstream_model: m.upstream_model.clone() },
                )),
            );
        }
        models
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ModelRoute>> {
        self.by_name.get(name)
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderHandle>> {
        self.providers.get(name)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderHandle>> {
        self.providers.values()
    }

    /// Models in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelRoute>> {
        self.order.iter().filter_map(|n| self.by_name.get(n))
    }

    /// A route of `model` on another provider/upstream model (a rollout side).
    /// Prices: the given ones, else those of a configured model served by
    /// that provider and upstream model, else the model's own.
    pub fn route_on(
        &self,
        model: &ModelSettings,
        provider: &str,
        upstream_model: &str,
        prices: Option<(i64, i64)>,
    ) -> Option<Arc<ModelRoute>> {
        let handle = self.providers.get(provider)?.clone();
        let mut settings = model.clone();
        let same = self.iter().find(|r| r.provider.name == provider && r.target.upstream_model == upstream_model);
        match (prices, same) {
            (Some((i, o)), _) => {
                settings.input_nanos_per_token = i;
                settings.cached_input_nanos_per_token = i;
                settings.output_nanos_per_token = o;
            }
            (None, Some(r)) => {
                settings.input_nanos_per_token = r.model.input_nanos_per_token;
                settings.cached_input_nanos_per_token = r.model.cached_input_nanos_per_token;
                settings.output_nanos_per_token = r.model.output_nanos_per_token;
            }
            (None, None) => {}
        }
        settings.provider = provider.to_string();
        settings.upstream_model = upstream_model.to_string();
        Some(Arc::new(ModelRoute::new(settings, handle, RouteTarget { upstream_model: upstream_model.to_string() })))
    }

    /// The routes to try, in order: `first`, then the fallbacks of the
    /// requested model (each fallback model's own route), without repeats.
    pub fn plan(&self, requested: &ModelRoute, first: Arc<ModelRoute>) -> Vec<Arc<ModelRoute>> {
        let mut plan = vec![first];
        for name in &requested.model.fallbacks {
            if let Some(r) = self.by_name.get(name) {
                let dup = plan
                    .iter()
                    .any(|p| p.provider.name == r.provider.name && p.target.upstream_model == r.target.upstream_model);
                if !dup {
                    plan.push(r.clone());
                }
            }
        }
        plan
    }
}
