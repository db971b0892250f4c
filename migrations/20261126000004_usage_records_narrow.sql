-- usage_records, narrower: one B-tree and one column fewer per record.
--
-- - The primary key is (tenant_id, created_ms, id): it serves the per-tenant
--   time-range queries the old (tenant_id, created_ms) index served, and `id`
--   (a UUID v7) keeps each row unique, so the separate unique index on `id`
--   goes — every insert updated four B-trees, now three.
-- - `created_at` is dropped: it was always `created_ms` written as RFC 3339
--   (UTC), and is derived from it where it is shown.
--
-- Every row is copied; nothing else changes. Portable SQL (SQLite and
-- Postgres): a new table, a copy, a drop and a rename.

CREATE TABLE usage_records_v2 (
    id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    key_id TEXT,
    cost_center TEXT,
    model_requested TEXT NOT NULL,
    model_served TEXT,
    provider TEXT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    status_code BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    stream BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    pool_id TEXT,
    PRIMARY KEY (tenant_id, created_ms, id)
);

INSERT INTO usage_records_v2 (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, provider,
    input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, error_code,
    stream, created_ms, pool_id)
SELECT id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, provider,
    input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, error_code,
    stream, created_ms, pool_id
FROM usage_records;

DROP TABLE usage_records;
ALTER TABLE usage_records_v2 RENAME TO usage_records;
CREATE INDEX usage_records_time ON usage_records (created_ms);
