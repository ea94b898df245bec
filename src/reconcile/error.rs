//! The reconciler's errors: which request failed, whether waiting may help, and a short
//! category used as the `Ready` reason, in logs and for backoff. Messages never carry key
//! material: Secrets are written with their data, but errors are built from status codes and
//! names only.

use super::keyring::KeyringError;
use super::reasons;
use crate::cloudfront::{CloudFrontError, ErrorKind};

/// Which Kubernetes request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeOperation {
    ReadObject,
    ReadAccount,
    ReadNamespace,
    PatchObject,
    WriteStatus,
    ReadSecret,
    WriteSecret,
    DeleteSecret,
    ReadConfigMap,
    WriteConfigMap,
}

impl std::fmt::Display for KubeOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ReadObject => "reading the SigningKeyGroup",
            Self::ReadAccount => "reading its CloudFrontAccount",
            Self::ReadNamespace => "reading its Namespace",
            Self::PatchObject => "updating the SigningKeyGroup's finalizers",
            Self::WriteStatus => "writing a status",
            Self::ReadSecret => "reading a Secret",
            Self::WriteSecret => "writing a Secret",
            Self::DeleteSecret => "deleting a Secret",
            Self::ReadConfigMap => "reading the key group ID's ConfigMap",
            Self::WriteConfigMap => "writing the key group ID's ConfigMap",
        })
    }
}

/// Why a reconcile stopped early. Messages never carry key material: Secrets are written with
/// their data but errors are built from status codes and names only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CloudFront {operation} failed")]
    CloudFront {
        operation: &'static str,
        #[source]
        source: CloudFrontError,
    },
    #[error("Kubernetes request failed while {operation}")]
    Kube {
        operation: KubeOperation,
        #[source]
        source: kube::Error,
    },
    #[error("the keyring Secret exists but is not marked as this SigningKeyGroup's")]
    KeyringNotOwned,
    #[error("the keyring Secret cannot be read")]
    Keyring(#[source] KeyringError),
    #[error("key generation failed")]
    Key(#[source] crate::keys::KeyError),
    #[error("key {serial} is not in the keyring")]
    UnknownKey { serial: u32 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    pub(crate) fn cloudfront(operation: &'static str) -> impl FnOnce(CloudFrontError) -> Self {
        move |source| Self::CloudFront { operation, source }
    }

    /// A write lost a race (stale ETag or resourceVersion): plan again at once.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::CloudFront { source, .. } => source.kind == ErrorKind::PreconditionFailed,
            Self::Kube {
                source: kube::Error::Api(s),
                ..
            } => s.code == 409,
            _ => false,
        }
    }

    /// Whether waiting may help (as opposed to a fault someone must fix).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::CloudFront { source, .. } => source.is_retryable(),
            Self::Kube { .. } | Self::Key(_) | Self::Internal(_) => true,
            Self::KeyringNotOwned | Self::Keyring(_) | Self::UnknownKey { .. } => false,
        }
    }

    /// Short label used as the `Ready` reason and in logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::CloudFront { source, .. } => match source.kind {
                ErrorKind::NotFound => reasons::CLOUDFRONT_NOT_FOUND,
                ErrorKind::PreconditionFailed => reasons::CLOUDFRONT_CONFLICT,
                ErrorKind::AlreadyExists => reasons::CLOUDFRONT_ALREADY_EXISTS,
                ErrorKind::InUse => reasons::CLOUDFRONT_IN_USE,
                ErrorKind::QuotaExceeded => reasons::CLOUDFRONT_QUOTA_EXCEEDED,
                ErrorKind::Throttled => reasons::CLOUDFRONT_THROTTLED,
                ErrorKind::AccessDenied => reasons::CLOUDFRONT_ACCESS_DENIED,
                ErrorKind::Invalid => reasons::CLOUDFRONT_REJECTED,
                ErrorKind::Transient => reasons::CLOUDFRONT_UNAVAILABLE,
                ErrorKind::NotLeader => reasons::LEADERSHIP_LOST,
            },
            Self::Kube { .. } => reasons::KUBERNETES_ERROR,
            Self::KeyringNotOwned | Self::Keyring(_) | Self::UnknownKey { .. } => {
                reasons::KEYRING_INVALID
            }
            Self::Key(_) => reasons::KEY_GENERATION_FAILED,
            Self::Internal(_) => reasons::INTERNAL_ERROR,
        }
    }

    /// The message with its causes, for conditions and Events.
    /// A cause that restates the message (CloudFront's errors name their operation too)
    /// replaces it instead of repeating it.
    pub fn detail(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let said = cause.to_string();
            if said.starts_with(&text) {
                text = said;
            } else {
                text.push_str(": ");
                text.push_str(&said);
            }
            source = cause.source();
        }
        text
    }
}

/// Maps a failed Kubernetes request to the reconciler's error, naming the request.
pub(super) fn kube_error(operation: KubeOperation) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { operation, source }
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
