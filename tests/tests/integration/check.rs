//! `subject-gateway check`: declarations verified against the live stores.

use subject_gateway::check::check_all;
use subject_gateway_tests::{ReferenceWorld, config_dir};

#[tokio::test]
async fn check_passes_on_the_reference_world_and_names_what_is_missing() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    let service = config.build_service(world.env(), Vec::new()).await?;

    let report = check_all(&service).await;
    assert!(report.ok(), "{}", report.table());
    assert_eq!(report.rows.len(), 12);
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
        ["table `sessions` has no column `user_agent`"],
        "{table}"
    );
    assert_eq!(
        row("preferences").details,
        ["column `newsletter` is text but is declared type = \"bool\""],
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
