//! The write side: erasure (delete by primary key, or update the masked columns record by
//! record, refusing past the match limit) and rectification, as batched, parameterized
//! statements run in one transaction.

use super::decl::SqlDialect;
use super::decode::decode_error;
use super::{Pool, SqlConnector, quote};
use crate::connector::{
    ConnectorError, EntityDescriptor, EntityErasure, ErasureRequest, FieldChange, LookupRequest, WriteOutcome,
};
use crate::value::{FieldType, Record, Value};

/// A value bound to a write statement.
pub(super) enum Param {
    Text(String),
    Int(i64),
}

/// One write statement and its bound values.
pub(super) struct Statement {
    sql: String,
    params: Vec<Param>,
}

/// Rows deleted or updated per statement.
const KEYS_PER_STATEMENT: usize = 500;

impl SqlConnector {
    /// The `n`th placeholder (1-based) for a value of `field_type`.
    fn placeholder(&self, n: usize, field_type: FieldType) -> String {
        match (self.dialect, field_type) {
            (SqlDialect::Postgres, FieldType::Uuid) => format!("CAST(${n} AS uuid)"),
            (SqlDialect::Postgres, _) => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// Runs write statements in one transaction: all of them or none. The number of rows they
    /// changed.
    pub(super) async fn execute_all(&self, statements: Vec<Statement>) -> Result<u64, ConnectorError> {
        if statements.is_empty() {
            return Ok(0);
        }
        macro_rules! run {
            ($pool:expr, $db:ty) => {{
                let mut transaction = $pool.begin().await.map_err(|e| self.store_error(e))?;
                let mut changed = 0;
                for Statement { sql, params } in statements {
                    let mut q = crate::dynamic_sql::dynamic_query::<$db>(sql);
                    for param in params {
                        q = match param {
                            Param::Text(text) => q.bind(text),
                            Param::Int(int) => q.bind(int),
                        };
                    }
                    // Dropped without a commit on error: the transaction rolls back.
                    changed += q
                        .execute(&mut *transaction)
                        .await
                        .map_err(|e| self.store_error(e))?
                        .rows_affected();
                }
                transaction
                    .commit()
                    .await
                    .map_err(|e| self.store_error(e))?;
                Ok(changed)
            }};
        }
        match &self.pool {
            Pool::Postgres(pool) => run!(pool, sqlx::Postgres),
            Pool::MySql(pool) => run!(pool, sqlx::MySql),
            Pool::Sqlite(pool) => run!(pool, sqlx::Sqlite),
        }
    }

    /// The records a write acts on, refused past `limit`, with the index of the primary key.
    async fn matched(
        &self,
        lookup: &LookupRequest,
        limit: u64,
        operation: &'static str,
    ) -> Result<(Vec<Record>, usize), ConnectorError> {
        let entity = self
            .descriptor
            .entities
            .get(lookup.entity)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{}", lookup.entity)))?;
        let pk = entity.primary_key.ok_or(ConnectorError::Unsupported(operation))?;
        let records = self.run_lookup(lookup.entity, &lookup.by).await?;
        if records.len() as u64 > limit {
            return Err(ConnectorError::TooManyRecords {
                found: records.len() as u64,
                limit,
            });
        }
        Ok((records, pk))
    }

    fn param(value: &Value) -> Option<Param> {
        match value {
            Value::Int(i) => Some(Param::Int(*i)),
            Value::String(s) => Some(Param::Text(s.clone())),
            Value::Bool(b) => Some(Param::Int(i64::from(*b))),
            Value::Float(f) => Some(Param::Text(f.to_string())),
            Value::Json(j) => Some(Param::Text(j.to_string())),
            Value::Null => None,
        }
    }

    /// `UPDATE table SET … WHERE pk = …` for one record; `sets` pairs a field index with its new
    /// value (`None`: NULL).
    fn update_record(
        &self,
        entity: &EntityDescriptor,
        pk: usize,
        key: &Value,
        sets: Vec<(usize, Option<Param>)>,
    ) -> Result<Statement, ConnectorError> {
        let mut sql = format!("UPDATE {} SET ", quote(self.dialect, &entity.source));
        let mut params = Vec::new();
        for (i, (field, param)) in sets.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let descriptor = &entity.fields[field];
            sql.push_str(&quote(self.dialect, &descriptor.name));
            match param {
                None => sql.push_str(" = NULL"),
                Some(param) => {
                    params.push(param);
                    sql.push_str(&format!(
                        " = {}",
                        self.placeholder(params.len(), descriptor.field_type)
                    ));
                }
            }
        }
        let key_param = Self::param(key).ok_or_else(|| decode_error(&entity.fields[pk].name, "a key"))?;
        params.push(key_param);
        sql.push_str(&format!(
            " WHERE {} = {}",
            quote(self.dialect, &entity.fields[pk].name),
            self.placeholder(params.len(), entity.fields[pk].field_type)
        ));
        Ok(Statement { sql, params })
    }

    /// The statements that erase what `request` finds (found now, refused past its limit), and
    /// how many records they act on.
    pub(super) async fn erasure_statements(
        &self,
        request: &ErasureRequest,
    ) -> Result<(Vec<Statement>, u64), ConnectorError> {
        let (records, pk) = self
            .matched(&request.lookup, request.max_records, "erase")
            .await?;
        let statements =
            self.statements_for(request.lookup.entity, pk, &records, &request.action, &request.pseudonyms)?;
        Ok((statements, records.len() as u64))
    }

    /// The statements that delete `records` of entity `e` by primary key, or rewrite their
    /// masked fields one record at a time (records masked already get none).
    fn statements_for(
        &self,
        e: usize,
        pk: usize,
        records: &[Record],
        action: &EntityErasure,
        pseudonyms: &crate::mask::Pseudonymizer,
    ) -> Result<Vec<Statement>, ConnectorError> {
        let entity = &self.descriptor.entities[e];
        let pk_field = &entity.fields[pk];
        let mut statements = Vec::new();
        match action {
            EntityErasure::Delete => {
                for chunk in records.chunks(KEYS_PER_STATEMENT) {
                    let params: Vec<Param> = chunk
                        .iter()
                        .filter_map(|r| r.get(pk).and_then(Self::param))
                        .collect();
                    if params.is_empty() {
                        continue;
                    }
                    let list: Vec<String> = (1..=params.len())
                        .map(|n| self.placeholder(n, pk_field.field_type))
                        .collect();
                    let sql = format!(
                        "DELETE FROM {} WHERE {} IN ({})",
                        quote(self.dialect, &entity.source),
                        quote(self.dialect, &pk_field.name),
                        list.join(", ")
                    );
                    statements.push(Statement { sql, params });
                }
            }
            EntityErasure::Mask(fields) => {
                for record in records {
                    let mut sets: Vec<(usize, Option<Param>)> = Vec::new();
                    for (field, erasure) in fields {
                        let value = record
                            .get(*field)
                            .ok_or_else(|| decode_error(&entity.fields[*field].name, "a declared field"))?;
                        if let Some(new) = pseudonyms.masked(erasure, value) {
                            sets.push((*field, Self::param(&new)));
                        }
                    }
                    if !sets.is_empty() {
                        let key = record
                            .get(pk)
                            .ok_or_else(|| decode_error(&pk_field.name, "a key"))?;
                        statements.push(self.update_record(entity, pk, key, sets)?);
                    }
                }
            }
        }
        Ok(statements)
    }

    /// Records of entity `e` whose primary key is one of `keys`: `pk IN (…)`, in chunks.
    pub(super) async fn records_by_key(&self, e: usize, keys: &[Value]) -> Result<Vec<Record>, ConnectorError> {
        let entity = self
            .descriptor
            .entities
            .get(e)
            .ok_or_else(|| ConnectorError::Other(format!("no entity #{e}")))?;
        let pk = entity.primary_key.ok_or(ConnectorError::Unsupported("fetch_keys"))?;
        let pk_field = &entity.fields[pk];
        let mut records = Vec::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let params: Vec<Param> = chunk.iter().filter_map(Self::param).collect();
            if params.is_empty() {
                continue;
            }
            let list: Vec<String> = (1..=params.len())
                .map(|n| self.placeholder(n, pk_field.field_type))
                .collect();
            let sql = format!(
                "{}{} IN ({})",
                self.entities[e].select_prefix,
                quote(self.dialect, &pk_field.name),
                list.join(", ")
            );
            macro_rules! fetch {
                ($pool:expr, $db:ty, $decode:path) => {{
                    let mut q = crate::dynamic_sql::dynamic_query::<$db>(sql.clone());
                    for param in params {
                        q = match param {
                            Param::Text(text) => q.bind(text),
                            Param::Int(int) => q.bind(int),
                        };
                    }
                    let rows = q.fetch_all($pool).await.map_err(|e| self.store_error(e))?;
                    for row in &rows {
                        records.push($decode(row, entity)?);
                    }
                }};
            }
            match &self.pool {
                Pool::Postgres(pool) => fetch!(pool, sqlx::Postgres, super::decode::decode_pg),
                Pool::MySql(pool) => fetch!(pool, sqlx::MySql, super::decode::decode_mysql),
                Pool::Sqlite(pool) => fetch!(pool, sqlx::Sqlite, super::decode::decode_sqlite),
            }
        }
        Ok(records)
    }

    /// Erases the records of entity `e` with these primary keys (the end of a retention), in one
    /// transaction; keys gone and values masked already change nothing.
    pub(super) async fn erase_by_key(
        &self,
        e: usize,
        keys: &[Value],
        action: &EntityErasure,
        pseudonyms: &crate::mask::Pseudonymizer,
    ) -> Result<WriteOutcome, ConnectorError> {
        let records = self.records_by_key(e, keys).await?;
        let pk = self.descriptor.entities[e]
            .primary_key
            .ok_or(ConnectorError::Unsupported("erase_keys"))?;
        let statements = self.statements_for(e, pk, &records, action, pseudonyms)?;
        self.execute_all(statements).await?;
        Ok(WriteOutcome::Done {
            records: records.len() as u64,
        })
    }

    /// Writes corrected values into the records a lookup matches, by primary key.
    pub(super) async fn rectify_records(
        &self,
        lookup: &LookupRequest,
        changes: &[FieldChange],
    ) -> Result<WriteOutcome, ConnectorError> {
        let (records, pk) = self.matched(lookup, u64::MAX, "rectify").await?;
        let entity = &self.descriptor.entities[lookup.entity];
        let mut statements = Vec::new();
        for record in &records {
            let sets: Vec<(usize, Option<Param>)> = changes
                .iter()
                .filter(|change| record.get(change.field) != Some(&change.value))
                .map(|change| (change.field, Self::param(&change.value)))
                .collect();
            if !sets.is_empty() {
                let key = record
                    .get(pk)
                    .ok_or_else(|| decode_error(&entity.fields[pk].name, "a key"))?;
                statements.push(self.update_record(entity, pk, key, sets)?);
            }
        }
        self.execute_all(statements).await?;
        Ok(WriteOutcome::Done {
            records: records.len() as u64,
        })
    }
}
