-- The client format of each request (`chat`, `messages`, `responses`,
-- `embeddings`), so costs can be grouped by it. Rows written before this
-- column existed were all Chat Completions requests. Portable SQL (SQLite
-- and Postgres); a constant default adds the column without rewriting rows
-- on Postgres 11+.

ALTER TABLE usage_records ADD COLUMN ingress TEXT NOT NULL DEFAULT 'chat';
