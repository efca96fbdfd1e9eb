//! `subject-gateway check`: connect to every store and verify the declarations against it.

use std::fmt::Write as _;
use std::time::Duration;

use subject_connectors::{ConnectorError, ErasureAction};
use subject_schema::SubjectService;

/// One line of the check report.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub connector: String,
    pub kind: String,
    /// The entity, `*` for the whole connector, `[storage]` for its object storage.
    pub entity: String,
    pub ok: bool,
    /// Where the entity (or connector, or storage) is declared: `file:line:column`.
    pub location: String,
    pub details: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    /// A plain-text table, one row per connector and entity, each naming where it is declared.
    pub fn table(&self) -> String {
        let width =
            |f: fn(&CheckRow) -> usize, title: usize| self.rows.iter().map(f).max().unwrap_or(0).max(title);
        let (wc, wk, we, wl) = (
            width(|r| r.connector.len(), 9),
            width(|r| r.kind.len(), 4),
            width(|r| r.entity.len(), 6),
            width(|r| r.location.len(), 11),
        );
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:wc$}  {:wk$}  {:we$}  {:6}  {:wl$}  details",
            "connector", "kind", "entity", "status", "declared at"
        );
        for row in &self.rows {
            let status = if row.ok { "OK" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{:wc$}  {:wk$}  {:we$}  {:6}  {:wl$}  {}",
                row.connector,
                row.kind,
                row.entity,
                status,
                row.location,
                row.details.join("; ")
            );
        }
        out
    }
}

/// Checks every connector of `service` (and its object storage) concurrently, each within a
/// bound (its timeout, at least 5 s).
pub async fn check_all(service: &SubjectService) -> CheckReport {
    let registry = service.executor.registry();
    let checks = registry.connectors.iter().enumerate().map(|(c, registered)| async move {
        let connector = &registered.connector;
        let descriptor = connector.descriptor();
        let limit = descriptor.timeout.max(Duration::from_secs(5));
        let connector_location = registered
            .origin
            .as_ref()
            .map_or_else(|| "(registered in Rust)".to_owned(), |o| o.location.to_string());
        // Files are deleted where an entity naming them is deleted.
        let writable = descriptor
            .entities
            .iter()
            .any(|e| e.files.is_some() && e.erasure.action == ErasureAction::Delete);
        let storage = async {
            match &registered.storage {
                None => None,
                Some(store) => Some(
                    tokio::time::timeout(limit, store.check(writable))
                        .await
                        .unwrap_or_else(|_| vec![format!("the storage did not answer within {limit:?}")]),
                ),
            }
        };
        let entities = async {
            match tokio::time::timeout(limit, connector.check()).await {
                Ok(result) => result,
                Err(_) => Err(ConnectorError::Timeout(limit)),
            }
        };
        let (result, storage) = tokio::join!(entities, storage);
        let mut rows = match result {
            Ok(entities) => entities
                .into_iter()
                .map(|check| {
                    let position = descriptor.entities.iter().position(|e| e.name == check.entity);
                    // A finding about one field names the line the field is declared on.
                    let at = |finding: &str| {
                        let field = check.field_of(finding)?;
                        let location = registered
                            .origin
                            .as_ref()?
                            .field_locations
                            .get(position?)?
                            .get(field)?;
                        let file = location.file.file_name().map_or_else(
                            || location.file.display().to_string(),
                            |name| name.to_string_lossy().into_owned(),
                        );
                        let (line, column) = location.line?;
                        Some(format!(" (at {file}:{line}:{column})"))
                    };
                    let mut details: Vec<String> = check
                        .problems
                        .iter()
                        .map(|p| format!("{p}{}", at(p).unwrap_or_default()))
                        .collect();
                    details.extend(
                        check
                            .warnings
                            .iter()
                            .map(|w| format!("warning: {w}{}", at(w).unwrap_or_default())),
                    );
                    // An entity erasure cannot reach makes every erasure of its people FAIL.
                    if let Some(e) = position
                        && !matches!(descriptor.entities[e].erasure.action, ErasureAction::Cascade(_))
                        && !connector.erases(e)
                    {
                        details.push(
                            "warning: erasure is not supported here (declare its erase calls, or action = \"cascade\")"
                                .into(),
                        );
                    }
                    CheckRow {
                        connector: descriptor.name.clone(),
                        kind: descriptor.kind.clone(),
                        entity: check.entity.clone(),
                        ok: check.is_ok(),
                        location: position.map_or_else(
                            || connector_location.clone(),
                            |e| registry.entity_location(c, e).to_string(),
                        ),
                        details,
                    }
                })
                .collect::<Vec<_>>(),
            Err(error) => vec![CheckRow {
                connector: descriptor.name.clone(),
                kind: descriptor.kind.clone(),
                entity: "*".into(),
                ok: false,
                location: connector_location.clone(),
                details: vec![error.to_string()],
            }],
        };
        if let (Some(problems), Some(store)) = (storage, &registered.storage) {
            rows.push(CheckRow {
                connector: descriptor.name.clone(),
                kind: store.kind.to_owned(),
                entity: "[storage]".into(),
                ok: problems.is_empty(),
                location: store
                    .location
                    .as_ref()
                    .map_or_else(|| connector_location.clone(), ToString::to_string),
                details: problems,
            });
        }
        rows
    });
    let rows = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    CheckReport { rows }
}
