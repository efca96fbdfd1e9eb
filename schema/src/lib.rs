//! The subject model and its GraphQL schema: the registry of connectors, the static resolution
//! plan, the executor that follows the identity graph, and the schema generated from them.
//!
//! [`SubjectService::new`] validates a registry and builds all three; the gateway binary serves
//! the result.

use subject_connectors::codes::ErrorCode;
pub mod access;
mod approval;
pub mod audit;
mod console_api;
mod gql_audit;
mod gql_connectors;
mod gql_files;
mod gql_subject;
mod gql_support;
pub mod graphql;
pub mod limits;
mod manual;
mod me;
pub mod objections;
pub mod ops;
pub mod plan;
pub mod privacy;
pub mod records;
pub mod registry;
pub mod request_state;
pub mod request_views;
pub mod requests;
pub mod resolve;
pub mod retention;
pub mod scope;
pub mod validated;
pub mod webhooks;

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

/// A parsed query document, what it costs, and the validations it passed.
pub struct PreparedQuery {
    pub document: async_graphql::parser::types::ExecutableDocument,
    pub cost: limits::QueryCost,
    validated: validated::Verdicts,
}

/// Most errors one answer carries; the rest are summed up in one last error.
pub const MAX_ERRORS: usize = 100;

/// A validated registry with its plan, executor and GraphQL schema.
pub struct SubjectService {
    pub executor: Arc<Executor>,
    pub schema: async_graphql::dynamic::Schema,
    /// Parsed documents with their costs, by query text.
    parsed: quick_cache::sync::Cache<String, Arc<PreparedQuery>>,
    limits: limits::CostLimits,
    max_subjects: usize,
    max_batch: usize,
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
        let limits = limits::CostLimits {
            max_fields: settings.max_complexity,
            max_depth: settings.max_depth,
            max_aliases: settings.max_aliases,
            max_directives: settings.max_directives,
        };
        let (max_subjects, max_batch) = (settings.max_subjects, settings.max_batch);
        let schema =
            build_schema(executor.clone(), settings).map_err(|e| ServiceError::Schema(e.to_string()))?;
        Ok(Self {
            executor,
            schema,
            parsed: quick_cache::sync::Cache::new(PARSED_QUERIES_KEPT),
            limits,
            max_subjects,
            max_batch,
        })
    }

    /// Executes a GraphQL request: parses it (or reuses the parsed document of a query text seen
    /// before, and the verdict of its validation with variables of the same types: see
    /// [`validated`]), refuses it before validation when its cost with fragments expanded is over
    /// the limits, and caps the subjects it may resolve and the errors it may answer with.
    pub async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let entry = match self.prepare(&request.query) {
            Ok(entry) => entry,
            Err(error) => return async_graphql::Response::from_errors(vec![error]),
        };
        let document = &entry.document;
        // Subjects the text asks for, refused before anything is resolved; the resolvers'
        // budget holds the rest.
        let asked = limits::count_subjects(
            document,
            request.operation_name.as_deref(),
            &request.variables,
            self.max_batch,
        );
        if asked > u64::try_from(self.max_subjects).unwrap_or(u64::MAX) {
            return async_graphql::Response::from_errors(vec![coded_error(
                format!(
                    "the request asks for {asked} subjects in all; at most {} are resolved per request (server.max_subjects): split it",
                    self.max_subjects
                ),
                ErrorCode::SubjectBudgetExceeded.as_str(),
            )]);
        }
        request.set_parsed_query(document.clone());
        if let Some(key) = validated::ValidationKey::new(
            entry.clone(),
            request.operation_name.as_deref(),
            &request.variables,
        ) {
            request = request.data(key);
        }
        let request = request.data(graphql::SubjectBudget::new(self.max_subjects));
        let mut response = self.schema.execute(request).await;
        cap_errors(&mut response.errors);
        response
    }

    /// The parsed document of `query` with its cost, or why it is refused before validation:
    /// a syntax error (reported by position only) or a cost over the limits.
    pub fn prepare(&self, query: &str) -> Result<Arc<PreparedQuery>, async_graphql::ServerError> {
        let entry = match self.parsed.get(query) {
            Some(entry) => entry,
            None => {
                let directives = limits::directives_upper_bound(query);
                if directives > self.limits.max_directives {
                    let error = limits::CostError::TooManyDirectives {
                        directives: directives as u64,
                        max: self.limits.max_directives,
                    };
                    return Err(coded_error(error.to_string(), error.code()));
                }
                let document = async_graphql::parser::parse_query(query).map_err(|e| syntax_error(&e))?;
                let cost = limits::measure(&document);
                let entry = Arc::new(PreparedQuery {
                    document,
                    cost,
                    validated: validated::Verdicts::default(),
                });
                if query.len() <= LONGEST_KEPT_QUERY {
                    self.parsed.insert(query.to_owned(), entry.clone());
                }
                entry
            }
        };
        self.limits
            .check(entry.cost)
            .map_err(|error| coded_error(error.to_string(), error.code()))?;
        Ok(entry)
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}

/// An error with a stable `extensions.code`.
pub fn coded_error(message: String, code: &'static str) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

/// A parse error reported by position only: the parser's own message quotes the line it failed
/// on, and a query can carry an email or a name typed into it.
fn syntax_error(error: &async_graphql::parser::Error) -> async_graphql::ServerError {
    use async_graphql::parser::Error as ParseError;
    let message = match error {
        ParseError::Syntax { .. } => "the query is not valid GraphQL syntax".to_owned(),
        ParseError::RecursionLimitExceeded => "the query is nested too deep to parse".to_owned(),
        ParseError::MultipleOperations { .. } => {
            "the document has an anonymous operation and others; name them all".to_owned()
        }
        ParseError::OperationDuplicated { .. } => "an operation name is defined twice".to_owned(),
        ParseError::FragmentDuplicated { .. } => "a fragment name is defined twice".to_owned(),
        ParseError::MissingOperation => "the document has no operation".to_owned(),
        _ => "the query could not be parsed".to_owned(),
    };
    let mut server_error = coded_error(message, ErrorCode::GraphqlParseFailed.as_str());
    server_error.locations = error.positions().take(1).collect();
    server_error
}

/// Keeps the first [`MAX_ERRORS`] errors and says how many more there were.
fn cap_errors(errors: &mut Vec<async_graphql::ServerError>) {
    if errors.len() > MAX_ERRORS {
        let dropped = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(coded_error(
            format!("{dropped} more errors are not shown"),
            ErrorCode::TooManyErrors.as_str(),
        ));
    }
}
