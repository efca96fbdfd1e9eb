//! The `Connector` trait every store kind implements, and the descriptors that say what a
//! connector holds.
//!
//! A connector is built from its declaration (see [`crate::declaration`]) and owns its pool or
//! client. The gateway only ever talks to stores through this trait: `fetch` for a batch of
//! identities, `health`, `check` against the declaration; `erase`, `rectify` and `job_status`
//! carry the privacy operations (capabilities say which a connector supports).

use crate::codes::ErrorCode;
use std::time::Duration;

use async_trait::async_trait;

use crate::category::DataCategory;
use crate::identity::{IdentityKindId, IdentityKinds, IdentityValue};
pub use crate::mask::FieldErasure;
use crate::value::{FieldType, Record};

/// What one connector holds: its name, kind and entities.
#[derive(Debug, Clone)]
pub struct ConnectorDescriptor {
    /// Unique name (`accounts`); the GraphQL field on `Subject` is its camelCase form.
    pub name: String,
    /// The store kind (`postgres`, `mysql`, `sqlite`, or a custom kind's name).
    pub kind: String,
    pub description: Option<String>,
    /// How long one call to the store may take before it counts as TIMEOUT.
    pub timeout: Duration,
    /// The purposes (fideslang data uses) this store's data may serve; `None`: not restricted.
    pub purposes: Option<Vec<crate::purpose::DataUse>>,
    /// What GDPR Art. 15 asks to be told about the store besides the data.
    pub disclosure: Disclosure,
    pub entities: Vec<EntityDescriptor>,
}

/// What an access request must tell besides the data (GDPR Art. 15(1)): who receives it, how long
/// it is kept, where it came from. Declared per connector; exported with the person's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disclosure {
    /// Recipients or categories of recipients (`Stripe (payment processor)`).
    pub recipients: Vec<String>,
    /// How long the data is kept, or the criteria deciding it.
    pub retention: Option<String>,
    /// Where the data came from when not from the person (`Collected from the person at sign-up`).
    pub source: Option<String>,
}

/// A set of records about people: a table, a collection, an API resource.
#[derive(Debug, Clone)]
pub struct EntityDescriptor {
    /// Unique within the connector (`users`).
    pub name: String,
    pub description: Option<String>,
    /// Where the records live in the store (a table name for SQL).
    pub source: String,
    pub fields: Vec<FieldDescriptor>,
    /// Identity kinds that find records of this entity, and in which field.
    pub lookups: Vec<IdentityLink>,
    /// Identity kinds that records of this entity yield, read from which field.
    pub yields: Vec<IdentityLink>,
    /// Index into `fields` of a field unique per record, when one is declared.
    pub primary_key: Option<usize>,
    /// How a record names its file in the connector's object storage, when it has one.
    pub files: Option<FilesRef>,
    /// What erasure does to this entity's records.
    pub erasure: ErasurePolicy,
}

/// What erasing a person does to one entity, as declared under `[entities.NAME.erasure]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasurePolicy {
    pub action: ErasureAction,
    /// Why the records are kept (retain), e.g. "Tax law: invoices are kept 10 years".
    pub legal_basis: Option<String>,
    /// How long retained records are kept, in days: after the erasure, or after each record's
    /// `retain_from` date when one is declared.
    pub retention_days: Option<u32>,
    /// Index of the timestamp or date field retention counts from (an invoice's issue date).
    pub retain_from: Option<usize>,
    /// Refuse to erase (before acting) when one person matches more records than this.
    pub max_records: Option<u64>,
    /// What happens to retained records when their retention ends (`after_retention`).
    pub after_retention: AfterRetention,
}

/// What the gateway does, unasked, to a retained record when its retention ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterRetention {
    /// Delete the record (the default).
    #[default]
    Delete,
    /// Keep the record with what is left of the person pseudonymized: every field of a `user`
    /// data category not masked already (but the primary key) becomes a keyed pseudonym (text)
    /// or null (other types).
    Pseudonymize,
}

impl AfterRetention {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterRetention::Delete => "DELETE",
            AfterRetention::Pseudonymize => "PSEUDONYMIZE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "DELETE" => Some(AfterRetention::Delete),
            "PSEUDONYMIZE" => Some(AfterRetention::Pseudonymize),
            _ => None,
        }
    }
}

/// The declared erasure action of an entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ErasureAction {
    /// Delete the matched records (the default).
    #[default]
    Delete,
    /// Rewrite the fields that declare an `erasure` and keep the records.
    Mask,
    /// Keep the records for a legal obligation, with their personal fields masked.
    Retain,
    /// Removed by the erasure of another entity of the same connector (index into `entities`):
    /// an API that deletes a person's events with the person.
    Cascade(usize),
}

impl ErasureAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErasureAction::Delete => "DELETE",
            ErasureAction::Mask => "MASK",
            ErasureAction::Retain => "RETAIN",
            ErasureAction::Cascade(_) => "CASCADE",
        }
    }
}

impl EntityDescriptor {
    /// The fields the end of a retention rewrites with [`AfterRetention::Pseudonymize`]: those
    /// erasure masks, and every other field of a `user` category but the primary key — text
    /// pseudonymized, other types nulled.
    pub fn pseudonymized_after_retention(&self) -> Vec<(usize, FieldErasure)> {
        let user = crate::category::DataCategory::parse("user").ok();
        self.fields
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.primary_key)
            .filter_map(|(i, f)| match &f.erasure {
                Some(erasure) if *erasure != FieldErasure::Keep => Some((i, erasure.clone())),
                _ if user.as_ref().is_some_and(|u| f.category.is_within(u)) => Some((
                    i,
                    if f.field_type == FieldType::String {
                        FieldErasure::Pseudonymize
                    } else {
                        FieldErasure::Null
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// The fields erasure rewrites (mask and retain), with what it does to each.
    pub fn masked_fields(&self) -> Vec<(usize, FieldErasure)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.erasure
                    .clone()
                    .filter(|e| *e != FieldErasure::Keep)
                    .map(|e| (i, e))
            })
            .collect()
    }
}

/// A record's file: the key template (`{storage_key}`, `uploads/{id}.jpg`) over its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesRef {
    pub key: String,
}

/// One declared field of an entity.
#[derive(Debug, Clone)]
pub struct FieldDescriptor {
    /// The name in the store (a column).
    pub name: String,
    pub field_type: FieldType,
    pub category: DataCategory,
    pub description: Option<String>,
    /// What erasure does to the field when its entity is masked or retained.
    pub erasure: Option<FieldErasure>,
    /// The subject attribute this field holds (`email`): `rectifySubject` changes it here.
    pub rectify: Option<String>,
}

/// How an identity kind is compared with a field's stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Stored values are already normalised: compare as they are (uses a plain index).
    #[default]
    Exact,
    /// Stored values may differ in case: compare lower-cased (PostgreSQL and SQLite use an index
    /// on `lower(column)`; MySQL/MariaDB rely on the column's case-insensitive collation).
    Lowercase,
}

/// A link between an identity kind and one field of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityLink {
    pub kind: IdentityKindId,
    /// Index into the entity's `fields`.
    pub field: usize,
    pub compare: Compare,
}

/// A batched lookup: for one entity, the values to find per lookup (index into
/// `EntityDescriptor::lookups`). A record matches when any of its lookup fields holds one of the
/// values given for that lookup.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub entity: usize,
    pub by: Vec<(usize, Vec<IdentityValue>)>,
}

impl LookupRequest {
    pub fn value_count(&self) -> usize {
        self.by.iter().map(|(_, values)| values.len()).sum()
    }

    /// Whether `record` holds, in one of the asked lookup fields, one of the values asked for,
    /// read back under the kind's normalisation: the test the executor applies before handing a
    /// record to a person. A store's search can be wider than equality (a search API that matches
    /// a prefix or a part of an address): what fails this test belongs to someone else and must
    /// never be erased, rectified, exported or counted for this person.
    pub fn owns(&self, entity: &EntityDescriptor, kinds: &IdentityKinds, record: &Record) -> bool {
        self.by.iter().any(|(lookup, values)| {
            let Some(link) = entity.lookups.get(*lookup) else {
                return false;
            };
            record
                .get(link.field)
                .and_then(|v| v.as_identity_text())
                .and_then(|text| kinds.get(link.kind).normalise_stored(&text))
                .is_some_and(|value| values.contains(&value))
        })
    }

    /// `records` without those [`Self::owns`] refuses; how many were left out.
    pub fn keep_owned(
        &self,
        entity: &EntityDescriptor,
        kinds: &IdentityKinds,
        records: &mut Vec<Record>,
    ) -> usize {
        let before = records.len();
        records.retain(|record| self.owns(entity, kinds, record));
        before - records.len()
    }
}

/// The class of a connector failure, as reported in `SourceStatus.status` and error extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Error,
    Timeout,
}

/// A connector failure. Messages name the store and the problem, never identity values or record
/// contents (store error texts, which may quote values, are reduced to their error codes).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store rejected the query{}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Query { code: Option<String> },
    #[error("could not decode field `{field}` as {expected}")]
    Decode { field: String, expected: &'static str },
    #[error("authentication to the store failed")]
    Unauthorized,
    #[error("operation `{0}` is not supported by this connector")]
    Unsupported(&'static str),
    #[error("{found} records match, more than the limit of {limit} for one person: nothing was changed")]
    TooManyRecords { found: u64, limit: u64 },
    /// Not searched completely: an entity whose records lead here failed, so identities it
    /// would have yielded were never looked up. An empty answer would not mean "nothing here".
    #[error("not searched completely: {upstream} failed, so identities it leads to were not looked up here")]
    Unreached { upstream: String },
    #[error("{0}")]
    Other(String),
}

impl ConnectorError {
    pub fn class(&self) -> FailureClass {
        match self {
            ConnectorError::Timeout(_) => FailureClass::Timeout,
            _ => FailureClass::Error,
        }
    }

    /// A stable machine-readable code for API error extensions.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::Unavailable(_) => ErrorCode::StoreUnavailable.as_str(),
            ConnectorError::Timeout(_) => ErrorCode::StoreTimeout.as_str(),
            ConnectorError::Query { .. } => ErrorCode::StoreQueryFailed.as_str(),
            ConnectorError::Decode { .. } => ErrorCode::StoreDecodeFailed.as_str(),
            ConnectorError::Unauthorized => ErrorCode::StoreUnauthorized.as_str(),
            ConnectorError::Unsupported(_) => ErrorCode::OperationUnsupported.as_str(),
            ConnectorError::TooManyRecords { .. } => ErrorCode::SafetyLimit.as_str(),
            ConnectorError::Unreached { .. } => ErrorCode::UpstreamFailed.as_str(),
            ConnectorError::Other(_) => ErrorCode::StoreError.as_str(),
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Unavailable(_) | ConnectorError::Timeout(_) | ConnectorError::Unreached { .. }
        )
    }
}

/// The result of checking one entity's declaration against the live store.
#[derive(Debug, Clone)]
pub struct EntityCheck {
    pub entity: String,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Findings (problems or warnings, by their text) about one declared field: the field's
    /// index, so the report can name the line it is declared on.
    pub fields: Vec<(String, usize)>,
}

impl EntityCheck {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds a problem, about the field at index `field` when given.
    pub fn problem(&mut self, field: Option<usize>, text: String) {
        if let Some(field) = field {
            self.fields.push((text.clone(), field));
        }
        self.problems.push(text);
    }

    /// Adds a warning, about the field at index `field` when given.
    pub fn warning(&mut self, field: Option<usize>, text: String) {
        if let Some(field) = field {
            self.fields.push((text.clone(), field));
        }
        self.warnings.push(text);
    }

    /// The field a finding (as added) is about.
    pub fn field_of(&self, finding: &str) -> Option<usize> {
        self.fields
            .iter()
            .find(|(text, _)| text == finding)
            .map(|(_, f)| *f)
    }
}

/// Why erasing an entity cannot be trusted on the live store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureBlocker {
    /// Index into the connector's entities.
    pub entity: usize,
    /// What is wrong, naming the column or path (never a value).
    pub reason: String,
    /// The entity's lookups cannot find what it holds: every erasure is refused, whether or not
    /// the person was found there (an erasure would otherwise "verify" against records it can
    /// never match). Otherwise only erasures that would act on the entity are refused.
    pub unfindable: bool,
}

/// Which operations a connector supports beyond reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub erase: bool,
    pub rectify: bool,
    pub async_jobs: bool,
}

/// What erasure does to the matched records of one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityErasure {
    /// Delete the records.
    Delete,
    /// Rewrite the listed fields (index into `fields`) and keep the records.
    Mask(Vec<(usize, FieldErasure)>),
}

/// One erasure call: which records (by lookup, like a fetch) and what to do to them.
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    pub lookup: LookupRequest,
    pub action: EntityErasure,
    /// Refuse to act when more records than this match (guards against widened matches).
    pub max_records: u64,
    /// Records found when the erasure was planned: an API that hides a half-deleted record from
    /// its search (a soft delete) still gets the rest of its calls after a crash.
    pub known: Vec<Record>,
    /// Computes keyed pseudonyms for `FieldErasure::Pseudonymize`.
    pub pseudonyms: std::sync::Arc<crate::mask::Pseudonymizer>,
}

/// A handle to an asynchronous job in a store (an HTTP vendor's deletion task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHandle(pub String);

/// The state of an asynchronous job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed(String),
}

/// What an erasure or rectification call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Done now: how many records were changed or removed.
    Done { records: u64 },
    /// Accepted by the store; finished later — poll `job_status` for every job.
    Pending { records: u64, jobs: Vec<JobHandle> },
}

/// How the erase of one entity is batched across requests (`max_batch` in its declaration):
/// the deletions of concurrent requests are coalesced into one call and one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseBatching {
    /// Most records one batched call carries.
    pub max_batch: usize,
    /// How long a batch stays open for more members after its first.
    pub window: std::time::Duration,
}

/// What one person's part of a batched erase is: the records found, and the values the batched
/// call carries for them (one per record, e.g. its `distinct_id`). Personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItems {
    pub records: u64,
    pub items: Vec<serde_json::Value>,
}

/// A store with no API (a paper archive, a vendor reached by email): people carry its privacy
/// requests out by hand, as manual tasks assigned to a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualSystem {
    /// The role the tasks are assigned to (a role of gateway.toml's `[roles]`).
    pub role: String,
    /// Per entity (in declaration order): what to do, for whoever carries a task out.
    pub instructions: Vec<String>,
}

/// One field change of a rectification.
#[derive(Debug, Clone)]
pub struct FieldChange {
    pub field: usize,
    pub value: crate::value::Value,
}

/// A store the gateway can read a subject from (and, per its capabilities, write to).
///
/// Implementations must keep every query parameterized and batched: one `fetch` is one round
/// trip (or one paginated walk) for all the values given, however many.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn descriptor(&self) -> &ConnectorDescriptor;

    /// Records of one entity matching any of the given identity values. Unknown values are an
    /// empty result, never an error.
    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError>;

    /// Whether the store answers at all.
    async fn health(&self) -> Result<(), ConnectorError>;

    /// Verifies the declaration against the store: every declared table and column exists.
    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError>;

    /// What would make erasing an entity fail, reach other people or miss records on the live
    /// store, found before anything is changed (a NOT NULL column a field masks to null, a
    /// primary key the store does not keep unique, a lookup that cannot match what is stored).
    /// `erasurePlan` shows them and an erasure touching a blocked entity refuses to start.
    /// Implementations may cache them.
    async fn erasure_blockers(&self) -> Result<Vec<ErasureBlocker>, ConnectorError> {
        Ok(Vec::new())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Erases the matched records of one entity as requested. Must be safe to repeat.
    async fn erase(&self, _request: &ErasureRequest) -> Result<WriteOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("erase"))
    }

    /// Whether [`Connector::erase_all`] is all-or-nothing (one database transaction): then the
    /// engine hands it every entity of one person's erasure in this store at once, so a failure
    /// leaves the store as it was and a retry runs it all again.
    fn erases_atomically(&self) -> bool {
        false
    }

    /// Erases several entities, in the order given. The default calls [`Connector::erase`] for
    /// each, stopping at the first failure (not atomic).
    async fn erase_all(&self, requests: &[ErasureRequest]) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            outcomes.push(self.erase(request).await?);
        }
        Ok(outcomes)
    }

    /// Changes fields of the matched records of one entity. Must be safe to repeat.
    async fn rectify(
        &self,
        _lookup: &LookupRequest,
        _changes: &[FieldChange],
    ) -> Result<WriteOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("rectify"))
    }

    /// Whether `erase` works for this entity.
    fn erases(&self, _entity: usize) -> bool {
        self.capabilities().erase
    }

    /// Whether `suppress` works for this entity.
    fn suppresses(&self, _entity: usize) -> bool {
        false
    }

    /// Tells the store to stop processing the matched records for the purposes it serves (an
    /// objection, withdrawn consent: an analytics opt-out). Must be safe to repeat.
    async fn suppress(&self, _lookup: &LookupRequest) -> Result<WriteOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("suppress"))
    }

    /// Records of entity `entity` whose primary key is one of `keys`: the end of a retention
    /// finds retained records by the key the erasure kept, not by identities. Batched like
    /// `fetch`; a key matching nothing is no error.
    async fn fetch_keys(
        &self,
        _entity: usize,
        _keys: &[crate::value::Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        Err(ConnectorError::Unsupported("fetch_keys"))
    }

    /// Erases the records of entity `entity` whose primary key is one of `keys` (the end of a
    /// retention): delete them, or rewrite `Mask`'s fields. All or nothing where the store can;
    /// must be safe to repeat (a key gone, a value masked already, changes nothing).
    async fn erase_keys(
        &self,
        _entity: usize,
        _keys: &[crate::value::Value],
        _action: &EntityErasure,
        _pseudonyms: &std::sync::Arc<crate::mask::Pseudonymizer>,
    ) -> Result<WriteOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("erase_keys"))
    }

    /// Whether entity `entity`'s erase is batched across requests, and how.
    fn erase_batching(&self, _entity: usize) -> Option<EraseBatching> {
        None
    }

    /// A batched erase, first half: the records `request` matches (refused past its
    /// `max_records`), as the items the batched call will carry. Changes nothing.
    async fn batch_items(&self, _request: &ErasureRequest) -> Result<BatchItems, ConnectorError> {
        Err(ConnectorError::Unsupported("batched erase"))
    }

    /// A batched erase, second half: the one call for a closed batch of entity `entity`,
    /// carrying every member's items; the job it started. Must be safe to repeat (a batch
    /// resent after a crash).
    async fn erase_batch(
        &self,
        _entity: usize,
        _items: &[serde_json::Value],
    ) -> Result<JobHandle, ConnectorError> {
        Err(ConnectorError::Unsupported("batched erase"))
    }

    /// The state of an asynchronous job started by `erase` or `rectify`.
    async fn job_status(&self, _job: &JobHandle) -> Result<JobStatus, ConnectorError> {
        Err(ConnectorError::Unsupported("job_status"))
    }

    /// A store people work on by hand (`kind = "manual"`): the engine gives each of its tasks to
    /// the role as a manual task, and never calls `erase`, `rectify` or `fetch` for it.
    fn manual(&self) -> Option<&ManualSystem> {
        None
    }
}

/// A declared connector that is not connected to its store: it serves its descriptor to offline
/// tools (`subject-gateway schema` needs no database and no secrets) and answers every call with
/// `Unavailable`.
pub struct Disconnected {
    descriptor: ConnectorDescriptor,
}

impl Disconnected {
    pub fn new(descriptor: ConnectorDescriptor) -> Self {
        Self { descriptor }
    }
}

#[async_trait]
impl Connector for Disconnected {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, _request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        Err(ConnectorError::Unavailable(
            "connector is not connected (offline mode)".into(),
        ))
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unavailable(
            "connector is not connected (offline mode)".into(),
        ))
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        Err(ConnectorError::Unavailable(
            "connector is not connected (offline mode)".into(),
        ))
    }
}
