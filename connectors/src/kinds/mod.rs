//! The store kinds, each a folder here, and the one list that registers them: a declaration's
//! `kind = "…"` selects its entry, which parses the file into that kind's keys, validates it
//! (the shared part in `declaration::validate`, its own in the kind) and later builds it.
//!
//! Adding a kind: a folder beside `sql/` whose unit struct implements [`kind::StoreKind`] (and
//! whose validated declaration implements [`kind::StoreDeclaration`]), and one line in
//! `store_kinds!` below. `ARCHITECTURE.md` ("How to add a store kind") walks through it.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::declaration::keys::{ConnectorDecl, Level, fields_of};
use crate::declaration::source::{DeclarationErrors, SourceFile};
use crate::declaration::validate::{ValidatedConnector, validate_connector};
use crate::identity::IdentityKinds;
use kind::StoreKind;

pub mod kind;

/// Declares each kind's folder (`sql` is `sql/mod.rs`) and lists its kind in [`STORE_KINDS`],
/// in the order `kind` values are matched and messages name them.
macro_rules! store_kinds {
    ($($folder:ident :: $kind:ident),* $(,)?) => {
        $(pub mod $folder;)*

        /// Every registered store kind.
        pub static STORE_KINDS: &[&dyn RegisteredKind] = &[$(&$folder::$kind),*];
    };
}

store_kinds! {
    sql::Sql,
    mongo::Mongo,
    http::Http,
    manual::Manual,
}

/// A [`StoreKind`] as the registry holds it: its keys, and loading a file of its kind.
pub trait RegisteredKind: Send + Sync {
    /// The `kind = "…"` values that select it.
    fn names(&self) -> &'static [&'static str];
    /// Whether it declares `key` at `level`.
    fn declares(&self, level: Level, key: &str) -> bool;
    /// Parses `file` into this kind's keys and validates it.
    fn load(
        &self,
        file: &SourceFile,
        kinds: &IdentityKinds,
        owners: &dyn Fn(Level, &str) -> Vec<&'static str>,
    ) -> Result<ValidatedConnector, DeclarationErrors>;
}

impl<K: StoreKind> RegisteredKind for K {
    fn names(&self) -> &'static [&'static str] {
        StoreKind::names(self)
    }

    fn declares(&self, level: Level, key: &str) -> bool {
        let keys = match level {
            Level::Connector => fields_of::<K::Connector>(),
            Level::Entity => fields_of::<K::Entity>(),
            Level::Field => fields_of::<K::Field>(),
        };
        keys.contains(&key)
    }

    fn load(
        &self,
        file: &SourceFile,
        kinds: &IdentityKinds,
        owners: &dyn Fn(Level, &str) -> Vec<&'static str>,
    ) -> Result<ValidatedConnector, DeclarationErrors> {
        let decl: ConnectorDecl<K> = file.parse()?;
        validate_connector(self, file, &decl, kinds, owners)
    }
}

/// The registered kind a declaration's `kind` names.
pub fn kind_named(name: &str) -> Option<&'static dyn RegisteredKind> {
    STORE_KINDS
        .iter()
        .copied()
        .find(|kind| kind.names().contains(&name))
}

/// The kinds (by their first name) that declare `key` at `level`.
fn owners(level: Level, key: &str) -> Vec<&'static str> {
    STORE_KINDS
        .iter()
        .filter(|kind| kind.declares(level, key))
        .map(|kind| kind.names()[0])
        .collect()
}

/// Just the `kind` of a connector file, to choose how to read the rest.
#[derive(Deserialize)]
struct KindOnly {
    kind: Spanned<String>,
}

/// Parses and validates one connector file against the declared identity kinds.
pub fn load_connector(
    file: &SourceFile,
    kinds: &IdentityKinds,
) -> Result<ValidatedConnector, DeclarationErrors> {
    let KindOnly { kind } = file.parse()?;
    let Some(store_kind) = kind_named(kind.get_ref()) else {
        let names: Vec<&str> = STORE_KINDS
            .iter()
            .flat_map(|k| k.names().iter().copied())
            .collect();
        let message = format!(
            "unknown connector kind `{}`: expected one of {} (kinds are registered in connectors/src/kinds/)",
            kind.get_ref(),
            names.join(", ")
        );
        return Err(file.error(kind.span(), message).into());
    };
    store_kind.load(file, kinds, &owners)
}

/// Reads and validates one connector file against the declared identity kinds.
pub fn load_connector_file(
    path: &Path,
    kinds: &IdentityKinds,
) -> Result<ValidatedConnector, DeclarationErrors> {
    load_connector(&SourceFile::read(path)?, kinds)
}
