//! The reference world: synthetic people across the five domains (accounts, billing, uploads,
//! helpdesk, analytics), and the code that creates their databases and seeds them (SQLite for
//! `demo`, PostgreSQL and MariaDB for tests and benchmarks, a MongoDB-protocol server, files or
//! S3, and the data the test servers serve). Every insert is parameterized.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::AnyPool;
use subject_connectors::declaration::SqlDialect;

const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farah", "Gustav", "Hana", "Ivan", "Júlia", "Kofi", "Lena",
    "Mateo", "Nora", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tomás", "Uma", "Viktor", "Wen", "Yara",
    "Zoë",
];
// Few surnames, so that many people share one (lookups must never match by name).
const LAST_NAMES: &[&str] = &[
    "Smith", "García", "Müller", "Kowalski", "Nguyen", "O'Brien", "Rossi", "Tanaka", "Okafor", "Larsen",
];
const COMPANIES: &[&str] = &[
    "Acme Ltd",
    "Globex",
    "Initech",
    "Umbrella GmbH",
    "Stark Industries",
    "Wayne Enterprises",
];
const COUNTRIES: &[&str] = &["GB", "DE", "FR", "ES", "PL", "NL", "US", "JP", "NG", "BR"];
const CITIES: &[&str] = &[
    "London",
    "Berlin",
    "Paris",
    "Madrid",
    "Warsaw",
    "Amsterdam",
    "Boston",
    "Osaka",
    "Lagos",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
];
const BRANDS: &[&str] = &["visa", "mastercard", "amex"];

/// One synthetic person and everything the two databases hold about them.
#[derive(Debug, Clone)]
pub struct Person {
    pub user_id: i64,
    /// As stored in accounts: mixed case for some people.
    pub email: String,
    pub full_name: String,
    pub company: Option<String>,
    pub country: String,
    pub date_of_birth: String,
    pub marketing_opt_in: bool,
    pub created_at: String,
    pub sessions: Vec<Session>,
    pub preferences: Option<Preferences>,
    pub customer: Option<Customer>,
    pub uploads: Vec<Upload>,
}

/// An uploaded image: its metadata document and its bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    /// A MongoDB ObjectId in hex.
    pub id: String,
    pub filename: String,
    pub content_type: &'static str,
    pub storage_key: String,
    pub camera: Option<String>,
    /// Latitude and longitude, when the camera recorded them.
    pub gps: Option<(f64, f64)>,
    pub taken_at: String,
    pub tags: Vec<(&'static str, f64)>,
    pub uploaded_at: String,
    pub visibility: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub ip_address: String,
    pub user_agent: String,
    pub started_at: String,
    pub last_seen_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Preferences {
    pub language: String,
    pub timezone: String,
    pub theme: String,
    pub newsletter: bool,
    pub settings: String,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub address_line1: String,
    pub city: String,
    pub postal_code: String,
    pub tax_id: Option<String>,
    pub created_at: String,
    pub invoices: Vec<Invoice>,
    pub payment_methods: Vec<PaymentMethod>,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub status: &'static str,
    pub currency: &'static str,
    pub amount_due_cents: i64,
    pub tax_rate: String,
    pub issued_at: String,
}

#[derive(Debug, Clone)]
pub struct PaymentMethod {
    pub id: String,
    pub brand: &'static str,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub created_at: String,
}

/// `count` people, the same for the same `seed`. Ids start at `first_id`.
pub fn people(count: usize, seed: u64, first_id: i64) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut session_id = first_id * 10;
    (0..count)
        .map(|n| {
            let user_id = first_id + n as i64;
            let first = *FIRST_NAMES.choose(&mut rng).unwrap_or(&"Alex");
            let last = *LAST_NAMES.choose(&mut rng).unwrap_or(&"Doe");
            let local = format!("{}.{}{}", ascii(first), ascii(last), user_id);
            // A third of the people signed up with capitals in their address.
            let email = if n % 3 == 0 {
                format!("{local}@Example.COM")
            } else {
                format!("{local}@example.com").to_lowercase()
            };
            let day = |rng: &mut StdRng| {
                format!(
                    "20{:02}-{:02}-{:02} {:02}:{:02}:{:02}",
                    rng.random_range(18..26),
                    rng.random_range(1..13),
                    rng.random_range(1..29),
                    rng.random_range(0..24),
                    rng.random_range(0..60),
                    rng.random_range(0..60)
                )
            };
            let sessions = (0..rng.random_range(0..5))
                .map(|_| {
                    session_id += 1;
                    Session {
                        id: session_id,
                        ip_address: format!(
                            "{}.{}.{}.{}",
                            rng.random_range(1..224),
                            rng.random_range(0..256),
                            rng.random_range(0..256),
                            rng.random_range(1..255)
                        ),
                        user_agent: (*AGENTS.choose(&mut rng).unwrap_or(&"curl/8")).to_owned(),
                        started_at: day(&mut rng),
                        last_seen_at: rng.random_bool(0.7).then(|| day(&mut rng)),
                    }
                })
                .collect();
            let preferences = rng.random_bool(0.7).then(|| Preferences {
                language: (*["en", "de", "fr", "es", "pl", "ja"]
                    .choose(&mut rng)
                    .unwrap_or(&"en"))
                .to_owned(),
                timezone: (*["Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
                    .choose(&mut rng)
                    .unwrap_or(&"UTC"))
                .to_owned(),
                theme: (*["light", "dark", "system"].choose(&mut rng).unwrap_or(&"system")).to_owned(),
                newsletter: rng.random_bool(0.3),
                settings: format!(
                    r#"{{"notifications":{{"email":{},"push":{}}},"density":"{}"}}"#,
                    rng.random_bool(0.5),
                    rng.random_bool(0.5),
                    ["compact", "comfortable"][rng.random_range(0..2)]
                ),
            });
            let company = rng
                .random_bool(0.6)
                .then(|| (*COMPANIES.choose(&mut rng).unwrap_or(&"Acme")).to_owned());
            // A quarter of the people never bought anything.
            let customer = (n % 4 != 3).then(|| {
                let id = format!(
                    "cus_{:08X}{}",
                    user_id.wrapping_mul(2_654_435_761) & 0xffff_ffff,
                    user_id
                );
                let invoices = (0..rng.random_range(0..6))
                    .map(|i| Invoice {
                        id: format!("in_{user_id}x{i}"),
                        number: format!("INV-{user_id:06}-{:04}", i + 1),
                        status: ["paid", "paid", "open", "void"][rng.random_range(0..4)],
                        currency: ["eur", "usd", "gbp"][rng.random_range(0..3)],
                        amount_due_cents: rng.random_range(500..250_000),
                        tax_rate: ["19.00", "20.00", "0.00", "7.50"][rng.random_range(0..4)].to_owned(),
                        issued_at: day(&mut rng),
                    })
                    .collect();
                let payment_methods = (0..rng.random_range(1..3))
                    .map(|i| PaymentMethod {
                        id: format!("pm_{user_id}x{i}"),
                        brand: BRANDS[rng.random_range(0..BRANDS.len())],
                        last4: format!("{:04}", rng.random_range(0..10_000)),
                        exp_month: rng.random_range(1..13),
                        exp_year: rng.random_range(2026..2032),
                        created_at: day(&mut rng),
                    })
                    .collect();
                Customer {
                    // Some pay from a separate billing address.
                    email: if n % 5 == 0 {
                        format!("billing+{user_id}@{}.example", ascii(last).to_lowercase())
                    } else {
                        email.to_lowercase()
                    },
                    id,
                    address_line1: format!("{} {} Street", rng.random_range(1..300), last),
                    city: (*CITIES.choose(&mut rng).unwrap_or(&"London")).to_owned(),
                    postal_code: format!("{:05}", rng.random_range(1000..99999)),
                    tax_id: rng
                        .random_bool(0.3)
                        .then(|| format!("VAT{:09}", rng.random_range(0..1_000_000_000))),
                    created_at: day(&mut rng),
                    invoices,
                    payment_methods,
                }
            });
            Person {
                user_id,
                email,
                full_name: format!("{first} {last}"),
                company,
                country: (*COUNTRIES.choose(&mut rng).unwrap_or(&"GB")).to_owned(),
                date_of_birth: format!(
                    "19{:02}-{:02}-{:02}",
                    rng.random_range(50..100),
                    rng.random_range(1..13),
                    rng.random_range(1..29)
                ),
                marketing_opt_in: rng.random_bool(0.4),
                created_at: day(&mut rng),
                sessions,
                preferences,
                customer,
                uploads: uploads_of(user_id),
            }
        })
        .collect()
}

/// A person's uploads, from an RNG of their own so that the other data stays as it was.
fn uploads_of(user_id: i64) -> Vec<Upload> {
    let mut rng = StdRng::seed_from_u64(user_id as u64 ^ 0x05ee_d0ff_11e5);
    (0..(user_id % 4) as usize)
        .map(|n| {
            let extension = if n % 2 == 0 { "jpg" } else { "png" };
            let filename = format!("IMG_{:04}.{extension}", rng.random_range(1000..9999));
            let mut bytes = if extension == "jpg" {
                vec![0xFF, 0xD8, 0xFF, 0xE0]
            } else {
                vec![0x89, b'P', b'N', b'G']
            };
            bytes.extend((0..rng.random_range(2_000..6_000)).map(|_| rng.random::<u8>()));
            Upload {
                id: format!("{:016x}{:08x}", user_id, n),
                storage_key: format!("uploads/{user_id}/{n}-{filename}"),
                filename,
                content_type: if extension == "jpg" {
                    "image/jpeg"
                } else {
                    "image/png"
                },
                camera: rng
                    .random_bool(0.7)
                    .then(|| ["Pixel 9", "iPhone 16", "Canon EOS R6"][n % 3].to_owned()),
                gps: rng
                    .random_bool(0.5)
                    .then(|| (rng.random_range(-60.0..70.0), rng.random_range(-120.0..150.0))),
                taken_at: format!("2024-{:02}-{:02}T{:02}:15:00Z", n % 12 + 1, n % 27 + 1, n % 24),
                tags: vec![("outdoor", 0.91), ("person", 0.77)][..n % 3].to_vec(),
                uploaded_at: format!("2024-{:02}-{:02}T18:00:00Z", n % 12 + 1, n % 27 + 2),
                visibility: ["private", "unlisted", "public"][n % 3],
                bytes,
            }
        })
        .collect()
}

/// The JSON of an upload's GPS position, as stored.
pub fn gps_json(upload: &Upload) -> Option<serde_json::Value> {
    upload
        .gps
        .map(|(lat, lon)| serde_json::json!({ "lat": lat, "lon": lon }))
}

/// The JSON of an upload's tags, as stored.
pub fn tags_json(upload: &Upload) -> serde_json::Value {
    serde_json::Value::Array(
        upload
            .tags
            .iter()
            .map(|(name, confidence)| serde_json::json!({ "name": name, "confidence": confidence }))
            .collect(),
    )
}

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

fn ascii(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'é' => 'e',
            'ú' => 'u',
            'ü' => 'u',
            'á' => 'a',
            'ë' => 'e',
            'í' => 'i',
            c if c.is_ascii_alphanumeric() => c,
            _ => 'x',
        })
        .collect()
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

/// Where the reference world's stores are, as the variables the reference declarations read.
#[derive(Debug, Clone)]
pub struct ReferenceEnv {
    pub vars: std::collections::HashMap<&'static str, String>,
    /// Whether variables not in `vars` are read from the process environment.
    pub fall_back_to_process: bool,
}

impl ReferenceEnv {
    /// The lookup function `Config::build_service` takes.
    pub fn lookup(self) -> impl Fn(&str) -> Option<String> + use<> {
        move |name| match self.vars.get(name) {
            Some(value) => Some(value.clone()),
            None if self.fall_back_to_process => std::env::var(name).ok(),
            None => None,
        }
    }
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
        let mut query = sqlx::query(&sql);
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
            sqlx::query(statement).execute(pool).await?;
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
