//! Names and ownership markers keyfront derives from a `SigningKeyGroup`.
//!
//! CloudFront public keys and key groups take no tags, so ownership is written into `Name`
//! (public keys: derived from the object's UID and a serial) and `Comment` (both: a marker
//! naming the UID). A crash between "create" and "record the ID" is recovered by finding the
//! object again under these names.

/// Label on every Secret keyfront writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "keyfront";
/// Annotation on keyfront's Secrets naming the UID of the owning `SigningKeyGroup`; it stays
/// when a Secret is orphaned by `deletionPolicy: Retain`.
pub const OWNER_UID_ANNOTATION: &str = "keyfront.dev/owner-uid";
/// Label distinguishing the keyring Secret (never mounted by apps) from the app-facing one.
pub const ROLE_LABEL: &str = "keyfront.dev/role";
/// Finalizer guarding CloudFront cleanup.
pub const FINALIZER: &str = "keyfront.dev/cleanup";
/// `kubectl annotate skg/x keyfront.dev/rotate=<any new value>`: rotate now.
pub const ROTATE_ANNOTATION: &str = "keyfront.dev/rotate";
/// `kubectl annotate skg/x keyfront.dev/revoke-key=<public key id>`: remove that key now.
pub const REVOKE_ANNOTATION: &str = "keyfront.dev/revoke-key";

/// The prefix of every CloudFront `Comment` keyfront writes for the object with this UID.
pub fn comment_marker(uid: &str) -> String {
    format!("keyfront:{uid}")
}

/// A comment carrying the ownership marker, then the user's text if any. CloudFront allows
/// 128 characters; the schema keeps the user's part short enough.
pub fn owned_comment(uid: &str, user_comment: Option<&str>) -> String {
    match user_comment.filter(|c| !c.is_empty()) {
        Some(text) => format!("{} {text}", comment_marker(uid)),
        None => comment_marker(uid),
    }
}

/// Whether a CloudFront comment marks the object as owned by the `SigningKeyGroup` `uid`.
pub fn is_owned_comment(comment: Option<&str>, uid: &str) -> bool {
    comment.is_some_and(|c| {
        let marker = comment_marker(uid);
        c == marker || c.starts_with(&format!("{marker} "))
    })
}

/// The name prefix of every public key of the object with this UID.
pub fn public_key_prefix(uid: &str) -> String {
    format!("keyfront-{uid}-")
}

/// The deterministic CloudFront public key name of key `serial` (at most 56 characters).
pub fn public_key_name(uid: &str, serial: u32) -> String {
    format!("{}{serial}", public_key_prefix(uid))
}

/// The serial encoded in a public key name of this object, if the name is one.
pub fn serial_of_public_key(uid: &str, name: &str) -> Option<u32> {
    name.strip_prefix(&public_key_prefix(uid))?.parse().ok()
}

/// The name of the Secret holding keyfront's record of every key (never mounted by apps).
pub fn keyring_secret_name(uid: &str) -> String {
    format!("keyfront-keyring-{uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f0c2b8e-1f6a-4c61-9d6b-5b2b1f7f2f10";

    #[test]
    fn public_key_names_round_trip_and_fit_cloudfront() {
        let name = public_key_name(UID, 4_000_000_000);
        assert!(name.len() <= 128);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(serial_of_public_key(UID, &name), Some(4_000_000_000));
        assert_eq!(serial_of_public_key("other", &name), None);
    }

    #[test]
    fn ownership_needs_the_exact_uid_marker() {
        let comment = owned_comment(UID, Some("signed URLs for video"));
        assert!(comment.len() <= 128 - 80 + "signed URLs for video".len());
        assert!(is_owned_comment(Some(&comment), UID));
        assert!(is_owned_comment(Some(&comment_marker(UID)), UID));
        assert!(!is_owned_comment(
            Some(&format!("{}0", comment_marker(UID))),
            UID
        ));
        assert!(!is_owned_comment(Some("made by hand"), UID));
        assert!(!is_owned_comment(None, UID));
    }
}
