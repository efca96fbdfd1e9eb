//! An analytics API shaped like Mixpanel's: people profiles found by their `$email` property,
//! events by `distinct_id` in numbered pages or, for many people at once, by a JSON list of
//! `distinct_ids` (the activity stream), and GDPR deletions as asynchronous tasks
//! (`PENDING` -> `STARTED` -> `SUCCESS`, or `FAILURE` when told to fail) limited to about one
//! request per second, opt-outs (a person's objection to tracking), behind HTTP basic
//! authentication (a service account).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value as JsonValue, json};

use crate::Running;

/// A people profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub distinct_id: String,
    pub email: String,
    pub name: String,
    pub city: String,
    pub country_code: String,
    pub browser: String,
    pub os: String,
    pub last_seen: i64,
    pub plan: String,
    /// Set by an opt-out: the person objected to analytics and marketing.
    pub opted_out: bool,
}

/// One tracked event.
#[derive(Debug, Clone)]
pub struct Event {
    pub distinct_id: String,
    pub event: String,
    /// Seconds since the epoch.
    pub time: i64,
    pub device_id: String,
    pub ip: String,
    pub url: String,
}

/// A deletion task and the statuses it has left to go through.
#[derive(Debug, Clone)]
pub struct Task {
    pub distinct_ids: Vec<String>,
    pub status: &'static str,
    pub remaining: Vec<&'static str>,
}

#[derive(Debug, Clone, Default)]
pub struct Data {
    pub profiles: BTreeMap<String, Profile>,
    pub events: Vec<Event>,
    pub tasks: BTreeMap<String, Task>,
}

impl Data {
    /// Adds a profile with `events` events; returns its distinct id.
    pub fn add_profile(&mut self, user_id: i64, email: &str, name: &str, events: usize) -> String {
        let distinct_id = format!("u{user_id}");
        self.profiles.insert(
            distinct_id.clone(),
            Profile {
                distinct_id: distinct_id.clone(),
                email: email.to_lowercase(),
                name: name.to_owned(),
                city: ["London", "Berlin", "Osaka"][user_id as usize % 3].into(),
                country_code: ["GB", "DE", "JP"][user_id as usize % 3].into(),
                browser: ["Firefox", "Safari", "Chrome"][user_id as usize % 3].into(),
                os: ["Windows", "macOS", "Linux"][user_id as usize % 3].into(),
                last_seen: 1_730_000_000 + user_id * 60,
                plan: ["free", "pro"][user_id as usize % 2].into(),
                opted_out: false,
            },
        );
        for n in 0..events {
            self.events.push(Event {
                distinct_id: distinct_id.clone(),
                event: ["Viewed Gallery", "Uploaded Image", "Signed In"][n % 3].into(),
                time: 1_720_000_000 + (user_id * 1000 + n as i64) * 37,
                device_id: format!("dev-{user_id}-{}", n % 2),
                ip: format!("10.{}.{}.{}", user_id % 250, n % 250, 7),
                url: format!("https://app.example/gallery/{}", n % 17),
            });
        }
        distinct_id
    }
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    pub username: String,
    pub secret: String,
}

/// The running server's state and switches.
pub struct Analytics {
    pub data: Mutex<Data>,
    pub settings: Settings,
    /// When set, new deletion tasks end in `FAILURE`.
    pub fail_deletions: AtomicBool,
    /// Least time between two deletion calls, in milliseconds (1000: about one per second, as the
    /// vendor's; benchmarks lower it to measure the gateway rather than the limit).
    pub deletion_interval_ms: AtomicU64,
    pub requests: AtomicU64,
    /// Calls to the activity stream (events of many people at once).
    pub stream_calls: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Deletion tasks created (calls that were not refused), and the distinct ids they carried.
    pub deletion_calls: AtomicU64,
    pub deleted_ids: AtomicU64,
    last_deletion_call: Mutex<Option<Instant>>,
    next_task: AtomicU64,
}

type Shared = Arc<Analytics>;

/// Deletion endpoints answer about one request per second, as Mixpanel's GDPR API.
const DELETION_INTERVAL: Duration = Duration::from_millis(900);

/// Starts the analytics API on a free port of 127.0.0.1.
pub async fn start(data: Data, settings: Settings) -> std::io::Result<Running<Shared>> {
    let state = Arc::new(Analytics {
        data: Mutex::new(data),
        settings,
        fail_deletions: AtomicBool::new(false),
        deletion_interval_ms: AtomicU64::new(DELETION_INTERVAL.as_millis() as u64),
        requests: AtomicU64::new(0),
        stream_calls: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        deletion_calls: AtomicU64::new(0),
        deleted_ids: AtomicU64::new(0),
        last_deletion_call: Mutex::new(None),
        next_task: AtomicU64::new(1),
    });
    let router = Router::new()
        .route("/api/query/engage", get(engage))
        .route("/api/query/events", get(events))
        .route("/api/query/stream/query", get(stream))
        .route("/api/app/data-deletions/v3.0/", post(create_deletion))
        .route("/api/app/opt-outs", post(opt_out))
        .route("/api/app/data-deletions/v3.0/{task}", get(deletion_status))
        .with_state(state.clone());
    crate::serve(router, state).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": "error", "error": message }))).into_response()
}

fn data(state: &Analytics) -> std::sync::MutexGuard<'_, Data> {
    state.data.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rejection of a request without the service account's credentials, if it is one.
fn unauthorised(state: &Analytics, headers: &HeaderMap) -> Option<Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", state.settings.username, state.settings.secret))
    );
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(given) if given == expected => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "Invalid service account credentials",
        )),
    }
}

/// About one deletion request per second; faster callers get 429 and `Retry-After: 1`.
fn too_fast(state: &Analytics) -> Option<Response> {
    let mut last = state.last_deletion_call.lock().unwrap_or_else(|e| e.into_inner());
    let interval = Duration::from_millis(state.deletion_interval_ms.load(Ordering::SeqCst));
    if last.is_some_and(|at| at.elapsed() < interval) {
        state.rate_limited.fetch_add(1, Ordering::SeqCst);
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit: about 1 request per second",
        );
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Some(response);
    }
    *last = Some(Instant::now());
    None
}

fn profile_json(profile: &Profile) -> JsonValue {
    json!({
        "$distinct_id": profile.distinct_id,
        "$properties": {
            "$email": profile.email,
            "$name": profile.name,
            "$city": profile.city,
            "$country_code": profile.country_code,
            "$browser": profile.browser,
            "$os": profile.os,
            "$last_seen": profile.last_seen,
            "plan": profile.plan,
            "$opt_out": profile.opted_out,
        }
    })
}

async fn engage(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(response) = unauthorised(&state, &headers) {
        return response;
    }
    let data = data(&state);
    let results: Vec<JsonValue> = match (params.get("email"), params.get("distinct_id")) {
        (Some(email), _) => {
            let email = email.trim().to_lowercase();
            data.profiles
                .values()
                .filter(|p| p.email == email)
                .map(profile_json)
                .collect()
        }
        (None, Some(id)) => data.profiles.get(id).map(profile_json).into_iter().collect(),
        (None, None) => return error(StatusCode::BAD_REQUEST, "give email or distinct_id"),
    };
    Json(json!({ "status": "ok", "page": 0, "total": results.len(), "results": results })).into_response()
}

async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(response) = unauthorised(&state, &headers) {
        return response;
    }
    let Some(distinct_id) = params.get("distinct_id") else {
        return error(StatusCode::BAD_REQUEST, "distinct_id is required");
    };
    let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let size: usize = params
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let data = data(&state);
    let all: Vec<&Event> = data
        .events
        .iter()
        .filter(|e| &e.distinct_id == distinct_id)
        .collect();
    let slice: Vec<JsonValue> = all
        .iter()
        .skip(page * size)
        .take(size)
        .map(|e| event_json(e))
        .collect();
    Json(json!({ "status": "ok", "page": page, "page_size": size, "total": all.len(), "events": slice }))
        .into_response()
}

fn event_json(e: &Event) -> JsonValue {
    json!({
        "event": e.event,
        "properties": {
            "distinct_id": e.distinct_id,
            "time": e.time,
            "$device_id": e.device_id,
            "ip": e.ip,
            "$current_url": e.url,
        }
    })
}

/// The activity stream: every event of the people `distinct_ids` (a JSON array, 1 to 1,000)
/// names, in one answer.
async fn stream(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(response) = unauthorised(&state, &headers) {
        return response;
    }
    state.stream_calls.fetch_add(1, Ordering::SeqCst);
    let ids: Option<Vec<String>> = params
        .get("distinct_ids")
        .and_then(|text| serde_json::from_str(text).ok());
    let ids: std::collections::HashSet<String> = match ids {
        Some(ids) if (1..=1000).contains(&ids.len()) => ids.into_iter().collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "distinct_ids: a JSON array of 1 to 1000 ids",
            );
        }
    };
    let data = data(&state);
    let events: Vec<JsonValue> = data
        .events
        .iter()
        .filter(|e| ids.contains(&e.distinct_id))
        .map(event_json)
        .collect();
    Json(json!({ "status": "ok", "results": { "events": events } })).into_response()
}

async fn create_deletion(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<JsonValue>,
) -> Response {
    if let Some(response) = unauthorised(&state, &headers).or_else(|| too_fast(&state)) {
        return response;
    }
    let ids: Vec<String> = body["distinct_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 2000 {
        return error(StatusCode::BAD_REQUEST, "distinct_ids: between 1 and 2000");
    }
    state.deletion_calls.fetch_add(1, Ordering::SeqCst);
    state.deleted_ids.fetch_add(ids.len() as u64, Ordering::SeqCst);
    let task_id = format!("task-{}", state.next_task.fetch_add(1, Ordering::SeqCst));
    let remaining = if state.fail_deletions.load(Ordering::SeqCst) {
        vec!["STARTED", "FAILURE"]
    } else {
        vec!["STAGING", "STARTED", "SUCCESS"]
    };
    data(&state).tasks.insert(
        task_id.clone(),
        Task {
            distinct_ids: ids,
            status: "PENDING",
            remaining,
        },
    );
    Json(json!({ "status": "ok", "results": { "task_id": task_id } })).into_response()
}

/// Each status call moves the task one step on; on `SUCCESS` the data is gone.
async fn deletion_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(task): Path<String>,
) -> Response {
    if let Some(response) = unauthorised(&state, &headers).or_else(|| too_fast(&state)) {
        return response;
    }
    let mut data = data(&state);
    let Some(entry) = data.tasks.get_mut(&task) else {
        return Json(json!({ "status": "ok", "results": { "status": "NOT_FOUND" } })).into_response();
    };
    let status = entry.status;
    if !entry.remaining.is_empty() {
        entry.status = entry.remaining.remove(0);
    }
    if status == "SUCCESS" {
        let ids = entry.distinct_ids.clone();
        data.profiles.retain(|id, _| !ids.contains(id));
        data.events.retain(|e| !ids.contains(&e.distinct_id));
    }
    Json(json!({ "status": "ok", "results": { "status": status } })).into_response()
}

/// `POST /api/app/opt-outs` with `{ "distinct_id": … }`: the profile is opted out of tracking.
async fn opt_out(State(state): State<Shared>, headers: HeaderMap, Json(body): Json<JsonValue>) -> Response {
    if let Some(response) = unauthorised(&state, &headers) {
        return response;
    }
    let Some(id) = body["distinct_id"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "distinct_id is required");
    };
    match data(&state).profiles.get_mut(id) {
        Some(profile) => {
            profile.opted_out = true;
            Json(json!({ "status": "ok" })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such profile"),
    }
}
