//! The engine's rows as the typed views the GraphQL layer serves
//! ([`subject_schema::request_views`]): a request with its tasks, its receipt and (for a
//! completed export whose link still works) its download.

use serde_json::Value as Json;
use subject_schema::request_views::{RequestView, TaskView};
use subject_schema::requests::RequestError;

use super::state::RequestStatus;
use super::store::{self, RequestRow, TaskRow};
use super::{PrivacyEngine, unavailable};

impl PrivacyEngine {
    /// A request as `PrivacyRequest` serves it.
    pub(super) fn view(&self, row: &RequestRow, tasks: &[TaskRow]) -> RequestView {
        let now = store::now();
        let overdue = row.due_at < now && row.status.is_unfinished();
        let receipt = row
            .receipt
            .as_deref()
            .and_then(|r| serde_json::from_str::<Json>(r).ok());
        let download = (row.status == RequestStatus::Completed)
            .then(|| row.export.as_deref().and_then(|e| self.download(&row.id, e)))
            .flatten();
        RequestView {
            id: row.id.clone(),
            kind: row.kind,
            status: row.status,
            regulation: row.regulation.clone(),
            reason: row.reason.clone(),
            subject: row.subject_hash.clone(),
            requested_by: row.requested_by.clone(),
            created_at: row.created_at.clone(),
            updated_at: row.updated_at.clone(),
            due_at: row.due_at.clone(),
            overdue,
            extension_reason: row.extension_reason.clone(),
            completed_at: row.completed_at.clone(),
            error: row.error.clone(),
            tasks: tasks.iter().map(task_view).collect(),
            receipt,
            receipt_sha256: row.receipt_sha256.clone(),
            download,
            decided_by: row.decided_by.clone(),
            decided_at: row.decided_at.clone(),
            decision_reason: row.decision_reason.clone(),
        }
    }

    pub(super) async fn view_of(&self, id: &str) -> Result<Option<RequestView>, RequestError> {
        let Some(row) = self.store.request(id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let tasks = self.store.tasks(id).await.map_err(unavailable)?;
        Ok(Some(self.view(&row, &tasks)))
    }

    pub(super) async fn existing_view(&self, id: &str) -> Result<RequestView, RequestError> {
        self.view_of(id)
            .await?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))
    }
}

fn task_view(task: &TaskRow) -> TaskView {
    TaskView {
        connector: task.connector.clone(),
        entity: task.entity.clone(),
        action: task.action,
        status: task.status,
        attempts: task.attempts,
        records: task.records,
        files: task.files,
        legal_basis: task.legal_basis.clone(),
        retain_until: task.retain_until.clone(),
        verified: task.verified,
        error: task.error.clone(),
        error_code: task.error_code.clone(),
        started_at: task.started_at.clone(),
        finished_at: task.finished_at.clone(),
    }
}
