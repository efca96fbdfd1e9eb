//! A helpdesk API shaped like Zendesk's: users found by email search, the tickets a user
//! requested, ticket comments, cursor pages (`page[size]` at most 100, `meta.has_more`,
//! `meta.after_cursor`), a bearer token, transient 503 answers on demand, a request rate above
//! which it answers 429 with `Retry-After`, soft delete then permanent delete (deleted users stay
//! as tombstones with their personal fields nulled; tickets likewise, taking their comments),
//! user updates, and a switch that makes it stop answering.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::Running;

/// The largest page the API serves, as Zendesk's.
pub const MAX_PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub active: bool,
    pub created_at: String,
    /// Soft-deleted: hidden from search, still permanently deletable.
    #[serde(skip)]
    pub soft_deleted: bool,
    /// Permanently deleted: a tombstone with personal fields nulled.
    #[serde(skip)]
    pub purged: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub id: i64,
    pub requester_id: i64,
    pub subject: String,
    pub description: String,
    pub status: String,
    pub tags: Vec<String>,
    pub created_at: String,
    /// Soft-deleted: hidden, still permanently deletable.
    #[serde(skip)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    pub id: i64,
    #[serde(skip)]
    pub ticket_id: i64,
    pub author_id: i64,
    pub body: String,
    pub public: bool,
    pub created_at: String,
}

/// Everything the helpdesk holds.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub users: BTreeMap<i64, User>,
    pub tickets: BTreeMap<i64, Ticket>,
    pub comments: Vec<Comment>,
}

impl Data {
    /// Adds a user with `tickets` tickets (each with two comments); returns the user id.
    pub fn add_user(&mut self, email: &str, name: &str, tickets: usize) -> i64 {
        let id = 9_000_000 + self.users.len() as i64;
        self.users.insert(
            id,
            User {
                id,
                name: Some(name.to_owned()),
                email: Some(email.to_owned()),
                phone: Some(format!("+44 20 7946 {:04}", id % 10_000)),
                active: true,
                created_at: "2024-01-15T09:30:00Z".into(),
                soft_deleted: false,
                purged: false,
            },
        );
        for n in 0..tickets {
            let ticket_id = 50_000 + self.tickets.len() as i64;
            self.tickets.insert(
                ticket_id,
                Ticket {
                    id: ticket_id,
                    requester_id: id,
                    subject: format!("Question #{} about my uploads", n + 1),
                    description: format!("Hello, this is {name}. I cannot find an image I uploaded."),
                    status: if n % 3 == 0 { "closed" } else { "open" }.into(),
                    tags: vec!["uploads".into()],
                    created_at: format!("2024-{:02}-{:02}T10:00:00Z", n % 12 + 1, n % 28 + 1),
                    deleted: false,
                },
            );
            for (k, author) in [(0, id), (1, 1)] {
                self.comments.push(Comment {
                    id: ticket_id * 10 + k,
                    ticket_id,
                    author_id: author,
                    body: if k == 0 {
                        format!("Sent from {email}: please help.")
                    } else {
                        "Thanks for reaching out, we are looking into it.".into()
                    },
                    public: true,
                    created_at: "2024-03-01T12:00:00Z".into(),
                });
            }
        }
        id
    }
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bearer token every request must carry.
    pub token: String,
    /// Requests served per second; past that, 429 with `Retry-After: 1`. 0: no limit.
    pub requests_per_second: u32,
}

/// The running server's shared state: its data and switches the tests turn.
pub struct Helpdesk {
    pub data: Mutex<Data>,
    pub settings: Settings,
    /// While set, every request waits forever.
    pub hang: AtomicBool,
    /// While set, user search matches part of an address, as Zendesk's does ("a partial or full
    /// value of any user property"): `email:ann@example.com` also finds `joann@example.com.au`.
    pub partial_search: AtomicBool,
    /// The next this-many requests answer 503 Service Unavailable.
    pub fail_next: AtomicU32,
    /// Requests served per second before 429 (0: no limit); starts from `Settings`.
    pub requests_per_second: AtomicU32,
    /// Requests answered, and those answered with 429.
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    window: Mutex<(Instant, u32)>,
}

type Shared = Arc<Helpdesk>;

/// Starts the helpdesk on a free port of 127.0.0.1.
pub async fn start(data: Data, settings: Settings) -> std::io::Result<Running<Shared>> {
    let state = Arc::new(Helpdesk {
        data: Mutex::new(data),
        settings: settings.clone(),
        hang: AtomicBool::new(false),
        partial_search: AtomicBool::new(false),
        fail_next: AtomicU32::new(0),
        requests_per_second: AtomicU32::new(settings.requests_per_second),
        requests: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        window: Mutex::new((Instant::now(), 0)),
    });
    let router = Router::new()
        .route("/api/v2/users/search", get(search_users))
        .route(
            "/api/v2/users/{id}",
            get(show_user).put(update_user).delete(soft_delete),
        )
        .route("/api/v2/tickets/{id}", delete(soft_delete_ticket))
        .route("/api/v2/deleted_tickets/{id}", delete(permanent_delete_ticket))
        .route("/api/v2/users/{id}/tickets/requested", get(requested_tickets))
        .route("/api/v2/tickets/{id}/comments", get(ticket_comments))
        .route("/api/v2/deleted_users/{id}", delete(permanent_delete))
        .with_state(state.clone());
    crate::serve(router, state).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Authentication, rate limiting and the hang switch, before any handler.
async fn admit(state: &Helpdesk, headers: &HeaderMap) -> Result<(), Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
        ));
    }
    let expected = format!("Bearer {}", state.settings.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(error(StatusCode::UNAUTHORIZED, "Couldn't authenticate you"));
    }
    let limit = state.requests_per_second.load(Ordering::SeqCst);
    if limit > 0 {
        let mut window = state.window.lock().unwrap_or_else(|e| e.into_inner());
        if window.0.elapsed() >= Duration::from_secs(1) {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
        if window.1 > limit {
            state.rate_limited.fetch_add(1, Ordering::SeqCst);
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return Err(response);
        }
    }
    Ok(())
}

fn data(state: &Helpdesk) -> std::sync::MutexGuard<'_, Data> {
    state.data.lock().unwrap_or_else(|e| e.into_inner())
}

async fn search_users(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let query = params.get("query").map(String::as_str).unwrap_or("");
    let Some(email) = query.strip_prefix("email:") else {
        return error(StatusCode::BAD_REQUEST, "query must be email:ADDRESS");
    };
    let email = email.trim().to_lowercase();
    let partial = state.partial_search.load(Ordering::SeqCst);
    let users: Vec<User> = data(&state)
        .users
        .values()
        .filter(|u| !u.soft_deleted && !u.purged)
        .filter(|u| {
            u.email.as_deref().is_some_and(|e| {
                let e = e.to_lowercase();
                if partial { e.contains(&email) } else { e == email }
            })
        })
        .cloned()
        .collect();
    Json(json!({ "users": users, "count": users.len() })).into_response()
}

async fn show_user(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    match data(&state).users.get(&id) {
        Some(user) => Json(json!({ "user": user })).into_response(),
        None => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

/// One cursor page of `items`: `page[size]` (at most 100) and `page[after]`.
fn page<T: Serialize>(items: &[T], params: &BTreeMap<String, String>, key: &str, path: &str) -> Response {
    let size = params
        .get("page[size]")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(MAX_PAGE_SIZE);
    if size == 0 || size > MAX_PAGE_SIZE {
        return error(StatusCode::BAD_REQUEST, "page[size] must be between 1 and 100");
    }
    let start = match params.get("page[after]") {
        None => 0,
        Some(cursor) => match cursor.strip_prefix("c").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
        },
    };
    let end = (start + size).min(items.len());
    let slice = &items[start.min(end)..end];
    let has_more = end < items.len();
    let after = has_more.then(|| format!("c{end}"));
    Json(json!({
        key: slice,
        "meta": { "has_more": has_more, "after_cursor": after, "before_cursor": format!("c{start}") },
        "links": { "next": after.as_ref().map(|c| format!("{path}?page[size]={size}&page[after]={c}")) },
    }))
    .into_response()
}

async fn requested_tickets(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let data = data(&state);
    if !data.users.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, "RecordNotFound");
    }
    let tickets: Vec<Ticket> = data
        .tickets
        .values()
        .filter(|t| t.requester_id == id && !t.deleted)
        .cloned()
        .collect();
    page(
        &tickets,
        &params,
        "tickets",
        &format!("/api/v2/users/{id}/tickets/requested"),
    )
}

async fn ticket_comments(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let data = data(&state);
    if data.tickets.get(&id).is_none_or(|t| t.deleted) {
        return error(StatusCode::NOT_FOUND, "RecordNotFound");
    }
    let comments: Vec<Comment> = data
        .comments
        .iter()
        .filter(|c| c.ticket_id == id)
        .cloned()
        .collect();
    page(
        &comments,
        &params,
        "comments",
        &format!("/api/v2/tickets/{id}/comments"),
    )
}

/// `DELETE /users/{id}`: a soft delete; the user disappears from search.
async fn soft_delete(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let mut data = data(&state);
    match data.users.get_mut(&id) {
        Some(user) if !user.soft_deleted && !user.purged => {
            user.soft_deleted = true;
            user.active = false;
            Json(json!({ "user": user })).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

/// `DELETE /deleted_users/{id}`: permanent deletion, only of a soft-deleted user. The user stays
/// as a tombstone with its personal fields nulled; the user's closed tickets are kept.
async fn permanent_delete(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let mut data = data(&state);
    match data.users.get_mut(&id) {
        Some(user) if user.soft_deleted && !user.purged => {
            user.purged = true;
            user.name = Some("Permanently deleted user".into());
            user.email = None;
            user.phone = None;
            Json(json!({ "deleted_user": { "id": id } })).into_response()
        }
        Some(user) if !user.soft_deleted => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the user must be soft-deleted first",
        ),
        _ => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

/// `PUT /users/{id}` with `{ "user": { "email": …, "name": … } }`: updates the given fields.
async fn update_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let mut data = data(&state);
    match data.users.get_mut(&id) {
        Some(user) if !user.soft_deleted && !user.purged => {
            if let Some(email) = body["user"]["email"].as_str() {
                user.email = Some(email.to_owned());
            }
            if let Some(name) = body["user"]["name"].as_str() {
                user.name = Some(name.to_owned());
            }
            Json(json!({ "user": user })).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

/// `DELETE /tickets/{id}`: a soft delete; the ticket and its comments disappear from view.
async fn soft_delete_ticket(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let mut data = data(&state);
    match data.tickets.get_mut(&id) {
        Some(ticket) if !ticket.deleted => {
            ticket.deleted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

/// `DELETE /deleted_tickets/{id}`: permanent deletion of a soft-deleted ticket and its comments.
async fn permanent_delete_ticket(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(response) = admit(&state, &headers).await {
        return response;
    }
    let mut data = data(&state);
    match data.tickets.get(&id) {
        Some(ticket) if ticket.deleted => {
            data.tickets.remove(&id);
            data.comments.retain(|c| c.ticket_id != id);
            StatusCode::NO_CONTENT.into_response()
        }
        Some(_) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the ticket must be soft-deleted first",
        ),
        None => error(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}
