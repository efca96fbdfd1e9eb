//! Records against their declaration: everything that reads a record's value by field position
//! (resolution, the generated record types, the privacy engine) first makes sure the record is as
//! wide as its entity declares. A connector returning fewer values than fields (a custom
//! `Connector` that forgot one) is a store error (`STORE_DECODE_FAILED`) for that entity: never a
//! panic, and never a silent `null` or a record nobody is handed.

use subject_connectors::{ConnectorError, EntityDescriptor, Record, Value};

/// The error for `record` when it is narrower than `entity` declares, naming the first field it
/// has no value for.
pub fn narrower(entity: &EntityDescriptor, record: &[Value]) -> Option<ConnectorError> {
    let missing = entity.fields.get(record.len())?;
    Some(ConnectorError::Decode {
        field: missing.name.clone(),
        expected: "a value: the store returned fewer values than the entity declares fields",
    })
}

/// Fails when any of `records` is narrower than `entity` declares.
pub fn check_width(entity: &EntityDescriptor, records: &[Record]) -> Result<(), ConnectorError> {
    match records.iter().find_map(|record| narrower(entity, record)) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// `record`'s value of field `field`, or the error saying the record is too narrow.
pub fn value<'a>(
    entity: &EntityDescriptor,
    record: &'a [Value],
    field: usize,
) -> Result<&'a Value, ConnectorError> {
    record.get(field).ok_or_else(|| {
        narrower(entity, record).unwrap_or_else(|| ConnectorError::Decode {
            field: format!("#{field}"),
            expected: "a declared field",
        })
    })
}
