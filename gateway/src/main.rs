//! `subject-gateway`: serve the GraphQL gateway, run the demo, check declarations against the
//! stores, or print the schema. The demo is built in with the `demo` cargo feature (a default
//! one); without it, `subject-gateway demo` says so and exits non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use subject_gateway::config::{Config, process_env};
use subject_gateway::logging::{self, LogFormat};
use subject_gateway::{check, server};
use tokio::net::TcpListener;

/// mimalloc instead of glibc's malloc: under steady load glibc's arenas kept growing and did not
/// give memory back (RSS +20% in ten minutes, flat heap), and malloc/free took ~12% of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "subject-gateway",
    version,
    about = "One GraphQL Subject over the data stores a company already runs."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SUBJECT_GATEWAY_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve(ServeArgs),
    /// Seed SQLite databases with synthetic people and serve them: needs nothing installed.
    Demo(DemoArgs),
    /// Connect to every store and verify declared tables and columns; non-zero exit on failure.
    Check(ConfigArgs),
    /// Print the GraphQL schema (SDL) generated from the declarations.
    Schema(ConfigArgs),
    /// Check the audit trail's hash chain; non-zero exit when it was tampered with.
    Audit {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Create, list, rotate and revoke API keys (kept hashed in the state database).
    Keys {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute every event's hash (or MAC, with the chain key) and the chain between them.
    Verify {
        /// Also check the trail against the anchors appended to this file (`audit anchor`):
        /// detects a dropped tail or a wiped table.
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Verify the trail, then append its head (sequence number and MAC) to an anchor file kept
    /// outside the state database. Needs the chain key.
    Anchor {
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create a key for a declared role; the key is printed once.
    Create {
        #[arg(long)]
        role: String,
        /// Who or what the key is for.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key; gateways stop accepting it within seconds.
    Revoke { id: String },
    /// Revoke a key and create its replacement (same name and role).
    Rotate { id: String },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// The gateway configuration; connectors are read from its `connectors_dir`. Accepted
    /// before or after a nested subcommand (`keys --config X create`, `keys create --config X`).
    #[arg(
        long,
        global = true,
        default_value = DEFAULT_CONFIG,
        env = "SUBJECT_GATEWAY_CONFIG"
    )]
    config: PathBuf,
}

/// The configuration read when none is named.
const DEFAULT_CONFIG: &str = "config/gateway.toml";

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where the demo's SQLite databases are written.
    #[arg(long, default_value = "demo-data")]
    data_dir: PathBuf,
    /// How many synthetic people to create.
    #[arg(long, default_value_t = 300)]
    people: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = logging::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs {
        config: ConfigArgs {
            config: std::env::var_os("SUBJECT_GATEWAY_CONFIG")
                .map_or_else(|| PathBuf::from("config/gateway.toml"), PathBuf::from),
        },
        listen: None,
    }));
    let code = match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(provider) = traces {
        // Flush the spans still batched.
        let _ = provider.shutdown();
    }
    code
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let config = load(&args.config.config)?;
            let service = config
                .build_service(process_env, Vec::new())
                .await
                .context("building connectors")?;
            let listen = args.listen.unwrap_or(config.server.listen);
            let auth = config
                .authenticator(process_env)
                .await
                .context("setting up authentication")?;
            let audit = config
                .audit_log(process_env)
                .await
                .context("opening the audit trail")?;
            serve(service, auth, audit, &config, listen, process_env).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(args).await,
        Command::Check(args) => {
            let config = load(&args.config)?;
            let service = config
                .build_service(process_env, Vec::new())
                .await
                .context("building connectors")?;
            println!(
                "Resolution plan:\n{}",
                service.executor.plan().describe(service.executor.registry())
            );
            let report = check::check_all(&service).await;
            print!("{}", report.table());
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Audit { config, action } => {
            let config = load(&config.config)?;
            let audit = config
                .audit_log(process_env)
                .await
                .context("opening the audit trail")?;
            if !audit.keyed() {
                eprintln!(
                    "warning: no chain key (SUBJECT_GATEWAY_AUDIT_KEY): whoever can write the state database can recompute the chain"
                );
            }
            match action {
                AuditAction::Verify { anchor } => match audit.verify_against(anchor.as_deref()).await {
                    Ok(verified) => {
                        println!(
                            "audit trail intact: {} events, head {}{}{}",
                            verified.events,
                            verified.head,
                            if verified.unkeyed > 0 && audit.keyed() {
                                format!(" ({} from before the chain key was set)", verified.unkeyed)
                            } else {
                                String::new()
                            },
                            verified
                                .anchored
                                .map(|seq| format!(", matches the anchor at event {seq}"))
                                .unwrap_or_default()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(broken) => {
                        println!("audit trail BROKEN: {broken}");
                        Ok(ExitCode::FAILURE)
                    }
                },
                AuditAction::Anchor { to } => match audit.anchor(&to).await {
                    Ok(verified) => {
                        println!(
                            "anchored event {} (head {}) to {}",
                            verified.events,
                            verified.head,
                            to.display()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(error) => {
                        println!("not anchored: {error}");
                        Ok(ExitCode::FAILURE)
                    }
                },
            }
        }
        Command::Keys { config, action } => {
            let config = load(&config.config)?;
            let store = config
                .key_store(process_env)
                .await
                .context("opening the state database")?;
            match action {
                KeyAction::Create { role, name } => {
                    anyhow::ensure!(
                        config.roles.contains_key(&role),
                        "no role `{role}` is declared in {}",
                        config.path.display()
                    );
                    let (id, key) = store.create(&name, &role).await?;
                    println!("created key {id} for role {role}; it is shown only now:\n{key}");
                }
                KeyAction::List => {
                    for key in store.list().await? {
                        let state = key
                            .revoked_at
                            .map_or("active".to_owned(), |at| format!("revoked {at}"));
                        println!(
                            "{}  {:<12} {:<24} {}  {}",
                            key.id, key.role, key.name, key.created_at, state
                        );
                    }
                }
                KeyAction::Revoke { id } => {
                    store.revoke(&id).await?;
                    println!("revoked key {id}");
                }
                KeyAction::Rotate { id } => {
                    let (new_id, key) = store.rotate(&id).await?;
                    println!("revoked key {id}; created key {new_id}, shown only now:\n{key}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(args) => {
            let config = load(&args.config)?;
            let service = config.build_offline_service().context("building the schema")?;
            print!("{}", service.sdl());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `subject-gateway demo`: the demo world (`subject-gateway-demo`) served through the reference
/// declarations, with an API key created for the run.
#[cfg(feature = "demo")]
async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    use subject_gateway_demo::demo;
    // Outside a checkout (an installed binary), the reference declarations built in; a
    // configuration named with `--config` (or SUBJECT_GATEWAY_CONFIG) must exist: falling back
    // to the built-in one would serve other settings than the ones asked for.
    let path = if args.config.config.exists() {
        args.config.config.clone()
    } else if args.config.config != std::path::Path::new(DEFAULT_CONFIG) {
        anyhow::bail!("{} not found", args.config.config.display());
    } else {
        demo::embedded_config(&args.data_dir).context("writing the built-in reference declarations")?
    };
    let mut config = load(&path)?;
    demo::stand_in_for_mongodb(&config.path, &config.kinds, &mut config.connectors)
        .context("loading the demo's uploads stand-in")?;
    demo::add_manual_systems(&config.path, &config.kinds, &mut config.connectors)
        .context("loading the demo's paper archive")?;
    config.requests.approval.required = demo::DEMO_APPROVAL.iter().map(|k| (*k).to_owned()).collect();
    let world = demo::prepare(&args.data_dir, args.people)
        .await
        .context("preparing the demo databases")?;
    let service = config
        .build_service(world.env(), Vec::new())
        .await
        .context("building connectors")?;
    let listen = args.listen.unwrap_or(config.server.listen);
    // Everything the demo writes stays under its data directory, made absolute: a relative
    // exports_dir would otherwise be taken relative to the config directory.
    let data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("finding {}", args.data_dir.display()))?;
    let state_url = format!("sqlite://{}", data_dir.join("state.db").display());
    config.auth.state_url = state_url;
    config.requests.exports_dir = data_dir.join("exports");
    let auth = config
        .authenticator(process_env)
        .await
        .context("setting up authentication")?;
    let keys = config.key_store(process_env).await?;
    let (_, key) = keys
        .create("demo", demo::DEMO_ROLE)
        .await
        .context("creating the demo's API key")?;
    let (_, approver_key) = keys
        .create("demo-approver", demo::DEMO_APPROVER_ROLE)
        .await
        .context("creating the demo's approver key")?;
    let (_, archivist_key) = keys
        .create("demo-archivist", demo::DEMO_ARCHIVIST_ROLE)
        .await
        .context("creating the demo's archivist key")?;
    let audit = config
        .audit_log(process_env)
        .await
        .context("opening the audit trail")?;
    // A webhook receiver the demo prints every verified event of every request from.
    let receiver = subject_gateway_demo::receiver::start(std::sync::Arc::new(|line| println!("{line}")))
        .await
        .context("starting the demo's webhook receiver")?;
    config
        .webhooks
        .endpoints
        .push(subject_gateway::webhooks::config::EndpointConfig {
            name: subject_gateway_demo::receiver::ENDPOINT_NAME.into(),
            url: receiver.url.parse().context("the demo receiver's URL")?,
            secret_env: subject_gateway_demo::receiver::SECRET_ENV.into(),
            events: None,
            all_requests: true,
            timeout: std::time::Duration::from_secs(5),
        });
    config.webhooks.delivery.poll_interval_ms = 200;
    let secret = receiver.secret.clone();
    let env = move |name: &str| {
        if name == subject_gateway_demo::receiver::SECRET_ENV {
            Some(secret.clone())
        } else {
            process_env(name)
        }
    };
    println!("{}", demo::examples(&world, &listen.to_string(), &key));
    println!(
        "{}",
        demo::approval_examples(&listen.to_string(), &approver_key, &archivist_key)
    );
    println!(
        "A webhook receiver at {} gets every request's events (Standard Webhooks, signed); each verified one is printed here.\n",
        receiver.url
    );
    serve(service, auth, audit, &config, listen, env).await?;
    Ok(ExitCode::SUCCESS)
}

/// A server built without the `demo` feature has no demo world to serve: it says so.
#[cfg(not(feature = "demo"))]
async fn demo(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "error: the demo is not built into this subject-gateway (built with --no-default-features, \
         without the `demo` feature); build it with the default features to run the demo: \
         cargo run --release -- demo"
    );
    Ok(ExitCode::FAILURE)
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("loading {}", path.display()))
}

async fn serve(
    service: subject_schema::SubjectService,
    auth: Arc<subject_gateway::auth::Authenticator>,
    audit: Arc<subject_gateway::audit::DbAuditLog>,
    config: &Config,
    listen: SocketAddr,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    let requests = config
        .privacy_engine(env, &service, audit.clone())
        .await
        .context("setting up privacy requests")?;
    // Resumes what a previous run left unfinished, then takes new requests.
    requests.start();
    let router = server::router(Arc::new(service), auth, audit, requests, &config.server);
    if let (true, Some(address)) = (config.server.metrics, config.server.metrics_listen) {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("listening for metrics on {address}"))?;
        tracing::info!(address = %address, "serving /metrics without credentials on an internal address");
        tokio::spawn(server::serve(
            listener,
            server::metrics_router(),
            server::shutdown_signal(),
        ));
    }
    match &config.server.tls {
        None => {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            if config.server.graphiql {
                tracing::info!(address = %listen, "serving GraphQL on http://{listen}/graphql, GraphiQL on /");
            } else {
                tracing::info!(address = %listen, "serving GraphQL on http://{listen}/graphql");
            }
            server::serve_with(
                listener,
                router,
                subject_gateway::conn::ConnectionLimits::from_settings(&config.server),
                server::shutdown_signal(),
            )
            .await
            .context("serving")
        }
        Some(tls) => {
            let tls_config = server::tls_config(tls).context("setting up TLS")?;
            let listener =
                std::net::TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
            if config.server.graphiql {
                tracing::info!(address = %listen, "serving GraphQL on https://{listen}/graphql, GraphiQL on /");
            } else {
                tracing::info!(address = %listen, "serving GraphQL on https://{listen}/graphql");
            }
            let limits = subject_gateway::conn::ConnectionLimits::from_settings(&config.server);
            server::serve_tls(listener, router, tls_config, limits, server::shutdown_signal())
                .await
                .context("serving")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_accepted_before_and_after_nested_subcommands() {
        for args in [
            &[
                "subject-gateway",
                "keys",
                "create",
                "--role",
                "support",
                "--config",
                "x.toml",
            ][..],
            &[
                "subject-gateway",
                "keys",
                "--config",
                "x.toml",
                "create",
                "--role",
                "support",
            ][..],
            &["subject-gateway", "audit", "verify", "--config", "x.toml"][..],
            &["subject-gateway", "check", "--config", "x.toml"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let config = match cli.command {
                Some(
                    Command::Keys { config, .. } | Command::Audit { config, .. } | Command::Check(config),
                ) => config.config,
                _ => panic!("{args:?}: another command"),
            };
            assert_eq!(config, PathBuf::from("x.toml"), "{args:?}");
        }
    }
}
