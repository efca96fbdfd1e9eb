//! What a planned request keeps: the records and lookups stored with each task (so a resumed
//! request acts on what was planned, not on a fresh guess), and the plan of a request as
//! resolution found it.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use subject_connectors::{LookupRequest, Record, Value};

/// A record value as kept in a task (the records found when the erasure was planned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub(super) enum StoredValue {
    N,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    J(Json),
}

impl From<&Value> for StoredValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => StoredValue::N,
            Value::Bool(b) => StoredValue::B(*b),
            Value::Int(i) => StoredValue::I(*i),
            Value::Float(f) => StoredValue::F(*f),
            Value::String(s) => StoredValue::S(s.clone()),
            Value::Json(j) => StoredValue::J(j.clone()),
        }
    }
}

impl From<StoredValue> for Value {
    fn from(value: StoredValue) -> Self {
        match value {
            StoredValue::N => Value::Null,
            StoredValue::B(b) => Value::Bool(b),
            StoredValue::I(i) => Value::Int(i),
            StoredValue::F(f) => Value::Float(f),
            StoredValue::S(s) => Value::String(s),
            StoredValue::J(j) => Value::Json(j),
        }
    }
}

/// One entity of a planned request: where, what was found, and how to find it again.
pub(super) struct PlannedEntity {
    pub connector: usize,
    pub entity: usize,
    pub records: Vec<Record>,
    pub lookup: LookupRequest,
    /// Order within the connector: lower runs first (entities found through others go first).
    pub stage: i64,
}

/// What resolving a person for a request found.
pub(super) struct SubjectPlan {
    pub identities: usize,
    /// Every identity resolution found the person by (objections are recorded for each).
    pub found: Vec<subject_connectors::Identity>,
    pub entities: Vec<PlannedEntity>,
    /// Connectors whose lookups failed: `(connector, message)`.
    pub failures: Vec<(String, String)>,
}

/// Entities the live stores would refuse to erase (or whose records erasure could not find):
/// `(connector, entity) -> (reason, unfindable)`. An unfindable entity blocks every erasure.
pub(super) type Blockers = std::collections::HashMap<(usize, usize), (String, bool)>;

pub(super) fn encode_lookup(lookup: &LookupRequest) -> String {
    let stored: Vec<(usize, Vec<&str>)> = lookup
        .by
        .iter()
        .map(|(l, values)| (*l, values.iter().map(|v| v.expose()).collect()))
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

pub(super) fn encode_records(records: &[Record]) -> String {
    let stored: Vec<Vec<StoredValue>> = records
        .iter()
        .map(|r| r.iter().map(StoredValue::from).collect())
        .collect();
    serde_json::to_string(&stored).unwrap_or_default()
}

pub(super) fn decode_records(text: Option<&str>) -> Vec<Record> {
    text.and_then(|t| serde_json::from_str::<Vec<Vec<StoredValue>>>(t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.into_iter().map(Value::from).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_survive_the_state_database() {
        let records = vec![vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(7),
            Value::Float(1.5),
            Value::String("x".into()),
            Value::Json(json!({"a": [1]})),
        ]];
        assert_eq!(decode_records(Some(&encode_records(&records))), records);
    }
}
