//! SQLite lookups run on the calling thread. sqlx gives every SQLite connection a worker thread
//! and hands each statement and its rows across channels; for a lookup that takes tens of
//! microseconds, the thread hand-offs cost more than the query (under load, ~40% of the gateway's
//! CPU went to the SQLite workers, most of it in context switches). A lookup whose query plan
//! SQLite answers from an index (no `SCAN` of a table) runs here instead, synchronously, on a
//! connection of a small set kept for it.
//!
//! This path only ever speeds things up: whenever it cannot answer exactly (no connection free,
//! a plan that scans, the file busy, any SQLite error, a value it is not certain how to read),
//! it answers `None` and the caller runs the same query through sqlx, which then gives the
//! answer or the error it always gave. Connections are opened as the URL asks (read-only for
//! `mode=ro`, else read-write) without creating the file, and with `PRAGMA query_only`: this
//! path never writes. Large batches (over 256 values)
//! and large answers (over 2,000 rows) go to sqlx too, so that no read holds a runtime thread
//! for long.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::DateTime;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::decode::{json_text_value, text_timestamp, timestamp_utc};
use crate::value::{FieldType, Record, Value};

/// A value bound to a lookup's `?`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Integer(i64),
}

/// The inline connections of one SQLite store, and which query shapes SQLite answers from an
/// index.
pub(super) struct InlineReader {
    path: PathBuf,
    /// The URL asks for a read-only connection (`mode=ro`): these open read-only too.
    read_only: bool,
    /// Connections not in use. At most `max` exist; when all are busy the caller uses sqlx.
    idle: Mutex<Vec<Connection>>,
    opened: Mutex<usize>,
    max: usize,
    /// Set when the file could not be opened: every lookup goes to sqlx from then on.
    unopenable: std::sync::atomic::AtomicBool,
    /// Per query text: whether its plan searches an index (`true`) or scans (`false`).
    plans: Mutex<HashMap<String, bool>>,
}

/// Distinct query texts whose plan is remembered; past this, plans are worked out each time.
const MAX_PLANS: usize = 4096;

/// Past this many values (a large batch of people) or rows (someone with a great many records),
/// the lookup goes to sqlx's thread: a long read here would hold up the runtime's other tasks.
const MAX_VALUES: usize = 256;
const MAX_ROWS: usize = 2_000;

impl InlineReader {
    /// A reader for the database file `path`, when it is a file on disk (an in-memory or shared
    /// database is only reachable through sqlx's own connections).
    pub(super) fn for_file(path: &Path, url: &str) -> Option<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory || path.as_os_str().is_empty() {
            return None;
        }
        let max = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16);
        Some(Self {
            path: path.to_owned(),
            read_only: url.contains("mode=ro"),
            idle: Mutex::new(Vec::new()),
            opened: Mutex::new(0),
            max,
            unopenable: std::sync::atomic::AtomicBool::new(false),
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `query` with `params` and reads every row as a record of fields of `types`; `None`
    /// when it cannot answer exactly (see the module's documentation).
    pub(super) fn read(&self, query: &str, params: &[Param<'_>], types: &[FieldType]) -> Option<Vec<Record>> {
        if params.len() > MAX_VALUES {
            return None;
        }
        let connection = self.take()?;
        let answer = self.read_on(&connection, query, params, types);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
        answer
    }

    fn read_on(
        &self,
        connection: &Connection,
        query: &str,
        params: &[Param<'_>],
        types: &[FieldType],
    ) -> Option<Vec<Record>> {
        if !self.searches_an_index(connection, query)? {
            return None;
        }
        let mut statement = connection.prepare_cached(query).ok()?;
        for (i, param) in params.iter().enumerate() {
            let bound = match param {
                Param::Text(text) => statement.raw_bind_parameter(i + 1, *text),
                Param::Integer(n) => statement.raw_bind_parameter(i + 1, *n),
            };
            bound.ok()?;
        }
        let mut rows = statement.raw_query();
        let mut records = Vec::new();
        while let Some(row) = rows.next().ok()? {
            if records.len() == MAX_ROWS {
                return None;
            }
            let mut record = Vec::with_capacity(types.len());
            for (i, field_type) in types.iter().enumerate() {
                record.push(decode(row.get_ref(i).ok()?, *field_type)?);
            }
            records.push(record);
        }
        Some(records)
    }

    /// Whether SQLite answers `query` without scanning a table, worked out once per text.
    fn searches_an_index(&self, connection: &Connection, query: &str) -> Option<bool> {
        if let Some(known) = self.plans.lock().ok()?.get(query) {
            return Some(*known);
        }
        let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {query}")).ok()?;
        let mut rows = statement.raw_query();
        let mut searches = true;
        while let Some(row) = rows.next().ok()? {
            // Columns: id, parent, notused, detail ("SEARCH users USING INDEX …", "SCAN users").
            let detail: String = row.get(3).ok()?;
            if detail.starts_with("SCAN") {
                searches = false;
            }
        }
        let mut plans = self.plans.lock().ok()?;
        if plans.len() < MAX_PLANS {
            plans.insert(query.to_owned(), searches);
        }
        Some(searches)
    }

    /// A connection not in use, opened when fewer than `max` exist; `None` when all are busy.
    fn take(&self) -> Option<Connection> {
        if let Some(connection) = self.idle.lock().ok()?.pop() {
            return Some(connection);
        }
        if self.unopenable.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        {
            let mut opened = self.opened.lock().ok()?;
            if *opened >= self.max {
                return None;
            }
            *opened += 1;
        }
        let connection = self.open();
        if connection.is_none() {
            self.unopenable.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut opened) = self.opened.lock() {
                *opened -= 1;
            }
        }
        connection
    }

    fn open(&self) -> Option<Connection> {
        let access = if self.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags).ok()?;
        // Never wait for a writer on this thread: a busy file is answered by sqlx instead.
        connection.busy_timeout(std::time::Duration::ZERO).ok()?;
        connection.pragma_update(None, "query_only", true).ok()?;
        connection.set_prepared_statement_cache_capacity(64);
        Some(connection)
    }
}

/// One column read as the declared field type, exactly as `decode::decode_sqlite` reads it
/// through sqlx (which checks each value's own storage class); `None` where that would be an
/// error, so that sqlx reports it.
fn decode(value: ValueRef<'_>, field_type: FieldType) -> Option<Value> {
    let text = |bytes: &[u8]| std::str::from_utf8(bytes).ok().map(str::to_owned);
    Some(match (field_type, value) {
        (_, ValueRef::Null) => Value::Null,
        (FieldType::String | FieldType::Uuid | FieldType::Date | FieldType::Decimal, ValueRef::Text(t)) => {
            Value::String(text(t)?)
        }
        (FieldType::Int | FieldType::Bigint, ValueRef::Integer(n)) => Value::Int(n),
        (FieldType::Float, ValueRef::Real(x)) => Value::Float(x),
        (FieldType::Bool, ValueRef::Integer(n)) => Value::Bool(n != 0),
        (FieldType::Timestamp, ValueRef::Text(t)) => text_timestamp(text(t)?),
        (FieldType::Timestamp, ValueRef::Integer(secs)) => {
            DateTime::from_timestamp(secs, 0).map_or(Value::Int(secs), timestamp_utc)
        }
        (FieldType::Json, ValueRef::Text(t)) => json_text_value(&text(t)?)?,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_TYPE: [FieldType; 6] = [
        FieldType::Bigint,
        FieldType::String,
        FieldType::Bool,
        FieldType::Timestamp,
        FieldType::Json,
        FieldType::Float,
    ];

    fn database() -> Result<(tempfile::TempDir, PathBuf), rusqlite::Error> {
        let dir = tempfile::tempdir().map_err(|_| rusqlite::Error::InvalidQuery)?;
        let path = dir.path().join("people.db");
        let connection = Connection::open(&path)?;
        connection.execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, active BOOLEAN, seen DATETIME, doc TEXT, score REAL, nickname TEXT);
             CREATE INDEX people_email ON people (lower(email));
             INSERT INTO people VALUES (1, 'Ann@Example.com', 1, '2024-02-29 23:59:58', '{\"k\": 1}', 0.5, 'ann');
             INSERT INTO people VALUES (2, 'bob@example.com', 0, 1700000000, NULL, NULL, 'bob');
             INSERT INTO people VALUES (3, X'ff00', 0, NULL, NULL, NULL, 'blob');",
        )?;
        Ok((dir, path))
    }

    const SELECT: &str = "SELECT id, email, active, seen, doc, score FROM people WHERE ";

    #[test]
    fn an_indexed_lookup_is_read_here_as_sqlx_reads_it() -> Result<(), rusqlite::Error> {
        let (_dir, path) = database()?;
        let reader = InlineReader::for_file(&path, "sqlite://people.db").ok_or(rusqlite::Error::InvalidQuery)?;
        let records = reader.read(
            &format!("{SELECT}lower(email) IN (?, ?)"),
            &[Param::Text("ann@example.com"), Param::Text("bob@example.com")],
            &EVERY_TYPE,
        );
        assert_eq!(
            records,
            Some(vec![
                vec![
                    Value::Int(1),
                    Value::String("Ann@Example.com".into()),
                    Value::Bool(true),
                    Value::String("2024-02-29T23:59:58Z".into()),
                    Value::Json(serde_json::json!({ "k": 1 })),
                    Value::Float(0.5),
                ],
                vec![
                    Value::Int(2),
                    Value::String("bob@example.com".into()),
                    Value::Bool(false),
                    Value::String("2023-11-14T22:13:20Z".into()),
                    Value::Null,
                    Value::Null,
                ],
            ])
        );
        // By primary key: a search too.
        let by_id = reader.read(&format!("{SELECT}id IN (?)"), &[Param::Integer(2)], &EVERY_TYPE);
        assert_eq!(by_id.map(|r| r.len()), Some(1));
        Ok(())
    }

    #[test]
    fn a_scan_a_value_of_another_storage_class_or_no_file_is_left_to_sqlx() -> Result<(), rusqlite::Error> {
        let (dir, path) = database()?;
        let reader = InlineReader::for_file(&path, "sqlite://people.db").ok_or(rusqlite::Error::InvalidQuery)?;
        // No index on nickname: SQLite would scan the table on the runtime's thread.
        let scan = reader.read(&format!("{SELECT}nickname IN (?)"), &[Param::Text("ann")], &EVERY_TYPE);
        assert_eq!(scan, None);
        // An email stored as a BLOB: sqlx refuses it as a string, so this path does not read it.
        let mismatch = reader.read(&format!("{SELECT}id IN (?)"), &[Param::Integer(3)], &EVERY_TYPE);
        assert_eq!(mismatch, None);
        // A query SQLite refuses is sqlx's to report.
        let broken = reader.read("SELECT nope FROM people WHERE id IN (?)", &[Param::Integer(1)], &EVERY_TYPE);
        assert_eq!(broken, None);
        let gone = InlineReader::for_file(&dir.path().join("missing.db"), "sqlite://missing.db")
            .and_then(|r| r.read(&format!("{SELECT}id IN (?)"), &[Param::Integer(1)], &EVERY_TYPE));
        assert_eq!(gone, None);
        assert!(InlineReader::for_file(Path::new(":memory:"), "sqlite::memory:").is_none());
        // A large batch is read off the runtime's threads.
        let ids: Vec<Param<'_>> = (0..=MAX_VALUES as i64).map(Param::Integer).collect();
        let marks = vec!["?"; ids.len()].join(", ");
        assert_eq!(reader.read(&format!("{SELECT}id IN ({marks})"), &ids, &EVERY_TYPE), None);
        Ok(())
    }

    #[test]
    fn a_read_only_url_opens_read_only() -> Result<(), rusqlite::Error> {
        let (_dir, path) = database()?;
        let reader =
            InlineReader::for_file(&path, "sqlite://people.db?mode=ro").ok_or(rusqlite::Error::InvalidQuery)?;
        let by_id = reader.read(&format!("{SELECT}id IN (?)"), &[Param::Integer(1)], &EVERY_TYPE);
        assert_eq!(by_id.map(|r| r.len()), Some(1));
        let connection = reader.take().ok_or(rusqlite::Error::InvalidQuery)?;
        assert!(connection.is_readonly(rusqlite::DatabaseName::Main)?);
        Ok(())
    }

    #[test]
    fn it_never_writes() -> Result<(), rusqlite::Error> {
        let (_dir, path) = database()?;
        let reader = InlineReader::for_file(&path, "sqlite://people.db").ok_or(rusqlite::Error::InvalidQuery)?;
        let connection = reader.take().ok_or(rusqlite::Error::InvalidQuery)?;
        assert!(connection.execute("DELETE FROM people", []).is_err());
        Ok(())
    }
}
