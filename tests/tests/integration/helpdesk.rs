//! The helpdesk over HTTP: pages, rate limits, a server that stops answering, bad credentials.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway};

use crate::{at, len, subject_ok};

const TICKETS: &str = "{
  helpdesk { users { id email } tickets { id requesterId subject } comments { ticketId body } }
  accounts { users { id } }
  sources { connector status roundTrips error errorCode }
}";

/// A person of the world with no helpdesk account yet, given one with `tickets` tickets.
fn with_tickets(world: &ReferenceWorld, tickets: usize) -> (String, i64) {
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 2 == 1)
        .expect("people with odd ids have no helpdesk account");
    let mut data = world
        .helpdesk
        .state
        .data
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let id = data.add_user(&person.email, &person.full_name, tickets);
    (person.email.clone(), id)
}

#[tokio::test]
async fn a_person_with_250_tickets_is_read_page_by_page() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let (email, helpdesk_id) = with_tickets(&world, 250);
    let gateway = world.gateway().await?;
    let before = world.helpdesk.state.requests.load(Ordering::SeqCst);

    let response = gateway.subject("EMAIL", &email.to_uppercase(), TICKETS).await?;
    let subject = subject_ok(&response);
    let tickets = at(subject, &["helpdesk", "tickets"]);
    assert_eq!(len(tickets), 250);
    let ids: BTreeSet<i64> = tickets
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 250, "no ticket twice, none missing");
    assert!(
        tickets
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["requesterId"] == helpdesk_id)
    );
    // Two comments on every ticket, each labelled with its ticket.
    let comments = at(subject, &["helpdesk", "comments"]);
    assert_eq!(len(comments), 500);
    let commented: BTreeSet<i64> = comments
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["ticketId"].as_i64())
        .collect();
    assert_eq!(commented, ids);
    // One search, three pages of at most 100 tickets, one comment page per ticket.
    let requests = world.helpdesk.state.requests.load(Ordering::SeqCst) - before;
    assert_eq!(requests, 1 + 3 + 250);
    Ok(())
}

#[tokio::test]
async fn a_storm_of_429_answers_is_ridden_out() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let (email, _) = with_tickets(&world, 8);
    let gateway = world.gateway().await?;
    world
        .helpdesk
        .state
        .requests_per_second
        .store(3, Ordering::SeqCst);

    let response = gateway.subject("EMAIL", &email, TICKETS).await?;
    let subject = subject_ok(&response);
    assert_eq!(len(at(subject, &["helpdesk", "tickets"])), 8);
    assert_eq!(len(at(subject, &["helpdesk", "comments"])), 16);
    assert!(
        world.helpdesk.state.rate_limited.load(Ordering::SeqCst) > 0,
        "the storm did happen"
    );
    Ok(())
}

#[tokio::test]
async fn a_helpdesk_that_stops_answering_is_a_timeout_and_the_rest_still_comes() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        "timeout_ms = 10000",
        "timeout_ms = 500",
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 2 == 0)
        .expect("a helpdesk user");
    world.helpdesk.state.hang.store(true, Ordering::SeqCst);

    let response = gateway.subject("EMAIL", &person.email, TICKETS).await?;
    let subject = &response["data"]["subject"];
    assert_eq!(len(at(subject, &["accounts", "users"])), 1, "{response}");
    assert!(at(subject, &["helpdesk", "users"]).is_null());
    // Its tickets and comments were never asked for: unknown, so null with the error too —
    // never an empty list that would read "this person has no tickets".
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 3, "{response}");
    for error in &errors {
        assert_eq!(error["extensions"]["connector"], "helpdesk");
        assert_eq!(error["extensions"]["class"], "TIMEOUT");
    }
    assert!(at(subject, &["helpdesk", "tickets"]).is_null(), "{response}");
    let helpdesk = subject["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["connector"] == "helpdesk"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(helpdesk["status"], "TIMEOUT");
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_is_an_authorization_error_that_does_not_repeat_the_token() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let base = world.env();
    let env = move |name: &str| match name {
        "HELPDESK_TOKEN" => Some("expired-token-s3cr3t".to_owned()),
        other => base(other),
    };
    let config = subject_gateway_tests::config_dir().join("gateway.toml");
    let gateway = TestGateway::start(&config, env, Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 2 == 0)
        .expect("a helpdesk user");

    let response = gateway.subject("EMAIL", &person.email, TICKETS).await?;
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 3, "{response}");
    let code_of = |entity: &str| {
        errors
            .iter()
            .find(|e| e["extensions"]["entity"] == entity)
            .map(|e| e["extensions"]["code"].clone())
            .unwrap_or_default()
    };
    assert_eq!(code_of("users"), "STORE_UNAUTHORIZED", "{response}");
    // Tickets and comments are found through the helpdesk user the refused call would have
    // given: not searched, and said so.
    assert_eq!(code_of("tickets"), "UPSTREAM_FAILED", "{response}");
    assert_eq!(code_of("comments"), "UPSTREAM_FAILED", "{response}");
    assert!(errors.iter().all(|e| e["extensions"]["class"] == "ERROR"));
    assert!(!response.to_string().contains("s3cr3t"));
    assert_eq!(len(at(&response["data"]["subject"], &["accounts", "users"])), 1);
    Ok(())
}

#[tokio::test]
async fn next_links_are_followed_and_never_off_the_api() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let (email, _) = with_tickets(&world, 130);
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        r#"pagination = { style = "cursor", param = "page[after]", cursor = "$.meta.after_cursor", has_more = "$.meta.has_more", size_param = "page[size]", size = 100, max_pages = 50 }

[entities.tickets.fields]"#,
        r#"pagination = { style = "next_link", next = "$.links.next", size_param = "page[size]", size = 50 }

[entities.tickets.fields]"#,
    )?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let response = gateway.subject("EMAIL", &email, TICKETS).await?;
    let subject = subject_ok(&response);
    assert_eq!(len(at(subject, &["helpdesk", "tickets"])), 130);
    Ok(())
}

#[tokio::test]
async fn transient_server_errors_are_retried_with_backoff() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let (email, _) = with_tickets(&world, 3);
    let gateway = world.gateway().await?;
    world.helpdesk.state.fail_next.store(4, Ordering::SeqCst);

    let response = gateway.subject("EMAIL", &email, TICKETS).await?;
    let subject = subject_ok(&response);
    assert_eq!(len(at(subject, &["helpdesk", "tickets"])), 3);
    assert_eq!(len(at(subject, &["helpdesk", "comments"])), 6);
    assert_eq!(
        world.helpdesk.state.fail_next.load(Ordering::SeqCst),
        0,
        "the failures were met and ridden out"
    );
    Ok(())
}
