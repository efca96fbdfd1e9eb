//! The console's operational checks ([`GatewayChecks`]): the connectors checked against their
//! stores (the same [`crate::check::check_all`] as `subject-gateway check`) and the audit chain
//! verified (the same walk as `subject-gateway audit verify`, without an anchor file).
//!
//! Cost is bounded by time, not by callers: each runs one at a time (callers arriving meanwhile
//! wait for that run), and a result younger than [`CHECK_REUSE`] / [`VERIFY_REUSE`] is returned
//! with its time instead of running again. A connector check costs one round of metadata queries
//! per store, each within its timeout (at least 5 s); a verification reads the whole trail once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use subject_schema::SubjectService;
use subject_schema::ops::{CheckFinding, CheckSnapshot, ChecksUnavailable, GatewayChecks, Verification};

use crate::audit::{ChainError, DbAuditLog};

/// A connector check younger than this is returned instead of a new one.
const CHECK_REUSE: Duration = Duration::from_secs(30);
/// An audit verification younger than this is returned instead of a new one.
const VERIFY_REUSE: Duration = Duration::from_secs(60);

/// The last results, and the locks that let one run at a time.
pub struct Checks {
    service: Arc<SubjectService>,
    audit: Arc<DbAuditLog>,
    last_check: Mutex<Option<(Instant, CheckSnapshot)>>,
    checking: tokio::sync::Mutex<()>,
    last_verification: Mutex<Option<(Instant, Verification)>>,
    verifying: tokio::sync::Mutex<()>,
}

impl Checks {
    pub fn new(service: Arc<SubjectService>, audit: Arc<DbAuditLog>) -> Self {
        Self {
            service,
            audit,
            last_check: Mutex::new(None),
            checking: tokio::sync::Mutex::new(()),
            last_verification: Mutex::new(None),
            verifying: tokio::sync::Mutex::new(()),
        }
    }
}

fn fresh<T: Clone>(slot: &Mutex<Option<(Instant, T)>>, reuse: Duration) -> Option<T> {
    let guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
    guard
        .as_ref()
        .filter(|(at, _)| at.elapsed() < reuse)
        .map(|(_, value)| value.clone())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl GatewayChecks for Checks {
    async fn last_check(&self) -> Option<CheckSnapshot> {
        self.last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, check)| check.clone())
    }

    async fn check_connectors(&self) -> CheckSnapshot {
        let _one = self.checking.lock().await;
        if let Some(check) = fresh(&self.last_check, CHECK_REUSE) {
            return check;
        }
        let report = crate::check::check_all(&self.service).await;
        let snapshot = CheckSnapshot {
            at: now(),
            ok: report.ok(),
            findings: report
                .rows
                .into_iter()
                .map(|row| CheckFinding {
                    connector: row.connector,
                    entity: row.entity,
                    ok: row.ok,
                    location: row.location,
                    details: row.details,
                })
                .collect(),
        };
        *self.last_check.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), snapshot.clone()));
        snapshot
    }

    async fn verify_audit(&self) -> Result<Verification, ChecksUnavailable> {
        let _one = self.verifying.lock().await;
        if let Some(verified) = fresh(&self.last_verification, VERIFY_REUSE) {
            return Ok(verified);
        }
        let keyed = self.audit.keyed();
        let verification = match self.audit.verify_against(None).await {
            Ok(verified) => Verification {
                at: now(),
                intact: true,
                events: verified.events,
                head: Some(verified.head),
                unkeyed: verified.unkeyed,
                keyed,
                problem: None,
            },
            // Not read is not verified: an error, never "intact" and never cached.
            Err(ChainError::Unreadable) => {
                return Err(ChecksUnavailable(ChainError::Unreadable.to_string()));
            }
            Err(broken) => Verification {
                at: now(),
                intact: false,
                events: 0,
                head: None,
                unkeyed: 0,
                keyed,
                problem: Some(broken.to_string()),
            },
        };
        *self
            .last_verification
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), verification.clone()));
        Ok(verification)
    }
}
