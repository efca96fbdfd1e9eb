-- The audit trail: append-only, hash-chained events. `audit_head` holds the last sequence number
-- and hash; appending locks it, so that replicas sharing a database append one at a time.
CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    purpose   TEXT NOT NULL,
    action    TEXT NOT NULL,
    subjects  TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
-- The key that subject identities are hashed with in the trail (kept here, never logged).
CREATE TABLE audit_key (
    id  INTEGER PRIMARY KEY,
    key TEXT NOT NULL
);
