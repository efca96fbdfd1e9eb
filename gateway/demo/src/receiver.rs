//! The demo's webhook receiver: a small HTTP endpoint on 127.0.0.1 that the demo configures as a
//! webhook endpoint for every request's events. It verifies each message's Standard Webhooks
//! signature (the `standardwebhooks` crate, as the tests do) and prints one line per verified
//! event — its type, request id and status, never an identity value — to the demo's output; a
//! message whose signature does not verify is refused (401) and said so.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::Value as Json;

/// The environment variable name the demo's endpoint declares for its secret.
pub const SECRET_ENV: &str = "SUBJECT_GATEWAY_DEMO_WEBHOOK_SECRET";
/// The endpoint's name in the gateway's configuration.
pub const ENDPOINT_NAME: &str = "demo_receiver";

/// Where each received event is told (the demo prints it).
pub type Sink = Arc<dyn Fn(String) + Send + Sync>;

struct Receiver {
    verifier: standardwebhooks::Webhook,
    sink: Sink,
}

/// A running receiver: where to send, and the secret it verifies with.
pub struct RunningReceiver {
    /// `http://127.0.0.1:PORT/webhooks`.
    pub url: String,
    /// `whsec_…`, made for this run.
    pub secret: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The line printed for one verified event: type, request id, status (ids and states only).
pub fn describe(body: &Json) -> String {
    let text = |v: &Json| v.as_str().unwrap_or("?").to_owned();
    format!(
        "webhook received (signature verified): {} request {} status {}",
        text(&body["type"]),
        text(&body["data"]["requestId"]),
        text(&body["data"]["status"]),
    )
}

/// Starts the receiver on a free port of 127.0.0.1 with a new secret; every verified event is
/// handed to `sink`.
pub async fn start(sink: Sink) -> anyhow::Result<RunningReceiver> {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let receiver = Arc::new(Receiver {
        verifier: standardwebhooks::Webhook::new(&secret)?,
        sink,
    });
    let router = axum::Router::new()
        .route("/webhooks", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(RunningReceiver { url, secret, task })
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    if receiver.verifier.verify(body.as_bytes(), &headers).is_err() {
        (receiver.sink)("webhook refused: its signature does not verify".into());
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_str::<Json>(&body) {
        Ok(event) => {
            (receiver.sink)(describe(&event));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
