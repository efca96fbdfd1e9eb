//! The audit trail as the schema sees it: every subject read is appended (who, with which role,
//! for which purpose, which subjects — hashed —, which connectors and data categories, and the
//! outcome) before the data is returned; auditors page through it with `Query.auditEvents`.
//!
//! The storage (hash-chained, append-only) lives in the gateway; this module defines the
//! interface.

use async_trait::async_trait;
use subject_connectors::IdentityValue;

/// An identity named by an audited action: its kind's name and value (stored hashed).
#[derive(Debug, Clone)]
pub struct SubjectRef {
    pub kind: String,
    pub value: IdentityValue,
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub role: String,
    pub purpose: String,
    /// `subject.read`, `subjects.read`, …
    pub action: String,
    /// The identities the request named (hashed by the log before storing).
    pub subjects: Vec<SubjectRef>,
    /// JSON: connectors and categories touched, outcome.
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub purpose: String,
    pub action: String,
    /// Keyed hashes of the identities.
    pub subjects: Vec<String>,
    pub detail: serde_json::Value,
    pub hash: String,
}

/// What `auditEvents` filters on.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub after: Option<i64>,
    pub first: usize,
    pub action: Option<String>,
    pub actor: Option<String>,
    /// Events naming this identity.
    pub subject: Option<SubjectRef>,
}

/// Why the audit log failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log is unavailable: {0}")]
pub struct AuditError(pub String);

/// Where audit events go and come from.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an event; data is only returned once this succeeded.
    async fn append(&self, entry: AuditEntry) -> Result<(), AuditError>;

    /// A page of events in sequence order, and whether more follow.
    async fn list(&self, filter: &AuditFilter) -> Result<(Vec<AuditRecord>, bool), AuditError>;
}
