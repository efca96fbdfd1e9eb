//! The subject model and its GraphQL schema: the registry of connectors, the static resolution
//! plan, the executor that follows the identity graph, and the schema generated from them.
//!
//! [`SubjectService::new`] validates a registry and builds all three; the gateway binary serves
//! the result.

pub mod access;
pub mod audit;
pub mod graphql;
pub mod limits;
pub mod plan;
pub mod privacy;
pub mod registry;
pub mod requests;
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
    /// Parsed documents with their alias counts, by query text.
    parsed: quick_cache::sync::Cache<String, Arc<(async_graphql::parser::types::ExecutableDocument, usize)>>,
    max_aliases: usize,
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
        let max_aliases = settings.max_aliases;
        let schema =
            build_schema(executor.clone(), settings).map_err(|e| ServiceError::Schema(e.to_string()))?;
        Ok(Self {
            executor,
            schema,
            parsed: quick_cache::sync::Cache::new(PARSED_QUERIES_KEPT),
            max_aliases,
        })
    }

    /// Executes a GraphQL request, reusing the parsed document of a query text seen before
    /// (validation still runs on every request) and refusing queries with too many aliases.
    pub async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let cached = self.parsed.get(&request.query).or_else(|| {
            let document = async_graphql::parser::parse_query(&request.query).ok()?;
            let aliases = limits::count_aliases(&document);
            let entry = Arc::new((document, aliases));
            if request.query.len() <= LONGEST_KEPT_QUERY {
                self.parsed.insert(request.query.clone(), entry.clone());
            }
            Some(entry)
        });
        // A query that does not parse goes on to the schema, which reports the syntax error.
        if let Some(entry) = cached {
            let (document, aliases) = entry.as_ref();
            if *aliases > self.max_aliases {
                let mut error = async_graphql::ServerError::new(
                    format!(
                        "the query has {aliases} aliases; at most {} are allowed",
                        self.max_aliases
                    ),
                    None,
                );
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", "TOO_MANY_ALIASES");
                error.extensions = Some(extensions);
                return async_graphql::Response::from_errors(vec![error]);
            }
            request.set_parsed_query(document.clone());
        }
        self.schema.execute(request).await
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}
