//! The GraphQL side of privacy requests: `Query.erasurePlan`, `Query.privacyRequest(s)`, the
//! mutations (`eraseSubject`, `rectifySubject`, `exportSubject`, `recordObjection`,
//! `retryPrivacyRequest`, `cancelPrivacyRequest`, `extendPrivacyRequest`) and
//! `Subscription.privacyRequestEvents`.
//!
//! The engine hands views over as the typed structs of [`crate::request_views`]; every field
//! here reads one struct field, so a field the engine does not fill is a compile error, not a
//! silent `null`. The enums are served from the engine's own enums (`ALL`), so the two cannot
//! drift apart.

use std::any::Any;
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, SchemaBuilder,
    Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Error, Value as GqlValue};
use futures::StreamExt;

use crate::access::Operation;
use crate::gql_support::{
    authorize, caller, engine, enum_value, identity_error, leaf, parse_identity, ready, request_error, text,
};
use crate::request_views::{
    DownloadView, EventView, PlanEntryView, PlanView, RequestPage, RequestView, TaskView,
};
use crate::requests::{RequestFilter, RequestKind, RequestStatus, Submission, TaskStatus};
use crate::resolve::Executor;

/// Reads one field of a view as a GraphQL value.
type Get<T> = fn(&T) -> GqlValue;

/// An object type over view `T`: `(field, type, getter, description)`.
fn view_object<T: Any + Send + Sync>(
    name: &str,
    description: &str,
    fields: &[(&'static str, TypeRef, Get<T>, &str)],
) -> Object {
    fields.iter().fold(
        Object::new(name).description(description),
        |object, (field, ty, get, description)| {
            object.field(leaf::<T>(field, ty.clone(), *get).description(*description))
        },
    )
}

/// A list field of view `T` whose items are views `U` (borrowed from the parent).
fn view_list<T: Any + Send + Sync, U: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    description: &str,
    items: fn(&T) -> &[U],
) -> Field {
    Field::new(name, ty, move |ctx| {
        ready(ctx.parent_value.try_downcast_ref::<T>().map(|parent| {
            Some(FieldValue::list(
                items(parent).iter().map(|item| FieldValue::borrowed_any(item)),
            ))
        }))
    })
    .description(description)
}

fn opt_text(value: &Option<String>) -> GqlValue {
    GqlValue::from(value.clone())
}

fn string() -> TypeRef {
    TypeRef::named(TypeRef::STRING)
}

fn string_nn() -> TypeRef {
    TypeRef::named_nn(TypeRef::STRING)
}

fn int_nn() -> TypeRef {
    TypeRef::named_nn(TypeRef::INT)
}

fn bool_nn() -> TypeRef {
    TypeRef::named_nn(TypeRef::BOOLEAN)
}

fn enumeration<'a>(name: &str, description: &str, items: impl IntoIterator<Item = &'a str>) -> Enum {
    items
        .into_iter()
        .fold(Enum::new(name).description(description), |e, item| {
            e.item(EnumItem::new(item))
        })
}

/// Registers the privacy-request types, inputs and the subscription root.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    builder
        .register(enumeration(
            "PrivacyRequestType",
            "What a privacy request asks for.",
            RequestKind::ALL.iter().map(|k| k.as_str()),
        ))
        .register(enumeration(
            "PrivacyRequestStatus",
            "Where a privacy request is. WAITING: a store's asynchronous job is pending.",
            RequestStatus::ALL.iter().map(|s| s.as_str()),
        ))
        .register(enumeration(
            "PrivacyTaskStatus",
            "Where one connector/entity task of a request is.",
            TaskStatus::ALL.iter().map(|s| s.as_str()),
        ))
        .register(request_type())
        .register(view_object::<TaskView>(
            "PrivacyTask",
            "What a request does in one entity of one connector.",
            &[
                ("connector", string_nn(), |t| text(&t.connector), ""),
                ("entity", string_nn(), |t| text(&t.entity), ""),
                ("action", string_nn(), |t| text(t.action.as_str()), "DELETE, MASK, RETAIN, CASCADE, RECTIFY, EXPORT, SUPPRESS."),
                ("status", TypeRef::named_nn("PrivacyTaskStatus"), |t| enum_value(t.status.as_str()), ""),
                ("attempts", int_nn(), |t| GqlValue::from(t.attempts), "Times it was tried."),
                ("records", TypeRef::named(TypeRef::INT), |t| GqlValue::from(t.records), "Records it acted on."),
                ("files", TypeRef::named(TypeRef::INT), |t| GqlValue::from(t.files), "Stored files it deleted."),
                ("legalBasis", string(), |t| opt_text(&t.legal_basis), "Why retained records are kept."),
                ("retainUntil", string(), |t| opt_text(&t.retain_until), "When retained records are due for deletion."),
                ("verified", TypeRef::named(TypeRef::BOOLEAN), |t| GqlValue::from(t.verified), "The fresh lookup after acting found nothing left of the person."),
                ("error", string(), |t| opt_text(&t.error), ""),
                ("errorCode", string(), |t| opt_text(&t.error_code), ""),
                ("startedAt", string(), |t| opt_text(&t.started_at), ""),
                ("finishedAt", string(), |t| opt_text(&t.finished_at), ""),
            ],
        ))
        .register(view_object::<DownloadView>(
            "ExportDownload",
            "An export bundle: a zip archive, downloadable until the link expires.",
            &[
                ("url", string_nn(), |d| text(&d.url), "Path of the download on this gateway (needs no other credentials)."),
                ("expiresAt", string_nn(), |d| text(&d.expires_at), ""),
                ("sha256", string_nn(), |d| text(&d.sha256), "SHA-256 of the archive."),
                ("bytes", TypeRef::named_nn("Long"), |d| GqlValue::from(d.bytes), ""),
            ],
        ))
        .register(
            view_object::<PlanView>(
                "ErasurePlan",
                "What erasing a person would do; nothing is changed by asking.",
                &[
                    ("subject", string_nn(), |p| text(&p.subject), "The person, as a keyed hash."),
                    ("identities", int_nn(), |p| GqlValue::from(p.identities), "Identities found for the person."),
                    ("blocked", bool_nn(), |p| GqlValue::from(p.blocked), "Whether an erasure would stop before acting (a limit exceeded, a store failing, an entity the store would refuse to erase)."),
                ],
            )
            .field(view_list::<PlanView, PlanEntryView>(
                "entries",
                TypeRef::named_nn_list_nn("ErasurePlanEntry"),
                "",
                |p| &p.entries,
            )),
        )
        .register(view_object::<PlanEntryView>(
            "ErasurePlanEntry",
            "What erasure does in one entity.",
            &[
                ("connector", string_nn(), |e| text(&e.connector), ""),
                ("entity", string_nn(), |e| text(&e.entity), ""),
                ("action", string_nn(), |e| text(&e.action), "DELETE, MASK, RETAIN or CASCADE."),
                ("records", int_nn(), |e| GqlValue::from(e.records), "Records of the person matched now."),
                ("files", int_nn(), |e| GqlValue::from(e.files), "Stored files those records name."),
                ("fieldsTouched", TypeRef::named_nn_list_nn(TypeRef::STRING), |e| GqlValue::from(e.fields_touched.clone()), "Fields rewritten (MASK, RETAIN), as `field: null|pseudonymize|redact`."),
                ("legalBasis", string(), |e| opt_text(&e.legal_basis), ""),
                ("retainUntil", string(), |e| opt_text(&e.retain_until), ""),
                ("limit", TypeRef::named(TypeRef::INT), |e| GqlValue::from(e.limit), "Most records one person may match here."),
                ("exceedsLimit", bool_nn(), |e| GqlValue::from(e.exceeds_limit), "More records match than the limit: erasure needs allowLargeMatches."),
                ("supported", bool_nn(), |e| GqlValue::from(e.supported), "Whether the connector can carry this out."),
                ("note", string(), |e| opt_text(&e.note), ""),
                ("blockedBy", string(), |e| opt_text(&e.blocked_by), "Why the live store would refuse this erasure (a NOT NULL column masked to null, a primary key it does not keep unique): an erasure stops before acting."),
                ("error", string(), |e| opt_text(&e.error), "The lookup failed: the erasure would retry it."),
            ],
        ))
        .register(
            Object::new("PrivacyRequestPage")
                .description("A page of privacy requests, newest first.")
                .field(view_list::<RequestPage, RequestView>(
                    "requests",
                    TypeRef::named_nn_list_nn("PrivacyRequest"),
                    "",
                    |p| &p.requests,
                ))
                .field(leaf::<RequestPage>("endCursor", string(), |p| opt_text(&p.end_cursor)).description("Pass as `after` for the next page."))
                .field(leaf::<RequestPage>("hasNextPage", bool_nn(), |p| GqlValue::from(p.has_next_page)).description("")),
        )
        .register(view_object::<EventView>(
            "PrivacyRequestEvent",
            "Progress of a request.",
            &[
                ("requestId", TypeRef::named_nn(TypeRef::ID), |e| text(&e.request_id), ""),
                ("at", string_nn(), |e| text(&e.at), ""),
                ("kind", string_nn(), |e| text(&e.kind), "received, planned, task.started, task.done, task.failed, task.waiting, verified, completed, failed, …"),
                ("message", string_nn(), |e| text(&e.message), ""),
                ("status", TypeRef::named_nn("PrivacyRequestStatus"), |e| enum_value(e.status.as_str()), "The request's status after the event."),
            ],
        ))
        .register(
            InputObject::new("FieldChangeInput")
                .description("A correction: the subject attribute (as declared with `rectify = \"…\"` on fields) and its correct value.")
                .field(InputValue::new("field", string_nn()))
                .field(InputValue::new("value", string_nn())),
        )
        .register(request_input("EraseSubjectInput", |input| {
            input
                .field(InputValue::new("allowLargeMatches", TypeRef::named(TypeRef::BOOLEAN)).description(
                    "Act even where one person matches more records than an entity's declared limit.",
                ))
        }))
        .register(request_input("RectifySubjectInput", |input| {
            input.field(InputValue::new("changes", TypeRef::named_nn_list_nn("FieldChangeInput")))
        }))
        .register(request_input("ExportSubjectInput", |input| input))
        .register(request_input("RecordObjectionInput", |input| {
            input.field(
                InputValue::new("purpose", string_nn())
                    .description("The purpose objected to (a fideslang data use: `marketing`, `analytics`)."),
            )
        }))
        .register(
            Subscription::new("Subscription").field(
                SubscriptionField::new(
                    "privacyRequestEvents",
                    TypeRef::named_nn("PrivacyRequestEvent"),
                    |ctx| {
                        SubscriptionFieldFuture::new(async move {
                            authorize(&ctx, Operation::ManageRequests)?;
                            let engine = engine(&ctx)?;
                            let id = ctx.args.get("id").filter(|v| !v.is_null());
                            let stream = match id {
                                Some(id) => engine.events(id.string()?).await,
                                None => engine.all_events().await,
                            }
                            .map_err(request_error)?;
                            Ok(stream.map(|event| Ok(FieldValue::owned_any(event))))
                        })
                    },
                )
                .argument(InputValue::new("id", TypeRef::named(TypeRef::ID)))
                .description("Progress of one request (`id`), from its current state until it finishes; without `id`, the events of every request from now on (the console's queue follows these). Needs `manage_requests`."),
            ),
        )
}

/// `PrivacyRequest`.
fn request_type() -> Object {
    let object = view_object::<RequestView>(
        "PrivacyRequest",
        "A privacy request: its state, its tasks per connector and entity, and (when done) its receipt.",
        &[
            (
                "id",
                TypeRef::named_nn(TypeRef::ID),
                |r| text(&r.id),
                "Stable id (`pr_…`).",
            ),
            (
                "type",
                TypeRef::named_nn("PrivacyRequestType"),
                |r| enum_value(r.kind.as_str()),
                "",
            ),
            (
                "status",
                TypeRef::named_nn("PrivacyRequestStatus"),
                |r| enum_value(r.status.as_str()),
                "",
            ),
            (
                "regulation",
                string_nn(),
                |r| text(&r.regulation),
                "GDPR, CCPA, …: decides the due date.",
            ),
            (
                "reason",
                string(),
                |r| opt_text(&r.reason),
                "Why it was made, as given.",
            ),
            (
                "subject",
                string_nn(),
                |r| text(&r.subject),
                "The person, as a keyed hash of the identity given.",
            ),
            (
                "requestedBy",
                string_nn(),
                |r| text(&r.requested_by),
                "The caller that submitted it.",
            ),
            ("createdAt", string_nn(), |r| text(&r.created_at), ""),
            ("updatedAt", string_nn(), |r| text(&r.updated_at), ""),
            (
                "dueAt",
                string_nn(),
                |r| text(&r.due_at),
                "When the law wants it answered (extensions included).",
            ),
            (
                "overdue",
                bool_nn(),
                |r| GqlValue::from(r.overdue),
                "Past `dueAt` and not finished.",
            ),
            (
                "extensionReason",
                string(),
                |r| opt_text(&r.extension_reason),
                "Why the due date was extended, if it was.",
            ),
            ("completedAt", string(), |r| opt_text(&r.completed_at), ""),
            ("error", string(), |r| opt_text(&r.error), "Why it FAILED."),
        ],
    )
    .field(view_list::<RequestView, TaskView>(
        "tasks",
        TypeRef::named_nn_list_nn("PrivacyTask"),
        "One per connector and entity.",
        |r| &r.tasks,
    ))
    .field(
        Field::new("receipt", TypeRef::named("JSON"), |ctx| {
            ready((|| {
                let request = ctx.parent_value.try_downcast_ref::<RequestView>()?;
                match &request.receipt {
                    Some(receipt) => Ok(Some(FieldValue::value(GqlValue::from_json(receipt.clone())?))),
                    None => Ok(None),
                }
            })())
        })
        .description("The machine-readable proof, once COMPLETED."),
    )
    .field(
        leaf::<RequestView>("receiptSha256", string(), |r| opt_text(&r.receipt_sha256))
            .description("SHA-256 of the receipt's canonical JSON."),
    )
    .field(
        Field::new("download", TypeRef::named("ExportDownload"), |ctx| {
            ready(
                ctx.parent_value
                    .try_downcast_ref::<RequestView>()
                    .map(|r| r.download.as_ref().map(|d| FieldValue::borrowed_any(d))),
            )
        })
        .description("EXPORT: where to fetch the bundle."),
    );
    // approval: the decision and the erasure plan (schema/src/approval.rs); console: `events`.
    crate::console_api::request_fields(crate::approval::request_fields(object))
}

/// An input with the fields every request takes, plus `extra`.
fn request_input(name: &str, extra: impl FnOnce(InputObject) -> InputObject) -> InputObject {
    extra(
        InputObject::new(name)
            .field(InputValue::new("identity", TypeRef::named_nn("IdentityInput")))
            .field(
                InputValue::new("idempotencyKey", string_nn())
                    .description("The same key again returns the same request instead of starting a second."),
            )
            .field(InputValue::new("reason", string()))
            .field(
                InputValue::new("regulation", string())
                    .description("GDPR (default: one month), CCPA (45 days), or another configured one."),
            )
            .field(InputValue::new("webhook", string()).description(
                "A webhook endpoint configured in gateway.toml ([webhooks.NAME]), by name, told of this request's events. Never a URL.",
            )),
    )
}

/// An enum argument as the engine's enum.
fn enum_arg<T>(value: &async_graphql::dynamic::ValueAccessor<'_>) -> async_graphql::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .enum_name()?
        .parse::<T>()
        .map_err(|e| Error::new(e.to_string()))
}

/// `Query.erasurePlan`, `Query.privacyRequest`, `Query.privacyRequests`.
pub(crate) fn query_fields(query: Object) -> Object {
    query
        .field(
            Field::new("erasurePlan", TypeRef::named_nn("ErasurePlan"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::Erase)?;
                    let executor = ctx.data::<Arc<Executor>>()?;
                    let input = ctx.args.try_get("identity")?;
                    let identity = parse_identity(executor, &input).map_err(|e| identity_error(&e, None))?;
                    let plan = engine(&ctx)?.erasure_plan(identity).await.map_err(request_error)?;
                    Ok(Some(FieldValue::owned_any(plan)))
                })
            })
            .argument(InputValue::new("identity", TypeRef::named_nn("IdentityInput")))
            .description("What erasing this person would do, per connector and entity. Changes nothing. Needs `erase`."),
        )
        .field(
            Field::new("privacyRequest", TypeRef::named("PrivacyRequest"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ManageRequests)?;
                    let id = ctx.args.try_get("id")?.string()?.to_owned();
                    let found = engine(&ctx)?.request(&id).await.map_err(request_error)?;
                    Ok(found.map(FieldValue::owned_any))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description("One privacy request. Needs `manage_requests`."),
        )
        .field(
            Field::new("privacyRequests", TypeRef::named_nn("PrivacyRequestPage"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ManageRequests)?;
                    let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
                    // The GraphQL enums are built from the same enums: a name they accept parses.
                    let filter = RequestFilter {
                        status: arg("status").map(|v| enum_arg::<RequestStatus>(&v)).transpose()?,
                        kind: arg("type").map(|v| enum_arg::<RequestKind>(&v)).transpose()?,
                        overdue: arg("overdue").and_then(|v| v.boolean().ok()),
                        first: arg("first").and_then(|v| v.i64().ok()).unwrap_or(50).clamp(1, 500) as usize,
                        after: arg("after").and_then(|v| v.string().ok().map(str::to_owned)),
                    };
                    let page = engine(&ctx)?.requests(filter).await.map_err(request_error)?;
                    Ok(Some(FieldValue::owned_any(page)))
                })
            })
            .argument(InputValue::new("status", TypeRef::named("PrivacyRequestStatus")))
            .argument(InputValue::new("type", TypeRef::named("PrivacyRequestType")))
            .argument(InputValue::new("overdue", TypeRef::named(TypeRef::BOOLEAN)))
            .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
            .description("Privacy requests, newest first, with cursor pagination. Needs `manage_requests`."),
        )
}

/// A mutation that submits a request of `kind`, needing `operation`.
fn submit_field(
    name: &str,
    input: &str,
    kind: RequestKind,
    operation: Operation,
    description: &str,
) -> Field {
    Field::new(name, TypeRef::named_nn("PrivacyRequest"), move |ctx| {
        FieldFuture::new(async move {
            authorize(&ctx, operation)?;
            let executor = ctx.data::<Arc<Executor>>()?;
            let input = ctx.args.try_get("input")?.object()?;
            let identity = parse_identity(executor, &input.try_get("identity")?)
                .map_err(|e| identity_error(&e, None))?;
            let text = |name: &str| {
                input
                    .get(name)
                    .filter(|v| !v.is_null())
                    .and_then(|v| v.string().ok().map(str::to_owned))
            };
            let mut changes = Vec::new();
            if let Some(list) = input.get("changes") {
                for change in list.list()?.iter() {
                    let change = change.object()?;
                    changes.push((
                        change.try_get("field")?.string()?.to_owned(),
                        change.try_get("value")?.string()?.to_owned(),
                    ));
                }
            }
            let submission = Submission {
                kind,
                identity,
                idempotency_key: text("idempotencyKey").unwrap_or_default(),
                reason: text("reason"),
                regulation: text("regulation"),
                changes,
                purpose: text("purpose"),
                allow_large_matches: input
                    .get("allowLargeMatches")
                    .and_then(|v| v.boolean().ok())
                    .unwrap_or(false),
                webhook: text("webhook"),
            };
            let caller = caller(&ctx)?;
            let view = engine(&ctx)?
                .submit(caller, submission)
                .await
                .map_err(request_error)?;
            Ok(Some(FieldValue::owned_any(view)))
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn(input)))
    .description(description)
}

/// A mutation on an existing request.
fn manage_field(name: &str, description: &str) -> Field {
    let field_name = name.to_owned();
    Field::new(name, TypeRef::named_nn("PrivacyRequest"), move |ctx| {
        let field_name = field_name.clone();
        FieldFuture::new(async move {
            authorize(&ctx, Operation::ManageRequests)?;
            let id = ctx.args.try_get("id")?.string()?.to_owned();
            let caller = caller(&ctx)?;
            let engine = engine(&ctx)?;
            let view = match field_name.as_str() {
                "retryPrivacyRequest" => engine.retry(caller, &id).await,
                "cancelPrivacyRequest" => engine.cancel(caller, &id).await,
                _ => {
                    let days = ctx.args.try_get("days")?.i64()?;
                    let days = u32::try_from(days)
                        .ok()
                        .filter(|d| (1..=61).contains(d))
                        .ok_or_else(|| {
                            Error::new("days: between 1 and 61 (GDPR allows two further months)")
                        })?;
                    let reason = ctx.args.try_get("reason")?.string()?.to_owned();
                    engine.extend(caller, &id, days, reason).await
                }
            }
            .map_err(request_error)?;
            Ok(Some(FieldValue::owned_any(view)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description(description)
}

/// The `Mutation` root.
pub(crate) fn mutation() -> Object {
    Object::new("Mutation")
        .field(submit_field(
            "eraseSubject",
            "EraseSubjectInput",
            RequestKind::Erasure,
            Operation::Erase,
            "Erases the person in every store: deletes, masks or retains (pseudonymized, with the legal basis) as each entity declares, verifies, and keeps a receipt. Needs `erase`.",
        ))
        .field(submit_field(
            "rectifySubject",
            "RectifySubjectInput",
            RequestKind::Rectification,
            Operation::Rectify,
            "Corrects the person's attributes in every store that declares them rectifiable. Needs `rectify`.",
        ))
        .field(submit_field(
            "exportSubject",
            "ExportSubjectInput",
            RequestKind::Export,
            Operation::Export,
            "Exports everything held about the person, with what Art. 15 requires, as a downloadable zip. Needs `export`.",
        ))
        .field(submit_field(
            "recordObjection",
            "RecordObjectionInput",
            RequestKind::Objection,
            Operation::ManageRequests,
            "Records the person's objection to a purpose (or withdrawn consent) and tells the stores that act on it. Needs `manage_requests`.",
        ))
        .field(manage_field(
            "retryPrivacyRequest",
            "Runs a FAILED request again: only what is not done yet. Needs `manage_requests`.",
        ))
        .field(manage_field(
            "cancelPrivacyRequest",
            "Cancels a request that has not finished. Needs `manage_requests`.",
        ))
        .field(
            manage_field(
                "extendPrivacyRequest",
                "Extends the due date by `days`, with the reason the law asks for. Needs `manage_requests`.",
            )
            .argument(InputValue::new("days", int_nn()))
            .argument(InputValue::new("reason", string_nn())),
        )
}
