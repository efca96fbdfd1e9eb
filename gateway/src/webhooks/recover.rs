//! Events lost to a crash, recorded late. The engine writes a request's status and then its
//! event (with the event's webhook messages); a process killed between the two leaves a
//! COMPLETED, FAILED or CANCELLED request whose latest event still tells an earlier state, and
//! automation would never hear of the end. Every deliverer looks for such requests (changed in the
//! last `retry_hours`, at least a minute ago, so a live engine has written its event) and records
//! the missing event, which queues its messages as any event does.
//!
//! Two replicas finding the same request at the same moment may both record it: at least once.

use std::time::Duration;

use chrono::Utc;

use super::Webhooks;
use crate::requests::state::RequestStatus;
use crate::requests::store;

/// How often the deliverer looks.
pub(super) const EVERY: Duration = Duration::from_secs(60);

/// How long after a status change its event must be there.
const GRACE: chrono::Duration = chrono::Duration::seconds(60);

impl Webhooks {
    pub(super) async fn recover_lost_events(&self) {
        let now = Utc::now();
        let since = store::stamp(now - self.retry_window());
        let until = store::stamp(now - GRACE);
        let found = match self.outbox.unannounced(&since, &until).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(error = %error, "could not look for finished requests without their event");
                return;
            }
        };
        for (id, status, error, digest) in found {
            let Ok(status) = status.parse::<RequestStatus>() else {
                continue;
            };
            let (kind, message) = match status {
                RequestStatus::Completed => (
                    "completed",
                    format!(
                        "completed; receipt sha256 {} (event recorded late)",
                        digest.as_deref().unwrap_or("unknown")
                    ),
                ),
                RequestStatus::Failed => (
                    "failed",
                    format!("{} (event recorded late)", error.as_deref().unwrap_or("failed")),
                ),
                RequestStatus::Cancelled => ("cancelled", "cancelled (event recorded late)".to_owned()),
                RequestStatus::Denied => ("denied", "denied (event recorded late)".to_owned()),
                _ => continue,
            };
            tracing::warn!(request = %id, status = %status, "a finished request had no event for its end; recorded now");
            if let Err(error) = self.record_event(&id, kind, &message, status).await {
                tracing::warn!(request = %id, error = %error, "could not record a late event");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::requests::store::{NewRequest, RequestKind, RequestStore};
    use crate::webhooks::config::{EndpointConfig, WebhookConfig};

    #[tokio::test]
    async fn a_completion_without_its_event_gets_it_and_its_message() {
        let path = std::env::temp_dir().join(format!("recover-{}.db", uuid::Uuid::new_v4().simple()));
        let keys = crate::keys::KeyStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let pool = keys.pool().clone();
        let store = RequestStore::new(pool.clone(), false);
        let long_ago = store::stamp(Utc::now() - chrono::Duration::minutes(5));
        for id in ["announced", "lost"] {
            store
                .insert(&NewRequest {
                    id,
                    kind: RequestKind::Erasure,
                    idempotency_key: id,
                    open_key: None,
                    subject_hash: "hash",
                    regulation: "GDPR",
                    reason: None,
                    requested_by: "test",
                    created_at: &long_ago,
                    due_at: &long_ago,
                    input: "{}",
                    status: RequestStatus::Received,
                })
                .await
                .unwrap();
            store.complete(id, "{}", "digest", None).await.unwrap();
        }
        // `announced` has its completion event; `lost` died between the two writes.
        store
            .add_event("announced", "completed", "completed", RequestStatus::Completed)
            .await
            .unwrap();
        sqlx::query("UPDATE privacy_requests SET updated_at = $1")
            .bind(&long_ago)
            .execute(&pool)
            .await
            .unwrap();
        let config = WebhookConfig {
            endpoints: vec![EndpointConfig {
                name: "feed".into(),
                url: reqwest::Url::parse("http://127.0.0.1:9/hooks").unwrap(),
                secret_env: "SECRET".into(),
                events: None,
                all_requests: true,
                timeout: Duration::from_secs(1),
            }],
            delivery: Default::default(),
        };
        let audit = Arc::new(crate::audit::DbAuditLog::open(pool.clone()).await.unwrap());
        let hooks = Webhooks::new(
            &config,
            |_| Some("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()),
            pool.clone(),
            false,
            audit,
        )
        .unwrap();
        hooks.recover_lost_events().await;
        hooks.recover_lost_events().await;
        let events: Vec<(String, String)> =
            sqlx::query_as("SELECT request_id, kind FROM privacy_events ORDER BY request_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            events,
            [
                ("announced".to_owned(), "completed".to_owned()),
                ("lost".to_owned(), "completed".to_owned())
            ]
        );
        let messages: Vec<(String, String)> = sqlx::query_as("SELECT request_id, body FROM webhook_outbox")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].0, "lost");
        let body: serde_json::Value = serde_json::from_str(&messages[0].1).unwrap();
        assert_eq!(body["type"], "privacy_request.completed");
        assert_eq!(body["data"]["receiptSha256"], "digest");
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
