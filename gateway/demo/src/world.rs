//! The reference world, in one place for the demo, the tests and the benchmarks: its people
//! (`people.rs`), their seeding into every store (`seed.rs`), and `ReferenceEnv`, the variables
//! the reference declarations read to find those stores.

pub use crate::people::{
    Customer, Invoice, PaymentMethod, Person, Preferences, Session, Upload, gps_json, people, tags_json,
};
pub use crate::seed::{
    analytics_data, create_schema, ddl, helpdesk_data, seed_accounts, seed_billing, seed_files,
    seed_uploads_mongo, seed_uploads_sql,
};

/// Where the reference world's stores are, as the variables the reference declarations read.
#[derive(Debug, Clone)]
pub struct ReferenceEnv {
    pub vars: std::collections::HashMap<&'static str, String>,
    /// Whether variables not in `vars` are read from the process environment.
    pub fall_back_to_process: bool,
}

impl ReferenceEnv {
    /// The lookup function `Config::build_service` takes.
    pub fn lookup(self) -> impl Fn(&str) -> Option<String> + use<> {
        move |name| match self.vars.get(name) {
            Some(value) => Some(value.clone()),
            None if self.fall_back_to_process => std::env::var(name).ok(),
            None => None,
        }
    }
}
