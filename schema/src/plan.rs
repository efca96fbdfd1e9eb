//! The resolution plan: computed once from the declarations, it says which entities each
//! identity kind finds and in which stages a lookup starting from each input kind proceeds.
//!
//! Stage 1 queries the entities found by the input kind; stage n+1 those found by kinds that stage
//! n yielded. Entities within a stage are queried concurrently. At run time the executor follows
//! the same graph value by value (new values of a kind already known are looked up too), bounded
//! by `max_depth` rounds.

use std::collections::BTreeSet;
use std::fmt;

use subject_connectors::IdentityKindId;
use subject_connectors::declaration::{DeclarationError, DeclarationErrors};

use crate::registry::Registry;

/// One entity of one connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    pub connector: usize,
    pub entity: usize,
}

/// An entity found by a kind, and which of its lookups does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupRef {
    pub entity: EntityRef,
    /// Index into the entity's `lookups`.
    pub lookup: usize,
}

/// The static plan.
#[derive(Debug, Clone)]
pub struct ResolutionPlan {
    /// For each identity kind, the entity lookups it drives.
    pub lookups_by_kind: Vec<Vec<LookupRef>>,
    /// For each identity kind, the stages of a lookup starting from it (empty for kinds that are
    /// not accepted as input).
    pub stages_by_kind: Vec<Vec<Vec<EntityRef>>>,
    /// Most rounds the executor runs before it stops following new identities.
    pub max_depth: usize,
}

impl ResolutionPlan {
    /// Builds the plan, refusing declarations whose entities cannot be reached from any input
    /// identity (for example two entities that only find each other: a cycle that cannot start).
    pub fn build(registry: &Registry, max_depth: usize) -> Result<Self, DeclarationErrors> {
        let kinds = registry.kinds.len();
        let mut lookups_by_kind: Vec<Vec<LookupRef>> = vec![Vec::new(); kinds];
        for (c, registered) in registry.connectors.iter().enumerate() {
            for (e, entity) in registered.connector.descriptor().entities.iter().enumerate() {
                for (l, link) in entity.lookups.iter().enumerate() {
                    lookups_by_kind[link.kind.index()].push(LookupRef {
                        entity: EntityRef {
                            connector: c,
                            entity: e,
                        },
                        lookup: l,
                    });
                }
            }
        }

        let mut stages_by_kind = Vec::with_capacity(kinds);
        let mut reachable: BTreeSet<EntityRef> = BTreeSet::new();
        for (kind, spec) in registry.kinds.iter() {
            if !spec.accepted_as_input {
                stages_by_kind.push(Vec::new());
                continue;
            }
            let stages = stages_from(registry, &lookups_by_kind, kind);
            reachable.extend(stages.iter().flatten().copied());
            stages_by_kind.push(stages);
        }

        let mut errors = Vec::new();
        for (c, registered) in registry.connectors.iter().enumerate() {
            for (e, entity) in registered.connector.descriptor().entities.iter().enumerate() {
                let here = EntityRef {
                    connector: c,
                    entity: e,
                };
                if reachable.contains(&here) {
                    continue;
                }
                let finders: Vec<&str> = entity
                    .lookups
                    .iter()
                    .map(|l| registry.kinds.get(l.kind).name.as_str())
                    .collect();
                let producers = producers_of(
                    registry,
                    &entity.lookups.iter().map(|l| l.kind).collect::<Vec<_>>(),
                );
                let why = if producers.is_empty() {
                    "no input identity and no other entity yields them".to_owned()
                } else {
                    format!(
                        "only {} yield{} them, and those are unreachable too (a cycle no input identity enters)",
                        producers.join(", "),
                        if producers.len() == 1 { "s" } else { "" }
                    )
                };
                errors.push(DeclarationError {
                    location: registry.entity_location(c, e),
                    message: format!(
                        "entity `{}` can never be reached: it is found by {} but {why}; accept one of those kinds as input or have a reachable entity yield it",
                        registry.entity_label(c, e),
                        finders.join(", "),
                    ),
                });
            }
        }
        let longest = stages_by_kind.iter().map(Vec::len).max().unwrap_or(0);
        if max_depth == 0 {
            errors.push(DeclarationError {
                location: subject_connectors::declaration::Location::file("gateway.toml".as_ref()),
                message: "resolution.max_depth must be at least 1".into(),
            });
        } else if longest > max_depth {
            errors.push(DeclarationError {
                location: subject_connectors::declaration::Location::file("gateway.toml".as_ref()),
                message: format!(
                    "the identity graph needs {longest} stages but resolution.max_depth is {max_depth}: raise it"
                ),
            });
        }
        if !errors.is_empty() {
            return Err(DeclarationErrors(errors));
        }
        Ok(Self {
            lookups_by_kind,
            stages_by_kind,
            max_depth,
        })
    }

    /// The plan as text: one line per input kind and stage.
    pub fn describe(&self, registry: &Registry) -> String {
        let mut out = String::new();
        for (kind, spec) in registry.kinds.iter() {
            let stages = &self.stages_by_kind[kind.index()];
            if stages.is_empty() {
                continue;
            }
            out.push_str(&format!("from {}:\n", spec.name));
            for (n, stage) in stages.iter().enumerate() {
                let names: Vec<String> = stage
                    .iter()
                    .map(|e| registry.entity_label(e.connector, e.entity))
                    .collect();
                out.push_str(&format!("  stage {}: {}\n", n + 1, names.join(", ")));
            }
        }
        out
    }
}

/// Stages of the kind-level walk from `start`.
fn stages_from(
    registry: &Registry,
    lookups_by_kind: &[Vec<LookupRef>],
    start: IdentityKindId,
) -> Vec<Vec<EntityRef>> {
    let mut known: BTreeSet<IdentityKindId> = BTreeSet::from([start]);
    let mut frontier = vec![start];
    let mut stages = Vec::new();
    let mut visited: BTreeSet<(EntityRef, usize)> = BTreeSet::new();
    while !frontier.is_empty() {
        let mut stage: BTreeSet<EntityRef> = BTreeSet::new();
        for kind in &frontier {
            for lookup in &lookups_by_kind[kind.index()] {
                if visited.insert((lookup.entity, lookup.lookup)) {
                    stage.insert(lookup.entity);
                }
            }
        }
        if stage.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for entity in &stage {
            let descriptor = &registry.connectors[entity.connector]
                .connector
                .descriptor()
                .entities[entity.entity];
            for link in &descriptor.yields {
                if known.insert(link.kind) {
                    next.push(link.kind);
                }
            }
        }
        stages.push(stage.into_iter().collect());
        frontier = next;
    }
    stages
}

/// `connector.entity` labels of entities that yield any of `kinds`.
fn producers_of(registry: &Registry, kinds: &[IdentityKindId]) -> Vec<String> {
    let mut out = Vec::new();
    for (c, registered) in registry.connectors.iter().enumerate() {
        for (e, entity) in registered.connector.descriptor().entities.iter().enumerate() {
            if entity.yields.iter().any(|y| kinds.contains(&y.kind)) {
                out.push(registry.entity_label(c, e));
            }
        }
    }
    out
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.connector, self.entity)
    }
}
