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
pub use registry::{DeclarationOrigin, Registration, Registry};
pub use resolve::{BatchOutcome, Executor, SourceState};

/// Default bound on resolution rounds.
pub const DEFAULT_MAX_DEPTH: usize = 8;

/// Parsed query documents kept, by query text: clients send the same few queries over and over.
const PARSED_QUERIES_KEPT: usize = 1024;
/// Longer query texts are parsed every time rather than kept.
const LONGEST_KEPT_QUERY: usize = 16 * 1024;

/// A validated registry with its plan, executor and GraphQL schema.
pub struct SubjectService {
    pub executor: Arc<Executor>,
    pub schema: async_graphql::dynamic::Schema,
    parsed: quick_cache::sync::Cache<String, Arc<async_graphql::parser::types::ExecutableDocument>>,
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
        Ok(Self {
            executor,
            schema,
            parsed: quick_cache::sync::Cache::new(PARSED_QUERIES_KEPT),
        })
    }

    /// Executes a GraphQL request, reusing the parsed document of a query text seen before
    /// (validation still runs on every request).
    pub async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        if request.query.len() <= LONGEST_KEPT_QUERY {
            match self.parsed.get(&request.query) {
                Some(document) => request.set_parsed_query(document.as_ref().clone()),
                None => {
                    if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
                        self.parsed
                            .insert(request.query.clone(), Arc::new(document.clone()));
                        request.set_parsed_query(document);
                    }
                }
            }
        }
        self.schema.execute(request).await
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}
