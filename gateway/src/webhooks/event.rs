//! The events webhooks carry: one per privacy-request event the engine records (every state
//! change, task progress, completion), typed `privacy_request.<kind>`, in the Standard Webhooks
//! body `{type, timestamp, data}`.
//!
//! **The body never holds an identity value:** the request's id and type, its status, the
//! engine's event message (connector and entity names, counts, error codes — the engine's
//! messages carry no values) and, once completed, the receipt's SHA-256.

use serde_json::json;

/// Every event type an endpoint may subscribe to: `privacy_request.` and the engine's event kind.
pub const EVENT_TYPES: &[&str] = &[
    "privacy_request.received",
    "privacy_request.planned",
    "privacy_request.task.started",
    "privacy_request.task.done",
    "privacy_request.task.failed",
    "privacy_request.task.waiting",
    "privacy_request.verified",
    "privacy_request.completed",
    "privacy_request.failed",
    "privacy_request.cancelled",
    "privacy_request.retried",
    "privacy_request.extended",
    "privacy_request.export.deleted",
    "privacy_request.awaiting_approval",
    "privacy_request.approved",
    "privacy_request.denied",
    "privacy_request.task.manual",
    "privacy_request.retention.ended",
];

/// The event type of an engine event kind (`completed` → `privacy_request.completed`). A kind the
/// list above does not know yet is still sent, to endpoints that take every type.
pub fn event_type(kind: &str) -> String {
    format!("privacy_request.{kind}")
}

/// One engine event, as the webhook body tells it.
pub struct RequestEvent<'a> {
    pub request_id: &'a str,
    /// ERASURE, EXPORT, … (`None` when the request row could not be read).
    pub request_type: Option<&'a str>,
    pub kind: &'a str,
    pub status: &'a str,
    pub message: &'a str,
    pub receipt_sha256: Option<&'a str>,
    pub at: &'a str,
}

impl RequestEvent<'_> {
    /// The body sent, the same bytes on every attempt (its signature covers them).
    pub fn body(&self) -> String {
        let mut data = json!({
            "requestId": self.request_id,
            "requestType": self.request_type,
            "event": self.kind,
            "status": self.status,
            "message": self.message,
        });
        if let (Some(digest), Some(object)) = (self.receipt_sha256, data.as_object_mut()) {
            object.insert("receiptSha256".into(), json!(digest));
        }
        json!({ "type": event_type(self.kind), "timestamp": self.at, "data": data }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_type_timestamp_and_data() {
        let body = RequestEvent {
            request_id: "pr_1",
            request_type: Some("ERASURE"),
            kind: "completed",
            status: "COMPLETED",
            message: "completed",
            receipt_sha256: Some("ab"),
            at: "2026-01-01T00:00:00.000000Z",
        }
        .body();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["type"], "privacy_request.completed");
        assert_eq!(parsed["timestamp"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(parsed["data"]["receiptSha256"], "ab");
        assert_eq!(parsed["data"]["requestId"], "pr_1");
        assert!(EVENT_TYPES.contains(&event_type("task.done").as_str()));
    }
}
