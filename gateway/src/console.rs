//! The privacy operations console at `/console/`: a small client-side app (plain ES modules, one
//! stylesheet, no build step) embedded in the binary and served under a strict
//! Content-Security-Policy. It talks to `POST /graphql` with the caller's own API key and stated
//! purpose, so every check the API makes applies to it unchanged.
//!
//! The only endpoint of its own is `GET /console/session`: the role and the purposes a credential
//! may state, read from `Authorization` alone (like `/metrics`), so that the sign-in page can offer
//! the purposes before one is chosen (`POST /graphql` needs `X-Purpose` already). The key lives in
//! the browser's `sessionStorage`; it is never put in a URL and the server never logs it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::Authenticator;

/// Scripts and styles from the gateway only, no inline script, and connections to this origin
/// only (`connect-src 'self'`); nothing may frame the console.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/session", get(session))
        .with_state(auth)
}

/// Headers every console answer carries.
fn harden(response: &mut Response, cache: &'static str) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

async fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    harden(&mut response, "no-store");
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, body, content_type)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *content_type)], *body).into_response();
    // Not cached across versions of the binary: the assets change with it.
    harden(&mut response, "no-cache");
    response
}

/// `GET /console/session`: the credential's role, operations and purposes (no purpose needed),
/// or the same 401 `POST /graphql` gives a wrong key.
async fn session(State(auth): State<Arc<Authenticator>>, headers: HeaderMap) -> Response {
    let mut response = match auth.identify(&headers).await {
        Ok((principal, role)) => axum::Json(serde_json::json!({
            "principal": principal,
            "role": role.name,
            "operations": role.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "purposes": role.purposes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(error) => (
            error.status(),
            axum::Json(serde_json::json!({
                "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }],
            })),
        )
            .into_response(),
    };
    harden(&mut response, "no-store");
    response
}
