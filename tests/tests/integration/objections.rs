//! Objections bind at read time: after a person objects to marketing (found by their email), a
//! marketing read of them by any identity is withheld — `null` and `OBJECTED`, audited — while an
//! essential read is served, and another person in the same `subjects` batch is unaffected.

use serde_json::{Value as Json, json};
use subject_gateway_tests::ReferenceWorld;

use crate::requests::{submit, wait_for};

const ONE: &str = "query($kind: IdentityKind!, $value: String!) {
  subject(identity: {kind: $kind, value: $value}) { identities { kind } analytics { profiles { distinctId } } } }";

const MANY: &str = "query($identities: [IdentityInput!]!) {
  subjects(identities: $identities) { identities { kind } analytics { profiles { distinctId } } } }";

fn codes(response: &Json) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_objection_to_marketing_withholds_the_person_from_marketing_reads_by_any_identity()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let gateway = world.gateway().await?;
    let mut with_profiles = world.people.iter().filter(|p| p.user_id % 3 != 0);
    let person = with_profiles
        .next()
        .expect("someone with an analytics profile")
        .clone();
    let other = with_profiles.next().expect("someone else with a profile").clone();
    let admin = gateway.key("admin").await?;
    let user_id = person.user_id.to_string();

    // Before the objection, a marketing read by user id is served.
    let served = gateway
        .graphql_as(
            &admin,
            "marketing",
            ONE,
            json!({ "kind": "USER_ID", "value": user_id }),
        )
        .await?;
    assert!(served.get("errors").is_none(), "{served}");
    assert!(served["data"]["subject"].is_object());

    let request = submit(
        &gateway,
        "recordObjection",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "purpose": "marketing", "idempotencyKey": "object-read" }),
    )
    .await?;
    let done = wait_for(
        &gateway,
        request["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["receipt"]["objection"]["bindsReads"], true);
    assert!(
        done["receipt"]["objection"]["identitiesRecorded"]
            .as_i64()
            .is_some_and(|n| n >= 2),
        "{done}"
    );

    // A marketing read by another of the person's identities: withheld.
    for purpose in ["marketing", "marketing.advertising"] {
        let withheld = gateway
            .graphql_as(
                &admin,
                purpose,
                ONE,
                json!({ "kind": "USER_ID", "value": user_id }),
            )
            .await?;
        assert_eq!(withheld["data"]["subject"], Json::Null, "{withheld}");
        assert_eq!(codes(&withheld), ["OBJECTED"], "{withheld}");
        assert_eq!(withheld["errors"][0]["path"], json!(["subject"]));
        assert_eq!(
            withheld["errors"][0]["extensions"]["objectedPurpose"],
            "marketing"
        );
        assert!(!withheld.to_string().contains(&person.email));
    }

    // Essential processing is not objectable; analytics is not under marketing.
    for purpose in ["essential", "analytics"] {
        let read = gateway
            .graphql_as(
                &admin,
                purpose,
                ONE,
                json!({ "kind": "USER_ID", "value": user_id }),
            )
            .await?;
        assert!(read.get("errors").is_none(), "{purpose}: {read}");
        assert!(
            read["data"]["subject"]["identities"]
                .as_array()
                .is_some_and(|i| i.len() >= 2)
        );
    }

    // In one batch: the objector is null with OBJECTED at their index, the other is served.
    let batch = gateway
        .graphql_as(
            &admin,
            "marketing",
            MANY,
            json!({ "identities": [
                { "kind": "EMAIL", "value": other.email },
                { "kind": "USER_ID", "value": user_id },
            ] }),
        )
        .await?;
    assert_eq!(codes(&batch), ["OBJECTED"], "{batch}");
    assert_eq!(batch["errors"][0]["path"], json!(["subjects", 1]));
    assert_eq!(batch["data"]["subjects"][1], Json::Null);
    let served = &batch["data"]["subjects"][0];
    assert_eq!(
        served["analytics"]["profiles"][0]["distinctId"],
        format!("u{}", other.user_id),
        "{batch}"
    );

    // Each withholding is audited (who, which purpose, which objection), without values.
    let audit = gateway
        .graphql(
            "{ auditEvents(action: \"subject.withheld\") { events { purpose subjects detail } } }",
            json!({}),
        )
        .await?;
    let events = audit["data"]["auditEvents"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(events.len(), 3, "{audit}");
    for event in &events {
        assert_eq!(event["detail"]["reason"], "OBJECTED");
        assert_eq!(event["detail"]["objectionRequest"], done["id"]);
        assert!(
            event["purpose"]
                .as_str()
                .is_some_and(|p| p.starts_with("marketing")),
            "{event}"
        );
        assert!(
            event["subjects"]
                .as_array()
                .is_some_and(|s| s.iter().all(|h| h != user_id.as_str()))
        );
    }
    Ok(())
}
