//! The shared task runner: each connector's tasks in stage order (connectors in parallel), every
//! attempt recorded before it acts, transient failures retried with jittered backoff, and the
//! outcome (done or failed) recorded after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use subject_connectors::codes::ErrorCode;

use futures::future::join_all;
use subject_connectors::{ConnectorError, LookupRequest, WriteOutcome};

use super::PrivacyEngine;
use super::state::{RequestStatus, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use rand::Rng;

/// How one task ended.
pub(super) enum TaskEnd {
    Done,
    Failed,
    /// The lease was lost: another gateway carries on.
    Abandoned,
    /// Waits with the request unclaimed — for a person (a manual task) or for a batched erase
    /// (its batch's job); the store's next tasks still run.
    Waiting,
}

pub(super) fn jitter(base: Duration) -> Duration {
    let millis = base.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}

impl PrivacyEngine {
    /// Runs every connector's pending tasks (connectors in parallel, a connector's tasks in stage
    /// order, stopping at its first failure). `act` carries one task out.
    pub(super) async fn run_tasks<'a, F, Fut>(
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
                let mut waiting = false;
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
                        (_, TaskEnd::Waiting) => waiting = true,
                        (_, TaskEnd::Failed) => return Ok(false),
                        (_, TaskEnd::Abandoned) => return Ok(false),
                    }
                }
                Ok(!waiting)
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
    pub(super) async fn attempt_task<T, Fut>(
        &self,
        row: &RequestRow,
        mut task: TaskRow,
        attempt: impl Fn() -> Fut,
    ) -> Result<(TaskRow, Result<T, ConnectorError>), StoreError>
    where
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
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

    /// Where a task's connector and entity are in the registry. When they are no longer
    /// registered the task fails (`UNKNOWN_ENTITY`) and there is nothing to act on.
    pub(super) async fn located(
        &self,
        row: &RequestRow,
        task: &mut TaskRow,
    ) -> Result<Option<(usize, usize)>, StoreError> {
        if let Some(at) = self.locate(task) {
            return Ok(Some(at));
        }
        self.task_failed(
            row,
            task,
            "the connector or entity is no longer registered".into(),
            ErrorCode::UnknownEntity.as_str(),
        )
        .await?;
        Ok(None)
    }

    /// Carries out a task that writes once per attempt (rectify, suppress) through the lookup
    /// stored with it: `write` is attempted (again while the store fails transiently), the
    /// records it acted on are recorded, then `verify` looks again — `None`: nothing to check;
    /// `Some(Err(problem))` fails the task (`VERIFICATION_FAILED`) — and the task is done. A
    /// stored lookup that cannot be read fails the task (`INVALID_TASK`): writing through an
    /// empty lookup would reach nobody and report it done.
    pub(super) async fn write_task<W, WF, V, VF>(
        &self,
        row: &RequestRow,
        mut task: TaskRow,
        write: W,
        verify: V,
    ) -> Result<(TaskRow, TaskEnd), StoreError>
    where
        W: Fn(usize, usize, LookupRequest) -> WF,
        WF: std::future::Future<Output = Result<WriteOutcome, ConnectorError>>,
        V: FnOnce(usize, usize, LookupRequest) -> VF,
        VF: std::future::Future<Output = Option<Result<(), String>>>,
    {
        let Some((c, e)) = self.located(row, &mut task).await? else {
            return Ok((task, TaskEnd::Failed));
        };
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
        let (mut task, result) = self
            .attempt_task(row, task, || write(c, e, lookup.clone()))
            .await?;
        let records = match result {
            Ok(WriteOutcome::Done { records } | WriteOutcome::Pending { records, .. }) => records,
            Err(error) => {
                self.task_failed(row, &mut task, error.to_string(), error.code())
                    .await?;
                return Ok((task, TaskEnd::Failed));
            }
        };
        task.records = Some(records as i64);
        match verify(c, e, lookup).await {
            None => {}
            Some(Ok(())) => task.verified = Some(true),
            Some(Err(problem)) => {
                task.verified = Some(false);
                self.task_failed(row, &mut task, problem, ErrorCode::VerificationFailed.as_str())
                    .await?;
                return Ok((task, TaskEnd::Failed));
            }
        }
        self.task_done(row, &mut task).await?;
        Ok((task, TaskEnd::Done))
    }

    pub(super) async fn task_failed(
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

    pub(super) async fn task_done(&self, row: &RequestRow, task: &mut TaskRow) -> Result<(), StoreError> {
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
    pub(super) async fn fail_with_tasks(&self, row: &RequestRow) -> Result<(), StoreError> {
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
}
