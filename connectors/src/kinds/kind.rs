//! What a store kind implements: [`StoreKind`] (its keys, its own validation, the names a
//! declaration's `kind` gives it) and [`StoreDeclaration`] (a validated declaration of it, built
//! into a live [`Connector`] from the environment), in the way vector builds a component from
//! its config type.
//!
//! The shared part of every declaration (entities, fields, lookups, yields, categories, erasure,
//! `[storage]`) is validated for the kind by `declaration::validate`; a kind checks only its own
//! keys.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use toml::Spanned;

use crate::connector::{Connector, ConnectorDescriptor, EntityDescriptor};
use crate::declaration::keys::{ConnectorDecl, DeclaredKeys, EntityDecl};
use crate::declaration::source::{DeclarationError, SourceFile};
use crate::identity::IdentityKinds;

/// Where `${VARIABLE}`s are read from when a connector is built.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One store kind. Implemented by a unit struct in the kind's folder and listed once in
/// `kinds/mod.rs`.
pub trait StoreKind: DeclaredKeys + Send + Sync + Sized + 'static {
    /// The `kind = "…"` values that select this kind; the first names it in messages
    /// (`` `table` is only for sql connectors ``).
    fn names(&self) -> &'static [&'static str];

    /// Whether the store can rewrite records in place, so that entities may declare
    /// `erasure.action = "mask"` or `"retain"` (which then need a `primary_key`).
    fn masks_in_place(&self) -> bool {
        true
    }

    /// Checks an entity's own keys and says where its records live (a table, a collection, a
    /// request path): the descriptor's `source`.
    fn entity_source(
        &self,
        file: &SourceFile,
        name: &Spanned<String>,
        entity: &EntityDecl<Self>,
        errors: &mut Vec<DeclarationError>,
    ) -> String;

    /// Checks the kind's own keys once the shared part is validated (`entities` are the
    /// validated descriptors, in declaration order) and returns how to build the connector,
    /// `None` when a problem was pushed onto `errors`.
    fn validate_store(
        &self,
        file: &SourceFile,
        decl: &ConnectorDecl<Self>,
        entities: &[EntityDescriptor],
        errors: &mut Vec<DeclarationError>,
    ) -> Option<Arc<dyn StoreDeclaration>>;
}

/// The kind's part of a validated declaration: how to reach the store, secrets still templates.
pub trait StoreDeclaration: fmt::Debug + Send + Sync {
    /// Builds the live connector: its `${VARIABLE}`s are read from `env` at once, the future
    /// (which borrows nothing) sets up the client. Start-up never waits for a store: one that
    /// is down shows up in `health` and `sources`.
    /// `kinds` are the declared identity kinds, for a connector that must tell a record of the
    /// person from one its store's search also returned.
    fn build(
        &self,
        descriptor: ConnectorDescriptor,
        env: Env<'_>,
        kinds: &IdentityKinds,
    ) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>>;
}

/// Why a connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A variable is not set, or a value from the environment is not what the declaration
    /// needs: reported with every other connector's.
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    /// The store kind refused the settings (the kind's own error, with its location).
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

impl BuildError {
    /// A kind's own build error.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Box::new(error))
    }
}

/// A connector built without waiting (nothing to resolve over the network), as the future
/// [`StoreDeclaration::build`] returns.
pub fn built_now<C: Connector>(
    built: Result<C, BuildError>,
) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>> {
    Box::pin(std::future::ready(
        built.map(|c| Arc::new(c) as Arc<dyn Connector>),
    ))
}
