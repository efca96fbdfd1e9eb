//! Objection: recording that the person objects to a purpose and telling every store that serves
//! the purpose (and declares a suppression call) to stop processing the person's records.

use async_trait::async_trait;
use serde_json::{Value as Json, json};
use subject_connectors::LookupRequest;
use subject_connectors::purpose::DataUse;

use super::PrivacyEngine;
use super::driver::{Acted, Completion, Driver, Job};
use super::kept::{PlannedEntity, SubjectPlan};
use super::state::{RequestKind, TaskAction};
use super::store::{StoreError, TaskRow};

/// Objection's driver: the objection is recorded first (every run: recording is idempotent), then
/// a suppression task for every entity of a store that serves the purpose and declares one.
pub(super) struct Objection {
    purpose: DataUse,
    /// Whether this run recorded the objection (false: it was on record already).
    newly_recorded: bool,
}

#[async_trait]
impl Driver for Objection {
    const KIND: RequestKind = RequestKind::Objection;

    async fn prepare(engine: &PrivacyEngine, job: &Job<'_>) -> Result<Result<Self, String>, StoreError> {
        let Some(purpose) = job.input.purpose.as_deref().and_then(|p| DataUse::parse(p).ok()) else {
            return Ok(Err("the objection names no valid purpose".into()));
        };
        let newly_recorded = engine
            .store
            .record_objection(&job.row.subject_hash, &purpose.to_string(), &job.row.id)
            .await?;
        Ok(Ok(Objection {
            purpose,
            newly_recorded,
        }))
    }

    fn task(&self, engine: &PrivacyEngine, _: &Job<'_>, planned: &PlannedEntity) -> Option<TaskRow> {
        let connector = &engine.executor.registry().connectors[planned.connector].connector;
        (engine.serves(planned.connector, &self.purpose) && connector.suppresses(planned.entity))
            .then(|| engine.base_task(planned, TaskAction::Suppress))
    }

    async fn act(&self, engine: &PrivacyEngine, job: &Job<'_>, task: TaskRow) -> Acted {
        let stored = task.lookup.clone();
        engine
            .write_task(
                job.row,
                task,
                |c, e| {
                    let lookup = engine
                        .decode_lookup(c, e, stored.as_deref())
                        .unwrap_or(LookupRequest {
                            entity: e,
                            by: Vec::new(),
                        });
                    let connector = &engine.executor.registry().connectors[c].connector;
                    async move { connector.suppress(&lookup).await }
                },
                |_, _| async { None },
            )
            .await
    }

    async fn complete(
        &mut self,
        engine: &PrivacyEngine,
        _: &Job<'_>,
        _: Option<&SubjectPlan>,
        receipt: &mut Json,
    ) -> Completion {
        let registry = engine.executor.registry();
        let served_by: Vec<String> = (0..registry.connectors.len())
            .filter(|c| engine.serves(*c, &self.purpose))
            .map(|c| registry.connectors[c].connector.descriptor().name.clone())
            .collect();
        receipt["objection"] = json!({
            "purpose": self.purpose.to_string(),
            "newlyRecorded": self.newly_recorded,
            "storesServingThePurpose": served_by,
        });
        Ok(Ok(None))
    }
}

impl PrivacyEngine {
    /// Whether a connector serves `purpose` (so an objection to it concerns the connector).
    /// Essential processing is not objected to: it is what the service is.
    pub(super) fn serves(&self, connector: usize, purpose: &DataUse) -> bool {
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
}
