//! The SQL kind's declaration: `kind = "sql"` (the dialect follows the URL's scheme) or
//! `postgres`, `mysql` (also MariaDB) or `sqlite` to insist on one; a connection `url`, a pool
//! size, and per entity its `table`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::connector::EntityDescriptor;
use crate::declaration::keys::{ConnectorDecl, DeclaredKeys, EntityDecl, NoKeys};
use crate::declaration::source::{
    DeclarationError, EnvTemplate, SourceFile, is_sql_identifier, required_env_template,
};
use crate::kinds::kind::{StoreDeclaration, StoreKind};

/// The SQL store kind.
#[derive(Debug, Clone, Copy)]
pub struct Sql;

/// The keys a SQL connector file adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlKeys {
    /// Connection URL, as `${VARIABLE}` references to the environment.
    pub url: Option<Spanned<String>>,
    /// Most connections the pool opens (default 8).
    pub max_connections: Option<u32>,
}

/// The keys a SQL entity adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlEntityKeys {
    /// The table. Defaults to the entity name.
    pub table: Option<Spanned<String>>,
}

impl DeclaredKeys for Sql {
    type Connector = SqlKeys;
    type Entity = SqlEntityKeys;
    type Field = NoKeys;
}

/// The SQL dialects the built-in connector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Postgres,
    MySql,
    Sqlite,
}

impl SqlDialect {
    pub fn name(self) -> &'static str {
        match self {
            SqlDialect::Postgres => "postgres",
            SqlDialect::MySql => "mysql",
            SqlDialect::Sqlite => "sqlite",
        }
    }

    /// The dialect a declaration's `kind` insists on; `None` for `sql` (or anything else).
    fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "postgres" | "postgresql" => Some(SqlDialect::Postgres),
            "mysql" | "mariadb" => Some(SqlDialect::MySql),
            "sqlite" => Some(SqlDialect::Sqlite),
            _ => None,
        }
    }

    /// The dialect a connection URL speaks, from its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        Self::from_kind(url.split_once(':')?.0)
    }
}

/// A validated SQL store: built by `SqlConnector::build` (`mod.rs`).
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// The dialect the declaration insists on; `None` for `kind = "sql"` (follows the URL).
    pub dialect: Option<SqlDialect>,
    pub url: EnvTemplate,
    pub max_connections: u32,
}

impl StoreKind for Sql {
    fn names(&self) -> &'static [&'static str] {
        &["sql", "postgres", "postgresql", "mysql", "mariadb", "sqlite"]
    }

    fn entity_source(
        &self,
        file: &SourceFile,
        name: &Spanned<String>,
        entity: &EntityDecl<Self>,
        errors: &mut Vec<DeclarationError>,
    ) -> String {
        let table = &entity.store.table;
        let source = table
            .as_ref()
            .map_or_else(|| name.get_ref().clone(), |t| t.get_ref().clone());
        if !is_sql_identifier(&source) {
            let span = table.as_ref().map_or(name.span(), Spanned::span);
            errors.push(file.error(
                span,
                format!(
                    "table `{source}` is not a plain SQL identifier (letters, digits, _; optionally schema.table)"
                ),
            ));
        }
        source
    }

    fn validate_store(
        &self,
        file: &SourceFile,
        decl: &ConnectorDecl<Self>,
        _entities: &[EntityDescriptor],
        errors: &mut Vec<DeclarationError>,
    ) -> Option<Arc<dyn StoreDeclaration>> {
        let url = required_env_template(file, &decl.kind, "url", "SOME_DATABASE_URL", decl.store.url.as_ref(), errors)?;
        Some(Arc::new(SqlStore {
            dialect: SqlDialect::from_kind(decl.kind.get_ref()),
            url,
            max_connections: decl.store.max_connections.unwrap_or(8).max(1),
        }))
    }
}
