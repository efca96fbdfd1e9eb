//! One driver per request kind behind [`Driver`], and the one skeleton they all run through
//! ([`PrivacyEngine::drive`]): prepare -> plan (vetoed before it is stored) -> act on every task
//! (the shared runner) -> verify -> receipt -> finish -> after.
//!
//! A kind is one file implementing `Driver` (`erasure`, `rectification`, `objection`, `export`)
//! plus one line in `worker::carry_out`, the only place that looks at a request's kind.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::Value as Json;
use subject_connectors::Identity;

use super::kept::{PlannedEntity, SubjectPlan};
use super::state::{RequestKind, RequestStatus};
use super::store::{RequestRow, StoreError, TaskRow};
use super::tasks::TaskEnd;
use super::{PrivacyEngine, RequestInput};

/// One run of one claimed request: what it is, what it was submitted with, the person, and
/// whether the lease was lost (another gateway carries on).
pub(super) struct Job<'a> {
    pub row: &'a RequestRow,
    pub input: &'a RequestInput,
    pub identity: &'a Identity,
    pub lost: &'a AtomicBool,
}

impl Job<'_> {
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// How acting on a task ended, with the task as it now stands.
pub(super) type Acted = Result<(TaskRow, TaskEnd), StoreError>;

/// How a request completes: `Ok(export)` finishes it (keeping `export` as its bundle),
/// `Err(message)` fails it.
pub(super) type Completion = Result<Result<Option<String>, String>, StoreError>;

/// What one kind of privacy request does at each step of [`PrivacyEngine::drive`].
#[async_trait]
pub(super) trait Driver: Send + Sync + Sized {
    /// The kind it carries out (receipts, metrics).
    const KIND: RequestKind;

    /// Plans afresh on every run rather than resuming the stored plan (export: its bundle is
    /// written from the records the plan found).
    const REPLANS: bool = false;

    /// Sets up one run; `Err(message)` fails the request before anything is planned.
    async fn prepare(engine: &PrivacyEngine, job: &Job<'_>) -> Result<Result<Self, String>, StoreError>;

    /// Refuses a plan before it is stored: nothing is changed anywhere.
    async fn veto(&self, _engine: &PrivacyEngine, _job: &Job<'_>, _plan: &SubjectPlan) -> Option<String> {
        None
    }

    /// The task for one entity the person was found in, when this kind acts there.
    fn task(&self, engine: &PrivacyEngine, job: &Job<'_>, planned: &PlannedEntity) -> Option<TaskRow>;

    /// Carries one task out (the shared runner calls it for every task not yet settled).
    async fn act(&self, engine: &PrivacyEngine, job: &Job<'_>, task: TaskRow) -> Acted;

    /// Looks again, once every task is done; `false` fails the request (naming the failed tasks).
    async fn verify(&self, _engine: &PrivacyEngine, _job: &Job<'_>) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Adds what this kind proves to the receipt, and says how the request completes.
    async fn complete(
        &mut self,
        _engine: &PrivacyEngine,
        _job: &Job<'_>,
        _plan: Option<&SubjectPlan>,
        _receipt: &mut Json,
    ) -> Completion {
        Ok(Ok(None))
    }

    /// After the request completed.
    async fn after(&self, _engine: &PrivacyEngine, _job: &Job<'_>) {}
}

impl PrivacyEngine {
    /// Carries a request out with driver `D`, from wherever it stopped: a stored plan is resumed,
    /// tasks already done are not done again.
    pub(super) async fn drive<D: Driver>(&self, job: &Job<'_>) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let row = job.row;
        let mut driver = match D::prepare(self, job).await? {
            Ok(driver) => driver,
            Err(message) => return self.fail(row, &message).await,
        };
        let mut plan = None;
        if D::REPLANS || row.planned_at.is_none() {
            match self.plan_tasks(&driver, job).await? {
                Some(planned) => plan = Some(planned),
                None => return Ok(()),
            }
        }
        self.store
            .set_status(&row.id, RequestStatus::InProgress, None)
            .await?;
        let driver_ref = &driver;
        // manual systems: a store without an API gets manual tasks, whatever the kind.
        let waited = &AtomicBool::new(false);
        let completed = self
            .run_tasks(row, job.lost, |task| async move {
                let acted = if self.manual_system(&task).is_none() {
                    driver_ref.act(self, job, task).await
                } else {
                    self.manual_step(row, task).await
                };
                // manual tasks and batched erases wait with the request unclaimed.
                if matches!(acted, Ok((_, TaskEnd::Waiting))) {
                    waited.store(true, Ordering::SeqCst);
                }
                acted
            })
            .await?;
        if job.lost() {
            return Ok(());
        }
        if !completed && waited.load(Ordering::SeqCst) && self.none_failed(row).await? {
            // Not claimed while a task is MANUAL or in an open batch; an outcome recorded
            // meanwhile (or the batch's end) wakes the request, and it is claimed again at once.
            return self.store.set_status(&row.id, RequestStatus::Waiting, None).await;
        }
        if !completed || !driver.verify(self, job).await? {
            return self.fail_with_tasks(row).await;
        }
        let mut receipt = self.receipt(row, D::KIND).await?;
        let export = match driver.complete(self, job, plan.as_ref(), &mut receipt).await? {
            Ok(export) => export,
            Err(message) => return self.fail(row, &message).await,
        };
        self.finish(row, receipt, export).await?;
        driver.after(self, job).await;
        metrics::histogram!("subject_gateway_privacy_request_seconds", "type" => D::KIND.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}
