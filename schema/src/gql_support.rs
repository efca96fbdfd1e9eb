//! Helpers every part of the generated GraphQL schema shares: who the caller is and what they
//! may do, reading an identity argument, the errors that carry an `extensions.code`, and small
//! resolver builders for fields of plain Rust parents.
//!
//! It uses no other schema-building module, so each of them (`graphql`, `gql_subject`,
//! `gql_files`, `gql_connectors`, `gql_audit`, `privacy`) can use it without a circle.

use std::any::Any;
use std::sync::Arc;
use subject_connectors::codes::ErrorCode;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, ResolverContext, TypeRef};
use async_graphql::{Error, ErrorExtensions, Name, Value as GqlValue};
use subject_connectors::{Identity, IdentityError};

use crate::access::{Caller, Operation};
use crate::resolve::{Executor, IdentitySource, ResolvedIdentity};

/// The authenticated caller of this request.
/// The privacy-request engine, or `REQUESTS_UNAVAILABLE`.
pub(crate) fn engine<'a>(
    ctx: &ResolverContext<'a>,
) -> async_graphql::Result<&'a Arc<dyn crate::requests::PrivacyRequests>> {
    ctx.data_opt::<Arc<dyn crate::requests::PrivacyRequests>>()
        .ok_or_else(|| {
            Error::new("privacy requests are not configured")
                .extend_with(|_, e| e.set("code", ErrorCode::RequestsUnavailable.as_str()))
        })
}

/// A request error with its code.
pub(crate) fn request_error(error: crate::requests::RequestError) -> Error {
    let code = error.code();
    Error::new(error.to_string()).extend_with(move |_, e| e.set("code", code))
}

pub(crate) fn caller<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>().ok_or_else(|| {
        Error::new("not authenticated").extend_with(|_, e| e.set("code", ErrorCode::Unauthenticated.as_str()))
    })
}

/// Refuses the field unless the caller's role grants `operation`.
pub(crate) fn authorize(ctx: &ResolverContext<'_>, operation: Operation) -> async_graphql::Result<()> {
    let caller = caller(ctx)?;
    if caller.role.may(operation) {
        Ok(())
    } else {
        let message = format!(
            "role `{}` does not grant `{}`",
            caller.role.name,
            operation.as_str()
        );
        Err(Error::new(message).extend_with(move |_, e| {
            e.set("code", ErrorCode::Forbidden.as_str());
            e.set("operation", operation.as_str());
        }))
    }
}

pub(crate) fn parse_identity(
    executor: &Executor,
    input: &async_graphql::dynamic::ValueAccessor<'_>,
) -> Result<Identity, IdentityError> {
    let fields = input
        .object()
        .map_err(|_| IdentityError::UnknownKind("?".into()))?;
    let kind_name = fields
        .try_get("kind")
        .and_then(|k| k.enum_name().map(str::to_owned))
        .map_err(|_| IdentityError::UnknownKind("?".into()))?;
    let value = fields
        .try_get("value")
        .and_then(|v| v.string().map(str::to_owned))
        .map_err(|_| IdentityError::UnknownKind(kind_name.clone()))?;
    let kinds = &executor.registry().kinds;
    let kind = kinds
        .by_graphql_name(&kind_name)
        .ok_or_else(|| IdentityError::UnknownKind(kind_name.clone()))?;
    kinds.parse_input(kind, &value)
}

pub(crate) fn identity_error(error: &IdentityError, index: Option<usize>) -> Error {
    let message = match index {
        Some(i) => format!("identities[{i}]: {error}"),
        None => format!("identity: {error}"),
    };
    let code = error.code();
    Error::new(message).extend_with(move |_, e| {
        e.set("code", code);
        if let Some(i) = index {
            e.set("index", i as i64);
        }
    })
}

pub(crate) fn category_error(caller: &Caller, category: &subject_connectors::DataCategory) -> Error {
    let category = category.to_string();
    Error::new(format!(
        "role `{}` is not granted data category `{category}`",
        caller.role.name
    ))
    .extend_with(move |_, e| {
        e.set("code", ErrorCode::CategoryNotGranted.as_str());
        e.set("category", category.as_str());
    })
}

pub(crate) fn purpose_error(caller: &Caller, connector: &str) -> Error {
    let (purpose, connector) = (caller.purpose.to_string(), connector.to_owned());
    Error::new(format!(
        "connector `{connector}` does not serve the purpose `{purpose}`"
    ))
    .extend_with(move |_, e| {
        e.set("code", ErrorCode::PurposeForbidden.as_str());
        e.set("connector", connector.as_str());
        e.set("purpose", purpose.as_str());
    })
}

/// Why `resolved` may not be shown to `caller`, if it may not: identities are data of their
/// kind's category, found in a store that serves some purposes only. What the caller gave is
/// always shown back.
pub(crate) fn identity_withheld(
    executor: &Executor,
    caller: &Caller,
    resolved: &ResolvedIdentity,
) -> Option<Error> {
    let IdentitySource::Entity(at) = resolved.source else {
        return None;
    };
    let registry = executor.registry();
    let descriptor = registry.connectors[at.connector].connector.descriptor();
    if !caller.purpose_served_by(descriptor.purposes.as_deref()) {
        return Some(purpose_error(caller, &descriptor.name));
    }
    let category = &registry.kinds.get(resolved.identity.kind).category;
    if !caller.role.sees(category) {
        return Some(category_error(caller, category));
    }
    None
}

/// Reports `error` at the current field's path and resolves the (nullable) field to null.
/// (async-graphql's dynamic schema leaves the path off errors a resolver returns.)
pub(crate) fn null_with_error<'a>(ctx: &ResolverContext<'_>, error: Error) -> Option<FieldValue<'a>> {
    ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
    None
}

/// A synchronous resolver result as a `FieldFuture`.
pub(crate) fn ready<'a>(result: async_graphql::Result<Option<FieldValue<'a>>>) -> FieldFuture<'a> {
    match result {
        Ok(value) => FieldFuture::Value(value),
        Err(error) => FieldFuture::new(async move { Err::<Option<FieldValue<'a>>, _>(error) }),
    }
}

/// A field of a plain Rust struct parent: reads `T` and returns a GraphQL value.
pub(crate) fn leaf<T: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    get: impl Fn(&T) -> GqlValue + Send + Sync + 'static,
) -> Field {
    Field::new(name, ty, move |ctx| {
        ready(
            ctx.parent_value
                .try_downcast_ref::<T>()
                .map(|parent| Some(FieldValue::value(get(parent)))),
        )
    })
}

/// [`leaf`] with a description (none when `description` is empty).
pub(crate) fn described_leaf<T: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    description: &str,
    get: impl Fn(&T) -> GqlValue + Send + Sync + 'static,
) -> Field {
    let field = leaf(name, ty, get);
    if description.is_empty() {
        field
    } else {
        field.description(description)
    }
}

/// A page's items, end cursor and whether a next page exists.
pub(crate) type PageParts<P, U> = for<'a> fn(&'a P) -> (&'a [U], Option<&'a str>, bool);

/// A cursor page object `P` with its list of `U` views under `items_name`, `endCursor` and
/// `hasNextPage` — the shape every paged listing of the schema shares.
pub(crate) fn page_object<P: Any + Send + Sync, U: Any + Send + Sync>(
    name: &str,
    description: &str,
    items_name: &str,
    item_type: &str,
    page: PageParts<P, U>,
) -> Object {
    Object::new(name)
        .description(description)
        .field(Field::new(
            items_name,
            TypeRef::named_nn_list_nn(item_type),
            move |ctx| {
                ready(ctx.parent_value.try_downcast_ref::<P>().map(|parent| {
                    Some(FieldValue::list(
                        page(parent).0.iter().map(|item| FieldValue::borrowed_any(item)),
                    ))
                }))
            },
        ))
        .field(
            leaf("endCursor", TypeRef::named(TypeRef::STRING), move |parent: &P| {
                opt_string(page(parent).1)
            })
            .description("Pass as `after` for the next page."),
        )
        .field(leaf(
            "hasNextPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            move |parent: &P| GqlValue::Boolean(page(parent).2),
        ))
}

/// A field of an executor-indexed parent (`EntityAt`, `FieldAt`, …) that needs the registry.
pub(crate) fn indexed<T: Any + Send + Sync>(
    name: &str,
    ty: TypeRef,
    get: impl Fn(&Executor, &T) -> GqlValue + Send + Sync + 'static,
) -> Field {
    Field::new(name, ty, move |ctx| {
        ready((|| {
            let executor = ctx.data::<Arc<Executor>>()?;
            let parent = ctx.parent_value.try_downcast_ref::<T>()?;
            Ok(Some(FieldValue::value(get(executor, parent))))
        })())
    })
}

pub(crate) fn enum_value(name: &str) -> GqlValue {
    GqlValue::Enum(Name::new(name))
}

pub(crate) fn text(value: &str) -> GqlValue {
    GqlValue::String(value.to_owned())
}

pub(crate) fn opt_string(value: Option<&str>) -> GqlValue {
    value.map_or(GqlValue::Null, |s| GqlValue::String(s.to_owned()))
}
