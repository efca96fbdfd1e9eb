//! The audit trail in the state database: append-only events, each carrying the SHA-256 of its
//! content and of the event before, so that an edited, inserted or deleted event breaks the chain
//! and `subject-gateway audit verify` names where. Identities are stored as HMACs under a key kept
//! in the same database (stable across restarts, so auditors can search by person).

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use subject_schema::audit::{AuditEntry, AuditError, AuditFilter, AuditLog, AuditRecord, SubjectRef};
use tokio::sync::Mutex;

/// The hash the chain starts from.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit log of the state database.
pub struct DbAuditLog {
    pool: AnyPool,
    key: Vec<u8>,
    /// Appends from this process one at a time (replicas serialise on the head row).
    append: Mutex<()>,
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("event {seq}: its content does not match its hash (edited)")]
    Edited { seq: i64 },
    #[error("event {seq}: it does not follow event {previous} (events missing or inserted)")]
    Gap { seq: i64, previous: i64 },
    #[error("event {seq}: it does not chain to the hash of the event before")]
    Broken { seq: i64 },
    #[error(
        "the head records {head_seq} events but the trail ends at {last_seq} (events deleted at the end)"
    )]
    Truncated { head_seq: i64, last_seq: i64 },
    #[error("the audit trail could not be read")]
    Unreadable,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn content_hash(row: &Row) -> String {
    let (seq, at, actor, role, purpose, action, subjects, detail, prev, _) = row;
    let mut hasher = Sha256::new();
    for part in [
        &seq.to_string(),
        at,
        actor,
        role,
        purpose,
        action,
        subjects,
        detail,
        prev,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex::encode(hasher.finalize())
}

fn failed(_: sqlx::Error) -> AuditError {
    AuditError("the state database refused the query".into())
}

impl DbAuditLog {
    /// The audit log in the (already migrated) state database `pool`.
    pub async fn open(pool: AnyPool) -> Result<Self, AuditError> {
        let existing: Option<String> = sqlx::query_scalar("SELECT key FROM audit_key WHERE id = 1")
            .fetch_optional(&pool)
            .await
            .map_err(failed)?;
        let key = match existing {
            Some(key) => key,
            None => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let key = hex::encode(bytes);
                // A concurrent first start may have inserted one: keep whichever is there.
                let _ = sqlx::query("INSERT INTO audit_key (id, key) VALUES (1, $1)")
                    .bind(&key)
                    .execute(&pool)
                    .await;
                sqlx::query_scalar("SELECT key FROM audit_key WHERE id = 1")
                    .fetch_one(&pool)
                    .await
                    .map_err(failed)?
            }
        };
        Ok(Self {
            pool,
            key: key.into_bytes(),
            append: Mutex::new(()),
        })
    }

    /// The keyed hash an identity is stored as.
    pub fn subject_hash(&self, subject: &SubjectRef) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            unreachable!("HMAC-SHA256 accepts any key length")
        };
        mac.update(subject.kind.as_bytes());
        mac.update(b":");
        mac.update(subject.value.expose().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Walks the whole trail; returns the number of events and the head hash when it is intact.
    pub async fn verify(&self) -> Result<(i64, String), ChainError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash FROM audit_events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|_| ChainError::Unreadable)?;
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(|_| ChainError::Unreadable)?;
        let (mut previous, mut previous_hash) = (0_i64, GENESIS.to_owned());
        for row in &rows {
            let seq = row.0;
            if seq != previous + 1 {
                return Err(ChainError::Gap { seq, previous });
            }
            if row.8 != previous_hash {
                return Err(ChainError::Broken { seq });
            }
            if content_hash(row) != row.9 {
                return Err(ChainError::Edited { seq });
            }
            previous = seq;
            previous_hash = row.9.clone();
        }
        if head_seq != previous || head_hash != previous_hash {
            return Err(ChainError::Truncated {
                head_seq,
                last_seq: previous,
            });
        }
        Ok((previous, previous_hash))
    }
}

#[async_trait]
impl AuditLog for DbAuditLog {
    async fn append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let subjects: Vec<String> = entry.subjects.iter().map(|s| self.subject_hash(s)).collect();
        let _one_at_a_time = self.append.lock().await;
        let mut tx = self.pool.begin().await.map_err(failed)?;
        // Taking the head row locks it until commit: replicas append one at a time.
        let (seq, prev): (i64, String) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *tx)
                .await
                .map_err(failed)?;
        let mut row: Row = (
            seq,
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            entry.actor,
            entry.role,
            entry.purpose,
            entry.action,
            serde_json::to_string(&subjects).unwrap_or_else(|_| "[]".into()),
            entry.detail.to_string(),
            prev,
            String::new(),
        );
        row.9 = content_hash(&row);
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.0)
        .bind(&row.1)
        .bind(&row.2)
        .bind(&row.3)
        .bind(&row.4)
        .bind(&row.5)
        .bind(&row.6)
        .bind(&row.7)
        .bind(&row.8)
        .bind(&row.9)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&row.9)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn list(&self, filter: &AuditFilter) -> Result<(Vec<AuditRecord>, bool), AuditError> {
        let subject = filter.subject.as_ref().map(|s| self.subject_hash(s));
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash FROM audit_events \
             WHERE seq > $1 AND (CAST($2 AS TEXT) IS NULL OR action = CAST($2 AS TEXT)) \
             AND (CAST($3 AS TEXT) IS NULL OR actor = CAST($3 AS TEXT)) \
             AND (CAST($4 AS TEXT) IS NULL OR subjects LIKE '%' || CAST($4 AS TEXT) || '%') ORDER BY seq LIMIT $5",
        )
        .bind(filter.after.unwrap_or(0))
        .bind(filter.action.clone())
        .bind(filter.actor.clone())
        .bind(subject)
        .bind(filter.first as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        let more = rows.len() > filter.first;
        let records = rows
            .into_iter()
            .take(filter.first)
            .map(
                |(seq, at, actor, role, purpose, action, subjects, detail, _, hash)| AuditRecord {
                    seq,
                    at,
                    actor,
                    role,
                    purpose,
                    action,
                    subjects: serde_json::from_str(&subjects).unwrap_or_default(),
                    detail: serde_json::from_str(&detail).unwrap_or_default(),
                    hash,
                },
            )
            .collect();
        Ok((records, more))
    }
}
