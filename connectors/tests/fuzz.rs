//! Property-based fuzzing (proptest) of what hostile input reaches first: identity
//! normalisation and declaration parsing. Bounded by proptest's case count (256 by default,
//! `PROPTEST_CASES` to change it).

use indexmap::IndexMap;
use proptest::prelude::*;
use subject_connectors::declaration::{IdentityKindDecl, SourceFile, build_identity_kinds, load_connector};
use subject_connectors::identity::IdentityKinds;
use toml::Spanned;

fn kinds() -> IdentityKinds {
    let file = SourceFile {
        path: "gateway.toml".into(),
        text: String::new(),
    };
    let declared: IndexMap<Spanned<String>, IdentityKindDecl> = toml::from_str(
        r#"
        [email]
        normalise = ["trim", "lowercase"]
        format = "email"
        max_length = 254
        [user_id]
        format = "integer"
        [phone]
        normalise = ["digits_only"]
        [customer_id]
        pattern = "cus_[A-Za-z0-9]{4,60}"
        "#,
    )
    .expect("the kinds parse");
    build_identity_kinds(&file, &declared).expect("the kinds are valid")
}

proptest! {
    #[test]
    fn identity_values_normalise_idempotently_and_never_echo(raw in any::<String>()) {
        let kinds = kinds();
        for (kind, spec) in kinds.iter() {
            match kinds.parse_input(kind, &raw) {
                Ok(identity) => {
                    let value = identity.value.expose();
                    prop_assert!(!value.is_empty());
                    prop_assert!(value.len() <= spec.max_length);
                    prop_assert!(!value.chars().any(char::is_control));
                    // Normalising a normalised value changes nothing.
                    let again = kinds.parse_input(kind, value).map(|i| i.value);
                    prop_assert_eq!(again, Ok(identity.value.clone()));
                    // Display fingerprints, never the value.
                    let printed = format!("{} {:?}", identity.value, identity.value);
                    prop_assert!(value.len() < 8 || !printed.contains(value));
                }
                Err(error) => {
                    let trimmed = raw.trim();
                    if trimmed.chars().count() >= 4 {
                        prop_assert!(!error.to_string().contains(trimmed));
                    }
                }
            }
        }
    }

    #[test]
    fn email_lookalikes_either_parse_to_one_address_or_are_refused(
        local in "[A-Za-z0-9._%+' -]{0,20}",
        domain in "[A-Za-z0-9.%*-]{0,20}",
        padding in "[ \t]{0,3}",
    ) {
        let kinds = kinds();
        let email = kinds.by_name("email").expect("declared");
        let raw = format!("{padding}{local}@{domain}{padding}");
        if let Ok(identity) = kinds.parse_input(email, &raw) {
            let value = identity.value.expose();
            prop_assert_eq!(value.matches('@').count(), 1);
            prop_assert!(!value.contains(char::is_whitespace));
            prop_assert_eq!(value.to_lowercase(), value);
        }
    }

    #[test]
    fn arbitrary_declaration_text_never_panics(text in any::<String>()) {
        let file = SourceFile { path: "connectors/fuzz.toml".into(), text };
        let _ = load_connector(&file, &kinds());
    }

    #[test]
    fn mutated_declarations_are_accepted_or_refused_with_a_location(
        kind in prop::sample::select(vec!["email", "user_id", "passport", "", "EMAIL", "user id"]),
        category in prop::sample::select(vec!["user.contact.email", "user.name", "user", "user.", "system.operations", "user.contact.emails", "💥"]),
        field_type in prop::sample::select(vec!["string", "bigint", "json", "float", "blob"]),
        table in "[a-z_.;' ]{0,12}",
    ) {
        let text = format!(
            "kind = \"sql\"\nurl = \"${{FUZZ_URL}}\"\n[entities.things]\ntable = {table:?}\nlookup = [{{ kind = {kind:?}, field = \"owner\" }}]\n[entities.things.fields]\nowner = {{ type = {field_type:?}, category = {category:?} }}\n"
        );
        let file = SourceFile { path: "connectors/fuzz.toml".into(), text };
        let result = load_connector(&file, &kinds()).map_err(|e| e.0);
        if let Err(errors) = result {
            prop_assert!(!errors.is_empty());
            for error in errors {
                prop_assert!(error.location.file.ends_with("fuzz.toml"));
                prop_assert!(error.location.line.is_some(), "no line for: {}", error.message);
            }
        }
    }
}
