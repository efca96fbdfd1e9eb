//! Load benchmark: the real `subject-gateway demo` server, in a process of its own, driven by
//! many keep-alive clients on loopback. Prints requests per second, latency percentiles, the
//! server's CPU time per request and its resident memory over time (and after the load stops).
//!
//! ```sh
//! cargo build --release --bin subject-gateway
//! cargo bench -p subject-gateway-tests --bench load
//! ```
//!
//! `LOAD_QUERY` = `sql` (accounts and billing of one person by user id: the SQL-only world,
//! default) or `five` (all five domains); `LOAD_CLIENTS` (64), `LOAD_SECONDS` (30),
//! `LOAD_ROUNDS` (1: back-to-back runs of `LOAD_SECONDS`, memory printed after each),
//! `LOAD_IDLE` (10: seconds watched after the load), `LOAD_PEOPLE` (1000),
//! `LOAD_BIN` (the server binary; default `target/release/subject-gateway`),
//! `LOAD_SQL_CONNECTIONS` (the SQL stores' pool size; default: as declared, 8).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::net::TcpStream;

const SQL_QUERY: &str = "query($id: String!) { subject(identity: {kind: USER_ID, value: $id}) { accounts { users { fullName email country } sessions { ipAddress startedAt } preferences { language } } billing { customers { id email name } invoices { number amountDueCents issuedAt } paymentMethods { brand last4 } } } }";
const FIVE_QUERY: &str = "query($id: String!) { subject(identity: {kind: USER_ID, value: $id}) { accounts { users { fullName email country } sessions { ipAddress startedAt } } billing { customers { id email } invoices { number amountDueCents } } uploads { images { filename takenAt } } helpdesk { tickets { subject status } comments { body } } analytics { profiles { distinctId city } events { event time } } } }";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server process; killed when dropped.
struct Server {
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(path) = std::env::var("LOAD_BIN") {
        return Ok(path.into());
    }
    // target/release/deps/load-… -> target/release/subject-gateway
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the bench binary has no target directory")?;
    let candidate = dir.join("subject-gateway");
    if !candidate.exists() {
        bail!(
            "{} not found: run `cargo build --release --bin subject-gateway` first (or set LOAD_BIN)",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// Copies `from` (a directory) to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The reference configuration (`config/` of the checkout) copied under `dir`, with the
/// per-caller limits lifted: the bench drives the server with one key from many clients, which
/// the reference limits (32 in flight, 200/s) would answer with 429. Returns its `gateway.toml`,
/// passed to `demo --config` (without it the demo reads `config/gateway.toml` of its working
/// directory, or its built-in copy of the reference configuration, limits and all).
fn bench_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let root = dir.join("config");
    copy_dir(&reference, &root).with_context(|| format!("copying {}", reference.display()))?;
    let gateway_toml = root.join("gateway.toml");
    let mut text = std::fs::read_to_string(&gateway_toml)?;
    for (key, value) in [
        ("per_caller_concurrency", "1000000"),
        ("per_caller_rate", "1000000000"),
        ("per_caller_burst", "1000000000"),
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("{key} =")))
            .with_context(|| format!("config/gateway.toml has no `{key} =` line"))?
            .to_owned();
        text = text.replace(&line, &format!("{key} = {value}"));
    }
    std::fs::write(&gateway_toml, text)?;
    // LOAD_SQL_CONNECTIONS: the SQL stores' pool size (the reference declares 8), to compare.
    if let Ok(connections) = std::env::var("LOAD_SQL_CONNECTIONS") {
        for store in ["accounts", "billing"] {
            let path = root.join("connectors").join(format!("{store}.toml"));
            let text = std::fs::read_to_string(&path)?;
            anyhow::ensure!(
                text.contains("max_connections = 8"),
                "{} no longer declares max_connections = 8",
                path.display()
            );
            std::fs::write(
                &path,
                text.replace("max_connections = 8", &format!("max_connections = {connections}")),
            )?;
        }
    }
    Ok(gateway_toml)
}

fn start_server(people: u64) -> anyhow::Result<(Server, String, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir()?;
    let config = bench_config(data.path())?;
    let data_dir = data.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut child = Command::new(server_binary()?)
        .args([
            "demo",
            "--listen",
            &listen,
            "--people",
            &people.to_string(),
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting subject-gateway demo")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut key = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.trim().strip_prefix("Authorization: Bearer ") {
            key = Some(rest.trim().to_owned());
            break;
        }
    }
    let server = Server { child, _data: data };
    let key = key.context("the demo printed no API key")?;
    Ok((server, listen, key))
}

/// Resident memory (KiB) and CPU time (clock ticks) of a process, from /proc.
fn process_usage(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) — utime and stime are 14 and 15.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (rss, cpu)
}

const TICKS_PER_SECOND: f64 = 100.0;

struct RunResult {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

async fn client(
    listen: String,
    key: String,
    query: &'static str,
    people: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> anyhow::Result<(Vec<u32>, u64)> {
    let stream = TcpStream::connect(&listen).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut latencies = Vec::with_capacity(100_000);
    let mut errors = 0;
    let mut n = seed;
    while !stop.load(Ordering::Relaxed) {
        // A spread of people: a cheap LCG walk over the ids the demo created (1001…).
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = 1001 + (n >> 33) % people;
        let body = serde_json::json!({"query": query, "variables": {"id": id.to_string()}}).to_string();
        let request = hyper::Request::post("/graphql")
            .header("host", &listen)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .header("x-purpose", "essential")
            .body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let elapsed = started.elapsed();
        if !status.is_success() || bytes.windows(9).any(|w| w == b"\"errors\":") {
            if errors == 0 && seed == 1 {
                let text = String::from_utf8_lossy(&bytes);
                eprintln!(
                    "first error answer ({status}): {}",
                    text.chars().take(400).collect::<String>()
                );
            }
            errors += 1;
        }
        latencies.push(elapsed.as_micros().min(u32::MAX as u128) as u32);
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok((latencies, errors))
}

async fn run(
    listen: &str,
    key: &str,
    query: &'static str,
    clients: u64,
    seconds: u64,
    people: u64,
    pid: u32,
) -> anyhow::Result<RunResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                listen.to_owned(),
                key.to_owned(),
                query,
                people,
                c * 7919 + 1,
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let mut last = (0u64, process_usage(pid).1, Instant::now());
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let count = done.load(Ordering::Relaxed);
        let (rss, cpu) = process_usage(pid);
        let dt = last.2.elapsed().as_secs_f64();
        println!(
            "  t={:>4.0}s  {:>7.0} req/s  server CPU {:>4.0}%  RSS {:>6.1} MB",
            started.elapsed().as_secs_f64(),
            (count - last.0) as f64 / dt,
            (cpu - last.1) as f64 / TICKS_PER_SECOND / dt * 100.0,
            rss as f64 / 1024.0
        );
        last = (count, cpu, Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
        latencies_us.extend(l);
        errors += e;
    }
    Ok(RunResult {
        latencies_us,
        errors,
        elapsed: started.elapsed(),
    })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which = std::env::var("LOAD_QUERY").unwrap_or_else(|_| "sql".into());
    let query = match which.as_str() {
        "sql" => SQL_QUERY,
        "five" => FIVE_QUERY,
        other => bail!("LOAD_QUERY={other}: use sql or five"),
    };
    let clients = env_number("LOAD_CLIENTS", 64);
    let seconds = env_number("LOAD_SECONDS", 30);
    let rounds = env_number("LOAD_ROUNDS", 1);
    let idle = env_number("LOAD_IDLE", 10);
    let people = env_number("LOAD_PEOPLE", 1000);

    let (server, listen, key) = start_server(people)?;
    let pid = server.child.id();
    // Ready when /healthz answers.
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if http
            .get(format!("http://{listen}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        bail!("the demo server did not become ready");
    }
    // Warm-up: every client once, not measured.
    run(&listen, &key, query, clients, 2, people, pid).await?;
    let (rss_start, _) = process_usage(pid);
    println!(
        "load: query={which} clients={clients} people={people} rounds={rounds}x{seconds}s; server RSS after warm-up {:.1} MB",
        rss_start as f64 / 1024.0
    );
    for round in 1..=rounds {
        let (_, cpu_before) = process_usage(pid);
        let mut result = run(&listen, &key, query, clients, seconds, people, pid).await?;
        let (rss, cpu_after) = process_usage(pid);
        result.latencies_us.sort_unstable();
        let n = result.latencies_us.len();
        let cpu_ms = (cpu_after - cpu_before) as f64 / TICKS_PER_SECOND * 1000.0;
        println!(
            "round {round}: {n} requests, {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}, server CPU {:.3} ms/request, RSS {:.1} MB ({:+.1} % since warm-up)",
            n as f64 / result.elapsed.as_secs_f64(),
            percentile(&result.latencies_us, 0.50),
            percentile(&result.latencies_us, 0.90),
            percentile(&result.latencies_us, 0.99),
            percentile(&result.latencies_us, 1.0),
            result.errors,
            cpu_ms / n.max(1) as f64,
            rss as f64 / 1024.0,
            (rss as f64 / rss_start as f64 - 1.0) * 100.0,
        );
    }
    for second in 1..=idle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if second == idle {
            let (rss, _) = process_usage(pid);
            println!(
                "idle {idle}s after the load: RSS {:.1} MB ({:+.1} % since warm-up)",
                rss as f64 / 1024.0,
                (rss as f64 / rss_start as f64 - 1.0) * 100.0
            );
        }
    }
    drop(server);
    Ok(())
}
