//! The analytics API over HTTP: numbered pages, basic authentication, a REST API added by
//! declaration alone.

use std::sync::atomic::Ordering;

use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::{at, len, subject_ok};

#[tokio::test]
async fn a_person_with_450_events_is_read_in_numbered_pages() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 == 0)
        .expect("someone without a profile");
    let distinct_id = world
        .analytics
        .state
        .data
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add_profile(person.user_id, &person.email, &person.full_name, 450);
    let gateway = world.gateway().await?;
    let before = world.analytics.state.requests.load(Ordering::SeqCst);

    let response = gateway
        .subject(
            "EMAIL",
            &person.email,
            "{ identities { kind value source } analytics { profiles { distinctId city } events { distinctId time ip url } } }",
        )
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(
        at(subject, &["analytics", "profiles"])[0]["distinctId"],
        distinct_id.as_str()
    );
    let events = at(subject, &["analytics", "events"]);
    assert_eq!(len(events), 450);
    assert!(
        events
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| e["distinctId"] == distinct_id.as_str())
    );
    assert!(
        events[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "epoch seconds as RFC 3339"
    );
    // One profile lookup, then pages of 200: 200, 200, 50.
    assert_eq!(
        world.analytics.state.requests.load(Ordering::SeqCst) - before,
        1 + 3
    );
    Ok(())
}

#[tokio::test]
async fn a_rest_api_declared_in_a_new_file_appears_in_schema_and_results() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let config = ConfigCopy::new()?;
    // The marketing team's view of the same analytics API, declared in one new file: profiles by
    // distinct id (found through the graph: email -> analytics profile -> distinct id).
    config.write_connector(
        "marketing.toml",
        r#"kind = "http"
base_url = "${ANALYTICS_URL}"
auth = { username = "${ANALYTICS_SERVICE_ACCOUNT}", password = "${ANALYTICS_SECRET}" }
description = "Marketing segments, read from the analytics API."

[entities.segments]
lookup = [{ kind = "analytics_distinct_id", field = "distinct_id" }]
request = { path = "/api/query/engage", query = { distinct_id = "{value}" }, records = "$.results[*]" }

[entities.segments.fields]
distinct_id = { type = "string", category = "user.unique_id", path = "$['$distinct_id']" }
plan = { type = "string", category = "system.operations", path = "$['$properties'].plan" }
"#,
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    assert!(gateway.service.sdl().contains("marketing: Marketing\n"));
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 != 0)
        .expect("someone with a profile");

    let response = gateway
        .subject(
            "EMAIL",
            &person.email,
            "{ marketing { segments { distinctId plan } } }",
        )
        .await?;
    let subject = subject_ok(&response);
    let segments = at(subject, &["marketing", "segments"]);
    assert_eq!(len(segments), 1);
    assert_eq!(segments[0]["distinctId"], format!("u{}", person.user_id));
    assert_eq!(segments[0]["plan"], ["free", "pro"][person.user_id as usize % 2]);
    Ok(())
}

const EVENTS_OF_MANY: &str = "query($ids: [IdentityInput!]!) { subjects(identities: $ids) { analytics { profiles { distinctId } events { distinctId event time ip url } } sources { connector status } } }";

#[tokio::test]
async fn events_of_many_people_come_in_one_call_per_hundred_and_match_one_call_per_person()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(30).await?;
    let ids: Vec<serde_json::Value> = world
        .people
        .iter()
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    let with_profiles = world.people.iter().filter(|p| p.user_id % 3 != 0).count();
    let state = &world.analytics.state;

    // The same API declared without its request for many values: one walk per distinct id.
    let config = ConfigCopy::new()?;
    config.edit("connectors/analytics.toml", "many = {", "# many = {")?;
    let one_by_one = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let before = state.requests.load(Ordering::SeqCst);
    let singly = one_by_one
        .graphql(EVENTS_OF_MANY, serde_json::json!({ "ids": ids }))
        .await?;
    let single_requests = state.requests.load(Ordering::SeqCst) - before;
    assert_eq!(state.stream_calls.load(Ordering::SeqCst), 0);

    let gateway = world.gateway().await?;
    let before = state.requests.load(Ordering::SeqCst);
    let together = gateway
        .graphql(EVENTS_OF_MANY, serde_json::json!({ "ids": ids }))
        .await?;
    let batched_requests = state.requests.load(Ordering::SeqCst) - before;

    for response in [&singly, &together] {
        assert!(response.get("errors").is_none(), "{response}");
    }
    // Same people, same events, each handed to the person it belongs to.
    assert_eq!(together["data"], singly["data"]);
    let subjects = together["data"]["subjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(subjects.len(), world.people.len());
    let mut events = 0;
    for subject in &subjects {
        let profiles = at(subject, &["analytics", "profiles"]);
        for event in at(subject, &["analytics", "events"])
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(event["distinctId"], profiles[0]["distinctId"], "{subject}");
            events += 1;
        }
    }
    assert!(events > with_profiles, "the world has events: {events}");
    // One profile lookup per person (by email, which the API takes one at a time), then the
    // events of every distinct id in one call.
    assert_eq!(state.stream_calls.load(Ordering::SeqCst), 1);
    assert_eq!(batched_requests as usize, world.people.len() + 1);
    assert!(single_requests as usize >= world.people.len() + with_profiles);
    Ok(())
}

#[tokio::test]
async fn a_record_without_the_value_it_was_looked_up_by_is_an_error_never_dropped() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let config = ConfigCopy::new()?;
    // A misspelt path: every event would read as nobody's, and be dropped.
    config.edit(
        "connectors/analytics.toml",
        "path = \"$.properties.distinct_id\"",
        "path = \"$.properties.distinctid\"",
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 != 0)
        .expect("someone with a profile");

    let one = gateway
        .subject(
            "EMAIL",
            &person.email,
            "{ analytics { profiles { distinctId } events { event } } }",
        )
        .await?;
    let ids: Vec<serde_json::Value> = world
        .people
        .iter()
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    let many = gateway
        .graphql(EVENTS_OF_MANY, serde_json::json!({ "ids": ids }))
        .await?;
    for response in [&one, &many] {
        let errors = response["errors"].as_array().cloned().unwrap_or_default();
        assert!(!errors.is_empty(), "{response}");
        for error in &errors {
            assert_eq!(error["extensions"]["code"], "STORE_DECODE_FAILED", "{error}");
            assert_eq!(error["extensions"]["connector"], "analytics", "{error}");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains("events.distinct_id"), "{message}");
            assert!(!message.contains(&person.email), "{message}");
        }
    }
    // The profiles (whose own lookup field is read) are still there.
    assert!(
        one["data"]["subject"]["analytics"]["profiles"][0]["distinctId"].is_string(),
        "{one}"
    );
    Ok(())
}
