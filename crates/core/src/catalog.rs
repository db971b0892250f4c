//! The in-memory catalog of tenants and keys that the request path reads
//! (never the database). It is rebuilt from the store after every admin
//! change and whenever another replica bumps the catalog version (polled).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sheepdog_types::{Limits, TenantStatus, Tier};

use crate::fastmap::FastMap;
use crate::shutdown::Shutdown;
use sheepdog_store::{Store, StoreError, TenantRow};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub status: TenantStatus,
    pub limits: Limits,
    pub budget_monthly_nanos: Option<i64>,
    pub budget_hard: bool,
    pub allowed_models: Option<HashSet<String>>,
    pub aliases: Vec<String>,
    /// The credit pool a `pooled` tenant draws on, and whether it is hard.
    pub pool_id: Option<String>,
    pub pool_hard: bool,
}

impl TenantEntry {
    pub fn from_row(t: &TenantRow) -> Self {
        TenantEntry {
            id: t.id.clone(),
            name: t.name.clone(),
            tier: t.tier,
            status: t.status,
            limits: Limits {
                requests_per_minute: t.requests_per_minute.max(0) as u64,
                tokens_per_minute: t.tokens_per_minute.max(0) as u64,
                max_concurrency: t.max_concurrency.map(|c| c.max(0) as u64),
            },
            budget_monthly_nanos: t.budget_monthly_nanos,
            budget_hard: t.budget_hard,
            allowed_models: t.allowed_models.as_ref().map(|m| m.iter().cloned().collect()),
            aliases: t.aliases.clone(),
            pool_id: t.pool_id.clone(),
            pool_hard: true,
        }
    }

    pub fn may_use(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|m| m.contains(model))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Bound to one tenant.
    Tenant(String),
    /// Acts for the named tenants (`None` = all).
    Platform(Option<HashSet<String>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub id: String,
    pub scope: KeyScope,
}

/// One consistent snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    pub tenants: FastMap<String, Arc<TenantEntry>>,
    pub aliases: FastMap<String, String>,
    /// Active keys by SHA-256 of the key. Revoked keys are absent.
    pub keys: FastMap<[u8; 32], Arc<KeyEntry>>,
}

impl Catalog {
    pub fn tenant(&self, id: &str) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(id)
    }

    /// A tenant by id (any UUID spelling) or alias.
    pub fn resolve(&self, id_or_alias: &str) -> Option<&Arc<TenantEntry>> {
        if let Some(t) = self.tenants.get(id_or_alias) {
            return Some(t);
        }
        if let Some(id) = self.aliases.get(id_or_alias) {
            return self.tenants.get(id);
        }
        let normalized = uuid::Uuid::parse_str(id_or_alias).ok()?.hyphenated().to_string();
        self.tenants.get(&normalized)
    }
}

/// Shared handle on the current snapshot.
#[derive(Debug, Clone)]
pub struct CatalogHandle {
    current: Arc<ArcSwap<Catalog>>,
    store: Store,
}

impl CatalogHandle {
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let h = CatalogHandle { current: Arc::new(ArcSwap::from_pointee(Catalog::default())), store };
        h.reload().await?;
        Ok(h)
    }

    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.current.load()
    }

    /// Rebuilds the snapshot from the store.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let version = self.store.catalog_version().await?;
        let tenants = self.store.list_tenants().await?;
        let keys = self.store.list_keys(None).await?;
        let pool_hard = self.store.pool_hard_flags().await?;
        let mut cat = Catalog { version, ..Catalog::default() };
        for t in &tenants {
            for a in &t.aliases {
                cat.aliases.insert(a.clone(), t.id.clone());
            }
            let mut entry = TenantEntry::from_row(t);
            if let Some(hard) = t.pool_id.as_ref().and_then(|p| pool_hard.get(p)) {
                entry.pool_hard = *hard;
            }
            cat.tenants.insert(t.id.clone(), Arc::new(entry));
        }
        for k in keys {
            if k.revoked_at.is_some() {
                continue;
            }
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(&k.key_hash, &mut hash).is_err() {
                tracing::warn!(key_id = %k.id, "stored key hash is malformed; key ignored");
                continue;
            }
            let scope = match (k.scope.as_str(), k.tenant_id) {
                ("tenant", Some(t)) => KeyScope::Tenant(t),
                ("platform", _) => KeyScope::Platform(k.tenants.map(|l| l.into_iter().collect())),
                _ => continue,
            };
            cat.keys.insert(hash, Arc::new(KeyEntry { id: k.id, scope }));
        }
        self.current.store(Arc::new(cat));
        Ok(())
    }

    /// Polls the catalog version and reloads on change (other replicas' edits).
    pub fn spawn_refresher(&self, every: Duration, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let h = self.clone();
        tokio::spawn(async move {
            let mut ticks = shutdown.ticks(every);
            while ticks.next().await {
                match h.store.catalog_version().await {
                    Ok(v) if v != h.snapshot().version => {
                        if let Err(e) = h.reload().await {
                            tracing::warn!(error = %e, "catalog reload failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "catalog version check failed"),
                }
            }
        })
    }
}
