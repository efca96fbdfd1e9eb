//! The attacks of issue 10 ("who may see what, round two"), each against the real server on real
//! sockets: identities shown past categories and purposes, CPU bombs in fragments, amplification,
//! connection exhaustion, the websocket, OIDC claims, error echoes and floods.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn codes(response: &Json) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

const BY_USER_ID: &str = "query($v: String!) { subject(identity: {kind: USER_ID, value: $v}) { identities { kind value source connector } } }";

#[tokio::test]
async fn found_identities_follow_categories_and_purposes() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.customer.is_some())
        .expect("someone with billing");

    // The admin, for an essential purpose, sees every identity found (the email too).
    let admin = gateway
        .graphql(BY_USER_ID, json!({ "v": person.user_id.to_string() }))
        .await?;
    assert!(admin.get("errors").is_none(), "{admin}");
    let found = admin["data"]["subject"]["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(found.iter().any(|i| i["kind"] == "CUSTOMER_ID"), "{admin}");
    assert!(found.iter().any(|i| i["kind"] == "EMAIL"), "{admin}");
    assert!(found.iter().all(|i| i["value"].is_string()));

    // An analyst (no `user.contact`) stating `analytics`: values from stores that do not serve
    // analytics are withheld (PURPOSE_FORBIDDEN), found emails are withheld
    // (CATEGORY_NOT_GRANTED) whatever the store; what the caller gave is shown back.
    let analyst = gateway.key("analyst").await?;
    let response = gateway
        .graphql_as(
            &analyst,
            "analytics",
            BY_USER_ID,
            json!({ "v": person.user_id.to_string() }),
        )
        .await?;
    let identities = response["data"]["subject"]["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(identities.len() > 2, "{response}");
    let text = response.to_string();
    assert!(
        !text.contains(&person.email.to_lowercase()) && !text.contains(&person.email),
        "an email reached a role without user.contact: {text}"
    );
    if let Some(customer) = &person.customer {
        assert!(
            !text.contains(&customer.id),
            "billing does not serve analytics: {text}"
        );
    }
    for identity in &identities {
        match identity["source"].as_str() {
            Some("input") => assert_eq!(identity["value"], person.user_id.to_string()),
            _ if identity["connector"] == "analytics" && identity["kind"] != "EMAIL" => {
                assert!(identity["value"].is_string(), "{identity}")
            }
            _ => assert!(identity["value"].is_null(), "{identity}"),
        }
    }
    let codes = codes(&response);
    assert!(codes.iter().any(|c| c == "PURPOSE_FORBIDDEN"), "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c == "PURPOSE_FORBIDDEN" || c == "CATEGORY_NOT_GRANTED"),
        "{codes:?}"
    );

    // The audit trail records the identity categories served, and only those.
    let events = gateway
        .graphql(
            "{ auditEvents(first: 50, action: \"subject.read\") { events { actor detail } } }",
            json!({}),
        )
        .await?;
    let events = events["data"]["auditEvents"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let admin_event = events.first().expect("the admin's read");
    let served: Vec<&str> = admin_event["detail"]["identityCategories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    assert!(served.contains(&"user.contact.email"), "{admin_event}");
    let analyst_event = events.last().expect("the analyst's read");
    let served = analyst_event["detail"]["identityCategories"].to_string();
    assert!(!served.contains("user.contact"), "{analyst_event}");
    Ok(())
}

/// 26 fragments, each spreading the next twice: 2^26 fields in about a kilobyte.
fn doubling_fragments() -> String {
    let mut query = String::from("query { ...F0 }");
    for i in 0..26 {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{n} ...F{n} }}",
            n = i + 1
        ));
    }
    query.push_str(" fragment F26 on Query { connectors { name } }");
    query
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_in_milliseconds() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let support = gateway.key("support").await?;
    let bomb = doubling_fragments();
    assert!(bomb.len() < 1500);
    for _ in 0..3 {
        let started = Instant::now();
        let response = gateway
            .graphql_as(&support, "essential.service", &bomb, json!({}))
            .await?;
        let took = started.elapsed();
        assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"], "{response}");
        assert!(response["data"].is_null());
        eprintln!("fragment bomb refused in {took:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    // The same doubling, closed into a cycle (no field at all): refused as quickly.
    let cyclic = bomb.replace(
        "fragment F26 on Query { connectors { name } }",
        "fragment F26 on Query { ...F0 }",
    );
    let started = Instant::now();
    let response = gateway.graphql(&cyclic, json!({})).await?;
    eprintln!("cyclic fragment bomb refused in {:?}", started.elapsed());
    assert_eq!(codes(&response), ["FRAGMENT_CYCLE"], "{response}");
    // The same bomb of aliases.
    let aliased = bomb.replace("connectors { name }", "a: connectors { name }");
    let response = gateway.graphql(&aliased, json!({})).await?;
    assert_eq!(codes(&response), ["TOO_MANY_ALIASES"], "{response}");
    Ok(())
}

#[tokio::test]
async fn one_request_resolves_a_bounded_number_of_subjects() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let ids: Vec<Json> = (1..=600)
        .map(|i| json!({ "kind": "USER_ID", "value": (1_000_000 + i).to_string() }))
        .collect();
    // 600 are fine; two aliases of 600 are 1,200 subjects, over the default 1,000.
    let one = gateway
        .graphql(
            "query($ids: [IdentityInput!]!) { a: subjects(identities: $ids) { sources { status } } }",
            json!({ "ids": ids }),
        )
        .await?;
    assert!(one.get("errors").is_none(), "{}", one["errors"]);
    let started = Instant::now();
    let two = gateway
        .graphql(
            "query($ids: [IdentityInput!]!) { a: subjects(identities: $ids) { sources { status } } b: subjects(identities: $ids) { sources { status } } }",
            json!({ "ids": ids }),
        )
        .await?;
    eprintln!("1,200 subjects refused in {:?}", started.elapsed());
    // Refused before anything is resolved: the variables show how many.
    assert_eq!(codes(&two), ["SUBJECT_BUDGET_EXCEEDED"], "{two}");
    assert!(two["data"].is_null());

    // Hidden in a variable's default value: the resolvers' budget stops the second alias.
    let defaults = (0..600)
        .map(|n| format!("{{kind: USER_ID, value: \"{}\"}}", 3_000_000 + n))
        .collect::<Vec<_>>()
        .join(", ");
    let hidden = gateway
        .graphql(
            &format!("query($ids: [IdentityInput!]! = [{defaults}]) {{ a: subjects(identities: $ids) {{ sources {{ status }} }} b: subjects(identities: $ids) {{ sources {{ status }} }} }}"),
            json!({}),
        )
        .await?;
    assert!(
        codes(&hidden).contains(&"SUBJECT_BUDGET_EXCEEDED".to_owned()),
        "{hidden}"
    );

    // The amplification of the probe: 50 aliases of `subjects` with 1,000 identities each.
    let thousand: Vec<Json> = (1..=1000)
        .map(|i| json!({ "kind": "USER_ID", "value": (2_000_000 + i).to_string() }))
        .collect();
    let fifty: Vec<String> = (0..50)
        .map(|i| format!("a{i}: subjects(identities: $ids) {{ sources {{ status }} }}"))
        .collect();
    let started = Instant::now();
    let raw = reqwest::Client::new()
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
        .json(&json!({
            "query": format!("query($ids: [IdentityInput!]!) {{ {} }}", fifty.join(" ")),
            "variables": { "ids": thousand },
        }))
        .send()
        .await?
        .text()
        .await?;
    eprintln!(
        "50 x subjects(1,000): answered in {:?}, {} bytes",
        started.elapsed(),
        raw.len()
    );
    let amplified: Json = serde_json::from_str(&raw)?;
    assert_eq!(
        codes(&amplified),
        ["SUBJECT_BUDGET_EXCEEDED"],
        "{}",
        amplified["errors"]
    );
    assert!(raw.len() < 1_000, "{} bytes", raw.len());

    // Fifty aliases of `subject` are fifty subjects: within the budget.
    let aliased: Vec<String> = (0..50)
        .map(|i| {
            format!("s{i}: subject(identity: {{kind: USER_ID, value: \"{i}\"}}) {{ sources {{ status }} }}")
        })
        .collect();
    let fine = gateway
        .graphql(&format!("{{ {} }}", aliased.join(" ")), json!({}))
        .await?;
    assert!(fine.get("errors").is_none(), "{}", fine["errors"]);
    Ok(())
}

#[tokio::test]
async fn answers_over_the_size_cap_are_replaced_by_an_error() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let copy = ConfigCopy::new()?;
    copy.edit(
        "gateway.toml",
        "max_response_bytes = 16777216",
        "max_response_bytes = 2000",
    )?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let response = gateway
        .graphql(
            "{ connectors { name entities { name fields { name category } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(codes(&response), ["RESPONSE_TOO_LARGE"], "{response}");
    let small = gateway.graphql("{ connectors { name } }", json!({})).await?;
    assert!(small.get("errors").is_none(), "{small}");
    Ok(())
}

#[tokio::test]
async fn syntax_errors_do_not_echo_the_query_and_error_floods_are_capped() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let email = "private.person@example.com";
    let broken = format!("{{ subject(identity: {{kind: EMAIL, value: \"{email}\"}} {{ sources ");
    let response = gateway.graphql(&broken, json!({})).await?;
    assert_eq!(codes(&response), ["GRAPHQL_PARSE_FAILED"], "{response}");
    assert!(!response.to_string().contains(email), "{response}");
    assert!(!response.to_string().contains("private.person"), "{response}");

    // 60,000 repeated directives: one short refusal, not megabytes of errors.
    let flood = format!(
        "{{ connectors {{ name {} }} }}",
        "@skip(if: false) ".repeat(60_000)
    );
    let started = Instant::now();
    let raw = reqwest::Client::new()
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
        .json(&json!({ "query": flood }))
        .send()
        .await?
        .text()
        .await?;
    eprintln!(
        "directive flood answered in {:?}, {} bytes",
        started.elapsed(),
        raw.len()
    );
    let response: Json = serde_json::from_str(&raw)?;
    assert_eq!(codes(&response), ["TOO_MANY_DIRECTIVES"], "{response}");
    assert!(raw.len() < 4096, "{} bytes", raw.len());
    Ok(())
}

#[tokio::test]
async fn a_denied_files_field_is_null_with_category_not_granted_only() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let copy = ConfigCopy::new()?;
    // A role that reads uploads' metadata but not the files (`user.content`).
    copy.edit(
        "gateway.toml",
        "[roles.analyst]",
        "[roles.curator]\noperations = [\"read_subject\"]\ncategories = [\"user.unique_id\", \"system.operations\"]\npurposes = [\"essential\"]\n\n[roles.analyst]",
    )?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.uploads.is_empty())
        .expect("someone with uploads");
    let curator = gateway.key("curator").await?;
    let response = gateway
        .graphql_as(
            &curator,
            "essential",
            "query($v: String!) { subject(identity: {kind: EMAIL, value: $v}) { uploads { images { storageKey files { key } } } } }",
            json!({ "v": person.email }),
        )
        .await?;
    let images = response["data"]["subject"]["uploads"]["images"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!images.is_empty(), "{response}");
    assert!(images.iter().all(|i| i["files"].is_null()), "{response}");
    let codes = codes(&response);
    assert!(!codes.is_empty());
    assert!(codes.iter().all(|c| c == "CATEGORY_NOT_GRANTED"), "{response}");
    assert!(!response.to_string().contains("internal"), "{response}");
    Ok(())
}

#[tokio::test]
async fn a_key_works_the_moment_it_is_shown() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    // Invalid keys first, so the gateway has just looked keys up.
    for i in 0..20 {
        let bogus = format!("sgk_{:016x}_{}", i, "0".repeat(64));
        let response = gateway
            .graphql_as(&bogus, "essential", "{ connectors { name } }", json!({}))
            .await?;
        assert_eq!(codes(&response), ["INVALID_CREDENTIALS"]);
    }
    // A burst of one invalid key costs one lookup, not one per request, and no re-read of the
    // key table.
    let counter = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let metrics = || async {
        reqwest::Client::new()
            .get(gateway.url("/metrics"))
            .headers(gateway.admin_headers()?)
            .send()
            .await?
            .text()
            .await
            .map_err(anyhow::Error::from)
    };
    let before = metrics().await?;
    let bogus = format!("sgk_{:016x}_{}", 0xdead_beef_u64, "1".repeat(64));
    let burst =
        (0..200).map(|_| gateway.graphql_as(&bogus, "essential", "{ connectors { name } }", json!({})));
    for response in futures::future::join_all(burst).await {
        assert_eq!(codes(&response?), ["INVALID_CREDENTIALS"]);
    }
    let after = metrics().await?;
    let lookups = counter(&after, "subject_gateway_api_key_lookups_total")
        - counter(&before, "subject_gateway_api_key_lookups_total");
    let reloads = counter(&after, "subject_gateway_api_key_reloads_total")
        - counter(&before, "subject_gateway_api_key_reloads_total");
    eprintln!("200 requests with one invalid key: {lookups} lookups, {reloads} reloads of the key table");
    assert!(lookups <= 2.0, "{lookups} lookups");
    assert!(reloads <= 1.0, "{reloads} reloads");

    // Created behind the gateway's back (as `keys create` in another process does): no reload.
    let (_, key) = gateway.keys.create("fresh", "support").await?;
    let response = gateway
        .graphql_as(&key, "essential.service", "{ connectors { name } }", json!({}))
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    Ok(())
}

#[tokio::test]
async fn the_body_is_not_read_before_the_caller_is_authenticated() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    // Not JSON at all: without credentials the answer is 401, not a body parse error.
    let response = reqwest::Client::new()
        .post(gateway.url("/graphql"))
        .header("content-type", "application/json")
        .body("{ this is not json")
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    Ok(())
}

/// A gateway with tight connection timeouts and the `[server]` edits given.
async fn tight_gateway(world: &ReferenceWorld, edits: &[(&str, &str)]) -> anyhow::Result<TestGateway> {
    let copy = ConfigCopy::new()?;
    copy.edit(
        "gateway.toml",
        "header_read_timeout_ms = 10000",
        "header_read_timeout_ms = 500",
    )?;
    copy.edit(
        "gateway.toml",
        "idle_timeout_ms = 60000",
        "idle_timeout_ms = 1000",
    )?;
    for (from, to) in edits {
        copy.edit("gateway.toml", from, to)?;
    }
    TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await
}

/// Reads until the peer closes the connection; how long that took (or None within `limit`).
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn silent_half_sent_and_idle_connections_are_closed() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = tight_gateway(&world, &[]).await?;

    let mut silent = tokio::net::TcpStream::connect(gateway.address).await?;
    let mut partial = tokio::net::TcpStream::connect(gateway.address).await?;
    partial
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        .await?;
    let mut idle = tokio::net::TcpStream::connect(gateway.address).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut buffer = [0u8; 1024];
    let n = idle.read(&mut buffer).await?;
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));

    // Measured together, from the moment the idle connection's answer came.
    let (silent, partial, idle) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(5)),
        closed_within(&mut partial, Duration::from_secs(5)),
        closed_within(&mut idle, Duration::from_secs(5)),
    );
    eprintln!("closed: silent {silent:?}, partial headers {partial:?}, idle keep-alive {idle:?}");
    assert!(silent.is_some_and(|t| t < Duration::from_secs(3)), "{silent:?}");
    assert!(partial.is_some_and(|t| t < Duration::from_secs(3)), "{partial:?}");
    assert!(idle.is_some_and(|t| t < Duration::from_secs(4)), "{idle:?}");
    Ok(())
}

#[tokio::test]
async fn a_flood_of_silent_connections_does_not_lock_others_out() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    // Default timeouts (long): the silent connections are still there when the others come.
    let copy = ConfigCopy::new()?;
    copy.edit("gateway.toml", "max_connections = 512", "max_connections = 50")?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    // Twice the cap of silent connections, held open.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(gateway.address).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    for _ in 0..5 {
        let started = Instant::now();
        let health = client.get(gateway.url("/healthz")).send().await?;
        eprintln!(
            "/healthz beside 100 silent connections: {} in {:?}",
            health.status(),
            started.elapsed()
        );
        assert_eq!(health.status(), 200);
        let response = gateway.graphql("{ connectors { name } }", json!({})).await?;
        assert!(response.get("errors").is_none(), "{response}");
    }
    drop(silent);
    Ok(())
}

#[tokio::test]
async fn a_caller_over_its_rate_gets_429_with_retry_after() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = tight_gateway(
        &world,
        &[
            ("per_caller_rate = 200", "per_caller_rate = 1"),
            ("per_caller_burst = 400", "per_caller_burst = 3"),
        ],
    )
    .await?;
    let key = gateway.key("support").await?;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let response = client
            .post(gateway.url("/graphql"))
            .header("authorization", format!("Bearer {key}"))
            .header("x-purpose", "essential.service")
            .json(&json!({ "query": "{ connectors { name } }" }))
            .send()
            .await?;
        statuses.push(response.status().as_u16());
        if response.status() == 429 && refused.is_none() {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Json = response.json().await?;
            refused = Some((retry_after, body));
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let (retry_after, body) = refused.expect("a refusal");
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert_eq!(codes(&body), ["RATE_LIMITED"]);
    // Another caller is not held back.
    let other = gateway.graphql("{ connectors { name } }", json!({})).await?;
    assert!(other.get("errors").is_none());
    Ok(())
}

async fn open_socket(
    gateway: &TestGateway,
    key: &str,
    purpose: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut upgrade = format!("ws://{}/graphql/ws", gateway.address).into_client_request()?;
    upgrade
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    upgrade.headers_mut().insert("x-purpose", purpose.parse()?);
    upgrade
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(upgrade).await?;
    socket
        .send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await?;
    Ok(socket)
}

#[tokio::test]
async fn the_websocket_carries_subscriptions_only_and_closes_on_revocation() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let key = gateway.key("dpo").await?;
    let mut socket = open_socket(&gateway, &key, "essential").await?;
    let aliased: Vec<String> = (0..1000)
        .map(|i| {
            format!("s{i}: subject(identity: {{kind: USER_ID, value: \"{i}\"}}) {{ sources {{ status }} }}")
        })
        .collect();
    for (id, query) in [
        ("1", "{ connectors { name } }".to_owned()),
        ("2", format!("{{ {} }}", aliased.join(" "))),
        (
            "3",
            "mutation { cancelPrivacyRequest(id: \"pr_x\") { id } }".to_owned(),
        ),
    ] {
        socket
            .send(Message::text(
                json!({ "id": id, "type": "subscribe", "payload": { "query": query } }).to_string(),
            ))
            .await?;
    }
    let mut refusals = Vec::new();
    while refusals.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the socket closed"))??;
        let Message::Text(text) = message else { continue };
        let message: Json = serde_json::from_str(&text)?;
        if matches!(message["type"].as_str(), Some("next" | "error")) {
            assert!(
                message["payload"].get("data").is_none_or(Json::is_null),
                "{message}"
            );
            refusals.push((
                message["id"].as_str().unwrap_or_default().to_owned(),
                message.to_string(),
            ));
        }
    }
    // Operations run concurrently: their answers come in any order.
    refusals.sort();
    assert!(refusals[0].1.contains("SUBSCRIPTIONS_ONLY"), "{refusals:?}");
    assert!(refusals[1].1.contains("TOO_MANY_ALIASES"), "{refusals:?}");
    assert!(refusals[2].1.contains("SUBSCRIPTIONS_ONLY"), "{refusals:?}");

    // Revoked: the socket is closed within 5 seconds.
    let id = key.split('_').nth(1).expect("sgk_<id>_<secret>").to_owned();
    gateway.keys.revoke(&id).await?;
    let revoked = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    eprintln!("websocket closed {:?} after revocation", revoked.elapsed());
    assert!(closed.is_ok(), "the socket stayed open after its key was revoked");
    Ok(())
}

#[tokio::test]
async fn oidc_tokens_need_iss_aud_exp_sub_and_honour_nbf() -> anyhow::Result<()> {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let world = ReferenceWorld::create(2).await?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    let secret = b"first-signing-secret-of-32-bytes!!";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    std::fs::write(
        &jwks,
        json!({ "keys": [{ "kty": "oct", "kid": "k1", "alg": "HS256", "k": k }] }).to_string(),
    )?;
    let config = ConfigCopy::new()?;
    config.edit(
        "gateway.toml",
        "# [auth.oidc]",
        &format!(
            "[auth.oidc]\njwks = \"{}\"\nissuer = \"https://idp.test/\"\naudience = \"subject-gateway\"\n# ",
            jwks.display()
        ),
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let now = chrono::Utc::now().timestamp();
    let full = json!({
        "sub": "agent.smith@company.example",
        "roles": ["support"],
        "iss": "https://idp.test/",
        "aud": "subject-gateway",
        "exp": now + 300,
    });
    let ask = |claims: Json| {
        let gateway = &gateway;
        async move {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k1".into());
            let token = encode(&header, &claims, &EncodingKey::from_secret(secret)?)?;
            gateway
                .graphql_as(&token, "essential.service", "{ connectors { name } }", json!({}))
                .await
        }
    };
    assert!(ask(full.clone()).await?.get("errors").is_none());
    for (what, claims) in [
        ("no aud", without(&full, "aud")),
        ("no iss", without(&full, "iss")),
        ("no exp", without(&full, "exp")),
        ("no sub", without(&full, "sub")),
        ("empty sub", with(&full, "sub", json!(""))),
        ("nbf in an hour", with(&full, "nbf", json!(now + 3600))),
        // A claim of the wrong type is refused, not skipped (jsonwebtoken 9 waved a string
        // nbf through: CVE-2026-25537, fixed in 10.3).
        (
            "nbf as a string",
            with(&full, "nbf", json!((now + 3600).to_string())),
        ),
    ] {
        let response = ask(claims).await?;
        assert_eq!(codes(&response), ["INVALID_CREDENTIALS"], "{what}: {response}");
    }
    // A nbf a few seconds ahead is within the leeway for clock skew.
    assert!(
        ask(with(&full, "nbf", json!(now + 5)))
            .await?
            .get("errors")
            .is_none()
    );

    // A websocket opened with a token closes soon after the token expires.
    use futures::StreamExt;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let short = encode(
        &header,
        &with(&full, "exp", json!(chrono::Utc::now().timestamp() + 2)),
        &EncodingKey::from_secret(secret)?,
    )?;
    let mut socket = open_socket(&gateway, &short, "essential.service").await?;
    let opened = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    eprintln!(
        "websocket closed {:?} after opening with a token valid for 2 s",
        opened.elapsed()
    );
    assert!(closed.is_ok(), "the socket outlived its token");
    Ok(())
}

fn without(claims: &Json, name: &str) -> Json {
    let mut claims = claims.clone();
    if let Some(map) = claims.as_object_mut() {
        map.remove(name);
    }
    claims
}

fn with(claims: &Json, name: &str, value: Json) -> Json {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

#[tokio::test]
async fn the_state_database_and_exports_are_private_files() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state").join("gateway.db");
    let keys = subject_gateway::keys::KeyStore::open(&format!("sqlite://{}", state.display())).await?;
    keys.create("x", "admin").await?;
    let mode = std::fs::metadata(&state)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let parent = std::fs::metadata(dir.path().join("state"))?.permissions().mode() & 0o777;
    assert_eq!(parent, 0o700, "{parent:o}");

    let exports = dir.path().join("exports").join("inner");
    subject_gateway::private_fs::create_dir_all(&exports)?;
    let file = exports.join("x.zip");
    subject_gateway::private_fs::create_file(&file)?;
    assert_eq!(std::fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&exports)?.permissions().mode() & 0o777, 0o700);
    Ok(())
}

#[tokio::test]
async fn the_request_timeout_covers_validation_and_execution() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let copy = ConfigCopy::new()?;
    copy.edit(
        "gateway.toml",
        "request_timeout_ms = 30000",
        "request_timeout_ms = 1",
    )?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
        .json(&json!({
            "query": "query($v: String!) { subject(identity: {kind: EMAIL, value: $v}) { identities { kind } accounts { users { email } } } }",
            "variables": { "v": world.people[0].email },
        }))
        .send()
        .await?;
    assert_eq!(response.status(), 408);
    let body: Json = response.json().await?;
    assert_eq!(codes(&body), ["REQUEST_TIMEOUT"], "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn graphiql_is_served_from_the_gateway_itself_under_a_csp() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let client = reqwest::Client::new();
    let page = client.get(gateway.url("/")).send().await?;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unpkg") && !csp.contains("https:"), "{csp}");
    let html = page.text().await?;
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg"));
    // Every script and stylesheet the page names is served here.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        let response = client.get(gateway.url(asset)).send().await?;
        assert_eq!(response.status(), 200, "{asset}");
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{asset}: {kind}"
        );
        assert!(!response.bytes().await?.is_empty());
    }
    assert_eq!(
        client
            .get(gateway.url("/graphiql/../Cargo.toml"))
            .send()
            .await?
            .status(),
        404
    );
    Ok(())
}

/// Sends one DevTools command and waits for its answer (events in between are skipped).
async fn devtools(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    id: u64,
    method: &str,
    params: Json,
) -> anyhow::Result<Json> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    socket
        .send(Message::text(
            json!({ "id": id, "method": method, "params": params }).to_string(),
        ))
        .await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("devtools closed"))??;
        let Message::Text(text) = message else { continue };
        let message: Json = serde_json::from_str(&text)?;
        if message["id"] == id {
            return Ok(message);
        }
    }
}

#[tokio::test]
async fn graphiql_renders_offline_in_headless_chromium_and_runs_a_query() -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let chromium = std::env::var("SUBJECT_GATEWAY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    // `scripts/test.sh` installs Debian's chromium: a browser test that skips cannot fail.
    anyhow::ensure!(
        std::process::Command::new(&chromium)
            .arg("--version")
            .output()
            .is_ok(),
        "no `{chromium}`: apt-get install chromium (scripts/test.sh does), or set SUBJECT_GATEWAY_CHROMIUM"
    );
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let profile = tempfile::tempdir()?;
    // Offline: every host name but the gateway's address fails to resolve.
    let mut browser = tokio::process::Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = browser
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                return Ok::<_, anyhow::Error>(url.trim().to_owned());
            }
        }
        anyhow::bail!("chromium exited before listening")
    })
    .await??;
    let port = endpoint
        .trim_start_matches("ws://")
        .split(['/', ':'])
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let targets: Json = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await?
        .json()
        .await?;
    let page = targets
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no page target: {targets}"))?
        .to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(page).await?;
    devtools(&mut socket, 1, "Network.enable", json!({})).await?;
    let key = gateway.key("admin").await?;
    devtools(
        &mut socket,
        2,
        "Network.setExtraHTTPHeaders",
        json!({ "headers": { "Authorization": format!("Bearer {key}") } }),
    )
    .await?;
    devtools(
        &mut socket,
        3,
        "Page.navigate",
        json!({ "url": gateway.url("/") }),
    )
    .await?;
    let script = r#"(async () => {
      const sleep = ms => new Promise(r => setTimeout(r, ms));
      const until = async (f, ms) => { const end = Date.now() + ms; while (Date.now() < end) { const v = f(); if (v) return v; await sleep(100); } return null; };
      const editor = await until(() => document.querySelector('.graphiql-query-editor .CodeMirror'), 20000);
      if (!editor) return 'NO EDITOR: ' + document.body.innerText.slice(0, 300);
      // GraphiQL may still be starting (introspection in flight) when the editor appears and
      // ignore a click then: type and click again every 2 s until an answer shows.
      let clicked = 0;
      const result = await until(() => {
        const r = document.querySelector('.result-window .CodeMirror');
        const v = r && r.CodeMirror.getValue();
        if (v && v.includes('"connectors"')) return v;
        if (Date.now() - clicked > 2000) {
          clicked = Date.now();
          const e = document.querySelector('.graphiql-query-editor .CodeMirror');
          if (e && e.CodeMirror.getValue() !== '{ connectors { name } }') e.CodeMirror.setValue('{ connectors { name } }');
          const button = document.querySelector('.graphiql-execute-button');
          if (button) button.click();
        }
        return null;
      }, 30000);
      return result || 'NO RESULT: ' + (document.querySelector('.result-window') || document.body).innerText.slice(0, 300);
    })()"#;
    let started = Instant::now();
    let evaluated = devtools(
        &mut socket,
        4,
        "Runtime.evaluate",
        json!({ "expression": script, "awaitPromise": true, "returnByValue": true }),
    )
    .await?;
    let result = evaluated["result"]["result"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("GraphiQL rendered and answered in {:?}", started.elapsed());
    let answer: Json =
        serde_json::from_str(&result).map_err(|_| anyhow::anyhow!("{result} / {evaluated}"))?;
    let names: Vec<&str> = answer["data"]["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"accounts"), "{answer}");
    let _ = browser.kill().await;
    Ok(())
}

#[tokio::test]
async fn with_every_slot_busy_a_newcomer_is_shed_with_503() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = tight_gateway(&world, &[("max_connections = 512", "max_connections = 1")]).await?;
    let key = gateway.key("admin").await?;
    // The one slot holds a request in flight: its body is still coming.
    let mut busy = tokio::net::TcpStream::connect(gateway.address).await?;
    busy.write_all(
        format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nX-Purpose: essential\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut newcomer = tokio::net::TcpStream::connect(gateway.address).await?;
    newcomer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), newcomer.read_to_end(&mut answer)).await??;
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer).to_string();
    eprintln!("shed in {took:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Json = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())?;
    assert_eq!(codes(&body), ["TOO_MANY_CONNECTIONS"]);
    drop(busy);
    Ok(())
}

#[tokio::test]
async fn fragments_spreading_each_other_are_refused_and_the_server_stays_up() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let cycle =
        "query { ...A } fragment A on Query { connectors { name } ...B } fragment B on Query { ...A }";
    let started = Instant::now();
    let response = gateway.graphql(cycle, json!({})).await?;
    eprintln!("fragment cycle answered in {:?}: {response}", started.elapsed());
    assert!(response["data"].is_null(), "{response}");
    assert_eq!(codes(&response), ["FRAGMENT_CYCLE"], "{response}");
    let alive = gateway.graphql("{ connectors { name } }", json!({})).await?;
    assert!(alive.get("errors").is_none(), "{alive}");
    Ok(())
}
