//! Approval (four eyes) as the schema sees it: `approvePrivacyRequest(id)` and
//! `denyPrivacyRequest(id, reason)`, both needing the `approve` operation (the engine refuses the
//! request's own submitter with `FOUR_EYES`), and on `PrivacyRequest` the decision
//! (`decidedBy`, `decidedAt`, `decisionReason`) and the `erasurePlan` an approver decides on.
//!
//! Which request types need approval is configured in gateway.toml (`[requests.approval]`); such
//! a request waits as AWAITING_APPROVAL, its due date running.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};

use crate::access::Operation;
use crate::gql_support::{authorize, caller, engine, leaf, opt_string, request_error};
use crate::request_views::RequestView;

/// The decision fields and `erasurePlan` of `PrivacyRequest`.
pub(crate) fn request_fields(object: Object) -> Object {
    object
        .field(
            leaf::<RequestView>("decidedBy", TypeRef::named(TypeRef::STRING), |r| opt_string(r.decided_by.as_deref()))
                .description("The approver who approved or denied it (requests that need approval)."),
        )
        .field(
            leaf::<RequestView>("decidedAt", TypeRef::named(TypeRef::STRING), |r| opt_string(r.decided_at.as_deref()))
                .description(""),
        )
        .field(
            leaf::<RequestView>("decisionReason", TypeRef::named(TypeRef::STRING), |r| {
                opt_string(r.decision_reason.as_deref())
            })
            .description("Why it was DENIED."),
        )
        .field(
            Field::new("erasurePlan", TypeRef::named("ErasurePlan"), |ctx| {
                FieldFuture::new(async move {
                    let Some(request) = ctx.parent_value.try_downcast_ref::<RequestView>().ok() else {
                        return Ok(None);
                    };
                    if request.kind != crate::requests::RequestKind::Erasure {
                        return Ok(None);
                    }
                    let id = request.id.clone();
                    let plan = engine(&ctx)?.request_plan(&id).await.map_err(request_error)?;
                    Ok(plan.map(FieldValue::owned_any))
                })
            })
            .description(
                "ERASURE, while open or awaiting approval: what erasing the person would do now, per connector and entity (what an approver decides on). Null once the request has finished.",
            ),
        )
}

/// `approvePrivacyRequest` and `denyPrivacyRequest`, added to the `Mutation` root.
pub(crate) fn mutation_fields(mutation: Object) -> Object {
    mutation
        .field(
            Field::new("approvePrivacyRequest", TypeRef::named_nn("PrivacyRequest"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::Approve)?;
                    let id = ctx.args.try_get("id")?.string()?.to_owned();
                    let view = engine(&ctx)?
                        .approve(caller(&ctx)?, &id)
                        .await
                        .map_err(request_error)?;
                    Ok(Some(FieldValue::owned_any(view)))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description(
                "Approves a request AWAITING_APPROVAL: the gateway carries it out. Needs `approve`; never by the caller who submitted it (FOUR_EYES).",
            ),
        )
        .field(
            Field::new("denyPrivacyRequest", TypeRef::named_nn("PrivacyRequest"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::Approve)?;
                    let id = ctx.args.try_get("id")?.string()?.to_owned();
                    let reason = ctx.args.try_get("reason")?.string()?.to_owned();
                    let view = engine(&ctx)?
                        .deny(caller(&ctx)?, &id, reason)
                        .await
                        .map_err(request_error)?;
                    Ok(Some(FieldValue::owned_any(view)))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .argument(InputValue::new("reason", TypeRef::named_nn(TypeRef::STRING)))
            .description(
                "Denies a request AWAITING_APPROVAL: it ends DENIED with the reason, nothing done. Needs `approve`; never by the caller who submitted it (FOUR_EYES).",
            ),
        )
}
