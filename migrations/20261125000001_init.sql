-- Sheepdog schema. Portable between SQLite and Postgres: TEXT ids and
-- timestamps (RFC 3339, UTC), BIGINT numbers (money in integer nano-USD),
-- BIGINT 0/1 flags. Never edit an applied migration: add a new one.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    status TEXT NOT NULL,
    requests_per_minute BIGINT NOT NULL,
    tokens_per_minute BIGINT NOT NULL,
    max_concurrency BIGINT,
    budget_monthly_nanos BIGINT,
    budget_hard BIGINT NOT NULL DEFAULT 0,
    allowed_models TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE tenant_aliases (
    alias TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id)
);
CREATE INDEX tenant_aliases_tenant ON tenant_aliases (tenant_id);

-- Keys: only a prefix and a SHA-256 hash are stored, never the key.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants(id),
    tenants TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- One row per request that reached routing (billing source of truth).
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
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
    created_at TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX usage_records_tenant_time ON usage_records (tenant_id, created_ms);
CREATE INDEX usage_records_time ON usage_records (created_ms);

-- Hourly per-tenant aggregates; additive so that several replicas can upsert.
CREATE TABLE usage_hourly (
    tenant_id TEXT NOT NULL,
    hour_ms BIGINT NOT NULL,
    request_count BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    rate_limit_hits BIGINT NOT NULL,
    latency_sum_ms BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour_ms)
);

-- Latency histogram of each hourly bucket (see accounting::histogram).
CREATE TABLE usage_hourly_latency (
    tenant_id TEXT NOT NULL,
    hour_ms BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour_ms, bucket)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants(id),
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Small key/value settings (admin token hash, catalog version).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_log_time ON audit_log (at_ms);
