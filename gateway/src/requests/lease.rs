//! Leases: a claimed request is held for `lease_seconds`, renewed every third of that while a
//! gateway works on it, and released (claimable again after a pause) when it stops. A renewal
//! that finds the lease taken marks it lost: the work stops and another gateway carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;

use super::PrivacyEngine;
use super::store;

/// A held lease: renewed in the background until released.
pub(super) struct Lease {
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Set once a renewal finds another gateway holds the request.
    pub fn lost(&self) -> &AtomicBool {
        &self.lost
    }
}

impl PrivacyEngine {
    /// How long a claim or a renewal holds a request.
    pub(super) fn lease_length(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_seconds.max(1) as i64)
    }

    /// Keeps the lease on claimed request `id` renewed until [`Self::release`].
    pub(super) fn hold(self: &Arc<Self>, id: &str) -> Lease {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let engine = self.clone();
            let lost = lost.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                let every = Duration::from_millis((engine.settings.lease_seconds.max(1) * 1000) / 3);
                loop {
                    tokio::time::sleep(every).await;
                    let until = store::stamp(Utc::now() + engine.lease_length());
                    match engine.store.renew(&id, &engine.owner, &until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
        };
        Lease { lost, renewer }
    }

    /// Stops renewing and gives the request back: claimable again after a pause (a finished
    /// request is no longer claimable at all).
    pub(super) async fn release(&self, lease: Lease, id: &str) {
        lease.renewer.abort();
        let later = store::stamp(
            Utc::now() + chrono::Duration::milliseconds(self.settings.poll_interval_ms as i64 * 4),
        );
        let _ = self.store.release(id, &self.owner, &later).await;
    }
}
