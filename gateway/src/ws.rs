//! Subscriptions on `/graphql/ws` (`graphql-transport-ws`, or the older `graphql-ws`).
//!
//! Credentials come from the upgrade request's headers (`Authorization`, `X-Purpose`) or, for
//! browsers, which cannot set headers on a websocket, from the `connection_init` payload:
//! `{ "authorization": "Bearer …", "purpose": "…" }` (or `"apiKey": "sgk_…"`; `"x-purpose"` is
//! read too). Both are checked by the same [`Authenticator::authenticate`]; credentials in the
//! payload that are refused close the socket with 4403 (the protocol's "Forbidden") and the
//! reason. Every operation re-checks them, and so does a watch every [`WS_RECHECK`].

use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use subject_connectors::codes::ErrorCode;
use subject_schema::SubjectService;
use subject_schema::access::Caller;
use subject_schema::requests::PrivacyRequests;

use crate::auth::Authenticator;
use crate::server::{AppState, too_many};

/// How often an open websocket's credentials are checked again (a revoked or expired key or
/// token closes it within this and one lookup).
const WS_RECHECK: Duration = Duration::from_secs(2);

/// How long a socket without credentials on its upgrade may take to send `connection_init`.
const WS_INIT_WAIT: Duration = Duration::from_secs(10);

/// Close codes of `graphql-transport-ws`.
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_TOO_MANY: u16 = 4429;

/// `GET /graphql/ws`: subscriptions only, for callers authenticated by the upgrade's headers or
/// by `connection_init`. Queries and mutations go to `POST /graphql` with its limits.
pub(crate) async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upfront = if headers.contains_key("authorization") {
        let caller = match state.auth.authenticate(&headers).await {
            Ok(caller) => caller,
            Err(error) => return (error.status(), error.to_string()).into_response(),
        };
        // Opening a socket counts against the caller's rate like a request.
        if let Err(refusal) = state.limiter.admit(&caller.principal) {
            return too_many(refusal);
        }
        Some((caller, headers))
    } else {
        None
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(state, socket, protocol, upfront))
}

async fn serve(
    state: AppState,
    socket: WebSocket,
    protocol: GraphQLProtocol,
    upfront: Option<(Caller, HeaderMap)>,
) {
    let (mut sink, mut stream) = socket.split();
    // The first message, read here when it carries the credentials, is handed on as it came:
    // the protocol answers it (`connection_ack`).
    let (caller, headers, first) = match upfront {
        Some((caller, headers)) => (caller, headers, None),
        None => {
            let first = match tokio::time::timeout(WS_INIT_WAIT, stream.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(_) => return,
                Err(_) => {
                    close(&mut sink, CLOSE_INIT_TIMEOUT, "connection initialisation timeout").await;
                    return;
                }
            };
            let Some(headers) = init_credentials(&first) else {
                close(
                    &mut sink,
                    CLOSE_UNAUTHORIZED,
                    "send connection_init first, with credentials in its payload",
                )
                .await;
                return;
            };
            let caller = match state.auth.authenticate(&headers).await {
                Ok(caller) => caller,
                Err(error) => {
                    close(&mut sink, CLOSE_FORBIDDEN, &error.to_string()).await;
                    return;
                }
            };
            if let Err(refusal) = state.limiter.admit(&caller.principal) {
                metrics::counter!("subject_gateway_rate_limited_total", "code" => refusal.code())
                    .increment(1);
                close(&mut sink, CLOSE_TOO_MANY, &refusal.to_string()).await;
                return;
            }
            (caller, headers, Some(first))
        }
    };
    let mut data = async_graphql::Data::default();
    data.insert(caller);
    data.insert(state.audit.clone());
    let requests: Arc<dyn PrivacyRequests> = state.requests.clone();
    data.insert(requests);
    let headers = Arc::new(headers);
    let executor = SubscriptionsOnly {
        service: state.service.clone(),
        auth: state.auth.clone(),
        headers: headers.clone(),
    };
    let stream = futures::stream::iter(first.map(Ok)).chain(stream);
    let serve = GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol)
        .with_data(data)
        .serve();
    let auth = state.auth.clone();
    let watch = async {
        loop {
            tokio::time::sleep(WS_RECHECK).await;
            if !auth.still_valid(&headers).await {
                tracing::info!("closing a websocket whose credentials are no longer valid");
                break;
            }
        }
    };
    tokio::select! {
        () = serve => {}
        () = watch => {}
    }
}

/// Closes the socket with `code` and `reason` (cut to the 123 bytes a close frame holds).
async fn close<S>(sink: &mut S, code: u16, reason: &str)
where
    S: futures::Sink<Message> + Unpin,
{
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

/// The credentials of a `connection_init` message, as the headers a POST would carry; `None`
/// when `message` is not a `connection_init`. A payload without credentials gives headers
/// without them, refused by the authenticator like a POST without them.
fn init_credentials(message: &Message) -> Option<HeaderMap> {
    let Message::Text(text) = message else {
        return None;
    };
    let value: serde_json::Value = serde_json::from_str(text.as_str()).ok()?;
    if value["type"] != "connection_init" {
        return None;
    }
    let payload = &value["payload"];
    let read = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| payload[*name].as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mut headers = HeaderMap::new();
    let authorization = read(&["authorization", "Authorization"])
        .map(str::to_owned)
        .or_else(|| read(&["apiKey"]).map(|key| format!("Bearer {key}")));
    if let Some(value) = authorization.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert("authorization", value);
    }
    if let Some(value) =
        read(&["purpose", "x-purpose", "X-Purpose"]).and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("x-purpose", value);
    }
    Some(headers)
}

/// The executor behind `/graphql/ws`: subscriptions only, each checked like a POST.
#[derive(Clone)]
struct SubscriptionsOnly {
    service: Arc<SubjectService>,
    auth: Arc<Authenticator>,
    headers: Arc<HeaderMap>,
}

fn ws_refusal(message: &str, code: &'static str) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![subject_schema::coded_error(message.to_owned(), code)])
}

impl async_graphql::Executor for SubscriptionsOnly {
    async fn execute(&self, _request: async_graphql::Request) -> async_graphql::Response {
        ws_refusal(
            "the websocket carries subscriptions only; send queries and mutations to POST /graphql",
            ErrorCode::SubscriptionsOnly.as_str(),
        )
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<async_graphql::Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        use futures::StreamExt;
        let this = self.clone();
        futures::stream::once(async move {
            let refuse = |message: &str, code| {
                futures::stream::once(std::future::ready(ws_refusal(message, code))).boxed()
            };
            if !this.auth.still_valid(&this.headers).await {
                return refuse(
                    "the credentials are no longer valid",
                    ErrorCode::InvalidCredentials.as_str(),
                );
            }
            let prepared = match this.service.prepare(&request.query) {
                Ok(prepared) => prepared,
                Err(error) => {
                    return futures::stream::once(std::future::ready(async_graphql::Response::from_errors(
                        vec![error],
                    )))
                    .boxed();
                }
            };
            use async_graphql::parser::types::{DocumentOperations, OperationType};
            let document = &prepared.document;
            let ty = match (&document.operations, request.operation_name.as_deref()) {
                (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
                (DocumentOperations::Multiple(operations), Some(name)) => {
                    operations.get(name).map(|operation| operation.node.ty)
                }
                (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                    operations.values().next().map(|operation| operation.node.ty)
                }
                _ => None,
            };
            if ty != Some(OperationType::Subscription) {
                return refuse(
                    "the websocket carries subscriptions only; send queries and mutations to POST /graphql",
                    ErrorCode::SubscriptionsOnly.as_str(),
                );
            }
            request.set_parsed_query(document.clone());
            this.service
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default())
        })
        .flatten()
        .boxed()
    }
}
