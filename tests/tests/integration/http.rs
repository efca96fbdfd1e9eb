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

    // Bodies are read only for authenticated callers (without credentials: 401, see probe.rs).
    let malformed = client
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await?;
    assert_eq!(malformed.status(), 400);

    let huge = client
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
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

#[tokio::test]
async fn the_gateway_serves_https_with_rustls() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem())?;
    std::fs::write(&key_file, certified.signing_key.serialize_pem())?;

    let mut config =
        subject_gateway::config::Config::load(&subject_gateway_tests::config_dir().join("gateway.toml"))?;
    config.server.tls = Some(subject_gateway::config::TlsSettings { cert_file, key_file });
    config.auth.state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    config.requests.exports_dir = dir.path().join("exports");
    config.server.header_read_timeout_ms = 500;
    let service = std::sync::Arc::new(config.build_service(world.env(), Vec::new()).await?);
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("tls test", "support")
        .await?;
    let auth = config.authenticator(world.env()).await?;
    let audit = config.audit_log(world.env()).await?;
    let requests = config
        .privacy_engine(world.env(), &service, audit.clone())
        .await?;
    let router = subject_gateway::server::router(service, auth, audit, requests, &config.server);
    let tls = subject_gateway::server::tls_config(config.server.tls.as_ref().expect("set above"))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(subject_gateway::server::serve_tls(
        listener,
        router,
        tls,
        subject_gateway::conn::ConnectionLimits::from_settings(&config.server),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes())?)
        .build()?;
    let person = &world.people[0];
    let response: serde_json::Value = client
        .post(format!("https://localhost:{port}/graphql"))
        .bearer_auth(&key)
        .header("x-purpose", "essential.service")
        .json(&serde_json::json!({
            "query": "query($v: String!) { subject(identity: {kind: EMAIL, value: $v}) { accounts { users { id } } } }",
            "variables": { "v": person.email },
        }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        response["data"]["subject"]["accounts"]["users"][0]["id"],
        person.user_id
    );

    // A connection that never starts its handshake is closed within the header-read timeout.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buffer),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open after {:?}",
        started.elapsed()
    );

    // Plain HTTP to the HTTPS port gets no GraphQL answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));

    let _ = stop.send(());
    server.await??;
    Ok(())
}
