//! Declarations: identity kinds and connector files (`config/connectors/*.toml`), parsed with
//! their source positions and validated into descriptors.
//!
//! Every problem is reported as `file:line:column: message`. URLs and secrets are never written in
//! a declaration: they are `${VARIABLE}` references resolved from the environment when the
//! connector is built, so that parsing (for `schema`, `check`) needs no secrets at all.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::category::DataCategory;
use crate::connector::{Compare, ConnectorDescriptor, EntityDescriptor, FieldDescriptor, IdentityLink};
use crate::connector::{ErasureAction, ErasurePolicy, FieldErasure};
use crate::identity::{IdentityKindSpec, IdentityKinds, Normaliser, ValueFormat};
use crate::value::FieldType;

/// A declaration file's path and text, to turn byte spans into `line:column`.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<Self, DeclarationError> {
        let text = std::fs::read_to_string(path).map_err(|err| DeclarationError {
            location: Location::file(path),
            message: format!("cannot read file: {err}"),
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }

    pub fn location(&self, span: Range<usize>) -> Location {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            file: self.path.clone(),
            line: Some((line, column)),
        }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> DeclarationError {
        DeclarationError {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Deserialises the whole file, reporting TOML and shape errors at their position.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, DeclarationError> {
        toml::from_str(&self.text).map_err(|err| {
            let message = err.message().trim().to_owned();
            match err.span() {
                Some(span) => self.error(span, message),
                None => DeclarationError {
                    location: Location::file(&self.path),
                    message,
                },
            }
        })
    }
}

/// Where a declaration problem is: a file, and a line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<(usize, usize)>,
}

impl Location {
    pub fn file(path: &Path) -> Self {
        Self {
            file: path.to_owned(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One problem in a declaration.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{location}: {message}")]
pub struct DeclarationError {
    pub location: Location,
    pub message: String,
}

/// Every problem found in a set of declarations.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub struct DeclarationErrors(pub Vec<DeclarationError>);

impl fmt::Display for DeclarationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "{count} problem{} in the declarations:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl From<DeclarationError> for DeclarationErrors {
    fn from(error: DeclarationError) -> Self {
        Self(vec![error])
    }
}

// ---------------------------------------------------------------------------------------------
// Identity kinds
// ---------------------------------------------------------------------------------------------

/// The built-in value formats an identity kind can declare.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FormatDecl {
    #[default]
    Text,
    Email,
    Integer,
    Uuid,
}

/// `[identities.NAME]` in `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityKindDecl {
    pub description: Option<String>,
    /// Normalisers applied in order, e.g. `["trim", "lowercase"]`.
    #[serde(default = "default_normalisers")]
    pub normalise: Vec<Normaliser>,
    #[serde(default)]
    pub format: FormatDecl,
    /// A regular expression values must match (anchored), instead of `format`.
    pub pattern: Option<Spanned<String>>,
    /// Longest accepted value in bytes (default 256).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Whether callers may start a lookup from this kind (default true).
    #[serde(default = "yes")]
    pub input: bool,
    /// The fideslang data category of its values (default `user.contact.email` for
    /// `format = "email"`, `user.unique_id` otherwise): found identities of this kind are shown
    /// only to roles granted it.
    pub category: Option<Spanned<String>>,
}

fn default_normalisers() -> Vec<Normaliser> {
    vec![Normaliser::Trim]
}

fn default_max_length() -> usize {
    256
}

fn yes() -> bool {
    true
}

/// Validates the declared identity kinds into [`IdentityKinds`].
pub fn build_identity_kinds(
    file: &SourceFile,
    declared: &IndexMap<Spanned<String>, IdentityKindDecl>,
) -> Result<IdentityKinds, DeclarationErrors> {
    let mut kinds = IdentityKinds::default();
    let mut errors = Vec::new();
    if declared.is_empty() {
        errors.push(DeclarationError {
            location: Location::file(&file.path),
            message: "no identity kinds declared: add at least one `[identities.NAME]` table".into(),
        });
    }
    for (name, decl) in declared {
        if !is_snake_identifier(name.get_ref()) {
            errors.push(file.error(
                name.span(),
                format!(
                    "identity kind `{}` must be lower_snake_case (a-z, 0-9, _)",
                    name.get_ref()
                ),
            ));
            continue;
        }
        let format = match (&decl.pattern, decl.format) {
            (Some(pattern), _) => match regex::Regex::new(&format!("^(?:{})$", pattern.get_ref())) {
                Ok(re) => ValueFormat::Pattern(re),
                Err(err) => {
                    errors.push(file.error(pattern.span(), format!("invalid pattern: {err}")));
                    continue;
                }
            },
            (None, FormatDecl::Text) => ValueFormat::Text,
            (None, FormatDecl::Email) => ValueFormat::Email,
            (None, FormatDecl::Integer) => ValueFormat::Integer,
            (None, FormatDecl::Uuid) => ValueFormat::Uuid,
        };
        if decl.max_length == 0 {
            errors.push(file.error(name.span(), "max_length must be at least 1"));
            continue;
        }
        let category = match &decl.category {
            None => IdentityKindSpec::default_category(&format),
            Some(category) => match DataCategory::parse(category.get_ref()) {
                Ok(category) => category,
                Err(err) => {
                    errors.push(file.error(category.span(), err.to_string()));
                    continue;
                }
            },
        };
        kinds.push(IdentityKindSpec {
            name: name.get_ref().clone(),
            graphql_name: name.get_ref().to_uppercase(),
            description: decl.description.clone(),
            normalisers: decl.normalise.clone(),
            format,
            max_length: decl.max_length,
            accepted_as_input: decl.input,
            category,
        });
    }
    if errors.is_empty() {
        Ok(kinds)
    } else {
        Err(DeclarationErrors(errors))
    }
}

// ---------------------------------------------------------------------------------------------
// Connectors
// ---------------------------------------------------------------------------------------------

/// One connector file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDecl {
    /// Defaults to the file name without `.toml`.
    pub name: Option<Spanned<String>>,
    /// The store kind: `sql` (the dialect follows the URL's scheme), or `postgres`, `mysql`
    /// (also MariaDB) or `sqlite` to insist on one.
    pub kind: Spanned<String>,
    pub description: Option<String>,
    /// Connection URL, as `${VARIABLE}` references to the environment.
    pub url: Option<Spanned<String>>,
    /// Per-call timeout in milliseconds (default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most connections the pool opens (SQL; default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Object storage holding the files that records point to.
    pub storage: Option<Spanned<StorageDecl>>,
    /// The purposes (fideslang data uses) this store's data may serve; a request stating another
    /// purpose gets nothing from it. Unrestricted when absent.
    pub purposes: Option<Vec<Spanned<String>>>,
    /// The database to use (MongoDB; default: the one the URL names).
    pub database: Option<Spanned<String>>,
    /// Who receives this data (GDPR Art. 15(1)(c)); exported with the person's data.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// How long this data is kept (GDPR Art. 15(1)(d)).
    pub retention: Option<String>,
    /// Where this data comes from (GDPR Art. 15(1)(g)).
    pub source: Option<String>,
    /// Base URL of an HTTP API, as `${VARIABLE}` references (HTTP).
    pub base_url: Option<Spanned<String>>,
    /// Credentials sent with every request (HTTP).
    pub auth: Option<Spanned<crate::http::decl::AuthDecl>>,
    /// A harmless authenticated request `check` sends to prove the credentials (HTTP).
    pub health: Option<Spanned<crate::http::decl::HealthDecl>>,
    /// Most requests in flight at once (HTTP; default 4).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Retries of a request after 429, 5xx or a connection error (HTTP; default 5).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    pub entities: IndexMap<Spanned<String>, EntityDecl>,
}

fn default_max_concurrency() -> usize {
    4
}

fn default_max_retries() -> u32 {
    5
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_max_connections() -> u32 {
    8
}

/// `[entities.NAME]` of a connector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDecl {
    pub description: Option<String>,
    /// The table (SQL). Defaults to the entity name.
    pub table: Option<Spanned<String>>,
    /// The collection (MongoDB). Defaults to the entity name.
    pub collection: Option<Spanned<String>>,
    /// A field unique per record; lets resolution skip lookups it already answered.
    pub primary_key: Option<Spanned<String>>,
    /// Identity kinds that find records, and the field each is compared with.
    #[serde(default)]
    pub lookup: Vec<LinkDecl>,
    /// Identity kinds the records yield, and the field each is read from.
    #[serde(default)]
    pub yields: Vec<LinkDecl>,
    /// How a record names its file in the connector's `[storage]`: `{ key = "{storage_key}" }`.
    pub files: Option<Spanned<FilesDecl>>,
    /// How records are requested (HTTP).
    pub request: Option<Spanned<crate::http::decl::RequestDecl>>,
    /// How records are erased (HTTP): delete calls, two-step deletes, asynchronous jobs.
    pub erase: Option<Spanned<crate::http::decl::EraseDecl>>,
    /// What erasing a person does to the records: delete (default), mask, retain, cascade.
    pub erasure: Option<Spanned<ErasureDecl>>,
    /// The call that writes a corrected record (HTTP; rectification), e.g.
    /// `{ method = "PUT", path = "/users/{id}", body = { user = { email = "{email}" } } }`.
    pub update: Option<Spanned<crate::http::decl::CallDecl>>,
    /// The call that stops processing a person's records when they object to a purpose the
    /// connector serves (HTTP), e.g. an analytics opt-out.
    pub suppress: Option<Spanned<crate::http::decl::CallDecl>>,
    pub fields: IndexMap<Spanned<String>, FieldDecl>,
}

/// `[entities.NAME.erasure]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureDecl {
    /// `delete` (default), `mask` (rewrite the fields that declare `erasure`), `retain` (keep for a
    /// legal obligation, fields masked) or `cascade` (removed with entity `with`).
    #[serde(default = "default_erasure_action")]
    pub action: Spanned<String>,
    /// Why retained records are kept; required with `retain`.
    pub legal_basis: Option<String>,
    /// How long retained records are kept, in days; required with `retain`.
    pub retention_days: Option<u32>,
    /// The timestamp or date field retention counts from (default: the erasure).
    pub retain_from: Option<Spanned<String>>,
    /// Most records one person may match before an erasure stops and asks for an override.
    pub max_records: Option<u64>,
    /// The entity whose erasure removes these records (`cascade`).
    pub with: Option<Spanned<String>>,
}

fn default_erasure_action() -> Spanned<String> {
    Spanned::new(0..0, "delete".to_owned())
}

/// A field's `erasure`: `"null"`, `"pseudonymize"`, `"redact"`, `"keep"` or `{ redact = "…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldErasureDecl {
    Named(String),
    Redact { redact: String },
}

/// `{ kind = "email", field = "email", compare = "lowercase" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDecl {
    pub kind: Spanned<String>,
    pub field: Spanned<String>,
    #[serde(default)]
    pub compare: Compare,
}

/// `NAME = { type = "string", category = "user.contact.email" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub category: Spanned<String>,
    pub description: Option<String>,
    /// Where the value is in a record (HTTP: a JSON path such as `$.via.channel`; MongoDB: a
    /// dotted document path such as `exif.gps`; default: the key with the field's name).
    pub path: Option<Spanned<String>>,
    /// `lookup`: the value is the identity the record was requested for, not read from the
    /// record (HTTP resources that do not repeat their parent's id, e.g. ticket comments).
    pub from: Option<Spanned<FieldSource>>,
    /// What erasure does to the field when the entity is masked or retained.
    pub erasure: Option<Spanned<FieldErasureDecl>>,
    /// The subject attribute this field holds (`email`): `rectifySubject` corrects it here.
    pub rectify: Option<Spanned<String>>,
}

/// `[storage]`: where a connector's files live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageDecl {
    /// `file:///ABSOLUTE/PATH` or `s3://BUCKET[/PREFIX]`, as `${VARIABLE}` references.
    pub url: Spanned<String>,
    /// An S3-compatible endpoint (MinIO, moto, …), as `${VARIABLE}` references.
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<String>,
    pub access_key_id: Option<Spanned<String>>,
    pub secret_access_key: Option<Spanned<String>>,
    /// Allow a plain-HTTP endpoint (local test servers only).
    #[serde(default)]
    pub allow_http: bool,
}

/// `files = { key = "{storage_key}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesDecl {
    pub key: Spanned<String>,
}

/// Where an HTTP field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    Record,
    Lookup,
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
        let scheme = url.split_once(':')?.0;
        match scheme {
            "postgres" | "postgresql" => Some(SqlDialect::Postgres),
            "mysql" | "mariadb" => Some(SqlDialect::MySql),
            "sqlite" => Some(SqlDialect::Sqlite),
            _ => None,
        }
    }
}

/// A connector declaration that passed validation: its descriptor plus how to build it.
#[derive(Debug, Clone)]
pub struct ValidatedConnector {
    pub descriptor: ConnectorDescriptor,
    /// What kind of store it is and how to reach it.
    pub store: StoreDecl,
    /// Object storage for the files records point to.
    pub storage: Option<crate::storage::StorageTemplates>,
    /// Where the connector's name is declared, for errors found later (plan, schema).
    pub location: Location,
    /// Where each entity is declared, in the descriptor's entity order.
    pub entity_locations: Vec<Location>,
    /// Where each field is declared: per entity, per field, in the descriptor's order.
    pub field_locations: Vec<Vec<Location>>,
}

/// The built-in store kinds, as a declaration names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// `sql` (dialect from the URL) or a named dialect.
    Sql(Option<SqlDialect>),
    Mongo,
    Http,
}

impl StoreKind {
    fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "sql" => Some(StoreKind::Sql(None)),
            "mongodb" => Some(StoreKind::Mongo),
            "http" => Some(StoreKind::Http),
            other => SqlDialect::from_kind(other).map(|d| StoreKind::Sql(Some(d))),
        }
    }

    /// Whether a declaration key belongs to this kind.
    fn allows(self, key: &str) -> bool {
        match key {
            "url" => !matches!(self, StoreKind::Http),
            "base_url" | "auth" | "health" | "request" | "erase" | "update" | "suppress" | "from" => {
                self == StoreKind::Http
            }
            "database" | "collection" => self == StoreKind::Mongo,
            "table" => matches!(self, StoreKind::Sql(_)),
            "path" => matches!(self, StoreKind::Http | StoreKind::Mongo),
            _ => true,
        }
    }
}

/// The kind-specific part of a validated declaration.
#[derive(Debug, Clone)]
pub enum StoreDecl {
    Sql {
        /// The dialect the declaration insists on; `None` for `kind = "sql"` (follows the URL).
        dialect: Option<SqlDialect>,
        url: EnvTemplate,
        max_connections: u32,
    },
    Http(crate::http::decl::HttpStoreDecl),
    Mongo {
        url: EnvTemplate,
        /// The database; default: the one the URL names.
        database: Option<String>,
        /// Per entity, per field: the dotted document path.
        paths: Vec<Vec<String>>,
    },
}

/// A `${VARIABLE}` template (a URL, a token), resolved from the environment when the connector is
/// built.
#[derive(Debug, Clone)]
pub struct EnvTemplate {
    pub template: String,
    pub location: Location,
}

impl EnvTemplate {
    /// Substitutes every `${NAME}` from `lookup`. Fails, naming the variable, when one is unset.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<SecretString, DeclarationError> {
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.error("unterminated `${` in a template"));
            };
            let name = &after[..end];
            match lookup(name) {
                Some(value) if !value.is_empty() => out.push_str(&value),
                _ => {
                    return Err(self.error(format!(
                        "environment variable {name} is not set (needed by `{}`)",
                        self.template
                    )));
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(SecretString::from(out))
    }

    fn error(&self, message: impl Into<String>) -> DeclarationError {
        DeclarationError {
            location: self.location.clone(),
            message: message.into(),
        }
    }
}

/// Reads and validates one connector file against the declared identity kinds.
pub fn load_connector_file(
    path: &Path,
    kinds: &IdentityKinds,
) -> Result<ValidatedConnector, DeclarationErrors> {
    let file = SourceFile::read(path)?;
    let decl: ConnectorDecl = file.parse()?;
    validate_connector(&file, &decl, kinds)
}

/// Validates a parsed connector declaration. Collects every problem rather than the first.
pub fn validate_connector(
    file: &SourceFile,
    decl: &ConnectorDecl,
    kinds: &IdentityKinds,
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
    let store_kind = StoreKind::from_kind(decl.kind.get_ref());
    if store_kind.is_none() {
        errors.push(file.error(
            decl.kind.span(),
            format!(
                "unknown connector kind `{}`: expected sql, postgres, mysql, sqlite, mongodb or http (custom kinds are registered in Rust)",
                decl.kind.get_ref()
            ),
        ));
    }
    let store_kind = store_kind.unwrap_or(StoreKind::Sql(None));
    let misplaced: [(&str, &str, Option<Range<usize>>); 5] = [
        ("url", "sql or mongodb", decl.url.as_ref().map(Spanned::span)),
        ("base_url", "http", decl.base_url.as_ref().map(Spanned::span)),
        ("auth", "http", decl.auth.as_ref().map(Spanned::span)),
        ("health", "http", decl.health.as_ref().map(Spanned::span)),
        ("database", "mongodb", decl.database.as_ref().map(Spanned::span)),
    ];
    for (key, kinds_allowed, span) in misplaced {
        if !store_kind.allows(key) {
            only_for(file, kinds_allowed, key, span, &mut errors);
        }
    }
    let url = match (&store_kind, &decl.url) {
        (StoreKind::Http, _) => None,
        (_, None) => {
            errors.push(file.error(
                decl.kind.span(),
                "missing `url`: write url = \"${SOME_DATABASE_URL}\" and set that variable",
            ));
            None
        }
        (_, Some(url)) => env_template(file, url, &mut errors),
    };
    let storage = decl.storage.as_ref().and_then(|storage| {
        let st = storage.get_ref();
        let optional = |value: &Option<Spanned<String>>, errors: &mut Vec<DeclarationError>| {
            value.as_ref().and_then(|v| env_template(file, v, errors))
        };
        let endpoint = optional(&st.endpoint, &mut errors);
        let access_key_id = optional(&st.access_key_id, &mut errors);
        let secret_access_key = optional(&st.secret_access_key, &mut errors);
        env_template(file, &st.url, &mut errors).map(|url| crate::storage::StorageTemplates {
            url,
            endpoint,
            region: st.region.clone(),
            access_key_id,
            secret_access_key,
            allow_http: st.allow_http,
        })
    });
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
        if let Some(descriptor) = validate_entity(file, entity_name, entity, kinds, &store_kind, &mut errors)
        {
            entities.push(descriptor);
            entity_locations.push(file.location(entity_name.span()));
            field_locations.push(entity.fields.keys().map(|f| file.location(f.span())).collect());
        }
    }
    resolve_cascades(file, decl, &mut entities, &mut errors);
    let store = match store_kind {
        StoreKind::Http => {
            crate::http::decl::validate_store(file, decl, &entities, &mut errors).map(StoreDecl::Http)
        }
        StoreKind::Sql(dialect) => url.map(|url| StoreDecl::Sql {
            dialect,
            url,
            max_connections: decl.max_connections.max(1),
        }),
        StoreKind::Mongo => url.map(|url| StoreDecl::Mongo {
            url,
            database: decl.database.as_ref().map(|d| d.get_ref().clone()),
            paths: decl
                .entities
                .values()
                .map(|entity| {
                    entity
                        .fields
                        .iter()
                        .map(|(name, field)| {
                            field
                                .path
                                .as_ref()
                                .map_or_else(|| name.get_ref().clone(), |p| p.get_ref().clone())
                        })
                        .collect()
                })
                .collect(),
        }),
    };

    let purposes = decl.purposes.as_ref().map(|declared| {
        declared
            .iter()
            .filter_map(|p| match crate::purpose::DataUse::parse(p.get_ref()) {
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
            disclosure: crate::connector::Disclosure {
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

fn validate_entity(
    file: &SourceFile,
    name: &Spanned<String>,
    entity: &EntityDecl,
    kinds: &IdentityKinds,
    store_kind: &StoreKind,
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
    let is_http = *store_kind == StoreKind::Http;
    let misplaced: [(&str, &str, Option<Range<usize>>); 6] = [
        ("update", "http", entity.update.as_ref().map(Spanned::span)),
        ("suppress", "http", entity.suppress.as_ref().map(Spanned::span)),
        ("table", "sql", entity.table.as_ref().map(Spanned::span)),
        (
            "collection",
            "mongodb",
            entity.collection.as_ref().map(Spanned::span),
        ),
        ("request", "http", entity.request.as_ref().map(Spanned::span)),
        ("erase", "http", entity.erase.as_ref().map(Spanned::span)),
    ];
    for (key, kinds_allowed, span) in misplaced {
        if !store_kind.allows(key) {
            only_for(file, kinds_allowed, key, span, errors);
        }
    }
    for field in entity.fields.values() {
        if !store_kind.allows("path") {
            only_for(
                file,
                "http or mongodb",
                "path",
                field.path.as_ref().map(Spanned::span),
                errors,
            );
        }
        if !store_kind.allows("from") {
            only_for(
                file,
                "http",
                "from",
                field.from.as_ref().map(Spanned::span),
                errors,
            );
        }
    }
    if is_http && entity.request.is_none() {
        errors.push(file.error(
            name.span(),
            format!(
                "entity `{}` declares no request: add [entities.{}.request] with path and records",
                name.get_ref(),
                name.get_ref()
            ),
        ));
    }
    let source = match store_kind {
        StoreKind::Http => entity
            .request
            .as_ref()
            .map_or_else(String::new, |r| r.get_ref().path.get_ref().clone()),
        StoreKind::Mongo => entity
            .collection
            .as_ref()
            .map_or_else(|| name.get_ref().clone(), |c| c.get_ref().clone()),
        StoreKind::Sql(_) => entity
            .table
            .as_ref()
            .map_or_else(|| name.get_ref().clone(), |t| t.get_ref().clone()),
    };
    if matches!(store_kind, StoreKind::Sql(_)) && !is_sql_identifier(&source) {
        let span = entity.table.as_ref().map_or(name.span(), Spanned::span);
        errors.push(file.error(
            span,
            format!(
                "table `{source}` is not a plain SQL identifier (letters, digits, _; optionally schema.table)"
            ),
        ));
    }
    if *store_kind == StoreKind::Mongo {
        for link in entity.lookup.iter() {
            if link.compare == Compare::Lowercase {
                errors.push(file.error(
                    link.kind.span(),
                    "compare = \"lowercase\" is not available for mongodb: store the values normalised",
                ));
            }
        }
        if let Some(path) = entity.fields.values().filter_map(|f| f.path.as_ref()).find(|p| {
            p.get_ref().is_empty()
                || p.get_ref().starts_with('$')
                || p.get_ref().split('.').any(str::is_empty)
        }) {
            errors.push(file.error(
                path.span(),
                "a document path is dotted field names, e.g. `exif.gps`",
            ));
        }
    }
    if entity.fields.is_empty() {
        errors.push(file.error(
            name.span(),
            format!("entity `{}` declares no fields", name.get_ref()),
        ));
    }

    let erasure = erasure_policy(file, name, entity, store_kind, errors);
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
        for placeholder in crate::http::decl::placeholders(key) {
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
        crate::connector::FilesRef { key: key.clone() }
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
    if *store_kind != StoreKind::Http
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
fn erasure_policy(
    file: &SourceFile,
    name: &Spanned<String>,
    entity: &EntityDecl,
    store_kind: &StoreKind,
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
    if *store_kind == StoreKind::Http && matches!(action, ErasureAction::Mask | ErasureAction::Retain) {
        errors.push(file.error(
            decl.action.span(),
            "http entities are erased by their `erase` calls or with another entity (cascade), not masked",
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
    ErasurePolicy {
        action,
        legal_basis: decl.legal_basis.clone(),
        retention_days: decl.retention_days,
        retain_from,
        max_records: decl.max_records,
    }
}

/// A field's `erasure`, validated against its type and its entity's action.
fn field_erasure(
    file: &SourceFile,
    field_name: &Spanned<String>,
    field: &FieldDecl,
    policy: &ErasurePolicy,
    errors: &mut Vec<DeclarationError>,
) -> Option<FieldErasure> {
    let declared = field.erasure.as_ref()?;
    let erasure = match declared.get_ref() {
        FieldErasureDecl::Named(name) => match name.as_str() {
            "null" => FieldErasure::Null,
            "pseudonymize" => FieldErasure::Pseudonymize,
            "redact" => FieldErasure::Redact(crate::mask::DEFAULT_REDACTION.to_owned()),
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
fn resolve_cascades(
    file: &SourceFile,
    decl: &ConnectorDecl,
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

/// Reports `key` as misplaced when it is present in a connector of another kind.
fn only_for(
    file: &SourceFile,
    kind: &str,
    key: &str,
    span: Option<Range<usize>>,
    errors: &mut Vec<DeclarationError>,
) {
    if let Some(span) = span {
        errors.push(file.error(span, format!("`{key}` is only for {kind} connectors")));
    }
}

/// A `${VARIABLE}` template from a declaration, refused when it writes a secret or address in
/// the file.
pub(crate) fn env_template(
    file: &SourceFile,
    value: &Spanned<String>,
    errors: &mut Vec<DeclarationError>,
) -> Option<EnvTemplate> {
    if let Some(problem) = url_problem(value.get_ref()) {
        errors.push(file.error(value.span(), problem));
    }
    Some(EnvTemplate {
        template: value.get_ref().clone(),
        location: file.location(value.span()),
    })
}

/// Why a URL template is refused, if it is: credentials or a whole URL written in the file.
fn url_problem(url: &str) -> Option<String> {
    if !url.contains("${") {
        return Some(
            "this must come from the environment: write \"${SOME_VARIABLE}\" (secrets and addresses never live in declaration files)".into(),
        );
    }
    // A password written literally: `scheme://user:secret@…` outside any `${…}`.
    let literal: String = {
        let mut out = String::new();
        let mut rest = url;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => rest = &rest[start + end + 1..],
                None => return Some("unterminated `${` in a template".into()),
            }
        }
        out.push_str(rest);
        out
    };
    if let Some((_, after_scheme)) = literal.split_once("://") {
        let authority = after_scheme.split('/').next().unwrap_or("");
        if authority.contains('@') && authority.split('@').next().is_some_and(|u| u.contains(':')) {
            return Some("the url contains a literal password: take it from the environment".into());
        }
    }
    None
}

fn is_snake_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A column or table name that can be quoted safely: `[A-Za-z_][A-Za-z0-9_]*`, optionally
/// `schema.table`.
pub fn is_sql_identifier(name: &str) -> bool {
    let part_ok = |part: &str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && part.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| part_ok(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> IdentityKinds {
        let file = SourceFile {
            path: "gateway.toml".into(),
            text: String::new(),
        };
        let declared: IndexMap<Spanned<String>, IdentityKindDecl> = toml::from_str(
            r#"
            [email]
            normalise = ["trim", "lowercase"]
            format = "email"
            [user_id]
            format = "integer"
            "#,
        )
        .unwrap();
        build_identity_kinds(&file, &declared).unwrap()
    }

    fn validate(text: &str) -> Result<ValidatedConnector, DeclarationErrors> {
        let file = SourceFile {
            path: "config/connectors/accounts.toml".into(),
            text: text.into(),
        };
        let decl: ConnectorDecl = file.parse()?;
        validate_connector(&file, &decl, &kinds())
    }

    const GOOD: &str = r#"
kind = "postgres"
url = "${ACCOUNTS_DATABASE_URL}"

[entities.users]
lookup = [{ kind = "email", field = "email", compare = "lowercase" }]
yields = [{ kind = "user_id", field = "id" }]
primary_key = "id"

[entities.users.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
"#;

    #[test]
    fn a_good_declaration_validates() {
        let connector = validate(GOOD).unwrap();
        assert_eq!(connector.descriptor.name, "accounts");
        let users = &connector.descriptor.entities[0];
        assert_eq!(users.source, "users");
        assert_eq!(users.fields.len(), 2);
        assert_eq!(users.lookups[0].field, 1);
        assert_eq!(users.primary_key, Some(0));
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let bad = GOOD.replace("user.contact.email", "user.email");
        let err = validate(&bad).unwrap_err().to_string();
        assert!(err.contains("config/connectors/accounts.toml:12:"), "{err}");
        assert!(err.contains("unknown data category `user.email`"), "{err}");

        let bad = GOOD.replace("kind = \"email\"", "kind = \"phone\"");
        let err = validate(&bad).unwrap_err().to_string();
        assert!(
            err.contains("accounts.toml:6:") && err.contains("unknown identity kind `phone`"),
            "{err}"
        );

        let bad = GOOD.replace(
            "email = { type",
            "id = { type = \"string\", category = \"user.name\" }\nemail = { type",
        );
        let err = validate(&bad).unwrap_err().to_string();
        assert!(
            err.contains("accounts.toml:12:") && err.contains("duplicate key"),
            "{err}"
        );

        let bad = GOOD.replace("field = \"email\"", "field = \"mail\"");
        let err = validate(&bad).unwrap_err().to_string();
        assert!(err.contains("field `mail` is not declared"), "{err}");

        let bad = GOOD.replace("type = \"bigint\"", "type = \"bignum\"");
        let err = validate(&bad).unwrap_err().to_string();
        assert!(
            err.contains("accounts.toml:11:") && err.contains("bignum"),
            "{err}"
        );
    }

    #[test]
    fn urls_must_come_from_the_environment() {
        let bad = GOOD.replace("${ACCOUNTS_DATABASE_URL}", "postgres://app:hunter2@db/accounts");
        let err = validate(&bad).unwrap_err().to_string();
        assert!(err.contains("must come from the environment"), "{err}");
        assert!(!err.contains("hunter2") || err.contains("url"));

        let bad = GOOD.replace(
            "${ACCOUNTS_DATABASE_URL}",
            "postgres://app:hunter2@${DB_HOST}/accounts",
        );
        let err = validate(&bad).unwrap_err().to_string();
        assert!(err.contains("literal password"), "{err}");

        let connector = validate(GOOD).unwrap();
        let StoreDecl::Sql { url: template, .. } = connector.store else {
            panic!("an sql store")
        };
        let err = template.resolve(|_| None).unwrap_err().to_string();
        assert!(err.contains("ACCOUNTS_DATABASE_URL is not set"), "{err}");
        use secrecy::ExposeSecret;
        let url = template
            .resolve(|name| (name == "ACCOUNTS_DATABASE_URL").then(|| "postgres://db/a".to_owned()))
            .unwrap();
        assert_eq!(url.expose_secret(), "postgres://db/a");
    }

    #[test]
    fn erasure_declarations_are_checked() {
        let retained = GOOD.replace(
            "[entities.users.fields]",
            "[entities.users.erasure]\naction = \"retain\"\nlegal_basis = \"tax\"\nretention_days = 3650\nmax_records = 2\n\n[entities.users.fields]",
        )
        .replace(
            "email = { type = \"string\", category = \"user.contact.email\" }",
            "email = { type = \"string\", category = \"user.contact.email\", erasure = \"pseudonymize\", rectify = \"email\" }",
        );
        let connector = validate(&retained).unwrap();
        let users = &connector.descriptor.entities[0];
        assert_eq!(users.erasure.action, ErasureAction::Retain);
        assert_eq!(users.erasure.max_records, Some(2));
        assert_eq!(users.masked_fields(), vec![(1, FieldErasure::Pseudonymize)]);
        assert_eq!(users.fields[1].rectify.as_deref(), Some("email"));

        let cases = [
            (retained.replace("legal_basis = \"tax\"\n", ""), "legal_basis and retention_days"),
            (
                retained.replace("erasure = \"pseudonymize\"", "erasure = \"shred\""),
                "unknown field erasure `shred`",
            ),
            (
                GOOD.replace(
                    "id = { type = \"bigint\", category = \"user.unique_id\" }",
                    "id = { type = \"bigint\", category = \"user.unique_id\", erasure = \"pseudonymize\" }",
                ),
                "only string fields can hold a pseudonym",
            ),
            (
                GOOD.replace(
                    "[entities.users.fields]",
                    "[entities.users.erasure]\naction = \"cascade\"\nwith = \"nobody\"\n\n[entities.users.fields]",
                ),
                "`with` must name another entity",
            ),
            (retained.replace("action = \"retain\"", "action = \"forget\""), "unknown erasure action"),
            (
                retained.replace("retention_days = 3650", "retention_days = 3650\nretain_from = \"email\""),
                "retain_from must name a timestamp or date field",
            ),
            (
                GOOD.replace("category = \"user.unique_id\" }", "category = \"user.unique_id\", rectify = \"id\" }"),
                "only string fields can be rectified",
            ),
        ];
        for (text, expected) in cases {
            let err = validate(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
