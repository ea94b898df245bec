//! Names derived from a `SigningKeyGroup` when the spec leaves them out.

/// The CloudFront key group name used when `spec.keyGroup.name` is absent: `_` cannot occur in
/// a namespace or object name, so no two objects share it (`team`/`a-x` and `team-a`/`x`
/// would under `-`).
pub fn default_key_group_name(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}")
}

/// The default before keyfront 0.2 (`<namespace>-<name>`): objects whose keyring predates the
/// recorded name keep it, since a key group is never renamed.
pub fn legacy_default_key_group_name(namespace: &str, name: &str) -> String {
    format!("{namespace}-{name}")
}

/// The app-facing Secret name used when `spec.secret.name` is absent.
pub fn default_secret_name(name: &str) -> String {
    format!("{name}-cloudfront-key")
}
