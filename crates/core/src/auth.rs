//! Authentication: who is calling (key) and for which tenant (SPEC §3
//! headers). Keys are looked up by SHA-256 in the in-memory catalog.

use std::sync::Arc;

use axum::http::HeaderMap;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, KeyScope, TenantEntry};
use crate::error::GatewayError;

/// Prefix of every Sheepdog key.
pub const KEY_PREFIX: &str = "sk-sd-";
/// Characters of a key shown in listings (`sk-sd-` + 6).
pub const SHOWN_PREFIX_LEN: usize = 12;

/// A new random key: `sk-sd-` + 40 base62 characters (≈238 bits).
pub fn generate_key() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..40).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("{KEY_PREFIX}{body}")
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hash_key_hex(key: &str) -> String {
    hex::encode(hash_key(key))
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub tenant: Arc<TenantEntry>,
}

/// `Authorization: Bearer <key>` → key entry.
pub fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let value =
        headers.get(axum::http::header::AUTHORIZATION).ok_or(GatewayError::InvalidApiKey("no Authorization header"))?;
    let text = value.to_str().map_err(|_| GatewayError::InvalidApiKey("malformed Authorization header"))?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(GatewayError::InvalidApiKey("expected a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(GatewayError::InvalidApiKey("expected a Bearer token"));
    }
    Ok(token.trim())
}

/// Whether `s` is a UUID of version 4 (RFC 4122 variant).
pub fn is_uuid_v4(s: &str) -> bool {
    match uuid::Uuid::parse_str(s) {
        Ok(u) => u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122,
        Err(_) => false,
    }
}

/// Authenticates the key and resolves the tenant the request acts for.
pub fn authenticate(catalog: &Catalog, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let token = bearer(headers)?;
    let key = catalog.keys.get(&hash_key(token)).ok_or(GatewayError::InvalidApiKey("unknown or revoked key"))?;
    let named = match headers.get(&crate::request::X_TENANT_ID) {
        None => None,
        Some(v) => {
            let text =
                v.to_str().map_err(|_| GatewayError::InvalidTenantId("the value is not printable text".into()))?.trim();
            Some(text)
        }
    };
    let named_tenant = match named {
        None => None,
        Some(text) => {
            let found = catalog.resolve(text);
            if found.is_none() && !is_uuid_v4(text) {
                return Err(GatewayError::InvalidTenantId(format!(
                    "{:?} is neither a UUID v4 nor a registered alias",
                    clip(text)
                )));
            }
            Some(found)
        }
    };
    let tenant = match (&key.scope, named_tenant) {
        (KeyScope::Tenant(own), None) => {
            catalog.tenant(own).cloned().ok_or(GatewayError::InvalidApiKey("the key's tenant no longer exists"))?
        }
        (KeyScope::Tenant(own), Some(found)) => match found {
            Some(t) if &t.id == own => t.clone(),
            _ => return Err(GatewayError::TenantMismatch),
        },
        (KeyScope::Platform(_), None) => return Err(GatewayError::TenantRequired),
        (KeyScope::Platform(allowed), Some(found)) => {
            let t = found.ok_or_else(|| GatewayError::InvalidTenantId("no tenant has this id".into()))?;
            if let Some(allowed) = allowed {
                if !allowed.contains(&t.id) {
                    return Err(GatewayError::TenantMismatch);
                }
            }
            t.clone()
        }
    };
    Ok(Caller { key_id: key.id.clone(), tenant })
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::KeyEntry;
    use sheepdog_types::{Limits, TenantStatus, Tier};

    const T1: &str = "3f1c2a6e-4b7d-4c1e-9a2b-1d2e3f4a5b6c";
    const T2: &str = "8a7b6c5d-4e3f-4a1b-8c9d-0e1f2a3b4c5d";

    fn tenant(id: &str) -> Arc<TenantEntry> {
        Arc::new(TenantEntry {
            id: id.into(),
            name: id.into(),
            tier: Tier::Shared,
            status: TenantStatus::Active,
            limits: Limits::default(),
            budget_monthly_nanos: None,
            budget_hard: false,
            allowed_models: None,
            aliases: vec![],
            pool_id: None,
            pool_hard: true,
        })
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.tenants.insert(T1.into(), tenant(T1));
        c.tenants.insert(T2.into(), tenant(T2));
        c.aliases.insert("acme".into(), T1.into());
        c.keys.insert(
            hash_key("sk-sd-tenant1"),
            Arc::new(KeyEntry { id: "k1".into(), scope: KeyScope::Tenant(T1.into()) }),
        );
        c.keys
            .insert(hash_key("sk-sd-platform"), Arc::new(KeyEntry { id: "p".into(), scope: KeyScope::Platform(None) }));
        c.keys.insert(
            hash_key("sk-sd-only2"),
            Arc::new(KeyEntry { id: "p2".into(), scope: KeyScope::Platform(Some([T2.to_string()].into())) }),
        );
        c
    }

    fn headers(key: Option<&str>, tenant: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = key {
            h.insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        if let Some(t) = tenant {
            h.insert("x-tenant-id", t.parse().unwrap());
        }
        h
    }

    fn code(r: Result<Caller, GatewayError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn keys_and_tenants() {
        let c = catalog();
        assert_eq!(code(authenticate(&c, &headers(None, None))), "invalid_api_key");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-nope"), None))), "invalid_api_key");
        assert_eq!(authenticate(&c, &headers(Some("sk-sd-tenant1"), None)).unwrap().tenant.id, T1);
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-tenant1"), Some(T1)))), "ok");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-tenant1"), Some("acme")))), "ok");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-tenant1"), Some(T2)))), "tenant_mismatch");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-tenant1"), Some("not-a-uuid")))), "invalid_tenant_id");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-platform"), None))), "tenant_required");
        assert_eq!(authenticate(&c, &headers(Some("sk-sd-platform"), Some("acme"))).unwrap().tenant.id, T1);
        assert_eq!(authenticate(&c, &headers(Some("sk-sd-platform"), Some(&T2.to_uppercase()))).unwrap().tenant.id, T2);
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-platform"), Some("12345")))), "invalid_tenant_id");
        // A UUID v1 is not acceptable, a well-formed but unknown v4 names no tenant.
        assert_eq!(
            code(authenticate(&c, &headers(Some("sk-sd-platform"), Some("c232ab00-9414-11ec-b3c8-9f6bdeced846")))),
            "invalid_tenant_id"
        );
        assert_eq!(
            code(authenticate(&c, &headers(Some("sk-sd-platform"), Some("11111111-1111-4111-8111-111111111111")))),
            "invalid_tenant_id"
        );
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-only2"), Some(T1)))), "tenant_mismatch");
        assert_eq!(code(authenticate(&c, &headers(Some("sk-sd-only2"), Some(T2)))), "ok");
    }

    #[test]
    fn generated_keys_are_distinct_and_prefixed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 46);
        assert!(is_uuid_v4(&uuid::Uuid::new_v4().to_string()));
        assert!(!is_uuid_v4("c232ab00-9414-11ec-b3c8-9f6bdeced846"));
    }
}
