//! Privacy requests survive faults: a gateway process killed (SIGKILL) in the middle of an erasure
//! finishes it after a restart without acting twice, and two gateways sharing one PostgreSQL state
//! database split the work and never do a request twice.

use std::time::Duration;

use serde_json::{Value as Json, json};
use subject_connectors::declaration::SqlDialect;
use subject_gateway::config::Config;
use subject_gateway_tests::process::GatewayProcess;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestDatabase, TestGateway, config_dir, snapshot};

use crate::requests::{everywhere, only_theirs_changed, submit, wait_for};

const STATUS: &str =
    "query($id: ID!) { privacyRequest(id: $id) { status error tasks { connector entity status attempts } } }";

async fn status_of(gateway: &GatewayProcess, id: &str) -> anyhow::Result<Json> {
    let response = gateway.graphql(STATUS, json!({ "id": id })).await?;
    Ok(response["data"]["privacyRequest"].clone())
}

#[tokio::test]
async fn a_gateway_killed_in_the_middle_of_an_erasure_finishes_it_after_restart() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let copy = ConfigCopy::for_killed_gateways()?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("kill test", "admin")
        .await?;
    let log = copy.dir.path().join("gateway.log");
    let vars = world.env_vars();
    let person = everywhere(&world).clone();
    let before = snapshot::take(&world).await?;
    let theirs = snapshot::keys_of(&world, &person, &before);

    let first = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let id = first.submit_erasure(&person.email, "killed", json!({})).await?;
    // Kill it while the analytics deletion job is pending: some stores are done, some not.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let at_kill = loop {
        let request = status_of(&first, &id).await?;
        // batching: waiting, with the deletion batch's call made and its job id stored.
        let sent = crate::erase_batches::batches(&copy.state_file())
            .await?
            .iter()
            .any(|(status, _)| status == "SENT");
        if request["status"] == "WAITING" && sent {
            break request;
        }
        anyhow::ensure!(
            request["status"] != "COMPLETED",
            "finished before it could be killed"
        );
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "never waited on a job: {request}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill()?;
    let jobs_started = world
        .analytics
        .state
        .data
        .lock()
        .map(|d| d.tasks.len())
        .unwrap_or(0);
    assert_eq!(
        jobs_started, 1,
        "one deletion job started before the kill: {at_kill}"
    );

    // A new process resumes it from the state database.
    let second = GatewayProcess::start(&copy.gateway_toml(), &vars, &key, &log).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let request = status_of(&second, &id).await?;
        if request["status"] == "COMPLETED" || request["status"] == "FAILED" {
            break request;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not finished after restart: {request}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // The same end state as an erasure nobody interrupted, and the job was not started twice.
    let after = snapshot::take(&world).await?;
    only_theirs_changed(&theirs, &before, &after);
    for key in &theirs {
        let kept = ["billing/customers/", "billing/invoices/", "helpdesk/users/"]
            .iter()
            .any(|p| key.starts_with(p));
        assert_eq!(after.contains_key(key), kept, "{key}");
    }
    let jobs = world
        .analytics
        .state
        .data
        .lock()
        .map(|d| d.tasks.len())
        .unwrap_or(0);
    assert_eq!(
        jobs, 1,
        "the pending deletion job was polled again, not started again"
    );
    for task in done["tasks"].as_array().into_iter().flatten() {
        assert_eq!(task["status"], "DONE", "{task}");
        assert!(
            task["attempts"].as_i64().is_some_and(|a| (1..=2).contains(&a)),
            "{task}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn two_gateways_on_one_postgres_share_the_work_and_never_do_a_request_twice() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let state = TestDatabase::create(SqlDialect::Postgres).await?;
    let mut config = Config::load(&config_dir().join("gateway.toml"))?;
    config.auth.state_url = state.url.clone();
    let a =
        TestGateway::start_on_state(config.clone(), world.env(), Vec::new(), tempfile::tempdir()?).await?;
    let b = TestGateway::start_on_state(config, world.env(), Vec::new(), tempfile::tempdir()?).await?;
    // People without an analytics profile: no rate-limited deletion jobs to wait for.
    let people: Vec<_> = world
        .people
        .iter()
        .filter(|p| p.user_id % 3 == 0)
        .take(6)
        .collect();
    let mut ids = Vec::new();
    for (n, person) in people.iter().enumerate() {
        let gateway = if n % 2 == 0 { &a } else { &b };
        let request = submit(
            gateway,
            "eraseSubject",
            json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": format!("replica-{n}") }),
        )
        .await?;
        ids.push(request["id"].as_str().unwrap_or_default().to_owned());
    }
    // The same key through the other replica is the same request.
    let again = submit(
        &b,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": people[0].user_id.to_string() }, "idempotencyKey": "replica-0" }),
    )
    .await?;
    assert_eq!(again["id"], ids[0].as_str());
    for id in &ids {
        let done = wait_for(&a, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        for task in done["tasks"].as_array().into_iter().flatten() {
            assert_eq!(task["attempts"], 1, "each task ran once, on one replica: {task}");
        }
    }
    let pool = sqlx::PgPool::connect(&state.url).await?;
    let started: Vec<(String, i64)> = sqlx::query_as(
        "SELECT request_id, COUNT(*) FROM privacy_events WHERE kind = 'completed' GROUP BY request_id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(started.len(), ids.len());
    assert!(
        started.iter().all(|(_, n)| *n == 1),
        "every request completed exactly once: {started:?}"
    );
    pool.close().await;
    Ok(())
}
