//! `subject-gateway demo`: the README's "run it" path, on SQLite with nothing installed.

use subject_gateway::demo;
use subject_gateway_tests::{FULL_SELECTION, TestGateway, config_dir};

use crate::{at, len, subject_ok};

#[tokio::test]
async fn the_demo_world_serves_every_kind_of_person() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let world = demo::prepare(dir.path(), 120).await?;
    assert_eq!(world.people.len(), 120);
    let mut config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    demo::stand_in_for_mongodb(&mut config)?;
    let gateway = TestGateway::start_with(config, world.env(), Vec::new()).await?;

    // The example the demo prints works as printed: an email in capitals.
    let examples = demo::examples(&world, "127.0.0.1:8080", "sgk_example_key");
    assert!(examples.contains("authorization: Bearer sgk_example_key"));
    assert!(examples.contains("http://127.0.0.1:8080/"));
    let payer = demo::showcase(&world).expect("the demo has people");
    assert!(examples.contains(&payer.email.to_uppercase()));
    let response = gateway
        .subject("EMAIL", &payer.email.to_uppercase(), FULL_SELECTION)
        .await?;
    let subject = subject_ok(&response);
    let kinds: Vec<&str> = subject["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert!(
        ["EMAIL", "USER_ID", "CUSTOMER_ID"]
            .iter()
            .all(|k| kinds.contains(k)),
        "{kinds:?}"
    );
    assert_eq!(at(subject, &["accounts", "users"])[0]["id"], payer.user_id);
    let customer = payer.customer.as_ref().expect("a payer");
    assert_eq!(
        len(at(subject, &["billing", "invoices"])),
        customer.invoices.len()
    );

    // Reloading the demo replaces the databases rather than adding to them.
    let again = demo::prepare(dir.path(), 10).await?;
    assert_eq!(again.people.len(), 10);
    Ok(())
}
