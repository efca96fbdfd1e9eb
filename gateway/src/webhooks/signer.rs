//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-signature` is
//! `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the
//! endpoint's secret, given as `whsec_` and the key in base64.
//!
//! Written with `hmac` + `sha2` (already in the tree) and `base64` rather than the
//! `standardwebhooks` crate: signing is these few lines, and that crate would bring a second
//! base64, `hmac-sha256` and `time` for them. The tests verify every delivery with the
//! `standardwebhooks` crate itself, so the signer is checked by the spec's own implementation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The prefix the spec gives secrets.
const PREFIX: &str = "whsec_";

/// An endpoint's signing key. Never printed.
#[derive(Clone)]
pub struct SigningKey(SecretSlice<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// Why a secret is not a Standard Webhooks secret. Never quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("is not base64 (write `whsec_` and the key in base64)")]
    NotBase64,
    #[error("decodes to {0} bytes; the spec asks for 24 to 64")]
    Length(usize),
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the spec's libraries).
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        let encoded = secret.strip_prefix(PREFIX).unwrap_or(secret);
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(SecretSlice::from(key)))
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's reference vector (the `standardwebhooks` crate's `test_sign`).
    #[test]
    fn signs_the_reference_vector() {
        let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            key.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn refuses_secrets_that_are_not_keys() {
        assert_eq!(
            SigningKey::parse("whsec_not base64!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::Length(5)
        );
        assert!(SigningKey::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
        assert_eq!(
            format!(
                "{:?}",
                SigningKey::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()
            ),
            "SigningKey(…)"
        );
    }
}
