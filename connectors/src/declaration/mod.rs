//! Declarations: identity kinds (`gateway.toml`) and connector files
//! (`config/connectors/*.toml`), parsed with their source positions and validated into
//! descriptors.
//!
//! Every problem is reported as `file:line:column: message`. URLs and secrets are never written in
//! a declaration: they are `${VARIABLE}` references resolved from the environment when the
//! connector is built, so that parsing (for `schema`, `check`) needs no secrets at all.
//!
//! What every store kind shares lives here: `source.rs` (files, locations, errors, templates),
//! `identities.rs` (identity kinds), `keys.rs` (a connector file's shared keys, and how a kind's
//! own join them) and `validate.rs` (the shared validation). The kinds themselves are in
//! `crate::kinds`, which also reads a file (`load_connector_file`).

pub mod identities;
pub mod keys;
pub mod source;
pub mod validate;

pub use crate::kinds::sql::SqlDialect;
pub use crate::kinds::{load_connector, load_connector_file};
pub use crate::storage::decl::StorageDecl;
pub use identities::{FormatDecl, IdentityKindDecl, build_identity_kinds};
pub use keys::{ConnectorDecl, EntityDecl, FieldDecl};
pub use source::{DeclarationError, DeclarationErrors, EnvTemplate, Location, SourceFile, is_sql_identifier};
pub use validate::ValidatedConnector;

#[cfg(test)]
mod tests;
