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
//! - [`state`]: request and task statuses, kinds and actions as enums (stored as text);
//! - [`store`]: the tables;
//! - `work`: the worker loop (leases, dispatch by kind) and the types the files below share;
//! - `plan`: resolving the person, blockers, the plan view, storing the tasks;
//! - `tasks`: the shared task runner (attempts, retries, outcomes);
//! - `erasure`, `rectification`, `objection`, [`export`]: each kind's work (`export` also
//!   holds the bundles and their expiring download links);
//! - `receipt`: verification, receipts, finishing.

mod erasure;
pub mod export;
mod objection;
mod plan;
mod receipt;
mod rectification;
pub mod state;
pub mod store;
mod tasks;
mod work;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Months, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use subject_connectors::mask::Pseudonymizer;
use subject_connectors::purpose::DataUse;
use subject_connectors::{Identity, IdentityKindId};
use subject_schema::Executor;
use subject_schema::access::Caller;
use subject_schema::audit::{AuditEntry, AuditLog, SubjectRef};
use subject_schema::requests::{
    PrivacyRequests, RequestError, RequestFilter, RequestKind, RequestPage, Submission,
};
use tokio::sync::Notify;

use crate::audit::DbAuditLog;
use state::RequestStatus;
use store::{NewRequest, RequestRow, RequestStore, StoreError, TaskRow};

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
        match self.webhooks.get().cloned() {
            Some(hooks) => tokio::spawn(async move {
                tokio::join!(engine.work_loop(), hooks.run());
            }),
            None => tokio::spawn(async move { engine.work_loop().await }),
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

    /// The JSON view of a request, as `PrivacyRequest` serves it.
    fn view(&self, row: &RequestRow, tasks: &[TaskRow]) -> Json {
        let now = store::now();
        let overdue = row.due_at < now && row.status.is_unfinished();
        let receipt = row
            .receipt
            .as_deref()
            .and_then(|r| serde_json::from_str::<Json>(r).ok());
        let download = (row.status == RequestStatus::Completed)
            .then(|| row.export.as_deref().and_then(|e| self.download(&row.id, e)))
            .flatten();
        json!({
            "id": row.id,
            "type": row.kind.as_str(),
            "status": row.status,
            "regulation": row.regulation,
            "reason": row.reason,
            "subject": row.subject_hash,
            "requestedBy": row.requested_by,
            "createdAt": row.created_at,
            "updatedAt": row.updated_at,
            "dueAt": row.due_at,
            "overdue": overdue,
            "extensionReason": row.extension_reason,
            "completedAt": row.completed_at,
            "error": row.error,
            "tasks": tasks.iter().map(task_view).collect::<Vec<_>>(),
            "receipt": receipt,
            "receiptSha256": row.receipt_sha256,
            "download": download,
        })
    }

    async fn view_of(&self, id: &str) -> Result<Option<Json>, RequestError> {
        let Some(row) = self.store.request(id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let tasks = self.store.tasks(id).await.map_err(unavailable)?;
        Ok(Some(self.view(&row, &tasks)))
    }

    async fn existing_view(&self, id: &str) -> Result<Json, RequestError> {
        self.view_of(id)
            .await?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))
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

fn task_view(task: &TaskRow) -> Json {
    json!({
        "connector": task.connector,
        "entity": task.entity,
        "action": task.action,
        "status": task.status,
        "attempts": task.attempts,
        "records": task.records,
        "files": task.files,
        "legalBasis": task.legal_basis,
        "retainUntil": task.retain_until,
        "verified": task.verified,
        "error": task.error,
        "errorCode": task.error_code,
        "startedAt": task.started_at,
        "finishedAt": task.finished_at,
    })
}

/// A request id: `pr_` and 128 random bits.
/// An idempotency key names one request: the same type for the same person. Used with another
/// person or type it is a conflict, and nothing starts: answering the first request would tell
/// automation that a person was erased while nothing happened to them.
fn same_request(existing: &RequestRow, kind: RequestKind, subject_hash: &str) -> Result<(), RequestError> {
    if existing.kind != kind {
        return Err(RequestError::Conflict(format!(
            "idempotencyKey was already used for a {} request; use a new key for a new request",
            existing.kind
        )));
    }
    if existing.subject_hash != subject_hash {
        return Err(RequestError::Conflict(
            "idempotencyKey was already used for a request about another person (or the same person \
             named by another identity); use a new key for a new request"
                .into(),
        ));
    }
    Ok(())
}

fn new_request_id() -> String {
    format!("pr_{}", uuid::Uuid::new_v4().simple())
}

#[async_trait]
impl PrivacyRequests for PrivacyEngine {
    async fn erasure_plan(&self, identity: Identity) -> Result<Json, RequestError> {
        let (plan, blockers) = tokio::join!(self.plan_subject(&identity), self.erasure_blockers());
        Ok(self.plan_view(&identity, &plan, &blockers))
    }

    async fn submit(&self, caller: &Caller, submission: Submission) -> Result<Json, RequestError> {
        let key = submission.idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(RequestError::Invalid(
                "idempotencyKey: give a key of 1 to 200 characters, the same on every retry".into(),
            ));
        }
        let kind = submission.kind;
        let subject_hash = self.subject_hash(&submission.identity);
        if let Some(existing) = self.store.by_idempotency_key(key).await.map_err(unavailable)? {
            same_request(&existing, kind, &subject_hash)?;
            return self.existing_view(&existing.id).await;
        }
        let regulation = submission
            .regulation
            .as_deref()
            .unwrap_or(&self.settings.default_regulation)
            .to_ascii_uppercase();
        let deadline = self.deadlines.get(&regulation).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self.deadlines.keys().map(String::as_str).collect();
            known.sort_unstable();
            RequestError::Invalid(format!(
                "regulation `{regulation}` is not configured (known: {})",
                known.join(", ")
            ))
        })?;
        let changes = match submission.kind {
            RequestKind::Rectification => self.validate_changes(&submission.changes)?,
            _ => Vec::new(),
        };
        let purpose = match (submission.kind, &submission.purpose) {
            (RequestKind::Objection, Some(purpose)) => Some(
                DataUse::parse(purpose)
                    .map_err(|e| RequestError::Invalid(format!("purpose: {e}")))?
                    .to_string(),
            ),
            (RequestKind::Objection, None) => {
                return Err(RequestError::Invalid(
                    "purpose: name the purpose objected to".into(),
                ));
            }
            _ => None,
        };
        // webhooks: only a configured endpoint, by name.
        let webhook = crate::webhooks::Webhooks::named(self.webhooks.get(), submission.webhook.as_deref())
            .map_err(RequestError::Invalid)?;
        let identity = &submission.identity;
        let input = RequestInput {
            kind: self.kind_name(identity.kind),
            value: identity.value.expose().to_owned(),
            changes,
            purpose,
            allow_large_matches: submission.allow_large_matches,
        };
        let input_json = serde_json::to_string(&input).map_err(|e| RequestError::Invalid(e.to_string()))?;
        // Erasures and exports of one person while one is open join it: one execution.
        let open_key = matches!(submission.kind, RequestKind::Erasure | RequestKind::Export)
            .then(|| format!("{kind}:{subject_hash}"));
        let id = new_request_id();
        let created = Utc::now();
        let created_at = store::stamp(created);
        let due_at = store::stamp(deadline.after(created));
        // webhooks: the endpoint is recorded before the request, so its first event finds it.
        if let Some((hooks, name)) = webhook {
            hooks.subscribe(&id, name).await.map_err(unavailable)?;
        }
        let inserted = self
            .store
            .insert(&NewRequest {
                id: &id,
                kind,
                idempotency_key: key,
                open_key: open_key.as_deref(),
                subject_hash: &subject_hash,
                regulation: &regulation,
                reason: submission.reason.as_deref(),
                requested_by: &caller.principal,
                created_at: &created_at,
                due_at: &due_at,
                input: &input_json,
            })
            .await;
        if let (Err(_), Some((hooks, _))) = (&inserted, webhook) {
            hooks.forget(&id).await;
        }
        match inserted {
            Ok(()) => {}
            Err(StoreError::Duplicate) => {
                if let Some(existing) = self.store.by_idempotency_key(key).await.map_err(unavailable)? {
                    same_request(&existing, kind, &subject_hash)?;
                    return self.existing_view(&existing.id).await;
                }
                if let Some(open) = &open_key
                    && let Some(existing) = self.store.by_open_key(open).await.map_err(unavailable)?
                {
                    return self.existing_view(&existing.id).await;
                }
                return Err(RequestError::Conflict(
                    "the request collided with another; retry".into(),
                ));
            }
            Err(error) => return Err(unavailable(error)),
        }
        self.event(
            &id,
            "received",
            &format!("{kind} request received"),
            RequestStatus::Received,
        )
        .await;
        let subject = SubjectRef {
            kind: self.kind_name(identity.kind),
            value: identity.value.clone(),
        };
        self.audit_action(
            caller,
            &format!("{}.requested", kind.as_str().to_ascii_lowercase()),
            Some(subject),
            json!({ "request": id, "regulation": regulation }),
        )
        .await;
        metrics::counter!("subject_gateway_privacy_requests_total", "type" => kind.as_str()).increment(1);
        tracing::info!(request = %id, r#type = kind.as_str(), "privacy request received");
        self.wake.notify_one();
        self.existing_view(&id).await
    }

    async fn request(&self, id: &str) -> Result<Option<Json>, RequestError> {
        self.view_of(id).await
    }

    async fn requests(&self, filter: RequestFilter) -> Result<RequestPage, RequestError> {
        let after = match &filter.after {
            None => None,
            Some(cursor) => Some(cursor.split_once('/').ok_or_else(|| {
                RequestError::Invalid("`after` is not a cursor from privacyRequests".into())
            })?),
        };
        let status = filter
            .status
            .as_deref()
            .map(|status| {
                status
                    .parse::<RequestStatus>()
                    .map_err(|_| RequestError::Invalid(format!("status `{status}` is unknown")))
            })
            .transpose()?;
        let mut rows = self
            .store
            .list(status, filter.kind, filter.overdue, after, filter.first + 1)
            .await
            .map_err(unavailable)?;
        let has_next_page = rows.len() > filter.first;
        rows.truncate(filter.first);
        let mut requests = Vec::with_capacity(rows.len());
        for row in &rows {
            let tasks = self.store.tasks(&row.id).await.map_err(unavailable)?;
            requests.push(self.view(row, &tasks));
        }
        Ok(RequestPage {
            end_cursor: rows.last().map(|r| format!("{}/{}", r.created_at, r.id)),
            requests,
            has_next_page,
        })
    }

    async fn retry(&self, caller: &Caller, id: &str) -> Result<Json, RequestError> {
        let row = self
            .store
            .request(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        if row.status != RequestStatus::Failed {
            return Err(RequestError::Conflict(format!(
                "only a FAILED request can be retried; this one is {}",
                row.status
            )));
        }
        if row.input.is_none() {
            return Err(RequestError::Conflict(
                "the request no longer holds what it needs to run".into(),
            ));
        }
        self.store.reopen(id).await.map_err(unavailable)?;
        self.event(
            id,
            "retried",
            "retried: the tasks not done run again",
            RequestStatus::InProgress,
        )
        .await;
        self.audit_action(caller, "request.retried", None, json!({ "request": id }))
            .await;
        self.wake.notify_one();
        self.existing_view(id).await
    }

    async fn cancel(&self, caller: &Caller, id: &str) -> Result<Json, RequestError> {
        if !self.store.cancel(id).await.map_err(unavailable)? {
            let row = self.store.request(id).await.map_err(unavailable)?;
            return match row {
                None => Err(RequestError::NotFound(id.to_owned())),
                Some(row) => Err(RequestError::Conflict(format!(
                    "a {} request cannot be cancelled",
                    row.status
                ))),
            };
        }
        self.event(id, "cancelled", "cancelled", RequestStatus::Cancelled)
            .await;
        self.audit_action(caller, "request.cancelled", None, json!({ "request": id }))
            .await;
        self.existing_view(id).await
    }

    async fn extend(
        &self,
        caller: &Caller,
        id: &str,
        days: u32,
        reason: String,
    ) -> Result<Json, RequestError> {
        let row = self
            .store
            .request(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        if reason.trim().is_empty() {
            return Err(RequestError::Invalid(
                "reason: the law asks why the request takes longer".into(),
            ));
        }
        let due = DateTime::parse_from_rfc3339(&row.due_at)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let new_due = store::stamp(Deadline::Days(days).after(due));
        if !self
            .store
            .extend(id, &new_due, reason.trim())
            .await
            .map_err(unavailable)?
        {
            return Err(RequestError::Conflict(
                "the due date was already extended once".into(),
            ));
        }
        self.event(
            id,
            "extended",
            &format!("due date extended by {days} days"),
            row.status,
        )
        .await;
        self.audit_action(
            caller,
            "request.extended",
            None,
            json!({ "request": id, "days": days }),
        )
        .await;
        self.existing_view(id).await
    }

    async fn events(&self, id: &str) -> Result<BoxStream<'static, Json>, RequestError> {
        let row = self
            .store
            .request(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        let store = self.store.clone();
        let interval = self.poll_interval();
        let id = id.to_owned();
        // The current state first, then every event as it is recorded (read from the database,
        // so events from any replica arrive), until the request finishes.
        let first = json!({
            "requestId": id,
            "at": store::now(),
            "kind": "state",
            "message": format!("the request is {}", row.status),
            "status": row.status,
        });
        let finished = !row.is_open();
        let initial_cursor = store
            .events_after(&id, None)
            .await
            .map_err(unavailable)?
            .last()
            .map(|e| (e.at.clone(), e.id.clone()));
        let state = (
            store,
            id,
            initial_cursor,
            std::collections::VecDeque::<Json>::new(),
            finished,
        );
        let rest = futures::stream::unfold(
            state,
            move |(store, id, mut cursor, mut queue, mut done)| async move {
                loop {
                    if let Some(event) = queue.pop_front() {
                        return Some((event, (store, id, cursor, queue, done)));
                    }
                    if done {
                        return None;
                    }
                    tokio::time::sleep(interval).await;
                    let after = cursor.as_ref().map(|(a, i)| (a.as_str(), i.as_str()));
                    let Ok(events) = store.events_after(&id, after).await else {
                        continue;
                    };
                    for event in events {
                        cursor = Some((event.at.clone(), event.id.clone()));
                        if !event.status.is_open() {
                            done = true;
                        }
                        queue.push_back(json!({
                            "requestId": event.request_id,
                            "at": event.at,
                            "kind": event.kind,
                            "message": event.message,
                            "status": event.status,
                        }));
                    }
                }
            },
        );
        Ok(Box::pin(futures::stream::once(async move { first }).chain(rest)))
    }
}
