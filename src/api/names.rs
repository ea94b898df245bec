//! Names derived from a `SigningKeyGroup` when the spec leaves them out.

/// The CloudFront key group name used when `spec.keyGroup.name` is absent.
pub fn default_key_group_name(namespace: &str, name: &str) -> String {
    format!("{namespace}-{name}")
}

/// The app-facing Secret name used when `spec.secret.name` is absent.
pub fn default_secret_name(name: &str) -> String {
    format!("{name}-cloudfront-key")
}
