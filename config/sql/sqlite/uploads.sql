-- The demo's uploads metadata (SQLite standing in for MongoDB).
CREATE TABLE images (
    id           TEXT PRIMARY KEY,
    owner_id     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    storage_key  TEXT NOT NULL,
    camera       TEXT,
    gps          TEXT,
    taken_at     TEXT,
    tags         TEXT,
    uploaded_at  TEXT NOT NULL,
    visibility   TEXT NOT NULL
);
CREATE INDEX images_owner_id ON images (owner_id);
