//! HTTP servers shaped like the vendor APIs the gateway reads, served for real on 127.0.0.1 for
//! the tests and the demo. They reproduce what matters about the real APIs: lookups by email,
//! cursor pages of at most 100, 429 with `Retry-After`, bearer tokens, soft then permanent
//! deletes, and servers that stop answering.

pub mod analytics;
pub mod helpdesk;

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// A server running on a port of 127.0.0.1; stopped when dropped.
pub struct Running<S> {
    pub address: SocketAddr,
    pub state: S,
    task: JoinHandle<()>,
}

impl<S> Running<S> {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a free port of 127.0.0.1.
pub async fn serve<S>(router: axum::Router, state: S) -> std::io::Result<Running<S>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Running { address, state, task })
}
