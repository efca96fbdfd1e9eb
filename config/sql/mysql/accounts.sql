-- Accounts database of the reference deployment (MySQL / MariaDB).
-- The email column's collation is case-insensitive, which is what `compare = "lowercase"` relies on.
CREATE TABLE users (
    id               BIGINT PRIMARY KEY,
    email            VARCHAR(320) NOT NULL,
    full_name        VARCHAR(255) NOT NULL,
    company          VARCHAR(255),
    country          VARCHAR(64),
    date_of_birth    DATE,
    marketing_opt_in BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       DATETIME(6) NOT NULL,
    UNIQUE KEY users_email (email)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE sessions (
    id           BIGINT PRIMARY KEY,
    user_id      BIGINT NOT NULL,
    ip_address   VARCHAR(64) NOT NULL,
    user_agent   VARCHAR(512),
    started_at   DATETIME(6) NOT NULL,
    last_seen_at DATETIME(6),
    KEY sessions_user_id (user_id),
    FOREIGN KEY (user_id) REFERENCES users (id)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE preferences (
    user_id    BIGINT PRIMARY KEY,
    language   VARCHAR(16),
    timezone   VARCHAR(64),
    theme      VARCHAR(32),
    newsletter BOOLEAN NOT NULL DEFAULT FALSE,
    settings   JSON,
    FOREIGN KEY (user_id) REFERENCES users (id)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
