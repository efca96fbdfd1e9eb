//! The deliverer: claims due messages under a lease, signs and POSTs each with its endpoint's
//! timeout, and records the outcome — DELIVERED on a 2xx, else another attempt after an
//! exponential backoff with jitter, or DEAD once the next attempt would fall past the message's
//! retry window. Error texts name the failure (`HTTP 500`, `timed out after 2000 ms`), never the
//! URL (it may carry a token).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use super::Webhooks;
use super::outbox::{Attempt, Claimed};
use crate::requests::store;

/// How one attempt went.
enum Sent {
    Delivered(u16),
    Failed(Option<u16>, String),
}

impl Webhooks {
    /// Sends due messages until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut running = tokio::task::JoinSet::new();
        let capacity = self.settings.concurrency.max(1);
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        // At start (a restart is when a crash's loss shows), then every minute.
        let mut recovered_at: Option<std::time::Instant> = None;
        loop {
            while running.try_join_next().is_some() {}
            if recovered_at.is_none_or(|at| at.elapsed() >= super::recover::EVERY) {
                recovered_at = Some(std::time::Instant::now());
                self.recover_lost_events().await;
            }
            if running.len() < capacity {
                let lease = store::stamp(Utc::now() + self.lease());
                match self
                    .outbox
                    .claim(&self.owner, &lease, capacity - running.len())
                    .await
                {
                    Ok(claimed) if !claimed.is_empty() => {
                        for message in claimed {
                            let hooks = self.clone();
                            running.spawn(async move { hooks.deliver(message).await });
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "could not look for webhook messages"),
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_seconds.max(1) as i64)
    }

    /// One attempt of one claimed message, and its outcome recorded.
    async fn deliver(&self, message: Claimed) {
        let sent = self.send(&message).await;
        let outcome = match &sent {
            Sent::Delivered(_) => "delivered",
            Sent::Failed(..) => "failed",
        };
        metrics::counter!("subject_gateway_webhook_attempts_total", "endpoint" => message.endpoint.clone(), "outcome" => outcome)
            .increment(1);
        let recorded = match sent {
            Sent::Delivered(code) => {
                self.outbox
                    .record(
                        &message.id,
                        &self.owner,
                        &Attempt::Delivered {
                            status_code: i64::from(code),
                        },
                    )
                    .await
            }
            Sent::Failed(code, error) => {
                let wait = backoff(
                    message.attempts,
                    self.settings.first_retry_ms,
                    self.settings.max_retry_ms,
                );
                let next = store::stamp(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
                let dead = next > message.retry_until;
                if dead {
                    tracing::warn!(delivery = %message.id, endpoint = %message.endpoint, attempts = message.attempts, "webhook message DEAD: its retry window ended");
                    metrics::counter!("subject_gateway_webhook_dead_total", "endpoint" => message.endpoint.clone())
                        .increment(1);
                }
                self.outbox
                    .record(
                        &message.id,
                        &self.owner,
                        &Attempt::Failed {
                            status_code: code.map(i64::from),
                            error: &error,
                            next_attempt_at: &next,
                            dead,
                        },
                    )
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %message.id, "a webhook message's lease was taken over; it is sent again")
            }
            Err(error) => {
                tracing::warn!(delivery = %message.id, error = %error, "could not record a webhook attempt; it is sent again")
            }
        }
    }

    async fn send(&self, message: &Claimed) -> Sent {
        let Some(endpoint) = self.endpoints.get(&message.endpoint) else {
            return Sent::Failed(
                None,
                format!("the endpoint `{}` is no longer configured", message.endpoint),
            );
        };
        let timestamp = Utc::now().timestamp();
        let signature = endpoint.key.sign(&message.id, timestamp, &message.body);
        let timeout = endpoint.config.timeout;
        let response = self
            .client
            .post(endpoint.config.url.clone())
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => Sent::Delivered(response.status().as_u16()),
            Ok(response) => {
                let code = response.status().as_u16();
                Sent::Failed(Some(code), format!("HTTP {code}"))
            }
            Err(error) if error.is_timeout() => {
                Sent::Failed(None, format!("timed out after {} ms", timeout.as_millis()))
            }
            Err(error) if error.is_connect() => Sent::Failed(None, "could not connect".into()),
            Err(_) => Sent::Failed(None, "the request failed before an answer".into()),
        }
    }
}

/// The wait after attempt `attempts` (1, 2, …): `first` doubled per attempt, at most `max`,
/// then jittered to between half and all of it (so endpoints coming back are not stampeded).
fn backoff(attempts: i64, first_ms: u64, max_ms: u64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
    let base = first_ms.saturating_mul(1u64 << doublings).min(max_ms).max(1);
    Duration::from_millis(rand::rng().random_range(base / 2..=base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        for (attempt, base) in [(1, 100), (2, 200), (3, 400), (10, 1000), (100, 1000)] {
            let wait = backoff(attempt, 100, 1000).as_millis() as u64;
            assert!((base / 2..=base).contains(&wait), "attempt {attempt}: {wait} ms");
        }
    }
}
