//! `subjects` for many people costs the same store round trips per stage as `subject` for one.

use std::collections::BTreeMap;

use subject_gateway_tests::statements::StatementLog;
use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld};

use crate::{subject_ok, without_timings};

const TABLES: &[&str] = &[
    "users",
    "sessions",
    "preferences",
    "customers",
    "invoices",
    "payment_methods",
];

/// Statements executed per table since the last call.
fn per_table(log: &StatementLog) -> BTreeMap<&'static str, usize> {
    let statements = log.take_matching("SELECT");
    TABLES
        .iter()
        .map(|table| {
            let quoted_pg = format!("FROM \"{table}\"");
            let quoted_my = format!("FROM `{table}`");
            let count = statements
                .iter()
                .filter(|s| s.contains(&quoted_pg) || s.contains(&quoted_my))
                .count();
            (*table, count)
        })
        .collect()
}

/// Runs `subjects` for `people`'s emails; returns the response and the statements per table.
async fn batch(
    gateway: &subject_gateway_tests::TestGateway,
    log: &StatementLog,
    people: &[&subject_gateway_demo::world::Person],
) -> anyhow::Result<(serde_json::Value, BTreeMap<&'static str, usize>)> {
    let identities: Vec<_> = people
        .iter()
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    log.clear();
    let response = gateway
        .graphql(
            &format!("query($ids: [IdentityInput!]!) {{ subjects(identities: $ids) {FULL_SELECTION} }}"),
            serde_json::json!({ "ids": identities }),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{}", response["errors"]);
    Ok((response, per_table(log)))
}

#[tokio::test]
async fn many_subjects_cost_the_round_trips_of_few() -> anyhow::Result<()> {
    let log = StatementLog::install();
    // 150 people: past the MongoDB connector's 100 values per find, so uploads come in two finds.
    let world = ReferenceWorld::create(150).await?;
    let gateway = world.gateway().await?;
    let people: Vec<_> = world.people.iter().collect();

    // One person whose billing email is their account email: each entity is read once.
    let simple = world
        .people
        .iter()
        .find(|p| {
            p.customer
                .as_ref()
                .is_some_and(|c| c.email == p.email.to_lowercase())
        })
        .expect("someone pays from their account email");
    let (_, one) = batch(&gateway, &log, &[simple]).await?;
    assert_eq!(
        one,
        BTreeMap::from([
            ("users", 1),
            ("sessions", 1),
            ("preferences", 1),
            ("customers", 2),
            ("invoices", 1),
            ("payment_methods", 1),
        ])
    );

    // Ten people and 150: the same statements per table, whatever the batch size: one per
    // entity per resolution round (invoices twice: some customers are found in round 1 by billing
    // email, others in round 2 by user id).
    let (_, ten) = batch(&gateway, &log, &people[..10]).await?;
    let (response, hundred) = batch(&gateway, &log, &people).await?;
    assert_eq!(hundred, ten);
    let rounds = 3;
    assert!(
        hundred.values().all(|&n| (1..=rounds).contains(&n)),
        "{hundred:?}"
    );

    // The gateway reports the same figures.
    let subjects = response["data"]["subjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(subjects.len(), 150);
    let trips: BTreeMap<String, u64> = subjects[0]["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["connector"].as_str().unwrap_or("").to_owned(),
                s["roundTrips"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        trips["accounts"] as usize,
        hundred["users"] + hundred["sessions"] + hundred["preferences"]
    );
    assert_eq!(
        trips["billing"] as usize,
        hundred["customers"] + hundred["invoices"] + hundred["payment_methods"]
    );

    // Each subject of the batch is exactly what a query for that person alone returns (uploads
    // included, found by finds of at most 100 values).
    let mut with_uploads = 0;
    for (i, person) in people.iter().enumerate().step_by(7) {
        with_uploads += usize::from(!person.uploads.is_empty());
        let alone = gateway.subject("EMAIL", &person.email, FULL_SELECTION).await?;
        let mut alone = without_timings(subject_ok(&alone).clone());
        let mut batched = without_timings(subjects[i].clone());
        // Round trips are per request, shared by the batch: compared above.
        for subject in [&mut alone, &mut batched] {
            for source in subject["sources"].as_array_mut().into_iter().flatten() {
                source.as_object_mut().map(|s| s.remove("roundTrips"));
            }
        }
        assert_eq!(batched, alone, "subject {i} of the batch");
        assert_eq!(batched["accounts"]["users"][0]["id"], person.user_id);
        assert_eq!(
            batched["uploads"]["images"].as_array().map(Vec::len),
            Some(person.uploads.len()),
            "subject {i}'s uploads"
        );
    }
    assert!(with_uploads > 5, "the sample holds people with uploads");
    Ok(())
}
