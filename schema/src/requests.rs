//! Privacy requests as the schema sees them: erasure, rectification, export and objection,
//! submitted through mutations, listed and followed through queries and a subscription.
//!
//! The engine that plans, executes, retries and verifies them (with its state database) lives in
//! the gateway; this module defines the interface. Views cross it as JSON objects whose keys are
//! the GraphQL field names (see [`crate::privacy`] for the types built over them).

use async_trait::async_trait;
use futures::stream::BoxStream;
use subject_connectors::Identity;

use crate::access::Caller;

/// What kind of privacy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// GDPR Art. 17 / CCPA deletion.
    Erasure,
    /// GDPR Art. 16.
    Rectification,
    /// GDPR Art. 15 and 20: access and portability.
    Export,
    /// GDPR Art. 21 / consent withdrawal: stop processing for a purpose.
    Objection,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Erasure => "ERASURE",
            RequestKind::Rectification => "RECTIFICATION",
            RequestKind::Export => "EXPORT",
            RequestKind::Objection => "OBJECTION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ERASURE" => RequestKind::Erasure,
            "RECTIFICATION" => RequestKind::Rectification,
            "EXPORT" => RequestKind::Export,
            "OBJECTION" => RequestKind::Objection,
            _ => return None,
        })
    }
}

/// A text none of the request kinds spells (a stored value read back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown request kind `{0}`")]
pub struct UnknownRequestKind(pub String);

impl std::str::FromStr for RequestKind {
    type Err = UnknownRequestKind;

    fn from_str(text: &str) -> Result<Self, UnknownRequestKind> {
        RequestKind::parse(text).ok_or_else(|| UnknownRequestKind(text.to_owned()))
    }
}

impl TryFrom<String> for RequestKind {
    type Error = UnknownRequestKind;

    fn try_from(text: String) -> Result<Self, UnknownRequestKind> {
        text.parse()
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub status: Option<String>,
    pub kind: Option<RequestKind>,
    /// Only requests past their due date and not finished (or only those that are not).
    pub overdue: Option<bool>,
    pub first: usize,
    /// A cursor from a previous page.
    pub after: Option<String>,
}

/// A page of requests: the views, the cursor of the last, and whether more follow.
#[derive(Debug, Clone)]
pub struct RequestPage {
    pub requests: Vec<serde_json::Value>,
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
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
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Invalid(_) => "INVALID_INPUT",
            RequestError::NotFound(_) => "NOT_FOUND",
            RequestError::Conflict(_) => "CONFLICT",
            RequestError::Unavailable(_) => "REQUESTS_UNAVAILABLE",
        }
    }
}

/// The privacy-request engine.
#[async_trait]
pub trait PrivacyRequests: Send + Sync + 'static {
    /// What erasing the person would do, per connector and entity; changes nothing.
    async fn erasure_plan(&self, identity: Identity) -> Result<serde_json::Value, RequestError>;

    /// Records a new request (or returns the one its idempotency key already made) and starts it.
    async fn submit(
        &self,
        caller: &Caller,
        submission: Submission,
    ) -> Result<serde_json::Value, RequestError>;

    async fn request(&self, id: &str) -> Result<Option<serde_json::Value>, RequestError>;

    async fn requests(&self, filter: RequestFilter) -> Result<RequestPage, RequestError>;

    /// Resumes a FAILED request: only the tasks not done are run again.
    async fn retry(&self, caller: &Caller, id: &str) -> Result<serde_json::Value, RequestError>;

    /// Cancels a request that has not finished; tasks already done stay done.
    async fn cancel(&self, caller: &Caller, id: &str) -> Result<serde_json::Value, RequestError>;

    /// Extends the due date (GDPR Art. 12(3): up to two further months, with a reason).
    async fn extend(
        &self,
        caller: &Caller,
        id: &str,
        days: u32,
        reason: String,
    ) -> Result<serde_json::Value, RequestError>;

    /// The request's events from now on (and its current state first), until it finishes.
    async fn events(&self, id: &str) -> Result<BoxStream<'static, serde_json::Value>, RequestError>;
}
