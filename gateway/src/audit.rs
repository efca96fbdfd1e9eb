//! The audit trail in the state database: append-only events, each carrying a hash of its
//! content and of the event before, so that an edited, inserted or deleted event breaks the chain
//! and `subject-gateway audit verify` names where. Identities are stored as HMACs under a key kept
//! in the same database (stable across restarts, so auditors can search by person).
//!
//! With a chain key (`SUBJECT_GATEWAY_AUDIT_KEY`, or a file named by
//! `SUBJECT_GATEWAY_AUDIT_KEY_FILE`), kept outside the database, each new event's hash is an
//! HMAC-SHA256 under it: someone who can write the database but not read the key cannot
//! recompute the chain after editing it. `audit anchor --to FILE` appends the head (sequence
//! number and MAC, itself MACed) to a file kept elsewhere (append-only); `audit verify --anchor
//! FILE` then also detects a dropped tail or a wiped table. Events from before the key was set
//! stay verifiable as plain SHA-256, but only as a prefix: a plain event after a keyed one is a
//! downgrade and is reported.
//!
//! Appends are committed in groups: a request queues its event and waits for the commit of the
//! group holding it (the first waiter to find no writer busy writes every queued event in one
//! transaction). An event is still recorded before the data it describes is served; under load
//! one commit serves many requests instead of one each.

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use subject_schema::audit::{AuditEntry, AuditError, AuditFilter, AuditLog, AuditRecord, SubjectRef};
use tokio::sync::{Mutex, oneshot};

/// The hash the chain starts from.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit log of the state database.
pub struct DbAuditLog {
    pool: AnyPool,
    key: Vec<u8>,
    /// The key events are MACed with, from outside the database; `None`: plain SHA-256.
    chain_key: Option<Vec<u8>>,
    /// Events waiting for the next group commit, each with whoever waits for it.
    queue: std::sync::Mutex<Vec<Queued>>,
    /// Held by the one appender writing groups (replicas serialise on the head row).
    writer: Mutex<()>,
}

/// An event waiting to be committed, its subjects already hashed.
struct Queued {
    entry: AuditEntry,
    subjects: String,
    committed: oneshot::Sender<Result<(), AuditError>>,
}

/// At most this many events in one commit (bounds the statement's parameters: 11 per event).
const GROUP_LIMIT: usize = 256;

/// Where the chain breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("event {seq}: its content does not match its hash (edited)")]
    Edited { seq: i64 },
    #[error(
        "event {seq}: its MAC does not match its content (edited, and hashes recomputed without the chain key)"
    )]
    Forged { seq: i64 },
    #[error("event {seq}: its MAC is that of event {original} (events deleted and the rest renumbered)")]
    Renumbered { seq: i64, original: i64 },
    #[error("event {seq}: a plain hash after keyed events (the chain was recomputed without the key)")]
    Downgraded { seq: i64 },
    #[error(
        "event {seq} is MACed but no chain key is set (SUBJECT_GATEWAY_AUDIT_KEY or SUBJECT_GATEWAY_AUDIT_KEY_FILE)"
    )]
    KeyMissing { seq: i64 },
    #[error(
        "checking anchors needs the chain key they were made with (SUBJECT_GATEWAY_AUDIT_KEY or SUBJECT_GATEWAY_AUDIT_KEY_FILE)"
    )]
    AnchorNeedsKey,
    #[error("the anchor file's line {line} is not an anchor made with the chain key (forged or damaged)")]
    AnchorForged { line: usize },
    #[error("the anchor file could not be read: {0}")]
    AnchorUnreadable(String),
    #[error("the audit trail is empty but the anchor records {anchored} events (the table was wiped)")]
    Wiped { anchored: i64 },
    #[error(
        "the anchor records {anchored} events but the trail ends at {last_seq} (events dropped at the end, head rewritten)"
    )]
    TailDropped { anchored: i64, last_seq: i64 },
    #[error("event {seq} is not the event anchored under that number (rewritten since it was anchored)")]
    AnchorMismatch { seq: i64 },
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

/// Why the chain key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainKeyError {
    #[error("{0} is shorter than 32 bytes: use 32 random bytes or more (e.g. `openssl rand -hex 32`)")]
    TooShort(&'static str),
    #[error("SUBJECT_GATEWAY_AUDIT_KEY_FILE could not be read: {0}")]
    File(std::io::ErrorKind),
}

/// The chain key from `SUBJECT_GATEWAY_AUDIT_KEY` or the file `SUBJECT_GATEWAY_AUDIT_KEY_FILE`
/// names (trimmed); `None` when neither is set.
pub fn chain_key_from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Vec<u8>>, ChainKeyError> {
    let (key, source) = if let Some(key) = env("SUBJECT_GATEWAY_AUDIT_KEY").filter(|k| !k.is_empty()) {
        (key, "SUBJECT_GATEWAY_AUDIT_KEY")
    } else if let Some(path) = env("SUBJECT_GATEWAY_AUDIT_KEY_FILE").filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(&path).map_err(|e| ChainKeyError::File(e.kind()))?;
        (text.trim().to_owned(), "SUBJECT_GATEWAY_AUDIT_KEY_FILE")
    } else {
        return Ok(None);
    };
    if key.len() < 32 {
        return Err(ChainKeyError::TooShort(source));
    }
    Ok(Some(key.into_bytes()))
}

/// One line of an anchor file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Anchor {
    seq: i64,
    mac: String,
    at: String,
    /// HMAC of `seq` and `mac` under the chain key: only the key's holder writes anchors.
    check: String,
}

fn anchor_check(key: &[u8], seq: i64, mac: &str) -> String {
    let Ok(mut hmac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts any key length")
    };
    hmac.update(b"subject-gateway audit anchor\x1f");
    hmac.update(seq.to_string().as_bytes());
    hmac.update(b"\x1f");
    hmac.update(mac.as_bytes());
    hex::encode(hmac.finalize().into_bytes())
}

/// What `verify` found in an intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: i64,
    pub head: String,
    /// Events from before the chain key was set (plain SHA-256), all at the start.
    pub unkeyed: i64,
    /// The sequence number of the last anchor checked, if an anchor file was given.
    pub anchored: Option<i64>,
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
    i64,
);

/// The plain SHA-256 of an event (events appended without a chain key).
fn content_hash(row: &Row) -> String {
    content_hash_as(row, row.0)
}

fn content_parts(row: &Row, seq: i64) -> [String; 9] {
    let (_, at, actor, role, purpose, action, subjects, detail, prev, _, _) = row;
    [
        seq.to_string(),
        at.clone(),
        actor.clone(),
        role.clone(),
        purpose.clone(),
        action.clone(),
        subjects.clone(),
        detail.clone(),
        prev.clone(),
    ]
}

fn content_hash_as(row: &Row, seq: i64) -> String {
    let mut hasher = Sha256::new();
    for part in content_parts(row, seq) {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex::encode(hasher.finalize())
}

/// The HMAC-SHA256 of an event under the chain key, as if it were number `seq`.
fn content_mac(key: &[u8], row: &Row, seq: i64) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts any key length")
    };
    mac.update(b"keyed\x1f");
    for part in content_parts(row, seq) {
        mac.update(part.as_bytes());
        mac.update(&[0x1f]);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// How far back a renumbering is looked for when a MAC does not match.
const RENUMBER_SEARCH: i64 = 10_000;

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
            chain_key: None,
            queue: std::sync::Mutex::new(Vec::new()),
            writer: Mutex::new(()),
        })
    }

    /// MACs new events with `key` (kept outside the state database) from now on.
    pub fn with_chain_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.chain_key = key;
        self
    }

    /// Whether new events are MACed.
    pub fn keyed(&self) -> bool {
        self.chain_key.is_some()
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
        self.verify_against(None).await.map(|v| (v.events, v.head))
    }

    /// Walks the whole trail and, with an anchor file, checks it against every anchor in it.
    /// The head is read before the events: a group appended in between (the head and its events
    /// commit together) is walked too and must chain on from the head read, so a trail in use is
    /// not reported broken.
    pub async fn verify_against(&self, anchors: Option<&std::path::Path>) -> Result<Verified, ChainError> {
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(|_| ChainError::Unreadable)?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash, keyed FROM audit_events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|_| ChainError::Unreadable)?;
        // The hash of the event the head read names (the genesis for an empty head).
        let mut at_head = (head_seq == 0).then(|| GENESIS.to_owned());
        let (mut previous, mut previous_hash) = (0_i64, GENESIS.to_owned());
        let (mut unkeyed, mut seen_keyed) = (0_i64, false);
        for row in &rows {
            let seq = row.0;
            if row.10 != 0 {
                seen_keyed = true;
                let key = self.chain_key.as_deref().ok_or(ChainError::KeyMissing { seq })?;
                if content_mac(key, row, seq) != row.9 {
                    // Events deleted and the rest renumbered keep their MACs, made under their
                    // old numbers: say so rather than just "forged".
                    let original = (1..=RENUMBER_SEARCH)
                        .map(|d| seq + d)
                        .find(|original| content_mac(key, row, *original) == row.9);
                    return Err(match original {
                        Some(original) => ChainError::Renumbered { seq, original },
                        None => ChainError::Forged { seq },
                    });
                }
            } else if seen_keyed {
                return Err(ChainError::Downgraded { seq });
            } else {
                unkeyed += 1;
            }
            if seq != previous + 1 {
                return Err(ChainError::Gap { seq, previous });
            }
            if row.8 != previous_hash {
                return Err(ChainError::Broken { seq });
            }
            if row.10 == 0 && content_hash(row) != row.9 {
                return Err(ChainError::Edited { seq });
            }
            previous = seq;
            previous_hash = row.9.clone();
            if seq == head_seq {
                at_head = Some(previous_hash.clone());
            }
        }
        let mut anchored = None;
        if let Some(path) = anchors {
            let key = self
                .chain_key
                .as_deref()
                .ok_or(ChainError::KeyMissing { seq: 0 })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| ChainError::AnchorUnreadable(e.kind().to_string()))?;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let anchor: Anchor =
                    serde_json::from_str(line).map_err(|_| ChainError::AnchorForged { line: i + 1 })?;
                if anchor_check(key, anchor.seq, &anchor.mac) != anchor.check {
                    return Err(ChainError::AnchorForged { line: i + 1 });
                }
                if anchor.seq > previous {
                    return Err(if rows.is_empty() {
                        ChainError::Wiped { anchored: anchor.seq }
                    } else {
                        ChainError::TailDropped {
                            anchored: anchor.seq,
                            last_seq: previous,
                        }
                    });
                }
                let at = rows.iter().find(|r| r.0 == anchor.seq);
                if anchor.seq > 0 && at.is_none_or(|r| r.9 != anchor.mac) {
                    return Err(ChainError::AnchorMismatch { seq: anchor.seq });
                }
                anchored = Some(anchor.seq);
            }
        }
        if head_seq > previous || at_head.as_deref() != Some(head_hash.as_str()) {
            return Err(ChainError::Truncated {
                head_seq,
                last_seq: previous,
            });
        }
        Ok(Verified {
            events: previous,
            head: previous_hash,
            unkeyed,
            anchored,
        })
    }

    /// Verifies the trail, then appends its head to the anchor file `path` (created 0600 when
    /// new; keep it where the state database's writers cannot, append-only).
    pub async fn anchor(&self, path: &std::path::Path) -> Result<Verified, AnchorError> {
        let key = self.chain_key.clone().ok_or(AnchorError::NoKey)?;
        let verified = self.verify_against(Some(path).filter(|p| p.exists())).await?;
        let line = serde_json::to_string(&Anchor {
            seq: verified.events,
            mac: verified.head.clone(),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            check: anchor_check(&key, verified.events, &verified.head),
        })
        .map_err(|e| AnchorError::Write(std::io::Error::other(e.to_string())))?;
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(AnchorError::Write)?;
        use std::io::Write;
        writeln!(file, "{line}").map_err(AnchorError::Write)?;
        file.sync_all().map_err(AnchorError::Write)?;
        Ok(verified)
    }
}

/// Why the head could not be anchored.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("anchoring needs the chain key (SUBJECT_GATEWAY_AUDIT_KEY or SUBJECT_GATEWAY_AUDIT_KEY_FILE)")]
    NoKey,
    #[error("the trail is not intact, so it is not anchored: {0}")]
    Broken(#[from] ChainError),
    #[error("writing the anchor file: {0}")]
    Write(std::io::Error),
}

impl DbAuditLog {
    /// Takes the queued events, at most a group's worth, oldest first.
    fn take_group(&self) -> Vec<Queued> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = queue.len().min(GROUP_LIMIT);
        queue.drain(..n).collect()
    }

    /// Writes queued groups until the queue is empty; the caller holds `writer`.
    async fn write_queued(&self) {
        loop {
            let group = self.take_group();
            if group.is_empty() {
                return;
            }
            let result = self.commit_group(&group).await;
            for queued in group {
                // A waiter that gave up (its request timed out) no longer listens: nothing to do.
                let _ = queued.committed.send(result.clone());
            }
        }
    }

    /// Appends `group` in one transaction: the head advances by its length, the events chain
    /// in queue order.
    async fn commit_group(&self, group: &[Queued]) -> Result<(), AuditError> {
        let n = group.len() as i64;
        let mut tx = self.pool.begin().await.map_err(failed)?;
        // Taking the head row locks it until commit: replicas append one group at a time.
        let (last, mut prev): (i64, String) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
                .bind(n)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed)?;
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut rows = Vec::with_capacity(group.len());
        for (i, queued) in group.iter().enumerate() {
            let entry = &queued.entry;
            let mut row: Row = (
                last - n + 1 + i as i64,
                at.clone(),
                entry.actor.clone(),
                entry.role.clone(),
                entry.purpose.clone(),
                entry.action.clone(),
                queued.subjects.clone(),
                entry.detail.to_string(),
                prev,
                String::new(),
                i64::from(self.chain_key.is_some()),
            );
            row.9 = match &self.chain_key {
                Some(key) => content_mac(key, &row, row.0),
                None => content_hash(&row),
            };
            prev = row.9.clone();
            rows.push(row);
        }
        let mut sql = String::from(
            "INSERT INTO audit_events (seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash, keyed) VALUES ",
        );
        for i in 0..rows.len() {
            let p = i * 11;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for column in 1..=11 {
                if column > 1 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", p + column));
            }
            sql.push(')');
        }
        let mut insert = subject_connectors::dynamic_sql::dynamic_query(&sql);
        for row in &rows {
            insert = insert
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
                .bind(row.10);
        }
        insert.execute(&mut *tx).await.map_err(failed)?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&prev)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }
}

#[async_trait]
impl AuditLog for DbAuditLog {
    async fn append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let subjects: Vec<String> = entry.subjects.iter().map(|s| self.subject_hash(s)).collect();
        let (committed, mut outcome) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Queued {
                subjects: serde_json::to_string(&subjects).unwrap_or_else(|_| "[]".into()),
                entry,
                committed,
            });
        loop {
            tokio::select! {
                biased;
                result = &mut outcome => {
                    return result.unwrap_or_else(|_| Err(AuditError("the audit append was abandoned".into())));
                }
                // No one is writing: write every queued group, ours among them (it was queued
                // before the lock was taken), then read our outcome.
                _writer = self.writer.lock() => self.write_queued().await,
            }
        }
    }

    async fn list(&self, filter: &AuditFilter) -> Result<(Vec<AuditRecord>, bool), AuditError> {
        let subject = filter.subject.as_ref().map(|s| self.subject_hash(s));
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, role, purpose, action, subjects, detail, prev_hash, hash, keyed FROM audit_events \
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
                |(seq, at, actor, role, purpose, action, subjects, detail, _, hash, _)| AuditRecord {
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
