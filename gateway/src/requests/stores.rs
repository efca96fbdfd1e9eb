//! Access to the registered stores for the engine: where a task's connector and entity are, the
//! lookup a task keeps (normalised again), the files records name, and fetching a person's records
//! with every record checked against its declaration (a narrower record is an error, never a
//! panic, never a silent miss) and against the values asked for (another person's record a wide
//! search returned is never acted on).

use subject_connectors::storage::file_key;
use subject_connectors::{ConnectorError, LookupRequest, Record};

use super::PrivacyEngine;
use super::store::TaskRow;

impl PrivacyEngine {
    /// The records of the person `lookup` finds in connector `c`, each as wide as its entity
    /// declares. Records the store's search returned that hold none of the values asked for are
    /// someone else's (a search wider than equality): left out, as the executor leaves them, so
    /// that no file of theirs is deleted and no verification counts them.
    pub(super) async fn fetch(
        &self,
        c: usize,
        lookup: &LookupRequest,
    ) -> Result<Vec<Record>, ConnectorError> {
        let registry = self.executor.registry();
        let connector = &registry.connectors[c].connector;
        let mut records = connector.fetch(lookup).await?;
        let entity =
            connector
                .descriptor()
                .entities
                .get(lookup.entity)
                .ok_or(ConnectorError::Unsupported(
                    "a lookup of an entity the connector does not declare",
                ))?;
        subject_schema::records::check_width(entity, &records)?;
        lookup.keep_owned(entity, &registry.kinds, &mut records);
        Ok(records)
    }

    pub(super) fn files_of(&self, connector: usize, entity: usize, records: &[Record]) -> Vec<String> {
        let registered = &self.executor.registry().connectors[connector];
        let descriptor = &registered.connector.descriptor().entities[entity];
        let (Some(files), Some(_)) = (&descriptor.files, &registered.storage) else {
            return Vec::new();
        };
        let names: Vec<String> = descriptor.fields.iter().map(|f| f.name.clone()).collect();
        records
            .iter()
            .filter_map(|r| file_key(&files.key, &names, r))
            .collect()
    }

    /// Where a task's connector and entity are in the registry.
    pub(super) fn locate(&self, task: &TaskRow) -> Option<(usize, usize)> {
        let registry = self.executor.registry();
        let c = registry
            .connectors
            .iter()
            .position(|r| r.connector.descriptor().name == task.connector)?;
        let e = registry.connectors[c]
            .connector
            .descriptor()
            .entities
            .iter()
            .position(|e| e.name == task.entity)?;
        Some((c, e))
    }

    pub(super) fn decode_lookup(
        &self,
        connector: usize,
        entity: usize,
        text: Option<&str>,
    ) -> Option<LookupRequest> {
        let stored: Vec<(usize, Vec<String>)> = serde_json::from_str(text?).ok()?;
        let registry = self.executor.registry();
        let descriptor = &registry.connectors[connector].connector.descriptor().entities[entity];
        let by = stored
            .into_iter()
            .filter_map(|(l, values)| {
                let link = descriptor.lookups.get(l)?;
                let spec = registry.kinds.get(link.kind);
                Some((
                    l,
                    values.iter().filter_map(|v| spec.normalise_stored(v)).collect(),
                ))
            })
            .collect();
        Some(LookupRequest { entity, by })
    }
}
