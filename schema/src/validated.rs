//! Validation verdicts kept with a parsed document, so a query text seen before is not validated
//! again on every request.
//!
//! async-graphql validates a document against the schema on every request, also when it is
//! handed a parsed one. What validation decides depends on the document, the operation run and
//! the variables' values — but of the values only through their types: a `String` or `ID`
//! variable accepts any string. So a verdict is kept under the operation name and a *signature*
//! of the variables: a string given for a variable declared `String`/`ID` (nullable or not) is
//! written as its type only, every other value in full. Two requests with the same signature are
//! validated alike; a request with a new signature (another enum value, a number, an input
//! object) is validated in full. A signature is kept only as its SHA-256, since it may spell
//! out variable values. Only successes are kept, at most [`KEPT_PER_DOCUMENT`] per
//! document (and documents are bounded by the parsed-document cache), so memory stays bounded.
//!
//! The [`CachedValidation`] schema extension answers async-graphql's validation step from the
//! verdict when the request carries a [`ValidationKey`] that holds one, and keeps the verdict of a
//! validation that passed.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::parser::types::{BaseType, DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{ServerError, ValidationResult, Value, Variables};

/// Verdicts kept per document (operation and variable signatures).
pub const KEPT_PER_DOCUMENT: usize = 16;
/// Longer signatures (large variable values) are not kept: such requests are validated each time.
const LONGEST_SIGNATURE: usize = 1024;

/// The validations one document passed, by operation name and variable signature.
#[derive(Default)]
pub struct Verdicts(Mutex<Vec<(Option<String>, String, ValidationResult)>>);

impl Verdicts {
    fn get(&self, operation: Option<&str>, signature: &str) -> Option<ValidationResult> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .find(|(o, s, _)| o.as_deref() == operation && s == signature)
            .map(|(_, _, verdict)| *verdict)
    }

    fn keep(&self, operation: Option<String>, signature: String, verdict: ValidationResult) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_PER_DOCUMENT && !kept.iter().any(|(o, s, _)| *o == operation && *s == signature)
        {
            kept.push((operation, signature, verdict));
        }
    }
}

/// Where a request's validation verdict is kept: put in the request's data.
pub struct ValidationKey {
    verdicts: Arc<crate::PreparedQuery>,
    operation: Option<String>,
    signature: String,
}

impl ValidationKey {
    /// The key of `operation` of `prepared` run with `variables`, or `None` when such a
    /// request is not to be kept (no such operation, a signature too long).
    pub fn new(
        prepared: Arc<crate::PreparedQuery>,
        operation: Option<&str>,
        variables: &Variables,
    ) -> Option<Self> {
        let definition = selected(&prepared.document, operation)?;
        // Kept as its SHA-256: a signature can hold variable values (an input object with an
        // identity in it), and those must not outlive the request in a cache.
        let signature = hex_sha256(&signature(definition, variables)?);
        Some(Self {
            verdicts: prepared,
            operation: operation.map(str::to_owned),
            signature,
        })
    }
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The operation async-graphql will run: the named one, or the only one.
fn selected<'a>(document: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(&operation.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The variables' values as validation sees them: every declared variable, a string for a
/// `String`/`ID` variable as `s`, any other value in full.
fn signature(operation: &OperationDefinition, variables: &Variables) -> Option<String> {
    use std::fmt::Write;
    let mut signature = String::new();
    for definition in &operation.variable_definitions {
        let name = &definition.node.name.node;
        let declared = &definition.node.var_type.node;
        let _ = write!(signature, "{}=", name.as_str());
        match variables.get(name) {
            None => signature.push('-'),
            Some(Value::String(_)) if matches!(&declared.base, BaseType::Named(named) if named == "String" || named == "ID") =>
            {
                signature.push('s');
            }
            Some(value) => {
                // `Value`'s Display is GraphQL's literal syntax: distinct values print distinctly.
                let _ = write!(signature, "v{value}");
            }
        }
        signature.push(';');
        if signature.len() > LONGEST_SIGNATURE {
            return None;
        }
    }
    Some(signature)
}

/// The schema extension that answers validation from kept verdicts.
pub struct CachedValidation;

impl ExtensionFactory for CachedValidation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CachedValidationExtension)
    }
}

struct CachedValidationExtension;

#[async_trait::async_trait]
impl Extension for CachedValidationExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(key) = ctx.data_opt::<ValidationKey>() else {
            return next.run(ctx).await;
        };
        let verdicts = &key.verdicts.validated;
        if let Some(verdict) = verdicts.get(key.operation.as_deref(), &key.signature) {
            return Ok(verdict);
        }
        let verdict = next.run(ctx).await?;
        verdicts.keep(key.operation.clone(), key.signature.clone(), verdict);
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature_of(query: &str, variables: serde_json::Value) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let operation = selected(&document, None).expect("one operation");
        signature(operation, &Variables::from_json(variables))
    }

    #[test]
    fn strings_of_string_variables_are_one_signature_everything_else_is_kept_whole() {
        let query = "query($id: String!, $kind: IdentityKind!, $n: Int) { a }";
        let one = signature_of(
            query,
            serde_json::json!({"id": "1001", "kind": "USER_ID", "n": 3}),
        );
        let two = signature_of(
            query,
            serde_json::json!({"id": "2002", "kind": "USER_ID", "n": 3}),
        );
        assert_eq!(one, two);
        assert_ne!(
            one,
            signature_of(query, serde_json::json!({"id": "1001", "kind": "EMAIL", "n": 3}))
        );
        assert_ne!(
            one,
            signature_of(
                query,
                serde_json::json!({"id": "1001", "kind": "USER_ID", "n": 4})
            )
        );
        // A number where a string is declared is not a string: validated on its own.
        assert_ne!(
            one,
            signature_of(query, serde_json::json!({"id": 1001, "kind": "USER_ID", "n": 3}))
        );
        // Missing and null differ.
        assert_ne!(
            signature_of(query, serde_json::json!({"id": "1", "kind": "USER_ID"})),
            signature_of(
                query,
                serde_json::json!({"id": "1", "kind": "USER_ID", "n": null})
            )
        );
    }

    #[test]
    fn a_list_of_strings_is_kept_whole() {
        let query = "query($ids: [String!]!) { a }";
        assert_ne!(
            signature_of(query, serde_json::json!({"ids": ["1"]})),
            signature_of(query, serde_json::json!({"ids": ["2"]}))
        );
    }

    #[test]
    fn long_values_are_not_kept() {
        let query = "query($v: JSON) { a }";
        let long = "x".repeat(2 * LONGEST_SIGNATURE);
        assert_eq!(signature_of(query, serde_json::json!({"v": {"k": long}})), None);
    }
}
