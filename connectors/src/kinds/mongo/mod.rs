//! The MongoDB connector: an entity is a collection; fields and lookups follow dotted document
//! paths (`owner.id`, `exif.gps`).
//!
//! One `fetch` is one `find` with `$in` over every value given (per looked-up path, joined with
//! `$or`). ObjectIds and dates come out as strings (hex, RFC 3339); sub-documents and arrays of
//! them as JSON.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use secrecy::{ExposeSecret, SecretString};

use crate::connector::{
    Capabilities, Connector, ConnectorDescriptor, ConnectorError, EntityCheck, EntityErasure, ErasureBlocker,
    ErasureRequest, FieldChange, LookupRequest, WriteOutcome,
};
use crate::declaration::source::Location;
use crate::kinds::kind::{BuildError, Env, StoreDeclaration};

pub mod decl;

pub use decl::{Mongo, MongoStore};
use crate::identity::{IdentityKinds, IdentityValue};
use crate::mask::Pseudonymizer;
use crate::value::{FieldType, Record, Value};

/// Why a MongoDB connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MongoBuildError {
    #[error("{0}: invalid MongoDB connection url")]
    InvalidUrl(Location),
    #[error("{0}: no database: name one in the url (mongodb://host/DATABASE) or with `database`")]
    NoDatabase(Location),
}

/// A connector over one MongoDB database (or a server speaking its protocol).
pub struct MongoConnector {
    descriptor: ConnectorDescriptor,
    database: Database,
    /// Per entity, per field: the path split into its segments.
    paths: Vec<Vec<Vec<String>>>,
    /// Erasure blockers read from samples, with when.
    blockers: tokio::sync::Mutex<Option<(std::time::Instant, Vec<ErasureBlocker>)>>,
}

/// Values in one `$in`: a batch of many people is asked in finds of this many values, a few at
/// a time. Large `$in` lists cost some MongoDB-protocol servers more than linearly (SecantusDB:
/// 1,000 ids in one find took 1.39 s, in ten finds of 100 0.21 s), and a bounded list keeps each
/// query's plan and answer small on any server.
const MAX_VALUES_PER_FIND: usize = 100;
const FINDS_AT_ONCE: usize = 4;

impl MongoConnector {
    /// Builds the connector and its client for the URL resolved from the declaration's
    /// template. The client connects lazily: a server that is down shows in `health` and
    /// `sources`, not at start-up.
    pub async fn build(
        store: &MongoStore,
        mut descriptor: ConnectorDescriptor,
        resolved: SecretString,
    ) -> Result<Self, MongoBuildError> {
        let MongoStore { url, database, paths } = store;
        let location = url.location.clone();
        let mut options = ClientOptions::parse(resolved.expose_secret())
            .await
            .map_err(|_| MongoBuildError::InvalidUrl(location.clone()))?;
        let timeout = descriptor.timeout;
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.app_name = Some("subject-gateway".into());
        let name = database
            .clone()
            .or_else(|| options.default_database.clone())
            .ok_or_else(|| MongoBuildError::NoDatabase(location.clone()))?;
        let client = Client::with_options(options).map_err(|_| MongoBuildError::InvalidUrl(location))?;
        descriptor.kind = "mongodb".into();
        Ok(Self {
            database: client.database(&name),
            paths: paths
                .iter()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|p| p.split('.').map(str::to_owned).collect())
                        .collect()
                })
                .collect(),
            descriptor,
            blockers: tokio::sync::Mutex::new(None),
        })
    }

    /// The documents one lookup finds, as stored.
    async fn matching(&self, request: &LookupRequest) -> Result<Vec<Document>, ConnectorError> {
        let entity = self
            .descriptor
            .entities
            .get(request.entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{}", request.entity)))?;
        let paths = &self.paths[request.entity];
        let mut clauses: Vec<(String, Vec<Bson>)> = Vec::new();
        for (lookup, values) in &request.by {
            let Some(link) = entity.lookups.get(*lookup) else {
                continue;
            };
            let path = &paths[link.field];
            let values = bson_values(values, entity.fields[link.field].field_type, path);
            if !values.is_empty() {
                clauses.push((path.join("."), values));
            }
        }
        let total: usize = clauses.iter().map(|(_, values)| values.len()).sum();
        if total <= MAX_VALUES_PER_FIND {
            let mut clauses: Vec<Document> = clauses
                .into_iter()
                .map(|(path, values)| doc! { path: { "$in": values } })
                .collect();
            let filter = match clauses.len() {
                0 => return Ok(Vec::new()),
                1 => clauses.remove(0),
                _ => doc! { "$or": clauses },
            };
            return self.find(&entity.source, filter).await;
        }
        // A large batch: one `$in` of at most MAX_VALUES_PER_FIND values per find, a few at once;
        // a document found through two values or two lookups is kept once.
        let mut finds = Vec::new();
        for (path, values) in &clauses {
            for chunk in values.chunks(MAX_VALUES_PER_FIND) {
                finds.push(self.find(&entity.source, doc! { path.as_str(): { "$in": chunk } }));
            }
        }
        let found: Vec<Vec<Document>> = futures::stream::iter(finds)
            .buffered(FINDS_AT_ONCE)
            .try_collect()
            .await?;
        let mut seen = std::collections::HashSet::new();
        Ok(found
            .into_iter()
            .flatten()
            .filter(|d| d.get("_id").is_none_or(|id| seen.insert(id.to_string())))
            .collect())
    }

    /// Every document of `collection` that `filter` matches.
    async fn find(&self, collection: &str, filter: Document) -> Result<Vec<Document>, ConnectorError> {
        self.database
            .collection::<Document>(collection)
            .find(filter)
            .await
            .map_err(|e| self.store_error(e))?
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Deletes `documents` of entity `e` by `_id`, or `$set`s their masked fields one document
    /// at a time (a value masked already is left alone).
    async fn erase_documents(
        &self,
        e: usize,
        documents: &[Document],
        action: &EntityErasure,
        pseudonyms: &Pseudonymizer,
    ) -> Result<(), ConnectorError> {
        let entity = &self.descriptor.entities[e];
        let collection = self.database.collection::<Document>(&entity.source);
        match action {
            EntityErasure::Delete => {
                let ids: Vec<Bson> = documents.iter().filter_map(|d| d.get("_id").cloned()).collect();
                if !ids.is_empty() {
                    collection
                        .delete_many(doc! { "_id": { "$in": ids } })
                        .await
                        .map_err(|e| self.store_error(e))?;
                }
            }
            EntityErasure::Mask(fields) => {
                let paths = &self.paths[e];
                for document in documents {
                    let record = self.record(e, document)?;
                    let mut set = Document::new();
                    for (field, erasure) in fields {
                        if let Some(new) = record
                            .get(*field)
                            .and_then(|value| pseudonyms.masked(erasure, value))
                        {
                            set.insert(paths[*field].join("."), to_bson(&new));
                        }
                    }
                    if let (false, Some(id)) = (set.is_empty(), document.get("_id")) {
                        collection
                            .update_one(doc! { "_id": id.clone() }, doc! { "$set": set })
                            .await
                            .map_err(|e| self.store_error(e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The documents of entity `e` whose primary key is one of `keys`, as stored (the end of a
    /// retention finds retained records by the key the erasure kept).
    async fn by_key(&self, e: usize, keys: &[Value]) -> Result<Vec<Document>, ConnectorError> {
        let entity = self
            .descriptor
            .entities
            .get(e)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{e}")))?;
        let pk = entity.primary_key.ok_or(ConnectorError::Unsupported("fetch_keys"))?;
        let path = &self.paths[e][pk];
        let texts: Vec<String> = keys
            .iter()
            .filter_map(|key| match key {
                Value::String(text) => Some(text.clone()),
                Value::Int(number) => Some(number.to_string()),
                _ => None,
            })
            .collect();
        let values = bson_texts(texts.iter().map(String::as_str), entity.fields[pk].field_type, path);
        if values.is_empty() {
            return Ok(Vec::new());
        }
        self.database
            .collection::<Document>(&entity.source)
            .find(doc! { path.join("."): { "$in": values } })
            .await
            .map_err(|e| self.store_error(e))?
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))
    }

    /// A document read as a record of `entity`'s declared fields.
    fn record(&self, entity: usize, document: &Document) -> Result<Record, ConnectorError> {
        let descriptor = &self.descriptor.entities[entity];
        descriptor
            .fields
            .iter()
            .zip(&self.paths[entity])
            .map(|(field, path)| {
                convert(at_path(document, path), field.field_type).ok_or_else(|| ConnectorError::Decode {
                    field: field.name.clone(),
                    expected: field.field_type.as_str(),
                })
            })
            .collect()
    }

    fn store_error(&self, error: mongodb::error::Error) -> ConnectorError {
        use mongodb::error::ErrorKind;
        match *error.kind {
            ErrorKind::ServerSelection { .. } => {
                ConnectorError::Unavailable("no MongoDB server could be reached in time".into())
            }
            ErrorKind::Authentication { .. } => ConnectorError::Unauthorized,
            ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ConnectorError::Timeout(self.descriptor.timeout)
            }
            ErrorKind::Io(ref io) => ConnectorError::Unavailable(format!("i/o error: {}", io.kind())),
            ErrorKind::Command(ref command) => ConnectorError::Query {
                code: Some(command.code.to_string()),
            },
            _ => ConnectorError::Other("MongoDB error".into()),
        }
    }
}

/// Documents `check` reads from each collection (the first ones in `_id` order).
const SAMPLE_SIZE: i64 = 500;
/// How long the erasure blockers read from samples are reused before being read again.
const BLOCKERS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl MongoConnector {
    /// What a sample of an entity's documents shows: declared paths no document has (a warning:
    /// they read as null) and lookup fields stored as a type their lookups cannot match (an
    /// error: a person's documents there would never be found, nor erased).
    fn check_sample(&self, entity: usize, sample: &[Document], check: &mut EntityCheck) {
        let descriptor = &self.descriptor.entities[entity];
        if sample.is_empty() {
            check.warnings.push(format!(
                "collection `{}` is empty: the declared paths and lookup types could not be checked",
                descriptor.source
            ));
            return;
        }
        let paths = &self.paths[entity];
        for (f, (field, path)) in descriptor.fields.iter().zip(paths).enumerate() {
            if !sample.iter().any(|d| at_path(d, path).is_some()) {
                check.warning(
                    Some(f),
                    format!(
                        "path `{}` (field `{}`) occurs in none of the {} documents sampled in _id order: it reads as null",
                        path.join("."),
                        field.name,
                        sample.len()
                    ),
                );
            }
        }
        // A document whose value cannot be read as the declared type fails every fetch it is in.
        for (f, (field, path)) in descriptor.fields.iter().zip(paths).enumerate() {
            let mut unreadable: Vec<&'static str> = Vec::new();
            let mut count = 0usize;
            for value in sample.iter().filter_map(|d| at_path(d, path)) {
                if convert(Some(value), field.field_type).is_none() {
                    count += 1;
                    let name = bson_type_name(value);
                    if !unreadable.contains(&name) {
                        unreadable.push(name);
                    }
                }
            }
            if count > 0 {
                check.problem(
                    Some(f),
                    format!(
                        "field `{}` (path `{}`) is declared type = \"{}\" but {count} of {} sampled documents store {}, \
                         which cannot be read as that: reading a person's documents would fail",
                        field.name,
                        path.join("."),
                        field.field_type.as_str(),
                        sample.len(),
                        unreadable.join(", ")
                    ),
                );
            }
        }
        for (f, problem) in self.lookup_mismatches(entity, sample) {
            check.problem(Some(f), problem);
        }
    }

    /// Lookup fields the sampled documents store as a type their lookups cannot match.
    fn lookup_mismatches(&self, entity: usize, sample: &[Document]) -> Vec<(usize, String)> {
        let descriptor = &self.descriptor.entities[entity];
        let paths = &self.paths[entity];
        let mut problems = Vec::new();
        for link in &descriptor.lookups {
            let field = &descriptor.fields[link.field];
            let path = &paths[link.field];
            let mut stored = 0usize;
            let mut unmatched: Vec<&'static str> = Vec::new();
            let mut unmatched_count = 0usize;
            for document in sample {
                let values: Vec<&Bson> = match at_path(document, path) {
                    None | Some(Bson::Null | Bson::Undefined) => continue,
                    Some(Bson::Array(items)) => items.iter().collect(),
                    Some(value) => vec![value],
                };
                stored += 1;
                let misfits: Vec<&'static str> = values
                    .iter()
                    .filter(|v| !lookup_matches(field.field_type, path, v))
                    .map(|v| bson_type_name(v))
                    .collect();
                if !misfits.is_empty() {
                    unmatched_count += 1;
                    for name in misfits {
                        if !unmatched.contains(&name) {
                            unmatched.push(name);
                        }
                    }
                }
            }
            if unmatched_count > 0 {
                problems.push((link.field, format!(
                    "lookup field `{}` (path `{}`) is declared type = \"{}\" but {} of {} sampled documents store it as {}: \
                     lookups by it would never find (nor erase) them; declare the type the documents store",
                    field.name,
                    path.join("."),
                    field.field_type.as_str(),
                    unmatched_count,
                    stored,
                    unmatched.join(", ")
                )));
            }
        }
        problems
    }

    /// The first documents of an entity's collection in `_id` order.
    async fn sample(&self, entity: usize) -> Result<Vec<Document>, ConnectorError> {
        self.database
            .collection::<Document>(&self.descriptor.entities[entity].source)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .limit(SAMPLE_SIZE)
            .await
            .map_err(|e| self.store_error(e))?
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Lookups that cannot match what the documents store, from a sample of each collection,
    /// cached for [`BLOCKERS_TTL`].
    async fn live_erasure_blockers(&self) -> Result<Vec<ErasureBlocker>, ConnectorError> {
        let mut cache = self.blockers.lock().await;
        if let Some((read, blockers)) = cache.as_ref()
            && read.elapsed() < BLOCKERS_TTL
        {
            return Ok(blockers.clone());
        }
        let mut blockers = Vec::new();
        for e in 0..self.descriptor.entities.len() {
            let sample = self.sample(e).await?;
            blockers.extend(self.lookup_mismatches(e, &sample).into_iter().map(|(_, reason)| {
                ErasureBlocker {
                    entity: e,
                    reason,
                    unfindable: true,
                }
            }));
        }
        *cache = Some((std::time::Instant::now(), blockers.clone()));
        Ok(blockers)
    }
}

/// Whether a lookup of a field declared `field_type` can match a stored `value`: integer
/// lookups bind numbers (MongoDB compares numbers across int32, int64 and double), every other
/// type binds strings (and ObjectIds for `_id`), as [`bson_values`] does.
fn lookup_matches(field_type: FieldType, path: &[String], value: &Bson) -> bool {
    match field_type {
        FieldType::Int | FieldType::Bigint => matches!(
            value,
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
        ),
        _ => match value {
            Bson::String(_) => true,
            Bson::ObjectId(_) => path.len() == 1 && path[0] == "_id",
            _ => false,
        },
    }
}

/// The BSON type's name as MongoDB's `$type` spells it.
fn bson_type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => "javascript",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// The value at a dotted path of a document: through sub-documents, and through arrays by
/// numeric index.
/// A masked or corrected value as stored.
fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => Bson::Int64(*i),
        Value::Float(f) => Bson::Double(*f),
        Value::String(s) => Bson::String(s.clone()),
        Value::Json(j) => Bson::try_from(j.clone()).unwrap_or(Bson::Null),
    }
}

fn at_path<'a>(document: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let mut current = document.get(first)?;
    for segment in rest {
        current = match current {
            Bson::Document(inner) => inner.get(segment)?,
            Bson::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Identity values as BSON of the field's type (a value that cannot be one matches nothing).
fn bson_values(values: &[IdentityValue], field_type: FieldType, path: &[String]) -> Vec<Bson> {
    bson_texts(values.iter().map(IdentityValue::expose), field_type, path)
}

/// Texts as BSON of the field's type: an `_id` that reads as an ObjectId is asked for as one too.
fn bson_texts<'a>(texts: impl Iterator<Item = &'a str>, field_type: FieldType, path: &[String]) -> Vec<Bson> {
    let mut out = Vec::new();
    for text in texts {
        match field_type {
            FieldType::Int | FieldType::Bigint => {
                if let Ok(n) = text.parse::<i64>() {
                    out.push(Bson::Int64(n));
                }
            }
            _ => {
                if path.len() == 1
                    && path[0] == "_id"
                    && let Ok(id) = ObjectId::parse_str(text)
                {
                    out.push(Bson::ObjectId(id));
                }
                out.push(Bson::String(text.to_owned()));
            }
        }
    }
    out
}

/// A BSON value read as the declared type; `None` when it cannot be.
fn convert(value: Option<&Bson>, field_type: FieldType) -> Option<Value> {
    let Some(value) = value else {
        return Some(Value::Null);
    };
    if matches!(value, Bson::Null | Bson::Undefined) {
        return Some(Value::Null);
    }
    Some(match field_type {
        FieldType::String | FieldType::Uuid | FieldType::Decimal | FieldType::Date => match value {
            Bson::String(s) => Value::String(s.clone()),
            Bson::ObjectId(id) => Value::String(id.to_hex()),
            Bson::Int32(n) => Value::String(n.to_string()),
            Bson::Int64(n) => Value::String(n.to_string()),
            Bson::Double(n) => Value::String(n.to_string()),
            Bson::Decimal128(d) => Value::String(d.to_string()),
            Bson::DateTime(t) if field_type == FieldType::Date => {
                Value::String(t.try_to_rfc3339_string().ok()?.chars().take(10).collect())
            }
            Bson::Binary(b) => Value::String(uuid::Uuid::from_slice(&b.bytes).ok()?.hyphenated().to_string()),
            _ => return None,
        },
        FieldType::Int | FieldType::Bigint => Value::Int(match value {
            Bson::Int32(n) => i64::from(*n),
            Bson::Int64(n) => *n,
            Bson::Double(n) if n.fract() == 0.0 => *n as i64,
            Bson::String(s) => s.trim().parse().ok()?,
            _ => return None,
        }),
        FieldType::Float => Value::Float(match value {
            Bson::Double(n) => *n,
            Bson::Int32(n) => f64::from(*n),
            Bson::Int64(n) => *n as f64,
            _ => return None,
        }),
        FieldType::Bool => match value {
            Bson::Boolean(b) => Value::Bool(*b),
            _ => return None,
        },
        FieldType::Timestamp => match value {
            Bson::DateTime(t) => Value::String(t.try_to_rfc3339_string().ok()?),
            Bson::String(s) => Value::String(s.clone()),
            _ => return None,
        },
        FieldType::Json => Value::Json(value.clone().into_relaxed_extjson()),
    })
}

impl StoreDeclaration for MongoStore {
    fn build(
        &self,
        descriptor: ConnectorDescriptor,
        env: Env<'_>,
        _kinds: &IdentityKinds,
    ) -> BoxFuture<'static, Result<Arc<dyn Connector>, BuildError>> {
        let store = self.clone();
        let url = self.url.resolve(env);
        Box::pin(async move {
            match MongoConnector::build(&store, descriptor, url?).await {
                Ok(connector) => Ok(Arc::new(connector) as Arc<dyn Connector>),
                Err(error) => Err(BuildError::store(error)),
            }
        })
    }
}

#[async_trait]
impl Connector for MongoConnector {
    fn descriptor(&self) -> &ConnectorDescriptor {
        &self.descriptor
    }

    async fn fetch(&self, request: &LookupRequest) -> Result<Vec<Record>, ConnectorError> {
        let documents = self.matching(request).await?;
        documents.iter().map(|d| self.record(request.entity, d)).collect()
    }

    async fn erasure_blockers(&self) -> Result<Vec<ErasureBlocker>, ConnectorError> {
        self.live_erasure_blockers().await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            erase: true,
            rectify: true,
            async_jobs: false,
        }
    }

    /// Deletes the matched documents by `_id`, or `$set`s their masked fields one document at a
    /// time. Files the documents name are the gateway's to delete (it holds the storage), before
    /// it calls this.
    async fn erase(&self, request: &ErasureRequest) -> Result<WriteOutcome, ConnectorError> {
        let documents = self.matching(&request.lookup).await?;
        if documents.len() as u64 > request.max_records {
            return Err(ConnectorError::TooManyRecords {
                found: documents.len() as u64,
                limit: request.max_records,
            });
        }
        self.erase_documents(request.lookup.entity, &documents, &request.action, &request.pseudonyms)
            .await?;
        Ok(WriteOutcome::Done {
            records: documents.len() as u64,
        })
    }

    async fn fetch_keys(&self, entity: usize, keys: &[Value]) -> Result<Vec<Record>, ConnectorError> {
        let documents = self.by_key(entity, keys).await?;
        documents.iter().map(|d| self.record(entity, d)).collect()
    }

    async fn erase_keys(
        &self,
        entity: usize,
        keys: &[Value],
        action: &EntityErasure,
        pseudonyms: &Arc<Pseudonymizer>,
    ) -> Result<WriteOutcome, ConnectorError> {
        let documents = self.by_key(entity, keys).await?;
        self.erase_documents(entity, &documents, action, pseudonyms).await?;
        Ok(WriteOutcome::Done {
            records: documents.len() as u64,
        })
    }

    async fn rectify(
        &self,
        lookup: &LookupRequest,
        changes: &[FieldChange],
    ) -> Result<WriteOutcome, ConnectorError> {
        let documents = self.matching(lookup).await?;
        let entity = &self.descriptor.entities[lookup.entity];
        let paths = &self.paths[lookup.entity];
        let mut set = Document::new();
        for change in changes {
            set.insert(paths[change.field].join("."), to_bson(&change.value));
        }
        let ids: Vec<Bson> = documents.iter().filter_map(|d| d.get("_id").cloned()).collect();
        if !ids.is_empty() && !set.is_empty() {
            self.database
                .collection::<Document>(&entity.source)
                .update_many(doc! { "_id": { "$in": ids } }, doc! { "$set": set })
                .await
                .map_err(|e| self.store_error(e))?;
        }
        Ok(WriteOutcome::Done {
            records: documents.len() as u64,
        })
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(|e| self.store_error(e))
    }

    async fn check(&self) -> Result<Vec<EntityCheck>, ConnectorError> {
        let collections = self
            .database
            .list_collection_names()
            .await
            .map_err(|e| self.store_error(e))?;
        let mut checks = Vec::new();
        for (e, entity) in self.descriptor.entities.iter().enumerate() {
            let mut check = EntityCheck {
                fields: Vec::new(),
                entity: entity.name.clone(),
                problems: Vec::new(),
                warnings: Vec::new(),
            };
            if !collections.contains(&entity.source) {
                check
                    .problems
                    .push(format!("collection `{}` does not exist", entity.source));
                checks.push(check);
                continue;
            }
            let indexes: Vec<mongodb::IndexModel> = self
                .database
                .collection::<Document>(&entity.source)
                .list_indexes()
                .await
                .map_err(|e| self.store_error(e))?
                .try_collect()
                .await
                .map_err(|e| self.store_error(e))?;
            let sample = self.sample(e).await?;
            self.check_sample(e, &sample, &mut check);
            for link in &entity.lookups {
                let path = self.paths[e][link.field].join(".");
                if !indexes
                    .iter()
                    .any(|index| index.keys.keys().next() == Some(&path))
                {
                    check.warning(
                        Some(link.field),
                        format!("no index starts with {path}: lookups by it scan the whole collection"),
                    );
                }
            }
            checks.push(check);
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_the_bson_types_their_values_are_bound_as() {
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert!(lookup_matches(
            FieldType::Bigint,
            &path("owner.id"),
            &Bson::Int32(7)
        ));
        assert!(lookup_matches(
            FieldType::Int,
            &path("owner.id"),
            &Bson::Double(7.0)
        ));
        assert!(!lookup_matches(
            FieldType::Bigint,
            &path("owner.id"),
            &Bson::String("7".into())
        ));
        assert!(!lookup_matches(
            FieldType::String,
            &path("owner.id"),
            &Bson::Int64(7)
        ));
        assert!(lookup_matches(
            FieldType::String,
            &path("_id"),
            &Bson::ObjectId(ObjectId::new())
        ));
        assert!(!lookup_matches(
            FieldType::String,
            &path("owner.ref"),
            &Bson::ObjectId(ObjectId::new())
        ));
        assert_eq!(bson_type_name(&Bson::Int64(1)), "long");
    }

    #[test]
    fn paths_walk_documents_and_array_indexes() {
        let document =
            doc! { "owner": { "id": 7_i64 }, "exif": { "gps": [1.5, 2.5] }, "tags": [{ "name": "cat" }] };
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(at_path(&document, &path("owner.id")), Some(&Bson::Int64(7)));
        assert_eq!(
            at_path(&document, &path("tags.0.name")),
            Some(&Bson::String("cat".into()))
        );
        assert_eq!(at_path(&document, &path("owner.name")), None);
        assert_eq!(
            convert(at_path(&document, &path("exif.gps")), FieldType::Json),
            Some(Value::Json(serde_json::json!([1.5, 2.5])))
        );
        assert_eq!(
            convert(Some(&Bson::Int32(5)), FieldType::Bigint),
            Some(Value::Int(5))
        );
    }
}
