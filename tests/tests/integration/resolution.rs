//! Identity resolution across databases, as an internal tool sees it.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use subject_connectors::declaration::SqlDialect;
use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld};

use crate::{at, len, subject_ok, without_timings};

fn strings(list: &Json, field: &str) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| match &item[field] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn an_email_finds_the_person_in_all_five_domains_in_one_query() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(40).await?;
    let gateway = world.gateway().await?;
    let person = world.payer(2);
    let customer = person.customer.as_ref().expect("the payer has a customer");

    let response = gateway.subject("EMAIL", &person.email, FULL_SELECTION).await?;
    let subject = subject_ok(&response);

    // The identity graph that was followed: email -> user_id -> customer_id, and to the
    // analytics and helpdesk ids where the person has them.
    let identities: Vec<(String, String, String)> = subject["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
            (text(&i["kind"]), text(&i["value"]), text(&i["source"]))
        })
        .collect();
    let expected = [
        ("EMAIL", person.email.to_lowercase(), "input"),
        ("USER_ID", person.user_id.to_string(), "accounts.users"),
        ("CUSTOMER_ID", customer.id.clone(), "billing.customers"),
    ];
    for (kind, value, source) in &expected {
        assert!(
            identities.contains(&((*kind).to_owned(), value.clone(), (*source).to_owned())),
            "{kind} missing from {identities:?}"
        );
    }
    let in_analytics = person.user_id % 3 != 0;
    assert_eq!(
        identities.contains(&(
            "ANALYTICS_DISTINCT_ID".to_owned(),
            format!("u{}", person.user_id),
            "analytics.profiles".to_owned()
        )),
        in_analytics
    );
    let in_helpdesk = identities
        .iter()
        .any(|(k, _, s)| k == "HELPDESK_USER_ID" && s == "helpdesk.users");
    assert_eq!(in_helpdesk, person.user_id % 2 == 0);
    // A helpdesk user also yields the ids of their tickets (1 to 3 in the reference world).
    let tickets = if in_helpdesk {
        (person.user_id % 3 + 1) as usize
    } else {
        0
    };
    assert_eq!(
        identities.len(),
        3 + usize::from(in_analytics) + usize::from(in_helpdesk) + tickets,
        "{identities:?}"
    );

    let users = at(subject, &["accounts", "users"]);
    assert_eq!(len(users), 1);
    assert_eq!(users[0]["email"], person.email.as_str());
    assert_eq!(users[0]["fullName"], person.full_name.as_str());
    assert_eq!(users[0]["id"], person.user_id);
    assert_eq!(
        strings(at(subject, &["accounts", "sessions"]), "ipAddress"),
        person.sessions.iter().map(|s| s.ip_address.clone()).collect()
    );
    assert_eq!(
        len(at(subject, &["accounts", "preferences"])),
        usize::from(person.preferences.is_some())
    );

    let invoices = at(subject, &["billing", "invoices"]);
    assert_eq!(
        strings(invoices, "number"),
        customer.invoices.iter().map(|i| i.number.clone()).collect()
    );
    assert_eq!(
        strings(invoices, "customerId"),
        BTreeSet::from([customer.id.clone()])
    );
    assert_eq!(
        strings(at(subject, &["billing", "paymentMethods"]), "last4"),
        customer.payment_methods.iter().map(|m| m.last4.clone()).collect()
    );
    // The other three domains, in the same response: uploads in MongoDB with their files, the
    // helpdesk and the analytics APIs.
    let images = at(subject, &["uploads", "images"]);
    assert_eq!(len(images), person.uploads.len());
    assert!(
        images
            .as_array()
            .into_iter()
            .flatten()
            .all(|i| i["files"][0]["present"] == true)
    );
    let helpdesk_users = at(subject, &["helpdesk", "users"]);
    assert_eq!(len(helpdesk_users), usize::from(person.user_id % 2 == 0));
    assert_eq!(
        len(at(subject, &["helpdesk", "tickets"])),
        if person.user_id % 2 == 0 {
            (person.user_id % 3 + 1) as usize
        } else {
            0
        }
    );
    assert_eq!(
        len(at(subject, &["analytics", "profiles"])),
        usize::from(in_analytics)
    );
    assert_eq!(
        len(at(subject, &["analytics", "events"])),
        if in_analytics {
            (person.user_id % 7) as usize
        } else {
            0
        }
    );
    let sources: Vec<&str> = subject["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["connector"].as_str())
        .collect();
    assert_eq!(
        sources,
        ["accounts", "analytics", "billing", "helpdesk", "uploads"]
    );
    for source in subject["sources"].as_array().into_iter().flatten() {
        assert_eq!(source["status"], "OK", "{source}");
        assert!(source["error"].is_null());
    }
    Ok(())
}

#[tokio::test]
async fn an_email_in_any_case_finds_the_same_person() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.email.contains("Example.COM"))
        .expect("the world has mixed-case emails");

    let stored = gateway.subject("EMAIL", &person.email, FULL_SELECTION).await?;
    let reference = without_timings(subject_ok(&stored).clone());
    assert_eq!(len(at(&reference, &["accounts", "users"])), 1);
    for variant in [
        person.email.to_lowercase(),
        person.email.to_uppercase(),
        format!("  {}\t", person.email),
    ] {
        let response = gateway.subject("EMAIL", &variant, FULL_SELECTION).await?;
        assert_eq!(without_timings(subject_ok(&response).clone()), reference);
    }
    Ok(())
}

#[tokio::test]
async fn a_person_with_no_data_is_an_empty_subject_not_an_error() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let gateway = world.gateway().await?;

    let response = gateway
        .subject("EMAIL", "nobody.at.all@example.org", FULL_SELECTION)
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(len(&subject["identities"]), 1, "only the input identity");
    for path in [
        ["accounts", "users"],
        ["accounts", "sessions"],
        ["billing", "customers"],
        ["billing", "invoices"],
    ] {
        assert_eq!(at(subject, &path), &Json::Array(vec![]), "{path:?}");
    }
    for source in subject["sources"].as_array().into_iter().flatten() {
        assert_eq!(source["status"], "OK");
        assert_eq!(source["records"], 0);
    }

    // Someone with an account but no billing: accounts data, empty billing, no error.
    let unbilled = world
        .people
        .iter()
        .find(|p| p.customer.is_none())
        .expect("some people never paid");
    let response = gateway
        .subject("USER_ID", &unbilled.user_id.to_string(), FULL_SELECTION)
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(len(at(subject, &["accounts", "users"])), 1);
    assert_eq!(at(subject, &["billing", "customers"]), &Json::Array(vec![]));
    Ok(())
}

#[tokio::test]
async fn every_sql_dialect_serves_the_same_subject() -> anyhow::Result<()> {
    let mut subjects = Vec::new();
    for (accounts, billing) in [
        (SqlDialect::Postgres, SqlDialect::MySql),
        (SqlDialect::MySql, SqlDialect::Postgres),
        (SqlDialect::Sqlite, SqlDialect::Sqlite),
    ] {
        let world = ReferenceWorld::create_on(16, accounts, billing).await?;
        let gateway = world.gateway().await?;
        let person = world.payer(1);
        let response = gateway.subject("EMAIL", &person.email, FULL_SELECTION).await?;
        let subject = without_timings(subject_ok(&response).clone());
        assert_eq!(len(at(&subject, &["accounts", "users"])), 1);
        subjects.push(((accounts, billing), subject));
    }
    let (first_dialects, first) = &subjects[0];
    for (dialects, subject) in &subjects[1..] {
        assert_eq!(subject, first, "{dialects:?} differs from {first_dialects:?}");
    }
    // Typed values come through as declared: timestamps in RFC 3339, dates, decimals, JSON.
    let users = at(first, &["accounts", "users"]);
    assert!(
        users[0]["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T'))
    );
    assert!(users[0]["dateOfBirth"].as_str().is_some_and(|d| d.len() == 10));
    let invoices = at(first, &["billing", "invoices"]);
    assert!(invoices[0]["taxRate"].as_str().is_some_and(|r| r.contains('.')));
    Ok(())
}
