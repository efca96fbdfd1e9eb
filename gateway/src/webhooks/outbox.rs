//! The outbox tables of the state database (`migrations/0006_webhooks.sql`): which endpoint a
//! request named, and one row per message to one endpoint, with its order among the request's
//! messages to that endpoint (`seq`), its attempts and its lease.
//!
//! Every statement is parameterized and written once for SQLite and PostgreSQL; only the claim
//! differs, to use `FOR UPDATE SKIP LOCKED` on PostgreSQL. Rows are read by `sqlx::FromRow`; a
//! status this gateway does not know is an error, never mapped to another.

use crate::listing::Listing;
use sqlx::{AnyConnection, AnyPool};
use subject_connectors::dynamic_sql::dynamic_query_as;
use subject_schema::webhooks::{Delivery, DeliveryStatus};

use crate::requests::store::{StoreError, now};

/// One row of `webhook_outbox`, as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub endpoint: String,
    pub request_id: String,
    pub seq: i64,
    pub event_type: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub created_at: String,
    pub next_attempt_at: String,
    pub retry_until: String,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
}

impl From<OutboxRow> for Delivery {
    fn from(row: OutboxRow) -> Self {
        let pending = row.status == DeliveryStatus::Pending;
        Delivery {
            id: row.id,
            endpoint: row.endpoint,
            request_id: row.request_id,
            event_type: row.event_type,
            sequence: row.seq,
            status: row.status,
            attempts: row.attempts,
            created_at: row.created_at,
            last_attempt_at: row.last_attempt_at,
            next_attempt_at: pending.then_some(row.next_attempt_at),
            delivered_at: row.delivered_at,
            retry_until: row.retry_until,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
        }
    }
}

const COLUMNS: &str = "id, endpoint, request_id, seq, event_type, status, attempts, created_at, next_attempt_at, \
     retry_until, last_attempt_at, delivered_at, last_status_code, last_error";

/// A message claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub endpoint: String,
    pub body: String,
    /// This attempt's number (counted when claimed, before sending).
    pub attempts: i64,
    pub retry_until: String,
}

/// A new message.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub endpoint: &'a str,
    pub request_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    pub created_at: &'a str,
    pub retry_until: &'a str,
}

/// The outcome of one attempt.
pub enum Attempt<'a> {
    Delivered {
        status_code: i64,
    },
    /// Failed; sent again from `next_attempt_at`, or DEAD when that is past `retry_until`.
    Failed {
        status_code: Option<i64>,
        error: &'a str,
        next_attempt_at: &'a str,
        dead: bool,
    },
}

/// The endpoint `request_id` named at submission, read inside the caller's transaction.
pub async fn subscription(conn: &mut AnyConnection, request_id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT endpoint FROM webhook_subscriptions WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// The request's type and receipt digest, read inside the caller's transaction.
pub async fn request_facts(
    conn: &mut AnyConnection,
    request_id: &str,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    Ok(sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT kind, receipt_sha256 FROM privacy_requests WHERE id = $1",
    )
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Appends a message after the request's last one to the same endpoint. Two transactions adding
/// to one request at once collide on the unique `(request_id, endpoint, seq)`: the loser gets
/// [`StoreError::Duplicate`] and retries its whole transaction.
pub async fn insert(conn: &mut AnyConnection, message: &NewMessage<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_outbox (id, endpoint, request_id, seq, event_type, body, status, attempts, \
         created_at, next_attempt_at, retry_until, lease_until) VALUES ($1, $2, $3, \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM webhook_outbox WHERE request_id = $3 AND endpoint = $2), \
         $4, $5, 'PENDING', 0, $6, $6, $7, $6)",
    )
    .bind(message.id)
    .bind(message.endpoint)
    .bind(message.request_id)
    .bind(message.event_type)
    .bind(message.body)
    .bind(message.created_at)
    .bind(message.retry_until)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outbox of one state database.
#[derive(Clone)]
pub struct Outbox {
    pool: AnyPool,
    postgres: bool,
}

impl Outbox {
    pub fn new(pool: AnyPool, postgres: bool) -> Self {
        Self { pool, postgres }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Records the endpoint a request named.
    pub async fn subscribe(&self, request_id: &str, endpoint: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (request_id, endpoint, created_at) VALUES ($1, $2, $3)",
        )
        .bind(request_id)
        .bind(endpoint)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a subscription whose request was never inserted.
    pub async fn unsubscribe(&self, request_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_subscriptions WHERE request_id = $1")
            .bind(request_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes the lease of up to `limit` due messages, each the first not-yet-delivered one of its
    /// request to its endpoint (a later message waits for the earlier), and counts the attempt.
    pub async fn claim(
        &self,
        owner: &str,
        lease_until: &str,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let at = now();
        let lock = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // SQLite runs one writer at a time: the statement is the lock.
        let sql = format!(
            "UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
             last_attempt_at = $3 WHERE id IN (\
             SELECT o.id FROM webhook_outbox o WHERE o.status = 'PENDING' AND o.next_attempt_at <= $3 \
             AND o.lease_until < $3 AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE \
             p.request_id = o.request_id AND p.endpoint = o.endpoint AND p.status = 'PENDING' AND p.seq < o.seq) \
             ORDER BY o.next_attempt_at, o.created_at LIMIT {limit}{lock}) \
             RETURNING id, endpoint, body, attempts, retry_until"
        );
        Ok(dynamic_query_as::<_, Claimed>(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(&at)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records an attempt's outcome, if this owner still holds the lease (`false` otherwise:
    /// another gateway took the message over and sends it again — at least once).
    pub async fn record(&self, id: &str, owner: &str, attempt: &Attempt<'_>) -> Result<bool, StoreError> {
        let at = now();
        let done = match attempt {
            Attempt::Delivered { status_code } => {
                sqlx::query(
                    "UPDATE webhook_outbox SET status = 'DELIVERED', delivered_at = $1, last_status_code = $2, \
                     last_error = NULL, lease_owner = NULL, lease_until = $1 WHERE id = $3 AND lease_owner = $4",
                )
                .bind(&at)
                .bind(status_code)
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?
            }
            Attempt::Failed {
                status_code,
                error,
                next_attempt_at,
                dead,
            } => {
                sqlx::query(
                    "UPDATE webhook_outbox SET status = $1, next_attempt_at = $2, last_status_code = $3, \
                     last_error = $4, lease_owner = NULL, lease_until = $5 WHERE id = $6 AND lease_owner = $7",
                )
                .bind(if *dead { "DEAD" } else { "PENDING" })
                .bind(*next_attempt_at)
                .bind(*status_code)
                .bind(*error)
                .bind(&at)
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Sends a message again: PENDING, due now, with a new retry window.
    pub async fn redeliver(&self, id: &str, retry_until: &str) -> Result<Option<OutboxRow>, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_outbox SET status = 'PENDING', next_attempt_at = $1, retry_until = $2 WHERE id = $3",
        )
        .bind(now())
        .bind(retry_until)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Finished requests changed in `[since, until)` whose latest event does not carry their
    /// status: `(id, status, error, receipt_sha256)`.
    pub async fn unannounced(
        &self,
        since: &str,
        until: &str,
    ) -> Result<Vec<(String, String, Option<String>, Option<String>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT r.id, r.status, r.error, r.receipt_sha256 FROM privacy_requests r \
             WHERE r.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'DENIED') AND r.updated_at >= $1 AND r.updated_at < $2 \
             AND COALESCE((SELECT e.status FROM privacy_events e WHERE e.request_id = r.id \
             ORDER BY e.at DESC, e.id DESC LIMIT 1), '') <> r.status LIMIT 100",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn get(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        Ok(
            dynamic_query_as::<_, OutboxRow>(&format!("SELECT {COLUMNS} FROM webhook_outbox WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A page of messages, newest first, after the `(created_at, id)` cursor.
    pub async fn list(
        &self,
        status: Option<DeliveryStatus>,
        request_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut listing = Listing::new(format!("SELECT {COLUMNS} FROM webhook_outbox WHERE 1 = 1"));
        if let Some(status) = status {
            listing.equals("status", status.as_str());
        }
        if let Some(request_id) = request_id {
            listing.equals("request_id", request_id);
        }
        if let Some(cursor) = after {
            listing.after("", cursor, true);
        }
        Ok(listing.fetch(&self.pool, "", true, limit).await?)
    }
}
