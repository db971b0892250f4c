//! The `users` table: console users.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Store, StoreError};

/// A console user (the hash never leaves the gateway and is not `Serialize`).
#[derive(Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: String,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow").field("id", &self.id).field("email", &self.email).field("role", &self.role).finish()
    }
}

pub(crate) const USER_COLS: &str = "id, email, role, tenant_id, password_hash, disabled, created_at";

pub(crate) fn user_from_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        tenant_id: r.try_get("tenant_id")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn insert_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, role, tenant_id, password_hash, disabled, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.role)
        .bind(&u.tenant_id)
        .bind(&u.password_hash)
        .bind(i64::from(u.disabled))
        .bind(&u.created_at)
        .execute(self.pool())
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a user with email {} already exists", u.email)),
            other => other,
        })?;
        Ok(())
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.pool()).await?;
        Ok(r.try_get("n")?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(user_from_row(&r)?),
            None => None,
        })
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY email")).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(user_from_row(&r)?),
            None => None,
        })
    }

    pub async fn update_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET role = $2, disabled = $3 WHERE id = $1")
            .bind(&u.id)
            .bind(&u.role)
            .bind(i64::from(u.disabled))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
