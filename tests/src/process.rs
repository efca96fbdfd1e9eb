//! The real `subject-gateway` binary as a child process: for the tests that kill it (SIGKILL in
//! the middle of an erasure) and the benchmarks that read its peak memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

/// `target/debug/subject-gateway` (or the profile's), next to the test binary's directory.
/// `cargo nextest run --workspace` builds it with the tests.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("subject-gateway");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the subject-gateway binary is not built: run `cargo build -p subject-gateway` (scripts/test.sh does)"
    )
}

/// A running gateway process on a port of 127.0.0.1.
pub struct GatewayProcess {
    child: Child,
    pub address: std::net::SocketAddr,
    pub key: String,
    client: reqwest::Client,
}

impl GatewayProcess {
    /// Starts `subject-gateway serve --config CONFIG` with `vars` as its environment and waits
    /// until it answers `/healthz`. `key` is an API key it accepts.
    pub async fn start(
        config: &Path,
        vars: &[(&str, String)],
        key: &str,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(gateway_binary()?)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(address.to_string())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let process = Self {
            child,
            address,
            key: key.to_owned(),
            client: reqwest::Client::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = process.client.get(process.url("/healthz")).send().await
                && response.status().is_success()
            {
                return Ok(process);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the gateway did not come up in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POSTs a GraphQL query with the key and purpose `essential`.
    pub async fn graphql(&self, query: &str, variables: Json) -> anyhow::Result<Json> {
        Ok(self
            .client
            .post(self.url("/graphql"))
            .bearer_auth(&self.key)
            .header("x-purpose", "essential")
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?)
    }

    /// The process's peak resident memory (VmHWM), in KiB.
    /// Submits `eraseSubject` for the person with `email` (and `extra` input keys, e.g. a
    /// webhook) and returns the request's id.
    pub async fn submit_erasure(
        &self,
        email: &str,
        idempotency_key: &str,
        extra: Json,
    ) -> anyhow::Result<String> {
        let mut input = serde_json::json!({
            "identity": { "kind": "EMAIL", "value": email },
            "idempotencyKey": idempotency_key,
        });
        if let (Some(input), Json::Object(extra)) = (input.as_object_mut(), extra) {
            input.extend(extra);
        }
        let response = self
            .graphql(
                "mutation($input: EraseSubjectInput!) { eraseSubject(input: $input) { id } }",
                serde_json::json!({ "input": input }),
            )
            .await?;
        response["data"]["eraseSubject"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no request: {response}"))
    }

    pub fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGKILL: no shutdown, no flushing; what is not committed is lost.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
