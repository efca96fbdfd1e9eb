-- Events appended with a chain key (SUBJECT_GATEWAY_AUDIT_KEY, kept outside this database) carry
-- an HMAC-SHA256 instead of a plain SHA-256; older events stay verifiable as they were.
ALTER TABLE audit_events ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
