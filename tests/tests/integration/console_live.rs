//! What the console added to the API, and its pages that use it: counts per status, the
//! websocket authenticated by `connection_init` (how a browser follows requests live), a
//! request's recorded events, the connectors' last check, the audit chain's verification, and
//! the webhook and retention pages fitted to the role.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use subject_gateway::config::Config;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::console::Browser;
use crate::requests::wait_for;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket as a browser opens one: no credentials on the upgrade; `init` is the
/// `connection_init` payload.
async fn browser_socket(gateway: &TestGateway, init: Json) -> anyhow::Result<Socket> {
    let mut upgrade = format!("ws://{}/graphql/ws", gateway.address).into_client_request()?;
    upgrade
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(upgrade).await?;
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": init }).to_string(),
        ))
        .await?;
    Ok(socket)
}

/// The next message: `Ok(Json)` for a text message, `Err((code, reason))` for a close.
async fn next(socket: &mut Socket) -> anyhow::Result<Result<Json, (u16, String)>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the socket ended without a close frame"))??;
        match message {
            Message::Text(text) => return Ok(Ok(serde_json::from_str(&text)?)),
            Message::Close(frame) => {
                return Ok(Err(frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                })));
            }
            _ => continue,
        }
    }
}

/// The next text message; a close fails the test.
async fn message(socket: &mut Socket) -> anyhow::Result<Json> {
    next(socket)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed {code}: {reason}"))
}

async fn erase(gateway: &TestGateway, email: &str, key: &str) -> anyhow::Result<String> {
    let answer = gateway
        .graphql(
            "mutation($i: EraseSubjectInput!) { eraseSubject(input: $i) { id } }",
            json!({ "i": { "identity": { "kind": "EMAIL", "value": email }, "idempotencyKey": key } }),
        )
        .await?;
    answer["data"]["eraseSubject"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no request: {answer}"))
}

#[tokio::test]
async fn a_browser_websocket_authenticates_in_connection_init_and_a_wrong_key_is_closed_4403()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let key = gateway.key("dpo").await?;

    // Wrong key, no purpose, a purpose the role may not state: closed 4403 with the reason, and
    // nothing acknowledged first.
    for (init, reason) in [
        (
            json!({ "apiKey": "sgk_wrong_0123456789abcdef", "purpose": "essential" }),
            "not valid",
        ),
        (json!({ "authorization": format!("Bearer {key}") }), "purpose"),
        (
            json!({ "authorization": format!("Bearer {key}"), "purpose": "marketing" }),
            "may not state",
        ),
        (json!({}), "missing credentials"),
    ] {
        let mut socket = browser_socket(&gateway, init.clone()).await?;
        let closed = next(&mut socket).await?;
        let Err((code, text)) = closed else {
            anyhow::bail!("{init}: not closed: {closed:?}");
        };
        assert_eq!(code, 4403, "{init}: {text}");
        assert!(text.contains(reason), "{init}: {text}");
        assert!(!text.contains(&key), "{text}");
    }

    // The right key: acknowledged, and the events of every request (no id) and of one request
    // arrive on it.
    let init = json!({ "authorization": format!("Bearer {key}"), "purpose": "essential" });
    let mut socket = browser_socket(&gateway, init.clone()).await?;
    assert_eq!(message(&mut socket).await?["type"], "connection_ack");
    socket
        .send(Message::text(
            json!({ "id": "all", "type": "subscribe", "payload": {
                "query": "subscription { privacyRequestEvents { requestId kind status } }" } })
            .to_string(),
        ))
        .await?;
    // Subscribed once the server has it: a subscription's first poll is after its interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let person = world.people[0].clone();
    let id = erase(&gateway, &person.email, "live-1").await?;
    let mut seen = Vec::new();
    while !seen.contains(&json!("COMPLETED")) {
        let message = message(&mut socket).await?;
        assert_eq!(message["type"], "next", "{message}");
        let event = &message["payload"]["data"]["privacyRequestEvents"];
        assert_eq!(event["requestId"], json!(id), "{event}");
        seen.push(event["status"].clone());
    }
    assert_eq!(seen[0], "RECEIVED", "{seen:?}");

    // One request's events: its current state first, then the stream completes (finished).
    socket
        .send(Message::text(
            json!({ "id": "one", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { privacyRequestEvents(id: $id) { kind status } }",
                "variables": { "id": id } } })
            .to_string(),
        ))
        .await?;
    let first = message(&mut socket).await?;
    assert_eq!(first["id"], "one", "{first}");
    assert_eq!(
        first["payload"]["data"]["privacyRequestEvents"]["status"],
        "COMPLETED"
    );
    assert_eq!(message(&mut socket).await?["type"], "complete");

    // A role without manage_requests is let in but refused the subscription.
    let support = gateway.key("support").await?;
    let mut socket = browser_socket(
        &gateway,
        json!({ "apiKey": support, "purpose": "essential.service" }),
    )
    .await?;
    assert_eq!(message(&mut socket).await?["type"], "connection_ack");
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": {
                "query": "subscription { privacyRequestEvents { requestId } }" } })
            .to_string(),
        ))
        .await?;
    let refused = message(&mut socket).await?;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    Ok(())
}

#[tokio::test]
async fn counts_per_status_are_one_grouped_query_behind_manage_requests() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let gateway = world.gateway().await?;
    let mut ids = Vec::new();
    for (n, person) in world.people.iter().take(2).enumerate() {
        ids.push(erase(&gateway, &person.email, &format!("count-{n}")).await?);
    }
    let export = gateway
        .graphql(
            "mutation($i: ExportSubjectInput!) { exportSubject(input: $i) { id } }",
            json!({ "i": { "identity": { "kind": "EMAIL", "value": world.people[2].email }, "idempotencyKey": "count-x" } }),
        )
        .await?;
    ids.push(
        export["data"]["exportSubject"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    for id in &ids {
        wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
    }
    let counts = |answer: &Json| -> Vec<(String, i64)> {
        answer["data"]["privacyRequestCounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                (
                    row["status"].as_str().unwrap_or_default().to_owned(),
                    row["count"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let all = gateway
        .graphql("{ privacyRequestCounts { status count } }", json!({}))
        .await?;
    let all = counts(&all);
    // Every status, zeros included.
    assert_eq!(all.len(), 8, "{all:?}");
    assert!(all.contains(&("COMPLETED".into(), 3)), "{all:?}");
    assert!(all.contains(&("FAILED".into(), 0)), "{all:?}");
    let erasures = gateway
        .graphql(
            "query($t: PrivacyRequestType, $o: Boolean) { privacyRequestCounts(type: $t, overdue: $o) { status count } }",
            json!({ "t": "ERASURE", "o": false }),
        )
        .await?;
    assert!(counts(&erasures).contains(&("COMPLETED".into(), 2)), "{erasures}");
    let overdue = gateway
        .graphql(
            "{ privacyRequestCounts(overdue: true) { status count } }",
            json!({}),
        )
        .await?;
    assert!(counts(&overdue).iter().all(|(_, n)| *n == 0), "{overdue}");
    // The request's recorded timeline, oldest first.
    let events = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { events { kind status } } }",
            json!({ "id": ids[0] }),
        )
        .await?;
    let kinds: Vec<&str> = events["data"]["privacyRequest"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"received"), "{events}");
    assert_eq!(kinds.last(), Some(&"completed"), "{events}");
    // Behind the same role check as privacyRequests.
    let support = gateway.key("support").await?;
    let refused = gateway
        .graphql_as(
            &support,
            "essential.service",
            "{ privacyRequestCounts { status count } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    Ok(())
}

#[tokio::test]
async fn the_queue_counts_and_lists_a_new_request_live_and_filters_by_a_count_chip() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let browser = Browser::start().await?;
    let key = gateway.key("admin").await?;
    browser.sign_in(&gateway, &key, "essential").await?;
    browser.text_with("#queue", "No requests match").await?;
    browser.find("#queue[data-live=subscription]").await?;
    browser.js("window.__stillThisPage = true; return null").await?;
    let id = erase(&gateway, &world.people[0].email, "queue-live").await?;
    // The new request appears and completes on the open page, counted in its chip.
    browser
        .text_with(&format!("tr[data-id='{id}']"), "COMPLETED")
        .await?;
    browser.text_with("#counts [data-status=COMPLETED]", "1").await?;
    assert_eq!(
        browser.js("return window.__stillThisPage === true").await?,
        json!(true)
    );
    // A chip filters: FAILED shows none, pressed; pressing again shows all.
    browser.click("#counts [data-status=FAILED] button").await?;
    browser.text_with("#queue", "No requests match").await?;
    let pressed = browser
        .find("#counts [data-status=FAILED] button")
        .await?
        .attr("aria-pressed")
        .await?;
    assert_eq!(pressed.as_deref(), Some("true"));
    browser.click("#counts [data-status=FAILED] button").await?;
    browser.find(&format!("tr[data-id='{id}']")).await?;
    browser.screenshot("queue").await?;
    Ok(())
}

#[tokio::test]
async fn connectors_show_purposes_and_a_check_and_the_audit_page_its_chain_verified() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(1).await?;
    let gateway = world.gateway().await?;
    let browser = Browser::start().await?;
    let key = gateway.key("admin").await?;
    browser.sign_in(&gateway, &key, "essential").await?;
    browser.click("a[href='#/connectors']").await?;
    browser
        .text_with("#connector-check", "No check since the gateway started")
        .await?;
    browser.click("#check-now").await?;
    let findings = browser.text_with("#check-findings", "accounts").await?;
    assert!(findings.contains("billing"), "{findings}");
    browser.text_with("#connector-check", "checked").await?;
    browser.screenshot("connectors").await?;
    // The check is kept: the API returns it with its time.
    let last = gateway
        .graphql(
            "{ connectorCheck { at ok findings { connector ok } } }",
            json!({}),
        )
        .await?;
    assert!(last["data"]["connectorCheck"]["at"].is_string(), "{last}");

    // A read, for the trail to show.
    gateway
        .graphql(
            "query($v: String!) { subject(identity: { kind: EMAIL, value: $v }) { sources { status } } }",
            json!({ "v": world.people[0].email }),
        )
        .await?;
    browser.click("a[href='#/audit']").await?;
    browser.text_with("#audit-events", "subject.read").await?;
    let chain = browser.text_with("#audit-chain", "INTACT").await?;
    assert!(chain.contains(" event"), "{chain}");
    browser.screenshot("audit").await?;
    // Behind read_audit on the server.
    let support = gateway.key("support").await?;
    let refused = gateway
        .graphql_as(
            &support,
            "essential.service",
            "{ auditVerification { intact } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    Ok(())
}

/// `whsec_` and the base64 of 32 bytes.
const FEED_SECRET: &str = "whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";

#[tokio::test]
async fn webhook_and_retention_pages_show_only_to_roles_holding_their_operation() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    // Every request's events to an endpoint that refuses connections: deliveries with errors.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let copy = ConfigCopy::new()?;
    let path = copy.gateway_toml();
    let mut toml = std::fs::read_to_string(&path)?;
    toml.push_str(&format!(
        "\n[webhooks.feed]\nurl = \"http://{closed}/hooks\"\nsecret_env = \"FEED_WEBHOOK_SECRET\"\nall_requests = true\ntimeout_ms = 500\n"
    ));
    std::fs::write(&path, toml)?;
    let base = world.env();
    let env = move |name: &str| match name {
        "FEED_WEBHOOK_SECRET" => Some(FEED_SECRET.to_owned()),
        _ => base(name),
    };
    let gateway = TestGateway::start_with(Config::load(&path)?, env, Vec::new()).await?;
    // An erasure that retains invoices (retention schedule) and tells the feed (deliveries).
    let id = erase(&gateway, &world.payer(1).email, "pages-1").await?;
    wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;

    let browser = Browser::start().await?;
    let admin = gateway.key("admin").await?;
    browser.sign_in(&gateway, &admin, "essential").await?;
    browser.click("a[href='#/retention']").await?;
    let retained = browser.text_with("#retention-entries", &id).await?;
    assert!(retained.contains("invoices"), "{retained}");
    browser.screenshot("retention").await?;
    browser.click("a[href='#/webhooks']").await?;
    browser
        .find(&format!("#webhook-deliveries a[href='#/request/{id}']"))
        .await?;
    let deliveries = browser.text_with("#webhook-deliveries", "feed").await?;
    assert!(deliveries.contains("privacy_request."), "{deliveries}");
    browser.screenshot("webhooks").await?;

    // The DPO holds manage_requests but not manage_webhooks: no Webhooks page, and the server
    // refuses the query and the mutation anyway.
    browser.click("#signout").await?;
    let dpo = gateway.key("dpo").await?;
    browser.sign_in(&gateway, &dpo, "essential").await?;
    assert!(
        browser
            .find("a[href='#/retention']")
            .await?
            .is_displayed()
            .await?
    );
    assert!(!browser.find("a[href='#/webhooks']").await?.is_displayed().await?);
    for query in [
        "{ webhookDeliveries { deliveries { id } } }",
        "mutation { redeliverWebhook(id: \"msg_x\") { id } }",
    ] {
        let refused = gateway.graphql_as(&dpo, "essential", query, json!({})).await?;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{query}: {refused}"
        );
    }
    Ok(())
}
