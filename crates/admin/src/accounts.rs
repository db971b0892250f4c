//! Console users: creation with argon2id password hashes (OWASP parameters:
//! m = 19 MiB, t = 2, p = 1), hashing run off the async runtime.

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use sheepdog_store::{Store, StoreError, UserRow};

pub const ROLES: [&str; 4] = ["admin", "operator", "viewer", "tenant"];

fn argon2() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password (blocking work moved to the blocking pool).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
    })
    .await
    .context("password hashing task failed")?
}

/// Verifies a password against a stored hash (blocking pool).
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        argon2().map(|a| a.verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Creates a console user after validating every field.
pub async fn create_user(
    store: &Store,
    email: &str,
    role: &str,
    tenant: Option<&str>,
    password: &str,
) -> anyhow::Result<UserRow> {
    let email = email.trim().to_lowercase();
    let valid_email = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !email.chars().any(|c| c.is_whitespace());
    if !valid_email {
        anyhow::bail!("--email {email:?} is not a valid email address");
    }
    if !ROLES.contains(&role) {
        anyhow::bail!("--role {role:?} must be one of admin, operator, viewer, tenant");
    }
    let tenant_id = match (role, tenant) {
        ("tenant", None) => anyhow::bail!("a tenant user needs --tenant ID"),
        ("tenant", Some(t)) => {
            if store.get_tenant(t).await?.is_some() {
                Some(t.to_string())
            } else if let Some(id) = store.tenant_id_for_alias(t).await? {
                Some(id)
            } else {
                anyhow::bail!("--tenant {t:?} names no tenant")
            }
        }
        (_, Some(_)) => anyhow::bail!("--tenant is only for users with --role tenant"),
        (_, None) => None,
    };
    if password.chars().count() < 12 {
        anyhow::bail!("the password must be at least 12 characters long");
    }
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        role: role.to_string(),
        tenant_id,
        password_hash: hash_password(password.to_string()).await?,
        disabled: false,
        created_at: sheepdog_types::time::now_rfc3339(),
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(m)) => anyhow::bail!(m),
        Err(StoreError::Other(e) | StoreError::Unavailable(e)) => Err(e),
        Err(StoreError::KeyLimit(m)) => anyhow::bail!(m),
    }
}
