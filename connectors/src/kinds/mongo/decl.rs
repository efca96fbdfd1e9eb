//! The MongoDB kind's declaration: `kind = "mongodb"`, a connection `url` and optionally the
//! `database`; per entity its `collection`; per field its dotted document `path`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::connector::{Compare, EntityDescriptor};
use crate::declaration::keys::{ConnectorDecl, DeclaredKeys, EntityDecl};
use crate::declaration::source::{DeclarationError, EnvTemplate, SourceFile, required_env_template};
use crate::kinds::kind::{StoreDeclaration, StoreKind};

/// The MongoDB store kind (and servers speaking its protocol).
#[derive(Debug, Clone, Copy)]
pub struct Mongo;

/// The keys a MongoDB connector file adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoKeys {
    /// Connection URL, as `${VARIABLE}` references to the environment.
    pub url: Option<Spanned<String>>,
    /// The database to use (default: the one the URL names).
    pub database: Option<Spanned<String>>,
}

/// The keys a MongoDB entity adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoEntityKeys {
    /// The collection. Defaults to the entity name.
    pub collection: Option<Spanned<String>>,
}

/// The keys a MongoDB field adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoFieldKeys {
    /// The dotted document path of the value, e.g. `exif.gps` (default: the field's name).
    pub path: Option<Spanned<String>>,
}

impl DeclaredKeys for Mongo {
    type Connector = MongoKeys;
    type Entity = MongoEntityKeys;
    type Field = MongoFieldKeys;
}

/// A validated MongoDB store: built by `MongoConnector::build` (`mod.rs`).
#[derive(Debug, Clone)]
pub struct MongoStore {
    pub url: EnvTemplate,
    /// The database; default: the one the URL names.
    pub database: Option<String>,
    /// Per entity, per field: the dotted document path.
    pub paths: Vec<Vec<String>>,
}

impl StoreKind for Mongo {
    fn names(&self) -> &'static [&'static str] {
        &["mongodb"]
    }

    fn entity_source(
        &self,
        file: &SourceFile,
        name: &Spanned<String>,
        entity: &EntityDecl<Self>,
        errors: &mut Vec<DeclarationError>,
    ) -> String {
        for link in entity.lookup.iter() {
            if link.compare == Compare::Lowercase {
                errors.push(file.error(
                    link.kind.span(),
                    "compare = \"lowercase\" is not available for mongodb: store the values normalised",
                ));
            }
        }
        if let Some(path) = entity.fields.values().filter_map(|f| f.store.path.as_ref()).find(|p| {
            p.get_ref().is_empty() || p.get_ref().starts_with('$') || p.get_ref().split('.').any(str::is_empty)
        }) {
            errors.push(file.error(
                path.span(),
                "a document path is dotted field names, e.g. `exif.gps`",
            ));
        }
        entity
            .store
            .collection
            .as_ref()
            .map_or_else(|| name.get_ref().clone(), |c| c.get_ref().clone())
    }

    fn validate_store(
        &self,
        file: &SourceFile,
        decl: &ConnectorDecl<Self>,
        _entities: &[EntityDescriptor],
        errors: &mut Vec<DeclarationError>,
    ) -> Option<Arc<dyn StoreDeclaration>> {
        let url = required_env_template(file, &decl.kind, "url", "SOME_DATABASE_URL", decl.store.url.as_ref(), errors)?;
        let paths = decl
            .entities
            .values()
            .map(|entity| {
                entity
                    .fields
                    .iter()
                    .map(|(name, field)| {
                        field
                            .store
                            .path
                            .as_ref()
                            .map_or_else(|| name.get_ref().clone(), |p| p.get_ref().clone())
                    })
                    .collect()
            })
            .collect();
        Some(Arc::new(MongoStore {
            url,
            database: decl.store.database.as_ref().map(|d| d.get_ref().clone()),
            paths,
        }))
    }
}
