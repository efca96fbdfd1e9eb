//! Operational state for the console: the last `check` of the connectors against their stores
//! (`Query.connectorCheck`, `Mutation.checkConnectors`, needing `read_subject` like
//! `connectors`), the purposes a connector serves (`ConnectorInfo.purposes`), and the audit
//! chain's verification (`Query.auditVerification`, needing `read_audit`).
//!
//! The gateway runs both (they need its stores and its chain key) behind [`GatewayChecks`]; each
//! keeps its last result with the time it was made, runs one at a time, and reuses a result
//! younger than its minimum interval, so that callers cannot make it run more often.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, SchemaBuilder, TypeRef};
use async_graphql::{Error, ErrorExtensions, Value as GqlValue};
use async_trait::async_trait;
use subject_connectors::codes::ErrorCode;

use crate::access::Operation;
use crate::gql_support::{authorize, leaf, opt_string};

/// One line of a connector check: a connector, one of its entities, or its object storage.
#[derive(Debug, Clone)]
pub struct CheckFinding {
    pub connector: String,
    /// The entity, `*` for the whole connector, `[storage]` for its object storage.
    pub entity: String,
    pub ok: bool,
    /// Where it is declared: `file:line:column`.
    pub location: String,
    pub details: Vec<String>,
}

/// A finished check of every connector.
#[derive(Debug, Clone)]
pub struct CheckSnapshot {
    /// When it finished (RFC 3339, UTC).
    pub at: String,
    pub ok: bool,
    pub findings: Vec<CheckFinding>,
}

/// What verifying the audit chain found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// When it was verified (RFC 3339, UTC).
    pub at: String,
    pub intact: bool,
    /// Events walked (when intact).
    pub events: i64,
    /// The head hash (when intact).
    pub head: Option<String>,
    /// Events from before the chain key was set.
    pub unkeyed: i64,
    /// Whether the chain is keyed (MACed): without a key, whoever writes the state database can
    /// recompute it.
    pub keyed: bool,
    /// Why it is not intact.
    pub problem: Option<String>,
}

/// Why the audit chain could not be read at all (never "intact" in its place).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ChecksUnavailable(pub String);

/// The gateway side of the checks.
#[async_trait]
pub trait GatewayChecks: Send + Sync + 'static {
    /// The last connector check made since the gateway started, if any.
    async fn last_check(&self) -> Option<CheckSnapshot>;
    /// Checks every connector now (or returns a check younger than the minimum interval). A
    /// store that cannot be checked is a failed finding, never left out.
    async fn check_connectors(&self) -> CheckSnapshot;
    /// Verifies the audit chain (or returns a verification younger than the minimum interval).
    async fn verify_audit(&self) -> Result<Verification, ChecksUnavailable>;
}

fn checks<'a>(
    ctx: &async_graphql::dynamic::ResolverContext<'a>,
) -> async_graphql::Result<&'a Arc<dyn GatewayChecks>> {
    // Always there in the gateway; a schema served without it has no checks to offer.
    ctx.data_opt::<Arc<dyn GatewayChecks>>()
        .ok_or_else(|| Error::new("checks are not available in this server"))
}

fn unavailable(error: ChecksUnavailable) -> Error {
    Error::new(error.0).extend_with(|_, e| e.set("code", ErrorCode::AuditUnavailable.as_str()))
}

/// Registers `ConnectorCheck`, `ConnectorCheckFinding` and `AuditVerification`.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    let string_nn = || TypeRef::named_nn(TypeRef::STRING);
    builder
        .register(
            Object::new("ConnectorCheckFinding")
                .description("One line of a connector check.")
                .field(leaf::<CheckFinding>("connector", string_nn(), |f| GqlValue::from(f.connector.clone())))
                .field(
                    leaf::<CheckFinding>("entity", string_nn(), |f| GqlValue::from(f.entity.clone()))
                        .description("The entity, `*` for the whole connector, `[storage]` for its object storage."),
                )
                .field(leaf::<CheckFinding>("ok", TypeRef::named_nn(TypeRef::BOOLEAN), |f| GqlValue::from(f.ok)))
                .field(
                    leaf::<CheckFinding>("location", string_nn(), |f| GqlValue::from(f.location.clone()))
                        .description("Where it is declared: file:line:column."),
                )
                .field(leaf::<CheckFinding>("details", TypeRef::named_nn_list_nn(TypeRef::STRING), |f| {
                    GqlValue::List(f.details.iter().cloned().map(GqlValue::from).collect())
                })),
        )
        .register(
            Object::new("ConnectorCheck")
                .description("The declarations checked against the live stores (`subject-gateway check`).")
                .field(leaf::<CheckSnapshot>("at", string_nn(), |c| GqlValue::from(c.at.clone())))
                .field(leaf::<CheckSnapshot>("ok", TypeRef::named_nn(TypeRef::BOOLEAN), |c| GqlValue::from(c.ok)))
                .field(Field::new(
                    "findings",
                    TypeRef::named_nn_list_nn("ConnectorCheckFinding"),
                    |ctx| {
                        FieldFuture::new(async move {
                            let check = ctx.parent_value.try_downcast_ref::<CheckSnapshot>()?;
                            Ok(Some(FieldValue::list(
                                check.findings.iter().map(|f| FieldValue::owned_any(f.clone())),
                            )))
                        })
                    },
                )),
        )
        .register(
            Object::new("AuditVerification")
                .description("The audit chain walked from its first event to its head, as `subject-gateway audit verify` does (without an anchor file).")
                .field(leaf::<Verification>("at", string_nn(), |v| GqlValue::from(v.at.clone())))
                .field(leaf::<Verification>("intact", TypeRef::named_nn(TypeRef::BOOLEAN), |v| GqlValue::from(v.intact)))
                .field(leaf::<Verification>("events", TypeRef::named_nn(TypeRef::INT), |v| {
                    GqlValue::from(v.events.clamp(0, i64::from(i32::MAX)))
                }))
                .field(leaf::<Verification>("head", TypeRef::named(TypeRef::STRING), |v| opt_string(v.head.as_deref())))
                .field(leaf::<Verification>("unkeyed", TypeRef::named_nn(TypeRef::INT), |v| {
                    GqlValue::from(v.unkeyed.clamp(0, i64::from(i32::MAX)))
                }))
                .field(leaf::<Verification>("keyed", TypeRef::named_nn(TypeRef::BOOLEAN), |v| GqlValue::from(v.keyed)))
                .field(
                    leaf::<Verification>("problem", TypeRef::named(TypeRef::STRING), |v| opt_string(v.problem.as_deref()))
                        .description("Why the chain is not intact."),
                ),
        )
}

/// `Query.connectorCheck`, `Query.auditVerification`.
pub(crate) fn query_fields(query: Object) -> Object {
    query
        .field(
            Field::new("connectorCheck", TypeRef::named("ConnectorCheck"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ReadSubject)?;
                    Ok(checks(&ctx)?.last_check().await.map(FieldValue::owned_any))
                })
            })
            .description("The last check of the connectors against their stores since the gateway started (null: none yet; `checkConnectors` makes one). Needs `read_subject`."),
        )
        .field(
            Field::new("auditVerification", TypeRef::named_nn("AuditVerification"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ReadAudit)?;
                    let verified = checks(&ctx)?.verify_audit().await.map_err(unavailable)?;
                    Ok(Some(FieldValue::owned_any(verified)))
                })
            })
            .description("Whether the audit chain is intact, walked from its first event (at most once a minute: a younger result is returned with its time). Needs `read_audit`."),
        )
}

/// `Mutation.checkConnectors`.
pub(crate) fn mutation_fields(mutation: Object) -> Object {
    mutation.field(
        Field::new("checkConnectors", TypeRef::named_nn("ConnectorCheck"), |ctx| {
            FieldFuture::new(async move {
                authorize(&ctx, Operation::ReadSubject)?;
                let check = checks(&ctx)?.check_connectors().await;
                Ok(Some(FieldValue::owned_any(check)))
            })
        })
        .description("Checks every connector's declarations against its store now (read only; a check younger than 30 s is returned instead). Needs `read_subject`."),
    )
}
