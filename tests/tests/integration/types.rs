//! Type-true reads: every common column type of each SQL dialect, holding known and edge values,
//! read back through `subject` — or refused by `check`, naming the column. Never "check OK,
//! query fails".

use serde_json::{Value as Json, json};
use subject_connectors::declaration::SqlDialect;
use subject_gateway::check::check_all;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestDatabase, TestGateway};

use crate::subject_ok;

/// Starts the reference world plus one connector `types` (in `TYPES_DATABASE_URL`), declared by
/// `declaration`, and asks for the person `email` with `selection`.
async fn read_back(
    database: &TestDatabase,
    declaration: &str,
    email: &str,
    selection: &str,
) -> anyhow::Result<(Json, subject_gateway::check::CheckReport)> {
    let world = ReferenceWorld::create(2).await?;
    let config = ConfigCopy::new()?;
    config.write_connector("types.toml", declaration)?;
    let base = world.env();
    let url = database.url.clone();
    let env = move |name: &str| match name {
        "TYPES_DATABASE_URL" => Some(url.clone()),
        other => base(other),
    };
    let gateway = TestGateway::start(&config.gateway_toml(), env, Vec::new()).await?;
    let report = check_all(&gateway.service).await;
    let response = gateway.subject("EMAIL", email, selection).await?;
    Ok((response, report))
}

fn types_row(report: &subject_gateway::check::CheckReport) -> String {
    report
        .rows
        .iter()
        .filter(|r| r.connector == "types")
        .map(|r| format!("{}: ok={} {}", r.entity, r.ok, r.details.join("; ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn mysql_columns_of_every_common_type_read_back_as_stored() -> anyhow::Result<()> {
    let database = TestDatabase::create(SqlDialect::MySql).await?;
    let pool = database.pool().await?;
    sqlx::query(
        "CREATE TABLE everything (
            id BIGINT UNSIGNED PRIMARY KEY,
            email VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            name_bin TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
            name_ci VARCHAR(50) COLLATE utf8mb4_unicode_ci,
            mood ENUM('happy','sad'),
            tags SET('a','b','c'),
            amount DECIMAL(20,4),
            flag TINYINT(1),
            born YEAR,
            wake TIME,
            day DATE,
            at6 DATETIME(6),
            stamp TIMESTAMP NULL,
            doc JSON,
            ratio DOUBLE,
            KEY everything_email (email)
        )",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO everything VALUES (18446744073709551615, 'Mixed.Case@Example.COM', 'Zoë Ünal', 'Ana',
            'sad', 'a,c', 12345678901234.5678, 1, 1999, '07:30:15', '2024-02-29',
            '2024-02-29 23:59:58.123456', '2020-01-01 00:00:00', '{\"k\": [1, 2]}', 0.25)",
    )
    .execute(&pool)
    .await?;
    let declaration = r#"kind = "sql"
url = "${TYPES_DATABASE_URL}"
purposes = ["essential"]

[entities.everything]
table = "everything"
primary_key = "id"
lookup = [{ kind = "email", field = "email", compare = "lowercase" }]

[entities.everything.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
name_bin = { type = "string", category = "user.name" }
name_ci = { type = "string", category = "user.name" }
mood = { type = "string", category = "user.behavior" }
tags = { type = "string", category = "user.behavior" }
amount = { type = "decimal", category = "user.financial" }
flag = { type = "bool", category = "user.behavior" }
born = { type = "int", category = "user.demographic.age_range" }
wake = { type = "string", category = "user.behavior" }
day = { type = "date", category = "user.behavior" }
at6 = { type = "timestamp", category = "user.behavior" }
stamp = { type = "timestamp", category = "user.behavior" }
doc = { type = "json", category = "user.behavior" }
ratio = { type = "float", category = "user.behavior" }
"#;
    let (response, report) = read_back(
        &database,
        declaration,
        "mixed.case@example.com",
        "{ types { everything { id email nameBin nameCi mood tags amount flag born wake day at6 stamp doc ratio } } }",
    )
    .await?;
    assert!(
        report
            .rows
            .iter()
            .filter(|r| r.connector == "types")
            .all(|r| r.ok),
        "{}",
        types_row(&report)
    );
    let subject = subject_ok(&response);
    assert_eq!(
        subject["types"]["everything"],
        json!([{
            "id": 18446744073709551615u64,
            "email": "Mixed.Case@Example.COM",
            "nameBin": "Zoë Ünal",
            "nameCi": "Ana",
            "mood": "sad",
            "tags": "a,c",
            "amount": "12345678901234.5678",
            "flag": true,
            "born": 1999,
            "wake": "07:30:15",
            "day": "2024-02-29",
            "at6": "2024-02-29T23:59:58.123456Z",
            "stamp": "2020-01-01T00:00:00Z",
            "doc": { "k": [1, 2] },
            "ratio": 0.25,
        }]),
        "{response}"
    );
    Ok(())
}

#[tokio::test]
async fn mysql_bytes_declared_as_text_are_refused_by_check() -> anyhow::Result<()> {
    let database = TestDatabase::create(SqlDialect::MySql).await?;
    let pool = database.pool().await?;
    sqlx::query(
        "CREATE TABLE blobs (id BIGINT PRIMARY KEY, email VARCHAR(200) NOT NULL, raw VARBINARY(16), body BLOB,
            KEY blobs_email (email))",
    )
    .execute(&pool)
    .await?;
    let declaration = r#"kind = "sql"
url = "${TYPES_DATABASE_URL}"
purposes = ["essential"]

[entities.blobs]
table = "blobs"
primary_key = "id"
lookup = [{ kind = "email", field = "email" }]

[entities.blobs.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
raw = { type = "string", category = "user.behavior" }
body = { type = "string", category = "user.behavior" }
"#;
    let (_, report) = read_back(
        &database,
        declaration,
        "nobody@example.com",
        "{ types { blobs { id } } }",
    )
    .await?;
    let row = types_row(&report);
    assert!(row.contains("ok=false"), "{row}");
    assert!(row.contains("column `raw` is varbinary"), "{row}");
    assert!(row.contains("column `body` is blob"), "{row}");
    Ok(())
}

#[tokio::test]
async fn postgres_columns_of_every_common_type_read_back_as_stored() -> anyhow::Result<()> {
    let database = TestDatabase::create(SqlDialect::Postgres).await?;
    let pool = database.pool().await?;
    for statement in [
        "CREATE TYPE mood AS ENUM ('happy', 'sad')",
        "CREATE TABLE everything (
            id BIGINT PRIMARY KEY,
            email TEXT NOT NULL,
            amount NUMERIC(30,6),
            token UUID,
            ip INET,
            net CIDR,
            doc JSONB,
            doc_plain JSON,
            raw BYTEA,
            tags TEXT[],
            feeling mood,
            span INTERVAL,
            seen TIMESTAMPTZ,
            day DATE,
            wake TIME,
            small SMALLINT,
            ratio NUMERIC(6,3)
        )",
        "CREATE INDEX everything_email ON everything (lower(email))",
        "INSERT INTO everything VALUES (9223372036854775807, 'Mixed.Case@Example.COM', 123456789012345678901234.000001,
            '6f9619ff-8b86-d011-b42d-00c04fc964ff', '192.0.2.17', '10.0.0.0/8', '{\"k\": [1, 2]}', '{\"a\":1}',
            '\\x0102ff', ARRAY['x','y'], 'sad', '1 day 02:03:04', '2024-02-29 23:59:58.5+00', '2024-02-29', '07:30:15', -32768, 0.125)",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    let declaration = r#"kind = "sql"
url = "${TYPES_DATABASE_URL}"
purposes = ["essential"]

[entities.everything]
table = "everything"
primary_key = "id"
lookup = [{ kind = "email", field = "email", compare = "lowercase" }]

[entities.everything.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
amount = { type = "decimal", category = "user.financial" }
token = { type = "uuid", category = "user.unique_id" }
ip = { type = "string", category = "user.device.ip_address" }
net = { type = "string", category = "user.device.ip_address" }
doc = { type = "json", category = "user.behavior" }
doc_plain = { type = "json", category = "user.behavior" }
raw = { type = "string", category = "user.behavior" }
tags = { type = "string", category = "user.behavior" }
feeling = { type = "string", category = "user.behavior" }
span = { type = "string", category = "user.behavior" }
seen = { type = "timestamp", category = "user.behavior" }
day = { type = "date", category = "user.behavior" }
wake = { type = "string", category = "user.behavior" }
small = { type = "int", category = "user.behavior" }
ratio = { type = "float", category = "user.behavior" }
"#;
    let (response, report) = read_back(
        &database,
        declaration,
        "mixed.case@example.com",
        "{ types { everything { id email amount token ip net doc docPlain raw tags feeling span seen day wake small ratio } } }",
    )
    .await?;
    assert!(
        report
            .rows
            .iter()
            .filter(|r| r.connector == "types")
            .all(|r| r.ok),
        "{}",
        types_row(&report)
    );
    let subject = subject_ok(&response);
    assert_eq!(
        subject["types"]["everything"],
        json!([{
            "id": 9223372036854775807i64,
            "email": "Mixed.Case@Example.COM",
            "amount": "123456789012345678901234.000001",
            "token": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "ip": "192.0.2.17",
            "net": "10.0.0.0/8",
            "doc": { "k": [1, 2] },
            "docPlain": { "a": 1 },
            "raw": "\\x0102ff",
            "tags": "{x,y}",
            "feeling": "sad",
            "span": "1 day 02:03:04",
            "seen": "2024-02-29T23:59:58.500Z",
            "day": "2024-02-29",
            "wake": "07:30:15",
            "small": -32768,
            "ratio": 0.125,
        }]),
        "{response}"
    );
    Ok(())
}

#[tokio::test]
async fn sqlite_storage_classes_read_back_as_stored() -> anyhow::Result<()> {
    let database = TestDatabase::create(SqlDialect::Sqlite).await?;
    let pool = database.pool().await?;
    for statement in [
        "CREATE TABLE everything (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount NUMERIC, ratio REAL,
            flag BOOLEAN, seen DATETIME, seen_epoch INTEGER, doc TEXT, note VARCHAR(20))",
        "CREATE INDEX everything_email ON everything (lower(email))",
        "INSERT INTO everything VALUES (42, 'Mixed.Case@Example.COM', '10.50', 0.25, 1, '2024-02-29 23:59:58',
            1700000000, '{\"k\": 1}', 'plain')",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    let declaration = r#"kind = "sql"
url = "${TYPES_DATABASE_URL}"
purposes = ["essential"]

[entities.everything]
table = "everything"
primary_key = "id"
lookup = [{ kind = "email", field = "email", compare = "lowercase" }]

[entities.everything.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
amount = { type = "decimal", category = "user.financial" }
ratio = { type = "float", category = "user.behavior" }
flag = { type = "bool", category = "user.behavior" }
seen = { type = "timestamp", category = "user.behavior" }
seen_epoch = { type = "timestamp", category = "user.behavior" }
doc = { type = "json", category = "user.behavior" }
note = { type = "string", category = "user.behavior" }
"#;
    let (response, report) = read_back(
        &database,
        declaration,
        "mixed.case@example.com",
        "{ types { everything { id email amount ratio flag seen seenEpoch doc note } } }",
    )
    .await?;
    assert!(
        report
            .rows
            .iter()
            .filter(|r| r.connector == "types")
            .all(|r| r.ok),
        "{}",
        types_row(&report)
    );
    let subject = subject_ok(&response);
    let record = &subject["types"]["everything"][0];
    assert_eq!(record["id"], 42, "{response}");
    assert_eq!(record["email"], "Mixed.Case@Example.COM");
    assert_eq!(record["ratio"], 0.25);
    assert_eq!(record["flag"], true);
    assert_eq!(record["seenEpoch"], "2023-11-14T22:13:20Z");
    assert_eq!(record["doc"], json!({ "k": 1 }));
    assert_eq!(record["note"], "plain");
    Ok(())
}
