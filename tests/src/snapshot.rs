//! Checksums of everything the reference world holds, row by row, document by document, file by
//! file, API record by API record: to prove that a privacy request changed one person's data and
//! nobody else's.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use subject_connectors::declaration::SqlDialect;
use subject_gateway_demo::world::Person;

use crate::{ReferenceWorld, TestDatabase};

/// `store/table/key` → SHA-256 of the record's content.
pub type Snapshot = BTreeMap<String, String>;

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Every row of `tables` (`(table, key column)`), keyed by `prefix/table/key`.
async fn sql_rows(
    database: &TestDatabase,
    prefix: &str,
    tables: &[(&str, &str)],
    out: &mut Snapshot,
) -> anyhow::Result<()> {
    match database.dialect {
        SqlDialect::Postgres => {
            let pool = sqlx::PgPool::connect(&database.url).await?;
            for (table, key) in tables {
                let rows: Vec<(String, String)> = subject_connectors::dynamic_sql::dynamic_query_as(format!(
                    "SELECT {key}::text, t::text FROM {table} t"
                ))
                .fetch_all(&pool)
                .await?;
                for (k, row) in rows {
                    out.insert(format!("{prefix}/{table}/{k}"), digest(&row));
                }
            }
            pool.close().await;
        }
        SqlDialect::MySql => {
            let pool = sqlx::MySqlPool::connect(&database.url).await?;
            for (table, key) in tables {
                let columns: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&pool)
                .await?;
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| format!("COALESCE(CAST(`{c}` AS CHAR), '<null>')"))
                    .collect();
                let rows: Vec<(String, String)> = subject_connectors::dynamic_sql::dynamic_query_as(format!(
                    "SELECT CAST(`{key}` AS CHAR), CONCAT_WS('|', {}) FROM {table}",
                    values.join(", ")
                ))
                .fetch_all(&pool)
                .await?;
                for (k, row) in rows {
                    out.insert(format!("{prefix}/{table}/{k}"), digest(&row));
                }
            }
            pool.close().await;
        }
        SqlDialect::Sqlite => anyhow::bail!("snapshots of SQLite databases are not needed yet"),
    }
    Ok(())
}

/// Everything the world holds now.
pub async fn take(world: &ReferenceWorld) -> anyhow::Result<Snapshot> {
    let mut out = Snapshot::new();
    sql_rows(
        &world.accounts,
        "accounts",
        &[("users", "id"), ("sessions", "id"), ("preferences", "user_id")],
        &mut out,
    )
    .await?;
    sql_rows(
        &world.billing,
        "billing",
        &[("customers", "id"), ("invoices", "id"), ("payment_methods", "id")],
        &mut out,
    )
    .await?;
    let documents: Vec<mongodb::bson::Document> = world
        .uploads
        .database
        .collection::<mongodb::bson::Document>("images")
        .find(mongodb::bson::doc! {})
        .await?
        .try_collect()
        .await?;
    for document in documents {
        let id = match document.get("_id") {
            Some(mongodb::bson::Bson::ObjectId(id)) => id.to_hex(),
            other => format!("{other:?}"),
        };
        out.insert(
            format!("uploads/images/{id}"),
            digest(
                &mongodb::bson::Bson::Document(document)
                    .into_canonical_extjson()
                    .to_string(),
            ),
        );
    }
    for entry in walk(world.files.path())? {
        let relative = entry
            .strip_prefix(world.files.path())?
            .to_string_lossy()
            .into_owned();
        out.insert(
            format!("files/{relative}"),
            hex::encode(Sha256::digest(std::fs::read(&entry)?)),
        );
    }
    {
        let data = world
            .helpdesk
            .state
            .data
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for user in data.users.values() {
            out.insert(
                format!("helpdesk/users/{}", user.id),
                digest(&format!("{user:?}")),
            );
        }
        for ticket in data.tickets.values() {
            out.insert(
                format!("helpdesk/tickets/{}", ticket.id),
                digest(&format!("{ticket:?}")),
            );
        }
        for comment in &data.comments {
            out.insert(
                format!("helpdesk/comments/{}", comment.id),
                digest(&format!("{comment:?}")),
            );
        }
    }
    {
        let data = world
            .analytics
            .state
            .data
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for profile in data.profiles.values() {
            out.insert(
                format!("analytics/profiles/{}", profile.distinct_id),
                digest(&format!("{profile:?}")),
            );
        }
        for event in &data.events {
            out.insert(
                format!(
                    "analytics/events/{}/{}/{}",
                    event.distinct_id, event.time, event.event
                ),
                digest(&format!("{event:?}")),
            );
        }
    }
    Ok(out)
}

fn walk(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// The keys of `person`'s records in a snapshot of `world` (taken before any change).
pub fn keys_of(world: &ReferenceWorld, person: &Person, before: &Snapshot) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    keys.insert(format!("accounts/users/{}", person.user_id));
    keys.insert(format!("accounts/preferences/{}", person.user_id));
    for session in &person.sessions {
        keys.insert(format!("accounts/sessions/{}", session.id));
    }
    if let Some(customer) = &person.customer {
        keys.insert(format!("billing/customers/{}", customer.id));
        keys.extend(
            customer
                .invoices
                .iter()
                .map(|i| format!("billing/invoices/{}", i.id)),
        );
        keys.extend(
            customer
                .payment_methods
                .iter()
                .map(|p| format!("billing/payment_methods/{}", p.id)),
        );
    }
    for upload in &person.uploads {
        keys.insert(format!("uploads/images/{}", upload.id));
        keys.insert(format!("files/{}", upload.storage_key));
    }
    if let Ok(data) = world.helpdesk.state.data.lock() {
        let email = person.email.to_lowercase();
        for user in data.users.values() {
            if user.email.as_deref().map(str::to_lowercase).as_deref() == Some(email.as_str()) {
                keys.insert(format!("helpdesk/users/{}", user.id));
                for ticket in data.tickets.values().filter(|t| t.requester_id == user.id) {
                    keys.insert(format!("helpdesk/tickets/{}", ticket.id));
                    for comment in data.comments.iter().filter(|c| c.ticket_id == ticket.id) {
                        keys.insert(format!("helpdesk/comments/{}", comment.id));
                    }
                }
            }
        }
    }
    let distinct = format!("u{}", person.user_id);
    keys.insert(format!("analytics/profiles/{distinct}"));
    keys.extend(
        before
            .keys()
            .filter(|k| k.starts_with(&format!("analytics/events/{distinct}/")))
            .cloned(),
    );
    keys
}
