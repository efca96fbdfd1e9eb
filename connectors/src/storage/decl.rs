//! `[storage]` of a connector file: where the files its records name live, validated into
//! [`StorageTemplates`] (secrets and addresses still `${VARIABLE}` templates).

use serde::Deserialize;
use toml::Spanned;

use crate::declaration::source::{DeclarationError, EnvTemplate, SourceFile, env_template};

/// `[storage]`: where a connector's files live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageDecl {
    /// `file:///ABSOLUTE/PATH` or `s3://BUCKET[/PREFIX]`, as `${VARIABLE}` references.
    pub url: Spanned<String>,
    /// An S3-compatible endpoint (MinIO, moto, …), as `${VARIABLE}` references.
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<String>,
    pub access_key_id: Option<Spanned<String>>,
    pub secret_access_key: Option<Spanned<String>>,
    /// Allow a plain-HTTP endpoint (local test servers only).
    #[serde(default)]
    pub allow_http: bool,
}

/// A connector's `[storage]`, validated; secrets still `${VARIABLE}` templates.
#[derive(Debug, Clone)]
pub struct StorageTemplates {
    pub url: EnvTemplate,
    pub endpoint: Option<EnvTemplate>,
    pub region: Option<String>,
    pub access_key_id: Option<EnvTemplate>,
    pub secret_access_key: Option<EnvTemplate>,
    pub allow_http: bool,
}

impl StorageDecl {
    /// Validates the templates (each must come from the environment).
    pub fn validate(
        &self,
        file: &SourceFile,
        errors: &mut Vec<DeclarationError>,
    ) -> Option<StorageTemplates> {
        let optional = |value: &Option<Spanned<String>>, errors: &mut Vec<DeclarationError>| {
            value.as_ref().and_then(|v| env_template(file, v, errors))
        };
        let endpoint = optional(&self.endpoint, errors);
        let access_key_id = optional(&self.access_key_id, errors);
        let secret_access_key = optional(&self.secret_access_key, errors);
        env_template(file, &self.url, errors).map(|url| StorageTemplates {
            url,
            endpoint,
            region: self.region.clone(),
            access_key_id,
            secret_access_key,
            allow_http: self.allow_http,
        })
    }
}
