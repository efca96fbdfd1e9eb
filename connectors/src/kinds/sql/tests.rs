//! The SQL connector's pure parts: index definitions, type fitting, batch splitting.

use super::*;

#[test]
fn index_definitions_reduce_to_their_first_key() {
    assert_eq!(
        first_index_key("CREATE INDEX users_email ON public.users USING btree (lower((email)::text))")
            .as_deref(),
        Some("lower(email)")
    );
    assert_eq!(
        first_index_key("CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)").as_deref(),
        Some("id")
    );
    assert_eq!(
        first_index_key("CREATE INDEX s ON sessions (\"user_id\", started_at DESC)").as_deref(),
        Some("user_id")
    );
    assert_eq!(
        first_index_key("CREATE INDEX e ON users(lower(email))").as_deref(),
        Some("lower(email)")
    );
}

#[test]
fn declared_types_fit_the_store_types_they_can_be_read_from() {
    use FieldType::*;
    assert!(type_fits(SqlDialect::Postgres, Bigint, "integer"));
    assert!(type_fits(SqlDialect::Postgres, String, "inet"));
    assert!(!type_fits(SqlDialect::Postgres, Timestamp, "text"));
    assert!(type_fits(SqlDialect::MySql, Bool, "tinyint"));
    assert!(type_fits(SqlDialect::MySql, Json, "longtext"));
    assert!(!type_fits(SqlDialect::MySql, Bigint, "varchar"));
    assert!(type_fits(SqlDialect::Sqlite, Timestamp, "TEXT"));
    assert!(!type_fits(SqlDialect::Sqlite, Int, "TEXT"));
}

#[test]
fn large_batches_split_into_bounded_queries() {
    let bound = vec![(0, Bound::Integer((0..25_000).collect()))];
    let parts = chunks(&bound, 10_000);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.iter().map(|p| p[0].1.len()).sum::<usize>(), 25_000);
}
