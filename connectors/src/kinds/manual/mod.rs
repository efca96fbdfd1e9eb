//! The manual connector: a store with no API (a paper archive, a vendor reached by email).
//! Reads find nothing in it (`subject` shows its entities empty; `connectors` lists it as
//! `manual`); erasure, export and rectification become manual tasks assigned to its role, which
//! the engine tracks until a person records the outcome (`completeManualTask`).

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::connector::{
    Capabilities, Connector, ConnectorDescriptor, ConnectorError, EntityCheck, LookupRequest, ManualSystem,
};
use crate::kinds::kind::{BuildError, Env, StoreDeclaration, built_now};
use crate::identity::IdentityKinds;
use crate::value::Record;

pub mod decl;

pub use decl::{Manual, ManualStore};

/// A store worked on by hand.
pub struct ManualConnector {
    descriptor: ConnectorDescriptor,
    manual: ManualSystem,
}

impl ManualConnector {
    pub fn new(mut descriptor: ConnectorDescriptor, store: &ManualStore) -> Self {
        descriptor.kind = "manual".into();
        Self {
            descriptor,
            manual: ManualSystem {
                role: store.role.clone(),
                instructions: store.instructions.clone(),
            },
        }
    }
}

impl StoreDeclaration for ManualStore {
    fn build(
        &self,
        descriptor: ConnectorDescriptor,
        _env: Env<'_>,
        _kinds: &IdentityKinds,
    ) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>> {
        built_now(Ok(ManualConnector::new(descriptor, self)))
    }
}

#[async_trait]
impl Connector for ManualConnector {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    /// Nothing can be read from a store without an API.
    async fn fetch(&self, _request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        Ok(self
            .descriptor
            .entities
            .iter()
            .map(|entity| EntityCheck {
                entity: entity.name.clone(),
                problems: Vec::new(),
                warnings: vec![format!(
                    "a manual system: nothing can be checked; its tasks go to role `{}`",
                    self.manual.role
                )],
                fields: Vec::new(),
            })
            .collect())
    }

    /// Erasure and rectification are carried out by people, as manual tasks.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            erase: true,
            rectify: true,
            async_jobs: false,
        }
    }

    fn manual(&self) -> Option<&ManualSystem> {
        Some(&self.manual)
    }
}
