//! Receipts: the receipt of what was done where (its SHA-256 into the audit trail), finishing a
//! request and forgetting the personal data it kept, and ending the export bundles of an erased
//! person.

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use subject_connectors::Identity;
use subject_schema::audit::AuditEntry;

use super::PrivacyEngine;
use super::state::{RequestKind, RequestStatus, TaskAction};
use super::store::{self, RequestRow, StoreError};

impl PrivacyEngine {
    /// The receipt: what was done where, when, on which legal basis, and the verification.
    pub(super) async fn receipt(&self, row: &RequestRow, kind: RequestKind) -> Result<Json, StoreError> {
        let tasks = self.store.tasks(&row.id).await?;
        let manual = self.manual_outcomes(&row.id).await?;
        let entries: Vec<Json> = tasks
            .iter()
            .map(|t| {
                // manual systems: who did what, as they recorded it.
                let by_hand = manual
                    .iter()
                    .find(|(c, e, _)| *c == t.connector && *e == t.entity)
                    .map(|(_, _, outcome)| outcome.clone());
                let records = t.records.unwrap_or(0);
                let count = |action: &[TaskAction]| {
                    if action.contains(&t.action) { records } else { 0 }
                };
                let mut entry = json!({
                    "connector": t.connector,
                    "entity": t.entity,
                    "action": t.action,
                    "deleted": count(&[TaskAction::Delete, TaskAction::Cascade]),
                    "masked": count(&[TaskAction::Mask]),
                    "retained": count(&[TaskAction::Retain]),
                    "rectified": count(&[TaskAction::Rectify]),
                    "exported": count(&[TaskAction::Export]),
                    "suppressed": count(&[TaskAction::Suppress]),
                    "filesDeleted": if t.action == TaskAction::Delete { t.files } else { None },
                    "legalBasis": t.legal_basis,
                    "retainUntil": t.retain_until,
                    "attempts": t.attempts,
                    "startedAt": t.started_at,
                    "finishedAt": t.finished_at,
                    "verified": t.verified,
                    "manual": by_hand,
                });
                // batching: the vendor job its records were deleted in, shared with the other
                // requests of its batch (what was proven for this request's own records is
                // `deleted` and `verified`).
                if let Some(job) = t
                    .jobs
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
                    .and_then(|jobs| jobs.into_iter().next())
                {
                    entry["sharedJob"] = Json::String(job);
                }
                entry
            })
            .collect();
        let by_hand = manual.len();
        Ok(json!({
            "receipt": format!("subject-gateway/{}/v1", kind.as_str().to_ascii_lowercase()),
            "requestId": row.id,
            "type": row.kind.as_str(),
            "subject": row.subject_hash,
            "regulation": row.regulation,
            "requestedBy": row.requested_by,
            "requestedAt": row.created_at,
            "dueAt": row.due_at,
            "issuedAt": store::now(),
            "entries": entries,
            "verification": {
                "result": if tasks.iter().all(|t| t.verified != Some(false)) { "PASSED" } else { "FAILED" },
                "method": "a fresh lookup of every identity in every store after acting",
                "manualTasks": by_hand,
                "manualMethod": (by_hand > 0).then_some(
                    "stores without an API (entries with `manual`) are not looked up: their outcome is as attested by the person who recorded it",
                ),
            },
        }))
    }

    /// Completes the request with its receipt (hashed into the audit trail) and forgets the
    /// personal data it held.
    pub(super) async fn finish(
        &self,
        row: &RequestRow,
        receipt: Json,
        export: Option<String>,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(&receipt).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        self.store
            .complete(&row.id, &text, &digest, export.as_deref())
            .await?;
        self.event(
            &row.id,
            "completed",
            &format!("completed; receipt sha256 {digest}"),
            RequestStatus::Completed,
        )
        .await;
        let entry = AuditEntry {
            actor: "gateway".into(),
            role: "system".into(),
            purpose: "essential.legal_obligation".into(),
            action: format!("{}.completed", row.kind.as_str().to_ascii_lowercase()),
            subjects: Vec::new(),
            detail: json!({ "request": row.id, "subject": row.subject_hash, "receiptSha256": digest }),
        };
        if let Err(error) = subject_schema::audit::AuditLog::append(self.audit.as_ref(), entry).await {
            tracing::error!(error = %error, "could not append a completed request to the audit trail");
        }
        metrics::counter!("subject_gateway_privacy_requests_completed_total", "type" => row.kind.as_str())
            .increment(1);
        tracing::info!(request = %row.id, r#type = %row.kind, "privacy request completed");
        Ok(())
    }

    /// The hashes of every identity the person was found by (the submitted one and those the
    /// tasks looked up), as requests record their subject.
    pub(super) async fn person_hashes(&self, row: &RequestRow) -> Result<Vec<String>, StoreError> {
        let registry = self.executor.registry();
        let mut hashes = vec![row.subject_hash.clone()];
        for task in self.store.tasks(&row.id).await? {
            let Some((c, e)) = self.locate(&task) else {
                continue;
            };
            let Some(lookup) = self.decode_lookup(c, e, task.lookup.as_deref()) else {
                continue;
            };
            let entity = &registry.connectors[c].connector.descriptor().entities[e];
            for (l, values) in lookup.by {
                let Some(link) = entity.lookups.get(l) else {
                    continue;
                };
                for value in values {
                    hashes.push(self.subject_hash(&Identity {
                        kind: link.kind,
                        value,
                    }));
                }
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        Ok(hashes)
    }

    /// An erased person's export bundles are deleted: a link handed out before the erasure
    /// answers 410 from now on.
    pub(super) async fn end_exports(&self, erasure: &RequestRow, person: &[String]) {
        let exports = match self.store.exports_of(person).await {
            Ok(exports) => exports,
            Err(error) => {
                tracing::error!(request = %erasure.id, error = %error, "could not look for the erased person's exports");
                return;
            }
        };
        for (id, export) in exports {
            if let Err(error) = self.delete_bundle(&id, &export).await {
                tracing::error!(request = %id, error = %error, "could not delete an erased person's export");
                continue;
            }
            self.event(
                &id,
                "export.deleted",
                &format!("bundle deleted: erasure {} completed", erasure.id),
                RequestStatus::Completed,
            )
            .await;
        }
    }
}
