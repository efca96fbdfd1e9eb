//! The privacy operations console (`/console/`) in a real browser: Debian's Chromium, headless,
//! driven over WebDriver (fantoccini + `chromedriver`, one per test on a port of its own) against
//! the reference world's real stores. With `CONSOLE_SCREENSHOTS=1` the tests write a screenshot
//! of each page to `docs/console/`.
//!
//! A missing browser or driver fails these tests (`scripts/test.sh` installs both): a browser test
//! that skips cannot fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value as Json, json};
use sha2::Digest;
use subject_gateway::config::Config;
use subject_gateway_tests::{ConfigCopy, ReferenceWorld, TestGateway, config_dir};

/// How long a page may take to show what a test waits for (generous: a shared CI machine).
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A headless Chromium behind its own chromedriver; both stop on drop.
pub(crate) struct Browser {
    pub(crate) client: Client,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
    _driver: tokio::process::Child,
}

impl Browser {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let chromium = std::env::var("SUBJECT_GATEWAY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let driver = std::env::var("SUBJECT_GATEWAY_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        for program in [&chromium, &driver] {
            anyhow::ensure!(
                std::process::Command::new(program)
                    .arg("--version")
                    .output()
                    .is_ok(),
                "no `{program}`: apt-get install chromium chromium-driver (scripts/test.sh does), or set SUBJECT_GATEWAY_CHROMIUM / SUBJECT_GATEWAY_CHROMEDRIVER"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let profile = tempfile::tempdir()?;
        let downloads = tempfile::tempdir()?;
        let chromium_path = which(&chromium);
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1366,768",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "prefs": {
                "download.default_directory": downloads.path().display().to_string(),
                "download.prompt_for_download": false,
            },
        });
        if let Some(path) = chromium_path {
            options["binary"] = json!(path);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                // chromedriver is still starting: it answers within a second or two.
                Err(error) if Instant::now() < deadline => {
                    tracing::debug!(%error, "chromedriver not ready");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => anyhow::bail!("chromedriver did not start a session: {error}"),
            }
        };
        Ok(Self {
            client,
            downloads,
            _profile: profile,
            _driver: driver,
        })
    }

    pub(crate) async fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// The first element matching `css`, once there.
    pub(crate) async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        Ok(self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await?)
    }

    /// Clicks the element matching `css`. The page re-renders a part when the request it shows
    /// changes, so an element found a moment ago can be gone by the click: then it is found again.
    pub(crate) async fn click(&self, css: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await?.click().await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_stale_element_reference() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let input = self.find(css).await?;
        input.clear().await?;
        Ok(input.send_keys(text).await?)
    }

    pub(crate) async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        Ok(self.find(css).await?.select_by_value(value).await?)
    }

    /// Waits until the text of `css` contains `needle`; returns the text.
    pub(crate) async fn text_with(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                let html = match self.client.find(Locator::Css(css)).await {
                    Ok(element) => element.html(false).await.unwrap_or_default(),
                    Err(_) => self.body_text().await,
                };
                anyhow::bail!("`{css}` never showed `{needle}`; it shows: {text}\n{html}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub(crate) async fn js(&self, script: &str) -> anyhow::Result<Json> {
        Ok(self.client.execute(script, Vec::new()).await?)
    }

    /// Signs in with `key` and `purpose` through the sign-in page.
    pub(crate) async fn sign_in(
        &self,
        gateway: &TestGateway,
        key: &str,
        purpose: &str,
    ) -> anyhow::Result<()> {
        self.goto(&gateway.url("/console/")).await?;
        self.type_into("input[name=key]", key).await?;
        self.click("#signin-next").await?;
        self.select("#purpose", purpose).await?;
        self.click("#signin-submit").await?;
        self.text_with("#who", purpose).await?;
        Ok(())
    }

    /// With `CONSOLE_SCREENSHOTS` set, the page as it is now, to `docs/console/{name}.png`.
    pub(crate) async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        if std::env::var_os("CONSOLE_SCREENSHOTS").is_none() {
            return Ok(());
        }
        let png = self.client.screenshot().await?;
        let dir = config_dir().join("../docs/console");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        Ok(())
    }

    /// Waits for a finished download named `name` in the download directory.
    pub(crate) async fn downloaded(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(bytes) = std::fs::read(&path)
                && !bytes.is_empty()
            {
                return Ok(bytes);
            }
            let present: Vec<String> = std::fs::read_dir(self.downloads.path())?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            anyhow::ensure!(
                Instant::now() < deadline,
                "no download {name}; present: {present:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The absolute path of `program` on PATH (chromedriver wants the browser's path).
fn which(program: &str) -> Option<String> {
    if Path::new(program).is_absolute() {
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate: &PathBuf| candidate.is_file())
        .map(|found| found.display().to_string())
}

#[tokio::test]
async fn the_console_is_served_by_the_gateway_under_a_strict_csp() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(1).await?;
    let gateway = world.gateway().await?;
    let client = reqwest::Client::new();
    let page = client.get(gateway.url("/console/")).send().await?;
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    for directive in [
        "script-src 'self'",
        "connect-src 'self'",
        "default-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains("http"),
        "{csp}"
    );
    assert_eq!(header("cache-control"), "no-store");
    let html = page.text().await?;
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    // Every script is a file the gateway serves (no inline script), and every module one imports.
    assert!(
        !html.contains("<script>") && !html.contains("<script type=\"module\">"),
        "{html}"
    );
    let mut pending = vec!["app.js".to_owned(), "console.css".to_owned()];
    let mut served = Vec::new();
    while let Some(asset) = pending.pop() {
        if served.contains(&asset) {
            continue;
        }
        let response = client
            .get(gateway.url(&format!("/console/assets/{asset}")))
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{asset}");
        let text = response.text().await?;
        for import in text.split("from './").skip(1) {
            pending.push(import.split('\'').next().unwrap_or_default().to_owned());
        }
        served.push(asset);
    }
    assert!(served.len() >= 10, "{served:?}");
    assert_eq!(
        client
            .get(gateway.url("/console/assets/../Cargo.toml"))
            .send()
            .await?
            .status(),
        404
    );
    assert_eq!(
        client
            .get(gateway.url("/console/assets/nope.js"))
            .send()
            .await?
            .status(),
        404
    );
    // The session endpoint: a key's role and purposes; a wrong key is refused as on /graphql.
    let key = gateway.key("support").await?;
    let session: Json = client
        .get(gateway.url("/console/session"))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(session["role"], "support", "{session}");
    assert_eq!(session["purposes"], json!(["essential.service"]), "{session}");
    assert_eq!(session["operations"], json!(["read_subject"]), "{session}");
    let refused = client
        .get(gateway.url("/console/session"))
        .bearer_auth("sgk_nope_nope")
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    // `me` over GraphQL says the same, with the purpose stated.
    let me = gateway
        .graphql_as(
            &key,
            "essential.service",
            "{ me { role operations purposes purpose principal } }",
            json!({}),
        )
        .await?;
    assert_eq!(me["data"]["me"]["role"], "support", "{me}");
    assert_eq!(me["data"]["me"]["purpose"], "essential.service", "{me}");
    // `[server] console = false` serves none of it.
    let mut config = subject_gateway::config::Config::load(&config_dir().join("gateway.toml"))?;
    config.server.console = false;
    let off = TestGateway::start_with(config, world.env(), Vec::new()).await?;
    assert_eq!(client.get(off.url("/console/")).send().await?.status(), 404);
    assert_eq!(
        client.get(off.url("/console/session")).send().await?.status(),
        404
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_a_key_never_stays_in_the_url() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(1).await?;
    let gateway = world.gateway().await?;
    let browser = Browser::start().await?;
    browser.goto(&gateway.url("/console/")).await?;
    browser.find("#signin").await?;
    browser.screenshot("signin").await?;
    browser
        .type_into("input[name=key]", "sgk_wrong_0123456789abcdef")
        .await?;
    browser.click("#signin-next").await?;
    let refused = browser.text_with("#signin", "Refused").await?;
    assert!(refused.contains("not valid"), "{refused}");
    assert_eq!(browser.js("return sessionStorage.length").await?, json!(0));
    assert!(!browser.find("#nav").await?.is_displayed().await?);

    // The demo's one-click link: the key in the fragment (never sent to the server), taken once.
    let key = gateway.key("admin").await?;
    browser
        .goto(&gateway.url(&format!("/console/#key={key}&purpose=essential")))
        .await?;
    browser.text_with("#who", "admin").await?;
    browser.find("#counts li").await?;
    let url = browser.client.current_url().await?.to_string();
    assert!(!url.contains(&key) && !url.contains("key="), "{url}");
    // Nor in history: the entry the link made now reads `#/`.
    browser.js("history.back(); return null").await?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = browser.client.current_url().await?.to_string();
        assert!(!url.contains(&key) && !url.contains("key="), "{url}");
        if url.ends_with("#/") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "history.back() stayed at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('subject-gateway.key')")
            .await?,
        json!(key)
    );
    // Signing out forgets it.
    browser.click("#signout").await?;
    browser.find("#signin").await?;
    assert_eq!(browser.js("return sessionStorage.length").await?, json!(0));
    Ok(())
}

#[tokio::test]
async fn a_person_is_looked_up_with_fields_withheld_from_a_narrow_role() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(6).await?;
    let gateway = world.gateway().await?;
    let person = world
        .people
        .iter()
        .find(|p| !p.sessions.is_empty() && p.customer.is_some())
        .ok_or_else(|| anyhow::anyhow!("no person with sessions and a customer"))?
        .clone();
    let browser = Browser::start().await?;
    let key = gateway.key("admin").await?;
    browser.sign_in(&gateway, &key, "essential").await?;
    browser.click("a[href='#/person']").await?;
    browser.select("#person-kind", "EMAIL").await?;
    browser
        .type_into("#person-value", &person.email.to_uppercase())
        .await?;
    browser.click("#person-submit").await?;
    browser
        .text_with("#person-summary", "records in 5 stores")
        .await?;
    let accounts = browser
        .text_with("[data-store=accounts]", &person.full_name)
        .await?;
    assert!(accounts.contains("user.contact.email"), "{accounts}");
    let graph = browser.text_with("#identity-graph", "USER_ID").await?;
    assert!(graph.contains(&person.user_id.to_string()), "{graph}");
    assert!(graph.contains("via accounts.users"), "{graph}");
    let sources = browser.text_with("#sources", "billing").await?;
    assert!(
        !sources.contains("ERROR") && !sources.contains("TIMEOUT"),
        "{sources}"
    );
    browser.screenshot("person").await?;

    // Connectors and the audit trail (the lookup above is in it).
    browser.click("a[href='#/connectors']").await?;
    let health = browser.text_with("#connector-health", "helpdesk").await?;
    assert!(!health.contains("DOWN"), "{health}");
    browser.click("a[href='#/audit']").await?;
    browser.text_with("#audit-events", "subject.read").await?;
    browser.type_into("#audit-action", "subject.read").await?;
    browser.select("#audit-person-kind", "EMAIL").await?;
    browser.type_into("#audit-person-value", &person.email).await?;
    browser.click("#audit-submit").await?;
    browser.text_with("#audit-events", "subject.read").await?;

    // A support agent sees the person but not their IP addresses: withheld, with the reason.
    let support = gateway.key("support").await?;
    browser.click("#signout").await?;
    browser.sign_in(&gateway, &support, "essential.service").await?;
    browser.click("a[href='#/person']").await?;
    browser.type_into("#person-value", &person.email).await?;
    browser.click("#person-submit").await?;
    let sessions = browser
        .text_with("[data-store=accounts] [data-entity=sessions]", "withheld")
        .await?;
    assert!(sessions.contains("CATEGORY_NOT_GRANTED"), "{sessions}");
    browser
        .text_with("[data-store=accounts]", &person.full_name)
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_erasure_is_previewed_submitted_followed_to_completed_and_its_receipt_downloaded()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let gateway = world.gateway().await?;
    let person = world.payer(1).clone();
    let browser = Browser::start().await?;
    let key = gateway.key("admin").await?;
    browser.sign_in(&gateway, &key, "essential").await?;
    browser.click("a[href='#/new']").await?;
    browser.select("#new-kind", "ERASURE").await?;
    browser.select("#new-identity-kind", "EMAIL").await?;
    browser.type_into("#new-identity-value", &person.email).await?;
    browser.type_into("#new-reason", "ticket 4711").await?;
    browser.click("#new-submit").await?;
    // The plan first: what will be deleted, masked, retained and why; nothing submitted yet.
    let plan = browser.text_with("#plan-entries", "RETAIN").await?;
    assert!(plan.contains("DELETE") && plan.contains("invoices"), "{plan}");
    let none = gateway
        .graphql("{ privacyRequests { requests { id } } }", json!({}))
        .await?;
    assert_eq!(none["data"]["privacyRequests"]["requests"], json!([]), "{none}");
    browser.screenshot("new-erasure-plan").await?;
    browser.click("#new-submit").await?;
    browser.text_with("#confirm", "Erase this person?").await?;
    browser.click("#confirm-ok").await?;
    // The request's page follows it to COMPLETED without a reload: a marker set on the page now
    // is still there when it shows COMPLETED.
    browser.find("#request").await?;
    browser.js("window.__stillThisPage = true; return null").await?;
    browser.text_with("#request-status", "COMPLETED").await?;
    assert_eq!(
        browser.js("return window.__stillThisPage === true").await?,
        json!(true)
    );
    let id = browser
        .find("#request")
        .await?
        .attr("data-id")
        .await?
        .unwrap_or_default();
    assert!(id.starts_with("pr_"), "{id}");
    browser.text_with("#receipt-verification", "PASSED").await?;
    browser.text_with("#receipt-check", "hashes to it").await?;
    let timeline = browser.text_with("#timeline", "completed").await?;
    assert!(timeline.contains("request received from key:"), "{timeline}");
    // Followed by the subscription, not by polling.
    assert_eq!(
        browser
            .find("#request")
            .await?
            .attr("data-live")
            .await?
            .as_deref(),
        Some("subscription")
    );
    browser.screenshot("request").await?;

    // The downloaded receipt is the one the API holds, byte for byte by its SHA-256.
    browser.click("#receipt-download").await?;
    let bytes = browser.downloaded(&format!("receipt-{id}.json")).await?;
    let stored = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { receiptSha256 receipt } }",
            json!({ "id": id }),
        )
        .await?;
    let expected = stored["data"]["privacyRequest"]["receiptSha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), expected);
    let receipt: Json = serde_json::from_slice(&bytes)?;
    assert_eq!(receipt, stored["data"]["privacyRequest"]["receipt"]);
    assert_eq!(receipt["requestId"], json!(id));

    // The queue shows it, completed.
    browser.click("a[href='#/queue']").await?;
    let row = browser
        .text_with(&format!("tr[data-id='{id}']"), "COMPLETED")
        .await?;
    assert!(row.contains("ERASURE") && row.contains("done"), "{row}");
    browser.text_with("#counts [data-status=COMPLETED]", "1").await?;
    Ok(())
}

#[tokio::test]
async fn a_role_without_erase_sees_no_erase_action_and_the_server_refuses_it_anyway() -> anyhow::Result<()> {
    let world = ReferenceWorld::create(2).await?;
    let gateway = world.gateway().await?;
    let person = world.people[0].clone();
    let browser = Browser::start().await?;
    let support = gateway.key("support").await?;
    browser.sign_in(&gateway, &support, "essential.service").await?;
    // No requests pages in the navigation, and the new-request page offers nothing.
    assert!(!browser.find("a[href='#/new']").await?.is_displayed().await?);
    assert!(!browser.find("a[href='#/queue']").await?.is_displayed().await?);
    browser.goto(&gateway.url("/console/#/new")).await?;
    browser.text_with("#no-kinds", "may not submit").await?;
    assert!(browser.client.find(Locator::Css("#new-submit")).await.is_err());
    // The same credentials, sent by the page itself, are refused by the server.
    let answer = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            fetch('/graphql', { method: 'POST', headers: {
                'Authorization': 'Bearer ' + sessionStorage.getItem('subject-gateway.key'),
                'X-Purpose': sessionStorage.getItem('subject-gateway.purpose'),
                'Content-Type': 'application/json' },
              body: JSON.stringify({ query: 'mutation($i: EraseSubjectInput!) { eraseSubject(input: $i) { id } }',
                variables: { i: { identity: { kind: 'EMAIL', value: arguments[0] }, idempotencyKey: 'console-test' } } }) })
              .then(r => r.json()).then(done, e => done({ failed: String(e) }));"#,
            vec![json!(person.email)],
        )
        .await?;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "FORBIDDEN", "{answer}");
    assert!(answer["data"].is_null(), "{answer}");
    let requests = gateway
        .graphql("{ privacyRequests { requests { id } } }", json!({}))
        .await?;
    assert_eq!(
        requests["data"]["privacyRequests"]["requests"],
        json!([]),
        "{requests}"
    );
    Ok(())
}

#[tokio::test]
async fn an_erasure_is_approved_by_another_approver_and_its_manual_tasks_completed_in_the_console()
-> anyhow::Result<()> {
    let world = ReferenceWorld::create(3).await?;
    let copy = ConfigCopy::new()?;
    copy.edit(
        "gateway.toml",
        "# [requests.approval]\n# required = [\"ERASURE\"]",
        "[requests.approval]\nrequired = [\"ERASURE\"]",
    )?;
    let archive = std::fs::read_to_string(config_dir().join("manual/paper_archive.toml"))?;
    copy.write_connector("paper_archive.toml", &archive)?;
    let gateway =
        TestGateway::start_with(Config::load(&copy.gateway_toml())?, world.env(), Vec::new()).await?;
    let person = world.people[0].clone();
    let submitted = gateway
        .graphql(
            "mutation($i: EraseSubjectInput!) { eraseSubject(input: $i) { id status } }",
            json!({ "i": { "identity": { "kind": "EMAIL", "value": person.email }, "idempotencyKey": "console-approval" } }),
        )
        .await?;
    let id = submitted["data"]["eraseSubject"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        submitted["data"]["eraseSubject"]["status"], "AWAITING_APPROVAL",
        "{submitted}"
    );
    let page = gateway.url(&format!("/console/#/request/{id}"));

    // The submitter is not offered the decision (the server would refuse it: FOUR_EYES).
    {
        let browser = Browser::start().await?;
        let headers = gateway.admin_headers()?;
        let submitter = headers["authorization"]
            .to_str()?
            .trim_start_matches("Bearer ")
            .to_owned();
        browser.sign_in(&gateway, &submitter, "essential").await?;
        browser.goto(&page).await?;
        browser.text_with("#request-status", "AWAITING_APPROVAL").await?;
        browser.find("#action-cancel").await?;
        assert!(
            browser
                .client
                .find(Locator::Css("#action-approve"))
                .await
                .is_err()
        );
    }

    // Another approver approves; the erasure then waits on the paper archive, whose tasks are
    // completed from the same page.
    let browser = Browser::start().await?;
    let dpo = gateway.key("dpo").await?;
    browser.sign_in(&gateway, &dpo, "essential").await?;
    browser.goto(&page).await?;
    browser.click("#action-approve").await?;
    browser.click("#confirm-ok").await?;
    browser.text_with("#request-decision", "key:").await?;
    for (entity, outcome) in [("contracts", "DONE"), ("letters", "NOT_FOUND")] {
        browser
            .click(&format!("#action-complete-paper_archive-{entity}"))
            .await?;
        browser.select("#manual-outcome", outcome).await?;
        browser.type_into("#manual-note", "checked the cabinet").await?;
        browser.click("#confirm-ok").await?;
        browser.text_with("#request-notice", "done").await?;
    }
    browser.text_with("#request-status", "COMPLETED").await?;
    let stored = gateway
        .graphql(
            "query($id: ID!) { privacyRequest(id: $id) { decidedBy receipt } }",
            json!({ "id": id }),
        )
        .await?;
    let entries = stored["data"]["privacyRequest"]["receipt"]["entries"].clone();
    let outcomes: Vec<Json> = entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["connector"] == "paper_archive")
        .map(|e| e["manual"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes.len(), 2, "{stored}");
    assert!(
        outcomes.contains(&json!("DONE")) && outcomes.contains(&json!("NOT_FOUND")),
        "{stored}"
    );
    Ok(())
}
