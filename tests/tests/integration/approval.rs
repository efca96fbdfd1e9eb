//! Approval (four eyes) and manual systems, against the reference world on real stores: an
//! erasure that needs approval waits until another approver lets it run (the submitter and a
//! role without `approve` are refused) or denies it; a manual system (the paper archive of
//! `config/manual/`) gives the request manual tasks it waits on — across a gateway restart —
//! until the archivist records their outcomes, which the receipt then shows.

use serde_json::{Value as Json, json};
use subject_gateway::config::Config;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway, config_dir};

use crate::at;
use crate::requests::{everywhere, submit, wait_for};

const DECIDE: &str = "id status decidedBy decidedAt decisionReason error";

/// The reference configuration, with erasures needing approval and/or the paper archive.
fn configured(approval: bool, manual: bool) -> anyhow::Result<ConfigCopy> {
    let copy = ConfigCopy::new()?;
    if approval {
        copy.edit(
            "gateway.toml",
            "# [requests.approval]\n# required = [\"ERASURE\"]",
            "[requests.approval]\nrequired = [\"ERASURE\"]",
        )?;
    }
    if manual {
        let text = std::fs::read_to_string(config_dir().join("manual/paper_archive.toml"))?;
        copy.write_connector("paper_archive.toml", &text)?;
    }
    Ok(copy)
}

async fn gateway(world: &ReferenceWorld, copy: &ConfigCopy) -> anyhow::Result<TestGateway> {
    TestGateway::start_with(Config::load(&copy.gateway_toml())?, world.env(), Vec::new()).await
}

/// The error code of the first error, or `Null`.
fn code(response: &Json) -> &Json {
    at(response, &["errors"])
        .get(0)
        .map_or(&Json::Null, |e| &e["extensions"]["code"])
}

async fn decide(
    gateway: &TestGateway,
    key: &str,
    mutation: &str,
    id: &str,
    reason: Option<&str>,
) -> anyhow::Result<Json> {
    let (args, vars) = match reason {
        Some(reason) => (
            "$id: ID!, $reason: String!",
            json!({ "id": id, "reason": reason }),
        ),
        None => ("$id: ID!", json!({ "id": id })),
    };
    let call = if reason.is_some() {
        "id: $id, reason: $reason"
    } else {
        "id: $id"
    };
    gateway
        .graphql_as(
            key,
            "essential",
            &format!("mutation({args}) {{ {mutation}({call}) {{ {DECIDE} }} }}"),
            vars,
        )
        .await
}

async fn event_kinds(gateway: &TestGateway, id: &str) -> anyhow::Result<Vec<String>> {
    Ok(gateway
        .requests
        .store()
        .events_after(id, None)
        .await?
        .into_iter()
        .map(|e| e.kind)
        .collect())
}

/// Polls the request until it waits on people only: every task DONE or MANUAL (a minute at most).
async fn waiting_on_people(gateway: &TestGateway, id: &str) -> anyhow::Result<Json> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let request = wait_for(gateway, id, &["WAITING", "COMPLETED", "FAILED"]).await?;
        let settled = request["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["status"] == "DONE" || t["status"] == "MANUAL");
        if request["status"] != "WAITING" || settled {
            return Ok(request);
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "still working: {request}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn manual_tasks(gateway: &TestGateway, key: &str, args: &str) -> anyhow::Result<Json> {
    gateway
        .graphql_as(
            key,
            "essential",
            &format!(
                "{{ manualTasks{args} {{ tasks {{ id requestId requestType connector entity action role instructions status identities dueAt overdue completedBy note }} hasNextPage }} }}"
            ),
            json!({}),
        )
        .await
}

async fn complete(
    gateway: &TestGateway,
    key: &str,
    id: &str,
    outcome: &str,
    note: &str,
) -> anyhow::Result<Json> {
    gateway
        .graphql_as(
            key,
            "essential",
            &format!(
                "mutation($id: ID!, $note: String) {{ completeManualTask(id: $id, outcome: {outcome}, note: $note) {{ id status completedBy note }} }}"
            ),
            json!({ "id": id, "note": note }),
        )
        .await
}

#[tokio::test]
async fn an_erasure_needing_approval_runs_only_once_another_approver_approves_it() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let copy = configured(true, false)?;
    let gateway = gateway(&world, &copy).await?;
    let person = everywhere(&world).clone();
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "needs-approval" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(request["status"], "AWAITING_APPROVAL", "{request}");

    // The approver sees what the erasure would do; nothing is done meanwhile.
    let shown = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { status dueAt erasurePlan { blocked entries { connector entity action records } } } }",
            json!({ "id": id }),
        )
        .await?;
    let plan = at(&shown, &["data", "privacyRequest", "erasurePlan"]);
    let accounts = plan["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["connector"] == "accounts" && e["entity"] == "users");
    assert_eq!(accounts.map(|e| e["records"].clone()), Some(json!(1)), "{shown}");
    assert!(
        at(&shown, &["data", "privacyRequest", "dueAt"]).is_string(),
        "the due date runs: {shown}"
    );
    let waiting = gateway
        .graphql(
            "{ privacyRequests(status: AWAITING_APPROVAL) { requests { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        at(&waiting, &["data", "privacyRequests", "requests"]),
        &json!([{ "id": id }])
    );

    // The submitter's own key: four eyes. A role without `approve`: forbidden.
    let admin = gateway.admin_headers()?;
    let admin_key = admin["authorization"]
        .to_str()?
        .trim_start_matches("Bearer ")
        .to_owned();
    let own = decide(&gateway, &admin_key, "approvePrivacyRequest", &id, None).await?;
    assert_eq!(code(&own), "FOUR_EYES", "{own}");
    let support = gateway.key("support").await?;
    let refused = gateway
        .graphql_as(
            &support,
            "essential.service",
            "mutation($id: ID!) { approvePrivacyRequest(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let still = gateway
        .subject("EMAIL", &person.email, "{ accounts { users { email } } }")
        .await?;
    assert_eq!(
        at(&still, &["data", "subject", "accounts", "users"])
            .as_array()
            .map(Vec::len),
        Some(1),
        "nothing is erased before approval: {still}"
    );

    // Another approver: it runs to COMPLETED.
    let dpo = gateway.key("dpo").await?;
    let approved = decide(&gateway, &dpo, "approvePrivacyRequest", &id, None).await?;
    assert!(approved.get("errors").is_none(), "{approved}");
    let decided = &approved["data"]["approvePrivacyRequest"];
    assert!(
        decided["decidedBy"].is_string() && decided["decidedAt"].is_string(),
        "{approved}"
    );
    assert_ne!(decided["status"], "AWAITING_APPROVAL");
    let done = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let after = gateway
        .subject("EMAIL", &person.email, "{ accounts { users { email } } }")
        .await?;
    assert_eq!(
        at(&after, &["data", "subject", "accounts", "users"]),
        &json!([]),
        "{after}"
    );
    let again = decide(&gateway, &dpo, "approvePrivacyRequest", &id, None).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");

    let kinds = event_kinds(&gateway, &id).await?;
    let position = |kind: &str| kinds.iter().position(|k| k == kind);
    assert!(
        position("awaiting_approval") < position("approved") && position("approved") < position("planned"),
        "{kinds:?}"
    );
    let audit = gateway
        .graphql(
            "{ auditEvents(first: 10, action: \"request.approved\") { events { actor action } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        at(&audit, &["data", "auditEvents", "events"])
            .as_array()
            .map(Vec::len),
        Some(1),
        "{audit}"
    );
    Ok(())
}

#[tokio::test]
async fn a_denied_erasure_ends_denied_with_its_reason_and_changes_nothing() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let copy = configured(true, false)?;
    let gateway = gateway(&world, &copy).await?;
    let person = everywhere(&world).clone();
    // Exports need no approval here.
    let export = submit(
        &gateway,
        "exportSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "no-approval" }),
    )
    .await?;
    assert_ne!(export["status"], "AWAITING_APPROVAL", "{export}");
    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "to-deny" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let dpo = gateway.key("dpo").await?;
    let no_reason = decide(&gateway, &dpo, "denyPrivacyRequest", &id, Some("  ")).await?;
    assert_eq!(code(&no_reason), "INVALID_INPUT", "{no_reason}");
    let denied = decide(
        &gateway,
        &dpo,
        "denyPrivacyRequest",
        &id,
        Some("the person has an open contract dispute"),
    )
    .await?;
    let denied = &denied["data"]["denyPrivacyRequest"];
    assert_eq!(denied["status"], "DENIED", "{denied}");
    assert_eq!(
        denied["decisionReason"],
        "the person has an open contract dispute"
    );
    let kinds = event_kinds(&gateway, &id).await?;
    assert_eq!(kinds.last().map(String::as_str), Some("denied"), "{kinds:?}");
    let after = gateway
        .subject("EMAIL", &person.email, "{ accounts { users { email } } }")
        .await?;
    assert_eq!(
        at(&after, &["data", "subject", "accounts", "users"])
            .as_array()
            .map(Vec::len),
        Some(1),
        "{after}"
    );
    // Denied is final: it cannot be approved after, and its plan is gone with its identity.
    let late = decide(&gateway, &dpo, "approvePrivacyRequest", &id, None).await?;
    assert_eq!(code(&late), "CONFLICT", "{late}");
    let plan = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { erasurePlan { blocked } } }",
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        at(&plan, &["data", "privacyRequest", "erasurePlan"]),
        &Json::Null,
        "{plan}"
    );
    // A second erasure of the same person may be submitted (the denied one is not open).
    let second = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "after-denial" }),
    )
    .await?;
    assert_ne!(second["id"], json!(id));
    Ok(())
}

#[tokio::test]
async fn manual_tasks_hold_the_erasure_until_the_archivist_records_them_and_the_receipt_shows_who_did_what()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let copy = configured(false, true)?;
    let gateway = gateway(&world, &copy).await?;
    let person = everywhere(&world).clone();

    // Reads find nothing in the archive; `connectors` shows it as manual.
    let connectors = gateway.graphql("{ connectors { name kind } }", json!({})).await?;
    assert!(
        at(&connectors, &["data", "connectors"])
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "paper_archive" && c["kind"] == "manual"),
        "{connectors}"
    );

    let request = submit(
        &gateway,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "with-archive" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let waiting = waiting_on_people(&gateway, &id).await?;
    assert_eq!(waiting["status"], "WAITING", "{waiting}");
    let manual: Vec<&Json> = waiting["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["connector"] == "paper_archive")
        .collect();
    assert_eq!(manual.len(), 2, "{waiting}");
    assert!(manual.iter().all(|t| t["status"] == "MANUAL"), "{waiting}");
    assert!(
        waiting["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["connector"] == "accounts")
            .all(|t| t["status"] == "DONE"),
        "the other stores are done meanwhile: {waiting}"
    );

    // The archivist sees its tasks with whom to search for; another role is refused.
    let archivist = gateway.key("archivist").await?;
    let listed = manual_tasks(&gateway, &archivist, "(status: OPEN)").await?;
    let tasks = at(&listed, &["data", "manualTasks", "tasks"]).clone();
    assert_eq!(tasks.as_array().map(Vec::len), Some(2), "{listed}");
    let email = format!("email: {}", person.email.trim().to_lowercase());
    for task in tasks.as_array().into_iter().flatten() {
        assert_eq!(task["requestId"], json!(id));
        assert_eq!(task["role"], "archivist");
        assert_eq!(task["action"], "DELETE");
        assert!(task["instructions"].as_str().is_some_and(|i| !i.is_empty()));
        assert!(
            task["identities"]
                .as_array()
                .is_some_and(|i| i.contains(&json!(email))),
            "{task}"
        );
        assert_eq!(task["overdue"], false);
    }
    let read = gateway
        .graphql(
            "{ auditEvents(first: 10, action: \"manual_tasks.read\") { events { action } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        at(&read, &["data", "auditEvents", "events"])
            .as_array()
            .map(Vec::len),
        Some(1),
        "showing whom to search for is audited: {read}"
    );
    let analyst = gateway.key("analyst").await?;
    let theirs = gateway
        .graphql_as(
            &analyst,
            "analytics",
            "{ manualTasks { tasks { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        at(&theirs, &["data", "manualTasks", "tasks"]),
        &json!([]),
        "{theirs}"
    );
    let other_role = gateway
        .graphql_as(
            &analyst,
            "analytics",
            "{ manualTasks(role: \"archivist\") { tasks { id } } }",
            json!({}),
        )
        .await?;
    assert_eq!(code(&other_role), "NOT_ASSIGNED", "{other_role}");
    let contracts = tasks
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["entity"] == "contracts")
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let letters = tasks
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["entity"] == "letters")
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let stolen = gateway
        .graphql_as(
            &analyst,
            "analytics",
            "mutation($id: ID!) { completeManualTask(id: $id, outcome: DONE) { id } }",
            json!({ "id": contracts }),
        )
        .await?;
    assert_eq!(code(&stolen), "NOT_ASSIGNED", "{stolen}");
    let no_note = gateway
        .graphql_as(
            &archivist,
            "essential",
            "mutation($id: ID!) { completeManualTask(id: $id, outcome: FAILED) { id } }",
            json!({ "id": contracts }),
        )
        .await?;
    assert_eq!(code(&no_note), "INVALID_INPUT", "{no_note}");

    let done = complete(&gateway, &archivist, &contracts, "DONE", "folder shredded").await?;
    assert_eq!(done["data"]["completeManualTask"]["status"], "DONE", "{done}");
    assert!(
        done["data"]["completeManualTask"]["completedBy"].is_string(),
        "{done}"
    );
    let twice = complete(&gateway, &archivist, &contracts, "DONE", "again").await?;
    assert_eq!(code(&twice), "CONFLICT", "{twice}");
    let still = wait_for(&gateway, &id, &["WAITING", "COMPLETED", "FAILED"]).await?;
    assert_eq!(still["status"], "WAITING", "one task is still open: {still}");
    let not_found = complete(
        &gateway,
        &archivist,
        &letters,
        "NOT_FOUND",
        "no letters from them",
    )
    .await?;
    assert_eq!(
        not_found["data"]["completeManualTask"]["status"], "NOT_FOUND",
        "{not_found}"
    );

    let completed = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    let entries = completed["receipt"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let outcome = |entity: &str| {
        entries
            .iter()
            .find(|e| e["connector"] == "paper_archive" && e["entity"] == entity)
            .map(|e| e["manual"].clone())
            .unwrap_or(Json::Null)
    };
    assert_eq!(outcome("contracts")["outcome"], "DONE", "{entries:?}");
    assert_eq!(outcome("contracts")["note"], "folder shredded");
    assert!(outcome("contracts")["completedBy"].is_string());
    assert_eq!(outcome("letters")["outcome"], "NOT_FOUND");
    assert_eq!(completed["receipt"]["verification"]["manualTasks"], 2);
    assert!(
        entries
            .iter()
            .filter(|e| e["connector"] == "paper_archive")
            .all(|e| e["verified"].is_null()),
        "a store that cannot be read is never reported verified: {entries:?}"
    );
    let audit = gateway
        .graphql(
            "{ auditEvents(first: 10, action: \"manual_task.completed\") { events { action } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        at(&audit, &["data", "auditEvents", "events"])
            .as_array()
            .map(Vec::len),
        Some(2),
        "{audit}"
    );
    let finished = manual_tasks(&gateway, &archivist, "(status: OPEN)").await?;
    assert_eq!(
        at(&finished, &["data", "manualTasks", "tasks"]),
        &json!([]),
        "{finished}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_manual_task_fails_the_request_and_a_retry_opens_it_again() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(24).await?;
    let copy = configured(false, true)?;
    let gateway = gateway(&world, &copy).await?;
    let person = everywhere(&world).clone();
    let request = submit(
        &gateway,
        "exportSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "export-archive" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    waiting_on_people(&gateway, &id).await?;
    let archivist = gateway.key("archivist").await?;
    let listed = manual_tasks(&gateway, &archivist, "(status: OPEN)").await?;
    let ids: Vec<String> = at(&listed, &["data", "manualTasks", "tasks"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            assert_eq!(t["action"], "EXPORT", "{t}");
            t["id"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    complete(&gateway, &archivist, &ids[0], "FAILED", "the cabinet key is lost").await?;
    complete(&gateway, &archivist, &ids[1], "DONE", "scanned").await?;
    let failed = wait_for(&gateway, &id, &["FAILED", "COMPLETED"]).await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("the cabinet key is lost")),
        "{failed}"
    );
    let retried = gateway
        .graphql(
            "mutation($id: ID!) { retryPrivacyRequest(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await?;
    assert!(retried.get("errors").is_none(), "{retried}");
    waiting_on_people(&gateway, &id).await?;
    let reopened = manual_tasks(&gateway, &archivist, "(status: OPEN)").await?;
    let open = at(&reopened, &["data", "manualTasks", "tasks"]).clone();
    assert_eq!(
        open.as_array().map(Vec::len),
        Some(1),
        "only the failed one opens again: {reopened}"
    );
    assert_eq!(open[0]["id"], json!(ids[0]));
    complete(&gateway, &archivist, &ids[0], "DONE", "found the key; scanned").await?;
    let completed = wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    assert!(completed["download"]["url"].is_string(), "{completed}");
    Ok(())
}

#[tokio::test]
async fn a_gateway_restarted_while_a_request_waits_keeps_its_approval_and_manual_tasks() -> anyhow::Result<()>
{
    let world = ReferenceWorld::create(24).await?;
    let copy = configured(true, true)?;
    let state = tempfile::tempdir()?;
    let start = || async {
        let mut config = Config::load(&copy.gateway_toml())?;
        config.auth.state_url = format!("sqlite://{}", state.path().join("state.db").display());
        TestGateway::start_on_state(config, world.env(), Vec::new(), tempfile::tempdir()?).await
    };
    let person = everywhere(&world).clone();
    let first = start().await?;
    let request = submit(
        &first,
        "eraseSubject",
        json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "restart" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    drop(first);

    // Restarted while awaiting approval: still awaiting; approved, it waits on the archive.
    let second = start().await?;
    let shown = wait_for(&second, &id, &["AWAITING_APPROVAL"]).await?;
    assert_eq!(shown["status"], "AWAITING_APPROVAL");
    let dpo = second.key("dpo").await?;
    let approved = decide(&second, &dpo, "approvePrivacyRequest", &id, None).await?;
    assert!(approved.get("errors").is_none(), "{approved}");
    waiting_on_people(&second, &id).await?;
    drop(second);

    // Restarted while waiting on people: the tasks are still open and the request waits.
    let third = start().await?;
    let archivist = third.key("archivist").await?;
    let listed = manual_tasks(&third, &archivist, "(status: OPEN)").await?;
    let ids: Vec<String> = at(&listed, &["data", "manualTasks", "tasks"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let waiting = wait_for(&third, &id, &["WAITING"]).await?;
    assert_eq!(waiting["status"], "WAITING");
    for task in &ids {
        complete(&third, &archivist, task, "DONE", "shredded").await?;
    }
    let completed = wait_for(&third, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    Ok(())
}

#[tokio::test]
async fn a_manual_system_assigned_to_an_undeclared_role_stops_the_start() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let copy = configured(false, true)?;
    copy.edit(
        "connectors/paper_archive.toml",
        "role = \"archivist\"",
        "role = \"archivists\"",
    )?;
    let refused = match gateway(&world, &copy).await {
        Ok(_) => String::new(),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        refused.contains("`paper_archive` assigns its manual tasks to role `archivists`"),
        "{refused}"
    );
    Ok(())
}
