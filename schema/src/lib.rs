//! The subject model and its GraphQL schema: the registry of connectors, the static resolution
//! plan, the executor that follows the identity graph, and the schema generated from them.
//!
//! [`SubjectService::new`] validates a registry and builds all three; the gateway binary serves
//! the result.

pub mod graphql;
pub mod plan;
pub mod registry;
pub mod resolve;

use std::sync::Arc;

use subject_connectors::declaration::DeclarationErrors;

pub use graphql::{SchemaSettings, build_schema};
pub use plan::{EntityRef, ResolutionPlan};
pub use registry::{DeclarationOrigin, Registry};
pub use resolve::{BatchOutcome, Executor, SourceState};

/// Default bound on resolution rounds.
pub const DEFAULT_MAX_DEPTH: usize = 8;

/// A validated registry with its plan, executor and GraphQL schema.
pub struct SubjectService {
    pub executor: Arc<Executor>,
    pub schema: async_graphql::dynamic::Schema,
}

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Declarations(#[from] DeclarationErrors),
    #[error("the generated GraphQL schema is invalid: {0}")]
    Schema(String),
}

impl SubjectService {
    pub fn new(registry: Registry, max_depth: usize, settings: SchemaSettings) -> Result<Self, ServiceError> {
        let plan = ResolutionPlan::build(&registry, max_depth)?;
        let executor = Arc::new(Executor::new(Arc::new(registry), Arc::new(plan)));
        let schema =
            build_schema(executor.clone(), settings).map_err(|e| ServiceError::Schema(e.to_string()))?;
        Ok(Self { executor, schema })
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}
