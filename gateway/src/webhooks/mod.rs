//! Webhooks for automation, per the Standard Webhooks spec: every event the privacy-request
//! engine records becomes a signed message to the configured endpoints that want it, through a
//! durable outbox in the state database.
//!
//! - [`config`]: `[webhooks.NAME]` endpoints (URL, secret from the environment, event types,
//!   whether they take every request's events) and `[webhook_delivery]`;
//! - [`signer`]: `webhook-signature` (HMAC-SHA256 under the `whsec_` secret);
//! - [`event`]: event types and the `{type, timestamp, data}` body (no identity values);
//! - [`outbox`]: the tables; `deliver`: the deliverer (leases, backoff with jitter, DEAD);
//! - `recover`: a finished request whose last event does not tell it (the process died between
//!   the status change and its event) gets the event, and its messages, late.
//!
//! **Architecture invariant:** an event and its messages are written in one transaction (the
//! engine's `event` hook calls [`Webhooks::record_event`]), so a message is never lost once its
//! event is recorded; a message is sent under a lease (never by two gateways at once), at least
//! once, after every earlier message of its request to its endpoint.

pub mod config;
mod deliver;
pub mod event;
pub mod outbox;
mod recover;
pub mod signer;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use indexmap::IndexMap;
use serde_json::json;
use subject_schema::access::Caller;
use subject_schema::audit::{AuditEntry, AuditLog};
use subject_schema::webhooks::{Delivery, DeliveryFilter, DeliveryPage, WebhookDeliveries, WebhookError};
use tokio::sync::Notify;

use crate::audit::DbAuditLog;
use crate::requests::state::RequestStatus;
use crate::requests::store::{self, StoreError};
use config::{DeliverySettings, Endpoint, WebhookBuildError, WebhookConfig};
use event::RequestEvent;
use outbox::{NewMessage, Outbox};

/// Times an event's transaction is retried when another event of the same request took the
/// same place in the outbox at the same moment (PostgreSQL; SQLite writes one at a time).
const RECORD_ATTEMPTS: usize = 5;

/// The configured endpoints, their outbox and deliverer.
pub struct Webhooks {
    endpoints: IndexMap<String, Endpoint>,
    outbox: Outbox,
    audit: Arc<DbAuditLog>,
    settings: DeliverySettings,
    client: reqwest::Client,
    /// This gateway's name in leases.
    owner: String,
    wake: Notify,
}

impl Webhooks {
    /// The webhooks of `config`, their secrets read from `env`, over the state database `pool`.
    pub fn new(
        config: &WebhookConfig,
        env: impl Fn(&str) -> Option<String>,
        pool: sqlx::AnyPool,
        postgres: bool,
        audit: Arc<DbAuditLog>,
    ) -> Result<Arc<Self>, WebhookBuildError> {
        let endpoints = config
            .endpoints(env)?
            .into_iter()
            .map(|e| (e.config.name.clone(), e))
            .collect();
        // No redirects (an endpoint cannot send its messages on to another address) and no
        // proxy from the environment.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("subject-gateway-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| WebhookBuildError::Client)?;
        Ok(Arc::new(Self {
            endpoints,
            outbox: Outbox::new(pool, postgres),
            audit,
            settings: config.delivery.clone(),
            client,
            owner: format!("wh-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
        }))
    }

    /// The endpoint a submission names (if any), or why it may not: only a configured endpoint,
    /// by name — never a URL.
    pub fn named<'a>(
        webhooks: Option<&'a Arc<Self>>,
        name: Option<&'a str>,
    ) -> Result<Option<(&'a Arc<Self>, &'a str)>, String> {
        let Some(name) = name else {
            return Ok(None);
        };
        let known: Vec<&str> = webhooks
            .map(|hooks| hooks.endpoints.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if let Some(hooks) = webhooks
            && known.contains(&name)
        {
            return Ok(Some((hooks, name)));
        }
        Err(if known.is_empty() {
            format!("webhook: no endpoint `{name}`: none is configured in gateway.toml ([webhooks.NAME])")
        } else {
            format!(
                "webhook: no endpoint `{name}` is configured (configured: {})",
                known.join(", ")
            )
        })
    }

    /// Records that request `request_id` named endpoint `name`. Written before the request
    /// itself, so that its first event finds it; a row whose request was never inserted names
    /// an id nobody has and is removed by [`Self::forget`] (or never read).
    pub async fn subscribe(&self, request_id: &str, name: &str) -> Result<(), StoreError> {
        self.outbox.subscribe(request_id, name).await
    }

    pub async fn forget(&self, request_id: &str) {
        if let Err(error) = self.outbox.unsubscribe(request_id).await {
            tracing::warn!(request = %request_id, error = %error, "could not remove an unused webhook subscription");
        }
    }

    /// Records the engine's event and, in the same transaction, one message to every endpoint
    /// that wants it.
    pub async fn record_event(
        &self,
        request_id: &str,
        kind: &str,
        message: &str,
        status: RequestStatus,
    ) -> Result<(), StoreError> {
        let mut outcome = Ok(0);
        for _ in 0..RECORD_ATTEMPTS {
            outcome = self.try_record_event(request_id, kind, message, status).await;
            if !matches!(outcome, Err(StoreError::Duplicate)) {
                break;
            }
        }
        if outcome? > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn try_record_event(
        &self,
        request_id: &str,
        kind: &str,
        message: &str,
        status: RequestStatus,
    ) -> Result<usize, StoreError> {
        let mut tx = self.outbox.pool().begin().await?;
        store::insert_event(&mut tx, request_id, kind, message, status).await?;
        let event_type = event::event_type(kind);
        let subscribed = outbox::subscription(&mut tx, request_id).await?;
        let mut targets: Vec<&str> = self
            .endpoints
            .values()
            .filter(|e| e.config.wants(&event_type, subscribed.as_deref()))
            .map(|e| e.config.name.as_str())
            .collect();
        // An endpoint the request named that is no longer configured still gets its messages:
        // they fail visibly (and end DEAD) instead of vanishing.
        if let Some(name) = subscribed.as_deref()
            && !self.endpoints.contains_key(name)
        {
            targets.push(name);
        }
        if targets.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let facts = outbox::request_facts(&mut tx, request_id).await?;
        let at = Utc::now();
        let created_at = store::stamp(at);
        let retry_until = store::stamp(at + self.retry_window());
        let body = RequestEvent {
            request_id,
            request_type: facts.as_ref().map(|(kind, _)| kind.as_str()),
            kind,
            status: status.as_str(),
            message,
            receipt_sha256: facts.as_ref().and_then(|(_, digest)| digest.as_deref()),
            at: &created_at,
        }
        .body();
        for endpoint in &targets {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            outbox::insert(
                &mut tx,
                &NewMessage {
                    id: &id,
                    endpoint,
                    request_id,
                    event_type: &event_type,
                    body: &body,
                    created_at: &created_at,
                    retry_until: &retry_until,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(targets.len())
    }

    fn retry_window(&self) -> chrono::Duration {
        // At most ten years: a bigger number is a typo, not a policy.
        chrono::Duration::hours(self.settings.retry_hours.clamp(1, 24 * 3650) as i64)
    }
}

fn unavailable(error: StoreError) -> WebhookError {
    WebhookError::Unavailable(error.to_string())
}

#[async_trait]
impl WebhookDeliveries for Webhooks {
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<DeliveryPage, WebhookError> {
        let after = match &filter.after {
            None => None,
            Some(cursor) => Some(cursor.split_once('/').ok_or_else(|| {
                WebhookError::Invalid("`after` is not a cursor from webhookDeliveries".into())
            })?),
        };
        let mut rows = self
            .outbox
            .list(
                filter.status,
                filter.request_id.as_deref(),
                after,
                filter.first + 1,
            )
            .await
            .map_err(unavailable)?;
        let has_next_page = rows.len() > filter.first;
        rows.truncate(filter.first);
        Ok(DeliveryPage {
            end_cursor: rows.last().map(|r| format!("{}/{}", r.created_at, r.id)),
            deliveries: rows.into_iter().map(Delivery::from).collect(),
            has_next_page,
        })
    }

    async fn redeliver(&self, caller: &Caller, id: &str) -> Result<Delivery, WebhookError> {
        let row = self
            .outbox
            .get(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| WebhookError::NotFound(id.to_owned()))?;
        let entry = AuditEntry {
            actor: caller.principal.clone(),
            role: caller.role.name.clone(),
            purpose: caller.purpose.to_string(),
            action: "webhook.redelivered".into(),
            subjects: Vec::new(),
            detail: json!({ "delivery": row.id, "request": row.request_id, "endpoint": row.endpoint }),
        };
        // Nothing is sent again unless it is on the audit trail first.
        self.audit
            .append(entry)
            .await
            .map_err(|e| WebhookError::Unavailable(e.to_string()))?;
        let retry_until = store::stamp(Utc::now() + self.retry_window());
        let row = self
            .outbox
            .redeliver(id, &retry_until)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| WebhookError::NotFound(id.to_owned()))?;
        self.wake.notify_one();
        Ok(row.into())
    }
}
