//! Errors from CloudFront, classified once for every caller.

/// What kind of failure CloudFront reported, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The public key, key group or distribution does not exist.
    NotFound,
    /// The `IfMatch` ETag is stale: someone wrote in between. Re-read and retry.
    PreconditionFailed,
    /// A public key or key group with that name exists already.
    AlreadyExists,
    /// A public key is in a key group, or a key group is trusted by a distribution.
    InUse,
    /// A CloudFront quota was reached.
    QuotaExceeded,
    /// The request rate was too high.
    Throttled,
    /// The credentials may not perform this operation.
    AccessDenied,
    /// CloudFront rejected the request as malformed or inconsistent.
    Invalid,
    /// A server-side or network failure that may pass.
    Transient,
    /// keyfront withheld the write: this replica no longer knows it leads (it could not renew
    /// the leader Lease within the renew deadline). Nothing was sent.
    NotLeader,
}

impl ErrorKind {
    /// Classifies a CloudFront error code (the `<Code>` of its XML error).
    pub fn from_code(code: &str, http_status: Option<u16>) -> Self {
        match code {
            "NoSuchPublicKey"
            | "NoSuchResource"
            | "NoSuchDistribution"
            | "EntityNotFound"
            | "NoSuchCacheBehavior" => Self::NotFound,
            "PreconditionFailed" => Self::PreconditionFailed,
            "PublicKeyAlreadyExists" | "KeyGroupAlreadyExists" | "DistributionAlreadyExists" => {
                Self::AlreadyExists
            }
            "PublicKeyInUse" | "ResourceInUse" => Self::InUse,
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequests"
            | "TooManyRequestsException"
            | "SlowDown" => Self::Throttled,
            "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "UnrecognizedClientException" => Self::AccessDenied,
            "ServiceUnavailable" | "InternalError" | "InternalFailure" | "RequestTimeout" => {
                Self::Transient
            }
            c if c.starts_with("TooMany") || c == "EntityLimitExceeded" => Self::QuotaExceeded,
            _ => match http_status {
                Some(s) if s >= 500 => Self::Transient,
                Some(429) => Self::Throttled,
                Some(404) => Self::NotFound,
                _ => Self::Invalid,
            },
        }
    }

    /// A short, stable label for conditions, backoff decisions and metric labels.
    pub fn category(self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::AlreadyExists => "AlreadyExists",
            Self::InUse => "InUse",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::Throttled => "Throttled",
            Self::AccessDenied => "AccessDenied",
            Self::Invalid => "Invalid",
            Self::Transient => "Transient",
            Self::NotLeader => "NotLeader",
        }
    }
}

/// A failed CloudFront call: the operation, its classification, and CloudFront's own code and
/// message (public identifiers only; keyfront never sends private key material to CloudFront).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CloudFront {operation} failed: {code}: {}", self.explained())]
pub struct CloudFrontError {
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// CloudFront's error code, e.g. `PublicKeyInUse`, or a transport label such as `Timeout`.
    pub code: String,
    pub message: String,
}

impl CloudFrontError {
    pub fn new(
        operation: &'static str,
        kind: ErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Builds an error from a CloudFront error code, classifying it.
    pub fn from_code(
        operation: &'static str,
        code: &str,
        message: impl Into<String>,
        http_status: Option<u16>,
    ) -> Self {
        Self::new(
            operation,
            ErrorKind::from_code(code, http_status),
            code,
            message,
        )
    }

    /// The action and resource AWS says were denied, read from its AccessDenied message
    /// (`… is not authorized to perform: ACTION on resource: RESOURCE …`). That is what IAM
    /// checked, which need not be the operation keyfront was doing (an update reads the config
    /// first, a separate action).
    pub fn denied(&self) -> Option<(&str, &str)> {
        if self.kind != ErrorKind::AccessDenied {
            return None;
        }
        let (_, rest) = self.message.split_once("not authorized to perform: ")?;
        let (action, rest) = rest.split_once(" on resource: ")?;
        let resource = rest.split_whitespace().next()?;
        Some((action, resource))
    }

    /// The message, with what to do for a denied action.
    fn explained(&self) -> String {
        match self.denied() {
            Some((action, resource)) => format!(
                "keyfront's AWS identity may not call {action} on {resource}: allow it in that role's IAM policy (`keyfront iam-policy` prints the policy keyfront needs). AWS said: {}",
                self.message
            ),
            None => self.message.clone(),
        }
    }

    /// Whether trying again (after re-reading, for `PreconditionFailed`) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::PreconditionFailed
        )
    }

    pub fn category(&self) -> &'static str {
        self.kind.category()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_cloudfront_error_codes() {
        let cases = [
            ("NoSuchPublicKey", ErrorKind::NotFound),
            ("NoSuchResource", ErrorKind::NotFound),
            ("NoSuchDistribution", ErrorKind::NotFound),
            ("PreconditionFailed", ErrorKind::PreconditionFailed),
            ("PublicKeyAlreadyExists", ErrorKind::AlreadyExists),
            ("KeyGroupAlreadyExists", ErrorKind::AlreadyExists),
            ("PublicKeyInUse", ErrorKind::InUse),
            ("ResourceInUse", ErrorKind::InUse),
            ("TooManyPublicKeys", ErrorKind::QuotaExceeded),
            ("TooManyKeyGroups", ErrorKind::QuotaExceeded),
            ("TooManyPublicKeysInKeyGroup", ErrorKind::QuotaExceeded),
            (
                "TooManyKeyGroupsAssociatedToDistribution",
                ErrorKind::QuotaExceeded,
            ),
            ("Throttling", ErrorKind::Throttled),
            ("AccessDenied", ErrorKind::AccessDenied),
            ("InvalidIfMatchVersion", ErrorKind::Invalid),
            ("TrustedKeyGroupDoesNotExist", ErrorKind::Invalid),
            ("InvalidArgument", ErrorKind::Invalid),
            ("ServiceUnavailable", ErrorKind::Transient),
        ];
        for (code, kind) in cases {
            assert_eq!(ErrorKind::from_code(code, Some(400)), kind, "{code}");
        }
        assert_eq!(
            ErrorKind::from_code("Whatever", Some(502)),
            ErrorKind::Transient
        );
    }

    #[test]
    fn only_transient_throttled_and_stale_etag_errors_are_retryable() {
        let retryable = |kind| CloudFrontError::new("Op", kind, "C", "m").is_retryable();
        assert!(retryable(ErrorKind::Throttled));
        assert!(retryable(ErrorKind::Transient));
        assert!(retryable(ErrorKind::PreconditionFailed));
        assert!(!retryable(ErrorKind::InUse));
        assert!(!retryable(ErrorKind::QuotaExceeded));
        assert!(!retryable(ErrorKind::AccessDenied));
        assert!(!retryable(ErrorKind::Invalid));
        assert!(!retryable(ErrorKind::NotFound));
    }

    #[test]
    fn a_denial_names_the_action_and_resource_aws_checked() {
        let denied = CloudFrontError::new(
            "UpdateDistribution",
            ErrorKind::AccessDenied,
            "AccessDenied",
            "User: arn:aws:sts::1:assumed-role/k/s is not authorized to perform: cloudfront:GetDistributionConfig on resource: arn:aws:cloudfront::1:distribution/E1 because no identity-based policy allows the cloudfront:GetDistributionConfig action",
        );
        assert_eq!(
            denied.denied(),
            Some((
                "cloudfront:GetDistributionConfig",
                "arn:aws:cloudfront::1:distribution/E1"
            ))
        );
        let text = denied.to_string();
        assert!(
            text.starts_with("CloudFront UpdateDistribution failed: AccessDenied: keyfront's AWS identity may not call cloudfront:GetDistributionConfig on arn:aws:cloudfront::1:distribution/E1: allow it"),
            "{text}"
        );
        assert!(text.contains("keyfront iam-policy"), "{text}");
        let other =
            CloudFrontError::new("Op", ErrorKind::AccessDenied, "AccessDenied", "Forbidden");
        assert_eq!(other.denied(), None);
        assert_eq!(
            other.to_string(),
            "CloudFront Op failed: AccessDenied: Forbidden"
        );
    }
}
