//! Where declarations come from and how their problems are told: a file's text with the
//! positions of its spans (`file:line:column: message`), `${VARIABLE}` templates resolved from the
//! environment only when a connector is built, and the name rules every declaration shares.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<Self, DeclarationError> {
        let text = std::fs::read_to_string(path).map_err(|err| DeclarationError {
            location: Location::file(path),
            message: format!("cannot read file: {err}"),
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }

    pub fn location(&self, span: Range<usize>) -> Location {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            file: self.path.clone(),
            line: Some((line, column)),
        }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> DeclarationError {
        DeclarationError {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Deserialises the whole file, reporting TOML and shape errors at their position.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, DeclarationError> {
        toml::from_str(&self.text).map_err(|err| {
            let message = err.message().trim().to_owned();
            match err.span() {
                Some(span) => self.error(span, message),
                None => DeclarationError {
                    location: Location::file(&self.path),
                    message,
                },
            }
        })
    }
}

/// Where a declaration problem is: a file, and a line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<(usize, usize)>,
}

impl Location {
    pub fn file(path: &Path) -> Self {
        Self {
            file: path.to_owned(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One problem in a declaration.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{location}: {message}")]
pub struct DeclarationError {
    pub location: Location,
    pub message: String,
}

/// Every problem found in a set of declarations.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub struct DeclarationErrors(pub Vec<DeclarationError>);

impl fmt::Display for DeclarationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "{count} problem{} in the declarations:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl From<DeclarationError> for DeclarationErrors {
    fn from(error: DeclarationError) -> Self {
        Self(vec![error])
    }
}

/// A `${VARIABLE}` template (a URL, a token), resolved from the environment when the connector is
/// built.
#[derive(Debug, Clone)]
pub struct EnvTemplate {
    pub template: String,
    pub location: Location,
}

impl EnvTemplate {
    /// Substitutes every `${NAME}` from `lookup`. Fails, naming the variable, when one is unset.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<SecretString, DeclarationError> {
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.error("unterminated `${` in a template"));
            };
            let name = &after[..end];
            match lookup(name) {
                Some(value) if !value.is_empty() => out.push_str(&value),
                _ => {
                    return Err(self.error(format!(
                        "environment variable {name} is not set (needed by `{}`)",
                        self.template
                    )));
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(SecretString::from(out))
    }

    fn error(&self, message: impl Into<String>) -> DeclarationError {
        DeclarationError {
            location: self.location.clone(),
            message: message.into(),
        }
    }
}

/// A `${VARIABLE}` template from a declaration, refused when it writes a secret or address in
/// the file.
pub fn env_template(
    file: &SourceFile,
    value: &Spanned<String>,
    errors: &mut Vec<DeclarationError>,
) -> Option<EnvTemplate> {
    if let Some(problem) = url_problem(value.get_ref()) {
        errors.push(file.error(value.span(), problem));
    }
    Some(EnvTemplate {
        template: value.get_ref().clone(),
        location: file.location(value.span()),
    })
}

/// Why a URL template is refused, if it is: credentials or a whole URL written in the file.
fn url_problem(url: &str) -> Option<String> {
    if !url.contains("${") {
        return Some(
            "this must come from the environment: write \"${SOME_VARIABLE}\" (secrets and addresses never live in declaration files)".into(),
        );
    }
    // A password written literally: `scheme://user:secret@…` outside any `${…}`.
    let literal: String = {
        let mut out = String::new();
        let mut rest = url;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => rest = &rest[start + end + 1..],
                None => return Some("unterminated `${` in a template".into()),
            }
        }
        out.push_str(rest);
        out
    };
    if let Some((_, after_scheme)) = literal.split_once("://") {
        let authority = after_scheme.split('/').next().unwrap_or("");
        if authority.contains('@') && authority.split('@').next().is_some_and(|u| u.contains(':')) {
            return Some("the url contains a literal password: take it from the environment".into());
        }
    }
    None
}

pub fn is_snake_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A column or table name that can be quoted safely: `[A-Za-z_][A-Za-z0-9_]*`, optionally
/// `schema.table`.
pub fn is_sql_identifier(name: &str) -> bool {
    let part_ok = |part: &str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && part.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| part_ok(p))
}

/// The `{name}` placeholders of a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// A `${VARIABLE}` template a kind requires (`url`, `base_url`): missing, it is reported at the
/// connector's `kind`, with an example variable.
pub fn required_env_template(
    file: &SourceFile,
    kind: &Spanned<String>,
    key: &str,
    example: &str,
    value: Option<&Spanned<String>>,
    errors: &mut Vec<DeclarationError>,
) -> Option<EnvTemplate> {
    match value {
        Some(value) => env_template(file, value, errors),
        None => {
            errors.push(file.error(
                kind.span(),
                format!("missing `{key}`: write {key} = \"${{{example}}}\" and set that variable"),
            ));
            None
        }
    }
}
