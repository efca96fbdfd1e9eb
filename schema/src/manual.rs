//! Manual tasks as the schema sees them: `Query.manualTasks(status, role, overdue, first,
//! after)` and `Mutation.completeManualTask(id, outcome, note)`.
//!
//! A manual task is what a person does by hand in a store without an API (`kind = "manual"`)
//! for one request: the engine creates it when the request reaches that store and the request
//! waits (WAITING, its task MANUAL, its due date running) until the outcome is recorded. The
//! role the store assigns its tasks to lists and completes them; a role with `manage_requests`
//! sees and completes every one. Both are audited by the engine.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, SchemaBuilder, TypeRef,
};
use async_graphql::{Error, Value as GqlValue};

use crate::gql_support::{caller, engine, enum_value, leaf, opt_string, request_error, text};
use crate::request_views::{ManualTaskPage, ManualTaskView};
use crate::requests::{ManualOutcome, ManualTaskFilter};

/// `ManualTask`, `ManualTaskPage` and their enums.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    let string_nn = || TypeRef::named_nn(TypeRef::STRING);
    let string = || TypeRef::named(TypeRef::STRING);
    let task = Object::new("ManualTask")
        .description("What a person does by hand in a store without an API, for one privacy request.")
        .field(leaf::<ManualTaskView>("id", TypeRef::named_nn(TypeRef::ID), |t| text(&t.id)).description("`mt_…`"))
        .field(leaf::<ManualTaskView>("requestId", TypeRef::named_nn(TypeRef::ID), |t| text(&t.request_id)).description(""))
        .field(
            leaf::<ManualTaskView>("requestType", TypeRef::named_nn("PrivacyRequestType"), |t| {
                enum_value(t.request_type.as_str())
            })
            .description(""),
        )
        .field(leaf::<ManualTaskView>("connector", string_nn(), |t| text(&t.connector)).description(""))
        .field(leaf::<ManualTaskView>("entity", string_nn(), |t| text(&t.entity)).description(""))
        .field(
            leaf::<ManualTaskView>("action", string_nn(), |t| text(t.action.as_str()))
                .description("What to do: DELETE, EXPORT (send the records found to the person), RECTIFY."),
        )
        .field(leaf::<ManualTaskView>("role", string_nn(), |t| text(&t.role)).description("The role it is assigned to."))
        .field(leaf::<ManualTaskView>("instructions", string_nn(), |t| text(&t.instructions)).description("As declared for the entity."))
        .field(
            leaf::<ManualTaskView>("status", TypeRef::named_nn("ManualTaskStatus"), |t| enum_value(&t.status))
                .description(""),
        )
        .field(leaf::<ManualTaskView>("createdAt", string_nn(), |t| text(&t.created_at)).description(""))
        .field(leaf::<ManualTaskView>("dueAt", string_nn(), |t| text(&t.due_at)).description("The request's due date."))
        .field(leaf::<ManualTaskView>("overdue", TypeRef::named_nn(TypeRef::BOOLEAN), |t| GqlValue::from(t.overdue)).description("Open and past `dueAt`."))
        .field(
            leaf::<ManualTaskView>("identities", TypeRef::named_nn_list_nn(TypeRef::STRING), |t| {
                GqlValue::from(t.identities.clone())
            })
            .description("Who to search for, as `kind: value` — only the kinds whose category the caller's role sees; empty once the request has finished."),
        )
        .field(
            leaf::<ManualTaskView>("changes", TypeRef::named_nn_list_nn(TypeRef::STRING), |t| {
                GqlValue::from(t.changes.clone())
            })
            .description("RECTIFY: the corrections, as `attribute: value` (only while the request is open)."),
        )
        .field(leaf::<ManualTaskView>("completedBy", string(), |t| opt_string(t.completed_by.as_deref())).description("Who recorded the outcome."))
        .field(leaf::<ManualTaskView>("completedAt", string(), |t| opt_string(t.completed_at.as_deref())).description(""))
        .field(leaf::<ManualTaskView>("note", string(), |t| opt_string(t.note.as_deref())).description("What they wrote."));
    let page = Object::new("ManualTaskPage")
        .description("A page of manual tasks, oldest first.")
        .field(
            Field::new("tasks", TypeRef::named_nn_list_nn("ManualTask"), |ctx| {
                FieldFuture::new(async move {
                    let page = ctx.parent_value.try_downcast_ref::<ManualTaskPage>()?;
                    Ok(Some(FieldValue::list(
                        page.tasks.iter().map(|t| FieldValue::borrowed_any(t)),
                    )))
                })
            })
            .description(""),
        )
        .field(
            leaf::<ManualTaskPage>("endCursor", string(), |p| opt_string(p.end_cursor.as_deref()))
                .description("Pass as `after` for the next page."),
        )
        .field(
            leaf::<ManualTaskPage>("hasNextPage", TypeRef::named_nn(TypeRef::BOOLEAN), |p| {
                GqlValue::from(p.has_next_page)
            })
            .description(""),
        );
    let status = ManualOutcome::ALL.iter().fold(
        Enum::new("ManualTaskStatus").description("OPEN until a person records DONE, NOT_FOUND or FAILED; CANCELLED when its request was cancelled first."),
        |e, o| e.item(EnumItem::new(o.as_str())),
    );
    let outcome = ManualOutcome::ALL
        .iter()
        .filter(|o| !matches!(o, ManualOutcome::Open | ManualOutcome::Cancelled))
        .fold(
            Enum::new("ManualTaskOutcome").description(
                "DONE: done as instructed. NOT_FOUND: the person is not in the store. FAILED: it could not be done (the request fails; the note says why).",
            ),
            |e, o| e.item(EnumItem::new(o.as_str())),
        );
    builder
        .register(task)
        .register(page)
        .register(status)
        .register(outcome)
}

/// `Query.manualTasks`.
pub(crate) fn query_fields(query: Object) -> Object {
    query.field(
        Field::new("manualTasks", TypeRef::named_nn("ManualTaskPage"), |ctx| {
            FieldFuture::new(async move {
                let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
                let status = match arg("status") {
                    Some(v) => Some(
                        ManualOutcome::parse(v.enum_name()?)
                            .ok_or_else(|| Error::new("status: OPEN, DONE, NOT_FOUND, FAILED or CANCELLED"))?,
                    ),
                    None => None,
                };
                let filter = ManualTaskFilter {
                    status,
                    role: arg("role").and_then(|v| v.string().ok().map(str::to_owned)),
                    overdue: arg("overdue").and_then(|v| v.boolean().ok()),
                    first: arg("first").and_then(|v| v.i64().ok()).unwrap_or(50).clamp(1, 500) as usize,
                    after: arg("after").and_then(|v| v.string().ok().map(str::to_owned)),
                };
                let page = engine(&ctx)?
                    .manual_tasks(caller(&ctx)?, filter)
                    .await
                    .map_err(request_error)?;
                Ok(Some(FieldValue::owned_any(page)))
            })
        })
        .argument(InputValue::new("status", TypeRef::named("ManualTaskStatus")))
        .argument(InputValue::new("role", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("overdue", TypeRef::named(TypeRef::BOOLEAN)))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .description(
            "Manual tasks (stores without an API), oldest first. A role sees the tasks assigned to it; `manage_requests` sees every role's.",
        ),
    )
}

/// `Mutation.completeManualTask`.
pub(crate) fn mutation_fields(mutation: Object) -> Object {
    mutation.field(
        Field::new("completeManualTask", TypeRef::named_nn("ManualTask"), |ctx| {
            FieldFuture::new(async move {
                let id = ctx.args.try_get("id")?.string()?.to_owned();
                let outcome = ManualOutcome::parse(ctx.args.try_get("outcome")?.enum_name()?)
                    .filter(|o| !matches!(o, ManualOutcome::Open | ManualOutcome::Cancelled))
                    .ok_or_else(|| Error::new("outcome: DONE, NOT_FOUND or FAILED"))?;
                let note = ctx
                    .args
                    .get("note")
                    .filter(|v| !v.is_null())
                    .and_then(|v| v.string().ok().map(str::to_owned));
                let view = engine(&ctx)?
                    .complete_manual_task(caller(&ctx)?, &id, outcome, note)
                    .await
                    .map_err(request_error)?;
                Ok(Some(FieldValue::owned_any(view)))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .argument(InputValue::new("outcome", TypeRef::named_nn("ManualTaskOutcome")))
        .argument(InputValue::new("note", TypeRef::named(TypeRef::STRING)))
        .description(
            "Records the outcome of an open manual task (who did what), and the request carries on. By the role it is assigned to, or `manage_requests`; FAILED needs a note.",
        ),
    )
}
