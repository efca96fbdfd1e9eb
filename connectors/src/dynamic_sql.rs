//! The one door for SQL text built at run time. sqlx 0.9 accepts only `&'static str` as query
//! text unless the caller asserts the text is safe (`AssertSqlSafe`); that assertion is made here
//! and nowhere else, so its reason is written once.
//!
//! Why it holds: every caller builds its text only from identifiers taken from a validated
//! declaration or fixed internal names (tables and columns of the gateway's own schema), quoted
//! for the dialect where they come from a declaration; from fixed SQL keywords; from integers the
//! program computed (a `LIMIT`, a placeholder's number); from placeholders (`$n`, `?`); or from
//! SQL scripts compiled into the binary (the demo's DDL). Values never enter the text: the caller
//! binds every one of them as a parameter on the returned query. Text that would need a value
//! spliced into it must not come through here.

use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{AssertSqlSafe, Database, FromRow};

/// A query over SQL text built at run time (see the module comment for why that is safe).
pub fn dynamic_query<'a, DB: Database>(sql: impl Into<String>) -> Query<'a, DB, <DB as Database>::Arguments> {
    sqlx::query(AssertSqlSafe(sql.into()))
}

/// [`dynamic_query`] decoding each row as `O`.
pub fn dynamic_query_as<'a, DB, O>(sql: impl Into<String>) -> QueryAs<'a, DB, O, <DB as Database>::Arguments>
where
    DB: Database,
    O: for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_as(AssertSqlSafe(sql.into()))
}

/// [`dynamic_query`] returning the first column of each row as `O`.
pub fn dynamic_query_scalar<'a, DB, O>(
    sql: impl Into<String>,
) -> QueryScalar<'a, DB, O, <DB as Database>::Arguments>
where
    DB: Database,
    (O,): for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(AssertSqlSafe(sql.into()))
}
