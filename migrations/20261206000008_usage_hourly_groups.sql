-- Usage per hour summed over every tenant by model, cost center and client
-- format, kept beside the per-tenant hours in the usage batch's transaction,
-- so the cost page's breakdowns read a few rows per hour instead of every
-- usage record in the range (a 30-day page read 1,000,000 records four
-- times). `dimension` is `model` (the model requested), `cost_center`
-- (`(none)` when unset) or `ingress`. Filled from the usage records written
-- before it. Portable SQL (SQLite and Postgres).

CREATE TABLE usage_hourly_groups (
    hour_ms BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    group_key TEXT NOT NULL,
    request_count BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    PRIMARY KEY (hour_ms, dimension, group_key)
);

INSERT INTO usage_hourly_groups (hour_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 3600000) * 3600000 AS BIGINT), 'model', model_requested, COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 3600000) * 3600000 AS BIGINT), model_requested;

INSERT INTO usage_hourly_groups (hour_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 3600000) * 3600000 AS BIGINT), 'cost_center', COALESCE(cost_center, '(none)'), COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 3600000) * 3600000 AS BIGINT), COALESCE(cost_center, '(none)');

INSERT INTO usage_hourly_groups (hour_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 3600000) * 3600000 AS BIGINT), 'ingress', ingress, COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 3600000) * 3600000 AS BIGINT), ingress;
