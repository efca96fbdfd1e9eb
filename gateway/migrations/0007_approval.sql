-- Approval (four eyes): who approved or denied a request that needed approval, when, and why
-- it was denied. The request waits as AWAITING_APPROVAL until then (no column: a status).
ALTER TABLE privacy_requests ADD COLUMN decided_by TEXT;
ALTER TABLE privacy_requests ADD COLUMN decided_at TEXT;
ALTER TABLE privacy_requests ADD COLUMN decision_reason TEXT;
