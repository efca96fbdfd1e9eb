//! Data categories from the Fides taxonomy (fideslang), which every declared field is labelled with.
//!
//! Categories are hierarchical (`user.contact` contains `user.contact.email`); the gateway accepts
//! exactly the keys of fideslang's default taxonomy, deprecated keys included (with a hint to the
//! replacement), so that declarations written for Fides carry over.

use std::fmt;
use std::sync::Arc;

/// One key of fideslang's default data-category taxonomy, its human name, and — for keys that
/// fideslang deprecated in 3.2.0 — the key that replaces it.
struct TaxonomyEntry {
    key: &'static str,
    name: &'static str,
    replaced_by: Option<&'static str>,
}

macro_rules! taxonomy {
    ($( $key:literal => $name:literal $(, replaced_by $new:literal)? ;)*) => {
        &[$( TaxonomyEntry { key: $key, name: $name, replaced_by: taxonomy!(@opt $($new)?) } ),*]
    };
    (@opt $new:literal) => { Some($new) };
    (@opt) => { None };
}

/// fideslang's default data categories (fideslang 3.x, `default_taxonomy/data_categories.py`).
static TAXONOMY: &[TaxonomyEntry] = taxonomy! {
    "user" => "User Data";
    "user.account" => "Account Information";
    "user.account.settings" => "Account Settings", replaced_by "user.settings";
    "user.account.username" => "Account Username";
    "user.authorization" => "Authorization Information";
    "user.authorization.credentials" => "Account password";
    "user.authorization.biometric" => "Biometric Credentials", replaced_by "user.authorization.biometrics";
    "user.authorization.biometrics" => "Biometric Authentication";
    "user.authorization.password" => "Password";
    "user.behavior" => "Observed Behavior";
    "user.behavior.browsing_history" => "Browsing History";
    "user.behavior.media_consumption" => "Media Consumption";
    "user.behavior.purchase_history" => "Purchase History";
    "user.behavior.search_history" => "Search History";
    "user.biometric" => "Biometric Data", replaced_by "user.biometrics";
    "user.biometrics" => "Biometrics";
    "user.biometric.fingerprint" => "Fingerprint", replaced_by "user.biometrics.fingerprint";
    "user.biometrics.fingerprint" => "Fingerprint Data";
    "user.biometric.retinal" => "Retina Scan", replaced_by "user.biometrics.retinal";
    "user.biometrics.retinal" => "Retinal Data";
    "user.biometric.voice" => "Voice Recording", replaced_by "user.biometrics.voice";
    "user.biometrics.voice" => "Voice Data";
    "user.biometric.health" => "Biometric Health Data", replaced_by "user.biometrics";
    "user.childrens" => "Children's Data", replaced_by "user.children";
    "user.children" => "Children";
    "user.children.children_under_thirteen" => "Children Under Thirteen";
    "user.children.thirteen_to_sixteen" => "Children Thirteen to Sixteen";
    "user.contact" => "Contact Data";
    "user.contact.address" => "User Contact Address";
    "user.contact.address.city" => "User Contact City";
    "user.contact.address.country" => "User Contact Country";
    "user.contact.address.postal_code" => "User Contact Postal Code";
    "user.contact.address.state" => "User Contact State";
    "user.contact.address.street" => "User Contact Street";
    "user.contact.address.mailing_address" => "Mailing Address";
    "user.contact.email" => "User Contact Email";
    "user.contact.phone_number" => "User Contact Phone Number";
    "user.contact.url" => "User Website", replaced_by "user.contact.social_url";
    "user.contact.social_url" => "Social Media URL";
    "user.contact.fax_number" => "Fax Number";
    "user.contact.organization" => "Organization", replaced_by "user.contact";
    "user.content" => "User Content";
    "user.content.private" => "Private Content";
    "user.content.public" => "Public Content";
    "user.content.self_image" => "User Image";
    "user.demographic" => "Demographic Data";
    "user.demographic.age_range" => "Age Range";
    "user.demographic.date_of_birth" => "Birth Date";
    "user.demographic.gender" => "Gender";
    "user.demographic.language" => "Language";
    "user.demographic.marital_status" => "Marital Status";
    "user.demographic.political_opinion" => "Political Opinion";
    "user.demographic.profile" => "User Profile Data";
    "user.demographic.race_ethnicity" => "Race";
    "user.demographic.religious_belief" => "Religion";
    "user.demographic.sexual_orientation" => "Sexual Orientation";
    "user.demographic.citizenship_or_immigration_status" => "Citizenship or Immigration Status";
    "user.demographic.philosophical_belief" => "Philosophical Belief";
    "user.demographic.protected_classifications" => "Protected Classifications";
    "user.demographic.union_membership" => "Union Membership";
    "user.location" => "Location Data";
    "user.location.imprecise" => "Imprecise Subject Location", replaced_by "user.location.coarse";
    "user.location.coarse" => "Coarse Subject Location";
    "user.location.precise" => "Precise Subject Location";
    "user.device" => "Device Data";
    "user.device.cookie" => "Device Cookie";
    "user.device.cookie_id" => "Cookie ID";
    "user.device.device_id" => "Device ID";
    "user.device.ip_address" => "IP Address";
    "user.device.sensor" => "Device Sensor Data";
    "user.device.telemetry" => "Device Telemetry";
    "user.payment" => "Payment Data";
    "user.social" => "Social Data", replaced_by "user.social_activity";
    "user.social_activity" => "Social Activity Data";
    "user.settings" => "User Settings";
    "user.unique_id" => "Unique ID";
    "user.unique_id.pseudonymous" => "Pseudonymous User ID", replaced_by "user.unique_id";
    "user.unique_id.deterministic" => "Deterministic User ID";
    "user.unique_id.probablistic" => "Probabilistic User ID";
    "user.telemetry" => "Telemetry Data", replaced_by "user.device.telemetry";
    "user.user_sensor" => "User Sensor Data", replaced_by "user.device.sensor";
    "user.sensor" => "Sensor Data", replaced_by "user.device.sensor";
    "user.financial" => "Financial Data";
    "user.financial.bank_account" => "Bank Account Information";
    "user.financial.credit_card" => "Credit Card Information";
    "user.government_id" => "Government ID";
    "user.government_id.birth_certificate" => "Birth Certificate";
    "user.government_id.drivers_license_number" => "Driver's License Number";
    "user.government_id.immigration" => "Immigration ID";
    "user.government_id.national_identification_number" => "National Identification Number";
    "user.government_id.passport_number" => "Passport Number";
    "user.government_id.vehicle_registration" => "Vehicle Registration";
    "user.health_and_medical" => "Health and Medical Data", replaced_by "user.health";
    "user.health" => "Health Data";
    "user.health_and_medical.genetic" => "User's Genetic Data", replaced_by "user.health.genetic";
    "user.health.genetic" => "Genetic Data";
    "user.health_and_medical.insurance_beneficiary_id" => "Medical Insurance ID", replaced_by "user.health.insurance_beneficiary_id";
    "user.health.insurance_beneficiary_id" => "Health Insurance ID";
    "user.health_and_medical.record_id" => "Medical Record ID", replaced_by "user.health.record_id";
    "user.health.record_id" => "Health Record ID";
    "user.health.baby_formula" => "Baby Formula Information";
    "user.health.condition" => "Health Condition";
    "user.health.maternity_clothing" => "Maternity Clothing";
    "user.health.medical_diagnosis" => "Medical Diagnosis";
    "user.health.medications" => "Medications";
    "user.health.prescriptions" => "Prescriptions";
    "user.health.reproductive_or_sexual" => "Reproductive or Sexual Health";
    "user.health.social_psychological_behavioral" => "Social, Psychological, or Behavioral Health";
    "user.health.symptons" => "Health Symptoms";
    "user.health.treatment" => "Medical Treatment";
    "user.name" => "Name";
    "user.name.first" => "First Name";
    "user.name.last" => "Last Name";
    "user.criminal_history" => "Criminal History";
    "user.privacy_preferences" => "Privacy Preferences";
    "user.job_title" => "Job Title", replaced_by "user.professional_information.job_title";
    "user.workplace" => "Workplace", replaced_by "user.professional_information.workplace";
    "user.professional_information" => "Professional Information";
    "user.professional_information.job_title" => "Professional Job Title";
    "user.professional_information.workplace" => "Professional Workplace";
    "system" => "System Data";
    "system.authentication" => "Authentication Data";
    "system.operations" => "Operations Data";
};

/// A validated fideslang data category such as `user.contact.email`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DataCategory(Arc<str>);

/// Why a category key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CategoryError {
    #[error("unknown data category `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown { key: String, suggestion: Option<String> },
}

impl DataCategory {
    /// Parses a key of the fideslang default taxonomy.
    pub fn parse(key: &str) -> Result<Self, CategoryError> {
        match TAXONOMY.iter().find(|entry| entry.key == key) {
            Some(entry) => Ok(Self(Arc::from(entry.key))),
            None => Err(CategoryError::Unknown {
                key: key.to_owned(),
                suggestion: suggest(key),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The human-readable name fideslang gives this category.
    pub fn display_name(&self) -> &'static str {
        TAXONOMY
            .iter()
            .find(|entry| entry.key == &*self.0)
            .map(|entry| entry.name)
            .unwrap_or("")
    }

    /// The category fideslang recommends instead, when this one is deprecated.
    pub fn replaced_by(&self) -> Option<&'static str> {
        TAXONOMY
            .iter()
            .find(|entry| entry.key == &*self.0)
            .and_then(|entry| entry.replaced_by)
    }

    /// True when `self` is `other` or one of its descendants (`user.contact.email` is within
    /// `user.contact` and within `user`).
    pub fn is_within(&self, other: &DataCategory) -> bool {
        let (me, parent) = (&*self.0, &*other.0);
        me == parent || (me.starts_with(parent) && me.as_bytes().get(parent.len()) == Some(&b'.'))
    }
}

/// The closest taxonomy key sharing the longest dotted prefix with `key`, for error messages.
fn suggest(key: &str) -> Option<String> {
    let last = key.rsplit('.').next().unwrap_or(key);
    TAXONOMY
        .iter()
        .filter(|entry| entry.replaced_by.is_none())
        .find(|entry| entry.key.rsplit('.').next() == Some(last))
        .map(|entry| entry.key.to_owned())
}

impl fmt::Display for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataCategory({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_parse_and_unknown_keys_suggest() {
        assert!(DataCategory::parse("user.contact.email").is_ok());
        assert!(DataCategory::parse("system.operations").is_ok());
        let err = DataCategory::parse("user.email").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown data category `user.email` (did you mean `user.contact.email`?)"
        );
        assert!(DataCategory::parse("").is_err());
        assert!(DataCategory::parse("user.contact.").is_err());
    }

    #[test]
    fn hierarchy_is_by_dotted_segments() {
        let email = DataCategory::parse("user.contact.email").unwrap();
        let contact = DataCategory::parse("user.contact").unwrap();
        let user = DataCategory::parse("user").unwrap();
        let content = DataCategory::parse("user.content").unwrap();
        assert!(email.is_within(&contact));
        assert!(email.is_within(&user));
        assert!(!contact.is_within(&email));
        // `user.content` shares a text prefix with `user.contact` but is not inside it.
        assert!(!content.is_within(&contact));
    }

    #[test]
    fn deprecated_keys_name_their_replacement() {
        let old = DataCategory::parse("user.contact.organization").unwrap();
        assert_eq!(old.replaced_by(), Some("user.contact"));
    }
}
