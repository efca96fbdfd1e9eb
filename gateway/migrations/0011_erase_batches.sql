-- Batched erases: an HTTP entity whose erase declares `max_batch` has the deletions of
-- concurrent requests coalesced into one vendor call and one job. A batch takes members while
-- OPEN (until it holds max_batch records' worth of members or closes_at passes), is claimed and
-- sent under a lease (SENDING: the call is being made; a gateway killed before the job id is
-- stored leaves it SENDING, and the next lease holder sends it again — at least once), then
-- SENT with the vendor's job id, polled until SUCCEEDED or FAILED; its members follow it.
CREATE TABLE erase_batches (
    id          TEXT PRIMARY KEY,
    connector   TEXT NOT NULL,
    entity      TEXT NOT NULL,
    status      TEXT NOT NULL,
    members     BIGINT NOT NULL,
    max_batch   BIGINT NOT NULL,
    opened_at   TEXT NOT NULL,
    closes_at   TEXT NOT NULL,
    sent_at     TEXT,
    job_id      TEXT,
    items       BIGINT,
    attempts    BIGINT NOT NULL,
    error       TEXT,
    error_code  TEXT,
    finished_at TEXT,
    lease_owner TEXT,
    lease_until TEXT NOT NULL
);
CREATE INDEX erase_batches_work ON erase_batches (status, lease_until);
CREATE INDEX erase_batches_open ON erase_batches (connector, entity, status);

-- One request's task in a batch. OPEN until the batch ends (its request is not claimed
-- meanwhile), then SUCCEEDED or FAILED (the request is woken and its task follows), or SKIPPED
-- (the request was cancelled before the call).
CREATE TABLE erase_batch_members (
    request_id TEXT NOT NULL,
    position   BIGINT NOT NULL,
    batch_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    records    BIGINT NOT NULL,
    -- The values the call carries for this request's records (JSON): personal data, cleared
    -- when the batch ends.
    items      TEXT,
    joined_at  TEXT NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX erase_batch_members_batch ON erase_batch_members (batch_id, status);
CREATE INDEX erase_batch_members_open ON erase_batch_members (request_id, status);
