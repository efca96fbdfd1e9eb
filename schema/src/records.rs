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

/// Fails when one of `records` holds no identity in any of the lookup fields it was asked by
/// (`asked`: indexes into `entity.lookups`). Such a record belongs to nobody: handed to no one,
/// it would vanish from the answer, a silent miss (a custom connector reading the wrong column, a
/// lookup value stored as a type that is not text or an integer). The error names the field.
pub fn check_attributable(
    entity: &EntityDescriptor,
    asked: impl Iterator<Item = usize> + Clone,
    records: &[Record],
) -> Result<(), ConnectorError> {
    let holds_one = |record: &Record| {
        asked.clone().any(|lookup| {
            entity
                .lookups
                .get(lookup)
                .and_then(|link| record.get(link.field))
                .is_some_and(|value| value.as_identity_text().is_some())
        })
    };
    if records.iter().all(holds_one) {
        return Ok(());
    }
    let field = asked
        .clone()
        .find_map(|lookup| entity.lookups.get(lookup))
        .and_then(|link| entity.fields.get(link.field))
        .map_or("?", |f| f.name.as_str());
    Err(ConnectorError::Decode {
        field: format!("{}.{field}", entity.name),
        expected: "the identity the record was looked up by (a record has none there, or one that is neither text nor an integer)",
    })
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
