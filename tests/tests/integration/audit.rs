//! The audit trail: every read recorded before data is returned, readable by auditors, and
//! tamper-evident.

use subject_gateway::audit::ChainError;
use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld};

const EVENTS: &str = "query($first: Int, $after: String, $subject: IdentityInput, $action: String) {
  auditEvents(first: $first, after: $after, subject: $subject, action: $action) {
    events { seq actor role purpose action subjects detail hash }
    endCursor hasNextPage
  }
}";

#[tokio::test]
async fn every_read_is_audited_and_tampering_is_detected() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let (alice, bob) = (&world.people[0], &world.people[1]);
    let support = gateway.key("support").await?;

    gateway.subject("EMAIL", &alice.email, FULL_SELECTION).await?;
    gateway.subject("EMAIL", &bob.email, FULL_SELECTION).await?;
    gateway
        .graphql_as(
            &support,
            "essential.service",
            "query($v: String!) { subject(identity: {kind: EMAIL, value: $v}) { accounts { users { email } } } }",
            serde_json::json!({ "v": alice.email.to_uppercase() }),
        )
        .await?;
    gateway
        .graphql(
            "query($ids: [IdentityInput!]!) { subjects(identities: $ids) { sources { status } } }",
            serde_json::json!({ "ids": [{"kind": "USER_ID", "value": alice.user_id.to_string()}, {"kind": "USER_ID", "value": bob.user_id.to_string()}] }),
        )
        .await?;

    let all = gateway
        .graphql(EVENTS, serde_json::json!({ "first": 10 }))
        .await?;
    let events = all["data"]["auditEvents"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(events.len(), 4, "{all}");
    assert_eq!(
        events
            .iter()
            .map(|e| e["action"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["subject.read", "subject.read", "subject.read", "subjects.read"]
    );
    let by_support = &events[2];
    assert_eq!(by_support["role"], "support");
    assert_eq!(by_support["purpose"], "essential.service");
    assert!(
        by_support["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:"))
    );
    assert_eq!(by_support["detail"]["outcome"], "OK");
    let categories = by_support["detail"]["categories"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(categories.contains(&serde_json::json!("user.contact.email")));
    assert!(
        !categories
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.starts_with("user.device"))),
        "only what support may see"
    );
    // Identities are stored hashed: the trail never holds the email.
    assert!(
        !all.to_string().contains(&alice.email) && !all.to_string().contains(&alice.email.to_lowercase())
    );

    // An auditor finds every read of Alice by her email, however it was typed.
    let of_alice = gateway
        .graphql(
            EVENTS,
            serde_json::json!({ "subject": {"kind": "EMAIL", "value": alice.email} }),
        )
        .await?;
    let seqs: Vec<i64> = of_alice["data"]["auditEvents"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(seqs, [1, 3]);
    // Pages, here of the subject reads only.
    let first = gateway
        .graphql(
            EVENTS,
            serde_json::json!({ "first": 2, "action": "subject.read" }),
        )
        .await?;
    assert_eq!(first["data"]["auditEvents"]["hasNextPage"], true);
    let cursor = first["data"]["auditEvents"]["endCursor"].clone();
    let rest = gateway
        .graphql(
            EVENTS,
            serde_json::json!({ "first": 2, "after": cursor, "action": "subject.read" }),
        )
        .await?;
    let rest_seqs: Vec<i64> = rest["data"]["auditEvents"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(rest_seqs, [3]);
    assert_eq!(rest["data"]["auditEvents"]["hasNextPage"], false);
    // Support may not read the trail.
    let refused = gateway
        .graphql_as(&support, "essential.service", EVENTS, serde_json::json!({}))
        .await?;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");

    // Intact, then tampered with.
    let (count, _) = gateway.audit.verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // Four reads of people, and four reads of the trail (the refused one left no event).
    assert_eq!(count, 8);
    let reads_of_trail = gateway
        .graphql(EVENTS, serde_json::json!({ "action": "audit.read", "first": 50 }))
        .await?;
    let trail_events = reads_of_trail["data"]["auditEvents"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(trail_events.len(), 4);
    assert_eq!(
        trail_events[1]["subjects"].as_array().map(Vec::len),
        Some(1),
        "the lookup of Alice names her (hashed)"
    );
    let (count, _) = gateway.audit.verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(count, 9);
    let pool = gateway.keys.pool();
    sqlx::query("UPDATE audit_events SET role = 'admin' WHERE seq = 3")
        .execute(pool)
        .await?;
    assert_eq!(gateway.audit.verify().await, Err(ChainError::Edited { seq: 3 }));
    sqlx::query("UPDATE audit_events SET role = 'support' WHERE seq = 3")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM audit_events WHERE seq = 2")
        .execute(pool)
        .await?;
    assert_eq!(
        gateway.audit.verify().await,
        Err(ChainError::Gap { seq: 3, previous: 1 })
    );
    Ok(())
}
