//! Retention that ends, as the schema sees it: `Query.retentionSchedule(first, after)` — every
//! record an erasure retained (for a legal obligation), when its retention ends and what happens
//! then — needing the `manage_requests` operation. No record values: where, how many, when.
//!
//! The schedule, and the run that erases retained records when their retention ends, live in the
//! gateway's engine (`gateway/src/requests/retention.rs`); this module defines the interface it
//! implements, [`RetentionSchedule`], and the GraphQL types over its rows.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, SchemaBuilder,
    TypeRef,
};
use async_graphql::{Error, ErrorExtensions, Name, Value as GqlValue};
use async_trait::async_trait;
use subject_connectors::codes::ErrorCode;

use crate::access::Operation;
use crate::gql_support::{authorize, described_leaf, opt_string, page_object, text};

/// Where a retained record is in its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionStatus {
    /// Kept until `retain_until` (or past it and not yet ended: see `attempts` and `last_error`).
    Scheduled,
    /// A gateway is ending its retention now (under a lease).
    Running,
    /// Its retention ended: erased as declared, verified, appended to the request's receipt.
    Ended,
}

impl RetentionStatus {
    pub const ALL: [RetentionStatus; 3] = [
        RetentionStatus::Scheduled,
        RetentionStatus::Running,
        RetentionStatus::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionStatus::Scheduled => "SCHEDULED",
            RetentionStatus::Running => "RUNNING",
            RetentionStatus::Ended => "ENDED",
        }
    }
}

/// One retained record in the schedule. Carries no values: the record's key stays in the state
/// database (and is forgotten when its retention ends).
#[derive(Debug, Clone)]
pub struct RetentionEntry {
    pub id: String,
    /// The erasure that retained it (its receipt gets the outcome as an amendment).
    pub request_id: String,
    pub connector: String,
    pub entity: String,
    pub legal_basis: Option<String>,
    /// When the retention ends.
    pub retain_until: String,
    /// What happens then: `DELETE` or `PSEUDONYMIZE`.
    pub after_retention: String,
    pub status: RetentionStatus,
    /// Runs that tried to end it.
    pub attempts: i64,
    pub ended_at: Option<String>,
    /// Why the last run did not end it (it is tried again).
    pub last_error: Option<String>,
}

/// A page of the schedule, soonest end first.
#[derive(Debug, Clone)]
pub struct RetentionPage {
    pub entries: Vec<RetentionEntry>,
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

/// Why the schedule could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RetentionError {
    #[error("{0}")]
    Invalid(String),
    #[error("the retention schedule is unavailable: {0}")]
    Unavailable(String),
}

impl RetentionError {
    fn code(&self) -> &'static str {
        match self {
            RetentionError::Invalid(_) => ErrorCode::InvalidInput.as_str(),
            RetentionError::Unavailable(_) => ErrorCode::RequestsUnavailable.as_str(),
        }
    }
}

/// The engine's retention schedule.
#[async_trait]
pub trait RetentionSchedule: Send + Sync + 'static {
    /// A page of retained records, soonest end first, after the cursor `after`.
    async fn schedule(&self, first: usize, after: Option<String>) -> Result<RetentionPage, RetentionError>;
}

fn schedule_of<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<dyn RetentionSchedule>> {
    ctx.data_opt::<Arc<dyn RetentionSchedule>>().ok_or_else(|| {
        Error::new("privacy requests are not configured")
            .extend_with(|_, e| e.set("code", ErrorCode::RequestsUnavailable.as_str()))
    })
}

/// Registers `RetentionStatus`, `RetentionEntry` and `RetentionPage`.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    let string_nn = || TypeRef::named_nn(TypeRef::STRING);
    let string = || TypeRef::named(TypeRef::STRING);
    let entry = Object::new("RetentionEntry")
        .description(
            "A record an erasure retained for a legal obligation, and when its retention ends. No values.",
        )
        .field(described_leaf::<RetentionEntry>(
            "id",
            TypeRef::named_nn(TypeRef::ID),
            "",
            |r| text(&r.id),
        ))
        .field(described_leaf::<RetentionEntry>(
            "requestId",
            TypeRef::named_nn(TypeRef::ID),
            "The erasure that retained it; its receipt gets the outcome as an amendment.",
            |r| text(&r.request_id),
        ))
        .field(described_leaf::<RetentionEntry>(
            "connector",
            string_nn(),
            "",
            |r| text(&r.connector),
        ))
        .field(described_leaf::<RetentionEntry>("entity", string_nn(), "", |r| {
            text(&r.entity)
        }))
        .field(described_leaf::<RetentionEntry>(
            "legalBasis",
            string(),
            "",
            |r| opt_string(r.legal_basis.as_deref()),
        ))
        .field(described_leaf::<RetentionEntry>(
            "retainUntil",
            string_nn(),
            "When the retention ends.",
            |r| text(&r.retain_until),
        ))
        .field(described_leaf::<RetentionEntry>(
            "afterRetention",
            string_nn(),
            "What happens then, as declared: DELETE or PSEUDONYMIZE.",
            |r| text(&r.after_retention),
        ))
        .field(described_leaf::<RetentionEntry>(
            "status",
            TypeRef::named_nn("RetentionStatus"),
            "",
            |r| GqlValue::Enum(Name::new(r.status.as_str())),
        ))
        .field(described_leaf::<RetentionEntry>(
            "attempts",
            TypeRef::named_nn(TypeRef::INT),
            "Runs that tried to end it.",
            |r| GqlValue::from(r.attempts),
        ))
        .field(described_leaf::<RetentionEntry>("endedAt", string(), "", |r| {
            opt_string(r.ended_at.as_deref())
        }))
        .field(described_leaf::<RetentionEntry>(
            "lastError",
            string(),
            "Why the last run did not end it; it is tried again.",
            |r| opt_string(r.last_error.as_deref()),
        ));
    let page = page_object(
        "RetentionPage",
        "A page of the retention schedule, soonest end first.",
        "entries",
        "RetentionEntry",
        |page: &RetentionPage| (&page.entries, page.end_cursor.as_deref(), page.has_next_page),
    );
    let status = RetentionStatus::ALL.into_iter().fold(
        Enum::new("RetentionStatus").description(
            "SCHEDULED: kept until retainUntil (or due and to be tried again). RUNNING: a gateway is ending it now. ENDED: erased as declared, verified, amended to the receipt.",
        ),
        |e, item| e.item(EnumItem::new(item.as_str())),
    );
    builder.register(status).register(entry).register(page)
}

/// `Query.retentionSchedule`.
pub(crate) fn query_fields(query: Object) -> Object {
    query.field(
        Field::new("retentionSchedule", TypeRef::named_nn("RetentionPage"), |ctx| {
            FieldFuture::new(async move {
                authorize(&ctx, Operation::ManageRequests)?;
                let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
                let first = arg("first").and_then(|v| v.i64().ok()).unwrap_or(50).clamp(1, 500) as usize;
                let after = arg("after").and_then(|v| v.string().ok().map(str::to_owned));
                let page = schedule_of(&ctx)?.schedule(first, after).await.map_err(|error| {
                    let code = error.code();
                    Error::new(error.to_string()).extend_with(move |_, e| e.set("code", code))
                })?;
                Ok(Some(FieldValue::owned_any(page)))
            })
        })
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .description(
            "What retained records end when (soonest first, cursor pagination), and what happens to each then. Needs `manage_requests`.",
        ),
    )
}
