//! Benchmark: does one person's read stay flat as the SQL stores grow? The SQL-only `subject`
//! query (accounts in PostgreSQL, billing in MariaDB, by email) is timed over HTTP on stores
//! holding `BENCH_SCALE_PEOPLE` people (default 10,000), then again after other people's rows
//! are added until each table holds `BENCH_SCALE_ROWS` (default 1,000,000); the same people are
//! asked for both times. Prints medians, p99, the ratio, and the PostgreSQL B-tree depths with
//! the depth 10 million rows would need.
//!
//! `cargo bench -p subject-gateway-tests --bench scale`; `BENCH_ITERATIONS` (default 1000).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sqlx::any::AnyPoolOptions;
use subject_connectors::declaration::SqlDialect;
use subject_gateway_demo::world;
use subject_gateway_tests::{ConfigCopy, TestDatabase, TestGateway, env_number};

/// The allocator the `subject-gateway` binary uses, for the gateway served in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SELECTION: &str = "{ accounts { users { id email fullName } sessions { ipAddress startedAt } preferences { language } } billing { customers { id email } invoices { number amountDueCents issuedAt } paymentMethods { brand last4 } } sources { connector latencyMs } }";

/// Other people's rows, numbered from far above the seeded ids, until each table holds `rows`.
const PAD_POSTGRES: [&str; 3] = [
    "INSERT INTO users (id, email, full_name, company, country, date_of_birth, marketing_opt_in, created_at) \
     SELECT 100000000 + n, 'filler-' || n || '@example.invalid', 'Filler ' || n, NULL, 'DE', DATE '1980-01-01', FALSE, TIMESTAMPTZ '2020-01-01 00:00:00+00' \
     FROM generate_series(1, $1) AS n",
    "INSERT INTO sessions (id, user_id, ip_address, user_agent, started_at, last_seen_at) \
     SELECT 1000000000 + n, 100000000 + n, '10.0.0.1', 'bench', TIMESTAMPTZ '2024-01-01 00:00:00+00', NULL \
     FROM generate_series(1, $1) AS n",
    "INSERT INTO preferences (user_id, language, timezone, theme, newsletter, settings) \
     SELECT 100000000 + n, 'de', 'Europe/Berlin', 'dark', FALSE, NULL FROM generate_series(1, $1) AS n",
];
const PAD_MARIADB: [&str; 3] = [
    "INSERT INTO customers (id, user_id, email, name, company, address_line1, city, postal_code, country, tax_id, created_at) \
     SELECT CONCAT('cus_fill_', seq), 100000000 + seq, CONCAT('filler-', seq, '@example.invalid'), 'Filler', NULL, 'Street 1', 'Berlin', '10115', 'DE', NULL, '2020-01-01 00:00:00' \
     FROM seq_1_to_{n}",
    "INSERT INTO invoices (id, customer_id, number, status, currency, amount_due_cents, tax_rate, billing_name, billing_email, issued_at) \
     SELECT CONCAT('in_fill_', seq), CONCAT('cus_fill_', seq), CONCAT('F-', seq), 'paid', 'EUR', 1000, 19.00, 'Filler', NULL, '2024-01-01 00:00:00' \
     FROM seq_1_to_{n}",
    "INSERT INTO payment_methods (id, customer_id, brand, last4, exp_month, exp_year, created_at) \
     SELECT CONCAT('pm_fill_', seq), CONCAT('cus_fill_', seq), 'visa', '4242', 12, 2030, '2020-01-01 00:00:00' \
     FROM seq_1_to_{n}",
];

/// Whole reads over HTTP, and the time each store's calls took in them (`sources.latencyMs`).
struct Samples(Vec<Duration>, Vec<(String, Vec<f64>)>);

impl Samples {
    fn percentile(&mut self, p: f64) -> f64 {
        self.0.sort();
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(index).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    fn store_medians(&mut self) -> String {
        self.1
            .iter_mut()
            .map(|(name, values)| {
                values.sort_by(f64::total_cmp);
                format!(
                    "{name} {:.3} ms",
                    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One read of `person`, timed; the per-store times go into `samples`.
async fn read_one(
    client: &reqwest::Client,
    gateway: &TestGateway,
    person: &world::Person,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let query = format!("query($v: String!) {{ subject(identity: {{kind: EMAIL, value: $v}}) {SELECTION} }}");
    let started = Instant::now();
    let response: serde_json::Value = client
        .post(gateway.url("/graphql"))
        .headers(gateway.admin_headers()?)
        .json(&serde_json::json!({"query": query, "variables": {"v": person.email}}))
        .send()
        .await?
        .json()
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(response.get("errors").is_none(), "errors: {}", response["errors"]);
    anyhow::ensure!(
        response["data"]["subject"]["accounts"]["users"][0]["id"] == person.user_id,
        "the person was not found"
    );
    samples.0.push(elapsed);
    for source in response["data"]["subject"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = source["connector"].as_str().unwrap_or_default();
        let latency = source["latencyMs"].as_f64().unwrap_or(f64::NAN);
        match samples.1.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(latency),
            None => samples.1.push((name.to_owned(), vec![latency])),
        }
    }
    Ok(())
}

/// Accounts in PostgreSQL and billing in MariaDB seeded with `people`, and a gateway over them
/// that declares only these two stores.
async fn sql_world(
    people: &[world::Person],
) -> anyhow::Result<(TestDatabase, TestDatabase, ConfigCopy, TestGateway)> {
    let (accounts, billing) = tokio::try_join!(
        TestDatabase::create(SqlDialect::Postgres),
        TestDatabase::create(SqlDialect::MySql)
    )?;
    tokio::try_join!(accounts.seed("accounts", people), billing.seed("billing", people))?;
    let config = ConfigCopy::new()?;
    for other in ["helpdesk.toml", "analytics.toml", "uploads.toml"] {
        std::fs::remove_file(config.dir.path().join("connectors").join(other))?;
    }
    // One client asking back to back: the per-caller rate limit is not what is measured.
    config.edit(
        "gateway.toml",
        "per_caller_rate = 200",
        "per_caller_rate = 1000000",
    )?;
    config.edit(
        "gateway.toml",
        "per_caller_burst = 400",
        "per_caller_burst = 1000000",
    )?;
    let vars = [
        ("ACCOUNTS_DATABASE_URL", accounts.url.clone()),
        ("BILLING_DATABASE_URL", billing.url.clone()),
    ];
    let env = move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let gateway = TestGateway::start(&config.gateway_toml(), env, Vec::new()).await?;
    Ok((accounts, billing, config, gateway))
}

/// Adds other people's rows until every table of the world holds `rows`.
async fn pad(accounts: &TestDatabase, billing: &TestDatabase, rows: i64) -> anyhow::Result<()> {
    let pg = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&accounts.url)
        .await?;
    for statement in PAD_POSTGRES {
        sqlx::query(statement).bind(rows).execute(&pg).await?;
    }
    sqlx::query("ANALYZE").execute(&pg).await?;
    let my = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&billing.url)
        .await?;
    for statement in PAD_MARIADB {
        let statement = statement.replace("{n}", &rows.to_string());
        subject_connectors::dynamic_sql::dynamic_query(&statement)
            .execute(&my)
            .await?;
    }
    for table in ["customers", "invoices", "payment_methods"] {
        subject_connectors::dynamic_sql::dynamic_query(format!("ANALYZE TABLE {table}"))
            .execute(&my)
            .await?;
    }
    Ok(())
}

/// Rows in each padded table and the B-tree depth (levels above the leaves + 1) of the
/// indexes a read walks in PostgreSQL, with its leaf pages.
async fn postgres_indexes(url: &str) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pageinspect")
        .execute(&pool)
        .await?;
    let mut out = Vec::new();
    for index in ["users_email_lower", "sessions_user_id", "preferences_pkey"] {
        let (level, pages): (i64, i64) = sqlx::query_as(
            "SELECT CAST(level AS BIGINT), CAST(pg_relation_size(CAST($1 AS regclass)) / 8192 AS BIGINT) FROM bt_metap($1)",
        )
        .bind(index)
        .fetch_one(&pool)
        .await?;
        out.push((index.to_owned(), level + 1, pages));
    }
    pool.close().await;
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seeded = env_number("BENCH_SCALE_PEOPLE", 10_000);
    let rows = env_number("BENCH_SCALE_ROWS", 1_000_000);
    let iterations = env_number("BENCH_ITERATIONS", 1_000);
    sqlx::any::install_default_drivers();
    let started = Instant::now();
    let people = world::people(seeded, 7, 1);
    // Two worlds of the same people; the large one also holds other people's rows. Reads
    // alternate between them, so both see the same machine.
    let (small_accounts, _small_billing, _small_config, small_gateway) = sql_world(&people).await?;
    let (large_accounts, large_billing, _large_config, large_gateway) = sql_world(&people).await?;
    println!(
        "{seeded} people seeded twice in {:.1} s (accounts in PostgreSQL, billing in MariaDB)",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    pad(
        &large_accounts,
        &large_billing,
        rows.saturating_sub(seeded) as i64,
    )
    .await?;
    println!(
        "the large world padded to {rows} rows per table in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut small, mut large) = (Samples(Vec::new(), Vec::new()), Samples(Vec::new(), Vec::new()));
    let (mut warm_small, mut warm_large) = (Samples(Vec::new(), Vec::new()), Samples(Vec::new(), Vec::new()));
    for i in 0..iterations + iterations / 10 {
        let person = &people[rng.random_range(0..people.len())];
        let (s, l) = if i < iterations / 10 {
            (&mut warm_small, &mut warm_large)
        } else {
            (&mut small, &mut large)
        };
        // Which world goes first alternates too.
        if i % 2 == 0 {
            read_one(&client, &small_gateway, person, s).await?;
            read_one(&client, &large_gateway, person, l).await?;
        } else {
            read_one(&client, &large_gateway, person, l).await?;
            read_one(&client, &small_gateway, person, s).await?;
        }
    }
    let small_indexes = postgres_indexes(&small_accounts.url).await?;
    let large_indexes = postgres_indexes(&large_accounts.url).await?;

    println!(
        "\n`subject` (accounts + billing, by email) over HTTP, {iterations} reads of random seeded people:"
    );
    let (small_p50, large_p50) = (small.percentile(0.5), large.percentile(0.5));
    println!(
        "  {seeded:>9} rows per table: median {small_p50:.3} ms, p99 {:.3} ms; in the stores' calls: {}",
        small.percentile(0.99),
        small.store_medians()
    );
    println!(
        "  {rows:>9} rows per table: median {large_p50:.3} ms, p99 {:.3} ms; in the stores' calls: {}",
        large.percentile(0.99),
        large.store_medians()
    );
    println!("  ratio of medians: {:.3}x", large_p50 / small_p50);
    println!("\nPostgreSQL B-tree depth (root to leaf) of the indexes a read walks:");
    for ((name, small_depth, _), (_, depth, pages)) in small_indexes.iter().zip(&large_indexes) {
        // Fan-out per level, from the leaf pages at 1M; the depth 10M rows (10x the leaves) needs.
        let fanout = if *depth > 1 {
            (*pages as f64).powf(1.0 / (*depth - 1) as f64).max(2.0)
        } else {
            f64::NAN
        };
        let at_ten_million = 1.0 + ((*pages as f64) * 10.0 * (rows as f64 / 1e6).recip()).ln() / fanout.ln();
        println!(
            "  {name}: {small_depth} levels at {seeded}, {depth} at {rows} ({pages} pages, fan-out ~{fanout:.0}); 10M rows: {} levels",
            at_ten_million.ceil()
        );
    }
    Ok(())
}
