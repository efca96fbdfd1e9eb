//! The HTTP server: `POST /graphql`, subscriptions on `/graphql/ws`, export downloads on
//! `/exports/{id}`, GraphiQL at `/`, `GET /healthz`; HTTPS with rustls when
//! `[server.tls]` names a certificate and key; graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::HeaderMap;
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

/// Serves `router` over HTTPS on `listener` until `shutdown` resolves, then drains in-flight
/// requests (for at most 10 seconds).
pub async fn serve_tls(
    listener: std::net::TcpListener,
    router: Router,
    config: axum_server::tls_rustls::RustlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .serve(router.into_make_service())
        .await
}

#[derive(Clone)]
struct AppState {
    service: Arc<SubjectService>,
    auth: Arc<Authenticator>,
    audit: Arc<dyn AuditLog>,
    requests: Arc<PrivacyEngine>,
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
        router = router.route("/", get(graphiql));
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
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(settings.request_timeout_ms),
        ))
        .with_state(AppState {
            service,
            auth,
            audit,
            requests,
        })
}

/// Subscriptions over a websocket (`graphql-transport-ws` or the older `graphql-ws`), for callers
/// the headers of the upgrade request authenticate.
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
    let schema = state.service.schema.clone();
    let mut data = async_graphql::Data::default();
    data.insert(caller);
    data.insert(state.audit.clone());
    let requests: Arc<dyn PrivacyRequests> = state.requests.clone();
    data.insert(requests);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .with_data(data)
                .serve()
        })
}

async fn graphql(State(state): State<AppState>, headers: HeaderMap, request: GraphQLRequest) -> Response {
    match state.auth.authenticate(&headers).await {
        Ok(caller) => {
            let span = tracing::info_span!(
                "graphql.request",
                otel.kind = "server",
                role = %caller.role.name,
                purpose = %caller.purpose,
                errors = tracing::field::Empty,
            );
            let requests: Arc<dyn PrivacyRequests> = state.requests.clone();
            let request = request
                .into_inner()
                .data(caller)
                .data(state.audit.clone())
                .data(requests);
            let response = state.service.execute(request).instrument(span.clone()).await;
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
            let response: GraphQLResponse = response.into();
            response.into_response()
        }
        Err(error) => (
            error.status(),
            Json(serde_json::json!({
                "data": null,
                "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }],
            })),
        )
            .into_response(),
    }
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

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Subject Gateway")
            .finish(),
    )
}

async fn graphiql_or_405() -> impl IntoResponse {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "POST GraphQL requests to /graphql; GraphiQL is at /",
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
