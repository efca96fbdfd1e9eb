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
