//! The HTTP connector's pure parts: path encoding, rate-limit headers, backoff, conversions.

use super::*;
use crate::value::Value;

#[test]
fn path_values_keep_unreserved_characters_and_stay_in_their_segment() {
    assert_eq!(encode_segment("ab-12_c.d~e"), "ab-12_c.d~e");
    assert_eq!(encode_segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
    assert_eq!(encode_segment("alice+x@example.com"), "alice%2Bx%40example.com");
    assert!(has_dot_segment(&format!(
        "users/{}/tickets",
        encode_segment("..")
    )));
    assert!(has_dot_segment("users/%2e%2E/tickets"));
    assert!(has_dot_segment("users/./x"));
    assert!(!has_dot_segment("users/a..b/tickets"));
}

#[test]
fn rate_limit_headers_are_read_in_seconds_or_dates() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", "2".parse().unwrap());
    assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(2)));
    let mut headers = HeaderMap::new();
    let soon = (Utc::now() + chrono::Duration::seconds(3)).to_rfc2822();
    headers.insert("retry-after", soon.parse().unwrap());
    assert!(rate_limit_wait(&headers).is_some_and(|d| d <= Duration::from_secs(3)));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-ratelimit-reset",
        (Utc::now().timestamp() + 5).to_string().parse().unwrap(),
    );
    assert!(
        rate_limit_wait(&headers)
            .is_some_and(|d| d <= Duration::from_secs(5) && d >= Duration::from_secs(4))
    );
    assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
}

#[test]
fn backoff_grows_and_is_bounded() {
    for attempt in 0..20 {
        assert!(backoff(attempt) <= FIRST_BACKOFF * 1024);
    }
}

#[test]
fn values_convert_to_declared_types() {
    assert_eq!(
        convert(&serde_json::json!("42"), FieldType::Bigint),
        Some(Value::Int(42))
    );
    assert_eq!(
        convert(&serde_json::json!(1_700_000_000), FieldType::Timestamp),
        Some(Value::String("2023-11-14T22:13:20Z".into()))
    );
    assert_eq!(convert(&serde_json::json!({"a": 1}), FieldType::Bigint), None);
    assert_eq!(convert(&Json::Null, FieldType::Bool), Some(Value::Null));
}

#[test]
fn many_values_are_joined_listed_and_kept_in_their_segment() {
    let values: Vec<IdentityValue> = ["42", "a/b c"].iter().filter_map(|t| IdentityValue::probe(t)).collect();
    let asked: Vec<&IdentityValue> = values.iter().collect();
    let strings = ValueList::new(&asked, FieldType::String);
    assert_eq!(strings.fill("ids={values}", false), "ids=42,a/b c");
    assert_eq!(strings.fill("{values:json}", false), r#"["42","a/b c"]"#);
    assert_eq!(strings.fill("/users/{values}/x", true), "/users/42,a%2Fb%20c/x");
    assert_eq!(
        strings.fill_json(&serde_json::json!({"ids": "{values}", "note": "n={values}"})),
        serde_json::json!({"ids": ["42", "a/b c"], "note": "n=42,a/b c"})
    );
    // An integer lookup field lists numbers; a value that is not one stays a string.
    let numbers = ValueList::new(&asked, FieldType::Bigint);
    assert_eq!(numbers.fill("{values:json}", false), r#"[42,"a/b c"]"#);
}
