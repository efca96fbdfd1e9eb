//! A custom store implemented in Rust, as the README describes: an append-only JSON-lines file
//! (one JSON object per line), such as a consent log exported by another team. It implements the
//! `Connector` trait directly and is registered next to the declared connectors.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use subject_connectors::connector::{ConnectorDescriptor, EntityCheck, EntityDescriptor, FieldDescriptor};
use subject_connectors::{
    Compare, Connector, ConnectorError, DataCategory, FieldType, IdentityKinds, IdentityLink, LookupRequest,
    Record, Value,
};

/// Consent events kept in a JSON-lines file, found by email.
pub struct ConsentLog {
    path: PathBuf,
    descriptor: ConnectorDescriptor,
    kinds: IdentityKinds,
}

impl ConsentLog {
    /// A connector over the file at `path`; `kinds` are the gateway's identity kinds.
    pub fn new(path: PathBuf, kinds: &IdentityKinds) -> Result<Self, ConnectorError> {
        let email = kinds
            .by_name("email")
            .ok_or_else(|| ConnectorError::Other("the gateway declares no `email` kind".into()))?;
        let field = |name: &str, field_type, category: &str| -> Result<FieldDescriptor, ConnectorError> {
            Ok(FieldDescriptor {
                name: name.into(),
                field_type,
                category: DataCategory::parse(category).map_err(|e| ConnectorError::Other(e.to_string()))?,
                description: None,
                erasure: None,
                rectify: None,
            })
        };
        let descriptor = ConnectorDescriptor {
            name: "consent_log".into(),
            kind: "jsonl".into(),
            description: Some("Consent events, one JSON object per line.".into()),
            timeout: Duration::from_secs(2),
            purposes: None,
            disclosure: Default::default(),
            entities: vec![EntityDescriptor {
                name: "events".into(),
                description: None,
                source: "consent.jsonl".into(),
                fields: vec![
                    field("email", FieldType::String, "user.contact.email")?,
                    field("purpose", FieldType::String, "user.privacy_preferences")?,
                    field("granted", FieldType::Bool, "user.privacy_preferences")?,
                    field("at", FieldType::Timestamp, "system.operations")?,
                ],
                lookups: vec![IdentityLink {
                    kind: email,
                    field: 0,
                    compare: Compare::Lowercase,
                }],
                yields: Vec::new(),
                primary_key: None,
                files: None,
                erasure: Default::default(),
            }],
        };
        Ok(Self {
            path,
            descriptor,
            kinds: kinds.clone(),
        })
    }
}

#[async_trait]
impl Connector for ConsentLog {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| ConnectorError::Unavailable(format!("cannot read the log: {}", e.kind())))?;
        let entity = &self.descriptor.entities[0];
        let mut records = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let object: serde_json::Value =
                serde_json::from_str(line).map_err(|_| ConnectorError::Decode {
                    field: "line".into(),
                    expected: "a JSON object",
                })?;
            let matches = request.by.iter().any(|(lookup, values)| {
                let link = entity.lookups[*lookup];
                let stored = object[entity.fields[link.field].name.as_str()]
                    .as_str()
                    .unwrap_or("");
                self.kinds
                    .get(link.kind)
                    .normalise_stored(stored)
                    .is_some_and(|v| values.contains(&v))
            });
            if matches {
                records.push(
                    entity
                        .fields
                        .iter()
                        .map(|f| match &object[f.name.as_str()] {
                            serde_json::Value::String(s) => Value::String(s.clone()),
                            serde_json::Value::Bool(b) => Value::Bool(*b),
                            serde_json::Value::Null => Value::Null,
                            other => Value::Json(other.clone()),
                        })
                        .collect(),
                );
            }
        }
        Ok(records)
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        tokio::fs::metadata(&self.path)
            .await
            .map(drop)
            .map_err(|e| ConnectorError::Unavailable(format!("cannot read the log: {}", e.kind())))
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        self.health().await?;
        Ok(vec![EntityCheck {
            fields: Vec::new(),
            entity: "events".into(),
            problems: Vec::new(),
            warnings: vec!["a JSON-lines file has no index: every lookup reads the whole file".into()],
        }])
    }
}
