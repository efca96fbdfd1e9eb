//! The `subject-gateway` binary's library: configuration loading, the HTTP server, privacy
//! requests, `check`, the demo world, and logging. `main.rs` only parses arguments and calls into here, so tests and
//! benchmarks drive exactly what the binary runs.

pub mod audit;
pub mod auth;
pub mod check;
pub mod config;
pub mod conn;
pub mod demo;
pub mod keys;
pub mod limiter;
pub mod logging;
pub mod private_fs;
pub mod requests;
pub mod server;
pub mod telemetry;
pub mod world;
