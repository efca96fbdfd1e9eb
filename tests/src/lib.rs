//! Test support: a fresh database per test on the real PostgreSQL and MariaDB servers, the
//! reference world seeded into them, and the gateway served on a real port.
//!
//! Servers are found at `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`) and
//! `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`). Each [`TestDatabase`] is dropped
//! when the value is, so tests run in parallel without seeing each other.

pub mod custom;
pub mod process;
pub mod snapshot;
pub mod statements;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value as Json;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use subject_connectors::Connector;
use subject_connectors::declaration::SqlDialect;
use subject_gateway::config::Config;
use subject_gateway::keys::KeyStore;
use subject_gateway::server;
use subject_gateway_demo::world::{self, Person};
use subject_schema::SubjectService;
use subject_schema::access::Caller;
use subject_test_servers::Running;
use subject_test_servers::analytics::{self, Analytics};
use subject_test_servers::helpdesk::{self, Helpdesk};
use tokio::task::JoinHandle;

/// The repository's `config/` directory.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn server_url(dialect: SqlDialect) -> String {
    match dialect {
        SqlDialect::Postgres => {
            std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        }
        SqlDialect::MySql => {
            std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
        }
        SqlDialect::Sqlite => String::new(),
    }
}

/// A URL onto the server's administrative database, for creating and dropping test databases.
fn admin_url(dialect: SqlDialect) -> String {
    match dialect {
        SqlDialect::Postgres => format!("{}/postgres", server_url(dialect)),
        _ => format!("{}/", server_url(dialect)),
    }
}

/// A benchmark's knob: the environment variable `name` as a number, else `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A copy of the repository's `config/` in a temporary directory, for tests that change it.
pub struct ConfigCopy {
    pub dir: tempfile::TempDir,
}

impl ConfigCopy {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("connectors"))?;
        std::fs::copy(config_dir().join("gateway.toml"), dir.path().join("gateway.toml"))?;
        for entry in std::fs::read_dir(config_dir().join("connectors"))? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.path().join("connectors").join(name))?;
            }
        }
        Ok(Self { dir })
    }

    pub fn gateway_toml(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// A copy for tests that kill a gateway process: its state database is a file in the copy
    /// (so a restarted process finds the work) and leases last 2 s (so the killed process's work
    /// is taken over soon).
    pub fn for_killed_gateways() -> anyhow::Result<Self> {
        let copy = Self::new()?;
        let state = copy.state_file();
        copy.edit(
            "gateway.toml",
            "state_url = \"sqlite://subject-gateway-state.db\"",
            &format!("state_url = \"sqlite://{}\"", state.display()),
        )?;
        copy.edit("gateway.toml", "lease_seconds = 30", "lease_seconds = 2")?;
        Ok(copy)
    }

    /// Where [`ConfigCopy::for_killed_gateways`] keeps the state database.
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Writes `connectors/NAME` with `text`.
    pub fn write_connector(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("connectors").join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Replaces `from` with `to` in the file at `relative` (which must contain it).
    pub fn edit(&self, relative: &str, from: &str, to: &str) -> anyhow::Result<()> {
        let path = self.dir.path().join(relative);
        let text = std::fs::read_to_string(&path)?;
        anyhow::ensure!(text.contains(from), "{relative} does not contain {from:?}");
        std::fs::write(&path, text.replace(from, to))?;
        Ok(())
    }
}

/// A database of its own for one test; removed on drop.
pub struct TestDatabase {
    pub dialect: SqlDialect,
    pub name: String,
    pub url: String,
    /// Keeps a SQLite file alive.
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(dialect: SqlDialect) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let name = format!("sg_test_{}", uuid::Uuid::new_v4().simple());
        match dialect {
            SqlDialect::Postgres | SqlDialect::MySql => {
                let admin = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url(dialect))
                    .await
                    .with_context(|| {
                        format!("connecting to {} (is it running? see README)", dialect.name())
                    })?;
                let create = match dialect {
                    SqlDialect::Postgres => format!("CREATE DATABASE \"{name}\""),
                    _ => format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
                };
                subject_connectors::dynamic_sql::dynamic_query(&create)
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok(Self {
                    dialect,
                    url: format!("{}/{name}", server_url(dialect)),
                    name,
                    _dir: None,
                })
            }
            SqlDialect::Sqlite => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join(format!("{name}.db"));
                let url = format!("sqlite://{}", path.display());
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&format!("{url}?mode=rwc"))
                    .await?;
                pool.close().await;
                Ok(Self {
                    dialect,
                    name,
                    url,
                    _dir: Some(dir),
                })
            }
        }
    }

    /// A pool onto this database, for setting it up and inspecting it.
    pub async fn pool(&self) -> anyhow::Result<AnyPool> {
        Ok(AnyPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await?)
    }

    /// Creates the reference world's `database` (`accounts` or `billing`) tables and seeds `people`.
    pub async fn seed(&self, database: &str, people: &[Person]) -> anyhow::Result<()> {
        let pool = self.pool().await?;
        world::create_schema(&pool, world::ddl(self.dialect, database)).await?;
        if database == "accounts" {
            world::seed_accounts(&pool, self.dialect, people).await?;
        } else {
            world::seed_billing(&pool, self.dialect, people).await?;
        }
        pool.close().await;
        Ok(())
    }

    /// A digest of every row of `tables` (row count and a checksum of all values), to prove that
    /// a test changed nothing.
    pub async fn fingerprint(&self, tables: &[&str]) -> anyhow::Result<String> {
        let mut out = String::new();
        match self.dialect {
            SqlDialect::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await?;
                for table in tables {
                    let (count, digest): (i64, Option<String>) =
                        subject_connectors::dynamic_sql::dynamic_query_as(format!(
                            "SELECT COUNT(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
                        ))
                        .fetch_one(&pool)
                        .await?;
                    out.push_str(&format!("{table}:{count}:{}\n", digest.unwrap_or_default()));
                }
                pool.close().await;
            }
            SqlDialect::MySql => {
                let pool = sqlx::MySqlPool::connect(&self.url).await?;
                for table in tables {
                    let count: i64 = subject_connectors::dynamic_sql::dynamic_query_scalar(format!(
                        "SELECT COUNT(*) FROM {table}"
                    ))
                    .fetch_one(&pool)
                    .await?;
                    let row = subject_connectors::dynamic_sql::dynamic_query(format!(
                        "CHECKSUM TABLE {table} EXTENDED"
                    ))
                    .fetch_one(&pool)
                    .await?;
                    let checksum: Option<u64> = sqlx::Row::try_get(&row, 1).ok();
                    out.push_str(&format!("{table}:{count}:{checksum:?}\n"));
                }
                pool.close().await;
            }
            SqlDialect::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await?;
                for table in tables {
                    let rows: Vec<String> = subject_connectors::dynamic_sql::dynamic_query_scalar(format!(
                        "SELECT quote(id) || ':' || count(*) OVER () FROM {table} ORDER BY 1"
                    ))
                    .fetch_all(&pool)
                    .await?;
                    out.push_str(&format!("{table}:{}\n", rows.join("|")));
                }
                pool.close().await;
            }
        }
        Ok(out)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dialect == SqlDialect::Sqlite {
            return;
        }
        let (dialect, name) = (self.dialect, self.name.clone());
        // Dropping runs on a thread of its own: Drop cannot await inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let statement = match dialect {
                    SqlDialect::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS `{name}`"),
                };
                if let Ok(admin) = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url(dialect))
                    .await
                {
                    let _ = subject_connectors::dynamic_sql::dynamic_query(&statement)
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A MongoDB database of its own for one test, on the server at `TEST_MONGODB_URL` (which
/// `scripts/test.sh` starts); dropped on drop.
pub struct TestMongo {
    pub url: String,
    pub database: mongodb::Database,
    server: String,
    name: String,
}

impl TestMongo {
    pub async fn create() -> anyhow::Result<Self> {
        let server = std::env::var("TEST_MONGODB_URL").map_err(|_| {
            anyhow::anyhow!(
                "TEST_MONGODB_URL is not set: run the tests with `bash scripts/test.sh`, which starts a MongoDB-protocol server"
            )
        })?;
        let name = format!("sg_test_{}", uuid::Uuid::new_v4().simple());
        let client = mongodb::Client::with_uri_str(&server).await?;
        Ok(Self {
            url: format!("{}/{name}", server.trim_end_matches('/')),
            database: client.database(&name),
            server,
            name,
        })
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(client) = mongodb::Client::with_uri_str(&server).await {
                    let _ = client.database(&name).drop().await;
                }
            });
        })
        .join();
    }
}

/// The token the tests' helpdesk expects.
pub const HELPDESK_TOKEN: &str = "test-helpdesk-token";
/// The service account the tests' analytics API expects.
pub const ANALYTICS_ACCOUNT: (&str, &str) = ("test-service-account", "test-analytics-secret");

/// The reference world on real servers: accounts in PostgreSQL, billing in MariaDB, tickets in
/// the helpdesk API.
pub struct ReferenceWorld {
    pub accounts: TestDatabase,
    pub billing: TestDatabase,
    pub uploads: TestMongo,
    /// The uploaded files, in a directory of the test's own.
    pub files: tempfile::TempDir,
    pub helpdesk: Running<Arc<Helpdesk>>,
    pub analytics: Running<Arc<Analytics>>,
    pub people: Vec<Person>,
}

impl ReferenceWorld {
    pub async fn create(count: usize) -> anyhow::Result<Self> {
        Self::create_on(count, SqlDialect::Postgres, SqlDialect::MySql).await
    }

    pub async fn create_on(count: usize, accounts: SqlDialect, billing: SqlDialect) -> anyhow::Result<Self> {
        let people = world::people(count, 7, 1);
        let (accounts, billing, uploads) = tokio::try_join!(
            TestDatabase::create(accounts),
            TestDatabase::create(billing),
            TestMongo::create()
        )?;
        tokio::try_join!(
            accounts.seed("accounts", &people),
            billing.seed("billing", &people),
            async { Ok(world::seed_uploads_mongo(&uploads.database, &people).await?) },
        )?;
        let helpdesk = helpdesk::start(
            world::helpdesk_data(&people),
            helpdesk::Settings {
                token: HELPDESK_TOKEN.into(),
                requests_per_second: 0,
            },
        )
        .await?;
        let files = tempfile::tempdir()?;
        let store =
            subject_connectors::storage::FileStore::local(files.path(), std::time::Duration::from_secs(5))?;
        world::seed_files(&store, &people).await?;
        let analytics = analytics::start(
            world::analytics_data(&people),
            analytics::Settings {
                username: ANALYTICS_ACCOUNT.0.into(),
                secret: ANALYTICS_ACCOUNT.1.into(),
            },
        )
        .await?;
        Ok(Self {
            accounts,
            billing,
            uploads,
            files,
            helpdesk,
            analytics,
            people,
        })
    }

    /// The environment the reference declarations read (nothing from the process).
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        world::ReferenceEnv {
            vars: self.env_vars().into_iter().collect(),
            fall_back_to_process: false,
        }
        .lookup()
    }

    /// The variables of [`Self::env`], to hand to a gateway process.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        [
            ("ACCOUNTS_DATABASE_URL", self.accounts.url.clone()),
            ("BILLING_DATABASE_URL", self.billing.url.clone()),
            ("UPLOADS_MONGODB_URL", self.uploads.url.clone()),
            (
                "UPLOADS_STORAGE_URL",
                format!("file://{}", self.files.path().display()),
            ),
            ("HELPDESK_URL", self.helpdesk.url()),
            ("HELPDESK_TOKEN", HELPDESK_TOKEN.to_owned()),
            ("ANALYTICS_URL", self.analytics.url()),
            ("ANALYTICS_SERVICE_ACCOUNT", ANALYTICS_ACCOUNT.0.to_owned()),
            ("ANALYTICS_SECRET", ANALYTICS_ACCOUNT.1.to_owned()),
        ]
        .into()
    }

    /// The gateway over this world, with the repository's declarations.
    pub async fn gateway(&self) -> anyhow::Result<TestGateway> {
        TestGateway::start(&config_dir().join("gateway.toml"), self.env(), Vec::new()).await
    }

    /// The person with a customer record and at least `invoices` invoices.
    pub fn payer(&self, invoices: usize) -> &Person {
        self.people
            .iter()
            .find(|p| p.customer.as_ref().is_some_and(|c| c.invoices.len() >= invoices))
            .unwrap_or(&self.people[0])
    }
}

/// The gateway served on a real port of 127.0.0.1, with an `admin` API key its client sends
/// (purpose `essential`); stopped on drop.
pub struct TestGateway {
    pub address: SocketAddr,
    pub service: Arc<SubjectService>,
    /// The admin key's caller, for executing requests in process.
    pub caller: Caller,
    pub keys: KeyStore,
    pub auth: Arc<subject_gateway::auth::Authenticator>,
    pub audit: Arc<subject_gateway::audit::DbAuditLog>,
    pub requests: Arc<subject_gateway::requests::PrivacyEngine>,
    admin_key: String,
    client: reqwest::Client,
    task: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
    _state: tempfile::TempDir,
}

impl TestGateway {
    pub async fn start(
        config: &Path,
        env: impl Fn(&str) -> Option<String>,
        custom: Vec<Arc<dyn Connector>>,
    ) -> anyhow::Result<Self> {
        Self::start_with(Config::load(config)?, env, custom).await
    }

    /// The gateway for a loaded (possibly adjusted) configuration, with a state database of its
    /// own.
    pub async fn start_with(
        mut config: Config,
        env: impl Fn(&str) -> Option<String>,
        custom: Vec<Arc<dyn Connector>>,
    ) -> anyhow::Result<Self> {
        let state = tempfile::tempdir()?;
        config.auth.state_url = format!("sqlite://{}", state.path().join("state.db").display());
        Self::start_on_state(config, env, custom, state).await
    }

    /// The gateway on the state database `config` names (replicas share one).
    pub async fn start_on_state(
        mut config: Config,
        env: impl Fn(&str) -> Option<String>,
        custom: Vec<Arc<dyn Connector>>,
        state: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        config.requests.exports_dir = state.path().join("exports");
        config.requests.poll_interval_ms = 50;
        let service = Arc::new(config.build_service(&env, custom).await?);
        let keys = config.key_store(&env).await?;
        let (_, admin_key) = keys.create("tests", "admin").await?;
        let auth = config.authenticator(&env).await?;
        let audit = config.audit_log(&env).await?;
        let caller = auth
            .authenticate(&Self::headers(&admin_key, "essential")?)
            .await?;
        let requests = config.privacy_engine(&env, &service, audit.clone()).await?;
        let worker = requests.start();
        let router = server::router(
            service.clone(),
            auth.clone(),
            audit.clone(),
            requests.clone(),
            &config.server,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let limits = subject_gateway::conn::ConnectionLimits::from_settings(&config.server);
        let task = tokio::spawn(server::serve_with(
            listener,
            router,
            limits,
            std::future::pending(),
        ));
        Ok(Self {
            address,
            service,
            caller,
            keys,
            auth,
            audit,
            requests,
            admin_key,
            client: reqwest::Client::new(),
            task,
            worker,
            _state: state,
        })
    }

    fn headers(key: &str, purpose: &str) -> anyhow::Result<reqwest::header::HeaderMap> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {key}").parse()?);
        headers.insert("x-purpose", purpose.parse()?);
        Ok(headers)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A new API key for `role`.
    pub async fn key(&self, role: &str) -> anyhow::Result<String> {
        let key = self.keys.create("test", role).await?.1;
        self.auth.reload_keys().await?;
        Ok(key)
    }

    /// POSTs a GraphQL query with variables as the admin, purpose `essential`.
    pub async fn graphql(&self, query: &str, variables: Json) -> anyhow::Result<Json> {
        self.graphql_as(&self.admin_key, "essential", query, variables)
            .await
    }

    /// POSTs a GraphQL query with `key` and `purpose`; returns the whole response body.
    pub async fn graphql_as(
        &self,
        key: &str,
        purpose: &str,
        query: &str,
        variables: Json,
    ) -> anyhow::Result<Json> {
        let response = self
            .client
            .post(self.url("/graphql"))
            .headers(Self::headers(key, purpose)?)
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        Ok(response.json().await?)
    }

    /// The headers an admin request carries, for tests that build their own requests.
    pub fn admin_headers(&self) -> anyhow::Result<reqwest::header::HeaderMap> {
        Self::headers(&self.admin_key, "essential")
    }

    /// The `subject` for one identity, with the given selection set.
    pub async fn subject(&self, kind: &str, value: &str, selection: &str) -> anyhow::Result<Json> {
        self.graphql(
            &format!("query($kind: IdentityKind!, $value: String!) {{ subject(identity: {{kind: $kind, value: $value}}) {selection} }}"),
            serde_json::json!({ "kind": kind, "value": value }),
        )
        .await
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
        self.worker.abort();
    }
}

/// The selection of every reference-world field the tests look at.
pub const FULL_SELECTION: &str = "{
  identities { kind value source connector entity depth }
  accounts {
    users { id email fullName company country dateOfBirth marketingOptIn createdAt }
    sessions { id userId ipAddress userAgent startedAt lastSeenAt }
    preferences { userId language timezone theme newsletter settings }
  }
  billing {
    customers { id userId email name city taxId createdAt }
    invoices { id customerId number status currency amountDueCents taxRate billingName billingEmail issuedAt }
    paymentMethods { id customerId brand last4 expMonth expYear }
  }
  uploads {
    images {
      id ownerId filename contentType sizeBytes storageKey camera gps takenAt tags uploadedAt visibility
      files { key present size contentType checksum }
    }
  }
  helpdesk {
    users { id name email phone active }
    tickets { id requesterId subject status tags createdAt }
    comments { ticketId id authorId body }
  }
  analytics {
    profiles { distinctId email name city browser lastSeen plan }
    events { distinctId event time deviceId ip url }
  }
  sources { connector status latencyMs records roundTrips error errorCode }
}";
