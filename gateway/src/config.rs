//! `gateway.toml` and the connector files it points to: loading, validation, and building the
//! registry of live connectors from them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use indexmap::IndexMap;
use subject_connectors::DataCategory;
use subject_connectors::declaration::EnvTemplate;
use subject_connectors::purpose::DataUse;
use subject_schema::access::{Operation, Role};

use crate::audit::DbAuditLog;
use crate::auth::Authenticator;
use crate::keys::KeyStore;
use crate::requests::store::RequestStore;
use crate::requests::{PrivacyEngine, RequestSettings};
use serde::Deserialize;
use subject_connectors::connector::Disconnected;
use subject_connectors::declaration::{
    DeclarationError, DeclarationErrors, IdentityKindDecl, Location, SourceFile, ValidatedConnector,
    build_identity_kinds, load_connector_file,
};
use subject_connectors::storage::{FileStore, StorageBuildError};
use subject_connectors::{BuildError, Connector, IdentityKinds};
use subject_schema::{
    DeclarationOrigin, Registration, Registry, SchemaSettings, ServiceError, SubjectService,
};
use toml::Spanned;

/// `gateway.toml`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    #[serde(default = "default_connectors_dir")]
    connectors_dir: String,
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    resolution: ResolutionSettings,
    identities: IndexMap<Spanned<String>, IdentityKindDecl>,
    #[serde(default)]
    auth: AuthSettings,
    #[serde(default)]
    roles: IndexMap<Spanned<String>, RoleDecl>,
    #[serde(default)]
    requests: RequestSettings,
    /// webhooks: `[webhooks.NAME]` endpoints and `[webhook_delivery]`.
    #[serde(default)]
    webhooks: IndexMap<Spanned<String>, crate::webhooks::config::EndpointDecl>,
    #[serde(default)]
    webhook_delivery: crate::webhooks::config::DeliverySettings,
}

/// `[auth]`: where API keys are kept, and OIDC bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The gateway's state database (API keys): `sqlite://…` or `postgres://…`, or `${VARIABLE}`.
    pub state_url: String,
    pub oidc: Option<crate::auth::OidcSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            state_url: "sqlite://subject-gateway-state.db".into(),
            oidc: None,
        }
    }
}

/// `[roles.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDecl {
    operations: Vec<Operation>,
    /// fideslang data categories; a category grants its descendants.
    categories: Vec<Spanned<String>>,
    /// The purposes (fideslang data uses) a caller with this role may state.
    purposes: Vec<Spanned<String>>,
}

fn default_connectors_dir() -> String {
    "connectors".into()
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub graphiql: bool,
    /// The privacy operations console at `/console/` (default on; see `crate::console`).
    pub console: bool,
    pub introspection: bool,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// Deepest selection nesting a query may have.
    pub max_depth: usize,
    /// Most fields a query may select in all.
    pub max_complexity: usize,
    /// Most aliased fields a query may have.
    pub max_aliases: usize,
    /// Most directives a query may carry, with its fragments expanded.
    pub max_directives: usize,
    /// Most subjects one request may resolve in all (aliases × identities of `subjects`).
    pub max_subjects: usize,
    /// Largest answer, in bytes, once serialized; a larger one is replaced by an error.
    pub max_response_bytes: usize,
    /// Longest a request may take, in milliseconds, before it is answered 408.
    pub request_timeout_ms: u64,
    /// Longest a client may take to send a request's headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Most connections served at once; further ones are accepted and closed at once.
    pub max_connections: usize,
    /// Requests in flight at once per caller (API key, or OIDC subject); more are answered 429.
    pub per_caller_concurrency: u32,
    /// Requests per second per caller, sustained; more are answered 429 with `Retry-After`.
    pub per_caller_rate: u32,
    /// Requests per caller allowed in a burst above the sustained rate.
    pub per_caller_burst: u32,
    /// Serve HTTPS with these PEM files instead of plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Serve Prometheus metrics at `/metrics` (with credentials on the main listener).
    pub metrics: bool,
    /// Serve `/metrics` without credentials on this (internal) address instead.
    pub metrics_listen: Option<SocketAddr>,
}

/// `[server.tls]`: the certificate chain and private key, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let schema = SchemaSettings::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            graphiql: false,
            console: true,
            introspection: schema.introspection,
            max_body_bytes: 1024 * 1024,
            max_batch: schema.max_batch,
            max_depth: schema.max_depth,
            max_complexity: schema.max_complexity,
            max_aliases: schema.max_aliases,
            max_directives: schema.max_directives,
            max_subjects: schema.max_subjects,
            max_response_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 512,
            per_caller_concurrency: 32,
            per_caller_rate: 200,
            per_caller_burst: 400,
            tls: None,
            metrics: true,
            metrics_listen: None,
        }
    }
}

/// `[resolution]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolutionSettings {
    pub max_depth: usize,
}

impl Default for ResolutionSettings {
    fn default() -> Self {
        Self {
            max_depth: subject_schema::DEFAULT_MAX_DEPTH,
        }
    }
}

/// A loaded, validated configuration: settings, identity kinds and connector declarations.
/// Nothing is connected yet, and no environment variable has been read.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerSettings,
    pub resolution: ResolutionSettings,
    pub kinds: IdentityKinds,
    pub connectors: Vec<ValidatedConnector>,
    pub auth: AuthSettings,
    pub roles: HashMap<String, Arc<Role>>,
    pub requests: RequestSettings,
    /// webhooks: the endpoints (secrets not read yet) and delivery settings.
    pub webhooks: crate::webhooks::config::WebhookConfig,
}

/// Why a configuration could not be turned into a running service.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Declarations(#[from] DeclarationErrors),
    /// A store kind refused a connector's settings.
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Storage(#[from] StorageBuildError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl Config {
    /// Reads `gateway.toml` and every `*.toml` in its connectors directory (in name order).
    /// Reports every problem found, each with its file and line.
    pub fn load(path: &Path) -> Result<Self, DeclarationErrors> {
        let file = SourceFile::read(path)?;
        let gateway: GatewayFile = file.parse()?;
        let kinds = build_identity_kinds(&file, &gateway.identities)?;
        let roles = build_roles(&file, &gateway.roles)?;
        let webhooks = crate::webhooks::config::WebhookConfig::validate(
            &file,
            &gateway.webhooks,
            gateway.webhook_delivery,
        )?;
        let dir = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&gateway.connectors_dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|err| DeclarationError {
                location: Location::file(&dir),
                message: format!("cannot read the connectors directory: {err}"),
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let mut errors = Vec::new();
        let mut connectors = Vec::new();
        for file in &files {
            match load_connector_file(file, &kinds) {
                Ok(connector) => connectors.push(connector),
                Err(DeclarationErrors(mut found)) => errors.append(&mut found),
            }
        }
        if let Some(console) = gateway.auth.oidc.as_ref().and_then(|o| o.console.as_ref())
            && let Err(problem) = console.validate()
        {
            errors.push(DeclarationError {
                location: Location::file(path),
                message: format!("[auth.oidc.console]: {problem}"),
            });
        }
        if files.is_empty() {
            errors.push(DeclarationError {
                location: Location::file(&dir),
                message: "no connector declarations (*.toml) found".into(),
            });
        }
        if !errors.is_empty() {
            return Err(DeclarationErrors(errors));
        }
        Ok(Self {
            path: path.to_owned(),
            server: gateway.server,
            resolution: gateway.resolution,
            kinds,
            connectors,
            auth: gateway.auth,
            roles,
            requests: gateway.requests,
            webhooks,
        })
    }

    /// The state database's URL, `${VARIABLE}`s resolved from `env`.
    pub fn state_url(&self, env: impl Fn(&str) -> Option<String>) -> Result<String, DeclarationError> {
        use secrecy::ExposeSecret;
        let template = EnvTemplate {
            template: self.auth.state_url.clone(),
            location: Location::file(&self.path),
        };
        Ok(template.resolve(env)?.expose_secret().to_owned())
    }

    /// Opens the API key store in the state database.
    pub async fn key_store(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<KeyStore> {
        let url = self.state_url(env)?;
        Ok(KeyStore::open(&url).await?)
    }

    /// The audit trail in the state database.
    /// The audit trail in the state database; its events are MACed with the chain key from
    /// `SUBJECT_GATEWAY_AUDIT_KEY` / `SUBJECT_GATEWAY_AUDIT_KEY_FILE` in `env`, when set.
    pub async fn audit_log(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Arc<DbAuditLog>> {
        let chain_key = crate::audit::chain_key_from_env(&env)?;
        let keys = self.key_store(env).await?;
        Ok(Arc::new(
            DbAuditLog::open(keys.pool().clone())
                .await?
                .with_chain_key(chain_key),
        ))
    }

    /// The privacy-request engine over the state database (its worker not started yet). The
    /// pseudonym key is read from `SUBJECT_GATEWAY_PSEUDONYM_KEY` in `env`.
    pub async fn privacy_engine(
        &self,
        env: impl Fn(&str) -> Option<String>,
        service: &SubjectService,
        audit: Arc<DbAuditLog>,
    ) -> anyhow::Result<Arc<PrivacyEngine>> {
        // manual systems: their tasks go to a declared role, or nobody could complete them.
        for registered in &service.executor.registry().connectors {
            if let Some(manual) = registered.connector.manual()
                && !self.roles.contains_key(&manual.role)
            {
                anyhow::bail!(
                    "connector `{}` assigns its manual tasks to role `{}`, which [roles] does not declare",
                    registered.connector.descriptor().name,
                    manual.role
                );
            }
        }
        let url = self.state_url(&env)?;
        let keys = KeyStore::open(&url).await?;
        let store = RequestStore::new(keys.pool().clone(), url.starts_with("postgres"));
        let exports_dir = self
            .path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&self.requests.exports_dir);
        // webhooks: their secrets are read here, so a missing one stops the start.
        let webhooks = crate::webhooks::Webhooks::new(
            &self.webhooks,
            &env,
            keys.pool().clone(),
            url.starts_with("postgres"),
            audit.clone(),
        )?;
        let engine = PrivacyEngine::new(
            service.executor.clone(),
            store,
            audit,
            self.requests.clone(),
            exports_dir,
            env("SUBJECT_GATEWAY_PSEUDONYM_KEY"),
        )
        .await?;
        engine.attach_webhooks(webhooks);
        Ok(engine)
    }

    /// The authenticator for the declared roles, API keys and OIDC settings.
    pub async fn authenticator(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Arc<Authenticator>> {
        let keys = self.key_store(env).await?;
        Ok(Arc::new(
            Authenticator::new(self.roles.clone(), keys, self.auth.oidc.clone()).await?,
        ))
    }

    fn schema_settings(&self) -> SchemaSettings {
        SchemaSettings {
            max_batch: self.server.max_batch,
            introspection: self.server.introspection,
            max_depth: self.server.max_depth,
            max_complexity: self.server.max_complexity,
            max_aliases: self.server.max_aliases,
            max_directives: self.server.max_directives,
            max_subjects: self.server.max_subjects,
        }
    }

    /// Builds the live connectors (URLs from `env`), plus any custom ones, into a service.
    pub async fn build_service(
        &self,
        env: impl Fn(&str) -> Option<String>,
        custom: Vec<Arc<dyn Connector>>,
    ) -> Result<SubjectService, ConfigError> {
        let mut connectors: Vec<Registration> = Vec::new();
        let mut errors = Vec::new();
        for validated in &self.connectors {
            let origin = origin(validated);
            // Each kind builds its own (the list is `subject_connectors::kinds::STORE_KINDS`).
            let built = match validated
                .store
                .build(validated.descriptor.clone(), &env, &self.kinds)
                .await
            {
                Ok(connector) => connector,
                Err(BuildError::Declaration(error)) => {
                    errors.push(error);
                    continue;
                }
                Err(other) => return Err(other.into()),
            };
            let storage = match &validated.storage {
                None => None,
                Some(templates) => match FileStore::build(templates, &env, validated.descriptor.timeout) {
                    Ok(store) => Some(Arc::new(store)),
                    Err(StorageBuildError::Declaration(error)) => {
                        errors.push(error);
                        continue;
                    }
                    Err(other) => return Err(other.into()),
                },
            };
            connectors.push(Registration {
                connector: built,
                origin: Some(origin),
                storage,
            });
        }
        if !errors.is_empty() {
            return Err(DeclarationErrors(errors).into());
        }
        connectors.extend(custom.into_iter().map(Registration::custom));
        self.finish(connectors)
    }

    /// A service whose connectors are not connected: for `schema`, which needs no secrets.
    pub fn build_offline_service(&self) -> Result<SubjectService, ConfigError> {
        let connectors = self
            .connectors
            .iter()
            .map(|validated| {
                let connector: Arc<dyn Connector> = Arc::new(Disconnected::new(validated.descriptor.clone()));
                Registration {
                    connector,
                    origin: Some(origin(validated)),
                    storage: None,
                }
            })
            .collect();
        self.finish(connectors)
    }

    fn finish(&self, connectors: Vec<Registration>) -> Result<SubjectService, ConfigError> {
        let registry = Registry::new(self.kinds.clone(), connectors)?;
        Ok(SubjectService::new(
            registry,
            self.resolution.max_depth,
            self.schema_settings(),
        )?)
    }
}

/// Validates the declared roles (categories and purposes from the Fides taxonomy).
fn build_roles(
    file: &SourceFile,
    declared: &IndexMap<Spanned<String>, RoleDecl>,
) -> Result<HashMap<String, Arc<Role>>, DeclarationErrors> {
    let mut errors = Vec::new();
    let mut roles = HashMap::new();
    for (name, decl) in declared {
        let categories = decl
            .categories
            .iter()
            .filter_map(|c| match DataCategory::parse(c.get_ref()) {
                Ok(category) => Some(category),
                Err(error) => {
                    errors.push(file.error(c.span(), error.to_string()));
                    None
                }
            })
            .collect();
        let purposes = decl
            .purposes
            .iter()
            .filter_map(|p| match DataUse::parse(p.get_ref()) {
                Ok(purpose) => Some(purpose),
                Err(error) => {
                    errors.push(file.error(p.span(), error.to_string()));
                    None
                }
            })
            .collect();
        roles.insert(
            name.get_ref().clone(),
            Arc::new(Role {
                name: name.get_ref().clone(),
                operations: decl.operations.clone(),
                categories,
                purposes,
            }),
        );
    }
    if errors.is_empty() {
        Ok(roles)
    } else {
        Err(DeclarationErrors(errors))
    }
}

fn origin(validated: &ValidatedConnector) -> DeclarationOrigin {
    DeclarationOrigin {
        location: validated.location.clone(),
        entity_locations: validated.entity_locations.clone(),
        field_locations: validated.field_locations.clone(),
    }
}

/// Reads variables from the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
