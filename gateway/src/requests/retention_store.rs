//! The `retain_until` table (`migrations/0009_…`): the records erasures retained and when their
//! retention ends; claims of the due ones under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL); and ending a group in one transaction with the amendment of its request's receipt.
//!
//! Every statement is parameterized and written once for SQLite and PostgreSQL, as in
//! [`super::store`].

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::store::{RequestStore, StoreError, now};

/// One row of `retain_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RetainedRow {
    pub id: String,
    pub request_id: String,
    pub connector: String,
    pub entity: String,
    pub subject_hash: String,
    /// The record's primary key as the erasure's task kept it (JSON); a keyed hash once ended.
    pub record_key: String,
    pub legal_basis: Option<String>,
    pub retain_until: String,
    pub after_retention: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub ended_at: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: String,
}

const COLUMNS: &str = "id, request_id, connector, entity, subject_hash, record_key, legal_basis, retain_until, \
     after_retention, status, attempts, last_error, created_at, ended_at, lease_owner, lease_until";

/// A retained record to schedule.
pub struct NewRetained {
    pub request_id: String,
    pub connector: String,
    pub entity: String,
    pub subject_hash: String,
    pub record_key: String,
    pub legal_basis: Option<String>,
    pub retain_until: String,
    pub after_retention: &'static str,
}

/// How ending a group was recorded.
pub enum Ended {
    /// The group is ENDED and the receipt amended; its new SHA-256.
    Recorded(String),
    /// The lease was no longer this gateway's: another one records it; nothing was written.
    LeaseLost,
}

impl RequestStore {
    /// Schedules retained records; a record scheduled already (a completion run again after a
    /// crash) is left as it is.
    pub async fn schedule_retained(&self, rows: &[NewRetained]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut tx = self.pool().begin().await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO retain_until (id, request_id, connector, entity, subject_hash, record_key, legal_basis, \
                 retain_until, after_retention, status, attempts, created_at, lease_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'SCHEDULED', 0, $10, $10) \
                 ON CONFLICT (request_id, connector, entity, record_key) DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(&row.request_id)
            .bind(&row.connector)
            .bind(&row.entity)
            .bind(&row.subject_hash)
            .bind(&row.record_key)
            .bind(&row.legal_basis)
            .bind(&row.retain_until)
            .bind(row.after_retention)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the lease of up to `limit` records whose retention ended by `due` (SCHEDULED, not
    /// leased or their lease ran out, their erasure COMPLETED: its receipt is what is amended),
    /// soonest first; counts the attempt.
    pub async fn claim_retained(
        &self,
        owner: &str,
        lease_until: &str,
        due: &str,
        limit: usize,
    ) -> Result<Vec<RetainedRow>, StoreError> {
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE retain_until SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM retain_until WHERE status = 'SCHEDULED' AND retain_until <= $3 AND lease_until < $4 \
             AND EXISTS (SELECT 1 FROM privacy_requests r WHERE r.id = retain_until.request_id \
             AND r.status = 'COMPLETED') \
             ORDER BY retain_until, id LIMIT {limit}{lock}) RETURNING {COLUMNS}"
        );
        Ok(
            subject_connectors::dynamic_sql::dynamic_query_as::<_, RetainedRow>(&sql)
                .bind(owner)
                .bind(lease_until)
                .bind(due)
                .bind(now())
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Gives a group back after a failed run, claimable again from `retry_at`, with the error.
    pub async fn retry_retained(
        &self,
        ids: &[String],
        owner: &str,
        error: &str,
        retry_at: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE retain_until SET last_error = $1, lease_owner = NULL, lease_until = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND status = 'SCHEDULED'",
            )
            .bind(error)
            .bind(retry_at)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends a group this gateway holds, in one transaction: its rows ENDED (each record key
    /// replaced by `forget(key)`), and `amendment` appended to the request's receipt
    /// (`amendments`), whose SHA-256 is recomputed. Nothing is written when any row's lease is
    /// no longer this gateway's.
    pub async fn end_retained(
        &self,
        rows: &[RetainedRow],
        owner: &str,
        amendment: Json,
        forget: impl Fn(&str) -> String,
    ) -> Result<Ended, StoreError> {
        let Some(request_id) = rows.first().map(|r| r.request_id.clone()) else {
            return Ok(Ended::LeaseLost);
        };
        let at = now();
        let mut tx = self.pool().begin().await?;
        // Takes the request row's write lock first: amendments of one receipt never interleave.
        sqlx::query("UPDATE privacy_requests SET updated_at = updated_at WHERE id = $1")
            .bind(&request_id)
            .execute(&mut *tx)
            .await?;
        for row in rows {
            let done = sqlx::query(
                "UPDATE retain_until SET status = 'ENDED', ended_at = $1, last_error = NULL, record_key = $2, \
                 lease_owner = NULL WHERE id = $3 AND lease_owner = $4 AND status = 'SCHEDULED'",
            )
            .bind(&at)
            .bind(forget(&row.record_key))
            .bind(&row.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                // Dropped without a commit: the transaction rolls back.
                return Ok(Ended::LeaseLost);
            }
        }
        let receipt: Option<String> =
            sqlx::query_scalar("SELECT receipt FROM privacy_requests WHERE id = $1")
                .bind(&request_id)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
        let mut receipt: Json = receipt
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| StoreError::Unreadable("receipt".into()))?;
        match receipt.get_mut("amendments").and_then(Json::as_array_mut) {
            Some(list) => list.push(amendment),
            None => receipt["amendments"] = Json::Array(vec![amendment]),
        }
        let text = serde_json::to_string(&receipt).map_err(|_| StoreError::Unreadable("receipt".into()))?;
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        sqlx::query("UPDATE privacy_requests SET receipt = $1, receipt_sha256 = $2 WHERE id = $3")
            .bind(&text)
            .bind(&digest)
            .bind(&request_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ended::Recorded(digest))
    }

    /// A page of the schedule, soonest end first, after the `(retain_until, id)` cursor.
    pub async fn retained_page(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<RetainedRow>, StoreError> {
        let (until, id) = after.unwrap_or(("", ""));
        Ok(subject_connectors::dynamic_sql::dynamic_query_as::<_, RetainedRow>(&format!(
            "SELECT {COLUMNS} FROM retain_until WHERE (retain_until > $1 OR (retain_until = $1 AND id > $2)) \
             ORDER BY retain_until, id LIMIT {limit}"
        ))
        .bind(until)
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }
}
