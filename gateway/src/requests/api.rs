//! The engine's side of the [`PrivacyRequests`] interface: submitting a request (idempotently),
//! reading and listing requests, retrying, cancelling and extending them, following their events,
//! and the erasure plan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use subject_connectors::Identity;
use subject_connectors::purpose::DataUse;
use subject_schema::access::Caller;
use subject_schema::audit::SubjectRef;
use subject_schema::request_views::{EventView, ManualTaskPage, ManualTaskView, PlanView, RequestView};
use subject_schema::requests::{
    ManualOutcome, ManualTaskFilter, PrivacyRequests, RequestError, RequestFilter, RequestKind, RequestPage,
    Submission,
};

use super::state::RequestStatus;
use super::store::{self, NewRequest, RequestRow, StoreError};
use super::{Deadline, PrivacyEngine, RequestInput, unavailable};

/// A request id: `pr_` and 128 random bits.
/// An idempotency key names one request: the same type for the same person. Used with another
/// person or type it is a conflict, and nothing starts: answering the first request would tell
/// automation that a person was erased while nothing happened to them.
fn same_request(existing: &RequestRow, kind: RequestKind, subject_hash: &str) -> Result<(), RequestError> {
    if existing.kind != kind {
        return Err(RequestError::Conflict(format!(
            "idempotencyKey was already used for a {} request; use a new key for a new request",
            existing.kind
        )));
    }
    if existing.subject_hash != subject_hash {
        return Err(RequestError::Conflict(
            "idempotencyKey was already used for a request about another person (or the same person \
             named by another identity); use a new key for a new request"
                .into(),
        ));
    }
    Ok(())
}

fn new_request_id() -> String {
    format!("pr_{}", uuid::Uuid::new_v4().simple())
}

impl PrivacyEngine {
    /// The stored request `id`, or `NOT_FOUND`.
    async fn existing_row(&self, id: &str) -> Result<RequestRow, RequestError> {
        self.store
            .request(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))
    }
}

#[async_trait]
impl PrivacyRequests for PrivacyEngine {
    async fn erasure_plan(&self, identity: Identity) -> Result<PlanView, RequestError> {
        let (plan, blockers) = tokio::join!(self.plan_subject(&identity), self.erasure_blockers());
        Ok(self.plan_view(&identity, &plan, &blockers))
    }

    async fn submit(&self, caller: &Caller, submission: Submission) -> Result<RequestView, RequestError> {
        let key = submission.idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(RequestError::Invalid(
                "idempotencyKey: give a key of 1 to 200 characters, the same on every retry".into(),
            ));
        }
        let kind = submission.kind;
        let subject_hash = self.subject_hash(&submission.identity);
        if let Some(existing) = self.store.by_idempotency_key(key).await.map_err(unavailable)? {
            same_request(&existing, kind, &subject_hash)?;
            return self.existing_view(&existing.id).await;
        }
        let regulation = submission
            .regulation
            .as_deref()
            .unwrap_or(&self.settings.default_regulation)
            .to_ascii_uppercase();
        let deadline = self.deadlines.get(&regulation).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self.deadlines.keys().map(String::as_str).collect();
            known.sort_unstable();
            RequestError::Invalid(format!(
                "regulation `{regulation}` is not configured (known: {})",
                known.join(", ")
            ))
        })?;
        let changes = match submission.kind {
            RequestKind::Rectification => self.validate_changes(&submission.changes)?,
            _ => Vec::new(),
        };
        let purpose = match (submission.kind, &submission.purpose) {
            (RequestKind::Objection, Some(purpose)) => Some(
                DataUse::parse(purpose)
                    .map_err(|e| RequestError::Invalid(format!("purpose: {e}")))?
                    .to_string(),
            ),
            (RequestKind::Objection, None) => {
                return Err(RequestError::Invalid(
                    "purpose: name the purpose objected to".into(),
                ));
            }
            _ => None,
        };
        // webhooks: only a configured endpoint, by name.
        let webhook = crate::webhooks::Webhooks::named(self.webhooks.get(), submission.webhook.as_deref())
            .map_err(RequestError::Invalid)?;
        let identity = &submission.identity;
        let input = RequestInput {
            kind: self.kind_name(identity.kind),
            value: identity.value.expose().to_owned(),
            changes,
            purpose,
            allow_large_matches: submission.allow_large_matches,
        };
        let input_json = serde_json::to_string(&input).map_err(|e| RequestError::Invalid(e.to_string()))?;
        // Erasures and exports of one person while one is open join it: one execution.
        let open_key = matches!(submission.kind, RequestKind::Erasure | RequestKind::Export)
            .then(|| format!("{kind}:{subject_hash}"));
        let id = new_request_id();
        let status = self.initial_status(kind);
        let created = Utc::now();
        let created_at = store::stamp(created);
        let due_at = store::stamp(deadline.after(created));
        // webhooks: the endpoint is recorded before the request, so its first event finds it.
        if let Some((hooks, name)) = webhook {
            hooks.subscribe(&id, name).await.map_err(unavailable)?;
        }
        let inserted = self
            .store
            .insert(&NewRequest {
                id: &id,
                kind,
                idempotency_key: key,
                open_key: open_key.as_deref(),
                subject_hash: &subject_hash,
                regulation: &regulation,
                reason: submission.reason.as_deref(),
                requested_by: &caller.principal,
                created_at: &created_at,
                due_at: &due_at,
                input: &input_json,
                status,
            })
            .await;
        if let (Err(_), Some((hooks, _))) = (&inserted, webhook) {
            hooks.forget(&id).await;
        }
        match inserted {
            Ok(()) => {}
            Err(StoreError::Duplicate) => {
                if let Some(existing) = self.store.by_idempotency_key(key).await.map_err(unavailable)? {
                    same_request(&existing, kind, &subject_hash)?;
                    return self.existing_view(&existing.id).await;
                }
                if let Some(open) = &open_key
                    && let Some(existing) = self.store.by_open_key(open).await.map_err(unavailable)?
                {
                    return self.existing_view(&existing.id).await;
                }
                return Err(RequestError::Conflict(
                    "the request collided with another; retry".into(),
                ));
            }
            Err(error) => return Err(unavailable(error)),
        }
        self.event(
            &id,
            "received",
            &format!("{kind} request received"),
            RequestStatus::Received,
        )
        .await;
        if status == RequestStatus::AwaitingApproval {
            self.event(
                &id,
                "awaiting_approval",
                "waits for a holder of `approve` other than the submitter",
                status,
            )
            .await;
        }
        let subject = SubjectRef {
            kind: self.kind_name(identity.kind),
            value: identity.value.clone(),
        };
        self.audit_action(
            caller,
            &format!("{}.requested", kind.as_str().to_ascii_lowercase()),
            Some(subject),
            json!({ "request": id, "regulation": regulation }),
        )
        .await;
        metrics::counter!("subject_gateway_privacy_requests_total", "type" => kind.as_str()).increment(1);
        tracing::info!(request = %id, r#type = kind.as_str(), "privacy request received");
        self.wake.notify_one();
        self.existing_view(&id).await
    }

    async fn request(&self, id: &str) -> Result<Option<RequestView>, RequestError> {
        self.view_of(id).await
    }

    async fn requests(&self, filter: RequestFilter) -> Result<RequestPage, RequestError> {
        let after = match &filter.after {
            None => None,
            Some(cursor) => Some(cursor.split_once('/').ok_or_else(|| {
                RequestError::Invalid("`after` is not a cursor from privacyRequests".into())
            })?),
        };
        let status = filter.status;
        let mut rows = self
            .store
            .list(status, filter.kind, filter.overdue, after, filter.first + 1)
            .await
            .map_err(unavailable)?;
        let has_next_page = rows.len() > filter.first;
        rows.truncate(filter.first);
        let mut requests = Vec::with_capacity(rows.len());
        for row in &rows {
            let tasks = self.store.tasks(&row.id).await.map_err(unavailable)?;
            requests.push(self.view(row, &tasks));
        }
        Ok(RequestPage {
            end_cursor: rows.last().map(|r| format!("{}/{}", r.created_at, r.id)),
            requests,
            has_next_page,
        })
    }

    async fn retry(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError> {
        let row = self.existing_row(id).await?;
        if row.status != RequestStatus::Failed {
            return Err(RequestError::Conflict(format!(
                "only a FAILED request can be retried; this one is {}",
                row.status
            )));
        }
        if row.input.is_none() {
            return Err(RequestError::Conflict(
                "the request no longer holds what it needs to run".into(),
            ));
        }
        self.store.reopen(id).await.map_err(unavailable)?;
        self.reopen_manual_tasks(id).await;
        self.event(
            id,
            "retried",
            "retried: the tasks not done run again",
            RequestStatus::InProgress,
        )
        .await;
        self.audit_action(caller, "request.retried", None, json!({ "request": id }))
            .await;
        self.wake.notify_one();
        self.existing_view(id).await
    }

    async fn cancel(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError> {
        if !self.store.cancel(id).await.map_err(unavailable)? {
            let row = self.store.request(id).await.map_err(unavailable)?;
            return match row {
                None => Err(RequestError::NotFound(id.to_owned())),
                Some(row) => Err(RequestError::Conflict(format!(
                    "a {} request cannot be cancelled",
                    row.status
                ))),
            };
        }
        self.event(id, "cancelled", "cancelled", RequestStatus::Cancelled)
            .await;
        self.close_manual_tasks(id).await;
        self.audit_action(caller, "request.cancelled", None, json!({ "request": id }))
            .await;
        self.existing_view(id).await
    }

    async fn extend(
        &self,
        caller: &Caller,
        id: &str,
        days: u32,
        reason: String,
    ) -> Result<RequestView, RequestError> {
        let row = self.existing_row(id).await?;
        if reason.trim().is_empty() {
            return Err(RequestError::Invalid(
                "reason: the law asks why the request takes longer".into(),
            ));
        }
        let due = DateTime::parse_from_rfc3339(&row.due_at)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let new_due = store::stamp(Deadline::Days(days).after(due));
        if !self
            .store
            .extend(id, &new_due, reason.trim())
            .await
            .map_err(unavailable)?
        {
            return Err(RequestError::Conflict(
                "the due date was already extended once".into(),
            ));
        }
        self.event(
            id,
            "extended",
            &format!("due date extended by {days} days"),
            row.status,
        )
        .await;
        self.audit_action(
            caller,
            "request.extended",
            None,
            json!({ "request": id, "days": days }),
        )
        .await;
        self.existing_view(id).await
    }

    async fn request_plan(&self, id: &str) -> Result<Option<PlanView>, RequestError> {
        self.plan_of_request(id).await
    }

    async fn approve(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError> {
        self.approve_request(caller, id).await
    }

    async fn deny(&self, caller: &Caller, id: &str, reason: String) -> Result<RequestView, RequestError> {
        self.deny_request(caller, id, reason).await
    }

    async fn manual_tasks(
        &self,
        caller: &Caller,
        filter: ManualTaskFilter,
    ) -> Result<ManualTaskPage, RequestError> {
        self.list_manual_tasks(caller, filter).await
    }

    async fn complete_manual_task(
        &self,
        caller: &Caller,
        id: &str,
        outcome: ManualOutcome,
        note: Option<String>,
    ) -> Result<ManualTaskView, RequestError> {
        self.record_manual_outcome(caller, id, outcome, note).await
    }

    async fn all_events(&self) -> Result<BoxStream<'static, EventView>, RequestError> {
        self.every_event().await
    }

    async fn request_events(&self, id: &str) -> Result<Vec<EventView>, RequestError> {
        self.recorded_events(id).await
    }

    async fn counts(
        &self,
        kind: Option<RequestKind>,
        overdue: Option<bool>,
    ) -> Result<Vec<(RequestStatus, u64)>, RequestError> {
        self.status_counts(kind, overdue).await
    }

    async fn events(&self, id: &str) -> Result<BoxStream<'static, EventView>, RequestError> {
        let row = self.existing_row(id).await?;
        let store = self.store.clone();
        let interval = self.poll_interval();
        let id = id.to_owned();
        // The current state first, then every event as it is recorded (read from the database,
        // so events from any replica arrive), until the request finishes.
        let first = EventView {
            request_id: id.clone(),
            at: store::now(),
            kind: "state".into(),
            message: format!("the request is {}", row.status),
            status: row.status,
        };
        let finished = !row.is_open();
        let initial_cursor = store
            .events_after(&id, None)
            .await
            .map_err(unavailable)?
            .last()
            .map(|e| (e.at.clone(), e.id.clone()));
        let state = (
            store,
            id,
            initial_cursor,
            std::collections::VecDeque::<EventView>::new(),
            finished,
        );
        let rest = futures::stream::unfold(
            state,
            move |(store, id, mut cursor, mut queue, mut done)| async move {
                loop {
                    if let Some(event) = queue.pop_front() {
                        return Some((event, (store, id, cursor, queue, done)));
                    }
                    if done {
                        return None;
                    }
                    tokio::time::sleep(interval).await;
                    let after = cursor.as_ref().map(|(a, i)| (a.as_str(), i.as_str()));
                    let Ok(events) = store.events_after(&id, after).await else {
                        continue;
                    };
                    for event in events {
                        cursor = Some((event.at.clone(), event.id.clone()));
                        if !event.status.is_open() {
                            done = true;
                        }
                        queue.push_back(EventView {
                            request_id: event.request_id,
                            at: event.at,
                            kind: event.kind,
                            message: event.message,
                            status: event.status,
                        });
                    }
                }
            },
        );
        Ok(Box::pin(futures::stream::once(async move { first }).chain(rest)))
    }
}
