//! Connector declarations refused with their file, line and problem; erasure attributes;
//! `${VARIABLE}` templates.
use indexmap::IndexMap;
use toml::Spanned;

use super::*;
use crate::connector::{AfterRetention, ErasureAction};
use crate::identity::IdentityKinds;
use crate::kinds::load_connector;
use crate::mask::FieldErasure;

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
        [user_id]
        format = "integer"
        "#,
    )
    .unwrap();
    build_identity_kinds(&file, &declared).unwrap()
}

fn validate(text: &str) -> Result<ValidatedConnector, DeclarationErrors> {
    let file = SourceFile {
        path: "config/connectors/accounts.toml".into(),
        text: text.into(),
    };
    load_connector(&file, &kinds())
}

const GOOD: &str = r#"
kind = "postgres"
url = "${ACCOUNTS_DATABASE_URL}"

[entities.users]
lookup = [{ kind = "email", field = "email", compare = "lowercase" }]
yields = [{ kind = "user_id", field = "id" }]
primary_key = "id"

[entities.users.fields]
id = { type = "bigint", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
"#;

#[test]
fn a_good_declaration_validates() {
    let connector = validate(GOOD).unwrap();
    assert_eq!(connector.descriptor.name, "accounts");
    let users = &connector.descriptor.entities[0];
    assert_eq!(users.source, "users");
    assert_eq!(users.fields.len(), 2);
    assert_eq!(users.lookups[0].field, 1);
    assert_eq!(users.primary_key, Some(0));
}

#[test]
fn errors_name_file_line_and_problem() {
    let bad = GOOD.replace("user.contact.email", "user.email");
    let err = validate(&bad).unwrap_err().to_string();
    assert!(err.contains("config/connectors/accounts.toml:12:"), "{err}");
    assert!(err.contains("unknown data category `user.email`"), "{err}");

    let bad = GOOD.replace("kind = \"email\"", "kind = \"phone\"");
    let err = validate(&bad).unwrap_err().to_string();
    assert!(
        err.contains("accounts.toml:6:") && err.contains("unknown identity kind `phone`"),
        "{err}"
    );

    let bad = GOOD.replace(
        "email = { type",
        "id = { type = \"string\", category = \"user.name\" }\nemail = { type",
    );
    let err = validate(&bad).unwrap_err().to_string();
    assert!(
        err.contains("accounts.toml:12:") && err.contains("duplicate key"),
        "{err}"
    );

    let bad = GOOD.replace("field = \"email\"", "field = \"mail\"");
    let err = validate(&bad).unwrap_err().to_string();
    assert!(err.contains("field `mail` is not declared"), "{err}");

    let bad = GOOD.replace("type = \"bigint\"", "type = \"bignum\"");
    let err = validate(&bad).unwrap_err().to_string();
    assert!(
        err.contains("accounts.toml:11:") && err.contains("bignum"),
        "{err}"
    );
}

#[test]
fn urls_must_come_from_the_environment() {
    let bad = GOOD.replace("${ACCOUNTS_DATABASE_URL}", "postgres://app:hunter2@db/accounts");
    let err = validate(&bad).unwrap_err().to_string();
    assert!(err.contains("must come from the environment"), "{err}");
    assert!(!err.contains("hunter2") || err.contains("url"));

    let bad = GOOD.replace(
        "${ACCOUNTS_DATABASE_URL}",
        "postgres://app:hunter2@${DB_HOST}/accounts",
    );
    let err = validate(&bad).unwrap_err().to_string();
    assert!(err.contains("literal password"), "{err}");

    let template = EnvTemplate {
        template: "${ACCOUNTS_DATABASE_URL}".into(),
        location: Location::file("accounts.toml".as_ref()),
    };
    let err = template.resolve(|_| None).unwrap_err().to_string();
    assert!(err.contains("ACCOUNTS_DATABASE_URL is not set"), "{err}");
    use secrecy::ExposeSecret;
    let url = template
        .resolve(|name| (name == "ACCOUNTS_DATABASE_URL").then(|| "postgres://db/a".to_owned()))
        .unwrap();
    assert_eq!(url.expose_secret(), "postgres://db/a");
}

#[test]
fn erasure_declarations_are_checked() {
    let retained = GOOD.replace(
        "[entities.users.fields]",
        "[entities.users.erasure]\naction = \"retain\"\nlegal_basis = \"tax\"\nretention_days = 3650\nmax_records = 2\n\n[entities.users.fields]",
    )
    .replace(
        "email = { type = \"string\", category = \"user.contact.email\" }",
        "email = { type = \"string\", category = \"user.contact.email\", erasure = \"pseudonymize\", rectify = \"email\" }",
    );
    let connector = validate(&retained).unwrap();
    let users = &connector.descriptor.entities[0];
    assert_eq!(users.erasure.action, ErasureAction::Retain);
    assert_eq!(users.erasure.max_records, Some(2));
    assert_eq!(users.masked_fields(), vec![(1, FieldErasure::Pseudonymize)]);
    assert_eq!(users.fields[1].rectify.as_deref(), Some("email"));

    let cases = [
        (retained.replace("legal_basis = \"tax\"\n", ""), "legal_basis and retention_days"),
        (
            retained.replace("erasure = \"pseudonymize\"", "erasure = \"shred\""),
            "unknown field erasure `shred`",
        ),
        (
            GOOD.replace(
                "id = { type = \"bigint\", category = \"user.unique_id\" }",
                "id = { type = \"bigint\", category = \"user.unique_id\", erasure = \"pseudonymize\" }",
            ),
            "only string fields can hold a pseudonym",
        ),
        (
            GOOD.replace(
                "[entities.users.fields]",
                "[entities.users.erasure]\naction = \"cascade\"\nwith = \"nobody\"\n\n[entities.users.fields]",
            ),
            "`with` must name another entity",
        ),
        (retained.replace("action = \"retain\"", "action = \"forget\""), "unknown erasure action"),
        (
            retained.replace("retention_days = 3650", "retention_days = 3650\nretain_from = \"email\""),
            "retain_from must name a timestamp or date field",
        ),
        (
            GOOD.replace("category = \"user.unique_id\" }", "category = \"user.unique_id\", rectify = \"id\" }"),
            "only string fields can be rectified",
        ),
    ];
    for (text, expected) in cases {
        let err = validate(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn after_retention_is_delete_or_pseudonymize_on_retained_entities_only_at_its_line() {
    let retained = GOOD.replace(
        "[entities.users.fields]",
        "[entities.users.erasure]\naction = \"retain\"\nlegal_basis = \"tax\"\nretention_days = 0\nafter_retention = \"pseudonymize\"\n\n[entities.users.fields]",
    )
    .replace(
        "email = { type = \"string\", category = \"user.contact.email\" }",
        "email = { type = \"string\", category = \"user.contact.email\", erasure = \"pseudonymize\" }",
    );
    let connector = validate(&retained).unwrap();
    let users = &connector.descriptor.entities[0];
    assert_eq!(users.erasure.after_retention, AfterRetention::Pseudonymize);
    assert_eq!(users.erasure.retention_days, Some(0));
    // What is left after retention: the masked email and nothing else (the key stays).
    assert_eq!(
        users.pseudonymized_after_retention(),
        vec![(1, FieldErasure::Pseudonymize)]
    );
    let deleted = validate(&retained.replace("after_retention = \"pseudonymize\"\n", "")).unwrap();
    assert_eq!(
        deleted.descriptor.entities[0].erasure.after_retention,
        AfterRetention::Delete
    );
    let line = retained
        .lines()
        .position(|l| l.starts_with("after_retention"))
        .map(|i| i + 1)
        .unwrap();
    let cases = [
        (
            retained.replace("\"pseudonymize\"", "\"shred\""),
            "unknown after_retention `shred`: expected delete or pseudonymize",
        ),
        (
            retained.replace("action = \"retain\"", "action = \"mask\""),
            "it goes with action = \"retain\" only",
        ),
    ];
    for (text, expected) in cases {
        let err = validate(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains(&format!(":{line}:")), "line {line}: {err}");
    }
}

#[test]
fn keys_of_another_kind_are_named_with_their_kind_and_unknown_keys_with_what_is_accepted() {
    let misplaced = GOOD
        .replace(
            "url = \"${ACCOUNTS_DATABASE_URL}\"",
            "url = \"${ACCOUNTS_DATABASE_URL}\"\nbase_url = \"${API}\"\ndatabase = \"x\"",
        )
        .replace(
            "primary_key = \"id\"",
            "primary_key = \"id\"\ncollection = \"users\"\nshelf = 3",
        )
        .replace(
            "category = \"user.unique_id\" }",
            "category = \"user.unique_id\", path = \"$.id\" }",
        );
    let err = validate(&misplaced).unwrap_err().to_string();
    for expected in [
        "accounts.toml:4:12: `base_url` is only for http connectors",
        "accounts.toml:5:12: `database` is only for mongodb connectors",
        "accounts.toml:11:14: `collection` is only for mongodb connectors",
        "accounts.toml:12:1: unknown field `shelf` in an entity of a sql connector, expected one of `description`",
        "`path` is only for mongodb or http connectors",
    ] {
        assert!(err.contains(expected), "{expected}:\n{err}");
    }
    assert!(err.starts_with("5 problems"), "{err}");

    let err = validate(&GOOD.replace("kind = \"postgres\"", "kind = \"oracle\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("accounts.toml:2:8: unknown connector kind `oracle`: expected one of sql, postgres"),
        "{err}"
    );
}

const MANUAL: &str = r#"
kind = "manual"
role = "archivist"

[entities.contracts]
lookup = [{ kind = "email", field = "email" }]
instructions = "Find the folder in cabinet C and shred it."

[entities.contracts.fields]
email = { type = "string", category = "user.contact.email" }
"#;

#[test]
fn a_manual_system_declares_its_role_and_instructions_per_entity() {
    let connector = validate(MANUAL).unwrap();
    assert_eq!(connector.descriptor.entities[0].source, "manual: contracts");

    let err = validate(&MANUAL.replace("role = \"archivist\"\n", ""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("accounts.toml:2:8") && err.contains("needs `role`"),
        "{err}"
    );
    let err = validate(&MANUAL.replace(
        "instructions = \"Find the folder in cabinet C and shred it.\"\n",
        "",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("accounts.toml:5:11:") && err.contains("needs `instructions`"),
        "{err}"
    );
    let err = validate(&MANUAL.replace("role = \"archivist\"", "role = \"archivist\"\nurl = \"${X}\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`url` is only for"), "{err}");
    let err = validate(&MANUAL.replace("lookup = [", "erasure = { action = \"mask\" }\nlookup = ["))
        .unwrap_err()
        .to_string();
    assert!(err.contains("accounts.toml:"), "{err}");
}

const BATCHED: &str = r#"
kind = "http"
base_url = "${ANALYTICS_URL}"

[entities.profiles]
primary_key = "distinct_id"
lookup = [{ kind = "email", field = "email" }]
request = { path = "/engage", query = { email = "{value}" }, records = "$.results" }
erase = { max_batch = 2000, batch_window_ms = 500, steps = [
  { method = "POST", path = "/deletions", body = { distinct_ids = "{distinct_id[]}", compliance_type = "GDPR" } },
], job = { id = "$.task_id", status_path = "/deletions/{job}", status = "$.status", done = ["SUCCESS"], failed = ["FAILURE"] } }

[entities.profiles.fields]
distinct_id = { type = "string", category = "user.unique_id" }
email = { type = "string", category = "user.contact.email" }
"#;

#[test]
fn a_batched_http_erase_takes_one_step_one_list_placeholder_and_a_job() {
    validate(BATCHED).unwrap();
    let refused = |from: &str, to: &str| validate(&BATCHED.replace(from, to)).unwrap_err().to_string();
    let err = refused("max_batch = 2000", "max_batch = 0");
    assert!(
        err.contains("accounts.toml:9:23: max_batch is 1 to 10000"),
        "{err}"
    );
    let err = refused("max_batch = 2000", "max_batch = 10001");
    assert!(err.contains("max_batch is 1 to 10000"), "{err}");
    let job = r#", job = { id = "$.task_id", status_path = "/deletions/{job}", status = "$.status", done = ["SUCCESS"], failed = ["FAILURE"] }"#;
    let err = refused(job, "");
    assert!(
        err.contains("accounts.toml:9:23:") && err.contains("needs `job`"),
        "{err}"
    );
    let err = refused(
        "], job",
        "  { method = \"DELETE\", path = \"/profiles/{distinct_id}\" },\n], job",
    );
    assert!(err.contains("exactly one step, not 2"), "{err}");
    let err = refused("\"{distinct_id[]}\"", "[\"{distinct_id}\"]");
    assert!(
        err.contains("accounts.toml:10:") && err.contains("exactly one placeholder, a list"),
        "{err}"
    );
    let err = refused("compliance_type = \"GDPR\"", "compliance_type = \"{email}\"");
    assert!(
        err.contains("exactly one placeholder") && err.contains("{email}"),
        "{err}"
    );
    let err = refused("\"{distinct_id[]}\"", "[\"{distinct_id[]}\"]");
    assert!(err.contains("as a whole string"), "{err}");
    let err = refused("{distinct_id[]}", "{nope[]}");
    assert!(err.contains("`{nope[]}` names no declared field"), "{err}");
    let err = refused("path = \"/deletions\"", "path = \"/deletions/{distinct_id}\"");
    assert!(err.contains("takes no placeholder"), "{err}");
    let err = refused("max_batch = 2000, batch_window_ms = 500, ", "");
    assert!(
        err.contains("accounts.toml:10:") && err.contains("only for the step of a batched erase"),
        "{err}"
    );
}
