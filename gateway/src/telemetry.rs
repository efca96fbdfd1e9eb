//! Metrics: a Prometheus recorder for the `metrics` facade, served at `/metrics`, and the HTTP
//! middleware that measures requests.
//!
//! Labels are only ever names the gateway chose (routes, connectors, entities, error codes,
//! status codes): never a URI, an operation name a client sent, or a value.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds, from half a millisecond to ten seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// The recorder keeps every histogram sample until it is folded into the buckets, which
/// `install_recorder` leaves to the caller: without it memory grows with every request until
/// `/metrics` is scraped (0.3–0.45 KB a request was measured). A thread of its own folds them
/// every few seconds.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): keep a detached one so
                // `/metrics` still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "could not start the metrics upkeep thread: histograms are folded only when /metrics is read");
            }
            handle
        })
        .clone()
}

/// Measures every request: latency by route and status, and requests in flight.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| match path.as_str() {
            "/graphql" => "/graphql",
            "/healthz" => "/healthz",
            "/metrics" => "/metrics",
            "/" => "/",
            _ => "other",
        });
    let in_flight = metrics::gauge!("subject_gateway_http_requests_in_flight");
    in_flight.increment(1.0);
    let started = Instant::now();
    let response = next.run(request).await;
    in_flight.decrement(1.0);
    metrics::histogram!(
        "subject_gateway_http_request_seconds",
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}
