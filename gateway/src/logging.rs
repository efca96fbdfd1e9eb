//! Logging: `tracing` to stderr, human-readable or JSON (`--log-format json`), filtered by
//! `RUST_LOG` (default `info`). Identity values never reach a log line: they print as
//! fingerprints (see `subject_connectors::identity`), and the HTTP and driver crates whose debug
//! output carries request URLs (which hold identity values) are held at `warn` whatever
//! `RUST_LOG` says.

use tracing_subscriber::EnvFilter;

/// Third-party targets whose lower levels log URLs, queries or payloads.
const QUIET: &str = "reqwest=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,mongodb=warn,object_store=warn,tower_http=warn";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter for `directives` (as in `RUST_LOG`), with the noisy third-party targets held down.
pub fn filter(directives: &str) -> EnvFilter {
    EnvFilter::builder().parse_lossy(format!("{directives},{QUIET}"))
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&directives))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
