//! Registering stores by declaration, and refusing bad declarations with file, line and problem.

use sqlx::any::AnyPoolOptions;
use subject_connectors::declaration::SqlDialect;
use subject_gateway::config::Config;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestDatabase, TestGateway};

const NEWSLETTER: &str = r#"
kind = "sql"
url = "${NEWSLETTER_DATABASE_URL}"
description = "The marketing team's newsletter list."

[entities.subscribers]
lookup = [{ kind = "email", field = "address", compare = "lowercase" }]

[entities.subscribers.fields]
address = { type = "string", category = "user.contact.email" }
subscribed_at = { type = "timestamp", category = "system.operations" }
source = { type = "string", category = "system.operations" }
double_opt_in = { type = "bool", category = "user.privacy_preferences" }
"#;

#[tokio::test]
async fn a_new_toml_file_adds_a_store_to_the_schema_and_the_results() -> anyhow::Result<()> {
    let world = ReferenceWorld::create_on(6, SqlDialect::Sqlite, SqlDialect::Sqlite).await?;
    let newsletter = TestDatabase::create(SqlDialect::Postgres).await?;
    let pool = AnyPoolOptions::new().connect(&newsletter.url).await?;
    sqlx::query(
        "CREATE TABLE subscribers (address TEXT NOT NULL, subscribed_at TIMESTAMPTZ NOT NULL, source TEXT, double_opt_in BOOLEAN NOT NULL)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX subscribers_address ON subscribers (lower(address))")
        .execute(&pool)
        .await?;
    let person = &world.people[0];
    sqlx::query(
        "INSERT INTO subscribers VALUES ($1, CAST($2 AS TIMESTAMPTZ), 'footer-form', TRUE), ('someone.else@example.com', now(), 'import', FALSE)",
    )
    .bind(person.email.to_uppercase())
    .bind("2024-03-01 12:00:00+00")
    .execute(&pool)
    .await?;
    pool.close().await;

    let config = ConfigCopy::new()?;
    config.write_connector("newsletter.toml", NEWSLETTER)?;
    let base = world.env();
    let url = newsletter.url.clone();
    let env = move |name: &str| {
        if name == "NEWSLETTER_DATABASE_URL" {
            Some(url.clone())
        } else {
            base(name)
        }
    };
    let gateway = TestGateway::start(&config.gateway_toml(), env, Vec::new()).await?;

    let sdl = gateway.service.sdl();
    assert!(sdl.contains("newsletter: Newsletter\n"), "{sdl}");
    assert!(sdl.contains("type NewsletterSubscribers"));
    assert!(sdl.contains("subscribedAt: String"));

    let response = gateway
        .subject(
            "EMAIL",
            &person.email,
            "{ accounts { users { id } } newsletter { subscribers { address subscribedAt source doubleOptIn } } }",
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    let subscribers = &response["data"]["subject"]["newsletter"]["subscribers"];
    assert_eq!(
        subscribers,
        &serde_json::json!([{
            "address": person.email.to_uppercase(),
            "subscribedAt": "2024-03-01T12:00:00Z",
            "source": "footer-form",
            "doubleOptIn": true
        }])
    );
    let connectors = gateway
        .graphql(
            "{ connectors { name kind entities { name fields { name category } } } }",
            serde_json::json!({}),
        )
        .await?;
    let names: Vec<_> = connectors["data"]["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "accounts",
            "analytics",
            "billing",
            "helpdesk",
            "newsletter",
            "uploads"
        ]
    );
    Ok(())
}

/// Loads the config with `file` added as `connectors/broken.toml`; returns the error text.
fn load_error(file: &str) -> String {
    let config = ConfigCopy::new().expect("copying the config");
    config
        .write_connector("broken.toml", file)
        .expect("writing the declaration");
    let error = Config::load(&config.gateway_toml()).err().map(|e| e.to_string());
    match error {
        Some(error) => error,
        None => {
            // Some problems only show once the graph is assembled.
            let loaded = Config::load(&config.gateway_toml()).expect("loads");
            match loaded.build_offline_service() {
                Ok(_) => panic!("the declaration was accepted:\n{file}"),
                Err(error) => error.to_string(),
            }
        }
    }
}

const BASE: &str = r#"kind = "sql"
url = "${BROKEN_DATABASE_URL}"

[entities.things]
lookup = [{ kind = "user_id", field = "owner" }]

[entities.things.fields]
owner = { type = "bigint", category = "user.unique_id" }
label = { type = "string", category = "user.content" }
"#;

#[test]
fn bad_declarations_fail_at_start_up_naming_file_line_and_problem() {
    let cases = [
        (
            BASE.replace("kind = \"user_id\"", "kind = \"passport\""),
            "broken.toml:5:",
            "unknown identity kind `passport`",
        ),
        (
            BASE.replace("user.content", "user.contents"),
            "broken.toml:9:",
            "unknown data category `user.contents`",
        ),
        (
            BASE.replace(
                "label = {",
                "owner = { type = \"string\", category = \"user.name\" }\nlabel = {",
            ),
            "broken.toml:9:",
            "duplicate key",
        ),
        (
            BASE.replace("field = \"owner\"", "field = \"ownr\""),
            "broken.toml:5:",
            "field `ownr` is not declared",
        ),
        (
            BASE.replace("type = \"bigint\"", "type = \"number\""),
            "broken.toml:8:",
            "unknown variant `number`",
        ),
        (
            BASE.replace("${BROKEN_DATABASE_URL}", "postgres://app:s3cret@db.internal/app"),
            "broken.toml:2:",
            "must come from the environment",
        ),
        (
            BASE.replace("kind = \"sql\"", "kind = \"oracle\""),
            "broken.toml:1:",
            "unknown connector kind `oracle`",
        ),
        (
            format!("extra_setting = 1\n{BASE}"),
            "broken.toml:1:",
            "unknown field `extra_setting`",
        ),
        (
            BASE.replace(
                "[entities.things]",
                "[entities.things]\ntable = \"things; DROP TABLE users\"",
            ),
            "broken.toml:5:",
            "not a plain SQL identifier",
        ),
    ];
    for (file, location, problem) in cases {
        let error = load_error(&file);
        assert!(error.contains(location), "expected {location} in:\n{error}");
        assert!(error.contains(problem), "expected `{problem}` in:\n{error}");
        assert!(!error.contains("s3cret"), "a secret was echoed:\n{error}");
    }
}

#[test]
fn a_cycle_no_input_identity_enters_is_refused() {
    let config = ConfigCopy::new().expect("copying the config");
    config
        .edit(
            "gateway.toml",
            "[identities.email]",
            "[identities.device_id]\ninput = false\n\n[identities.cookie_id]\ninput = false\n\n[identities.email]",
        )
        .expect("editing gateway.toml");
    config
        .write_connector(
            "devices.toml",
            r#"kind = "sql"
url = "${DEVICES_DATABASE_URL}"

[entities.devices]
lookup = [{ kind = "device_id", field = "device_id" }]
yields = [{ kind = "cookie_id", field = "cookie_id" }]
[entities.devices.fields]
device_id = { type = "string", category = "user.device.device_id" }
cookie_id = { type = "string", category = "user.device.cookie_id" }

[entities.cookies]
lookup = [{ kind = "cookie_id", field = "cookie_id" }]
yields = [{ kind = "device_id", field = "device_id" }]
[entities.cookies.fields]
device_id = { type = "string", category = "user.device.device_id" }
cookie_id = { type = "string", category = "user.device.cookie_id" }
"#,
        )
        .expect("writing the declaration");
    let loaded = Config::load(&config.gateway_toml()).expect("each file is valid on its own");
    let error = match loaded.build_offline_service() {
        Ok(_) => panic!("an unreachable cycle was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("devices.toml:4:"), "{error}");
    assert!(
        error.contains("entity `devices.devices` can never be reached"),
        "{error}"
    );
    assert!(error.contains("a cycle no input identity enters"), "{error}");
    assert!(error.contains("devices.toml:11:"), "{error}");
}

#[tokio::test]
async fn a_missing_environment_variable_is_named_at_start_up() -> anyhow::Result<()> {
    let config = Config::load(&subject_gateway_tests::config_dir().join("gateway.toml"))?;
    let error = match config.build_service(|_| None, Vec::new()).await {
        Ok(_) => anyhow::bail!("built without URLs"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("accounts.toml:3:"), "{error}");
    assert!(error.contains("ACCOUNTS_DATABASE_URL is not set"), "{error}");
    assert!(error.contains("BILLING_DATABASE_URL is not set"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_custom_rust_connector_joins_the_declared_ones() -> anyhow::Result<()> {
    let world = ReferenceWorld::create_on(5, SqlDialect::Sqlite, SqlDialect::Sqlite).await?;
    let person = &world.people[1];
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("consent.jsonl");
    std::fs::write(
        &log,
        format!(
            "{{\"email\":\"{}\",\"purpose\":\"marketing\",\"granted\":false,\"at\":\"2025-02-01T10:00:00Z\"}}\n\
             {{\"email\":\"other.person@example.com\",\"purpose\":\"analytics\",\"granted\":true,\"at\":\"2025-02-02T10:00:00Z\"}}\n",
            person.email.to_uppercase()
        ),
    )?;
    let config = Config::load(&subject_gateway_tests::config_dir().join("gateway.toml"))?;
    let custom = subject_gateway_tests::custom::ConsentLog::new(log, &config.kinds)?;
    let gateway = TestGateway::start(
        &subject_gateway_tests::config_dir().join("gateway.toml"),
        world.env(),
        vec![std::sync::Arc::new(custom)],
    )
    .await?;

    // Found through the identity graph: the caller gives a user id, the email comes from accounts.
    let response = gateway
        .subject(
            "USER_ID",
            &person.user_id.to_string(),
            "{ consentLog { events { email purpose granted at } } sources { connector status } }",
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    assert_eq!(
        response["data"]["subject"]["consentLog"]["events"],
        serde_json::json!([{
            "email": person.email.to_uppercase(),
            "purpose": "marketing",
            "granted": false,
            "at": "2025-02-01T10:00:00Z"
        }])
    );
    let sources = response["data"]["subject"]["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        sources
            .iter()
            .any(|s| s["connector"] == "consent_log" && s["status"] == "OK")
    );
    Ok(())
}

const HTTP_BASE: &str = r#"kind = "http"
base_url = "${BROKEN_API_URL}"

[entities.things]
lookup = [{ kind = "email", field = "owner" }]
request = { path = "/things", query = { owner = "{value}" }, records = "$.things" }
erase = { steps = [{ method = "DELETE", path = "/things/{id}" }] }

[entities.things.fields]
owner = { type = "string", category = "user.contact.email" }
id = { type = "bigint", category = "system.operations" }
"#;

#[test]
fn bad_http_and_mongodb_declarations_name_file_line_and_problem() {
    // The base declaration is valid; each case breaks one thing.
    let config = ConfigCopy::new().expect("copying the config");
    config.write_connector("broken.toml", HTTP_BASE).expect("writing");
    assert!(Config::load(&config.gateway_toml()).is_ok());
    let cases = [
        (HTTP_BASE.replace("records = \"$.things\"", "records = \"things[\""), "broken.toml:6:", "invalid JSON path"),
        (HTTP_BASE.replace("owner = \"{value}\"", "owner = \"{email}\""), "broken.toml:6:", "unknown placeholder `{email}`"),
        (HTTP_BASE.replace("/things/{id}", "/things/{uuid}"), "broken.toml:7:", "`{uuid}` names no declared field"),
        (HTTP_BASE.replace("[entities.things]\n", "[entities.things]\ntable = \"things\"\n"), "broken.toml:5:", "`table` is only for sql connectors"),
        (HTTP_BASE.replace("base_url = \"${BROKEN_API_URL}\"", "base_url = \"https://api.example.com\""), "broken.toml:2:", "must come from the environment"),
        (HTTP_BASE.replace("method = \"DELETE\"", "method = \"GET\""), "broken.toml:7:", "method `GET` is not one of"),
        (
            HTTP_BASE.replace(
                "lookup = [{ kind = \"email\", field = \"owner\" }]",
                "lookup = [{ kind = \"email\", field = \"owner\" }, { kind = \"user_id\", field = \"id\" }]",
            ),
            "broken.toml:4:",
            "declares 2 lookups",
        ),
        (
            HTTP_BASE.replace(
                "records = \"$.things\" }",
                "records = \"$.things\", many = { path = \"/things\", query = { owners = \"{value}\" }, records = \"$.things\" } }",
            ),
            "broken.toml:6:",
            "only {values} (comma-separated) and {values:json}",
        ),
        (
            HTTP_BASE
                .replace(
                    "records = \"$.things\" }",
                    "records = \"$.things\", many = { path = \"/things\", query = { owners = \"{values}\" }, records = \"$.things\" } }",
                )
                .replace("category = \"user.contact.email\" }", "category = \"user.contact.email\", from = \"lookup\" }"),
            "broken.toml:6:",
            "an answer for many values cannot say which value each record was asked for",
        ),
        (
            HTTP_BASE.replace(
                "records = \"$.things\" }",
                "records = \"$.things\", many = { path = \"/things\", query = { owners = \"{values:json}\" }, records = \"$.things\", max_values = 5000 } }",
            ),
            "broken.toml:6:",
            "max_values is between 2 and 1000",
        ),
        (
            HTTP_BASE.replace("kind = \"http\"\nbase_url = \"${BROKEN_API_URL}\"", "kind = \"mongodb\"\nurl = \"${BROKEN_MONGODB_URL}\"")
                .replace("request = { path = \"/things\", query = { owner = \"{value}\" }, records = \"$.things\" }\n", "")
                .replace("erase = { steps = [{ method = \"DELETE\", path = \"/things/{id}\" }] }\n", "")
                .replace("field = \"owner\" }", "field = \"owner\", compare = \"lowercase\" }"),
            "broken.toml:5:",
            "not available for mongodb",
        ),
    ];
    for (file, location, problem) in cases {
        let error = load_error(&file);
        assert!(error.contains(location), "expected {location} in:\n{error}");
        assert!(error.contains(problem), "expected `{problem}` in:\n{error}");
    }
}
