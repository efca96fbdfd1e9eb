//! Field types as declared, and the values records carry.

use serde::Deserialize;

/// The declared type of a field. It decides how a store's value is decoded, how an identity value
/// is bound when the field is looked up, and the field's GraphQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text (`text`, `varchar`, `char`).
    String,
    /// A 32-bit integer (GraphQL `Int`).
    Int,
    /// A 64-bit integer (GraphQL `Long`, serialised as a JSON number).
    Bigint,
    /// A double-precision float.
    Float,
    /// An exact decimal (`numeric`), served as a string so no precision is lost.
    Decimal,
    Bool,
    /// A point in time, served as an RFC 3339 string in UTC.
    Timestamp,
    /// A calendar date, served as `YYYY-MM-DD`.
    Date,
    /// A UUID, served as its hyphenated string.
    Uuid,
    /// A JSON document, served as the `JSON` scalar.
    Json,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bigint => "bigint",
            FieldType::Float => "float",
            FieldType::Decimal => "decimal",
            FieldType::Bool => "bool",
            FieldType::Timestamp => "timestamp",
            FieldType::Date => "date",
            FieldType::Uuid => "uuid",
            FieldType::Json => "json",
        }
    }

    /// Whether values of an identity kind can be looked up in a field of this type.
    pub fn can_hold_identities(self) -> bool {
        matches!(
            self,
            FieldType::String | FieldType::Int | FieldType::Bigint | FieldType::Uuid
        )
    }
}

/// One field value of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Json(serde_json::Value),
}

impl Value {
    /// The value as text, for reading identities out of records.
    pub fn as_identity_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
            Value::Int(i) => Some(std::borrow::Cow::Owned(i.to_string())),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One record of an entity: values in the order of the entity's declared fields.
pub type Record = Vec<Value>;
