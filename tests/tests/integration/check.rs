//! `subject-gateway check`: declarations verified against the live stores.

use subject_gateway::check::{CheckReport, CheckRow, check_all};
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway, config_dir};

#[tokio::test]
async fn check_passes_on_the_reference_world_and_names_what_is_missing() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    let service = config.build_service(world.env(), Vec::new()).await?;

    let report = check_all(&service).await;
    assert!(report.ok(), "{}", report.table());
    assert_eq!(
        report.rows.len(),
        13,
        "an entity per row, and the uploads storage"
    );
    // Every lookup of the reference world is served by an index.
    assert!(
        report.rows.iter().all(|r| r.details.is_empty()),
        "{}",
        report.table()
    );

    // The plan is the one the declarations describe.
    let plan = service.executor.plan().describe(service.executor.registry());
    assert!(
        plan.contains(
            "from email:\n  stage 1: accounts.users, analytics.profiles, billing.customers, helpdesk.users\n  \
             stage 2: accounts.users, accounts.sessions, accounts.preferences, analytics.events, \
             billing.customers, billing.invoices, billing.payment_methods, helpdesk.tickets, uploads.images\n  \
             stage 3: helpdesk.comments\n"
        ),
        "{plan}"
    );

    // Break the stores: a dropped column and a changed type in PostgreSQL, a dropped table and index in MariaDB.
    let accounts = world.accounts.pool().await?;
    sqlx::query("ALTER TABLE sessions DROP COLUMN user_agent")
        .execute(&accounts)
        .await?;
    sqlx::query("ALTER TABLE preferences ALTER COLUMN newsletter TYPE TEXT")
        .execute(&accounts)
        .await?;
    let billing = world.billing.pool().await?;
    sqlx::query("DROP TABLE payment_methods")
        .execute(&billing)
        .await?;
    sqlx::query("ALTER TABLE invoices DROP FOREIGN KEY invoices_ibfk_1")
        .execute(&billing)
        .await?;
    sqlx::query("DROP INDEX invoices_customer_id ON invoices")
        .execute(&billing)
        .await?;

    let report = check_all(&service).await;
    assert!(!report.ok());
    let table = report.table();
    let row = |entity: &str| {
        report
            .rows
            .iter()
            .find(|r| r.entity == entity)
            .expect("a row per entity")
    };
    assert!(!row("sessions").ok);
    assert_eq!(
        row("sessions").details,
        ["table `sessions` has no column `user_agent` (at accounts.toml:52:1)"],
        "{table}"
    );
    assert_eq!(
        row("preferences").details,
        ["column `newsletter` is text but is declared type = \"bool\" (at accounts.toml:67:1)"],
        "{table}"
    );
    assert!(!row("payment_methods").ok);
    assert_eq!(
        row("payment_methods").details,
        ["table `payment_methods` does not exist"]
    );
    assert!(row("invoices").ok, "a missing index is a warning: {table}");
    assert!(
        row("invoices").details[0].contains("no index starts with customer_id"),
        "{table}"
    );
    assert!(table.contains("FAIL"));
    Ok(())
}

/// The details of the row for `connector`/`entity`, with the row's status and location.
fn row<'a>(report: &'a CheckReport, connector: &str, entity: &str) -> &'a CheckRow {
    report
        .rows
        .iter()
        .find(|r| r.connector == connector && r.entity == entity)
        .unwrap_or_else(|| panic!("no row for {connector}.{entity}:\n{}", report.table()))
}

fn mentions(row: &CheckRow, text: &str) -> bool {
    row.details.iter().any(|d| d.contains(text))
}

/// The reference world's environment, with some variables replaced.
fn env_with(
    world: &ReferenceWorld,
    overrides: &[(&'static str, String)],
) -> impl Fn(&str) -> Option<String> + use<> {
    let base = world.env();
    let overrides: Vec<(&'static str, String)> = overrides.to_vec();
    move |name: &str| {
        overrides
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| base(name))
    }
}

/// The reference world's service, with some variables of its environment replaced.
async fn service_with(
    world: &ReferenceWorld,
    config: &std::path::Path,
    overrides: &[(&'static str, String)],
) -> anyhow::Result<subject_schema::SubjectService> {
    let config = subject_gateway::config::Config::load(config)?;
    Ok(config
        .build_service(env_with(world, overrides), Vec::new())
        .await?)
}

#[tokio::test]
async fn a_not_null_column_masked_to_null_blocks_check_the_plan_and_the_erasure() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(12).await?;
    let billing = world.billing.pool().await?;
    sqlx::query("UPDATE customers SET company = 'n/a' WHERE company IS NULL")
        .execute(&billing)
        .await?;
    sqlx::query("ALTER TABLE customers MODIFY company VARCHAR(255) NOT NULL")
        .execute(&billing)
        .await?;

    let service = service_with(&world, &config_dir().join("gateway.toml"), &[]).await?;
    let report = check_all(&service).await;
    let customers = row(&report, "billing", "customers");
    assert!(!customers.ok, "{}", report.table());
    assert!(
        mentions(
            customers,
            "column `company` is NOT NULL but its field declares erasure = \"null\""
        ),
        "{}",
        report.table()
    );
    assert!(
        customers.location.contains("billing.toml:14:"),
        "{}",
        customers.location
    );
    // The finding names the line of the field it is about.
    assert!(
        customers
            .details
            .iter()
            .any(|d| d.starts_with("column `company`") && d.ends_with("(at billing.toml:41:1)")),
        "{}",
        report.table()
    );

    // The plan shows the entity blocked, with the reason; the erasure refuses before acting.
    let gateway = world.gateway().await?;
    let person = world.payer(1).clone();
    let plan = gateway
        .graphql(
            "query($identity: IdentityInput!) { erasurePlan(identity: $identity) { blocked entries { connector entity blockedBy } } }",
            serde_json::json!({ "identity": { "kind": "EMAIL", "value": person.email } }),
        )
        .await?;
    assert!(plan.get("errors").is_none(), "{}", plan["errors"]);
    let plan = &plan["data"]["erasurePlan"];
    assert_eq!(plan["blocked"], true, "{plan}");
    let entries = plan["entries"].as_array().cloned().unwrap_or_default();
    let customers = entries
        .iter()
        .find(|e| e["connector"] == "billing" && e["entity"] == "customers")
        .expect("the payer has a customer record");
    assert!(
        customers["blockedBy"]
            .as_str()
            .is_some_and(|b| b.contains("column `company` is NOT NULL")),
        "{plan}"
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["entity"] != "customers")
            .all(|e| e["blockedBy"].is_null()),
        "{plan}"
    );

    let accounts_before = world
        .accounts
        .fingerprint(&["users", "sessions", "preferences"])
        .await?;
    let billing_before = world
        .billing
        .fingerprint(&["customers", "invoices", "payment_methods"])
        .await?;
    let request = crate::requests::submit(
        &gateway,
        "eraseSubject",
        serde_json::json!({
            "identity": { "kind": "EMAIL", "value": person.email },
            "reason": "check test",
            "idempotencyKey": "not-null-1"
        }),
    )
    .await?;
    let done = crate::requests::wait_for(
        &gateway,
        request["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(done["status"], "FAILED", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("ERASURE_BLOCKED: nothing was changed"),
        "{error}"
    );
    assert!(
        error.contains("billing.customers: column `company` is NOT NULL"),
        "{error}"
    );
    assert_eq!(
        done["tasks"],
        serde_json::json!([]),
        "no task was planned: {done}"
    );
    assert_eq!(
        world
            .accounts
            .fingerprint(&["users", "sessions", "preferences"])
            .await?,
        accounts_before
    );
    assert_eq!(
        world
            .billing
            .fingerprint(&["customers", "invoices", "payment_methods"])
            .await?,
        billing_before
    );
    Ok(())
}

#[tokio::test]
async fn keys_and_foreign_keys_are_proven_on_the_live_store() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let accounts = world.accounts.pool().await?;
    // A primary key the store no longer keeps unique; a table nobody declared that cascades
    // from users.
    sqlx::query("ALTER TABLE sessions DROP CONSTRAINT sessions_pkey")
        .execute(&accounts)
        .await?;
    sqlx::query(
        "CREATE TABLE login_notes (id BIGINT PRIMARY KEY, user_id BIGINT REFERENCES users (id) ON DELETE CASCADE)",
    )
    .execute(&accounts)
    .await?;
    // A lookup declared exact on a column only indexed lower-cased.
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/accounts.toml",
        "{ kind = \"email\", field = \"email\", compare = \"lowercase\" },",
        "{ kind = \"email\", field = \"email\" },",
    )?;

    // Sessions kept (masked) on erasure: their foreign key onto users blocks deleting users.
    config.edit(
        "connectors/accounts.toml",
        "[entities.sessions.fields]",
        "[entities.sessions.erasure]\naction = \"mask\"\n\n[entities.sessions.fields]",
    )?;
    config.edit(
        "connectors/accounts.toml",
        "ip_address = { type = \"string\", category = \"user.device.ip_address\" }",
        "ip_address = { type = \"string\", category = \"user.device.ip_address\", erasure = \"redact\" }",
    )?;
    // Preferences declared to go with users, which no foreign key makes happen.
    config.edit(
        "connectors/accounts.toml",
        "[entities.preferences.fields]",
        "[entities.preferences.erasure]\naction = \"cascade\"\nwith = \"users\"\n\n[entities.preferences.fields]",
    )?;
    // MariaDB: a lowercase lookup on a case-sensitive collation; an undeclared table whose
    // foreign key blocks deleting payment methods.
    let billing = world.billing.pool().await?;
    sqlx::query("ALTER TABLE customers MODIFY email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL")
        .execute(&billing)
        .await?;
    // Invoices keep a billing name too short for its pseudonym.
    sqlx::query("UPDATE invoices SET billing_name = LEFT(billing_name, 8)")
        .execute(&billing)
        .await?;
    sqlx::query("ALTER TABLE invoices MODIFY billing_name VARCHAR(8)")
        .execute(&billing)
        .await?;
    sqlx::query(
        "CREATE TABLE card_events (id INT PRIMARY KEY, payment_method_id VARCHAR(64), \
         CONSTRAINT card_events_pm FOREIGN KEY (payment_method_id) REFERENCES payment_methods (id))",
    )
    .execute(&billing)
    .await?;

    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    let table = report.table();
    let sessions = row(&report, "accounts", "sessions");
    assert!(!sessions.ok, "{table}");
    assert_eq!(
        sessions.details,
        [
            "primary_key `id` is not unique on the store (no primary key or unique index over exactly `id`): \
             erasure acts by the primary key and could reach other people's rows (at accounts.toml:52:1)"
        ],
        "{table}"
    );
    assert!(sessions.location.contains("accounts.toml:42:"), "{table}");
    let users = row(&report, "accounts", "users");
    assert!(!users.ok, "{table}");
    assert!(
        mentions(
            users,
            "deleting `users` records is blocked by foreign key `sessions_user_id_fkey` from `sessions`, \
             whose records erasure keeps (mask): the delete would fail after other entities were erased"
        ),
        "{table}"
    );
    assert!(
        mentions(
            users,
            "`preferences` is declared removed with `users` (action = \"cascade\") but no foreign key from \
             `preferences` onto `users` deletes on cascade: its records would stay"
        ),
        "{table}"
    );
    let customers = row(&report, "billing", "customers");
    assert!(customers.ok, "warnings only: {table}");
    assert!(
        mentions(
            customers,
            "warning: column `email` has the case-sensitive collation utf8mb4_bin: compare = \"lowercase\""
        ),
        "{table}"
    );
    let invoices = row(&report, "billing", "invoices");
    assert!(!invoices.ok, "{table}");
    assert!(
        mentions(
            invoices,
            "column `billing_name` holds at most 8 characters but erasure = \"pseudonymize\" writes 37: \
             the store would refuse the erasure"
        ),
        "{table}"
    );
    let payment_methods = row(&report, "billing", "payment_methods");
    assert!(payment_methods.ok, "warnings only: {table}");
    assert_eq!(
        payment_methods.details,
        [
            "warning: table `card_events` (not declared) references `payment_methods` by foreign key `card_events_pm`: \
          deleting a person's records fails while that table holds rows pointing at them"
        ],
        "{table}"
    );
    assert!(
        mentions(
            users,
            "warning: deleting `users` records cascades (foreign key `login_notes_user_id_fkey` ON DELETE CASCADE) \
             to table `login_notes`, which is not declared"
        ),
        "{table}"
    );
    assert!(
        mentions(
            users,
            "warning: no index starts with email: lookups by it scan the whole table (an index on lower(email) \
             exists: compare = \"lowercase\" in the lookup would use it)"
        ),
        "{table}"
    );
    assert!(table.contains("accounts.toml:14:"), "{table}");
    Ok(())
}

#[tokio::test]
async fn mongo_lookups_stored_as_another_type_are_refused_and_missing_paths_warned() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/uploads.toml",
        "owner_id = { type = \"bigint\", category = \"user.unique_id\", path = \"owner.id\" }",
        "owner_id = { type = \"string\", category = \"user.unique_id\", path = \"owner.id\" }\n\
         licence = { type = \"string\", category = \"system.operations\", path = \"exif.licence\" }",
    )?;
    config.edit(
        "connectors/uploads.toml",
        "visibility = { type = \"string\"",
        "visibility = { type = \"bool\"",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    let table = report.table();
    let images = row(&report, "uploads", "images");
    assert!(!images.ok, "{table}");
    assert!(
        images.details.iter().any(|d| d
            .starts_with("lookup field `owner_id` (path `owner.id`) is declared type = \"string\" but")
            && d.contains("sampled documents store it as long")
            && d.contains("would never find (nor erase) them")),
        "{table}"
    );
    assert!(
        mentions(
            images,
            "warning: path `exif.licence` (field `licence`) occurs in none of the"
        ),
        "{table}"
    );
    assert!(images.location.contains("uploads.toml:21:"), "{table}");
    assert!(
        images.details.iter().any(|d| d
            .starts_with("field `visibility` (path `visibility`) is declared type = \"bool\" but")
            && d.contains(
                "sampled documents store string, which cannot be read as that: reading a person's documents would fail"
            )),
        "{table}"
    );
    assert!(
        images
            .details
            .iter()
            .any(|d| d.starts_with("lookup field `owner_id`") && d.ends_with("(at uploads.toml:31:1)")),
        "{table}"
    );
    assert!(
        images
            .details
            .iter()
            .any(|d| d.starts_with("warning: path `exif.licence`") && d.ends_with("(at uploads.toml:32:1)")),
        "{table}"
    );

    // No erasure can be trusted while those documents cannot be found: the plan says so, even
    // for a person found nowhere there, and the erasure refuses before changing anything.
    let gateway = TestGateway::start(&config.gateway_toml(), world.env(), Vec::new()).await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.uploads.is_empty())
        .expect("someone uploaded")
        .clone();
    let plan = gateway
        .graphql(
            "query($identity: IdentityInput!) { erasurePlan(identity: $identity) { blocked entries { connector entity records blockedBy } } }",
            serde_json::json!({ "identity": { "kind": "EMAIL", "value": person.email } }),
        )
        .await?;
    assert!(plan.get("errors").is_none(), "{}", plan["errors"]);
    let plan = &plan["data"]["erasurePlan"];
    assert_eq!(plan["blocked"], true, "{plan}");
    let images = plan["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["connector"] == "uploads" && e["entity"] == "images")
        .cloned()
        .unwrap_or_default();
    assert_eq!(images["records"], 0, "{plan}");
    assert!(
        images["blockedBy"].as_str().is_some_and(
            |b| b.starts_with("lookup field `owner_id` (path `owner.id`) is declared type = \"string\"")
        ),
        "{plan}"
    );
    let before = world
        .accounts
        .fingerprint(&["users", "sessions", "preferences"])
        .await?;
    let request = crate::requests::submit(
        &gateway,
        "eraseSubject",
        serde_json::json!({
            "identity": { "kind": "EMAIL", "value": person.email },
            "reason": "check test",
            "idempotencyKey": "unfindable-1"
        }),
    )
    .await?;
    let done = crate::requests::wait_for(
        &gateway,
        request["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(
        done["error"].as_str().is_some_and(|e| e
            .starts_with("ERASURE_BLOCKED: nothing was changed: uploads.images: lookup field `owner_id`")),
        "{done}"
    );
    assert_eq!(
        world
            .accounts
            .fingerprint(&["users", "sessions", "preferences"])
            .await?,
        before
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_storage_directory_and_refused_credentials_fail_check() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let missing = world.files.path().join("not-there");
    let service = service_with(
        &world,
        &config_dir().join("gateway.toml"),
        &[
            ("UPLOADS_STORAGE_URL", format!("file://{}", missing.display())),
            ("HELPDESK_TOKEN", "not-the-token".to_owned()),
            ("ANALYTICS_SECRET", "not-the-secret".to_owned()),
        ],
    )
    .await?;
    let report = check_all(&service).await;
    let table = report.table();
    assert!(!report.ok());
    let storage = row(&report, "uploads", "[storage]");
    assert!(!storage.ok, "{table}");
    assert_eq!(
        storage.details,
        [format!(
            "storage directory `{}` does not exist: the records' files could never be found nor deleted",
            missing.display()
        )],
        "{table}"
    );
    assert!(storage.location.contains("uploads.toml:19:"), "{table}");
    assert!(!missing.exists(), "check creates nothing");
    for (connector, file) in [("helpdesk", "helpdesk.toml"), ("analytics", "analytics.toml")] {
        let refused = row(&report, connector, "*");
        assert!(!refused.ok, "{table}");
        assert!(
            refused.details[0].starts_with(&format!(
                "credentials refused: `{connector}` answered 401/403 to the lookup of"
            )),
            "{table}"
        );
        assert!(refused.location.contains(file), "{table}");
    }
    // An erasure that would delete files there refuses to start.
    let storage_url = [("UPLOADS_STORAGE_URL", format!("file://{}", missing.display()))];
    let gateway = TestGateway::start(
        &config_dir().join("gateway.toml"),
        env_with(&world, &storage_url),
        Vec::new(),
    )
    .await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.uploads.is_empty())
        .expect("someone uploaded")
        .clone();
    let request = crate::requests::submit(
        &gateway,
        "eraseSubject",
        serde_json::json!({
            "identity": { "kind": "EMAIL", "value": person.email },
            "reason": "check test",
            "idempotencyKey": "no-storage-1"
        }),
    )
    .await?;
    let done = crate::requests::wait_for(
        &gateway,
        request["id"].as_str().unwrap_or_default(),
        &["COMPLETED", "FAILED"],
    )
    .await?;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(
        done["error"],
        format!(
            "ERASURE_BLOCKED: nothing was changed: uploads.images: its files cannot be deleted: storage directory `{}` \
             does not exist: the records' files could never be found nor deleted; fix the declaration or the store and submit again",
            missing.display()
        ),
        "{done}"
    );
    assert!(!missing.exists(), "the erasure creates nothing");

    // The right credentials pass, and the storage directory is writable.
    let service = service_with(&world, &config_dir().join("gateway.toml"), &[]).await?;
    let report = check_all(&service).await;
    assert!(report.ok(), "{}", report.table());
    assert!(row(&report, "uploads", "[storage]").ok);
    Ok(())
}

#[tokio::test]
async fn a_declared_health_request_proves_the_credentials() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        "max_retries = 8\n",
        "max_retries = 8\nhealth = { path = \"/api/v2/users/search?query=email:nobody@example.invalid\" }\n",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    assert!(report.ok(), "{}", report.table());

    let service = service_with(
        &world,
        &config.gateway_toml(),
        &[("HELPDESK_TOKEN", "not-the-token".to_owned())],
    )
    .await?;
    let report = check_all(&service).await;
    assert_eq!(
        row(&report, "helpdesk", "*").details,
        [
            "credentials refused: `helpdesk` answered 401/403 to the declared health request \
          (GET /api/v2/users/search?query=email:nobody@example.invalid); check its auth settings"
        ],
        "{}",
        report.table()
    );

    // A health path the API does not have is no proof.
    config.edit(
        "connectors/helpdesk.toml",
        "/api/v2/users/search?query=email:nobody@example.invalid",
        "/api/v2/health",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    assert_eq!(
        row(&report, "helpdesk", "*").details,
        ["`helpdesk` answered 404/410 to the declared health request (GET /api/v2/health): check its path"],
        "{}",
        report.table()
    );
    Ok(())
}

#[tokio::test]
async fn a_hanging_api_is_reported_within_the_bound() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        "timeout_ms = 10000",
        "timeout_ms = 1000",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    world
        .helpdesk
        .state
        .hang
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let report = check_all(&service).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let helpdesk = row(&report, "helpdesk", "*");
    assert!(!helpdesk.ok, "{}", report.table());
    assert!(
        helpdesk.details[0].starts_with("`helpdesk` did not answer the lookup of `users`")
            && helpdesk.details[0].ends_with("within 1s"),
        "{}",
        report.table()
    );
    // The other connectors were checked all the same.
    assert!(row(&report, "accounts", "users").ok, "{}", report.table());
    Ok(())
}

#[tokio::test]
async fn check_passes_on_the_reference_world_in_other_dialects() -> anyhow::Result<()> {
    use subject_connectors::declaration::SqlDialect;
    for (accounts, billing) in [
        (SqlDialect::MySql, SqlDialect::Postgres),
        (SqlDialect::Sqlite, SqlDialect::Sqlite),
    ] {
        let world = ReferenceWorld::create_on(3, accounts, billing).await?;
        let service = service_with(&world, &config_dir().join("gateway.toml"), &[]).await?;
        let report = check_all(&service).await;
        assert!(report.ok(), "{accounts:?}/{billing:?}:\n{}", report.table());
        // Primary keys proven, no NOT NULL masked to null, no foreign key in the way.
        assert!(
            report
                .rows
                .iter()
                .flat_map(|r| &r.details)
                .all(|d| d.starts_with("warning: no index starts with")),
            "{accounts:?}/{billing:?}:\n{}",
            report.table()
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_s3_bucket_is_listed_and_written_by_check() -> anyhow::Result<()> {
    let endpoint = std::env::var("TEST_S3_ENDPOINT").map_err(|_| {
        anyhow::anyhow!(
            "TEST_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts moto"
        )
    })?;
    let world = ReferenceWorld::create(3).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/uploads.toml",
        "url = \"${UPLOADS_STORAGE_URL}\"",
        "url = \"${UPLOADS_STORAGE_URL}\"\nendpoint = \"${UPLOADS_S3_ENDPOINT}\"\naccess_key_id = \"${UPLOADS_S3_KEY}\"\nsecret_access_key = \"${UPLOADS_S3_SECRET}\"\nallow_http = true",
    )?;
    let bucket = format!("sg-test-{}", uuid::Uuid::new_v4().simple());
    let settings = |bucket: &str| {
        [
            ("UPLOADS_STORAGE_URL", format!("s3://{bucket}/uploads")),
            ("UPLOADS_S3_ENDPOINT", endpoint.clone()),
            ("UPLOADS_S3_KEY", "testing".to_owned()),
            ("UPLOADS_S3_SECRET", "testing".to_owned()),
        ]
    };

    // The bucket does not exist yet.
    let service = service_with(&world, &config.gateway_toml(), &settings(&bucket)).await?;
    let report = check_all(&service).await;
    let storage = row(&report, "uploads", "[storage]");
    assert!(!storage.ok, "{}", report.table());
    assert!(
        storage.details[0].starts_with("the s3 storage cannot be listed"),
        "{}",
        report.table()
    );

    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await?;
    anyhow::ensure!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );
    let service = service_with(&world, &config.gateway_toml(), &settings(&bucket)).await?;
    let report = check_all(&service).await;
    let storage = row(&report, "uploads", "[storage]");
    assert!(storage.ok, "{}", report.table());
    assert_eq!(storage.kind, "s3");
    // The write probe cleaned up after itself.
    let listing = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await?
        .text()
        .await?;
    assert!(!listing.contains("subject-gateway-check"), "{listing}");
    Ok(())
}

#[test]
fn health_requests_are_declared_for_http_connectors_only() -> anyhow::Result<()> {
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        "max_retries = 8\n",
        "max_retries = 8\nhealth = { path = \"api/v2/me\" }\n",
    )?;
    config.edit(
        "connectors/billing.toml",
        "max_connections = 8\n",
        "max_connections = 8\nhealth = { path = \"/ping\" }\n",
    )?;
    let error = match subject_gateway::config::Config::load(&config.gateway_toml()) {
        Ok(_) => anyhow::bail!("the declarations were accepted"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("helpdesk.toml:16:19: the health path starts with `/`"),
        "{error}"
    );
    assert!(
        error.contains("billing.toml:13:10: `health` is only for http connectors"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_records_path_the_probe_answer_lacks_is_warned() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/helpdesk.toml",
        "records = \"$.users\"",
        "records = \"$.user\"",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    let users = row(&report, "helpdesk", "users");
    assert!(users.ok, "a warning: {}", report.table());
    assert_eq!(
        users.details,
        [
            "warning: the answer to the lookup of `users` with a value that matches nobody (GET /api/v2/users/search) \
          has nothing at the records path `$.user`: if it is misspelt, every lookup reads as no records"
        ],
        "{}",
        report.table()
    );
    Ok(())
}

#[tokio::test]
async fn a_request_for_many_values_the_api_refuses_fails_check() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    // As declared, the reference world's request for many events passes.
    let service = service_with(&world, &config_dir().join("gateway.toml"), &[]).await?;
    let report = check_all(&service).await;
    assert!(row(&report, "analytics", "events").ok, "{}", report.table());

    // A misspelt parameter: the API refuses the call.
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/analytics.toml",
        "distinct_ids = \"{values:json}\"",
        "distinct_id = \"{values:json}\"",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    let events = row(&report, "analytics", "events");
    assert!(!events.ok, "{}", report.table());
    assert!(
        mentions(events, "the request for many values of `events`"),
        "{}",
        report.table()
    );
    assert!(mentions(events, "HTTP 400"), "{}", report.table());

    // A misspelt records path: a warning, as for the one-value request.
    let config = ConfigCopy::new()?;
    config.edit(
        "connectors/analytics.toml",
        "records = \"$.results.events\"",
        "records = \"$.result.events\"",
    )?;
    let service = service_with(&world, &config.gateway_toml(), &[]).await?;
    let report = check_all(&service).await;
    let events = row(&report, "analytics", "events");
    assert!(events.ok, "{}", report.table());
    assert!(
        mentions(events, "nothing at the records path `$.result.events`"),
        "{}",
        report.table()
    );
    Ok(())
}
