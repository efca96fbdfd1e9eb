//! The privacy-request tables of the state database: requests, their tasks and events, with the
//! lease that lets one gateway among several work on a request at a time.
//!
//! Every statement is parameterized and written once for SQLite and PostgreSQL (`$n`
//! placeholders, text timestamps of one fixed width); only the claim differs, to use
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

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
}

impl RequestRow {
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

/// One row of `privacy_tasks`.
///
/// Decoded by hand: `verified` is stored as an integer, and sqlx's `Any` driver does not decode
/// an integer column as `bool` (nor can `#[sqlx(try_from)]` name `Option<bool>`).
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub request_id: String,
    pub position: i64,
    pub connector: String,
    pub entity: String,
    pub action: TaskAction,
    pub stage: i64,
    pub status: TaskStatus,
    pub attempts: i64,
    pub records: Option<i64>,
    pub files: Option<i64>,
    pub legal_basis: Option<String>,
    pub retain_until: Option<String>,
    pub verified: Option<bool>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub lookup: Option<String>,
    pub known: Option<String>,
    pub jobs: Option<String>,
}

impl TaskRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            request_id: row.try_get("request_id")?,
            position: row.try_get("position")?,
            connector: row.try_get("connector")?,
            entity: row.try_get("entity")?,
            action: decode(row, "action")?,
            stage: row.try_get("stage")?,
            status: decode(row, "status")?,
            attempts: row.try_get("attempts")?,
            records: row.try_get("records")?,
            files: row.try_get("files")?,
            legal_basis: row.try_get("legal_basis")?,
            retain_until: row.try_get("retain_until")?,
            verified: row.try_get::<Option<i64>, _>("verified")?.map(|v| v != 0),
            error: row.try_get("error")?,
            error_code: row.try_get("error_code")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            lookup: row.try_get("lookup")?,
            known: row.try_get("known")?,
            jobs: row.try_get("jobs")?,
        })
    }
}

/// A text column read as one of the engine's enums; an unknown value is a decode error.
fn decode<T>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|error: T::Err| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    })
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
     planned_at";

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
}

impl RequestStore {
    pub fn new(pool: AnyPool, postgres: bool) -> Self {
        Self { pool, postgres }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn insert(&self, new: &NewRequest<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO privacy_requests (id, kind, status, idempotency_key, open_key, subject_hash, regulation, \
             reason, requested_by, created_at, updated_at, due_at, input, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $10)",
        )
        .bind(new.id)
        .bind(new.kind.as_str())
        .bind(RequestStatus::Received.as_str())
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
        let row = sqlx::query_as::<_, RequestRow>(&format!(
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
        let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM privacy_requests WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let next = |value: &str, binds: &mut Vec<String>| {
            binds.push(value.to_owned());
            format!("${}", binds.len())
        };
        if let Some(status) = status {
            sql.push_str(&format!(" AND status = {}", next(status.as_str(), &mut binds)));
        }
        if let Some(kind) = kind {
            sql.push_str(&format!(" AND kind = {}", next(kind.as_str(), &mut binds)));
        }
        if let Some(overdue) = overdue {
            let at = next(&now(), &mut binds);
            if overdue {
                sql.push_str(&format!(
                    " AND due_at < {at} AND status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED')"
                ));
            } else {
                sql.push_str(&format!(
                    " AND (due_at >= {at} OR status NOT IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED'))"
                ));
            }
        }
        if let Some((created, id)) = after {
            let created = next(created, &mut binds);
            let id = next(id, &mut binds);
            sql.push_str(&format!(
                " AND (created_at < {created} OR (created_at = {created} AND id < {id}))"
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", limit));
        let mut query = sqlx::query_as::<_, RequestRow>(&sql);
        for bind in &binds {
            query = query.bind(bind.as_str());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Takes the lease of one request that is open and not leased (or whose lease ran out).
    pub async fn claim(&self, owner: &str, lease_until: &str) -> Result<Option<String>, StoreError> {
        let at = now();
        let sql = if self.postgres {
            "UPDATE privacy_requests SET lease_owner = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM privacy_requests WHERE status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING') \
             AND lease_until < $3 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        } else {
            // SQLite runs one writer at a time: the statement is the lock.
            "UPDATE privacy_requests SET lease_owner = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM privacy_requests WHERE status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING') \
             AND lease_until < $3 ORDER BY created_at LIMIT 1) RETURNING id"
        };
        let id: Option<String> = sqlx::query_scalar(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(&at)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id)
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
             WHERE id = $2 AND status IN ('RECEIVED', 'IN_PROGRESS', 'WAITING', 'FAILED')",
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
            "UPDATE privacy_requests SET status = 'IN_PROGRESS', error = NULL, updated_at = $1, lease_until = $1 \
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
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM privacy_tasks WHERE request_id = $1 ORDER BY position"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(TaskRow::from_row).collect::<Result<_, _>>()?)
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
            sqlx::query(&format!(
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
        sqlx::query(
            "INSERT INTO privacy_events (id, request_id, at, kind, message, status) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(request_id)
        .bind(now())
        .bind(kind)
        .bind(message)
        .bind(status.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
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
        let mut found = Vec::new();
        for hash in subject_hashes {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, export FROM privacy_requests \
                 WHERE kind = 'EXPORT' AND subject_hash = $1 AND export IS NOT NULL",
            )
            .bind(hash)
            .fetch_all(&self.pool)
            .await?;
            found.extend(rows);
        }
        Ok(found)
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
