//! `subject-gateway-demo`: everything Subject Gateway runs only for its demo, its tests and its
//! benchmarks, kept out of the production server.
//!
//! - [`world`] — the reference world, used by the demo, the tests and the benchmarks: its
//!   synthetic people across the five domains (accounts, billing, uploads, helpdesk, analytics;
//!   `people.rs`) and their parameterized seeding into SQLite, PostgreSQL, MariaDB, a
//!   MongoDB-protocol server, files or S3, and the test servers' data (`seed.rs`).
//! - [`demo`] — the `demo` subcommand's world: SQLite databases, local files and the helpdesk and
//!   analytics test servers in process, the reference declarations built in, and the examples it
//!   prints.
//! - [`receiver`] — the demo's webhook receiver: verifies each event's signature and prints it.
//!
//! The `subject-gateway` binary links this crate only with its `demo` cargo feature (on by
//! default); `cargo build --release --no-default-features` builds a server without it.

pub mod demo;
mod people;
pub mod receiver;
mod seed;
pub mod world;
