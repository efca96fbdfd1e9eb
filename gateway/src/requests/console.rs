//! What the operations console reads besides the request API: counts per status (one grouped,
//! parameterized query, narrowed like `store::list`), a request's recorded events, and the events
//! of every request as they are recorded (read from the database after a cursor, like the
//! per-request stream, so events from any replica arrive; `migrations/0010_…` indexes them).
//!
//! Statements are written once for SQLite and PostgreSQL, as in [`super::store`].

use std::collections::VecDeque;

use futures::StreamExt;
use futures::stream::BoxStream;
use subject_schema::requests::{EventView, RequestError, RequestKind, RequestStatus};

use crate::listing::Listing;

use super::store::{EventRow, RequestStore, StoreError, narrow_overdue, now};
use super::{PrivacyEngine, unavailable};

/// Most events one read of `all_events` takes; the next read continues after them.
const EVENTS_PER_READ: i64 = 500;

impl RequestStore {
    /// `(status, count)` of the requests of `kind` (any) and overdue or not (either), grouped.
    pub async fn counts(
        &self,
        kind: Option<RequestKind>,
        overdue: Option<bool>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut listing = Listing::new("SELECT status, COUNT(*) FROM privacy_requests WHERE 1 = 1");
        if let Some(kind) = kind {
            listing.equals("kind", kind.as_str());
        }
        if let Some(overdue) = overdue {
            narrow_overdue(&mut listing, overdue);
        }
        Ok(listing.fetch_grouped(self.pool(), "GROUP BY status").await?)
    }

    /// Events of every request after `(at, id)`, oldest first, at most `limit`.
    pub async fn all_events_after(
        &self,
        after: (&str, &str),
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT id, request_id, at, kind, message, status FROM privacy_events \
             WHERE at > $1 OR (at = $1 AND id > $2) ORDER BY at, id LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}

fn view(event: EventRow) -> EventView {
    EventView {
        request_id: event.request_id,
        at: event.at,
        kind: event.kind,
        message: event.message,
        status: event.status,
    }
}

impl PrivacyEngine {
    pub(super) async fn status_counts(
        &self,
        kind: Option<RequestKind>,
        overdue: Option<bool>,
    ) -> Result<Vec<(RequestStatus, u64)>, RequestError> {
        let rows = self.store.counts(kind, overdue).await.map_err(unavailable)?;
        rows.into_iter()
            .map(|(status, count)| {
                // A status this gateway does not know is an error, never dropped from the counts.
                let status = status
                    .parse::<RequestStatus>()
                    .map_err(|_| unavailable(StoreError::Unreadable("privacy_requests.status".into())))?;
                Ok((status, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }

    pub(super) async fn recorded_events(&self, id: &str) -> Result<Vec<EventView>, RequestError> {
        let events = self.store.events_after(id, None).await.map_err(unavailable)?;
        Ok(events.into_iter().map(view).collect())
    }

    /// Every request's events from now on. A failed read is retried at the next interval (the
    /// cursor stays, so nothing recorded meanwhile is skipped).
    pub(super) async fn every_event(&self) -> Result<BoxStream<'static, EventView>, RequestError> {
        let store = self.store.clone();
        let interval = self.poll_interval();
        // From now: events recorded from this instant on (ids sort after the empty string).
        let cursor = (now(), String::new());
        let state = (store, cursor, VecDeque::<EventView>::new());
        let stream = futures::stream::unfold(state, move |(store, mut cursor, mut queue)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((event, (store, cursor, queue)));
                }
                tokio::time::sleep(interval).await;
                let Ok(events) = store
                    .all_events_after((&cursor.0, &cursor.1), EVENTS_PER_READ)
                    .await
                else {
                    continue;
                };
                for event in events {
                    cursor = (event.at.clone(), event.id.clone());
                    queue.push_back(view(event));
                }
            }
        });
        Ok(stream.boxed())
    }
}
