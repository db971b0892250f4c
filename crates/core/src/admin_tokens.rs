//! Admin API tokens: which bearer tokens the admin API accepts, the stored
//! (bootstrap or rotated) token and its rotation.
//!
//! - `gateway.admin_token_env` set (the variable holds a token): that token
//!   is the admin token; the stored one is not accepted, and rotation is
//!   refused (change the variable and restart instead).
//! - Otherwise the stored token: created on first start (printed once, only
//!   its SHA-256 is stored in `settings.admin_token_sha256`) and replaced by
//!   `sheepdog admin-token rotate` or `POST /admin/v1/admin-tokens/rotate`.
//!   Every gateway process re-reads the stored hash every
//!   [`REFRESH_EVERY`], so a rotated-out token stops working on every
//!   replica within a second; the request path only reads memory.
//! - `sheepdog serve` also accepts its own per-process token (the console's).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::auth;
use crate::config::{Secret, Settings};
use crate::shutdown::Shutdown;
use sheepdog_store::{AuditEntry, Store, StoreError};

/// The setting holding the hex SHA-256 of the stored admin token.
pub const SETTING: &str = "admin_token_sha256";
/// How often each gateway re-reads the stored token's hash.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// The admin tokens this process accepts.
#[derive(Debug)]
pub struct AdminTokens {
    /// The environment token and/or this process's own token.
    fixed: Vec<[u8; 32]>,
    /// The stored token's hash (unused when the environment manages the token).
    stored: ArcSwapOption<[u8; 32]>,
    /// `Some(variable)` when `gateway.admin_token_env` holds the token.
    env_managed: Option<String>,
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "the admin token is managed by the environment variable {0} (gateway.admin_token_env): \
         change it there and restart the gateways; the stored token is not used"
    )]
    EnvManaged(String),
    #[error("the admin token was rotated by someone else at the same time; try again")]
    Concurrent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash.trim(), &mut hash).ok().map(|_| hash)
}

/// A new admin token (`sd-admin-` and 40 random characters).
pub fn generate() -> String {
    format!("sd-admin-{}", &auth::generate_key()[auth::KEY_PREFIX.len()..])
}

/// The first 12 hex digits of a token's SHA-256 (names a token in the audit log).
pub fn fingerprint(token: &str) -> String {
    auth::hash_key_hex(token)[..12].to_string()
}

impl AdminTokens {
    /// Loads the tokens for this process; on first start (no stored token and
    /// no environment token) creates the stored token and returns it to be
    /// shown once.
    pub async fn bootstrap(settings: &Settings, store: &Store) -> Result<(AdminTokens, Option<Secret>), StoreError> {
        let fixed: Vec<[u8; 32]> = [&settings.admin_token, &settings.process_admin_token]
            .into_iter()
            .flatten()
            .map(|t| auth::hash_key(t.expose()))
            .collect();
        if settings.admin_token.is_some() {
            let tokens = AdminTokens {
                fixed,
                stored: ArcSwapOption::empty(),
                env_managed: Some(settings.gateway.admin_token_env.clone()),
            };
            return Ok((tokens, None));
        }
        let tokens = AdminTokens { fixed, stored: ArcSwapOption::empty(), env_managed: None };
        let mut created = None;
        if store.get_setting(SETTING).await?.is_none() {
            let token = generate();
            if store.insert_setting_if_absent(SETTING, &auth::hash_key_hex(&token)).await? {
                created = Some(Secret::new(token));
            }
        }
        tokens.reload(store).await?;
        Ok((tokens, created))
    }

    /// Tokens for tests and tools: exactly these, nothing stored.
    pub fn fixed(tokens: &[&str]) -> AdminTokens {
        AdminTokens {
            fixed: tokens.iter().map(|t| auth::hash_key(t)).collect(),
            stored: ArcSwapOption::empty(),
            env_managed: None,
        }
    }

    /// The environment variable managing the token, if one does.
    pub fn env_managed(&self) -> Option<&str> {
        self.env_managed.as_deref()
    }

    /// Whether `token` is an admin token (constant-time comparison of hashes; memory only).
    pub fn accepts(&self, token: &str) -> bool {
        let h = auth::hash_key(token);
        let eq = |known: &[u8; 32]| known.iter().zip(h.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        let mut ok = false;
        for known in &self.fixed {
            ok |= eq(known);
        }
        if self.env_managed.is_none() {
            if let Some(stored) = &*self.stored.load() {
                ok |= eq(stored);
            }
        }
        ok
    }

    /// Re-reads the stored token's hash.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        if self.env_managed.is_some() {
            return Ok(());
        }
        let hash = store.get_setting(SETTING).await?.as_deref().and_then(parse_hash);
        if hash.is_none() {
            tracing::warn!("no valid stored admin token; only the environment or process token is accepted");
        }
        self.stored.store(hash.map(Arc::new));
        Ok(())
    }

    /// Re-reads the stored hash every [`REFRESH_EVERY`] (other replicas' rotations).
    pub fn spawn_refresher(self: &Arc<Self>, store: Store, shutdown: Shutdown) -> Option<tokio::task::JoinHandle<()>> {
        if self.env_managed.is_some() {
            return None;
        }
        let tokens = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = shutdown.ticks(REFRESH_EVERY);
            while ticks.next().await {
                if let Err(e) = tokens.reload(&store).await {
                    tracing::warn!(error = %e, "admin token reload failed");
                }
            }
        }))
    }

    /// Issues a new stored token and revokes the old one; applies to this
    /// process at once (other processes within [`REFRESH_EVERY`]).
    pub async fn rotate(&self, store: &Store, actor: &str) -> Result<Secret, RotateError> {
        if let Some(var) = &self.env_managed {
            return Err(RotateError::EnvManaged(var.clone()));
        }
        let token = rotate_stored(store, actor).await?;
        self.stored.store(Some(Arc::new(auth::hash_key(token.expose()))));
        Ok(token)
    }
}

/// Replaces the stored admin token (compare-and-swap on the stored hash),
/// writes the audit entry and returns the new token. The token itself is
/// never logged or audited, only its fingerprint.
pub async fn rotate_stored(store: &Store, actor: &str) -> Result<Secret, RotateError> {
    let old = store.get_setting(SETTING).await?;
    let token = generate();
    let new_hash = auth::hash_key_hex(&token);
    let swapped = match &old {
        Some(old) => store.replace_setting(SETTING, old, &new_hash).await?,
        None => store.insert_setting_if_absent(SETTING, &new_hash).await?,
    };
    if !swapped {
        return Err(RotateError::Concurrent);
    }
    let fp = |hex_hash: &str| hex_hash.get(..12).unwrap_or_default().to_string();
    let entry = AuditEntry {
        id: uuid::Uuid::new_v4().to_string(),
        at: sheepdog_types::time::now_rfc3339(),
        actor: actor.to_string(),
        action: "admin_token.rotate".into(),
        target: "admin_token".into(),
        before_json: old.as_deref().map(|h| serde_json::json!({ "fingerprint": fp(h) }).to_string()),
        after_json: Some(serde_json::json!({ "fingerprint": fp(&new_hash) }).to_string()),
    };
    if let Err(e) = store.insert_audit(&entry).await {
        tracing::error!(error = %e, "could not write the audit log for an admin token rotation");
    }
    tracing::info!(actor, fingerprint = %fp(&new_hash), "admin token rotated; the previous token is revoked");
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_tokens_are_accepted_and_nothing_else() {
        let t = AdminTokens::fixed(&["a-token", "b-token"]);
        assert!(t.accepts("a-token") && t.accepts("b-token"));
        assert!(!t.accepts("c-token") && !t.accepts(""));
        t.stored.store(Some(Arc::new(auth::hash_key("stored"))));
        assert!(t.accepts("stored"));
        let env = AdminTokens { env_managed: Some("X".into()), ..AdminTokens::fixed(&["env"]) };
        env.stored.store(Some(Arc::new(auth::hash_key("stored"))));
        assert!(env.accepts("env") && !env.accepts("stored"), "the environment token replaces the stored one");
        assert!(generate().starts_with("sd-admin-") && generate() != generate());
        assert_eq!(fingerprint("x").len(), 12);
    }
}
