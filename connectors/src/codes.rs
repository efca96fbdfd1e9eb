//! Every error code the gateway answers with, in one table: its text (the `code` in a GraphQL
//! error's `extensions`, a task's `errorCode`, the CLI's messages), what it means, its class and
//! whether retrying may help. Errors elsewhere name a variant here, never a literal; the README's
//! table is rendered from this one (a test keeps them equal).

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is wrong: fix it and send it again.
    Request,
    /// The credentials, role or purpose do not allow it.
    Access,
    /// A limit protecting the gateway or the stores: send less, or later.
    Limit,
    /// A store failed or refused: the store's operators, or a retry.
    Store,
    /// A privacy request cannot proceed as declared: the declaration or the store needs fixing.
    Declaration,
    /// The gateway's own state (audit trail, request database) failed.
    Gateway,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Request => "request",
            ErrorClass::Access => "access",
            ErrorClass::Limit => "limit",
            ErrorClass::Store => "store",
            ErrorClass::Declaration => "declaration",
            ErrorClass::Gateway => "gateway",
        }
    }
}

macro_rules! error_codes {
    ($($variant:ident = $text:literal, $class:ident, $transient:literal, $meaning:literal;)*) => {
        /// An error code (see the module documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }

            /// What it means, in a sentence.
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }

            /// Who has to act on it.
            pub fn class(self) -> ErrorClass {
                match self { $(ErrorCode::$variant => ErrorClass::$class,)* }
            }

            /// Whether the same request, sent again later, may succeed.
            pub fn transient(self) -> bool {
                match self { $(ErrorCode::$variant => $transient,)* }
            }
        }
    };
}

error_codes! {
    // The request itself.
    GraphqlParseFailed = "GRAPHQL_PARSE_FAILED", Request, false, "The query text is not GraphQL; the error names the position.";
    InvalidInput = "INVALID_INPUT", Request, false, "An argument is invalid (an unknown field to rectify, a missing reason, a bad cursor).";
    NotFound = "NOT_FOUND", Request, false, "No privacy request, task or export has that id.";
    Conflict = "CONFLICT", Request, false, "The request clashes with one that exists (an open request for the person, an idempotency key used for another request) or with the request's state.";
    UnknownIdentityKind = "UNKNOWN_IDENTITY_KIND", Request, false, "No identity kind of that name is declared.";
    IdentityKindNotAccepted = "IDENTITY_KIND_NOT_ACCEPTED", Request, false, "The identity kind is declared but not accepted as an input.";
    IdentityEmpty = "IDENTITY_EMPTY", Request, false, "The identity value is empty once normalised.";
    IdentityWildcard = "IDENTITY_WILDCARD", Request, false, "The identity value contains a wildcard (`%`, `*`, `_` where it would match others).";
    IdentityTooLong = "IDENTITY_TOO_LONG", Request, false, "The identity value is longer than its kind allows.";
    IdentityInvalid = "IDENTITY_INVALID", Request, false, "The identity value does not have its kind's format (or holds control characters).";
    SubscriptionsOnly = "SUBSCRIPTIONS_ONLY", Request, false, "The websocket carries subscriptions only; queries and mutations go to POST /graphql.";
    // Credentials, roles, purposes.
    Unauthenticated = "UNAUTHENTICATED", Access, false, "No credentials were sent.";
    InvalidCredentials = "INVALID_CREDENTIALS", Access, false, "The API key or token is not valid (unknown, revoked, expired, wrong signature) or names an unknown role.";
    InvalidPurpose = "INVALID_PURPOSE", Access, false, "No purpose was stated (`X-Purpose`), or it is not a declared purpose.";
    PurposeForbidden = "PURPOSE_FORBIDDEN", Access, false, "The purpose may not be used here: the role may not state it, or the connector is not used for it.";
    Forbidden = "FORBIDDEN", Access, false, "The role does not grant the operation (read, erase, export, audit, …).";
    FourEyes = "FOUR_EYES", Access, false, "The caller who submitted a request may not approve or deny it: another holder of `approve` must.";
    NotAssigned = "NOT_ASSIGNED", Access, false, "The manual task is assigned to another role: only that role (or `manage_requests`) records its outcome.";
    CategoryNotGranted = "CATEGORY_NOT_GRANTED", Access, false, "The role does not grant the field's data category; the field is withheld.";
    Objected = "OBJECTED", Access, false, "The person objected to the stated purpose (or one above it; GDPR Art. 21): they are withheld from reads for it, `null` with this error. Essential reads are never withheld.";
    // Limits.
    RateLimited = "RATE_LIMITED", Limit, true, "The caller sent more requests than its rate allows; retry after `Retry-After`.";
    CallerConcurrencyLimited = "CALLER_CONCURRENCY_LIMITED", Limit, true, "The caller has too many requests in flight.";
    TooManyConnections = "TOO_MANY_CONNECTIONS", Limit, true, "The server is at its connection limit and none is idle.";
    RequestTimeout = "REQUEST_TIMEOUT", Limit, true, "The request ran past the server's request timeout.";
    ResponseTooLarge = "RESPONSE_TOO_LARGE", Limit, false, "The answer is larger than the server sends; ask for fewer fields or people.";
    QueryTooComplex = "QUERY_TOO_COMPLEX", Limit, false, "The query selects more fields (fragments expanded) than allowed.";
    QueryTooDeep = "QUERY_TOO_DEEP", Limit, false, "The query nests deeper than allowed.";
    TooManyAliases = "TOO_MANY_ALIASES", Limit, false, "The query uses more aliases than allowed.";
    TooManyDirectives = "TOO_MANY_DIRECTIVES", Limit, false, "The query uses more directives than allowed.";
    FragmentCycle = "FRAGMENT_CYCLE", Limit, false, "The query's fragments spread each other in a cycle.";
    BatchTooLarge = "BATCH_TOO_LARGE", Limit, false, "More people asked for at once than `max_subjects` allows.";
    SubjectBudgetExceeded = "SUBJECT_BUDGET_EXCEEDED", Limit, false, "The request resolves more people (aliases, fragments) than `max_subjects` allows.";
    TooManyErrors = "TOO_MANY_ERRORS", Limit, false, "More errors than are reported; the first ones are listed.";
    ResolutionDepthExhausted = "RESOLUTION_DEPTH_EXHAUSTED", Limit, false, "Following the identity graph stopped at `max_depth` rounds; records further away were not searched.";
    SafetyLimit = "SAFETY_LIMIT", Limit, false, "An erasure or rectification matched more records than the entity's limit; nothing was changed.";
    // Stores.
    StoreUnavailable = "STORE_UNAVAILABLE", Store, true, "The store could not be reached (refused, reset, DNS).";
    StoreTimeout = "STORE_TIMEOUT", Store, true, "The store did not answer in time.";
    StoreQueryFailed = "STORE_QUERY_FAILED", Store, false, "The store refused the query (a missing table or column, a constraint); the error names its code, never values.";
    StoreDecodeFailed = "STORE_DECODE_FAILED", Store, false, "A stored value could not be read as its declared type.";
    StoreUnauthorized = "STORE_UNAUTHORIZED", Store, false, "The store refused the gateway's credentials.";
    StoreError = "STORE_ERROR", Store, false, "The store failed in another way; the message says how.";
    StorageUnavailable = "STORAGE_UNAVAILABLE", Store, true, "The file storage (S3, directory) could not be read.";
    UpstreamFailed = "UPSTREAM_FAILED", Store, true, "An entity that leads to this one failed, so this one was not searched for every identity: its records may be incomplete.";
    OperationUnsupported = "OPERATION_UNSUPPORTED", Store, false, "The connector does not support the operation (erasing a read-only store, …).";
    JobFailed = "JOB_FAILED", Store, false, "The store's deletion job reported failure.";
    JobTimeout = "JOB_TIMEOUT", Store, true, "The store's deletion job did not finish in time.";
    ManualTaskFailed = "MANUAL_TASK_FAILED", Store, false, "A person recorded that a manual task (a store without an API) failed; the note says why.";
    // Privacy requests that cannot proceed as declared.
    ErasureBlocked = "ERASURE_BLOCKED", Declaration, false, "The erasure cannot be carried out as declared (a NOT NULL column masked to null, an unfindable lookup, missing file storage); nothing was changed.";
    VerificationFailed = "VERIFICATION_FAILED", Declaration, false, "After acting, the store still holds what was erased or rectified.";
    UnknownEntity = "UNKNOWN_ENTITY", Declaration, false, "A task names a connector or entity that is no longer declared.";
    InvalidTask = "INVALID_TASK", Declaration, false, "A stored task cannot be carried out (its recorded plan does not fit the declaration).";
    // The gateway's own state.
    AuditUnavailable = "AUDIT_UNAVAILABLE", Gateway, true, "The audit trail could not record the access, so nothing was returned.";
    RequestsUnavailable = "REQUESTS_UNAVAILABLE", Gateway, true, "The privacy-request database could not be used.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table as Markdown, as the README shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| Code | Class | Retry may help | Meaning |\n|---|---|---|---|\n");
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            code.as_str(),
            code.class().as_str(),
            if code.transient() { "yes" } else { "no" },
            code.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{text} is not UPPER_SNAKE_CASE"
            );
        }
    }

    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's error-code table differs from connectors/src/codes.rs; paste this between its markers:\n{table}"
        );
    }
}
