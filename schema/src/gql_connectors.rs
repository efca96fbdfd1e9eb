//! What is registered, as the schema describes it: `Query.connectors` and the `ConnectorInfo`,
//! `EntityInfo`, `FieldInfo`, `IdentityLinkInfo` and `ConnectorHealth` types.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, TypeRef};
use async_graphql::{Error, Value as GqlValue};
use subject_connectors::ConnectorError;

use crate::access::Operation;
use crate::gql_support::{authorize, caller, enum_value, indexed, leaf, opt_string, ready};
use crate::plan::EntityRef;
use crate::resolve::Executor;

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

/// `Query.connectors`.
pub(crate) fn connectors_field() -> Field {
    Field::new("connectors", TypeRef::named_nn_list_nn("ConnectorInfo"), |ctx| {
        ready((|| {
            authorize(&ctx, Operation::ReadSubject)?;
            let executor = ctx.data::<Arc<Executor>>()?;
            let connectors = &executor.registry().connectors;
            Ok(Some(FieldValue::list(
                connectors.iter().map(|c| FieldValue::borrowed_any(c)),
            )))
        })())
    })
    .description("What is registered: connectors, their entities, fields and data categories, and health.")
}

/// `ConnectorInfo`, `EntityInfo`, `FieldInfo`, `IdentityLinkInfo`, `ConnectorHealth`.
pub(crate) fn introspection_types() -> (Object, Object, Object, Object, Object) {
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
        .field(
            leaf::<RegisteredConnector>("purposes", TypeRef::named_list(TypeRef::STRING), |c| {
                match &c.connector.descriptor().purposes {
                    Some(purposes) => {
                        GqlValue::List(purposes.iter().map(|p| GqlValue::String(p.to_string())).collect())
                    }
                    None => GqlValue::Null,
                }
            })
            .description("The purposes (fideslang data uses) its data may serve; null: not restricted."),
        )
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
