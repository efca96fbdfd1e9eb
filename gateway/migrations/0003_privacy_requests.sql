-- Privacy requests (erasure, rectification, export, objection), their tasks per connector and
-- entity, and their progress events. Timestamps are RFC 3339 UTC text of one fixed width, so they
-- compare correctly as text on SQLite and PostgreSQL alike.
CREATE TABLE privacy_requests (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    -- kind and subject while the request is open (erasure, export): a second such request for the
    -- same person while one is open is refused by this unique column and joins the first.
    open_key         TEXT UNIQUE,
    subject_hash     TEXT NOT NULL,
    regulation       TEXT NOT NULL,
    reason           TEXT,
    requested_by     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    due_at           TEXT NOT NULL,
    extension_reason TEXT,
    completed_at     TEXT,
    error            TEXT,
    -- The identity and options as submitted: personal data, cleared when the request finishes.
    input            TEXT,
    receipt          TEXT,
    receipt_sha256   TEXT,
    -- Export: the bundle's file name, digest, size and expiry (JSON).
    export           TEXT,
    -- Which gateway works on it, until when (a killed gateway's lease runs out; another resumes).
    lease_owner      TEXT,
    lease_until      TEXT NOT NULL
);
CREATE INDEX privacy_requests_work ON privacy_requests (status, lease_until);
CREATE INDEX privacy_requests_created ON privacy_requests (created_at, id);

CREATE TABLE privacy_tasks (
    request_id   TEXT NOT NULL,
    position     BIGINT NOT NULL,
    connector    TEXT NOT NULL,
    entity       TEXT NOT NULL,
    action       TEXT NOT NULL,
    -- Tasks of one connector run in ascending stage (an entity found through another goes first).
    stage        BIGINT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    records      BIGINT,
    files        BIGINT,
    legal_basis  TEXT,
    retain_until TEXT,
    verified     BIGINT,
    error        TEXT,
    error_code   TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    -- The lookup values and the records found when planned: personal data, cleared when finished.
    lookup       TEXT,
    known        TEXT,
    -- Asynchronous jobs the store started (JSON list of ids).
    jobs         TEXT,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE privacy_events (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    status     TEXT NOT NULL
);
CREATE INDEX privacy_events_request ON privacy_events (request_id, at);

-- Objections to purposes (GDPR Art. 21) and withdrawn consent, per person (hashed).
CREATE TABLE objections (
    subject_hash TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (subject_hash, purpose)
);

-- Keys the gateway made for itself: pseudonyms (when none is given in the environment) and
-- export download links.
CREATE TABLE gateway_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
