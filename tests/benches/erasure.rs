//! Benchmark: erasure across the reference world (PostgreSQL, MariaDB, a MongoDB-protocol server
//! with files, the helpdesk and analytics APIs), through the real `subject-gateway` binary.
//!
//! 1. One person: `erasurePlan`, then `eraseSubject` until COMPLETED (plan, execution with the
//!    analytics deletion job polled to its end, verification, receipt) — with the analytics
//!    vendor's deletion rate limit (about one call a second) and without it.
//! 2. `BENCH_ERASE_PEOPLE` (default 1000) people submitted together, until the last COMPLETED,
//!    with the gateway's peak resident memory (VmHWM).
//!
//! Needs the test services (`TEST_MONGODB_URL`) and the release binary:
//! `cargo build --release --bin subject-gateway && cargo bench -p subject-gateway-tests --bench erasure`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use subject_gateway::config::Config;
use subject_gateway_demo::world::Person;
use subject_gateway_tests::process::GatewayProcess;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, env_number};

const STATUS: &str = "query($id: ID!) { privacyRequest(id: $id) { status error } }";
const TIMELINE: &str = "query($id: ID!) { privacyRequest(id: $id) { events { at kind } } }";
const PLAN: &str = "query($identity: IdentityInput!) { erasurePlan(identity: $identity) { blocked entries { connector records } } }";

async fn submit(gateway: &GatewayProcess, person: &Person, key: &str) -> anyhow::Result<String> {
    gateway.submit_erasure(&person.email, key, json!({})).await
}

async fn wait_completed(gateway: &GatewayProcess, id: &str, poll: Duration) -> anyhow::Result<()> {
    loop {
        let response = gateway.graphql(STATUS, json!({ "id": id })).await?;
        let request = &response["data"]["privacyRequest"];
        match request["status"].as_str() {
            Some("COMPLETED") => return Ok(()),
            Some("FAILED" | "CANCELLED") => anyhow::bail!("request {id} ended {request}"),
            _ => tokio::time::sleep(poll).await,
        }
    }
}

/// Milliseconds between the request's first `from` event and its first `to` event, as the
/// gateway recorded them (its own clock: no polling, no client in it).
async fn recorded_ms(gateway: &GatewayProcess, id: &str, from: &str, to: &str) -> anyhow::Result<f64> {
    // The status is written just before the event that tells it: wait for the event.
    let mut response = gateway.graphql(TIMELINE, json!({ "id": id })).await?;
    for _ in 0..100 {
        let recorded = response["data"]["privacyRequest"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["kind"] == to));
        if recorded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        response = gateway.graphql(TIMELINE, json!({ "id": id })).await?;
    }
    let events = response["data"]["privacyRequest"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let at = |kind: &str| -> anyhow::Result<chrono::DateTime<chrono::FixedOffset>> {
        let event = events
            .iter()
            .find(|e| e["kind"] == kind)
            .ok_or_else(|| anyhow::anyhow!("no `{kind}` event in {response}"))?;
        Ok(chrono::DateTime::parse_from_rfc3339(
            event["at"].as_str().unwrap_or_default(),
        )?)
    };
    Ok((at(to)? - at(from)?).num_microseconds().unwrap_or(0) as f64 / 1000.0)
}

/// The request's recorded events, each with its offset from the first.
async fn print_timeline(gateway: &GatewayProcess, id: &str) -> anyhow::Result<()> {
    let response = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { events { at kind message } } }",
            json!({ "id": id }),
        )
        .await?;
    let events = response["data"]["privacyRequest"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut first = None;
    for event in &events {
        let at = chrono::DateTime::parse_from_rfc3339(event["at"].as_str().unwrap_or_default())?;
        let first = *first.get_or_insert(at);
        println!(
            "    {:>8.1} ms  {:<14} {}",
            (at - first).num_microseconds().unwrap_or(0) as f64 / 1000.0,
            event["kind"].as_str().unwrap_or_default(),
            event["message"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Plan and erasure of one person, in milliseconds: `erasurePlan` over HTTP, `eraseSubject`
/// until COMPLETED as the client saw it, and received -> completed as the gateway recorded it.
async fn erase_one(gateway: &GatewayProcess, person: &Person, key: &str) -> anyhow::Result<(f64, f64, f64)> {
    let started = Instant::now();
    let plan = gateway
        .graphql(
            PLAN,
            json!({ "identity": { "kind": "EMAIL", "value": person.email } }),
        )
        .await?;
    anyhow::ensure!(
        plan["data"]["erasurePlan"]["blocked"] == false,
        "blocked plan: {plan}"
    );
    let planned = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let id = submit(gateway, person, key).await?;
    wait_completed(gateway, &id, Duration::from_millis(5)).await?;
    let client_side = started.elapsed().as_secs_f64() * 1000.0;
    let server_side = recorded_ms(gateway, &id, "received", "completed").await?;
    if std::env::var_os("BENCH_TIMELINE").is_some() {
        print_timeline(gateway, &id).await?;
    }
    Ok((planned, client_side, server_side))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let people = env_number("BENCH_ERASE_PEOPLE", 1000);
    let concurrency = env_number("BENCH_ERASE_CONCURRENCY", 32);
    let started = Instant::now();
    let world = ReferenceWorld::create(people + 30).await?;
    println!(
        "reference world of {} people seeded in {:.1} s",
        world.people.len(),
        started.elapsed().as_secs_f64()
    );

    let copy = ConfigCopy::new()?;
    let state = copy.dir.path().join("state.db");
    copy.edit(
        "gateway.toml",
        "state_url = \"sqlite://subject-gateway-state.db\"",
        &format!("state_url = \"sqlite://{}\"", state.display()),
    )?;
    copy.edit(
        "gateway.toml",
        "export_link_minutes = 60",
        &format!("export_link_minutes = 60\nconcurrency = {concurrency}\npoll_interval_ms = 100"),
    )?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("bench", "admin")
        .await?;
    let log = copy.dir.path().join("gateway.log");
    let gateway = GatewayProcess::start(&copy.gateway_toml(), &world.env_vars(), &key, &log).await?;

    // One person at a time.
    let (batch, singles) = world.people.split_at(people);
    let in_analytics: Vec<&Person> = singles.iter().filter(|p| p.user_id % 3 != 0).collect();
    let not_in_analytics: Vec<&Person> = singles.iter().filter(|p| p.user_id % 3 == 0).take(4).collect();
    let groups: [(&str, Vec<&Person>, u64); 3] = [
        (
            "in all five stores, analytics vendor limit ~1 deletion call/s",
            in_analytics.iter().take(4).copied().collect(),
            900,
        ),
        (
            "in all five stores, no vendor limit",
            in_analytics.iter().skip(4).take(4).copied().collect(),
            0,
        ),
        ("without an analytics profile", not_in_analytics, 900),
    ];
    for (label, group, interval) in groups {
        world
            .analytics
            .state
            .deletion_interval_ms
            .store(interval, Ordering::SeqCst);
        let (mut plans, mut erasures, mut recorded) = (Vec::new(), Vec::new(), Vec::new());
        for (n, person) in group.iter().enumerate() {
            let (plan, erase, server) = erase_one(
                &gateway,
                person,
                &format!("single-{interval}-{n}-{}", person.user_id),
            )
            .await?;
            plans.push(plan);
            erasures.push(erase);
            recorded.push(server);
        }
        println!(
            "one person {label}: erasurePlan median {:.1} ms; eraseSubject until COMPLETED median {:.0} ms, received -> completed as recorded by the gateway {:.1} ms (n={})",
            median(plans),
            median(erasures),
            median(recorded),
            group.len()
        );
    }

    // Many people submitted together, without the vendor limit (the gateway's own cost).
    world
        .analytics
        .state
        .deletion_interval_ms
        .store(0, Ordering::SeqCst);
    let started = Instant::now();
    let client_limit = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut submissions = tokio::task::JoinSet::new();
    let gateway = std::sync::Arc::new(gateway);
    for (n, person) in batch.iter().enumerate() {
        let (gateway, person, limit) = (gateway.clone(), person.clone(), client_limit.clone());
        submissions.spawn(async move {
            let _permit = limit.acquire().await?;
            submit(&gateway, &person, &format!("batch-{n}")).await
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = submissions.join_next().await {
        ids.push(result??);
    }
    let submitted = started.elapsed().as_secs_f64();
    for id in &ids {
        wait_completed(&gateway, id, Duration::from_millis(200)).await?;
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "{} people submitted together: all accepted in {submitted:.1} s, all COMPLETED (verified, receipted) in {total:.1} s ({:.1} erasures/s; worker concurrency {concurrency})",
        ids.len(),
        ids.len() as f64 / total
    );
    match gateway.peak_memory_kib() {
        Some(kib) => println!(
            "gateway peak resident memory (VmHWM): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("gateway peak resident memory: not readable"),
    }
    let check: Json = gateway
        .graphql(
            "{ privacyRequests(status: FAILED) { requests { id error } } }",
            json!({}),
        )
        .await?;
    println!(
        "failed requests: {}",
        check["data"]["privacyRequests"]["requests"]
    );
    Ok(())
}
