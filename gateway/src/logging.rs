//! Logging and traces: `tracing` to stderr, human-readable or JSON (`--log-format json`),
//! filtered by `RUST_LOG` (default `info`), and — when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set — spans exported over OTLP/HTTP: one per GraphQL
//! request and one per connector call, never one per field.
//!
//! Identity values never reach a log line or span: they print as fingerprints (see
//! `subject_connectors::identity`), and the HTTP and driver crates whose lower levels carry
//! request URLs (which hold identity values) are held at `warn` whatever `RUST_LOG` says.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Third-party targets whose lower levels log URLs, queries or payloads.
const QUIET: &str = "reqwest=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,mongodb=warn,object_store=warn,tower_http=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

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

/// A tracer provider exporting over OTLP/HTTP to the endpoint the standard environment
/// variables name, when they name one.
pub fn otlp_from_env() -> Option<SdkTracerProvider> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !configured {
        return None;
    }
    match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
        Ok(exporter) => Some(tracer_provider(exporter)),
        Err(error) => {
            eprintln!("warning: traces are not exported: {error}");
            None
        }
    }
}

/// A batching tracer provider for `exporter`, naming the service.
pub fn tracer_provider(exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("subject-gateway").build())
        .build()
}

/// Installs the global subscriber (a second call is a no-op); returns the tracer provider to
/// shut down (flushing spans) at exit, when traces are exported.
pub fn init(format: LogFormat) -> Option<SdkTracerProvider> {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let provider = otlp_from_env();
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("subject-gateway")));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter(&directives))
        .with(fmt)
        .with(otel)
        .try_init();
    provider
}
