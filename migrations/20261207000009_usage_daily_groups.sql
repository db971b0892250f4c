-- Usage per UTC day summed by tenant, model, cost center and client format,
-- kept beside the hourly rollups in the usage batch's transaction. The cost
-- page's day-bucketed ranges (7 days, 30 days, a month, custom dates) read
-- one row per day and group instead of one per tenant-hour: with 10,000
-- tenants the 30-day tenant breakdown grouped as many `usage_hourly` rows as
-- there were records. `dimension` is `tenant`, `model` (the model
-- requested), `cost_center` (`(none)` when unset) or `ingress`. Filled from
-- the usage records written before it. Portable SQL (SQLite and Postgres).

CREATE TABLE usage_daily_groups (
    day_ms BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    group_key TEXT NOT NULL,
    request_count BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    PRIMARY KEY (day_ms, dimension, group_key)
);

INSERT INTO usage_daily_groups (day_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 86400000) * 86400000 AS BIGINT), 'tenant', tenant_id, COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 86400000) * 86400000 AS BIGINT), tenant_id;

INSERT INTO usage_daily_groups (day_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 86400000) * 86400000 AS BIGINT), 'model', model_requested, COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 86400000) * 86400000 AS BIGINT), model_requested;

INSERT INTO usage_daily_groups (day_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 86400000) * 86400000 AS BIGINT), 'cost_center', COALESCE(cost_center, '(none)'), COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 86400000) * 86400000 AS BIGINT), COALESCE(cost_center, '(none)');

INSERT INTO usage_daily_groups (day_ms, dimension, group_key, request_count, input_tokens, output_tokens, cost_nanos)
SELECT CAST((created_ms / 86400000) * 86400000 AS BIGINT), 'ingress', ingress, COUNT(*),
    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
FROM usage_records GROUP BY CAST((created_ms / 86400000) * 86400000 AS BIGINT), ingress;
