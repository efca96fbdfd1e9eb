//! Per-caller limits: requests in flight at once and a token bucket of requests per second, keyed
//! by the caller's principal (an API key's id, or an OIDC subject's fingerprint). A caller over
//! either is answered `429` with `Retry-After`, so one busy client cannot take every connection
//! to the stores from the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subject_connectors::codes::ErrorCode;

/// The limits of one caller.
#[derive(Debug, Clone, Copy)]
pub struct CallerLimits {
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Requests per second, sustained.
    pub rate: u32,
    /// Requests allowed in a burst above the rate.
    pub burst: u32,
}

/// Why a caller's request was not admitted, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many requests in flight for this caller")]
    Concurrency,
    #[error("too many requests for this caller; slow down")]
    Rate { retry_after: Duration },
}

impl Refusal {
    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Concurrency => ErrorCode::CallerConcurrencyLimited.as_str(),
            Refusal::Rate { .. } => ErrorCode::RateLimited.as_str(),
        }
    }

    /// Whole seconds to wait, for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::Concurrency => 1,
            Refusal::Rate { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    in_flight: u32,
}

/// Callers tracked before idle ones are forgotten.
const TRACKED: usize = 10_000;

/// The per-caller limiter.
#[derive(Debug)]
pub struct CallerLimiter {
    limits: CallerLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Admission of one request; dropping it ends the request.
#[derive(Debug)]
pub struct Admitted {
    limiter: Arc<CallerLimiter>,
    principal: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut buckets = self
            .limiter
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(&self.principal) {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
    }
}

impl CallerLimiter {
    pub fn new(limits: CallerLimits) -> Arc<Self> {
        Arc::new(Self {
            limits: CallerLimits {
                concurrency: limits.concurrency.max(1),
                rate: limits.rate.max(1),
                burst: limits.burst.max(1),
            },
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a request of `principal`, or says why not.
    pub fn admit(self: &Arc<Self>, principal: &str) -> Result<Admitted, Refusal> {
        let now = Instant::now();
        let rate = f64::from(self.limits.rate);
        let capacity = f64::from(self.limits.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= TRACKED && !buckets.contains_key(principal) {
            // Forget callers that are idle and back to a full bucket: they lose nothing.
            buckets.retain(|_, b| {
                b.in_flight > 0 || b.tokens + now.duration_since(b.refilled).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(principal.to_owned()).or_insert(Bucket {
            tokens: capacity,
            refilled: now,
            in_flight: 0,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * rate).min(capacity);
        bucket.refilled = now;
        if bucket.in_flight >= self.limits.concurrency {
            return Err(Refusal::Concurrency);
        }
        if bucket.tokens < 1.0 {
            return Err(Refusal::Rate {
                retry_after: Duration::from_secs_f64((1.0 - bucket.tokens) / rate),
            });
        }
        bucket.tokens -= 1.0;
        bucket.in_flight += 1;
        Ok(Admitted {
            limiter: self.clone(),
            principal: principal.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_rate_then_concurrency() {
        let limiter = CallerLimiter::new(CallerLimits {
            concurrency: 2,
            rate: 1,
            burst: 3,
        });
        let a = limiter.admit("k1").expect("first");
        let b = limiter.admit("k1").expect("second");
        assert_eq!(limiter.admit("k1").unwrap_err(), Refusal::Concurrency);
        drop(a);
        drop(b);
        let _c = limiter.admit("k1").expect("third, from the burst");
        let refused = limiter.admit("k1").unwrap_err();
        assert_eq!(refused.code(), "RATE_LIMITED");
        assert_eq!(refused.retry_after_secs(), 1);
        // Another caller is not affected.
        assert!(limiter.admit("k2").is_ok());
    }
}
