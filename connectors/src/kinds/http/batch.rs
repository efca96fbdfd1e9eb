//! Batched erases (`max_batch`): the deletions of concurrent requests coalesced into one call
//! and one job. The declaration's one step carries `"{field[]}"` in its body, replaced by the list
//! of every member's values (e.g. `distinct_ids = "{distinct_id[]}"`). The engine gathers the
//! members durably (`gateway/src/requests/batch.rs`); here are the two halves it calls:
//! [`Connector::batch_items`](crate::Connector::batch_items) (what one person's request adds)
//! and [`Connector::erase_batch`](crate::Connector::erase_batch) (the one call).

use std::time::Duration;

use serde_json::Value as Json;
use toml::Spanned;

use super::HttpConnector;
use super::decl::EraseDecl;
use super::values::scalar_text;
use crate::connector::{BatchItems, ConnectorError, EntityDescriptor, EraseBatching, ErasureRequest, JobHandle};
use crate::declaration::source::{DeclarationError, SourceFile, placeholders};
use crate::value::{Record, Value};

/// The most records one batched call may carry.
pub const MAX_BATCH: i64 = 10_000;
/// How long a batch stays open by default, milliseconds.
const DEFAULT_WINDOW_MS: u64 = 500;

/// A validated `max_batch`.
#[derive(Debug, Clone)]
pub struct HttpBatch {
    pub batching: EraseBatching,
    /// The field whose values the list placeholder carries.
    pub field: usize,
    /// The placeholder as written, `{field[]}`.
    pub placeholder: String,
}

fn strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Whether `placeholder` is written as an item of a list (it would become a list in a list).
fn inside_array(value: &Json, placeholder: &str, in_array: bool) -> bool {
    match value {
        Json::String(s) => in_array && s == placeholder,
        Json::Array(items) => items.iter().any(|v| inside_array(v, placeholder, true)),
        Json::Object(map) => map.values().any(|v| inside_array(v, placeholder, false)),
        _ => false,
    }
}

/// Checks a batched erase: `max_batch` 1 to 10,000, one step, a job, no placeholder in the path,
/// and exactly one placeholder in the body — a list `"{field[]}"` of a declared field, written as
/// a whole string.
pub(super) fn batch_decl(
    file: &SourceFile,
    declared: &Spanned<EraseDecl>,
    entity: &EntityDescriptor,
    has_job: bool,
    errors: &mut Vec<DeclarationError>,
) -> Option<HttpBatch> {
    let e = declared.get_ref();
    let Some(max) = &e.max_batch else {
        if let Some(window) = &e.batch_window_ms {
            errors.push(file.error(window.span(), "batch_window_ms needs max_batch"));
        }
        return None;
    };
    let before = errors.len();
    if !(1..=MAX_BATCH).contains(max.get_ref()) {
        errors.push(file.error(max.span(), format!("max_batch is 1 to {MAX_BATCH}")));
    }
    if !has_job {
        errors.push(file.error(
            max.span(),
            "a batched erase (max_batch) needs `job`: every request follows the batch's one job",
        ));
    }
    let [step] = e.steps.as_slice() else {
        errors.push(file.error(
            max.span(),
            format!(
                "a batched erase (max_batch) makes one call for the whole batch: declare exactly one step, not {}",
                e.steps.len()
            ),
        ));
        return None;
    };
    if !placeholders(step.path.get_ref()).is_empty() {
        errors.push(file.error(
            step.path.span(),
            "the path of a batched erase takes no placeholder: it is one call for many records",
        ));
    }
    let mut texts = Vec::new();
    if let Some(body) = step.body.as_ref().and_then(|b| serde_json::to_value(b).ok()) {
        strings(&body, &mut texts);
    }
    let found: Vec<&str> = texts.iter().flat_map(|t| placeholders(t)).collect();
    let list = match found.as_slice() {
        [one] if one.ends_with("[]") => Some(*one),
        _ => None,
    };
    let Some(list) = list else {
        errors.push(file.error(
            step.path.span(),
            format!(
                "the body of a batched erase holds exactly one placeholder, a list such as \"{{distinct_id[]}}\" (found {})",
                if found.is_empty() { "none".to_owned() } else { found.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ") }
            ),
        ));
        return None;
    };
    let placeholder = format!("{{{list}}}");
    let in_a_list = step
        .body
        .as_ref()
        .and_then(|b| serde_json::to_value(b).ok())
        .is_some_and(|b| inside_array(&b, &placeholder, false));
    if !texts.contains(&placeholder) || in_a_list {
        errors.push(file.error(
            step.path.span(),
            format!("write the list placeholder as a whole string: `key = \"{placeholder}\"` (it becomes the list)"),
        ));
    }
    let name = list.trim_end_matches("[]");
    let Some(field) = entity.fields.iter().position(|f| f.name == name) else {
        errors.push(file.error(
            step.path.span(),
            format!("placeholder `{placeholder}` names no declared field of `{}`", entity.name),
        ));
        return None;
    };
    if errors.len() != before {
        return None;
    }
    let window = e.batch_window_ms.as_ref().map_or(DEFAULT_WINDOW_MS, |w| *w.get_ref());
    Some(HttpBatch {
        batching: EraseBatching {
            max_batch: usize::try_from(*max.get_ref()).unwrap_or(1),
            window: Duration::from_millis(window),
        },
        field,
        placeholder,
    })
}

/// A record's value as the batched call carries it.
fn item(value: &Value) -> Option<Json> {
    match value {
        Value::String(s) if !s.is_empty() => Some(Json::String(s.clone())),
        Value::Int(i) => Some(Json::from(*i)),
        _ => None,
    }
}

/// `body` with the string `placeholder` replaced by the list `items`.
fn with_list(body: &Json, placeholder: &str, items: &[Json]) -> Json {
    match body {
        Json::String(s) if s == placeholder => Json::Array(items.to_vec()),
        Json::Array(values) => Json::Array(values.iter().map(|v| with_list(v, placeholder, items)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_list(v, placeholder, items)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl HttpConnector {
    pub(super) fn batch_of(&self, entity: usize) -> Option<&HttpBatch> {
        self.store.entities.get(entity)?.erase.as_ref()?.batch.as_ref()
    }

    /// The records one request's erasure of a batched entity acts on (found now, and those known
    /// when planned), refused past the request's limit, and their items.
    pub(super) async fn items_of(&self, request: &ErasureRequest) -> Result<BatchItems, ConnectorError> {
        let entity = request.lookup.entity;
        let batch = self
            .batch_of(entity)
            .ok_or(ConnectorError::Unsupported("batched erase (declare max_batch)"))?;
        let descriptor = &self.descriptor.entities[entity];
        let mut records: Vec<Record> = self.owned(&request.lookup).await?;
        for known in &request.known {
            let same = |r: &Record| match descriptor.primary_key {
                Some(pk) => r.get(pk) == known.get(pk),
                None => r == known,
            };
            if !records.iter().any(same) {
                records.push(known.clone());
            }
        }
        if records.len() as u64 > request.max_records {
            return Err(ConnectorError::TooManyRecords {
                found: records.len() as u64,
                limit: request.max_records,
            });
        }
        let mut items: Vec<Json> = records
            .iter()
            .filter_map(|r| r.get(batch.field).and_then(item))
            .collect();
        items.sort_by_key(|i| i.to_string());
        items.dedup();
        if items.len() < records.len() {
            // A record the call cannot name would be left behind: never a silent miss.
            return Err(ConnectorError::Other(format!(
                "{} record(s) of `{}` have no `{}` to delete them by",
                records.len() - items.len(),
                descriptor.name,
                descriptor.fields[batch.field].name
            )));
        }
        Ok(BatchItems {
            records: records.len() as u64,
            items,
        })
    }

    /// The one call of a closed batch; the job it started.
    pub(super) async fn send_batch(&self, entity: usize, items: &[Json]) -> Result<JobHandle, ConnectorError> {
        let http = self
            .store
            .entities
            .get(entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{entity}")))?;
        let (Some(erase), Some(batch)) = (&http.erase, self.batch_of(entity)) else {
            return Err(ConnectorError::Unsupported("batched erase (declare max_batch)"));
        };
        let (Some(step), Some(job)) = (erase.steps.first(), &erase.job) else {
            return Err(ConnectorError::Unsupported("batched erase without a step and a job"));
        };
        if items.is_empty() || items.len() > batch.batching.max_batch {
            return Err(ConnectorError::Other(format!(
                "a batch of {} item(s) (1 to {} allowed)",
                items.len(),
                batch.batching.max_batch
            )));
        }
        let body = step.body.as_ref().map(|b| with_list(b, &batch.placeholder, items));
        let answer = self.send(&step.method, self.url(&step.path)?, body.as_ref()).await?;
        let super::Answer::Json(answer) = answer else {
            return Err(ConnectorError::Query {
                code: Some("HTTP 404 to the batched erase call".into()),
            });
        };
        job.id
            .query(&answer)
            .first()
            .and_then(scalar_text)
            .map(JobHandle)
            .ok_or_else(|| ConnectorError::Decode {
                field: "job id".into(),
                expected: "a job id at the declared path",
            })
    }
}
