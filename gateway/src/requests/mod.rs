//! Privacy requests: erasure, rectification, export and objection, planned, executed, retried,
//! verified and receipted, durably.
//!
//! A request is a row in the state database before anything is done for it; its plan is a set of
//! tasks (one per connector and entity) stored in one transaction; each task records an attempt
//! before it acts and its outcome after, and every store operation is safe to repeat. A worker in
//! every gateway claims open requests under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so a
//! killed gateway's work is resumed by the next one to start (or by a replica) and never done by
//! two at once.
//!
//! - [`state`]: request and task statuses, kinds and actions (the enums of
//!   `subject_schema::request_state`, stored as text);
//! - [`store`]: the tables;
//! - `api`: the `PrivacyRequests` interface (submit, read, list, retry, cancel, extend,
//!   events); `views`: rows as the typed views GraphQL serves;
//! - `worker`: the worker loop and dispatch to the driver of a request's kind; `lease`: holding,
//!   renewing and releasing a claimed request;
//! - `driver`: the [`Driver`](driver::Driver) trait every kind implements, and the one
//!   skeleton (prepare, plan, act, verify, receipt, finish) they run through;
//! - `erasure`, `rectification`, `objection`, [`export`]: one driver each (`export` also
//!   holds the bundles and their expiring download links);
//! - `plan`: resolving the person, blockers, the plan view, storing the tasks;
//! - `tasks`: the shared task runner (attempts, retries, outcomes);
//! - `kept`: what a task keeps (records, lookups) and the plan of a request;
//! - `stores`: access to the registered stores (locating a task, fetching records checked
//!   against their declaration, the files they name);
//! - `receipt`: receipts, finishing, and ending an erased person's exports;
//! - `approval`: four eyes — requests of the configured types wait AWAITING_APPROVAL until
//!   another holder of `approve` approves or denies them;
//! - `manual`: manual tasks for stores without an API (`kind = "manual"`): created when a
//!   request reaches such a store, the request waiting until a person records the outcome.
//! - `batch`: batched erases — the deletions of concurrent requests in an entity declared with
//!   `max_batch` coalesced into one vendor call and one job, followed by every member;
//!   [`batch_store`]: its tables.
//! - `retention`: retention that ends — the schedule written when an erasure completes, the run
//!   that erases retained records when their retention ends and amends the receipt, and
//!   `retentionSchedule`; [`retention_store`]: its table.

mod api;
mod approval;
mod batch;
pub mod batch_store;
mod console;
mod driver;
mod erasure;
pub mod export;
mod kept;
mod lease;
mod manual;
#[cfg(test)]
mod narrow_tests;
mod objection;
mod plan;
mod receipt;
mod rectification;
mod retention;
pub mod retention_store;
pub mod state;
pub mod store;
mod stores;
mod tasks;
mod views;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use subject_connectors::mask::Pseudonymizer;
use subject_connectors::{Identity, IdentityKindId};
use subject_schema::Executor;
use subject_schema::access::Caller;
use subject_schema::audit::{AuditEntry, AuditLog, SubjectRef};
use subject_schema::requests::RequestError;
use tokio::sync::Notify;

use crate::audit::DbAuditLog;
use store::{RequestStore, StoreError};

/// `[requests]` of gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestSettings {
    /// The regulation a request falls under when it names none.
    pub default_regulation: String,
    /// How long each regulation gives to answer: `"1 month"`, `"45 days"`.
    pub deadlines: HashMap<String, String>,
    /// Most records one person may match in one entity before an erasure stops and asks for
    /// `allowLargeMatches` (an entity's `erasure.max_records` overrides it).
    pub max_records_per_entity: u64,
    /// How long a gateway holds a request it works on before another may take it over, seconds.
    pub lease_seconds: u64,
    /// How often idle workers look for work, and jobs are polled, in milliseconds.
    pub poll_interval_ms: u64,
    /// Attempts of a task whose store fails transiently, before the request FAILS.
    pub max_attempts: u32,
    /// Longest an asynchronous job (an API's deletion task) is polled before the request FAILS.
    pub job_timeout_seconds: u64,
    /// Requests one gateway works on at once.
    pub concurrency: usize,
    /// Where export bundles are written, relative to gateway.toml.
    pub exports_dir: PathBuf,
    /// How long an export's download link works (the bundle is deleted after), minutes.
    pub export_link_minutes: u64,
    /// Tests and drills only: the retention run acts as if it were this many days later (a
    /// retention declared for 10 years ends now with 3651). Never set it in production.
    pub retention_clock_skew_days: i64,
    /// approval: `[requests.approval]`.
    pub approval: ApprovalSettings,
}

/// `[requests.approval]`: the request types that wait for a holder of `approve` (other than
/// the submitter) before anything is done.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// `["ERASURE"]`, …: types as `PrivacyRequestType` spells them.
    pub required: Vec<String>,
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            default_regulation: "GDPR".into(),
            deadlines: [("GDPR", "1 month"), ("UK_GDPR", "1 month"), ("CCPA", "45 days")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            max_records_per_entity: 1000,
            lease_seconds: 30,
            poll_interval_ms: 500,
            max_attempts: 5,
            job_timeout_seconds: 3600,
            concurrency: 8,
            exports_dir: PathBuf::from("subject-gateway-exports"),
            export_link_minutes: 60,
            approval: ApprovalSettings::default(),
            retention_clock_skew_days: 0,
        }
    }
}

/// A regulation's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    Months(u32),
    Days(u32),
}

impl Deadline {
    pub fn parse(text: &str) -> Option<Self> {
        let (number, unit) = text.trim().split_once(' ')?;
        let n: u32 = number.parse().ok()?;
        match unit.trim() {
            "month" | "months" => Some(Deadline::Months(n)),
            "day" | "days" => Some(Deadline::Days(n)),
            _ => None,
        }
    }

    pub fn after(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Deadline::Months(n) => start.checked_add_months(Months::new(n)).unwrap_or(start),
            Deadline::Days(n) => start + chrono::Duration::days(i64::from(n)),
        }
    }
}

/// What a request was submitted with; kept (as JSON) only while it is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RequestInput {
    /// The identity kind's name and the normalised value.
    kind: String,
    value: String,
    #[serde(default)]
    changes: Vec<(String, String)>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    allow_large_matches: bool,
}

/// The engine: submits, lists and works on privacy requests.
pub struct PrivacyEngine {
    executor: Arc<Executor>,
    store: RequestStore,
    audit: Arc<DbAuditLog>,
    settings: RequestSettings,
    deadlines: HashMap<String, Deadline>,
    pseudonyms: Arc<Pseudonymizer>,
    /// Signs export download links.
    link_key: Vec<u8>,
    exports_dir: PathBuf,
    /// This gateway's name in leases.
    owner: String,
    wake: Notify,
    /// approval: the request types that wait for approval.
    approval_required: Vec<state::RequestKind>,
    /// webhooks: the endpoints told of requests' events (set once, by `attach_webhooks`).
    webhooks: std::sync::OnceLock<Arc<crate::webhooks::Webhooks>>,
}

/// Why the engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("[requests] deadlines.{0}: write \"N months\" or \"N days\"")]
    Deadline(String),
    #[error("[requests] default_regulation `{0}` has no deadline in [requests.deadlines]")]
    DefaultRegulation(String),
    #[error("the state database failed: {0}")]
    Store(#[from] StoreError),
    #[error("the exports directory could not be created: {0}")]
    ExportsDir(std::io::Error),
    #[error(
        "[requests.approval] required: `{0}` is not a request type (ERASURE, RECTIFICATION, EXPORT, OBJECTION)"
    )]
    ApprovalKind(String),
}

fn unavailable(error: StoreError) -> RequestError {
    RequestError::Unavailable(error.to_string())
}

impl PrivacyEngine {
    /// Sets the engine up over the state database. The pseudonym key comes from `pseudonym_key`
    /// (the environment's `SUBJECT_GATEWAY_PSEUDONYM_KEY`) or, when none is given, from a key the
    /// gateway keeps in the state database.
    pub async fn new(
        executor: Arc<Executor>,
        store: RequestStore,
        audit: Arc<DbAuditLog>,
        settings: RequestSettings,
        exports_dir: PathBuf,
        pseudonym_key: Option<String>,
    ) -> Result<Arc<Self>, EngineError> {
        let mut deadlines = HashMap::new();
        for (name, text) in &settings.deadlines {
            let deadline = Deadline::parse(text).ok_or_else(|| EngineError::Deadline(name.clone()))?;
            deadlines.insert(name.to_ascii_uppercase(), deadline);
        }
        if !deadlines.contains_key(&settings.default_regulation.to_ascii_uppercase()) {
            return Err(EngineError::DefaultRegulation(
                settings.default_regulation.clone(),
            ));
        }
        let pseudonym_key = match pseudonym_key.filter(|k| !k.is_empty()) {
            Some(key) => key,
            None => {
                // Only worth a warning when some declared field is pseudonymized.
                let pseudonymizes = executor.registry().connectors.iter().any(|c| {
                    c.connector.descriptor().entities.iter().any(|e| {
                        e.fields
                            .iter()
                            .any(|f| f.erasure == Some(subject_connectors::FieldErasure::Pseudonymize))
                    })
                });
                if pseudonymizes {
                    tracing::warn!(
                        "SUBJECT_GATEWAY_PSEUDONYM_KEY is not set: pseudonyms use a key kept in the state database"
                    );
                }
                store.secret("pseudonym_key").await?
            }
        };
        let approval_required = settings
            .approval
            .required
            .iter()
            .map(|k| {
                k.trim()
                    .to_ascii_uppercase()
                    .parse::<state::RequestKind>()
                    .map_err(|_| EngineError::ApprovalKind(k.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let link_key = store.secret("export_link_key").await?.into_bytes();
        crate::private_fs::create_dir_all(&exports_dir).map_err(EngineError::ExportsDir)?;
        Ok(Arc::new(Self {
            executor,
            store,
            audit,
            settings,
            deadlines,
            pseudonyms: Arc::new(Pseudonymizer::new(pseudonym_key.as_bytes())),
            link_key,
            exports_dir,
            owner: format!("gw-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            approval_required,
            webhooks: std::sync::OnceLock::new(),
        }))
    }

    pub fn store(&self) -> &RequestStore {
        &self.store
    }

    /// webhooks: from now on every event is also a message to the endpoints that want it
    /// (before `start`; a second call changes nothing).
    pub fn attach_webhooks(&self, webhooks: Arc<crate::webhooks::Webhooks>) {
        let _ = self.webhooks.set(webhooks);
    }

    /// The audit trail the engine records to (the console's `auditVerification` walks it).
    pub fn audit_log(&self) -> Arc<DbAuditLog> {
        self.audit.clone()
    }

    /// webhooks: the outbox, for `webhookDeliveries` and `redeliverWebhook`.
    pub fn webhooks(&self) -> Option<Arc<dyn subject_schema::webhooks::WebhookDeliveries>> {
        self.webhooks
            .get()
            .map(|hooks| hooks.clone() as Arc<dyn subject_schema::webhooks::WebhookDeliveries>)
    }

    /// Starts the worker: it resumes unfinished requests and takes new ones until the process
    /// ends; with webhooks, their deliverer runs in the same task (stopping it stops both).
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        // retention: the run that ends retentions shares the task (stopping it stops all).
        let retention = self.clone();
        // batching: so does the loop that sends erase batches and follows their jobs.
        let batches = self.clone();
        match self.webhooks.get().cloned() {
            Some(hooks) => tokio::spawn(async move {
                tokio::join!(
                    engine.work_loop(),
                    hooks.run(),
                    retention.retention_loop(),
                    batches.batch_loop()
                );
            }),
            None => tokio::spawn(async move {
                tokio::join!(
                    engine.work_loop(),
                    retention.retention_loop(),
                    batches.batch_loop()
                );
            }),
        }
    }

    fn kind_name(&self, kind: IdentityKindId) -> String {
        self.executor.registry().kinds.get(kind).name.clone()
    }

    fn subject_hash(&self, identity: &Identity) -> String {
        self.audit.subject_hash(&SubjectRef {
            kind: self.kind_name(identity.kind),
            value: identity.value.clone(),
        })
    }

    /// The identity a request was submitted for, from its stored input.
    fn input_identity(&self, input: &RequestInput) -> Option<Identity> {
        let kinds = &self.executor.registry().kinds;
        let kind = kinds.by_name(&input.kind)?;
        let value = kinds.get(kind).normalise_stored(&input.value)?;
        Some(Identity { kind, value })
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms.max(10))
    }

    async fn audit_action(&self, caller: &Caller, action: &str, subject: Option<SubjectRef>, detail: Json) {
        let entry = AuditEntry {
            actor: caller.principal.clone(),
            role: caller.role.name.clone(),
            purpose: caller.purpose.to_string(),
            action: action.to_owned(),
            subjects: subject.into_iter().collect(),
            detail,
        };
        if let Err(error) = self.audit.append(entry).await {
            tracing::error!(error = %error, action, "could not append a privacy request to the audit trail");
        }
    }

    /// Validates a rectification's changes against the declared rectifiable attributes, and
    /// normalises values of attributes that are identity kinds (an email is trimmed, lower-cased
    /// and checked).
    fn validate_changes(&self, changes: &[(String, String)]) -> Result<Vec<(String, String)>, RequestError> {
        if changes.is_empty() {
            return Err(RequestError::Invalid(
                "changes: give at least one correction".into(),
            ));
        }
        let registry = self.executor.registry();
        let declared: std::collections::BTreeSet<&str> = registry
            .connectors
            .iter()
            .flat_map(|c| c.connector.descriptor().entities.iter())
            .flat_map(|e| e.fields.iter())
            .filter_map(|f| f.rectify.as_deref())
            .collect();
        let mut out = Vec::new();
        for (field, value) in changes {
            if !declared.contains(field.as_str()) {
                return Err(RequestError::Invalid(format!(
                    "changes: `{field}` is not rectifiable (declared: {})",
                    declared.iter().copied().collect::<Vec<_>>().join(", ")
                )));
            }
            let value = match registry.kinds.by_name(field) {
                Some(kind) => registry
                    .kinds
                    .get(kind)
                    .parse(value)
                    .map_err(|e| RequestError::Invalid(format!("changes: {field}: {e}")))?
                    .expose()
                    .to_owned(),
                None => {
                    let trimmed = value.trim();
                    if trimmed.is_empty() || trimmed.len() > 1000 {
                        return Err(RequestError::Invalid(format!(
                            "changes: {field}: give a value of 1 to 1000 characters"
                        )));
                    }
                    trimmed.to_owned()
                }
            };
            out.push((field.clone(), value));
        }
        Ok(out)
    }
}
