//! Console sessions stored under a hash of their id: the database holds
//! SHA-256 of the cookie's session id (its first 128 bits), never the id
//! itself, so a leaked session table or backup cannot be replayed as
//! cookies. Sessions stored before this (under the plain id) no longer load:
//! users sign in again once after the upgrade.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// A session store that keys every record by [`stored_id`] of its session id.
#[derive(Debug, Clone)]
pub struct HashedIds<S> {
    inner: S,
}

impl<S> HashedIds<S> {
    pub fn new(inner: S) -> HashedIds<S> {
        HashedIds { inner }
    }
}

/// The id a session is stored under: the first 128 bits of SHA-256 of the
/// cookie's id (domain-separated).
pub fn stored_id(id: &Id) -> Id {
    let mut h = Sha256::new();
    h.update(b"sheepdog-console-session\0");
    h.update(id.0.to_le_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(bytes))
}

fn hashed(record: &Record) -> Record {
    Record { id: stored_id(&record.id), data: record.data.clone(), expiry_date: record.expiry_date }
}

#[async_trait]
impl<S: SessionStore + Clone> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let mut stored = hashed(record);
            let wanted = stored.id;
            self.inner.create(&mut stored).await?;
            if stored.id == wanted {
                return Ok(());
            }
            // The hash collided with a stored session and the inner store
            // picked a random id instead: undo, and pick a new session id.
            self.inner.delete(&stored.id).await?;
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(&hashed(record)).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.inner.load(&stored_id(session_id)).await?.map(|mut r| {
            r.id = *session_id;
            r
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.inner.delete(&stored_id(session_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions_sqlx_store::SqliteStore;

    #[tokio::test]
    async fn records_are_stored_under_the_hash_and_load_under_the_id() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        let inner = SqliteStore::new(pool.clone());
        inner.migrate().await.unwrap();
        let store = HashedIds::new(inner.clone());
        let expiry =
            tower_sessions::cookie::time::OffsetDateTime::now_utc() + tower_sessions::cookie::time::Duration::hours(1);
        let mut record = Record { id: Id::default(), data: Default::default(), expiry_date: expiry };
        record.data.insert("k".into(), serde_json::json!("v"));
        store.create(&mut record).await.unwrap();
        let id = record.id;
        assert_ne!(stored_id(&id), id);
        assert!(inner.load(&id).await.unwrap().is_none(), "nothing under the plain id");
        let stored = inner.load(&stored_id(&id)).await.unwrap().unwrap();
        assert_eq!(stored.id, stored_id(&id), "the stored record does not carry the plain id");
        let loaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(loaded.id, id);
        assert_eq!(loaded.data["k"], "v");
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM tower_sessions").fetch_all(&pool).await.unwrap();
        assert_eq!(ids, vec![(stored_id(&id).to_string(),)]);
        store.save(&loaded).await.unwrap();
        store.delete(&id).await.unwrap();
        assert!(store.load(&id).await.unwrap().is_none());
        assert!(inner.load(&stored_id(&id)).await.unwrap().is_none());
    }
}
