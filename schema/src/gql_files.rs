//! Stored files in the schema: `files` on the record type of an entity whose records name a file
//! in object storage, and the `StoredFile` type (its metadata read once, when first asked for).

use std::sync::Arc;
use subject_connectors::codes::ErrorCode;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, TypeRef};
use async_graphql::{Error, ErrorExtensions, Value as GqlValue};
use subject_connectors::storage::{FileMeta, FileStore, file_key};
use subject_connectors::{ConnectorError, Value};

use crate::gql_support::{caller, category_error, leaf, null_with_error, ready};
use crate::resolve::Executor;

/// The category a record's stored file falls in.
fn files_category() -> &'static subject_connectors::DataCategory {
    static CATEGORY: std::sync::OnceLock<subject_connectors::DataCategory> = std::sync::OnceLock::new();
    CATEGORY.get_or_init(|| {
        subject_connectors::DataCategory::parse("user.content")
            .unwrap_or_else(|_| unreachable!("a taxonomy key"))
    })
}

/// A record's file in object storage; its metadata is read once, when first asked for.
struct FileView {
    key: String,
    store: Arc<FileStore>,
    meta: tokio::sync::OnceCell<Result<Option<FileMeta>, ConnectorError>>,
}

impl FileView {
    async fn meta(&self) -> Result<Option<&FileMeta>, &ConnectorError> {
        self.meta
            .get_or_init(|| self.store.head(&self.key))
            .await
            .as_ref()
            .map(Option::as_ref)
    }
}

/// `files` on the record type of an entity whose records point to files.
pub(crate) fn files_field(
    connector: usize,
    key_template: String,
    entity: &subject_connectors::EntityDescriptor,
) -> Field {
    let names: Vec<String> = entity.fields.iter().map(|f| f.name.clone()).collect();
    Field::new("files", TypeRef::named_nn_list("StoredFile"), move |ctx| {
        ready((|| {
            let caller = caller(&ctx)?;
            if !caller.role.sees(files_category()) {
                return Ok(null_with_error(&ctx, category_error(caller, files_category())));
            }
            let executor = ctx.data::<Arc<Executor>>()?;
            let record = ctx.parent_value.try_downcast_ref::<Vec<Value>>()?;
            let Some(key) = file_key(&key_template, &names, record) else {
                return Ok(Some(FieldValue::list(Vec::<FieldValue>::new())));
            };
            let registered = &executor.registry().connectors[connector];
            let store = registered.storage.clone().ok_or_else(|| {
                Error::new(format!(
                    "connector `{}` has no file storage connected",
                    registered.connector.descriptor().name
                ))
                .extend_with(|_, e| e.set("code", ErrorCode::StorageUnavailable.as_str()))
            })?;
            Ok(Some(FieldValue::list([FieldValue::owned_any(FileView {
                key,
                store,
                meta: tokio::sync::OnceCell::new(),
            })])))
        })())
    })
    .description("The file this record points to in object storage (declared `files.key`).")
}

/// A `StoredFile` field read from the file's metadata (null when the file is missing).
fn file_meta_field(name: &str, ty: TypeRef, get: fn(&FileMeta) -> GqlValue) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
            match view.meta().await {
                Ok(meta) => Ok(Some(FieldValue::value(meta.map_or(GqlValue::Null, get)))),
                Err(error) => Ok(null_with_error(&ctx, storage_error(error))),
            }
        })
    })
}

fn storage_error(error: &ConnectorError) -> Error {
    let code = error.code();
    Error::new(format!("file storage: {error}")).extend_with(move |_, e| e.set("code", code))
}

pub(crate) fn stored_file_type() -> Object {
    Object::new("StoredFile")
        .description("A file in object storage that a record points to.")
        .field(leaf::<FileView>("key", TypeRef::named_nn(TypeRef::STRING), |f| {
            GqlValue::String(f.key.clone())
        }))
        .field(
            Field::new("present", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                FieldFuture::new(async move {
                    let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
                    match view.meta().await {
                        Ok(meta) => Ok(Some(FieldValue::value(meta.is_some()))),
                        Err(error) => Err(storage_error(error)),
                    }
                })
            })
            .description("Whether the store holds a file under this key."),
        )
        .field(file_meta_field("size", TypeRef::named("Long"), |m| {
            GqlValue::from(m.size as i64)
        }))
        .field(file_meta_field(
            "contentType",
            TypeRef::named(TypeRef::STRING),
            |m| GqlValue::String(m.content_type.clone()),
        ))
        .field(file_meta_field(
            "lastModified",
            TypeRef::named(TypeRef::STRING),
            |m| {
                GqlValue::String(
                    m.last_modified
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                )
            },
        ))
        .field(
            Field::new("checksum", TypeRef::named(TypeRef::STRING), |ctx| {
                FieldFuture::new(async move {
                    let view = ctx.parent_value.try_downcast_ref::<FileView>()?;
                    match view.store.checksum(&view.key).await {
                        Ok(sum) => Ok(Some(FieldValue::value(
                            sum.map_or(GqlValue::Null, GqlValue::String),
                        ))),
                        Err(error) => Ok(null_with_error(&ctx, storage_error(&error))),
                    }
                })
            })
            .description("SHA-256 of the file's bytes, in hex (reads the whole file)."),
        )
}
