//! The HTTP surface: GraphiQL, health, bad requests, `connectors`.

use subject_gateway_tests::ReferenceWorld;

#[tokio::test]
async fn the_server_answers_graphiql_health_and_bad_requests() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let client = reqwest::Client::new();

    let page = client.get(gateway.url("/")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("graphiql"));

    let health = client.get(gateway.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await?, "ok");

    let get = client.get(gateway.url("/graphql")).send().await?;
    assert_eq!(get.status(), 405);

    let malformed = client
        .post(gateway.url("/graphql"))
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await?;
    assert_eq!(malformed.status(), 400);

    let huge = client
        .post(gateway.url("/graphql"))
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{}\"}}", "a".repeat(2 * 1024 * 1024)))
        .send()
        .await?;
    assert_eq!(huge.status(), 413);
    Ok(())
}

#[tokio::test]
async fn connectors_lists_entities_fields_categories_and_health() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let response = gateway
        .graphql(
            "{ connectors { name kind health { status error } entities { name source lookups { kind field } yields { kind field } fields { name graphqlField type category } } } }",
            serde_json::json!({}),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    let connectors = &response["data"]["connectors"];
    let kinds: Vec<(String, String, String)> = connectors
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
            (text(&c["name"]), text(&c["kind"]), text(&c["health"]["status"]))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("accounts", "postgres"),
            ("analytics", "http"),
            ("billing", "mysql"),
            ("helpdesk", "http"),
            ("uploads", "mongodb")
        ]
        .map(|(n, k)| (n.to_owned(), k.to_owned(), "UP".to_owned()))
    );
    let users = &connectors[0]["entities"][0];
    assert_eq!(users["name"], "users");
    assert_eq!(
        users["lookups"][0],
        serde_json::json!({"kind": "EMAIL", "field": "email"})
    );
    assert_eq!(
        users["yields"][0],
        serde_json::json!({"kind": "USER_ID", "field": "id"})
    );
    assert_eq!(
        users["fields"][2],
        serde_json::json!({"name": "full_name", "graphqlField": "fullName", "type": "string", "category": "user.name"})
    );
    Ok(())
}
