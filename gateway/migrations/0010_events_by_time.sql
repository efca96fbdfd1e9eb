-- The console follows every request's events as they are recorded (`privacyRequestEvents` without
-- an id): it reads privacy_events after a (time, id) cursor, which this index serves.
CREATE INDEX privacy_events_at ON privacy_events (at, id);
