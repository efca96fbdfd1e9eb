//! `[webhooks.NAME]` (the endpoints) and `[webhook_delivery]` (retries, leases) of gateway.toml,
//! validated at load with the line of each problem; secrets are read from the environment only
//! when the gateway is built, and never printed.
//!
//! A URL is only ever taken from this file: a request names an endpoint, never an address (no
//! SSRF through the API).

use std::collections::BTreeSet;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use subject_connectors::declaration::{DeclarationError, DeclarationErrors, SourceFile};
use toml::Spanned;

use super::event::EVENT_TYPES;
use super::signer::SigningKey;

/// `[webhooks.NAME]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDecl {
    /// Where events are POSTed: `https://…` (or `http://…`).
    url: Spanned<String>,
    /// The environment variable holding the Standard Webhooks secret (`whsec_…`).
    secret_env: Spanned<String>,
    /// The event types sent (`privacy_request.completed`, …); every type when absent.
    #[serde(default)]
    events: Option<Vec<Spanned<String>>>,
    /// `true`: the events of every request; `false` (default): only of requests naming this
    /// endpoint in their `webhook` input.
    #[serde(default)]
    all_requests: bool,
    /// Longest one attempt may take, in milliseconds (default 10000).
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// `[webhook_delivery]`: how the outbox is worked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// How long a message is retried before it is DEAD, in hours (at least a day by default).
    pub retry_hours: u64,
    /// The first wait after a failed attempt, in milliseconds; it doubles (with jitter) per attempt.
    pub first_retry_ms: u64,
    /// The longest wait between attempts, in milliseconds.
    pub max_retry_ms: u64,
    /// How long a gateway holds a message it sends before another may take it over, seconds.
    /// Must exceed every endpoint's timeout: a message is never sent by two at once.
    pub lease_seconds: u64,
    /// How often an idle deliverer looks for due messages, in milliseconds.
    pub poll_interval_ms: u64,
    /// Messages one gateway sends at once (to different requests or endpoints).
    pub concurrency: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_hours: 26,
            first_retry_ms: 5_000,
            max_retry_ms: 3_600_000,
            lease_seconds: 60,
            poll_interval_ms: 500,
            concurrency: 16,
        }
    }
}

/// A validated endpoint (its secret not read yet).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub url: reqwest::Url,
    pub secret_env: String,
    /// `None`: every event type.
    pub events: Option<BTreeSet<String>>,
    pub all_requests: bool,
    pub timeout: Duration,
}

/// The webhooks of a loaded configuration.
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    pub endpoints: Vec<EndpointConfig>,
    pub delivery: DeliverySettings,
}

/// An endpoint with its signing key, ready to send to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub config: EndpointConfig,
    pub key: SigningKey,
}

impl EndpointConfig {
    /// Whether this endpoint is sent events of `event_type` for a request that named
    /// `subscribed` (if any).
    pub fn wants(&self, event_type: &str, subscribed: Option<&str>) -> bool {
        (self.all_requests || subscribed == Some(self.name.as_str()))
            && self.events.as_ref().is_none_or(|e| e.contains(event_type))
    }
}

/// Why the webhooks could not be built from the environment.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WebhookBuildError {
    #[error("[webhooks.{name}]: the environment variable {variable} (its secret) is not set")]
    MissingSecret { name: String, variable: String },
    #[error("the webhooks' HTTP client could not be set up (TLS)")]
    Client,
    #[error("[webhooks.{name}]: the secret in {variable} {problem}")]
    BadSecret {
        name: String,
        variable: String,
        problem: super::signer::SecretError,
    },
}

impl WebhookConfig {
    /// Validates the declared endpoints; every problem is reported with its line.
    pub fn validate(
        file: &SourceFile,
        declared: &IndexMap<Spanned<String>, EndpointDecl>,
        delivery: DeliverySettings,
    ) -> Result<Self, DeclarationErrors> {
        let mut errors = Vec::new();
        let mut endpoints = Vec::new();
        for (name, decl) in declared {
            let valid_name = !name.get_ref().is_empty()
                && name.get_ref().len() <= 64
                && name
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid_name {
                errors.push(file.error(
                    name.span(),
                    "a webhook endpoint's name is 1 to 64 of a-z, 0-9, `_` and `-`",
                ));
            }
            let url = match reqwest::Url::parse(decl.url.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
                Ok(_) => {
                    errors.push(file.error(decl.url.span(), "url: give an http:// or https:// URL"));
                    None
                }
                Err(error) => {
                    errors.push(file.error(decl.url.span(), format!("url: {error}")));
                    None
                }
            };
            let variable = decl.secret_env.get_ref().trim();
            if variable.is_empty() || variable.contains(char::is_whitespace) {
                errors.push(file.error(
                    decl.secret_env.span(),
                    "secret_env: name the environment variable holding the secret (whsec_…)",
                ));
            }
            let events = decl.events.as_ref().map(|events| {
                let mut set = BTreeSet::new();
                for event in events {
                    if EVENT_TYPES.contains(&event.get_ref().as_str()) {
                        set.insert(event.get_ref().clone());
                    } else {
                        errors.push(file.error(
                            event.span(),
                            format!(
                                "events: `{}` is not an event type (known: {})",
                                event.get_ref(),
                                EVENT_TYPES.join(", ")
                            ),
                        ));
                    }
                }
                set
            });
            if decl.events.as_ref().is_some_and(Vec::is_empty) {
                errors.push(file.error(
                    name.span(),
                    "events: name at least one event type, or leave `events` out for all",
                ));
            }
            if decl.timeout_ms == 0 || decl.timeout_ms + 1000 > delivery.lease_seconds.saturating_mul(1000) {
                errors.push(file.error(
                    name.span(),
                    format!(
                        "timeout_ms: between 1 and [webhook_delivery] lease_seconds ({} s) less one second, so that a message is never sent by two gateways at once",
                        delivery.lease_seconds
                    ),
                ));
            }
            if let Some(url) = url {
                endpoints.push(EndpointConfig {
                    name: name.get_ref().clone(),
                    url,
                    secret_env: variable.to_owned(),
                    events,
                    all_requests: decl.all_requests,
                    timeout: Duration::from_millis(decl.timeout_ms),
                });
            }
        }
        if delivery.first_retry_ms == 0 || delivery.max_retry_ms < delivery.first_retry_ms {
            errors.push(DeclarationError {
                location: subject_connectors::declaration::Location::file(&file.path),
                message: "[webhook_delivery]: first_retry_ms must be positive and at most max_retry_ms"
                    .into(),
            });
        }
        if errors.is_empty() {
            Ok(Self { endpoints, delivery })
        } else {
            Err(DeclarationErrors(errors))
        }
    }

    /// Reads every endpoint's secret from `env`.
    pub fn endpoints(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Endpoint>, WebhookBuildError> {
        self.endpoints
            .iter()
            .map(|config| {
                let secret = env(&config.secret_env).ok_or_else(|| WebhookBuildError::MissingSecret {
                    name: config.name.clone(),
                    variable: config.secret_env.clone(),
                })?;
                let key = SigningKey::parse(&secret).map_err(|problem| WebhookBuildError::BadSecret {
                    name: config.name.clone(),
                    variable: config.secret_env.clone(),
                    problem,
                })?;
                Ok(Endpoint {
                    config: config.clone(),
                    key,
                })
            })
            .collect()
    }
}
