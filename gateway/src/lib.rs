//! The `subject-gateway` binary's library: configuration loading, the HTTP server, privacy
//! requests and their webhooks, `check`, and logging. `main.rs` only parses arguments and calls into here, so tests and
//! benchmarks drive exactly what the binary runs. The demo world is not here: it is the
//! `subject-gateway-demo` crate, linked into the binary only with the `demo` feature.

pub mod audit;
pub mod auth;
pub mod check;
pub mod config;
pub mod conn;
pub mod console;
pub mod keys;
pub mod limiter;
pub mod listing;
pub mod logging;
pub mod ops;
pub mod private_fs;
pub mod requests;
pub mod server;
pub mod telemetry;
pub mod webhooks;
pub mod ws;
