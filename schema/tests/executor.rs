//! The executor against an in-memory connector: identity-graph shapes, stages, the fixpoint,
//! batching and failures, with no database (these run in milliseconds).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use subject_connectors::connector::{ConnectorDescriptor, EntityCheck, EntityDescriptor, FieldDescriptor};
use subject_connectors::identity::{IdentityKindSpec, Normaliser, ValueFormat};
use subject_connectors::{
    Compare, Connector, ConnectorError, DataCategory, FieldType, Identity, IdentityKinds, IdentityLink,
    LookupRequest, Record, Value,
};
use subject_schema::plan::ResolutionPlan;
use subject_schema::registry::{Registration, Registry};
use subject_schema::{Executor, SourceState};

/// A store in memory: per entity, its rows; an entity can be made to fail.
struct Memory {
    descriptor: ConnectorDescriptor,
    rows: Vec<Vec<Record>>,
    calls: AtomicUsize,
    failing: Mutex<HashMap<usize, ConnectorError>>,
}

#[async_trait]
impl Connector for Memory {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = self
            .failing
            .lock()
            .ok()
            .and_then(|f| f.get(&request.entity).cloned())
        {
            return Err(error);
        }
        let entity = &self.descriptor.entities[request.entity];
        Ok(self.rows[request.entity]
            .iter()
            .filter(|row| {
                request.by.iter().any(|(lookup, values)| {
                    let field = entity.lookups[*lookup].field;
                    row[field]
                        .as_identity_text()
                        .is_some_and(|text| values.iter().any(|v| v.expose() == text.as_ref()))
                })
            })
            .cloned()
            .collect())
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
    for (name, format, input) in [
        ("email", ValueFormat::Email, true),
        ("user_id", ValueFormat::Integer, true),
        ("ticket_id", ValueFormat::Integer, false),
    ] {
        kinds.push(IdentityKindSpec {
            name: name.into(),
            graphql_name: name.to_uppercase(),
            description: None,
            normalisers: vec![Normaliser::Trim, Normaliser::Lowercase],
            category: IdentityKindSpec::default_category(&format),
            format,
            max_length: 200,
            accepted_as_input: input,
        });
    }
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

/// `name(fields…)`, looked up by `lookups` (kind, field) and yielding `yields` (kind, field).
fn entity(
    kinds: &IdentityKinds,
    name: &str,
    fields: &[(&str, FieldType)],
    lookups: &[(&str, usize)],
    yields: &[(&str, usize)],
) -> EntityDescriptor {
    let link = |(kind, field): &(&str, usize)| IdentityLink {
        kind: kinds.by_name(kind).expect("a declared kind"),
        field: *field,
        compare: Compare::Exact,
    };
    EntityDescriptor {
        name: name.into(),
        description: None,
        source: name.into(),
        fields: fields.iter().map(|(n, t)| field(n, *t)).collect(),
        lookups: lookups.iter().map(link).collect(),
        yields: yields.iter().map(link).collect(),
        primary_key: Some(0),
        files: None,
        erasure: Default::default(),
    }
}

/// Two stores. accounts: users(id, email) by email and id, yielding user_id. helpdesk:
/// tickets(id, user_id) by user_id yielding ticket_id, comments(id, ticket_id) by ticket_id.
fn world(users: usize) -> (Executor, Arc<Memory>, Arc<Memory>, IdentityKinds) {
    let kinds = kinds();
    let accounts = Arc::new(Memory {
        descriptor: ConnectorDescriptor {
            name: "accounts".into(),
            kind: "memory".into(),
            description: None,
            timeout: Duration::from_millis(200),
            purposes: None,
            disclosure: Default::default(),
            entities: vec![entity(
                &kinds,
                "users",
                &[("id", FieldType::Bigint), ("email", FieldType::String)],
                &[("email", 1), ("user_id", 0)],
                &[("user_id", 0)],
            )],
        },
        rows: vec![
            (1..=users as i64)
                .map(|id| vec![Value::Int(id), Value::String(format!("p{id}@example.com"))])
                .collect(),
        ],
        calls: AtomicUsize::new(0),
        failing: Mutex::new(HashMap::new()),
    });
    let helpdesk = Arc::new(Memory {
        descriptor: ConnectorDescriptor {
            name: "helpdesk".into(),
            kind: "memory".into(),
            description: None,
            timeout: Duration::from_millis(200),
            purposes: None,
            disclosure: Default::default(),
            entities: vec![
                entity(
                    &kinds,
                    "tickets",
                    &[("id", FieldType::Bigint), ("user_id", FieldType::Bigint)],
                    &[("user_id", 1)],
                    &[("ticket_id", 0)],
                ),
                entity(
                    &kinds,
                    "comments",
                    &[("id", FieldType::Bigint), ("ticket_id", FieldType::Bigint)],
                    &[("ticket_id", 1)],
                    &[],
                ),
            ],
        },
        rows: vec![
            // Two tickets per user; one comment per ticket.
            (1..=users as i64)
                .flat_map(|u| {
                    [
                        vec![Value::Int(u * 10), Value::Int(u)],
                        vec![Value::Int(u * 10 + 1), Value::Int(u)],
                    ]
                })
                .collect(),
            (1..=users as i64)
                .flat_map(|u| [u * 10, u * 10 + 1])
                .map(|t| vec![Value::Int(t + 1000), Value::Int(t)])
                .collect(),
        ],
        calls: AtomicUsize::new(0),
        failing: Mutex::new(HashMap::new()),
    });
    let registry = Registry::new(
        kinds.clone(),
        vec![
            Registration::custom(accounts.clone()),
            Registration::custom(helpdesk.clone()),
        ],
    )
    .expect("a valid registry");
    let registry = Arc::new(registry);
    let plan = Arc::new(ResolutionPlan::build(&registry, 8).expect("a valid plan"));
    (Executor::new(registry, plan), accounts, helpdesk, kinds)
}

fn email(kinds: &IdentityKinds, n: usize) -> Identity {
    let kind = kinds.by_name("email").expect("email");
    kinds
        .parse_input(kind, &format!(" P{n}@Example.com "))
        .expect("a valid email")
}

#[tokio::test]
async fn the_graph_is_followed_to_a_fixpoint_in_stages() {
    let (executor, _, _, kinds) = world(3);
    let outcome = executor.resolve(vec![vec![email(&kinds, 2)]]).await;
    let subject = &outcome.subjects[0];
    assert_eq!(subject.records[0][0].len(), 1, "the user");
    assert_eq!(subject.records[1][0].len(), 2, "their two tickets");
    assert_eq!(subject.records[1][1].len(), 2, "a comment on each");
    // email -> users; user_id -> tickets (users by id is covered by the record itself);
    // ticket_id -> comments; nothing new after that.
    assert_eq!(outcome.rounds, 3);
    assert!(outcome.sources.iter().all(|s| s.state == SourceState::Ok));
}

#[tokio::test]
async fn many_subjects_cost_the_round_trips_of_one() {
    let (executor, accounts, helpdesk, kinds) = world(200);
    let outcome = executor
        .resolve((1..=200).map(|n| vec![email(&kinds, n)]).collect())
        .await;
    assert!(outcome.subjects.iter().all(|s| s.records[1][1].len() == 2));
    assert_eq!(accounts.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        helpdesk.calls.load(Ordering::SeqCst),
        2,
        "one call per entity per stage"
    );
    // Nobody gets anyone else's records.
    for (n, subject) in outcome.subjects.iter().enumerate() {
        assert_eq!(subject.records[0][0][0][0], Value::Int(n as i64 + 1));
    }
}

#[tokio::test]
async fn an_unknown_person_is_empty_not_an_error() {
    let (executor, _, _, kinds) = world(3);
    let outcome = executor.resolve(vec![vec![email(&kinds, 99)]]).await;
    assert!(outcome.subjects[0].records.iter().flatten().all(Vec::is_empty));
    assert!(outcome.entity_errors.iter().flatten().all(Option::is_none));
}

#[tokio::test]
async fn a_failed_entity_makes_everything_it_leads_to_an_error_never_empty() {
    let (executor, accounts, helpdesk, kinds) = world(3);
    accounts
        .failing
        .lock()
        .expect("lock")
        .insert(0, ConnectorError::Unauthorized);
    let outcome = executor.resolve(vec![vec![email(&kinds, 1)]]).await;
    // Tickets and comments were never asked (no user id was found): unknown, not empty.
    assert_eq!(helpdesk.calls.load(Ordering::SeqCst), 0);
    for entity in 0..2 {
        match &outcome.entity_errors[1][entity] {
            Some(ConnectorError::Unreached { upstream }) => assert_eq!(upstream, "accounts.users"),
            other => panic!("helpdesk entity {entity}: {other:?}"),
        }
    }
    assert_eq!(outcome.sources[1].state, SourceState::Error);
}

#[tokio::test]
async fn a_store_that_is_down_is_not_asked_again_in_a_later_round() {
    let (executor, _, helpdesk, kinds) = world(3);
    helpdesk
        .failing
        .lock()
        .expect("lock")
        .insert(0, ConnectorError::Unavailable("connection refused".into()));
    let outcome = executor.resolve(vec![vec![email(&kinds, 1)]]).await;
    assert_eq!(
        helpdesk.calls.load(Ordering::SeqCst),
        1,
        "tickets once; comments never"
    );
    // Comments carry the store's own error: the store is down.
    assert!(matches!(
        outcome.entity_errors[1][1],
        Some(ConnectorError::Unavailable(_))
    ));
    assert_eq!(
        outcome.subjects[0].records[0][0].len(),
        1,
        "the other store still answers"
    );
}

/// A custom connector that forgets a value: its records are narrower than its declaration.
struct Narrow(ConnectorDescriptor);

#[async_trait]
impl Connector for Narrow {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.0
    }

    async fn fetch(&self, _: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        Ok(vec![vec![Value::Int(1)]])
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_record_narrower_than_its_declaration_is_an_error_never_a_panic_or_a_miss() {
    let kinds = kinds();
    let narrow = Arc::new(Narrow(ConnectorDescriptor {
        name: "accounts".into(),
        kind: "memory".into(),
        description: None,
        timeout: Duration::from_millis(200),
        purposes: None,
        disclosure: Default::default(),
        entities: vec![entity(
            &kinds,
            "users",
            &[("id", FieldType::Bigint), ("email", FieldType::String)],
            &[("email", 1)],
            &[("user_id", 0)],
        )],
    }));
    let registry =
        Arc::new(Registry::new(kinds.clone(), vec![Registration::custom(narrow)]).expect("a valid registry"));
    let plan = Arc::new(ResolutionPlan::build(&registry, 8).expect("a valid plan"));
    let executor = Executor::new(registry, plan);
    let outcome = executor.resolve(vec![vec![email(&kinds, 1)]]).await;
    match &outcome.entity_errors[0][0] {
        Some(error @ ConnectorError::Decode { field, .. }) => {
            assert_eq!(field, "email");
            assert_eq!(error.code(), "STORE_DECODE_FAILED");
        }
        other => panic!("users: {other:?}"),
    }
    assert_eq!(outcome.sources[0].state, SourceState::Error);
    assert!(outcome.subjects[0].records[0][0].is_empty());
}

#[tokio::test]
async fn a_read_of_some_connectors_asks_only_them_and_what_leads_to_them_with_the_same_records() {
    let (executor, accounts, helpdesk, kinds) = world(3);
    let full = executor.resolve(vec![vec![email(&kinds, 2)]]).await;
    let (accounts_calls, helpdesk_calls) = (
        accounts.calls.load(Ordering::SeqCst),
        helpdesk.calls.load(Ordering::SeqCst),
    );
    // accounts alone: helpdesk leads nowhere accounts is looked up by, so it is not asked.
    let scope = executor.scope_of(&[0]).expect("a scope");
    let only = executor
        .resolve_in(vec![vec![email(&kinds, 2)]], Some(&scope))
        .await;
    assert_eq!(only.subjects[0].records[0], full.subjects[0].records[0]);
    assert_eq!(
        helpdesk.calls.load(Ordering::SeqCst),
        helpdesk_calls,
        "helpdesk not asked"
    );
    assert!(only.subjects[0].records[1].iter().all(Vec::is_empty));
    assert_eq!(only.sources[1].round_trips, 0);
    // helpdesk alone still needs accounts (users yield the user ids tickets are found by).
    let scope = executor.scope_of(&[1]).expect("a scope");
    let tickets = executor
        .resolve_in(vec![vec![email(&kinds, 2)]], Some(&scope))
        .await;
    assert_eq!(tickets.subjects[0].records[1], full.subjects[0].records[1]);
    assert!(accounts.calls.load(Ordering::SeqCst) > accounts_calls);
    assert!(executor.scope_of(&[]).is_none(), "no connector named: everything");
}

#[tokio::test]
async fn a_failure_inside_the_scope_still_marks_what_it_leads_to() {
    let (executor, accounts, _, kinds) = world(3);
    accounts
        .failing
        .lock()
        .expect("lock")
        .insert(0, ConnectorError::Unauthorized);
    let scope = executor.scope_of(&[1]).expect("a scope");
    let outcome = executor
        .resolve_in(vec![vec![email(&kinds, 1)]], Some(&scope))
        .await;
    for entity in 0..2 {
        assert!(
            matches!(
                &outcome.entity_errors[1][entity],
                Some(ConnectorError::Unreached { .. })
            ),
            "helpdesk entity {entity} is unknown, not empty"
        );
    }
    assert_eq!(outcome.sources[1].state, SourceState::Error);
}

/// A store found by email that answers after `delay`, and notes how many calls another store
/// had been asked by then.
struct Slow {
    descriptor: ConnectorDescriptor,
    delay: Duration,
    other: Arc<Memory>,
    other_calls_when_answering: AtomicUsize,
}

#[async_trait]
impl Connector for Slow {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, _: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        tokio::time::sleep(self.delay).await;
        self.other_calls_when_answering
            .store(self.other.calls.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(Vec::new())
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_slow_store_delays_only_what_it_leads_to() {
    let (_, accounts, helpdesk, kinds) = world(3);
    // A mailing archive found by email, slow to answer, leading nowhere.
    let slow = Arc::new(Slow {
        descriptor: ConnectorDescriptor {
            name: "archive".into(),
            kind: "memory".into(),
            description: None,
            timeout: Duration::from_secs(5),
            purposes: None,
            disclosure: Default::default(),
            entities: vec![entity(
                &kinds,
                "mailings",
                &[("email", FieldType::String)],
                &[("email", 0)],
                &[],
            )],
        },
        delay: Duration::from_millis(300),
        other: helpdesk.clone(),
        other_calls_when_answering: AtomicUsize::new(0),
    });
    let registry = Registry::new(
        kinds.clone(),
        vec![
            Registration::custom(accounts.clone()),
            Registration::custom(helpdesk.clone()),
            Registration::custom(slow.clone()),
        ],
    )
    .expect("a valid registry");
    let registry = Arc::new(registry);
    let plan = Arc::new(ResolutionPlan::build(&registry, 8).expect("a valid plan"));
    let executor = Executor::new(registry, plan);

    let outcome = executor.resolve(vec![vec![email(&kinds, 2)]]).await;
    let subject = &outcome.subjects[0];
    assert_eq!(subject.records[1][0].len(), 2, "their two tickets");
    assert_eq!(subject.records[1][1].len(), 2, "a comment on each");
    // Tickets (by the user id accounts found) and comments (by the tickets' ids) were asked
    // while the archive was still working: they did not wait for it.
    assert_eq!(slow.other_calls_when_answering.load(Ordering::SeqCst), 2);
    // Still one call per entity per stage.
    assert_eq!(accounts.calls.load(Ordering::SeqCst), 1);
    assert_eq!(helpdesk.calls.load(Ordering::SeqCst), 2);
    assert_eq!(outcome.rounds, 3);
    assert!(outcome.sources.iter().all(|s| s.state == SourceState::Ok));
}

#[tokio::test]
async fn max_depth_stops_following_and_says_so() {
    let (executor, _, helpdesk, kinds) = world(3);
    // Two stages: email -> users, user_id -> tickets; the tickets' ids are not followed. (A
    // declared graph deeper than max_depth is refused at start-up; at run time the bound still
    // holds for values that keep leading to new ones.)
    let registry = executor.registry().clone();
    let mut plan = ResolutionPlan::build(&registry, 8).expect("a valid plan");
    plan.max_depth = 2;
    let plan = Arc::new(plan);
    let shallow = Executor::new(registry, plan);
    let outcome = shallow.resolve(vec![vec![email(&kinds, 2)]]).await;
    let subject = &outcome.subjects[0];
    assert_eq!(subject.records[1][0].len(), 2, "their two tickets");
    assert!(subject.records[1][1].is_empty(), "comments are a stage too far");
    assert!(outcome.depth_exhausted);
    assert_eq!(outcome.rounds, 2);
    assert_eq!(helpdesk.calls.load(Ordering::SeqCst), 1);

    let full = executor.resolve(vec![vec![email(&kinds, 2)]]).await;
    assert!(!full.depth_exhausted);
}
