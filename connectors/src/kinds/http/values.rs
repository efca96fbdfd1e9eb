//! Values in and out of an API: an identity placed into a path segment (encoded so it cannot
//! leave it), `{field}` templates filled from a record, JSON read as the declared field types.

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde_json::Value as Json;

use crate::identity::IdentityValue;
use crate::value::{FieldType, Record, Value};

/// What a value placed into one path segment is encoded as (RFC 3986 §2.3, §3.3): everything but
/// the unreserved characters `A-Z a-z 0-9 - . _ ~`. A `/`, `?`, `#` or `%` in a value is encoded,
/// so a value can never leave its segment; `-` and `.` stay as they are, since APIs that route
/// on the raw path do not decode them.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` encoded for one path segment.
pub(super) fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

/// Whether a path holds a segment URL normalisation would remove or climb out of (`.`, `..`,
/// also percent-encoded): a value like that would send the request to another resource.
pub(super) fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '?', '#']).any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

/// `url` with query parameter `name` set to `value` (replacing an earlier value).
pub(super) fn with_param(url: &Url, name: Option<&str>, value: &str) -> Url {
    let Some(name) = name else { return url.clone() };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    next
}

pub(super) fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `{value}` replaced in every string of a JSON body.
pub(super) fn substitute(body: &Json, value: &str) -> Json {
    match body {
        Json::String(s) => Json::String(s.replace("{value}", value)),
        Json::Array(items) => Json::Array(items.iter().map(|v| substitute(v, value)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `template` with every `{field}` replaced by the record's value (percent-encoded in paths).
pub(super) fn fill(template: &str, names: &[&str], record: &Record, encode: bool) -> String {
    let mut out = template.to_owned();
    for (name, value) in names.iter().zip(record) {
        let placeholder = format!("{{{name}}}");
        if out.contains(&placeholder) {
            let text = value
                .as_identity_text()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let text = if encode { encode_segment(&text) } else { text };
            out = out.replace(&placeholder, &text);
        }
    }
    out
}

/// A JSON body with every `{field}` placeholder filled from the record.
pub(super) fn fill_json(body: &Json, names: &[&str], record: &Record) -> Json {
    match body {
        Json::String(s) => Json::String(fill(s, names, record, false)),
        Json::Array(items) => Json::Array(items.iter().map(|v| fill_json(v, names, record)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, names, record)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A JSON value read as the declared type; `None` when it cannot be.
pub(super) fn convert(raw: &Json, field_type: FieldType) -> Option<Value> {
    if raw.is_null() {
        return Some(Value::Null);
    }
    Some(match field_type {
        FieldType::String | FieldType::Uuid | FieldType::Date | FieldType::Decimal => match raw {
            Json::String(s) => Value::String(s.clone()),
            Json::Number(n) => Value::String(n.to_string()),
            Json::Bool(b) => Value::String(b.to_string()),
            _ => return None,
        },
        FieldType::Int | FieldType::Bigint => match raw {
            Json::Number(n) => Value::Int(n.as_i64()?),
            Json::String(s) => Value::Int(s.trim().parse().ok()?),
            _ => return None,
        },
        FieldType::Float => Value::Float(match raw {
            Json::Number(n) => n.as_f64()?,
            Json::String(s) => s.trim().parse().ok()?,
            _ => return None,
        }),
        FieldType::Bool => match raw {
            Json::Bool(b) => Value::Bool(*b),
            _ => return None,
        },
        FieldType::Timestamp => match raw {
            Json::String(s) => Value::String(
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    .unwrap_or_else(|_| s.clone()),
            ),
            // Seconds (or milliseconds) since the epoch, as analytics APIs send them.
            Json::Number(n) => {
                let n = n.as_i64()?;
                let seconds = if n > 100_000_000_000 { n / 1000 } else { n };
                Value::String(
                    DateTime::from_timestamp(seconds, 0)?.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                )
            }
            _ => return None,
        },
        FieldType::Json => Value::Json(raw.clone()),
    })
}


/// The values of a request for many values, as its templates place them: `{values}` joined by
/// commas, `{values:json}` as a JSON array (numbers when the lookup field is an integer).
pub(super) struct ValueList {
    joined: String,
    /// Each value encoded for a path segment, joined by commas.
    joined_in_path: String,
    array: Json,
}

impl ValueList {
    pub(super) fn new(values: &[&IdentityValue], lookup_type: FieldType) -> Self {
        let texts: Vec<&str> = values.iter().map(|v| v.expose()).collect();
        let array = Json::Array(
            texts
                .iter()
                .map(|text| match lookup_type {
                    FieldType::Int | FieldType::Bigint => text
                        .parse::<i64>()
                        .map_or_else(|_| Json::String((*text).to_owned()), Json::from),
                    _ => Json::String((*text).to_owned()),
                })
                .collect(),
        );
        Self {
            joined: texts.join(","),
            joined_in_path: texts.iter().map(|t| encode_segment(t)).collect::<Vec<_>>().join(","),
            array,
        }
    }

    /// `template` with the values placed (each encoded for a path segment when `in_path`).
    pub(super) fn fill(&self, template: &str, in_path: bool) -> String {
        let json = self.array.to_string();
        if in_path {
            template
                .replace("{values:json}", &encode_segment(&json))
                .replace("{values}", &self.joined_in_path)
        } else {
            template.replace("{values:json}", &json).replace("{values}", &self.joined)
        }
    }

    /// A JSON body with the values placed: a string that is exactly `"{values}"` or
    /// `"{values:json}"` becomes the array itself.
    pub(super) fn fill_json(&self, body: &Json) -> Json {
        match body {
            Json::String(s) if s == "{values}" || s == "{values:json}" => self.array.clone(),
            Json::String(s) => Json::String(self.fill(s, false)),
            Json::Array(items) => Json::Array(items.iter().map(|v| self.fill_json(v)).collect()),
            Json::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), self.fill_json(v))).collect()),
            other => other.clone(),
        }
    }
}
