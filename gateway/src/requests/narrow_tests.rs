//! The engine against a custom in-memory connector whose records are narrower than its
//! declaration (it forgets the `email` value), or hold nothing where they were looked up:
//! planning and erasure fail with the store's decode error naming the field; nothing panics, and
//! nothing completes as if the person had no data.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use subject_connectors::connector::{ConnectorDescriptor, EntityCheck, EntityDescriptor, FieldDescriptor};
use subject_connectors::identity::{IdentityKindSpec, Normaliser, ValueFormat};
use subject_connectors::purpose::DataUse;
use subject_connectors::{
    Compare, Connector, ConnectorError, DataCategory, FieldType, Identity, IdentityKinds, IdentityLink,
    LookupRequest, Record, Value,
};
use subject_schema::Executor;
use subject_schema::access::{Caller, Role};
use subject_schema::plan::ResolutionPlan;
use subject_schema::registry::{Registration, Registry};
use subject_schema::requests::{PrivacyRequests, RequestKind, RequestStatus, Submission};

use super::store::RequestStore;
use super::{PrivacyEngine, RequestSettings};

/// users(id, email), found by email: every record it returns is `record` (the id only, or an
/// email of null).
struct Narrow {
    descriptor: ConnectorDescriptor,
    record: Record,
}

#[async_trait]
impl Connector for Narrow {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, _: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        Ok(vec![self.record.clone()])
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        Ok(Vec::new())
    }
}

fn kinds() -> IdentityKinds {
    let mut kinds = IdentityKinds::default();
    kinds.push(IdentityKindSpec {
        name: "email".into(),
        graphql_name: "EMAIL".into(),
        description: None,
        normalisers: vec![Normaliser::Trim, Normaliser::Lowercase],
        category: IdentityKindSpec::default_category(&ValueFormat::Email),
        format: ValueFormat::Email,
        max_length: 200,
        accepted_as_input: true,
    });
    kinds
}

fn field(name: &str, field_type: FieldType) -> FieldDescriptor {
    FieldDescriptor {
        name: name.into(),
        field_type,
        category: DataCategory::parse("user.unique_id").expect("a fideslang category"),
        description: None,
        erasure: None,
        rectify: None,
    }
}

async fn engine(dir: &std::path::Path, record: Record) -> Arc<PrivacyEngine> {
    let kinds = kinds();
    let email = kinds.by_name("email").expect("email");
    let narrow = Arc::new(Narrow {
        descriptor: ConnectorDescriptor {
            name: "accounts".into(),
            kind: "memory".into(),
            description: None,
            timeout: Duration::from_millis(500),
            purposes: None,
            disclosure: Default::default(),
            entities: vec![EntityDescriptor {
                name: "users".into(),
                description: None,
                source: "users".into(),
                fields: vec![field("id", FieldType::Bigint), field("email", FieldType::String)],
                lookups: vec![IdentityLink {
                    kind: email,
                    field: 1,
                    compare: Compare::Exact,
                }],
                yields: Vec::new(),
                primary_key: Some(0),
                files: None,
                erasure: Default::default(),
            }],
        },
        record,
    });
    let registry =
        Arc::new(Registry::new(kinds, vec![Registration::custom(narrow)]).expect("a valid registry"));
    let plan = Arc::new(ResolutionPlan::build(&registry, 8).expect("a valid plan"));
    let executor = Arc::new(Executor::new(registry, plan));
    let keys = crate::keys::KeyStore::open(&format!("sqlite://{}", dir.join("state.db").display()))
        .await
        .expect("a state database");
    let audit = Arc::new(
        crate::audit::DbAuditLog::open(keys.pool().clone())
            .await
            .expect("an audit log"),
    );
    let settings = RequestSettings {
        max_attempts: 1,
        ..RequestSettings::default()
    };
    PrivacyEngine::new(
        executor,
        RequestStore::new(keys.pool().clone(), false),
        audit,
        settings,
        dir.join("exports"),
        Some("test-pseudonym-key".into()),
    )
    .await
    .expect("an engine")
}

fn person(engine: &PrivacyEngine) -> Identity {
    let kinds = &engine.executor.registry().kinds;
    let kind = kinds.by_name("email").expect("email");
    kinds.parse_input(kind, "ada@example.com").expect("a valid email")
}

/// The erasure plan's error for the store, asserting the plan is blocked by it (the store
/// failed, rather than "nothing held").
async fn plan_failure(engine: &PrivacyEngine) -> String {
    let plan = engine.erasure_plan(person(engine)).await.expect("a plan");
    assert!(plan.blocked);
    plan.entries
        .iter()
        .find(|e| e.connector == "accounts" && e.entity == "*")
        .and_then(|failed| failed.error.clone())
        .expect("the store's failure in the plan")
}

#[tokio::test]
async fn a_record_narrower_than_its_declaration_fails_planning_and_erasure_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("narrow-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let engine = engine(&dir, vec![Value::Int(1)]).await;

    // The erasure plan says the store failed (and is blocked), rather than "nothing held".
    let error = plan_failure(&engine).await;
    assert!(error.contains("`email`"), "{error}");

    // An erasure fails when planned, naming the field, instead of completing with nothing done.
    let caller = Caller {
        principal: "test".into(),
        role: Arc::new(Role {
            name: "admin".into(),
            operations: Vec::new(),
            categories: Vec::new(),
            purposes: Vec::new(),
        }),
        purpose: DataUse::parse("essential").expect("a data use"),
    };
    let submitted = engine
        .submit(
            &caller,
            Submission {
                kind: RequestKind::Erasure,
                identity: person(&engine),
                idempotency_key: "narrow-1".into(),
                reason: None,
                regulation: None,
                changes: Vec::new(),
                purpose: None,
                allow_large_matches: false,
                webhook: None,
            },
        )
        .await
        .expect("submitted");
    engine
        .carry_out(&submitted.id, &AtomicBool::new(false))
        .await
        .expect("the state database answers");
    let request = engine
        .request(&submitted.id)
        .await
        .expect("readable")
        .expect("the request");
    assert_eq!(request.status, RequestStatus::Failed);
    let error = request.error.unwrap_or_default();
    assert!(
        error.contains("could not reach every store") && error.contains("`email`"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_record_without_the_value_it_was_looked_up_by_fails_planning_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("unowned-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    // As wide as declared, but the email it was found by is null: it belongs to nobody, so
    // dropping it would answer "nothing held" for a person the store holds.
    let engine = engine(&dir, vec![Value::Int(1), Value::Null]).await;
    let error = plan_failure(&engine).await;
    assert!(error.contains("users.email"), "{error}");
    assert!(!error.contains("ada@example.com"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
