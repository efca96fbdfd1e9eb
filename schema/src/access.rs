//! Who may see what: roles grant operations, data categories (hierarchical: `user.contact`
//! grants `user.contact.email`) and the purposes a caller may state; a `Caller` is an
//! authenticated principal with its role and the purpose of the request at hand.
//!
//! The HTTP layer authenticates and puts a `Caller` in the request's data; the schema's resolvers
//! check it. A request with no `Caller` sees nothing.

use std::sync::Arc;

use serde::Deserialize;
use subject_connectors::DataCategory;
use subject_connectors::purpose::DataUse;

/// What a role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `subject`, `subjects`, `connectors`.
    ReadSubject,
    Erase,
    Rectify,
    Export,
    /// List and manage privacy requests.
    ManageRequests,
    ReadAudit,
    /// List webhook deliveries and redeliver them.
    ManageWebhooks,
    /// Approve or deny requests that need approval (never one's own: four eyes).
    Approve,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ReadSubject => "read_subject",
            Operation::Erase => "erase",
            Operation::Rectify => "rectify",
            Operation::Export => "export",
            Operation::ManageRequests => "manage_requests",
            Operation::ReadAudit => "read_audit",
            Operation::ManageWebhooks => "manage_webhooks",
            Operation::Approve => "approve",
        }
    }
}

/// A declared role.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub operations: Vec<Operation>,
    pub categories: Vec<DataCategory>,
    /// The purposes a caller with this role may state.
    pub purposes: Vec<DataUse>,
}

impl Role {
    pub fn may(&self, operation: Operation) -> bool {
        self.operations.contains(&operation)
    }

    pub fn sees(&self, category: &DataCategory) -> bool {
        self.categories.iter().any(|granted| category.is_within(granted))
    }

    pub fn may_state(&self, purpose: &DataUse) -> bool {
        self.purposes.iter().any(|allowed| purpose.is_within(allowed))
    }
}

/// An authenticated caller, for one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key id, or a fingerprint of the token's subject: safe for logs and audit.
    pub principal: String,
    pub role: Arc<Role>,
    /// The purpose the request states.
    pub purpose: DataUse,
}

impl Caller {
    /// Whether a store declaring `purposes` may serve this caller's purpose.
    pub fn purpose_served_by(&self, purposes: Option<&[DataUse]>) -> bool {
        purposes.is_none_or(|allowed| allowed.iter().any(|a| self.purpose.is_within(a)))
    }
}
