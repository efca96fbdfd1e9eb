-- Manual tasks: what a person does by hand in a store without an API (kind = "manual") for one
-- request and entity, assigned to a role; OPEN until someone records DONE, NOT_FOUND or FAILED.
-- The request's task stays MANUAL (and the request unclaimed) meanwhile.
CREATE TABLE manual_tasks (
    id           TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL,
    connector    TEXT NOT NULL,
    entity       TEXT NOT NULL,
    action       TEXT NOT NULL,
    role         TEXT NOT NULL,
    instructions TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    completed_by TEXT,
    completed_at TEXT,
    note         TEXT,
    UNIQUE (request_id, connector, entity)
);
CREATE INDEX manual_tasks_open ON manual_tasks (status, role, created_at, id);
CREATE INDEX privacy_tasks_status ON privacy_tasks (status, request_id);
