//! Routing: which provider and upstream model serve a requested model.
//! Built once from the configuration; the request path only reads it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ModelSettings, ProviderKind, Settings};
use crate::providers::{Provider, RouteTarget};

/// One servable model.
#[derive(Debug)]
pub struct ModelRoute {
    pub model: ModelSettings,
    pub provider_name: String,
    pub provider: Arc<Provider>,
    pub target: RouteTarget,
}

impl ModelRoute {
    pub fn is_simulated(&self) -> bool {
        self.provider.kind() == ProviderKind::Simulated
    }
}

#[derive(Debug, Default)]
pub struct Models {
    by_name: HashMap<String, Arc<ModelRoute>>,
    order: Vec<String>,
}

impl Models {
    pub fn build(settings: &Settings, http: reqwest::Client) -> Models {
        let providers: HashMap<&str, Arc<Provider>> =
            settings.providers.iter().map(|p| (p.name.as_str(), Arc::new(Provider::new(p, http.clone())))).collect();
        let mut models = Models::default();
        for m in &settings.models {
            let Some(provider) = providers.get(m.provider.as_str()) else { continue };
            models.order.push(m.name.clone());
            models.by_name.insert(
                m.name.clone(),
                Arc::new(ModelRoute {
                    model: m.clone(),
                    provider_name: m.provider.clone(),
                    provider: provider.clone(),
                    target: RouteTarget { upstream_model: m.upstream_model.clone() },
                }),
            );
        }
        models
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ModelRoute>> {
        self.by_name.get(name)
    }

    /// Models in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelRoute>> {
        self.order.iter().filter_map(|n| self.by_name.get(n))
    }
}
