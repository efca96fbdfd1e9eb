//! Connectors: the `Connector` trait, connector declarations, identity kinds and values, data
//! categories, and the store kinds (SQL, MongoDB, HTTP) with the object storage records name.
//!
//! Start at [`connector::Connector`]; declarations are parsed and validated in [`declaration`];
//! the store kinds are folders under [`kinds`], registered in one list there
//! ([`kinds::STORE_KINDS`]); [`storage`] is the object storage a connector's files live in.

pub mod category;
pub mod codes;
pub mod connector;
pub mod declaration;
pub mod dynamic_sql;
pub mod identity;
pub mod kinds;
pub mod mask;
pub mod purpose;
pub mod storage;
pub mod value;

pub use category::DataCategory;
pub use connector::{
    AfterRetention, BatchItems, Compare, Connector, ConnectorDescriptor, ConnectorError, Disclosure,
    EntityCheck, EntityDescriptor, EntityErasure, EraseBatching, ErasureAction, ErasureBlocker,
    ErasurePolicy, ErasureRequest, FailureClass, FieldChange, FieldDescriptor, FieldErasure, IdentityLink,
    JobHandle, JobStatus, LookupRequest, ManualSystem, WriteOutcome,
};
pub use identity::{Identity, IdentityError, IdentityKindId, IdentityKinds, IdentityValue};
pub use kinds::kind::{BuildError, StoreDeclaration, StoreKind};
pub use value::{FieldType, Record, Value};
