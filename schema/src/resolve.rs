//! The executor: from the identities given, follow the identity graph to a fixpoint, one batched
//! store query per entity per stage, as many concurrently as can go.
//!
//! A batch of subjects shares its queries: an entity is asked once for every subject's values
//! waiting for it, then each returned record is handed to the subjects whose values it matched.
//! So N subjects cost the same number of round trips per stage as one.
//!
//! Lookups are pipelined, not run in rounds: an entity is asked as soon as no call still in
//! flight could (through the identity graph) bring it more values, so a slow store delays only
//! what it leads to. Waiting for every call that could still feed an entity keeps one call per
//! entity per stage; an entity also never has two calls in flight at once (the second would
//! not see the first one's failure).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indexmap::IndexMap;
use subject_connectors::{
    Connector, ConnectorError, FailureClass, Identity, IdentityValue, LookupRequest, Record,
};
use tracing::Instrument;

use crate::plan::{EntityRef, ResolutionPlan};
use crate::registry::Registry;
use crate::scope::Scope;

/// Where a resolved identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// Given by the caller.
    Input,
    /// Read from a record of this entity.
    Entity(EntityRef),
}

/// One identity of a subject, with how it was found.
#[derive(Debug, Clone)]
pub struct ResolvedIdentity {
    pub identity: Identity,
    pub source: IdentitySource,
    /// The stage that found it (0 for input): one past the depth of the value it was found by.
    pub depth: usize,
}

/// How a connector fared for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    Ok,
    Error,
    Timeout,
}

/// Per connector, for a batch: status, time spent, round trips, first error.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub state: SourceState,
    pub latency: Duration,
    pub round_trips: u32,
    pub error: Option<ConnectorError>,
}

/// One subject's outcome.
#[derive(Debug, Clone, Default)]
pub struct SubjectOutcome {
    pub identities: Vec<ResolvedIdentity>,
    /// `records[connector][entity]`.
    pub records: Vec<Vec<Vec<Record>>>,
}

impl SubjectOutcome {
    pub fn record_count(&self, connector: usize) -> usize {
        self.records[connector].iter().map(Vec::len).sum()
    }
}

/// The outcome of resolving a batch of subjects.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub subjects: Vec<SubjectOutcome>,
    /// One per registered connector.
    pub sources: Vec<SourceReport>,
    /// `entity_errors[connector][entity]`: why an entity's records are missing, if they are.
    pub entity_errors: Vec<Vec<Option<ConnectorError>>>,
    /// True when `max_depth` stopped resolution with identities still to follow.
    pub depth_exhausted: bool,
    /// Stages run: the deepest call (one past the deepest value it asked for).
    pub rounds: usize,
}

/// Runs resolution for batches of subjects against a registry and plan.
pub struct Executor {
    registry: Arc<Registry>,
    plan: Arc<ResolutionPlan>,
    /// Per connector, its entities and those that can lead to them ([`Scope::of_connector`]).
    scopes: Vec<Scope>,
    /// Per entity, the entities whose lookups its records can bring values to, directly or
    /// through others.
    feeds: HashMap<EntityRef, HashSet<EntityRef>>,
}

/// Per-subject state during resolution.
struct SubjectState {
    known: IndexMap<Identity, ResolvedIdentity>,
    /// Identities found and not yet queued for their lookups.
    pending: Vec<Identity>,
    /// Lookups already answered for this subject (`entity`, `lookup`, value), e.g. a primary key
    /// read from the very record that lookup would return.
    covered: HashSet<(EntityRef, usize, IdentityValue)>,
    records: Vec<Vec<Vec<Record>>>,
    /// Keys of records already held, per connector and entity, so a record found twice is kept
    /// once.
    record_keys: Vec<Vec<HashSet<String>>>,
}

impl Executor {
    pub fn new(registry: Arc<Registry>, plan: Arc<ResolutionPlan>) -> Self {
        let scopes = (0..registry.connectors.len())
            .map(|c| Scope::of_connector(&registry, c))
            .collect();
        let feeds = feeds(&registry, &plan);
        Self {
            registry,
            plan,
            scopes,
            feeds,
        }
    }

    /// Whether a call to `from` can still bring values to `to`'s lookups.
    fn can_feed(&self, from: EntityRef, to: EntityRef) -> bool {
        self.feeds.get(&from).is_some_and(|fed| fed.contains(&to))
    }

    /// The entities to resolve for a read of `connectors` only (`None` when none is named:
    /// resolve everything).
    pub fn scope_of(&self, connectors: &[usize]) -> Option<Scope> {
        Scope::union(connectors.iter().filter_map(|&c| self.scopes.get(c)))
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn plan(&self) -> &Arc<ResolutionPlan> {
        &self.plan
    }

    /// Resolves each of `inputs` (one or more identities per subject) to a subject.
    pub async fn resolve(&self, inputs: Vec<Vec<Identity>>) -> BatchOutcome {
        self.resolve_in(inputs, None).await
    }

    /// Resolves each of `inputs` asking only the entities of `scope` (every entity when
    /// `None`): the records of the connectors it was made for are those of a full resolution;
    /// the other entities are left empty, without errors, and their connectors unasked.
    pub async fn resolve_in(&self, inputs: Vec<Vec<Identity>>, scope: Option<&Scope>) -> BatchOutcome {
        let registry = &self.registry;
        let shape: Vec<usize> = registry
            .connectors
            .iter()
            .map(|c| c.connector.descriptor().entities.len())
            .collect();
        let mut subjects: Vec<SubjectState> = inputs
            .into_iter()
            .map(|identities| {
                let mut known = IndexMap::new();
                for identity in &identities {
                    known.entry(identity.clone()).or_insert_with(|| ResolvedIdentity {
                        identity: identity.clone(),
                        source: IdentitySource::Input,
                        depth: 0,
                    });
                }
                SubjectState {
                    pending: known.keys().cloned().collect(),
                    known,
                    covered: HashSet::new(),
                    records: shape.iter().map(|&n| vec![Vec::new(); n]).collect(),
                    record_keys: shape.iter().map(|&n| vec![HashSet::new(); n]).collect(),
                }
            })
            .collect();
        let mut sources: Vec<SourceReport> = registry
            .connectors
            .iter()
            .map(|_| SourceReport {
                state: SourceState::Ok,
                latency: Duration::ZERO,
                round_trips: 0,
                error: None,
            })
            .collect();
        let mut entity_errors: Vec<Vec<Option<ConnectorError>>> =
            shape.iter().map(|&n| vec![None; n]).collect();

        let mut rounds = 0;
        let mut depth_exhausted = false;
        let mut waiting: Waiting = IndexMap::new();
        self.gather(&mut subjects, &mut waiting, scope, &mut depth_exhausted);
        // Calls in flight, and what each was asked (by entity: one call per entity at a time).
        let mut in_flight = FuturesUnordered::new();
        let mut asked: HashMap<EntityRef, (Asked, usize)> = HashMap::new();
        loop {
            let ready: Vec<EntityRef> = waiting
                .keys()
                .copied()
                .filter(|entity| {
                    !asked.contains_key(entity) && !asked.keys().any(|&flying| self.can_feed(flying, *entity))
                })
                .collect();
            for entity in ready {
                let Some((by, level)) = waiting.shift_remove(&entity) else {
                    continue;
                };
                // A store that could not be reached (refused, timed out) is not asked again
                // within this resolution: its entities carry that call's error.
                if let Some(error) = &sources[entity.connector].error
                    && error.is_transient()
                {
                    entity_errors[entity.connector][entity.entity].get_or_insert_with(|| error.clone());
                    continue;
                }
                rounds = rounds.max(level);
                let connector = &registry.connectors[entity.connector].connector;
                let request = LookupRequest {
                    entity: entity.entity,
                    by: by
                        .iter()
                        .map(|(l, values)| (*l, values.keys().cloned().collect()))
                        .collect(),
                };
                asked.insert(entity, (by, level));
                in_flight.push(async move {
                    let (result, elapsed) = timed_fetch(connector.as_ref(), request).await;
                    (entity, result, elapsed)
                });
            }
            let Some((entity, result, elapsed)) = in_flight.next().await else {
                break;
            };
            let Some((by, level)) = asked.remove(&entity) else {
                continue;
            };
            let source = &mut sources[entity.connector];
            source.round_trips += 1;
            source.latency += elapsed;
            // A record narrower than its entity's declaration fails the entity: read by
            // position, it would match no one and yield nothing (a silent miss).
            let declared = &registry.connectors[entity.connector]
                .connector
                .descriptor()
                .entities[entity.entity];
            let result = result.and_then(|records| {
                crate::records::check_width(declared, &records)?;
                crate::records::check_attributable(declared, by.keys().copied(), &records)?;
                Ok(records)
            });
            match result {
                Ok(records) => {
                    self.distribute(&mut subjects, entity, &by, records, level);
                    self.gather(&mut subjects, &mut waiting, scope, &mut depth_exhausted);
                }
                Err(error) => {
                    let state = match error.class() {
                        FailureClass::Timeout => SourceState::Timeout,
                        FailureClass::Error => SourceState::Error,
                    };
                    if source.state == SourceState::Ok {
                        source.state = state;
                    }
                    source.error.get_or_insert_with(|| error.clone());
                    entity_errors[entity.connector][entity.entity].get_or_insert(error);
                }
            }
        }
        self.mark_unreached(&mut entity_errors, &mut sources, scope);
        metrics::counter!("subject_gateway_subjects_resolved_total").increment(subjects.len() as u64);
        metrics::histogram!("subject_gateway_resolution_rounds").record(rounds as f64);
        BatchOutcome {
            subjects: subjects
                .into_iter()
                .map(|s| {
                    // Calls finish in any order: identities are listed by stage, then by the
                    // entity that found them, then in the order found.
                    let mut identities: Vec<ResolvedIdentity> = s.known.into_values().collect();
                    identities.sort_by_key(|found| {
                        let source = match found.source {
                            IdentitySource::Input => (0, 0, 0),
                            IdentitySource::Entity(entity) => (1, entity.connector, entity.entity),
                        };
                        (found.depth, source)
                    });
                    SubjectOutcome {
                        identities,
                        records: s.records,
                    }
                })
                .collect(),
            sources,
            entity_errors,
            depth_exhausted,
            rounds,
        }
    }

    /// Marks every entity whose answer may be incomplete because an entity that could have led
    /// to it failed: the identities the failed entity would have yielded were never looked up,
    /// so "nothing found" there is not known. Such an entity gets an `Unreached` error (unless it
    /// has an error of its own) and its connector is no longer `Ok`; followed to a fixpoint.
    fn mark_unreached(
        &self,
        entity_errors: &mut [Vec<Option<ConnectorError>>],
        sources: &mut [SourceReport],
        scope: Option<&Scope>,
    ) {
        let registry = &self.registry;
        let name = |entity: EntityRef| {
            let descriptor = registry.connectors[entity.connector].connector.descriptor();
            format!("{}.{}", descriptor.name, descriptor.entities[entity.entity].name)
        };
        // The failed entities, and each failure's origin (the entity whose own call failed).
        let mut queue: Vec<(EntityRef, String)> = Vec::new();
        for (c, errors) in entity_errors.iter().enumerate() {
            for (e, error) in errors.iter().enumerate() {
                if error.is_some() {
                    let entity = EntityRef {
                        connector: c,
                        entity: e,
                    };
                    queue.push((entity, name(entity)));
                }
            }
        }
        while let Some((failed, origin)) = queue.pop() {
            let descriptor = registry.connectors[failed.connector].connector.descriptor();
            for link in &descriptor.entities[failed.entity].yields {
                for lookup in &self.plan.lookups_by_kind[link.kind.index()] {
                    let target = lookup.entity;
                    if scope.is_some_and(|scope| !scope.contains(target)) {
                        continue;
                    }
                    let slot = &mut entity_errors[target.connector][target.entity];
                    if slot.is_some() {
                        continue;
                    }
                    let source = &mut sources[target.connector];
                    // A store that is itself down says so; otherwise the entity was not reached.
                    let error = match &source.error {
                        Some(own)
                            if own.is_transient() && !matches!(own, ConnectorError::Unreached { .. }) =>
                        {
                            own.clone()
                        }
                        _ => ConnectorError::Unreached {
                            upstream: origin.clone(),
                        },
                    };
                    if source.state == SourceState::Ok {
                        source.state = SourceState::Error;
                    }
                    source.error.get_or_insert_with(|| error.clone());
                    *slot = Some(error);
                    queue.push((target, origin.clone()));
                }
            }
        }
    }

    /// Queues every pending identity for the lookups of its kind: per entity and lookup, each
    /// value and the subjects waiting for it, with the entity's stage (one past the deepest
    /// value queued). Identities found `max_depth` lookups away from the input are not followed
    /// (`exhausted` says some were left). Clears each subject's pending list.
    fn gather(
        &self,
        subjects: &mut [SubjectState],
        waiting: &mut Waiting,
        scope: Option<&Scope>,
        exhausted: &mut bool,
    ) {
        for (s, subject) in subjects.iter_mut().enumerate() {
            for identity in std::mem::take(&mut subject.pending) {
                let depth = subject.known.get(&identity).map_or(0, |known| known.depth);
                for lookup in &self.plan.lookups_by_kind[identity.kind.index()] {
                    if scope.is_some_and(|scope| !scope.contains(lookup.entity))
                        || subject
                            .covered
                            .contains(&(lookup.entity, lookup.lookup, identity.value.clone()))
                    {
                        continue;
                    }
                    if depth >= self.plan.max_depth {
                        *exhausted = true;
                        continue;
                    }
                    let (by, level) = waiting
                        .entry(lookup.entity)
                        .or_insert_with(|| (IndexMap::new(), 0));
                    *level = (*level).max(depth + 1);
                    by.entry(lookup.lookup)
                        .or_default()
                        .entry(identity.value.clone())
                        .or_default()
                        .push(s);
                }
            }
        }
    }

    /// Hands each record to the subjects whose looked-up values it matches, and harvests the
    /// identities it yields.
    fn distribute(
        &self,
        subjects: &mut [SubjectState],
        entity: EntityRef,
        by: &IndexMap<usize, IndexMap<IdentityValue, Vec<usize>>>,
        records: Vec<Record>,
        stage: usize,
    ) {
        let kinds = &self.registry.kinds;
        let descriptor = &self.registry.connectors[entity.connector]
            .connector
            .descriptor()
            .entities[entity.entity];
        for record in records {
            // Which subjects asked for a value this record holds.
            let mut owners: Vec<usize> = Vec::new();
            for (lookup, waiting) in by {
                let link = descriptor.lookups[*lookup];
                let Some(text) = record.get(link.field).and_then(|v| v.as_identity_text()) else {
                    continue;
                };
                let Some(value) = kinds.get(link.kind).normalise_stored(&text) else {
                    continue;
                };
                if let Some(subjects) = waiting.get(&value) {
                    owners.extend(subjects);
                }
            }
            owners.sort_unstable();
            owners.dedup();
            if owners.is_empty() {
                continue;
            }
            let key = match descriptor.primary_key {
                Some(pk) => format!("{:?}", record.get(pk)),
                None => format!("{record:?}"),
            };
            // Identities this record yields, and lookups it already answers.
            let mut yielded = Vec::new();
            for link in &descriptor.yields {
                let Some(text) = record.get(link.field).and_then(|v| v.as_identity_text()) else {
                    continue;
                };
                if let Some(value) = kinds.get(link.kind).normalise_stored(&text) {
                    yielded.push((link.kind, link.field, value));
                }
            }
            for &s in &owners {
                let subject = &mut subjects[s];
                if !subject.record_keys[entity.connector][entity.entity].insert(key.clone()) {
                    continue;
                }
                for (kind, field, value) in &yielded {
                    let identity = Identity {
                        kind: *kind,
                        value: value.clone(),
                    };
                    if descriptor.primary_key == Some(*field) {
                        for (l, link) in descriptor.lookups.iter().enumerate() {
                            if link.field == *field && link.kind == *kind {
                                subject.covered.insert((entity, l, value.clone()));
                            }
                        }
                    }
                    if !subject.known.contains_key(&identity) {
                        subject.known.insert(
                            identity.clone(),
                            ResolvedIdentity {
                                identity: identity.clone(),
                                source: IdentitySource::Entity(entity),
                                depth: stage,
                            },
                        );
                        subject.pending.push(identity);
                    }
                }
                subject.records[entity.connector][entity.entity].push(record.clone());
            }
        }
    }
}

/// Per lookup of an entity, each value asked and the subjects waiting for it.
type Asked = IndexMap<usize, IndexMap<IdentityValue, Vec<usize>>>;

/// Lookups queued per entity, with the stage each entity's call will be (one past the deepest
/// value in it).
type Waiting = IndexMap<EntityRef, (Asked, usize)>;

/// Per entity, every entity its records can bring lookup values to, directly or through others.
fn feeds(registry: &Registry, plan: &ResolutionPlan) -> HashMap<EntityRef, HashSet<EntityRef>> {
    let direct = |entity: EntityRef| -> Vec<EntityRef> {
        let descriptor = registry.connectors[entity.connector].connector.descriptor();
        descriptor.entities[entity.entity]
            .yields
            .iter()
            .flat_map(|link| plan.lookups_by_kind[link.kind.index()].iter().map(|l| l.entity))
            .collect()
    };
    let mut feeds = HashMap::new();
    for (c, registered) in registry.connectors.iter().enumerate() {
        for e in 0..registered.connector.descriptor().entities.len() {
            let start = EntityRef {
                connector: c,
                entity: e,
            };
            let mut reached: HashSet<EntityRef> = HashSet::new();
            let mut queue = direct(start);
            while let Some(next) = queue.pop() {
                if reached.insert(next) {
                    queue.extend(direct(next));
                }
            }
            feeds.insert(start, reached);
        }
    }
    feeds
}

/// Extra time given to a store call past its connector's timeout.
const TIMEOUT_GRACE: Duration = Duration::from_millis(100);

/// One store call with the connector's timeout, in its own span (no identity values in it).
async fn timed_fetch(
    connector: &dyn Connector,
    request: LookupRequest,
) -> (Result<Vec<Record>, ConnectorError>, Duration) {
    let descriptor = connector.descriptor();
    let entity = descriptor
        .entities
        .get(request.entity)
        .map_or("?", |e| e.name.as_str());
    let span = tracing::info_span!(
        "connector.fetch",
        connector = %descriptor.name,
        entity = %entity,
        values = request.value_count(),
        records = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let started = Instant::now();
    // A little grace past the connector's own timeout, so that a store that cannot be connected
    // to within it reports as unavailable (ERROR) and one that accepts but does not answer as
    // TIMEOUT.
    let limit = descriptor.timeout + TIMEOUT_GRACE;
    let result = async {
        match tokio::time::timeout(limit, connector.fetch(&request)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectorError::Timeout(descriptor.timeout)),
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();
    let outcome = result.as_ref().map_or_else(|e| e.code(), |_| "OK");
    metrics::histogram!(
        "subject_gateway_connector_call_seconds",
        "connector" => descriptor.name.clone(),
        "entity" => entity.to_owned(),
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
    match &result {
        Ok(records) => {
            span.record("records", records.len());
            span.record("outcome", "ok");
            metrics::counter!(
                "subject_gateway_connector_records_total",
                "connector" => descriptor.name.clone(),
                "entity" => entity.to_owned()
            )
            .increment(records.len() as u64);
        }
        Err(error) => {
            span.record("outcome", error.code());
            tracing::warn!(
                connector = %descriptor.name,
                entity = %entity,
                code = error.code(),
                error = %error,
                "connector call failed"
            );
        }
    }
    (result, elapsed)
}
