//! `[identities.NAME]` in `gateway.toml`: the identity kinds, validated into [`IdentityKinds`].

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::category::DataCategory;
use crate::declaration::source::{
    DeclarationError, DeclarationErrors, Location, SourceFile, is_snake_identifier,
};
use crate::identity::{IdentityKindSpec, IdentityKinds, Normaliser, ValueFormat};

/// The built-in value formats an identity kind can declare.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FormatDecl {
    #[default]
    Text,
    Email,
    Integer,
    Uuid,
}

/// `[identities.NAME]` in `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityKindDecl {
    pub description: Option<String>,
    /// Normalisers applied in order, e.g. `["trim", "lowercase"]`.
    #[serde(default = "default_normalisers")]
    pub normalise: Vec<Normaliser>,
    #[serde(default)]
    pub format: FormatDecl,
    /// A regular expression values must match (anchored), instead of `format`.
    pub pattern: Option<Spanned<String>>,
    /// Longest accepted value in bytes (default 256).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Whether callers may start a lookup from this kind (default true).
    #[serde(default = "yes")]
    pub input: bool,
    /// The fideslang data category of its values (default `user.contact.email` for
    /// `format = "email"`, `user.unique_id` otherwise): found identities of this kind are shown
    /// only to roles granted it.
    pub category: Option<Spanned<String>>,
}

fn default_normalisers() -> Vec<Normaliser> {
    vec![Normaliser::Trim]
}

fn default_max_length() -> usize {
    256
}

fn yes() -> bool {
    true
}

/// Validates the declared identity kinds into [`IdentityKinds`].
pub fn build_identity_kinds(
    file: &SourceFile,
    declared: &IndexMap<Spanned<String>, IdentityKindDecl>,
) -> Result<IdentityKinds, DeclarationErrors> {
    let mut kinds = IdentityKinds::default();
    let mut errors = Vec::new();
    if declared.is_empty() {
        errors.push(DeclarationError {
            location: Location::file(&file.path),
            message: "no identity kinds declared: add at least one `[identities.NAME]` table".into(),
        });
    }
    for (name, decl) in declared {
        if !is_snake_identifier(name.get_ref()) {
            errors.push(file.error(
                name.span(),
                format!(
                    "identity kind `{}` must be lower_snake_case (a-z, 0-9, _)",
                    name.get_ref()
                ),
            ));
            continue;
        }
        let format = match (&decl.pattern, decl.format) {
            (Some(pattern), _) => match regex::Regex::new(&format!("^(?:{})$", pattern.get_ref())) {
                Ok(re) => ValueFormat::Pattern(re),
                Err(err) => {
                    errors.push(file.error(pattern.span(), format!("invalid pattern: {err}")));
                    continue;
                }
            },
            (None, FormatDecl::Text) => ValueFormat::Text,
            (None, FormatDecl::Email) => ValueFormat::Email,
            (None, FormatDecl::Integer) => ValueFormat::Integer,
            (None, FormatDecl::Uuid) => ValueFormat::Uuid,
        };
        if decl.max_length == 0 {
            errors.push(file.error(name.span(), "max_length must be at least 1"));
            continue;
        }
        let category = match &decl.category {
            None => IdentityKindSpec::default_category(&format),
            Some(category) => match DataCategory::parse(category.get_ref()) {
                Ok(category) => category,
                Err(err) => {
                    errors.push(file.error(category.span(), err.to_string()));
                    continue;
                }
            },
        };
        kinds.push(IdentityKindSpec {
            name: name.get_ref().clone(),
            graphql_name: name.get_ref().to_uppercase(),
            description: decl.description.clone(),
            normalisers: decl.normalise.clone(),
            format,
            max_length: decl.max_length,
            accepted_as_input: decl.input,
            category,
        });
    }
    if errors.is_empty() {
        Ok(kinds)
    } else {
        Err(DeclarationErrors(errors))
    }
}
