//! The GraphQL schema, generated from the registry: it assembles the parts —
//! `Query.subject(s)` with one object type per connector and entity ([`crate::gql_subject`]),
//! stored files ([`crate::gql_files`]), `Query.connectors` ([`crate::gql_connectors`]),
//! `Query.auditEvents` ([`crate::gql_audit`]) and privacy requests ([`crate::privacy`]) — under the
//! limits of [`SchemaSettings`].

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, InputObject, InputValue, Object, Scalar, Schema, SchemaError, TypeRef,
};

use crate::gql_audit::{audit_event_page_type, audit_event_type, audit_events_field};
use crate::gql_connectors::{connectors_field, introspection_types};
use crate::gql_files::stored_file_type;
use crate::resolve::Executor;

pub use crate::gql_subject::SubjectBudget;

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

/// Builds the executable schema for `executor`'s registry.
pub fn build_schema(executor: Arc<Executor>, settings: SchemaSettings) -> Result<Schema, SchemaError> {
    let registry = executor.registry().clone();
    let mut builder = Schema::build("Query", Some("Mutation"), Some("Subscription"))
        .data(executor.clone())
        .register(Scalar::new("Long").description("A 64-bit integer, serialised as a JSON number."))
        .register(Scalar::new("JSON").description("A JSON document."));
    builder = builder
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity)
        .extension(crate::validated::CachedValidation);
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
        .register(stored_file_type())
        .register(audit_event_type())
        .register(audit_event_page_type())
        // webhooks: `redeliverWebhook` joins the privacy mutations (schema/src/webhooks.rs).
        // approval and manual tasks (schema/src/approval.rs, manual.rs) join them too.
        .register(crate::ops::mutation_fields(crate::manual::mutation_fields(
            crate::approval::mutation_fields(crate::webhooks::mutation_fields(crate::privacy::mutation())),
        )))
        .register(introspection_types().0)
        .register(introspection_types().1)
        .register(introspection_types().2)
        .register(introspection_types().3)
        .register(introspection_types().4);

    builder = crate::gql_subject::register(builder, &registry);
    let query = crate::gql_subject::query_fields(Object::new("Query"), settings.max_batch)
        .field(audit_events_field())
        .field(connectors_field());
    let query = crate::me::query_fields(crate::privacy::query_fields(query));
    // webhooks: `webhookDeliveries` and its types (schema/src/webhooks.rs).
    let query = crate::webhooks::query_fields(query);
    let builder = crate::webhooks::register(builder);
    let query = crate::manual::query_fields(query);
    let builder = crate::manual::register(builder);
    // retention: `retentionSchedule` and its types (schema/src/retention.rs).
    let query = crate::retention::query_fields(query);
    let builder = crate::retention::register(builder);
    // console: `privacyRequestCounts` (schema/src/console_api.rs).
    let query = crate::console_api::query_fields(query);
    let builder = crate::console_api::register(builder);
    // console: `connectorCheck`, `checkConnectors`, `auditVerification` (schema/src/ops.rs).
    let query = crate::ops::query_fields(query);
    let builder = crate::ops::register(builder);
    crate::me::register(crate::privacy::register(builder))
        .register(query)
        .finish()
}
