//! The declaration of an HTTP connector: base URL and credentials from the environment, and per
//! entity a request template, a JSON path to the records, pagination, field paths, and the erase
//! side (delete calls, two-step deletes, asynchronous jobs).
//!
//! Templates take `{value}` (the identity looked up) in requests, `{values}` / `{values:json}`
//! (many identities at once) in a request for many values, `{field}` (a declared field of the
//! record) in erase calls and `{job}` (the job id) in job status paths.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json_path::JsonPath;
use toml::Spanned;

use crate::connector::EntityDescriptor;
use crate::declaration::keys::{ConnectorDecl, DeclaredKeys, EntityDecl};
use crate::declaration::source::{
    DeclarationError, EnvTemplate, SourceFile, env_template, placeholders, required_env_template,
};
use crate::kinds::kind::{StoreDeclaration, StoreKind};

/// The HTTP store kind: a REST API declared, not coded.
#[derive(Debug, Clone, Copy)]
pub struct Http;

/// The keys an HTTP connector file adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpKeys {
    /// Base URL of the API, as `${VARIABLE}` references.
    pub base_url: Option<Spanned<String>>,
    /// Credentials sent with every request.
    pub auth: Option<Spanned<AuthDecl>>,
    /// A harmless authenticated request `check` sends to prove the credentials.
    pub health: Option<Spanned<HealthDecl>>,
    /// Most requests in flight at once (default 4).
    pub max_concurrency: Option<usize>,
    /// Retries of a request after 429, 5xx or a connection error (default 5).
    pub max_retries: Option<u32>,
}

/// The keys an HTTP entity adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEntityKeys {
    /// How records are requested.
    pub request: Option<Spanned<RequestDecl>>,
    /// How records are erased: delete calls, two-step deletes, asynchronous jobs.
    pub erase: Option<Spanned<EraseDecl>>,
    /// The call that writes a corrected record (rectification), e.g.
    /// `{ method = "PUT", path = "/users/{id}", body = { user = { email = "{email}" } } }`.
    pub update: Option<Spanned<CallDecl>>,
    /// The call that stops processing a person's records when they object to a purpose the
    /// connector serves, e.g. an analytics opt-out.
    pub suppress: Option<Spanned<CallDecl>>,
}

/// The keys an HTTP field adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFieldKeys {
    /// Where the value is in a record: a JSON path such as `$.via.channel` (default: the key
    /// with the field's name).
    pub path: Option<Spanned<String>>,
    /// `lookup`: the value is the identity the record was requested for, not read from the
    /// record (resources that do not repeat their parent's id, e.g. ticket comments).
    pub from: Option<Spanned<FieldSource>>,
}

impl DeclaredKeys for Http {
    type Connector = HttpKeys;
    type Entity = HttpEntityKeys;
    type Field = HttpFieldKeys;
}

/// Where an HTTP field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    Record,
    Lookup,
}

/// `auth = { bearer = "${TOKEN}" }`, `{ username = "${U}", password = "${P}" }` or
/// `{ header = "X-Api-Key", value = "${KEY}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthDecl {
    pub bearer: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub header: Option<String>,
    pub value: Option<Spanned<String>>,
}

/// `health = { path = "/api/v2/users/me" }`: a harmless authenticated GET that `check` sends to
/// prove the credentials (without one, `check` sends a lookup that matches nobody).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDecl {
    pub path: Spanned<String>,
}

/// `[entities.NAME.request]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDecl {
    /// `GET` (default) or `POST`.
    pub method: Option<Spanned<String>>,
    /// Path below the base URL; `{value}` is the identity looked up (percent-encoded).
    pub path: Spanned<String>,
    /// Query parameters; values may hold `{value}`.
    #[serde(default)]
    pub query: IndexMap<String, String>,
    /// A JSON body (POST); strings may hold `{value}`.
    pub body: Option<toml::Value>,
    /// JSON path to the records in a response: `$.tickets` (an array) or `$.tickets[*]`.
    pub records: Spanned<String>,
    pub pagination: Option<Spanned<PaginationDecl>>,
    /// A second request that asks for many identity values in one call, where the API has one
    /// (Mixpanel's activity stream takes a JSON list of distinct_ids; Zendesk's `show_many`
    /// a comma-separated list of ids).
    pub many: Option<Spanned<ManyDecl>>,
}

/// `many = { path = "/stream", query = { ids = "{values:json}" }, records = "$.events", max_values = 100 }`:
/// a request for many identity values at once. `{values}` is the values joined by commas,
/// `{values:json}` a JSON array of them; a body string that is exactly `"{values}"` becomes the
/// array itself. Nothing is taken from the one-value request: records and pagination are
/// declared here (a batched answer the API pages must say so, or later pages would be missed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManyDecl {
    /// `GET` (default) or `POST`.
    pub method: Option<Spanned<String>>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub query: IndexMap<String, String>,
    pub body: Option<toml::Value>,
    pub records: Spanned<String>,
    pub pagination: Option<Spanned<PaginationDecl>>,
    /// Most values one call carries (2 to 1,000; default 100).
    pub max_values: Option<Spanned<i64>>,
}

/// `pagination = { style = "cursor", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginationDecl {
    /// `cursor`, `next_link`, `page` or `offset`.
    pub style: String,
    /// The query parameter carrying the cursor, page number or offset.
    pub param: Option<String>,
    /// (cursor) JSON path to the next cursor in a response.
    pub cursor: Option<String>,
    /// (cursor) JSON path to a boolean saying whether more pages follow.
    pub has_more: Option<String>,
    /// (next_link) JSON path to the next page's URL.
    pub next: Option<String>,
    /// The query parameter carrying the page size, and the size asked for.
    pub size_param: Option<String>,
    pub size: Option<usize>,
    /// (page) The number of the first page (default 1).
    pub first_page: Option<u64>,
    /// Pages walked at most; more is an error, never a silent cut (default 100).
    pub max_pages: Option<usize>,
}

/// `[entities.NAME.erase]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseDecl {
    /// Calls made in order for each record (two-step deletes: soft, then permanent).
    pub steps: Vec<CallDecl>,
    /// When the last call starts an asynchronous job: how to follow it.
    pub job: Option<JobDecl>,
    /// Batches the deletions of concurrent requests into one call and one job, of at most this
    /// many records (1 to 10,000): the one step's body carries `"{field[]}"`, the list of every
    /// member's values. Needs `job`.
    pub max_batch: Option<Spanned<i64>>,
    /// How long a batch waits for more members after its first (default 500).
    pub batch_window_ms: Option<Spanned<u64>>,
}

/// `{ method = "DELETE", path = "/users/{id}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallDecl {
    pub method: Spanned<String>,
    pub path: Spanned<String>,
    pub body: Option<toml::Value>,
}

/// `job = { id = "$.task_id", status_path = "/tasks/{job}", status = "$.status", done = […], failed = […] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDecl {
    pub id: Spanned<String>,
    pub status_path: Spanned<String>,
    pub status: Spanned<String>,
    pub done: Vec<String>,
    pub failed: Vec<String>,
}

/// A validated HTTP store.
#[derive(Debug, Clone)]
pub struct HttpStoreDecl {
    pub base_url: EnvTemplate,
    pub auth: Option<HttpAuth>,
    pub max_concurrency: usize,
    pub max_retries: u32,
    /// The path of the declared health request (`check` probes the credentials with it).
    pub health: Option<String>,
    /// One per entity, in the descriptor's order.
    pub entities: Vec<HttpEntity>,
}

/// Credentials, resolved from the environment when the connector is built.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    Bearer(EnvTemplate),
    Basic {
        username: EnvTemplate,
        password: EnvTemplate,
    },
    Header {
        name: String,
        value: EnvTemplate,
    },
}

/// How one entity's records are requested, read and erased.
#[derive(Debug, Clone)]
pub struct HttpEntity {
    pub request: HttpRequest,
    /// One per declared field, in order.
    pub fields: Vec<HttpField>,
    pub erase: Option<HttpErase>,
    /// The call that writes a corrected record (rectification), its placeholders filled from the
    /// record with the corrections applied.
    pub update: Option<HttpCall>,
    /// The call that opts a record out of processing (objection).
    pub suppress: Option<HttpCall>,
}

#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub records: JsonPath,
    pub pagination: Option<Pagination>,
    /// The request for many values at once, when the API has one.
    pub many: Option<HttpMany>,
}

/// A request that asks for many identity values in one call ([`ManyDecl`]).
#[derive(Debug, Clone)]
pub struct HttpMany {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub records: JsonPath,
    pub pagination: Option<Pagination>,
    pub max_values: usize,
    /// Whether a template joins the values with commas (`{values}`): a value holding a comma
    /// is then asked for on its own, never split in two.
    pub comma_joined: bool,
}

/// The values of a batched request, comma-joined.
pub const VALUES: &str = "values";
/// The values of a batched request, as a JSON array.
pub const VALUES_JSON: &str = "values:json";

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub enum HttpField {
    Path(JsonPath),
    /// The identity value the record was requested for.
    Lookup,
}

#[derive(Debug, Clone)]
pub struct Pagination {
    pub style: PageStyle,
    pub size_param: Option<String>,
    pub size: usize,
    pub max_pages: usize,
}

#[derive(Debug, Clone)]
pub enum PageStyle {
    Cursor {
        param: String,
        cursor: JsonPath,
        has_more: Option<JsonPath>,
    },
    NextLink {
        next: JsonPath,
    },
    Page {
        param: String,
        first: u64,
    },
    Offset {
        param: String,
    },
}

#[derive(Debug, Clone)]
pub struct HttpErase {
    pub steps: Vec<HttpCall>,
    pub job: Option<HttpJob>,
    /// Batched across requests (`max_batch`): then `steps` is the one batched call.
    pub batch: Option<super::batch::HttpBatch>,
}

#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct HttpJob {
    pub id: JsonPath,
    pub status_path: String,
    pub status: JsonPath,
    pub done: Vec<String>,
    pub failed: Vec<String>,
}

fn json_path(
    file: &SourceFile,
    text: &str,
    span: std::ops::Range<usize>,
    errors: &mut Vec<DeclarationError>,
) -> Option<JsonPath> {
    match JsonPath::parse(text) {
        Ok(path) => Some(path),
        Err(err) => {
            errors.push(file.error(span, format!("invalid JSON path `{text}`: {err}")));
            None
        }
    }
}

fn method(
    file: &SourceFile,
    text: &Spanned<String>,
    allowed: &[&str],
    errors: &mut Vec<DeclarationError>,
) -> Option<reqwest::Method> {
    let upper = text.get_ref().to_uppercase();
    if allowed.contains(&upper.as_str()) {
        reqwest::Method::from_bytes(upper.as_bytes()).ok()
    } else {
        errors.push(file.error(
            text.span(),
            format!("method `{}` is not one of {}", text.get_ref(), allowed.join(", ")),
        ));
        None
    }
}

fn json_body(value: &Option<toml::Value>) -> Option<serde_json::Value> {
    value.as_ref().and_then(|v| serde_json::to_value(v).ok())
}

/// A request's templates (its path, query values and every string of its body), for checking
/// their placeholders, and its body as JSON.
fn request_templates(
    path: &Spanned<String>,
    query: &IndexMap<String, String>,
    body: &Option<toml::Value>,
) -> (Vec<String>, Option<serde_json::Value>) {
    let mut templates = vec![path.get_ref().clone()];
    templates.extend(query.values().cloned());
    let body = json_body(body);
    if let Some(body) = &body {
        body_strings(body, &mut templates);
    }
    (templates, body)
}

/// Every string inside a JSON body, for checking its placeholders.
fn body_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| body_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| body_strings(v, out)),
        _ => {}
    }
}

impl StoreKind for Http {
    fn names(&self) -> &'static [&'static str] {
        &["http"]
    }

    /// Records are erased by the API's own calls, never rewritten in place.
    fn masks_in_place(&self) -> bool {
        false
    }

    fn entity_source(
        &self,
        file: &SourceFile,
        name: &Spanned<String>,
        entity: &EntityDecl<Self>,
        errors: &mut Vec<DeclarationError>,
    ) -> String {
        match &entity.store.request {
            Some(request) => request.get_ref().path.get_ref().clone(),
            None => {
                errors.push(file.error(
                    name.span(),
                    format!(
                        "entity `{}` declares no request: add [entities.{}.request] with path and records",
                        name.get_ref(),
                        name.get_ref()
                    ),
                ));
                String::new()
            }
        }
    }

    fn validate_store(
        &self,
        file: &SourceFile,
        decl: &ConnectorDecl<Self>,
        entities: &[EntityDescriptor],
        errors: &mut Vec<DeclarationError>,
    ) -> Option<Arc<dyn StoreDeclaration>> {
        validate_store(file, decl, entities, errors).map(|store| Arc::new(store) as Arc<dyn StoreDeclaration>)
    }
}

/// Validates the HTTP parts of a connector declaration; `entities` are the validated descriptors.
fn validate_store(
    file: &SourceFile,
    decl: &ConnectorDecl<Http>,
    entities: &[EntityDescriptor],
    errors: &mut Vec<DeclarationError>,
) -> Option<HttpStoreDecl> {
    let before = errors.len();
    let keys = &decl.store;
    let base_url =
        required_env_template(file, &decl.kind, "base_url", "SOME_API_URL", keys.base_url.as_ref(), errors);
    let auth = keys.auth.as_ref().and_then(|auth| {
        let a = auth.get_ref();
        match (&a.bearer, &a.username, &a.password, &a.header, &a.value) {
            (Some(token), None, None, None, None) => env_template(file, token, errors).map(HttpAuth::Bearer),
            (None, Some(user), Some(password), None, None) => {
                match (
                    env_template(file, user, errors),
                    env_template(file, password, errors),
                ) {
                    (Some(username), Some(password)) => Some(HttpAuth::Basic { username, password }),
                    _ => None,
                }
            }
            (None, None, None, Some(name), Some(value)) => {
                env_template(file, value, errors).map(|value| HttpAuth::Header {
                    name: name.clone(),
                    value,
                })
            }
            _ => {
                errors.push(file.error(
                    auth.span(),
                    "auth takes one of: { bearer }, { username, password } or { header, value }",
                ));
                None
            }
        }
    });
    let max_concurrency = keys.max_concurrency.unwrap_or(4);
    if max_concurrency == 0 {
        errors.push(file.error(decl.kind.span(), "max_concurrency must be at least 1"));
    }

    let mut http_entities = Vec::new();
    for ((name, entity), descriptor) in decl.entities.iter().zip(entities) {
        let Some(request) = &entity.store.request else { continue };
        let r = request.get_ref();
        // One request template serves the entity, so it is found by one identity kind.
        if entity.lookup.len() > 1 {
            errors.push(file.error(
                name.span(),
                format!(
                    "HTTP entity `{}` declares {} lookups: its request takes one identity kind ({{value}}); declare one entity per kind",
                    name.get_ref(),
                    entity.lookup.len()
                ),
            ));
        }
        let method = r.method.as_ref().map_or(Some(reqwest::Method::GET), |m| {
            method(file, m, &["GET", "POST"], errors)
        });
        let (templates, body) = request_templates(&r.path, &r.query, &r.body);
        for template in &templates {
            for placeholder in placeholders(template) {
                if placeholder != "value" {
                    errors.push(file.error(
                        request.span(),
                        format!("unknown placeholder `{{{placeholder}}}` in a request: only {{value}} (the identity looked up) is known"),
                    ));
                }
            }
        }
        if !r.path.get_ref().starts_with('/') {
            errors.push(file.error(
                r.path.span(),
                "a request path starts with `/` (it is joined to base_url)",
            ));
        }
        let records = json_path(file, r.records.get_ref(), r.records.span(), errors);
        let pagination = r.pagination.as_ref().and_then(|p| pagination(file, p, errors));
        let many = r
            .many
            .as_ref()
            .and_then(|many| many_decl(file, many, entity, descriptor, errors));

        let mut fields = Vec::new();
        for (field_name, field) in &entity.fields {
            let from_lookup = field
                .store
                .from
                .as_ref()
                .is_some_and(|f| *f.get_ref() == FieldSource::Lookup);
            if from_lookup {
                fields.push(Some(HttpField::Lookup));
                continue;
            }
            let (text, span) = match &field.store.path {
                Some(path) => (path.get_ref().clone(), path.span()),
                None => (format!("$['{}']", field_name.get_ref()), field_name.span()),
            };
            fields.push(json_path(file, &text, span, errors).map(HttpField::Path));
        }
        let erase = entity
            .store
            .erase
            .as_ref()
            .and_then(|erase| erase_decl(file, erase, descriptor, errors));
        let single = |call: &Option<Spanned<CallDecl>>, errors: &mut Vec<DeclarationError>| {
            call.as_ref().and_then(|call| {
                call_decls(file, std::slice::from_ref(call.get_ref()), descriptor, false, errors)
                    .into_iter()
                    .next()
            })
        };
        let update = single(&entity.store.update, errors);
        let suppress = single(&entity.store.suppress, errors);
        if let (Some(method), Some(records), Some(fields)) =
            (method, records, fields.into_iter().collect::<Option<Vec<_>>>())
        {
            http_entities.push(HttpEntity {
                request: HttpRequest {
                    method,
                    path: r.path.get_ref().clone(),
                    query: r.query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    body,
                    records,
                    pagination,
                    many,
                },
                fields,
                erase,
                update,
                suppress,
            });
        }
    }
    let health = keys.health.as_ref().map(|health| {
        let path = &health.get_ref().path;
        if !path.get_ref().starts_with('/') || !placeholders(path.get_ref()).is_empty() {
            errors.push(file.error(
                path.span(),
                "the health path starts with `/` (it is joined to base_url) and takes no placeholders",
            ));
        }
        path.get_ref().clone()
    });
    if errors.len() != before {
        return None;
    }
    Some(HttpStoreDecl {
        health,
        base_url: base_url?,
        auth,
        max_concurrency: max_concurrency.max(1),
        max_retries: keys.max_retries.unwrap_or(5),
        entities: http_entities,
    })
}

/// Validates a request for many values at once. Its answer must say whose each record is, so
/// every field is read from the record (none `from = "lookup"`): the executor hands a record to
/// the people whose value its lookup field holds.
fn many_decl(
    file: &SourceFile,
    declared: &Spanned<ManyDecl>,
    entity: &EntityDecl<Http>,
    descriptor: &EntityDescriptor,
    errors: &mut Vec<DeclarationError>,
) -> Option<HttpMany> {
    let m = declared.get_ref();
    let before = errors.len();
    let method = m.method.as_ref().map_or(Some(reqwest::Method::GET), |text| {
        method(file, text, &["GET", "POST"], errors)
    });
    let (templates, body) = request_templates(&m.path, &m.query, &m.body);
    let mut uses_values = false;
    let mut comma_joined = false;
    for template in &templates {
        for placeholder in placeholders(template) {
            match placeholder {
                VALUES => {
                    uses_values = true;
                    comma_joined = true;
                }
                VALUES_JSON => uses_values = true,
                other => errors.push(file.error(
                    declared.span(),
                    format!(
                        "unknown placeholder `{{{other}}}` in a request for many values: only {{values}} (comma-separated) and {{values:json}} (a JSON array) are known"
                    ),
                )),
            }
        }
    }
    if !uses_values {
        errors.push(file.error(
            declared.span(),
            "a request for many values carries them: put {values} or {values:json} in its path, query or body",
        ));
    }
    if !m.path.get_ref().starts_with('/') {
        errors.push(file.error(m.path.span(), "a request path starts with `/` (it is joined to base_url)"));
    }
    if let Some((name, _)) = entity
        .fields
        .iter()
        .find(|(_, f)| f.store.from.as_ref().is_some_and(|f| *f.get_ref() == FieldSource::Lookup))
    {
        errors.push(file.error(
            declared.span(),
            format!(
                "field `{}` is `from = \"lookup\"`, but an answer for many values cannot say which value each record was asked for: read it from the record, or drop `many`",
                name.get_ref()
            ),
        ));
    }
    if descriptor.lookups.is_empty() {
        errors.push(file.error(declared.span(), "a request for many values needs the entity's lookup field"));
    }
    let max_values = match &m.max_values {
        None => 100,
        Some(n) if (2..=1000).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            errors.push(file.error(n.span(), "max_values is between 2 and 1000"));
            0
        }
    };
    let records = json_path(file, m.records.get_ref(), m.records.span(), errors);
    let pagination = m.pagination.as_ref().and_then(|p| pagination(file, p, errors));
    if errors.len() != before {
        return None;
    }
    Some(HttpMany {
        method: method?,
        path: m.path.get_ref().clone(),
        query: m.query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        body,
        records: records?,
        pagination,
        max_values,
        comma_joined,
    })
}

fn pagination(
    file: &SourceFile,
    declared: &Spanned<PaginationDecl>,
    errors: &mut Vec<DeclarationError>,
) -> Option<Pagination> {
    let p = declared.get_ref();
    let span = declared.span();
    let need = |what: Option<&String>, key: &str, errors: &mut Vec<DeclarationError>| -> Option<String> {
        if what.is_none() {
            errors.push(file.error(
                span.clone(),
                format!("pagination style `{}` needs `{key}`", p.style),
            ));
        }
        what.cloned()
    };
    let path = |text: Option<String>, errors: &mut Vec<DeclarationError>| {
        text.and_then(|t| json_path(file, &t, span.clone(), errors))
    };
    let style = match p.style.as_str() {
        "cursor" => {
            let param = need(p.param.as_ref(), "param", errors);
            let cursor = need(p.cursor.as_ref(), "cursor", errors);
            let cursor = path(cursor, errors);
            let has_more = path(p.has_more.clone(), errors);
            PageStyle::Cursor {
                param: param?,
                cursor: cursor?,
                has_more,
            }
        }
        "next_link" => {
            let next = need(p.next.as_ref(), "next", errors);
            PageStyle::NextLink {
                next: path(next, errors)?,
            }
        }
        "page" => PageStyle::Page {
            param: need(p.param.as_ref(), "param", errors)?,
            first: p.first_page.unwrap_or(1),
        },
        "offset" => PageStyle::Offset {
            param: need(p.param.as_ref(), "param", errors)?,
        },
        other => {
            errors.push(file.error(
                span,
                format!("unknown pagination style `{other}`: expected cursor, next_link, page or offset"),
            ));
            return None;
        }
    };
    Some(Pagination {
        style,
        size_param: p.size_param.clone(),
        size: p.size.unwrap_or(100).max(1),
        max_pages: p.max_pages.unwrap_or(100).max(1),
    })
}

/// Calls with their placeholders checked against the entity's fields.
/// A list placeholder (`{field[]}`) is left to the batched erase's own check (`lists`), refused
/// elsewhere.
pub(super) fn call_decls(
    file: &SourceFile,
    declared: &[CallDecl],
    entity: &EntityDescriptor,
    lists: bool,
    errors: &mut Vec<DeclarationError>,
) -> Vec<HttpCall> {
    let mut calls = Vec::new();
    for step in declared {
        let method = method(file, &step.method, &["DELETE", "POST", "PUT", "PATCH"], errors);
        let body = json_body(&step.body);
        let mut templates = vec![step.path.get_ref().clone()];
        if let Some(body) = &body {
            body_strings(body, &mut templates);
        }
        for template in &templates {
            for placeholder in placeholders(template) {
                if placeholder.ends_with("[]") {
                    if !lists {
                        errors.push(file.error(
                            step.path.span(),
                            format!(
                                "the list placeholder `{{{placeholder}}}` is only for the step of a batched erase (declare max_batch)"
                            ),
                        ));
                    }
                    continue;
                }
                if !entity.fields.iter().any(|f| f.name == placeholder) {
                    errors.push(file.error(
                        step.path.span(),
                        format!(
                            "placeholder `{{{placeholder}}}` names no declared field of `{}`",
                            entity.name
                        ),
                    ));
                }
            }
        }
        if let Some(method) = method {
            calls.push(HttpCall {
                method,
                path: step.path.get_ref().clone(),
                body,
            });
        }
    }
    calls
}

fn erase_decl(
    file: &SourceFile,
    declared: &Spanned<EraseDecl>,
    entity: &EntityDescriptor,
    errors: &mut Vec<DeclarationError>,
) -> Option<HttpErase> {
    let e = declared.get_ref();
    if e.steps.is_empty() {
        errors.push(file.error(declared.span(), "erase needs at least one step"));
    }
    let steps = call_decls(file, &e.steps, entity, e.max_batch.is_some(), errors);
    let job = match &e.job {
        None => None,
        Some(job) => {
            if !job.status_path.get_ref().contains("{job}") {
                errors.push(file.error(job.status_path.span(), "status_path must contain {job}"));
            }
            if job.done.is_empty() || job.failed.is_empty() {
                errors.push(file.error(
                    job.id.span(),
                    "a job declares the statuses that mean done and failed",
                ));
            }
            let id = json_path(file, job.id.get_ref(), job.id.span(), errors);
            let status = json_path(file, job.status.get_ref(), job.status.span(), errors);
            match (id, status) {
                (Some(id), Some(status)) => Some(HttpJob {
                    id,
                    status_path: job.status_path.get_ref().clone(),
                    status,
                    done: job.done.clone(),
                    failed: job.failed.clone(),
                }),
                _ => None,
            }
        }
    };
    let batch = super::batch::batch_decl(file, declared, entity, e.job.is_some(), errors);
    Some(HttpErase { steps, job, batch })
}
