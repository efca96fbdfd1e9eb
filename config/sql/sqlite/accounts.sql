-- Accounts database of the reference deployment (SQLite; used by `subject-gateway demo`).
CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    email            TEXT NOT NULL,
    full_name        TEXT NOT NULL,
    company          TEXT,
    country          TEXT,
    date_of_birth    TEXT,
    marketing_opt_in INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    ip_address   TEXT NOT NULL,
    user_agent   TEXT,
    started_at   TEXT NOT NULL,
    last_seen_at TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE preferences (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id),
    language   TEXT,
    timezone   TEXT,
    theme      TEXT,
    newsletter INTEGER NOT NULL DEFAULT 0,
    settings   TEXT
);
