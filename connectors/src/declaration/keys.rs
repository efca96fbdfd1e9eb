//! A connector file as written: the keys every store kind shares (`name`, `entities`, `lookup`,
//! `category`, …) with, at each of its three levels (the connector, an entity, a field), the keys
//! of its own kind (`url`, `table`, `path`, …).
//!
//! A kind declares its own keys as three ordinary serde structs ([`DeclaredKeys`]); the shared
//! ones are read here, by hand, as they come, so that the kind's struct is deserialized straight
//! from the TOML deserializer (`toml::Spanned` keeps working, which `#[serde(flatten)]` would
//! break). A key that is neither shared nor the kind's is not an error here: it is kept, with its
//! spans, as an [`UnknownKey`], so that validation can report every one of them at its line and
//! say which kind it belongs to.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use indexmap::IndexMap;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use toml::Spanned;

use crate::connector::Compare;
use crate::storage::decl::StorageDecl;
use crate::value::FieldType;

/// The keys one store kind adds to a connector file, one serde struct per level. A level with
/// none is [`NoKeys`].
pub trait DeclaredKeys {
    /// Beside `name`, `kind`, `timeout_ms`, … (e.g. `url`).
    type Connector: DeserializeOwned + fmt::Debug + Clone + Default;
    /// Beside `lookup`, `yields`, `fields`, … (e.g. `table`).
    type Entity: DeserializeOwned + fmt::Debug + Clone + Default;
    /// Beside `type`, `category`, … (e.g. `path`).
    type Field: DeserializeOwned + fmt::Debug + Clone + Default;
}

/// A level where a kind adds no keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoKeys {}

/// The three levels of a connector file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Connector,
    Entity,
    Field,
}

/// A key neither shared nor the kind's own, where it was written.
#[derive(Debug, Clone)]
pub struct UnknownKey {
    pub key: String,
    pub key_span: Range<usize>,
    pub value_span: Range<usize>,
}

/// One connector file: the shared keys, and `store`, the kind's own.
#[derive(Debug, Clone)]
pub struct ConnectorDecl<K: DeclaredKeys> {
    /// Defaults to the file name without `.toml`.
    pub name: Option<Spanned<String>>,
    /// The store kind, one of the registered kinds' names.
    pub kind: Spanned<String>,
    pub description: Option<String>,
    /// Per-call timeout in milliseconds (default 2000).
    pub timeout_ms: u64,
    /// Object storage holding the files that records point to.
    pub storage: Option<Spanned<StorageDecl>>,
    /// The purposes (fideslang data uses) this store's data may serve; a request stating another
    /// purpose gets nothing from it. Unrestricted when absent.
    pub purposes: Option<Vec<Spanned<String>>>,
    /// Who receives this data (GDPR Art. 15(1)(c)); exported with the person's data.
    pub recipients: Vec<String>,
    /// How long this data is kept (GDPR Art. 15(1)(d)).
    pub retention: Option<String>,
    /// Where this data comes from (GDPR Art. 15(1)(g)).
    pub source: Option<String>,
    pub entities: IndexMap<Spanned<String>, EntityDecl<K>>,
    /// The kind's own keys.
    pub store: K::Connector,
    /// Keys at the top of the file that nobody declares.
    pub unknown: Vec<UnknownKey>,
}

/// `[entities.NAME]` of a connector file.
#[derive(Debug, Clone)]
pub struct EntityDecl<K: DeclaredKeys> {
    pub description: Option<String>,
    /// A field unique per record; lets resolution skip lookups it already answered.
    pub primary_key: Option<Spanned<String>>,
    /// Identity kinds that find records, and the field each is compared with.
    pub lookup: Vec<LinkDecl>,
    /// Identity kinds the records yield, and the field each is read from.
    pub yields: Vec<LinkDecl>,
    /// How a record names its file in the connector's `[storage]`: `{ key = "{storage_key}" }`.
    pub files: Option<Spanned<FilesDecl>>,
    /// What erasing a person does to the records: delete (default), mask, retain, cascade.
    pub erasure: Option<Spanned<ErasureDecl>>,
    pub fields: IndexMap<Spanned<String>, FieldDecl<K>>,
    /// The kind's own keys.
    pub store: K::Entity,
    pub unknown: Vec<UnknownKey>,
}

/// `NAME = { type = "string", category = "user.contact.email" }`.
#[derive(Debug, Clone)]
pub struct FieldDecl<K: DeclaredKeys> {
    pub field_type: FieldType,
    pub category: Spanned<String>,
    pub description: Option<String>,
    /// What erasure does to the field when the entity is masked or retained.
    pub erasure: Option<Spanned<FieldErasureDecl>>,
    /// The subject attribute this field holds (`email`): `rectifySubject` corrects it here.
    pub rectify: Option<Spanned<String>>,
    /// The kind's own keys.
    pub store: K::Field,
    pub unknown: Vec<UnknownKey>,
}

/// `[entities.NAME.erasure]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureDecl {
    /// `delete` (default), `mask` (rewrite the fields that declare `erasure`), `retain` (keep for a
    /// legal obligation, fields masked) or `cascade` (removed with entity `with`).
    #[serde(default = "default_erasure_action")]
    pub action: Spanned<String>,
    /// Why retained records are kept; required with `retain`.
    pub legal_basis: Option<String>,
    /// How long retained records are kept, in days; required with `retain`.
    pub retention_days: Option<u32>,
    /// The timestamp or date field retention counts from (default: the erasure).
    pub retain_from: Option<Spanned<String>>,
    /// What happens when the retention ends: `delete` (default) or `pseudonymize`; `retain` only.
    pub after_retention: Option<Spanned<String>>,
    /// Most records one person may match before an erasure stops and asks for an override.
    pub max_records: Option<u64>,
    /// The entity whose erasure removes these records (`cascade`).
    pub with: Option<Spanned<String>>,
}

fn default_erasure_action() -> Spanned<String> {
    Spanned::new(0..0, "delete".to_owned())
}

/// A field's `erasure`: `"null"`, `"pseudonymize"`, `"redact"`, `"keep"` or `{ redact = "…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldErasureDecl {
    Named(String),
    Redact { redact: String },
}

/// `{ kind = "email", field = "email", compare = "lowercase" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDecl {
    pub kind: Spanned<String>,
    pub field: Spanned<String>,
    #[serde(default)]
    pub compare: Compare,
}

/// `files = { key = "{storage_key}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesDecl {
    pub key: Spanned<String>,
}

/// The shared keys of one level, read one by one as they come.
trait Shared: Sized {
    /// The keys, in the order messages list them.
    const KEYS: &'static [&'static str];
    /// The keys a file must write.
    const REQUIRED: &'static [&'static str];
    fn new() -> Self;
    /// Reads the value of `key`, one of [`Self::KEYS`].
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// The keys every kind shares at `level`, for messages that list what a level accepts.
pub fn shared_keys(level: Level) -> &'static [&'static str] {
    match level {
        Level::Connector => <ConnectorShared<NoKeys> as Shared>::KEYS,
        Level::Entity => <EntityShared<NoKeys> as Shared>::KEYS,
        Level::Field => <FieldShared as Shared>::KEYS,
    }
}

impl DeclaredKeys for NoKeys {
    type Connector = NoKeys;
    type Entity = NoKeys;
    type Field = NoKeys;
}

struct ConnectorShared<K: DeclaredKeys> {
    name: Option<Spanned<String>>,
    kind: Spanned<String>,
    description: Option<String>,
    timeout_ms: u64,
    storage: Option<Spanned<StorageDecl>>,
    purposes: Option<Vec<Spanned<String>>>,
    recipients: Vec<String>,
    retention: Option<String>,
    source: Option<String>,
    entities: IndexMap<Spanned<String>, EntityDecl<K>>,
}

impl<K: DeclaredKeys> Shared for ConnectorShared<K> {
    const KEYS: &'static [&'static str] = &[
        "name",
        "kind",
        "description",
        "timeout_ms",
        "storage",
        "purposes",
        "recipients",
        "retention",
        "source",
        "entities",
    ];
    const REQUIRED: &'static [&'static str] = &["kind", "entities"];

    fn new() -> Self {
        Self {
            name: None,
            kind: Spanned::new(0..0, String::new()),
            description: None,
            timeout_ms: 2000,
            storage: None,
            purposes: None,
            recipients: Vec::new(),
            retention: None,
            source: None,
            entities: IndexMap::new(),
        }
    }

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = Some(map.next_value()?),
            "kind" => self.kind = map.next_value()?,
            "description" => self.description = Some(map.next_value()?),
            "timeout_ms" => self.timeout_ms = map.next_value()?,
            "storage" => self.storage = Some(map.next_value()?),
            "purposes" => self.purposes = Some(map.next_value()?),
            "recipients" => self.recipients = map.next_value()?,
            "retention" => self.retention = Some(map.next_value()?),
            "source" => self.source = Some(map.next_value()?),
            _ => self.entities = map.next_value()?,
        }
        Ok(())
    }
}

struct EntityShared<K: DeclaredKeys> {
    description: Option<String>,
    primary_key: Option<Spanned<String>>,
    lookup: Vec<LinkDecl>,
    yields: Vec<LinkDecl>,
    files: Option<Spanned<FilesDecl>>,
    erasure: Option<Spanned<ErasureDecl>>,
    fields: IndexMap<Spanned<String>, FieldDecl<K>>,
}

impl<K: DeclaredKeys> Shared for EntityShared<K> {
    const KEYS: &'static [&'static str] = &[
        "description",
        "primary_key",
        "lookup",
        "yields",
        "files",
        "erasure",
        "fields",
    ];
    const REQUIRED: &'static [&'static str] = &["fields"];

    fn new() -> Self {
        Self {
            description: None,
            primary_key: None,
            lookup: Vec::new(),
            yields: Vec::new(),
            files: None,
            erasure: None,
            fields: IndexMap::new(),
        }
    }

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "description" => self.description = Some(map.next_value()?),
            "primary_key" => self.primary_key = Some(map.next_value()?),
            "lookup" => self.lookup = map.next_value()?,
            "yields" => self.yields = map.next_value()?,
            "files" => self.files = Some(map.next_value()?),
            "erasure" => self.erasure = Some(map.next_value()?),
            _ => self.fields = map.next_value()?,
        }
        Ok(())
    }
}

struct FieldShared {
    field_type: FieldType,
    category: Spanned<String>,
    description: Option<String>,
    erasure: Option<Spanned<FieldErasureDecl>>,
    rectify: Option<Spanned<String>>,
}

impl Shared for FieldShared {
    const KEYS: &'static [&'static str] = &["type", "category", "description", "erasure", "rectify"];
    const REQUIRED: &'static [&'static str] = &["type", "category"];

    fn new() -> Self {
        Self {
            field_type: FieldType::String,
            category: Spanned::new(0..0, String::new()),
            description: None,
            erasure: None,
            rectify: None,
        }
    }

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.field_type = map.next_value()?,
            "category" => self.category = map.next_value()?,
            "description" => self.description = Some(map.next_value()?),
            "erasure" => self.erasure = Some(map.next_value()?),
            _ => self.rectify = Some(map.next_value()?),
        }
        Ok(())
    }
}

/// Reads one level's table: the shared keys into `S`, the kind's own into `O`, the rest kept.
struct LevelVisitor<S, O>(PhantomData<(S, O)>);

impl<'de, S: Shared, O: DeserializeOwned> Visitor<'de> for LevelVisitor<S, O> {
    type Value = (S, O, Vec<UnknownKey>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut part = KindPart {
            map: &mut map,
            shared: S::new(),
            seen: Vec::new(),
            unknown: Vec::new(),
        };
        let own = O::deserialize(&mut part)?;
        let KindPart {
            shared,
            seen,
            unknown,
            ..
        } = part;
        if let Some(missing) = S::REQUIRED.iter().find(|key| !seen.contains(key)) {
            return Err(de::Error::missing_field(missing));
        }
        Ok((shared, own, unknown))
    }
}

/// The table as the kind's struct sees it: only its own keys; the shared ones are read on the
/// way into `shared`, the others kept in `unknown`.
struct KindPart<'a, A, S> {
    map: &'a mut A,
    shared: S,
    seen: Vec<&'static str>,
    unknown: Vec<UnknownKey>,
}

impl<'de, A: MapAccess<'de>, S: Shared> Deserializer<'de> for &mut KindPart<'_, A, S> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(KindKeys { part: self, own: &[] })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(KindKeys {
            part: self,
            own: fields,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

struct KindKeys<'p, 'a, A, S> {
    part: &'p mut KindPart<'a, A, S>,
    own: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>, S: Shared> MapAccess<'de> for KindKeys<'_, '_, A, S> {
    type Error = A::Error;

    fn next_key_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        loop {
            let Some(key) = self.part.map.next_key::<Spanned<String>>()? else {
                return Ok(None);
            };
            if let Some(shared) = S::KEYS.iter().find(|k| **k == key.get_ref().as_str()) {
                self.part.seen.push(shared);
                self.part.shared.read(shared, self.part.map)?;
            } else if self.own.contains(&key.get_ref().as_str()) {
                let name: String = key.into_inner();
                return seed.deserialize(name.into_deserializer()).map(Some);
            } else {
                let value = self.part.map.next_value::<Spanned<IgnoredAny>>()?;
                self.part.unknown.push(UnknownKey {
                    key_span: key.span(),
                    key: key.into_inner(),
                    value_span: value.span(),
                });
            }
        }
    }

    fn next_value_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.part.map.next_value_seed(seed)
    }
}

impl<'de, K: DeclaredKeys> Deserialize<'de> for ConnectorDecl<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shared, store, unknown) =
            deserializer.deserialize_map(LevelVisitor::<ConnectorShared<K>, K::Connector>(PhantomData))?;
        Ok(Self {
            name: shared.name,
            kind: shared.kind,
            description: shared.description,
            timeout_ms: shared.timeout_ms,
            storage: shared.storage,
            purposes: shared.purposes,
            recipients: shared.recipients,
            retention: shared.retention,
            source: shared.source,
            entities: shared.entities,
            store,
            unknown,
        })
    }
}

impl<'de, K: DeclaredKeys> Deserialize<'de> for EntityDecl<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shared, store, unknown) =
            deserializer.deserialize_map(LevelVisitor::<EntityShared<K>, K::Entity>(PhantomData))?;
        Ok(Self {
            description: shared.description,
            primary_key: shared.primary_key,
            lookup: shared.lookup,
            yields: shared.yields,
            files: shared.files,
            erasure: shared.erasure,
            fields: shared.fields,
            store,
            unknown,
        })
    }
}

impl<'de, K: DeclaredKeys> Deserialize<'de> for FieldDecl<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (shared, store, unknown) =
            deserializer.deserialize_map(LevelVisitor::<FieldShared, K::Field>(PhantomData))?;
        Ok(Self {
            field_type: shared.field_type,
            category: shared.category,
            description: shared.description,
            erasure: shared.erasure,
            rectify: shared.rectify,
            store,
            unknown,
        })
    }
}

/// The keys a serde struct declares (its field names), read from what its derived
/// `Deserialize` hands the deserializer.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were wanted"))
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}
