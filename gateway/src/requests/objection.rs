//! Objection: recording that the person objects to a purpose and telling every store that serves
//! the purpose (and declares a suppression call) to stop processing the person's records; and
//! the objections binding reads ([`Objections`]): when it completes, the objection is on record
//! for the keyed hash of every identity resolution found the person by, so a read for the
//! purpose (or one under it) from any of them withholds the person.

use async_trait::async_trait;
use serde_json::{Value as Json, json};
use subject_connectors::purpose::DataUse;

use subject_schema::audit::SubjectRef;
use subject_schema::objections::{Objected, ObjectionError, Objections, objectable};

use super::PrivacyEngine;
use super::driver::{Acted, Completion, Driver, Job};
use super::kept::{PlannedEntity, SubjectPlan};
use super::state::{RequestKind, TaskAction};
use super::store::{RequestStore, StoreError, TaskRow};

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
        engine
            .write_task(
                job.row,
                task,
                |c, _, lookup| {
                    let connector = &engine.executor.registry().connectors[c].connector;
                    async move { connector.suppress(&lookup).await }
                },
                |_, _, _| async { None },
            )
            .await
    }

    async fn complete(
        &mut self,
        engine: &PrivacyEngine,
        job: &Job<'_>,
        plan: Option<&SubjectPlan>,
        receipt: &mut Json,
    ) -> Completion {
        // Binding at read time: the objection is recorded for every identity of the person. A
        // resumed request (its plan stored by an earlier run) resolves the person again; a store
        // that does not answer fails it (retried), never a partial record.
        let replanned;
        let plan = match plan {
            Some(plan) => plan,
            None => {
                replanned = engine.plan_subject(job.identity).await;
                &replanned
            }
        };
        if !plan.failures.is_empty() {
            let failed: Vec<String> = plan.failures.iter().map(|(c, m)| format!("{c}: {m}")).collect();
            return Ok(Err(format!(
                "the objection could not be recorded for every identity of the person ({})",
                failed.join("; ")
            )));
        }
        let purpose = self.purpose.to_string();
        let mut identities = 0;
        for identity in plan.found.iter().chain(std::iter::once(job.identity)) {
            let hash = engine.subject_hash(identity);
            engine
                .store
                .record_objection(&hash, &purpose, &job.row.id)
                .await?;
            identities += 1;
        }
        let registry = engine.executor.registry();
        let served_by: Vec<String> = (0..registry.connectors.len())
            .filter(|c| engine.serves(*c, &self.purpose))
            .map(|c| registry.connectors[c].connector.descriptor().name.clone())
            .collect();
        receipt["objection"] = json!({
            "purpose": self.purpose.to_string(),
            "newlyRecorded": self.newly_recorded,
            "storesServingThePurpose": served_by,
            "bindsReads": objectable(&self.purpose),
            "identitiesRecorded": identities,
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

impl RequestStore {
    /// The objections on record for any of these subjects (hashed identities):
    /// `(subject_hash, purpose, request_id)`. One query: `subject_hash IN ($1, …)`.
    pub async fn objections_of(
        &self,
        subject_hashes: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut found = Vec::new();
        for chunk in subject_hashes.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT subject_hash, purpose, request_id FROM objections WHERE subject_hash IN ({})",
                placeholders.join(", ")
            );
            let mut query =
                subject_connectors::dynamic_sql::dynamic_query_as::<_, (String, String, String)>(&sql);
            for hash in chunk {
                query = query.bind(hash);
            }
            found.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(found)
    }
}

#[async_trait]
impl Objections for PrivacyEngine {
    async fn binding(
        &self,
        people: &[Vec<SubjectRef>],
        purpose: &DataUse,
    ) -> Result<Vec<Option<Objected>>, ObjectionError> {
        if !objectable(purpose) || people.iter().all(Vec::is_empty) {
            return Ok(vec![None; people.len()]);
        }
        let hashes: Vec<Vec<String>> = people
            .iter()
            .map(|identities| identities.iter().map(|s| self.audit.subject_hash(s)).collect())
            .collect();
        let all: Vec<String> = hashes.iter().flatten().cloned().collect();
        let on_record = self
            .store
            .objections_of(&all)
            .await
            .map_err(|error| ObjectionError(error.to_string()))?;
        Ok(hashes
            .iter()
            .map(|mine| {
                on_record
                    .iter()
                    .filter(|(hash, _, _)| mine.contains(hash))
                    .filter_map(|(_, objected, request)| {
                        let objected_use = DataUse::parse(objected).ok()?;
                        purpose.is_within(&objected_use).then(|| Objected {
                            purpose: objected.clone(),
                            request_id: request.clone(),
                        })
                    })
                    .min_by(|a, b| a.purpose.cmp(&b.purpose))
            })
            .collect())
    }
}
