-- Staged provider migration: rollouts, their transitions, shadow samples.

CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    tenant_id TEXT,
    from_provider TEXT NOT NULL,
    from_upstream_model TEXT NOT NULL,
    to_provider TEXT NOT NULL,
    to_upstream_model TEXT NOT NULL,
    to_input_nanos BIGINT,
    to_output_nanos BIGINT,
    phase TEXT NOT NULL,
    percent_bp BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    paused_at_ms BIGINT,
    plan_json TEXT NOT NULL,
    guard_json TEXT NOT NULL,
    shadow_concurrency BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every transition with its reason (never updated or deleted).
CREATE TABLE rollout_events (
    id TEXT PRIMARY KEY,
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    at TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    from_phase TEXT,
    to_phase TEXT NOT NULL,
    percent_bp BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX rollout_events_rollout ON rollout_events (rollout_id, at_ms);

-- One row per shadowed request: both sides measured and compared.
CREATE TABLE rollout_samples (
    id TEXT PRIMARY KEY,
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    at_ms BIGINT NOT NULL,
    tenant_id TEXT,
    request_id TEXT,
    from_latency_ms BIGINT,
    to_latency_ms BIGINT,
    from_ttft_ms BIGINT,
    to_ttft_ms BIGINT,
    from_error TEXT,
    to_error TEXT,
    from_input_tokens BIGINT,
    from_output_tokens BIGINT,
    to_input_tokens BIGINT,
    to_output_tokens BIGINT,
    to_cost_nanos BIGINT NOT NULL,
    exact_match BIGINT NOT NULL,
    similarity_pct BIGINT NOT NULL,
    same_tools BIGINT,
    from_text TEXT,
    to_text TEXT
);
CREATE INDEX rollout_samples_rollout ON rollout_samples (rollout_id, at_ms);
