//! Manual tasks: a store with no API (`kind = "manual"`: a paper archive, a vendor reached by
//! email) gets, for each task of a request in it (erase, export, rectify), a manual task
//! assigned to the store's role. The request's task is MANUAL and the request WAITING (no worker
//! claims it; its due date runs) until a person records the outcome with `completeManualTask`:
//! DONE, NOT_FOUND (both settle the task) or FAILED (the task fails, and with it the request;
//! a retry opens the task again). Who did what goes into the receipt and the export's Art. 15
//! metadata, and into the audit trail.
//!
//! The runner hands every task of a manual store here instead of to the kind's driver
//! (`driver.rs`); nothing is ever read from or written to such a store by the gateway.

use crate::listing::Listing;
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use subject_connectors::ManualSystem;
use subject_connectors::codes::ErrorCode;
use subject_schema::access::{Caller, Operation};
use subject_schema::request_views::{ManualTaskPage, ManualTaskView};
use subject_schema::requests::{ManualOutcome, ManualTaskFilter, RequestError};

use super::driver::Acted;
use super::state::{RequestKind, RequestStatus, TaskAction, TaskStatus};
use super::store::{self, RequestRow, RequestStore, StoreError, TaskRow};
use super::tasks::TaskEnd;
use super::{PrivacyEngine, RequestInput, unavailable};

/// One row of `manual_tasks`, with its request's type, due date and input, and the task's lookup.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ManualRow {
    pub id: String,
    pub request_id: String,
    pub connector: String,
    pub entity: String,
    #[sqlx(try_from = "String")]
    pub action: TaskAction,
    pub role: String,
    pub instructions: String,
    pub status: String,
    pub created_at: String,
    pub completed_by: Option<String>,
    pub completed_at: Option<String>,
    pub note: Option<String>,
}

/// A manual task with what listing it needs from its request and task.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    task: ManualRow,
    #[sqlx(try_from = "String")]
    request_kind: RequestKind,
    due_at: String,
    input: Option<String>,
    lookup: Option<String>,
}

const COLUMNS: &str = "m.id, m.request_id, m.connector, m.entity, m.action, m.role, m.instructions, m.status, \
     m.created_at, m.completed_by, m.completed_at, m.note";

/// Manual tasks with their request's type, due date and input and the task's lookup.
const LISTED: &str = "SELECT m.id, m.request_id, m.connector, m.entity, m.action, m.role, m.instructions, \
     m.status, m.created_at, m.completed_by, m.completed_at, m.note, \
     r.kind AS request_kind, r.due_at, r.input, t.lookup FROM manual_tasks m \
     JOIN privacy_requests r ON r.id = m.request_id \
     LEFT JOIN privacy_tasks t ON t.request_id = m.request_id AND t.connector = m.connector \
     AND t.entity = m.entity WHERE 1 = 1";

fn outcome_of(row: &ManualRow) -> Result<ManualOutcome, StoreError> {
    ManualOutcome::parse(&row.status).ok_or_else(|| StoreError::Unreadable("manual_tasks.status".into()))
}

impl RequestStore {
    async fn manual_where(&self, clause: &str, binds: &[&str]) -> Result<Option<ManualRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM manual_tasks m WHERE {clause}");
        let mut query = subject_connectors::dynamic_sql::dynamic_query_as::<_, ManualRow>(&sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        Ok(query.fetch_optional(self.pool()).await?)
    }

    /// Records a new open manual task and marks the request's task MANUAL, in one transaction.
    /// A task made meanwhile (another gateway) is kept: `false`.
    async fn open_manual(&self, manual: &ManualRow, task: &TaskRow) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO manual_tasks (id, request_id, connector, entity, action, role, instructions, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'OPEN', $8)",
        )
        .bind(&manual.id)
        .bind(&manual.request_id)
        .bind(&manual.connector)
        .bind(&manual.entity)
        .bind(manual.action.as_str())
        .bind(&manual.role)
        .bind(&manual.instructions)
        .bind(&manual.created_at)
        .execute(&mut *tx)
        .await;
        match inserted.map_err(StoreError::from) {
            Ok(_) => {}
            Err(StoreError::Duplicate) => return Ok(false),
            Err(error) => return Err(error),
        }
        sqlx::query(
            "UPDATE privacy_tasks SET status = 'MANUAL', attempts = $1, started_at = $2 \
             WHERE request_id = $3 AND position = $4",
        )
        .bind(task.attempts)
        .bind(&task.started_at)
        .bind(&task.request_id)
        .bind(task.position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the request's task MANUAL while its manual task is still open (an outcome
    /// recorded meanwhile is never overwritten: the check and the write are one statement).
    async fn mark_manual(&self, task: &TaskRow, manual_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE privacy_tasks SET status = 'MANUAL' WHERE request_id = $1 AND position = $2 \
             AND EXISTS (SELECT 1 FROM manual_tasks WHERE id = $3 AND status = 'OPEN')",
        )
        .bind(&task.request_id)
        .bind(task.position)
        .bind(manual_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the outcome of an open manual task and puts the request's task back to PENDING
    /// (the worker applies the outcome), in one transaction; `false` when it was not open.
    async fn close_manual(
        &self,
        manual: &ManualRow,
        outcome: ManualOutcome,
        by: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let at = store::now();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE manual_tasks SET status = $1, completed_by = $2, completed_at = $3, note = $4 \
             WHERE id = $5 AND status = 'OPEN'",
        )
        .bind(outcome.as_str())
        .bind(by)
        .bind(&at)
        .bind(note)
        .bind(&manual.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE privacy_tasks SET status = 'PENDING' \
             WHERE request_id = $1 AND connector = $2 AND entity = $3 AND status = 'MANUAL'",
        )
        .bind(&manual.request_id)
        .bind(&manual.connector)
        .bind(&manual.entity)
        .execute(&mut *tx)
        .await?;
        // Claimable at once, unless a gateway holds it right now: shortening a held lease would
        // let a second worker run the request beside the first (the holder's release makes it
        // claimable again soon after).
        sqlx::query(
            "UPDATE privacy_requests SET updated_at = $1, \
             lease_until = CASE WHEN lease_owner IS NULL THEN $1 ELSE lease_until END WHERE id = $2",
        )
        .bind(&at)
        .bind(&manual.request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every manual task of a request, in creation order.
    pub(super) async fn manual_tasks_of(&self, request_id: &str) -> Result<Vec<ManualRow>, StoreError> {
        Ok(
            subject_connectors::dynamic_sql::dynamic_query_as::<_, ManualRow>(&format!(
                "SELECT {COLUMNS} FROM manual_tasks m WHERE m.request_id = $1 ORDER BY m.created_at, m.id"
            ))
            .bind(request_id)
            .fetch_all(self.pool())
            .await?,
        )
    }

    /// Sets the request's manual tasks in `from` to `to` (retry: FAILED → OPEN; cancel:
    /// OPEN → CANCELLED), clearing their outcome when they open again.
    async fn move_manual(&self, request_id: &str, from: &str, to: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE manual_tasks SET status = $1, \
             completed_by = CASE WHEN $1 = 'OPEN' THEN NULL ELSE completed_by END, \
             completed_at = CASE WHEN $1 = 'OPEN' THEN NULL ELSE completed_at END, \
             note = CASE WHEN $1 = 'OPEN' THEN NULL ELSE note END \
             WHERE request_id = $2 AND status = $3",
        )
        .bind(to)
        .bind(request_id)
        .bind(from)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One manual task as listed.
    async fn list_manual_one(&self, id: &str) -> Result<Option<ListedRow>, StoreError> {
        Ok(
            subject_connectors::dynamic_sql::dynamic_query_as::<_, ListedRow>(&format!(
                "{LISTED} AND m.id = $1"
            ))
            .bind(id)
            .fetch_optional(self.pool())
            .await?,
        )
    }

    async fn list_manual(
        &self,
        filter: &ManualTaskFilter,
        limit: usize,
    ) -> Result<Vec<ListedRow>, StoreError> {
        let mut listing = Listing::new(LISTED);
        if let Some(status) = filter.status {
            listing.equals("m.status", status.as_str());
        }
        if let Some(role) = &filter.role {
            listing.equals("m.role", role);
        }
        if let Some(overdue) = filter.overdue {
            let at = listing.bind(&store::now());
            listing.and(&if overdue {
                format!("m.status = 'OPEN' AND r.due_at < {at}")
            } else {
                format!("(m.status <> 'OPEN' OR r.due_at >= {at})")
            });
        }
        if let Some(cursor) = filter.after.as_deref().and_then(|a| a.split_once('/')) {
            listing.after("m.", cursor, false);
        }
        Ok(listing.fetch(self.pool(), "m.", false, limit).await?)
    }
}

impl PrivacyEngine {
    /// The manual system a task's store is, if it is one.
    pub(super) fn manual_system(&self, task: &TaskRow) -> Option<(usize, usize, &ManualSystem)> {
        let (c, e) = self.locate(task)?;
        let manual = self.executor.registry().connectors[c].connector.manual()?;
        Some((c, e, manual))
    }

    /// Whether connector `c` is a manual system (planned even where nothing can be read).
    pub(super) fn is_manual(&self, c: usize) -> bool {
        self.executor.registry().connectors[c]
            .connector
            .manual()
            .is_some()
    }

    /// Carries out one task of a manual store: opens its manual task (the request then waits),
    /// or applies the outcome a person recorded.
    pub(super) async fn manual_step(&self, row: &RequestRow, mut task: TaskRow) -> Acted {
        let Some((_, e, manual)) = self.manual_system(&task) else {
            return Ok((task, TaskEnd::Failed));
        };
        let existing = self
            .store
            .manual_where(
                "m.request_id = $1 AND m.connector = $2 AND m.entity = $3",
                &[&row.id, &task.connector, &task.entity],
            )
            .await?;
        let Some(existing) = existing else {
            task.attempts += 1;
            task.started_at.get_or_insert_with(store::now);
            let opened = ManualRow {
                id: format!("mt_{}", uuid::Uuid::new_v4().simple()),
                request_id: row.id.clone(),
                connector: task.connector.clone(),
                entity: task.entity.clone(),
                action: task.action,
                role: manual.role.clone(),
                instructions: manual.instructions.get(e).cloned().unwrap_or_default(),
                status: ManualOutcome::Open.as_str().into(),
                created_at: store::now(),
                completed_by: None,
                completed_at: None,
                note: None,
            };
            if self.store.open_manual(&opened, &task).await? {
                task.status = TaskStatus::Manual;
                self.event(
                    &row.id,
                    "task.manual",
                    &format!(
                        "{}.{}: {} by hand, assigned to role {} (manual task {})",
                        task.connector, task.entity, task.action, manual.role, opened.id
                    ),
                    RequestStatus::Waiting,
                )
                .await;
                tracing::info!(request = %row.id, task = %opened.id, role = %manual.role, "manual task opened");
            }
            return Ok((task, TaskEnd::Waiting));
        };
        match outcome_of(&existing)? {
            ManualOutcome::Open => {
                if task.status != TaskStatus::Manual {
                    self.store.mark_manual(&task, &existing.id).await?;
                    task.status = TaskStatus::Manual;
                }
                Ok((task, TaskEnd::Waiting))
            }
            outcome @ (ManualOutcome::Done | ManualOutcome::NotFound) => {
                task.records = (outcome == ManualOutcome::NotFound).then_some(0);
                task.verified = None;
                self.task_done(row, &mut task).await?;
                Ok((task, TaskEnd::Done))
            }
            ManualOutcome::Failed | ManualOutcome::Cancelled => {
                let note = existing.note.as_deref().unwrap_or("no note");
                self.task_failed(
                    row,
                    &mut task,
                    format!("the manual task {} {}: {note}", existing.id, existing.status),
                    "MANUAL_TASK_FAILED",
                )
                .await?;
                Ok((task, TaskEnd::Failed))
            }
        }
    }

    /// Whether no task of the request failed: a run that met a manual task then only waits.
    pub(super) async fn none_failed(&self, row: &RequestRow) -> Result<bool, StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        Ok(!tasks.iter().any(|t| t.status == TaskStatus::Failed))
    }

    /// The manual outcomes of a request, per `connector.entity`, for its receipt and export.
    pub(super) async fn manual_outcomes(
        &self,
        request_id: &str,
    ) -> Result<Vec<(String, String, Json)>, StoreError> {
        Ok(self
            .store
            .manual_tasks_of(request_id)
            .await?
            .into_iter()
            .map(|m| {
                let outcome = json!({
                    "task": m.id,
                    "action": m.action,
                    "assignedTo": m.role,
                    "outcome": m.status,
                    "completedBy": m.completed_by,
                    "completedAt": m.completed_at,
                    "note": m.note,
                });
                (m.connector, m.entity, outcome)
            })
            .collect())
    }

    /// Retry: the request's FAILED manual tasks open again.
    pub(super) async fn reopen_manual_tasks(&self, request_id: &str) {
        if let Err(error) = self.store.move_manual(request_id, "FAILED", "OPEN").await {
            tracing::warn!(request = %request_id, error = %error, "could not reopen the request's manual tasks");
        }
    }

    /// Cancel, deny: the request's open manual tasks are CANCELLED (nobody needs to act).
    pub(super) async fn close_manual_tasks(&self, request_id: &str) {
        if let Err(error) = self.store.move_manual(request_id, "OPEN", "CANCELLED").await {
            tracing::warn!(request = %request_id, error = %error, "could not cancel the request's manual tasks");
        }
    }

    pub(super) async fn list_manual_tasks(
        &self,
        caller: &Caller,
        mut filter: ManualTaskFilter,
    ) -> Result<ManualTaskPage, RequestError> {
        if !caller.role.may(Operation::ManageRequests) {
            match &filter.role {
                Some(role) if *role != caller.role.name => {
                    return Err(RequestError::Refused(
                        ErrorCode::NotAssigned,
                        format!(
                            "role `{}` sees only the manual tasks assigned to it (`manage_requests` sees every role's)",
                            caller.role.name
                        ),
                    ));
                }
                _ => filter.role = Some(caller.role.name.clone()),
            }
        }
        if filter.after.as_deref().is_some_and(|a| !a.contains('/')) {
            return Err(RequestError::Invalid(
                "`after` is not a cursor from manualTasks".into(),
            ));
        }
        let mut rows = self
            .store
            .list_manual(&filter, filter.first + 1)
            .await
            .map_err(unavailable)?;
        let has_next_page = rows.len() > filter.first;
        rows.truncate(filter.first);
        let end_cursor = rows
            .last()
            .map(|r| format!("{}/{}", r.task.created_at, r.task.id));
        let tasks = rows
            .iter()
            .map(|r| self.manual_view(caller, r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        // Identity values (whom to search for) are personal data: their read is audited.
        let shown: Vec<&str> = tasks
            .iter()
            .filter(|t| !t.identities.is_empty() || !t.changes.is_empty())
            .map(|t| t.id.as_str())
            .collect();
        if !shown.is_empty() {
            self.audit_action(caller, "manual_tasks.read", None, json!({ "tasks": shown }))
                .await;
        }
        Ok(ManualTaskPage {
            tasks,
            end_cursor,
            has_next_page,
        })
    }

    pub(super) async fn record_manual_outcome(
        &self,
        caller: &Caller,
        id: &str,
        outcome: ManualOutcome,
        note: Option<String>,
    ) -> Result<ManualTaskView, RequestError> {
        let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if note.as_ref().is_some_and(|n| n.len() > 2000) {
            return Err(RequestError::Invalid("note: at most 2000 characters".into()));
        }
        if outcome == ManualOutcome::Failed && note.is_none() {
            return Err(RequestError::Invalid(
                "note: say why the task could not be done".into(),
            ));
        }
        let manual = self
            .store
            .manual_where("m.id = $1", &[id])
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        if manual.role != caller.role.name && !caller.role.may(Operation::ManageRequests) {
            return Err(RequestError::Refused(
                ErrorCode::NotAssigned,
                format!(
                    "the manual task is assigned to role `{}`, not `{}`",
                    manual.role, caller.role.name
                ),
            ));
        }
        if !self
            .store
            .close_manual(&manual, outcome, &caller.principal, note.as_deref())
            .await
            .map_err(unavailable)?
        {
            return Err(RequestError::Conflict(format!(
                "only an OPEN manual task can be completed; this one is {}",
                manual.status
            )));
        }
        self.audit_action(
            caller,
            "manual_task.completed",
            None,
            json!({
                "request": manual.request_id,
                "task": manual.id,
                "connector": manual.connector,
                "entity": manual.entity,
                "outcome": outcome.as_str(),
                "note": note,
            }),
        )
        .await;
        tracing::info!(request = %manual.request_id, task = %manual.id, outcome = outcome.as_str(), "manual task completed");
        self.wake.notify_one();
        let listed = self
            .store
            .list_manual_one(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        self.manual_view(caller, &listed).map_err(unavailable)
    }

    /// A listed manual task as `ManualTask`: identities and corrections only of the categories
    /// the caller's role sees, and only while the request holds them.
    fn manual_view(&self, caller: &Caller, row: &ListedRow) -> Result<ManualTaskView, StoreError> {
        let m = &row.task;
        let registry = self.executor.registry();
        let mut identities = Vec::new();
        let mut changes = Vec::new();
        let located = registry
            .connectors
            .iter()
            .position(|r| r.connector.descriptor().name == m.connector)
            .and_then(|c| {
                let entities = &registry.connectors[c].connector.descriptor().entities;
                entities.iter().position(|e| e.name == m.entity).map(|e| (c, e))
            });
        if let Some((c, e)) = located
            && m.status == ManualOutcome::Open.as_str()
        {
            let entity = &registry.connectors[c].connector.descriptor().entities[e];
            if let Some(lookup) = self.decode_lookup(c, e, row.lookup.as_deref()) {
                for (l, values) in &lookup.by {
                    let Some(link) = entity.lookups.get(*l) else {
                        continue;
                    };
                    let spec = registry.kinds.get(link.kind);
                    if !caller.role.sees(&spec.category) {
                        continue;
                    }
                    for value in values {
                        identities.push(format!("{}: {}", spec.name, value.expose()));
                    }
                }
            }
            let input: Option<RequestInput> = row.input.as_deref().and_then(|i| serde_json::from_str(i).ok());
            for (attribute, value) in input.map(|i| i.changes).unwrap_or_default() {
                let seen = entity
                    .fields
                    .iter()
                    .filter(|f| f.rectify.as_deref() == Some(attribute.as_str()))
                    .any(|f| caller.role.sees(&f.category));
                if seen {
                    changes.push(format!("{attribute}: {value}"));
                }
            }
        }
        let overdue = m.status == ManualOutcome::Open.as_str()
            && DateTime::parse_from_rfc3339(&row.due_at).is_ok_and(|d| d.with_timezone(&Utc) < Utc::now());
        outcome_of(m)?;
        Ok(ManualTaskView {
            id: m.id.clone(),
            request_id: m.request_id.clone(),
            request_type: row.request_kind,
            connector: m.connector.clone(),
            entity: m.entity.clone(),
            action: m.action,
            role: m.role.clone(),
            instructions: m.instructions.clone(),
            status: m.status.clone(),
            created_at: m.created_at.clone(),
            due_at: row.due_at.clone(),
            overdue,
            identities,
            changes,
            completed_by: m.completed_by.clone(),
            completed_at: m.completed_at.clone(),
            note: m.note.clone(),
        })
    }
}
