//! Webhook deliveries as the schema sees them: `Query.webhookDeliveries(status, first, after)`
//! and `Mutation.redeliverWebhook(id)`, both needing the `manage_webhooks` operation.
//!
//! The outbox, the signer and the deliverer live in the gateway (`gateway/src/webhooks/`); this
//! module defines the interface it implements, [`WebhookDeliveries`], and the GraphQL types over
//! its typed rows.

use std::sync::Arc;
use subject_connectors::codes::ErrorCode;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, SchemaBuilder,
    TypeRef,
};
use async_graphql::{Error, ErrorExtensions, Name, Value as GqlValue};
use async_trait::async_trait;

use crate::access::{Caller, Operation};
use crate::gql_support::{authorize, caller, described_leaf, opt_string, page_object, text};

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not delivered yet: due now, waiting for a retry, or waiting for an earlier event of the
    /// same request to the same endpoint.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Retried until its retry window ended without a 2xx; `redeliverWebhook` sends it again.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Dead => "DEAD",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PENDING" => DeliveryStatus::Pending,
            "DELIVERED" => DeliveryStatus::Delivered,
            "DEAD" => DeliveryStatus::Dead,
            _ => return None,
        })
    }
}

/// A text no delivery status spells (a stored value read back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook delivery status `{0}`")]
pub struct UnknownDeliveryStatus(pub String);

impl TryFrom<String> for DeliveryStatus {
    type Error = UnknownDeliveryStatus;

    fn try_from(text: String) -> Result<Self, UnknownDeliveryStatus> {
        DeliveryStatus::parse(&text).ok_or(UnknownDeliveryStatus(text))
    }
}

/// One message to one endpoint, as `WebhookDelivery` serves it. Carries no identity values: the
/// request's id, the event type and the delivery's bookkeeping only.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message id (`msg_…`), sent as `webhook-id`: the same on every attempt and redelivery.
    pub id: String,
    pub endpoint: String,
    pub request_id: String,
    pub event_type: String,
    /// Its place among the request's messages to this endpoint (1, 2, …): delivered in order.
    pub sequence: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub created_at: String,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// Until when failed attempts are retried before the delivery is DEAD.
    pub retry_until: String,
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed (`HTTP 500`, `timed out after 2000 ms`, …).
    pub last_error: Option<String>,
}

/// What `webhookDeliveries` filters on.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub request_id: Option<String>,
    pub first: usize,
    /// A cursor from a previous page.
    pub after: Option<String>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

/// Why deliveries could not be listed or redelivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook delivery `{0}`")]
    NotFound(String),
    #[error("the webhook outbox is unavailable: {0}")]
    Unavailable(String),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Invalid(_) => ErrorCode::InvalidInput.as_str(),
            WebhookError::NotFound(_) => ErrorCode::NotFound.as_str(),
            WebhookError::Unavailable(_) => "WEBHOOKS_UNAVAILABLE",
        }
    }
}

/// The gateway's webhook outbox.
#[async_trait]
pub trait WebhookDeliveries: Send + Sync + 'static {
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<DeliveryPage, WebhookError>;

    /// Sends a delivery again (whatever its status), as soon as the earlier messages of its
    /// request to its endpoint are through; audited.
    async fn redeliver(&self, caller: &Caller, id: &str) -> Result<Delivery, WebhookError>;
}

fn outbox<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<dyn WebhookDeliveries>> {
    ctx.data_opt::<Arc<dyn WebhookDeliveries>>().ok_or_else(|| {
        Error::new("webhooks are not configured").extend_with(|_, e| e.set("code", "WEBHOOKS_UNAVAILABLE"))
    })
}

fn webhook_error(error: WebhookError) -> Error {
    let code = error.code();
    Error::new(error.to_string()).extend_with(move |_, e| e.set("code", code))
}

/// Registers `WebhookDeliveryStatus`, `WebhookDelivery` and `WebhookDeliveryPage`.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    let string_nn = || TypeRef::named_nn(TypeRef::STRING);
    let string = || TypeRef::named(TypeRef::STRING);
    let delivery = Object::new("WebhookDelivery")
        .description(
            "One event of a privacy request to one configured endpoint (Standard Webhooks: signed, delivered at least once, in order per request).",
        )
        .field(described_leaf::<Delivery>("id", TypeRef::named_nn(TypeRef::ID), "The message id, sent as `webhook-id` on every attempt.", |d| text(&d.id)))
        .field(described_leaf::<Delivery>("endpoint", string_nn(), "The endpoint's name in gateway.toml.", |d| text(&d.endpoint)))
        .field(described_leaf::<Delivery>("requestId", TypeRef::named_nn(TypeRef::ID), "The privacy request the event is about.", |d| text(&d.request_id)))
        .field(described_leaf::<Delivery>("eventType", string_nn(), "`privacy_request.completed`, `privacy_request.task.done`, …", |d| text(&d.event_type)))
        .field(described_leaf::<Delivery>("sequence", TypeRef::named_nn(TypeRef::INT), "Its place among the request's messages to this endpoint; a later one waits for the earlier.", |d| GqlValue::from(d.sequence)))
        .field(described_leaf::<Delivery>("status", TypeRef::named_nn("WebhookDeliveryStatus"), "", |d| {
            GqlValue::Enum(Name::new(d.status.as_str()))
        }))
        .field(described_leaf::<Delivery>("attempts", TypeRef::named_nn(TypeRef::INT), "Times it was sent.", |d| GqlValue::from(d.attempts)))
        .field(described_leaf::<Delivery>("createdAt", string_nn(), "", |d| text(&d.created_at)))
        .field(described_leaf::<Delivery>("lastAttemptAt", string(), "", |d| opt_string(d.last_attempt_at.as_deref())))
        .field(described_leaf::<Delivery>("nextAttemptAt", string(), "When a PENDING delivery is sent next (at the earliest).", |d| {
            opt_string(d.next_attempt_at.as_deref())
        }))
        .field(described_leaf::<Delivery>("deliveredAt", string(), "", |d| opt_string(d.delivered_at.as_deref())))
        .field(described_leaf::<Delivery>("retryUntil", string_nn(), "Failed attempts are retried (exponential backoff with jitter) until then; then DEAD.", |d| {
            text(&d.retry_until)
        }))
        .field(described_leaf::<Delivery>("lastStatusCode", TypeRef::named(TypeRef::INT), "The HTTP status of the last attempt, if one came.", |d| {
            d.last_status_code.map_or(GqlValue::Null, GqlValue::from)
        }))
        .field(described_leaf::<Delivery>("lastError", string(), "Why the last attempt failed.", |d| opt_string(d.last_error.as_deref())));
    let page = page_object(
        "WebhookDeliveryPage",
        "A page of webhook deliveries, newest first.",
        "deliveries",
        "WebhookDelivery",
        |page: &DeliveryPage| (&page.deliveries, page.end_cursor.as_deref(), page.has_next_page),
    );
    let status = ["PENDING", "DELIVERED", "DEAD"].into_iter().fold(
        Enum::new("WebhookDeliveryStatus").description(
            "PENDING: not delivered yet (due, backing off, or behind an earlier event of its request). DELIVERED: answered 2xx. DEAD: its retry window ended.",
        ),
        |e, item| e.item(EnumItem::new(item)),
    );
    builder.register(status).register(delivery).register(page)
}

/// `Query.webhookDeliveries`.
pub(crate) fn query_fields(query: Object) -> Object {
    query.field(
        Field::new(
            "webhookDeliveries",
            TypeRef::named_nn("WebhookDeliveryPage"),
            |ctx| {
                FieldFuture::new(async move {
                    authorize(&ctx, Operation::ManageWebhooks)?;
                    let arg = |name: &str| ctx.args.get(name).filter(|v| !v.is_null());
                    let filter = DeliveryFilter {
                        status: arg("status")
                            .and_then(|v| v.enum_name().ok().and_then(DeliveryStatus::parse)),
                        request_id: arg("requestId").and_then(|v| v.string().ok().map(str::to_owned)),
                        first: arg("first")
                            .and_then(|v| v.i64().ok())
                            .unwrap_or(50)
                            .clamp(1, 500) as usize,
                        after: arg("after").and_then(|v| v.string().ok().map(str::to_owned)),
                    };
                    let page = outbox(&ctx)?.deliveries(filter).await.map_err(webhook_error)?;
                    Ok(Some(FieldValue::owned_any(page)))
                })
            },
        )
        .argument(InputValue::new("status", TypeRef::named("WebhookDeliveryStatus")))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .argument(
            InputValue::new("requestId", TypeRef::named(TypeRef::ID))
                .description("Only the deliveries of this privacy request."),
        )
        .description(
            "Webhook deliveries (the outbox), newest first, with cursor pagination. Needs `manage_webhooks`.",
        ),
    )
}

/// `Mutation.redeliverWebhook`.
pub(crate) fn mutation_fields(mutation: Object) -> Object {
    mutation.field(
        Field::new("redeliverWebhook", TypeRef::named_nn("WebhookDelivery"), |ctx| {
            FieldFuture::new(async move {
                authorize(&ctx, Operation::ManageWebhooks)?;
                let id = ctx.args.try_get("id")?.string()?.to_owned();
                let caller = caller(&ctx)?;
                let delivery = outbox(&ctx)?.redeliver(caller, &id).await.map_err(webhook_error)?;
                Ok(Some(FieldValue::owned_any(delivery)))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .description("Sends a delivery again with the same `webhook-id` (a DEAD one gets a new retry window). Audited. Needs `manage_webhooks`."),
    )
}
