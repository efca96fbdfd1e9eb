//! Object storage for the files that records point to (uploaded images and documents), through
//! the `object_store` crate: a local directory (`file:///var/lib/uploads`) or an S3 bucket
//! (`s3://bucket/prefix`, with an optional endpoint for S3-compatible servers).
//!
//! Records name their file with a key template over their fields (`{storage_key}`). Metadata
//! comes from a `HEAD`; the checksum (SHA-256) is computed by streaming the bytes, only when
//! asked for. Its declaration (`[storage]`) is in `decl.rs`; `check` is [`FileStore::check`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use reqwest::Url;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::connector::ConnectorError;
use crate::declaration::source::{DeclarationError, Location};
use crate::value::Value;

pub mod decl;

pub use decl::StorageTemplates;

/// Why a file store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StorageBuildError {
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    #[error("{0}: the storage url must be file:///ABSOLUTE/PATH or s3://BUCKET[/PREFIX]")]
    InvalidUrl(Location),
    #[error("{location}: the storage could not be opened ({reason})")]
    Open { location: Location, reason: String },
}

/// What a `HEAD` tells of a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// From the key's extension (`image/jpeg`), `application/octet-stream` when unknown.
    pub content_type: String,
}

/// One place files live.
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    /// `file` or `s3`, for `connectors` and logs (never the credentials).
    pub kind: &'static str,
    timeout: Duration,
    /// The directory of a `file://` store.
    root: Option<std::path::PathBuf>,
    /// Where the storage is declared, for `check`'s findings.
    pub location: Option<Location>,
    /// The last [`Self::erasure_problems`], with when it was found.
    checked: tokio::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

/// How long [`FileStore::erasure_problems`] reuses what it found.
const CHECK_TTL: Duration = Duration::from_secs(60);

impl FileStore {
    /// Opens the store the templates describe, with secrets from `env`.
    pub fn build(
        templates: &StorageTemplates,
        env: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Self, StorageBuildError> {
        let location = templates.url.location.clone();
        let url_text = templates.url.resolve(&env)?;
        let url = Url::parse(url_text.expose_secret())
            .map_err(|_| StorageBuildError::InvalidUrl(location.clone()))?;
        let open = |reason: object_store::Error| StorageBuildError::Open {
            location: location.clone(),
            reason: match reason {
                object_store::Error::NotFound { .. } => "not found".into(),
                _ => "the store refused the settings".into(),
            },
        };
        let mut root = None;
        let (store, kind): (Arc<dyn ObjectStore>, &'static str) = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| StorageBuildError::InvalidUrl(location.clone()))?;
                // A directory that is not there is not created: a mistyped path would otherwise
                // read as "no files" for everyone. `check` reports it.
                let store: Arc<dyn ObjectStore> = if path.is_dir() {
                    Arc::new(LocalFileSystem::new_with_prefix(&path).map_err(open)?)
                } else {
                    let prefix = ObjectPath::from_absolute_path(&path)
                        .map_err(|_| StorageBuildError::InvalidUrl(location.clone()))?;
                    Arc::new(PrefixStore::new(LocalFileSystem::new(), prefix))
                };
                root = Some(path);
                (store, "file")
            }
            "s3" => {
                let bucket = url
                    .host_str()
                    .ok_or_else(|| StorageBuildError::InvalidUrl(location.clone()))?;
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(templates.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_allow_http(templates.allow_http);
                if let Some(endpoint) = &templates.endpoint {
                    builder = builder
                        .with_endpoint(endpoint.resolve(&env)?.expose_secret())
                        .with_virtual_hosted_style_request(false);
                }
                if let (Some(key), Some(secret)) = (&templates.access_key_id, &templates.secret_access_key) {
                    builder = builder
                        .with_access_key_id(key.resolve(&env)?.expose_secret())
                        .with_secret_access_key(secret.resolve(&env)?.expose_secret());
                }
                let s3: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(open)?);
                let prefix = url.path().trim_matches('/');
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    s3
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                };
                (store, "s3")
            }
            _ => return Err(StorageBuildError::InvalidUrl(location)),
        };
        Ok(Self {
            store,
            kind,
            timeout,
            root,
            location: Some(location),
            checked: tokio::sync::Mutex::new(None),
        })
    }

    /// A store over a local directory (created when missing).
    pub fn local(directory: &std::path::Path, timeout: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(directory)?;
        let store = LocalFileSystem::new_with_prefix(directory).map_err(std::io::Error::other)?;
        Ok(Self {
            store: Arc::new(store),
            kind: "file",
            timeout,
            root: Some(directory.to_owned()),
            location: None,
            checked: tokio::sync::Mutex::new(None),
        })
    }

    /// What would make deleting files here fail or miss them (the [`Self::check`] of a store
    /// erasure writes to), cached for a minute: an erasure refuses to start while there is any.
    pub async fn erasure_problems(&self) -> Vec<String> {
        let mut cached = self.checked.lock().await;
        if let Some((at, problems)) = cached.as_ref()
            && at.elapsed() < CHECK_TTL
        {
            return problems.clone();
        }
        let problems = self.check(true).await;
        *cached = Some((std::time::Instant::now(), problems.clone()));
        problems
    }

    /// What `check` finds wrong with the storage: the location exists and can be listed, and,
    /// when `writable` (erasure deletes files here), a uniquely named object can be written and
    /// deleted again. Each problem is one message.
    pub async fn check(&self, writable: bool) -> Vec<String> {
        if let Some(root) = &self.root {
            if !root.is_dir() {
                return vec![format!(
                    "storage directory `{}` does not exist: the records' files could never be found nor deleted",
                    root.display()
                )];
            }
            if let Err(error) = std::fs::read_dir(root) {
                return vec![format!(
                    "storage directory `{}` cannot be read ({})",
                    root.display(),
                    error.kind()
                )];
            }
        }
        let listed = tokio::time::timeout(self.timeout, async {
            self.store.list(None).try_next().await.map(drop)
        })
        .await;
        match listed {
            Err(_) => {
                return vec![format!(
                    "the {} storage did not answer within {:?}",
                    self.kind, self.timeout
                )];
            }
            Ok(Err(error)) => {
                return vec![format!(
                    "the {} storage cannot be listed: {}",
                    self.kind,
                    describe(&error)
                )];
            }
            Ok(Ok(())) => {}
        }
        if !writable {
            return Vec::new();
        }
        let probe = ObjectPath::from(format!(
            ".subject-gateway-check-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let written = tokio::time::timeout(self.timeout, async {
            self.store.put(&probe, PutPayload::from_static(b"check")).await?;
            self.store.delete(&probe).await
        })
        .await;
        match written {
            Err(_) => vec![format!(
                "the {} storage did not answer a test write within {:?}",
                self.kind, self.timeout
            )],
            Ok(Err(error)) => vec![format!(
                "the {} storage is not writable ({}): erasure deletes the records' files here",
                self.kind,
                describe(&error)
            )],
            Ok(Ok(())) => Vec::new(),
        }
    }

    fn path(key: &str) -> Result<ObjectPath, ConnectorError> {
        ObjectPath::parse(key)
            .map_err(|_| ConnectorError::Other("a file key is not a valid object path".into()))
    }

    fn error(&self, error: object_store::Error) -> ConnectorError {
        match error {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ConnectorError::Unauthorized
            }
            _ => ConnectorError::Unavailable("the file store did not answer".into()),
        }
    }

    async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(ConnectorError::Timeout(self.timeout)))
    }

    /// The file's metadata, or `None` when no file has that key.
    pub async fn head(&self, key: &str) -> Result<Option<FileMeta>, ConnectorError> {
        let path = Self::path(key)?;
        self.within(async {
            match self.store.head(&path).await {
                Ok(meta) => Ok(Some(FileMeta {
                    size: meta.size,
                    last_modified: meta.last_modified,
                    content_type: mime_guess::from_path(key).first_or_octet_stream().to_string(),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(self.error(error)),
            }
        })
        .await
    }

    /// SHA-256 of the file's bytes in hex, or `None` when no file has that key.
    pub async fn checksum(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        let path = Self::path(key)?;
        self.within(async {
            let result = match self.store.get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(self.error(error)),
            };
            let mut hasher = Sha256::new();
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.try_next().await.map_err(|e| self.error(e))? {
                hasher.update(&chunk);
            }
            Ok(Some(hex::encode(hasher.finalize())))
        })
        .await
    }

    /// The file's bytes, or `None` when no file has that key (exports).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ConnectorError> {
        let path = Self::path(key)?;
        self.within(async {
            match self.store.get(&path).await {
                Ok(result) => result
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| self.error(e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(self.error(error)),
            }
        })
        .await
    }

    /// Deletes the file; a file already gone is not an error (erasure repeats safely). Returns
    /// whether there was a file to delete.
    pub async fn delete(&self, key: &str) -> Result<bool, ConnectorError> {
        let path = Self::path(key)?;
        self.within(async {
            match self.store.head(&path).await {
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(error) => return Err(self.error(error)),
                Ok(_) => {}
            }
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
                Err(error) => Err(self.error(error)),
            }
        })
        .await
    }

    /// Stores `bytes` under `key` (seeding, tests, the demo).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ConnectorError> {
        let path = Self::path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }
}

/// An object store error, without its text (which can carry paths and request details).
fn describe(error: &object_store::Error) -> &'static str {
    match error {
        object_store::Error::NotFound { .. } => "not found",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            "credentials refused"
        }
        _ => "the store answered with an error",
    }
}

/// The key a record's file is stored under: `template` with each `{field}` replaced by the
/// record's value of that field (`names` are the entity's field names). `None` when a field it
/// needs is null.
pub fn file_key(template: &str, names: &[String], record: &[Value]) -> Option<String> {
    let mut key = template.to_owned();
    for (name, value) in names.iter().zip(record) {
        let placeholder = format!("{{{name}}}");
        if key.contains(&placeholder) {
            let text = value.as_identity_text()?;
            key = key.replace(&placeholder, &text);
        }
    }
    (!key.contains('{') && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fill_their_placeholders_from_the_record() {
        let names = vec!["id".to_owned(), "storage_key".to_owned()];
        let record = vec![Value::Int(7), Value::String("uploads/7/a.jpg".into())];
        assert_eq!(
            file_key("{storage_key}", &names, &record).as_deref(),
            Some("uploads/7/a.jpg")
        );
        assert_eq!(
            file_key("by-id/{id}.bin", &names, &record).as_deref(),
            Some("by-id/7.bin")
        );
        assert_eq!(
            file_key("{storage_key}", &names, &[Value::Int(7), Value::Null]),
            None
        );
    }
}
