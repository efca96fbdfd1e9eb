//! Masking for erasure: what a masked field becomes (null, a fixed redaction, or a keyed
//! HMAC-SHA256 pseudonym), computed the same way for every store kind.
//!
//! A pseudonym is `pseu_` and 32 hex digits of HMAC-SHA256(key, value): the same value always
//! gives the same pseudonym under one key (retained records stay linkable to each other, e.g. the
//! invoices of one customer), and nobody without the key can tell whose it was. Masking is
//! idempotent: a value that is already a pseudonym, already null or already the redaction is left
//! alone, so a repeated erasure changes nothing.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use crate::value::Value;

/// What erasure does to one field (declared per field, validated against the field's type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErasure {
    /// Leave the value as it is.
    Keep,
    /// Set to NULL.
    Null,
    /// Replace with a fixed redaction value of the field's type.
    Redact(String),
    /// Replace with a keyed HMAC-SHA256 pseudonym (key from the environment).
    Pseudonymize,
}

/// What every pseudonym starts with.
pub const PSEUDONYM_PREFIX: &str = "pseu_";
const PSEUDONYM_HEX_DIGITS: usize = 32;
/// How many characters a pseudonym has (`pseu_` and 32 hex digits).
pub const PSEUDONYM_LEN: usize = PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX_DIGITS;
/// The redaction written when a field declares `erasure = "redact"` without its own text.
pub const DEFAULT_REDACTION: &str = "[erased]";

/// Keyed pseudonyms; the key comes from the environment (`SUBJECT_GATEWAY_PSEUDONYM_KEY`).
pub struct Pseudonymizer {
    key: SecretSlice<u8>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(..)")
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: SecretSlice::from(key.to_vec()),
        }
    }

    /// The pseudonym of `value`.
    pub fn pseudonym(&self, value: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(value.as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("{PSEUDONYM_PREFIX}{}", &digest[..PSEUDONYM_HEX_DIGITS])
    }

    /// Whether `value` is already a pseudonym.
    pub fn is_pseudonym(value: &str) -> bool {
        value.len() == PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX_DIGITS
            && value.starts_with(PSEUDONYM_PREFIX)
            && value[PSEUDONYM_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// The value a field should hold after masking, or `None` when it already does.
    pub fn masked(&self, erasure: &FieldErasure, current: &Value) -> Option<Value> {
        match erasure {
            FieldErasure::Keep => None,
            FieldErasure::Null => (!current.is_null()).then_some(Value::Null),
            FieldErasure::Redact(text) => match current {
                Value::String(s) if s == text => None,
                Value::Null => None,
                _ => Some(Value::String(text.clone())),
            },
            FieldErasure::Pseudonymize => match current {
                Value::Null => None,
                Value::String(s) if Self::is_pseudonym(s) => None,
                other => {
                    let text = match other {
                        Value::String(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Json(j) => j.to_string(),
                        Value::Null => return None,
                    };
                    Some(Value::String(self.pseudonym(&text)))
                }
            },
        }
    }

    /// Whether `value` is in the state masking leaves it in.
    pub fn is_masked(erasure: &FieldErasure, value: &Value) -> bool {
        match erasure {
            FieldErasure::Keep => true,
            FieldErasure::Null => value.is_null(),
            FieldErasure::Redact(text) => value.is_null() || matches!(value, Value::String(s) if s == text),
            FieldErasure::Pseudonymize => {
                value.is_null() || matches!(value, Value::String(s) if Self::is_pseudonym(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_recognised() {
        let a = Pseudonymizer::new(b"key one");
        let b = Pseudonymizer::new(b"key two");
        let p = a.pseudonym("ada@example.com");
        assert_eq!(p, a.pseudonym("ada@example.com"));
        assert_ne!(p, b.pseudonym("ada@example.com"));
        assert_ne!(p, a.pseudonym("bob@example.com"));
        assert!(Pseudonymizer::is_pseudonym(&p));
        assert!(!p.contains("ada"));
        assert!(!Pseudonymizer::is_pseudonym("pseu_not-hex"));
    }

    #[test]
    fn masking_twice_changes_nothing_the_second_time() {
        let p = Pseudonymizer::new(b"k");
        let name = Value::String("Ada Lovelace".into());
        for erasure in [
            FieldErasure::Null,
            FieldErasure::Redact(DEFAULT_REDACTION.into()),
            FieldErasure::Pseudonymize,
        ] {
            let once = p.masked(&erasure, &name).unwrap_or(Value::Null);
            assert!(Pseudonymizer::is_masked(&erasure, &once));
            assert_eq!(p.masked(&erasure, &once), None, "{erasure:?}");
        }
    }
}
