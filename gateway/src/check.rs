//! `subject-gateway check`: connect to every store and verify the declarations against it.

use std::fmt::Write as _;
use std::time::Duration;

use subject_schema::SubjectService;

/// One line of the check report.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub connector: String,
    pub kind: String,
    pub entity: String,
    pub ok: bool,
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

    /// A plain-text table, one row per connector and entity.
    pub fn table(&self) -> String {
        let width =
            |f: fn(&CheckRow) -> usize, title: usize| self.rows.iter().map(f).max().unwrap_or(0).max(title);
        let (wc, wk, we) = (
            width(|r| r.connector.len(), 9),
            width(|r| r.kind.len(), 4),
            width(|r| r.entity.len(), 6),
        );
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:wc$}  {:wk$}  {:we$}  {:6}  details",
            "connector", "kind", "entity", "status"
        );
        for row in &self.rows {
            let status = if row.ok { "OK" } else { "FAIL" };
            let details = if row.details.is_empty() {
                String::new()
            } else {
                row.details.join("; ")
            };
            let _ = writeln!(
                out,
                "{:wc$}  {:wk$}  {:we$}  {:6}  {details}",
                row.connector, row.kind, row.entity, status
            );
        }
        out
    }
}

/// Checks every connector of `service` concurrently, each within its timeout (at least 5 s).
pub async fn check_all(service: &SubjectService) -> CheckReport {
    let registry = service.executor.registry();
    let checks = registry.connectors.iter().map(|registered| async move {
        let connector = &registered.connector;
        let descriptor = connector.descriptor();
        let limit = descriptor.timeout.max(Duration::from_secs(5));
        let result = match tokio::time::timeout(limit, connector.check()).await {
            Ok(result) => result,
            Err(_) => Err(subject_connectors::ConnectorError::Timeout(limit)),
        };
        match result {
            Ok(entities) => entities
                .into_iter()
                .map(|check| {
                    let mut details = check.problems.clone();
                    details.extend(check.warnings.iter().map(|w| format!("warning: {w}")));
                    // An entity erasure cannot reach makes every erasure of its people FAIL.
                    let position = descriptor.entities.iter().position(|e| e.name == check.entity);
                    if let Some(e) = position
                        && !matches!(
                            descriptor.entities[e].erasure.action,
                            subject_connectors::ErasureAction::Cascade(_)
                        )
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
                        details,
                    }
                })
                .collect::<Vec<_>>(),
            Err(error) => vec![CheckRow {
                connector: descriptor.name.clone(),
                kind: descriptor.kind.clone(),
                entity: "*".into(),
                ok: false,
                details: vec![error.to_string()],
            }],
        }
    });
    let rows = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    CheckReport { rows }
}
