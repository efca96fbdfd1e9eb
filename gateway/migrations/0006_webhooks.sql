-- Webhooks (Standard Webhooks): the endpoint a request named at submission, and the outbox: one
-- row per message to one endpoint, written in the transaction that records the request's event.
-- Messages of one request to one endpoint are sent in `seq` order (a later one waits for the
-- earlier); each is claimed under a lease, retried with backoff until `retry_until`, then DEAD.
CREATE TABLE webhook_subscriptions (
    request_id TEXT PRIMARY KEY,
    endpoint   TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE webhook_outbox (
    -- The Standard Webhooks message id (`msg_…`), sent as `webhook-id` on every attempt.
    id               TEXT PRIMARY KEY,
    endpoint         TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    event_type       TEXT NOT NULL,
    -- The JSON body, signed anew on every attempt; request ids and digests only, no identity values.
    body             TEXT NOT NULL,
    -- PENDING, DELIVERED or DEAD.
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    retry_until      TEXT NOT NULL,
    last_attempt_at  TEXT,
    delivered_at     TEXT,
    last_status_code BIGINT,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_until      TEXT NOT NULL,
    UNIQUE (request_id, endpoint, seq)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at);
CREATE INDEX webhook_outbox_created ON webhook_outbox (created_at, id);
