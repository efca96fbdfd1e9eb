//! `subject-gateway demo`: the README's "run it" path, on SQLite with nothing installed.

use subject_gateway_demo::demo;
use subject_gateway_tests::{FULL_SELECTION, TestGateway, config_dir};

use crate::{at, len, subject_ok};

#[tokio::test]
async fn the_demo_world_serves_every_kind_of_person() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let world = demo::prepare(dir.path(), 120).await?;
    assert_eq!(world.people.len(), 120);
    let mut config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    demo::stand_in_for_mongodb(&config.path, &config.kinds, &mut config.connectors)?;
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

#[test]
fn the_declarations_built_into_the_binary_are_the_reference_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gateway_toml = demo::embedded_config(dir.path())?;
    let mut config = subject_gateway::config::Config::load(&gateway_toml)?;
    demo::stand_in_for_mongodb(&config.path, &config.kinds, &mut config.connectors)?;
    // Every reference file is built in, unchanged: a new connector file must be added there too.
    let written = gateway_toml.parent().expect("a config directory");
    let mut files = vec!["gateway.toml".to_owned(), "demo/uploads.toml".to_owned()];
    for entry in std::fs::read_dir(config_dir().join("connectors"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        files.push(format!("connectors/{name}"));
    }
    for file in files {
        let reference = std::fs::read_to_string(config_dir().join(&file))?;
        let built_in = std::fs::read_to_string(written.join(&file))
            .map_err(|e| anyhow::anyhow!("{file} is not built into the binary: {e}"))?;
        assert_eq!(reference, built_in, "{file}");
    }
    Ok(())
}

#[tokio::test]
async fn the_demo_webhook_receiver_prints_each_verified_event_of_an_erasure() -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};
    use subject_gateway_demo::receiver;

    let dir = tempfile::tempdir()?;
    let world = demo::prepare(dir.path(), 12).await?;
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = printed.clone();
    let running = receiver::start(Arc::new(move |line| {
        if let Ok(mut lines) = lines.lock() {
            lines.push(line);
        }
    }))
    .await?;
    let mut config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    demo::stand_in_for_mongodb(&config.path, &config.kinds, &mut config.connectors)?;
    config
        .webhooks
        .endpoints
        .push(subject_gateway::webhooks::config::EndpointConfig {
            name: receiver::ENDPOINT_NAME.into(),
            url: running.url.parse()?,
            secret_env: receiver::SECRET_ENV.into(),
            events: None,
            all_requests: true,
            timeout: std::time::Duration::from_secs(5),
        });
    config.webhooks.delivery.poll_interval_ms = 50;
    let world_env = world.env();
    let secret = running.secret.clone();
    let env = move |name: &str| {
        (name == receiver::SECRET_ENV)
            .then(|| secret.clone())
            .or_else(|| world_env(name))
    };
    let gateway = TestGateway::start_with(config, env, Vec::new()).await?;
    let person = world.people[1].clone();
    let request = crate::requests::submit(
        &gateway,
        "eraseSubject",
        serde_json::json!({ "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "demo-webhook" }),
    )
    .await?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let done = crate::requests::wait_for(&gateway, &id, &["COMPLETED", "FAILED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let expected = format!("privacy_request.completed request {id} status COMPLETED");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let lines = printed.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.iter().any(|l| l.contains(&expected)) {
            assert!(
                lines
                    .iter()
                    .all(|l| l.starts_with("webhook received (signature verified): ")),
                "{lines:?}"
            );
            assert!(
                !lines.iter().any(|l| l.contains(&person.email)),
                "no identity value printed"
            );
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no completed event printed: {lines:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}
