//! Retention that ends. When an erasure completes, every record it retained (entity action
//! `retain`) is scheduled in `retain_until` with the day its retention ends; when that passes,
//! a gateway — any replica — claims the due records under a lease, erases them as declared for
//! after retention (`after_retention`: delete, or pseudonymize what is left) by the key the
//! erasure kept, looks again (verification), and in one transaction marks them ENDED and appends
//! the outcome to the original request's receipt (an amendment; the receipt's new SHA-256 goes to
//! the audit trail and the request's events). Nobody has to ask.
//!
//! A gateway killed mid-run holds a lease that runs out; the next run does the same again (the
//! erasure is idempotent: keys gone and values masked already change nothing) and records it
//! once, since only the lease holder's transaction can mark the rows ENDED.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use subject_connectors::mask::Pseudonymizer;
use subject_connectors::{AfterRetention, EntityErasure, Value, WriteOutcome};
use subject_schema::audit::{AuditEntry, AuditLog};
use subject_schema::retention::{
    RetentionEntry, RetentionError, RetentionPage, RetentionSchedule, RetentionStatus,
};

use super::PrivacyEngine;
use super::kept::{StoredValue, decode_records};
use super::retention_store::{Ended, NewRetained, RetainedRow};
use super::state::{RequestStatus, TaskAction};
use super::store::{self, RequestRow, StoreError};

/// Records claimed per run.
const CLAIM: usize = 200;

impl PrivacyEngine {
    /// Schedules the end of every record the erasure `row` retained, by the key its task kept
    /// (called when the erasure completes, before the kept records are forgotten).
    pub(super) async fn schedule_retention(&self, row: &RequestRow) -> Result<(), StoreError> {
        let registry = self.executor.registry();
        let mut scheduled = Vec::new();
        for task in self.store.tasks(&row.id).await? {
            if task.action != TaskAction::Retain {
                continue;
            }
            let Some((c, e)) = self.locate(&task) else {
                continue;
            };
            let entity = &registry.connectors[c].connector.descriptor().entities[e];
            let Some(pk) = entity.primary_key else {
                continue;
            };
            for record in decode_records(task.known.as_deref()) {
                let Some(key) = record.get(pk).filter(|k| !k.is_null()) else {
                    continue;
                };
                let Some(until) = self.retain_until(c, e, std::slice::from_ref(&record)) else {
                    continue;
                };
                scheduled.push(NewRetained {
                    request_id: row.id.clone(),
                    connector: task.connector.clone(),
                    entity: task.entity.clone(),
                    subject_hash: row.subject_hash.clone(),
                    record_key: serde_json::to_string(&StoredValue::from(key)).unwrap_or_default(),
                    legal_basis: task.legal_basis.clone(),
                    retain_until: until,
                    after_retention: entity.erasure.after_retention.as_str(),
                });
            }
        }
        self.store.schedule_retained(&scheduled).await
    }

    /// Ends due retentions until the process ends: every poll interval, or at once while there
    /// is more due.
    pub(super) async fn retention_loop(self: Arc<Self>) {
        loop {
            match self.end_due_retentions().await {
                Ok(ended) if ended > 0 => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not look for retentions that ended"),
            }
            tokio::time::sleep(self.poll_interval().max(Duration::from_millis(200))).await;
        }
    }

    /// "Now" for retention: the clock moved by `[requests] retention_clock_skew_days` (tests and
    /// drills only).
    fn retention_now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::days(self.settings.retention_clock_skew_days)
    }

    /// Claims the due records and ends them, grouped per request and entity; how many groups.
    async fn end_due_retentions(&self) -> Result<usize, StoreError> {
        let lease = store::stamp(Utc::now() + self.lease_length());
        let due = store::stamp(self.retention_now());
        let rows = self
            .store
            .claim_retained(&self.owner, &lease, &due, CLAIM)
            .await?;
        let mut groups: BTreeMap<(String, String, String, String), Vec<RetainedRow>> = BTreeMap::new();
        for row in rows {
            let key = (
                row.request_id.clone(),
                row.connector.clone(),
                row.entity.clone(),
                row.after_retention.clone(),
            );
            groups.entry(key).or_default().push(row);
        }
        let count = groups.len();
        for (_, group) in groups {
            self.end_group(group).await?;
        }
        Ok(count)
    }

    /// Erases one group's records as declared, verifies, and records the end.
    async fn end_group(&self, rows: Vec<RetainedRow>) -> Result<(), StoreError> {
        let Some(first) = rows.first().cloned() else {
            return Ok(());
        };
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let retry = |attempts: i64| {
            let wait = self.poll_interval().as_millis() as i64 * (1i64 << attempts.clamp(1, 12));
            store::stamp(Utc::now() + chrono::Duration::milliseconds(wait.min(3_600_000)))
        };
        let registry = self.executor.registry();
        let located = registry
            .connectors
            .iter()
            .position(|r| r.connector.descriptor().name == first.connector)
            .and_then(|c| {
                let e = registry.connectors[c]
                    .connector
                    .descriptor()
                    .entities
                    .iter()
                    .position(|e| e.name == first.entity)?;
                Some((c, e))
            });
        let Some((c, e)) = located else {
            let message = "UNKNOWN_ENTITY: the connector or entity is no longer declared";
            return self
                .store
                .retry_retained(&ids, &self.owner, message, &retry(first.attempts))
                .await;
        };
        let connector = &registry.connectors[c].connector;
        let entity = &connector.descriptor().entities[e];
        let after = AfterRetention::parse(&first.after_retention).unwrap_or_default();
        let action = match after {
            AfterRetention::Delete => EntityErasure::Delete,
            AfterRetention::Pseudonymize => EntityErasure::Mask(entity.pseudonymized_after_retention()),
        };
        let keys: Vec<Value> = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<StoredValue>(&r.record_key).ok())
            .map(Value::from)
            .collect();
        if keys.len() != rows.len() {
            let message = "INVALID_TASK: a scheduled record key is unreadable";
            return self
                .store
                .retry_retained(&ids, &self.owner, message, &retry(first.attempts))
                .await;
        }
        let outcome = match connector.erase_keys(e, &keys, &action, &self.pseudonyms).await {
            Ok(WriteOutcome::Done { records } | WriteOutcome::Pending { records, .. }) => {
                match connector.fetch_keys(e, &keys).await {
                    Ok(left) => {
                        let unerased = match &action {
                            EntityErasure::Delete => left.len(),
                            EntityErasure::Mask(fields) => left
                                .iter()
                                .filter(|r| {
                                    !fields.iter().all(|(f, erasure)| {
                                        r.get(*f).is_some_and(|v| Pseudonymizer::is_masked(erasure, v))
                                    })
                                })
                                .count(),
                        };
                        if unerased == 0 {
                            Ok(records)
                        } else {
                            Err(format!(
                                "VERIFICATION_FAILED: {unerased} record(s) still there after the retention ended"
                            ))
                        }
                    }
                    Err(error) => Err(format!(
                        "{}: verification could not look again: {error}",
                        error.code()
                    )),
                }
            }
            Err(error) => Err(format!("{}: {error}", error.code())),
        };
        let records = match outcome {
            Ok(records) => records,
            Err(message) => {
                tracing::warn!(request = %first.request_id, connector = %first.connector, entity = %first.entity,
                    error = %message, "a retention end failed; it is tried again");
                metrics::counter!("subject_gateway_retention_failures_total").increment(1);
                return self
                    .store
                    .retry_retained(&ids, &self.owner, &message, &retry(first.attempts))
                    .await;
            }
        };
        let retained_until = rows
            .iter()
            .map(|r| r.retain_until.as_str())
            .max()
            .unwrap_or_default();
        let amendment = json!({
            "type": "retention.ended",
            "at": store::now(),
            "connector": first.connector,
            "entity": first.entity,
            "action": after.as_str(),
            "scheduled": rows.len(),
            "records": records,
            "legalBasis": first.legal_basis,
            "retainedUntil": retained_until,
            "verified": true,
            "verification": "a fresh lookup by the retained records' keys found none left unerased",
        });
        let pseudonyms = self.pseudonyms.clone();
        let forget = move |key: &str| pseudonyms.pseudonym(key);
        let digest = match self
            .store
            .end_retained(&rows, &self.owner, amendment, forget)
            .await?
        {
            Ended::Recorded(digest) => digest,
            Ended::LeaseLost => return Ok(()),
        };
        let message = format!(
            "retention ended: {}.{}: {} record(s) {}; receipt amended, sha256 {digest}",
            first.connector,
            first.entity,
            records,
            match after {
                AfterRetention::Delete => "deleted",
                AfterRetention::Pseudonymize => "pseudonymized",
            }
        );
        self.event(
            &first.request_id,
            "retention.ended",
            &message,
            RequestStatus::Completed,
        )
        .await;
        let entry = AuditEntry {
            actor: "gateway".into(),
            role: "system".into(),
            purpose: "essential.legal_obligation".into(),
            action: "erasure.retention_ended".into(),
            subjects: Vec::new(),
            detail: json!({
                "request": first.request_id,
                "subject": first.subject_hash,
                "connector": first.connector,
                "entity": first.entity,
                "action": after.as_str(),
                "records": records,
                "receiptSha256": digest,
            }),
        };
        if let Err(error) = AuditLog::append(self.audit.as_ref(), entry).await {
            tracing::error!(error = %error, "could not append a retention end to the audit trail");
        }
        metrics::counter!("subject_gateway_retention_ended_total", "action" => after.as_str()).increment(1);
        tracing::info!(request = %first.request_id, connector = %first.connector, entity = %first.entity,
            records, "retention ended");
        Ok(())
    }
}

#[async_trait]
impl RetentionSchedule for PrivacyEngine {
    async fn schedule(&self, first: usize, after: Option<String>) -> Result<RetentionPage, RetentionError> {
        let cursor =
            match after.as_deref() {
                None => None,
                Some(text) => Some(text.split_once('|').ok_or_else(|| {
                    RetentionError::Invalid("after: not a cursor of retentionSchedule".into())
                })?),
            };
        let mut rows = self
            .store
            .retained_page(cursor, first + 1)
            .await
            .map_err(|e| RetentionError::Unavailable(e.to_string()))?;
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        let at = store::now();
        let end_cursor = rows.last().map(|r| format!("{}|{}", r.retain_until, r.id));
        let entries = rows
            .into_iter()
            .map(|r| RetentionEntry {
                status: if r.status == "ENDED" {
                    RetentionStatus::Ended
                } else if r.lease_owner.is_some() && r.lease_until > at {
                    RetentionStatus::Running
                } else {
                    RetentionStatus::Scheduled
                },
                id: r.id,
                request_id: r.request_id,
                connector: r.connector,
                entity: r.entity,
                legal_basis: r.legal_basis,
                retain_until: r.retain_until,
                after_retention: r.after_retention,
                attempts: r.attempts,
                ended_at: r.ended_at,
                last_error: r.last_error,
            })
            .collect();
        Ok(RetentionPage {
            entries,
            end_cursor,
            has_next_page,
        })
    }
}
