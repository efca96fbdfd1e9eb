//! Integration tests: the gateway's real HTTP server over real PostgreSQL, MariaDB and SQLite,
//! each test in databases of its own. One binary for all of them, to save link time.

mod access;
mod analytics;
mod approval;
mod audit;
mod batching;
mod check;
mod console;
mod console_live;
mod console_oidc;
mod declarations;
mod demo;
mod durability;
mod erase_batches;
mod failures;
mod helpdesk;
mod hostile;
mod http;
mod objections;
mod probe;
mod requests;
mod resolution;
mod retention;
mod schema_snapshot;
mod telemetry;
mod types;
mod uploads;
mod webhooks;

use serde_json::Value as Json;

/// `value[path...]`, or `Null`.
pub fn at<'a>(value: &'a Json, path: &[&str]) -> &'a Json {
    path.iter().fold(value, |v, key| &v[*key])
}

/// The response's data for `subject`, failing the test on GraphQL errors.
pub fn subject_ok(response: &Json) -> &Json {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {}",
        response["errors"]
    );
    &response["data"]["subject"]
}

/// A list's length.
pub fn len(value: &Json) -> usize {
    value.as_array().map_or(0, Vec::len)
}

/// A subject with the per-run figures (latencies) removed, to compare two runs.
pub fn without_timings(mut subject: Json) -> Json {
    if let Some(sources) = subject.get_mut("sources").and_then(Json::as_array_mut) {
        for source in sources {
            if let Some(object) = source.as_object_mut() {
                object.remove("latencyMs");
            }
        }
    }
    subject
}
