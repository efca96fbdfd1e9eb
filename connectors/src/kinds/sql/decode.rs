//! Rows read as records: each dialect's column types decoded into the declared field types
//! (timestamps as RFC 3339, decimals and JSON as text), a value that does not fit being a
//! `Decode` error naming the field, never a silent null.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row, TypeInfo};

use crate::connector::{ConnectorError, EntityDescriptor};
use crate::value::{FieldType, Record, Value};

pub(super) fn decode_error(field: &str, expected: &'static str) -> ConnectorError {
    ConnectorError::Decode {
        field: field.to_owned(),
        expected,
    }
}

pub(super) fn timestamp_utc(ts: DateTime<Utc>) -> Value {
    Value::String(ts.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn naive_timestamp(ts: NaiveDateTime) -> Value {
    timestamp_utc(ts.and_utc())
}

/// Text timestamps (SQLite) into RFC 3339 when they parse; left as stored otherwise.
pub(super) fn text_timestamp(text: String) -> Value {
    if let Ok(ts) = DateTime::parse_from_rfc3339(&text) {
        return timestamp_utc(ts.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(&text, format) {
            return naive_timestamp(ts);
        }
    }
    Value::String(text)
}

/// JSON stored as text, `None` when it does not parse.
pub(super) fn json_text_value(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().map(Value::Json)
}

fn json_text(field: &str, text: String) -> Result<Value, ConnectorError> {
    serde_json::from_str(&text)
        .map(Value::Json)
        .map_err(|_| decode_error(field, "JSON"))
}

fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, f)
}

pub(super) fn decode_pg(row: &PgRow, entity: &EntityDescriptor) -> Result<Record, ConnectorError> {
    let mut record = Vec::with_capacity(entity.fields.len());
    for (i, field) in entity.fields.iter().enumerate() {
        let type_name = row.column(i).type_info().name();
        let fail = |_| decode_error(&field.name, field.field_type.as_str());
        let value = match (field.field_type, type_name) {
            (_, "TEXT") => opt(row.try_get::<Option<String>, _>(i).map_err(fail)?, Value::String),
            (_, "INT2") => opt(row.try_get::<Option<i16>, _>(i).map_err(fail)?, |v| {
                Value::Int(v.into())
            }),
            (_, "INT4") => opt(row.try_get::<Option<i32>, _>(i).map_err(fail)?, |v| {
                Value::Int(v.into())
            }),
            (_, "INT8") => opt(row.try_get::<Option<i64>, _>(i).map_err(fail)?, Value::Int),
            (_, "FLOAT4") => opt(row.try_get::<Option<f32>, _>(i).map_err(fail)?, |v| {
                Value::Float(v.into())
            }),
            (_, "FLOAT8") => opt(row.try_get::<Option<f64>, _>(i).map_err(fail)?, Value::Float),
            (_, "BOOL") => opt(row.try_get::<Option<bool>, _>(i).map_err(fail)?, Value::Bool),
            (_, "TIMESTAMPTZ") => opt(
                row.try_get::<Option<DateTime<Utc>>, _>(i).map_err(fail)?,
                timestamp_utc,
            ),
            (_, "TIMESTAMP") => opt(
                row.try_get::<Option<NaiveDateTime>, _>(i).map_err(fail)?,
                naive_timestamp,
            ),
            (_, "DATE") => opt(row.try_get::<Option<NaiveDate>, _>(i).map_err(fail)?, |d| {
                Value::String(d.format("%Y-%m-%d").to_string())
            }),
            (_, "JSON" | "JSONB") => opt(
                row.try_get::<Option<serde_json::Value>, _>(i).map_err(fail)?,
                Value::Json,
            ),
            _ => return Err(decode_error(&field.name, field.field_type.as_str())),
        };
        record.push(value);
    }
    Ok(record)
}

pub(super) fn decode_mysql(row: &MySqlRow, entity: &EntityDescriptor) -> Result<Record, ConnectorError> {
    let mut record = Vec::with_capacity(entity.fields.len());
    for (i, field) in entity.fields.iter().enumerate() {
        let fail = |_| decode_error(&field.name, field.field_type.as_str());
        let value = match field.field_type {
            FieldType::String | FieldType::Decimal | FieldType::Uuid => {
                opt(row.try_get::<Option<String>, _>(i).map_err(fail)?, Value::String)
            }
            FieldType::Int | FieldType::Bigint => match row.try_get::<Option<i64>, _>(i) {
                Ok(v) => opt(v, Value::Int),
                // BIGINT UNSIGNED: past 2^63 still a JSON number (a `Long` is a JSON number).
                Err(_) => match row.try_get::<Option<u64>, _>(i) {
                    Ok(v) => opt(v, |v| {
                        i64::try_from(v).map_or_else(|_| Value::Json(serde_json::Value::from(v)), Value::Int)
                    }),
                    // YEAR
                    Err(_) => opt(row.try_get::<Option<u16>, _>(i).map_err(fail)?, |v| {
                        Value::Int(v.into())
                    }),
                },
            },
            FieldType::Float => opt(row.try_get::<Option<f64>, _>(i).map_err(fail)?, Value::Float),
            FieldType::Bool => opt(row.try_get::<Option<bool>, _>(i).map_err(fail)?, Value::Bool),
            FieldType::Timestamp => match row.try_get::<Option<NaiveDateTime>, _>(i) {
                Ok(v) => opt(v, naive_timestamp),
                Err(_) => opt(
                    row.try_get::<Option<DateTime<Utc>>, _>(i).map_err(fail)?,
                    timestamp_utc,
                ),
            },
            FieldType::Date => opt(row.try_get::<Option<NaiveDate>, _>(i).map_err(fail)?, |d| {
                Value::String(d.format("%Y-%m-%d").to_string())
            }),
            FieldType::Json => match row.try_get::<Option<String>, _>(i).map_err(fail)? {
                Some(text) => json_text(&field.name, text)?,
                None => Value::Null,
            },
        };
        record.push(value);
    }
    Ok(record)
}

pub(super) fn decode_sqlite(row: &SqliteRow, entity: &EntityDescriptor) -> Result<Record, ConnectorError> {
    let mut record = Vec::with_capacity(entity.fields.len());
    for (i, field) in entity.fields.iter().enumerate() {
        let fail = |_| decode_error(&field.name, field.field_type.as_str());
        let value = match field.field_type {
            FieldType::String | FieldType::Uuid | FieldType::Date => {
                opt(row.try_get::<Option<String>, _>(i).map_err(fail)?, Value::String)
            }
            FieldType::Decimal => opt(row.try_get::<Option<String>, _>(i).map_err(fail)?, Value::String),
            FieldType::Int | FieldType::Bigint => {
                opt(row.try_get::<Option<i64>, _>(i).map_err(fail)?, Value::Int)
            }
            FieldType::Float => opt(row.try_get::<Option<f64>, _>(i).map_err(fail)?, Value::Float),
            FieldType::Bool => opt(row.try_get::<Option<bool>, _>(i).map_err(fail)?, Value::Bool),
            FieldType::Timestamp => match row.try_get::<Option<String>, _>(i) {
                Ok(v) => opt(v, text_timestamp),
                Err(_) => opt(row.try_get::<Option<i64>, _>(i).map_err(fail)?, |secs| {
                    DateTime::from_timestamp(secs, 0).map_or(Value::Int(secs), timestamp_utc)
                }),
            },
            FieldType::Json => match row.try_get::<Option<String>, _>(i).map_err(fail)? {
                Some(text) => json_text(&field.name, text)?,
                None => Value::Null,
            },
        };
        record.push(value);
    }
    Ok(record)
}
