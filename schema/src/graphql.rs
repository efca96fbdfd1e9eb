//! The GraphQL schema, generated from the registry: `Query.subject`, `Query.subjects`,
//! `Query.connectors`, and one object type per connector and per entity.
//!
//! Records are served straight from the executor's batch outcome (borrowed, not copied). A
//! failing entity is `null` with an error whose `extensions` name the connector, the entity and the
//! error class; the other connectors' data still comes back.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Scalar,
    Schema, SchemaError, TypeRef,
};
use async_graphql::{Error, ErrorExtensions, Name, ServerError, Value as GqlValue};
use subject_connectors::storage::{FileMeta, FileStore, file_key};
use subject_connectors::{ConnectorError, FailureClass, FieldType, Identity, IdentityError, Value};

use crate::access::{Caller, Operation};
use crate::audit::{AuditEntry, AuditFilter, AuditLog, AuditRecord, SubjectRef};
use crate::plan::EntityRef;
use crate::resolve::{BatchOutcome, Executor, IdentitySource, ResolvedIdentity, SourceState};

/// Limits and switches of the generated schema.
#[derive(Debug, Clone)]
pub struct SchemaSettings {
    /// Most identities one `subjects` call may carry.
    pub max_batch: usize,
    /// Whether introspection queries are answered.
    pub introspection: bool,
    /// Deepest selection nesting a query may have.
    pub max_depth: usize,
    /// Most fields a query may select in all (each field counts 1).
    pub max_complexity: usize,
    /// Most aliased fields a query may have.
    pub max_aliases: usize,
    /// Most directives a query may carry, with its fragments expanded.
    pub max_directives: usize,
    /// Most subjects one request may resolve in all (every `subject` field, every identity of
    /// every `subjects` field, aliases included).
    pub max_subjects: usize,
}

impl Default for SchemaSettings {
    fn default() -> Self {
        Self {
            max_batch: 1000,
            introspection: false,
            max_depth: 16,
            max_complexity: 5_000,
            max_aliases: 50,
            max_directives: 200,
            max_subjects: 1_000,
        }
    }
}

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
                .extend_with(|_, e| e.set("code", "SUBJECT_BUDGET_EXCEEDED"))
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

struct HealthView {
    up: bool,
    latency_ms: f64,
    error: Option<String>,
}

#[derive(Clone, Copy)]
struct EntityAt(EntityRef);

#[derive(Clone, Copy)]
struct FieldAt(EntityRef, usize);

#[derive(Clone, Copy)]
struct LinkAt(EntityRef, usize, bool);

/// Builds the executable schema for `executor`'s registry.
pub fn build_schema(executor: Arc<Executor>, settings: SchemaSettings) -> Result<Schema, SchemaError> {
    let registry = executor.registry().clone();
    let mut builder = Schema::build("Query", Some("Mutation"), Some("Subscription"))
        .data(executor.clone())
        .register(Scalar::new("Long").description("A 64-bit integer, serialised as a JSON number."))
        .register(Scalar::new("JSON").description("A JSON document."));
    builder = builder
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity);
    if !settings.introspection {
        builder = builder.disable_introspection();
    }

    let mut kinds = Enum::new("IdentityKind").description("The identity kinds declared in gateway.toml.");
    for (_, spec) in registry.kinds.iter() {
        let mut item = EnumItem::new(spec.graphql_name.as_str());
        if let Some(description) = &spec.description {
            item = item.description(description.as_str());
        }
        kinds = kinds.item(item);
    }
    builder = builder
        .register(kinds)
        .register(
            Enum::new("SourceState")
                .description("How a connector fared for this query.")
                .item(EnumItem::new("OK"))
                .item(EnumItem::new("ERROR"))
                .item(EnumItem::new("TIMEOUT")),
        )
        .register(Enum::new("HealthStatus").item(EnumItem::new("UP")).item(EnumItem::new("DOWN")))
        .register(
            InputObject::new("IdentityInput")
                .description("An identity to start from; its value is normalised per kind (emails: trimmed, lower-cased).")
                .field(InputValue::new("kind", TypeRef::named_nn("IdentityKind")))
                .field(InputValue::new("value", TypeRef::named_nn(TypeRef::STRING))),
        )
        .register(resolved_identity_type())
        .register(stored_file_type())
        .register(audit_event_type())
        .register(
            Object::new("AuditEventPage")
                .field(Field::new("events", TypeRef::named_nn_list_nn("AuditEvent"), |ctx| {
                    ready((|| {
                        let page = ctx.parent_value.try_downcast_ref::<AuditPage>()?;
                        Ok(Some(FieldValue::list(page.events.iter().map(|e| FieldValue::borrowed_any(e)))))
                    })())
                }))
                .field(leaf::<AuditPage>("endCursor", TypeRef::named(TypeRef::STRING), |p| {
                    opt_string(p.events.last().map(|e| e.seq.to_string()).as_deref())
                }))
                .field(leaf::<AuditPage>("hasNextPage", TypeRef::named_nn(TypeRef::BOOLEAN), |p| {
                    GqlValue::Boolean(p.more)
                })),
        )
        .register(source_status_type())
        .register(crate::privacy::mutation())
        .register(introspection_types().0)
        .register(introspection_types().1)
        .register(introspection_types().2)
        .register(introspection_types().3)
        .register(introspection_types().4);

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
                            Ok(Some(FieldValue::value(to_graphql(
                                record.get(f).unwrap_or(&Value::Null),
                            ))))
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

    let max_batch = settings.max_batch;
    let query = Object::new("Query")
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
                    let batch = resolve(&executor, inputs.clone(), &ctx, "subject").await;
                    audit_read(&ctx, &executor, "subject.read", &inputs, &batch).await?;
                    Ok(Some(FieldValue::owned_any(SubjectView { batch, index: 0 })))
                })
            })
            .argument(InputValue::new("identity", TypeRef::named_nn("IdentityInput")))
            .description("Everything held about one person, found from one identity. A person with no data is an empty subject, not an error."),
        )
        .field(
            Field::new("subjects", TypeRef::named_nn_list_nn("Subject"), move |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ReadSubject)?;
                    let executor = ctx.data::<Arc<Executor>>()?.clone();
                    let list = ctx.args.try_get("identities")?.list()?;
                    if list.len() > max_batch {
                        return Err(Error::new(format!(
                            "{} identities given; at most {max_batch} per call",
                            list.len()
                        ))
                        .extend_with(|_, e| e.set("code", "BATCH_TOO_LARGE")));
                    }
                    let mut inputs = Vec::with_capacity(list.len());
                    for (i, item) in list.iter().enumerate() {
                        let identity = parse_identity(&executor, &item).map_err(|e| identity_error(&e, Some(i)))?;
                        inputs.push(vec![identity]);
                    }
                    let count = inputs.len();
                    take_subjects(&ctx, count)?;
                    let batch = resolve(&executor, inputs.clone(), &ctx, "subjects").await;
                    audit_read(&ctx, &executor, "subjects.read", &inputs, &batch).await?;
                    Ok(Some(FieldValue::list((0..count).map(|index| {
                        FieldValue::owned_any(SubjectView { batch: batch.clone(), index })
                    }))))
                })
            })
            .argument(InputValue::new("identities", TypeRef::named_nn_list_nn("IdentityInput")))
            .description("Many people at once, one per identity, in the order given. Costs the same number of store round trips per stage as one."),
        )
        .field(audit_events_field())
        .field(
            Field::new("connectors", TypeRef::named_nn_list_nn("ConnectorInfo"), |ctx| {
                ready((|| {
                    authorize(&ctx, Operation::ReadSubject)?;
                    let executor = ctx.data::<Arc<Executor>>()?;
                    let connectors = &executor.registry().connectors;
                    Ok(Some(FieldValue::list(connectors.iter().map(|c| FieldValue::borrowed_any(c)))))
                })())
            })
            .description("What is registered: connectors, their entities, fields and data categories, and health."),
        );
    let query = crate::me::query_fields(crate::privacy::query_fields(query));
    crate::me::register(crate::privacy::register(builder))
        .register(query)
        .finish()
}

/// Runs a batch and reports resolution cut short by the depth limit.
async fn resolve(
    executor: &Executor,
    inputs: Vec<Vec<Identity>>,
    ctx: &ResolverContext<'_>,
    operation: &'static str,
) -> Arc<BatchOutcome> {
    let started = Instant::now();
    let batch = executor.resolve(inputs).await;
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
        extensions.set("code", "RESOLUTION_DEPTH_EXHAUSTED");
        error.extensions = Some(extensions);
        ctx.add_error(error);
    }
    Arc::new(batch)
}

pub(crate) fn parse_identity(
    executor: &Executor,
    input: &async_graphql::dynamic::ValueAccessor<'_>,
) -> Result<Identity, IdentityError> {
    let fields = input
        .object()
        .map_err(|_| IdentityError::UnknownKind("?".into()))?;
    let kind_name = fields
        .try_get("kind")
        .and_then(|k| k.enum_name().map(str::to_owned))
        .map_err(|_| IdentityError::UnknownKind("?".into()))?;
    let value = fields
        .try_get("value")
        .and_then(|v| v.string().map(str::to_owned))
        .map_err(|_| IdentityError::UnknownKind(kind_name.clone()))?;
    let kinds = &executor.registry().kinds;
    let kind = kinds
        .by_graphql_name(&kind_name)
        .ok_or_else(|| IdentityError::UnknownKind(kind_name.clone()))?;
    kinds.parse_input(kind, &value)
}

pub(crate) fn identity_error(error: &IdentityError, index: Option<usize>) -> Error {
    let message = match index {
        Some(i) => format!("identities[{i}]: {error}"),
        None => format!("identity: {error}"),
    };
    let code = error.code();
    Error::new(message).extend_with(move |_, e| {
        e.set("code", code);
        if let Some(i) = index {
            e.set("index", i as i64);
        }
    })
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

/// Appends the read to the audit trail; the data is only returned once it is recorded.
async fn audit_read(
    ctx: &ResolverContext<'_>,
    executor: &Executor,
    action: &str,
    inputs: &[Vec<Identity>],
    batch: &BatchOutcome,
) -> async_graphql::Result<()> {
    let caller = caller(ctx)?;
    let log = ctx.data_opt::<Arc<dyn AuditLog>>().ok_or_else(|| {
        Error::new("the audit log is not configured: no data is served without it")
            .extend_with(|_, e| e.set("code", "AUDIT_UNAVAILABLE"))
    })?;
    let registry = executor.registry();
    let mut connectors = std::collections::BTreeSet::new();
    let mut categories = std::collections::BTreeSet::new();
    for subject in &batch.subjects {
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
    for subject in &batch.subjects {
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
            .flatten()
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
        }),
    };
    log.append(entry).await.map_err(|error| {
        tracing::error!(error = %error, "audit append failed; the read is refused");
        Error::new(error.to_string()).extend_with(|_, e| e.set("code", "AUDIT_UNAVAILABLE"))
    })
}

/// A page of audit events.
struct AuditPage {
    events: Vec<AuditRecord>,
    more: bool,
}

fn audit_events_field() -> Field {
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
            .map_err(|e| Error::new(e.to_string()).extend_with(|_, x| x.set("code", "AUDIT_UNAVAILABLE")))?;
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

fn audit_event_type() -> Object {
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

/// The authenticated caller of this request.
pub(crate) fn caller<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>()
        .ok_or_else(|| Error::new("not authenticated").extend_with(|_, e| e.set("code", "UNAUTHENTICATED")))
}

/// Refuses the field unless the caller's role grants `operation`.
pub(crate) fn authorize(ctx: &ResolverContext<'_>, operation: Operation) -> async_graphql::Result<()> {
    let caller = caller(ctx)?;
    if caller.role.may(operation) {
        Ok(())
    } else {
        let message = format!(
            "role `{}` does not grant `{}`",
            caller.role.name,
            operation.as_str()
        );
        Err(Error::new(message).extend_with(move |_, e| {
            e.set("code", "FORBIDDEN");
            e.set("operation", operation.as_str());
        }))
    }
}

fn category_error(caller: &Caller, category: &subject_connectors::DataCategory) -> Error {
    let category = category.to_string();
    Error::new(format!(
        "role `{}` is not granted data category `{category}`",
        caller.role.name
    ))
    .extend_with(move |_, e| {
        e.set("code", "CATEGORY_NOT_GRANTED");
        e.set("category", category.as_str());
    })
}

fn purpose_error(caller: &Caller, connector: &str) -> Error {
    let (purpose, connector) = (caller.purpose.to_string(), connector.to_owned());
    Error::new(format!(
        "connector `{connector}` does not serve the purpose `{purpose}`"
    ))
    .extend_with(move |_, e| {
        e.set("code", "PURPOSE_NOT_ALLOWED");
        e.set("connector", connector.as_str());
        e.set("purpose", purpose.as_str());
    })
}

/// Why `resolved` may not be shown to `caller`, if it may not: identities are data of their
/// kind's category, found in a store that serves some purposes only. What the caller gave is
/// always shown back.
fn identity_withheld(executor: &Executor, caller: &Caller, resolved: &ResolvedIdentity) -> Option<Error> {
    let IdentitySource::Entity(at) = resolved.source else {
        return None;
    };
    let registry = executor.registry();
    let descriptor = registry.connectors[at.connector].connector.descriptor();
    if !caller.purpose_served_by(descriptor.purposes.as_deref()) {
        return Some(purpose_error(caller, &descriptor.name));
    }
    let category = &registry.kinds.get(resolved.identity.kind).category;
    if !caller.role.sees(category) {
        return Some(category_error(caller, category));
    }
    None
}

/// The category a record's stored file falls in.
fn files_category() -> &'static subject_connectors::DataCategory {
    static CATEGORY: std::sync::OnceLock<subject_connectors::DataCategory> = std::sync::OnceLock::new();
    CATEGORY.get_or_init(|| {
        subject_connectors::DataCategory::parse("user.content")
            .unwrap_or_else(|_| unreachable!("a taxonomy key"))
    })
}

/// Reports `error` at the current field's path and resolves the (nullable) field to null.
/// (async-graphql's dynamic schema leaves the path off errors a resolver returns.)
fn null_with_error<'a>(ctx: &ResolverContext<'_>, error: Error) -> Option<FieldValue<'a>> {
    ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
    None
}

/// A record's file in object storage; its metadata is read once, when first asked for.
struct FileView {
    key: String,
    store: Arc<FileStore>,
    meta: tokio::sync::OnceCell<Result<Option<FileMeta>, ConnectorError>>,
}

impl FileView {
    async fn meta(&self) -> Result<Option<&FileMeta>, &ConnectorError> {
        self.meta
            .get_or_init(|| self.store.head(&self.key))
            .await
            .as_ref()
            .map(Option::as_ref)
    }
}

/// `files` on the record type of an entity whose records point to files.
fn files_field(
    connector: usize,
    key_template: String,
    entity: &subject_connectors::EntityDescriptor,
) -> Field {
    let names: Vec<String> = entity.fields.iter().map(|f| f.name.clone()).collect();
    Field::new("files", TypeRef::named_nn_list("StoredFile"), move |ctx| {
        ready((|| {
            let caller = caller(&ctx)?;
            if !caller.role.sees(files_category()) {
                return Ok(null_with_error(&ctx, category_error(caller, files_category())));
            }
            let executor = ctx.data::<Arc<Executor>>()?;
            let record = ctx.parent_value.try_downcast_ref::<Vec<Value>>()?;
            let Some(key) = file_key(&key_template, &names, record) else {
                return Ok(Some(FieldValue::list(Vec::<FieldValue>::new())));
            };
            let registered = &executor.registry().connectors[connector];
            let store = registered.storage.clone().ok_or_else(|| {
                Error::new(format!(
                    "connector `{}` has no file storage connected",
                    registered.connector.descriptor().name
                ))
                .extend_with(|_, e| e.set("code", "STORAGE_UNAVAILABLE"))
            })?;
            Ok(Some(FieldValue::list([FieldValue::owned_any(FileView {
                key,
                store,
                meta: tokio::sync::OnceCell::new(),
            })])))
        })())
    })
    .description("The file this record points to in object storage (declared `files.key`).")
}

/// A `StoredFile` field read from the file's metadata (null when the file is missing).
fn file_meta_field(name: &str, ty: TypeRef, get: fn(&FileMeta) -> GqlValue) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
            match view.meta().await {
                Ok(meta) => Ok(Some(FieldValue::value(meta.map_or(GqlValue::Null, get)))),
                Err(error) => Ok(null_with_error(&ctx, storage_error(error))),
            }
        })
    })
}

fn storage_error(error: &ConnectorError) -> Error {
    let code = error.code();
    Error::new(format!("file storage: {error}")).extend_with(move |_, e| e.set("code", code))
}

fn stored_file_type() -> Object {
    Object::new("StoredFile")
        .description("A file in object storage that a record points to.")
        .field(leaf::<FileView>("key", TypeRef::named_nn(TypeRef::STRING), |f| {
            GqlValue::String(f.key.clone())
        }))
        .field(
            Field::new("present", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                FieldFuture::new(async move {
                    let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
                    match view.meta().await {
                        Ok(meta) => Ok(Some(FieldValue::value(meta.is_some()))),
                        Err(error) => Err(storage_error(error)),
                    }
                })
            })
            .description("Whether the store holds a file under this key."),
        )
        .field(file_meta_field("size", TypeRef::named("Long"), |m| {
            GqlValue::from(m.size as i64)
        }))
        .field(file_meta_field(
            "contentType",
            TypeRef::named(TypeRef::STRING),
            |m| GqlValue::String(m.content_type.clone()),
        ))
        .field(file_meta_field(
            "lastModified",
            TypeRef::named(TypeRef::STRING),
            |m| {
                GqlValue::String(
                    m.last_modified
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                )
            },
        ))
        .field(
            Field::new("checksum", TypeRef::named(TypeRef::STRING), |ctx| {
                FieldFuture::new(async move {
                    let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
                    match view.store.checksum(&view.key).await {
                        Ok(sum) => Ok(Some(FieldValue::value(
                            sum.map_or(GqlValue::Null, GqlValue::String),
                        ))),
                        Err(error) => Ok(null_with_error(&ctx, storage_error(&error))),
                    }
                })
            })
            .description("SHA-256 of the file's bytes, in hex (reads the whole file)."),
        )
}

/// A synchronous resolver result as a `FieldFuture`.
fn ready<'a>(result: async_graphql::Result<Option<FieldValue<'a>>>) -> FieldFuture<'a> {
    match result {
        Ok(value) => FieldFuture::Value(value),
        Err(error) => FieldFuture::new(async move { Err::<Option<FieldValue<'a>>, _>(error) }),
    }
}

/// A field of a plain Rust struct parent: reads `T` and returns a GraphQL value.
fn leaf<T: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    get: impl Fn(&T) -> GqlValue + Send + Sync + 'static,
) -> Field {
    Field::new(name, ty, move |ctx| {
        ready(
            ctx.parent_value
                .try_downcast_ref::<T>()
                .map(|parent| Some(FieldValue::value(get(parent)))),
        )
    })
}

/// A field of an executor-indexed parent (`EntityAt`, `FieldAt`, …) that needs the registry.
fn indexed<T: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    get: impl Fn(&Executor, &T) -> GqlValue + Send + Sync + 'static,
) -> Field {
    Field::new(name, ty, move |ctx| {
        ready((|| {
            let executor = ctx.data::<Arc<Executor>>()?;
            let parent = ctx.parent_value.try_downcast_ref::<T>()?;
            Ok(Some(FieldValue::value(get(executor, parent))))
        })())
    })
}

fn enum_value(name: &str) -> GqlValue {
    GqlValue::Enum(Name::new(name))
}

fn opt_string(value: Option<&str>) -> GqlValue {
    value.map_or(GqlValue::Null, |s| GqlValue::String(s.to_owned()))
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

/// `ConnectorInfo`, `EntityInfo`, `FieldInfo`, `IdentityLinkInfo`, `ConnectorHealth`.
fn introspection_types() -> (Object, Object, Object, Object, Object) {
    use crate::registry::RegisteredConnector;
    let connector_info = Object::new("ConnectorInfo")
        .description("A registered connector.")
        .field(leaf::<RegisteredConnector>(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |c| GqlValue::String(c.connector.descriptor().name.clone()),
        ))
        .field(leaf::<RegisteredConnector>(
            "kind",
            TypeRef::named_nn(TypeRef::STRING),
            |c| GqlValue::String(c.connector.descriptor().kind.clone()),
        ))
        .field(leaf::<RegisteredConnector>(
            "description",
            TypeRef::named(TypeRef::STRING),
            |c| opt_string(c.connector.descriptor().description.as_deref()),
        ))
        .field(leaf::<RegisteredConnector>(
            "timeoutMs",
            TypeRef::named_nn(TypeRef::INT),
            |c| GqlValue::from(c.connector.descriptor().timeout.as_millis() as i64),
        ))
        .field(Field::new(
            "entities",
            TypeRef::named_nn_list_nn("EntityInfo"),
            |ctx| {
                ready((|| {
                    let executor = ctx.data::<Arc<Executor>>()?;
                    let parent = ctx.parent_value.try_downcast_ref::<RegisteredConnector>()?;
                    let c = executor
                        .registry()
                        .connectors
                        .iter()
                        .position(|r| std::ptr::eq(r, parent))
                        .ok_or_else(|| Error::new("internal: connector not registered"))?;
                    let count = parent.connector.descriptor().entities.len();
                    Ok(Some(FieldValue::list((0..count).map(|e| {
                        FieldValue::owned_any(EntityAt(EntityRef {
                            connector: c,
                            entity: e,
                        }))
                    }))))
                })())
            },
        ))
        .field(
            Field::new("health", TypeRef::named_nn("ConnectorHealth"), |ctx| {
                FieldFuture::new(async move {
                    let parent = ctx.parent_value.try_downcast_ref::<RegisteredConnector>()?;
                    let connector = parent.connector.clone();
                    let timeout = connector.descriptor().timeout;
                    let started = Instant::now();
                    let result = match tokio::time::timeout(timeout, connector.health()).await {
                        Ok(result) => result,
                        Err(_) => Err(ConnectorError::Timeout(timeout)),
                    };
                    Ok(Some(FieldValue::owned_any(HealthView {
                        up: result.is_ok(),
                        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                        error: result.err().map(|e| e.to_string()),
                    })))
                })
            })
            .description("Asks the store now, within the connector's timeout."),
        );
    let entity_info = Object::new("EntityInfo")
        .description("A table, collection or resource of a connector.")
        .field(indexed::<EntityAt>(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).name.clone()),
        ))
        .field(indexed::<EntityAt>(
            "graphqlField",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity_names(ex, at.0).field_name.clone()),
        ))
        .field(indexed::<EntityAt>(
            "graphqlType",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity_names(ex, at.0).type_name.clone()),
        ))
        .field(indexed::<EntityAt>(
            "source",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).source.clone()),
        ))
        .field(indexed::<EntityAt>(
            "description",
            TypeRef::named(TypeRef::STRING),
            |ex, at| opt_string(entity(ex, at.0).description.as_deref()),
        ))
        .field(links_field("lookups", false))
        .field(links_field("yields", true))
        .field(Field::new(
            "fields",
            TypeRef::named_nn_list_nn("FieldInfo"),
            |ctx| {
                ready((|| {
                    let executor = ctx.data::<Arc<Executor>>()?;
                    let at = *ctx.parent_value.try_downcast_ref::<EntityAt>()?;
                    let caller = caller(&ctx)?;
                    let fields = &entity(executor, at.0).fields;
                    Ok(Some(FieldValue::list(
                        (0..fields.len())
                            .filter(|&f| caller.role.sees(&fields[f].category))
                            .map(|f| FieldValue::owned_any(FieldAt(at.0, f))),
                    )))
                })())
            },
        ));
    let field_info = Object::new("FieldInfo")
        .description("A declared field and its data category.")
        .field(indexed::<FieldAt>(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).fields[at.1].name.clone()),
        ))
        .field(indexed::<FieldAt>(
            "graphqlField",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity_names(ex, at.0).field_names[at.1].clone()),
        ))
        .field(indexed::<FieldAt>(
            "type",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).fields[at.1].field_type.as_str().to_owned()),
        ))
        .field(indexed::<FieldAt>(
            "category",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).fields[at.1].category.to_string()),
        ))
        .field(indexed::<FieldAt>(
            "categoryName",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| GqlValue::String(entity(ex, at.0).fields[at.1].category.display_name().to_owned()),
        ))
        .field(indexed::<FieldAt>(
            "description",
            TypeRef::named(TypeRef::STRING),
            |ex, at| opt_string(entity(ex, at.0).fields[at.1].description.as_deref()),
        ));
    let link_info = Object::new("IdentityLinkInfo")
        .description("An identity kind and the field it is compared with or read from.")
        .field(indexed::<LinkAt>(
            "kind",
            TypeRef::named_nn("IdentityKind"),
            |ex, at| {
                let link = link(ex, *at);
                enum_value(&ex.registry().kinds.get(link.kind).graphql_name)
            },
        ))
        .field(indexed::<LinkAt>(
            "field",
            TypeRef::named_nn(TypeRef::STRING),
            |ex, at| {
                let link = link(ex, *at);
                GqlValue::String(entity(ex, at.0).fields[link.field].name.clone())
            },
        ));
    let health = Object::new("ConnectorHealth")
        .field(leaf::<HealthView>(
            "status",
            TypeRef::named_nn("HealthStatus"),
            |h| enum_value(if h.up { "UP" } else { "DOWN" }),
        ))
        .field(leaf::<HealthView>(
            "latencyMs",
            TypeRef::named_nn(TypeRef::FLOAT),
            |h| GqlValue::from(h.latency_ms),
        ))
        .field(leaf::<HealthView>(
            "error",
            TypeRef::named(TypeRef::STRING),
            |h| opt_string(h.error.as_deref()),
        ));
    (connector_info, entity_info, field_info, link_info, health)
}

fn links_field(name: &'static str, yields: bool) -> Field {
    Field::new(name, TypeRef::named_nn_list_nn("IdentityLinkInfo"), move |ctx| {
        ready((|| {
            let executor = ctx.data::<Arc<Executor>>()?;
            let at = *ctx.parent_value.try_downcast_ref::<EntityAt>()?;
            let descriptor = entity(executor, at.0);
            let count = if yields {
                descriptor.yields.len()
            } else {
                descriptor.lookups.len()
            };
            Ok(Some(FieldValue::list(
                (0..count).map(|l| FieldValue::owned_any(LinkAt(at.0, l, yields))),
            )))
        })())
    })
}

fn entity(executor: &Executor, at: EntityRef) -> &subject_connectors::EntityDescriptor {
    &executor.registry().connectors[at.connector]
        .connector
        .descriptor()
        .entities[at.entity]
}

fn entity_names(executor: &Executor, at: EntityRef) -> &crate::registry::RegisteredEntity {
    &executor.registry().connectors[at.connector].entities[at.entity]
}

fn link(executor: &Executor, at: LinkAt) -> subject_connectors::IdentityLink {
    let descriptor = entity(executor, at.0);
    if at.2 {
        descriptor.yields[at.1]
    } else {
        descriptor.lookups[at.1]
    }
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
