//! The states, kinds and actions of privacy requests and their tasks: the enums live in
//! [`subject_schema::request_state`] (the GraphQL layer serves the same values the engine stores).

pub use subject_schema::request_state::{RequestKind, RequestStatus, TaskAction, TaskStatus, UnknownValue};
