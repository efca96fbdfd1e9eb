//! The kinds, states and actions of privacy requests and their tasks, as enums shared by the
//! engine (which stores them) and the GraphQL layer (which serves them).
//!
//! They are stored as the same upper-case TEXT values as ever (no migration: existing databases
//! keep working); `as_str` gives the stored and served spelling and `FromStr` reads it back. A
//! stored value none of them spells is an error ([`UnknownValue`]), never a panic and never
//! mapped to another.

use std::fmt;
use std::str::FromStr;

/// A stored text none of an enum's values spells.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` in the state database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored (and served) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: text.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;

            fn try_from(text: String) -> Result<Self, UnknownValue> {
                text.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What kind of privacy request.
    RequestKind, "request kind" {
        /// GDPR Art. 17 / CCPA deletion.
        Erasure => "ERASURE",
        /// GDPR Art. 16.
        Rectification => "RECTIFICATION",
        /// GDPR Art. 15 and 20: access and portability.
        Export => "EXPORT",
        /// GDPR Art. 21 / consent withdrawal: stop processing for a purpose.
        Objection => "OBJECTION",
    }
}

text_enum! {
    /// Where a request is.
    RequestStatus, "request status" {
        Received => "RECEIVED",
        InProgress => "IN_PROGRESS",
        /// Waiting on asynchronous jobs in the stores, or on manual tasks.
        Waiting => "WAITING",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Cancelled => "CANCELLED",
        /// approval: waits for a holder of `approve` other than the submitter; not worked on.
        AwaitingApproval => "AWAITING_APPROVAL",
        /// approval: denied, with the reason; nothing was done.
        Denied => "DENIED",
    }
}

impl RequestStatus {
    /// Statuses a request is worked on in.
    pub const OPEN: [RequestStatus; 3] = [
        RequestStatus::Received,
        RequestStatus::InProgress,
        RequestStatus::Waiting,
    ];

    /// Received, in progress or waiting: a worker will take it.
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Not finished: open, awaiting approval, or failed and waiting for a retry or a cancel
    /// (counts for overdue: the due date runs while a request waits for approval).
    pub fn is_unfinished(self) -> bool {
        self.is_open() || matches!(self, RequestStatus::Failed | RequestStatus::AwaitingApproval)
    }
}

text_enum! {
    /// Where one task of a request is.
    TaskStatus, "task status" {
        Pending => "PENDING",
        Running => "RUNNING",
        /// Waiting on an asynchronous job in the store.
        Waiting => "WAITING",
        Done => "DONE",
        Failed => "FAILED",
        Skipped => "SKIPPED",
        /// A manual task (a store without an API) waits for a person to record its outcome.
        Manual => "MANUAL",
    }
}

impl TaskStatus {
    /// Done or skipped: nothing more to do for it.
    pub fn is_settled(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Skipped)
    }
}

text_enum! {
    /// What one task does to one entity of one connector.
    TaskAction, "task action" {
        Delete => "DELETE",
        Mask => "MASK",
        Retain => "RETAIN",
        Cascade => "CASCADE",
        Rectify => "RECTIFY",
        Export => "EXPORT",
        Suppress => "SUPPRESS",
    }
}

impl From<&subject_connectors::ErasureAction> for TaskAction {
    fn from(action: &subject_connectors::ErasureAction) -> Self {
        use subject_connectors::ErasureAction;
        match action {
            ErasureAction::Delete => TaskAction::Delete,
            ErasureAction::Mask => TaskAction::Mask,
            ErasureAction::Retain => TaskAction::Retain,
            ErasureAction::Cascade(_) => TaskAction::Cascade,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_as_itself() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse::<RequestStatus>(), Ok(*status));
        }
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(*status));
        }
        for kind in RequestKind::ALL {
            assert_eq!(kind.as_str().parse::<RequestKind>(), Ok(*kind));
        }
        for action in TaskAction::ALL {
            assert_eq!(action.as_str().parse::<TaskAction>(), Ok(*action));
        }
    }

    #[test]
    fn an_unknown_stored_value_is_an_error() {
        assert!("completed".parse::<RequestStatus>().is_err());
        assert!("".parse::<TaskStatus>().is_err());
        assert!("ERASE".parse::<TaskAction>().is_err());
        assert!("DELETION".parse::<RequestKind>().is_err());
    }
}
