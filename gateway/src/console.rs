//! The privacy operations console at `/console/`: a small client-side app (plain ES modules, one
//! stylesheet, no build step) embedded in the binary and served under a strict
//! Content-Security-Policy. It talks to `POST /graphql` with the caller's own API key and stated
//! purpose, so every check the API makes applies to it unchanged.
//!
//! The only endpoint of its own is `GET /console/session`: the role and the purposes a credential
//! may state, read from `Authorization` alone (like `/metrics`), so that the sign-in page can offer
//! the purposes before one is chosen (`POST /graphql` needs `X-Purpose` already). Every answer of
//! it, a refusal included, says whether sign-in with the identity provider is offered
//! (`[auth.oidc.console]`: authorization code + PKCE, the page a public client) and where. The
//! key or token lives in the browser's `sessionStorage`; it is never put in a URL and the server
//! never logs it. With OIDC sign-in, the CSP lets the page connect to the token endpoint's origin
//! (the code is exchanged by the browser).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::Authenticator;

/// Scripts and styles from the gateway only, no inline script, and connections to this origin
/// only (`connect-src 'self'`, the websocket included); nothing may frame the console.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the console's handlers share.
#[derive(Clone)]
struct Console {
    auth: Arc<Authenticator>,
    /// [`CONSOLE_CSP`], plus the token endpoint's origin in `connect-src` with OIDC sign-in.
    csp: HeaderValue,
    /// What `/console/session` says of OIDC sign-in (`null`: not offered).
    oidc: serde_json::Value,
}

/// Every asset of the console, by the name it is served under (`/console/assets/{name}`).
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("app.js", include_bytes!("../assets/console/app.js"), JS),
    ("api.js", include_bytes!("../assets/console/api.js"), JS),
    ("ui.js", include_bytes!("../assets/console/ui.js"), JS),
    ("signin.js", include_bytes!("../assets/console/signin.js"), JS),
    ("queue.js", include_bytes!("../assets/console/queue.js"), JS),
    ("detail.js", include_bytes!("../assets/console/detail.js"), JS),
    ("new.js", include_bytes!("../assets/console/new.js"), JS),
    ("person.js", include_bytes!("../assets/console/person.js"), JS),
    (
        "connectors.js",
        include_bytes!("../assets/console/connectors.js"),
        JS,
    ),
    ("audit.js", include_bytes!("../assets/console/audit.js"), JS),
    ("actions.js", include_bytes!("../assets/console/actions.js"), JS),
    ("live.js", include_bytes!("../assets/console/live.js"), JS),
    ("oidc.js", include_bytes!("../assets/console/oidc.js"), JS),
    ("webhooks.js", include_bytes!("../assets/console/webhooks.js"), JS),
    (
        "retention.js",
        include_bytes!("../assets/console/retention.js"),
        JS,
    ),
    (
        "console.css",
        include_bytes!("../assets/console/console.css"),
        CSS,
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const PAGE: &str = include_str!("../assets/console/index.html");

/// The console's routes; `auth` answers `/console/session`.
pub fn router<S: Clone + Send + Sync + 'static>(auth: Arc<Authenticator>) -> Router<S> {
    let offered = auth
        .console_oidc()
        .and_then(|oidc| oidc.token_origin().ok().map(|origin| (oidc, origin)));
    let (csp, oidc) = match offered {
        Some((oidc, origin)) => (
            CONSOLE_CSP.replace("connect-src 'self'", &format!("connect-src 'self' {origin}")),
            serde_json::json!({
                "clientId": oidc.client_id,
                "authorizationEndpoint": oidc.authorization_endpoint,
                "tokenEndpoint": oidc.token_endpoint,
                "scope": oidc.scope,
            }),
        ),
        None => (CONSOLE_CSP.to_owned(), serde_json::Value::Null),
    };
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CONSOLE_CSP));
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/session", get(session))
        .with_state(Console { auth, csp, oidc })
}

/// Headers every console answer carries.
fn harden(response: &mut Response, csp: &HeaderValue, cache: &'static str) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

async fn page(State(console): State<Console>) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    harden(&mut response, &console.csp, "no-store");
    response
}

async fn asset(State(console): State<Console>, Path(file): Path<String>) -> Response {
    let Some((_, body, content_type)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *content_type)], *body).into_response();
    // Not cached across versions of the binary: the assets change with it.
    harden(&mut response, &console.csp, "no-cache");
    response
}

/// `GET /console/session`: the credential's role, operations and purposes (no purpose needed),
/// or the same 401 `POST /graphql` gives a wrong key (or none); either way whether OIDC sign-in
/// is offered (`oidc`).
async fn session(State(console): State<Console>, headers: HeaderMap) -> Response {
    let mut response = match console.auth.identify(&headers).await {
        Ok((principal, role)) => axum::Json(serde_json::json!({
            "principal": principal,
            "role": role.name,
            "operations": role.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "purposes": role.purposes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "oidc": console.oidc,
        }))
        .into_response(),
        Err(error) => (
            error.status(),
            axum::Json(serde_json::json!({
                "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }],
                "oidc": console.oidc,
            })),
        )
            .into_response(),
    };
    harden(&mut response, &console.csp, "no-store");
    response
}
