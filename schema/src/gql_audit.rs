//! The audit trail in the schema: every subject read is appended before its data is served
//! (`audit_read`), and `Query.auditEvents` with its `AuditEvent` and `AuditEventPage` types.

use std::sync::Arc;
use subject_connectors::codes::ErrorCode;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use async_graphql::{Error, ErrorExtensions, Value as GqlValue};
use subject_connectors::Identity;

use crate::access::Operation;
use crate::audit::{AuditEntry, AuditFilter, AuditLog, AuditRecord, SubjectRef};
use crate::gql_support::{
    authorize, caller, identity_error, identity_withheld, leaf, opt_string, parse_identity, ready,
};
use crate::resolve::{BatchOutcome, Executor, IdentitySource, SourceState};

/// Appends the read to the audit trail; the data is only returned once it is recorded. Subjects
/// `withheld` (objections: `crate::objections`, audited on their own) are not part of what it
/// served.
pub(crate) async fn audit_read(
    ctx: &ResolverContext<'_>,
    executor: &Executor,
    action: &str,
    inputs: &[Vec<Identity>],
    batch: &BatchOutcome,
    withheld: &[bool],
) -> async_graphql::Result<()> {
    let served = |index: &usize| !withheld.get(*index).copied().unwrap_or(false);
    let caller = caller(ctx)?;
    let log = ctx.data_opt::<Arc<dyn AuditLog>>().ok_or_else(|| {
        Error::new("the audit log is not configured: no data is served without it")
            .extend_with(|_, e| e.set("code", ErrorCode::AuditUnavailable.as_str()))
    })?;
    let registry = executor.registry();
    let mut connectors = std::collections::BTreeSet::new();
    let mut categories = std::collections::BTreeSet::new();
    for (_, subject) in batch.subjects.iter().enumerate().filter(|(i, _)| served(i)) {
        for (c, per_entity) in subject.records.iter().enumerate() {
            let descriptor = registry.connectors[c].connector.descriptor();
            if !caller.purpose_served_by(descriptor.purposes.as_deref()) {
                continue;
            }
            for (e, records) in per_entity.iter().enumerate() {
                if records.is_empty() {
                    continue;
                }
                connectors.insert(descriptor.name.clone());
                for field in &descriptor.entities[e].fields {
                    if caller.role.sees(&field.category) {
                        categories.insert(field.category.to_string());
                    }
                }
            }
        }
    }
    // Found identities are data too: their kinds' categories, where the caller may see them.
    let mut identity_categories = std::collections::BTreeSet::new();
    for (_, subject) in batch.subjects.iter().enumerate().filter(|(i, _)| served(i)) {
        for resolved in &subject.identities {
            if matches!(resolved.source, IdentitySource::Entity(_))
                && identity_withheld(executor, caller, resolved).is_none()
            {
                let category = registry.kinds.get(resolved.identity.kind).category.to_string();
                categories.insert(category.clone());
                identity_categories.insert(category);
            }
        }
    }
    let outcome = if batch.sources.iter().all(|s| s.state == SourceState::Ok) {
        "OK"
    } else {
        "PARTIAL"
    };
    let entry = AuditEntry {
        actor: caller.principal.clone(),
        role: caller.role.name.clone(),
        purpose: caller.purpose.to_string(),
        action: action.to_owned(),
        subjects: inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| served(i))
            .flat_map(|(_, identities)| identities)
            .map(|identity| SubjectRef {
                kind: registry.kinds.get(identity.kind).name.clone(),
                value: identity.value.clone(),
            })
            .collect(),
        detail: serde_json::json!({
            "connectors": connectors,
            "categories": categories,
            "identityCategories": identity_categories,
            "outcome": outcome,
            "subjects": batch.subjects.len(),
            "withheld": withheld.iter().filter(|w| **w).count(),
        }),
    };
    log.append(entry).await.map_err(|error| {
        tracing::error!(error = %error, "audit append failed; the read is refused");
        Error::new(error.to_string()).extend_with(|_, e| e.set("code", ErrorCode::AuditUnavailable.as_str()))
    })
}

/// A page of audit events.
struct AuditPage {
    events: Vec<AuditRecord>,
    more: bool,
}

pub(crate) fn audit_events_field() -> Field {
    Field::new("auditEvents", TypeRef::named_nn("AuditEventPage"), |ctx| {
        FieldFuture::new(async move {
            authorize(&ctx, Operation::ReadAudit)?;
            let log = ctx
                .data_opt::<Arc<dyn AuditLog>>()
                .ok_or_else(|| Error::new("the audit log is not configured"))?;
            let executor = ctx.data::<Arc<Executor>>()?;
            let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
            let first = arg("first")
                .and_then(|v| v.i64().ok())
                .unwrap_or(50)
                .clamp(1, 500) as usize;
            let after = match arg("after") {
                Some(cursor) => Some(
                    cursor
                        .string()?
                        .parse::<i64>()
                        .map_err(|_| Error::new("`after` is not a cursor returned by auditEvents"))?,
                ),
                None => None,
            };
            let subject = match arg("subject") {
                Some(input) => {
                    let identity = parse_identity(executor, &input).map_err(|e| identity_error(&e, None))?;
                    Some(SubjectRef {
                        kind: executor.registry().kinds.get(identity.kind).name.clone(),
                        value: identity.value,
                    })
                }
                None => None,
            };
            let filter = AuditFilter {
                after,
                first,
                action: ctx
                    .args
                    .get("action")
                    .and_then(|v| v.string().ok().map(str::to_owned)),
                actor: ctx
                    .args
                    .get("actor")
                    .and_then(|v| v.string().ok().map(str::to_owned)),
                subject,
            };
            let (events, more) = log.list(&filter).await.map_err(|e| Error::new(e.to_string()))?;
            // Reading the trail is itself recorded: it tells who looked up whom.
            let caller = caller(&ctx)?;
            log.append(AuditEntry {
                actor: caller.principal.clone(),
                role: caller.role.name.clone(),
                purpose: caller.purpose.to_string(),
                action: "audit.read".into(),
                subjects: filter.subject.clone().into_iter().collect(),
                detail: serde_json::json!({ "events": events.len() }),
            })
            .await
            .map_err(|e| {
                Error::new(e.to_string())
                    .extend_with(|_, x| x.set("code", ErrorCode::AuditUnavailable.as_str()))
            })?;
            Ok(Some(FieldValue::owned_any(AuditPage { events, more })))
        })
    })
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("action", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("actor", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("subject", TypeRef::named("IdentityInput")))
    .description("The audit trail, oldest first: every subject read and change. Needs `read_audit`.")
}

/// Reads one text field of an audit record.
type AuditText = fn(&AuditRecord) -> &str;

pub(crate) fn audit_event_type() -> Object {
    let texts: [(&str, AuditText); 6] = [
        ("at", |e| &e.at),
        ("actor", |e| &e.actor),
        ("role", |e| &e.role),
        ("purpose", |e| &e.purpose),
        ("action", |e| &e.action),
        ("hash", |e| &e.hash),
    ];
    texts
        .into_iter()
        .fold(Object::new("AuditEvent"), |object, (name, get)| {
            object.field(leaf::<AuditRecord>(
                name,
                TypeRef::named_nn(TypeRef::STRING),
                move |e| GqlValue::String(get(e).to_owned()),
            ))
        })
        .description("One audited action; `hash` chains it to the event before.")
        .field(leaf::<AuditRecord>("seq", TypeRef::named_nn("Long"), |e| {
            GqlValue::from(e.seq)
        }))
        .field(
            leaf::<AuditRecord>("subjects", TypeRef::named_nn_list_nn(TypeRef::STRING), |e| {
                GqlValue::List(e.subjects.iter().map(|s| GqlValue::String(s.clone())).collect())
            })
            .description("Keyed hashes of the identities the action named."),
        )
        .field(leaf::<AuditRecord>("detail", TypeRef::named_nn("JSON"), |e| {
            GqlValue::from_json(e.detail.clone()).unwrap_or(GqlValue::Null)
        }))
}

/// `AuditEventPage`: a page of events, oldest first, and the cursor after it.
pub(crate) fn audit_event_page_type() -> Object {
    Object::new("AuditEventPage")
        .field(Field::new(
            "events",
            TypeRef::named_nn_list_nn("AuditEvent"),
            |ctx| {
                ready((|| {
                    let page = ctx.parent_value.try_downcast_ref::<AuditPage>()?;
                    Ok(Some(FieldValue::list(
                        page.events.iter().map(|e| FieldValue::borrowed_any(e)),
                    )))
                })())
            },
        ))
        .field(leaf::<AuditPage>(
            "endCursor",
            TypeRef::named(TypeRef::STRING),
            |p| opt_string(p.events.last().map(|e| e.seq.to_string()).as_deref()),
        ))
        .field(leaf::<AuditPage>(
            "hasNextPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |p| GqlValue::Boolean(p.more),
        ))
}
