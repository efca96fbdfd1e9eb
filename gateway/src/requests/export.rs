//! Export bundles (GDPR Art. 15 and 20): a zip archive of everything held about the person, and
//! the expiring, signed link it is downloaded through.
//!
//! The archive holds `subject.json` (every record, labelled by connector, entity and each field's
//! data category), `article15.json` (per store: purposes, recipients, retention, source, as
//! declared with the connector) and `files/CONNECTOR/ENTITY/KEY` (the stored files the records
//! name). It is written to the exports directory and deleted when its link expires.

use std::io::Write;
use subject_connectors::codes::ErrorCode;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subject_connectors::Value;
use zip::write::SimpleFileOptions;

use async_trait::async_trait;
use subject_schema::request_views::DownloadView;

use super::PrivacyEngine;
use super::driver::{Acted, Completion, Driver, Job};
use super::kept::{PlannedEntity, SubjectPlan};
use super::state::{RequestKind, TaskAction, TaskStatus};
use super::store::{self, RequestRow, StoreError, TaskRow};
use super::tasks::TaskEnd;

/// A written bundle, as kept with its request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub files: u64,
    pub expires_at: String,
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("zip error: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("a stored file could not be read: {0}")]
    Storage(#[from] subject_connectors::ConnectorError),
    #[error("a record could not be read: {0}")]
    Record(subject_connectors::ConnectorError),
    #[error("the manual tasks could not be read: {0}")]
    Manual(#[from] StoreError),
}

fn json_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => Json::from(*f),
        Value::String(s) => Json::String(s.clone()),
        Value::Json(j) => j.clone(),
    }
}

impl PrivacyEngine {
    /// Writes the bundle of what `plan` found; returns where and what it is.
    pub(super) async fn write_bundle(
        &self,
        row: &RequestRow,
        plan: &SubjectPlan,
    ) -> Result<Bundle, BundleError> {
        let registry = self.executor.registry();
        let mut records = Vec::new();
        let mut stored_files: Vec<(String, Vec<u8>)> = Vec::new();
        for planned in &plan.entities {
            let registered = &registry.connectors[planned.connector];
            let descriptor = registered.connector.descriptor();
            let entity = &descriptor.entities[planned.entity];
            // Fields are paired with values by position: a narrower record would lose fields.
            subject_schema::records::check_width(entity, &planned.records).map_err(BundleError::Record)?;
            for record in &planned.records {
                let fields: serde_json::Map<String, Json> = entity
                    .fields
                    .iter()
                    .zip(record)
                    .map(|(field, value)| {
                        (
                            field.name.clone(),
                            json!({ "value": json_value(value), "category": field.category.to_string() }),
                        )
                    })
                    .collect();
                records.push(json!({
                    "connector": descriptor.name,
                    "entity": entity.name,
                    "fields": fields,
                }));
            }
            if let Some(storage) = &registered.storage {
                for key in self.files_of(planned.connector, planned.entity, &planned.records) {
                    if let Some(bytes) = storage.get(&key).await? {
                        let name = format!(
                            "files/{}/{}/{}",
                            descriptor.name,
                            entity.name,
                            key.trim_start_matches('/')
                        );
                        stored_files.push((name, bytes));
                    }
                }
            }
        }
        // manual systems: what the people who searched them recorded.
        let manual = self.manual_outcomes(&row.id).await?;
        let article15: Vec<Json> = registry
            .connectors
            .iter()
            .map(|r| r.connector.descriptor())
            .filter(|d| plan.entities.iter().any(|p| registry.connectors[p.connector].connector.descriptor().name == d.name))
            .map(|d| {
                let mut categories: Vec<String> = d
                    .entities
                    .iter()
                    .flat_map(|e| e.fields.iter().map(|f| f.category.to_string()))
                    .collect();
                categories.sort();
                categories.dedup();
                json!({
                    "store": d.name,
                    "description": d.description,
                    "purposes": d.purposes.as_ref().map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    "recipients": d.disclosure.recipients,
                    "retention": d.disclosure.retention,
                    "source": d.disclosure.source,
                    "categories": categories,
                    "manualTasks": manual
                        .iter()
                        .filter(|(c, _, _)| *c == d.name)
                        .map(|(_, entity, outcome)| json!({ "entity": entity, "outcome": outcome }))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let generated = store::now();
        let subject = json!({
            "request": row.id,
            "subject": row.subject_hash,
            "generatedAt": generated,
            "records": records,
        });
        let article15 = json!({
            "request": row.id,
            "generatedAt": generated,
            "rights": "You may ask for rectification or erasure, restrict or object to processing, and complain to a supervisory authority.",
            "stores": article15,
        });
        let file = format!("{}.zip", row.id);
        let path = self.exports_dir.join(&file);
        let partial = self.exports_dir.join(format!("{file}.partial"));
        let files = stored_files.len() as u64;
        let (sha256, bytes) = tokio::task::spawn_blocking(move || -> Result<(String, u64), BundleError> {
            let out = crate::private_fs::create_file(&partial)?;
            let mut zip = zip::ZipWriter::new(out);
            let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("subject.json", options)?;
            zip.write_all(&serde_json::to_vec_pretty(&subject).unwrap_or_default())?;
            zip.start_file("article15.json", options)?;
            zip.write_all(&serde_json::to_vec_pretty(&article15).unwrap_or_default())?;
            for (name, data) in stored_files {
                zip.start_file(name, options)?;
                zip.write_all(&data)?;
            }
            zip.finish()?.sync_all()?;
            std::fs::rename(&partial, &path)?;
            let data = std::fs::read(&path)?;
            Ok((hex::encode(Sha256::digest(&data)), data.len() as u64))
        })
        .await
        .map_err(|e| BundleError::Io(std::io::Error::other(e.to_string())))??;
        let minutes = i64::try_from(self.settings.export_link_minutes).unwrap_or(60);
        Ok(Bundle {
            file,
            sha256,
            bytes,
            files,
            expires_at: store::stamp(Utc::now() + chrono::Duration::minutes(minutes)),
        })
    }

    fn signature(&self, id: &str, expires: &str) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.link_key) else {
            unreachable!("HMAC-SHA256 accepts any key length")
        };
        mac.update(id.as_bytes());
        mac.update(b"|");
        mac.update(expires.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The `download` view of a completed export, while its link works.
    pub(super) fn download(&self, id: &str, export: &str) -> Option<DownloadView> {
        let bundle: Bundle = serde_json::from_str(export).ok()?;
        if bundle.expires_at < store::now() {
            return None;
        }
        let expires =
            percent_encoding::utf8_percent_encode(&bundle.expires_at, percent_encoding::NON_ALPHANUMERIC);
        Some(DownloadView {
            url: format!(
                "/exports/{id}?expires={expires}&signature={}",
                self.signature(id, &bundle.expires_at)
            ),
            expires_at: bundle.expires_at,
            sha256: bundle.sha256,
            bytes: bundle.bytes,
        })
    }

    /// Deletes bundles whose link expired.
    pub(super) async fn sweep_exports(&self) {
        let Ok(exports) = self.store.expired_exports().await else {
            return;
        };
        let now = store::now();
        for (id, export) in exports {
            let Ok(bundle) = serde_json::from_str::<Bundle>(&export) else {
                continue;
            };
            if bundle.expires_at < now
                && let Err(error) = self.delete_bundle(&id, &export).await
            {
                tracing::warn!(request = %id, error = %error, "could not delete an expired export");
            }
        }
    }

    /// Deletes a bundle's file and forgets it (its link answers 410). A file already gone counts
    /// as deleted.
    pub(super) async fn delete_bundle(&self, id: &str, export: &str) -> Result<(), StoreError> {
        if let Ok(bundle) = serde_json::from_str::<Bundle>(export) {
            match tokio::fs::remove_file(self.exports_dir.join(&bundle.file)).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(StoreError::Io(error.to_string())),
            }
        }
        self.store.set_export(id, None).await
    }

    /// Serves a bundle for a valid, unexpired link.
    async fn serve_download(&self, id: &str, expires: &str, signature: &str) -> Response {
        let expected = self.signature(id, expires);
        let valid = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !valid {
            return (StatusCode::FORBIDDEN, "invalid download link").into_response();
        }
        let expired =
            DateTime::parse_from_rfc3339(expires).map_or(true, |at| at.with_timezone(&Utc) < Utc::now());
        if expired {
            return (StatusCode::GONE, "the download link has expired; export again").into_response();
        }
        let Ok(Some(row)) = self.store.request(id).await else {
            return (StatusCode::NOT_FOUND, "no such export").into_response();
        };
        let Some(bundle) = row
            .export
            .as_deref()
            .and_then(|e| serde_json::from_str::<Bundle>(e).ok())
        else {
            return (StatusCode::GONE, "the export is no longer kept").into_response();
        };
        match tokio::fs::read(self.exports_dir.join(&bundle.file)).await {
            Ok(data) => {
                tracing::info!(request = %id, bytes = data.len(), "export downloaded");
                // Whoever holds the link gets the person's data: every download is on record.
                let entry = subject_schema::audit::AuditEntry {
                    actor: "export-link".into(),
                    role: "link".into(),
                    purpose: "essential.legal_obligation".into(),
                    action: "export.downloaded".into(),
                    subjects: Vec::new(),
                    detail: json!({
                        "request": id,
                        "subject": row.subject_hash,
                        "sha256": bundle.sha256,
                        "bytes": data.len(),
                    }),
                };
                if let Err(error) = subject_schema::audit::AuditLog::append(self.audit.as_ref(), entry).await
                {
                    tracing::error!(request = %id, error = %error, "could not record a download; refused");
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the download could not be recorded; try again",
                    )
                        .into_response();
                }
                (
                    [
                        (header::CONTENT_TYPE, "application/zip".to_owned()),
                        (
                            header::CONTENT_DISPOSITION,
                            format!("attachment; filename=\"{}\"", bundle.file),
                        ),
                        (header::CACHE_CONTROL, "no-store".to_owned()),
                    ],
                    data,
                )
                    .into_response()
            }
            Err(_) => (StatusCode::GONE, "the export is no longer kept").into_response(),
        }
    }
}

#[derive(Deserialize)]
pub struct DownloadParams {
    expires: String,
    signature: String,
}

/// `GET /exports/{id}?expires=…&signature=…`: the link itself is the credential (like a presigned
/// object-storage URL); it works until it expires.
pub async fn download(
    State(engine): State<Arc<PrivacyEngine>>,
    Path(id): Path<String>,
    Query(params): Query<DownloadParams>,
) -> Response {
    engine
        .serve_download(&id, &params.expires, &params.signature)
        .await
}

/// Export's driver: planned afresh on every run, every task done as it is planned (the records
/// are read by resolution); the bundle is written from what the plan found.
pub(super) struct Export;

#[async_trait]
impl Driver for Export {
    const KIND: RequestKind = RequestKind::Export;
    const REPLANS: bool = true;

    async fn prepare(_: &PrivacyEngine, _: &Job<'_>) -> Result<Result<Self, String>, StoreError> {
        Ok(Ok(Export))
    }

    fn task(&self, engine: &PrivacyEngine, _: &Job<'_>, planned: &PlannedEntity) -> Option<TaskRow> {
        let mut task = engine.base_task(planned, TaskAction::Export);
        task.status = TaskStatus::Done;
        task.files = Some(
            engine
                .files_of(planned.connector, planned.entity, &planned.records)
                .len() as i64,
        );
        task.lookup = None;
        task.known = None;
        task.started_at = Some(store::now());
        task.finished_at = task.started_at.clone();
        task.attempts = 1;
        Some(task)
    }

    /// Export tasks are done when planned; one that is not was not planned by this gateway.
    async fn act(&self, engine: &PrivacyEngine, job: &Job<'_>, mut task: TaskRow) -> Acted {
        engine
            .task_failed(
                job.row,
                &mut task,
                "an export task is done when it is planned; this one is not".into(),
                ErrorCode::InvalidTask.as_str(),
            )
            .await?;
        Ok((task, TaskEnd::Failed))
    }

    async fn complete(
        &mut self,
        engine: &PrivacyEngine,
        job: &Job<'_>,
        plan: Option<&SubjectPlan>,
        receipt: &mut Json,
    ) -> Completion {
        let Some(plan) = plan else {
            return Ok(Err(
                "the export bundle could not be written: the request was not planned".into(),
            ));
        };
        let bundle = match engine.write_bundle(job.row, plan).await {
            Ok(bundle) => bundle,
            Err(error) => return Ok(Err(format!("the export bundle could not be written: {error}"))),
        };
        receipt["bundle"] = json!({ "sha256": bundle.sha256, "bytes": bundle.bytes, "files": bundle.files });
        Ok(Ok(serde_json::to_string(&bundle).ok()))
    }
}
