//! Seeding the reference world's people (`people.rs`) into its stores: the DDL and
//! parameterized inserts for SQLite (`demo`), PostgreSQL and MariaDB (tests and benchmarks), the
//! uploads into a MongoDB-protocol server or the demo's SQLite stand-in, the files into local
//! storage or S3, and the data the helpdesk and analytics test servers serve.

use sqlx::AnyPool;
use subject_connectors::declaration::SqlDialect;

use crate::people::{Customer, Person, gps_json, tags_json};

/// Inserts the uploads of `people` into a MongoDB database (collection `images`, indexed by
/// `owner.id`).
pub async fn seed_uploads_mongo(
    database: &mongodb::Database,
    people: &[Person],
) -> Result<(), mongodb::error::Error> {
    use mongodb::bson::{self, Bson, doc};
    let date = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis())))
            .unwrap_or(Bson::Null)
    };
    let collection = database.collection::<bson::Document>("images");
    let documents: Vec<bson::Document> = people
        .iter()
        .flat_map(|person| {
            person.uploads.iter().map(move |upload| {
                let id = bson::oid::ObjectId::parse_str(&upload.id)
                    .map(Bson::ObjectId)
                    .unwrap_or(Bson::Null);
                let gps = gps_json(upload)
                    .and_then(|g| bson::to_bson(&g).ok())
                    .unwrap_or(Bson::Null);
                let tags = bson::to_bson(&tags_json(upload)).unwrap_or(Bson::Null);
                doc! {
                    "_id": id,
                    "owner": { "id": person.user_id, "display_name": &person.full_name },
                    "filename": &upload.filename,
                    "content_type": upload.content_type,
                    "size_bytes": upload.bytes.len() as i64,
                    "storage_key": &upload.storage_key,
                    "exif": {
                        "camera": upload.camera.clone().map_or(Bson::Null, Bson::String),
                        "gps": gps,
                        "taken_at": date(&upload.taken_at),
                    },
                    "tags": tags,
                    "uploaded_at": date(&upload.uploaded_at),
                    "visibility": upload.visibility,
                }
            })
        })
        .collect();
    if !documents.is_empty() {
        collection.insert_many(documents).await?;
    }
    collection
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "owner.id": 1 })
                .build(),
        )
        .await?;
    Ok(())
}

/// Stores the bytes of every upload of `people` under its storage key.
pub async fn seed_files(
    store: &subject_connectors::storage::FileStore,
    people: &[Person],
) -> Result<(), subject_connectors::ConnectorError> {
    for upload in people.iter().flat_map(|p| &p.uploads) {
        store.put(&upload.storage_key, upload.bytes.clone()).await?;
    }
    Ok(())
}

/// Inserts the uploads of `people` into the demo's SQLite stand-in for MongoDB.
pub async fn seed_uploads_sql(
    pool: &AnyPool,
    dialect: SqlDialect,
    people: &[Person],
) -> Result<(), sqlx::Error> {
    use Cast::*;
    let rows = people
        .iter()
        .flat_map(|p| {
            p.uploads.iter().map(move |u| {
                vec![
                    text(&u.id),
                    Cell::Int(p.user_id),
                    text(&u.filename),
                    text(u.content_type),
                    Cell::Int(u.bytes.len() as i64),
                    text(&u.storage_key),
                    opt_text(&u.camera),
                    gps_json(u).map_or(Cell::Null, |g| Cell::Text(g.to_string())),
                    text(&u.taken_at),
                    Cell::Text(tags_json(u).to_string()),
                    text(&u.uploaded_at),
                    text(u.visibility),
                ]
            })
        })
        .collect();
    insert(
        pool,
        dialect,
        "images",
        &[
            ("id", None),
            ("owner_id", None),
            ("filename", None),
            ("content_type", None),
            ("size_bytes", None),
            ("storage_key", None),
            ("camera", None),
            ("gps", Json),
            ("taken_at", Timestamp),
            ("tags", Json),
            ("uploaded_at", Timestamp),
            ("visibility", None),
        ],
        rows,
    )
    .await
}

/// The helpdesk's side of `people`: every other person wrote to support, with 1 to 3 tickets.
pub fn helpdesk_data(people: &[Person]) -> subject_test_servers::helpdesk::Data {
    let mut data = subject_test_servers::helpdesk::Data::default();
    for person in people.iter().filter(|p| p.user_id % 2 == 0) {
        data.add_user(
            &person.email,
            &person.full_name,
            (person.user_id % 3 + 1) as usize,
        );
    }
    data
}

/// The analytics side of `people`: two in three have a profile, with a few events each.
pub fn analytics_data(people: &[Person]) -> subject_test_servers::analytics::Data {
    let mut data = subject_test_servers::analytics::Data::default();
    for person in people.iter().filter(|p| p.user_id % 3 != 0) {
        data.add_profile(
            person.user_id,
            &person.email,
            &person.full_name,
            (person.user_id % 7) as usize,
        );
    }
    data
}

/// A value to bind in a seed insert.
#[derive(Debug, Clone)]
enum Cell {
    Int(i64),
    Text(String),
    Bool(bool),
    Null,
}

/// How a text parameter is converted to the column's type in each dialect.
#[derive(Debug, Clone, Copy)]
enum Cast {
    None,
    Timestamp,
    Date,
    Json,
    Decimal,
}

fn param(dialect: SqlDialect, n: usize, cast: Cast) -> String {
    let p = match dialect {
        SqlDialect::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    match (dialect, cast) {
        (_, Cast::None) | (SqlDialect::Sqlite, _) => p,
        (SqlDialect::Postgres, Cast::Timestamp) => format!("CAST({p} AS TIMESTAMPTZ)"),
        (SqlDialect::MySql, Cast::Timestamp) => format!("CAST({p} AS DATETIME(6))"),
        (_, Cast::Date) => format!("CAST({p} AS DATE)"),
        (SqlDialect::Postgres, Cast::Json) => format!("CAST({p} AS JSONB)"),
        (SqlDialect::MySql, Cast::Json) => p,
        (SqlDialect::Postgres, Cast::Decimal) => format!("CAST({p} AS NUMERIC)"),
        (SqlDialect::MySql, Cast::Decimal) => format!("CAST({p} AS DECIMAL(5,2))"),
    }
}

/// Inserts `rows` into `table`, many rows per statement.
async fn insert(
    pool: &AnyPool,
    dialect: SqlDialect,
    table: &str,
    columns: &[(&str, Cast)],
    rows: Vec<Vec<Cell>>,
) -> Result<(), sqlx::Error> {
    let per_statement = (2000 / columns.len()).max(1);
    for chunk in rows.chunks(per_statement) {
        let mut sql = format!(
            "INSERT INTO {table} ({}) VALUES ",
            columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
        );
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (c, (_, cast)) in columns.iter().enumerate() {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&param(dialect, n, *cast));
            }
            sql.push(')');
        }
        let mut query = subject_connectors::dynamic_sql::dynamic_query(sql);
        for row in chunk {
            for cell in row {
                query = match cell {
                    Cell::Int(v) => query.bind(*v),
                    Cell::Text(v) => query.bind(v.clone()),
                    Cell::Bool(v) => query.bind(*v),
                    Cell::Null => query.bind(None::<String>),
                };
            }
        }
        query.execute(pool).await?;
    }
    Ok(())
}

fn text(value: &str) -> Cell {
    Cell::Text(value.to_owned())
}

fn opt_text(value: &Option<String>) -> Cell {
    value.as_deref().map_or(Cell::Null, text)
}

/// The DDL of the reference world's `database` (`accounts` or `billing`) for `dialect`.
pub fn ddl(dialect: SqlDialect, database: &str) -> &'static str {
    match (dialect, database) {
        (SqlDialect::Postgres, "accounts") => {
            include_str!("../../../config/sql/postgres/accounts.sql")
        }
        (SqlDialect::Postgres, _) => include_str!("../../../config/sql/postgres/billing.sql"),
        (SqlDialect::MySql, "accounts") => include_str!("../../../config/sql/mysql/accounts.sql"),
        (SqlDialect::MySql, _) => include_str!("../../../config/sql/mysql/billing.sql"),
        (SqlDialect::Sqlite, "accounts") => include_str!("../../../config/sql/sqlite/accounts.sql"),
        (SqlDialect::Sqlite, "uploads") => include_str!("../../../config/sql/sqlite/uploads.sql"),
        (SqlDialect::Sqlite, _) => include_str!("../../../config/sql/sqlite/billing.sql"),
    }
}

/// Runs a DDL script statement by statement.
pub async fn create_schema(pool: &AnyPool, script: &str) -> Result<(), sqlx::Error> {
    let without_comments: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in without_comments.split(';') {
        if !statement.trim().is_empty() {
            subject_connectors::dynamic_sql::dynamic_query(statement)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Inserts `people` into an accounts database.
pub async fn seed_accounts(
    pool: &AnyPool,
    dialect: SqlDialect,
    people: &[Person],
) -> Result<(), sqlx::Error> {
    use Cast::*;
    let users = people
        .iter()
        .map(|p| {
            vec![
                Cell::Int(p.user_id),
                text(&p.email),
                text(&p.full_name),
                opt_text(&p.company),
                text(&p.country),
                text(&p.date_of_birth),
                Cell::Bool(p.marketing_opt_in),
                text(&p.created_at),
            ]
        })
        .collect();
    insert(
        pool,
        dialect,
        "users",
        &[
            ("id", None),
            ("email", None),
            ("full_name", None),
            ("company", None),
            ("country", None),
            ("date_of_birth", Date),
            ("marketing_opt_in", None),
            ("created_at", Timestamp),
        ],
        users,
    )
    .await?;
    let sessions = people
        .iter()
        .flat_map(|p| {
            p.sessions.iter().map(|s| {
                vec![
                    Cell::Int(s.id),
                    Cell::Int(p.user_id),
                    text(&s.ip_address),
                    text(&s.user_agent),
                    text(&s.started_at),
                    opt_text(&s.last_seen_at),
                ]
            })
        })
        .collect();
    insert(
        pool,
        dialect,
        "sessions",
        &[
            ("id", None),
            ("user_id", None),
            ("ip_address", None),
            ("user_agent", None),
            ("started_at", Timestamp),
            ("last_seen_at", Timestamp),
        ],
        sessions,
    )
    .await?;
    let preferences = people
        .iter()
        .filter_map(|p| {
            p.preferences.as_ref().map(|pr| {
                vec![
                    Cell::Int(p.user_id),
                    text(&pr.language),
                    text(&pr.timezone),
                    text(&pr.theme),
                    Cell::Bool(pr.newsletter),
                    text(&pr.settings),
                ]
            })
        })
        .collect();
    insert(
        pool,
        dialect,
        "preferences",
        &[
            ("user_id", None),
            ("language", None),
            ("timezone", None),
            ("theme", None),
            ("newsletter", None),
            ("settings", Json),
        ],
        preferences,
    )
    .await
}

/// Inserts the billing side of `people` into a billing database.
pub async fn seed_billing(pool: &AnyPool, dialect: SqlDialect, people: &[Person]) -> Result<(), sqlx::Error> {
    use Cast::*;
    let with_customer: Vec<(&Person, &Customer)> = people
        .iter()
        .filter_map(|p| p.customer.as_ref().map(|c| (p, c)))
        .collect();
    let customers = with_customer
        .iter()
        .map(|(p, c)| {
            vec![
                text(&c.id),
                Cell::Int(p.user_id),
                text(&c.email),
                text(&p.full_name),
                opt_text(&p.company),
                text(&c.address_line1),
                text(&c.city),
                text(&c.postal_code),
                text(&p.country),
                opt_text(&c.tax_id),
                text(&c.created_at),
            ]
        })
        .collect();
    insert(
        pool,
        dialect,
        "customers",
        &[
            ("id", None),
            ("user_id", None),
            ("email", None),
            ("name", None),
            ("company", None),
            ("address_line1", None),
            ("city", None),
            ("postal_code", None),
            ("country", None),
            ("tax_id", None),
            ("created_at", Timestamp),
        ],
        customers,
    )
    .await?;
    let invoices = with_customer
        .iter()
        .flat_map(|(p, c)| {
            c.invoices.iter().map(move |i| {
                vec![
                    text(&i.id),
                    text(&c.id),
                    text(&i.number),
                    text(i.status),
                    text(i.currency),
                    Cell::Int(i.amount_due_cents),
                    text(&i.tax_rate),
                    text(&p.full_name),
                    text(&c.email),
                    text(&i.issued_at),
                ]
            })
        })
        .collect();
    insert(
        pool,
        dialect,
        "invoices",
        &[
            ("id", None),
            ("customer_id", None),
            ("number", None),
            ("status", None),
            ("currency", None),
            ("amount_due_cents", None),
            ("tax_rate", Decimal),
            ("billing_name", None),
            ("billing_email", None),
            ("issued_at", Timestamp),
        ],
        invoices,
    )
    .await?;
    let methods = with_customer
        .iter()
        .flat_map(|(_, c)| {
            c.payment_methods.iter().map(|m| {
                vec![
                    text(&m.id),
                    text(&c.id),
                    text(m.brand),
                    text(&m.last4),
                    Cell::Int(m.exp_month),
                    Cell::Int(m.exp_year),
                    text(&m.created_at),
                ]
            })
        })
        .collect();
    insert(
        pool,
        dialect,
        "payment_methods",
        &[
            ("id", None),
            ("customer_id", None),
            ("brand", None),
            ("last4", None),
            ("exp_month", None),
            ("exp_year", None),
            ("created_at", Timestamp),
        ],
        methods,
    )
    .await
}
