//! The worker: claims open requests under a lease and carries them out.
//!
//! Erasure: resolve the person, store one task per connector and entity (children first within a
//! connector, so foreign keys hold), run each connector's tasks in order (connectors in parallel),
//! retry transient failures with backoff, poll asynchronous jobs until they end, then look the
//! person up afresh in every store and complete only when nothing is left but masked, retained
//! records. The receipt lists what was done where; its SHA-256 goes into the audit trail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use subject_connectors::mask::Pseudonymizer;
use subject_connectors::storage::file_key;
use subject_connectors::{
    ConnectorError, EntityErasure, ErasureAction, ErasureRequest, FieldChange, Identity, JobHandle,
    JobStatus, LookupRequest, Record, Value, WriteOutcome,
};
use subject_schema::SourceState;
use subject_schema::audit::AuditEntry;

use super::state::{RequestKind, RequestStatus, TaskAction, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use super::{PrivacyEngine, RequestInput};

/// A record value as kept in a task (the records found when the erasure was planned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
enum StoredValue {
    N,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    J(Json),
}

impl From<&Value> for StoredValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => StoredValue::N,
            Value::Bool(b) => StoredValue::B(*b),
            Value::Int(i) => StoredValue::I(*i),
            Value::Float(f) => StoredValue::F(*f),
            Value::String(s) => StoredValue::S(s.clone()),
            Value::Json(j) => StoredValue::J(j.clone()),
        }
    }
}

impl From<StoredValue> for Value {
    fn from(value: StoredValue) -> Self {
        match value {
            StoredValue::N => Value::Null,
            StoredValue::B(b) => Value::Bool(b),
            StoredValue::I(i) => Value::Int(i),
            StoredValue::F(f) => Value::Float(f),
            StoredValue::S(s) => Value::String(s),
            StoredValue::J(j) => Value::Json(j),
        }
    }
}

/// One entity of a planned request: where, what was found, and how to find it again.
pub(super) struct PlannedEntity {
    pub connector: usize,
    pub entity: usize,
    pub records: Vec<Record>,
    pub lookup: LookupRequest,
    /// Order within the connector: lower runs first (entities found through others go first).
    pub stage: i64,
}

/// What resolving a person for a request found.
pub(super) struct SubjectPlan {
    pub identities: usize,
    pub entities: Vec<PlannedEntity>,
    /// Connectors whose lookups failed: `(connector, message)`.
    pub failures: Vec<(String, String)>,
}

/// Entities the live stores would refuse to erase (or whose records erasure could not find):
/// `(connector, entity) -> (reason, unfindable)`. An unfindable entity blocks every erasure.
pub(super) type Blockers = std::collections::HashMap<(usize, usize), (String, bool)>;

/// How one task ended.
enum TaskEnd {
    Done,
    Failed,
    /// The lease was lost: another gateway carries on.
    Abandoned,
}

fn jitter(base: Duration) -> Duration {
    let millis = base.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}

impl PrivacyEngine {
    pub(super) async fn work_loop(self: Arc<Self>) {
        let mut running = tokio::task::JoinSet::new();
        let mut sweep_at = std::time::Instant::now();
        loop {
            while running.try_join_next().is_some() {}
            if running.len() < self.settings.concurrency.max(1) {
                let lease = store::stamp(Utc::now() + self.lease());
                match self.store.claim(&self.owner, &lease).await {
                    Ok(Some(id)) => {
                        let engine = self.clone();
                        running.spawn(async move { engine.process(id).await });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(error = %error, "could not look for privacy requests"),
                }
            }
            if sweep_at.elapsed() > Duration::from_secs(60) {
                sweep_at = std::time::Instant::now();
                self.sweep_exports().await;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval()) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_seconds.max(1) as i64)
    }

    /// Works on one claimed request until it finishes, waits, or the lease is lost.
    async fn process(self: Arc<Self>, id: String) {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let engine = self.clone();
            let lost = lost.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let every = Duration::from_millis((engine.settings.lease_seconds.max(1) * 1000) / 3);
                loop {
                    tokio::time::sleep(every).await;
                    let until = store::stamp(Utc::now() + engine.lease());
                    match engine.store.renew(&id, &engine.owner, &until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
        };
        let result = self.carry_out(&id, &lost).await;
        renewer.abort();
        if let Err(error) = result {
            tracing::warn!(request = %id, error = %error, "privacy request interrupted; it resumes later");
        }
        // Claimable again after a pause (a finished request is no longer claimable at all).
        let later = store::stamp(
            Utc::now() + chrono::Duration::milliseconds(self.settings.poll_interval_ms as i64 * 4),
        );
        let _ = self.store.release(&id, &self.owner, &later).await;
    }

    pub(super) async fn event(&self, id: &str, kind: &str, message: &str, status: RequestStatus) {
        if let Err(error) = self.store.add_event(id, kind, message, status).await {
            tracing::warn!(request = %id, error = %error, "could not record a request event");
        }
    }

    async fn fail(&self, row: &RequestRow, message: &str) -> Result<(), StoreError> {
        self.store
            .set_status(&row.id, RequestStatus::Failed, Some(message))
            .await?;
        self.event(&row.id, "failed", message, RequestStatus::Failed)
            .await;
        metrics::counter!("subject_gateway_privacy_requests_failed_total", "type" => row.kind.as_str())
            .increment(1);
        tracing::warn!(request = %row.id, r#type = %row.kind, "privacy request failed");
        Ok(())
    }

    async fn carry_out(&self, id: &str, lost: &AtomicBool) -> Result<(), StoreError> {
        let Some(row) = self.store.request(id).await? else {
            return Ok(());
        };
        if !row.is_open() {
            return Ok(());
        }
        let input: Option<RequestInput> = row.input.as_deref().and_then(|i| serde_json::from_str(i).ok());
        let Some((input, identity)) = input.and_then(|i| self.input_identity(&i).map(|id| (i, id))) else {
            return self.fail(&row, "the request's input is unreadable").await;
        };
        match row.kind {
            RequestKind::Erasure => self.carry_out_erasure(&row, &input, &identity, lost).await,
            RequestKind::Rectification => self.carry_out_rectification(&row, &input, &identity, lost).await,
            RequestKind::Export => self.carry_out_export(&row, &identity).await,
            RequestKind::Objection => self.carry_out_objection(&row, &input, &identity, lost).await,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Planning
    // -----------------------------------------------------------------------------------------

    /// Resolves the person and lists, per connector and entity, the records found and the
    /// lookup that finds them again.
    pub(super) async fn plan_subject(&self, identity: &Identity) -> SubjectPlan {
        let outcome = self.executor.resolve(vec![vec![identity.clone()]]).await;
        let registry = self.executor.registry();
        let mut failures = Vec::new();
        for (c, source) in outcome.sources.iter().enumerate() {
            if source.state != SourceState::Ok {
                let message = source
                    .error
                    .as_ref()
                    .map_or_else(|| "failed".to_owned(), ToString::to_string);
                failures.push((
                    registry.connectors[c].connector.descriptor().name.clone(),
                    message,
                ));
            }
        }
        let Some(subject) = outcome.subjects.first() else {
            return SubjectPlan {
                identities: 0,
                entities: Vec::new(),
                failures,
            };
        };
        let mut entities = Vec::new();
        for (c, registered) in registry.connectors.iter().enumerate() {
            let descriptor = registered.connector.descriptor();
            let stages = stages(descriptor);
            for (e, entity) in descriptor.entities.iter().enumerate() {
                let records = subject.records[c][e].clone();
                if records.is_empty() {
                    continue;
                }
                let by = entity
                    .lookups
                    .iter()
                    .enumerate()
                    .filter_map(|(l, link)| {
                        let values: Vec<_> = subject
                            .identities
                            .iter()
                            .filter(|r| r.identity.kind == link.kind)
                            .map(|r| r.identity.value.clone())
                            .collect();
                        (!values.is_empty()).then_some((l, values))
                    })
                    .collect();
                entities.push(PlannedEntity {
                    connector: c,
                    entity: e,
                    records,
                    lookup: LookupRequest { entity: e, by },
                    stage: stages[e],
                });
            }
        }
        SubjectPlan {
            identities: subject.identities.len(),
            entities,
            failures,
        }
    }

    fn limit(&self, connector: usize, entity: usize) -> u64 {
        let descriptor = self.executor.registry().connectors[connector]
            .connector
            .descriptor();
        descriptor.entities[entity]
            .erasure
            .max_records
            .unwrap_or(self.settings.max_records_per_entity)
    }

    pub(super) fn files_of(&self, connector: usize, entity: usize, records: &[Record]) -> Vec<String> {
        let registered = &self.executor.registry().connectors[connector];
        let descriptor = &registered.connector.descriptor().entities[entity];
        let (Some(files), Some(_)) = (&descriptor.files, &registered.storage) else {
            return Vec::new();
        };
        let names: Vec<String> = descriptor.fields.iter().map(|f| f.name.clone()).collect();
        records
            .iter()
            .filter_map(|r| file_key(&files.key, &names, r))
            .collect()
    }

    /// When the retained records are due for deletion: `retention_days` after the latest of the
    /// records' `retain_from` dates, or after now when none is declared (or readable).
    fn retain_until(&self, connector: usize, entity: usize, records: &[Record]) -> Option<String> {
        let descriptor = self.executor.registry().connectors[connector]
            .connector
            .descriptor();
        let policy = &descriptor.entities[entity].erasure;
        let days = policy
            .retention_days
            .filter(|_| policy.action == ErasureAction::Retain)?;
        let start = policy
            .retain_from
            .and_then(|field| {
                records
                    .iter()
                    .filter_map(|r| match r.get(field) {
                        Some(Value::String(text)) => record_date(text),
                        _ => None,
                    })
                    .max()
            })
            .unwrap_or_else(Utc::now);
        Some(store::stamp(start + chrono::Duration::days(i64::from(days))))
    }

    /// What the live stores say would make erasing an entity fail or reach other people
    /// (`Connector::erasure_blockers`): `(connector, entity) -> reason`. A store that cannot say
    /// (down, or no answer in its timeout) adds nothing here: planning reports it.
    pub(super) async fn erasure_blockers(&self) -> Blockers {
        let registry = self.executor.registry();
        let asks = registry
            .connectors
            .iter()
            .enumerate()
            .map(|(c, registered)| async move {
                let descriptor = registered.connector.descriptor();
                let asked = registered.connector.erasure_blockers();
                match tokio::time::timeout(descriptor.timeout, asked).await {
                    Ok(Ok(blockers)) => blockers
                        .into_iter()
                        .map(|b| ((c, b.entity), (b.reason, b.unfindable)))
                        .collect::<Vec<_>>(),
                    Ok(Err(error)) => {
                        tracing::warn!(connector = %descriptor.name, code = error.code(), "could not read what would block erasure");
                        Vec::new()
                    }
                    Err(_) => {
                        tracing::warn!(connector = %descriptor.name, "reading what would block erasure timed out");
                        Vec::new()
                    }
                }
            });
        // Files are deleted with the records of deleted entities that name them: their storage
        // must be there and writable, or the erasure would fail halfway or miss the files.
        let storages = registry
            .connectors
            .iter()
            .enumerate()
            .map(|(c, registered)| async move {
                let descriptor = registered.connector.descriptor();
                let deleting: Vec<usize> = (0..descriptor.entities.len())
                    .filter(|e| {
                        let entity = &descriptor.entities[*e];
                        entity.files.is_some() && entity.erasure.action == ErasureAction::Delete
                    })
                    .collect();
                let (Some(storage), false) = (&registered.storage, deleting.is_empty()) else {
                    return Vec::new();
                };
                let problems = tokio::time::timeout(descriptor.timeout, storage.erasure_problems())
                    .await
                    .unwrap_or_else(|_| vec!["the file storage did not answer in time".to_owned()]);
                deleting
                    .into_iter()
                    .flat_map(|e| {
                        problems
                            .iter()
                            .map(move |p| ((c, e), (format!("its files cannot be deleted: {p}"), false)))
                    })
                    .collect::<Vec<_>>()
            });
        let (asked, storages) = tokio::join!(
            futures::future::join_all(asks),
            futures::future::join_all(storages)
        );
        let mut all: Blockers = Blockers::new();
        for (key, (reason, unfindable)) in asked.into_iter().chain(storages).flatten() {
            all.entry(key)
                .and_modify(|(r, u)| {
                    r.push_str("; ");
                    r.push_str(&reason);
                    *u |= unfindable;
                })
                .or_insert((reason, unfindable));
        }
        all
    }

    /// The blocked entities a plan meets: those it acts on, and every unfindable one (the person
    /// may have records there that no lookup can find). Sorted by connector and entity.
    fn blocked_in(&self, plan: &SubjectPlan, blockers: &Blockers) -> Vec<(usize, usize, String)> {
        let mut blocked: Vec<(usize, usize, String)> = blockers
            .iter()
            .filter(|((c, e), (_, unfindable))| {
                *unfindable || plan.entities.iter().any(|p| p.connector == *c && p.entity == *e)
            })
            .map(|((c, e), (reason, _))| (*c, *e, reason.clone()))
            .collect();
        blocked.sort();
        blocked
    }

    /// The erasure refusal for a plan meeting blocked entities, naming each `connector.entity`.
    fn blocked_refusal(&self, plan: &SubjectPlan, blockers: &Blockers) -> Option<String> {
        let registry = self.executor.registry();
        let blocked: Vec<String> = self
            .blocked_in(plan, blockers)
            .into_iter()
            .map(|(c, e, reason)| {
                let d = registry.connectors[c].connector.descriptor();
                format!("{}.{}: {reason}", d.name, d.entities[e].name)
            })
            .collect();
        (!blocked.is_empty()).then(|| {
            format!(
                "ERASURE_BLOCKED: nothing was changed: {}; fix the declaration or the store and submit again",
                blocked.join("; ")
            )
        })
    }

    pub(super) fn plan_view(&self, identity: &Identity, plan: &SubjectPlan, blockers: &Blockers) -> Json {
        let registry = self.executor.registry();
        let mut blocked = !plan.failures.is_empty();
        let mut entries = Vec::new();
        for planned in &plan.entities {
            let registered = &registry.connectors[planned.connector];
            let descriptor = registered.connector.descriptor();
            let entity = &descriptor.entities[planned.entity];
            let limit = self.limit(planned.connector, planned.entity);
            let exceeds = planned.records.len() as u64 > limit;
            let supported = match entity.erasure.action {
                ErasureAction::Cascade(_) => true,
                _ => registered.connector.erases(planned.entity),
            };
            let blocked_by = blockers
                .get(&(planned.connector, planned.entity))
                .map(|(reason, _)| reason);
            blocked |= exceeds || !supported || blocked_by.is_some();
            let fields: Vec<String> = entity
                .masked_fields()
                .iter()
                .map(|(f, erasure)| format!("{}: {}", entity.fields[*f].name, erasure_name(erasure)))
                .collect();
            let note = match &entity.erasure.action {
                ErasureAction::Cascade(with) => {
                    Some(format!("removed with `{}`", descriptor.entities[*with].name))
                }
                ErasureAction::Delete if entity.files.is_some() => {
                    Some("the stored files are deleted too".to_owned())
                }
                _ if !supported => Some("the connector cannot erase: declare how".to_owned()),
                _ => None,
            };
            entries.push(json!({
                "connector": descriptor.name,
                "entity": entity.name,
                "action": entity.erasure.action.as_str(),
                "records": planned.records.len(),
                "files": self.files_of(planned.connector, planned.entity, &planned.records).len(),
                "fieldsTouched": fields,
                "legalBasis": entity.erasure.legal_basis,
                "retainUntil": self.retain_until(planned.connector, planned.entity, &planned.records),
                "limit": limit,
                "exceedsLimit": exceeds,
                "supported": supported,
                "note": note,
                "blockedBy": blocked_by,
                "error": null,
            }));
        }
        // Unfindable entities the person was not found in: their records may be there all the same.
        for (c, e, reason) in self.blocked_in(plan, blockers) {
            if plan.entities.iter().any(|p| p.connector == c && p.entity == e) {
                continue;
            }
            let descriptor = registry.connectors[c].connector.descriptor();
            let entity = &descriptor.entities[e];
            blocked = true;
            entries.push(json!({
                "connector": descriptor.name,
                "entity": entity.name,
                "action": entity.erasure.action.as_str(),
                "records": 0,
                "files": 0,
                "fieldsTouched": [],
                "exceedsLimit": false,
                "supported": registry.connectors[c].connector.erases(e),
                "blockedBy": reason,
                "error": null,
            }));
        }
        for (connector, message) in &plan.failures {
            entries.push(json!({
                "connector": connector,
                "entity": "*",
                "action": "UNKNOWN",
                "records": 0,
                "files": 0,
                "fieldsTouched": [],
                "exceedsLimit": false,
                "supported": false,
                "error": message,
            }));
        }
        json!({
            "subject": self.subject_hash(identity),
            "identities": plan.identities,
            "blocked": blocked,
            "entries": entries,
        })
    }

    /// Plans a request's tasks from what resolution found, or fails it when resolution did not
    /// reach every store (retried first: a store that is briefly away should not fail a request).
    async fn plan_tasks(
        &self,
        row: &RequestRow,
        identity: &Identity,
        veto: impl FnOnce(&SubjectPlan) -> Option<String>,
        mut task_of: impl FnMut(&PlannedEntity) -> Option<TaskRow>,
    ) -> Result<Option<SubjectPlan>, StoreError> {
        let mut attempt = 0;
        let plan = loop {
            let plan = self.plan_subject(identity).await;
            if plan.failures.is_empty() {
                break plan;
            }
            attempt += 1;
            if attempt >= self.settings.max_attempts {
                let failed: Vec<String> = plan.failures.iter().map(|(c, m)| format!("{c}: {m}")).collect();
                self.fail(
                    row,
                    &format!("planning could not reach every store ({})", failed.join("; ")),
                )
                .await?;
                return Ok(None);
            }
            tokio::time::sleep(jitter(Duration::from_millis(200 << attempt.min(6)))).await;
        };
        // Checked before the plan is stored: a plan on record is a plan that may be acted on.
        if let Some(refusal) = veto(&plan) {
            self.fail(row, &refusal).await?;
            return Ok(None);
        }
        let mut tasks = Vec::new();
        for planned in &plan.entities {
            if let Some(mut task) = task_of(planned) {
                task.request_id = row.id.clone();
                task.position = tasks.len() as i64;
                tasks.push(task);
            }
        }
        self.store.plan(&row.id, &tasks).await?;
        self.event(
            &row.id,
            "planned",
            &format!("{} task(s) across {} store(s)", tasks.len(), {
                let mut c: Vec<&str> = tasks.iter().map(|t| t.connector.as_str()).collect();
                c.sort_unstable();
                c.dedup();
                c.len()
            }),
            RequestStatus::InProgress,
        )
        .await;
        Ok(Some(plan))
    }

    fn base_task(&self, planned: &PlannedEntity, action: TaskAction) -> TaskRow {
        let descriptor = self.executor.registry().connectors[planned.connector]
            .connector
            .descriptor();
        let entity = &descriptor.entities[planned.entity];
        TaskRow {
            request_id: String::new(),
            position: 0,
            connector: descriptor.name.clone(),
            entity: entity.name.clone(),
            action,
            stage: planned.stage,
            status: TaskStatus::Pending,
            attempts: 0,
            records: Some(planned.records.len() as i64),
            files: None,
            legal_basis: None,
            retain_until: None,
            verified: None,
            error: None,
            error_code: None,
            started_at: None,
            finished_at: None,
            lookup: Some(encode_lookup(&planned.lookup)),
            known: Some(encode_records(&planned.records)),
            jobs: None,
        }
    }

    /// Where a task's connector and entity are in the registry.
    fn locate(&self, task: &TaskRow) -> Option<(usize, usize)> {
        let registry = self.executor.registry();
        let c = registry
            .connectors
            .iter()
            .position(|r| r.connector.descriptor().name == task.connector)?;
        let e = registry.connectors[c]
            .connector
            .descriptor()
            .entities
            .iter()
            .position(|e| e.name == task.entity)?;
        Some((c, e))
    }

    fn decode_lookup(&self, connector: usize, entity: usize, text: Option<&str>) -> Option<LookupRequest> {
        let stored: Vec<(usize, Vec<String>)> = serde_json::from_str(text?).ok()?;
        let registry = self.executor.registry();
        let descriptor = &registry.connectors[connector].connector.descriptor().entities[entity];
        let by = stored
            .into_iter()
            .filter_map(|(l, values)| {
                let link = descriptor.lookups.get(l)?;
                let spec = registry.kinds.get(link.kind);
                Some((
                    l,
                    values.iter().filter_map(|v| spec.normalise_stored(v)).collect(),
                ))
            })
            .collect();
        Some(LookupRequest { entity, by })
    }

    // -----------------------------------------------------------------------------------------
    // Running tasks
    // -----------------------------------------------------------------------------------------

    /// Runs every connector's pending tasks (connectors in parallel, a connector's tasks in stage
    /// order, stopping at its first failure). `act` carries one task out.
    async fn run_tasks<'a, F, Fut>(
        &'a self,
        row: &'a RequestRow,
        lost: &'a AtomicBool,
        act: F,
    ) -> Result<bool, StoreError>
    where
        F: Fn(TaskRow) -> Fut + Clone + 'a,
        Fut: std::future::Future<Output = Result<(TaskRow, TaskEnd), StoreError>> + 'a,
    {
        let tasks = self.store.tasks(&row.id).await?;
        let mut by_connector: std::collections::BTreeMap<String, Vec<TaskRow>> = Default::default();
        for task in tasks {
            by_connector.entry(task.connector.clone()).or_default().push(task);
        }
        let runs = by_connector.into_values().map(|mut tasks| {
            let act = act.clone();
            async move {
                tasks.sort_by_key(|t| (t.stage, t.position));
                for task in tasks {
                    if task.status.is_settled() {
                        continue;
                    }
                    if lost.load(Ordering::SeqCst) {
                        return Ok::<bool, StoreError>(false);
                    }
                    match act(task).await? {
                        (_, TaskEnd::Done) => {}
                        (_, TaskEnd::Failed) => return Ok(false),
                        (_, TaskEnd::Abandoned) => return Ok(false),
                    }
                }
                Ok(true)
            }
        });
        let mut all = true;
        for result in join_all(runs).await {
            all &= result?;
        }
        Ok(all && !lost.load(Ordering::SeqCst))
    }

    /// Calls `attempt` until it succeeds, fails for good, or runs out of attempts; records each
    /// attempt before it acts.
    async fn attempt_task<Fut>(
        &self,
        row: &RequestRow,
        mut task: TaskRow,
        attempt: impl Fn() -> Fut,
    ) -> Result<(TaskRow, Result<WriteOutcome, ConnectorError>), StoreError>
    where
        Fut: std::future::Future<Output = Result<WriteOutcome, ConnectorError>>,
    {
        loop {
            task.attempts += 1;
            task.status = TaskStatus::Running;
            task.started_at.get_or_insert_with(store::now);
            task.error = None;
            task.error_code = None;
            self.store.update_task(&task).await?;
            if task.attempts == 1 {
                self.event(
                    &row.id,
                    "task.started",
                    &format!("{}.{}: {}", task.connector, task.entity, task.action),
                    RequestStatus::InProgress,
                )
                .await;
            }
            let result = attempt().await;
            match &result {
                Err(error)
                    if error.is_transient() && task.attempts < i64::from(self.settings.max_attempts) =>
                {
                    task.error = Some(error.to_string());
                    task.error_code = Some(error.code().to_owned());
                    self.store.update_task(&task).await?;
                    let wait = jitter(Duration::from_millis(200u64 << task.attempts.clamp(0, 6)));
                    tracing::info!(request = %row.id, connector = %task.connector, entity = %task.entity,
                        attempt = task.attempts, wait_ms = wait.as_millis() as u64, "transient failure; retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok((task, result)),
            }
        }
    }

    async fn task_failed(
        &self,
        row: &RequestRow,
        task: &mut TaskRow,
        message: String,
        code: &str,
    ) -> Result<(), StoreError> {
        task.status = TaskStatus::Failed;
        task.error = Some(message.clone());
        task.error_code = Some(code.to_owned());
        task.finished_at = Some(store::now());
        self.store.update_task(task).await?;
        self.event(
            &row.id,
            "task.failed",
            &format!("{}.{}: {message}", task.connector, task.entity),
            RequestStatus::InProgress,
        )
        .await;
        Ok(())
    }

    async fn task_done(&self, row: &RequestRow, task: &mut TaskRow) -> Result<(), StoreError> {
        task.status = TaskStatus::Done;
        task.finished_at = Some(store::now());
        self.store.update_task(task).await?;
        self.event(
            &row.id,
            "task.done",
            &format!(
                "{}.{}: {} record(s){}",
                task.connector,
                task.entity,
                task.records.unwrap_or(0),
                task.files.map(|f| format!(", {f} file(s)")).unwrap_or_default()
            ),
            RequestStatus::InProgress,
        )
        .await;
        Ok(())
    }

    /// Fails the request, naming every failed task.
    async fn fail_with_tasks(&self, row: &RequestRow) -> Result<(), StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        let failed: Vec<String> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Failed)
            .map(|t| {
                format!(
                    "{}.{}: {}",
                    t.connector,
                    t.entity,
                    t.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        let message = if failed.is_empty() {
            "stopped before every task was done".to_owned()
        } else {
            failed.join("; ")
        };
        self.fail(row, &message).await
    }

    // -----------------------------------------------------------------------------------------
    // Erasure
    // -----------------------------------------------------------------------------------------

    async fn carry_out_erasure(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        identity: &Identity,
        lost: &AtomicBool,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        if row.planned_at.is_none() {
            let registry = self.executor.registry();
            let blockers = self.erasure_blockers().await;
            // Safety: an entity the store would refuse to erase, or a lookup matching more than
            // an entity's limit, stops the erasure before anything is changed anywhere.
            let veto = |plan: &SubjectPlan| {
                if let Some(refusal) = self.blocked_refusal(plan, &blockers) {
                    return Some(refusal);
                }
                if input.allow_large_matches {
                    return None;
                }
                let over: Vec<String> = plan
                    .entities
                    .iter()
                    .filter(|p| p.records.len() as u64 > self.limit(p.connector, p.entity))
                    .map(|p| {
                        let d = registry.connectors[p.connector].connector.descriptor();
                        format!(
                            "{}.{} matches {} records (limit {})",
                            d.name,
                            d.entities[p.entity].name,
                            p.records.len(),
                            self.limit(p.connector, p.entity)
                        )
                    })
                    .collect();
                (!over.is_empty()).then(|| {
                    format!(
                        "SAFETY_LIMIT: nothing was changed: {}; check the plan and submit again with allowLargeMatches",
                        over.join("; ")
                    )
                })
            };
            let planned = self
                .plan_tasks(row, identity, veto, |planned| {
                    let entity = &registry.connectors[planned.connector]
                        .connector
                        .descriptor()
                        .entities[planned.entity];
                    let mut task = self.base_task(planned, TaskAction::from(&entity.erasure.action));
                    task.legal_basis = entity.erasure.legal_basis.clone();
                    Some(task)
                })
                .await?;
            if planned.is_none() {
                return Ok(());
            }
        }
        self.store
            .set_status(&row.id, RequestStatus::InProgress, None)
            .await?;
        let completed = self
            .run_tasks(row, lost, |task| self.erase_task(row, input, task, lost))
            .await?;
        if lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !completed {
            return self.fail_with_tasks(row).await;
        }
        if !self.verify_erasure(row).await? {
            return self.fail_with_tasks(row).await;
        }
        let receipt = self.receipt(row, "erasure").await?;
        // Read before `finish` forgets the identities the tasks held.
        let person = self.person_hashes(row).await?;
        self.finish(row, receipt, None).await?;
        self.end_exports(row, &person).await;
        metrics::histogram!("subject_gateway_privacy_request_seconds", "type" => RequestKind::Erasure.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn erase_task(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        mut task: TaskRow,
        lost: &AtomicBool,
    ) -> Result<(TaskRow, TaskEnd), StoreError> {
        let Some((c, e)) = self.locate(&task) else {
            self.task_failed(
                row,
                &mut task,
                "the connector or entity is no longer registered".into(),
                "UNKNOWN_ENTITY",
            )
            .await?;
            return Ok((task, TaskEnd::Failed));
        };
        let registered = &self.executor.registry().connectors[c];
        let entity = registered.connector.descriptor().entities[e].clone();
        let Some(lookup) = self.decode_lookup(c, e, task.lookup.as_deref()) else {
            self.task_failed(
                row,
                &mut task,
                "the task's lookup is unreadable".into(),
                "INVALID_TASK",
            )
            .await?;
            return Ok((task, TaskEnd::Failed));
        };
        let known = decode_records(task.known.as_deref());
        if task.status == TaskStatus::Waiting {
            return self.poll_jobs(row, task, c, lost).await;
        }
        let action = match &entity.erasure.action {
            ErasureAction::Cascade(_) => {
                // Nothing to call: the entity it goes with removes it; verification checks.
                task.attempts += 1;
                task.started_at.get_or_insert_with(store::now);
                self.task_done(row, &mut task).await?;
                return Ok((task, TaskEnd::Done));
            }
            ErasureAction::Delete => EntityErasure::Delete,
            ErasureAction::Mask | ErasureAction::Retain => EntityErasure::Mask(entity.masked_fields()),
        };
        if registered.connector.erases_atomically() {
            return self.erase_store_together(row, input, task, c).await;
        }
        let max_records = if input.allow_large_matches {
            u64::MAX
        } else {
            self.limit(c, e)
        };
        let request = ErasureRequest {
            lookup: lookup.clone(),
            action: action.clone(),
            max_records,
            known: known.clone(),
            pseudonyms: self.pseudonyms.clone(),
        };
        let files_deleted = std::sync::atomic::AtomicI64::new(0);
        let (mut task, result) = self
            .attempt_task(row, task, || async {
                // Files first, then the records naming them: a repeat after a crash finds the
                // records again and their files already gone, which is fine.
                if matches!(action, EntityErasure::Delete)
                    && let (Some(_), Some(storage)) = (&entity.files, &registered.storage)
                {
                    let mut records = registered.connector.fetch(&lookup).await?;
                    records.extend(known.iter().cloned());
                    let mut keys = self.files_of(c, e, &records);
                    keys.sort();
                    keys.dedup();
                    for key in keys {
                        if storage.delete(&key).await? {
                            files_deleted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                registered.connector.erase(&request).await
            })
            .await?;
        let files = files_deleted.load(Ordering::SeqCst);
        if entity.files.is_some() {
            task.files = Some(task.files.unwrap_or(0) + files);
        }
        match result {
            Ok(WriteOutcome::Done { records }) => {
                task.records = Some(records as i64);
                task.retain_until = self.retain_until(c, e, &known);
                self.task_done(row, &mut task).await?;
                Ok((task, TaskEnd::Done))
            }
            Ok(WriteOutcome::Pending { records, jobs }) => {
                task.records = Some(records as i64);
                task.status = TaskStatus::Waiting;
                task.jobs = serde_json::to_string(&jobs.iter().map(|j| j.0.clone()).collect::<Vec<_>>()).ok();
                self.store.update_task(&task).await?;
                self.store
                    .set_status(&row.id, RequestStatus::Waiting, None)
                    .await?;
                self.event(
                    &row.id,
                    "task.waiting",
                    &format!(
                        "{}.{}: {} job(s) started in the store",
                        task.connector,
                        task.entity,
                        jobs.len()
                    ),
                    RequestStatus::Waiting,
                )
                .await;
                self.poll_jobs(row, task, c, lost).await
            }
            Err(error) => {
                self.task_failed(row, &mut task, error.to_string(), error.code())
                    .await?;
                Ok((task, TaskEnd::Failed))
            }
        }
    }

    /// Erases, in one call the store makes all-or-nothing (one SQL transaction), every entity
    /// of this person in connector `c` still to do, `task` among them, in stage order. Files
    /// the records name go first, as for one entity. A failure fails all of them and changes
    /// nothing in the store; the retry runs them all again.
    async fn erase_store_together(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        task: TaskRow,
        c: usize,
    ) -> Result<(TaskRow, TaskEnd), StoreError> {
        let registered = &self.executor.registry().connectors[c];
        let descriptor = registered.connector.descriptor();
        // The list `run_tasks` walks was read before this store's first task: a later task of
        // the same store was done with it.
        let mut batch: Vec<(TaskRow, usize)> = Vec::new();
        for stored in self.store.tasks(&row.id).await? {
            if stored.connector != task.connector {
                continue;
            }
            if stored.position == task.position && stored.status.is_settled() {
                return Ok((stored, TaskEnd::Done));
            }
            if stored.status.is_settled() {
                continue;
            }
            let Some((_, e)) = self.locate(&stored) else {
                continue;
            };
            if matches!(descriptor.entities[e].erasure.action, ErasureAction::Cascade(_)) {
                continue;
            }
            batch.push((stored, e));
        }
        batch.sort_by_key(|(t, _)| (t.stage, t.position));
        let mut requests = Vec::with_capacity(batch.len());
        for (stored, e) in &mut batch {
            let entity = &descriptor.entities[*e];
            let Some(lookup) = self.decode_lookup(c, *e, stored.lookup.as_deref()) else {
                self.task_failed(
                    row,
                    stored,
                    "the task's lookup is unreadable".into(),
                    "INVALID_TASK",
                )
                .await?;
                return Ok((task, TaskEnd::Failed));
            };
            let action = match entity.erasure.action {
                ErasureAction::Delete => EntityErasure::Delete,
                _ => EntityErasure::Mask(entity.masked_fields()),
            };
            requests.push(ErasureRequest {
                lookup,
                action,
                max_records: if input.allow_large_matches {
                    u64::MAX
                } else {
                    self.limit(c, *e)
                },
                known: decode_records(stored.known.as_deref()),
                pseudonyms: self.pseudonyms.clone(),
            });
        }
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            for (stored, _) in &mut batch {
                stored.attempts += 1;
                stored.status = TaskStatus::Running;
                stored.started_at.get_or_insert_with(store::now);
                stored.error = None;
                stored.error_code = None;
                self.store.update_task(stored).await?;
            }
            let files = self.delete_files_of(c, &batch, &requests).await;
            let result = match files {
                Ok(counts) => registered
                    .connector
                    .erase_all(&requests)
                    .await
                    .map(|outcomes| (outcomes, counts)),
                Err(error) => Err(error),
            };
            match result {
                Err(error) if error.is_transient() && attempts < self.settings.max_attempts => {
                    let wait = jitter(Duration::from_millis(200u64 << attempts.min(6)));
                    tracing::info!(request = %row.id, connector = %task.connector, attempt = attempts,
                        wait_ms = wait.as_millis() as u64, "transient failure; retrying the store's erasure");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        let mut end = TaskEnd::Done;
        let mut this = task;
        match result {
            Ok((outcomes, files)) => {
                for (((stored, e), outcome), deleted) in batch.iter_mut().zip(outcomes).zip(files) {
                    let records = match outcome {
                        WriteOutcome::Done { records } | WriteOutcome::Pending { records, .. } => records,
                    };
                    stored.records = Some(records as i64);
                    if descriptor.entities[*e].files.is_some() {
                        stored.files = Some(stored.files.unwrap_or(0) + deleted);
                    }
                    stored.retain_until = self.retain_until(c, *e, &decode_records(stored.known.as_deref()));
                    self.task_done(row, stored).await?;
                    if stored.position == this.position {
                        this = stored.clone();
                    }
                }
            }
            Err(error) => {
                let message = format!("{error} (nothing was changed in this store)");
                for (stored, _) in &mut batch {
                    self.task_failed(row, stored, message.clone(), error.code())
                        .await?;
                    if stored.position == this.position {
                        this = stored.clone();
                    }
                }
                end = TaskEnd::Failed;
            }
        }
        Ok((this, end))
    }

    /// Deletes the stored files of the records each delete request finds (now, or when planned);
    /// per request, how many files were deleted.
    async fn delete_files_of(
        &self,
        c: usize,
        batch: &[(TaskRow, usize)],
        requests: &[ErasureRequest],
    ) -> Result<Vec<i64>, ConnectorError> {
        let registered = &self.executor.registry().connectors[c];
        let mut counts = Vec::with_capacity(requests.len());
        for ((_, e), request) in batch.iter().zip(requests) {
            let entity = &registered.connector.descriptor().entities[*e];
            let mut deleted = 0;
            if matches!(request.action, EntityErasure::Delete)
                && let (Some(_), Some(storage)) = (&entity.files, &registered.storage)
            {
                let mut records = registered.connector.fetch(&request.lookup).await?;
                records.extend(request.known.iter().cloned());
                let mut keys = self.files_of(c, *e, &records);
                keys.sort();
                keys.dedup();
                for key in keys {
                    if storage.delete(&key).await? {
                        deleted += 1;
                    }
                }
            }
            counts.push(deleted);
        }
        Ok(counts)
    }

    /// Polls a task's jobs until every one ended, one failed, or the job timeout passed.
    async fn poll_jobs(
        &self,
        row: &RequestRow,
        mut task: TaskRow,
        connector: usize,
        lost: &AtomicBool,
    ) -> Result<(TaskRow, TaskEnd), StoreError> {
        let registered = &self.executor.registry().connectors[connector];
        let mut jobs: Vec<String> = task
            .jobs
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        if !jobs.is_empty() {
            self.store
                .set_status(&row.id, RequestStatus::Waiting, None)
                .await?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(self.settings.job_timeout_seconds);
        let mut transient = 0;
        while !jobs.is_empty() {
            if lost.load(Ordering::SeqCst) {
                return Ok((task, TaskEnd::Abandoned));
            }
            let mut still = Vec::new();
            for job in jobs {
                match registered.connector.job_status(&JobHandle(job.clone())).await {
                    Ok(JobStatus::Succeeded) => {}
                    Ok(JobStatus::Running) => still.push(job),
                    Ok(JobStatus::Failed(reason)) => {
                        task.jobs = None;
                        self.task_failed(
                            row,
                            &mut task,
                            format!("the store's job failed: {reason}"),
                            "JOB_FAILED",
                        )
                        .await?;
                        return Ok((task, TaskEnd::Failed));
                    }
                    Err(error) if error.is_transient() && transient < self.settings.max_attempts * 4 => {
                        transient += 1;
                        still.push(job);
                    }
                    Err(error) => {
                        self.task_failed(
                            row,
                            &mut task,
                            format!("polling the job failed: {error}"),
                            error.code(),
                        )
                        .await?;
                        return Ok((task, TaskEnd::Failed));
                    }
                }
            }
            jobs = still;
            task.jobs = serde_json::to_string(&jobs).ok();
            self.store.update_task(&task).await?;
            if jobs.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                self.task_failed(
                    row,
                    &mut task,
                    "the store's job did not finish in time".into(),
                    "JOB_TIMEOUT",
                )
                .await?;
                return Ok((task, TaskEnd::Failed));
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
        task.jobs = None;
        self.store
            .set_status(&row.id, RequestStatus::InProgress, None)
            .await?;
        self.task_done(row, &mut task).await?;
        Ok((task, TaskEnd::Done))
    }

    /// Looks the person up afresh in every store the erasure acted on: deleted entities must
    /// find nothing, masked and retained ones only masked records, deleted files must be gone.
    async fn verify_erasure(&self, row: &RequestRow) -> Result<bool, StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        let mut all = true;
        for mut task in tasks {
            let Some((c, e)) = self.locate(&task) else {
                continue;
            };
            let Some(lookup) = self.decode_lookup(c, e, task.lookup.as_deref()) else {
                continue;
            };
            let registered = &self.executor.registry().connectors[c];
            let entity = &registered.connector.descriptor().entities[e];
            let mut attempt = 0;
            let found = loop {
                attempt += 1;
                match registered.connector.fetch(&lookup).await {
                    Ok(records) => break Ok(records),
                    Err(error) if error.is_transient() && attempt < self.settings.max_attempts => {
                        tokio::time::sleep(jitter(Duration::from_millis(200 << attempt.min(6)))).await;
                    }
                    Err(error) => break Err(error),
                }
            };
            let problem = match found {
                Err(error) => Some(format!("verification could not look the person up: {error}")),
                Ok(records) => match entity.erasure.action {
                    ErasureAction::Delete | ErasureAction::Cascade(_) if !records.is_empty() => Some(
                        format!("verification found {} record(s) still there", records.len()),
                    ),
                    ErasureAction::Mask | ErasureAction::Retain => {
                        let masked = entity.masked_fields();
                        let unmasked = records
                            .iter()
                            .filter(|r| {
                                !masked.iter().all(|(f, erasure)| {
                                    r.get(*f).is_some_and(|v| Pseudonymizer::is_masked(erasure, v))
                                })
                            })
                            .count();
                        (unmasked > 0).then(|| format!("verification found {unmasked} record(s) not masked"))
                    }
                    _ => None,
                },
            };
            let problem = match (problem, &registered.storage) {
                (None, Some(storage)) if entity.erasure.action == ErasureAction::Delete => {
                    let mut left = 0;
                    for key in self.files_of(c, e, &decode_records(task.known.as_deref())) {
                        if !matches!(storage.head(&key).await, Ok(None)) {
                            left += 1;
                        }
                    }
                    (left > 0).then(|| format!("verification found {left} stored file(s) still there"))
                }
                (problem, _) => problem,
            };
            match problem {
                None => {
                    task.verified = Some(true);
                    self.store.update_task(&task).await?;
                }
                Some(message) => {
                    all = false;
                    task.verified = Some(false);
                    self.task_failed(row, &mut task, message, "VERIFICATION_FAILED")
                        .await?;
                }
            }
        }
        if all {
            self.event(
                &row.id,
                "verified",
                "a fresh lookup in every store found nothing left but retained, masked records",
                RequestStatus::InProgress,
            )
            .await;
        }
        Ok(all)
    }

    /// The receipt: what was done where, when, on which legal basis, and the verification.
    async fn receipt(&self, row: &RequestRow, kind: &str) -> Result<Json, StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        let entries: Vec<Json> = tasks
            .iter()
            .map(|t| {
                let records = t.records.unwrap_or(0);
                let count = |action: &[TaskAction]| {
                    if action.contains(&t.action) { records } else { 0 }
                };
                json!({
                    "connector": t.connector,
                    "entity": t.entity,
                    "action": t.action,
                    "deleted": count(&[TaskAction::Delete, TaskAction::Cascade]),
                    "masked": count(&[TaskAction::Mask]),
                    "retained": count(&[TaskAction::Retain]),
                    "rectified": count(&[TaskAction::Rectify]),
                    "exported": count(&[TaskAction::Export]),
                    "suppressed": count(&[TaskAction::Suppress]),
                    "filesDeleted": if t.action == TaskAction::Delete { t.files } else { None },
                    "legalBasis": t.legal_basis,
                    "retainUntil": t.retain_until,
                    "attempts": t.attempts,
                    "startedAt": t.started_at,
                    "finishedAt": t.finished_at,
                    "verified": t.verified,
                })
            })
            .collect();
        Ok(json!({
            "receipt": format!("subject-gateway/{kind}/v1"),
            "requestId": row.id,
            "type": row.kind.as_str(),
            "subject": row.subject_hash,
            "regulation": row.regulation,
            "requestedBy": row.requested_by,
            "requestedAt": row.created_at,
            "dueAt": row.due_at,
            "issuedAt": store::now(),
            "entries": entries,
            "verification": {
                "result": if tasks.iter().all(|t| t.verified != Some(false)) { "PASSED" } else { "FAILED" },
                "method": "a fresh lookup of every identity in every store after acting",
            },
        }))
    }

    /// Completes the request with its receipt (hashed into the audit trail) and forgets the
    /// personal data it held.
    async fn finish(
        &self,
        row: &RequestRow,
        receipt: Json,
        export: Option<String>,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(&receipt).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        self.store
            .complete(&row.id, &text, &digest, export.as_deref())
            .await?;
        self.event(
            &row.id,
            "completed",
            &format!("completed; receipt sha256 {digest}"),
            RequestStatus::Completed,
        )
        .await;
        let entry = AuditEntry {
            actor: "gateway".into(),
            role: "system".into(),
            purpose: "essential.legal_obligation".into(),
            action: format!("{}.completed", row.kind.as_str().to_ascii_lowercase()),
            subjects: Vec::new(),
            detail: json!({ "request": row.id, "subject": row.subject_hash, "receiptSha256": digest }),
        };
        if let Err(error) = subject_schema::audit::AuditLog::append(self.audit.as_ref(), entry).await {
            tracing::error!(error = %error, "could not append a completed request to the audit trail");
        }
        metrics::counter!("subject_gateway_privacy_requests_completed_total", "type" => row.kind.as_str())
            .increment(1);
        tracing::info!(request = %row.id, r#type = %row.kind, "privacy request completed");
        Ok(())
    }

    /// The hashes of every identity the person was found by (the submitted one and those the
    /// tasks looked up), as requests record their subject.
    async fn person_hashes(&self, row: &RequestRow) -> Result<Vec<String>, StoreError> {
        let registry = self.executor.registry();
        let mut hashes = vec![row.subject_hash.clone()];
        for task in self.store.tasks(&row.id).await? {
            let Some((c, e)) = self.locate(&task) else {
                continue;
            };
            let Some(lookup) = self.decode_lookup(c, e, task.lookup.as_deref()) else {
                continue;
            };
            let entity = &registry.connectors[c].connector.descriptor().entities[e];
            for (l, values) in lookup.by {
                let Some(link) = entity.lookups.get(l) else {
                    continue;
                };
                for value in values {
                    hashes.push(self.subject_hash(&Identity {
                        kind: link.kind,
                        value,
                    }));
                }
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        Ok(hashes)
    }

    /// An erased person's export bundles are deleted: a link handed out before the erasure
    /// answers 410 from now on.
    async fn end_exports(&self, erasure: &RequestRow, person: &[String]) {
        let exports = match self.store.exports_of(person).await {
            Ok(exports) => exports,
            Err(error) => {
                tracing::error!(request = %erasure.id, error = %error, "could not look for the erased person's exports");
                return;
            }
        };
        for (id, export) in exports {
            if let Err(error) = self.delete_bundle(&id, &export).await {
                tracing::error!(request = %id, error = %error, "could not delete an erased person's export");
                continue;
            }
            self.event(
                &id,
                "export.deleted",
                &format!("bundle deleted: erasure {} completed", erasure.id),
                RequestStatus::Completed,
            )
            .await;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rectification
    // -----------------------------------------------------------------------------------------

    /// The changes an entity takes: its fields declaring a changed attribute.
    fn changes_for(&self, connector: usize, entity: usize, changes: &[(String, String)]) -> Vec<FieldChange> {
        let descriptor = &self.executor.registry().connectors[connector]
            .connector
            .descriptor()
            .entities[entity];
        descriptor
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, field)| {
                let attribute = field.rectify.as_deref()?;
                let (_, value) = changes.iter().find(|(name, _)| name == attribute)?;
                Some(FieldChange {
                    field: i,
                    value: Value::String(value.clone()),
                })
            })
            .collect()
    }

    async fn carry_out_rectification(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        identity: &Identity,
        lost: &AtomicBool,
    ) -> Result<(), StoreError> {
        if row.planned_at.is_none() {
            let planned = self
                .plan_tasks(
                    row,
                    identity,
                    |_| None,
                    |planned| {
                        (!self
                            .changes_for(planned.connector, planned.entity, &input.changes)
                            .is_empty())
                        .then(|| self.base_task(planned, TaskAction::Rectify))
                    },
                )
                .await?;
            if planned.is_none() {
                return Ok(());
            }
        }
        self.store
            .set_status(&row.id, RequestStatus::InProgress, None)
            .await?;
        let completed = self
            .run_tasks(row, lost, |mut task| async move {
                let Some((c, e)) = self.locate(&task) else {
                    self.task_failed(
                        row,
                        &mut task,
                        "the entity is no longer registered".into(),
                        "UNKNOWN_ENTITY",
                    )
                    .await?;
                    return Ok((task, TaskEnd::Failed));
                };
                let changes = self.changes_for(c, e, &input.changes);
                let lookup = self.rectified_lookup(c, e, task.lookup.as_deref(), &input.changes);
                let registered = &self.executor.registry().connectors[c];
                let (mut task, result) = self
                    .attempt_task(row, task, || registered.connector.rectify(&lookup, &changes))
                    .await?;
                match result {
                    Ok(WriteOutcome::Done { records } | WriteOutcome::Pending { records, .. }) => {
                        task.records = Some(records as i64);
                        // Verify: the records found now hold the corrected values.
                        let verified = match registered.connector.fetch(&lookup).await {
                            Ok(records) => records.iter().all(|r| {
                                changes
                                    .iter()
                                    .all(|change| r.get(change.field) == Some(&change.value))
                            }),
                            Err(_) => false,
                        };
                        task.verified = Some(verified);
                        if verified {
                            self.task_done(row, &mut task).await?;
                            Ok((task, TaskEnd::Done))
                        } else {
                            self.task_failed(
                                row,
                                &mut task,
                                "verification found records without the correction".into(),
                                "VERIFICATION_FAILED",
                            )
                            .await?;
                            Ok((task, TaskEnd::Failed))
                        }
                    }
                    Err(error) => {
                        self.task_failed(row, &mut task, error.to_string(), error.code())
                            .await?;
                        Ok((task, TaskEnd::Failed))
                    }
                }
            })
            .await?;
        if lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !completed {
            return self.fail_with_tasks(row).await;
        }
        let receipt = self.receipt(row, "rectification").await?;
        self.finish(row, receipt, None).await
    }

    /// A task's lookup plus the corrected values of changed identity attributes: after an email
    /// changes, the record is found by its new email (and, until then, by the old one).
    fn rectified_lookup(
        &self,
        c: usize,
        e: usize,
        stored: Option<&str>,
        changes: &[(String, String)],
    ) -> LookupRequest {
        let registry = self.executor.registry();
        let mut lookup = self.decode_lookup(c, e, stored).unwrap_or(LookupRequest {
            entity: e,
            by: Vec::new(),
        });
        let descriptor = &registry.connectors[c].connector.descriptor().entities[e];
        for (l, link) in descriptor.lookups.iter().enumerate() {
            let spec = registry.kinds.get(link.kind);
            let Some((_, value)) = changes.iter().find(|(name, _)| *name == spec.name) else {
                continue;
            };
            let Some(value) = spec.normalise_stored(value) else {
                continue;
            };
            match lookup.by.iter_mut().find(|(i, _)| *i == l) {
                Some((_, values)) => values.push(value),
                None => lookup.by.push((l, vec![value])),
            }
        }
        lookup
    }

    // -----------------------------------------------------------------------------------------
    // Export and objection
    // -----------------------------------------------------------------------------------------

    async fn carry_out_export(&self, row: &RequestRow, identity: &Identity) -> Result<(), StoreError> {
        let Some(plan) = self
            .plan_tasks(
                row,
                identity,
                |_| None,
                |planned| {
                    let mut task = self.base_task(planned, TaskAction::Export);
                    task.status = TaskStatus::Done;
                    task.files = Some(
                        self.files_of(planned.connector, planned.entity, &planned.records)
                            .len() as i64,
                    );
                    task.lookup = None;
                    task.known = None;
                    task.started_at = Some(store::now());
                    task.finished_at = task.started_at.clone();
                    task.attempts = 1;
                    Some(task)
                },
            )
            .await?
        else {
            return Ok(());
        };
        let bundle = match self.write_bundle(row, &plan).await {
            Ok(bundle) => bundle,
            Err(error) => {
                return self
                    .fail(row, &format!("the export bundle could not be written: {error}"))
                    .await;
            }
        };
        let mut receipt = self.receipt(row, "export").await?;
        receipt["bundle"] = json!({ "sha256": bundle.sha256, "bytes": bundle.bytes, "files": bundle.files });
        let export = serde_json::to_string(&bundle).ok();
        self.finish(row, receipt, export).await
    }

    /// Whether a connector serves `purpose` (so an objection to it concerns the connector).
    /// Essential processing is not objected to: it is what the service is.
    fn serves(&self, connector: usize, purpose: &subject_connectors::purpose::DataUse) -> bool {
        if purpose.to_string().starts_with("essential") {
            return false;
        }
        let descriptor = self.executor.registry().connectors[connector]
            .connector
            .descriptor();
        descriptor.purposes.as_ref().is_none_or(|served| {
            served
                .iter()
                .any(|p| purpose.is_within(p) || p.is_within(purpose))
        })
    }

    /// Records the objection, then tells every store that serves the purpose and declares how
    /// (a suppression call) to stop processing the person's records.
    async fn carry_out_objection(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        identity: &Identity,
        lost: &AtomicBool,
    ) -> Result<(), StoreError> {
        let Some(purpose) = input
            .purpose
            .as_deref()
            .and_then(|p| subject_connectors::purpose::DataUse::parse(p).ok())
        else {
            return self.fail(row, "the objection names no valid purpose").await;
        };
        let newly_recorded = self
            .store
            .record_objection(&row.subject_hash, &purpose.to_string(), &row.id)
            .await?;
        if row.planned_at.is_none() {
            let registry = self.executor.registry();
            let planned = self
                .plan_tasks(
                    row,
                    identity,
                    |_| None,
                    |planned| {
                        let connector = &registry.connectors[planned.connector].connector;
                        (self.serves(planned.connector, &purpose) && connector.suppresses(planned.entity))
                            .then(|| self.base_task(planned, TaskAction::Suppress))
                    },
                )
                .await?;
            if planned.is_none() {
                return Ok(());
            }
        }
        self.store
            .set_status(&row.id, RequestStatus::InProgress, None)
            .await?;
        let completed = self
            .run_tasks(row, lost, |mut task| async move {
                let Some((c, e)) = self.locate(&task) else {
                    self.task_failed(
                        row,
                        &mut task,
                        "the entity is no longer registered".into(),
                        "UNKNOWN_ENTITY",
                    )
                    .await?;
                    return Ok((task, TaskEnd::Failed));
                };
                let lookup = self
                    .decode_lookup(c, e, task.lookup.as_deref())
                    .unwrap_or(LookupRequest {
                        entity: e,
                        by: Vec::new(),
                    });
                let connector = &self.executor.registry().connectors[c].connector;
                let (mut task, result) = self
                    .attempt_task(row, task, || connector.suppress(&lookup))
                    .await?;
                match result {
                    Ok(WriteOutcome::Done { records } | WriteOutcome::Pending { records, .. }) => {
                        task.records = Some(records as i64);
                        self.task_done(row, &mut task).await?;
                        Ok((task, TaskEnd::Done))
                    }
                    Err(error) => {
                        self.task_failed(row, &mut task, error.to_string(), error.code())
                            .await?;
                        Ok((task, TaskEnd::Failed))
                    }
                }
            })
            .await?;
        if lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !completed {
            return self.fail_with_tasks(row).await;
        }
        let registry = self.executor.registry();
        let served_by: Vec<String> = (0..registry.connectors.len())
            .filter(|c| self.serves(*c, &purpose))
            .map(|c| registry.connectors[c].connector.descriptor().name.clone())
            .collect();
        let mut receipt = self.receipt(row, "objection").await?;
        receipt["objection"] = json!({
            "purpose": purpose.to_string(),
            "newlyRecorded": newly_recorded,
            "storesServingThePurpose": served_by,
        });
        self.finish(row, receipt, None).await
    }
}

/// Per entity of a connector, the order its erasure runs in: an entity found through another
/// entity's identities (sessions through users) runs before it, so that foreign keys hold.
fn stages(descriptor: &subject_connectors::ConnectorDescriptor) -> Vec<i64> {
    let entities = &descriptor.entities;
    let mut depth = vec![0i64; entities.len()];
    for _ in 0..entities.len() {
        let mut changed = false;
        for (e, entity) in entities.iter().enumerate() {
            for (f, other) in entities.iter().enumerate() {
                if e == f {
                    continue;
                }
                let reached_through = other
                    .yields
                    .iter()
                    .any(|y| entity.lookups.iter().any(|l| l.kind == y.kind));
                if reached_through && depth[e] < depth[f] + 1 && depth[f] < entities.len() as i64 {
                    depth[e] = depth[f] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    depth.into_iter().map(|d| -d).collect()
}

/// A record's timestamp (RFC 3339) or date (`YYYY-MM-DD`, midnight UTC).
fn record_date(text: &str) -> Option<chrono::DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

fn erasure_name(erasure: &subject_connectors::FieldErasure) -> &'static str {
    match erasure {
        subject_connectors::FieldErasure::Keep => "keep",
        subject_connectors::FieldErasure::Null => "null",
        subject_connectors::FieldErasure::Redact(_) => "redact",
        subject_connectors::FieldErasure::Pseudonymize => "pseudonymize",
    }
}

fn encode_lookup(lookup: &LookupRequest) -> String {
    let stored: Vec<(usize, Vec<&str>)> = lookup
        .by
        .iter()
        .map(|(l, values)| (*l, values.iter().map(|v| v.expose()).collect()))
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

fn encode_records(records: &[Record]) -> String {
    let stored: Vec<Vec<StoredValue>> = records
        .iter()
        .map(|r| r.iter().map(StoredValue::from).collect())
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

fn decode_records(text: Option<&str>) -> Vec<Record> {
    text.and_then(|t| serde_json::from_str::<Vec<Vec<StoredValue>>>(t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.into_iter().map(Value::from).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_state_database() {
        let records = vec![vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(7),
            Value::Float(1.5),
            Value::String("x".into()),
            Value::Json(json!({"a": [1]})),
        ]];
        assert_eq!(decode_records(Some(&encode_records(&records))), records);
    }
}
