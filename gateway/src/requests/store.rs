//! The privacy-request tables of the state database: requests, their tasks and events, with the
//! lease that lets one gateway among several work on a request at a time.
//!
//! Every statement is parameterized and written once for SQLite and PostgreSQL (`$n`
//! placeholders, text timestamps of one fixed width); only the claim differs, to use
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL.

use crate::listing::Listing;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::{Any, AnyPool};
use subject_connectors::dynamic_sql::{dynamic_query, dynamic_query_as, dynamic_query_scalar};

pub use super::state::{RequestKind, RequestStatus, TaskAction, TaskStatus};

/// Why the request store failed. Never carries query text or values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the state database refused the query")]
    Query,
    #[error("a request with this key already exists")]
    Duplicate,
    /// A stored value the engine does not know (a status, kind or action none of its enums
    /// spells): the named column could not be read. Never mapped to another value.
    #[error("the state database holds a value of `{0}` this gateway does not know")]
    Unreadable(String),
    /// A file the state refers to (an export bundle) could not be written or removed.
    #[error("a file of the request could not be changed ({0})")]
    Io(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
            sqlx::Error::ColumnDecode { index, .. } => StoreError::Unreadable(index),
            _ => StoreError::Query,
        }
    }
}

/// A timestamp as stored: RFC 3339, UTC, microseconds, so that text order is time order.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now() -> String {
    stamp(Utc::now())
}

/// One row of `privacy_requests`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub kind: RequestKind,
    #[sqlx(try_from = "String")]
    pub status: RequestStatus,
    pub idempotency_key: String,
    pub subject_hash: String,
    pub regulation: String,
    pub reason: Option<String>,
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub due_at: String,
    pub extension_reason: Option<String>,
    pub completed_at: Option<String>,
    pub error: Option<String>,
    pub input: Option<String>,
    pub receipt: Option<String>,
    pub receipt_sha256: Option<String>,
    pub export: Option<String>,
    /// When the tasks were planned; `None` until a plan is stored (whatever the status).
    pub planned_at: Option<String>,
    /// approval: who approved or denied it, when, and why it was denied.
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
}

impl RequestRow {
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

/// One row of `privacy_tasks`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub request_id: String,
    pub position: i64,
    pub connector: String,
    pub entity: String,
    #[sqlx(try_from = "String")]
    pub action: TaskAction,
    pub stage: i64,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub attempts: i64,
    pub records: Option<i64>,
    pub files: Option<i64>,
    pub legal_basis: Option<String>,
    pub retain_until: Option<String>,
    /// Stored as an integer (0 or 1): sqlx's `Any` driver reads no integer column as `bool`.
    #[sqlx(try_from = "StoredFlag")]
    pub verified: Option<bool>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub lookup: Option<String>,
    pub known: Option<String>,
    pub jobs: Option<String>,
}

/// A nullable flag as stored: an integer, non-zero for true.
pub struct StoredFlag(Option<i64>);

impl sqlx::Type<Any> for StoredFlag {
    fn type_info() -> AnyTypeInfo {
        <i64 as sqlx::Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Any> for StoredFlag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <Option<i64> as sqlx::Decode<'r, Any>>::decode(value).map(StoredFlag)
    }
}

impl From<StoredFlag> for Option<bool> {
    fn from(flag: StoredFlag) -> Self {
        flag.0.map(|v| v != 0)
    }
}

/// One progress event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub request_id: String,
    pub at: String,
    pub kind: String,
    pub message: String,
    /// The request's status when the event was recorded.
    #[sqlx(try_from = "String")]
    pub status: RequestStatus,
}

/// The request tables of one state database.
#[derive(Clone)]
pub struct RequestStore {
    pool: AnyPool,
    postgres: bool,
}

const REQUEST_COLUMNS: &str = "id, kind, status, idempotency_key, subject_hash, regulation, reason, requested_by, \
     created_at, updated_at, due_at, extension_reason, completed_at, error, input, receipt, receipt_sha256, export, \
     planned_at, decided_by, decided_at, decision_reason";

const TASK_COLUMNS: &str = "request_id, position, connector, entity, action, stage, status, attempts, records, \
     files, legal_basis, retain_until, verified, error, error_code, started_at, finished_at, lookup, known, jobs";

/// A new request to insert.
pub struct NewRequest<'a> {
    pub id: &'a str,
    pub kind: RequestKind,
    pub idempotency_key: &'a str,
    pub open_key: Option<&'a str>,
    pub subject_hash: &'a str,
    pub regulation: &'a str,
    pub reason: Option<&'a str>,
    pub requested_by: &'a str,
    pub created_at: &'a str,
    pub due_at: &'a str,
    pub input: &'a str,
    /// RECEIVED, or AWAITING_APPROVAL when its type needs approval.
    pub status: RequestStatus,
}

impl RequestStore {
    pub fn new(pool: AnyPool, postgres: bool) -> Self {
        Self { pool, postgres }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    pub async fn insert(&self, new: &NewRequest<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO privacy_requests (id, kind, status, idempotency_key, open_key, subject_hash, regulation, \
             reason, requested_by, created_at, updated_at, due_at, input, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $10)",
        )
        .bind(new.id)
        .bind(new.kind.as_str())
        .bind(new.status.as_str())
        .bind(new.idempotency_key)
        .bind(new.open_key)
        .bind(new.subject_hash)
        .bind(new.regulation)
        .bind(new.reason)
        .bind(new.requested_by)
        .bind(new.created_at)
        .bind(new.due_at)
        .bind(new.input)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn request_where(&self, clause: &str, value: &str) -> Result<Option<RequestRow>, StoreError> {
        let row = dynamic_query_as::<_, RequestRow>(&format!(
            "SELECT {REQUEST_COLUMNS} FROM privacy_requests WHERE {clause} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StoreError> {
        self.request_where("id", id).await
    }

    pub async fn by_idempotency_key(&self, key: &str) -> Result<Option<RequestRow>, StoreError> {
        self.request_where("idempotency_key", key).await
    }

    pub async fn by_open_key(&self, key: &str) -> Result<Option<RequestRow>, StoreError> {
        self.request_where("open_key", key).await
    }

    /// A page of requests, newest first, after the `(created_at, id)` cursor.
    pub async fn list(
        &self,
        status: Option<RequestStatus>,
        kind: Option<RequestKind>,
        overdue: Option<bool>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let mut listing = Listing::new(format!(
            "SELECT {REQUEST_COLUMNS} FROM privacy_requests WHERE 1 = 1"
        ));
        if let Some(status) = status {
            listing.equals("status", status.as_str());
        }
        if let Some(kind) = kind {
            listing.equals("kind", kind.as_str());
        }
        if let Some(overdue) = overdue {
            narrow_overdue(&mut listing, overdue);
        }
        if let Some(cursor) = after {
            listing.after("", cursor, true);
        }
        Ok(listing.fetch(&self.pool, "", true, limit).await?)
    }

    /// Takes the lease of one request that is open and not leased (or whose lease ran out), and
    /// not waiting for a person or a batch (`batch_store::NOT_WAITING`).
    pub async fn claim(&self, owner: &str, lease_until: &str) -> Result<Option<String>, StoreError> {
        // SQLite runs one writer at a time: the statement is the lock.
        let lock = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE privacy_requests SET lease_owner = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM privacy_requests WHERE status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING') \
             AND lease_until < $3 AND {} ORDER BY created_at LIMIT 1{lock}) RETURNING id",
            super::batch_store::NOT_WAITING
        );
        Ok(dynamic_query_scalar::<_, String>(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Extends a lease this owner holds; `false` when another has taken it.
    pub async fn renew(&self, id: &str, owner: &str, lease_until: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE privacy_requests SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(lease_until)
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up; the request may be claimed again from `available_at`.
    pub async fn release(&self, id: &str, owner: &str, available_at: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE privacy_requests SET lease_owner = NULL, lease_until = $1 WHERE id = $2 AND lease_owner = $3",
        )
        .bind(available_at)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_status(
        &self,
        id: &str,
        status: RequestStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let finished = !status.is_open();
        sqlx::query(
            "UPDATE privacy_requests SET status = $1, error = $2, updated_at = $3, \
             open_key = CASE WHEN $4 = 1 THEN NULL ELSE open_key END WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(i64::from(finished))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the request COMPLETED with its receipt, and forgets the personal data it kept to do
    /// its work (the identity given, lookup values, records found).
    pub async fn complete(
        &self,
        id: &str,
        receipt: &str,
        receipt_sha256: &str,
        export: Option<&str>,
    ) -> Result<(), StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE privacy_requests SET status = 'COMPLETED', error = NULL, updated_at = $1, completed_at = $1, \
             receipt = $2, receipt_sha256 = $3, export = $4, input = NULL, open_key = NULL, lease_owner = NULL \
             WHERE id = $5",
        )
        .bind(&at)
        .bind(receipt)
        .bind(receipt_sha256)
        .bind(export)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE privacy_tasks SET lookup = NULL, known = NULL WHERE request_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels an open or failed request and forgets its personal data.
    pub async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE privacy_requests SET status = 'CANCELLED', updated_at = $1, input = NULL, open_key = NULL \
             WHERE id = $2 AND status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED', 'AWAITING_APPROVAL')",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE privacy_tasks SET lookup = NULL, known = NULL, \
             status = CASE WHEN status IN ('DONE', 'SKIPPED') THEN status ELSE 'SKIPPED' END WHERE request_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a FAILED request back to work: its failed tasks become pending again.
    pub async fn reopen(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE privacy_requests SET status = 'IN_PROGRESS', error = NULL, updated_at = $1, \
             lease_until = CASE WHEN lease_owner IS NULL THEN $1 ELSE lease_until END \
             WHERE id = $2 AND status = 'FAILED'",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE privacy_tasks SET status = 'PENDING', error = NULL, error_code = NULL, verified = NULL \
             WHERE request_id = $1 AND status = 'FAILED'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(super::batch_store::REOPEN_FAILED_MEMBERS)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn extend(&self, id: &str, due_at: &str, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE privacy_requests SET due_at = $1, extension_reason = $2, updated_at = $3 \
             WHERE id = $4 AND extension_reason IS NULL",
        )
        .bind(due_at)
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn tasks(&self, request_id: &str) -> Result<Vec<TaskRow>, StoreError> {
        let rows = dynamic_query_as::<_, TaskRow>(&format!(
            "SELECT {TASK_COLUMNS} FROM privacy_tasks WHERE request_id = $1 ORDER BY position"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Stores the planned tasks and moves the request to IN_PROGRESS, in one transaction: a plan
    /// is recorded whole or not at all.
    pub async fn plan(&self, request_id: &str, tasks: &[TaskRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM privacy_tasks WHERE request_id = $1")
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        for task in tasks {
            dynamic_query(format!(
                "INSERT INTO privacy_tasks ({TASK_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            ))
            .bind(request_id)
            .bind(task.position)
            .bind(&task.connector)
            .bind(&task.entity)
            .bind(task.action.as_str())
            .bind(task.stage)
            .bind(task.status.as_str())
            .bind(task.attempts)
            .bind(task.records)
            .bind(task.files)
            .bind(&task.legal_basis)
            .bind(&task.retain_until)
            .bind(task.verified.map(i64::from))
            .bind(&task.error)
            .bind(&task.error_code)
            .bind(&task.started_at)
            .bind(&task.finished_at)
            .bind(&task.lookup)
            .bind(&task.known)
            .bind(&task.jobs)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE privacy_requests SET status = 'IN_PROGRESS', updated_at = $1, planned_at = $1 WHERE id = $2",
        )
        .bind(now())
        .bind(request_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a task's progress (everything but its identity and plan).
    pub async fn update_task(&self, task: &TaskRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE privacy_tasks SET status = $1, attempts = $2, records = $3, files = $4, retain_until = $5, \
             verified = $6, error = $7, error_code = $8, started_at = $9, finished_at = $10, jobs = $11 \
             WHERE request_id = $12 AND position = $13",
        )
        .bind(task.status.as_str())
        .bind(task.attempts)
        .bind(task.records)
        .bind(task.files)
        .bind(&task.retain_until)
        .bind(task.verified.map(i64::from))
        .bind(&task.error)
        .bind(&task.error_code)
        .bind(&task.started_at)
        .bind(&task.finished_at)
        .bind(&task.jobs)
        .bind(&task.request_id)
        .bind(task.position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_event(
        &self,
        request_id: &str,
        kind: &str,
        message: &str,
        status: RequestStatus,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_event(&mut conn, request_id, kind, message, status).await
    }

    /// Events of a request after `(at, id)`, oldest first.
    pub async fn events_after(
        &self,
        request_id: &str,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let (at, id) = after.unwrap_or(("", ""));
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT id, request_id, at, kind, message, status FROM privacy_events \
             WHERE request_id = $1 AND (at > $2 OR (at = $2 AND id > $3)) ORDER BY at, id",
        )
        .bind(request_id)
        .bind(at)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Records an objection; `false` when the person had already objected to the purpose.
    pub async fn record_objection(
        &self,
        subject_hash: &str,
        purpose: &str,
        request_id: &str,
    ) -> Result<bool, StoreError> {
        match sqlx::query(
            "INSERT INTO objections (subject_hash, purpose, request_id, recorded_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(subject_hash)
        .bind(purpose)
        .bind(request_id)
        .bind(now())
        .execute(&self.pool)
        .await
        {
            Ok(_) => Ok(true),
            Err(error) => match StoreError::from(error) {
                StoreError::Duplicate => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Export bundles whose link expired and whose file is still kept.
    pub async fn expired_exports(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, export FROM privacy_requests WHERE kind = 'EXPORT' AND export IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Export bundles still kept for any of these subjects (hashed identities).
    pub async fn exports_of(&self, subject_hashes: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        if subject_hashes.is_empty() {
            return Ok(Vec::new());
        }
        // One query for all of the person's identities: `subject_hash IN ($1, …)`.
        let placeholders: Vec<String> = (1..=subject_hashes.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id, export FROM privacy_requests \
             WHERE kind = 'EXPORT' AND export IS NOT NULL AND subject_hash IN ({})",
            placeholders.join(", ")
        );
        let mut query = dynamic_query_as::<_, (String, String)>(&sql);
        for hash in subject_hashes {
            query = query.bind(hash);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn set_export(&self, id: &str, export: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE privacy_requests SET export = $1 WHERE id = $2")
            .bind(export)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A secret the gateway made for itself, made on first use (shared by replicas).
    pub async fn secret(&self, name: &str) -> Result<String, StoreError> {
        if let Some(value) =
            sqlx::query_scalar::<_, String>("SELECT value FROM gateway_secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
        {
            return Ok(value);
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        // Two replicas starting at once: one insert wins, both read the winner.
        let _ = sqlx::query("INSERT INTO gateway_secrets (name, value) VALUES ($1, $2)")
            .bind(name)
            .bind(hex::encode(bytes))
            .execute(&self.pool)
            .await;
        let value = sqlx::query_scalar::<_, String>("SELECT value FROM gateway_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }
}

/// Inserts one progress event on `conn` (webhooks: inside the transaction that also writes the
/// event's webhook messages, see `crate::webhooks::Webhooks::record_event`).
pub async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    request_id: &str,
    kind: &str,
    message: &str,
    status: RequestStatus,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO privacy_events (id, request_id, at, kind, message, status) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(request_id)
    .bind(now())
    .bind(kind)
    .bind(message)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Narrows `listing` to requests past their due date and not finished (or to the others).
pub(super) fn narrow_overdue(listing: &mut Listing, overdue: bool) {
    let at = listing.bind(&now());
    listing.and(&if overdue {
        format!("due_at < {at} AND status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED', 'AWAITING_APPROVAL')")
    } else {
        format!("(due_at >= {at} OR status NOT IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED', 'AWAITING_APPROVAL'))")
    });
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A fresh SQLite state database in a temporary file, migrated.
    async fn store() -> (RequestStore, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("typed-store-{}.db", uuid::Uuid::new_v4().simple()));
        let keys = crate::keys::KeyStore::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(|e| e.to_string())
            .unwrap();
        (RequestStore::new(keys.pool().clone(), false), path)
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// Inserts a RECEIVED erasure `id` with placeholder values.
    pub(in crate::requests) async fn insert(store: &RequestStore, id: &str) {
        let at = now();
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
                created_at: &at,
                due_at: &at,
                input: "{}",
                status: RequestStatus::Received,
            })
            .await
            .unwrap();
    }

    fn task(position: i64, verified: Option<bool>) -> TaskRow {
        TaskRow {
            request_id: "r1".into(),
            position,
            connector: "c".into(),
            entity: "e".into(),
            action: TaskAction::Cascade,
            stage: 0,
            status: TaskStatus::Pending,
            attempts: 0,
            records: Some(2),
            files: None,
            legal_basis: None,
            retain_until: None,
            verified,
            error: None,
            error_code: None,
            started_at: None,
            finished_at: None,
            lookup: None,
            known: None,
            jobs: None,
        }
    }

    #[tokio::test]
    async fn rows_read_back_typed() {
        let (store, path) = store().await;
        insert(&store, "r1").await;
        let row = store.request("r1").await.unwrap().unwrap();
        assert_eq!(
            (row.kind, row.status),
            (RequestKind::Erasure, RequestStatus::Received)
        );
        store
            .plan("r1", &[task(0, None), task(1, Some(true)), task(2, Some(false))])
            .await
            .unwrap();
        let tasks = store.tasks("r1").await.unwrap();
        let read: Vec<_> = tasks.iter().map(|t| (t.action, t.status, t.verified)).collect();
        assert_eq!(
            read,
            [
                (TaskAction::Cascade, TaskStatus::Pending, None),
                (TaskAction::Cascade, TaskStatus::Pending, Some(true)),
                (TaskAction::Cascade, TaskStatus::Pending, Some(false)),
            ]
        );
        store
            .add_event("r1", "planned", "1 task", RequestStatus::InProgress)
            .await
            .unwrap();
        let events = store.events_after("r1", None).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status, RequestStatus::InProgress);
        remove(&path);
    }

    #[tokio::test]
    async fn an_unknown_stored_value_is_an_error_not_a_guess() {
        let (store, path) = store().await;
        insert(&store, "r1").await;
        store.plan("r1", &[task(0, None)]).await.unwrap();
        sqlx::query("UPDATE privacy_tasks SET action = 'SHRED'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(store.tasks("r1").await, Err(StoreError::Unreadable(c)) if c == "action"));
        sqlx::query("UPDATE privacy_requests SET status = 'archived'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(store.request("r1").await, Err(StoreError::Unreadable(c)) if c == "status"));
        assert!(matches!(
            store.list(None, None, None, None, 10).await,
            Err(StoreError::Unreadable(c)) if c == "status"
        ));
        remove(&path);
    }
}
