-- When a request's tasks were planned. A request with no plan is planned by whichever worker
-- takes it, whatever its status: a FAILED request retried before it was ever planned (a store
-- away at planning time) must be planned then, never completed with no tasks.
ALTER TABLE privacy_requests ADD COLUMN planned_at TEXT;
UPDATE privacy_requests SET planned_at = updated_at
    WHERE EXISTS (SELECT 1 FROM privacy_tasks WHERE privacy_tasks.request_id = privacy_requests.id);
CREATE INDEX privacy_requests_subject ON privacy_requests (subject_hash);
