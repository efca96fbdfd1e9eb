//! `Query.me`: who the caller is — principal, role, the operations and purposes the role grants,
//! and the purpose stated for this request — so that a client (the console) can show only the
//! actions the role may take. It reveals nothing about anyone else and needs no operation.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, SchemaBuilder, TypeRef};

use crate::gql_support::caller;

/// The `Me` object type.
pub(crate) fn register(builder: SchemaBuilder) -> SchemaBuilder {
    let string = |name: &'static str, description: &'static str| {
        Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
            FieldFuture::new(async move {
                let value = ctx.parent_value.try_downcast_ref::<GqlValue>()?;
                let GqlValue::Object(map) = value else {
                    return Ok(None);
                };
                Ok(map.get(name).cloned().map(FieldValue::value))
            })
        })
        .description(description)
    };
    let list = |name: &'static str, description: &'static str| {
        Field::new(name, TypeRef::named_nn_list_nn(TypeRef::STRING), move |ctx| {
            FieldFuture::new(async move {
                let value = ctx.parent_value.try_downcast_ref::<GqlValue>()?;
                let GqlValue::Object(map) = value else {
                    return Ok(None);
                };
                Ok(map.get(name).cloned().map(FieldValue::value))
            })
        })
        .description(description)
    };
    builder.register(
        Object::new("Me")
            .description("The caller of this request, as the gateway authenticated it.")
            .field(string(
                "principal",
                "The key id (`key:…`) or a fingerprint of the token's subject.",
            ))
            .field(string("role", "The role the credential carries."))
            .field(list(
                "operations",
                "What the role may do: read_subject, erase, rectify, export, manage_requests, read_audit.",
            ))
            .field(list(
                "purposes",
                "The purposes (fideslang data uses) the role may state in `X-Purpose`.",
            ))
            .field(string("purpose", "The purpose this request states.")),
    )
}

/// Adds `me` to the query type.
pub(crate) fn query_fields(query: Object) -> Object {
    query.field(
        Field::new("me", TypeRef::named_nn("Me"), |ctx| {
            FieldFuture::new(async move {
                let caller = caller(&ctx)?;
                let strings = |items: Vec<String>| GqlValue::List(items.into_iter().map(GqlValue::String).collect());
                let mut map = async_graphql::indexmap::IndexMap::new();
                map.insert(
                    async_graphql::Name::new("principal"),
                    GqlValue::String(caller.principal.clone()),
                );
                map.insert(async_graphql::Name::new("role"), GqlValue::String(caller.role.name.clone()));
                map.insert(
                    async_graphql::Name::new("operations"),
                    strings(caller.role.operations.iter().map(|o| o.as_str().to_owned()).collect()),
                );
                map.insert(
                    async_graphql::Name::new("purposes"),
                    strings(caller.role.purposes.iter().map(ToString::to_string).collect()),
                );
                map.insert(async_graphql::Name::new("purpose"), GqlValue::String(caller.purpose.to_string()));
                Ok(Some(FieldValue::owned_any(GqlValue::Object(map))))
            })
        })
        .description("Who is asking: the caller's principal, role, the operations and purposes it grants, and the purpose stated. Needs no operation."),
    )
}
