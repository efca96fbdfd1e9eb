//! Retention that ends: the records an erasure retained are scheduled for the end of their
//! retention, and when it passes the gateway erases them as declared (invoices deleted, the
//! customer pseudonymized) by itself, amends the original receipt and audits it — including after
//! a gateway was killed in the middle of the run.
//!
//! The end is reached with `[requests] retention_clock_skew_days` (tests and drills only): the
//! declarations keep their real ten years.

use std::time::Duration;

use serde_json::{Value as Json, json};
use subject_connectors::declaration::SqlDialect;
use subject_gateway::config::Config;
use subject_gateway_tests::process::GatewayProcess;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway, config_dir, snapshot};

use crate::at;
use crate::requests::{everywhere, only_theirs_changed, submit, wait_for};

const SCHEDULE: &str = "query($after: String) { retentionSchedule(first: 100, after: $after) {
  entries { id requestId connector entity legalBasis retainUntil afterRetention status attempts endedAt lastError }
  endCursor hasNextPage } }";

const REQUEST: &str = "query($id: ID!) { privacyRequest(id: $id) { status receipt receiptSha256 } }";

/// Every entry of the schedule, page by page.
async fn schedule_of(graphql: impl AsyncFn(Json) -> anyhow::Result<Json>) -> anyhow::Result<Vec<Json>> {
    let mut entries = Vec::new();
    let mut after = Json::Null;
    loop {
        let response = graphql(json!({ "after": after })).await?;
        anyhow::ensure!(response.get("errors").is_none(), "{}", response["errors"]);
        let page = &response["data"]["retentionSchedule"];
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        if page["hasNextPage"] != true {
            return Ok(entries);
        }
        after = page["endCursor"].clone();
    }
}

/// The customer and invoice counts of the person's retained records.
fn expected_entries(person: &subject_gateway_demo::world::Person) -> usize {
    person.customer.as_ref().map_or(0, |c| 1 + c.invoices.len())
}

#[tokio::test]
async fn retained_records_end_as_declared_by_themselves_and_the_receipt_is_amended() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let mut config = Config::load(&config_dir().join("gateway.toml"))?;
    // Eleven years on: every retention of the reference world (ten years) has ended.
    config.requests.retention_clock_skew_days = 4000;
    let gateway = TestGateway::start_with(config, world.env(), Vec::new()).await?;
    let person = everywhere(&world).clone();
    let customer = person.customer.clone().expect("a customer");
    let before = snapshot::take(&world).await?;
    let theirs = snapshot::keys_of(&world, &person, &before);

    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "retain-1" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // The schedule: one entry per retained record, no values; all end (they are due).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let entries = loop {
        let entries = schedule_of(async |vars| gateway.graphql(SCHEDULE, vars).await).await?;
        if entries.len() == expected_entries(&person) && entries.iter().all(|e| e["status"] == "ENDED") {
            break entries;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "retention did not end: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for entry in &entries {
        assert_eq!(entry["requestId"], id.as_str());
        assert!(
            entry["legalBasis"].as_str().is_some_and(|b| b.contains("Tax")),
            "{entry}"
        );
        let text = entry.to_string();
        assert!(
            !text.contains(&customer.id) && !text.contains(&person.email),
            "no values: {text}"
        );
    }
    let of = |entity: &str| entries.iter().filter(|e| e["entity"] == entity).count();
    assert_eq!(of("invoices"), customer.invoices.len());
    assert_eq!(of("customers"), 1);
    assert!(entries.iter().all(|e| {
        e["afterRetention"]
            == if e["entity"] == "invoices" {
                "DELETE"
            } else {
                "PSEUDONYMIZE"
            }
    }));

    // The original receipt is amended once per entity; its new digest is audited.
    let request = gateway.graphql(REQUEST, json!({ "id": id })).await?;
    let request = &request["data"]["privacyRequest"];
    let amendments = request["receipt"]["amendments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(amendments.len(), 2, "{amendments:?}");
    let amendment = |entity: &str| {
        amendments
            .iter()
            .find(|a| a["entity"] == entity)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(amendment("invoices")["action"], "DELETE");
    assert_eq!(amendment("invoices")["records"], customer.invoices.len());
    assert_eq!(amendment("customers")["action"], "PSEUDONYMIZE");
    assert_eq!(amendment("customers")["records"], 1);
    assert!(
        amendments
            .iter()
            .all(|a| a["verified"] == true && a["type"] == "retention.ended")
    );
    let digest = request["receiptSha256"].as_str().unwrap_or_default();
    let completed = gateway
        .graphql(
            "{ auditEvents(action: \"erasure.completed\") { events { detail } } }",
            json!({}),
        )
        .await?;
    let completed_digest = &completed["data"]["auditEvents"]["events"][0]["detail"]["receiptSha256"];
    assert!(completed_digest.is_string(), "{completed}");
    assert_ne!(completed_digest, digest, "the amended receipt has a new digest");
    let audit = gateway
        .graphql(
            "{ auditEvents(action: \"erasure.retention_ended\") { events { detail } } }",
            json!({}),
        )
        .await?;
    let events = at(&audit, &["data", "auditEvents", "events"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(events.len(), 2, "{audit}");
    assert!(
        events.iter().any(|e| e["detail"]["receiptSha256"] == digest),
        "{audit}"
    );

    // In the stores: the invoices are gone, the customer is kept with nothing of the person left;
    // nobody else changed.
    let after = snapshot::take(&world).await?;
    only_theirs_changed(&theirs, &before, &after);
    for invoice in &customer.invoices {
        assert!(
            !after.contains_key(&format!("billing/invoices/{}", invoice.id)),
            "{}",
            invoice.id
        );
    }
    assert!(after.contains_key(&format!("billing/customers/{}", customer.id)));
    let billing = world.billing.pool().await?;
    let (country, tax_id): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT CAST(country AS CHAR), CAST(tax_id AS CHAR) FROM customers WHERE id = ?")
            .bind(&customer.id)
            .fetch_one(&billing)
            .await?;
    for value in [country, tax_id].into_iter().flatten() {
        assert!(value.starts_with("pseu"), "pseudonymized: {value}");
    }
    Ok(())
}

#[tokio::test]
async fn a_gateway_killed_in_the_middle_of_a_retention_run_ends_it_once_after_restart() -> anyhow::Result<()>
{
    let world = ReferenceWorld::create_on(12, SqlDialect::Postgres, SqlDialect::Postgres).await?;
    let copy = ConfigCopy::for_killed_gateways()?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("retention kill test", "admin")
        .await?;
    let log = copy.dir.path().join("gateway.log");
    let vars = world.env_vars();
    let person = everywhere(&world).clone();
    let customer = person.customer.clone().expect("a customer");

    // Today: the erasure completes and its retained records are scheduled, ten years out.
    let first = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let id = first
        .submit_erasure(&person.email, "retain-kill", json!({}))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let request = first.graphql(REQUEST, json!({ "id": id })).await?;
        let status = &request["data"]["privacyRequest"]["status"];
        if status == "COMPLETED" {
            break;
        }
        anyhow::ensure!(
            status != "FAILED" && std::time::Instant::now() < deadline,
            "{request}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scheduled = schedule_of(async |vars| first.graphql(SCHEDULE, vars).await).await?;
    assert_eq!(scheduled.len(), expected_entries(&person), "{scheduled:?}");
    let now = chrono::Utc::now();
    for entry in &scheduled {
        assert_eq!(entry["status"], "SCHEDULED", "{entry}");
        let until = chrono::DateTime::parse_from_rfc3339(entry["retainUntil"].as_str().unwrap_or_default())?;
        assert!(
            until > now + chrono::Duration::days(365),
            "ends years from now: {entry}"
        );
    }
    first.kill()?;

    // Eleven years on, with the billing tables locked: the run claims the records and blocks in
    // the store; the gateway is killed there.
    copy.edit(
        "gateway.toml",
        "export_link_minutes = 60",
        "export_link_minutes = 60\nretention_clock_skew_days = 4000",
    )?;
    let billing = world.billing.pool().await?;
    let mut lock = billing.begin().await?;
    sqlx::query("LOCK TABLE invoices, customers IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;
    let second = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let running = loop {
        let entries = schedule_of(async |vars| second.graphql(SCHEDULE, vars).await).await?;
        if entries.iter().any(|e| e["status"] == "RUNNING") {
            break entries;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "never claimed: {entries:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(running.iter().all(|e| e["status"] != "ENDED"), "{running:?}");
    second.kill()?;
    lock.rollback().await?;
    let before_restart = snapshot::take(&world).await?;
    for invoice in &customer.invoices {
        assert!(
            before_restart.contains_key(&format!("billing/invoices/{}", invoice.id)),
            "nothing ended while the tables were locked"
        );
    }

    // A restarted gateway takes the records over when the lease runs out and ends them once.
    let third = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let entries = schedule_of(async |vars| third.graphql(SCHEDULE, vars).await).await?;
        if entries.iter().all(|e| e["status"] == "ENDED") {
            break entries;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not ended after restart: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended.len(), expected_entries(&person));
    assert!(
        ended
            .iter()
            .all(|e| e["attempts"].as_i64().is_some_and(|a| a >= 2)),
        "{ended:?}"
    );
    let request = third.graphql(REQUEST, json!({ "id": id })).await?;
    let amendments = request["data"]["privacyRequest"]["receipt"]["amendments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        amendments.len(),
        2,
        "one amendment per entity, not two: {amendments:?}"
    );
    let after = snapshot::take(&world).await?;
    for invoice in &customer.invoices {
        assert!(!after.contains_key(&format!("billing/invoices/{}", invoice.id)));
    }
    assert!(after.contains_key(&format!("billing/customers/{}", customer.id)));
    Ok(())
}

#[tokio::test]
async fn a_retained_mongodb_collection_ends_by_its_kept_object_ids() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let person = everywhere(&world).clone();
    let contracts = world
        .uploads
        .database
        .collection::<mongodb::bson::Document>("contracts");
    contracts
        .insert_many([
            mongodb::bson::doc! { "owner_id": person.user_id, "signer": "Their Name" },
            mongodb::bson::doc! { "owner_id": person.user_id, "signer": "Their Name" },
            mongodb::bson::doc! { "owner_id": 424_242_i64, "signer": "Someone Else" },
        ])
        .await?;
    let copy = ConfigCopy::new()?;
    copy.write_connector(
        "contracts.toml",
        r#"kind = "mongodb"
url = "${CONTRACTS_MONGODB_URL}"

[entities.contracts]
primary_key = "id"
lookup = [{ kind = "user_id", field = "owner_id" }]

[entities.contracts.erasure]
action = "retain"
legal_basis = "Contract law: signed contracts are kept 6 years"
retention_days = 2190
after_retention = "delete"

[entities.contracts.fields]
id = { type = "string", category = "system.operations", path = "_id" }
owner_id = { type = "bigint", category = "user.unique_id" }
signer = { type = "string", category = "user.name", erasure = "pseudonymize" }
"#,
    )?;
    let mut config = Config::load(&copy.gateway_toml())?;
    config.requests.retention_clock_skew_days = 4000;
    let base = world.env();
    let url = world.uploads.url.clone();
    let env = move |name: &str| {
        if name == "CONTRACTS_MONGODB_URL" {
            Some(url.clone())
        } else {
            base(name)
        }
    };
    let gateway = TestGateway::start_with(config, env, Vec::new()).await?;
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "contracts" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let entries = schedule_of(async |vars| gateway.graphql(SCHEDULE, vars).await).await?;
        let mine: Vec<&Json> = entries.iter().filter(|e| e["connector"] == "contracts").collect();
        if mine.len() == 2 && mine.iter().all(|e| e["status"] == "ENDED") {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the contracts' retention did not end: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<mongodb::bson::Document> =
        futures::TryStreamExt::try_collect(contracts.find(mongodb::bson::doc! {}).await?).await?;
    assert_eq!(left.len(), 1, "only someone else's contract is left: {left:?}");
    assert_eq!(left[0].get_str("signer")?, "Someone Else");
    let request = gateway.graphql(REQUEST, json!({ "id": id })).await?;
    let amendments = request["data"]["privacyRequest"]["receipt"]["amendments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let contract = amendments
        .iter()
        .find(|a| a["connector"] == "contracts")
        .cloned()
        .unwrap_or_default();
    assert_eq!(contract["records"], 2, "{amendments:?}");
    assert_eq!(contract["action"], "DELETE");
    Ok(())
}
