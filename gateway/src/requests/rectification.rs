//! Rectification: correcting declared attributes of the person in every store that holds them,
//! then finding the person again by the corrected values.

use async_trait::async_trait;
use subject_connectors::{FieldChange, LookupRequest, Value};

use super::PrivacyEngine;
use super::driver::{Acted, Driver, Job};
use super::kept::PlannedEntity;
use super::state::{RequestKind, TaskAction};
use super::store::{StoreError, TaskRow};

/// Rectification's driver: a task per entity holding a changed attribute; each verified by
/// finding the person again and reading the corrected values back.
pub(super) struct Rectification;

#[async_trait]
impl Driver for Rectification {
    const KIND: RequestKind = RequestKind::Rectification;

    async fn prepare(_: &PrivacyEngine, _: &Job<'_>) -> Result<Result<Self, String>, StoreError> {
        Ok(Ok(Rectification))
    }

    fn task(&self, engine: &PrivacyEngine, job: &Job<'_>, planned: &PlannedEntity) -> Option<TaskRow> {
        (!engine
            .changes_for(planned.connector, planned.entity, &job.input.changes)
            .is_empty())
        .then(|| engine.base_task(planned, TaskAction::Rectify))
    }

    async fn act(&self, engine: &PrivacyEngine, job: &Job<'_>, task: TaskRow) -> Acted {
        let changes = &job.input.changes;
        let connector = |c: usize| &engine.executor.registry().connectors[c].connector;
        engine
            .write_task(
                job.row,
                task,
                |c, e, stored| {
                    let lookup = engine.rectified_lookup(c, stored, changes);
                    let changes = engine.changes_for(c, e, changes);
                    async move { connector(c).rectify(&lookup, &changes).await }
                },
                |c, e, stored| async move {
                    // The records found now hold the corrected values.
                    let lookup = engine.rectified_lookup(c, stored, changes);
                    let field_changes = engine.changes_for(c, e, changes);
                    let corrected = match engine.fetch(c, &lookup).await {
                        Ok(records) => records.iter().all(|r| {
                            field_changes
                                .iter()
                                .all(|change| r.get(change.field) == Some(&change.value))
                        }),
                        Err(_) => false,
                    };
                    Some(if corrected {
                        Ok(())
                    } else {
                        Err("verification found records without the correction".into())
                    })
                },
            )
            .await
    }
}

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

    /// A task's lookup plus the corrected values of changed identity attributes: after an email
    /// changes, the record is found by its new email (and, until then, by the old one).
    pub(super) fn rectified_lookup(
        &self,
        c: usize,
        mut lookup: LookupRequest,
        changes: &[(String, String)],
    ) -> LookupRequest {
        let registry = self.executor.registry();
        let descriptor = &registry.connectors[c].connector.descriptor().entities[lookup.entity];
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
