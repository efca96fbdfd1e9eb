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

/// A keyed trail of ten events in a state database of its own, anchored to a file.
async fn keyed_trail() -> anyhow::Result<(
    tempfile::TempDir,
    subject_gateway::keys::KeyStore,
    subject_gateway::audit::DbAuditLog,
    std::path::PathBuf,
)> {
    use subject_schema::audit::{AuditEntry, AuditLog};
    let dir = tempfile::tempdir()?;
    let keys =
        subject_gateway::keys::KeyStore::open(&format!("sqlite://{}", dir.path().join("state.db").display()))
            .await?;
    let audit = subject_gateway::audit::DbAuditLog::open(keys.pool().clone())
        .await?
        .with_chain_key(Some(b"a chain key kept outside the database, 32+ bytes".to_vec()));
    for i in 0..10 {
        audit
            .append(AuditEntry {
                actor: format!("key:{i}"),
                role: "support".into(),
                purpose: "essential".into(),
                action: "subject.read".into(),
                subjects: Vec::new(),
                detail: serde_json::json!({ "n": i }),
            })
            .await?;
    }
    let anchors = dir.path().join("anchors.jsonl");
    audit.anchor(&anchors).await?;
    Ok((dir, keys, audit, anchors))
}

#[tokio::test]
async fn a_keyed_anchored_trail_names_each_rewrite() -> anyhow::Result<()> {
    let sha = |text: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };

    // Intact: verified against the anchor.
    let (_dir, keys, audit, anchors) = keyed_trail().await?;
    let verified = audit
        .verify_against(Some(&anchors))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!((verified.events, verified.anchored), (10, Some(10)));
    let pool = keys.pool();

    // 1. Edited, later hashes recomputed (without the key: plain SHA-256), flagged keyed or not.
    sqlx::query("UPDATE audit_events SET role = 'admin', hash = $1 WHERE seq = 5")
        .bind(sha("recomputed"))
        .execute(pool)
        .await?;
    assert_eq!(audit.verify().await, Err(ChainError::Forged { seq: 5 }));
    sqlx::query("UPDATE audit_events SET keyed = 0 WHERE seq >= 5")
        .execute(pool)
        .await?;
    assert_eq!(audit.verify().await, Err(ChainError::Downgraded { seq: 5 }));

    // 2. An event deleted and the rest renumbered, the head fixed.
    let (_dir, keys, audit, _) = keyed_trail().await?;
    let pool = keys.pool();
    sqlx::query("DELETE FROM audit_events WHERE seq = 4")
        .execute(pool)
        .await?;
    for seq in 5..=10 {
        sqlx::query("UPDATE audit_events SET seq = $1 WHERE seq = $2")
            .bind(seq - 1)
            .bind(seq)
            .execute(pool)
            .await?;
    }
    sqlx::query("UPDATE audit_head SET seq = 9 WHERE id = 1")
        .execute(pool)
        .await?;
    assert_eq!(
        audit.verify().await,
        Err(ChainError::Renumbered { seq: 4, original: 5 })
    );

    // 3. The tail dropped and the head set to the new last event: only the anchor sees it.
    let (_dir, keys, audit, anchors) = keyed_trail().await?;
    let pool = keys.pool();
    let (hash,): (String,) = sqlx::query_as("SELECT hash FROM audit_events WHERE seq = 7")
        .fetch_one(pool)
        .await?;
    sqlx::query("DELETE FROM audit_events WHERE seq > 7")
        .execute(pool)
        .await?;
    sqlx::query("UPDATE audit_head SET seq = 7, hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(pool)
        .await?;
    assert!(audit.verify().await.is_ok(), "undetectable without an anchor");
    assert_eq!(
        audit.verify_against(Some(&anchors)).await,
        Err(ChainError::TailDropped {
            anchored: 10,
            last_seq: 7
        })
    );

    // 4. The table wiped and the head reset.
    let (_dir, keys, audit, anchors) = keyed_trail().await?;
    let pool = keys.pool();
    sqlx::query("DELETE FROM audit_events").execute(pool).await?;
    sqlx::query("UPDATE audit_head SET seq = 0, hash = $1 WHERE id = 1")
        .bind("0".repeat(64))
        .execute(pool)
        .await?;
    assert_eq!(
        audit.verify_against(Some(&anchors)).await,
        Err(ChainError::Wiped { anchored: 10 })
    );

    // A forged anchor line is named too.
    std::fs::write(
        &anchors,
        "{\"seq\":0,\"mac\":\"00\",\"at\":\"2026-01-01T00:00:00Z\",\"check\":\"ff\"}\n",
    )?;
    assert_eq!(
        audit.verify_against(Some(&anchors)).await,
        Err(ChainError::AnchorForged { line: 1 })
    );
    Ok(())
}

/// Appends are committed in groups: 300 concurrent appends through two replicas of the audit
/// log onto one state database (PostgreSQL, then SQLite) all land, numbered 1…300 without a gap,
/// each chained to the one before, and every append returned only after its event was stored.
#[tokio::test]
async fn concurrent_appends_from_two_replicas_chain_without_gaps() -> anyhow::Result<()> {
    use subject_connectors::declaration::SqlDialect;
    use subject_gateway_tests::TestDatabase;
    use subject_schema::audit::{AuditEntry, AuditLog};
    for dialect in [SqlDialect::Postgres, SqlDialect::Sqlite] {
        let state = TestDatabase::create(dialect).await?;
        let keys = subject_gateway::keys::KeyStore::open(&state.url).await?;
        let chain_key = b"a chain key kept outside the database, 32+ bytes".to_vec();
        let replica = |pool| async move {
            anyhow::Ok(std::sync::Arc::new(
                subject_gateway::audit::DbAuditLog::open(pool)
                    .await?
                    .with_chain_key(Some(b"a chain key kept outside the database, 32+ bytes".to_vec())),
            ))
        };
        let first = replica(keys.pool().clone()).await?;
        let second_keys = subject_gateway::keys::KeyStore::open(&state.url).await?;
        let second = replica(second_keys.pool().clone()).await?;
        let appends = (0..300).map(|i| {
            let log = if i % 2 == 0 { first.clone() } else { second.clone() };
            let reader = keys.pool().clone();
            tokio::spawn(async move {
                log.append(AuditEntry {
                    actor: format!("key:{i}"),
                    role: "support".into(),
                    purpose: "essential".into(),
                    action: "subject.read".into(),
                    subjects: Vec::new(),
                    detail: serde_json::json!({ "n": i }),
                })
                .await?;
                // Returned: the event is stored, readable by the other replica.
                let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE actor = $1")
                    .bind(format!("key:{i}"))
                    .fetch_one(&reader)
                    .await?;
                anyhow::ensure!(seen == 1, "append {i} returned before its event was stored");
                anyhow::Ok(())
            })
        });
        for result in futures::future::join_all(appends).await {
            result??;
        }
        let log = subject_gateway::audit::DbAuditLog::open(keys.pool().clone())
            .await?
            .with_chain_key(Some(chain_key));
        let (events, _) = log
            .verify()
            .await
            .map_err(|e| anyhow::anyhow!("{dialect:?}: {e}"))?;
        assert_eq!(events, 300, "{dialect:?}");
        let actors: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT actor) FROM audit_events")
            .fetch_one(keys.pool())
            .await?;
        assert_eq!(actors, 300, "{dialect:?}: every append stored once");
    }
    Ok(())
}
