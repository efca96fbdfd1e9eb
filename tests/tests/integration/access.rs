//! Who may see what: API keys and OIDC tokens, roles, data categories and purposes.

use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::{at, len};

const PERSON: &str = "{
  accounts { users { email fullName dateOfBirth } sessions { ipAddress } }
  uploads { images { filename } }
  analytics { profiles { distinctId } }
}";

fn query(selection: &str) -> String {
    format!("query($v: String!) {{ subject(identity: {{kind: EMAIL, value: $v}}) {selection} }}")
}

fn codes(response: &serde_json::Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_request_is_authenticated_and_states_a_purpose() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let gateway = world.gateway().await?;
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "query": "{ connectors { name } }" });
    let post = |headers: Vec<(&'static str, String)>| {
        let mut request = client.post(gateway.url("/graphql")).json(&body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };

    let anonymous = post(vec![]).await?;
    assert_eq!(anonymous.status(), 401);
    let anonymous: serde_json::Value = anonymous.json().await?;
    assert_eq!(anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    let forged = post(vec![("authorization", "Bearer sgk_0123456789abcdef_00ff".into())]).await?;
    assert_eq!(forged.status(), 401);

    let key = gateway.key("support").await?;
    let no_purpose = post(vec![("authorization", format!("Bearer {key}"))]).await?;
    assert_eq!(no_purpose.status(), 400);
    let unknown = post(vec![
        ("authorization", format!("Bearer {key}")),
        ("x-purpose", "fun".into()),
    ])
    .await?;
    assert_eq!(unknown.status(), 400);
    let not_for_support = post(vec![
        ("authorization", format!("Bearer {key}")),
        ("x-purpose", "marketing".into()),
    ])
    .await?;
    assert_eq!(not_for_support.status(), 403);
    let fine = post(vec![
        ("authorization", format!("Bearer {key}")),
        ("x-purpose", "essential.service".into()),
    ])
    .await?;
    assert_eq!(fine.status(), 200);

    // Health needs no credentials.
    assert_eq!(client.get(gateway.url("/healthz")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn revoked_keys_stop_working_and_rotated_keys_replace_them() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let key = gateway.key("support").await?;
    let ask = |key: String| {
        let gateway = &gateway;
        async move {
            gateway
                .graphql_as(
                    &key,
                    "essential.service",
                    "{ connectors { name } }",
                    serde_json::json!({}),
                )
                .await
        }
    };
    assert!(ask(key.clone()).await?.get("errors").is_none());

    let id = key.split('_').nth(1).expect("sgk_<id>_<secret>").to_owned();
    let (_, rotated) = gateway.keys.rotate(&id).await?;
    gateway.auth.reload_keys().await?;
    assert_eq!(codes(&ask(key).await?), ["INVALID_CREDENTIALS"]);
    assert!(ask(rotated.clone()).await?.get("errors").is_none());

    let rotated_id = rotated.split('_').nth(1).expect("an id").to_owned();
    gateway.keys.revoke(&rotated_id).await?;
    gateway.auth.reload_keys().await?;
    assert_eq!(codes(&ask(rotated).await?), ["INVALID_CREDENTIALS"]);
    let listed = gateway.keys.list().await?;
    assert!(
        listed
            .iter()
            .filter(|k| k.role == "support")
            .all(|k| k.revoked_at.is_some())
    );
    Ok(())
}

#[tokio::test]
async fn a_role_sees_only_its_data_categories() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.sessions.is_empty())
        .expect("someone who logged in");
    let support = gateway.key("support").await?;

    let response = gateway
        .graphql_as(
            &support,
            "essential.service",
            &query(PERSON),
            serde_json::json!({ "v": person.email }),
        )
        .await?;
    let users = at(&response["data"]["subject"], &["accounts", "users"]);
    assert_eq!(users[0]["email"], person.email.as_str());
    assert_eq!(users[0]["fullName"], person.full_name.as_str());
    // Outside support's categories: null, with an error naming the missing category.
    assert!(users[0]["dateOfBirth"].is_null());
    assert!(at(&response["data"]["subject"], &["accounts", "sessions"])[0]["ipAddress"].is_null());
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    let missing: std::collections::BTreeSet<&str> = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "CATEGORY_NOT_GRANTED")
        .filter_map(|e| e["extensions"]["category"].as_str())
        .collect();
    assert!(
        missing.contains("user.demographic.date_of_birth") && missing.contains("user.device.ip_address"),
        "{missing:?}"
    );
    assert!(!response.to_string().contains(&person.sessions[0].ip_address));

    // `connectors` lists only the fields the caller may see.
    let connectors = gateway
        .graphql_as(
            &support,
            "essential.service",
            "{ connectors { name entities { name fields { name category } } } }",
            serde_json::json!({}),
        )
        .await?;
    let categories: Vec<String> = connectors["data"]["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["entities"].as_array().cloned().unwrap_or_default())
        .flat_map(|e| e["fields"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["category"].as_str().map(str::to_owned))
        .collect();
    assert!(!categories.is_empty());
    assert!(
        !categories
            .iter()
            .any(|c| c.starts_with("user.device") || c.starts_with("user.demographic")),
        "{categories:?}"
    );
    Ok(())
}

#[tokio::test]
async fn stores_serve_only_the_purposes_they_declare() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.uploads.is_empty() && p.user_id % 3 != 0)
        .expect("someone with uploads and an analytics profile");
    let admin = gateway.key("admin").await?;

    // Uploaded images never serve marketing nor the training of AI systems.
    for purpose in ["marketing", "train_ai_system"] {
        let response = gateway
            .graphql_as(
                &admin,
                purpose,
                &query(PERSON),
                serde_json::json!({ "v": person.email }),
            )
            .await?;
        assert!(
            response["data"]["subject"]["uploads"].is_null(),
            "{purpose}: {response}"
        );
        let refused: Vec<&str> = response["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["extensions"]["code"] == "PURPOSE_FORBIDDEN")
            .filter_map(|e| e["extensions"]["connector"].as_str())
            .collect();
        assert!(refused.contains(&"uploads"), "{purpose}: {refused:?}");
    }
    // Analytics serves marketing; the account store does not.
    let response = gateway
        .graphql_as(
            &admin,
            "marketing",
            &query(PERSON),
            serde_json::json!({ "v": person.email }),
        )
        .await?;
    assert_eq!(
        len(at(&response["data"]["subject"], &["analytics", "profiles"])),
        1
    );
    assert!(response["data"]["subject"]["accounts"].is_null());
    // The essential purpose is served by every store.
    let response = gateway
        .graphql_as(
            &admin,
            "essential",
            &query(PERSON),
            serde_json::json!({ "v": person.email }),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    assert_eq!(
        len(at(&response["data"]["subject"], &["uploads", "images"])),
        person.uploads.len()
    );
    Ok(())
}

#[tokio::test]
async fn a_role_without_the_operation_is_forbidden() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "gateway.toml",
        "[roles.admin]",
        "[roles.auditor]\noperations = [\"read_audit\"]\ncategories = [\"system\"]\npurposes = [\"essential\"]\n\n[roles.admin]",
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let auditor = gateway.key("auditor").await?;
    let response = gateway
        .graphql_as(
            &auditor,
            "essential",
            &query(PERSON),
            serde_json::json!({ "v": world.people[0].email }),
        )
        .await?;
    assert_eq!(codes(&response), ["FORBIDDEN"]);
    assert!(response["data"]["subject"].is_null());
    Ok(())
}

#[tokio::test]
async fn oidc_tokens_are_checked_against_a_rotating_key_set() -> anyhow::Result<()> {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let world = ReferenceWorld::create(2).await?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    let write_jwks = |kid: &str, secret: &[u8]| {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        std::fs::write(
            &jwks,
            serde_json::json!({ "keys": [{ "kty": "oct", "kid": kid, "alg": "HS256", "k": k }] }).to_string(),
        )
    };
    write_jwks("k1", b"first-signing-secret-of-32-bytes!!")?;
    let config = ConfigCopy::new()?;
    config.edit(
        "gateway.toml",
        "# [auth.oidc]",
        &format!(
            "[auth.oidc]\njwks = \"{}\"\nissuer = \"https://idp.test/\"\naudience = \"subject-gateway\"\nmin_refresh_seconds = 0\n# ",
            jwks.display()
        ),
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let token = |kid: &str, secret: &[u8], audience: &str, expires_in: i64| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "sub": "agent.smith@company.example",
            "roles": ["support"],
            "iss": "https://idp.test/",
            "aud": audience,
            "exp": chrono::Utc::now().timestamp() + expires_in,
        });
        encode(&header, &claims, &EncodingKey::from_secret(secret)?)
    };
    let ask = |token: String| {
        let gateway = &gateway;
        async move {
            gateway
                .graphql_as(
                    &token,
                    "essential.service",
                    "{ connectors { name } }",
                    serde_json::json!({}),
                )
                .await
        }
    };

    let good = token(
        "k1",
        b"first-signing-secret-of-32-bytes!!",
        "subject-gateway",
        300,
    )?;
    assert!(ask(good).await?.get("errors").is_none());
    let expired = token(
        "k1",
        b"first-signing-secret-of-32-bytes!!",
        "subject-gateway",
        -300,
    )?;
    assert_eq!(codes(&ask(expired).await?), ["INVALID_CREDENTIALS"]);
    let elsewhere = token(
        "k1",
        b"first-signing-secret-of-32-bytes!!",
        "another-service",
        300,
    )?;
    assert_eq!(codes(&ask(elsewhere).await?), ["INVALID_CREDENTIALS"]);
    let forged = token("k1", b"not-the-secret-the-idp-holds-xxxx", "subject-gateway", 300)?;
    assert_eq!(codes(&ask(forged).await?), ["INVALID_CREDENTIALS"]);

    // The identity provider rotates its key: tokens with the new key id are accepted.
    write_jwks("k2", b"second-signing-secret-32-bytes!!!")?;
    let rotated = token("k2", b"second-signing-secret-32-bytes!!!", "subject-gateway", 300)?;
    assert!(ask(rotated).await?.get("errors").is_none());
    Ok(())
}

#[tokio::test]
async fn the_key_set_can_come_from_a_url() -> anyhow::Result<()> {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let world = ReferenceWorld::create(2).await?;
    let secret = b"signing-secret-served-over-http!!";
    let jwks = serde_json::json!({ "keys": [{
        "kty": "oct", "kid": "web-1", "alg": "HS256",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    }] });
    let identity_provider = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || std::future::ready(axum::Json(jwks.clone()))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, identity_provider).await });

    let config = ConfigCopy::new()?;
    config.edit(
        "gateway.toml",
        "# [auth.oidc]",
        &format!("[auth.oidc]\njwks = \"http://{address}/.well-known/jwks.json\"\n# "),
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("web-1".into());
    let claims = serde_json::json!({
        "sub": "dpo@company.example",
        "roles": ["unknown-role", "dpo"],
        "exp": chrono::Utc::now().timestamp() + 300,
    });
    let token = encode(&header, &claims, &EncodingKey::from_secret(secret)?)?;
    let response = gateway
        .graphql_as(
            &token,
            "essential",
            "{ connectors { name } }",
            serde_json::json!({}),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    server.abort();
    Ok(())
}
