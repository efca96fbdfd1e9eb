//! The registry: identity kinds plus every registered connector, validated as a whole.
//!
//! Declared connectors and custom Rust connectors register the same way; cross-connector rules
//! (unique names, GraphQL names that do not collide, an identity graph every entity can be reached
//! through) are checked here, once, at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use heck::{ToLowerCamelCase, ToUpperCamelCase};
use subject_connectors::declaration::{DeclarationError, DeclarationErrors, Location};
use subject_connectors::storage::FileStore;
use subject_connectors::{Connector, IdentityKinds};

/// Where a connector was declared, for errors found after parsing.
#[derive(Debug, Clone)]
pub struct DeclarationOrigin {
    pub location: Location,
    /// One per entity, in the descriptor's order.
    pub entity_locations: Vec<Location>,
    /// Per entity, one per field, in the descriptor's order.
    pub field_locations: Vec<Vec<Location>>,
}

/// A connector to register: the connector, where it was declared, and the object storage its
/// records' files live in.
pub struct Registration {
    pub connector: Arc<dyn Connector>,
    pub origin: Option<DeclarationOrigin>,
    pub storage: Option<Arc<FileStore>>,
}

impl Registration {
    /// A connector registered from Rust, with no declaration and no file storage.
    pub fn custom(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            origin: None,
            storage: None,
        }
    }
}

/// One registered connector and its GraphQL names.
pub struct RegisteredConnector {
    pub connector: Arc<dyn Connector>,
    pub origin: Option<DeclarationOrigin>,
    /// Where the files of its entities' records live, when it has any.
    pub storage: Option<Arc<FileStore>>,
    /// Field on `Subject` (`accounts`).
    pub field_name: String,
    /// Object type (`Accounts`).
    pub type_name: String,
    pub entities: Vec<RegisteredEntity>,
}

/// GraphQL names of one entity and its fields.
pub struct RegisteredEntity {
    /// Field on the connector type (`users`).
    pub field_name: String,
    /// Record type (`AccountsUsers`).
    pub type_name: String,
    /// One per declared field (`fullName`).
    pub field_names: Vec<String>,
}

/// Identity kinds and connectors, validated together.
pub struct Registry {
    pub kinds: IdentityKinds,
    pub connectors: Vec<RegisteredConnector>,
}

/// Type and field names the gateway itself uses, which connectors cannot take.
const RESERVED_TYPES: &[&str] = &[
    "Query",
    "Mutation",
    "Subscription",
    "Subject",
    "ResolvedIdentity",
    "SourceStatus",
    "SourceState",
    "IdentityKind",
    "IdentityInput",
    "ConnectorInfo",
    "EntityInfo",
    "FieldInfo",
    "IdentityLinkInfo",
    "ConnectorHealth",
    "HealthStatus",
    "Long",
    "JSON",
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
];
const RESERVED_SUBJECT_FIELDS: &[&str] = &["identities", "sources"];

impl Registry {
    /// Validates `connectors` against each other and against `kinds`.
    pub fn new(kinds: IdentityKinds, connectors: Vec<Registration>) -> Result<Self, DeclarationErrors> {
        let mut errors = Vec::new();
        let mut registered = Vec::new();
        let mut connector_names: HashMap<String, Option<Location>> = HashMap::new();
        let mut type_names: HashMap<String, String> = HashMap::new();

        for Registration {
            connector,
            origin,
            storage,
        } in connectors
        {
            let descriptor = connector.descriptor();
            let here = |entity: Option<usize>| -> Location {
                let origin = origin.as_ref();
                entity
                    .and_then(|e| origin.and_then(|o| o.entity_locations.get(e).cloned()))
                    .or_else(|| origin.map(|o| o.location.clone()))
                    .unwrap_or_else(|| Location::file(format!("<connector {}>", descriptor.name).as_ref()))
            };
            let error = |location: Location, message: String| DeclarationError { location, message };

            if let Some(previous) = connector_names.insert(
                descriptor.name.clone(),
                origin.as_ref().map(|o| o.location.clone()),
            ) {
                let previously = previous
                    .map(|l| format!(" (also declared at {l})"))
                    .unwrap_or_default();
                errors.push(error(
                    here(None),
                    format!("connector name `{}` is taken{previously}", descriptor.name),
                ));
            }
            let field_name = descriptor.name.to_lower_camel_case();
            let type_name = descriptor.name.to_upper_camel_case();
            if RESERVED_SUBJECT_FIELDS.contains(&field_name.as_str()) {
                errors.push(error(
                    here(None),
                    format!(
                        "connector name `{}` is reserved by the gateway: choose another",
                        descriptor.name
                    ),
                ));
            }
            let mut claim =
                |name: &str, owner: String, location: Location, errors: &mut Vec<DeclarationError>| {
                    if RESERVED_TYPES.contains(&name) {
                        errors.push(error(
                            location,
                            format!("GraphQL type name `{name}` ({owner}) is reserved by the gateway"),
                        ));
                    } else if let Some(other) = type_names.insert(name.to_owned(), owner.clone()) {
                        errors.push(error(
                            location,
                            format!("GraphQL type name `{name}` of {owner} is also that of {other}"),
                        ));
                    }
                };
            claim(
                &type_name,
                format!("connector `{}`", descriptor.name),
                here(None),
                &mut errors,
            );

            let mut entities = Vec::new();
            let mut entity_fields: HashMap<String, String> = HashMap::new();
            for (e, entity) in descriptor.entities.iter().enumerate() {
                let entity_field = entity.name.to_lower_camel_case();
                if let Some(other) = entity_fields.insert(entity_field.clone(), entity.name.clone()) {
                    errors.push(error(
                        here(Some(e)),
                        format!(
                            "entities `{}` and `{other}` both become GraphQL field `{entity_field}`",
                            entity.name
                        ),
                    ));
                }
                let entity_type = format!("{type_name}{}", entity.name.to_upper_camel_case());
                claim(
                    &entity_type,
                    format!("entity `{}.{}`", descriptor.name, entity.name),
                    here(Some(e)),
                    &mut errors,
                );
                let mut field_names = Vec::new();
                let mut seen: HashMap<String, &str> = HashMap::new();
                for field in &entity.fields {
                    let graphql = field.name.to_lower_camel_case();
                    if let Some(other) = seen.insert(graphql.clone(), &field.name) {
                        errors.push(error(
                            here(Some(e)),
                            format!(
                                "fields `{}` and `{other}` of entity `{}` both become GraphQL field `{graphql}`",
                                field.name, entity.name
                            ),
                        ));
                    }
                    if graphql.starts_with("__") || graphql.is_empty() {
                        errors.push(error(
                            here(Some(e)),
                            format!("field `{}` has no valid GraphQL name", field.name),
                        ));
                    }
                    if graphql == "files" && entity.files.is_some() {
                        errors.push(error(
                            here(Some(e)),
                            format!(
                                "field `{}` of entity `{}` collides with its `files`",
                                field.name, entity.name
                            ),
                        ));
                    }
                    field_names.push(graphql);
                }
                entities.push(RegisteredEntity {
                    field_name: entity_field,
                    type_name: entity_type,
                    field_names,
                });
            }
            registered.push(RegisteredConnector {
                connector,
                origin,
                storage,
                field_name,
                type_name,
                entities,
            });
        }
        if errors.is_empty() {
            Ok(Self {
                kinds,
                connectors: registered,
            })
        } else {
            Err(DeclarationErrors(errors))
        }
    }

    /// Where an entity was declared, for messages.
    pub fn entity_location(&self, connector: usize, entity: usize) -> Location {
        let registered = &self.connectors[connector];
        registered
            .origin
            .as_ref()
            .and_then(|o| o.entity_locations.get(entity).cloned())
            .or_else(|| registered.origin.as_ref().map(|o| o.location.clone()))
            .unwrap_or_else(|| {
                Location::file(format!("<connector {}>", registered.connector.descriptor().name).as_ref())
            })
    }

    /// `connector.entity`, for messages.
    pub fn entity_label(&self, connector: usize, entity: usize) -> String {
        let descriptor = self.connectors[connector].connector.descriptor();
        format!("{}.{}", descriptor.name, descriptor.entities[entity].name)
    }
}
