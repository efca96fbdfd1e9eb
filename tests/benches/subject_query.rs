//! Benchmark: the gateway's five-domain `subject` query against the floor — the same lookups
//! issued directly to the same stores (PostgreSQL, MariaDB, a MongoDB-protocol server, two HTTP
//! APIs), staged by identity dependency, each stage in parallel — side by side in one run,
//! interleaved. Prints medians, tails and the ratio. Also times `subjects` for 1,000 people.
//!
//! Needs the test services (`TEST_MONGODB_URL` as `scripts/test.sh` sets it).
//! `cargo bench -p subject-gateway-tests`; `BENCH_PEOPLE` (default 10000) and
//! `BENCH_ITERATIONS` (default 2000) size it.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sqlx::{MySqlPool, PgPool, Row};
use subject_gateway_demo::world::Person;
use subject_gateway_tests::{ANALYTICS_ACCOUNT, FULL_SELECTION, HELPDESK_TOKEN, ReferenceWorld, env_number};

/// The allocator the `subject-gateway` binary uses, for the gateway served in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let mut q = subject_connectors::dynamic_sql::dynamic_query(sql);
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

/// The HTTP APIs and MongoDB, as a hand-written client would hold them.
struct Others {
    client: reqwest::Client,
    helpdesk: String,
    analytics: String,
    images: mongodb::Collection<mongodb::bson::Document>,
}

impl Others {
    /// GETs every page of a cursor-paged helpdesk list; returns the items' count.
    async fn helpdesk_pages(&self, path: String, key: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}?page[size]=100", self.helpdesk);
        loop {
            let page: serde_json::Value = self
                .client
                .get(&url)
                .bearer_auth(HELPDESK_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            match page["meta"]["after_cursor"].as_str() {
                Some(cursor) if page["meta"]["has_more"] == true => {
                    url = format!("{}{path}?page[size]=100&page[after]={cursor}", self.helpdesk)
                }
                _ => return Ok(items),
            }
        }
    }

    async fn analytics_get(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .client
            .get(format!("{}{path_and_query}", self.analytics))
            .basic_auth(ANALYTICS_ACCOUNT.0, Some(ANALYTICS_ACCOUNT.1))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn events(&self, distinct_id: &str) -> anyhow::Result<usize> {
        let mut count = 0;
        for page in 0.. {
            let body = self
                .analytics_get(&format!(
                    "/api/query/events?distinct_id={distinct_id}&page={page}&page_size=200"
                ))
                .await?;
            let n = body["events"].as_array().map_or(0, Vec::len);
            count += n;
            if n < 200 {
                break;
            }
        }
        Ok(count)
    }
}

/// The floor: what a hand-written client needing the same data from the same five stores would
/// send and read, staged by identity dependency, each stage in parallel. Returns the number of
/// values and records read.
async fn direct(pg: &PgPool, my: &MySqlPool, others: &Others, email: &str) -> anyhow::Result<usize> {
    use futures::TryStreamExt;
    use futures::future::try_join_all;
    let email = email.trim().to_lowercase();
    // Stage 1: everything an email finds.
    let users_sql = format!("{USERS}lower(\"email\") = ANY($1)");
    let customers_sql = format!("{CUSTOMERS}`email` IN (?)");
    let (users, customers, helpdesk_users, profiles) = tokio::try_join!(
        async {
            Ok::<_, anyhow::Error>(
                subject_connectors::dynamic_sql::dynamic_query(&users_sql)
                    .bind(vec![email.clone()])
                    .fetch_all(pg)
                    .await?,
            )
        },
        async {
            Ok(subject_connectors::dynamic_sql::dynamic_query(&customers_sql)
                .bind(&email)
                .fetch_all(my)
                .await?)
        },
        async {
            let body: serde_json::Value = others
                .client
                .get(format!("{}/api/v2/users/search", others.helpdesk))
                .query(&[("query", format!("email:{email}"))])
                .bearer_auth(HELPDESK_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            Ok(body["users"].as_array().cloned().unwrap_or_default())
        },
        async {
            let body = others
                .analytics_get(&format!("/api/query/engage?email={email}"))
                .await?;
            Ok(body["results"].as_array().cloned().unwrap_or_default())
        },
    )?;
    let user_ids: Vec<i64> = users.iter().map(|r| r.get::<i64, _>(0)).collect();
    let mut customer_ids: Vec<String> = customers.iter().map(|r| r.get::<String, _>(0)).collect();
    let helpdesk_ids: Vec<i64> = helpdesk_users.iter().filter_map(|u| u["id"].as_i64()).collect();
    let distinct_ids: Vec<String> = profiles
        .iter()
        .filter_map(|p| p["$distinct_id"].as_str().map(str::to_owned))
        .collect();
    let mut read = read_pg(&users) + read_my(&customers) + helpdesk_users.len() + profiles.len();

    // Stage 2: what user ids, customer ids, helpdesk ids and distinct ids find, all at once.
    let by_user_sql = format!("{CUSTOMERS}`user_id` IN {}", in_list(user_ids.len().max(1)));
    let invoices_sql = format!("{INVOICES}{}", in_list(customer_ids.len().max(1)));
    let methods_sql = format!("{METHODS}{}", in_list(customer_ids.len().max(1)));
    let mut by_user = subject_connectors::dynamic_sql::dynamic_query(&by_user_sql);
    for id in &user_ids {
        by_user = by_user.bind(*id);
    }
    let known = customer_ids.clone();
    let (sessions, preferences, by_user, invoices, methods, images, tickets, events) = tokio::try_join!(
        async { Ok::<_, anyhow::Error>(sqlx::query(SESSIONS).bind(&user_ids).fetch_all(pg).await?) },
        async { Ok(sqlx::query(PREFERENCES).bind(&user_ids).fetch_all(pg).await?) },
        async { Ok(by_user.fetch_all(my).await?) },
        async {
            if known.is_empty() {
                Ok(Vec::new())
            } else {
                Ok(bind_ids(&invoices_sql, &known).fetch_all(my).await?)
            }
        },
        async {
            if known.is_empty() {
                Ok(Vec::new())
            } else {
                Ok(bind_ids(&methods_sql, &known).fetch_all(my).await?)
            }
        },
        async {
            if user_ids.is_empty() {
                return Ok(Vec::new());
            }
            let filter = mongodb::bson::doc! { "owner.id": { "$in": user_ids.clone() } };
            Ok(others.images.find(filter).await?.try_collect::<Vec<_>>().await?)
        },
        async {
            let walks = helpdesk_ids
                .iter()
                .map(|id| others.helpdesk_pages(format!("/api/v2/users/{id}/tickets/requested"), "tickets"));
            Ok(try_join_all(walks)
                .await?
                .into_iter()
                .flatten()
                .collect::<Vec<_>>())
        },
        async {
            Ok(try_join_all(distinct_ids.iter().map(|id| others.events(id)))
                .await?
                .into_iter()
                .sum::<usize>())
        },
    )?;
    read += read_pg(&sessions)
        + read_pg(&preferences)
        + read_my(&by_user)
        + read_my(&invoices)
        + read_my(&methods);
    read += images.len() + tickets.len() + events;

    // Stage 3: customer ids only the user id found, and the comments on every ticket.
    let new: Vec<String> = by_user
        .iter()
        .map(|r| r.get::<String, _>(0))
        .filter(|id| !customer_ids.contains(id))
        .collect();
    let ticket_ids: Vec<i64> = tickets.iter().filter_map(|t| t["id"].as_i64()).collect();
    let new_invoices_sql = format!("{INVOICES}{}", in_list(new.len().max(1)));
    let new_methods_sql = format!("{METHODS}{}", in_list(new.len().max(1)));
    let (invoices, methods, comments) = tokio::try_join!(
        async {
            if new.is_empty() {
                Ok::<_, anyhow::Error>(Vec::new())
            } else {
                Ok(bind_ids(&new_invoices_sql, &new).fetch_all(my).await?)
            }
        },
        async {
            if new.is_empty() {
                Ok(Vec::new())
            } else {
                Ok(bind_ids(&new_methods_sql, &new).fetch_all(my).await?)
            }
        },
        async {
            let walks = ticket_ids
                .iter()
                .map(|id| others.helpdesk_pages(format!("/api/v2/tickets/{id}/comments"), "comments"));
            Ok(try_join_all(walks)
                .await?
                .into_iter()
                .map(|c| c.len())
                .sum::<usize>())
        },
    )?;
    read += read_my(&invoices) + read_my(&methods) + comments;
    customer_ids.extend(new);
    Ok(read)
}

/// An audit log that keeps nothing: only to measure what authentication and audit cost, by
/// taking them away. The gateway itself never runs without a real one.
struct DiscardingAudit;

#[async_trait::async_trait]
impl subject_schema::audit::AuditLog for DiscardingAudit {
    async fn append(
        &self,
        _: subject_schema::audit::AuditEntry,
    ) -> Result<(), subject_schema::audit::AuditError> {
        Ok(())
    }

    async fn list(
        &self,
        _: &subject_schema::audit::AuditFilter,
    ) -> Result<(Vec<subject_schema::audit::AuditRecord>, bool), subject_schema::audit::AuditError> {
        Ok((Vec::new(), false))
    }
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let people_count = env_number("BENCH_PEOPLE", 10_000);
    let iterations = env_number("BENCH_ITERATIONS", 2_000);
    let started = Instant::now();
    let world = ReferenceWorld::create(people_count).await?;
    println!(
        "reference world: {people_count} people (accounts in PostgreSQL, billing in MariaDB, uploads in a MongoDB-protocol server, helpdesk and analytics over HTTP), seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let gateway = world.gateway().await?;
    let pg = PgPool::connect(&world.accounts.url).await?;
    let my = MySqlPool::connect(&world.billing.url).await?;
    let others = Others {
        client: reqwest::Client::new(),
        helpdesk: world.helpdesk.url(),
        analytics: world.analytics.url(),
        images: world.uploads.database.collection("images"),
    };
    // Lookups only: the files' bytes are not read (the floor does not read them either).
    let selection = FULL_SELECTION.replace("files { key present size contentType checksum }", "");
    let query = format!(
        "query($kind: IdentityKind!, $value: String!) {{ subject(identity: {{kind: $kind, value: $value}}) {selection} }}"
    );
    let client = reqwest::Client::new();
    let url = gateway.url("/graphql");

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut pick = || -> &Person { &world.people[rng.random_range(0..world.people.len())] };
    let (mut floor, mut http, mut in_process) = (Samples(vec![]), Samples(vec![]), Samples(vec![]));
    let mut executor_only = Samples(vec![]);
    let mut bare = Samples(vec![]);
    // (values the floor read, floor, HTTP) per run: the ratio for small and for large people.
    let mut by_size: Vec<(usize, Duration, Duration)> = Vec::new();
    let discarding: std::sync::Arc<dyn subject_schema::audit::AuditLog> =
        std::sync::Arc::new(DiscardingAudit);
    let mut admin_headers = axum::http::HeaderMap::new();
    for (name, value) in gateway.admin_headers()?.iter() {
        admin_headers.insert(
            name.as_str().parse::<axum::http::HeaderName>()?,
            value.to_str()?.parse()?,
        );
    }
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
        let rows = direct(&pg, &my, &others, &person.email).await?;
        let d_floor = t.elapsed();

        let t = Instant::now();
        let response: serde_json::Value = client
            .post(&url)
            .headers(gateway.admin_headers()?)
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

        // In process, as the HTTP handler does it: authenticate the headers, audit the read.
        let audit: std::sync::Arc<dyn subject_schema::audit::AuditLog> = gateway.audit.clone();
        let variables = serde_json::json!({"kind": "EMAIL", "value": person.email});
        let t = Instant::now();
        let caller = gateway.auth.authenticate(&admin_headers).await?;
        let request = async_graphql::Request::new(query.clone())
            .variables(async_graphql::Variables::from_json(variables.clone()))
            .data(caller)
            .data(audit);
        let response = gateway.service.execute(request).await;
        let _ = serde_json::to_vec(&response)?;
        let d_in_process = t.elapsed();
        anyhow::ensure!(response.errors.is_empty(), "gateway errors");

        // In process with no authentication and the audit discarded: the cost of both, by difference.
        let request = async_graphql::Request::new(query.clone())
            .variables(async_graphql::Variables::from_json(variables))
            .data(gateway.caller.clone())
            .data(discarding.clone());
        let t = Instant::now();
        let response = gateway.service.execute(request).await;
        let _ = serde_json::to_vec(&response)?;
        let d_bare = t.elapsed();
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
            bare.0.push(d_bare);
            executor_only.0.push(d_executor);
            floor.0.push(d_floor);
            http.0.push(d_http);
            in_process.0.push(d_in_process);
            by_size.push((rows, d_floor, d_http));
        }
    }
    println!("\n`subject` for one person by email ({iterations} interleaved runs, random people):");
    println!("{}", floor.line("floor: direct calls, staged, parallel"));
    println!("{}", http.line("gateway over HTTP (POST /graphql)"));
    println!("{}", in_process.line("in process, authenticated + audited"));
    println!("{}", bare.line("in process, no auth, audit discarded"));
    println!("{}", executor_only.line("executor alone (no GraphQL)"));
    let ratio = ms(http.percentile(0.5)) / ms(floor.percentile(0.5));
    let ratio_in = ms(in_process.percentile(0.5)) / ms(floor.percentile(0.5));
    println!("ratio of medians: HTTP {ratio:.3}x the floor, in process {ratio_in:.3}x the floor");
    let overhead = ms(in_process.percentile(0.5)) - ms(bare.percentile(0.5));
    println!("authentication + authorization + audit: {overhead:+.3} ms on the median");
    // The runs in thirds by how much the person holds (values read by the floor).
    by_size.sort_by_key(|(rows, _, _)| *rows);
    let third = by_size.len().div_ceil(3).max(1);
    for (name, part) in ["smallest third", "middle third", "largest third"]
        .iter()
        .zip(by_size.chunks(third))
    {
        let (low, high) = (part[0].0, part[part.len() - 1].0);
        let mut floor = Samples(part.iter().map(|(_, f, _)| *f).collect());
        let mut http = Samples(part.iter().map(|(_, _, h)| *h).collect());
        let (floor, http) = (ms(floor.percentile(0.5)), ms(http.percentile(0.5)));
        println!(
            "{name:<14} ({low}-{high} values read): floor median {floor:.3} ms, HTTP median {http:.3} ms, ratio {:.3}x",
            http / floor
        );
    }

    // Batches: 1,000 people in one `subjects` query.
    let batch: Vec<_> = world
        .people
        .iter()
        .take(1000)
        .map(|p| serde_json::json!({"kind": "EMAIL", "value": p.email}))
        .collect();
    // Lookups only, as above: the files' bytes are not read.
    let batch_query = format!("query($ids: [IdentityInput!]!) {{ subjects(identities: $ids) {selection} }}");
    let mut batches = Samples(vec![]);
    let mut trips = String::new();
    for _ in 0..10 {
        let t = Instant::now();
        let response: serde_json::Value = client
            .post(&url)
            .headers(gateway.admin_headers()?)
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
            .map(|s| {
                format!(
                    "{}={} ({:.0} ms)",
                    s["connector"].as_str().unwrap_or(""),
                    s["roundTrips"],
                    s["latencyMs"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    println!(
        "\n`subjects` for 1,000 people (10 runs, lookups only): store round trips (time in the store calls, last run) {trips}"
    );
    println!("{}", batches.line("gateway over HTTP"));
    Ok(())
}
