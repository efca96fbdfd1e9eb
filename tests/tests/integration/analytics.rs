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
