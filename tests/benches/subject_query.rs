//! Benchmark: the gateway's `subject` query against the floor — the same lookups issued directly
//! to the same databases, staged by identity dependency, each stage in parallel — side by side
//! in one run, interleaved. Prints medians, tails and the ratio. Also times `subjects` for 1,000
//! people.
//!
//! Needs PostgreSQL and MariaDB as for the tests. `cargo bench -p subject-gateway-tests`;
//! `BENCH_PEOPLE` (default 10000) and `BENCH_ITERATIONS` (default 2000) size it.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sqlx::{MySqlPool, PgPool, Row};
use subject_gateway::world::Person;
use subject_gateway_tests::{FULL_SELECTION, ReferenceWorld};

const USERS: &str = "SELECT \"id\", \"email\"::text, \"full_name\"::text, \"company\"::text, \"country\"::text, \"date_of_birth\", \"marketing_opt_in\", \"created_at\" FROM \"users\" WHERE ";
const SESSIONS: &str = "SELECT \"id\", \"user_id\", \"ip_address\"::text, \"user_agent\"::text, \"started_at\", \"last_seen_at\" FROM \"sessions\" WHERE \"user_id\" = ANY($1)";
const PREFERENCES: &str = "SELECT \"user_id\", \"language\"::text, \"timezone\"::text, \"theme\"::text, \"newsletter\", \"settings\" FROM \"preferences\" WHERE \"user_id\" = ANY($1)";
const CUSTOMERS: &str = "SELECT `id`, `user_id`, `email`, `name`, `company`, `address_line1`, `city`, `postal_code`, `country`, `tax_id`, `created_at` FROM `customers` WHERE ";
const INVOICES: &str = "SELECT `id`, `customer_id`, `number`, `status`, `currency`, `amount_due_cents`, CAST(`tax_rate` AS CHAR), `billing_name`, `billing_email`, `issued_at` FROM `invoices` WHERE `customer_id` IN ";
const METHODS: &str = "SELECT `id`, `customer_id`, `brand`, `last4`, `exp_month`, `exp_year`, `created_at` FROM `payment_methods` WHERE `customer_id` IN ";

fn bind_ids<'q>(
    sql: &'q str,
    ids: &[String],
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    let mut q = sqlx::query(sql);
    for id in ids {
        q = q.bind(id.clone());
    }
    q
}

/// Reads every column of every row into an owned value, as any client using the data would.
fn read_pg(rows: &[sqlx::postgres::PgRow]) -> usize {
    use sqlx::{Column, TypeInfo};
    let mut values = 0;
    for row in rows {
        for (i, column) in row.columns().iter().enumerate() {
            let present = match column.type_info().name() {
                "INT8" => row.try_get::<Option<i64>, _>(i).ok().flatten().is_some(),
                "BOOL" => row.try_get::<Option<bool>, _>(i).ok().flatten().is_some(),
                "DATE" => row
                    .try_get::<Option<chrono::NaiveDate>, _>(i)
                    .ok()
                    .flatten()
                    .map(|d| d.to_string())
                    .is_some(),
                "TIMESTAMPTZ" => row
                    .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)
                    .ok()
                    .flatten()
                    .map(|t| t.to_rfc3339())
                    .is_some(),
                "JSONB" => row
                    .try_get::<Option<serde_json::Value>, _>(i)
                    .ok()
                    .flatten()
                    .is_some(),
                _ => row.try_get::<Option<String>, _>(i).ok().flatten().is_some(),
            };
            values += usize::from(present);
        }
    }
    values
}

fn read_my(rows: &[sqlx::mysql::MySqlRow]) -> usize {
    use sqlx::{Column, TypeInfo};
    let mut values = 0;
    for row in rows {
        for (i, column) in row.columns().iter().enumerate() {
            let present = match column.type_info().name() {
                "BIGINT" | "INT" => row.try_get::<Option<i64>, _>(i).ok().flatten().is_some(),
                "DATETIME" => row
                    .try_get::<Option<chrono::NaiveDateTime>, _>(i)
                    .ok()
                    .flatten()
                    .map(|t| t.and_utc().to_rfc3339())
                    .is_some(),
                _ => row.try_get::<Option<String>, _>(i).ok().flatten().is_some(),
            };
            values += usize::from(present);
        }
    }
    values
}

fn in_list(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

/// The floor: what a hand-written client needing the same data would send and read. Returns
/// the number of non-null values read.
async fn direct(pg: &PgPool, my: &MySqlPool, email: &str) -> anyhow::Result<usize> {
    let email = email.trim().to_lowercase();
    // Stage 1: everything an email finds.
    let users_sql = format!("{USERS}lower(\"email\") = ANY($1)");
    let customers_sql = format!("{CUSTOMERS}`email` IN (?)");
    let (users, customers) = tokio::try_join!(
        sqlx::query(&users_sql).bind(vec![email.clone()]).fetch_all(pg),
        sqlx::query(&customers_sql).bind(&email).fetch_all(my),
    )?;
    let user_ids: Vec<i64> = users.iter().map(|r| r.get::<i64, _>(0)).collect();
    let mut customer_ids: Vec<String> = customers.iter().map(|r| r.get::<String, _>(0)).collect();
    let mut rows = read_pg(&users) + read_my(&customers);
    if user_ids.is_empty() && customer_ids.is_empty() {
        return Ok(rows);
    }
    // Stage 2: what user ids and the customer ids known so far find, all at once.
    let by_user_sql = format!("{CUSTOMERS}`user_id` IN {}", in_list(user_ids.len().max(1)));
    let invoices_sql = format!("{INVOICES}{}", in_list(customer_ids.len().max(1)));
    let methods_sql = format!("{METHODS}{}", in_list(customer_ids.len().max(1)));
    let mut by_user = sqlx::query(&by_user_sql);
    for id in &user_ids {
        by_user = by_user.bind(*id);
    }
    let known = customer_ids.clone();
    let (sessions, preferences, by_user, invoices, methods) = tokio::try_join!(
        sqlx::query(SESSIONS).bind(&user_ids).fetch_all(pg),
        sqlx::query(PREFERENCES).bind(&user_ids).fetch_all(pg),
        by_user.fetch_all(my),
        async {
            if known.is_empty() {
                Ok(Vec::new())
            } else {
                bind_ids(&invoices_sql, &known).fetch_all(my).await
            }
        },
        async {
            if known.is_empty() {
                Ok(Vec::new())
            } else {
                bind_ids(&methods_sql, &known).fetch_all(my).await
            }
        },
    )?;
    rows += read_pg(&sessions)
        + read_pg(&preferences)
        + read_my(&by_user)
        + read_my(&invoices)
        + read_my(&methods);
    // Stage 3: customer ids that only the user id found.
    let new: Vec<String> = by_user
        .iter()
        .map(|r| r.get::<String, _>(0))
        .filter(|id| !customer_ids.contains(id))
        .collect();
    if !new.is_empty() {
        let invoices_sql = format!("{INVOICES}{}", in_list(new.len()));
        let methods_sql = format!("{METHODS}{}", in_list(new.len()));
        let (invoices, methods) = tokio::try_join!(
            bind_ids(&invoices_sql, &new).fetch_all(my),
            bind_ids(&methods_sql, &new).fetch_all(my)
        )?;
        rows += read_my(&invoices) + read_my(&methods);
        customer_ids.extend(new);
    }
    Ok(rows)
}

struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[index]
    }

    fn line(&mut self, name: &str) -> String {
        format!(
            "{name:<34} median {:>8.3} ms   p90 {:>8.3} ms   p99 {:>8.3} ms",
            ms(self.percentile(0.5)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.99))
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let people_count = env_usize("BENCH_PEOPLE", 10_000);
    let iterations = env_usize("BENCH_ITERATIONS", 2_000);
    let started = Instant::now();
    let world = ReferenceWorld::create(people_count).await?;
    println!(
        "reference world: {people_count} people (accounts in PostgreSQL, billing in MariaDB), seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let gateway = world.gateway().await?;
    let pg = PgPool::connect(&world.accounts.url).await?;
    let my = MySqlPool::connect(&world.billing.url).await?;
    let query = format!(
        "query($kind: IdentityKind!, $value: String!) {{ subject(identity: {{kind: $kind, value: $value}}) {FULL_SELECTION} }}"
    );
    let client = reqwest::Client::new();
    let url = gateway.url("/graphql");

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut pick = || -> &Person { &world.people[rng.random_range(0..world.people.len())] };
    let (mut floor, mut http, mut in_process) = (Samples(vec![]), Samples(vec![]), Samples(vec![]));
    let mut executor_only = Samples(vec![]);
    let executor = gateway.service.executor.clone();
    let email_kind = executor
        .registry()
        .kinds
        .by_name("email")
        .ok_or_else(|| anyhow::anyhow!("no email kind"))?;
    let warmup = iterations / 10;
    for i in 0..iterations + warmup {
        let person = pick();
        let t = Instant::now();
        let rows = direct(&pg, &my, &person.email).await?;
        let d_floor = t.elapsed();

        let t = Instant::now();
        let response: serde_json::Value = client
            .post(&url)
            .json(&serde_json::json!({"query": query, "variables": {"kind": "EMAIL", "value": person.email}}))
            .send()
            .await?
            .json()
            .await?;
        let d_http = t.elapsed();
        anyhow::ensure!(
            response.get("errors").is_none(),
            "gateway errors: {}",
            response["errors"]
        );
        anyhow::ensure!(rows > 0, "the floor found nothing");

        let request = async_graphql::Request::new(query.clone()).variables(
            async_graphql::Variables::from_json(serde_json::json!({"kind": "EMAIL", "value": person.email})),
        );
        let t = Instant::now();
        let response = gateway.service.execute(request).await;
        let _ = serde_json::to_vec(&response)?;
        let d_in_process = t.elapsed();
        anyhow::ensure!(response.errors.is_empty(), "gateway errors");

        let identity = executor.registry().kinds.parse_input(email_kind, &person.email)?;
        let t = Instant::now();
        let outcome = executor.resolve(vec![vec![identity]]).await;
        let d_executor = t.elapsed();
        anyhow::ensure!(
            outcome.sources.iter().all(|s| s.error.is_none()),
            "executor errors"
        );

        if i >= warmup {
            executor_only.0.push(d_executor);
            floor.0.push(d_floor);
            http.0.push(d_http);
            in_process.0.push(d_in_process);
        }
    }
    println!("\n`subject` for one person by email ({iterations} interleaved runs, random people):");
    println!("{}", floor.line("floor: direct SQL, staged, parallel"));
    println!("{}", http.line("gateway over HTTP (POST /graphql)"));
    println!("{}", in_process.line("gateway in process (no HTTP)"));
    println!("{}", executor_only.line("executor alone (no GraphQL)"));
    let ratio = ms(http.percentile(0.5)) / ms(floor.percentile(0.5));
    let ratio_in = ms(in_process.percentile(0.5)) / ms(floor.percentile(0.5));
    println!("ratio of medians: HTTP {ratio:.3}x the floor, in process {ratio_in:.3}x the floor");

    // Batches: 1,000 people in one `subjects` query.
    let batch: Vec<_> = world
        .people
        .iter()
        .take(1000)
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    let batch_query =
        format!("query($ids: [IdentityInput!]!) {{ subjects(identities: $ids) {FULL_SELECTION} }}");
    let mut batches = Samples(vec![]);
    let mut trips = String::new();
    for _ in 0..10 {
        let t = Instant::now();
        let response: serde_json::Value = client
            .post(&url)
            .json(&serde_json::json!({"query": batch_query, "variables": {"ids": batch}}))
            .send()
            .await?
            .json()
            .await?;
        batches.0.push(t.elapsed());
        anyhow::ensure!(response.get("errors").is_none(), "batch errors");
        trips = response["data"]["subjects"][0]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{}={}", s["connector"].as_str().unwrap_or(""), s["roundTrips"]))
            .collect::<Vec<_>>()
            .join(" ");
    }
    println!("\n`subjects` for 1,000 people (10 runs): store round trips {trips}");
    println!("{}", batches.line("gateway over HTTP"));
    Ok(())
}
