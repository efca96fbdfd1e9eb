//! Planning a request: resolving the person (`plan_subject`), the erasure blockers the live
//! stores report, the `erasurePlan` view, and storing one task per connector and entity in one
//! transaction (`plan_tasks`), children first within a connector so foreign keys hold.

use std::time::Duration;
use subject_connectors::codes::ErrorCode;

use chrono::Utc;
use subject_connectors::{ErasureAction, Identity, LookupRequest, Record, Value};
use subject_schema::SourceState;
use subject_schema::request_views::{PlanEntryView, PlanView};

use super::PrivacyEngine;
use super::driver::{Driver, Job};
use super::kept::{Blockers, PlannedEntity, SubjectPlan, encode_lookup, encode_records};
use super::state::{RequestStatus, TaskAction, TaskStatus};
use super::store::{self, StoreError, TaskRow};
use super::tasks::jitter;

impl PrivacyEngine {
    /// Resolves the person and lists, per connector and entity, the records found and the
    /// lookup that finds them again.
    pub(super) async fn plan_subject(&self, identity: &Identity) -> SubjectPlan {
        let outcome = self.executor.resolve(vec![vec![identity.clone()]]).await;
        let registry = self.executor.registry();
        let mut failures = Vec::new();
        for (c, source) in outcome.sources.iter().enumerate() {
            if source.state != SourceState::Ok {
                let message = source
                    .error
                    .as_ref()
                    .map_or_else(|| "failed".to_owned(), ToString::to_string);
                failures.push((
                    registry.connectors[c].connector.descriptor().name.clone(),
                    message,
                ));
            }
        }
        let Some(subject) = outcome.subjects.first() else {
            return SubjectPlan {
                identities: 0,
                found: Vec::new(),
                entities: Vec::new(),
                failures,
            };
        };
        let mut entities = Vec::new();
        for (c, registered) in registry.connectors.iter().enumerate() {
            let descriptor = registered.connector.descriptor();
            let stages = stages(descriptor);
            for (e, entity) in descriptor.entities.iter().enumerate() {
                let records = subject.records[c][e].clone();
                // manual systems: nothing can be read there, so a person looks.
                let manual = registered.connector.manual().is_some();
                if records.is_empty() && !manual {
                    continue;
                }
                let by = entity
                    .lookups
                    .iter()
                    .enumerate()
                    .filter_map(|(l, link)| {
                        let values: Vec<_> = subject
                            .identities
                            .iter()
                            .filter(|r| r.identity.kind == link.kind)
                            .map(|r| r.identity.value.clone())
                            .collect();
                        (!values.is_empty()).then_some((l, values))
                    })
                    .collect::<Vec<_>>();
                if manual && by.is_empty() {
                    continue;
                }
                entities.push(PlannedEntity {
                    connector: c,
                    entity: e,
                    records,
                    lookup: LookupRequest { entity: e, by },
                    stage: stages[e],
                });
            }
        }
        SubjectPlan {
            identities: subject.identities.len(),
            found: subject.identities.iter().map(|r| r.identity.clone()).collect(),
            entities,
            failures,
        }
    }

    pub(super) fn limit(&self, connector: usize, entity: usize) -> u64 {
        let descriptor = self.executor.registry().connectors[connector]
            .connector
            .descriptor();
        descriptor.entities[entity]
            .erasure
            .max_records
            .unwrap_or(self.settings.max_records_per_entity)
    }

    /// When the retained records are due for deletion: `retention_days` after the latest of the
    /// records' `retain_from` dates, or after now when none is declared (or readable).
    pub(super) fn retain_until(&self, connector: usize, entity: usize, records: &[Record]) -> Option<String> {
        let descriptor = self.executor.registry().connectors[connector]
            .connector
            .descriptor();
        let policy = &descriptor.entities[entity].erasure;
        let days = policy
            .retention_days
            .filter(|_| policy.action == ErasureAction::Retain)?;
        let start = policy
            .retain_from
            .and_then(|field| {
                records
                    .iter()
                    .filter_map(|r| match r.get(field) {
                        Some(Value::String(text)) => record_date(text),
                        _ => None,
                    })
                    .max()
            })
            .unwrap_or_else(Utc::now);
        Some(store::stamp(start + chrono::Duration::days(i64::from(days))))
    }

    /// What the live stores say would make erasing an entity fail or reach other people
    /// (`Connector::erasure_blockers`): `(connector, entity) -> reason`. A store that cannot say
    /// (down, or no answer in its timeout) adds nothing here: planning reports it.
    pub(super) async fn erasure_blockers(&self) -> Blockers {
        let registry = self.executor.registry();
        let asks = registry
            .connectors
            .iter()
            .enumerate()
            .map(|(c, registered)| async move {
                let descriptor = registered.connector.descriptor();
                let asked = registered.connector.erasure_blockers();
                match tokio::time::timeout(descriptor.timeout, asked).await {
                    Ok(Ok(blockers)) => blockers
                        .into_iter()
                        .map(|b| ((c, b.entity), (b.reason, b.unfindable)))
                        .collect::<Vec<_>>(),
                    Ok(Err(error)) => {
                        tracing::warn!(connector = %descriptor.name, code = error.code(), "could not read what would block erasure");
                        Vec::new()
                    }
                    Err(_) => {
                        tracing::warn!(connector = %descriptor.name, "reading what would block erasure timed out");
                        Vec::new()
                    }
                }
            });
        // Files are deleted with the records of deleted entities that name them: their storage
        // must be there and writable, or the erasure would fail halfway or miss the files.
        let storages = registry
            .connectors
            .iter()
            .enumerate()
            .map(|(c, registered)| async move {
                let descriptor = registered.connector.descriptor();
                let deleting: Vec<usize> = (0..descriptor.entities.len())
                    .filter(|e| {
                        let entity = &descriptor.entities[*e];
                        entity.files.is_some() && entity.erasure.action == ErasureAction::Delete
                    })
                    .collect();
                let (Some(storage), false) = (&registered.storage, deleting.is_empty()) else {
                    return Vec::new();
                };
                let problems = tokio::time::timeout(descriptor.timeout, storage.erasure_problems())
                    .await
                    .unwrap_or_else(|_| vec!["the file storage did not answer in time".to_owned()]);
                deleting
                    .into_iter()
                    .flat_map(|e| {
                        problems
                            .iter()
                            .map(move |p| ((c, e), (format!("its files cannot be deleted: {p}"), false)))
                    })
                    .collect::<Vec<_>>()
            });
        let (asked, storages) = tokio::join!(
            futures::future::join_all(asks),
            futures::future::join_all(storages)
        );
        let mut all: Blockers = Blockers::new();
        for (key, (reason, unfindable)) in asked.into_iter().chain(storages).flatten() {
            all.entry(key)
                .and_modify(|(r, u)| {
                    r.push_str("; ");
                    r.push_str(&reason);
                    *u |= unfindable;
                })
                .or_insert((reason, unfindable));
        }
        all
    }

    /// The blocked entities a plan meets: those it acts on, and every unfindable one (the person
    /// may have records there that no lookup can find). Sorted by connector and entity.
    pub(super) fn blocked_in(&self, plan: &SubjectPlan, blockers: &Blockers) -> Vec<(usize, usize, String)> {
        let mut blocked: Vec<(usize, usize, String)> = blockers
            .iter()
            .filter(|((c, e), (_, unfindable))| {
                *unfindable || plan.entities.iter().any(|p| p.connector == *c && p.entity == *e)
            })
            .map(|((c, e), (reason, _))| (*c, *e, reason.clone()))
            .collect();
        blocked.sort();
        blocked
    }

    /// The erasure refusal for a plan meeting blocked entities, naming each `connector.entity`.
    pub(super) fn blocked_refusal(&self, plan: &SubjectPlan, blockers: &Blockers) -> Option<String> {
        let registry = self.executor.registry();
        let blocked: Vec<String> = self
            .blocked_in(plan, blockers)
            .into_iter()
            .map(|(c, e, reason)| {
                let d = registry.connectors[c].connector.descriptor();
                format!("{}.{}: {reason}", d.name, d.entities[e].name)
            })
            .collect();
        (!blocked.is_empty()).then(|| {
            format!(
                "{}: nothing was changed: {}; fix the declaration or the store and submit again",
                ErrorCode::ErasureBlocked,
                blocked.join("; ")
            )
        })
    }

    pub(super) fn plan_view(&self, identity: &Identity, plan: &SubjectPlan, blockers: &Blockers) -> PlanView {
        let registry = self.executor.registry();
        let mut blocked = !plan.failures.is_empty();
        let mut entries = Vec::new();
        for planned in &plan.entities {
            let registered = &registry.connectors[planned.connector];
            let descriptor = registered.connector.descriptor();
            let entity = &descriptor.entities[planned.entity];
            let limit = self.limit(planned.connector, planned.entity);
            let exceeds = planned.records.len() as u64 > limit;
            let supported = match entity.erasure.action {
                ErasureAction::Cascade(_) => true,
                _ => registered.connector.erases(planned.entity),
            };
            let blocked_by = blockers
                .get(&(planned.connector, planned.entity))
                .map(|(reason, _)| reason.clone());
            blocked |= exceeds || !supported || blocked_by.is_some();
            let fields: Vec<String> = entity
                .masked_fields()
                .iter()
                .map(|(f, erasure)| format!("{}: {}", entity.fields[*f].name, erasure_name(erasure)))
                .collect();
            let note = match &entity.erasure.action {
                ErasureAction::Cascade(with) => {
                    Some(format!("removed with `{}`", descriptor.entities[*with].name))
                }
                ErasureAction::Delete if entity.files.is_some() => {
                    Some("the stored files are deleted too".to_owned())
                }
                _ if !supported => Some("the connector cannot erase: declare how".to_owned()),
                _ if registered.connector.manual().is_some() => registered.connector.manual().map(|m| {
                    format!(
                        "by hand: a manual task for role `{}`: {}",
                        m.role,
                        m.instructions.get(planned.entity).map_or("", String::as_str)
                    )
                }),
                _ => None,
            };
            entries.push(PlanEntryView {
                connector: descriptor.name.clone(),
                entity: entity.name.clone(),
                action: entity.erasure.action.as_str().to_owned(),
                records: planned.records.len(),
                files: self
                    .files_of(planned.connector, planned.entity, &planned.records)
                    .len(),
                fields_touched: fields,
                legal_basis: entity.erasure.legal_basis.clone(),
                retain_until: self.retain_until(planned.connector, planned.entity, &planned.records),
                limit: Some(limit),
                exceeds_limit: exceeds,
                supported,
                note,
                blocked_by,
                error: None,
            });
        }
        // Unfindable entities the person was not found in: their records may be there all the same.
        for (c, e, reason) in self.blocked_in(plan, blockers) {
            if plan.entities.iter().any(|p| p.connector == c && p.entity == e) {
                continue;
            }
            let descriptor = registry.connectors[c].connector.descriptor();
            let entity = &descriptor.entities[e];
            blocked = true;
            entries.push(PlanEntryView {
                connector: descriptor.name.clone(),
                entity: entity.name.clone(),
                action: entity.erasure.action.as_str().to_owned(),
                supported: registry.connectors[c].connector.erases(e),
                blocked_by: Some(reason),
                ..PlanEntryView::default()
            });
        }
        for (connector, message) in &plan.failures {
            entries.push(PlanEntryView {
                connector: connector.clone(),
                entity: "*".into(),
                action: "UNKNOWN".into(),
                error: Some(message.clone()),
                ..PlanEntryView::default()
            });
        }
        PlanView {
            subject: self.subject_hash(identity),
            identities: plan.identities,
            blocked,
            entries,
        }
    }

    /// Plans a request's tasks from what resolution found, or fails it when resolution did not
    /// reach every store (retried first: a store that is briefly away should not fail a request).
    pub(super) async fn plan_tasks<D: Driver>(
        &self,
        driver: &D,
        job: &Job<'_>,
    ) -> Result<Option<SubjectPlan>, StoreError> {
        let row = job.row;
        let mut attempt = 0;
        let plan = loop {
            let plan = self.plan_subject(job.identity).await;
            if plan.failures.is_empty() {
                break plan;
            }
            attempt += 1;
            if attempt >= self.settings.max_attempts {
                let failed: Vec<String> = plan.failures.iter().map(|(c, m)| format!("{c}: {m}")).collect();
                self.fail(
                    row,
                    &format!("planning could not reach every store ({})", failed.join("; ")),
                )
                .await?;
                return Ok(None);
            }
            tokio::time::sleep(jitter(Duration::from_millis(200 << attempt.min(6)))).await;
        };
        // Checked before the plan is stored: a plan on record is a plan that may be acted on.
        if let Some(refusal) = driver.veto(self, job, &plan).await {
            self.fail(row, &refusal).await?;
            return Ok(None);
        }
        let mut tasks = Vec::new();
        for planned in &plan.entities {
            if let Some(mut task) = driver.task(self, job, planned) {
                if self.is_manual(planned.connector) {
                    // Done by a person, whatever the kind planned (export: done when planned).
                    task.status = TaskStatus::Pending;
                    task.attempts = 0;
                    (task.started_at, task.finished_at, task.records) = (None, None, None);
                    task.lookup = Some(encode_lookup(&planned.lookup));
                }
                task.request_id = row.id.clone();
                task.position = tasks.len() as i64;
                tasks.push(task);
            }
        }
        self.store.plan(&row.id, &tasks).await?;
        self.event(
            &row.id,
            "planned",
            &format!("{} task(s) across {} store(s)", tasks.len(), {
                let mut c: Vec<&str> = tasks.iter().map(|t| t.connector.as_str()).collect();
                c.sort_unstable();
                c.dedup();
                c.len()
            }),
            RequestStatus::InProgress,
        )
        .await;
        Ok(Some(plan))
    }

    pub(super) fn base_task(&self, planned: &PlannedEntity, action: TaskAction) -> TaskRow {
        let descriptor = self.executor.registry().connectors[planned.connector]
            .connector
            .descriptor();
        let entity = &descriptor.entities[planned.entity];
        TaskRow {
            request_id: String::new(),
            position: 0,
            connector: descriptor.name.clone(),
            entity: entity.name.clone(),
            action,
            stage: planned.stage,
            status: TaskStatus::Pending,
            attempts: 0,
            records: Some(planned.records.len() as i64),
            files: None,
            legal_basis: None,
            retain_until: None,
            verified: None,
            error: None,
            error_code: None,
            started_at: None,
            finished_at: None,
            lookup: Some(encode_lookup(&planned.lookup)),
            known: Some(encode_records(&planned.records)),
            jobs: None,
        }
    }
}

/// Per entity of a connector, the order its erasure runs in: an entity found through another
/// entity's identities (sessions through users) runs before it, so that foreign keys hold.
pub(super) fn stages(descriptor: &subject_connectors::ConnectorDescriptor) -> Vec<i64> {
    let entities = &descriptor.entities;
    let mut depth = vec![0i64; entities.len()];
    for _ in 0..entities.len() {
        let mut changed = false;
        for (e, entity) in entities.iter().enumerate() {
            for (f, other) in entities.iter().enumerate() {
                if e == f {
                    continue;
                }
                let reached_through = other
                    .yields
                    .iter()
                    .any(|y| entity.lookups.iter().any(|l| l.kind == y.kind));
                if reached_through && depth[e] < depth[f] + 1 && depth[f] < entities.len() as i64 {
                    depth[e] = depth[f] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    depth.into_iter().map(|d| -d).collect()
}

/// A record's timestamp (RFC 3339) or date (`YYYY-MM-DD`, midnight UTC).
pub(super) fn record_date(text: &str) -> Option<chrono::DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

pub(super) fn erasure_name(erasure: &subject_connectors::FieldErasure) -> &'static str {
    match erasure {
        subject_connectors::FieldErasure::Keep => "keep",
        subject_connectors::FieldErasure::Null => "null",
        subject_connectors::FieldErasure::Redact(_) => "redact",
        subject_connectors::FieldErasure::Pseudonymize => "pseudonymize",
    }
}
