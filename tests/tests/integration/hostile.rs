//! Hostile identity values match nothing, change nothing and are never echoed.

use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld};

use crate::{at, len};

const ACCOUNTS_TABLES: &[&str] = &["users", "sessions", "preferences"];
const BILLING_TABLES: &[&str] = &["customers", "invoices", "payment_methods"];

#[tokio::test]
async fn hostile_values_match_nothing_and_change_nothing() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(20).await?;
    let gateway = world.gateway().await?;
    let before = (
        world.accounts.fingerprint(ACCOUNTS_TABLES).await?,
        world.billing.fingerprint(BILLING_TABLES).await?,
    );

    let long = "a".repeat(10 * 1024);
    let hostile = [
        "' OR 1=1 --",
        "'or'1'='1@example.com",
        "x@example.com'; DROP TABLE users; --",
        "%",
        "%@%",
        "*",
        "_",
        "",
        "   ",
        "\u{0}",
        "a\u{0}@example.com",
        long.as_str(),
        "1 OR 1=1",
        "1; DELETE FROM users",
        "cus_%",
        "Zoë@Exämple.org",
        "用户@例子.广告",
        "\u{202e}moc.elpmaxe@kcatta",
    ];
    for kind in ["EMAIL", "USER_ID", "CUSTOMER_ID"] {
        for value in hostile {
            let response = gateway.subject(kind, value, FULL_SELECTION).await?;
            match response.get("errors") {
                // Refused: a clear error with a code, never echoing the value.
                Some(errors) => {
                    let error = &errors[0];
                    assert!(
                        error["extensions"]["code"]
                            .as_str()
                            .is_some_and(|c| c.starts_with("IDENTITY_")),
                        "{error}"
                    );
                    let message = error["message"].as_str().unwrap_or("");
                    if value.trim().len() > 1 {
                        assert!(
                            !message.contains(value.trim()),
                            "{kind} {value:?} echoed: {message}"
                        );
                    }
                    assert!(response["data"]["subject"].is_null());
                }
                // Accepted (a well-formed value): it matches nobody.
                None => {
                    let subject = &response["data"]["subject"];
                    assert_eq!(len(&subject["identities"]), 1, "{kind} {value:?}: {subject}");
                    for source in subject["sources"].as_array().into_iter().flatten() {
                        assert_eq!(source["records"], 0, "{kind} {value:?}: {source}");
                        assert_eq!(source["status"], "OK");
                    }
                    assert_eq!(len(at(subject, &["accounts", "users"])), 0);
                }
            }
        }
    }

    let after = (
        world.accounts.fingerprint(ACCOUNTS_TABLES).await?,
        world.billing.fingerprint(BILLING_TABLES).await?,
    );
    assert_eq!(before, after, "a lookup changed the stores");
    assert!(before.0.contains("users:20:"));
    Ok(())
}

#[tokio::test]
async fn malformed_graphql_input_gets_clear_errors() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;

    let unknown_kind = gateway
        .graphql(
            r#"{ subject(identity: {kind: PASSPORT, value: "x"}) { identities { value } } }"#,
            serde_json::json!({}),
        )
        .await?;
    assert!(
        unknown_kind["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PASSPORT"))
    );

    let missing = gateway
        .graphql(
            r#"{ subject(identity: {kind: EMAIL}) { identities { value } } }"#,
            serde_json::json!({}),
        )
        .await?;
    assert!(
        missing["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("value"))
    );

    let syntax = gateway
        .graphql("{ subject(identity: ", serde_json::json!({}))
        .await?;
    assert!(syntax["errors"].is_array());

    let too_many: Vec<_> = (0..1001)
        .map(|i| serde_json::json!({"kind": "USER_ID", "value": i.to_string()}))
        .collect();
    let batch = gateway
        .graphql(
            "query($ids: [IdentityInput!]!) { subjects(identities: $ids) { identities { value } } }",
            serde_json::json!({ "ids": too_many }),
        )
        .await?;
    assert_eq!(batch["errors"][0]["extensions"]["code"], "BATCH_TOO_LARGE");
    Ok(())
}

#[tokio::test]
async fn a_lenient_store_collation_never_widens_a_match() -> anyhow::Result<()> {
    // MariaDB's utf8mb4_unicode_ci holds 'zoë' equal to 'zoe': the store returns both, and the
    // gateway keeps only the records whose value is the identity asked for.
    let world = ReferenceWorld::create(4).await?;
    let billing = sqlx::MySqlPool::connect(&world.billing.url).await?;
    sqlx::query(
        "INSERT INTO customers (id, user_id, email, name, created_at) VALUES \
         ('cus_Zoe0001', NULL, 'zoë@example.com', 'Zoë Other', NOW()), \
         ('cus_Zoe0002', NULL, 'ZOE@example.com', 'Zoe Herself', NOW())",
    )
    .execute(&billing)
    .await?;
    billing.close().await;
    let gateway = world.gateway().await?;

    for (asked, expected) in [
        ("zoe@example.com", ("cus_Zoe0002", "Zoe Herself")),
        ("Zoë@Example.com", ("cus_Zoe0001", "Zoë Other")),
    ] {
        let response = gateway
            .subject("EMAIL", asked, "{ billing { customers { id name } } }")
            .await?;
        assert!(response.get("errors").is_none(), "{response}");
        assert_eq!(
            response["data"]["subject"]["billing"]["customers"],
            serde_json::json!([{ "id": expected.0, "name": expected.1 }]),
            "asked for {asked}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn deep_wide_and_aliased_queries_are_refused_with_clear_errors() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let no_variables = serde_json::json!({});

    // Fifty aliases are allowed; each alias of `subject` is a whole resolution, so not more.
    let aliased = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "s{i}: subject(identity: {{kind: USER_ID, value: \"{i}\"}}) {{ sources {{ status }} }}"
                )
            })
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let fine = gateway.graphql(&aliased(50), no_variables.clone()).await?;
    assert!(fine.get("errors").is_none(), "{}", fine["errors"]);
    let refused = gateway.graphql(&aliased(51), no_variables.clone()).await?;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "TOO_MANY_ALIASES");
    assert!(refused["data"].is_null());

    // Aliases hidden in a fragment spread many times count every time.
    let spread = format!(
        "{{ {} }} fragment F on Query {{ a: connectors {{ name }} b: connectors {{ name }} }}",
        (0..30).map(|_| "...F").collect::<Vec<_>>().join(" ")
    );
    let refused = gateway.graphql(&spread, no_variables.clone()).await?;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "TOO_MANY_ALIASES");

    // Nesting deeper than the limit (16), however it is spelled.
    let mut deep_query = format!(
        "{{ __schema {{ types {{ fields {{ type {} name",
        "{ ofType ".repeat(14)
    );
    let open = deep_query.matches('{').count();
    deep_query.push_str(&" }".repeat(open));
    let deep = gateway.graphql(&deep_query, no_variables.clone()).await?;
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deep")),
        "{deep}"
    );

    // Too many fields in all.
    let wide = format!(
        "{{ connectors {{ {} }} }}",
        (0..6000).map(|_| "name").collect::<Vec<_>>().join(" ")
    );
    let refused = gateway.graphql(&wide, no_variables).await?;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{refused}"
    );
    Ok(())
}

#[tokio::test]
async fn introspection_is_off_unless_configured() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let config = subject_gateway_tests::ConfigCopy::new()?;
    config.edit("gateway.toml", "introspection = true", "introspection = false")?;
    let gateway =
        subject_gateway_tests::TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let response = gateway
        .graphql("{ __schema { types { name } } }", serde_json::json!({}))
        .await?;
    assert!(
        response["data"]["__schema"].is_null() || response.get("errors").is_some(),
        "{response}"
    );
    let with_it = world.gateway().await?;
    let response = with_it
        .graphql("{ __schema { types { name } } }", serde_json::json!({}))
        .await?;
    assert!(response.get("errors").is_none());
    Ok(())
}

#[tokio::test]
async fn deeply_nested_input_and_documents_are_refused_not_crashed_on() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let nested_list = format!(
        "{{ subjects(identities: {}{}) {{ sources {{ status }} }} }}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let nested_selection = format!(
        "{{ connectors {}{} }}",
        "{ name ".repeat(20_000),
        "}".repeat(20_000)
    );
    let nested_object = format!(
        "{{ subject(identity: {}{}) {{ sources {{ status }} }} }}",
        "{kind: EMAIL, value: ".repeat(5_000),
        "}".repeat(5_000)
    );
    for query in [nested_list, nested_selection, nested_object] {
        let response = gateway.graphql(&query, serde_json::json!({})).await?;
        assert!(
            response["data"].is_null() || response["data"]["subject"].is_null(),
            "{response}"
        );
        assert!(response["errors"][0]["message"].is_string());
    }
    // The server is still there.
    let alive = gateway
        .subject("EMAIL", &world.people[0].email, "{ sources { status } }")
        .await?;
    assert!(alive.get("errors").is_none());
    Ok(())
}
