//! Objections that bind at read time (GDPR Art. 21): a person who objected to a purpose is
//! withheld from every `subject`/`subjects` read stated with that purpose or one under it —
//! `null` and an `OBJECTED` error, audited.
//!
//! The objections are kept by the gateway's engine (keyed hashes of every identity the person was
//! found by, never values); this module defines the interface it implements, [`Objections`], and
//! the check the read path runs after resolution ([`withheld`]). Essential processing is not
//! objectable: an essential read never asks.

use std::sync::Arc;

use async_graphql::dynamic::ResolverContext;
use async_graphql::{Error, ErrorExtensions};
use async_trait::async_trait;
use subject_connectors::codes::ErrorCode;
use subject_connectors::purpose::DataUse;

use crate::audit::{AuditEntry, AuditLog, SubjectRef};
use crate::gql_support::caller;
use crate::resolve::{BatchOutcome, Executor};

/// An objection on record that binds a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objected {
    /// The purpose objected to (the read's purpose is it or one under it).
    pub purpose: String,
    /// The objection request that recorded it.
    pub request_id: String,
}

/// Why objections could not be looked up. A read that cannot be checked is refused, never served.
#[derive(Debug, Clone, thiserror::Error)]
#[error("objections could not be checked: {0}")]
pub struct ObjectionError(pub String);

/// The objections on record (the gateway's state database).
#[async_trait]
pub trait Objections: Send + Sync + 'static {
    /// For each person (every identity resolution found for them), the objection that binds a
    /// read stated for `purpose`, if any: one on record for any of the identities, to `purpose`
    /// or a purpose above it.
    async fn binding(
        &self,
        people: &[Vec<SubjectRef>],
        purpose: &DataUse,
    ) -> Result<Vec<Option<Objected>>, ObjectionError>;
}

/// Whether a read for `purpose` can be objected to at all: essential processing cannot.
pub fn objectable(purpose: &DataUse) -> bool {
    purpose.as_str() != "essential" && !purpose.as_str().starts_with("essential.")
}

/// The `OBJECTED` error for a withheld person.
pub(crate) fn objected_error(objected: &Objected, purpose: &DataUse, index: Option<usize>) -> Error {
    let message = format!(
        "the person objected to `{}` (request {}): withheld from reads for `{purpose}`",
        objected.purpose, objected.request_id
    );
    let objected = objected.clone();
    Error::new(message).extend_with(move |_, e| {
        e.set("code", ErrorCode::Objected.as_str());
        e.set("objectedPurpose", objected.purpose.as_str());
        e.set("objectionRequest", objected.request_id.as_str());
        if let Some(index) = index {
            e.set("index", index as i64);
        }
    })
}

/// Per subject of `batch`, the objection withholding it from this read (`None`: served). Asks the
/// engine only for an objectable purpose; appends one `subject.withheld` audit event per withheld
/// person before anything is served. With no [`Objections`] in the request's data an objectable
/// read is refused.
pub(crate) async fn withheld(
    ctx: &ResolverContext<'_>,
    executor: &Executor,
    inputs: &[Vec<subject_connectors::Identity>],
    batch: &BatchOutcome,
) -> async_graphql::Result<Vec<Option<Objected>>> {
    let caller = caller(ctx)?;
    let none = vec![None; batch.subjects.len()];
    if !objectable(&caller.purpose) {
        return Ok(none);
    }
    // No objections to ask: an objectable read is refused, never served unchecked.
    let objections = ctx.data_opt::<Arc<dyn Objections>>().ok_or_else(|| {
        Error::new(format!(
            "objections cannot be checked here, so nothing is served for `{}` (essential reads are)",
            caller.purpose
        ))
        .extend_with(|_, e| e.set("code", ErrorCode::RequestsUnavailable.as_str()))
    })?;
    let registry = executor.registry();
    let people: Vec<Vec<SubjectRef>> = batch
        .subjects
        .iter()
        .map(|subject| {
            subject
                .identities
                .iter()
                .map(|resolved| SubjectRef {
                    kind: registry.kinds.get(resolved.identity.kind).name.clone(),
                    value: resolved.identity.value.clone(),
                })
                .collect()
        })
        .collect();
    let found = objections
        .binding(&people, &caller.purpose)
        .await
        .map_err(|error| {
            Error::new(format!("{error}; nothing was served"))
                .extend_with(|_, e| e.set("code", ErrorCode::RequestsUnavailable.as_str()))
        })?;
    if found.iter().all(Option::is_none) {
        return Ok(found);
    }
    let log = ctx.data_opt::<Arc<dyn AuditLog>>().ok_or_else(|| {
        Error::new("the audit log is not configured: no data is served without it")
            .extend_with(|_, e| e.set("code", ErrorCode::AuditUnavailable.as_str()))
    })?;
    for (index, objected) in found.iter().enumerate() {
        let Some(objected) = objected else {
            continue;
        };
        let entry = AuditEntry {
            actor: caller.principal.clone(),
            role: caller.role.name.clone(),
            purpose: caller.purpose.to_string(),
            action: "subject.withheld".into(),
            subjects: inputs
                .get(index)
                .into_iter()
                .flatten()
                .map(|identity| SubjectRef {
                    kind: registry.kinds.get(identity.kind).name.clone(),
                    value: identity.value.clone(),
                })
                .collect(),
            detail: serde_json::json!({
                "reason": ErrorCode::Objected.as_str(),
                "objectedPurpose": objected.purpose,
                "objectionRequest": objected.request_id,
            }),
        };
        log.append(entry).await.map_err(|error| {
            Error::new(error.to_string())
                .extend_with(|_, e| e.set("code", ErrorCode::AuditUnavailable.as_str()))
        })?;
    }
    Ok(found)
}
