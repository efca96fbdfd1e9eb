//! Batched erases: an HTTP entity whose erase declares `max_batch` (a vendor that takes one
//! deletion call a second but many ids per call) has the deletions of concurrent requests
//! coalesced into one call and one job.
//!
//! A request's task finds its records (`Connector::batch_items`), joins an OPEN batch of its
//! connector and entity — its values stored with it — and waits: the task and the request are
//! WAITING, and no worker claims the request while its member is OPEN. Any gateway's batch loop
//! claims a batch under a lease once it is full or its window passed (that claim closes it),
//! makes the one call with every member's values (`Connector::erase_batch`; 429 and 5xx are
//! ridden out by the connector, transient failures retried with backoff), stores the vendor's
//! job id, and polls the job. Its end settles every member and wakes their requests in one
//! transaction: SUCCEEDED — each task is done (its own records counted) and its request goes on
//! to verification, which looks the person up afresh; FAILED — each task fails naming the job.
//!
//! A gateway killed after the call and before the job id is stored leaves the batch SENDING:
//! when its lease runs out the next gateway sends the same values again (at least once: vendor
//! deletions are idempotent, and the orphaned first job deletes the same people). A member whose
//! request was cancelled before the call is left out of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use subject_connectors::codes::ErrorCode;
use subject_connectors::{ConnectorError, EraseBatching, ErasureRequest, JobHandle, JobStatus};

use super::PrivacyEngine;
use super::batch_store::BatchRow;
use super::driver::Acted;
use super::state::{RequestStatus, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use super::tasks::{TaskEnd, jitter};

impl PrivacyEngine {
    /// Whether any registered entity batches its erase (else the batch loop does not run).
    fn batches_any(&self) -> bool {
        self.executor.registry().connectors.iter().any(|r| {
            (0..r.connector.descriptor().entities.len()).any(|e| r.connector.erase_batching(e).is_some())
        })
    }

    /// Carries out the erase task of a batched entity: joins a batch (the request then waits),
    /// or, woken when the batch ended, follows its outcome.
    pub(super) async fn batched_erase(
        &self,
        row: &RequestRow,
        mut task: TaskRow,
        c: usize,
        request: ErasureRequest,
        batching: EraseBatching,
    ) -> Acted {
        if task.status == TaskStatus::Waiting
            && let Some((member, batch)) = self.store.member(&row.id, task.position).await?
        {
            {
                let job = batch.job_id.clone().unwrap_or_else(|| "(none)".into());
                match member.status.as_str() {
                    "OPEN" => return Ok((task, TaskEnd::Waiting)),
                    "SUCCEEDED" => {
                        task.records = Some(member.records);
                        task.jobs = serde_json::to_string(&[&job]).ok();
                        self.task_done(row, &mut task).await?;
                        return Ok((task, TaskEnd::Done));
                    }
                    "FAILED" => {
                        task.jobs = serde_json::to_string(&[&job]).ok();
                        let message = format!(
                            "the shared deletion job {job} (batch {}, {} record(s) of several requests) failed: {}",
                            batch.id,
                            batch.items.unwrap_or(batch.members),
                            batch.error.as_deref().unwrap_or("no reason given")
                        );
                        let code = batch
                            .error_code
                            .clone()
                            .unwrap_or_else(|| ErrorCode::JobFailed.as_str().into());
                        self.task_failed(row, &mut task, message, &code).await?;
                        return Ok((task, TaskEnd::Failed));
                    }
                    // SKIPPED (cancelled, then retried): join again.
                    _ => {}
                }
            }
        }
        let connector = &self.executor.registry().connectors[c].connector;
        let (mut task, result) = self
            .attempt_task(row, task, || connector.batch_items(&request))
            .await?;
        let found = match result {
            Ok(found) => found,
            Err(error) => {
                self.task_failed(row, &mut task, error.to_string(), error.code())
                    .await?;
                return Ok((task, TaskEnd::Failed));
            }
        };
        if found.items.is_empty() {
            task.records = Some(0);
            self.task_done(row, &mut task).await?;
            return Ok((task, TaskEnd::Done));
        }
        if found.items.len() > batching.max_batch {
            let error = ConnectorError::TooManyRecords {
                found: found.items.len() as u64,
                limit: batching.max_batch as u64,
            };
            self.task_failed(
                row,
                &mut task,
                format!("{error} (more than max_batch)"),
                error.code(),
            )
            .await?;
            return Ok((task, TaskEnd::Failed));
        }
        let items = serde_json::to_string(&found.items).map_err(|_| StoreError::Query)?;
        task.records = Some(found.records as i64);
        let batch = self
            .store
            .join_batch(
                &task,
                batching,
                found.records as i64,
                &items,
                found.items.len() as i64,
            )
            .await?;
        task.status = TaskStatus::Waiting;
        self.store
            .set_status(&row.id, RequestStatus::Waiting, None)
            .await?;
        self.event(
            &row.id,
            "task.waiting",
            &format!(
                "{}.{}: {} record(s) joined deletion batch {batch} (one call and one job shared with concurrent requests)",
                task.connector, task.entity, found.records
            ),
            RequestStatus::Waiting,
        )
        .await;
        Ok((task, TaskEnd::Waiting))
    }

    /// Sends and follows batches until the process ends (only when some entity batches).
    pub(super) async fn batch_loop(self: Arc<Self>) {
        if !self.batches_any() {
            return;
        }
        loop {
            match self.batch_step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => tracing::warn!(error = %error, "could not work on erase batches"),
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    /// Claims one batch with work due and does it: the call, or one poll of its job. `false`
    /// when there was none.
    async fn batch_step(self: &Arc<Self>) -> Result<bool, StoreError> {
        let lease = store::stamp(Utc::now() + self.lease_length());
        let Some(batch) = self.store.claim_batch(&self.owner, &lease).await? else {
            return Ok(false);
        };
        let registry = self.executor.registry();
        let located = registry.connectors.iter().enumerate().find_map(|(c, r)| {
            let d = r.connector.descriptor();
            (d.name == batch.connector)
                .then(|| {
                    d.entities
                        .iter()
                        .position(|e| e.name == batch.entity)
                        .map(|e| (c, e))
                })
                .flatten()
        });
        let Some((c, e)) = located else {
            self.end_batch(
                &batch,
                Err((
                    "the connector or entity is no longer registered".into(),
                    ErrorCode::UnknownEntity.as_str(),
                )),
            )
            .await?;
            return Ok(true);
        };
        match batch.status.as_str() {
            "SENDING" => self.send_batch(&batch, c, e).await?,
            "SENT" => self.poll_batch(&batch, c).await?,
            _ => {}
        }
        Ok(true)
    }

    /// Makes a closed batch's one call, with every open member's values, its lease renewed
    /// meanwhile; stores the job id.
    async fn send_batch(self: &Arc<Self>, batch: &BatchRow, c: usize, e: usize) -> Result<(), StoreError> {
        let mut items: Vec<serde_json::Value> = Vec::new();
        let mut requests = 0;
        for member in self.store.open_members(&batch.id).await? {
            if member.request_status == RequestStatus::Cancelled.as_str() {
                self.store.skip_member(&member).await?;
                continue;
            }
            let values: Vec<serde_json::Value> = member
                .items
                .as_deref()
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or_default();
            if values.is_empty() {
                // Never a silent miss: a member whose values cannot be read fails with the batch
                // rather than being left out of the call.
                return self
                    .end_batch(
                        batch,
                        Err((
                            "a member's stored values are unreadable".into(),
                            ErrorCode::InvalidTask.as_str(),
                        )),
                    )
                    .await;
            }
            items.extend(values);
            requests += 1;
        }
        items.sort_by_key(|i| i.to_string());
        items.dedup();
        if items.is_empty() {
            return self.end_batch(batch, Ok(())).await;
        }
        let renewer = self.renew_batch_lease(&batch.id);
        let connector = &self.executor.registry().connectors[c].connector;
        let sent = connector.erase_batch(e, &items).await;
        renewer.abort();
        match sent {
            Ok(JobHandle(job)) => {
                let poll_at = store::stamp(
                    Utc::now() + chrono::Duration::milliseconds(self.poll_interval().as_millis() as i64),
                );
                if !self
                    .store
                    .batch_sent(&batch.id, &self.owner, &job, items.len() as i64, &poll_at)
                    .await?
                {
                    tracing::warn!(batch = %batch.id, "erase batch lease lost after its call; it is sent again");
                }
                tracing::info!(batch = %batch.id, connector = %batch.connector, entity = %batch.entity,
                    requests, items = items.len(), "erase batch sent");
                metrics::counter!("subject_gateway_erase_batches_sent_total").increment(1);
                Ok(())
            }
            Err(error)
                if error.is_transient() && batch.attempts + 1 < i64::from(self.settings.max_attempts) =>
            {
                let wait = jitter(Duration::from_millis(200u64 << (batch.attempts + 1).clamp(0, 6)));
                let until = store::stamp(
                    Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero()),
                );
                self.store
                    .batch_later(&batch.id, &self.owner, &until, Some(&error.to_string()))
                    .await
            }
            Err(error) => {
                self.end_batch(batch, Err((error.to_string(), error.code())))
                    .await
            }
        }
    }

    /// Polls a sent batch's job once: ended, it settles the batch; running, it is given back
    /// until the next poll; past the job timeout it fails.
    async fn poll_batch(&self, batch: &BatchRow, c: usize) -> Result<(), StoreError> {
        let job = batch.job_id.clone().unwrap_or_default();
        let sent = batch
            .sent_at
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|s| s.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let connector = &self.executor.registry().connectors[c].connector;
        let next_poll = || {
            store::stamp(Utc::now() + chrono::Duration::milliseconds(self.poll_interval().as_millis() as i64))
        };
        match connector.job_status(&JobHandle(job)).await {
            Ok(JobStatus::Succeeded) => self.end_batch(batch, Ok(())).await,
            Ok(JobStatus::Failed(reason)) => {
                self.end_batch(
                    batch,
                    Err((
                        format!("the store's job failed: {reason}"),
                        ErrorCode::JobFailed.as_str(),
                    )),
                )
                .await
            }
            _ if Utc::now() - sent > chrono::Duration::seconds(self.settings.job_timeout_seconds as i64) => {
                self.end_batch(
                    batch,
                    Err((
                        "the store's job did not finish in time".into(),
                        ErrorCode::JobTimeout.as_str(),
                    )),
                )
                .await
            }
            Ok(JobStatus::Running) => {
                self.store
                    .batch_later(&batch.id, &self.owner, &next_poll(), None)
                    .await
            }
            Err(error) if error.is_transient() => {
                self.store
                    .batch_later(&batch.id, &self.owner, &next_poll(), Some(&error.to_string()))
                    .await
            }
            Err(error) => {
                self.end_batch(
                    batch,
                    Err((format!("polling the job failed: {error}"), error.code())),
                )
                .await
            }
        }
    }

    /// Settles a batch and wakes its members' requests.
    async fn end_batch(
        &self,
        batch: &BatchRow,
        outcome: Result<(), (String, &str)>,
    ) -> Result<(), StoreError> {
        let (status, error) = match &outcome {
            Ok(()) => ("SUCCEEDED", None),
            Err((message, code)) => ("FAILED", Some((message.as_str(), *code))),
        };
        if self
            .store
            .settle_batch(&batch.id, &self.owner, status, error)
            .await?
        {
            tracing::info!(batch = %batch.id, connector = %batch.connector, entity = %batch.entity, status, "erase batch ended");
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Keeps a batch's lease renewed while its call is made (a call riding out rate limits can
    /// outlast one lease).
    fn renew_batch_lease(self: &Arc<Self>, id: &str) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let every = Duration::from_millis((engine.settings.lease_seconds.max(1) * 1000) / 3);
            loop {
                tokio::time::sleep(every).await;
                let until = store::stamp(Utc::now() + engine.lease_length());
                if let Ok(false) = engine.store.renew_batch(&id, &engine.owner, &until).await {
                    return;
                }
            }
        })
    }
}
