//! Privacy requests against the real stores: erasure (with its plan, safety limit, retries,
//! verification and receipt), rectification, export and objection, idempotency and listing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value as Json, json};
use sha2::Digest;
use subject_gateway_demo::world::Person;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway, snapshot};

use crate::{at, len, subject_ok};

const REQUEST_FIELDS: &str = "id type status regulation subject createdAt dueAt overdue error receipt receiptSha256
  tasks { connector entity action status attempts records files legalBasis retainUntil verified error errorCode }
  download { url expiresAt sha256 bytes }";

/// Submits `mutation` (`eraseSubject`, …) with `input`; returns the request, failing on errors.
pub async fn submit(gateway: &TestGateway, mutation: &str, input: Json) -> anyhow::Result<Json> {
    let input_type = match mutation {
        "eraseSubject" => "EraseSubjectInput",
        "rectifySubject" => "RectifySubjectInput",
        "exportSubject" => "ExportSubjectInput",
        _ => "RecordObjectionInput",
    };
    let response = gateway
        .graphql(
            &format!(
                "mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ {REQUEST_FIELDS} }} }}"
            ),
            json!({ "input": input }),
        )
        .await?;
    anyhow::ensure!(response.get("errors").is_none(), "errors: {}", response["errors"]);
    Ok(response["data"][mutation].clone())
}

/// Polls the request until it is in one of `statuses` (at most a minute).
pub async fn wait_for(gateway: &TestGateway, id: &str, statuses: &[&str]) -> anyhow::Result<Json> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let response = gateway
            .graphql(
                &format!("query($id: ID!) {{ privacyRequest(id: $id) {{ {REQUEST_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await?;
        let request = response["data"]["privacyRequest"].clone();
        if statuses.iter().any(|s| request["status"] == *s) {
            return Ok(request);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "request still {} after a minute: {request}",
            request["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls a submitted request until it is COMPLETED or FAILED.
pub async fn finished(gateway: &TestGateway, request: &Json) -> anyhow::Result<Json> {
    wait_for(
        gateway,
        request["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await
}

fn task<'a>(request: &'a Json, connector: &str, entity: &str) -> &'a Json {
    request["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["connector"] == connector && t["entity"] == entity)
        .unwrap_or(&Json::Null)
}

/// Someone with records in all five stores: an account, invoices, uploads, tickets, analytics.
pub fn everywhere(world: &ReferenceWorld) -> &Person {
    world
        .people
        .iter()
        .find(|p| {
            p.user_id % 2 == 0
                && p.user_id % 3 != 0
                && !p.uploads.is_empty()
                && p.customer.as_ref().is_some_and(|c| !c.invoices.is_empty())
        })
        .expect("the reference world has someone in every store")
}

fn email_input(person: &Person) -> Json {
    json!({ "kind": "EMAIL", "value": person.email })
}

/// Asserts that only the records in `theirs` differ between two snapshots.
pub fn only_theirs_changed(
    theirs: &BTreeSet<String>,
    before: &snapshot::Snapshot,
    after: &snapshot::Snapshot,
) {
    let mut checked = 0;
    for (key, digest) in before {
        if theirs.contains(key) {
            continue;
        }
        assert_eq!(
            after.get(key),
            Some(digest),
            "{key} belongs to someone else and changed"
        );
        checked += 1;
    }
    let added: BTreeSet<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(added.is_empty(), "records appeared: {added:?}");
    assert!(
        checked > 100,
        "the snapshot covers the other people ({checked} records)"
    );
}

#[tokio::test]
async fn erasing_one_person_leaves_everyone_else_byte_identical() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let gateway = world.gateway().await?;
    let person = everywhere(&world).clone();
    let customer = person.customer.clone().expect("a customer");

    // The plan changes nothing and says what will happen.
    let plan = gateway
        .graphql(
            "query($identity: IdentityInput!) { erasurePlan(identity: $identity) { subject identities blocked entries { connector entity action records files fieldsTouched legalBasis retainUntil exceedsLimit supported note } } }",
            json!({ "identity": email_input(&person) }),
        )
        .await?;
    assert!(plan.get("errors").is_none(), "{}", plan["errors"]);
    let plan = &plan["data"]["erasurePlan"];
    assert_eq!(plan["blocked"], false);
    let entry = |connector: &str, entity: &str| {
        plan["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["connector"] == connector && e["entity"] == entity)
            .cloned()
            .unwrap_or(Json::Null)
    };
    assert_eq!(entry("accounts", "users")["action"], "DELETE");
    assert_eq!(entry("billing", "invoices")["action"], "RETAIN");
    assert_eq!(entry("billing", "invoices")["records"], customer.invoices.len());
    assert!(
        entry("billing", "invoices")["legalBasis"]
            .as_str()
            .is_some_and(|b| b.contains("Tax"))
    );
    // Ten years from the latest invoice's date, not from today.
    let retain_until = chrono::DateTime::parse_from_rfc3339(
        entry("billing", "invoices")["retainUntil"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let latest_issued = customer
        .invoices
        .iter()
        .filter_map(|i| chrono::NaiveDateTime::parse_from_str(&i.issued_at, "%Y-%m-%d %H:%M:%S").ok())
        .max()
        .expect("invoice dates (seeded as UTC)")
        .and_utc();
    assert_eq!(retain_until, latest_issued + chrono::Duration::days(3650));
    assert_eq!(
        entry("billing", "invoices")["fieldsTouched"],
        json!(["billing_name: pseudonymize", "billing_email: pseudonymize"])
    );
    assert_eq!(entry("uploads", "images")["files"], person.uploads.len());
    assert_eq!(entry("analytics", "events")["action"], "CASCADE");

    let before = snapshot::take(&world).await?;
    let theirs = snapshot::keys_of(&world, &person, &before);
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(&person), "reason": "customer asked", "idempotencyKey": "erase-1" }),
    )
    .await?;
    assert!(request["id"].as_str().is_some_and(|id| id.starts_with("pr_")));
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let after = snapshot::take(&world).await?;
    only_theirs_changed(&theirs, &before, &after);

    // Deleted where deleted, files included; retained invoices and their customer are still there,
    // masked; the helpdesk keeps a tombstone of the user with the personal fields nulled.
    for key in theirs {
        let retained = key.starts_with("billing/customers/")
            || key.starts_with("billing/invoices/")
            || key.starts_with("helpdesk/users/");
        assert_eq!(after.contains_key(&key), retained, "{key}");
        if retained {
            assert_ne!(after.get(&key), before.get(&key), "{key} is masked");
        }
    }

    // Looked up again, the person is gone; the retained invoices keep amounts and dates, not the
    // name and email.
    let response = gateway
        .subject("EMAIL", &person.email, subject_gateway_tests::FULL_SELECTION)
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(
        len(&subject["identities"]),
        1,
        "only the email given: {}",
        subject["identities"]
    );
    let response = gateway
        .subject(
            "CUSTOMER_ID",
            &customer.id,
            "{ billing { customers { email name city userId } invoices { id amountDueCents issuedAt currency billingName billingEmail } } }",
        )
        .await?;
    let billing = &subject_ok(&response)["billing"];
    let customers = &billing["customers"];
    assert_eq!(len(customers), 1);
    assert!(
        customers[0]["email"]
            .as_str()
            .is_some_and(|e| e.starts_with("pseu_"))
    );
    assert!(
        customers[0]["name"]
            .as_str()
            .is_none_or(|n| n.starts_with("pseu_"))
    );
    assert!(customers[0]["city"].is_null() && customers[0]["userId"].is_null());
    let invoices = billing["invoices"].as_array().cloned().unwrap_or_default();
    assert_eq!(invoices.len(), customer.invoices.len());
    for original in &customer.invoices {
        let invoice = invoices
            .iter()
            .find(|i| i["id"] == original.id.as_str())
            .expect("every invoice is retained");
        assert_eq!(invoice["amountDueCents"], original.amount_due_cents);
        assert_eq!(invoice["currency"], original.currency);
        assert!(invoice["issuedAt"].is_string());
        for field in ["billingName", "billingEmail"] {
            assert!(
                invoice[field].as_str().is_none_or(|v| v.starts_with("pseu_")),
                "{field}: {}",
                invoice[field]
            );
        }
    }

    // The receipt: per store, counts, legal basis, verification; no raw identity anywhere.
    let receipt = &done["receipt"];
    let text = receipt.to_string();
    for secret in [
        person.email.as_str(),
        &person.email.to_lowercase(),
        person.full_name.as_str(),
        customer.id.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "the receipt must not hold identity values"
        );
    }
    assert_eq!(receipt["verification"]["result"], "PASSED");
    let entries = receipt["entries"].as_array().cloned().unwrap_or_default();
    let invoices_entry = entries
        .iter()
        .find(|e| e["connector"] == "billing" && e["entity"] == "invoices")
        .expect("an invoices entry");
    assert_eq!(invoices_entry["retained"], customer.invoices.len());
    assert!(invoices_entry["legalBasis"].is_string() && invoices_entry["retainUntil"].is_string());
    let images = entries
        .iter()
        .find(|e| e["connector"] == "uploads")
        .expect("an uploads entry");
    assert_eq!(images["deleted"], person.uploads.len());
    assert_eq!(images["filesDeleted"], person.uploads.len());
    assert!(entries.iter().all(|e| e["verified"] == true), "{entries:?}");
    for t in done["tasks"].as_array().into_iter().flatten() {
        assert_eq!(t["status"], "DONE", "{t}");
    }
    assert_eq!(task(&done, "analytics", "profiles")["action"], "DELETE");

    // The receipt's digest is anchored in the audit trail.
    let digest = done["receiptSha256"].as_str().unwrap_or_default().to_owned();
    assert_eq!(digest.len(), 64);
    let audit = gateway
        .graphql(
            "{ auditEvents(action: \"erasure.completed\") { events { detail } } }",
            json!({}),
        )
        .await?;
    let events = at(&audit, &["data", "auditEvents", "events"]);
    assert!(
        events
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["detail"]["receiptSha256"] == digest.as_str()),
        "{audit}"
    );
    Ok(())
}

#[tokio::test]
async fn one_idempotency_key_or_one_person_makes_one_request() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let person = &world.people[1];
    let input = json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": "same-key" });
    let (first, second) = tokio::join!(
        submit(&gateway, "eraseSubject", input.clone()),
        submit(&gateway, "eraseSubject", input.clone())
    );
    let (first, second) = (first?, second?);
    assert_eq!(first["id"], second["id"], "the same key twice is one request");
    // Another key for the same person while the first is open joins it.
    let third = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": "other-key" }),
    )
    .await?;
    let id = first["id"].as_str().unwrap_or_default();
    let done = wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    if third["id"] != first["id"] {
        // It arrived after the first finished: a second request, which finds nothing left.
        let again = wait_for(
            &gateway,
            third["id"].as_str().unwrap_or_default(),
            &["COMPLETED", "FAILED"],
        )
        .await?;
        assert_eq!(again["status"], "COMPLETED");
    }
    let list = gateway
        .graphql(
            "{ privacyRequests(type: ERASURE) { requests { id } } }",
            json!({}),
        )
        .await?;
    assert!(len(at(&list, &["data", "privacyRequests", "requests"])) <= 2);

    // A key reused for another kind of request is refused, naming the conflict.
    let response = gateway
        .graphql(
            "mutation($input: ExportSubjectInput!) { exportSubject(input: $input) { id } }",
            json!({ "input": { "identity": { "kind": "USER_ID", "value": "1" }, "idempotencyKey": "same-key" } }),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_deletion_job_fails_the_request_and_a_retry_does_only_what_is_left() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 != 0)
        .expect("someone with an analytics profile");
    world
        .analytics
        .state
        .fail_deletions
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(person), "idempotencyKey": "fails-once" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let failed = wait_for(&gateway, &id, &["FAILED", "COMPLETED"]).await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("analytics.profiles") && e.contains("FAILURE")),
        "{}",
        failed["error"]
    );
    let profiles = task(&failed, "analytics", "profiles");
    assert_eq!(profiles["status"], "FAILED");
    assert_eq!(profiles["errorCode"], "JOB_FAILED");
    let users = task(&failed, "accounts", "users");
    assert_eq!(users["status"], "DONE");
    assert_eq!(users["attempts"], 1);

    world
        .analytics
        .state
        .fail_deletions
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let response = gateway
        .graphql(
            "mutation($id: ID!) { retryPrivacyRequest(id: $id) { id status } }",
            json!({ "id": id }),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        task(&done, "accounts", "users")["attempts"],
        1,
        "done tasks are not run again"
    );
    assert_eq!(task(&done, "analytics", "profiles")["attempts"], 2);
    let events = world
        .analytics
        .state
        .data
        .lock()
        .map(|d| d.profiles.contains_key(&format!("u{}", person.user_id)));
    assert_eq!(events.ok(), Some(false), "the profile is gone after the retry");
    Ok(())
}

#[tokio::test]
async fn an_erasure_past_a_safety_limit_stops_before_changing_anything() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(10).await?;
    let copy = ConfigCopy::new()?;
    copy.edit("connectors/billing.toml", "max_records = 1000", "max_records = 1")?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world.payer(2).clone();
    let before = snapshot::take(&world).await?;
    let theirs = snapshot::keys_of(&world, &person, &before);
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": "too-many" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let failed = wait_for(&gateway, &id, &["FAILED", "COMPLETED"]).await?;
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("SAFETY_LIMIT") && e.contains("billing.invoices")),
        "{}",
        failed["error"]
    );
    assert_eq!(
        snapshot::take(&world).await?,
        before,
        "nothing was changed anywhere"
    );

    // With the explicit override, it goes ahead.
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": "too-many-allowed", "allowLargeMatches": true }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    only_theirs_changed(&theirs, &before, &snapshot::take(&world).await?);
    Ok(())
}

#[tokio::test]
async fn rectifying_an_email_reaches_accounts_billing_and_the_helpdesk() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let gateway = world.gateway().await?;
    let person = everywhere(&world).clone();
    let new_email = format!("Corrected.{}@Example.org", person.user_id);
    let request = submit(
        &gateway,
        "rectifySubject",
        json!({
            "identity": email_input(&person),
            "changes": [{ "field": "email", "value": new_email }],
            "idempotencyKey": "rectify-1",
        }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let normalised = new_email.to_lowercase();
    let response = gateway
        .subject(
            "EMAIL",
            &normalised,
            "{ accounts { users { email } } billing { customers { email } } helpdesk { users { email } } }",
        )
        .await?;
    let subject = subject_ok(&response);
    assert_eq!(
        at(subject, &["accounts", "users"])[0]["email"],
        normalised.as_str()
    );
    assert_eq!(
        at(subject, &["billing", "customers"])[0]["email"],
        normalised.as_str()
    );
    assert_eq!(
        at(subject, &["helpdesk", "users"])[0]["email"],
        normalised.as_str()
    );
    for (connector, entity) in [
        ("accounts", "users"),
        ("billing", "customers"),
        ("helpdesk", "users"),
    ] {
        assert_eq!(
            task(&done, connector, entity)["verified"],
            true,
            "{connector}.{entity}"
        );
    }
    // An attribute nobody declares rectifiable is refused up front.
    let response = gateway
        .graphql(
            "mutation($input: RectifySubjectInput!) { rectifySubject(input: $input) { id } }",
            json!({ "input": { "identity": email_input(&person), "changes": [{ "field": "tax_id", "value": "x" }], "idempotencyKey": "rectify-2" } }),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{response}"
    );
    Ok(())
}

/// Zendesk's user search matches part of an address: `email:ann@example.com` also answers
/// `joann@example.com` and `ann@example.com.au`. Those are other people; no request may touch them.
#[tokio::test]
async fn a_search_api_that_answers_strangers_too_never_has_them_erased_or_rectified() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let erased = everywhere(&world).clone();
    let in_helpdesk: BTreeSet<String> = world
        .helpdesk
        .state
        .data
        .lock()
        .map_err(|_| anyhow::anyhow!("helpdesk data poisoned"))?
        .users
        .values()
        .filter_map(|u| u.email.as_deref().map(str::to_lowercase))
        .collect();
    let rectified = world
        .people
        .iter()
        .find(|p| p.email != erased.email && in_helpdesk.contains(&p.email.to_lowercase()))
        .cloned()
        .expect("a second person with a helpdesk account");
    let strangers: Vec<i64> = {
        let mut data = world
            .helpdesk
            .state
            .data
            .lock()
            .map_err(|_| anyhow::anyhow!("helpdesk data poisoned"))?;
        [&erased, &rectified]
            .iter()
            .flat_map(|p| [format!("jo{}", p.email), format!("{}.au", p.email)])
            .map(|email| data.add_user(&email, "Somebody Else", 2))
            .collect()
    };
    world
        .helpdesk
        .state
        .partial_search
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let gateway = world.gateway().await?;

    // What the person sees is theirs alone, as before.
    let response = gateway
        .subject("EMAIL", &erased.email, "{ helpdesk { users { id email } } }")
        .await?;
    assert_eq!(
        len(at(subject_ok(&response), &["helpdesk", "users"])),
        1,
        "{response}"
    );

    let before = snapshot::take(&world).await?;
    let mut theirs = snapshot::keys_of(&world, &erased, &before);
    theirs.extend(snapshot::keys_of(&world, &rectified, &before));
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(&erased), "idempotencyKey": "wide-search-erase" }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(task(&done, "helpdesk", "users")["records"], 1, "{done}");
    assert_eq!(task(&done, "helpdesk", "users")["verified"], true, "{done}");

    let new_email = format!("corrected.{}@example.org", rectified.user_id);
    let request = submit(
        &gateway,
        "rectifySubject",
        json!({
            "identity": email_input(&rectified),
            "changes": [{ "field": "email", "value": new_email }],
            "idempotencyKey": "wide-search-rectify",
        }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(task(&done, "helpdesk", "users")["verified"], true, "{done}");

    only_theirs_changed(&theirs, &before, &snapshot::take(&world).await?);
    let data = world
        .helpdesk
        .state
        .data
        .lock()
        .map_err(|_| anyhow::anyhow!("helpdesk data poisoned"))?;
    for id in strangers {
        let user = data.users.get(&id).expect("the stranger is still there");
        assert!(!user.soft_deleted && !user.purged, "stranger {id} was deleted");
        assert_ne!(
            user.email.as_deref(),
            Some(new_email.as_str()),
            "stranger {id} was rectified"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_export_bundle_holds_every_record_and_file_of_the_person_and_nobody_elses() -> anyhow::Result<()>
{
    let world = ReferenceWorld::create(24).await?;
    let gateway = world.gateway().await?;
    let person = everywhere(&world).clone();
    let request = submit(
        &gateway,
        "exportSubject",
        json!({ "identity": email_input(&person), "idempotencyKey": "export-1" }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let url = done["download"]["url"]
        .as_str()
        .expect("a download link")
        .to_owned();
    let bytes = reqwest::get(gateway.url(&url))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    assert_eq!(
        done["download"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec()))?;
    let read =
        |archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str| -> anyhow::Result<Vec<u8>> {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(name)?, &mut out)?;
            Ok(out)
        };
    let subject: Json = serde_json::from_slice(&read(&mut archive, "subject.json")?)?;
    let records = subject["records"].as_array().cloned().unwrap_or_default();
    let count = |connector: &str, entity: &str| {
        records
            .iter()
            .filter(|r| r["connector"] == connector && r["entity"] == entity)
            .count()
    };
    let customer = person.customer.clone().expect("a customer");
    assert_eq!(count("accounts", "users"), 1);
    assert_eq!(count("accounts", "sessions"), person.sessions.len());
    assert_eq!(count("billing", "invoices"), customer.invoices.len());
    assert_eq!(count("uploads", "images"), person.uploads.len());
    assert!(count("helpdesk", "tickets") > 0 && count("analytics", "profiles") == 1);
    let user = records
        .iter()
        .find(|r| r["connector"] == "accounts" && r["entity"] == "users")
        .cloned()
        .unwrap_or_default();
    assert_eq!(user["fields"]["email"]["category"], "user.contact.email");
    assert_eq!(user["fields"]["user_id"], Json::Null, "fields as declared");
    assert_eq!(user["fields"]["id"]["value"], person.user_id);
    for upload in &person.uploads {
        let name = format!("files/uploads/images/{}", upload.storage_key);
        assert_eq!(read(&mut archive, &name)?, upload.bytes, "{name}");
    }
    let article15: Json = serde_json::from_slice(&read(&mut archive, "article15.json")?)?;
    let billing = article15["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["store"] == "billing")
        .cloned()
        .unwrap_or_default();
    assert!(
        len(&billing["recipients"]) >= 1 && billing["retention"].is_string() && billing["source"].is_string()
    );
    assert_eq!(billing["purposes"], json!(["essential"]));
    // Nobody else's data: no other person's email or id appears anywhere in the bundle.
    let everything = format!("{subject}{article15}");
    for other in world.people.iter().filter(|p| p.user_id != person.user_id) {
        assert!(
            !everything.to_lowercase().contains(&other.email.to_lowercase()),
            "another person's email"
        );
        assert!(
            !records
                .iter()
                .any(|r| r["fields"]["user_id"]["value"] == other.user_id),
            "another person's records"
        );
    }
    // The link is the credential: a tampered one is refused.
    let tampered = url.replace("signature=", "signature=0");
    let status = reqwest::get(gateway.url(&tampered)).await?.status();
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    Ok(())
}

#[tokio::test]
async fn requests_are_listed_newest_first_with_due_dates_and_cursors() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(4).await?;
    let gateway = world.gateway().await?;
    let mut ids = Vec::new();
    for (n, regulation) in ["GDPR", "CCPA", "GDPR"].iter().enumerate() {
        let request = submit(
            &gateway,
            "recordObjection",
            json!({
                "identity": { "kind": "USER_ID", "value": world.people[n].user_id.to_string() },
                "purpose": "marketing",
                "regulation": regulation,
                "idempotencyKey": format!("objection-{n}"),
            }),
        )
        .await?;
        ids.push(request["id"].as_str().unwrap_or_default().to_owned());
        let created =
            chrono::DateTime::parse_from_rfc3339(request["createdAt"].as_str().unwrap_or_default())?;
        let due = chrono::DateTime::parse_from_rfc3339(request["dueAt"].as_str().unwrap_or_default())?;
        let days = (due - created).num_days();
        if *regulation == "CCPA" {
            assert_eq!(days, 45);
        } else {
            assert!((28..=31).contains(&days), "GDPR: one month, {days} days");
        }
        assert_eq!(request["overdue"], false);
    }
    for id in &ids {
        let done = wait_for(&gateway, id, &["COMPLETED", "FAILED"]).await?;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(done["receipt"]["objection"]["purpose"], "marketing");
        assert!(
            done["receipt"]["objection"]["storesServingThePurpose"]
                .as_array()
                .is_some_and(|s| s.iter().any(|c| c == "analytics")),
            "{}",
            done["receipt"]
        );
    }
    let page = |after: Option<String>| {
        let gateway = &gateway;
        async move {
            gateway
                .graphql(
                    "query($after: String) { privacyRequests(type: OBJECTION, first: 2, after: $after) { requests { id } endCursor hasNextPage } }",
                    json!({ "after": after }),
                )
                .await
        }
    };
    let first = page(None).await?;
    let first = &first["data"]["privacyRequests"];
    assert_eq!(len(&first["requests"]), 2);
    assert_eq!(first["hasNextPage"], true);
    assert_eq!(first["requests"][0]["id"], ids[2].as_str(), "newest first");
    let second = page(first["endCursor"].as_str().map(str::to_owned)).await?;
    let second = &second["data"]["privacyRequests"];
    assert_eq!(len(&second["requests"]), 1);
    assert_eq!(second["hasNextPage"], false);
    assert_eq!(second["requests"][0]["id"], ids[0].as_str());
    let overdue = gateway
        .graphql(
            "{ privacyRequests(overdue: true) { requests { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(len(at(&overdue, &["data", "privacyRequests", "requests"])), 0);

    // Extending the due date needs a reason, and is recorded.
    let extended = gateway
        .graphql(
            "mutation($id: ID!) { extendPrivacyRequest(id: $id, days: 30, reason: \"complex request\") { dueAt } }",
            json!({ "id": ids[0] }),
        )
        .await?;
    assert!(extended.get("errors").is_none(), "{extended}");
    Ok(())
}

#[tokio::test]
async fn privacy_requests_need_their_operations() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let support = gateway.key("support").await?;
    let response = gateway
        .graphql_as(
            &support,
            "essential.service",
            "mutation { eraseSubject(input: { identity: { kind: USER_ID, value: \"1\" }, idempotencyKey: \"k\" }) { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{response}"
    );
    let response = gateway
        .graphql_as(
            &support,
            "essential.service",
            "{ privacyRequests { requests { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{response}"
    );
    Ok(())
}

#[tokio::test]
async fn an_objection_is_recorded_and_opts_the_person_out_where_the_purpose_is_served() -> anyhow::Result<()>
{
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 != 0)
        .expect("someone with an analytics profile");
    let object = |key: &str| {
        submit(
            &gateway,
            "recordObjection",
            json!({ "identity": email_input(person), "purpose": "marketing", "idempotencyKey": key }),
        )
    };
    let request = object("object-1").await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let suppress = task(&done, "analytics", "profiles");
    assert_eq!(suppress["action"], "SUPPRESS");
    assert_eq!(suppress["records"], 1);
    assert_eq!(
        len(&done["tasks"]),
        1,
        "only the store serving marketing that can opt out: {done}"
    );
    assert_eq!(done["receipt"]["objection"]["newlyRecorded"], true);
    let opted_out = world.analytics.state.data.lock().map(|d| {
        d.profiles
            .get(&format!("u{}", person.user_id))
            .map(|p| p.opted_out)
    });
    assert_eq!(opted_out.ok().flatten(), Some(true));
    let response = gateway
        .subject("EMAIL", &person.email, "{ analytics { profiles { optedOut } } }")
        .await?;
    assert_eq!(
        at(subject_ok(&response), &["analytics", "profiles"])[0]["optedOut"],
        true
    );

    // Objecting again is recorded once; the call is safe to repeat.
    let again = object("object-2").await?;
    let again = wait_for(
        &gateway,
        again["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(again["receipt"]["objection"]["newlyRecorded"], false);
    Ok(())
}

#[tokio::test]
async fn a_request_s_progress_streams_over_a_websocket() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    // Someone with an analytics profile: its deletion job keeps the request open for seconds.
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 3 != 0)
        .expect("someone with an analytics profile");
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(person), "idempotencyKey": "streamed" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();

    let mut upgrade = format!("ws://{}/graphql/ws", gateway.address).into_client_request()?;
    upgrade.headers_mut().extend(gateway.admin_headers()?);
    upgrade
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(upgrade).await?;
    socket
        .send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await?;
    socket
        .send(Message::text(
            json!({
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($id: ID!) { privacyRequestEvents(id: $id) { requestId kind status message } }",
                    "variables": { "id": id },
                },
            })
            .to_string(),
        ))
        .await?;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the socket closed"))??;
        let Message::Text(text) = message else { continue };
        let message: Json = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("next") => events.push(message["payload"]["data"]["privacyRequestEvents"].clone()),
            Some("complete") => break,
            Some("error") => anyhow::bail!("subscription error: {message}"),
            _ => {}
        }
    }
    assert_eq!(
        events.first().map(|e| e["kind"].clone()),
        Some(json!("state")),
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["requestId"] == id.as_str()));
    assert!(events.iter().any(|e| e["kind"] == "task.done"), "{events:?}");
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["kind"], "completed", "{events:?}");
    assert_eq!(last["status"], "COMPLETED");
    Ok(())
}

#[tokio::test]
async fn transient_store_failures_are_retried_until_the_erasure_completes() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(8).await?;
    let copy = ConfigCopy::new()?;
    // No retries inside the connector: every 503 reaches the engine, which must retry.
    copy.edit("connectors/helpdesk.toml", "max_retries = 8", "max_retries = 0")?;
    let gateway = TestGateway::start(&copy.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| p.user_id % 2 == 0 && p.user_id % 3 == 0)
        .or_else(|| world.people.iter().find(|p| p.user_id % 2 == 0))
        .expect("someone with helpdesk tickets");
    world
        .helpdesk
        .state
        .fail_next
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(person), "idempotencyKey": "flaky" }),
    )
    .await?;
    let done = finished(&gateway, &request).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        world
            .helpdesk
            .state
            .fail_next
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the three 503 answers were all met and ridden out"
    );
    assert_eq!(task(&done, "helpdesk", "users")["verified"], true);
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_names_one_person_and_one_type() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let (first, second) = (&world.people[1], &world.people[2]);
    let erased = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": first.user_id.to_string() }, "idempotencyKey": "bound-key" }),
    )
    .await?;
    let done = wait_for(
        &gateway,
        erased["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // The same key for another person: a conflict, and nothing happens to that person.
    let response = gateway
        .graphql(
            "mutation($input: EraseSubjectInput!) { eraseSubject(input: $input) { id status } }",
            json!({ "input": { "identity": { "kind": "USER_ID", "value": second.user_id.to_string() }, "idempotencyKey": "bound-key" } }),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("another person") && !m.contains(&second.email)),
        "{response}"
    );
    assert!(response["data"]["eraseSubject"].is_null(), "{response}");
    let still = gateway
        .subject(
            "USER_ID",
            &second.user_id.to_string(),
            "{ accounts { users { id } } }",
        )
        .await?;
    assert_eq!(len(at(subject_ok(&still), &["accounts", "users"])), 1, "{still}");

    // The same person by another spelling of the same identity is the same request.
    let again = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": format!("+0{}", first.user_id) }, "idempotencyKey": "bound-key" }),
    )
    .await?;
    assert_eq!(again["id"], erased["id"]);
    Ok(())
}

#[tokio::test]
async fn retrying_an_erasure_that_failed_while_planning_plans_it_and_erases() -> anyhow::Result<()> {
    let world = ReferenceWorld::create_on(
        6,
        subject_connectors::declaration::SqlDialect::Postgres,
        subject_connectors::declaration::SqlDialect::Postgres,
    )
    .await?;
    let config = ConfigCopy::new()?;
    config.edit("connectors/billing.toml", "timeout_ms = 2000", "timeout_ms = 300")?;
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world.payer(1).clone();

    // Billing cannot be read while planning: the erasure fails before anything is changed.
    let blocker = sqlx::PgPool::connect(&world.billing.url).await?;
    let mut lock = blocker.begin().await?;
    sqlx::query("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(&person), "idempotencyKey": "planning-fails" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let failed = wait_for(&gateway, &id, &["FAILED", "COMPLETED"]).await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("billing")),
        "{failed}"
    );
    assert_eq!(len(&failed["tasks"]), 0);
    lock.rollback().await?;

    // The retry plans it (it never was) and erases: never COMPLETED with no tasks.
    let response = gateway
        .graphql(
            "mutation($id: ID!) { retryPrivacyRequest(id: $id) { id status } }",
            json!({ "id": id }),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert!(len(&done["tasks"]) >= 3, "{done}");
    assert_eq!(task(&done, "accounts", "users")["records"], 1, "{done}");
    assert_eq!(done["receipt"]["verification"]["result"], "PASSED");
    let after = gateway
        .subject("EMAIL", &person.email, "{ accounts { users { id } } }")
        .await?;
    assert_eq!(len(at(subject_ok(&after), &["accounts", "users"])), 0, "{after}");
    Ok(())
}

#[tokio::test]
async fn a_completed_erasure_deletes_the_person_s_exports() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let person = world.people[1].clone();
    let export = submit(
        &gateway,
        "exportSubject",
        json!({ "identity": email_input(&person), "idempotencyKey": "export-then-erase" }),
    )
    .await?;
    let exported = wait_for(
        &gateway,
        export["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(exported["status"], "COMPLETED", "{exported}");
    let url = gateway.url(exported["download"]["url"].as_str().expect("a link"));
    assert_eq!(reqwest::get(&url).await?.status(), 200);

    // Erased by another identity of the same person.
    let erasure = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "USER_ID", "value": person.user_id.to_string() }, "idempotencyKey": "erase-after-export" }),
    )
    .await?;
    let erased = wait_for(
        &gateway,
        erasure["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(erased["status"], "COMPLETED", "{erased}");
    assert_eq!(reqwest::get(&url).await?.status(), 410);

    // The download before the erasure is on record.
    let audit = gateway
        .graphql(
            "{ auditEvents(first: 100, action: \"export.downloaded\") { events { action } } }",
            json!({}),
        )
        .await?;
    assert_eq!(len(at(&audit, &["data", "auditEvents", "events"])), 1, "{audit}");
    Ok(())
}

#[tokio::test]
async fn an_erasure_that_fails_inside_one_database_leaves_that_database_as_it_was() -> anyhow::Result<()> {
    use subject_connectors::declaration::SqlDialect;
    let world = ReferenceWorld::create_on(6, SqlDialect::Postgres, SqlDialect::MySql).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.sessions.is_empty())
        .expect("someone with sessions")
        .clone();
    // The last write in accounts (the user, after its sessions and preferences) is refused.
    let accounts = sqlx::PgPool::connect(&world.accounts.url).await?;
    for statement in [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_user_delete BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION refuse()",
    ] {
        sqlx::query(statement).execute(&accounts).await?;
    }
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": email_input(&person), "idempotencyKey": "atomic" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let failed = wait_for(&gateway, &id, &["FAILED", "COMPLETED"]).await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let sessions = task(&failed, "accounts", "sessions");
    assert_eq!(sessions["status"], "FAILED", "{failed}");
    assert!(
        sessions["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing was changed in this store")),
        "{failed}"
    );
    // The sessions deleted before the refused write are back: the store is as it was.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1")
        .bind(person.user_id)
        .fetch_one(&accounts)
        .await?;
    assert_eq!(count as usize, person.sessions.len());

    sqlx::query("DROP TRIGGER refuse_user_delete ON users")
        .execute(&accounts)
        .await?;
    let response = gateway
        .graphql(
            "mutation($id: ID!) { retryPrivacyRequest(id: $id) { id status } }",
            json!({ "id": id }),
        )
        .await?;
    assert!(response.get("errors").is_none(), "{response}");
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        task(&done, "accounts", "sessions")["records"],
        person.sessions.len()
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1")
        .bind(person.user_id)
        .fetch_one(&accounts)
        .await?;
    assert_eq!(count, 0);
    Ok(())
}
