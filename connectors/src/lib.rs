//! Connectors: the `Connector` trait, connector declarations, identity kinds and values, data
//! categories, and the built-in SQL store kind.
//!
//! Start at [`connector::Connector`]; declarations are parsed and validated in [`declaration`];
//! [`sql::SqlConnector`] is the built-in implementation for PostgreSQL, MySQL/MariaDB and SQLite,
//! [`http::HttpConnector`] the one for REST APIs.

pub mod category;
pub mod codes;
pub mod connector;
pub mod declaration;
pub mod http;
pub mod identity;
pub mod mask;
pub mod mongo;
pub mod purpose;
pub mod sql;
pub mod storage;
pub mod value;

pub use category::DataCategory;
pub use connector::{
    Compare, Connector, ConnectorDescriptor, ConnectorError, Disclosure, EntityCheck, EntityDescriptor,
    EntityErasure, ErasureAction, ErasureBlocker, ErasurePolicy, ErasureRequest, FailureClass, FieldChange,
    FieldDescriptor, FieldErasure, IdentityLink, JobHandle, JobStatus, LookupRequest, WriteOutcome,
};
pub use identity::{Identity, IdentityError, IdentityKindId, IdentityKinds, IdentityValue};
pub use value::{FieldType, Record, Value};
