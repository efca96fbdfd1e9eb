//! Rectification: correcting declared attributes of the person in every store that holds them,
//! then finding the person again by the corrected values.

use std::sync::atomic::{AtomicBool, Ordering};

use subject_connectors::{FieldChange, Identity, LookupRequest, Value, WriteOutcome};

use super::state::{RequestStatus, TaskAction};
use super::store::{RequestRow, StoreError};
use super::work::TaskEnd;
use super::{PrivacyEngine, RequestInput};

impl PrivacyEngine {
    /// The changes an entity takes: its fields declaring a changed attribute.
    pub(super) fn changes_for(
        &self,
        connector: usize,
        entity: usize,
        changes: &[(String, String)],
    ) -> Vec<FieldChange> {
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

    pub(super) async fn carry_out_rectification(
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
    pub(super) fn rectified_lookup(
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
}
