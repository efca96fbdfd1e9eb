//! The GraphQL side of privacy requests: `Query.erasurePlan`, `Query.privacyRequest(s)`, the
//! mutations (`eraseSubject`, `rectifySubject`, `exportSubject`, `recordObjection`,
//! `retryPrivacyRequest`, `cancelPrivacyRequest`, `extendPrivacyRequest`) and
//! `Subscription.privacyRequestEvents`.
//!
//! The engine hands views over as JSON objects keyed by GraphQL field name; the object types here
//! read their fields out of them, so the schema stays typed while the engine stays free of
//! GraphQL.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext,
    SchemaBuilder, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Error, ErrorExtensions, Name, Value as GqlValue};
use futures::StreamExt;
use serde_json::Value as Json;

use crate::access::Operation;
use crate::graphql::{authorize, caller, identity_error, parse_identity};
use crate::requests::{PrivacyRequests, RequestError, RequestFilter, RequestKind, Submission};
use crate::resolve::Executor;

/// How a JSON member becomes a GraphQL value.
#[derive(Clone, Copy)]
enum Shape {
    Scalar,
    Enum,
    Object,
    Objects,
}

fn json_field(name: &'static str, ty: TypeRef, shape: Shape) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let parent = ctx.parent_value.try_downcast_ref::<Json>()?;
            let value = parent.get(name).cloned().unwrap_or(Json::Null);
            Ok(match (shape, value) {
                (Shape::Objects, Json::Array(items)) => {
                    Some(FieldValue::list(items.into_iter().map(FieldValue::owned_any)))
                }
                (Shape::Objects, _) => Some(FieldValue::list(Vec::<FieldValue>::new())),
                (_, Json::Null) => None,
                (Shape::Scalar, value) => Some(FieldValue::value(GqlValue::from_json(value)?)),
                (Shape::Enum, Json::String(text)) => Some(FieldValue::value(GqlValue::Enum(Name::new(text)))),
                (Shape::Enum, _) => None,
                (Shape::Object, value) => Some(FieldValue::owned_any(value)),
            })
        })
    })
}

/// An object type over JSON views: `(field, type, shape, description)`.
fn json_object(name: &str, description: &str, fields: &[(&'static str, TypeRef, Shape, &str)]) -> Object {
    fields.iter().fold(
        Object::new(name).description(description),
        |object, (field, ty, shape, description)| {
            object.field(json_field(field, ty.clone(), *shape).description(*description))
        },
    )
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

fn enumeration(name: &str, description: &str, items: &[&str]) -> Enum {
    items
        .iter()
        .fold(Enum::new(name).description(description), |e, item| {
            e.item(EnumItem::new(*item))
        })
}

/// Registers the privacy-request types, inputs and the subscription root.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    use Shape::*;
    builder
        .register(enumeration(
            "PrivacyRequestType",
            "What a privacy request asks for.",
            &["ERASURE", "RECTIFICATION", "EXPORT", "OBJECTION"],
        ))
        .register(enumeration(
            "PrivacyRequestStatus",
            "Where a privacy request is. WAITING: a store's asynchronous job is pending.",
            &["RECEIVED", "IN_PROGRESS", "WAITING", "COMPLETED", "FAILED", "CANCELLED"],
        ))
        .register(enumeration(
            "PrivacyTaskStatus",
            "Where one connector/entity task of a request is.",
            &["PENDING", "RUNNING", "WAITING", "DONE", "FAILED", "SKIPPED"],
        ))
        .register(json_object(
            "PrivacyRequest",
            "A privacy request: its state, its tasks per connector and entity, and (when done) its receipt.",
            &[
                ("id", TypeRef::named_nn(TypeRef::ID), Scalar, "Stable id (`pr_…`)."),
                ("type", TypeRef::named_nn("PrivacyRequestType"), Enum, ""),
                ("status", TypeRef::named_nn("PrivacyRequestStatus"), Enum, ""),
                ("regulation", string_nn(), Scalar, "GDPR, CCPA, …: decides the due date."),
                ("reason", string(), Scalar, "Why it was made, as given."),
                ("subject", string_nn(), Scalar, "The person, as a keyed hash of the identity given."),
                ("requestedBy", string_nn(), Scalar, "The caller that submitted it."),
                ("createdAt", string_nn(), Scalar, ""),
                ("updatedAt", string_nn(), Scalar, ""),
                ("dueAt", string_nn(), Scalar, "When the law wants it answered (extensions included)."),
                ("overdue", bool_nn(), Scalar, "Past `dueAt` and not finished."),
                ("extensionReason", string(), Scalar, "Why the due date was extended, if it was."),
                ("completedAt", string(), Scalar, ""),
                ("error", string(), Scalar, "Why it FAILED."),
                ("tasks", TypeRef::named_nn_list_nn("PrivacyTask"), Objects, "One per connector and entity."),
                ("receipt", TypeRef::named("JSON"), Scalar, "The machine-readable proof, once COMPLETED."),
                ("receiptSha256", string(), Scalar, "SHA-256 of the receipt's canonical JSON."),
                ("download", TypeRef::named("ExportDownload"), Object, "EXPORT: where to fetch the bundle."),
            ],
        ))
        .register(json_object(
            "PrivacyTask",
            "What a request does in one entity of one connector.",
            &[
                ("connector", string_nn(), Scalar, ""),
                ("entity", string_nn(), Scalar, ""),
                ("action", string_nn(), Scalar, "DELETE, MASK, RETAIN, CASCADE, RECTIFY, EXPORT, SUPPRESS."),
                ("status", TypeRef::named_nn("PrivacyTaskStatus"), Enum, ""),
                ("attempts", int_nn(), Scalar, "Times it was tried."),
                ("records", TypeRef::named(TypeRef::INT), Scalar, "Records it acted on."),
                ("files", TypeRef::named(TypeRef::INT), Scalar, "Stored files it deleted."),
                ("legalBasis", string(), Scalar, "Why retained records are kept."),
                ("retainUntil", string(), Scalar, "When retained records are due for deletion."),
                ("verified", TypeRef::named(TypeRef::BOOLEAN), Scalar, "The fresh lookup after acting found nothing left of the person."),
                ("error", string(), Scalar, ""),
                ("errorCode", string(), Scalar, ""),
                ("startedAt", string(), Scalar, ""),
                ("finishedAt", string(), Scalar, ""),
            ],
        ))
        .register(json_object(
            "ExportDownload",
            "An export bundle: a zip archive, downloadable until the link expires.",
            &[
                ("url", string_nn(), Scalar, "Path of the download on this gateway (needs no other credentials)."),
                ("expiresAt", string_nn(), Scalar, ""),
                ("sha256", string_nn(), Scalar, "SHA-256 of the archive."),
                ("bytes", TypeRef::named_nn("Long"), Scalar, ""),
            ],
        ))
        .register(json_object(
            "ErasurePlan",
            "What erasing a person would do; nothing is changed by asking.",
            &[
                ("subject", string_nn(), Scalar, "The person, as a keyed hash."),
                ("identities", int_nn(), Scalar, "Identities found for the person."),
                ("blocked", bool_nn(), Scalar, "Whether an erasure would stop before acting (a limit exceeded, a store failing, an entity the store would refuse to erase)."),
                ("entries", TypeRef::named_nn_list_nn("ErasurePlanEntry"), Objects, ""),
            ],
        ))
        .register(json_object(
            "ErasurePlanEntry",
            "What erasure does in one entity.",
            &[
                ("connector", string_nn(), Scalar, ""),
                ("entity", string_nn(), Scalar, ""),
                ("action", string_nn(), Scalar, "DELETE, MASK, RETAIN or CASCADE."),
                ("records", int_nn(), Scalar, "Records of the person matched now."),
                ("files", int_nn(), Scalar, "Stored files those records name."),
                ("fieldsTouched", TypeRef::named_nn_list_nn(TypeRef::STRING), Scalar, "Fields rewritten (MASK, RETAIN), as `field: null|pseudonymize|redact`."),
                ("legalBasis", string(), Scalar, ""),
                ("retainUntil", string(), Scalar, ""),
                ("limit", TypeRef::named(TypeRef::INT), Scalar, "Most records one person may match here."),
                ("exceedsLimit", bool_nn(), Scalar, "More records match than the limit: erasure needs allowLargeMatches."),
                ("supported", bool_nn(), Scalar, "Whether the connector can carry this out."),
                ("note", string(), Scalar, ""),
                ("blockedBy", string(), Scalar, "Why the live store would refuse this erasure (a NOT NULL column masked to null, a primary key it does not keep unique): an erasure stops before acting."),
                ("error", string(), Scalar, "The lookup failed: the erasure would retry it."),
            ],
        ))
        .register(json_object(
            "PrivacyRequestPage",
            "A page of privacy requests, newest first.",
            &[
                ("requests", TypeRef::named_nn_list_nn("PrivacyRequest"), Objects, ""),
                ("endCursor", string(), Scalar, "Pass as `after` for the next page."),
                ("hasNextPage", bool_nn(), Scalar, ""),
            ],
        ))
        .register(json_object(
            "PrivacyRequestEvent",
            "Progress of a request.",
            &[
                ("requestId", TypeRef::named_nn(TypeRef::ID), Scalar, ""),
                ("at", string_nn(), Scalar, ""),
                ("kind", string_nn(), Scalar, "received, planned, task.started, task.done, task.failed, task.waiting, verified, completed, failed, …"),
                ("message", string_nn(), Scalar, ""),
                ("status", TypeRef::named_nn("PrivacyRequestStatus"), Enum, "The request's status after the event."),
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
                            let id = ctx.args.try_get("id")?.string()?.to_owned();
                            let stream = engine.events(&id).await.map_err(request_error)?;
                            Ok(stream.map(|event| Ok(FieldValue::owned_any(event))))
                        })
                    },
                )
                .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
                .description("Progress of one request, from its current state until it finishes. Needs `manage_requests`."),
            ),
        )
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

fn engine<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<dyn PrivacyRequests>> {
    ctx.data_opt::<Arc<dyn PrivacyRequests>>().ok_or_else(|| {
        Error::new("privacy requests are not configured")
            .extend_with(|_, e| e.set("code", "REQUESTS_UNAVAILABLE"))
    })
}

fn request_error(error: RequestError) -> Error {
    let code = error.code();
    Error::new(error.to_string()).extend_with(move |_, e| e.set("code", code))
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
                    let filter = RequestFilter {
                        status: arg("status").and_then(|v| v.enum_name().ok().map(str::to_owned)),
                        kind: arg("type").and_then(|v| v.enum_name().ok().and_then(RequestKind::parse)),
                        overdue: arg("overdue").and_then(|v| v.boolean().ok()),
                        first: arg("first").and_then(|v| v.i64().ok()).unwrap_or(50).clamp(1, 500) as usize,
                        after: arg("after").and_then(|v| v.string().ok().map(str::to_owned)),
                    };
                    let page = engine(&ctx)?.requests(filter).await.map_err(request_error)?;
                    Ok(Some(FieldValue::owned_any(serde_json::json!({
                        "requests": page.requests,
                        "endCursor": page.end_cursor,
                        "hasNextPage": page.has_next_page,
                    }))))
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
