//! Counts the SQL statements the driver (sqlx) executes, from its own `sqlx::query` events: an
//! independent count of store round trips. nextest runs each test in a process of its own, so a
//! process-wide subscriber sees one test's statements.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Executed statements seen so far, as their SQL text.
#[derive(Clone, Default)]
pub struct StatementLog {
    statements: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

impl StatementLog {
    /// Installs the counting subscriber for this process (once) and returns the shared log.
    pub fn install() -> StatementLog {
        static LOG: OnceLock<StatementLog> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = StatementLog::default();
            let subscriber = tracing_subscriber::registry().with(CountingLayer { log: log.clone() });
            let _ = tracing::subscriber::set_global_default(subscriber);
            log
        })
        .clone()
    }

    /// Statements executed since the last call whose text mentions `needle`.
    pub fn take_matching(&self, needle: &str) -> Vec<String> {
        let mut statements = self.statements.lock().unwrap_or_else(|e| e.into_inner());
        let taken: Vec<String> = statements.drain(..).collect();
        taken.into_iter().filter(|s| s.contains(needle)).collect()
    }

    pub fn clear(&self) {
        self.statements.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.count.store(0, Ordering::SeqCst);
    }
}

struct CountingLayer {
    log: StatementLog,
}

struct StatementVisitor(Option<String>);

impl Visit for StatementVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "db.statement" || field.name() == "summary" {
            self.0.get_or_insert_with(String::new).push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" || field.name() == "summary" {
            self.0
                .get_or_insert_with(String::new)
                .push_str(&format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for CountingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut visitor = StatementVisitor(None);
        event.record(&mut visitor);
        if let Some(statement) = visitor.0 {
            self.log.count.fetch_add(1, Ordering::SeqCst);
            self.log
                .statements
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(statement);
        }
    }
}
