//! The worker: claims open requests under a lease, renews it while it works, and carries each
//! out by its kind (`erasure`, `rectification`, `export`, `objection`); and the types the engine's
//! files share — the plan of a request, how a task ended, records as kept in a task.
//!
//! Erasure: resolve the person, store one task per connector and entity (children first within a
//! connector, so foreign keys hold), run each connector's tasks in order (connectors in parallel),
//! retry transient failures with backoff, poll asynchronous jobs until they end, then look the
//! person up afresh in every store and complete only when nothing is left but masked, retained
//! records. The receipt lists what was done where; its SHA-256 goes into the audit trail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use subject_connectors::{LookupRequest, Record, Value};

use super::state::{RequestKind, RequestStatus};
use super::store::{self, RequestRow, StoreError};
use super::{PrivacyEngine, RequestInput};

/// A record value as kept in a task (the records found when the erasure was planned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub(super) enum StoredValue {
    N,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    J(Json),
}

impl From<&Value> for StoredValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => StoredValue::N,
            Value::Bool(b) => StoredValue::B(*b),
            Value::Int(i) => StoredValue::I(*i),
            Value::Float(f) => StoredValue::F(*f),
            Value::String(s) => StoredValue::S(s.clone()),
            Value::Json(j) => StoredValue::J(j.clone()),
        }
    }
}

impl From<StoredValue> for Value {
    fn from(value: StoredValue) -> Self {
        match value {
            StoredValue::N => Value::Null,
            StoredValue::B(b) => Value::Bool(b),
            StoredValue::I(i) => Value::Int(i),
            StoredValue::F(f) => Value::Float(f),
            StoredValue::S(s) => Value::String(s),
            StoredValue::J(j) => Value::Json(j),
        }
    }
}

/// One entity of a planned request: where, what was found, and how to find it again.
pub(super) struct PlannedEntity {
    pub connector: usize,
    pub entity: usize,
    pub records: Vec<Record>,
    pub lookup: LookupRequest,
    /// Order within the connector: lower runs first (entities found through others go first).
    pub stage: i64,
}

/// What resolving a person for a request found.
pub(super) struct SubjectPlan {
    pub identities: usize,
    pub entities: Vec<PlannedEntity>,
    /// Connectors whose lookups failed: `(connector, message)`.
    pub failures: Vec<(String, String)>,
}

/// Entities the live stores would refuse to erase (or whose records erasure could not find):
/// `(connector, entity) -> (reason, unfindable)`. An unfindable entity blocks every erasure.
pub(super) type Blockers = std::collections::HashMap<(usize, usize), (String, bool)>;

/// How one task ended.
pub(super) enum TaskEnd {
    Done,
    Failed,
    /// The lease was lost: another gateway carries on.
    Abandoned,
}

pub(super) fn jitter(base: Duration) -> Duration {
    let millis = base.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}

impl PrivacyEngine {
    pub(super) async fn work_loop(self: Arc<Self>) {
        let mut running = tokio::task::JoinSet::new();
        let mut sweep_at = std::time::Instant::now();
        loop {
            while running.try_join_next().is_some() {}
            if running.len() < self.settings.concurrency.max(1) {
                let lease = store::stamp(Utc::now() + self.lease());
                match self.store.claim(&self.owner, &lease).await {
                    Ok(Some(id)) => {
                        let engine = self.clone();
                        running.spawn(async move { engine.process(id).await });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(error = %error, "could not look for privacy requests"),
                }
            }
            if sweep_at.elapsed() > Duration::from_secs(60) {
                sweep_at = std::time::Instant::now();
                self.sweep_exports().await;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval()) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    pub(super) fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_seconds.max(1) as i64)
    }

    /// Works on one claimed request until it finishes, waits, or the lease is lost.
    pub(super) async fn process(self: Arc<Self>, id: String) {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let engine = self.clone();
            let lost = lost.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let every = Duration::from_millis((engine.settings.lease_seconds.max(1) * 1000) / 3);
                loop {
                    tokio::time::sleep(every).await;
                    let until = store::stamp(Utc::now() + engine.lease());
                    match engine.store.renew(&id, &engine.owner, &until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
        };
        let result = self.carry_out(&id, &lost).await;
        renewer.abort();
        if let Err(error) = result {
            tracing::warn!(request = %id, error = %error, "privacy request interrupted; it resumes later");
        }
        // Claimable again after a pause (a finished request is no longer claimable at all).
        let later = store::stamp(
            Utc::now() + chrono::Duration::milliseconds(self.settings.poll_interval_ms as i64 * 4),
        );
        let _ = self.store.release(&id, &self.owner, &later).await;
    }

    pub(super) async fn event(&self, id: &str, kind: &str, message: &str, status: RequestStatus) {
        // webhooks: with webhooks, the event and its messages are written in one transaction.
        let recorded = match self.webhooks.get() {
            Some(hooks) => hooks.record_event(id, kind, message, status).await,
            None => self.store.add_event(id, kind, message, status).await,
        };
        if let Err(error) = recorded {
            tracing::warn!(request = %id, error = %error, "could not record a request event");
        }
    }

    pub(super) async fn fail(&self, row: &RequestRow, message: &str) -> Result<(), StoreError> {
        self.store
            .set_status(&row.id, RequestStatus::Failed, Some(message))
            .await?;
        self.event(&row.id, "failed", message, RequestStatus::Failed)
            .await;
        metrics::counter!("subject_gateway_privacy_requests_failed_total", "type" => row.kind.as_str())
            .increment(1);
        tracing::warn!(request = %row.id, r#type = %row.kind, "privacy request failed");
        Ok(())
    }

    pub(super) async fn carry_out(&self, id: &str, lost: &AtomicBool) -> Result<(), StoreError> {
        let row = match self.store.request(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(()),
            // A kind this gateway does not know (the only column a claimed request can hold
            // unknown: claims pick known open statuses) fails the request, as an unknown type
            // always did, rather than it being claimed again and again.
            Err(StoreError::Unreadable(column)) => {
                let message = format!("the request's stored {column} is unknown to this gateway");
                self.store
                    .set_status(id, RequestStatus::Failed, Some(&message))
                    .await?;
                self.event(id, "failed", &message, RequestStatus::Failed).await;
                tracing::warn!(request = %id, column = %column, "privacy request unreadable; failed");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if !row.is_open() {
            return Ok(());
        }
        let input: Option<RequestInput> = row.input.as_deref().and_then(|i| serde_json::from_str(i).ok());
        let Some((input, identity)) = input.and_then(|i| self.input_identity(&i).map(|id| (i, id))) else {
            return self.fail(&row, "the request's input is unreadable").await;
        };
        match row.kind {
            RequestKind::Erasure => self.carry_out_erasure(&row, &input, &identity, lost).await,
            RequestKind::Rectification => self.carry_out_rectification(&row, &input, &identity, lost).await,
            RequestKind::Export => self.carry_out_export(&row, &identity).await,
            RequestKind::Objection => self.carry_out_objection(&row, &input, &identity, lost).await,
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

pub(super) fn encode_lookup(lookup: &LookupRequest) -> String {
    let stored: Vec<(usize, Vec<&str>)> = lookup
        .by
        .iter()
        .map(|(l, values)| (*l, values.iter().map(|v| v.expose()).collect()))
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

pub(super) fn encode_records(records: &[Record]) -> String {
    let stored: Vec<Vec<StoredValue>> = records
        .iter()
        .map(|r| r.iter().map(StoredValue::from).collect())
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

pub(super) fn decode_records(text: Option<&str>) -> Vec<Record> {
    text.and_then(|t| serde_json::from_str::<Vec<Vec<StoredValue>>>(t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.into_iter().map(Value::from).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_survive_the_state_database() {
        let records = vec![vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(7),
            Value::Float(1.5),
            Value::String("x".into()),
            Value::Json(json!({"a": [1]})),
        ]];
        assert_eq!(decode_records(Some(&encode_records(&records))), records);
    }
}
