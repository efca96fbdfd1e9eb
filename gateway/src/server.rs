//! The HTTP server: `POST /graphql`, subscriptions on `/graphql/ws`, export downloads on
//! `/exports/{id}`, GraphiQL at `/`, `GET /healthz`; HTTPS with rustls when
//! `[server.tls]` names a certificate and key; graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use subject_connectors::codes::ErrorCode;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use axum::Json;
use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::{FromRequest, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;
use subject_schema::SubjectService;
use subject_schema::audit::AuditLog;
use subject_schema::requests::PrivacyRequests;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::config::{ServerSettings, TlsSettings};
use crate::conn::ConnectionLimits;
use crate::limiter::{CallerLimiter, CallerLimits};
use crate::requests::PrivacyEngine;

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1) from
/// PEM files.
pub fn tls_config(tls: &TlsSettings) -> Result<axum_server::tls_rustls::RustlsConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_error = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |error: rustls::pki_types::pem::Error| TlsError::Pem {
            path: path.clone(),
            reason: error.to_string(),
        }
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(pem_error(&tls.cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(&tls.cert_file))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(pem_error(&tls.key_file))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(
        config,
    )))
}

/// Serves `router` over HTTPS on `listener` within `limits` (the TLS handshake within the
/// header-read timeout) until `shutdown` resolves, then drains in-flight requests.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    router: Router,
    config: axum_server::tls_rustls::RustlsConfig,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    crate::conn::serve(listener, router, limits, Some(config.get_inner()), shutdown).await
}

#[derive(Clone)]
struct AppState {
    service: Arc<SubjectService>,
    auth: Arc<Authenticator>,
    audit: Arc<dyn AuditLog>,
    requests: Arc<PrivacyEngine>,
    limiter: Arc<CallerLimiter>,
    request_timeout: Duration,
    max_response_bytes: usize,
}

/// The gateway's routes for `service`; `/graphql` admits the callers `auth` lets in, records
/// their reads in `audit` and hands privacy requests to `requests`; `/graphql/ws` carries
/// subscriptions; `/exports/{id}` serves export bundles to signed links.
pub fn router(
    service: Arc<SubjectService>,
    auth: Arc<Authenticator>,
    audit: Arc<dyn AuditLog>,
    requests: Arc<PrivacyEngine>,
    settings: &ServerSettings,
) -> Router {
    let engine = requests.clone();
    let mut router = Router::new()
        .route("/graphql", get(graphiql_or_405).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route(
            "/exports/{id}",
            get(move |path, query| crate::requests::export::download(State(engine.clone()), path, query)),
        )
        .route("/healthz", get(|| async { "ok" }));
    if settings.graphiql {
        router = router
            .route("/", get(graphiql))
            .route("/graphiql/{file}", get(graphiql_asset));
    }
    if settings.console {
        router = router.merge(crate::console::router(auth.clone()));
    }
    // Metrics on the main listener need credentials; `metrics_listen` serves them without,
    // on an internal address of their own (see `metrics_router`).
    if settings.metrics {
        // Install the recorder now, so that everything from the first request on is counted.
        let _ = crate::telemetry::metrics_handle();
        if settings.metrics_listen.is_none() {
            router = router.route("/metrics", get(metrics));
        }
    }
    router
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(crate::telemetry::track_requests))
        // GraphQL requests answer their own timeout (with a code); this one is for the rest.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(settings.request_timeout_ms.saturating_add(1000)),
        ))
        .with_state(AppState {
            service,
            auth,
            audit,
            requests,
            limiter: CallerLimiter::new(CallerLimits {
                concurrency: settings.per_caller_concurrency,
                rate: settings.per_caller_rate,
                burst: settings.per_caller_burst,
            }),
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
            max_response_bytes: settings.max_response_bytes,
        })
}

/// How often an open websocket's credentials are checked again (a revoked or expired key or
/// token closes it within this and one lookup).
const WS_RECHECK: Duration = Duration::from_secs(2);

/// Subscriptions over a websocket (`graphql-transport-ws` or the older `graphql-ws`), for callers
/// the headers of the upgrade request authenticate. Only subscriptions: queries and mutations go
/// to `POST /graphql` with its limits; every operation re-checks the credentials and the same
/// cost limits; the socket is closed soon after its key is revoked or its token expires.
async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let caller = match state.auth.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(error) => return (error.status(), error.to_string()).into_response(),
    };
    // Opening a socket counts against the caller's rate like a request.
    if let Err(refusal) = state.limiter.admit(&caller.principal) {
        return too_many(refusal);
    }
    let mut data = async_graphql::Data::default();
    data.insert(caller);
    data.insert(state.audit.clone());
    let requests: Arc<dyn PrivacyRequests> = state.requests.clone();
    data.insert(requests);
    let executor = SubscriptionsOnly {
        service: state.service.clone(),
        auth: state.auth.clone(),
        headers: Arc::new(headers.clone()),
    };
    let auth = state.auth.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            let serve = GraphQLWebSocket::new(stream, executor, protocol)
                .with_data(data)
                .serve();
            let watch = async {
                loop {
                    tokio::time::sleep(WS_RECHECK).await;
                    if !auth.still_valid(&headers).await {
                        tracing::info!("closing a websocket whose credentials are no longer valid");
                        break;
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                () = watch => {}
            }
        })
}

/// The executor behind `/graphql/ws`: subscriptions only, each checked like a POST.
#[derive(Clone)]
struct SubscriptionsOnly {
    service: Arc<SubjectService>,
    auth: Arc<Authenticator>,
    headers: Arc<HeaderMap>,
}

fn ws_refusal(message: &str, code: &'static str) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![subject_schema::coded_error(message.to_owned(), code)])
}

impl async_graphql::Executor for SubscriptionsOnly {
    async fn execute(&self, _request: async_graphql::Request) -> async_graphql::Response {
        ws_refusal(
            "the websocket carries subscriptions only; send queries and mutations to POST /graphql",
            ErrorCode::SubscriptionsOnly.as_str(),
        )
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<async_graphql::Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        use futures::StreamExt;
        let this = self.clone();
        futures::stream::once(async move {
            let refuse = |message: &str, code| {
                futures::stream::once(std::future::ready(ws_refusal(message, code))).boxed()
            };
            if !this.auth.still_valid(&this.headers).await {
                return refuse(
                    "the credentials are no longer valid",
                    ErrorCode::InvalidCredentials.as_str(),
                );
            }
            let prepared = match this.service.prepare(&request.query) {
                Ok(prepared) => prepared,
                Err(error) => {
                    return futures::stream::once(std::future::ready(async_graphql::Response::from_errors(
                        vec![error],
                    )))
                    .boxed();
                }
            };
            use async_graphql::parser::types::{DocumentOperations, OperationType};
            let document = &prepared.document;
            let ty = match (&document.operations, request.operation_name.as_deref()) {
                (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
                (DocumentOperations::Multiple(operations), Some(name)) => {
                    operations.get(name).map(|operation| operation.node.ty)
                }
                (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                    operations.values().next().map(|operation| operation.node.ty)
                }
                _ => None,
            };
            if ty != Some(OperationType::Subscription) {
                return refuse(
                    "the websocket carries subscriptions only; send queries and mutations to POST /graphql",
                    ErrorCode::SubscriptionsOnly.as_str(),
                );
            }
            request.set_parsed_query(document.clone());
            this.service
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default())
        })
        .flatten()
        .boxed()
    }
}

/// An error answer in GraphQL's shape, with a stable code.
fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(serde_json::json!({
            "data": null,
            "errors": [{ "message": message, "extensions": { "code": code } }],
        })),
    )
        .into_response()
}

/// `429` with `Retry-After` for a caller over its limits.
fn too_many(refusal: crate::limiter::Refusal) -> Response {
    metrics::counter!("subject_gateway_rate_limited_total", "code" => refusal.code()).increment(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        &refusal.to_string(),
        refusal.code(),
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&refusal.retry_after_secs().to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// Aborts a spawned task when dropped (when the client goes away or the request times out).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `POST /graphql`: the caller is authenticated and admitted by the per-caller limits before
/// the body is read; the request runs in a task of its own under the request timeout (so a
/// request busy on a core cannot hold back the answer), and an answer larger than
/// `max_response_bytes` is replaced by an error.
async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let caller = match state.auth.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(error) => return error_response(error.status(), &error.to_string(), error.code()),
    };
    let admitted = match state.limiter.admit(&caller.principal) {
        Ok(admitted) => admitted,
        Err(refusal) => return too_many(refusal),
    };
    let request = match <GraphQLRequest as FromRequest<()>>::from_request(request, &()).await {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let span = tracing::info_span!(
        "graphql.request",
        otel.kind = "server",
        role = %caller.role.name,
        purpose = %caller.purpose,
        errors = tracing::field::Empty,
    );
    let requests: Arc<dyn PrivacyRequests> = state.requests.clone();
    let mut request = request
        .into_inner()
        .data(caller)
        .data(state.audit.clone())
        .data(requests);
    // webhooks: the outbox behind `webhookDeliveries` and `redeliverWebhook`.
    if let Some(webhooks) = state.requests.webhooks() {
        request = request.data(webhooks);
    }
    // objections bind reads; retention's schedule (issue 13): both kept by the engine.
    let objections: Arc<dyn subject_schema::objections::Objections> = state.requests.clone();
    let retention: Arc<dyn subject_schema::retention::RetentionSchedule> = state.requests.clone();
    request = request.data(objections).data(retention);
    let service = state.service.clone();
    let mut task = AbortOnDrop(tokio::spawn(
        async move { service.execute(request).await }.instrument(span.clone()),
    ));
    let response = match tokio::time::timeout(state.request_timeout, &mut task.0).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed",
                "INTERNAL",
            );
        }
        Err(_) => {
            metrics::counter!("subject_gateway_graphql_errors_total", "code" => ErrorCode::RequestTimeout.as_str())
                .increment(1);
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request took longer than {} ms (server.request_timeout_ms)",
                    state.request_timeout.as_millis()
                ),
                ErrorCode::RequestTimeout.as_str(),
            );
        }
    };
    drop(admitted);
    span.record("errors", response.errors.len());
    for error in &response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|c| match c {
                async_graphql::Value::String(code) => Some(code.clone()),
                _ => None,
            })
            .filter(|code| code.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .unwrap_or_else(|| "OTHER".into());
        metrics::counter!("subject_gateway_graphql_errors_total", "code" => code).increment(1);
    }
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be encoded",
                "INTERNAL",
            );
        }
    };
    if body.len() > state.max_response_bytes {
        metrics::counter!("subject_gateway_graphql_errors_total", "code" => ErrorCode::ResponseTooLarge.as_str())
            .increment(1);
        return error_response(
            StatusCode::OK,
            &format!(
                "the answer is {} bytes; at most {} are sent (server.max_response_bytes): ask for fewer subjects or fields",
                body.len(),
                state.max_response_bytes
            ),
            ErrorCode::ResponseTooLarge.as_str(),
        );
    }
    let mut http = Response::new(axum::body::Body::from(body));
    http.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/graphql-response+json"),
    );
    http.headers_mut().extend(response.http_headers);
    http
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.auth.identify(&headers).await {
        Ok(_) => crate::telemetry::metrics_handle().render().into_response(),
        Err(error) => (error.status(), error.to_string()).into_response(),
    }
}

/// `/metrics` alone, without credentials, for an internal address (`server.metrics_listen`).
pub fn metrics_router() -> Router {
    let handle = crate::telemetry::metrics_handle();
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

/// The Content-Security-Policy of the GraphiQL page: everything from the gateway itself, nothing
/// from anywhere else (GraphiQL sets inline styles, hence `'unsafe-inline'` for styles only).
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const GRAPHIQL_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Subject Gateway</title>
    <link rel="stylesheet" href="/graphiql/graphiql.min.css" />
    <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="/graphiql/react.production.min.js"></script>
    <script src="/graphiql/react-dom.production.min.js"></script>
    <script src="/graphiql/graphiql.min.js"></script>
    <script src="/graphiql/init.js"></script>
  </body>
</html>
"#;

/// GraphiQL, from assets the gateway serves itself (no CDN: it works offline), under a CSP.
async fn graphiql() -> Response {
    let mut response = Html(GRAPHIQL_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(GRAPHIQL_CSP),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::X_FRAME_OPTIONS,
        axum::http::HeaderValue::from_static("DENY"),
    );
    response
}

/// GraphiQL's scripts and stylesheet, vendored in `gateway/assets/graphiql` (see LICENSES.md).
async fn graphiql_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../assets/graphiql/graphiql.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "graphiql.min.css" => (
            include_bytes!("../assets/graphiql/graphiql.min.css"),
            "text/css; charset=utf-8",
        ),
        "react.production.min.js" => (
            include_bytes!("../assets/graphiql/react.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/graphiql/react-dom.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "init.js" => (
            include_bytes!("../assets/graphiql/init.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn graphiql_or_405() -> impl IntoResponse {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "POST GraphQL requests to /graphql; GraphiQL is at /",
    )
}

/// Serves `router` on `listener` with the default connection limits until `shutdown`
/// resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve(listener, router, ConnectionLimits::default(), None, shutdown).await
}

/// Serves `router` on `listener` within `limits` (see [`crate::conn`]) until `shutdown`
/// resolves, then drains in-flight requests.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve(listener, router, limits, None, shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
