//! The console's sign-in with an identity provider (authorization code + PKCE), against a small
//! real provider on 127.0.0.1: `/authorize` sends the browser back with a code at once (the
//! person is taken as signed in), `/token` checks the code, the client, the redirect URI and the
//! PKCE verifier against the S256 challenge, and issues a JWT the gateway checks against the
//! provider's key set (a JWKS file, HS256 as in the other OIDC tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use sha2::Digest;
use subject_gateway::config::Config;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::console::Browser;

const SECRET: &[u8] = b"console-provider-secret-32-bytes!!";
const CLIENT: &str = "subject-gateway-console";

/// A code issued and not yet exchanged: its PKCE challenge, client and redirect URI.
type Codes = Arc<Mutex<HashMap<String, (String, String, String)>>>;

#[derive(Clone)]
struct Provider {
    codes: Codes,
    /// Exchanges refused, with why (the test asserts there are none).
    refusals: Arc<Mutex<Vec<String>>>,
}

async fn authorize(State(provider): State<Provider>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |name: &str| q.get(name).cloned().unwrap_or_default();
    if get("response_type") != "code" || get("code_challenge_method") != "S256" || get("client_id") != CLIENT
    {
        return (StatusCode::BAD_REQUEST, "unsupported authorization request").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    provider
        .codes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            code.clone(),
            (get("code_challenge"), get("client_id"), get("redirect_uri")),
        );
    let Ok(mut back) = reqwest::Url::parse(&get("redirect_uri")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(provider): State<Provider>, Form(form): Form<HashMap<String, String>>) -> Response {
    let get = |name: &str| form.get(name).cloned().unwrap_or_default();
    let issued = provider
        .codes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&get("code"));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    let refusal = match issued {
        None => Some("unknown or used code"),
        Some(_) if get("grant_type") != "authorization_code" => Some("grant_type"),
        Some((expected, client, redirect)) => {
            if expected != challenge {
                Some("PKCE verifier does not match the challenge")
            } else if client != get("client_id") || redirect != get("redirect_uri") {
                Some("client or redirect URI differ")
            } else {
                None
            }
        }
    };
    let cors = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    if let Some(why) = refusal {
        provider
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(why.to_owned());
        return (
            StatusCode::BAD_REQUEST,
            cors,
            axum::Json(json!({ "error": "invalid_grant", "error_description": why })),
        )
            .into_response();
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("console-k1".into());
    let claims = json!({
        "sub": "dpo.jane@company.example",
        "roles": ["dpo"],
        "iss": "https://idp.test/",
        "aud": "subject-gateway",
        "exp": chrono::Utc::now().timestamp() + 300,
    });
    match EncodingKey::from_secret(SECRET).and_then(|key| encode(&header, &claims, &key)) {
        Ok(jwt) => (
            cors,
            axum::Json(json!({ "access_token": jwt, "token_type": "Bearer", "expires_in": 300 })),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[tokio::test]
async fn the_console_signs_in_with_the_identity_provider_by_code_and_pkce() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(1).await?;
    let provider = Provider {
        codes: Arc::default(),
        refusals: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let idp = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/authorize", axum::routing::get(authorize))
        .route("/token", axum::routing::post(token))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    std::fs::write(
        &jwks,
        json!({ "keys": [{ "kty": "oct", "kid": "console-k1", "alg": "HS256", "k": k }] }).to_string(),
    )?;
    let copy = ConfigCopy::new()?;
    copy.edit(
        "gateway.toml",
        "# [auth.oidc]",
        &format!(
            "[auth.oidc]\njwks = \"{}\"\nissuer = \"https://idp.test/\"\naudience = \"subject-gateway\"\n\
             [auth.oidc.console]\nclient_id = \"{CLIENT}\"\nauthorization_endpoint = \"http://{idp}/authorize\"\n\
             token_endpoint = \"http://{idp}/token\"\n# ",
            jwks.display()
        ),
    )?;
    let gateway =
        TestGateway::start_with(Config::load(&copy.gateway_toml())?, world.env(), Vec::new()).await?;

    // The session endpoint offers it, and the CSP lets the page reach the token endpoint only.
    let session = reqwest::get(gateway.url("/console/session")).await?;
    assert_eq!(session.status(), 401);
    let csp = session
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains(&format!("connect-src 'self' http://{idp};")),
        "{csp}"
    );
    let body: serde_json::Value = session.json().await?;
    assert_eq!(body["oidc"]["clientId"], CLIENT, "{body}");

    let browser = Browser::start().await?;
    browser.goto(&gateway.url("/console/")).await?;
    browser.click("#signin-oidc").await?;
    // Back from the provider with a code: exchanged, then the purpose is chosen as with a key.
    browser.select("#purpose", "essential").await?;
    browser.click("#signin-submit").await?;
    let who = browser.text_with("#who", "dpo").await?;
    assert!(who.contains("jwt:"), "{who}");
    assert!(!who.contains("jane"), "{who}");
    browser.find("#queue").await?;
    let url = browser.client.current_url().await?.to_string();
    assert!(!url.contains("code=") && !url.contains("state="), "{url}");
    assert!(
        provider
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    );
    // The token is used as Bearer: the page's own GraphQL calls pass.
    browser.text_with("#queue", "No requests match").await?;
    Ok(())
}
