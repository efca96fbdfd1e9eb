//! Benchmark: batched vendor deletions. `BENCH_BATCH_PEOPLE` (default 1,000) erasures submitted
//! together against the analytics test server at its one-deletion-call-a-second limit, through
//! the real `subject-gateway` binary — with the reference declaration (`max_batch = 2000`) and
//! without batching (one call per person, at `BENCH_UNBATCHED_PEOPLE`, default 60: 1,000 of
//! them take well over an hour, the figure is extrapolated). Prints the total time, the vendor's
//! deletion calls (and ids they carried), its 429 refusals, and how many requests completed.
//!
//! Needs the test services (`TEST_MONGODB_URL`) and the release binary:
//! `cargo build --release --bin subject-gateway && cargo bench -p subject-gateway-tests --bench erase_batching`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use subject_gateway::config::Config;
use subject_gateway_demo::world::Person;
use subject_gateway_tests::process::GatewayProcess;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, env_number};

const STATUS: &str = "query($id: ID!) { privacyRequest(id: $id) { status error } }";

/// The final status of request `id` (COMPLETED, FAILED or CANCELLED).
async fn settled(gateway: &GatewayProcess, id: &str) -> anyhow::Result<String> {
    loop {
        let response = gateway.graphql(STATUS, json!({ "id": id })).await?;
        match response["data"]["privacyRequest"]["status"].as_str() {
            Some(status @ ("COMPLETED" | "FAILED" | "CANCELLED")) => return Ok(status.to_owned()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Erases `people` through a gateway on the declarations of `copy`; prints the figures.
async fn run(
    world: &ReferenceWorld,
    copy: &ConfigCopy,
    people: &[Person],
    label: &str,
) -> anyhow::Result<f64> {
    let state = copy.dir.path().join(format!("state-{label}.db"));
    copy.edit(
        "gateway.toml",
        "state_url = \"sqlite://subject-gateway-state.db\"",
        &format!("state_url = \"sqlite://{}\"", state.display()),
    )?;
    copy.edit(
        "gateway.toml",
        "export_link_minutes = 60",
        "export_link_minutes = 60\nconcurrency = 32\npoll_interval_ms = 100",
    )?;
    let config = Config::load(&copy.gateway_toml())?;
    let (_, key) = config
        .key_store(world.env())
        .await?
        .create("bench", "admin")
        .await?;
    let log = copy.dir.path().join(format!("gateway-{label}.log"));
    let gateway = Arc::new(GatewayProcess::start(&copy.gateway_toml(), &world.env_vars(), &key, &log).await?);
    let vendor = &world.analytics.state;
    vendor.deletion_interval_ms.store(900, Ordering::SeqCst);
    vendor.deletion_calls.store(0, Ordering::SeqCst);
    vendor.deleted_ids.store(0, Ordering::SeqCst);
    vendor.rate_limited.store(0, Ordering::SeqCst);

    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut submissions = tokio::task::JoinSet::new();
    for person in people {
        let (gateway, person, limit, label) =
            (gateway.clone(), person.clone(), limit.clone(), label.to_owned());
        submissions.spawn(async move {
            let _permit = limit.acquire().await?;
            gateway
                .submit_erasure(&person.email, &format!("{label}-{}", person.user_id), json!({}))
                .await
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = submissions.join_next().await {
        ids.push(result??);
    }
    let (mut completed, mut failed) = (0, 0);
    for id in &ids {
        match settled(&gateway, id).await?.as_str() {
            "COMPLETED" => completed += 1,
            _ => failed += 1,
        }
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "{label}: {} erasures (each with an analytics profile) at ~1 deletion call/s: all settled in {total:.1} s \
         ({completed} COMPLETED and verified, {failed} FAILED); vendor deletion calls {} carrying {} ids; {} calls refused with 429",
        ids.len(),
        vendor.deletion_calls.load(Ordering::SeqCst),
        vendor.deleted_ids.load(Ordering::SeqCst),
        vendor.rate_limited.load(Ordering::SeqCst),
    );
    drop(gateway);
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let batched = env_number("BENCH_BATCH_PEOPLE", 1000);
    let unbatched = env_number("BENCH_UNBATCHED_PEOPLE", 60);
    let started = Instant::now();
    // Two people in three have an analytics profile.
    let world = ReferenceWorld::create((batched + unbatched) * 3 / 2 + 6).await?;
    println!(
        "reference world of {} people seeded in {:.1} s",
        world.people.len(),
        started.elapsed().as_secs_f64()
    );
    let profiled: Vec<Person> = world
        .people
        .iter()
        .filter(|p| p.user_id % 3 != 0)
        .cloned()
        .collect();
    anyhow::ensure!(
        profiled.len() >= batched + unbatched,
        "not enough people with a profile"
    );
    let (first, rest) = profiled.split_at(batched);

    let copy = ConfigCopy::new()?;
    let with = run(
        &world,
        &copy,
        first,
        "batched (max_batch = 2000, batch_window_ms = 500)",
    )
    .await?;

    let copy = ConfigCopy::new()?;
    copy.edit(
        "connectors/analytics.toml",
        "max_batch = 2000, batch_window_ms = 500, ",
        "",
    )?;
    copy.edit(
        "connectors/analytics.toml",
        "\"{distinct_id[]}\"",
        "[\"{distinct_id}\"]",
    )?;
    let without = run(
        &world,
        &copy,
        &rest[..unbatched],
        "unbatched (one call per person)",
    )
    .await?;
    println!(
        "unbatched, {unbatched} took {without:.0} s: {:.1} s per erasure; {batched} would take about {:.0} min, against {:.1} min batched",
        without / unbatched as f64,
        without / unbatched as f64 * batched as f64 / 60.0,
        with / 60.0
    );
    Ok(())
}
