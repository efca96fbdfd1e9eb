//! Listing queries of the state database (requests, manual tasks, webhook deliveries): a fixed
//! `SELECT … WHERE 1 = 1` narrowed by the filters the caller gave, each value bound as `$1`,
//! `$2`, … (SQLite and PostgreSQL both number placeholders so), then paged by a
//! `(created_at, id)` cursor. The clauses are the callers' own fixed text; values never enter it.

use sqlx::AnyPool;
use sqlx::any::AnyRow;
use subject_connectors::dynamic_sql::dynamic_query_as;

/// A listing being narrowed.
pub struct Listing {
    sql: String,
    binds: Vec<String>,
}

impl Listing {
    /// Starts from `select`, which ends in a `WHERE` clause the filters extend with `AND`.
    pub fn new(select: impl Into<String>) -> Self {
        Self {
            sql: select.into(),
            binds: Vec::new(),
        }
    }

    /// Binds `value`, returning its placeholder for a clause.
    pub fn bind(&mut self, value: &str) -> String {
        self.binds.push(value.to_owned());
        format!("${}", self.binds.len())
    }

    /// Appends ` AND clause`.
    pub fn and(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }

    /// `AND column = value`.
    pub fn equals(&mut self, column: &str, value: &str) {
        let at = self.bind(value);
        self.and(&format!("{column} = {at}"));
    }

    /// Rows past the cursor `(created_at, id)` in the listing's order: older ones when it lists
    /// newest first, newer ones otherwise. `prefix` qualifies the columns (`""` or `"m."`).
    pub fn after(&mut self, prefix: &str, (created, id): (&str, &str), newest_first: bool) {
        let (created, id) = (self.bind(created), self.bind(id));
        let past = if newest_first { '<' } else { '>' };
        self.and(&format!(
            "({prefix}created_at {past} {created} OR ({prefix}created_at = {created} AND {prefix}id {past} {id}))"
        ));
    }

    /// Ends with `suffix` (fixed text: a `GROUP BY`) instead of paging, and runs it.
    pub async fn fetch_grouped<R>(mut self, pool: &AnyPool, suffix: &str) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.sql.push(' ');
        self.sql.push_str(suffix);
        let mut query = dynamic_query_as::<_, R>(self.sql.as_str());
        for bind in &self.binds {
            query = query.bind(bind.as_str());
        }
        query.fetch_all(pool).await
    }

    /// Ends with `ORDER BY … LIMIT limit` on the cursor's columns, and runs it.
    pub async fn fetch<R>(
        mut self,
        pool: &AnyPool,
        prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let direction = if newest_first { " DESC" } else { "" };
        self.sql.push_str(&format!(
            " ORDER BY {prefix}created_at{direction}, {prefix}id{direction} LIMIT {limit}"
        ));
        let mut query = dynamic_query_as::<_, R>(self.sql.as_str());
        for bind in &self.binds {
            query = query.bind(bind.as_str());
        }
        query.fetch_all(pool).await
    }
}
