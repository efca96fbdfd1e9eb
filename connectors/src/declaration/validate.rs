//! The shared half of validating a connector file, for every store kind: the connector's name,
//! unknown and misplaced keys, `[storage]`, purposes, and each entity's fields, categories,
//! lookups, yields, primary key, files and erasure. The kind checks its own keys through
//! [`StoreKind`]; the result is a [`ValidatedConnector`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::category::DataCategory;
use crate::connector::{AfterRetention, ErasureAction, ErasurePolicy, IdentityLink};
use crate::connector::{
    Compare, ConnectorDescriptor, Disclosure, EntityDescriptor, FieldDescriptor, FilesRef,
};
use crate::declaration::keys::{
    ConnectorDecl, EntityDecl, FieldDecl, FieldErasureDecl, Level, LinkDecl, UnknownKey,
};
use crate::declaration::keys::{fields_of, shared_keys};
use crate::declaration::source::{
    DeclarationError, DeclarationErrors, Location, SourceFile, is_snake_identifier, is_sql_identifier,
    placeholders,
};
use crate::identity::IdentityKinds;
use crate::kinds::kind::{StoreDeclaration, StoreKind};
use crate::mask::{DEFAULT_REDACTION, FieldErasure};
use crate::purpose::DataUse;
use crate::storage::decl::StorageTemplates;
use crate::value::FieldType;

/// A connector declaration that passed validation: its descriptor plus how to build it.
#[derive(Debug, Clone)]
pub struct ValidatedConnector {
    pub descriptor: ConnectorDescriptor,
    /// What kind of store it is and how to reach it.
    pub store: Arc<dyn StoreDeclaration>,
    /// Object storage for the files records point to.
    pub storage: Option<StorageTemplates>,
    /// Where the connector's name is declared, for errors found later (plan, schema).
    pub location: Location,
    /// Where each entity is declared, in the descriptor's entity order.
    pub entity_locations: Vec<Location>,
    /// Where each field is declared: per entity, per field, in the descriptor's order.
    pub field_locations: Vec<Vec<Location>>,
}

/// Which registered kinds declare a key at a level, by their names (for "`table` is only for
/// sql connectors").
pub type KeyOwners<'a> = &'a dyn Fn(Level, &str) -> Vec<&'static str>;

/// Reports keys no level of `K` declares: as belonging to another kind when one declares it
/// (at the value, as before), else as unknown (at the key), listing what the level accepts.
fn unknown_keys<K: StoreKind>(
    kind: &K,
    file: &SourceFile,
    level: Level,
    unknown: &[UnknownKey],
    owners: KeyOwners<'_>,
    errors: &mut Vec<DeclarationError>,
) {
    for key in unknown {
        let others = owners(level, &key.key);
        if others.is_empty() {
            let own = match level {
                Level::Connector => fields_of::<K::Connector>(),
                Level::Entity => fields_of::<K::Entity>(),
                Level::Field => fields_of::<K::Field>(),
            };
            let expected: Vec<String> = shared_keys(level)
                .iter()
                .chain(own)
                .map(|k| format!("`{k}`"))
                .collect();
            errors.push(file.error(
                key.key_span.clone(),
                format!(
                    "unknown field `{}`{} of a {} connector, expected one of {}",
                    key.key,
                    match level {
                        Level::Connector => "",
                        Level::Entity => " in an entity",
                        Level::Field => " in a field",
                    },
                    kind.names()[0],
                    expected.join(", ")
                ),
            ));
        } else {
            errors.push(file.error(
                key.value_span.clone(),
                format!("`{}` is only for {} connectors", key.key, others.join(" or ")),
            ));
        }
    }
}

/// Validates a parsed connector declaration of kind `K`. Collects every problem rather than
/// the first.
pub fn validate_connector<K: StoreKind>(
    kind: &K,
    file: &SourceFile,
    decl: &ConnectorDecl<K>,
    kinds: &IdentityKinds,
    owners: KeyOwners<'_>,
) -> Result<ValidatedConnector, DeclarationErrors> {
    let mut errors = Vec::new();
    let stem = file
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (name, name_span) = match &decl.name {
        Some(name) => (name.get_ref().clone(), name.span()),
        None => (stem, 0..0),
    };
    if !is_snake_identifier(&name) {
        errors.push(file.error(
            name_span.clone(),
            format!("connector name `{name}` must be lower_snake_case (a-z, 0-9, _)"),
        ));
    }
    unknown_keys(kind, file, Level::Connector, &decl.unknown, owners, &mut errors);
    for entity in decl.entities.values() {
        unknown_keys(kind, file, Level::Entity, &entity.unknown, owners, &mut errors);
        for field in entity.fields.values() {
            unknown_keys(kind, file, Level::Field, &field.unknown, owners, &mut errors);
        }
    }
    let storage = decl
        .storage
        .as_ref()
        .and_then(|storage| storage.get_ref().validate(file, &mut errors));
    for (entity_name, entity) in &decl.entities {
        if let (Some(files), None) = (&entity.files, &decl.storage) {
            errors.push(file.error(
                files.span(),
                format!(
                    "entity `{}` names files but the connector declares no [storage]",
                    entity_name.get_ref()
                ),
            ));
        }
    }
    if decl.timeout_ms == 0 {
        errors.push(file.error(decl.kind.span(), "timeout_ms must be at least 1"));
    }
    if decl.entities.is_empty() {
        errors.push(file.error(name_span.clone(), "a connector must declare at least one entity"));
    }

    let mut entities = Vec::new();
    let mut entity_locations = Vec::new();
    let mut field_locations = Vec::new();
    for (entity_name, entity) in &decl.entities {
        if let Some(descriptor) = validate_entity(kind, file, entity_name, entity, kinds, &mut errors) {
            entities.push(descriptor);
            entity_locations.push(file.location(entity_name.span()));
            field_locations.push(entity.fields.keys().map(|f| file.location(f.span())).collect());
        }
    }
    resolve_cascades(file, decl, &mut entities, &mut errors);
    let store = kind.validate_store(file, decl, &entities, &mut errors);

    let purposes = decl.purposes.as_ref().map(|declared| {
        declared
            .iter()
            .filter_map(|p| match DataUse::parse(p.get_ref()) {
                Ok(data_use) => Some(data_use),
                Err(error) => {
                    errors.push(file.error(p.span(), error.to_string()));
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let (false, Some(store)) = (!errors.is_empty(), store) else {
        return Err(DeclarationErrors(errors));
    };
    Ok(ValidatedConnector {
        descriptor: ConnectorDescriptor {
            name,
            kind: decl.kind.get_ref().clone(),
            description: decl.description.clone(),
            timeout: Duration::from_millis(decl.timeout_ms),
            purposes,
            disclosure: Disclosure {
                recipients: decl.recipients.clone(),
                retention: decl.retention.clone(),
                source: decl.source.clone(),
            },
            entities,
        },
        store,
        storage,
        location: file.location(name_span),
        entity_locations,
        field_locations,
    })
}

fn validate_entity<K: StoreKind>(
    kind: &K,
    file: &SourceFile,
    name: &Spanned<String>,
    entity: &EntityDecl<K>,
    kinds: &IdentityKinds,
    errors: &mut Vec<DeclarationError>,
) -> Option<EntityDescriptor> {
    let before = errors.len();
    if !is_snake_identifier(name.get_ref()) {
        errors.push(file.error(
            name.span(),
            format!(
                "entity name `{}` must be lower_snake_case (a-z, 0-9, _)",
                name.get_ref()
            ),
        ));
    }
    let source = kind.entity_source(file, name, entity, errors);
    if entity.fields.is_empty() {
        errors.push(file.error(
            name.span(),
            format!("entity `{}` declares no fields", name.get_ref()),
        ));
    }

    let erasure = erasure_policy(kind, file, name, entity, errors);
    let mut fields = Vec::new();
    for (field_name, field) in &entity.fields {
        if !is_sql_identifier(field_name.get_ref()) || field_name.get_ref().contains('.') {
            errors.push(file.error(
                field_name.span(),
                format!(
                    "field `{}` is not a plain column name (letters, digits, _)",
                    field_name.get_ref()
                ),
            ));
        }
        match DataCategory::parse(field.category.get_ref()) {
            Ok(category) => fields.push(FieldDescriptor {
                name: field_name.get_ref().clone(),
                field_type: field.field_type,
                category,
                description: field.description.clone(),
                erasure: field_erasure(file, field_name, field, &erasure, errors),
                rectify: field.rectify.as_ref().and_then(|r| {
                    if field.field_type != FieldType::String {
                        errors.push(file.error(r.span(), "only string fields can be rectified"));
                        None
                    } else if is_snake_identifier(r.get_ref()) {
                        Some(r.get_ref().clone())
                    } else {
                        errors.push(file.error(
                            r.span(),
                            "rectify names a subject attribute in lower_snake_case, e.g. \"email\"",
                        ));
                        None
                    }
                }),
            }),
            Err(err) => errors.push(file.error(field.category.span(), err.to_string())),
        }
    }
    let field_index = |field: &Spanned<String>, errors: &mut Vec<DeclarationError>| {
        let found = entity.fields.get_index_of(field.get_ref().as_str());
        if found.is_none() {
            errors.push(file.error(
                field.span(),
                format!(
                    "field `{}` is not declared in entity `{}` (declare it under [entities.{}.fields])",
                    field.get_ref(),
                    name.get_ref(),
                    name.get_ref()
                ),
            ));
        }
        found
    };
    let links = |declared: &[LinkDecl], role: &str, errors: &mut Vec<DeclarationError>| {
        let mut links = Vec::new();
        let mut seen = HashSet::new();
        for link in declared {
            let kind = kinds.by_name(link.kind.get_ref());
            if kind.is_none() {
                let known: Vec<_> = kinds.iter().map(|(_, spec)| spec.name.as_str()).collect();
                errors.push(file.error(
                    link.kind.span(),
                    format!(
                        "unknown identity kind `{}` (declared kinds: {})",
                        link.kind.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            let field = field_index(&link.field, errors);
            if let (Some(kind), Some(field)) = (kind, field) {
                let field_type = entity.fields[field].field_type;
                if !field_type.can_hold_identities() {
                    errors.push(file.error(
                        link.field.span(),
                        format!(
                            "field `{}` is of type {} and cannot hold identities (use string, int, bigint or uuid)",
                            link.field.get_ref(),
                            field_type.as_str()
                        ),
                    ));
                }
                if link.compare == Compare::Lowercase && field_type != FieldType::String {
                    errors
                        .push(file.error(link.field.span(), "compare = \"lowercase\" needs a string field"));
                }
                if !seen.insert((kind, field)) {
                    errors.push(file.error(
                        link.kind.span(),
                        format!(
                            "{role} `{}` on field `{}` is declared twice",
                            link.kind.get_ref(),
                            link.field.get_ref()
                        ),
                    ));
                }
                links.push(IdentityLink {
                    kind,
                    field,
                    compare: link.compare,
                });
            }
        }
        links
    };
    let lookups = links(&entity.lookup, "lookup", errors);
    let yields = links(&entity.yields, "yield", errors);
    if entity.lookup.is_empty() {
        errors.push(file.error(
            name.span(),
            format!(
                "entity `{}` declares no lookup: add lookup = [{{ kind = \"…\", field = \"…\" }}] so records can be found",
                name.get_ref()
            ),
        ));
    }
    let primary_key = entity.primary_key.as_ref().and_then(|pk| field_index(pk, errors));
    let files = entity.files.as_ref().map(|files| {
        let key = files.get_ref().key.get_ref();
        for placeholder in placeholders(key) {
            if !entity.fields.contains_key(placeholder) {
                errors.push(file.error(
                    files.get_ref().key.span(),
                    format!(
                        "placeholder `{{{placeholder}}}` names no declared field of `{}`",
                        name.get_ref()
                    ),
                ));
            }
        }
        FilesRef { key: key.clone() }
    });

    if matches!(erasure.action, ErasureAction::Mask | ErasureAction::Retain)
        && !fields
            .iter()
            .any(|f| f.erasure.as_ref().is_some_and(|e| *e != FieldErasure::Keep))
    {
        errors.push(file.error(
            name.span(),
            format!(
                "entity `{}` is masked or retained on erasure but no field declares erasure = \"null\" | \"pseudonymize\" | \"redact\"",
                name.get_ref()
            ),
        ));
    }
    if kind.masks_in_place()
        && matches!(erasure.action, ErasureAction::Mask | ErasureAction::Retain)
        && primary_key.is_none()
    {
        errors.push(file.error(
            name.span(),
            format!(
                "entity `{}` is masked on erasure: declare its primary_key",
                name.get_ref()
            ),
        ));
    }

    (errors.len() == before).then(|| EntityDescriptor {
        name: name.get_ref().clone(),
        description: entity.description.clone(),
        source,
        fields,
        lookups,
        yields,
        primary_key,
        files,
        erasure,
    })
}

/// The entity's `[erasure]` table, validated. `cascade` is resolved to an entity index later, by
/// [`resolve_cascades`], once every entity of the connector is known.
fn erasure_policy<K: StoreKind>(
    kind: &K,
    file: &SourceFile,
    name: &Spanned<String>,
    entity: &EntityDecl<K>,
    errors: &mut Vec<DeclarationError>,
) -> ErasurePolicy {
    let Some(declared) = &entity.erasure else {
        return ErasurePolicy::default();
    };
    let decl = declared.get_ref();
    let action = match decl.action.get_ref().as_str() {
        "delete" => ErasureAction::Delete,
        "mask" => ErasureAction::Mask,
        "retain" => ErasureAction::Retain,
        "cascade" => ErasureAction::Cascade(usize::MAX),
        other => {
            errors.push(file.error(
                decl.action.span(),
                format!("unknown erasure action `{other}`: expected delete, mask, retain or cascade"),
            ));
            ErasureAction::Delete
        }
    };
    if action == ErasureAction::Retain && (decl.legal_basis.is_none() || decl.retention_days.is_none()) {
        errors.push(file.error(
            declared.span(),
            "retained records need their legal_basis and retention_days",
        ));
    }
    if matches!(action, ErasureAction::Cascade(_)) != decl.with.is_some() {
        errors.push(file.error(
            declared.span(),
            "`with` names the entity whose erasure removes these records; it goes with action = \"cascade\" only",
        ));
    }
    if !kind.masks_in_place() && matches!(action, ErasureAction::Mask | ErasureAction::Retain) {
        errors.push(file.error(
            decl.action.span(),
            format!(
                "{} entities are erased by their `erase` calls or with another entity (cascade), not masked",
                kind.names()[0]
            ),
        ));
    }
    if decl.max_records == Some(0) {
        errors.push(file.error(declared.span(), "max_records must be at least 1"));
    }
    let retain_from = decl.retain_from.as_ref().and_then(|from| {
        let found = entity.fields.get_full(from.get_ref().as_str());
        match found {
            Some((index, _, field)) if matches!(field.field_type, FieldType::Timestamp | FieldType::Date) => {
                Some(index)
            }
            _ => {
                errors.push(file.error(
                    from.span(),
                    format!(
                        "retain_from must name a timestamp or date field of `{}`",
                        name.get_ref()
                    ),
                ));
                None
            }
        }
    });
    let after_retention = match &decl.after_retention {
        None => AfterRetention::Delete,
        Some(text) if action != ErasureAction::Retain => {
            errors.push(file.error(
                text.span(),
                "after_retention says what happens when a retention ends: it goes with action = \"retain\" only",
            ));
            AfterRetention::Delete
        }
        Some(text) => match text.get_ref().as_str() {
            "delete" => AfterRetention::Delete,
            "pseudonymize" => AfterRetention::Pseudonymize,
            other => {
                errors.push(file.error(
                    text.span(),
                    format!("unknown after_retention `{other}`: expected delete or pseudonymize"),
                ));
                AfterRetention::Delete
            }
        },
    };
    ErasurePolicy {
        action,
        after_retention,
        legal_basis: decl.legal_basis.clone(),
        retention_days: decl.retention_days,
        retain_from,
        max_records: decl.max_records,
    }
}

/// A field's `erasure`, validated against its type and its entity's action.
fn field_erasure<K: StoreKind>(
    file: &SourceFile,
    field_name: &Spanned<String>,
    field: &FieldDecl<K>,
    policy: &ErasurePolicy,
    errors: &mut Vec<DeclarationError>,
) -> Option<FieldErasure> {
    let declared = field.erasure.as_ref()?;
    let erasure = match declared.get_ref() {
        FieldErasureDecl::Named(name) => match name.as_str() {
            "null" => FieldErasure::Null,
            "pseudonymize" => FieldErasure::Pseudonymize,
            "redact" => FieldErasure::Redact(DEFAULT_REDACTION.to_owned()),
            "keep" => FieldErasure::Keep,
            other => {
                errors.push(file.error(
                    declared.span(),
                    format!("unknown field erasure `{other}`: expected null, pseudonymize, redact, keep or {{ redact = \"…\" }}"),
                ));
                return None;
            }
        },
        FieldErasureDecl::Redact { redact } => FieldErasure::Redact(redact.clone()),
    };
    if matches!(erasure, FieldErasure::Pseudonymize | FieldErasure::Redact(_))
        && field.field_type != FieldType::String
    {
        errors.push(file.error(
            declared.span(),
            format!(
                "field `{}` is of type {}: only string fields can hold a pseudonym or a redaction (use \"null\")",
                field_name.get_ref(),
                field.field_type.as_str()
            ),
        ));
    }
    if !matches!(policy.action, ErasureAction::Mask | ErasureAction::Retain) {
        errors.push(file.error(
            declared.span(),
            "a field's erasure applies when its entity is masked or retained: set [entities.NAME.erasure] action",
        ));
    }
    Some(erasure)
}

/// Turns `cascade` entities' `with` into the index of the entity that carries them.
fn resolve_cascades<K: StoreKind>(
    file: &SourceFile,
    decl: &ConnectorDecl<K>,
    entities: &mut [EntityDescriptor],
    errors: &mut Vec<DeclarationError>,
) {
    for (declared_name, entity) in &decl.entities {
        let Some(with) = entity.erasure.as_ref().and_then(|e| e.get_ref().with.as_ref()) else {
            continue;
        };
        let target = entities.iter().position(|e| e.name == *with.get_ref());
        match target {
            Some(t) if entities[t].name != *declared_name.get_ref() => {
                if let Some(own) = entities.iter_mut().find(|e| e.name == *declared_name.get_ref())
                    && matches!(own.erasure.action, ErasureAction::Cascade(_))
                {
                    own.erasure.action = ErasureAction::Cascade(t);
                }
            }
            _ => errors.push(file.error(
                with.span(),
                format!(
                    "`with` must name another entity of this connector, not `{}`",
                    with.get_ref()
                ),
            )),
        }
    }
}
