//! The person in the schema: `Query.subject` and `Query.subjects`, the `Subject` type and one
//! object type per connector and per entity, `ResolvedIdentity`, `SourceStatus`, and the budget of
//! subjects one request may resolve.
//!
//! Records are served straight from the executor's batch outcome (borrowed, not copied). A
//! failing entity is `null` with an error whose `extensions` name the connector, the entity and the
//! error class; the other connectors' data still comes back.

use std::sync::Arc;
use std::time::Instant;
use subject_connectors::codes::ErrorCode;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, SchemaBuilder, TypeRef,
};
use async_graphql::{Error, ErrorExtensions, ServerError, Value as GqlValue};
use subject_connectors::{ConnectorError, FailureClass, FieldType, Identity, Value};

use crate::access::Operation;
use crate::gql_audit::audit_read;
use crate::gql_files::files_field;
use crate::gql_support::{
    authorize, caller, category_error, enum_value, identity_error, identity_withheld, indexed, leaf,
    null_with_error, opt_string, parse_identity, purpose_error, ready,
};
use crate::objections::{objected_error, withheld};
use crate::plan::EntityRef;
use crate::registry::Registry;
use crate::resolve::{BatchOutcome, Executor, IdentitySource, ResolvedIdentity, SourceState};
use crate::scope::Scope;

/// How many more subjects the current request may resolve; put in a request's data by
/// [`crate::SubjectService::execute`]. A request without one (run in process) is not capped.
#[derive(Debug)]
pub struct SubjectBudget {
    remaining: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl SubjectBudget {
    pub fn new(max: usize) -> Self {
        Self {
            remaining: std::sync::atomic::AtomicUsize::new(max),
            max,
        }
    }

    /// Takes `count` subjects from the budget, or refuses without taking any.
    fn take(&self, count: usize) -> Result<(), Error> {
        use std::sync::atomic::Ordering;
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(count))
            .map(|_| ())
            .map_err(|_| {
                Error::new(format!(
                    "the request would resolve more than {} subjects in all (server.max_subjects); split it",
                    self.max
                ))
                .extend_with(|_, e| e.set("code", ErrorCode::SubjectBudgetExceeded.as_str()))
            })
    }
}

/// Takes `count` from the request's subject budget, when it has one.
fn take_subjects(ctx: &ResolverContext<'_>, count: usize) -> async_graphql::Result<()> {
    match ctx.data_opt::<SubjectBudget>() {
        Some(budget) => budget.take(count),
        None => Ok(()),
    }
}

/// One subject of a batch: the parent value of `Subject`'s fields.
struct SubjectView {
    batch: Arc<BatchOutcome>,
    index: usize,
}

/// One connector's section of one subject.
struct ConnectorView {
    batch: Arc<BatchOutcome>,
    index: usize,
}

struct SourceView {
    connector: String,
    state: SourceState,
    latency_ms: f64,
    records: usize,
    round_trips: u32,
    error: Option<(String, &'static str)>,
}

/// Registers `Subject`, its connector and record types, `ResolvedIdentity` and `SourceStatus`.
pub(crate) fn register(mut builder: SchemaBuilder, registry: &Registry) -> SchemaBuilder {
    builder = builder
        .register(resolved_identity_type())
        .register(source_status_type());
    let mut subject = Object::new("Subject")
        .description("One person, as every registered store knows them.")
        .field(
            Field::new(
                "identities",
                TypeRef::named_nn_list_nn("ResolvedIdentity"),
                |ctx| {
                    ready((|| {
                        let view = ctx.parent_value.try_downcast_ref::<SubjectView>()?;
                        let identities = &view.batch.subjects[view.index].identities;
                        Ok(Some(FieldValue::list(
                            identities.iter().map(|i| FieldValue::borrowed_any(i)),
                        )))
                    })())
                },
            )
            .description("Every identity followed, and where each was found."),
        )
        .field(
            Field::new("sources", TypeRef::named_nn_list_nn("SourceStatus"), |ctx| {
                ready((|| {
                    let executor = ctx.data::<Arc<Executor>>()?;
                    let view = ctx.parent_value.try_downcast_ref::<SubjectView>()?;
                    let subject = &view.batch.subjects[view.index];
                    let sources = view
                        .batch
                        .sources
                        .iter()
                        .enumerate()
                        .map(|(c, report)| SourceView {
                            connector: executor.registry().connectors[c]
                                .connector
                                .descriptor()
                                .name
                                .clone(),
                            state: report.state,
                            latency_ms: report.latency.as_secs_f64() * 1000.0,
                            records: subject.record_count(c),
                            round_trips: report.round_trips,
                            error: report.error.as_ref().map(|e| (e.to_string(), e.code())),
                        });
                    Ok(Some(FieldValue::list(sources.map(FieldValue::owned_any))))
                })())
            })
            .description("Per connector: status, time spent, records returned, round trips."),
        );

    for (c, registered) in registry.connectors.iter().enumerate() {
        let descriptor = registered.connector.descriptor();
        let mut connector_type = Object::new(registered.type_name.as_str());
        if let Some(description) = &descriptor.description {
            connector_type = connector_type.description(description.as_str());
        }
        for (e, (entity, names)) in descriptor.entities.iter().zip(&registered.entities).enumerate() {
            let mut record_type = Object::new(names.type_name.as_str()).description(format!(
                "A record of `{}.{}`{}",
                descriptor.name,
                entity.name,
                entity
                    .description
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
            for (f, (field, graphql_name)) in entity.fields.iter().zip(&names.field_names).enumerate() {
                let description = match &field.description {
                    Some(d) => format!("{d} (category: {})", field.category),
                    None => format!("Column `{}` (category: {}).", field.name, field.category),
                };
                let category = field.category.clone();
                record_type = record_type.field(
                    Field::new(graphql_name.as_str(), output_type(field.field_type), move |ctx| {
                        ready((|| {
                            let caller = caller(&ctx)?;
                            if !caller.role.sees(&category) {
                                return Ok(null_with_error(&ctx, category_error(caller, &category)));
                            }
                            let record = ctx.parent_value.try_downcast_ref::<Vec<Value>>()?;
                            let executor = ctx.data::<Arc<Executor>>()?;
                            let declared =
                                &executor.registry().connectors[c].connector.descriptor().entities[e];
                            // A record narrower than its declaration is an error, never a `null`.
                            match crate::records::value(declared, record, f) {
                                Ok(value) => Ok(Some(FieldValue::value(to_graphql(value)))),
                                Err(error) => Ok(null_with_error(
                                    &ctx,
                                    connector_error(
                                        executor,
                                        EntityRef {
                                            connector: c,
                                            entity: e,
                                        },
                                        &error,
                                    ),
                                )),
                            }
                        })())
                    })
                    .description(description),
                );
            }
            if let Some(files) = &entity.files {
                record_type = record_type.field(files_field(c, files.key.clone(), entity));
            }
            builder = builder.register(record_type);
            let entity_ref = EntityRef {
                connector: c,
                entity: e,
            };
            connector_type = connector_type.field(
                Field::new(
                    names.field_name.as_str(),
                    TypeRef::named_nn_list(names.type_name.as_str()),
                    move |ctx| {
                        ready((|| {
                            let view = ctx.parent_value.try_downcast_ref::<ConnectorView>()?;
                            if let Some(error) = &view.batch.entity_errors[c][e] {
                                let executor = ctx.data::<Arc<Executor>>()?;
                                return Ok(null_with_error(&ctx, connector_error(executor, entity_ref, error)));
                            }
                            let records = &view.batch.subjects[view.index].records[c][e];
                            Ok(Some(FieldValue::list(records.iter().map(|r| FieldValue::borrowed_any(r)))))
                        })())
                    },
                )
                .description(format!(
                    "Records of `{}` that belong to this subject; null (with an error) when the store failed.",
                    entity.source
                )),
            );
        }
        builder = builder.register(connector_type);
        subject = subject.field(
            Field::new(
                registered.field_name.as_str(),
                TypeRef::named(registered.type_name.as_str()),
                move |ctx| {
                    ready((|| {
                        let executor = ctx.data::<Arc<Executor>>()?;
                        let descriptor = executor.registry().connectors[c].connector.descriptor();
                        let caller = caller(&ctx)?;
                        if !caller.purpose_served_by(descriptor.purposes.as_deref()) {
                            return Ok(null_with_error(&ctx, purpose_error(caller, &descriptor.name)));
                        }
                        let view = ctx.parent_value.try_downcast_ref::<SubjectView>()?;
                        Ok(Some(FieldValue::owned_any(ConnectorView {
                            batch: view.batch.clone(),
                            index: view.index,
                        })))
                    })())
                },
            )
            .description(format!(
                "Data held in connector `{}` ({}); null (with an error) when it does not serve the request's purpose.",
                descriptor.name, descriptor.kind
            )),
        );
    }
    builder = builder.register(subject);
    builder
}

/// `Query.subject` and `Query.subjects`.
pub(crate) fn query_fields(query: Object, max_batch: usize) -> Object {
    query
        .field(
            Field::new("subject", TypeRef::named("Subject"), |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ReadSubject)?;
                    let executor = ctx.data::<Arc<Executor>>()?.clone();
                    let identity = match parse_identity(&executor, &ctx.args.try_get("identity")?) {
                        Ok(identity) => identity,
                        Err(error) => return Ok(null_with_error(&ctx, identity_error(&error, None))),
                    };
                    if let Err(error) = take_subjects(&ctx, 1) {
                        return Ok(null_with_error(&ctx, error));
                    }
                    let inputs = vec![vec![identity]];
                    let scope = scope(&ctx, &executor)?;
                    let batch = resolve(&executor, inputs.clone(), scope.as_ref(), &ctx, "subject").await;
                    // Objections bind at read time: a withheld person is null + OBJECTED.
                    let objected = withheld(&ctx, &executor, &inputs, &batch).await?;
                    if let Some(Some(objection)) = objected.first() {
                        let purpose = &caller(&ctx)?.purpose;
                        return Ok(null_with_error(&ctx, objected_error(objection, purpose, None)));
                    }
                    audit_read(&ctx, &executor, "subject.read", &inputs, &batch, &[]).await?;
                    Ok(Some(FieldValue::owned_any(SubjectView { batch, index: 0 })))
                })
            })
            .argument(InputValue::new("identity", TypeRef::named_nn("IdentityInput")))
            .description("Everything held about one person, found from one identity. A person with no data is an empty subject, not an error; a person who objected to the request's purpose is null with an `OBJECTED` error."),
        )
        .field(
            Field::new("subjects", TypeRef::named_nn_list("Subject"), move |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ReadSubject)?;
                    let executor = ctx.data::<Arc<Executor>>()?.clone();
                    let list = ctx.args.try_get("identities")?.list()?;
                    if list.len() > max_batch {
                        return Err(Error::new(format!(
                            "{} identities given; at most {max_batch} per call",
                            list.len()
                        ))
                        .extend_with(|_, e| e.set("code", ErrorCode::BatchTooLarge.as_str())));
                    }
                    let mut inputs = Vec::with_capacity(list.len());
                    for (i, item) in list.iter().enumerate() {
                        let identity = parse_identity(&executor, &item).map_err(|e| identity_error(&e, Some(i)))?;
                        inputs.push(vec![identity]);
                    }
                    let count = inputs.len();
                    take_subjects(&ctx, count)?;
                    let scope = scope(&ctx, &executor)?;
                    let batch = resolve(&executor, inputs.clone(), scope.as_ref(), &ctx, "subjects").await;
                    // Objections bind at read time: each withheld person is null + OBJECTED at
                    // their index; the others are served.
                    let objected = withheld(&ctx, &executor, &inputs, &batch).await?;
                    let flags: Vec<bool> = objected.iter().map(Option::is_some).collect();
                    audit_read(&ctx, &executor, "subjects.read", &inputs, &batch, &flags).await?;
                    let purpose = caller(&ctx)?.purpose.clone();
                    let items: Vec<FieldValue<'_>> = (0..count)
                        .map(|index| match objected.get(index) {
                            Some(Some(objection)) => {
                                let error = objected_error(objection, &purpose, Some(index));
                                let mut server = ctx.set_error_path(error.into_server_error(ctx.item.pos));
                                server.path.push(async_graphql::PathSegment::Index(index));
                                ctx.add_error(server);
                                FieldValue::NULL
                            }
                            _ => FieldValue::owned_any(SubjectView { batch: batch.clone(), index }),
                        })
                        .collect();
                    Ok(Some(FieldValue::list(items)))
                })
            })
            .argument(InputValue::new("identities", TypeRef::named_nn_list_nn("IdentityInput")))
            .description("Many people at once, one per identity, in the order given. Costs the same number of store round trips per stage as one. A person who objected to the request's purpose is null (with an `OBJECTED` error at their index); the others are served."),
        )
}

/// The entities a `subject(s)` field needs resolved: when it selects connectors only (and
/// `__typename`), theirs and those that lead to them ([`crate::scope`]); `None` (everything)
/// when it selects `identities` or `sources` (which show every store), or when the purpose is
/// objectable (an objection binds by any identity of the person, so every one is found).
fn scope(ctx: &ResolverContext<'_>, executor: &Executor) -> async_graphql::Result<Option<Scope>> {
    if crate::objections::objectable(&caller(ctx)?.purpose) {
        return Ok(None);
    }
    let registry = executor.registry();
    let mut connectors = Vec::new();
    for field in ctx.field().selection_set() {
        let name = field.name();
        if name == "__typename" {
            continue;
        }
        match registry.connectors.iter().position(|c| c.field_name == name) {
            Some(c) => connectors.push(c),
            None => return Ok(None),
        }
    }
    Ok(executor.scope_of(&connectors))
}

/// Runs a batch (over `scope`, or everything) and reports resolution cut short by the depth
/// limit.
async fn resolve(
    executor: &Executor,
    inputs: Vec<Vec<Identity>>,
    scope: Option<&Scope>,
    ctx: &ResolverContext<'_>,
    operation: &'static str,
) -> Arc<BatchOutcome> {
    let started = Instant::now();
    let batch = executor.resolve_in(inputs, scope).await;
    metrics::histogram!("subject_gateway_operation_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        subjects = batch.subjects.len(),
        rounds = batch.rounds,
        failed_sources = batch
            .sources
            .iter()
            .filter(|s| s.state != SourceState::Ok)
            .count(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "subjects resolved"
    );
    if batch.depth_exhausted {
        let mut error = ServerError::new(
            format!(
                "identity resolution stopped after {} rounds (resolution.max_depth) with identities left to follow; results may be incomplete",
                batch.rounds
            ),
            Some(ctx.item.pos),
        );
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", ErrorCode::ResolutionDepthExhausted.as_str());
        error.extensions = Some(extensions);
        ctx.add_error(error);
    }
    Arc::new(batch)
}

fn connector_error(executor: &Executor, entity: EntityRef, error: &ConnectorError) -> Error {
    let descriptor = executor.registry().connectors[entity.connector]
        .connector
        .descriptor();
    let connector = descriptor.name.clone();
    let entity_name = descriptor.entities[entity.entity].name.clone();
    let class = match error.class() {
        FailureClass::Timeout => "TIMEOUT",
        FailureClass::Error => "ERROR",
    };
    let code = error.code();
    Error::new(format!(
        "connector `{connector}` failed on `{entity_name}`: {error}"
    ))
    .extend_with(move |_, e| {
        e.set("code", code);
        e.set("connector", connector.as_str());
        e.set("entity", entity_name.as_str());
        e.set("class", class);
    })
}

fn resolved_identity_type() -> Object {
    Object::new("ResolvedIdentity")
        .description("An identity of the subject and where it was found.")
        .field(indexed::<ResolvedIdentity>(
            "kind",
            TypeRef::named_nn("IdentityKind"),
            |ex, r| enum_value(&ex.registry().kinds.get(r.identity.kind).graphql_name),
        ))
        .field(
            Field::new("value", TypeRef::named(TypeRef::STRING), |ctx| {
                ready((|| {
                    let resolved = ctx.parent_value.try_downcast_ref::<ResolvedIdentity>()?;
                    let executor = ctx.data::<Arc<Executor>>()?;
                    if let Some(error) = identity_withheld(executor, caller(&ctx)?, resolved) {
                        return Ok(null_with_error(&ctx, error));
                    }
                    Ok(Some(FieldValue::value(GqlValue::String(
                        resolved.identity.value.expose().to_owned(),
                    ))))
                })())
            })
            .description(
                "The value; null (with an error) when the caller's role is not granted the kind's data category or the store that yielded it does not serve the request's purpose.",
            ),
        )
        .field(
            indexed::<ResolvedIdentity>("source", TypeRef::named_nn(TypeRef::STRING), |ex, r| {
                match r.source {
                    IdentitySource::Input => GqlValue::String("input".into()),
                    IdentitySource::Entity(e) => {
                        GqlValue::String(ex.registry().entity_label(e.connector, e.entity))
                    }
                }
            })
            .description("`input`, or `connector.entity` that yielded it."),
        )
        .field(indexed::<ResolvedIdentity>(
            "connector",
            TypeRef::named(TypeRef::STRING),
            |ex, r| match r.source {
                IdentitySource::Input => GqlValue::Null,
                IdentitySource::Entity(e) => GqlValue::String(
                    ex.registry().connectors[e.connector]
                        .connector
                        .descriptor()
                        .name
                        .clone(),
                ),
            },
        ))
        .field(indexed::<ResolvedIdentity>(
            "entity",
            TypeRef::named(TypeRef::STRING),
            |ex, r| match r.source {
                IdentitySource::Input => GqlValue::Null,
                IdentitySource::Entity(e) => GqlValue::String(
                    ex.registry().connectors[e.connector]
                        .connector
                        .descriptor()
                        .entities[e.entity]
                        .name
                        .clone(),
                ),
            },
        ))
        .field(
            leaf::<ResolvedIdentity>("depth", TypeRef::named_nn(TypeRef::INT), |r| {
                GqlValue::from(r.depth as i64)
            })
            .description("The resolution round that found it; 0 for the input."),
        )
}

fn source_status_type() -> Object {
    Object::new("SourceStatus")
        .description("How one connector fared for this subject.")
        .field(leaf::<SourceView>(
            "connector",
            TypeRef::named_nn(TypeRef::STRING),
            |s| GqlValue::String(s.connector.clone()),
        ))
        .field(leaf::<SourceView>(
            "status",
            TypeRef::named_nn("SourceState"),
            |s| {
                enum_value(match s.state {
                    SourceState::Ok => "OK",
                    SourceState::Error => "ERROR",
                    SourceState::Timeout => "TIMEOUT",
                })
            },
        ))
        .field(
            leaf::<SourceView>("latencyMs", TypeRef::named_nn(TypeRef::FLOAT), |s| {
                GqlValue::from(s.latency_ms)
            })
            .description("Time spent in this connector's store calls, summed over rounds."),
        )
        .field(leaf::<SourceView>(
            "records",
            TypeRef::named_nn(TypeRef::INT),
            |s| GqlValue::from(s.records as i64),
        ))
        .field(
            leaf::<SourceView>("roundTrips", TypeRef::named_nn(TypeRef::INT), |s| {
                GqlValue::from(s.round_trips)
            })
            .description(
                    "Store calls for the whole request, shared by every subject of a batch: one per entity per resolution round (an HTTP call walks every value and page).",
                ),
        )
        .field(leaf::<SourceView>(
            "error",
            TypeRef::named(TypeRef::STRING),
            |s| opt_string(s.error.as_ref().map(|(m, _)| m.as_str())),
        ))
        .field(leaf::<SourceView>(
            "errorCode",
            TypeRef::named(TypeRef::STRING),
            |s| opt_string(s.error.as_ref().map(|(_, c)| *c)),
        ))
}

fn output_type(field_type: FieldType) -> TypeRef {
    TypeRef::named(match field_type {
        FieldType::String | FieldType::Decimal | FieldType::Timestamp | FieldType::Date | FieldType::Uuid => {
            TypeRef::STRING
        }
        FieldType::Int => TypeRef::INT,
        FieldType::Bigint => "Long",
        FieldType::Float => TypeRef::FLOAT,
        FieldType::Bool => TypeRef::BOOLEAN,
        FieldType::Json => "JSON",
    })
}

fn to_graphql(value: &Value) -> GqlValue {
    match value {
        Value::Null => GqlValue::Null,
        Value::Bool(b) => GqlValue::Boolean(*b),
        Value::Int(i) => GqlValue::from(*i),
        Value::Float(f) => async_graphql::Number::from_f64(*f).map_or(GqlValue::Null, GqlValue::Number),
        Value::String(s) => GqlValue::String(s.clone()),
        Value::Json(json) => GqlValue::from_json(json.clone()).unwrap_or(GqlValue::Null),
    }
}
