//! The SQL connector: PostgreSQL, MySQL/MariaDB and SQLite over sqlx.
//!
//! An entity is a table. One `fetch` is one parameterized query for all the values given,
//! whatever their number: `col = ANY($1)` with an array on PostgreSQL, an `IN (?, …)` list on
//! MySQL and SQLite (split past [`MAX_VALUES_PER_QUERY`]). Identifiers come only from validated
//! declarations and are quoted; values are only ever bound.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::connector::{
    Capabilities, Compare, Connector, ConnectorDescriptor, ConnectorError, EntityCheck, EntityDescriptor,
    ErasureRequest, FieldChange, LookupRequest, WriteOutcome,
};
use crate::declaration::source::{DeclarationError, Location};
use crate::kinds::kind::{BuildError, Env, StoreDeclaration, built_now};
use crate::identity::{IdentityKinds, IdentityValue};
use crate::connector::EntityErasure;
use crate::mask::Pseudonymizer;
use crate::value::{FieldType, Record, Value};

mod check;
pub mod decl;
mod decode;
mod erase;
mod inline;

use decode::{decode_mysql, decode_pg, decode_sqlite};

pub use decl::{Sql, SqlDialect, SqlStore};

/// Most values bound in one MySQL/SQLite query; larger batches are split (PostgreSQL binds one
/// array whatever its size).
pub const MAX_VALUES_PER_QUERY: usize = 10_000;

/// Why a SQL connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SqlBuildError {
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    #[error("{location}: the url's scheme does not name postgres, mysql or sqlite")]
    UnknownScheme { location: Location },
    #[error("{location}: the url is a {found} url but the connector is declared kind = \"{declared}\"")]
    DialectMismatch {
        location: Location,
        found: &'static str,
        declared: &'static str,
    },
    #[error("{location}: invalid connection url ({reason})")]
    InvalidUrl {
        location: Location,
        reason: String,
    },
}

enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// How one lookup's values are bound.
#[derive(Debug, Clone, Copy)]
enum BindAs {
    Text,
    Integer,
    Uuid,
}

struct LookupSql {
    /// The compared expression: `"email"` or `lower("email")`.
    expression: String,
    bind: BindAs,
}

struct EntitySql {
    /// `SELECT … FROM "table" WHERE `
    select_prefix: String,
    lookups: Vec<LookupSql>,
    /// The declared type of each selected column, in order.
    field_types: Vec<FieldType>,
}

/// A connector over one SQL database.
pub struct SqlConnector {
    descriptor: ConnectorDescriptor,
    dialect: SqlDialect,
    pool: Pool,
    entities: Vec<EntitySql>,
    /// SQLite only: lookups answered on the calling thread where SQLite searches an index.
    inline: Option<inline::InlineReader>,
    /// MySQL/MariaDB: per entity and lookup, whether a `compare = "lowercase"` lookup must
    /// lower-case the column in the query, because its collation is not case-insensitive
    /// (`utf8mb4_bin`, binary strings). Read from the store on first use.
    mysql_lowered: tokio::sync::OnceCell<Vec<Vec<bool>>>,
    /// Erasure blockers read from the catalogue (see `check.rs`).
    blockers: check::BlockerCache,
}

impl SqlConnector {
    /// Builds the connector and its (lazily connecting) pool, resolving the URL from `env`.
    /// Start-up never waits for a store: one that is down shows up in `health` and `sources`.
    pub fn build(
        store: &SqlStore,
        mut descriptor: ConnectorDescriptor,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SqlBuildError> {
        let SqlStore {
            dialect: declared_dialect,
            url: template,
            max_connections,
        } = store;
        let url: SecretString = template.resolve(env)?;
        let location = template.location.clone();
        let dialect =
            SqlDialect::from_url(url.expose_secret()).ok_or_else(|| SqlBuildError::UnknownScheme {
                location: location.clone(),
            })?;
        if let Some(declared) = *declared_dialect
            && declared != dialect
        {
            return Err(SqlBuildError::DialectMismatch {
                location,
                found: dialect.name(),
                declared: declared.name(),
            });
        }
        descriptor.kind = dialect.name().to_owned();
        let timeout = descriptor.timeout;
        let max = *max_connections;
        let invalid = |err: sqlx::Error| SqlBuildError::InvalidUrl {
            location: location.clone(),
            reason: describe_url_error(&err),
        };
        let mut inline = None;
        let pool = match dialect {
            SqlDialect::Postgres => {
                // The server abandons a statement the gateway has stopped waiting for.
                let options = PgConnectOptions::from_str(url.expose_secret())
                    .map_err(invalid)?
                    .options([("statement_timeout", format!("{}", timeout.as_millis().max(1)))]);
                Pool::Postgres(pool_options::<sqlx::Postgres>(max, timeout).connect_lazy_with(options))
            }
            SqlDialect::MySql => {
                let options = MySqlConnectOptions::from_str(url.expose_secret()).map_err(invalid)?;
                Pool::MySql(pool_options::<sqlx::MySql>(max, timeout).connect_lazy_with(options))
            }
            SqlDialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(url.expose_secret())
                    .map_err(invalid)?
                    .create_if_missing(false);
                inline = inline::InlineReader::for_file(options.get_filename(), url.expose_secret());
                Pool::Sqlite(pool_options::<sqlx::Sqlite>(max, timeout).connect_lazy_with(options))
            }
        };
        let entities = descriptor
            .entities
            .iter()
            .map(|entity| entity_sql(dialect, entity))
            .collect();
        Ok(Self {
            descriptor,
            dialect,
            pool,
            entities,
            inline,
            mysql_lowered: tokio::sync::OnceCell::new(),
            blockers: check::BlockerCache::default(),
        })
    }

    /// Which MySQL/MariaDB lowercase lookups need `LOWER()` in the query (see `mysql_lowered`).
    async fn mysql_lowered(&self) -> Result<&Vec<Vec<bool>>, ConnectorError> {
        let Pool::MySql(pool) = &self.pool else {
            return Err(ConnectorError::Other("not a MySQL connector".into()));
        };
        self.mysql_lowered
            .get_or_try_init(|| async {
                let mut lowered = Vec::with_capacity(self.descriptor.entities.len());
                for entity in &self.descriptor.entities {
                    let (schema, table) = match entity.source.split_once('.') {
                        Some((schema, table)) => (Some(schema), table),
                        None => (None, entity.source.as_str()),
                    };
                    let mut per_lookup = Vec::with_capacity(entity.lookups.len());
                    for lookup in &entity.lookups {
                        if lookup.compare != Compare::Lowercase {
                            per_lookup.push(false);
                            continue;
                        }
                        let collation: Option<Option<String>> = sqlx::query_scalar(
                            "SELECT CAST(collation_name AS CHAR) FROM information_schema.columns \
                             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ?",
                        )
                        .bind(schema)
                        .bind(table)
                        .bind(&entity.fields[lookup.field].name)
                        .fetch_optional(pool)
                        .await
                        .map_err(|e| self.store_error(e))?;
                        per_lookup.push(match collation {
                            // No such column: the query itself will say so.
                            None => false,
                            Some(collation) => !collation_ignores_case(collation.as_deref()),
                        });
                    }
                    lowered.push(per_lookup);
                }
                Ok(lowered)
            })
            .await
    }

    fn store_error(&self, err: sqlx::Error) -> ConnectorError {
        store_error(err, self.descriptor.timeout)
    }

    async fn run_lookup(
        &self,
        entity: usize,
        by: &[(usize, Vec<IdentityValue>)],
    ) -> Result<Vec<Record>, ConnectorError> {
        let sql = &self.entities[entity];
        let descriptor = &self.descriptor.entities[entity];
        // Keep only the values that can be bound to each lookup's column type: an identity that
        // is not a number can never equal an integer column, so it matches nothing.
        let mut bound: Vec<(usize, Bound)> = Vec::new();
        for (lookup, values) in by {
            let Some(lookup_sql) = sql.lookups.get(*lookup) else {
                continue;
            };
            let values = Bound::from_values(lookup_sql.bind, values);
            if !values.is_empty() {
                bound.push((*lookup, values));
            }
        }
        if bound.is_empty() {
            return Ok(Vec::new());
        }
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut query = sql.select_prefix.clone();
                for (n, (lookup, _)) in bound.iter().enumerate() {
                    if n > 0 {
                        query.push_str(" OR ");
                    }
                    query.push_str(&format!("{} = ANY(${})", sql.lookups[*lookup].expression, n + 1));
                }
                let mut q = crate::dynamic_sql::dynamic_query(query);
                for (_, values) in bound {
                    q = match values {
                        Bound::Text(v) => q.bind(v),
                        Bound::Integer(v) => q.bind(v),
                        Bound::Uuid(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(pool).await.map_err(|e| self.store_error(e))?;
                rows.iter().map(|row| decode_pg(row, descriptor)).collect()
            }
            Pool::MySql(_) | Pool::Sqlite(_) => {
                let lowered: &[bool] = if matches!(self.pool, Pool::MySql(_))
                    && descriptor.lookups.iter().any(|l| l.compare == Compare::Lowercase)
                {
                    self.mysql_lowered().await?.get(entity).map_or(&[], Vec::as_slice)
                } else {
                    &[]
                };
                let mut records = Vec::new();
                for chunk in chunks(&bound, MAX_VALUES_PER_QUERY) {
                    records.extend(self.run_in_list(sql, descriptor, &chunk, lowered).await?);
                }
                Ok(records)
            }
        }
    }

    /// One `IN (?, …)` query for MySQL or SQLite.
    async fn run_in_list(
        &self,
        sql: &EntitySql,
        descriptor: &EntityDescriptor,
        bound: &[(usize, Bound)],
        lowered: &[bool],
    ) -> Result<Vec<Record>, ConnectorError> {
        let mut query = sql.select_prefix.clone();
        for (n, (lookup, values)) in bound.iter().enumerate() {
            if n > 0 {
                query.push_str(" OR ");
            }
            if lowered.get(*lookup).copied().unwrap_or(false) {
                // A case-sensitive collation: compare lower-cased (no index serves this; `check`
                // says so).
                let column = quote(
                    self.dialect,
                    &descriptor.fields[descriptor.lookups[*lookup].field].name,
                );
                query.push_str(&format!("LOWER(CONVERT({column} USING utf8mb4))"));
            } else {
                query.push_str(&sql.lookups[*lookup].expression);
            }
            query.push_str(" IN (");
            for i in 0..values.len() {
                query.push_str(if i == 0 { "?" } else { ", ?" });
            }
            query.push(')');
        }
        macro_rules! bind_all {
            ($q:ident) => {{
                let mut q = $q;
                for (_, values) in bound {
                    match values {
                        Bound::Text(v) => {
                            for x in v {
                                q = q.bind(x.as_str());
                            }
                        }
                        Bound::Integer(v) => {
                            for x in v {
                                q = q.bind(*x);
                            }
                        }
                        Bound::Uuid(v) => {
                            for x in v {
                                q = q.bind(x.hyphenated().to_string());
                            }
                        }
                    }
                }
                q
            }};
        }
        match &self.pool {
            Pool::MySql(pool) => {
                let q = crate::dynamic_sql::dynamic_query::<sqlx::MySql>(query.as_str());
                let rows = bind_all!(q)
                    .fetch_all(pool)
                    .await
                    .map_err(|e| self.store_error(e))?;
                rows.iter().map(|row| decode_mysql(row, descriptor)).collect()
            }
            Pool::Sqlite(pool) => {
                if let Some(records) = self.read_inline(&query, bound, sql) {
                    return Ok(records);
                }
                let q = crate::dynamic_sql::dynamic_query::<sqlx::Sqlite>(query.as_str());
                let rows = bind_all!(q)
                    .fetch_all(pool)
                    .await
                    .map_err(|e| self.store_error(e))?;
                rows.iter().map(|row| decode_sqlite(row, descriptor)).collect()
            }
            Pool::Postgres(_) => Err(ConnectorError::Other(
                "IN-list queries are not used on PostgreSQL".into(),
            )),
        }
    }

    /// A SQLite lookup answered on this thread (see `inline.rs`); `None`: ask sqlx.
    fn read_inline(&self, query: &str, bound: &[(usize, Bound)], sql: &EntitySql) -> Option<Vec<Record>> {
        let inline = self.inline.as_ref()?;
        let mut params = Vec::new();
        for (_, values) in bound {
            match values {
                Bound::Text(v) => params.extend(v.iter().map(|x| inline::Param::Text(x))),
                Bound::Integer(v) => params.extend(v.iter().map(|x| inline::Param::Integer(*x))),
                Bound::Uuid(_) => return None,
            }
        }
        inline.read(query, &params, &sql.field_types)
    }
}

/// Whether a MySQL/MariaDB collation compares case-insensitively (`utf8mb4_general_ci`,
/// `utf8mb4_0900_ai_ci`); binary strings have none.
fn collation_ignores_case(collation: Option<&str>) -> bool {
    collation.is_some_and(|c| c.to_ascii_lowercase().ends_with("_ci"))
}

/// Whether a column of the store's type `column_type` can be read as `declared`. SQLite's types
/// are affinities, so only what would certainly fail is refused there.
fn type_fits(dialect: SqlDialect, declared: FieldType, column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    match (dialect, declared) {
        // PostgreSQL text fields are read through the type's output function, which every
        // type has (bytea as `\x…` hex, arrays as `{…}`, intervals as `1 day 02:00:00`).
        (SqlDialect::Postgres, FieldType::String) => true,
        // MySQL text fields are read as `CAST(… AS CHAR)`; bytes (BINARY, VARBINARY, BLOB, BIT)
        // and geometry are not text and are refused rather than read mangled.
        (SqlDialect::MySql, FieldType::String) => !any(&[
            "binary",
            "blob",
            "bit",
            "geometry",
            "point",
            "linestring",
            "polygon",
        ]),
        (SqlDialect::Sqlite, FieldType::String) => !any(&["blob"]),
        (SqlDialect::MySql, FieldType::Int | FieldType::Bigint) => any(&["int", "year"]),
        (_, FieldType::Int | FieldType::Bigint) => any(&["int"]),
        (SqlDialect::Sqlite, FieldType::Float) => any(&["real", "floa", "doub", "num", "dec", "int"]),
        (_, FieldType::Float) => any(&["real", "double", "float", "numeric", "decimal"]),
        (SqlDialect::Sqlite, _) => !any(&["blob"]),
        (_, FieldType::Decimal) => any(&["numeric", "decimal"]),
        (SqlDialect::Postgres, FieldType::Bool) => t == "boolean",
        (_, FieldType::Bool) => any(&["tinyint", "bit", "bool"]),
        (_, FieldType::Timestamp) => any(&["timestamp", "datetime"]),
        (_, FieldType::Date) => t == "date",
        (SqlDialect::Postgres, FieldType::Uuid) => any(&["uuid", "char", "text"]),
        // A BINARY(16) uuid is bytes, not text: refused rather than read mangled.
        (_, FieldType::Uuid) => any(&["char"]) && !any(&["binary"]),
        (SqlDialect::Postgres, FieldType::Json) => any(&["json"]),
        // MariaDB's JSON is LONGTEXT with a check.
        (_, FieldType::Json) => any(&["json", "text"]),
    }
}

fn pool_options<DB: sqlx::Database>(max: u32, timeout: Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
}

/// Values of one lookup, converted to the column's binding type.
enum Bound {
    Text(Vec<String>),
    Integer(Vec<i64>),
    Uuid(Vec<uuid::Uuid>),
}

impl Bound {
    fn from_values(bind: BindAs, values: &[IdentityValue]) -> Self {
        match bind {
            BindAs::Text => Bound::Text(values.iter().map(|v| v.expose().to_owned()).collect()),
            BindAs::Integer => {
                Bound::Integer(values.iter().filter_map(|v| v.expose().parse().ok()).collect())
            }
            BindAs::Uuid => Bound::Uuid(
                values
                    .iter()
                    .filter_map(|v| uuid::Uuid::parse_str(v.expose()).ok())
                    .collect(),
            ),
        }
    }

    fn len(&self) -> usize {
        match self {
            Bound::Text(v) => v.len(),
            Bound::Integer(v) => v.len(),
            Bound::Uuid(v) => v.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Bound::Text(v) => Bound::Text(v[range].to_vec()),
            Bound::Integer(v) => Bound::Integer(v[range].to_vec()),
            Bound::Uuid(v) => Bound::Uuid(v[range].to_vec()),
        }
    }
}

/// Splits lookups into groups of at most `max` bound values in all.
fn chunks(bound: &[(usize, Bound)], max: usize) -> Vec<Vec<(usize, Bound)>> {
    let total: usize = bound.iter().map(|(_, b)| b.len()).sum();
    if total <= max {
        return vec![bound.iter().map(|(l, b)| (*l, b.slice(0..b.len()))).collect()];
    }
    let mut out = Vec::new();
    for (lookup, values) in bound {
        let mut start = 0;
        while start < values.len() {
            let end = (start + max).min(values.len());
            out.push(vec![(*lookup, values.slice(start..end))]);
            start = end;
        }
    }
    out
}

fn quote(dialect: SqlDialect, identifier: &str) -> String {
    let q = if dialect == SqlDialect::MySql { '`' } else { '"' };
    identifier
        .split('.')
        .map(|part| format!("{q}{part}{q}"))
        .collect::<Vec<_>>()
        .join(".")
}

fn entity_sql(dialect: SqlDialect, entity: &EntityDescriptor) -> EntitySql {
    let columns: Vec<String> = entity
        .fields
        .iter()
        .map(|field| {
            let column = quote(dialect, &field.name);
            match (dialect, field.field_type) {
                // The type's own output function (`format('%s', …)`), as psql prints it: an
                // `inet` reads `192.0.2.17`, where `::text` would add `/32`.
                (SqlDialect::Postgres, FieldType::String) => {
                    format!("CASE WHEN {column} IS NULL THEN NULL ELSE format('%s', {column}) END")
                }
                (SqlDialect::Postgres, FieldType::Decimal | FieldType::Uuid) => format!("{column}::text"),
                (SqlDialect::Postgres, FieldType::Float) => format!("{column}::float8"),
                // Text in a binary collation (`utf8mb4_bin`) is flagged BINARY and would not
                // decode as a string; TIME, YEAR, SET, ENUM, DECIMAL read as MySQL prints them.
                (
                    SqlDialect::MySql,
                    FieldType::String | FieldType::Decimal | FieldType::Uuid | FieldType::Json,
                ) => {
                    format!("CAST({column} AS CHAR)")
                }
                // FLOAT, DOUBLE and DECIMAL all read as a DOUBLE.
                (SqlDialect::MySql, FieldType::Float) => format!("({column} + 0e0)"),
                (SqlDialect::Sqlite, FieldType::Decimal) => format!("CAST({column} AS TEXT)"),
                _ => column,
            }
        })
        .collect();
    let select_prefix = format!(
        "SELECT {} FROM {} WHERE ",
        columns.join(", "),
        quote(dialect, &entity.source)
    );
    let lookups = entity
        .lookups
        .iter()
        .map(|link| {
            let field = &entity.fields[link.field];
            let column = quote(dialect, &field.name);
            let expression = match (link.compare, dialect) {
                // MySQL/MariaDB compare with the column's collation, case-insensitive by default;
                // wrapping the column in lower() would defeat its index.
                (Compare::Lowercase, SqlDialect::Postgres | SqlDialect::Sqlite) => {
                    format!("lower({column})")
                }
                _ => column,
            };
            let bind = match field.field_type {
                FieldType::Int | FieldType::Bigint => BindAs::Integer,
                FieldType::Uuid if dialect == SqlDialect::Postgres => BindAs::Uuid,
                _ => BindAs::Text,
            };
            LookupSql { expression, bind }
        })
        .collect();
    EntitySql {
        select_prefix,
        lookups,
        field_types: entity.fields.iter().map(|f| f.field_type).collect(),
    }
}

/// Maps a driver error to a connector error without the driver's message, which may quote values.
/// `timeout` is the connector's: a statement the server cancelled for taking longer (PostgreSQL's
/// `statement_timeout`, SQLSTATE 57014) is a timeout, like one the gateway stopped waiting for.
fn store_error(err: sqlx::Error, timeout: Duration) -> ConnectorError {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            match code.as_deref() {
                Some("28P01" | "28000" | "1045") => ConnectorError::Unauthorized,
                Some("57014") => ConnectorError::Timeout(timeout),
                _ => ConnectorError::Query { code },
            }
        }
        sqlx::Error::PoolTimedOut => {
            ConnectorError::Unavailable("no connection to the store could be had in time".into())
        }
        sqlx::Error::PoolClosed => ConnectorError::Unavailable("the connection pool is closed".into()),
        sqlx::Error::Io(io) => ConnectorError::Unavailable(format!("i/o error: {}", io.kind())),
        sqlx::Error::Tls(_) => ConnectorError::Unavailable("TLS handshake failed".into()),
        sqlx::Error::Protocol(_) => ConnectorError::Unavailable("protocol error".into()),
        sqlx::Error::Configuration(_) => ConnectorError::Unavailable("invalid connection settings".into()),
        sqlx::Error::ColumnDecode { index, .. } => ConnectorError::Decode {
            field: index,
            expected: "the declared type",
        },
        _ => ConnectorError::Other("store error".into()),
    }
}

fn describe_url_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Configuration(_) => "it could not be parsed".into(),
        _ => "it was refused by the driver".into(),
    }
}


/// The first key of an index definition, normalised: `CREATE INDEX … ON users USING btree
/// (lower((email)::text))` gives `lower(email)`.
fn first_index_key(definition: &str) -> Option<String> {
    let lower = definition.to_ascii_lowercase();
    let start = lower.find(" on ")?;
    let open = start + lower[start..].find('(')?;
    let mut depth = 0usize;
    let mut end = None;
    for (i, c) in lower[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => {
                end = Some(open + i);
                break;
            }
            _ => {}
        }
    }
    Some(normalise_key(&lower[open + 1..end?]))
}

fn normalise_key(key: &str) -> String {
    let mut key = key
        .to_ascii_lowercase()
        .replace("::text", "")
        .replace("::character varying", "")
        .replace(['"', '`', ' '], "");
    for suffix in ["collatenocase", "asc", "desc"] {
        if let Some(stripped) = key.strip_suffix(suffix) {
            key = stripped.to_owned();
        }
    }
    // `lower((email))` -> `lower(email)`
    while key.contains("((") && key.contains("))") {
        key = key.replacen("((", "(", 1).replacen("))", ")", 1);
    }
    key
}


impl From<SqlBuildError> for BuildError {
    fn from(error: SqlBuildError) -> Self {
        match error {
            SqlBuildError::Declaration(error) => error.into(),
            other => BuildError::store(other),
        }
    }
}

impl StoreDeclaration for SqlStore {
    fn build(
        &self,
        descriptor: ConnectorDescriptor,
        env: Env<'_>,
        _kinds: &IdentityKinds,
    ) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>> {
        built_now(SqlConnector::build(self, descriptor, env).map_err(BuildError::from))
    }
}

#[async_trait]
impl Connector for SqlConnector {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        if request.entity >= self.entities.len() {
            return Err(ConnectorError::Other(format!("no entity #{}", request.entity)));
        }
        self.run_lookup(request.entity, &request.by).await
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        match &self.pool {
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Pool::MySql(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(|e| self.store_error(e))
    }

    /// Every entity checked against the catalogue concurrently (the pool bounds the connections),
    /// answered in declaration order.
    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        let mut checks = Vec::with_capacity(self.descriptor.entities.len());
        for entity in &self.descriptor.entities {
            checks.push(self.check_entity(entity));
        }
        futures::future::try_join_all(checks).await
    }

    async fn erasure_blockers(&self) -> Result<Vec<crate::connector::ErasureBlocker>, ConnectorError> {
        self.live_erasure_blockers().await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            erase: true,
            rectify: true,
            async_jobs: false,
        }
    }

    /// Deletes by primary key the records the lookup finds, or rewrites their masked fields one
    /// record at a time (pseudonyms are computed per value), in one transaction. Records already
    /// masked are left alone, so a repeat changes nothing.
    async fn erase(&self, request: &ErasureRequest) -> Result<WriteOutcome, ConnectorError> {
        let (statements, records) = self.erasure_statements(request).await?;
        self.execute_all(statements).await?;
        Ok(WriteOutcome::Done { records })
    }

    fn erases_atomically(&self) -> bool {
        true
    }

    /// Every entity's writes in one transaction: a failure on one (a constraint, a lost
    /// connection) leaves every one as it was.
    async fn erase_all(&self, requests: &[ErasureRequest]) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let mut statements = Vec::new();
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let (mut more, records) = self.erasure_statements(request).await?;
            statements.append(&mut more);
            outcomes.push(WriteOutcome::Done { records });
        }
        self.execute_all(statements).await?;
        Ok(outcomes)
    }

    async fn rectify(
        &self,
        lookup: &LookupRequest,
        changes: &[FieldChange],
    ) -> Result<WriteOutcome, ConnectorError> {
        self.rectify_records(lookup, changes).await
    }

    async fn fetch_keys(&self, entity: usize, keys: &[Value]) -> Result<Vec<Record>, ConnectorError> {
        self.records_by_key(entity, keys).await
    }

    async fn erase_keys(
        &self,
        entity: usize,
        keys: &[Value],
        action: &EntityErasure,
        pseudonyms: &Arc<Pseudonymizer>,
    ) -> Result<WriteOutcome, ConnectorError> {
        self.erase_by_key(entity, keys, action, pseudonyms).await
    }
}

#[cfg(test)]
mod tests;
