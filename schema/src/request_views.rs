//! What the privacy-request engine hands the GraphQL layer: a request, its tasks, an erasure plan,
//! a page of requests, an event. Typed structs (serialised with the GraphQL field names), so a
//! field the engine forgets or misspells is a compile error, never a silent `null`.
//!
//! The receipt is a document in its own right (hashed into the audit trail) and stays JSON.

use serde::Serialize;

use crate::request_state::{RequestKind, RequestStatus, TaskAction, TaskStatus};

/// A privacy request: `PrivacyRequest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: RequestKind,
    pub status: RequestStatus,
    pub regulation: String,
    pub reason: Option<String>,
    /// The person, as a keyed hash of the identity given.
    pub subject: String,
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub due_at: String,
    pub overdue: bool,
    pub extension_reason: Option<String>,
    pub completed_at: Option<String>,
    pub error: Option<String>,
    pub tasks: Vec<TaskView>,
    pub receipt: Option<serde_json::Value>,
    pub receipt_sha256: Option<String>,
    pub download: Option<DownloadView>,
    /// approval: who approved or denied it, when, and (denied) why.
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
}

/// One connector/entity task of a request: `PrivacyTask`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub connector: String,
    pub entity: String,
    pub action: TaskAction,
    pub status: TaskStatus,
    pub attempts: i64,
    pub records: Option<i64>,
    pub files: Option<i64>,
    pub legal_basis: Option<String>,
    pub retain_until: Option<String>,
    pub verified: Option<bool>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Where a completed export is downloaded while its link works: `ExportDownload`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadView {
    pub url: String,
    pub expires_at: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What erasing a person would do: `ErasurePlan`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub subject: String,
    pub identities: usize,
    pub blocked: bool,
    pub entries: Vec<PlanEntryView>,
}

/// What erasure does in one entity (or why a store could not say): `ErasurePlanEntry`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntryView {
    pub connector: String,
    /// `*` for a store whose lookups failed.
    pub entity: String,
    /// DELETE, MASK, RETAIN, CASCADE; UNKNOWN for a store whose lookups failed.
    pub action: String,
    pub records: usize,
    pub files: usize,
    pub fields_touched: Vec<String>,
    pub legal_basis: Option<String>,
    pub retain_until: Option<String>,
    pub limit: Option<u64>,
    pub exceeds_limit: bool,
    pub supported: bool,
    pub note: Option<String>,
    pub blocked_by: Option<String>,
    pub error: Option<String>,
}

/// A page of requests, newest first: `PrivacyRequestPage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPage {
    pub requests: Vec<RequestView>,
    /// The cursor of the last request, for `after`.
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

/// Progress of a request: `PrivacyRequestEvent`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub request_id: String,
    pub at: String,
    /// received, planned, task.started, task.done, …
    pub kind: String,
    pub message: String,
    /// The request's status after the event.
    pub status: RequestStatus,
}

/// A manual task: what a person does by hand in a store without an API, for one request and
/// entity: `ManualTask`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTaskView {
    pub id: String,
    pub request_id: String,
    /// ERASURE, EXPORT, RECTIFICATION.
    pub request_type: RequestKind,
    pub connector: String,
    pub entity: String,
    /// What to do there: DELETE, EXPORT, RECTIFY, …
    pub action: TaskAction,
    pub role: String,
    pub instructions: String,
    /// OPEN until an outcome is recorded: DONE, NOT_FOUND, FAILED.
    pub status: String,
    pub created_at: String,
    /// The request's due date: the task is overdue after it.
    pub due_at: String,
    pub overdue: bool,
    /// The identities to search by (`kind: value`), those whose category the caller's role
    /// sees; cleared once the request finishes.
    pub identities: Vec<String>,
    /// Rectification: the corrections to make (`field: value`).
    pub changes: Vec<String>,
    pub completed_by: Option<String>,
    pub completed_at: Option<String>,
    pub note: Option<String>,
}

/// A page of manual tasks, oldest first: `ManualTaskPage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTaskPage {
    pub tasks: Vec<ManualTaskView>,
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}
