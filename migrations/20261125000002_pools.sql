-- Credit pools (pooled tier): an append-only ledger in nano-USD.

CREATE TABLE credit_pools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hard BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

-- Never updated or deleted: top-ups, grants and signup credits are positive,
-- usage debits negative. The balance is the sum.
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES credit_pools(id),
    tenant_id TEXT,
    kind TEXT NOT NULL,
    amount_nanos BIGINT NOT NULL,
    request_id TEXT,
    note TEXT,
    created_at TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX credit_ledger_pool_time ON credit_ledger (pool_id, created_ms);

ALTER TABLE tenants ADD COLUMN pool_id TEXT REFERENCES credit_pools(id);
ALTER TABLE usage_records ADD COLUMN pool_id TEXT;
