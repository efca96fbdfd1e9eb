//! The HTTP connector: a REST API declared, not coded.
//!
//! One `fetch` walks, for every identity value given, the entity's request and its pages
//! (cursor, next link, page number or offset), concurrently up to `max_concurrency` requests;
//! where the API takes many values in one call (`many`), a walk carries up to `max_values` of
//! them and every record it returns must say whose it is.
//! 429 answers are waited out as `Retry-After` / `X-RateLimit-Reset` say; 5xx answers and
//! connection errors are retried with jittered exponential backoff; 404 is "nothing here", never
//! an error. All connectors share one HTTP client (one connection pool).

mod batch;
pub mod decl;
mod values;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, try_join_all};
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value as Json;
use tokio::sync::Semaphore;


use crate::connector::{
    BatchItems, Capabilities, EraseBatching, Connector, ConnectorDescriptor, ConnectorError, EntityCheck, EntityDescriptor, EntityErasure, ErasureRequest,
    FieldChange, JobHandle, JobStatus, LookupRequest, WriteOutcome,
};
use crate::declaration::source::{DeclarationError, Location};
use crate::kinds::kind::{BuildError, Env, StoreDeclaration, built_now};
use crate::identity::{IdentityKinds, IdentityValue};
use crate::value::{FieldType, Record};
pub use decl::{Http, HttpStoreDecl};
use decl::{HttpAuth, HttpEntity, HttpField, PageStyle};
use serde_json_path::JsonPath;
use values::{
    ValueList, convert, encode_segment, fill, fill_json, has_dot_segment, scalar_text, substitute, with_param,
};

/// The longest single wait for a rate limit; the connector's timeout bounds the whole call anyway.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// First backoff step after a 5xx or a connection error; doubles per attempt, with full jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Why an HTTP connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpBuildError {
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    #[error("{0}: base_url is not a valid http(s) URL")]
    InvalidBaseUrl(Location),
}

enum Credentials {
    Bearer(SecretString),
    Basic(String, SecretString),
    Header(reqwest::header::HeaderName, SecretString),
}

/// A connector over one HTTP API.
pub struct HttpConnector {
    descriptor: ConnectorDescriptor,
    store: HttpStoreDecl,
    base: Url,
    credentials: Option<Credentials>,
    limiter: Arc<Semaphore>,
    /// The declared identity kinds: a record the API's search returned is acted on only when it
    /// holds a value asked for (see [`LookupRequest::owns`]).
    kinds: IdentityKinds,
}

/// The one HTTP client every HTTP connector uses.
fn shared_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("subject-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// What a walk asks for: one identity value, or many through the request for many values.
#[derive(Clone, Copy)]
enum Asked<'a> {
    One(&'a IdentityValue),
    Many(&'a [&'a IdentityValue]),
}

/// The first call of a walk.
struct FirstCall<'h> {
    method: &'h reqwest::Method,
    url: Url,
    body: Option<Json>,
    records: &'h JsonPath,
    pagination: Option<&'h decl::Pagination>,
}

/// What one request came back with.
enum Answer {
    Json(Json),
    /// 404 / 410: the resource is not there.
    Gone,
}

impl HttpConnector {
    /// Builds the connector, resolving the base URL and credentials from `env`.
    pub fn build(
        store: &HttpStoreDecl,
        mut descriptor: ConnectorDescriptor,
        env: impl Fn(&str) -> Option<String>,
        kinds: IdentityKinds,
    ) -> Result<Self, HttpBuildError> {
        let store = store.clone();
        let base_text = store.base_url.resolve(&env)?;
        let mut base = Url::parse(base_text.expose_secret())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| HttpBuildError::InvalidBaseUrl(store.base_url.location.clone()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let credentials = match &store.auth {
            None => None,
            Some(HttpAuth::Bearer(token)) => Some(Credentials::Bearer(token.resolve(&env)?)),
            Some(HttpAuth::Basic { username, password }) => Some(Credentials::Basic(
                username.resolve(&env)?.expose_secret().to_owned(),
                password.resolve(&env)?,
            )),
            Some(HttpAuth::Header { name, value }) => {
                let header = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    DeclarationError {
                        location: value.location.clone(),
                        message: format!("`{name}` is not a valid header name"),
                    }
                })?;
                Some(Credentials::Header(header, value.resolve(&env)?))
            }
        };
        let limiter = Arc::new(Semaphore::new(store.max_concurrency));
        descriptor.kind = "http".into();
        Ok(Self {
            descriptor,
            store,
            base,
            credentials,
            limiter,
            kinds,
        })
    }

    /// The call `check` makes: `(what it is, method, url, body)`.
    fn probe_call(&self) -> Result<(String, reqwest::Method, Url, Option<Json>), ConnectorError> {
        if let Some(path) = &self.store.health {
            return Ok((
                format!("the declared health request (GET {path})"),
                reqwest::Method::GET,
                self.url(path)?,
                None,
            ));
        }
        let (Some(http), Some(entity)) = (self.store.entities.first(), self.descriptor.entities.first())
        else {
            return Err(ConnectorError::Other("no entity to probe".into()));
        };
        let [probe, _] = probe_texts(lookup_type(entity));
        let request = &http.request;
        let encoded = utf8_percent_encode(probe, NON_ALPHANUMERIC).to_string();
        let mut url = self.url(&request.path.replace("{value}", &encoded))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, template) in &request.query {
                pairs.append_pair(key, &template.replace("{value}", probe));
            }
        }
        let body = request.body.as_ref().map(|b| substitute(b, probe));
        Ok((
            format!(
                "the lookup of `{}` with a value that matches nobody ({} {})",
                entity.name, request.method, request.path
            ),
            request.method.clone(),
            url,
            body,
        ))
    }

    /// Sends the probe call; refused credentials and timeouts are errors naming the connector.
    /// Answers a warning when the lookup probe's answer has nothing at the records path (a
    /// misspelt path reads every lookup as "no records").
    async fn probe(&self) -> Result<Option<String>, ConnectorError> {
        let (what, method, url, body) = self.probe_call()?;
        let name = &self.descriptor.name;
        let declared = self.store.health.is_some();
        match self.send(&method, url, body.as_ref()).await {
            Ok(Answer::Json(answer)) if !declared => Ok(self
                .store
                .entities
                .first()
                .filter(|http| http.request.records.query(&answer).all().is_empty())
                .map(|http| {
                    format!(
                        "the answer to {what} has nothing at the records path `{}`: if it is misspelt, every lookup reads as no records",
                        http.request.records
                    )
                })),
            // A declared health request must succeed.
            Ok(Answer::Gone) if declared => Err(ConnectorError::Other(format!(
                "`{name}` answered 404/410 to {what}: check its path"
            ))),
            Err(ConnectorError::Query { code }) if declared => Err(ConnectorError::Other(format!(
                "`{name}` answered {} to {what}",
                code.unwrap_or_else(|| "an error".into())
            ))),
            // A 4xx other than 401/403 answers the odd probe value, past the authentication.
            Ok(_) | Err(ConnectorError::Query { .. }) => Ok(None),
            Err(ConnectorError::Unauthorized) => Err(ConnectorError::Other(format!(
                "credentials refused: `{name}` answered 401/403 to {what}; check its auth settings"
            ))),
            Err(ConnectorError::Timeout(limit)) => Err(ConnectorError::Other(format!(
                "`{name}` did not answer {what} within {limit:?}"
            ))),
            Err(other) => Err(ConnectorError::Other(format!("`{name}` failed {what}: {other}"))),
        }
    }

    /// Sends an entity's request for many values, when it declares one, with two values that
    /// match nobody: a refusal is a problem (a lookup of many people would fail), an answer
    /// with nothing at the records path a warning (if misspelt, every batch reads as empty).
    async fn probe_many(&self, entity: usize, check: &mut EntityCheck) {
        let http = &self.store.entities[entity];
        let Some(many) = &http.request.many else { return };
        let descriptor = &self.descriptor.entities[entity];
        let lookup_type = lookup_type(descriptor);
        let values: Vec<IdentityValue> = probe_texts(lookup_type)
            .iter()
            .filter_map(|t| IdentityValue::probe(t))
            .collect();
        let asked: Vec<&IdentityValue> = values.iter().collect();
        let what = format!("the request for many values of `{}` ({} {})", descriptor.name, many.method, many.path);
        let call = match self.first_call(http, lookup_type, Asked::Many(&asked)) {
            Ok(call) => call,
            Err(error) => {
                check.problems.push(format!("{what} could not be formed: {error}"));
                return;
            }
        };
        match self.send(call.method, call.url, call.body.as_ref()).await {
            Ok(Answer::Json(answer)) => {
                if call.records.query(&answer).all().is_empty() {
                    check.warnings.push(format!(
                        "the answer to {what} has nothing at the records path `{}`: if it is misspelt, every lookup of many people reads as no records",
                        many.records
                    ));
                }
            }
            Ok(Answer::Gone) if !many.path.contains('{') => check.problems.push(format!(
                "{what} was answered 404/410: check its path (a lookup of many people would read as no records)"
            )),
            Ok(Answer::Gone) => {}
            Err(error) => check.problems.push(format!(
                "{what} failed ({error}): check its path and parameters (a lookup of many people would fail)"
            )),
        }
    }

    /// `path` (relative, leading `/`) joined to the base URL.
    fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        if has_dot_segment(path) {
            return Err(ConnectorError::Other(
                "a request path would hold a `.` or `..` segment (from a value placed in it); refused".into(),
            ));
        }
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|_| ConnectorError::Other("a request path does not form a valid URL".into()))
    }

    /// Sends one request, riding out rate limits and transient failures.
    async fn send(
        &self,
        method: &reqwest::Method,
        url: Url,
        body: Option<&Json>,
    ) -> Result<Answer, ConnectorError> {
        let timeout = self.descriptor.timeout;
        let mut attempt: u32 = 0;
        loop {
            let permit = self
                .limiter
                .acquire()
                .await
                .map_err(|_| ConnectorError::Unavailable("connector is shutting down".into()))?;
            let mut request = shared_client()
                .request(method.clone(), url.clone())
                .timeout(timeout);
            request = match &self.credentials {
                None => request,
                Some(Credentials::Bearer(token)) => request.bearer_auth(token.expose_secret()),
                Some(Credentials::Basic(user, password)) => {
                    request.basic_auth(user, Some(password.expose_secret()))
                }
                Some(Credentials::Header(name, value)) => request.header(name.clone(), value.expose_secret()),
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            let result = request.send().await;
            drop(permit);
            let wait = match result {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let text = response.bytes().await.map_err(|_| {
                            ConnectorError::Unavailable("the response body was cut off".into())
                        })?;
                        if text.is_empty() {
                            return Ok(Answer::Json(Json::Null));
                        }
                        return serde_json::from_slice(&text).map(Answer::Json).map_err(|_| {
                            ConnectorError::Decode {
                                field: "response".into(),
                                expected: "JSON",
                            }
                        });
                    }
                    match status {
                        StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(Answer::Gone),
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            return Err(ConnectorError::Unauthorized);
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            rate_limit_wait(response.headers()).unwrap_or_else(|| backoff(attempt))
                        }
                        s if s.is_server_error() => backoff(attempt),
                        s => {
                            return Err(ConnectorError::Query {
                                code: Some(format!("HTTP {}", s.as_u16())),
                            });
                        }
                    }
                }
                Err(error) if error.is_timeout() => return Err(ConnectorError::Timeout(timeout)),
                Err(error) if error.is_connect() || error.is_request() => backoff(attempt),
                Err(_) => return Err(ConnectorError::Unavailable("the request failed".into())),
            };
            if attempt >= self.store.max_retries {
                return Err(ConnectorError::Unavailable(format!(
                    "gave up after {} retries (rate limits, 5xx answers or connection errors)",
                    attempt
                )));
            }
            attempt += 1;
            tracing::debug!(connector = %self.descriptor.name, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait.min(LONGEST_WAIT)).await;
        }
    }

    /// The first call of a walk: method, URL, body, where the records are and how pages follow.
    fn first_call<'h>(
        &self,
        http: &'h HttpEntity,
        lookup_type: FieldType,
        asked: Asked<'_>,
    ) -> Result<FirstCall<'h>, ConnectorError> {
        match asked {
            Asked::One(value) => {
                let request = &http.request;
                let encoded = encode_segment(value.expose());
                let mut url = self.url(&request.path.replace("{value}", &encoded))?;
                {
                    let mut pairs = url.query_pairs_mut();
                    for (key, template) in &request.query {
                        pairs.append_pair(key, &template.replace("{value}", value.expose()));
                    }
                }
                Ok(FirstCall {
                    method: &request.method,
                    url,
                    body: request.body.as_ref().map(|b| substitute(b, value.expose())),
                    records: &request.records,
                    pagination: request.pagination.as_ref(),
                })
            }
            Asked::Many(values) => {
                let Some(many) = &http.request.many else {
                    return Err(ConnectorError::Other("no request for many values is declared".into()));
                };
                let list = ValueList::new(values, lookup_type);
                let mut url = self.url(&list.fill(&many.path, true))?;
                {
                    let mut pairs = url.query_pairs_mut();
                    for (key, template) in &many.query {
                        pairs.append_pair(key, &list.fill(template, false));
                    }
                }
                Ok(FirstCall {
                    method: &many.method,
                    url,
                    body: many.body.as_ref().map(|b| list.fill_json(b)),
                    records: &many.records,
                    pagination: many.pagination.as_ref(),
                })
            }
        }
    }

    /// Every record one identity value (or, through the request for many values, a list of
    /// them) finds, walking the pages.
    async fn walk(&self, entity: usize, asked: Asked<'_>) -> Result<Vec<Record>, ConnectorError> {
        let http = &self.store.entities[entity];
        let descriptor = &self.descriptor.entities[entity];
        let lookup_field = descriptor.lookups.first().map(|l| l.field);
        let lookup_type = lookup_type(descriptor);
        let FirstCall {
            method,
            url,
            body,
            records: records_path,
            pagination,
        } = self.first_call(http, lookup_type, asked)?;
        let one = match asked {
            Asked::One(value) => Some(value),
            Asked::Many(_) => None,
        };
        let mut records = Vec::new();
        let Some(pagination) = pagination else {
            if let Answer::Json(page) = self.send(method, url, body.as_ref()).await? {
                records.extend(self.records_of(http, entity, records_path, &page, one)?);
            }
            return self.attributed(entity, lookup_field, records);
        };
        let mut page_number = match &pagination.style {
            PageStyle::Page { first, .. } => *first,
            _ => 0,
        };
        let mut next_url = Some(with_param(
            &url,
            pagination.size_param.as_deref(),
            &pagination.size.to_string(),
        ));
        if let PageStyle::Page { param, .. } = &pagination.style {
            next_url = next_url.map(|u| with_param(&u, Some(param), &page_number.to_string()));
        }
        if let PageStyle::Offset { param } = &pagination.style {
            next_url = next_url.map(|u| with_param(&u, Some(param), "0"));
        }
        let mut pages = 0;
        while let Some(current) = next_url.take() {
            if pages == pagination.max_pages {
                return Err(ConnectorError::Other(format!(
                    "more than {} pages of `{}` for one {} (raise max_pages)",
                    pagination.max_pages,
                    descriptor.name,
                    if one.is_some() { "identity" } else { "request for many values" }
                )));
            }
            pages += 1;
            let Answer::Json(page) = self.send(method, current.clone(), body.as_ref()).await? else {
                break;
            };
            let found = self.records_of(http, entity, records_path, &page, one)?;
            let count = found.len();
            records.extend(found);
            next_url = match &pagination.style {
                PageStyle::Cursor {
                    param,
                    cursor,
                    has_more,
                } => {
                    let more = has_more
                        .as_ref()
                        .map(|p| p.query(&page).first().and_then(Json::as_bool).unwrap_or(false));
                    let next = cursor.query(&page).first().and_then(scalar_text);
                    match (more, next) {
                        (Some(false), _) | (_, None) => None,
                        (_, Some(next)) => Some(with_param(&current, Some(param), &next)),
                    }
                }
                PageStyle::NextLink { next } => match next.query(&page).first().and_then(Json::as_str) {
                    None => None,
                    Some(link) => Some(self.same_origin(&current, link)?),
                },
                PageStyle::Page { param, .. } => {
                    page_number += 1;
                    (count >= pagination.size)
                        .then(|| with_param(&current, Some(param), &page_number.to_string()))
                }
                PageStyle::Offset { param } => {
                    let offset = pages * pagination.size;
                    (count >= pagination.size).then(|| with_param(&current, Some(param), &offset.to_string()))
                }
            };
        }
        self.attributed(entity, lookup_field, records)
    }

    /// `records`, refused when one holds no value in the lookup field: the executor hands a
    /// record to the people whose value that field holds, so such a record would belong to
    /// nobody and be dropped, a silent miss (a misspelt path drops every record). Filling it
    /// with the value asked for instead could hand a stranger's record to the person.
    fn attributed(
        &self,
        entity: usize,
        lookup_field: Option<usize>,
        records: Vec<Record>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let Some(field) = lookup_field else { return Ok(records) };
        if records.iter().any(|r| r.get(field).is_none_or(|v| v.as_identity_text().is_none())) {
            let descriptor = &self.descriptor.entities[entity];
            return Err(ConnectorError::Decode {
                field: format!("{}.{}", descriptor.name, descriptor.fields[field].name),
                expected: "the identity the record was looked up by (a record has none there: check the field's path)",
            });
        }
        Ok(records)
    }

    /// The records `lookup` finds that belong to the person: a search API may answer more than
    /// the values asked for (Zendesk's user search matches part of an address), and a write acts
    /// only on records holding a value asked for, as the executor reads them.
    async fn owned(&self, lookup: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        let mut records = crate::Connector::fetch(self, lookup).await?;
        let entity = &self.descriptor.entities[lookup.entity];
        let strangers = lookup.keep_owned(entity, &self.kinds, &mut records);
        if strangers > 0 {
            tracing::debug!(
                connector = %self.descriptor.name,
                entity = %entity.name,
                strangers,
                "the API's search returned records holding none of the values asked for; left alone"
            );
        }
        Ok(records)
    }

    /// One record's erase calls, in order; the job the last one started, when it declares one.
    async fn erase_record(
        &self,
        erase: &decl::HttpErase,
        names: &[&str],
        record: &Record,
    ) -> Result<Option<JobHandle>, ConnectorError> {
        let mut last = Answer::Gone;
        for step in &erase.steps {
            let path = fill(&step.path, names, record, true);
            let body = step.body.as_ref().map(|b| fill_json(b, names, record));
            last = self.send(&step.method, self.url(&path)?, body.as_ref()).await?;
        }
        let (Some(job), Answer::Json(answer)) = (&erase.job, &last) else {
            return Ok(None);
        };
        job.id
            .query(answer)
            .first()
            .and_then(scalar_text)
            .map(|id| Some(JobHandle(id)))
            .ok_or_else(|| ConnectorError::Decode {
                field: "job id".into(),
                expected: "a job id at the declared path",
            })
    }

    /// A next-page link, refused when it leaves the API's origin (credentials must not follow).
    fn same_origin(&self, current: &Url, link: &str) -> Result<Url, ConnectorError> {
        let next = current
            .join(link)
            .map_err(|_| ConnectorError::Other("a next-page link is not a valid URL".into()))?;
        if next.origin() != self.base.origin() {
            return Err(ConnectorError::Other(
                "a next-page link leaves the API's origin".into(),
            ));
        }
        Ok(next)
    }

    /// The records of one answer, read as the entity's fields. `value` is the identity asked for
    /// when one was (it fills `from = "lookup"` fields); `None` for an answer for many values.
    fn records_of(
        &self,
        http: &HttpEntity,
        entity: usize,
        records_path: &JsonPath,
        page: &Json,
        value: Option<&IdentityValue>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let nodes = records_path.query(page).all();
        let items: Vec<&Json> = match nodes.as_slice() {
            [Json::Array(items)] => items.iter().collect(),
            _ => nodes,
        };
        let descriptor = &self.descriptor.entities[entity];
        items
            .into_iter()
            .map(|item| {
                descriptor
                    .fields
                    .iter()
                    .zip(&http.fields)
                    .map(|(field, source)| {
                        let raw = match source {
                            HttpField::Lookup => value
                                .map_or(Json::Null, |value| Json::String(value.expose().to_owned())),
                            HttpField::Path(path) => path.query(item).first().cloned().unwrap_or(Json::Null),
                        };
                        convert(&raw, field.field_type).ok_or_else(|| ConnectorError::Decode {
                            field: field.name.clone(),
                            expected: field.field_type.as_str(),
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// The type of an HTTP entity's lookup field (it has one lookup; a string when it has none).
fn lookup_type(entity: &EntityDescriptor) -> FieldType {
    entity
        .lookups
        .first()
        .map_or(FieldType::String, |l| entity.fields[l.field].field_type)
}

/// Two values no record holds, of a lookup field's type, for `check` to probe an API with.
fn probe_texts(field_type: FieldType) -> [&'static str; 2] {
    match field_type {
        FieldType::Int | FieldType::Bigint => ["0", "-1"],
        FieldType::Uuid => [
            "00000000-0000-0000-0000-000000000000",
            "00000000-0000-0000-0000-000000000001",
        ],
        _ => ["subject-gateway-check@probe.invalid", "subject-gateway-check-2@probe.invalid"],
    }
}

/// How long a 429 answer asks to wait: `Retry-After` (seconds or an HTTP date) or
/// `X-RateLimit-Reset` (seconds to wait, or the epoch second the window resets).
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(value) = text("retry-after") {
        if let Ok(seconds) = value.parse::<f64>() {
            return Some(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
        }
        if let Ok(date) = DateTime::parse_from_rfc2822(value) {
            let wait = date.with_timezone(&Utc) - Utc::now();
            return Some(wait.to_std().unwrap_or(Duration::ZERO));
        }
    }
    let reset = text("x-ratelimit-reset")?.parse::<i64>().ok()?;
    let now = Utc::now().timestamp();
    let seconds = if reset > 1_000_000_000 { reset - now } else { reset };
    Some(Duration::from_secs(seconds.clamp(0, 3600) as u64))
}

/// Exponential backoff with full jitter: a random wait below 100 ms × 2^attempt.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(attempt.min(10)));
    Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64))
}

impl From<HttpBuildError> for BuildError {
    fn from(error: HttpBuildError) -> Self {
        match error {
            HttpBuildError::Declaration(error) => error.into(),
            other => BuildError::store(other),
        }
    }
}

impl StoreDeclaration for HttpStoreDecl {
    fn build(
        &self,
        descriptor: ConnectorDescriptor,
        env: Env<'_>,
        kinds: &IdentityKinds,
    ) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>> {
        built_now(HttpConnector::build(self, descriptor, env, kinds.clone()).map_err(BuildError::from))
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        if request.entity >= self.store.entities.len() {
            return Err(ConnectorError::Other(format!("no entity #{}", request.entity)));
        }
        // Every lookup of an HTTP entity uses the entity's one request: each value is a walk, or,
        // where the API takes many values at once, each chunk of up to `max_values` is.
        let mut values: Vec<&IdentityValue> = request.by.iter().flat_map(|(_, values)| values).collect();
        values.sort();
        values.dedup();
        let many = self.store.entities[request.entity].request.many.as_ref();
        let (alone, batched): (Vec<&IdentityValue>, Vec<&IdentityValue>) = match many {
            Some(many) if values.len() > 1 => values
                .into_iter()
                .partition(|value| many.comma_joined && value.expose().contains(',')),
            _ => (values, Vec::new()),
        };
        let chunk = many.map_or(1, |many| many.max_values);
        let walks = alone
            .iter()
            .map(|value| Asked::One(value))
            .chain(batched.chunks(chunk).map(|chunk| match chunk {
                [value] => Asked::One(value),
                values => Asked::Many(values),
            }))
            .map(|asked| self.walk(request.entity, asked));
        Ok(try_join_all(walks).await?.into_iter().flatten().collect())
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        // Any HTTP answer means the API is up; only the connection matters here.
        shared_client()
            .head(self.base.clone())
            .timeout(self.descriptor.timeout)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                if e.is_timeout() {
                    ConnectorError::Timeout(self.descriptor.timeout)
                } else {
                    ConnectorError::Unavailable("no answer from the API".into())
                }
            })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            erase: self.store.entities.iter().any(|e| e.erase.is_some()),
            rectify: self.store.entities.iter().any(|e| e.update.is_some()),
            async_jobs: self
                .store
                .entities
                .iter()
                .any(|e| e.erase.as_ref().is_some_and(|erase| erase.job.is_some())),
        }
    }

    /// Makes the declared calls for every matched record, in order (a soft delete, then the
    /// permanent one). A 404 means a call was already made (a repeat after a crash): the next step
    /// still runs. When the last call starts a job, its id is returned to poll.
    async fn erase(&self, request: &ErasureRequest) -> Result<WriteOutcome, ConnectorError> {
        let entity = request.lookup.entity;
        let http = self
            .store
            .entities
            .get(entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{entity}")))?;
        let Some(erase) = &http.erase else {
            return Err(ConnectorError::Unsupported(
                "erase (declare the entity's erase calls)",
            ));
        };
        if !matches!(request.action, EntityErasure::Delete) {
            return Err(ConnectorError::Unsupported("masking over HTTP"));
        }
        if erase.batch.is_some() {
            // A batch of one: the engine batches across requests through `batch_items`.
            let found = self.items_of(request).await?;
            if found.items.is_empty() {
                return Ok(WriteOutcome::Done { records: 0 });
            }
            let job = self.send_batch(entity, &found.items).await?;
            return Ok(WriteOutcome::Pending {
                records: found.records,
                jobs: vec![job],
            });
        }
        let descriptor = &self.descriptor.entities[entity];
        let mut records = self.owned(&request.lookup).await?;
        for known in &request.known {
            let same = |r: &Record| match descriptor.primary_key {
                Some(pk) => r.get(pk) == known.get(pk),
                None => r == known,
            };
            if !records.iter().any(same) {
                records.push(known.clone());
            }
        }
        if records.len() as u64 > request.max_records {
            return Err(ConnectorError::TooManyRecords {
                found: records.len() as u64,
                limit: request.max_records,
            });
        }
        let names: Vec<&str> = descriptor.fields.iter().map(|f| f.name.as_str()).collect();
        // Records are erased side by side (each record's steps in order), as many at once as the
        // connector's `max_concurrency` lets calls run: a person with ten tickets waits for about
        // one ticket's calls, not ten. On a failure the calls already made stay made; a retry
        // finds those records gone (404 counts as done) and does the rest.
        let erasures: Vec<_> = records
            .iter()
            .map(|record| self.erase_record(erase, &names, record))
            .collect();
        let jobs: Vec<JobHandle> = futures::stream::iter(erasures)
            .buffered(self.store.max_concurrency.max(1))
            .try_collect::<Vec<Option<JobHandle>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        let count = records.len() as u64;
        Ok(if jobs.is_empty() {
            WriteOutcome::Done { records: count }
        } else {
            WriteOutcome::Pending { records: count, jobs }
        })
    }

    /// Writes every matched record back with the corrections applied, through the entity's
    /// declared `update` call. Records already correct are not written.
    async fn rectify(
        &self,
        lookup: &LookupRequest,
        changes: &[FieldChange],
    ) -> Result<WriteOutcome, ConnectorError> {
        let http = self
            .store
            .entities
            .get(lookup.entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{}", lookup.entity)))?;
        let Some(update) = &http.update else {
            return Err(ConnectorError::Unsupported(
                "rectify (declare the entity's update call)",
            ));
        };
        let descriptor = &self.descriptor.entities[lookup.entity];
        let names: Vec<&str> = descriptor.fields.iter().map(|f| f.name.as_str()).collect();
        let records = self.owned(lookup).await?;
        for record in &records {
            let mut corrected = record.clone();
            for change in changes {
                if let Some(slot) = corrected.get_mut(change.field) {
                    *slot = change.value.clone();
                }
            }
            if corrected == *record {
                continue;
            }
            let path = fill(&update.path, &names, record, true);
            let body = update.body.as_ref().map(|b| fill_json(b, &names, &corrected));
            self.send(&update.method, self.url(&path)?, body.as_ref()).await?;
        }
        Ok(WriteOutcome::Done {
            records: records.len() as u64,
        })
    }

    fn erase_batching(&self, entity: usize) -> Option<EraseBatching> {
        self.batch_of(entity).map(|b| b.batching)
    }

    async fn batch_items(&self, request: &ErasureRequest) -> Result<BatchItems, ConnectorError> {
        self.items_of(request).await
    }

    async fn erase_batch(&self, entity: usize, items: &[Json]) -> Result<JobHandle, ConnectorError> {
        self.send_batch(entity, items).await
    }

    fn erases(&self, entity: usize) -> bool {
        self.store.entities.get(entity).is_some_and(|e| e.erase.is_some())
    }

    fn suppresses(&self, entity: usize) -> bool {
        self.store
            .entities
            .get(entity)
            .is_some_and(|e| e.suppress.is_some())
    }

    /// Makes the entity's declared `suppress` call for every matched record.
    async fn suppress(&self, lookup: &LookupRequest) -> Result<WriteOutcome, ConnectorError> {
        let http = self
            .store
            .entities
            .get(lookup.entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{}", lookup.entity)))?;
        let Some(call) = &http.suppress else {
            return Err(ConnectorError::Unsupported(
                "suppress (declare the entity's suppress call)",
            ));
        };
        let descriptor = &self.descriptor.entities[lookup.entity];
        let names: Vec<&str> = descriptor.fields.iter().map(|f| f.name.as_str()).collect();
        let records = self.owned(lookup).await?;
        for record in &records {
            let path = fill(&call.path, &names, record, true);
            let body = call.body.as_ref().map(|b| fill_json(b, &names, record));
            self.send(&call.method, self.url(&path)?, body.as_ref()).await?;
        }
        Ok(WriteOutcome::Done {
            records: records.len() as u64,
        })
    }

    async fn job_status(&self, handle: &JobHandle) -> Result<JobStatus, ConnectorError> {
        let Some(job) = self
            .store
            .entities
            .iter()
            .find_map(|e| e.erase.as_ref().and_then(|erase| erase.job.as_ref()))
        else {
            return Err(ConnectorError::Unsupported("job_status"));
        };
        let encoded = encode_segment(&handle.0);
        let url = self.url(&job.status_path.replace("{job}", &encoded))?;
        let Answer::Json(answer) = self.send(&reqwest::Method::GET, url, None).await? else {
            return Ok(JobStatus::Failed("the job is unknown to the store".into()));
        };
        let status = job
            .status
            .query(&answer)
            .first()
            .and_then(scalar_text)
            .unwrap_or_default();
        Ok(if job.done.contains(&status) {
            JobStatus::Succeeded
        } else if job.failed.contains(&status) {
            JobStatus::Failed(format!("the store reports the job {status}"))
        } else {
            JobStatus::Running
        })
    }

    /// Proves the API answers and takes the credentials: one harmless call, the declared
    /// `health` request or else the first entity's lookup with a value that matches nobody.
    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        self.health().await?;
        let warning = self.probe().await?;
        let mut checks = Vec::new();
        for (e, entity) in self.descriptor.entities.iter().enumerate() {
            let mut check = EntityCheck {
                fields: Vec::new(),
                entity: entity.name.clone(),
                problems: Vec::new(),
                warnings: warning.clone().filter(|_| e == 0).into_iter().collect(),
            };
            self.probe_many(e, &mut check).await;
            checks.push(check);
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests;
