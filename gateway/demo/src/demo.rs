//! `subject-gateway demo`: SQLite databases seeded with a few hundred synthetic people, and a
//! helpdesk API and an analytics API served in process, read through the reference declarations
//! in `config/` (built in, for a binary run outside a checkout). Needs nothing installed.
//!
//! Only this crate knows the demo; the gateway's `main.rs` calls in here for its `demo`
//! subcommand when built with the `demo` feature.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use sqlx::any::AnyPoolOptions;
use subject_connectors::IdentityKinds;
use subject_connectors::declaration::{SqlDialect, ValidatedConnector, load_connector_file};
use subject_connectors::storage::FileStore;
use subject_test_servers::Running;
use subject_test_servers::analytics::{self, Analytics};
use subject_test_servers::helpdesk::{self, Helpdesk};

use crate::world::{self, Person};

/// The role of the key the demo creates (declared in `config/gateway.toml`).
pub const DEMO_ROLE: &str = "admin";

/// The token the demo's helpdesk expects.
const HELPDESK_TOKEN: &str = "demo-helpdesk-token";
/// The service account the demo's analytics API expects.
const ANALYTICS_ACCOUNT: (&str, &str) = ("demo-service-account", "demo-analytics-secret");

/// The demo's databases and APIs, ready to serve.
pub struct DemoWorld {
    pub accounts_url: String,
    pub billing_url: String,
    /// SQLite standing in for MongoDB (see `config/demo/uploads.toml`).
    pub uploads_url: String,
    /// `file://` URL of the directory holding the uploaded files.
    pub files_url: String,
    pub people: Vec<Person>,
    /// The helpdesk API, served in process.
    pub helpdesk: Running<Arc<Helpdesk>>,
    /// The analytics API, served in process.
    pub analytics: Running<Arc<Analytics>>,
}

impl DemoWorld {
    /// The environment the reference declarations read their URLs from; other variables come
    /// from the process.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        world::ReferenceEnv {
            vars: [
                ("ACCOUNTS_DATABASE_URL", self.accounts_url.clone()),
                ("BILLING_DATABASE_URL", self.billing_url.clone()),
                ("UPLOADS_DATABASE_URL", self.uploads_url.clone()),
                ("UPLOADS_STORAGE_URL", self.files_url.clone()),
                ("HELPDESK_URL", self.helpdesk.url()),
                ("HELPDESK_TOKEN", HELPDESK_TOKEN.to_owned()),
                ("ANALYTICS_URL", self.analytics.url()),
                ("ANALYTICS_SERVICE_ACCOUNT", ANALYTICS_ACCOUNT.0.to_owned()),
                ("ANALYTICS_SECRET", ANALYTICS_ACCOUNT.1.to_owned()),
            ]
            .into_iter()
            .collect(),
            fall_back_to_process: true,
        }
        .lookup()
    }
}

/// Creates `accounts.db` and `billing.db` in `dir` (replacing earlier ones) with `count` people.
pub async fn prepare(dir: &Path, count: usize) -> anyhow::Result<DemoWorld> {
    sqlx::any::install_default_drivers();
    create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let people = world::people(count, 42, 1001);
    let mut urls = Vec::new();
    for database in ["accounts", "billing", "uploads"] {
        let path: PathBuf = dir.join(format!("{database}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
            }
        }
        let url = format!("sqlite://{}", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{url}?mode=rwc"))
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        world::create_schema(&pool, world::ddl(SqlDialect::Sqlite, database))
            .await
            .with_context(|| format!("creating the {database} tables"))?;
        match database {
            "accounts" => world::seed_accounts(&pool, SqlDialect::Sqlite, &people).await,
            "billing" => world::seed_billing(&pool, SqlDialect::Sqlite, &people).await,
            _ => world::seed_uploads_sql(&pool, SqlDialect::Sqlite, &people).await,
        }
        .with_context(|| format!("seeding {database}"))?;
        pool.close().await;
        urls.push(url);
    }
    let files_dir = dir.join("files");
    if files_dir.exists() {
        std::fs::remove_dir_all(&files_dir).with_context(|| format!("removing {}", files_dir.display()))?;
    }
    let files = FileStore::local(&files_dir, std::time::Duration::from_secs(5))
        .with_context(|| format!("creating {}", files_dir.display()))?;
    world::seed_files(&files, &people)
        .await
        .context("writing the demo's uploaded files")?;
    let files_url = format!("file://{}", files_dir.display());
    let uploads_url = urls.pop().unwrap_or_default();
    let billing_url = urls.pop().unwrap_or_default();
    let accounts_url = urls.pop().unwrap_or_default();
    let helpdesk = helpdesk::start(
        world::helpdesk_data(&people),
        helpdesk::Settings {
            token: HELPDESK_TOKEN.into(),
            requests_per_second: 0,
        },
    )
    .await
    .context("starting the demo helpdesk API")?;
    let analytics = analytics::start(
        world::analytics_data(&people),
        analytics::Settings {
            username: ANALYTICS_ACCOUNT.0.into(),
            secret: ANALYTICS_ACCOUNT.1.into(),
        },
    )
    .await
    .context("starting the demo analytics API")?;
    Ok(DemoWorld {
        accounts_url,
        billing_url,
        uploads_url,
        files_url,
        people,
        helpdesk,
        analytics,
    })
}

/// The reference declarations, built into the binary so that an installed `subject-gateway
/// demo` runs from any directory (`config/` of the checkout is used when it is there).
const EMBEDDED_CONFIG: &[(&str, &str)] = &[
    ("gateway.toml", include_str!("../../../config/gateway.toml")),
    (
        "connectors/accounts.toml",
        include_str!("../../../config/connectors/accounts.toml"),
    ),
    (
        "connectors/analytics.toml",
        include_str!("../../../config/connectors/analytics.toml"),
    ),
    (
        "connectors/billing.toml",
        include_str!("../../../config/connectors/billing.toml"),
    ),
    (
        "connectors/helpdesk.toml",
        include_str!("../../../config/connectors/helpdesk.toml"),
    ),
    (
        "connectors/uploads.toml",
        include_str!("../../../config/connectors/uploads.toml"),
    ),
    (
        "demo/uploads.toml",
        include_str!("../../../config/demo/uploads.toml"),
    ),
    (
        "manual/paper_archive.toml",
        include_str!("../../../config/manual/paper_archive.toml"),
    ),
];

/// The manual systems the demo adds (`manual/*.toml` beside `gateway.toml`: the paper archive),
/// and the request types it makes wait for approval: erasures.
pub const DEMO_APPROVAL: &[&str] = &["ERASURE"];

/// The role of the second key the demo creates, to approve what the first submits (four eyes).
pub const DEMO_APPROVER_ROLE: &str = "dpo";

/// The role the paper archive's manual tasks are assigned to.
pub const DEMO_ARCHIVIST_ROLE: &str = "archivist";

/// Adds the manual systems declared in `manual/` beside `gateway_toml` (the paper archive) to
/// `connectors`.
pub fn add_manual_systems(
    gateway_toml: &Path,
    kinds: &IdentityKinds,
    connectors: &mut Vec<ValidatedConnector>,
) -> anyhow::Result<()> {
    let path = gateway_toml
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("manual/paper_archive.toml");
    connectors.push(load_connector_file(&path, kinds)?);
    Ok(())
}

/// The approval and manual-task walk-through printed at start: an erasure submitted with the
/// demo's key waits for the approver's; the paper archive's task waits for the archivist.
pub fn approval_examples(listen: &str, approver_key: &str, archivist_key: &str) -> String {
    let post = |key: &str, query: &str| {
        format!(
            "  curl -s http://{listen}/graphql -H 'content-type: application/json' -H 'authorization: Bearer {key}' -H 'x-purpose: essential' -d '{{\"query\":\"{query}\"}}'\n"
        )
    };
    let mut out = String::from(
        "Erasures need approval here (four eyes), and the paper archive (a manual system) is searched by hand:\n\n  1. eraseSubject with the key above: the request waits AWAITING_APPROVAL, its erasurePlan shown.\n  2. Approve it with the approver's key (role dpo; the submitter's own key is refused with FOUR_EYES):\n",
    );
    out.push_str(&post(
        approver_key,
        "mutation { approvePrivacyRequest(id: \\\"pr_…\\\") { status decidedBy } }",
    ));
    out.push_str(
        "  3. The request WAITS on the paper archive: the archivist lists and completes the task:\n",
    );
    out.push_str(&post(archivist_key, "{ manualTasks(status: OPEN) { tasks { id connector entity action instructions identities dueAt } } }"));
    out.push_str(&post(
        archivist_key,
        "mutation { completeManualTask(id: \\\"mt_…\\\", outcome: DONE, note: \\\"folder shredded\\\") { status completedBy } }",
    ));
    out.push_str("  4. The erasure completes; its receipt lists the archive's outcome under `manual`.\n\n");
    out
}

/// Writes the built-in reference declarations under `data_dir/config/` (each run, so they match
/// the binary) and returns the path of their `gateway.toml`.
pub fn embedded_config(data_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let root = data_dir.join("config");
    for (name, text) in EMBEDDED_CONFIG {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(root.join("gateway.toml"))
}

/// Swaps the MongoDB uploads connector among `connectors` (those of the gateway configuration
/// at `gateway_toml`) for its SQLite stand-in (`demo/uploads.toml` beside `gateway.toml`), unless
/// `UPLOADS_MONGODB_URL` is set.
pub fn stand_in_for_mongodb(
    gateway_toml: &Path,
    kinds: &IdentityKinds,
    connectors: &mut [ValidatedConnector],
) -> anyhow::Result<()> {
    if std::env::var_os("UPLOADS_MONGODB_URL").is_some() {
        return Ok(());
    }
    let path = gateway_toml
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("demo/uploads.toml");
    let stand_in = load_connector_file(&path, kinds)?;
    for connector in connectors {
        if connector.descriptor.name == stand_in.descriptor.name {
            *connector = stand_in.clone();
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents, the ones created 0700 (on Unix): the demo's
/// databases hold (synthetic) personal data, kept like the gateway keeps real personal data
/// (`subject_gateway::private_fs`).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The person the printed example is about: someone with data in all five domains (invoices
/// billed to a separate address, uploads, tickets, analytics events), when there is one.
pub fn showcase(world: &DemoWorld) -> Option<&Person> {
    let rich = |p: &&Person| {
        p.customer
            .as_ref()
            .is_some_and(|c| !c.invoices.is_empty() && c.email != p.email.to_lowercase())
            && !p.uploads.is_empty()
            && p.user_id % 2 == 0
            && p.user_id % 3 != 0
            && p.user_id % 7 != 0
    };
    world.people.iter().find(rich).or_else(|| world.people.first())
}

/// Example queries for the demo's people, printed at start.
pub fn examples(world: &DemoWorld, listen: &str, key: &str) -> String {
    let mut out = format!(
        "Subject Gateway demo: {} synthetic people in SQLite ({}, {}, {}), a helpdesk API at {} and an analytics API at {}\n\n  GraphiQL: http://{listen}/  (add the headers below under \"Headers\")\n  GraphQL:  POST http://{listen}/graphql\n  API key (role {DEMO_ROLE}), created for this run:\n    Authorization: Bearer {key}\n    X-Purpose: essential\n\n",
        world.people.len(),
        world.accounts_url.trim_start_matches("sqlite://"),
        world.billing_url.trim_start_matches("sqlite://"),
        world.uploads_url.trim_start_matches("sqlite://"),
        world.helpdesk.url(),
        world.analytics.url(),
    );
    // The key rides in the fragment, which browsers never send to the server; the console reads
    // it once into session storage and removes it from the address bar and history.
    out.push_str(&format!(
        "  Console:  http://{listen}/console/\n  Sign in with one click (this run's key, purpose essential):\n    http://{listen}/console/#key={key}&purpose=essential\n\n"
    ));
    if let Some(person) = showcase(world) {
        let email = person.email.to_uppercase();
        out.push_str(&format!(
            "Everything about one person, found from an email typed in capitals:\n\n  curl -s http://{listen}/graphql -H 'content-type: application/json' -H 'authorization: Bearer {key}' -H 'x-purpose: essential' -d '{{\"query\":\"{{ subject(identity: {{kind: EMAIL, value: \\\"{email}\\\"}}) {{ identities {{ kind value source }} accounts {{ users {{ fullName email }} sessions {{ ipAddress startedAt }} }} billing {{ customers {{ id email }} invoices {{ number amountDueCents issuedAt }} }} uploads {{ images {{ filename gps takenAt files {{ key size contentType checksum }} }} }} helpdesk {{ tickets {{ subject status }} comments {{ body }} }} analytics {{ profiles {{ distinctId city }} events {{ event time ip }} }} sources {{ connector status latencyMs roundTrips }} }} }}\"}}'\n\n"
        ));
    }
    if world.people.len() >= 3 {
        let ids: Vec<String> = world
            .people
            .iter()
            .take(3)
            .map(|p| p.user_id.to_string())
            .collect();
        out.push_str(&format!(
            "Three people in one batched query:\n\n  {{ subjects(identities: [{}]) {{ accounts {{ users {{ fullName }} }} billing {{ invoices {{ number }} }} }} }}\n\n",
            ids.iter().map(|id| format!("{{kind: USER_ID, value: \"{id}\"}}")).collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str("What is registered, with data categories:\n\n  { connectors { name kind health { status } entities { name fields { name category } } } }\n");
    out
}
