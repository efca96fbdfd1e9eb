//! The accept loop: every connection gets a slot out of `max_connections`, a deadline for its
//! first request (`header_read_timeout_ms`) and one for idling between requests
//! (`idle_timeout_ms`); when the slots run out, the connection idle the longest is closed to
//! make room, and when none is idle the newcomer is answered `503` and closed. So silent or
//! half-sent connections can neither hold a slot for ever nor run the process out of file
//! descriptors, and graceful shutdown still drains the requests in flight.
//!
//! (`axum::serve` offers none of these knobs; this is its loop with them added, on hyper-util's
//! HTTP/1 + HTTP/2 builder.)

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

use crate::config::ServerSettings;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a new connection may take to send its first request's headers.
    pub header_read_timeout: Duration,
    /// Longest a connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from_settings(&ServerSettings::default())
    }
}

impl ConnectionLimits {
    /// The limits `settings` configure, with `max_connections` lowered (and a warning) when
    /// the process may not open that many descriptors with room to spare for the stores.
    pub fn from_settings(settings: &ServerSettings) -> Self {
        let mut max_connections = settings.max_connections.max(1);
        if let Some(descriptors) = open_files_limit() {
            let room = usize::try_from(descriptors.saturating_sub(DESCRIPTORS_KEPT)).unwrap_or(usize::MAX);
            if max_connections > room {
                tracing::warn!(
                    configured = max_connections,
                    open_files_limit = descriptors,
                    serving = room.max(1),
                    "server.max_connections is above what the open-files limit leaves room for; lowered"
                );
                max_connections = room.max(1);
            }
        }
        Self {
            header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(settings.idle_timeout_ms.max(1)),
            max_connections,
        }
    }
}

/// Descriptors left for everything but client connections: store pools, files, the listener.
const DESCRIPTORS_KEPT: u64 = 256;

/// The soft limit on open files of this process (Linux: `/proc/self/limits`), if known.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connections waiting for a slot at once; more are refused without waiting.
const MAX_WAITING: usize = 64;
/// How long a newcomer waits for an evicted connection to give up its slot.
const SLOT_WAIT: Duration = Duration::from_millis(500);
/// How long a connection told to close may take to finish what it is doing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The body of the answer to a connection there is no room for.
/// (The code is `ErrorCode::TooManyConnections`; a test checks the text agrees.)
const SHED_BODY: &str =
    r#"{"errors":[{"message":"too many connections","extensions":{"code":"TOO_MANY_CONNECTIONS"}}]}"#;

/// One served connection, as the loop sees it.
struct Connection {
    /// Milliseconds since the server started when it last began or finished a request.
    last_activity: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// Told to close to make room (so not chosen twice).
    evicted: AtomicBool,
    close: Notify,
}

struct Connections {
    started: Instant,
    slots: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Connections {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Tells the connection idle the longest to close; false when none is idle.
    fn evict_idlest(&self) -> bool {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let idlest = live
            .values()
            .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst))
            .min_by_key(|c| c.last_activity.load(Ordering::SeqCst));
        match idlest {
            Some(connection) => {
                connection.evicted.store(true, Ordering::SeqCst);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains
/// in-flight requests. With `tls`, each connection's TLS handshake must also finish within the
/// header-read timeout.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = Arc::new(Connections {
        started: Instant::now(),
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        waiting: Arc::new(Semaphore::new(MAX_WAITING)),
        live: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    // Dropping the sender tells every connection to shut down gracefully; the loop then waits
    // until every connection has dropped its receiver.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was accepted: back off
                    // briefly rather than spin.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connections = connections.clone();
        let router = router.clone();
        let stop_rx = stop_rx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Some(slot) = take_slot(&connections).await else {
                shed(stream).await;
                return;
            };
            match acceptor {
                None => serve_connection(stream, router, limits, connections, stop_rx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, limits, connections, stop_rx).await
                        }
                        // A failed or too slow handshake: nothing to answer.
                        _ => metrics::counter!("subject_gateway_connections_timed_out_total").increment(1),
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

async fn take_slot(connections: &Connections) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(slot) = connections.slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    let _waiting = connections.waiting.clone().try_acquire_owned().ok()?;
    if !connections.evict_idlest() {
        metrics::counter!("subject_gateway_connections_shed_total").increment(1);
        return None;
    }
    metrics::counter!("subject_gateway_connections_evicted_total").increment(1);
    match tokio::time::timeout(SLOT_WAIT, connections.slots.clone().acquire_owned()).await {
        Ok(Ok(slot)) => Some(slot),
        _ => {
            metrics::counter!("subject_gateway_connections_shed_total").increment(1);
            None
        }
    }
}

/// Answers a connection there is no room for with a 503 and closes it.
async fn shed(stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        // Take in what the client has sent already (its request's head), so that closing does
        // not reset the connection before it reads the answer.
        let mut discard = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut discard)).await;
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{SHED_BODY}",
            SHED_BODY.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection<I>(
    stream: I,
    router: Router,
    limits: ConnectionLimits,
    connections: Arc<Connections>,
    mut stop_rx: watch::Receiver<()>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let id = connections.next_id.fetch_add(1, Ordering::SeqCst);
    let connection = Arc::new(Connection {
        last_activity: AtomicU64::new(connections.now()),
        in_flight: AtomicUsize::new(0),
        served: AtomicBool::new(false),
        evicted: AtomicBool::new(false),
        close: Notify::new(),
    });
    connections
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id, connection.clone());
    metrics::gauge!("subject_gateway_connections_open").increment(1.0);

    let tracked = connection.clone();
    let clock = connections.clone();
    let service = tower::service_fn(move |request: axum::http::Request<Incoming>| {
        let router = router.clone();
        let guard = InFlight::start(tracked.clone(), clock.clone());
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            drop(guard);
            response
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().enable_connect_protocol();
    let mut conn =
        pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service)));

    let check_every = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(check_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing: Option<tokio::time::Instant> = None;
    let mut stop_closed = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop_rx.changed(), if !stop_closed => {
                stop_closed = true;
                conn.as_mut().graceful_shutdown();
                closing.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(10));
            }
            () = connection.close.notified(), if closing.is_none() => {
                // Nothing in flight: close at once (a silent or idle connection has nothing to
                // finish). Otherwise let the request finish, for a moment.
                if connection.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            _ = ticks.tick() => {
                if let Some(deadline) = closing {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
                if connection.in_flight.load(Ordering::SeqCst) > 0 {
                    continue;
                }
                let limit = if connection.served.load(Ordering::SeqCst) {
                    limits.idle_timeout
                } else {
                    limits.header_read_timeout
                };
                let idle = connections.now().saturating_sub(connection.last_activity.load(Ordering::SeqCst));
                if idle >= u64::try_from(limit.as_millis()).unwrap_or(u64::MAX) {
                    // Nothing in flight (checked above): close now.
                    metrics::counter!("subject_gateway_connections_timed_out_total").increment(1);
                    break;
                }
            }
        }
    }
    connections
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&id);
    metrics::gauge!("subject_gateway_connections_open").decrement(1.0);
    drop(stop_rx);
}

/// A request in flight on a connection; its end is the connection's latest activity.
struct InFlight {
    connection: Arc<Connection>,
    clock: Arc<Connections>,
}

impl InFlight {
    fn start(connection: Arc<Connection>, clock: Arc<Connections>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::SeqCst);
        connection.served.store(true, Ordering::SeqCst);
        connection.last_activity.store(clock.now(), Ordering::SeqCst);
        Self { connection, clock }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connection
            .last_activity
            .store(self.clock.now(), Ordering::SeqCst);
        self.connection.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shed_body_carries_the_tables_code() {
        let body: serde_json::Value = serde_json::from_str(SHED_BODY).unwrap_or_default();
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            subject_connectors::codes::ErrorCode::TooManyConnections.as_str()
        );
    }
}
