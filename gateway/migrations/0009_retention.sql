-- Retention that ends: one row per record an erasure retained (entity action `retain`), written
-- when the erasure completes. The person is here only as the request's keyed subject hash; the
-- record as the key the erasure's task kept for it (its primary key, JSON), forgotten (replaced
-- by a keyed hash) when the retention has ended. When `retain_until` passes, a gateway claims
-- the due rows under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), erases the records as
-- declared (`after_retention`: DELETE or PSEUDONYMIZE), verifies, and in one transaction marks
-- them ENDED and appends the outcome to the request's receipt (an amendment).
CREATE TABLE retain_until (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    connector       TEXT NOT NULL,
    entity          TEXT NOT NULL,
    subject_hash    TEXT NOT NULL,
    record_key      TEXT NOT NULL,
    legal_basis     TEXT,
    retain_until    TEXT NOT NULL,
    after_retention TEXT NOT NULL,
    -- SCHEDULED (kept, or due and to be tried again) or ENDED.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    ended_at        TEXT,
    lease_owner     TEXT,
    lease_until     TEXT NOT NULL,
    UNIQUE (request_id, connector, entity, record_key)
);
CREATE INDEX retain_until_due ON retain_until (status, retain_until);
CREATE INDEX retain_until_order ON retain_until (retain_until, id);
