//! Identity kinds (email, user_id, …), identity values and their normalisation.
//!
//! An [`IdentityValue`] is parsed once at the edge — normalised, checked against its kind's format,
//! refused when empty, a wildcard or oversized — and can no longer be invalid. It never prints in
//! full: `Debug` and `Display` show a keyed fingerprint, so a value that slips into a log line,
//! span or error message is not the person's data.

use crate::codes::ErrorCode;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Index of an identity kind in the gateway's [`IdentityKinds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKindId(pub u16);

impl IdentityKindId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A normalisation step applied to every value of a kind, in the declared order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normaliser {
    /// Remove leading and trailing white space.
    Trim,
    /// Lower-case (Unicode-aware).
    Lowercase,
    /// Upper-case (Unicode-aware).
    Uppercase,
    /// Remove every white-space character, also inside the value.
    RemoveWhitespace,
    /// Keep only ASCII digits and a leading `+` (phone numbers).
    DigitsOnly,
}

impl Normaliser {
    fn apply(self, value: String) -> String {
        match self {
            Normaliser::Trim => {
                let trimmed = value.trim();
                if trimmed.len() == value.len() {
                    value
                } else {
                    trimmed.to_owned()
                }
            }
            Normaliser::Lowercase => value.to_lowercase(),
            Normaliser::Uppercase => value.to_uppercase(),
            Normaliser::RemoveWhitespace => value.chars().filter(|c| !c.is_whitespace()).collect(),
            Normaliser::DigitsOnly => {
                let plus = value.trim_start().starts_with('+');
                let digits = value.chars().filter(char::is_ascii_digit);
                if plus {
                    std::iter::once('+').chain(digits).collect()
                } else {
                    digits.collect()
                }
            }
        }
    }
}

/// The shape a kind's values must have after normalisation.
#[derive(Debug, Clone)]
pub enum ValueFormat {
    /// Any non-empty text.
    Text,
    /// `local@domain`, no white space.
    Email,
    /// An optionally signed decimal integer that fits in 64 bits.
    Integer,
    /// A UUID in its hyphenated form.
    Uuid,
    /// A declared regular expression, anchored at both ends.
    Pattern(regex::Regex),
}

impl ValueFormat {
    fn accepts(&self, value: &str) -> bool {
        match self {
            ValueFormat::Text => true,
            ValueFormat::Email => is_plausible_email(value),
            ValueFormat::Integer => value.parse::<i64>().is_ok(),
            ValueFormat::Uuid => uuid::Uuid::parse_str(value).is_ok(),
            ValueFormat::Pattern(re) => re.is_match(value),
        }
    }

    /// The one spelling of a value that passed [`ValueFormat::accepts`]: integers without sign or
    /// leading zeros (`+01006` is `1006`), UUIDs lower-case and hyphenated. Other formats are
    /// kept as normalised.
    fn canonical(&self, value: String) -> String {
        match self {
            ValueFormat::Integer => value.parse::<i64>().map_or(value, |n| n.to_string()),
            ValueFormat::Uuid => uuid::Uuid::parse_str(&value).map_or(value, |u| u.hyphenated().to_string()),
            ValueFormat::Text | ValueFormat::Email | ValueFormat::Pattern(_) => value,
        }
    }

    fn describe(&self) -> String {
        match self {
            ValueFormat::Text => "text".into(),
            ValueFormat::Email => "an email address (local@domain)".into(),
            ValueFormat::Integer => "a whole number".into(),
            ValueFormat::Uuid => "a UUID".into(),
            ValueFormat::Pattern(re) => format!("text matching `{}`", re.as_str()),
        }
    }
}

fn is_plausible_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.len() >= 3
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// One declared identity kind: how its values are named, normalised and checked.
#[derive(Debug, Clone)]
pub struct IdentityKindSpec {
    /// The name used in declarations (`email`, `user_id`).
    pub name: String,
    /// The GraphQL enum value (`EMAIL`, `USER_ID`).
    pub graphql_name: String,
    pub description: Option<String>,
    pub normalisers: Vec<Normaliser>,
    pub format: ValueFormat,
    /// Longest accepted value, in bytes, after normalisation.
    pub max_length: usize,
    /// Whether callers may start a lookup from this kind (some kinds are only ever derived).
    pub accepted_as_input: bool,
    /// The data category of its values: a caller sees a found identity only when its role
    /// grants this category (and the store that yielded it serves the request's purpose).
    pub category: crate::category::DataCategory,
}

impl IdentityKindSpec {
    /// The category a kind falls in when its declaration names none: `user.contact.email` for
    /// emails, `user.unique_id` for everything else.
    pub fn default_category(format: &ValueFormat) -> crate::category::DataCategory {
        let key = match format {
            ValueFormat::Email => "user.contact.email",
            _ => "user.unique_id",
        };
        crate::category::DataCategory::parse(key).unwrap_or_else(|_| unreachable!("a taxonomy key"))
    }
}

/// Why an identity value was refused. Never carries the value itself.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("unknown identity kind `{0}`")]
    UnknownKind(String),
    #[error("identity kind `{0}` cannot be used to start a lookup")]
    NotAnInputKind(String),
    #[error("{kind} value is empty")]
    Empty { kind: String },
    #[error("{kind} value is a wildcard; identities must name one person exactly")]
    Wildcard { kind: String },
    #[error("{kind} value is {len} bytes long; the limit is {max}")]
    TooLong { kind: String, len: usize, max: usize },
    #[error("{kind} value contains control characters")]
    ControlCharacters { kind: String },
    #[error("{kind} value is not {expected}")]
    InvalidFormat { kind: String, expected: String },
}

impl IdentityError {
    /// A stable machine-readable code for API error extensions.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::UnknownKind(_) => ErrorCode::UnknownIdentityKind.as_str(),
            IdentityError::NotAnInputKind(_) => ErrorCode::IdentityKindNotAccepted.as_str(),
            IdentityError::Empty { .. } => ErrorCode::IdentityEmpty.as_str(),
            IdentityError::Wildcard { .. } => ErrorCode::IdentityWildcard.as_str(),
            IdentityError::TooLong { .. } => ErrorCode::IdentityTooLong.as_str(),
            IdentityError::ControlCharacters { .. } => ErrorCode::IdentityInvalid.as_str(),
            IdentityError::InvalidFormat { .. } => ErrorCode::IdentityInvalid.as_str(),
        }
    }
}

impl IdentityKindSpec {
    /// Normalises and validates a raw value of this kind.
    pub fn parse(&self, raw: &str) -> Result<IdentityValue, IdentityError> {
        let kind = || self.name.clone();
        // Refuse before any work on absurd input, with room for normalisers that shrink the value.
        if raw.len() > self.max_length.saturating_mul(4).max(1024) {
            return Err(IdentityError::TooLong {
                kind: kind(),
                len: raw.len(),
                max: self.max_length,
            });
        }
        let mut value = raw.to_owned();
        for normaliser in &self.normalisers {
            value = normaliser.apply(value);
        }
        if value.trim().is_empty() {
            return Err(IdentityError::Empty { kind: kind() });
        }
        if value
            .chars()
            .all(|c| matches!(c, '%' | '*' | '_' | '?' | '.' | ' '))
        {
            return Err(IdentityError::Wildcard { kind: kind() });
        }
        if value.len() > self.max_length {
            return Err(IdentityError::TooLong {
                kind: kind(),
                len: value.len(),
                max: self.max_length,
            });
        }
        if value.chars().any(char::is_control) {
            return Err(IdentityError::ControlCharacters { kind: kind() });
        }
        if !self.format.accepts(&value) {
            return Err(IdentityError::InvalidFormat {
                kind: kind(),
                expected: self.format.describe(),
            });
        }
        Ok(IdentityValue(Arc::from(self.format.canonical(value))))
    }

    /// Normalises a value read back from a store, for matching it against looked-up values.
    /// Returns `None` for values that could never have been looked up (empty, malformed).
    pub fn normalise_stored(&self, raw: &str) -> Option<IdentityValue> {
        let mut value = raw.to_owned();
        for normaliser in &self.normalisers {
            value = normaliser.apply(value);
        }
        if self.format.accepts(&value) {
            value = self.format.canonical(value);
        }
        (!value.is_empty()).then(|| IdentityValue(Arc::from(value)))
    }
}

/// All identity kinds the gateway knows, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct IdentityKinds {
    kinds: Vec<IdentityKindSpec>,
    by_name: HashMap<String, IdentityKindId>,
}

impl IdentityKinds {
    /// Adds a kind; returns `None` when the name is already taken or there are too many kinds.
    pub fn push(&mut self, spec: IdentityKindSpec) -> Option<IdentityKindId> {
        if self.by_name.contains_key(&spec.name) {
            return None;
        }
        let id = IdentityKindId(u16::try_from(self.kinds.len()).ok()?);
        self.by_name.insert(spec.name.clone(), id);
        self.kinds.push(spec);
        Some(id)
    }

    pub fn get(&self, id: IdentityKindId) -> &IdentityKindSpec {
        &self.kinds[id.index()]
    }

    pub fn by_name(&self, name: &str) -> Option<IdentityKindId> {
        self.by_name.get(name).copied()
    }

    /// Looks a kind up by its GraphQL enum name (`USER_ID`).
    pub fn by_graphql_name(&self, name: &str) -> Option<IdentityKindId> {
        self.iter()
            .find(|(_, spec)| spec.graphql_name == name)
            .map(|(id, _)| id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (IdentityKindId, &IdentityKindSpec)> {
        self.kinds
            .iter()
            .enumerate()
            .map(|(i, spec)| (IdentityKindId(i as u16), spec))
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Parses a caller-supplied identity: the kind must exist and accept input.
    pub fn parse_input(&self, kind: IdentityKindId, raw: &str) -> Result<Identity, IdentityError> {
        let spec = self
            .kinds
            .get(kind.index())
            .ok_or_else(|| IdentityError::UnknownKind(format!("#{}", kind.0)))?;
        if !spec.accepted_as_input {
            return Err(IdentityError::NotAnInputKind(spec.name.clone()));
        }
        Ok(Identity {
            kind,
            value: spec.parse(raw)?,
        })
    }
}

/// A normalised identity value. Prints as a fingerprint, never in full.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityValue(Arc<str>);

impl IdentityValue {
    /// The value itself, for binding into a store query or returning to an authorised caller.
    /// Never format it into logs or errors: use `Display`, which fingerprints.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short keyed hash of the value, stable within one gateway process (or across processes
    /// sharing `SUBJECT_GATEWAY_FINGERPRINT_KEY`), safe for logs and traces.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }
}

impl fmt::Debug for IdentityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityValue(#{})", self.fingerprint())
    }
}

impl fmt::Display for IdentityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.fingerprint())
    }
}

/// A typed identity: a kind and a normalised value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub kind: IdentityKindId,
    pub value: IdentityValue,
}

/// Keyed SHA-256 of `bytes`, 16 hex characters. The key comes from
/// `SUBJECT_GATEWAY_FINGERPRINT_KEY` when set (so that fingerprints correlate across replicas),
/// else from a random per-process key (so that fingerprints cannot be reversed by a dictionary).
pub fn fingerprint(bytes: &[u8]) -> String {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    let key = KEY.get_or_init(|| match std::env::var("SUBJECT_GATEWAY_FINGERPRINT_KEY") {
        Ok(key) if !key.is_empty() => key.into_bytes(),
        _ => rand::random::<[u8; 32]>().to_vec(),
    });
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot be reached.
        unreachable!("HMAC-SHA256 accepts any key length")
    });
    mac.update(bytes);
    let digest = mac.finalize().into_bytes();
    hex::encode(&digest[..8])
}

impl IdentityValue {
    /// A value made up by `check` to probe a store with (one no record holds); never an
    /// identity anybody gave.
    pub fn probe(text: &str) -> Option<Self> {
        (!text.is_empty()).then(|| IdentityValue(Arc::from(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> IdentityKindSpec {
        IdentityKindSpec {
            name: "email".into(),
            graphql_name: "EMAIL".into(),
            description: None,
            normalisers: vec![Normaliser::Trim, Normaliser::Lowercase],
            format: ValueFormat::Email,
            max_length: 254,
            accepted_as_input: true,
            category: IdentityKindSpec::default_category(&ValueFormat::Email),
        }
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        let value = email().parse("  Alice.Smith@Example.COM \n").unwrap();
        assert_eq!(value.expose(), "alice.smith@example.com");
    }

    #[test]
    fn hostile_values_are_refused_without_echoing_them() {
        let spec = email();
        for raw in ["", "   ", "%", "*", "_%_", "' OR 1=1 --", "a\u{0}b@example.com"] {
            let err = spec.parse(raw).unwrap_err().to_string();
            if !raw.trim().is_empty() {
                assert!(!err.contains(raw.trim()), "error `{err}` echoes its input");
            }
        }
        let long = format!("{}@example.com", "a".repeat(10_000));
        assert!(matches!(spec.parse(&long), Err(IdentityError::TooLong { .. })));
    }

    #[test]
    fn display_never_shows_the_value() {
        let value = email().parse("secret.person@example.com").unwrap();
        assert!(!format!("{value} {value:?}").contains("secret"));
        assert_eq!(value.fingerprint(), value.clone().fingerprint());
    }

    fn kind(format: ValueFormat) -> IdentityKindSpec {
        IdentityKindSpec {
            name: "id".into(),
            graphql_name: "ID".into(),
            description: None,
            normalisers: vec![Normaliser::Trim],
            category: IdentityKindSpec::default_category(&format),
            format,
            max_length: 64,
            accepted_as_input: true,
        }
    }

    #[test]
    fn integers_have_one_spelling() {
        let spec = kind(ValueFormat::Integer);
        for raw in ["1006", "01006", "+1006", " 0001006 ", "+0001006"] {
            assert_eq!(spec.parse(raw).unwrap().expose(), "1006", "{raw}");
        }
        assert_eq!(spec.parse("-042").unwrap().expose(), "-42");
        assert_eq!(spec.parse("-0").unwrap().expose(), "0");
        for raw in ["1e3", "10.0", "0x10", "9223372036854775808", "1 006", "++1"] {
            assert!(
                matches!(spec.parse(raw), Err(IdentityError::InvalidFormat { .. })),
                "{raw} accepted"
            );
        }
        assert_eq!(spec.normalise_stored("007").unwrap().expose(), "7");
    }

    #[test]
    fn uuids_have_one_spelling() {
        let spec = kind(ValueFormat::Uuid);
        for raw in [
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ] {
            assert_eq!(
                spec.parse(raw).unwrap().expose(),
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "{raw}"
            );
        }
        assert!(spec.parse("6f9619ff-8b86-d011-b42d").is_err());
    }

    #[test]
    fn unicode_and_digits_only() {
        let value = email().parse("Zoë@Exämple.org").unwrap();
        assert_eq!(value.expose(), "zoë@exämple.org");
        assert_eq!(
            Normaliser::DigitsOnly.apply("+44 (20) 7946-0958".into()),
            "+442079460958"
        );
    }
}
