//! API keys, kept in the gateway's state database (SQLite by default, PostgreSQL when configured):
//! a key is `sgk_<id>_<secret>`; only a SHA-256 of the secret is stored, and the key is shown once.
//!
//! The secret is 256 random bits, so a fast hash is enough: there is nothing to brute-force.

use std::collections::HashMap;

use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Why the key store failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the state database could not be opened: {0}")]
    Open(String),
    #[error("the state database could not be migrated: {0}")]
    Migrate(String),
    #[error("the state database refused the query")]
    Query,
    #[error("no active key `{0}`")]
    NoSuchKey(String),
}

/// Active keys by id: the digest of the secret and the role.
pub type ActiveKeys = HashMap<String, (String, String)>;

/// One stored key (never its secret).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The keys table of the state database.
#[derive(Clone)]
pub struct KeyStore {
    pool: AnyPool,
}

fn query_error(_: sqlx::Error) -> KeyError {
    KeyError::Query
}

/// SHA-256 of a key's secret, in hex.
fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl KeyStore {
    /// Opens (creating and migrating when needed) the state database at `url`.
    pub async fn open(url: &str) -> Result<Self, KeyError> {
        sqlx::any::install_default_drivers();
        let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
        } else {
            url.to_owned()
        };
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            crate::private_fs::prepare_sqlite(&url)
                .map_err(|e| KeyError::Open(format!("creating the database file: {}", e.kind())))?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL with synchronous=NORMAL: a commit survives the process being killed
                        // (what the gateway must survive) without an fsync per audited read;
                        // power loss may lose the last commits. PostgreSQL decides for itself.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *connection)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *connection)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| KeyError::Open(describe(&e)))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| KeyError::Migrate(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The state database's pool (shared with the audit log).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Creates a key for `role`; returns its id and the full key, to show once.
    pub async fn create(&self, name: &str, role: &str) -> Result<(String, String), KeyError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let id = new_key_id();
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(role)
        .bind(digest(&secret))
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query_error)?;
        Ok((id.clone(), format!("sgk_{id}_{secret}")))
    }

    /// Marks a key revoked; it stops working at the gateways' next refresh.
    pub async fn revoke(&self, id: &str) -> Result<(), KeyError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(Utc::now().to_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_error)?;
        if done.rows_affected() == 0 {
            return Err(KeyError::NoSuchKey(id.to_owned()));
        }
        Ok(())
    }

    /// Revokes a key and creates its replacement with the same name and role.
    pub async fn rotate(&self, id: &str) -> Result<(String, String), KeyError> {
        let info = self
            .list()
            .await?
            .into_iter()
            .find(|k| k.id == id && k.revoked_at.is_none())
            .ok_or_else(|| KeyError::NoSuchKey(id.to_owned()))?;
        self.revoke(id).await?;
        self.create(&info.name, &info.role).await
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows: Vec<(String, String, String, String, Option<String>)> =
            sqlx::query_as("SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at")
                .fetch_all(&self.pool)
                .await
                .map_err(query_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, role, created_at, revoked_at)| KeyInfo {
                id,
                name,
                role,
                created_at,
                revoked_at,
            })
            .collect())
    }

    /// Active keys by id: the secret's digest and the role.
    pub async fn active(&self) -> Result<ActiveKeys, KeyError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, secret_sha256, role FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(query_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, digest, role)| (id, (digest, role)))
            .collect())
    }
}

impl KeyStore {
    /// The active key `id` (its secret's digest and its role), read now: one lookup by primary
    /// key, so an unknown key costs little and a key just created is found at once.
    pub async fn lookup(&self, id: &str) -> Result<Option<(String, String)>, KeyError> {
        sqlx::query_as("SELECT secret_sha256, role FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error)
    }
}

/// The id part of `sgk_<id>_<secret>` when it has the shape of one (16 hex characters).
pub fn key_id(key: &str) -> Option<&str> {
    let (id, _) = key.strip_prefix("sgk_")?.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// A short random key id (16 hex characters).
fn new_key_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Splits `sgk_<id>_<secret>` and checks the secret against the stored digest.
pub fn verify(key: &str, active: &ActiveKeys) -> Option<(String, String)> {
    let rest = key.strip_prefix("sgk_")?;
    let (id, secret) = rest.split_once('_')?;
    let (stored, role) = active.get(id)?;
    (digest(secret) == *stored).then(|| (id.to_owned(), role.clone()))
}

fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => format!("i/o error: {}", io.kind()),
        sqlx::Error::Configuration(_) => "invalid state database url".into(),
        sqlx::Error::Database(db) => format!("database error {}", db.code().unwrap_or_default()),
        _ => "the database did not answer".into(),
    }
}
