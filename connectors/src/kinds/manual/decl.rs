//! The manual kind's declaration: `kind = "manual"`, the `role` its tasks are assigned to, and
//! per entity the `instructions` a person follows (`Search the archive boxes by email …`).
//! Fields, categories, lookups and erasure are the shared keys, as for every kind.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::connector::EntityDescriptor;
use crate::declaration::keys::{ConnectorDecl, DeclaredKeys, EntityDecl, NoKeys};
use crate::declaration::source::{DeclarationError, SourceFile};
use crate::kinds::kind::{StoreDeclaration, StoreKind};

/// A store with no API, worked on by hand.
#[derive(Debug, Clone, Copy)]
pub struct Manual;

/// The keys a manual connector file adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualKeys {
    /// The role (of gateway.toml's `[roles]`) the tasks are assigned to.
    pub role: Option<Spanned<String>>,
}

/// The keys a manual entity adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualEntityKeys {
    /// What a person does to find and act on the records (shown with every task).
    pub instructions: Option<Spanned<String>>,
}

impl DeclaredKeys for Manual {
    type Connector = ManualKeys;
    type Entity = ManualEntityKeys;
    type Field = NoKeys;
}

/// A validated manual store: its role and the instructions per entity.
#[derive(Debug, Clone)]
pub struct ManualStore {
    pub role: String,
    pub instructions: Vec<String>,
}

impl StoreKind for Manual {
    fn names(&self) -> &'static [&'static str] {
        &["manual"]
    }

    /// A person deletes; rewriting fields in place is not asked of them.
    fn masks_in_place(&self) -> bool {
        false
    }

    fn entity_source(
        &self,
        file: &SourceFile,
        name: &Spanned<String>,
        entity: &EntityDecl<Self>,
        errors: &mut Vec<DeclarationError>,
    ) -> String {
        match &entity.store.instructions {
            Some(text) if !text.get_ref().trim().is_empty() => {}
            Some(text) => errors.push(file.error(text.span(), "instructions: say what a person does")),
            None => errors.push(file.error(
                name.span(),
                format!(
                    "entity `{}` needs `instructions`: what a person does to find and act on its records",
                    name.get_ref()
                ),
            )),
        }
        format!("manual: {}", name.get_ref())
    }

    fn validate_store(
        &self,
        file: &SourceFile,
        decl: &ConnectorDecl<Self>,
        _entities: &[EntityDescriptor],
        errors: &mut Vec<DeclarationError>,
    ) -> Option<Arc<dyn StoreDeclaration>> {
        let role = match &decl.store.role {
            Some(role) if !role.get_ref().trim().is_empty() => role.get_ref().trim().to_owned(),
            Some(role) => {
                errors.push(file.error(role.span(), "role: name the role the tasks are assigned to"));
                return None;
            }
            None => {
                errors.push(file.error(
                    decl.kind.span(),
                    "a manual connector needs `role`: the role (of gateway.toml's [roles]) its tasks are assigned to",
                ));
                return None;
            }
        };
        let instructions = decl
            .entities
            .values()
            .map(|e| {
                e.store
                    .instructions
                    .as_ref()
                    .map(|i| i.get_ref().trim().to_owned())
                    .unwrap_or_default()
            })
            .collect();
        Some(Arc::new(ManualStore { role, instructions }))
    }
}
