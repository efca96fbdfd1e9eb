-- Accounts database of the reference deployment (PostgreSQL).
CREATE TABLE users (
    id               BIGINT PRIMARY KEY,
    email            TEXT NOT NULL,
    full_name        TEXT NOT NULL,
    company          TEXT,
    country          TEXT,
    date_of_birth    DATE,
    marketing_opt_in BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE sessions (
    id           BIGINT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    ip_address   TEXT NOT NULL,
    user_agent   TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE preferences (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id),
    language   TEXT,
    timezone   TEXT,
    theme      TEXT,
    newsletter BOOLEAN NOT NULL DEFAULT FALSE,
    settings   JSONB
);
