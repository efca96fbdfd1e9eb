//! `check` for SQL stores: the declaration proven against the live catalogue (`information_schema`,
//! `pg_catalog`, SQLite's `pragma_*`), and the erasure blockers derived from it.
//!
//! What is proven per entity: the table and every declared column exist with a type the field can
//! be read as; the declared primary key is unique on the store (erasure acts by it); no field that
//! erasure sets to NULL is a NOT NULL column; deleting the entity's records is neither blocked nor
//! widened by a foreign key from another table; each lookup is served by an index (a warning).

use std::time::{Duration, Instant};

use super::{Pool, SqlConnector, first_index_key, normalise_key, type_fits};
use crate::connector::{
    Compare, ConnectorError, EntityCheck, EntityDescriptor, ErasureAction, ErasureBlocker, FieldErasure,
};
use super::decl::SqlDialect;

/// How long the erasure blockers read from the catalogue are reused before being read again.
const BLOCKERS_TTL: Duration = Duration::from_secs(60);

/// One column as the catalogue describes it.
struct Column {
    name: String,
    data_type: String,
    nullable: bool,
    /// MySQL/MariaDB: the column's collation (`utf8mb4_bin`); `None` elsewhere or for non-text.
    collation: Option<String>,
    /// The most characters a text column holds (`VARCHAR(64)`), when the store enforces one.
    max_length: Option<i64>,
}

impl Column {
    /// From an `information_schema.columns` row: name, data type, `is_nullable` (`YES`/`NO`),
    /// collation, character maximum length.
    fn from_information_schema(
        (name, data_type, nullable, collation, max_length): (String, String, String, Option<String>, Option<i64>),
    ) -> Self {
        Column {
            name,
            data_type,
            nullable: nullable.eq_ignore_ascii_case("yes"),
            collation,
            max_length,
        }
    }
}

/// A foreign key from another table onto the checked one.
struct Reference {
    /// The referencing table.
    table: String,
    /// The constraint's name (SQLite: `#id`).
    constraint: String,
    on_delete: OnDelete,
}

impl Reference {
    /// From `(referencing table, constraint, delete rule)` as the catalogue lists it.
    fn from_catalogue((table, constraint, rule): (String, String, String)) -> Self {
        Reference {
            table,
            constraint,
            on_delete: OnDelete::parse(&rule),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDelete {
    /// NO ACTION / RESTRICT: a delete of a referenced row fails.
    Block,
    Cascade,
    /// SET NULL / SET DEFAULT.
    Detach,
}

impl OnDelete {
    fn parse(rule: &str) -> Self {
        match rule.to_ascii_lowercase().replace(' ', "").as_str() {
            "c" | "cascade" => OnDelete::Cascade,
            "n" | "d" | "setnull" | "setdefault" => OnDelete::Detach,
            _ => OnDelete::Block,
        }
    }
}

/// What the live store says about one table.
struct TableFacts {
    columns: Vec<Column>,
    /// The first key of every index, normalised (`email`, `lower(email)`).
    index_keys: Vec<String>,
    /// The key columns of every unique index or constraint without a predicate, lower-cased;
    /// an expression key is an empty name (it proves nothing about a column).
    unique_keys: Vec<Vec<String>>,
    /// Foreign keys from other tables onto this one.
    references: Vec<Reference>,
}

impl TableFacts {
    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Cached erasure blockers (`(entity index, reason)`: a NOT NULL column masked to null, a primary
/// key the store does not keep unique, a foreign key from kept records that blocks a delete or
/// that a delete cascades into), with when they were read.
pub(super) type BlockerCache = tokio::sync::Mutex<Option<(Instant, Vec<ErasureBlocker>)>>;

impl SqlConnector {
    /// Reads what the catalogue says about `entity`'s table.
    async fn table_facts(&self, entity: &EntityDescriptor) -> Result<TableFacts, ConnectorError> {
        let (schema, table) = match entity.source.split_once('.') {
            Some((schema, table)) => (Some(schema.to_owned()), table.to_owned()),
            None => (None, entity.source.clone()),
        };
        let err = |e| self.store_error(e);
        match &self.pool {
            Pool::Postgres(pool) => {
                let columns = sqlx::query_as::<_, (String, String, String, Option<i64>)>(
                    "SELECT column_name::text, data_type::text, is_nullable::text, \
                     character_maximum_length::bigint FROM information_schema.columns \
                     WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let defs = sqlx::query_scalar::<_, String>(
                    "SELECT indexdef FROM pg_indexes \
                     WHERE schemaname = COALESCE($1, current_schema()) AND tablename = $2",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let unique = sqlx::query_scalar::<_, String>(
                    "SELECT string_agg(COALESCE(a.attname::text, ''), ',' ORDER BY k.ord) \
                     FROM pg_index i \
                     JOIN pg_class t ON t.oid = i.indrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                     LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0 \
                     WHERE i.indisunique AND i.indpred IS NULL AND k.ord <= i.indnkeyatts \
                       AND n.nspname = COALESCE($1, current_schema()) AND t.relname = $2 \
                     GROUP BY i.indexrelid",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let references = sqlx::query_as::<_, (String, String, String)>(
                    "SELECT ch.relname::text, c.conname::text, c.confdeltype::text \
                     FROM pg_constraint c \
                     JOIN pg_class ch ON ch.oid = c.conrelid \
                     JOIN pg_class p ON p.oid = c.confrelid \
                     JOIN pg_namespace n ON n.oid = p.relnamespace \
                     WHERE c.contype = 'f' AND n.nspname = COALESCE($1, current_schema()) AND p.relname = $2",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                Ok(TableFacts {
                    columns: columns
                        .into_iter()
                        .map(|(name, data_type, nullable, max_length)| {
                            Column::from_information_schema((name, data_type, nullable, None, max_length))
                        })
                        .collect(),
                    index_keys: defs.iter().filter_map(|def| first_index_key(def)).collect(),
                    unique_keys: unique.iter().map(|k| split_key(k)).collect(),
                    references: references.into_iter().map(Reference::from_catalogue).collect(),
                })
            }
            Pool::MySql(pool) => {
                let columns = sqlx::query_as::<_, (String, String, String, Option<String>, Option<i64>)>(
                    "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), CAST(is_nullable AS CHAR), \
                     CAST(collation_name AS CHAR), CAST(character_maximum_length AS SIGNED) \
                     FROM information_schema.columns \
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let keys = sqlx::query_scalar::<_, String>(
                    "SELECT CAST(column_name AS CHAR) FROM information_schema.statistics \
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND seq_in_index = 1 \
                     AND column_name IS NOT NULL",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let unique = sqlx::query_scalar::<_, String>(
                    "SELECT CAST(GROUP_CONCAT(COALESCE(column_name, '') ORDER BY seq_in_index SEPARATOR ',') AS CHAR) \
                     FROM information_schema.statistics \
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND non_unique = 0 \
                     GROUP BY index_name",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let references = sqlx::query_as::<_, (String, String, String)>(
                    "SELECT CAST(table_name AS CHAR), CAST(constraint_name AS CHAR), CAST(delete_rule AS CHAR) \
                     FROM information_schema.referential_constraints \
                     WHERE unique_constraint_schema = COALESCE(?, DATABASE()) AND referenced_table_name = ?",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                Ok(TableFacts {
                    columns: columns
                        .into_iter()
                        .map(Column::from_information_schema)
                        .collect(),
                    index_keys: keys.iter().map(|k| normalise_key(k)).collect(),
                    unique_keys: unique.iter().map(|k| split_key(k)).collect(),
                    references: references.into_iter().map(Reference::from_catalogue).collect(),
                })
            }
            Pool::Sqlite(pool) => {
                let columns = sqlx::query_as::<_, (String, String, i64, i64)>(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
                )
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                let mut keys: Vec<String> = sqlx::query_scalar::<_, String>(
                    "SELECT ii.name FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii \
                     WHERE ii.seqno = 0 AND ii.name IS NOT NULL \
                     UNION SELECT name FROM pragma_table_info(?1) WHERE pk = 1",
                )
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?
                .iter()
                .map(|k| normalise_key(k))
                .collect();
                let defs = sqlx::query_scalar::<_, String>(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
                )
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                keys.extend(defs.iter().filter_map(|def| first_index_key(def)));
                let mut unique: Vec<Vec<String>> = sqlx::query_scalar::<_, String>(
                    "SELECT group_concat(COALESCE(ii.name, ''), ',') \
                     FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii \
                     WHERE il.\"unique\" = 1 AND il.partial = 0 GROUP BY il.name",
                )
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?
                .iter()
                .map(|k| split_key(k))
                .collect();
                // A rowid alias (INTEGER PRIMARY KEY) has no index of its own.
                let pk: Vec<String> = columns
                    .iter()
                    .filter(|(_, _, _, pk)| *pk > 0)
                    .map(|(name, ..)| name.to_ascii_lowercase())
                    .collect();
                if !pk.is_empty() {
                    unique.push(pk);
                }
                let references = sqlx::query_as::<_, (String, i64, String)>(
                    "SELECT m.name, f.id, f.on_delete FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f \
                     WHERE m.type = 'table' AND lower(f.\"table\") = lower(?1)",
                )
                .bind(&table)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                Ok(TableFacts {
                    columns: columns
                        .into_iter()
                        .map(|(name, data_type, notnull, _)| Column {
                            name,
                            data_type,
                            nullable: notnull == 0,
                            collation: None,
                            // SQLite does not enforce declared lengths.
                            max_length: None,
                        })
                        .collect(),
                    index_keys: keys,
                    unique_keys: unique,
                    references: references
                        .into_iter()
                        .map(|(table, id, rule)| Reference {
                            table,
                            constraint: format!("#{id}"),
                            on_delete: OnDelete::parse(&rule),
                        })
                        .collect(),
                })
            }
        }
    }

    /// Checks one entity's declaration against the live store.
    pub(super) async fn check_entity(
        &self,
        entity: &EntityDescriptor,
    ) -> Result<EntityCheck, ConnectorError> {
        let facts = self.table_facts(entity).await?;
        let mut check = EntityCheck {
            fields: Vec::new(),
            entity: entity.name.clone(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        if facts.columns.is_empty() {
            check
                .problems
                .push(format!("table `{}` does not exist", entity.source));
            return Ok(check);
        }
        let mut missing: Vec<(usize, &str)> = Vec::new();
        for (f, field) in entity.fields.iter().enumerate() {
            match facts.column(&field.name) {
                None => missing.push((f, &field.name)),
                Some(column) if !type_fits(self.dialect, field.field_type, &column.data_type) => {
                    check.problem(
                        Some(f),
                        format!(
                            "column `{}` is {} but is declared type = \"{}\"",
                            field.name,
                            column.data_type.to_ascii_lowercase(),
                            field.field_type.as_str()
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some((first, _)) = missing.first() {
            check.problem(
                Some(*first),
                format!(
                    "table `{}` has no column{} {}",
                    entity.source,
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|(_, m)| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        for (field, problem) in erasure_blockers_of(entity, &facts) {
            check.problem(field, problem);
        }
        if entity.primary_key.is_none() && !matches!(entity.erasure.action, ErasureAction::Cascade(_)) {
            check.problems.push(
                "no primary_key is declared: erasure deletes and masks one record at a time by its primary key \
                 (declare a column the store keeps unique)"
                    .to_owned(),
            );
        }
        check.problems.extend(self.reference_problems(entity, &facts));
        check.warnings.extend(self.reference_warnings(entity, &facts));
        for lookup in &entity.lookups {
            let column = entity.fields[lookup.field].name.to_ascii_lowercase();
            let wanted = match (lookup.compare, self.dialect) {
                (Compare::Lowercase, SqlDialect::Postgres | SqlDialect::Sqlite) => {
                    format!("lower({column})")
                }
                _ => column.clone(),
            };
            if !facts.index_keys.contains(&wanted) {
                let lowered = format!("lower({column})");
                let hint = if lookup.compare == Compare::Exact && facts.index_keys.contains(&lowered) {
                    format!(
                        " (an index on {lowered} exists: compare = \"lowercase\" in the lookup would use it)"
                    )
                } else {
                    String::new()
                };
                check.warning(
                    Some(lookup.field),
                    format!("no index starts with {wanted}: lookups by it scan the whole table{hint}"),
                );
            }
            // MySQL/MariaDB compare text by the column's collation: say which one a
            // case-insensitive lookup meets when it is not case-insensitive itself.
            if lookup.compare == Compare::Lowercase
                && self.dialect == SqlDialect::MySql
                && let Some(collation) = facts
                    .column(&entity.fields[lookup.field].name)
                    .and_then(|c| c.collation.as_deref())
                && !collation.to_ascii_lowercase().ends_with("_ci")
            {
                check.warning(
                    Some(lookup.field),
                    format!(
                        "column `{}` has the case-sensitive collation {collation}: compare = \"lowercase\" \
                         has to compare LOWER({}), which no index on the column serves",
                        entity.fields[lookup.field].name, entity.fields[lookup.field].name
                    ),
                );
            }
        }
        Ok(check)
    }

    /// Problems with foreign keys onto `entity` that erasure would run into.
    fn reference_problems(&self, entity: &EntityDescriptor, facts: &TableFacts) -> Vec<String> {
        let mut problems = Vec::new();
        // Entities declared to go with this one (action = "cascade") go only by a foreign key
        // that deletes on cascade.
        let index = self
            .descriptor
            .entities
            .iter()
            .position(|e| e.name == entity.name);
        for other in &self.descriptor.entities {
            if index.is_none_or(|index| other.erasure.action != ErasureAction::Cascade(index)) {
                continue;
            }
            let cascades = facts.references.iter().any(|r| {
                r.on_delete == OnDelete::Cascade && r.table.eq_ignore_ascii_case(table_name(&other.source))
            });
            if !cascades {
                problems.push(format!(
                    "`{}` is declared removed with `{}` (action = \"cascade\") but no foreign key from `{}` onto `{}` \
                     deletes on cascade: its records would stay",
                    other.name,
                    entity.name,
                    table_name(&other.source),
                    table_name(&entity.source)
                ));
            }
        }
        if entity.erasure.action != ErasureAction::Delete {
            return problems;
        }
        let own = table_name(&entity.source);
        for reference in &facts.references {
            if reference.table.eq_ignore_ascii_case(own) {
                continue;
            }
            let Some(child) = self.declared_table(&reference.table) else {
                continue;
            };
            let keeps = matches!(child.erasure.action, ErasureAction::Mask | ErasureAction::Retain);
            match reference.on_delete {
                OnDelete::Block if keeps => problems.push(format!(
                    "deleting `{}` records is blocked by foreign key `{}` from `{}`, whose records erasure keeps ({}): \
                     the delete would fail after other entities were erased",
                    entity.name,
                    reference.constraint,
                    child.name,
                    child.erasure.action.as_str().to_ascii_lowercase()
                )),
                OnDelete::Cascade if keeps => problems.push(format!(
                    "deleting `{}` records cascades (foreign key `{}` ON DELETE CASCADE) to `{}`, whose records erasure must keep ({})",
                    entity.name,
                    reference.constraint,
                    child.name,
                    child.erasure.action.as_str().to_ascii_lowercase()
                )),
                _ => {}
            }
        }
        problems
    }

    /// Foreign keys from undeclared tables onto a deleted entity: erasure cannot see those rows.
    fn reference_warnings(&self, entity: &EntityDescriptor, facts: &TableFacts) -> Vec<String> {
        if entity.erasure.action != ErasureAction::Delete {
            return Vec::new();
        }
        let own = table_name(&entity.source);
        let mut warnings = Vec::new();
        for reference in &facts.references {
            if reference.table.eq_ignore_ascii_case(own) || self.declared_table(&reference.table).is_some() {
                continue;
            }
            match reference.on_delete {
                OnDelete::Block => warnings.push(format!(
                    "table `{}` (not declared) references `{}` by foreign key `{}`: deleting a person's records \
                     fails while that table holds rows pointing at them",
                    reference.table, entity.source, reference.constraint
                )),
                OnDelete::Cascade => warnings.push(format!(
                    "deleting `{}` records cascades (foreign key `{}` ON DELETE CASCADE) to table `{}`, which is not \
                     declared: those rows are erased without appearing in the plan or the receipt",
                    entity.name, reference.constraint, reference.table
                )),
                OnDelete::Detach => {}
            }
        }
        warnings
    }

    /// The declared entity whose table is `table` (schema-qualified or not).
    fn declared_table(&self, table: &str) -> Option<&EntityDescriptor> {
        self.descriptor
            .entities
            .iter()
            .find(|e| table_name(&e.source).eq_ignore_ascii_case(table))
    }

    /// Why erasure of each entity would fail (or reach other rows) on the live store, read from
    /// the catalogue and cached for [`BLOCKERS_TTL`].
    pub(super) async fn live_erasure_blockers(&self) -> Result<Vec<ErasureBlocker>, ConnectorError> {
        let mut cache = self.blockers.lock().await;
        if let Some((read, blockers)) = cache.as_ref()
            && read.elapsed() < BLOCKERS_TTL
        {
            return Ok(blockers.clone());
        }
        let mut blockers = Vec::new();
        for (e, entity) in self.descriptor.entities.iter().enumerate() {
            if matches!(entity.erasure.action, ErasureAction::Cascade(_)) {
                continue;
            }
            let facts = self.table_facts(entity).await?;
            if facts.columns.is_empty() {
                continue;
            }
            blockers.extend(
                erasure_blockers_of(entity, &facts)
                    .into_iter()
                    .map(|(_, reason)| reason)
                    .chain(self.reference_problems(entity, &facts))
                    .map(|reason| ErasureBlocker {
                        entity: e,
                        reason,
                        unfindable: false,
                    }),
            );
        }
        *cache = Some((Instant::now(), blockers.clone()));
        Ok(blockers)
    }
}

/// What makes erasure of `entity` unsafe or certain to fail on this table: a field masked to
/// NULL in a NOT NULL column; a primary key the store does not keep unique.
fn erasure_blockers_of(entity: &EntityDescriptor, facts: &TableFacts) -> Vec<(Option<usize>, String)> {
    let mut blockers = Vec::new();
    if matches!(entity.erasure.action, ErasureAction::Mask | ErasureAction::Retain) {
        for (f, erasure) in entity.masked_fields() {
            let name = &entity.fields[f].name;
            // What masking writes must fit the column: a longer value is refused by the store.
            let written = match &erasure {
                FieldErasure::Redact(text) => Some(("redact", text.chars().count())),
                FieldErasure::Pseudonymize => Some(("pseudonymize", crate::mask::PSEUDONYM_LEN)),
                _ => None,
            };
            if let (Some((how, length)), Some(max)) = (written, facts.column(name).and_then(|c| c.max_length))
                && i64::try_from(length).is_ok_and(|length| length > max)
            {
                blockers.push((
                    Some(f),
                    format!(
                        "column `{name}` holds at most {max} characters but erasure = \"{how}\" writes {length}: \
                         the store would refuse the erasure (widen the column or declare a shorter redaction)"
                    ),
                ));
            }
            if erasure == FieldErasure::Null && facts.column(name).is_some_and(|c| !c.nullable) {
                blockers.push((Some(f), format!(
                    "column `{name}` is NOT NULL but its field declares erasure = \"null\": the store would refuse \
                     the erasure (declare \"redact\" or \"pseudonymize\", or allow NULL in the column)"
                )));
            }
        }
    }
    if matches!(entity.erasure.action, ErasureAction::Cascade(_)) {
        return blockers;
    }
    if let Some(pk) = entity.primary_key {
        {
            let name = entity.fields[pk].name.to_ascii_lowercase();
            let proven = facts
                .unique_keys
                .iter()
                .any(|key| !key.is_empty() && key.iter().all(|column| *column == name));
            if facts.column(&name).is_some() && !proven {
                blockers.push((Some(pk), format!(
                    "primary_key `{}` is not unique on the store (no primary key or unique index over exactly `{}`): \
                     erasure acts by the primary key and could reach other people's rows",
                    entity.fields[pk].name, entity.fields[pk].name
                )));
            }
        }
    }
    blockers
}

/// `schema.table` -> `table`.
fn table_name(source: &str) -> &str {
    source.rsplit_once('.').map_or(source, |(_, table)| table)
}

/// `a,b` -> `["a", "b"]`, lower-cased.
fn split_key(key: &str) -> Vec<String> {
    key.split(',').map(|c| c.trim().to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_rules_read_in_every_dialect() {
        assert_eq!(OnDelete::parse("a"), OnDelete::Block);
        assert_eq!(OnDelete::parse("c"), OnDelete::Cascade);
        assert_eq!(OnDelete::parse("CASCADE"), OnDelete::Cascade);
        assert_eq!(OnDelete::parse("SET NULL"), OnDelete::Detach);
        assert_eq!(OnDelete::parse("RESTRICT"), OnDelete::Block);
        assert_eq!(OnDelete::parse("NO ACTION"), OnDelete::Block);
        assert_eq!(split_key("ID, Tenant"), ["id", "tenant"]);
        assert_eq!(table_name("public.users"), "users");
    }
}
