//! Telemetry carries no personal data: known emails, names, IPs and ids are seeded, queries,
//! hostile input and failures are run with every gateway log at `debug` in JSON and every span
//! exported (to an in-memory OpenTelemetry exporter), and no log line, exported span or metric
//! contains any of them.

use std::io::Write;
use std::sync::{Arc, Mutex};

use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld, TestGateway};

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_log_line_span_or_metric_holds_personal_data() -> anyhow::Result<()> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    let logs = Captured::default();
    let spans = opentelemetry_sdk::trace::InMemorySpanExporterBuilder::new().build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(subject_gateway::logging::filter("debug"))
        .with(tracing_subscriber::fmt::layer().json().with_writer(logs.clone()))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber)?;

    let world = ReferenceWorld::create(12).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| p.customer.is_some() && !p.sessions.is_empty() && p.user_id % 2 == 0 && p.user_id % 3 != 0)
        .expect("someone in every domain");

    // Reads, in every way a caller reaches data.
    for value in [person.email.clone(), person.email.to_uppercase()] {
        let response = gateway.subject("EMAIL", &value, FULL_SELECTION).await?;
        assert!(response.get("errors").is_none(), "{response}");
    }
    let ids: Vec<_> = world
        .people
        .iter()
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    gateway
        .graphql(
            &format!("query($ids: [IdentityInput!]!) {{ subjects(identities: $ids) {FULL_SELECTION} }}"),
            serde_json::json!({ "ids": ids }),
        )
        .await?;
    // Hostile and malformed input carrying the person's data.
    gateway
        .subject("EMAIL", &format!("{}' OR 1=1 --", person.email), FULL_SELECTION)
        .await?;
    gateway.subject("USER_ID", &person.email, FULL_SELECTION).await?;
    gateway
        .subject("CUSTOMER_ID", &person.full_name, FULL_SELECTION)
        .await?;
    // Failures: a store that is down, an API that refuses the credentials.
    let base = world.env();
    let env = move |name: &str| match name {
        "BILLING_DATABASE_URL" => Some("mysql://root@127.0.0.1:9/billing".to_owned()),
        "HELPDESK_TOKEN" => Some("wrong-token".to_owned()),
        other => base(other),
    };
    let failing = TestGateway::start(
        &subject_gateway_tests::config_dir().join("gateway.toml"),
        env,
        Vec::new(),
    )
    .await?;
    let response = failing.subject("EMAIL", &person.email, FULL_SELECTION).await?;
    assert!(response.get("errors").is_some(), "the failures did happen");

    assert_eq!(
        reqwest::get(gateway.url("/metrics")).await?.status(),
        401,
        "metrics need credentials"
    );
    let metrics = reqwest::Client::new()
        .get(gateway.url("/metrics"))
        .headers(gateway.admin_headers()?)
        .send()
        .await?
        .text()
        .await?;
    provider.force_flush()?;
    let exported = spans.get_finished_spans()?;
    let names: std::collections::BTreeSet<&str> = exported.iter().map(|s| s.name.as_ref()).collect();
    assert!(
        names.contains("graphql.request") && names.contains("connector.fetch"),
        "{names:?}"
    );
    let fetch = exported
        .iter()
        .find(|s| s.name == "connector.fetch")
        .expect("a connector span");
    let keys: Vec<&str> = fetch.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert!(
        ["connector", "entity", "values", "records", "outcome"]
            .iter()
            .all(|k| keys.contains(k)),
        "{keys:?}"
    );
    let spans_text = format!("{exported:?}");
    assert!(
        metrics.contains("subject_gateway_connector_call_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("subject_gateway_http_request_seconds"));
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(logs.contains("subjects resolved"), "the capture works");
    assert!(logs.contains("connector call failed"));

    let customer = person.customer.as_ref().expect("a customer");
    let mut secrets = vec![
        person.email.clone(),
        person.email.to_lowercase(),
        person.full_name.clone(),
        customer.id.clone(),
        customer.address_line1.clone(),
    ];
    secrets.extend(person.sessions.iter().map(|s| s.ip_address.clone()));
    secrets.extend(person.uploads.iter().map(|u| u.filename.clone()));
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a log line holds `{secret}`");
        assert!(
            !spans_text.contains(secret.as_str()),
            "an exported span holds `{secret}`"
        );
        assert!(!metrics.contains(secret.as_str()), "a metric holds `{secret}`");
    }
    Ok(())
}
