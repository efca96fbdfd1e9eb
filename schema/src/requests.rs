//! Privacy requests as the schema sees them: erasure, rectification, export and objection,
//! submitted through mutations, listed and followed through queries and a subscription.
//!
//! The engine that plans, executes, retries and verifies them (with its state database) lives in
//! the gateway; this module defines the interface. Views cross it as the typed structs of
//! [`crate::request_views`] (see [`crate::privacy`] for the GraphQL types that serve them); the
//! kinds and states are the enums of [`crate::request_state`].

use async_trait::async_trait;
use futures::stream::BoxStream;
use subject_connectors::Identity;
use subject_connectors::codes::ErrorCode;

use crate::access::Caller;
pub use crate::request_state::{RequestKind, RequestStatus, TaskAction, TaskStatus, UnknownValue};
pub use crate::request_views::{
    DownloadView, EventView, ManualTaskPage, ManualTaskView, PlanEntryView, PlanView, RequestPage,
    RequestView, TaskView,
};

/// A new request, as a mutation gives it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub kind: RequestKind,
    pub identity: Identity,
    /// The same key twice gives the same request.
    pub idempotency_key: String,
    pub reason: Option<String>,
    /// `GDPR` (default), `CCPA`, … : decides the due date.
    pub regulation: Option<String>,
    /// Rectification: subject attribute (`email`) and its correct value.
    pub changes: Vec<(String, String)>,
    /// Objection: the purpose (fideslang data use) objected to.
    pub purpose: Option<String>,
    /// Erasure: act even where a lookup matches more records than the declared limit.
    pub allow_large_matches: bool,
    /// The configured webhook endpoint (by name, never a URL) told of this request's events.
    pub webhook: Option<String>,
}

/// What `privacyRequests` filters on.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    /// Only requests past their due date and not finished (or only those that are not).
    pub overdue: Option<bool>,
    pub first: usize,
    /// A cursor from a previous page.
    pub after: Option<String>,
}

/// What `manualTasks` filters on.
#[derive(Debug, Clone, Default)]
pub struct ManualTaskFilter {
    /// OPEN, DONE, NOT_FOUND, FAILED, CANCELLED.
    pub status: Option<ManualOutcome>,
    /// Only tasks assigned to this role (callers without `manage_requests`: always their own).
    pub role: Option<String>,
    /// Only open tasks past their request's due date (or only those that are not).
    pub overdue: Option<bool>,
    pub first: usize,
    pub after: Option<String>,
}

/// Where a manual task is: open, or the outcome a person recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManualOutcome {
    Open,
    /// Done as instructed.
    Done,
    /// The person is not in the store: nothing to do.
    NotFound,
    /// It could not be done: the request fails (the note says why) and may be retried.
    Failed,
    /// The request was cancelled (or denied) before it was done.
    Cancelled,
}

impl ManualOutcome {
    pub const ALL: &'static [ManualOutcome] = &[
        ManualOutcome::Open,
        ManualOutcome::Done,
        ManualOutcome::NotFound,
        ManualOutcome::Failed,
        ManualOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ManualOutcome::Open => "OPEN",
            ManualOutcome::Done => "DONE",
            ManualOutcome::NotFound => "NOT_FOUND",
            ManualOutcome::Failed => "FAILED",
            ManualOutcome::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.as_str() == text)
    }
}

/// Why a request could not be submitted or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    #[error("no privacy request `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the privacy request store is unavailable: {0}")]
    Unavailable(String),
    /// approval, manual tasks: the caller may not do this to this request or task (`FOUR_EYES`,
    /// `NOT_ASSIGNED`).
    #[error("{1}")]
    Refused(ErrorCode, String),
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Invalid(_) => ErrorCode::InvalidInput.as_str(),
            RequestError::NotFound(_) => ErrorCode::NotFound.as_str(),
            RequestError::Conflict(_) => ErrorCode::Conflict.as_str(),
            RequestError::Unavailable(_) => ErrorCode::RequestsUnavailable.as_str(),
            RequestError::Refused(code, _) => code.as_str(),
        }
    }
}

/// The privacy-request engine.
#[async_trait]
pub trait PrivacyRequests: Send + Sync + 'static {
    /// What erasing the person would do, per connector and entity; changes nothing.
    async fn erasure_plan(&self, identity: Identity) -> Result<PlanView, RequestError>;

    /// Records a new request (or returns the one its idempotency key already made) and starts it.
    async fn submit(&self, caller: &Caller, submission: Submission) -> Result<RequestView, RequestError>;

    async fn request(&self, id: &str) -> Result<Option<RequestView>, RequestError>;

    async fn requests(&self, filter: RequestFilter) -> Result<RequestPage, RequestError>;

    /// Resumes a FAILED request: only the tasks not done are run again.
    async fn retry(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError>;

    /// Cancels a request that has not finished; tasks already done stay done.
    async fn cancel(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError>;

    /// Extends the due date (GDPR Art. 12(3): up to two further months, with a reason).
    async fn extend(
        &self,
        caller: &Caller,
        id: &str,
        days: u32,
        reason: String,
    ) -> Result<RequestView, RequestError>;

    /// The request's events from now on (and its current state first), until it finishes.
    async fn events(&self, id: &str) -> Result<BoxStream<'static, EventView>, RequestError>;

    /// console: the events of every request from now on, as they are recorded (never ends).
    async fn all_events(&self) -> Result<BoxStream<'static, EventView>, RequestError>;

    /// console: every event recorded for one request, oldest first.
    async fn request_events(&self, id: &str) -> Result<Vec<EventView>, RequestError>;

    /// console: how many requests are in each status, with the `privacyRequests` filters of type
    /// and overdue (statuses with none are left out).
    async fn counts(
        &self,
        kind: Option<RequestKind>,
        overdue: Option<bool>,
    ) -> Result<Vec<(RequestStatus, u64)>, RequestError>;

    /// approval: what erasing the person of an open request would do now (`None` once the
    /// request no longer holds its identity).
    async fn request_plan(&self, id: &str) -> Result<Option<PlanView>, RequestError>;

    /// approval: lets an AWAITING_APPROVAL request run; never by its submitter (`FOUR_EYES`).
    async fn approve(&self, caller: &Caller, id: &str) -> Result<RequestView, RequestError>;

    /// approval: ends an AWAITING_APPROVAL request as DENIED with the reason; never by its
    /// submitter.
    async fn deny(&self, caller: &Caller, id: &str, reason: String) -> Result<RequestView, RequestError>;

    /// manual systems: the manual tasks, oldest first.
    async fn manual_tasks(
        &self,
        caller: &Caller,
        filter: ManualTaskFilter,
    ) -> Result<ManualTaskPage, RequestError>;

    /// manual systems: records who did what for an open manual task; the request carries on.
    async fn complete_manual_task(
        &self,
        caller: &Caller,
        id: &str,
        outcome: ManualOutcome,
        note: Option<String>,
    ) -> Result<ManualTaskView, RequestError>;
}
