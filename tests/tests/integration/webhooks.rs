//! Webhooks against a real HTTP receiver (axum on 127.0.0.1:0) that verifies every signature
//! with the Standard Webhooks reference crate (`standardwebhooks`), fails with 500, hangs past the
//! gateway's timeout and comes back: every event of a request arrives, in order, signed; a
//! gateway killed (SIGKILL) while a message is in flight delivers it and the rest after a
//! restart; `redeliverWebhook` sends one again; a request naming an unknown endpoint is refused.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{Value as Json, json};
use subject_gateway::config::Config;
use subject_gateway_demo::world::Person;
use subject_gateway_tests::process::GatewayProcess;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::requests::{submit, wait_for};

/// What the receiver answers a message with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    /// 500.
    Fail,
    /// Answers only after the gateway's timeout.
    Hang,
    /// Never answers while the test runs (the gateway is killed meanwhile).
    Hold,
}

#[derive(Debug, Clone)]
struct Received {
    id: String,
    body: Json,
    verified: bool,
    answer: Answer,
}

/// A webhook receiver: answers the first messages as scripted, then 204.
struct Receiver {
    verifier: standardwebhooks::Webhook,
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    async fn start(secret: &str, script: &[Answer]) -> anyhow::Result<(Arc<Self>, SocketAddr)> {
        let receiver = Arc::new(Self {
            verifier: standardwebhooks::Webhook::new(secret)?,
            script: Mutex::new(script.iter().copied().collect()),
            received: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((receiver, address))
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The messages answered 2xx, in arrival order.
    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answer == Answer::Ok && r.verified)
            .collect()
    }

    /// Waits (at most a minute) until a message `accepted` satisfies `done`.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done(&self.received()) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the receiver never saw {what}: {:#?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let verified = receiver.verifier.verify(body.as_bytes(), &headers).is_ok();
    let answer = if verified {
        receiver
            .script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or(Answer::Ok)
    } else {
        Answer::Fail
    };
    if let Ok(mut received) = receiver.received.lock() {
        received.push(Received {
            id: headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: serde_json::from_str(&body).unwrap_or(Json::Null),
            verified,
            answer,
        });
    }
    match answer {
        Answer::Ok => StatusCode::NO_CONTENT,
        Answer::Fail if !verified => StatusCode::UNAUTHORIZED,
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            StatusCode::NO_CONTENT
        }
        Answer::Hold => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::NO_CONTENT
        }
    }
}

fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

/// Someone with no analytics profile: no rate-limited deletion job to wait for.
fn without_analytics(world: &ReferenceWorld) -> &Person {
    world
        .people
        .iter()
        .find(|p| p.user_id % 3 == 0)
        .unwrap_or(&world.people[0])
}

/// `[webhooks.automation]` (only requests naming it), `[webhooks.feed]` (every request's
/// completions) and quick retries.
fn webhooks_toml(automation: SocketAddr, feed: SocketAddr, timeout_ms: u64, lease_seconds: u64) -> String {
    format!(
        r#"
[webhooks.automation]
url = "http://{automation}/hooks"
secret_env = "AUTOMATION_WEBHOOK_SECRET"
timeout_ms = {timeout_ms}

[webhooks.feed]
url = "http://{feed}/hooks"
secret_env = "FEED_WEBHOOK_SECRET"
events = ["privacy_request.completed"]
all_requests = true
timeout_ms = 1000

[webhook_delivery]
first_retry_ms = 50
max_retry_ms = 400
lease_seconds = {lease_seconds}
poll_interval_ms = 50
"#
    )
}

fn append(copy: &ConfigCopy, text: &str) -> anyhow::Result<()> {
    let path = copy.gateway_toml();
    let mut toml = std::fs::read_to_string(&path)?;
    toml.push_str(text);
    std::fs::write(&path, toml)?;
    Ok(())
}

const DELIVERIES: &str = "query($request: ID, $after: String) { webhookDeliveries(requestId: $request, first: 100, after: $after) {
  deliveries { id endpoint requestId eventType sequence status attempts lastStatusCode lastError nextAttemptAt deliveredAt }
  endCursor hasNextPage } }";

/// A request's deliveries to `endpoint`, in sequence order.
fn in_sequence(page: &Json, endpoint: &str) -> Vec<Json> {
    let mut deliveries: Vec<Json> = page["data"]["webhookDeliveries"]["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["endpoint"] == endpoint)
        .cloned()
        .collect();
    deliveries.sort_by_key(|d| d["sequence"].as_i64());
    deliveries
}

/// The receiver accepted exactly the outbox's messages, each once, in sequence order, and the
/// bodies tell the request's story from `received` to `completed` without identity values.
fn assert_in_order(accepted: &[Received], outbox: &[Json], person: &Person) {
    let accepted_ids: Vec<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    let outbox_ids: Vec<&str> = outbox.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(accepted_ids, outbox_ids, "accepted once each, in order");
    let sequences: Vec<i64> = outbox.iter().filter_map(|d| d["sequence"].as_i64()).collect();
    assert_eq!(sequences, (1..=outbox.len() as i64).collect::<Vec<_>>());
    let types: Vec<&str> = accepted.iter().filter_map(|r| r.body["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"privacy_request.received"), "{types:?}");
    assert_eq!(types.last(), Some(&"privacy_request.completed"), "{types:?}");
    for expected in [
        "privacy_request.planned",
        "privacy_request.task.done",
        "privacy_request.verified",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    for (message, delivery) in accepted.iter().zip(outbox) {
        assert_eq!(message.body["type"], delivery["eventType"]);
        let text = message.body.to_string();
        assert!(
            !text.to_lowercase().contains(&person.email.to_lowercase()) && !text.contains(&person.full_name),
            "no identity value in a body: {text}"
        );
    }
}

#[tokio::test]
async fn webhooks_arrive_signed_and_in_order_through_failures_and_timeouts_and_can_be_sent_again()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let (automation_secret, feed_secret) = (new_secret(), new_secret());
    // The first message fails with 500, then hangs past the 1 s timeout, then gets through.
    let (automation, automation_at) =
        Receiver::start(&automation_secret, &[Answer::Fail, Answer::Hang]).await?;
    let (feed, feed_at) = Receiver::start(&feed_secret, &[]).await?;
    let copy = ConfigCopy::new()?;
    append(&copy, &webhooks_toml(automation_at, feed_at, 1000, 5))?;
    let base = world.env();
    let env = move |name: &str| match name {
        "AUTOMATION_WEBHOOK_SECRET" => Some(automation_secret.clone()),
        "FEED_WEBHOOK_SECRET" => Some(feed_secret.clone()),
        _ => base(name),
    };
    let gateway = TestGateway::start_with(Config::load(&copy.gateway_toml())?, env, Vec::new()).await?;
    let person = without_analytics(&world);

    // A request naming an endpoint that is not configured is refused, and nothing starts.
    let refused = gateway
        .graphql(
            "mutation($input: EraseSubjectInput!) { eraseSubject(input: $input) { id } }",
            json!({ "input": { "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "nope",
                               "webhook": "http://127.0.0.1:1/steal" } }),
        )
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{refused}"
    );
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("automation") && m.contains("feed")),
        "{refused}"
    );
    let listed = gateway
        .graphql("{ privacyRequests { requests { id } } }", json!({}))
        .await?;
    assert_eq!(
        listed["data"]["privacyRequests"]["requests"],
        json!([]),
        "{listed}"
    );

    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "hooked", "webhook": "automation" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    automation
        .wait_until("the completion", |r| {
            r.iter()
                .any(|m| m.answer == Answer::Ok && m.body["type"] == "privacy_request.completed")
        })
        .await?;
    feed.wait_until("the completion", |r| !r.is_empty()).await?;

    let received = automation.received();
    assert!(
        received.iter().all(|m| m.verified),
        "every signature verifies: {received:#?}"
    );
    // The first message three times under one webhook-id: 500, timed out, accepted.
    let first: Vec<Answer> = received
        .iter()
        .filter(|m| m.id == received[0].id)
        .map(|m| m.answer)
        .collect();
    assert_eq!(first, [Answer::Fail, Answer::Hang, Answer::Ok]);
    let page = gateway.graphql(DELIVERIES, json!({ "request": id })).await?;
    let outbox = in_sequence(&page, "automation");
    assert_in_order(&automation.accepted(), &outbox, person);
    for delivery in &outbox {
        assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
        assert_eq!(delivery["nextAttemptAt"], Json::Null, "{delivery}");
    }
    assert_eq!(outbox[0]["attempts"], 3, "{}", outbox[0]);
    assert_eq!(outbox[0]["lastStatusCode"], 204, "{}", outbox[0]);
    // The completion carries the receipt's SHA-256.
    let completed = automation
        .accepted()
        .last()
        .map(|m| m.body.clone())
        .unwrap_or_default();
    assert_eq!(
        completed["data"]["receiptSha256"], done["receiptSha256"],
        "{completed}"
    );
    assert_eq!(completed["data"]["requestId"], id.as_str());
    assert_eq!(completed["data"]["requestType"], "ERASURE");
    // The endpoint for every request got only the type it subscribed to, once.
    let fed = feed.received();
    assert_eq!(fed.len(), 1, "{fed:#?}");
    assert!(fed[0].verified);
    assert_eq!(fed[0].body["type"], "privacy_request.completed");
    assert_eq!(fed[0].body["data"]["receiptSha256"], done["receiptSha256"]);

    // Sent again on request, with the same webhook-id; audited.
    let again = gateway
        .graphql(
            "mutation($id: ID!) { redeliverWebhook(id: $id) { id status } }",
            json!({ "id": outbox[0]["id"] }),
        )
        .await?;
    assert_eq!(
        again["data"]["redeliverWebhook"]["id"], outbox[0]["id"],
        "{again}"
    );
    let first_id = received[0].id.clone();
    automation
        .wait_until("the redelivery", |r| {
            r.iter()
                .filter(|m| m.id == first_id && m.answer == Answer::Ok)
                .count()
                == 2
        })
        .await?;
    let page = gateway.graphql(DELIVERIES, json!({ "request": id })).await?;
    let redelivered = &in_sequence(&page, "automation")[0];
    assert_eq!(redelivered["attempts"], 4, "{redelivered}");
    let audit = gateway
        .graphql(
            "{ auditEvents(action: \"webhook.redelivered\") { events { action detail } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        audit["data"]["auditEvents"]["events"][0]["detail"]["delivery"], outbox[0]["id"],
        "{audit}"
    );
    let missing = gateway
        .graphql(
            "mutation { redeliverWebhook(id: \"msg_nope\") { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        missing["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{missing}"
    );

    // Listing and redelivering need `manage_webhooks`.
    let dpo = gateway.key("dpo").await?;
    let forbidden = gateway
        .graphql_as(
            &dpo,
            "essential",
            "{ webhookDeliveries { deliveries { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{forbidden}"
    );
    // Pages follow each other without gaps.
    let all = gateway.graphql(DELIVERIES, json!({})).await?;
    let total = all["data"]["webhookDeliveries"]["deliveries"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        total,
        outbox.len() + 1,
        "the automation's messages and the feed's one"
    );
    let delivered = gateway
        .graphql(
            "{ webhookDeliveries(status: DEAD) { deliveries { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        delivered["data"]["webhookDeliveries"]["deliveries"],
        json!([]),
        "{delivered}"
    );
    Ok(())
}

#[tokio::test]
async fn a_gateway_killed_while_a_message_is_in_flight_delivers_it_and_the_rest_after_restart()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let (automation_secret, feed_secret) = (new_secret(), new_secret());
    // The third message is held until the gateway is killed.
    let (automation, automation_at) =
        Receiver::start(&automation_secret, &[Answer::Ok, Answer::Ok, Answer::Hold]).await?;
    let (_feed, feed_at) = Receiver::start(&feed_secret, &[]).await?;
    let copy = ConfigCopy::for_killed_gateways()?;
    // A message in flight is the killed gateway's for 5 s, then the restarted one sends it.
    append(&copy, &webhooks_toml(automation_at, feed_at, 4000, 5))?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("kill test", "admin")
        .await?;
    let mut vars = world.env_vars();
    vars.push(("AUTOMATION_WEBHOOK_SECRET", automation_secret));
    vars.push(("FEED_WEBHOOK_SECRET", feed_secret));
    let log = copy.dir.path().join("gateway.log");
    let person = without_analytics(&world);

    let first = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let id = first
        .submit_erasure(&person.email, "killed", json!({ "webhook": "automation" }))
        .await?;
    automation
        .wait_until("the held message", |r| r.iter().any(|m| m.answer == Answer::Hold))
        .await?;
    first.kill()?;
    let held = automation
        .received()
        .into_iter()
        .find(|m| m.answer == Answer::Hold)
        .ok_or_else(|| anyhow::anyhow!("no held message"))?;
    // Killed in flight: the attempt was counted and leased, its outcome never recorded.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.state_file().display())).await?;
    let (status, attempts, owner, error): (String, i64, Option<String>, Option<String>) =
        sqlx::query_as("SELECT status, attempts, lease_owner, last_error FROM webhook_outbox WHERE id = $1")
            .bind(&held.id)
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    assert_eq!((status.as_str(), attempts, error), ("PENDING", 1, None));
    assert!(owner.is_some(), "in flight when killed");

    let second = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    automation
        .wait_until("the completion after the restart", |r| {
            r.iter()
                .any(|m| m.answer == Answer::Ok && m.body["type"] == "privacy_request.completed")
        })
        .await?;
    let request = second
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        request["data"]["privacyRequest"]["status"], "COMPLETED",
        "{request}"
    );
    let page = second.graphql(DELIVERIES, json!({ "request": id })).await?;
    let outbox = in_sequence(&page, "automation");
    assert!(outbox.iter().all(|d| d["status"] == "DELIVERED"), "{page}");
    let received = automation.received();
    assert!(received.iter().all(|m| m.verified), "{received:#?}");
    // The held message came again under its id and got through; every other came once.
    assert_eq!(
        received
            .iter()
            .filter(|m| m.id == held.id)
            .map(|m| m.answer)
            .collect::<Vec<_>>(),
        [Answer::Hold, Answer::Ok]
    );
    assert_in_order(&automation.accepted(), &outbox, person);
    Ok(())
}

#[tokio::test]
async fn two_gateways_on_one_postgres_send_each_message_once_and_in_order() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let (automation_secret, feed_secret) = (new_secret(), new_secret());
    let (automation, automation_at) = Receiver::start(&automation_secret, &[]).await?;
    let (feed, feed_at) = Receiver::start(&feed_secret, &[]).await?;
    let copy = ConfigCopy::new()?;
    append(&copy, &webhooks_toml(automation_at, feed_at, 2000, 5))?;
    let state =
        subject_gateway_tests::TestDatabase::create(subject_connectors::declaration::SqlDialect::Postgres)
            .await?;
    let mut config = Config::load(&copy.gateway_toml())?;
    config.auth.state_url = state.url.clone();
    let env = || {
        let base = world.env();
        let (automation_secret, feed_secret) = (automation_secret.clone(), feed_secret.clone());
        move |name: &str| match name {
            "AUTOMATION_WEBHOOK_SECRET" => Some(automation_secret.clone()),
            "FEED_WEBHOOK_SECRET" => Some(feed_secret.clone()),
            _ => base(name),
        }
    };
    let a = TestGateway::start_on_state(config.clone(), env(), Vec::new(), tempfile::tempdir()?).await?;
    let b = TestGateway::start_on_state(config, env(), Vec::new(), tempfile::tempdir()?).await?;
    let people: Vec<&Person> = world
        .people
        .iter()
        .filter(|p| p.user_id % 3 == 0)
        .take(4)
        .collect();
    let mut ids = Vec::new();
    for (n, person) in people.iter().enumerate() {
        let gateway = if n % 2 == 0 { &a } else { &b };
        let request = submit(
            gateway,
            "eraseSubject",
            json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() },
                    "idempotencyKey": format!("pg-{n}"), "webhook": "automation" }),
        )
        .await?;
        ids.push(request["id"].as_str().unwrap_or_default().to_owned());
    }
    for id in &ids {
        let done = wait_for(&a, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    let count = ids.len();
    feed.wait_until("every completion", |r| r.len() >= count).await?;
    automation
        .wait_until("every completion", |r| {
            r.iter()
                .filter(|m| m.body["type"] == "privacy_request.completed")
                .count()
                >= count
        })
        .await?;
    let accepted = automation.accepted();
    assert_eq!(
        automation.received().len(),
        accepted.len(),
        "all verified and accepted"
    );
    for (id, person) in ids.iter().zip(&people) {
        let page = a.graphql(DELIVERIES, json!({ "request": id })).await?;
        let outbox = in_sequence(&page, "automation");
        let theirs: Vec<Received> = accepted
            .iter()
            .filter(|m| m.body["data"]["requestId"] == id.as_str())
            .cloned()
            .collect();
        // Each exactly once (no replica sent one twice), in the request's order.
        assert_in_order(&theirs, &outbox, person);
    }
    assert_eq!(
        feed.received().len(),
        count,
        "one completion per request for the feed"
    );
    Ok(())
}
