//! The worker: claims open requests under a lease (`lease`), works on each until it finishes,
//! waits or the lease is lost, handing it to the driver of its kind ([`super::driver`]); recording
//! events and failing requests.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::Utc;

use super::driver::Job;
use super::erasure::Erasure;
use super::export::Export;
use super::objection::Objection;
use super::rectification::Rectification;
use super::state::{RequestKind, RequestStatus};
use super::store::{self, RequestRow, StoreError};
use super::{PrivacyEngine, RequestInput};

impl PrivacyEngine {
    pub(super) async fn work_loop(self: Arc<Self>) {
        let mut running = tokio::task::JoinSet::new();
        let mut sweep_at = std::time::Instant::now();
        loop {
            while running.try_join_next().is_some() {}
            if running.len() < self.settings.concurrency.max(1) {
                let lease = store::stamp(Utc::now() + self.lease_length());
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

    /// Works on one claimed request until it finishes, waits, or the lease is lost.
    pub(super) async fn process(self: Arc<Self>, id: String) {
        let lease = self.hold(&id);
        let result = self.carry_out(&id, lease.lost()).await;
        if let Err(error) = result {
            tracing::warn!(request = %id, error = %error, "privacy request interrupted; it resumes later");
        }
        self.release(lease, &id).await;
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
        let job = Job {
            row: &row,
            input: &input,
            identity: &identity,
            lost,
        };
        // The one place a request's kind is looked at: each kind is a `Driver`.
        match row.kind {
            RequestKind::Erasure => self.drive::<Erasure>(&job).await,
            RequestKind::Rectification => self.drive::<Rectification>(&job).await,
            RequestKind::Export => self.drive::<Export>(&job).await,
            RequestKind::Objection => self.drive::<Objection>(&job).await,
        }
    }
}
