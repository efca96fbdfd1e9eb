//! Objection: recording that the person objects to a purpose and telling every store that serves
//! the purpose (and declares a suppression call) to stop processing the person's records.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use subject_connectors::{Identity, LookupRequest, WriteOutcome};

use super::state::{RequestStatus, TaskAction};
use super::store::{RequestRow, StoreError};
use super::work::TaskEnd;
use super::{PrivacyEngine, RequestInput};

impl PrivacyEngine {
    /// Whether a connector serves `purpose` (so an objection to it concerns the connector).
    /// Essential processing is not objected to: it is what the service is.
    pub(super) fn serves(&self, connector: usize, purpose: &subject_connectors::purpose::DataUse) -> bool {
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
    pub(super) async fn carry_out_objection(
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
