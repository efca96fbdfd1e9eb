//! Erasure: its driver, and carrying out its tasks — deleting, masking, cascading or retaining
//! per entity, all-or-nothing per store where the store can, deleting the files records name,
//! polling the asynchronous jobs a store starts until they end — then looking the person up
//! afresh in every store: it completes only when nothing is left but masked, retained records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use subject_connectors::codes::ErrorCode;

use async_trait::async_trait;
use serde_json::Value as Json;
use subject_connectors::mask::Pseudonymizer;
use subject_connectors::{
    ConnectorError, EntityErasure, ErasureAction, ErasureRequest, JobHandle, JobStatus, WriteOutcome,
};

use super::driver::{Acted, Completion, Driver, Job};
use super::kept::{PlannedEntity, SubjectPlan, decode_records};
use super::state::{RequestKind, RequestStatus, TaskAction, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use super::tasks::{TaskEnd, jitter};
use super::{PrivacyEngine, RequestInput};

/// Erasure's driver. Safety first: an entity the store would refuse to erase, or a lookup
/// matching more than an entity's limit, stops the erasure before anything is changed anywhere.
pub(super) struct Erasure {
    /// The hashes of every identity the person was found by, read before `finish` forgets the
    /// identities the tasks held: their export bundles are deleted after.
    person: Vec<String>,
}

#[async_trait]
impl Driver for Erasure {
    const KIND: RequestKind = RequestKind::Erasure;

    async fn prepare(_: &PrivacyEngine, _: &Job<'_>) -> Result<Result<Self, String>, StoreError> {
        Ok(Ok(Erasure { person: Vec::new() }))
    }

    async fn veto(&self, engine: &PrivacyEngine, job: &Job<'_>, plan: &SubjectPlan) -> Option<String> {
        let blockers = engine.erasure_blockers().await;
        if let Some(refusal) = engine.blocked_refusal(plan, &blockers) {
            return Some(refusal);
        }
        if job.input.allow_large_matches {
            return None;
        }
        let registry = engine.executor.registry();
        let over: Vec<String> = plan
            .entities
            .iter()
            .filter(|p| p.records.len() as u64 > engine.limit(p.connector, p.entity))
            .map(|p| {
                let d = registry.connectors[p.connector].connector.descriptor();
                format!(
                    "{}.{} matches {} records (limit {})",
                    d.name,
                    d.entities[p.entity].name,
                    p.records.len(),
                    engine.limit(p.connector, p.entity)
                )
            })
            .collect();
        (!over.is_empty()).then(|| {
            format!(
                "{}: nothing was changed: {}; check the plan and submit again with allowLargeMatches",
                ErrorCode::SafetyLimit,
                over.join("; ")
            )
        })
    }

    fn task(&self, engine: &PrivacyEngine, _: &Job<'_>, planned: &PlannedEntity) -> Option<TaskRow> {
        let entity = &engine.executor.registry().connectors[planned.connector]
            .connector
            .descriptor()
            .entities[planned.entity];
        let mut task = engine.base_task(planned, TaskAction::from(&entity.erasure.action));
        task.legal_basis = entity.erasure.legal_basis.clone();
        Some(task)
    }

    async fn act(&self, engine: &PrivacyEngine, job: &Job<'_>, task: TaskRow) -> Acted {
        engine.erase_task(job.row, job.input, task, job.lost).await
    }

    async fn verify(&self, engine: &PrivacyEngine, job: &Job<'_>) -> Result<bool, StoreError> {
        engine.verify_erasure(job.row).await
    }

    async fn complete(
        &mut self,
        engine: &PrivacyEngine,
        job: &Job<'_>,
        _: Option<&SubjectPlan>,
        _: &mut Json,
    ) -> Completion {
        self.person = engine.person_hashes(job.row).await?;
        // retention: every retained record's end is scheduled before the kept records are forgotten.
        engine.schedule_retention(job.row).await?;
        Ok(Ok(None))
    }

    async fn after(&self, engine: &PrivacyEngine, job: &Job<'_>) {
        engine.end_exports(job.row, &self.person).await;
    }
}

impl PrivacyEngine {
    pub(super) async fn erase_task(
        &self,
        row: &RequestRow,
        input: &RequestInput,
        mut task: TaskRow,
        lost: &AtomicBool,
    ) -> Result<(TaskRow, TaskEnd), StoreError> {
        let Some((c, e)) = self.located(row, &mut task).await? else {
            return Ok((task, TaskEnd::Failed));
        };
        let registered = &self.executor.registry().connectors[c];
        let entity = registered.connector.descriptor().entities[e].clone();
        let Some(lookup) = self.decode_lookup(c, e, task.lookup.as_deref()) else {
            self.task_failed(
                row,
                &mut task,
                "the task's lookup is unreadable".into(),
                ErrorCode::InvalidTask.as_str(),
            )
            .await?;
            return Ok((task, TaskEnd::Failed));
        };
        let known = decode_records(task.known.as_deref());
        // batching: a batched task waits on its batch (`batch.rs`), not on jobs of its own.
        let batching = registered
            .connector
            .erase_batching(e)
            .filter(|_| entity.erasure.action == ErasureAction::Delete);
        if task.status == TaskStatus::Waiting && batching.is_none() {
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
        // batching: a batched entity's deletions go out with concurrent requests' (`batch.rs`).
        if let Some(batching) = batching {
            return self.batched_erase(row, task, c, request, batching).await;
        }
        let files_deleted = std::sync::atomic::AtomicI64::new(0);
        let (mut task, result) = self
            .attempt_task(row, task, || async {
                // Files first, then the records naming them: a repeat after a crash finds the
                // records again and their files already gone, which is fine.
                let deleted = self.delete_files(c, e, &request).await?;
                files_deleted.fetch_add(deleted, Ordering::SeqCst);
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
    pub(super) async fn erase_store_together(
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
                    ErrorCode::InvalidTask.as_str(),
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

    /// Deletes the stored files of the records a delete request of entity `e` of connector `c`
    /// finds (now, or when planned); how many were deleted. Nothing for entities that name no
    /// files or are not deleted.
    pub(super) async fn delete_files(
        &self,
        c: usize,
        e: usize,
        request: &ErasureRequest,
    ) -> Result<i64, ConnectorError> {
        let registered = &self.executor.registry().connectors[c];
        let entity = &registered.connector.descriptor().entities[e];
        let (EntityErasure::Delete, Some(_), Some(storage)) =
            (&request.action, &entity.files, &registered.storage)
        else {
            return Ok(0);
        };
        let mut records = self.fetch(c, &request.lookup).await?;
        records.extend(request.known.iter().cloned());
        let mut keys = self.files_of(c, e, &records);
        keys.sort();
        keys.dedup();
        let mut deleted = 0;
        for key in keys {
            if storage.delete(&key).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// [`Self::delete_files`] for every request of one store's batch, in order.
    async fn delete_files_of(
        &self,
        c: usize,
        batch: &[(TaskRow, usize)],
        requests: &[ErasureRequest],
    ) -> Result<Vec<i64>, ConnectorError> {
        let mut counts = Vec::with_capacity(requests.len());
        for ((_, e), request) in batch.iter().zip(requests) {
            counts.push(self.delete_files(c, *e, request).await?);
        }
        Ok(counts)
    }

    /// Polls a task's jobs until every one ended, one failed, or the job timeout passed.
    pub(super) async fn poll_jobs(
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
                            ErrorCode::JobFailed.as_str(),
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
                    ErrorCode::JobTimeout.as_str(),
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
    pub(super) async fn verify_erasure(&self, row: &RequestRow) -> Result<bool, StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        let mut all = true;
        for mut task in tasks {
            // manual systems: attested by the person who did it (the receipt says so), never
            // "verified" by a lookup that cannot read the store.
            if self.manual_system(&task).is_some() {
                continue;
            }
            // A task that cannot be looked up again is not verified: never a silent pass.
            let Some((c, e, lookup)) = self
                .locate(&task)
                .and_then(|(c, e)| Some((c, e, self.decode_lookup(c, e, task.lookup.as_deref())?)))
            else {
                all = false;
                task.verified = Some(false);
                self.task_failed(
                    row,
                    &mut task,
                    "verification could not look the person up: the task's store, entity or lookup is no longer readable"
                        .into(),
                    ErrorCode::VerificationFailed.as_str(),
                )
                .await?;
                continue;
            };
            let registered = &self.executor.registry().connectors[c];
            let entity = &registered.connector.descriptor().entities[e];
            let mut attempt = 0;
            let found = loop {
                attempt += 1;
                match self.fetch(c, &lookup).await {
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
                    self.task_failed(row, &mut task, message, ErrorCode::VerificationFailed.as_str())
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
}
