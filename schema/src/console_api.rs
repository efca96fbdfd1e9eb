//! What the operations console needs beyond the request API itself: `Query.privacyRequestCounts`
//! (how many requests per status, one grouped query) and `PrivacyRequest.events` (the request's
//! recorded timeline). Both need `manage_requests`, like `privacyRequests`.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, SchemaBuilder, TypeRef};
use async_graphql::{Error, Value as GqlValue};

use crate::access::Operation;
use crate::gql_support::{authorize, engine, enum_value, leaf, request_error};
use crate::request_views::{EventView, RequestView};
use crate::requests::{RequestKind, RequestStatus};

/// One row of `privacyRequestCounts`.
struct StatusCount {
    pub status: RequestStatus,
    pub count: u64,
}

/// Registers `PrivacyRequestCount`.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    builder.register(
        Object::new("PrivacyRequestCount")
            .description("How many privacy requests are in one status.")
            .field(leaf::<StatusCount>(
                "status",
                TypeRef::named_nn("PrivacyRequestStatus"),
                |c| enum_value(c.status.as_str()),
            ))
            .field(leaf::<StatusCount>(
                "count",
                TypeRef::named_nn(TypeRef::INT),
                |c| GqlValue::from(c.count.min(i32::MAX as u64) as i32),
            )),
    )
}

/// `Query.privacyRequestCounts(type, overdue)`.
pub(crate) fn query_fields(query: Object) -> Object {
    query.field(
        Field::new(
            "privacyRequestCounts",
            TypeRef::named_nn_list_nn("PrivacyRequestCount"),
            |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ManageRequests)?;
                    let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
                    let kind = arg("type")
                        .map(|v| {
                            v.enum_name()?
                                .parse::<RequestKind>()
                                .map_err(|e| Error::new(e.to_string()))
                        })
                        .transpose()?;
                    let overdue = arg("overdue").map(|v| v.boolean()).transpose()?;
                    let counts = engine(&ctx)?.counts(kind, overdue).await.map_err(request_error)?;
                    // Every status, in the enum's order; those with no request count 0.
                    let rows = RequestStatus::ALL.iter().map(|status| StatusCount {
                        status: *status,
                        count: counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n),
                    });
                    Ok(Some(FieldValue::list(rows.map(FieldValue::owned_any))))
                })
            },
        )
        .argument(InputValue::new("type", TypeRef::named("PrivacyRequestType")))
        .argument(InputValue::new("overdue", TypeRef::named(TypeRef::BOOLEAN)))
        .description(
            "How many privacy requests are in each status (every status, zeros included), with the \
             `type` and `overdue` filters of `privacyRequests`. Needs `manage_requests`.",
        ),
    )
}

/// `PrivacyRequest.events`: its recorded events, oldest first.
pub(crate) fn request_fields(object: Object) -> Object {
    object.field(
        Field::new(
            "events",
            TypeRef::named_nn_list_nn("PrivacyRequestEvent"),
            |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ManageRequests)?;
                    let request = ctx.parent_value.try_downcast_ref::<RequestView>()?;
                    let events: Vec<EventView> = engine(&ctx)?
                        .request_events(&request.id)
                        .await
                        .map_err(request_error)?;
                    Ok(Some(FieldValue::list(
                        events.into_iter().map(FieldValue::owned_any),
                    )))
                })
            },
        )
        .description("Everything recorded about the request, oldest first: its timeline."),
    )
}
