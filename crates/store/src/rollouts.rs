//! Rollout storage (portable SQL for SQLite and Postgres).

use sqlx::Row;

use crate::db::{bump_counter, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RolloutRow {
    pub id: String,
    pub model: String,
    pub tenant_id: Option<String>,
    pub from_provider: String,
    pub from_upstream_model: String,
    pub to_provider: String,
    pub to_upstream_model: String,
    pub to_input_nanos: Option<i64>,
    pub to_output_nanos: Option<i64>,
    pub phase: String,
    pub percent_bp: i64,
    pub since_ms: i64,
    pub paused_at_ms: Option<i64>,
    pub plan_json: String,
    pub guard_json: String,
    pub shadow_concurrency: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub rollout_id: String,
    pub at: String,
    pub at_ms: i64,
    pub from_phase: Option<String>,
    pub to_phase: String,
    pub percent_bp: i64,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    pub id: String,
    pub rollout_id: String,
    pub at_ms: i64,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
    pub from_latency_ms: Option<i64>,
    pub to_latency_ms: Option<i64>,
    pub from_ttft_ms: Option<i64>,
    pub to_ttft_ms: Option<i64>,
    pub from_error: Option<String>,
    pub to_error: Option<String>,
    pub from_input_tokens: Option<i64>,
    pub from_output_tokens: Option<i64>,
    pub to_input_tokens: Option<i64>,
    pub to_output_tokens: Option<i64>,
    pub to_cost_nanos: i64,
    pub exact_match: bool,
    pub similarity_pct: i64,
    pub same_tools: Option<bool>,
    pub from_text: Option<String>,
    pub to_text: Option<String>,
}

const ROLLOUTS_VERSION: &str = "rollouts_version";

const ROLLOUT_COLS: &str = "id, model, tenant_id, from_provider, from_upstream_model, to_provider, to_upstream_model, \
    to_input_nanos, to_output_nanos, phase, percent_bp, since_ms, paused_at_ms, plan_json, guard_json, shadow_concurrency, \
    created_at, updated_at";

impl Store {
    pub async fn insert_rollout(&self, r: &RolloutRow, event: &EventRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO rollouts ({ROLLOUT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"
        ))
        .bind(&r.id)
        .bind(&r.model)
        .bind(&r.tenant_id)
        .bind(&r.from_provider)
        .bind(&r.from_upstream_model)
        .bind(&r.to_provider)
        .bind(&r.to_upstream_model)
        .bind(r.to_input_nanos)
        .bind(r.to_output_nanos)
        .bind(&r.phase)
        .bind(r.percent_bp)
        .bind(r.since_ms)
        .bind(r.paused_at_ms)
        .bind(&r.plan_json)
        .bind(&r.guard_json)
        .bind(r.shadow_concurrency)
        .bind(&r.created_at)
        .bind(&r.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, event).await?;
        bump_counter(&mut tx, ROLLOUTS_VERSION).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Bumped on every rollout change; other replicas poll it.
    pub async fn rollouts_version(&self) -> Result<i64, StoreError> {
        Ok(self.get_setting(ROLLOUTS_VERSION).await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Saves a rollout's state and the transition that led to it, together.
    pub async fn update_rollout(&self, r: &RolloutRow, event: Option<&EventRow>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE rollouts SET phase = $2, percent_bp = $3, since_ms = $4, paused_at_ms = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(&r.id)
        .bind(&r.phase)
        .bind(r.percent_bp)
        .bind(r.since_ms)
        .bind(r.paused_at_ms)
        .bind(&r.updated_at)
        .execute(&mut *tx)
        .await?;
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        bump_counter(&mut tx, ROLLOUTS_VERSION).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_rollouts(&self) -> Result<Vec<RolloutRow>, StoreError> {
        Ok(sqlx::query_as::<_, RolloutRow>(&format!("SELECT {ROLLOUT_COLS} FROM rollouts ORDER BY created_at, id"))
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn rollout_events(&self, rollout_id: &str) -> Result<Vec<EventRow>, StoreError> {
        Ok(sqlx::query_as::<_, EventRow>(
            "SELECT id, rollout_id, at, at_ms, from_phase, to_phase, percent_bp, actor, reason FROM rollout_events \
             WHERE rollout_id = $1 ORDER BY at_ms, id",
        )
        .bind(rollout_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn insert_rollout_sample(&self, s: &SampleRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rollout_samples (id, rollout_id, at_ms, tenant_id, request_id, from_latency_ms, to_latency_ms, \
             from_ttft_ms, to_ttft_ms, from_error, to_error, from_input_tokens, from_output_tokens, to_input_tokens, \
             to_output_tokens, to_cost_nanos, exact_match, similarity_pct, same_tools, from_text, to_text) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)",
        )
        .bind(&s.id)
        .bind(&s.rollout_id)
        .bind(s.at_ms)
        .bind(&s.tenant_id)
        .bind(&s.request_id)
        .bind(s.from_latency_ms)
        .bind(s.to_latency_ms)
        .bind(s.from_ttft_ms)
        .bind(s.to_ttft_ms)
        .bind(&s.from_error)
        .bind(&s.to_error)
        .bind(s.from_input_tokens)
        .bind(s.from_output_tokens)
        .bind(s.to_input_tokens)
        .bind(s.to_output_tokens)
        .bind(s.to_cost_nanos)
        .bind(i64::from(s.exact_match))
        .bind(s.similarity_pct)
        .bind(s.same_tools.map(i64::from))
        .bind(&s.from_text)
        .bind(&s.to_text)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Shadow samples of a rollout, newest first; only differing pairs when asked.
    pub async fn rollout_samples(
        &self,
        rollout_id: &str,
        differing: bool,
        limit: i64,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let filter = if differing { " AND exact_match = 0" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT id, rollout_id, at_ms, tenant_id, request_id, from_latency_ms, to_latency_ms, from_ttft_ms, to_ttft_ms, \
             from_error, to_error, from_input_tokens, from_output_tokens, to_input_tokens, to_output_tokens, to_cost_nanos, \
             exact_match, similarity_pct, same_tools, from_text, to_text FROM rollout_samples \
             WHERE rollout_id = $1{filter} ORDER BY at_ms DESC, id LIMIT $2"
        ))
        .bind(rollout_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(SampleRow {
                id: r.try_get("id")?,
                rollout_id: r.try_get("rollout_id")?,
                at_ms: r.try_get("at_ms")?,
                tenant_id: r.try_get("tenant_id")?,
                request_id: r.try_get("request_id")?,
                from_latency_ms: r.try_get("from_latency_ms")?,
                to_latency_ms: r.try_get("to_latency_ms")?,
                from_ttft_ms: r.try_get("from_ttft_ms")?,
                to_ttft_ms: r.try_get("to_ttft_ms")?,
                from_error: r.try_get("from_error")?,
                to_error: r.try_get("to_error")?,
                from_input_tokens: r.try_get("from_input_tokens")?,
                from_output_tokens: r.try_get("from_output_tokens")?,
                to_input_tokens: r.try_get("to_input_tokens")?,
                to_output_tokens: r.try_get("to_output_tokens")?,
                to_cost_nanos: r.try_get("to_cost_nanos")?,
                exact_match: r.try_get::<i64, _>("exact_match")? != 0,
                similarity_pct: r.try_get("similarity_pct")?,
                same_tools: r.try_get::<Option<i64>, _>("same_tools")?.map(|v| v != 0),
                from_text: r.try_get("from_text")?,
                to_text: r.try_get("to_text")?,
            });
        }
        Ok(out)
    }
}

async fn insert_event(tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: &EventRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollout_events (id, rollout_id, at, at_ms, from_phase, to_phase, percent_bp, actor, reason) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
    )
    .bind(&e.id)
    .bind(&e.rollout_id)
    .bind(&e.at)
    .bind(e.at_ms)
    .bind(&e.from_phase)
    .bind(&e.to_phase)
    .bind(e.percent_bp)
    .bind(&e.actor)
    .bind(&e.reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
