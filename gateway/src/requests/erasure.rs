//! Erasure: carrying out an erasure request's tasks — deleting, masking, cascading or retaining per
//! entity, all-or-nothing per store where the store can, deleting the files records name, and
//! polling the asynchronous jobs a store starts until they end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use subject_connectors::{
    ConnectorError, EntityErasure, ErasureAction, ErasureRequest, Identity, JobHandle, JobStatus,
    WriteOutcome,
};

use super::state::{RequestKind, RequestStatus, TaskAction, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use super::work::{SubjectPlan, TaskEnd, decode_records, jitter};
use super::{PrivacyEngine, RequestInput};

impl PrivacyEngine {
    pub(super) async fn carry_out_erasure(
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

    pub(super) async fn erase_task(
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
        let mut records = registered.connector.fetch(&request.lookup).await?;
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
}
