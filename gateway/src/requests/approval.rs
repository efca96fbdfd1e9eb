//! Approval (four eyes): requests of the types `[requests.approval] required` names are stored
//! AWAITING_APPROVAL (not claimed by any worker; the due date runs) until a holder of `approve`
//! other than the submitter approves them (RECEIVED: the worker takes them) or denies them
//! (DENIED, with the reason; the identity kept is forgotten). Both are audited and are events
//! (`approved`, `denied`), so webhooks tell them.

use serde_json::json;
use subject_connectors::codes::ErrorCode;
use subject_schema::access::Caller;
use subject_schema::request_views::{PlanView, RequestView};
use subject_schema::requests::RequestError;

use super::state::{RequestKind, RequestStatus};
use super::store::{self, RequestStore, StoreError};
use super::{PrivacyEngine, RequestInput, unavailable};

impl RequestStore {
    /// Moves an AWAITING_APPROVAL request to `to` (RECEIVED or DENIED) recording the decision;
    /// `false` when it was not awaiting approval any more. Denied, it forgets its input.
    async fn decide(
        &self,
        id: &str,
        to: RequestStatus,
        by: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let at = store::now();
        let denied = i64::from(to == RequestStatus::Denied);
        let done = sqlx::query(
            "UPDATE privacy_requests SET status = $1, decided_by = $2, decided_at = $3, decision_reason = $4, \
             updated_at = $3, lease_until = $3, \
             input = CASE WHEN $5 = 1 THEN NULL ELSE input END, \
             open_key = CASE WHEN $5 = 1 THEN NULL ELSE open_key END \
             WHERE id = $6 AND status = 'AWAITING_APPROVAL'",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(&at)
        .bind(reason)
        .bind(denied)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl PrivacyEngine {
    /// The status a new request of `kind` starts in.
    pub(super) fn initial_status(&self, kind: RequestKind) -> RequestStatus {
        if self.approval_required.contains(&kind) {
            RequestStatus::AwaitingApproval
        } else {
            RequestStatus::Received
        }
    }

    /// Whether `caller` may decide on request `row`: it must await approval, and the caller
    /// must not be its submitter.
    async fn decidable(&self, caller: &Caller, id: &str) -> Result<(), RequestError> {
        let row = self
            .store
            .request(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| RequestError::NotFound(id.to_owned()))?;
        if row.status != RequestStatus::AwaitingApproval {
            return Err(RequestError::Conflict(format!(
                "only a request AWAITING_APPROVAL can be approved or denied; this one is {}",
                row.status
            )));
        }
        if row.requested_by == caller.principal {
            return Err(RequestError::Refused(
                ErrorCode::FourEyes,
                "four eyes: the caller who submitted a request may not approve or deny it; another holder of `approve` must"
                    .into(),
            ));
        }
        Ok(())
    }

    pub(super) async fn approve_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<RequestView, RequestError> {
        self.decidable(caller, id).await?;
        if !self
            .store
            .decide(id, RequestStatus::Received, &caller.principal, None)
            .await
            .map_err(unavailable)?
        {
            return Err(RequestError::Conflict(
                "the request was decided on meanwhile".into(),
            ));
        }
        self.event(id, "approved", "approved: it runs now", RequestStatus::Received)
            .await;
        self.audit_action(caller, "request.approved", None, json!({ "request": id }))
            .await;
        tracing::info!(request = %id, "privacy request approved");
        self.wake.notify_one();
        self.existing_view(id).await
    }

    pub(super) async fn deny_request(
        &self,
        caller: &Caller,
        id: &str,
        reason: String,
    ) -> Result<RequestView, RequestError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            return Err(RequestError::Invalid(
                "reason: say why the request is denied (1 to 2000 characters)".into(),
            ));
        }
        self.decidable(caller, id).await?;
        if !self
            .store
            .decide(id, RequestStatus::Denied, &caller.principal, Some(reason))
            .await
            .map_err(unavailable)?
        {
            return Err(RequestError::Conflict(
                "the request was decided on meanwhile".into(),
            ));
        }
        self.event(id, "denied", "denied: nothing was done", RequestStatus::Denied)
            .await;
        self.audit_action(
            caller,
            "request.denied",
            None,
            json!({ "request": id, "reason": reason }),
        )
        .await;
        tracing::info!(request = %id, "privacy request denied");
        self.existing_view(id).await
    }

    /// What erasing the person of request `id` would do now, while it still holds the identity.
    pub(super) async fn plan_of_request(&self, id: &str) -> Result<Option<PlanView>, RequestError> {
        let Some(row) = self.store.request(id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let input: Option<RequestInput> = row.input.as_deref().and_then(|i| serde_json::from_str(i).ok());
        let Some(identity) = input.and_then(|i| self.input_identity(&i)) else {
            return Ok(None);
        };
        let (plan, blockers) = tokio::join!(self.plan_subject(&identity), self.erasure_blockers());
        Ok(Some(self.plan_view(&identity, &plan, &blockers)))
    }
}
