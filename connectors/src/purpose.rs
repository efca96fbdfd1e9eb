//! Purposes of processing: the data uses of the Fides taxonomy (fideslang), hierarchical like
//! data categories (`marketing` contains `marketing.advertising`).
//!
//! Connectors declare the purposes their data may serve; callers state the purpose of each
//! request; a store whose purposes do not include the caller's serves nothing for it.

use std::fmt;
use std::sync::Arc;

/// fideslang's default data uses (the keys this gateway accepts).
static DATA_USES: &[&str] = &[
    "analytics",
    "analytics.reporting",
    "analytics.reporting.ad_performance",
    "analytics.reporting.campaign_insights",
    "analytics.reporting.content_performance",
    "analytics.reporting.system",
    "collect",
    "employment",
    "essential",
    "essential.fraud_detection",
    "essential.service",
    "essential.service.authentication",
    "essential.service.notifications",
    "essential.service.notifications.email",
    "essential.service.notifications.sms",
    "essential.service.operations",
    "essential.service.operations.improve",
    "essential.service.operations.support",
    "essential.service.payment_processing",
    "essential.service.security",
    "essential.service.upgrades",
    "finance",
    "functional",
    "functional.possible_interests",
    "functional.service",
    "functional.service.improve",
    "functional.storage",
    "marketing",
    "marketing.advertising",
    "marketing.advertising.first_party",
    "marketing.advertising.third_party",
    "marketing.communications",
    "marketing.communications.email",
    "marketing.communications.sms",
    "personalize",
    "personalize.content",
    "personalize.system",
    "sales",
    "third_party_sharing",
    "third_party_sharing.legal_obligation",
    "third_party_sharing.payment_processing",
    "train_ai_system",
];

/// A validated data use such as `essential.service` or `marketing`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DataUse(Arc<str>);

/// Why a data use was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown purpose `{0}`: purposes are fideslang data uses (essential, functional, analytics, marketing, personalize, third_party_sharing, train_ai_system, …)"
)]
pub struct DataUseError(pub String);

impl DataUse {
    pub fn parse(key: &str) -> Result<Self, DataUseError> {
        DATA_USES
            .iter()
            .find(|known| **known == key)
            .map(|known| Self(Arc::from(*known)))
            .ok_or_else(|| DataUseError(key.chars().take(64).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `other` or one of its descendants.
    pub fn is_within(&self, other: &DataUse) -> bool {
        let (me, parent) = (&*self.0, &*other.0);
        me == parent || (me.starts_with(parent) && me.as_bytes().get(parent.len()) == Some(&b'.'))
    }
}

impl fmt::Display for DataUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DataUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataUse({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uses_nest() {
        let marketing = DataUse::parse("marketing").unwrap();
        let ads = DataUse::parse("marketing.advertising").unwrap();
        assert!(ads.is_within(&marketing));
        assert!(!marketing.is_within(&ads));
        assert!(DataUse::parse("marketingx").is_err());
        assert!(DataUse::parse("").is_err());
    }
}
