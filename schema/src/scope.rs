//! The entities a read needs: a `subject` query that selects only some connectors is resolved
//! over those connectors' entities and the entities that can lead to them, not over every store.
//!
//! An entity's records are found by the values of the identity kinds it is looked up by; those
//! values come from the input and from the entities that *yield* those kinds, which are found by
//! their own lookup kinds, and so on. The closure of a set of entities over "yields a kind it is
//! looked up by" therefore finds every value a full resolution would find for them, so their
//! records are exactly the same; entities outside it cannot change them. (A failure inside the
//! closure still marks what it could have led to, as in a full resolution.)

use crate::plan::EntityRef;
use crate::registry::Registry;

/// A set of entities, `[connector][entity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    entities: Vec<Vec<bool>>,
}

impl Scope {
    /// No entity.
    fn empty(registry: &Registry) -> Self {
        Self {
            entities: registry
                .connectors
                .iter()
                .map(|c| vec![false; c.connector.descriptor().entities.len()])
                .collect(),
        }
    }

    /// Every entity of `connector`, and every entity that can lead to one of them.
    pub fn of_connector(registry: &Registry, connector: usize) -> Self {
        let mut scope = Self::empty(registry);
        let mut queue = Vec::new();
        if let Some(entities) = scope.entities.get_mut(connector) {
            for (e, slot) in entities.iter_mut().enumerate() {
                *slot = true;
                queue.push(EntityRef { connector, entity: e });
            }
        }
        while let Some(entity) = queue.pop() {
            let descriptor = &registry.connectors[entity.connector]
                .connector
                .descriptor()
                .entities[entity.entity];
            for lookup in &descriptor.lookups {
                for (c, registered) in registry.connectors.iter().enumerate() {
                    for (e, other) in registered.connector.descriptor().entities.iter().enumerate() {
                        if !scope.entities[c][e] && other.yields.iter().any(|y| y.kind == lookup.kind) {
                            scope.entities[c][e] = true;
                            queue.push(EntityRef {
                                connector: c,
                                entity: e,
                            });
                        }
                    }
                }
            }
        }
        scope
    }

    /// The union of `scopes` (each a closure, so the union is one too); `None` when empty.
    pub fn union<'a>(mut scopes: impl Iterator<Item = &'a Scope>) -> Option<Self> {
        let mut union = scopes.next()?.clone();
        for scope in scopes {
            for (mine, theirs) in union.entities.iter_mut().zip(&scope.entities) {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    *a |= *b;
                }
            }
        }
        Some(union)
    }

    pub fn contains(&self, entity: EntityRef) -> bool {
        self.entities
            .get(entity.connector)
            .and_then(|c| c.get(entity.entity))
            .copied()
            .unwrap_or(false)
    }
}
