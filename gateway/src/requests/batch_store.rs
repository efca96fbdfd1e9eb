//! The tables of batched erases (`migrations/0010_…`): `erase_batches` (one vendor call and
//! its job) and `erase_batch_members` (the requests' tasks that follow it). Joining is one
//! transaction with the task's move to WAITING; a batch closes when it is claimed (OPEN ->
//! SENDING in the claiming statement, so no member joins after its items were read); its end
//! settles every member and wakes their requests in one transaction.
//!
//! Every statement is parameterized and written once for SQLite and PostgreSQL, as in
//! [`super::store`]; the claim uses `FOR UPDATE SKIP LOCKED` on PostgreSQL.

use subject_connectors::EraseBatching;
use subject_connectors::dynamic_sql::dynamic_query_as;

use super::store::{RequestStore, StoreError, TaskRow, now, stamp};

/// The claim's condition on a request (`RequestStore::claim`): not while it waits for a person (a
/// task MANUAL: completing it wakes the request) or for a batch (a member OPEN: the batch's end
/// wakes it) — but at once when a batch it was in ended and its task has yet to follow, even
/// while a manual task is still open.
pub(super) const NOT_WAITING: &str = "((NOT EXISTS (SELECT 1 FROM privacy_tasks t \
     WHERE t.request_id = privacy_requests.id AND t.status = 'MANUAL') \
     AND NOT EXISTS (SELECT 1 FROM erase_batch_members b \
     WHERE b.request_id = privacy_requests.id AND b.status = 'OPEN')) \
     OR EXISTS (SELECT 1 FROM erase_batch_members b JOIN privacy_tasks t \
     ON t.request_id = b.request_id AND t.position = b.position \
     WHERE b.request_id = privacy_requests.id AND b.status IN ('SUCCEEDED', 'FAILED') AND t.status = 'WAITING'))";

/// A retry (`RequestStore::reopen`) also redoes a task still WAITING on a batch that failed
/// after its request had failed for another reason: it joins a new batch.
pub(super) const REOPEN_FAILED_MEMBERS: &str = "UPDATE privacy_tasks SET status = 'PENDING' \
     WHERE request_id = $1 AND status = 'WAITING' AND EXISTS (SELECT 1 FROM erase_batch_members b \
     WHERE b.request_id = privacy_tasks.request_id AND b.position = privacy_tasks.position AND b.status = 'FAILED')";

/// One row of `erase_batches`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchRow {
    pub id: String,
    pub connector: String,
    pub entity: String,
    /// OPEN, SENDING, SENT, SUCCEEDED or FAILED.
    pub status: String,
    /// Items (records) its members carry.
    pub members: i64,
    pub max_batch: i64,
    pub opened_at: String,
    pub closes_at: String,
    pub sent_at: Option<String>,
    pub job_id: Option<String>,
    /// How many items the call carried.
    pub items: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub finished_at: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: String,
}

const BATCH_COLUMNS: &str = "id, connector, entity, status, members, max_batch, opened_at, closes_at, sent_at, \
     job_id, items, attempts, error, error_code, finished_at, lease_owner, lease_until";

/// One row of `erase_batch_members`, with its request's status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub request_id: String,
    pub position: i64,
    pub batch_id: String,
    /// OPEN, SUCCEEDED, FAILED or SKIPPED.
    pub status: String,
    pub records: i64,
    /// The values the call carries for this request's records (JSON list); personal data.
    pub items: Option<String>,
    pub request_status: String,
}

const MEMBER_COLUMNS: &str = "m.request_id, m.position, m.batch_id, m.status, m.records, m.items, \
     r.status AS request_status";

impl RequestStore {
    /// Adds `task` (carrying `items`, a JSON list of `count` values for `records` records) to an
    /// OPEN batch of its connector and entity with room for it — one past its window too, until a
    /// gateway claims it: while the vendor is busy with earlier batches, the next one grows — or
    /// opens one, and marks the task
    /// WAITING, in one transaction; the batch's id. A member left from an earlier attempt (its
    /// batch ended) is replaced.
    pub async fn join_batch(
        &self,
        task: &TaskRow,
        batching: EraseBatching,
        records: i64,
        items: &str,
        count: i64,
    ) -> Result<String, StoreError> {
        let at = now();
        let mut tx = self.pool().begin().await?;
        if self.is_postgres() {
            // Two gateways joining at once would each find no open batch (neither sees the
            // other's uncommitted one) and open one each: two half-full batches that wait for
            // their window instead of one that fills. Joining a connector's batches is taken in
            // turn, until commit.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("erase_batches:{}:{}", task.connector, task.entity))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "DELETE FROM erase_batch_members WHERE request_id = $1 AND position = $2 AND status <> 'OPEN'",
        )
        .bind(&task.request_id)
        .bind(task.position)
        .execute(&mut *tx)
        .await?;
        let joined: Option<String> = sqlx::query_scalar(
            "SELECT batch_id FROM erase_batch_members WHERE request_id = $1 AND position = $2",
        )
        .bind(&task.request_id)
        .bind(task.position)
        .fetch_optional(&mut *tx)
        .await?;
        let batch = match joined {
            Some(batch) => batch,
            None => {
                let open: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM erase_batches WHERE connector = $1 AND entity = $2 AND status = 'OPEN' \
                     AND members + $3 <= max_batch ORDER BY opened_at, id LIMIT 1",
                )
                .bind(&task.connector)
                .bind(&task.entity)
                .bind(count)
                .fetch_optional(&mut *tx)
                .await?;
                // The check and the count are one statement: a batch closed or filled meanwhile
                // (another gateway) takes no one more.
                let taken = match &open {
                    Some(id) => {
                        sqlx::query(
                            "UPDATE erase_batches SET members = members + $1 \
                             WHERE id = $2 AND status = 'OPEN' AND members + $1 <= max_batch",
                        )
                        .bind(count)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1
                    }
                    None => false,
                };
                match open.filter(|_| taken) {
                    Some(id) => id,
                    None => {
                        let id = format!("eb_{}", uuid::Uuid::new_v4().simple());
                        let window =
                            chrono::Duration::from_std(batching.window).unwrap_or(chrono::Duration::zero());
                        sqlx::query(
                            "INSERT INTO erase_batches (id, connector, entity, status, members, max_batch, opened_at, \
                             closes_at, attempts, lease_until) VALUES ($1, $2, $3, 'OPEN', $4, $5, $6, $7, 0, '')",
                        )
                        .bind(&id)
                        .bind(&task.connector)
                        .bind(&task.entity)
                        .bind(count)
                        .bind(batching.max_batch as i64)
                        .bind(&at)
                        .bind(stamp(chrono::Utc::now() + window))
                        .execute(&mut *tx)
                        .await?;
                        id
                    }
                }
            }
        };
        sqlx::query(
            "INSERT INTO erase_batch_members (request_id, position, batch_id, status, records, items, joined_at) \
             VALUES ($1, $2, $3, 'OPEN', $4, $5, $6) ON CONFLICT (request_id, position) DO NOTHING",
        )
        .bind(&task.request_id)
        .bind(task.position)
        .bind(&batch)
        .bind(records)
        .bind(items)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE privacy_tasks SET status = 'WAITING', attempts = $1, records = $2, started_at = $3, \
             error = NULL, error_code = NULL, jobs = NULL WHERE request_id = $4 AND position = $5",
        )
        .bind(task.attempts)
        .bind(records)
        .bind(&task.started_at)
        .bind(&task.request_id)
        .bind(task.position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(batch)
    }

    /// A task's member row and its batch.
    pub async fn member(
        &self,
        request_id: &str,
        position: i64,
    ) -> Result<Option<(MemberRow, BatchRow)>, StoreError> {
        let member = dynamic_query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM erase_batch_members m JOIN privacy_requests r ON r.id = m.request_id \
             WHERE m.request_id = $1 AND m.position = $2"
        ))
        .bind(request_id)
        .bind(position)
        .fetch_optional(self.pool())
        .await?;
        let Some(member) = member else { return Ok(None) };
        let batch = dynamic_query_as::<_, BatchRow>(&format!(
            "SELECT {BATCH_COLUMNS} FROM erase_batches WHERE id = $1"
        ))
        .bind(&member.batch_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(batch.map(|batch| (member, batch)))
    }

    /// Takes the lease of one batch with work due: OPEN and full or past its window (closed by
    /// this statement: SENDING), or SENDING/SENT with no live lease.
    pub async fn claim_batch(&self, owner: &str, lease_until: &str) -> Result<Option<BatchRow>, StoreError> {
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE erase_batches SET lease_owner = $1, lease_until = $2, \
             status = CASE WHEN status = 'OPEN' THEN 'SENDING' ELSE status END WHERE id = (\
             SELECT id FROM erase_batches WHERE lease_until < $3 AND (status IN ('SENDING', 'SENT') \
             OR (status = 'OPEN' AND (members >= max_batch OR closes_at <= $3))) \
             ORDER BY opened_at, id LIMIT 1{lock}) RETURNING {BATCH_COLUMNS}"
        );
        Ok(dynamic_query_as::<_, BatchRow>(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now())
            .fetch_optional(self.pool())
            .await?)
    }

    /// Extends a batch lease this owner holds; `false` when another has taken it.
    pub async fn renew_batch(&self, id: &str, owner: &str, lease_until: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE erase_batches SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(lease_until)
                .bind(id)
                .bind(owner)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The members still following a batch, with their requests' status.
    pub async fn open_members(&self, batch_id: &str) -> Result<Vec<MemberRow>, StoreError> {
        Ok(dynamic_query_as::<_, MemberRow>(&format!(
            "SELECT {MEMBER_COLUMNS} FROM erase_batch_members m JOIN privacy_requests r ON r.id = m.request_id \
             WHERE m.batch_id = $1 AND m.status = 'OPEN' ORDER BY m.joined_at, m.request_id"
        ))
        .bind(batch_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Drops a member whose request was cancelled before the call (its values are forgotten).
    pub async fn skip_member(&self, member: &MemberRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE erase_batch_members SET status = 'SKIPPED', items = NULL \
             WHERE request_id = $1 AND position = $2 AND status = 'OPEN'",
        )
        .bind(&member.request_id)
        .bind(member.position)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the job a batch's call started (SENT), if this owner still holds it.
    /// Records the job of a sent batch and gives the batch back until its first poll, `poll_at`
    /// (held until its lease ran out, the job would be polled a whole lease later).
    pub async fn batch_sent(
        &self,
        id: &str,
        owner: &str,
        job: &str,
        items: i64,
        poll_at: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE erase_batches SET status = 'SENT', job_id = $1, items = $2, sent_at = $3, error = NULL, \
             lease_owner = NULL, lease_until = $6 WHERE id = $4 AND lease_owner = $5 AND status = 'SENDING'",
        )
        .bind(job)
        .bind(items)
        .bind(now())
        .bind(id)
        .bind(owner)
        .bind(poll_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a batch back until `until` (the next poll, or a backoff), counting an attempt and
    /// noting a transient error when given.
    pub async fn batch_later(
        &self,
        id: &str,
        owner: &str,
        until: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let query = match error {
            Some(error) => sqlx::query(
                "UPDATE erase_batches SET lease_owner = NULL, lease_until = $1, attempts = attempts + 1, error = $2 \
                 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(until)
            .bind(error),
            None => sqlx::query(
                "UPDATE erase_batches SET lease_owner = NULL, lease_until = $1 WHERE id = $2 AND lease_owner = $3",
            )
            .bind(until),
        };
        query.bind(id).bind(owner).execute(self.pool()).await?;
        Ok(())
    }

    /// Ends a batch (SUCCEEDED or FAILED, with the error) if this owner still holds it: every
    /// open member follows and its request is woken, in one transaction; `false` when the lease
    /// was lost (the holder ends it).
    pub async fn settle_batch(
        &self,
        id: &str,
        owner: &str,
        outcome: &str,
        error: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        let at = now();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE erase_batches SET status = $1, error = $2, error_code = $3, finished_at = $4, lease_owner = NULL \
             WHERE id = $5 AND lease_owner = $6 AND status IN ('SENDING', 'SENT')",
        )
        .bind(outcome)
        .bind(error.map(|(message, _)| message))
        .bind(error.map(|(_, code)| code))
        .bind(&at)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            // Wakes the members' requests, never shortening a lease a gateway holds (see
            // `manual.rs`: two workers would run one request).
            "UPDATE privacy_requests SET updated_at = $1, \
             lease_until = CASE WHEN lease_owner IS NULL THEN $1 ELSE lease_until END WHERE id IN \
             (SELECT request_id FROM erase_batch_members WHERE batch_id = $2 AND status = 'OPEN')",
        )
        .bind(&at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE erase_batch_members SET status = $1, items = NULL WHERE batch_id = $2 AND status = 'OPEN'")
            .bind(outcome)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::store::{TaskAction, TaskStatus};

    async fn store() -> (RequestStore, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("batch-store-{}.db", uuid::Uuid::new_v4().simple()));
        let keys = crate::keys::KeyStore::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(|e| e.to_string())
            .unwrap();
        (RequestStore::new(keys.pool().clone(), false), path)
    }

    /// A request `id` planned with one task of analytics.profiles.
    async fn planned(store: &RequestStore, id: &str) -> TaskRow {
        crate::requests::store::tests::insert(store, id).await;
        let task = TaskRow {
            request_id: id.into(),
            position: 0,
            connector: "analytics".into(),
            entity: "profiles".into(),
            action: TaskAction::Delete,
            stage: 0,
            status: TaskStatus::Pending,
            attempts: 1,
            records: None,
            files: None,
            legal_basis: None,
            retain_until: None,
            verified: None,
            error: None,
            error_code: None,
            started_at: None,
            finished_at: None,
            lookup: None,
            known: None,
            jobs: None,
        };
        store.plan(id, std::slice::from_ref(&task)).await.unwrap();
        task
    }

    #[tokio::test]
    async fn members_share_a_batch_until_it_is_full_and_follow_its_end() {
        let (store, path) = store().await;
        let batching = EraseBatching {
            max_batch: 2,
            window: std::time::Duration::from_secs(600),
        };
        let mut batches = Vec::new();
        for id in ["r1", "r2", "r3"] {
            let task = planned(&store, id).await;
            batches.push(store.join_batch(&task, batching, 1, "[\"u1\"]", 1).await.unwrap());
        }
        assert_eq!(batches[0], batches[1], "two fit in one batch");
        assert_ne!(batches[1], batches[2], "the third opens another");
        assert_eq!(store.tasks("r1").await.unwrap()[0].status, TaskStatus::Waiting);
        // Waiting members keep their requests from being claimed.
        let lease = stamp(chrono::Utc::now() + chrono::Duration::seconds(30));
        assert_eq!(store.claim("gw", &lease).await.unwrap(), None);

        // The full batch is due (the other's window has not passed); claiming closes it.
        let claimed = store.claim_batch("gw", &lease).await.unwrap().unwrap();
        assert_eq!(
            (claimed.id.as_str(), claimed.status.as_str()),
            (batches[0].as_str(), "SENDING")
        );
        assert!(store.claim_batch("gw2", &lease).await.unwrap().is_none());
        assert_eq!(store.open_members(&claimed.id).await.unwrap().len(), 2);
        // Sent, it is given back until its first poll; the poll claims it again.
        let poll_at = crate::requests::store::stamp(chrono::Utc::now() - chrono::Duration::seconds(1));
        assert!(
            store
                .batch_sent(&claimed.id, "gw", "job-1", 2, &poll_at)
                .await
                .unwrap()
        );
        let polled = store.claim_batch("gw", &lease).await.unwrap().unwrap();
        assert_eq!(
            (polled.id.as_str(), polled.status.as_str()),
            (claimed.id.as_str(), "SENT")
        );
        assert!(
            !store
                .settle_batch(&claimed.id, "other", "FAILED", Some(("x", "JOB_FAILED")))
                .await
                .unwrap()
        );
        assert!(
            store
                .settle_batch(
                    &claimed.id,
                    "gw",
                    "FAILED",
                    Some(("the store reports the job FAILURE", "JOB_FAILED"))
                )
                .await
                .unwrap()
        );
        let (member, batch) = store.member("r2", 0).await.unwrap().unwrap();
        assert_eq!(
            (member.status.as_str(), member.items),
            ("FAILED", None),
            "values forgotten"
        );
        assert_eq!(batch.job_id.as_deref(), Some("job-1"));
        // Its members' requests are claimable again; r3's is not (its batch is open).
        let mut claimed = Vec::new();
        while let Some(id) = store.claim("gw", &lease).await.unwrap() {
            claimed.push(id);
        }
        claimed.sort();
        assert_eq!(claimed, ["r1", "r2"]);
        // A retry joins afresh, in the open batch.
        let task = store.tasks("r1").await.unwrap().remove(0);
        assert_eq!(
            store.join_batch(&task, batching, 1, "[\"u1\"]", 1).await.unwrap(),
            batches[2]
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
