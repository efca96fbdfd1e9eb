//! Authentication: every request to `/graphql` carries `Authorization: Bearer <credential>` —
//! an API key (`sgk_…`, checked against the state database) or an OIDC JWT (checked against a
//! JWKS from a file or URL, cached, re-read when a token names a key it does not hold) — and
//! `X-Purpose: <data use>`. The result is a `Caller` (principal, role, purpose) for the schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subject_connectors::codes::ErrorCode;

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use subject_connectors::identity::fingerprint;
use subject_connectors::purpose::DataUse;
use subject_schema::access::{Caller, Role};
use tokio::sync::RwLock;

use crate::keys::{self, KeyStore};

/// How often the active API keys are re-read (a revoked key stops working within this).
const KEY_REFRESH: Duration = Duration::from_secs(5);

/// `[auth.oidc]`: bearer JWTs from an identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// `https://…/jwks.json` or `file:///…/jwks.json` (or a plain path).
    pub jwks: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The claim naming the caller's roles (a string or a list); the first declared role wins.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The least time, in seconds, between two key-set re-reads that tokens with unknown key ids
    /// trigger (rotation is picked up this fast; default 30).
    #[serde(default = "default_refresh")]
    pub min_refresh_seconds: u64,
    /// `[auth.oidc.console]`: the console's sign-in with the provider (authorization code + PKCE,
    /// a public client). Unset: the console offers API keys only.
    pub console: Option<ConsoleOidc>,
}

/// The console as a public OIDC client. The provider's endpoints are given (discovery is not
/// implemented); the token endpoint must answer the browser (CORS), as providers do for
/// single-page apps. The token it returns must pass the checks above (`jwks`, `issuer`,
/// `audience`, `roles_claim`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidc {
    /// The client id registered at the provider for the console (redirect URI:
    /// `https://GATEWAY/console/`).
    pub client_id: String,
    /// The provider's `authorization_endpoint` (`https://…/authorize`).
    pub authorization_endpoint: String,
    /// The provider's `token_endpoint` (`https://…/token`); the console's CSP lets the page
    /// connect to its origin.
    pub token_endpoint: String,
    /// Scopes asked for (default `openid`).
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_scope() -> String {
    "openid".into()
}

impl ConsoleOidc {
    /// `scheme://host[:port]` of the token endpoint, for the CSP's `connect-src`; an error for a
    /// URL that is not http(s).
    pub fn token_origin(&self) -> Result<String, String> {
        origin(&self.token_endpoint)
    }

    /// Both endpoints are http(s) URLs.
    pub fn validate(&self) -> Result<(), String> {
        origin(&self.authorization_endpoint)?;
        origin(&self.token_endpoint)?;
        if self.client_id.trim().is_empty() {
            return Err("`client_id` is empty".into());
        }
        Ok(())
    }
}

fn origin(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    Ok(parsed.origin().ascii_serialization())
}

fn default_refresh() -> u64 {
    30
}

fn default_roles_claim() -> String {
    "roles".into()
}

/// Why a request was not let in. Messages never repeat the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer <API key or token>`")]
    Missing,
    #[error("the API key is not valid (unknown, revoked or mistyped)")]
    BadKey,
    #[error("the token is not valid: {0}")]
    BadToken(String),
    #[error("the credential's role `{0}` is not declared")]
    UnknownRole(String),
    #[error("missing purpose: send `X-Purpose: <data use>` (essential, analytics, …)")]
    MissingPurpose,
    #[error(transparent)]
    BadPurpose(#[from] subject_connectors::purpose::DataUseError),
    #[error("role `{role}` may not state the purpose `{purpose}`")]
    PurposeNotAllowed { role: String, purpose: String },
}

impl AuthError {
    /// 401 for credentials, 400 for a malformed purpose, 403 for a purpose the role may not state.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AuthError::MissingPurpose | AuthError::BadPurpose(_) => StatusCode::BAD_REQUEST,
            AuthError::PurposeNotAllowed { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => ErrorCode::Unauthenticated.as_str(),
            AuthError::BadKey | AuthError::BadToken(_) | AuthError::UnknownRole(_) => {
                ErrorCode::InvalidCredentials.as_str()
            }
            AuthError::MissingPurpose | AuthError::BadPurpose(_) => ErrorCode::InvalidPurpose.as_str(),
            AuthError::PurposeNotAllowed { .. } => ErrorCode::PurposeForbidden.as_str(),
        }
    }
}

/// The JWKS, cached.
struct Jwks {
    settings: OidcSettings,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

impl Jwks {
    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let source = self.settings.jwks.as_str();
        let text = if source.starts_with("https://") || source.starts_with("http://") {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|_| AuthError::BadToken("the key set could not be fetched".into()))?
                .get(source)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|_| AuthError::BadToken("the key set could not be fetched".into()))?
                .text()
                .await
                .map_err(|_| AuthError::BadToken("the key set could not be fetched".into()))?
        } else {
            let path = source.strip_prefix("file://").unwrap_or(source);
            tokio::fs::read_to_string(path)
                .await
                .map_err(|_| AuthError::BadToken("the key set could not be read".into()))?
        };
        serde_json::from_str(&text).map_err(|_| AuthError::BadToken("the key set is not a JWKS".into()))
    }

    /// The decoding key for `kid`, re-reading the set (at most every `min_refresh_seconds`) when
    /// it is unknown.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => set.keys.first().cloned(),
        };
        {
            let cached = self.keys.read().await;
            if let Some(jwk) = find(&cached.0) {
                return DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::BadToken("unusable key".into()));
            }
            let min_refresh = Duration::from_secs(self.settings.min_refresh_seconds);
            if cached.1.is_some_and(|at| at.elapsed() < min_refresh) {
                return Err(AuthError::BadToken("unknown key id".into()));
            }
        }
        let fresh = self.fetch().await?;
        let jwk = find(&fresh);
        *self.keys.write().await = (fresh, Some(Instant::now()));
        let jwk = jwk.ok_or_else(|| AuthError::BadToken("unknown key id".into()))?;
        DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::BadToken("unusable key".into()))
    }
}

/// Checks credentials and purposes against the declared roles.
pub struct Authenticator {
    roles: HashMap<String, Arc<Role>>,
    keys: KeyStore,
    /// The active keys and when they were read.
    active: RwLock<(keys::ActiveKeys, Instant)>,
    /// Held while the active keys are re-read: concurrent requests wait for one re-read.
    reloading: tokio::sync::Mutex<()>,
    /// Lookups of key ids not among the active keys, in flight or recent (a second), by id:
    /// many requests with the same unknown key cost one query.
    misses: std::sync::Mutex<HashMap<String, (Instant, Arc<KeyLookup>)>>,
    jwks: Option<Jwks>,
}

/// One lookup of a key id in the state database: its digest and role, when active.
type KeyLookup = tokio::sync::OnceCell<Option<(String, String)>>;

/// How long the lookup of an unknown key id is reused.
const MISS_REUSE: Duration = Duration::from_secs(1);
/// Unknown key ids remembered before the old ones are forgotten.
const MISSES_KEPT: usize = 4096;
/// Leeway for `exp` and `nbf` of OIDC tokens (clock skew), in seconds.
const TOKEN_LEEWAY_SECS: u64 = 30;

impl Authenticator {
    pub async fn new(
        roles: HashMap<String, Arc<Role>>,
        keys: KeyStore,
        oidc: Option<OidcSettings>,
    ) -> Result<Self, keys::KeyError> {
        let active = keys.active().await?;
        Ok(Self {
            roles,
            keys,
            active: RwLock::new((active, Instant::now())),
            reloading: tokio::sync::Mutex::new(()),
            misses: std::sync::Mutex::new(HashMap::new()),
            jwks: oidc.map(|settings| Jwks {
                settings,
                keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
            }),
        })
    }

    /// The principal and role behind a request's credentials (no purpose needed: `/metrics`).
    pub async fn identify(&self, headers: &HeaderMap) -> Result<(String, Arc<Role>), AuthError> {
        let credential = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::Missing)?;
        let (principal, role_name) = if credential.starts_with("sgk_") {
            let (id, role) = self.check_key(credential).await?;
            (format!("key:{id}"), role)
        } else {
            let (principal, role, _) = self.check_token(credential).await?;
            (principal, role)
        };
        let role = self
            .roles
            .get(&role_name)
            .cloned()
            .ok_or(AuthError::UnknownRole(role_name))?;
        Ok((principal, role))
    }

    /// The caller of a request, from its headers: credentials and the stated purpose.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let (principal, role) = self.identify(headers).await?;
        let purpose = headers
            .get("x-purpose")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::MissingPurpose)?;
        let purpose = DataUse::parse(purpose)?;
        if !role.may_state(&purpose) {
            return Err(AuthError::PurposeNotAllowed {
                role: role.name.clone(),
                purpose: purpose.to_string(),
            });
        }
        Ok(Caller {
            principal,
            role,
            purpose,
        })
    }

    async fn check_key(&self, key: &str) -> Result<(String, String), AuthError> {
        let id = keys::key_id(key).ok_or(AuthError::BadKey)?;
        let (found, age) = {
            let active = self.active.read().await;
            (keys::verify(key, &active.0), active.1.elapsed())
        };
        // Keys read recently answer at once; an older read is refreshed first (revocations take
        // effect within KEY_REFRESH), one re-read for all the requests waiting on it.
        if age >= KEY_REFRESH {
            self.refresh_stale().await;
        } else if let Some(found) = found {
            return Ok(found);
        }
        if let Some(found) = keys::verify(key, &self.active.read().await.0) {
            return Ok(found);
        }
        // Not among the active keys read: perhaps created since. Look that one id up (once for
        // every request naming it within MISS_REUSE).
        let stored = self.lookup_once(id).await;
        let Some((digest, role)) = stored else {
            return Err(AuthError::BadKey);
        };
        let mut single = keys::ActiveKeys::new();
        single.insert(id.to_owned(), (digest.clone(), role.clone()));
        let found = keys::verify(key, &single).ok_or(AuthError::BadKey)?;
        self.active.write().await.0.insert(id.to_owned(), (digest, role));
        Ok(found)
    }

    /// Re-reads the active keys unless another request did while this one waited.
    async fn refresh_stale(&self) {
        let _one = self.reloading.lock().await;
        if self.active.read().await.1.elapsed() < KEY_REFRESH {
            return;
        }
        metrics::counter!("subject_gateway_api_key_reloads_total").increment(1);
        if let Err(error) = self.reload_keys().await {
            tracing::warn!(error = %error, "could not re-read the API keys; using the last ones read");
        }
    }

    /// The stored digest and role of the active key `id`, read once per MISS_REUSE.
    async fn lookup_once(&self, id: &str) -> Option<(String, String)> {
        let cell = {
            let mut misses = self
                .misses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if misses.len() >= MISSES_KEPT {
                misses.retain(|_, (at, _)| at.elapsed() < MISS_REUSE);
            }
            match misses.get(id) {
                Some((at, cell)) if at.elapsed() < MISS_REUSE => cell.clone(),
                _ => {
                    let cell = Arc::new(tokio::sync::OnceCell::new());
                    misses.insert(id.to_owned(), (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| async {
            metrics::counter!("subject_gateway_api_key_lookups_total").increment(1);
            match self.keys.lookup(id).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(error = %error, "could not look an API key up");
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// Whether the credentials in `headers` are still good now: an API key is looked up afresh
    /// (not from the cache), a token is checked again (expiry). For long-lived connections.
    pub async fn still_valid(&self, headers: &HeaderMap) -> bool {
        let credential = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        if credential.starts_with("sgk_") {
            let Some(id) = keys::key_id(credential) else {
                return false;
            };
            match self.keys.lookup(id).await {
                Ok(Some((digest, role))) => {
                    let mut single = keys::ActiveKeys::new();
                    single.insert(id.to_owned(), (digest, role));
                    keys::verify(credential, &single).is_some()
                }
                Ok(None) => false,
                // The state database is unreachable: keep what was checked before.
                Err(_) => true,
            }
        } else {
            // No leeway here: a long-lived connection ends when its token does.
            let now = jsonwebtoken::get_current_timestamp();
            matches!(self.check_token(credential).await, Ok((_, _, exp)) if exp > now)
        }
    }

    /// `[auth.oidc.console]`, when the console offers sign-in with the provider.
    pub fn console_oidc(&self) -> Option<&ConsoleOidc> {
        self.jwks.as_ref()?.settings.console.as_ref()
    }

    /// Re-reads the active API keys now.
    pub async fn reload_keys(&self) -> Result<(), keys::KeyError> {
        let fresh = self.keys.active().await?;
        *self.active.write().await = (fresh, Instant::now());
        Ok(())
    }

    /// The principal, role and expiry (seconds since the epoch) of a valid token.
    async fn check_token(&self, token: &str) -> Result<(String, String, u64), AuthError> {
        let jwks = self
            .jwks
            .as_ref()
            .ok_or_else(|| AuthError::BadToken("bearer tokens are not configured ([auth.oidc])".into()))?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::BadToken("malformed".into()))?;
        let key = jwks.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        // exp and sub always, iss and aud when configured: a token without them is refused,
        // not waved through. nbf is honoured when present; both with a small leeway.
        let mut required = vec!["exp", "sub"];
        match &jwks.settings.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &jwks.settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = TOKEN_LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| AuthError::BadToken(format!("{:?}", e.kind()).chars().take(80).collect()))?
            .claims;
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AuthError::BadToken("the token names no subject (`sub`)".into()))?;
        let roles: Vec<&str> = match &claims[jwks.settings.roles_claim.as_str()] {
            serde_json::Value::String(role) => vec![role.as_str()],
            serde_json::Value::Array(list) => list.iter().filter_map(|r| r.as_str()).collect(),
            _ => Vec::new(),
        };
        let role = roles
            .into_iter()
            .find(|r| self.roles.contains_key(*r))
            .ok_or_else(|| AuthError::BadToken("the token grants no declared role".into()))?;
        // The subject may be an email: it is kept only as a fingerprint.
        let expires = claims["exp"]
            .as_u64()
            .or_else(|| claims["exp"].as_f64().map(|f| f as u64))
            .unwrap_or(0);
        Ok((
            format!("jwt:{}", fingerprint(subject.as_bytes())),
            role.to_owned(),
            expires,
        ))
    }
}
