-- Gateway replicas' heartbeats: one row per process, rewritten every
-- couple of seconds; a replica is live while its last_seen_ms is recent.
-- Not billing data: rows of replicas gone for a day are deleted.

CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    in_flight BIGINT NOT NULL
);
