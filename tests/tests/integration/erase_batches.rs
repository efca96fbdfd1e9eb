//! Batched erases against the analytics test server (one deletion call a second, many ids a
//! call): concurrent erasures share one deletion call and one job, and each request is verified
//! on its own; a failing shared job fails every member; a declaration without `max_batch` makes
//! one call per person, as before; a gateway killed between the call and storing its job id
//! sends the batch again and loses no one.

use std::sync::atomic::Ordering;

use futures::future::try_join_all;
use serde_json::{Value as Json, json};
use subject_gateway_demo::world::Person;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::requests::{submit, wait_for};

const DECLARED: &str = "max_batch = 2000, batch_window_ms = 500";

/// The reference declarations with the analytics erase's batching replaced by `batching` (the
/// whole `max_batch = …, batch_window_ms = …` text; empty and with a per-record body when
/// `per_record`).
fn declarations(batching: &str, per_record: bool) -> anyhow::Result<ConfigCopy> {
    let copy = ConfigCopy::new()?;
    if per_record {
        copy.edit("connectors/analytics.toml", &format!("{DECLARED}, "), "")?;
        copy.edit(
            "connectors/analytics.toml",
            "\"{distinct_id[]}\"",
            "[\"{distinct_id}\"]",
        )?;
    } else {
        copy.edit("connectors/analytics.toml", DECLARED, batching)?;
    }
    Ok(copy)
}

/// People with an analytics profile.
fn in_analytics(world: &ReferenceWorld, count: usize) -> Vec<Person> {
    world
        .people
        .iter()
        .filter(|p| p.user_id % 3 != 0)
        .take(count)
        .cloned()
        .collect()
}

/// Submits an erasure for each person at once; their request ids.
async fn erase_all(gateway: &TestGateway, people: &[Person], tag: &str) -> anyhow::Result<Vec<String>> {
    let submissions = people.iter().map(|p| {
        submit(
            gateway,
            "eraseSubject",
            json!({ "identity": { "kind": "EMAIL", "value": p.email }, "idempotencyKey": format!("{tag}-{}", p.user_id) }),
        )
    });
    Ok(try_join_all(submissions)
        .await?
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect())
}

fn profiles_task(request: &Json) -> Json {
    request["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["connector"] == "analytics" && t["entity"] == "profiles")
        .cloned()
        .unwrap_or(Json::Null)
}

fn has_profile(world: &ReferenceWorld, person: &Person) -> bool {
    world
        .analytics
        .state
        .data
        .lock()
        .map(|d| d.profiles.contains_key(&format!("u{}", person.user_id)))
        .unwrap_or(true)
}

#[tokio::test]
async fn concurrent_erasures_share_one_deletion_call_and_each_is_verified() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(18).await?;
    let people = in_analytics(&world, 5);
    // The batch closes when it holds all five: its window is longer than the test.
    let copy = declarations(
        &format!("max_batch = {}, batch_window_ms = 600000", people.len()),
        false,
    )?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let others = world
        .analytics
        .state
        .data
        .lock()
        .map(|d| d.profiles.len())
        .unwrap_or(0)
        - people.len();

    let ids = erase_all(&gateway, &people, "shared").await?;
    let mut jobs = Vec::new();
    for (id, person) in ids.iter().zip(&people) {
        let done = wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        let task = profiles_task(&done);
        assert_eq!(task["status"], "DONE", "{task}");
        assert_eq!(task["records"], 1, "{task}");
        assert_eq!(
            task["verified"], true,
            "each request is verified on its own: {task}"
        );
        // The receipt names the shared job, and counts only this request's own records.
        let entry = done["receipt"]["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["connector"] == "analytics" && e["entity"] == "profiles")
            .cloned()
            .unwrap_or(Json::Null);
        assert_eq!(entry["deleted"], 1, "{entry}");
        jobs.push(entry["sharedJob"].clone());
        assert!(!has_profile(&world, person), "the profile is gone");
    }
    assert!(
        jobs.iter().all(|j| j.is_string() && *j == jobs[0]),
        "one shared job: {jobs:?}"
    );
    let state = &world.analytics.state;
    assert_eq!(
        state.deletion_calls.load(Ordering::SeqCst),
        1,
        "one deletion call for five erasures"
    );
    assert_eq!(
        state.deleted_ids.load(Ordering::SeqCst),
        5,
        "carrying all five distinct ids"
    );
    let left = state.data.lock().map(|d| d.profiles.len()).unwrap_or(0);
    assert_eq!(left, others, "nobody else's profile was deleted");
    Ok(())
}

#[tokio::test]
async fn a_failing_shared_job_fails_every_member_request_naming_the_job() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let people = in_analytics(&world, 3);
    let copy = declarations(
        &format!("max_batch = {}, batch_window_ms = 600000", people.len()),
        false,
    )?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    world.analytics.state.fail_deletions.store(true, Ordering::SeqCst);

    let ids = erase_all(&gateway, &people, "failing").await?;
    for (id, person) in ids.iter().zip(&people) {
        let failed = wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(failed["status"], "FAILED", "no silent success: {failed}");
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("analytics.profiles") && error.contains("FAILURE") && error.contains("task-1"),
            "the error names the store, the entity and the job: {error}"
        );
        let task = profiles_task(&failed);
        assert_eq!(task["status"], "FAILED", "{task}");
        assert_eq!(task["errorCode"], "JOB_FAILED", "{task}");
        assert!(has_profile(&world, person), "the vendor kept the profile");
    }
    assert_eq!(world.analytics.state.deletion_calls.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn without_max_batch_each_erasure_makes_its_own_deletion_call() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(9).await?;
    let people = in_analytics(&world, 2);
    let copy = declarations("", true)?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;

    let ids = erase_all(&gateway, &people, "single").await?;
    for (id, person) in ids.iter().zip(&people) {
        let done = wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(profiles_task(&done)["verified"], true);
        assert!(!has_profile(&world, person));
    }
    let state = &world.analytics.state;
    assert_eq!(
        state.deletion_calls.load(Ordering::SeqCst),
        2,
        "one call per person"
    );
    assert_eq!(state.deleted_ids.load(Ordering::SeqCst), 2);
    Ok(())
}

/// The state database's batches, as `(status, job_id)`.
pub async fn batches(state: &std::path::Path) -> anyhow::Result<Vec<(String, Option<String>)>> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", state.display())).await?;
    let rows = sqlx::query_as::<_, (String, Option<String>)>("SELECT status, job_id FROM erase_batches")
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    Ok(rows)
}

#[tokio::test]
async fn a_gateway_killed_before_storing_the_job_id_sends_the_batch_again_and_loses_no_one()
-> anyhow::Result<()> {
    use subject_gateway::config::Config;
    use subject_gateway_tests::process::GatewayProcess;

    let world = ReferenceWorld::create(12).await?;
    let people = in_analytics(&world, 2);
    let copy = declarations(
        &format!("max_batch = {}, batch_window_ms = 600000", people.len()),
        false,
    )?;
    let state = copy.dir.path().join("state.db");
    copy.edit(
        "gateway.toml",
        "state_url = \"sqlite://subject-gateway-state.db\"",
        &format!("state_url = \"sqlite://{}\"", state.display()),
    )?;
    copy.edit("gateway.toml", "lease_seconds = 30", "lease_seconds = 2")?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("kill test", "admin")
        .await?;
    let log = copy.dir.path().join("gateway.log");
    let vars = world.env_vars();

    let first = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let mut ids = Vec::new();
    for person in &people {
        let response = first
            .graphql(
                "mutation($input: EraseSubjectInput!) { eraseSubject(input: $input) { id } }",
                json!({ "input": { "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": format!("killed-{}", person.user_id) } }),
            )
            .await?;
        ids.push(
            response["data"]["eraseSubject"]["id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no request: {response}"))?
                .to_owned(),
        );
    }
    // Kill it once the batch's call was made and its job id stored …
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !batches(&state).await?.iter().any(|(status, _)| status == "SENT") {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the batch was never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill()?;
    assert_eq!(world.analytics.state.deletion_calls.load(Ordering::SeqCst), 1);
    // … and put the state database back as a kill between the call and storing the job id leaves
    // it: the batch SENDING with no job, its lease run out.
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", state.display())).await?;
    sqlx::query(
        "UPDATE erase_batches SET status = 'SENDING', job_id = NULL, sent_at = NULL, lease_until = ''",
    )
    .execute(&pool)
    .await?;
    pool.close().await;

    let second = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    for (id, person) in ids.iter().zip(&people) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let done = loop {
            let response = second
                .graphql(
                    "query($id: ID!) { privacyRequest(id: $id) { status error tasks { connector entity status verified } } }",
                    json!({ "id": id }),
                )
                .await?;
            let request = response["data"]["privacyRequest"].clone();
            if request["status"] == "COMPLETED" || request["status"] == "FAILED" {
                break request;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "not finished after restart: {request}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(profiles_task(&done)["verified"], true, "{done}");
        assert!(!has_profile(&world, person));
    }
    // At least once: the batch was sent again, with both members' ids.
    let state_of = &world.analytics.state;
    assert_eq!(state_of.deletion_calls.load(Ordering::SeqCst), 2);
    assert_eq!(state_of.deleted_ids.load(Ordering::SeqCst), 4);
    second.kill()?;
    Ok(())
}

#[tokio::test]
async fn two_gateways_on_one_postgres_fill_and_send_batches_together() -> anyhow::Result<()> {
    use subject_connectors::declaration::SqlDialect;
    use subject_gateway::config::Config;
    use subject_gateway_tests::TestDatabase;

    let world = ReferenceWorld::create(15).await?;
    let people = in_analytics(&world, 4);
    let state = TestDatabase::create(SqlDialect::Postgres).await?;
    let copy = declarations(
        &format!("max_batch = {}, batch_window_ms = 600000", people.len()),
        false,
    )?;
    let mut config = Config::load(&copy.gateway_toml())?;
    config.auth.state_url = state.url.clone();
    let a =
        TestGateway::start_on_state(config.clone(), world.env(), Vec::new(), tempfile::tempdir()?).await?;
    let b = TestGateway::start_on_state(config, world.env(), Vec::new(), tempfile::tempdir()?).await?;
    let (half, other) = people.split_at(2);
    let mut ids = erase_all(&a, half, "replica").await?;
    ids.extend(erase_all(&b, other, "replica").await?);
    for (id, person) in ids.iter().zip(&people) {
        let done = wait_for(&a, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(profiles_task(&done)["verified"], true, "{done}");
        assert!(!has_profile(&world, person));
    }
    let vendor = &world.analytics.state;
    assert_eq!(
        vendor.deletion_calls.load(Ordering::SeqCst),
        1,
        "one batch across both replicas"
    );
    assert_eq!(vendor.deleted_ids.load(Ordering::SeqCst), 4);
    Ok(())
}
