//! keyfront: a Kubernetes operator that owns the whole life of CloudFront signing keys.
//!
//! The architecture, in one direction: **observe** (I/O) → **plan** (pure) → **execute** (I/O)
//! → **status** (pure). The pieces in this crate:
//!
//! - [`api`]: the `SigningKeyGroup` custom resource and its generated CRD.
//! - [`cloudfront`]: the narrow CloudFront port and its AWS SDK adapter.
//! - [`emulator`]: one model of CloudFront's semantics, served in-process and over CloudFront's
//!   REST-XML wire protocol (`keyfront emulator`).
//! - [`keys`]: key pair generation and the redacted private-key type.
//! - [`reconcile`]: observe → plan → execute → status for one `SigningKeyGroup`.
//! - [`runtime`]: `keyfront run`: the kube-runtime controller around the reconciler.
//! - [`signer`]: CloudFront signed URLs and cookies from the mounted Secret.
//! - [`clock`]: the time seam every decision takes `now` from.
//! - [`telemetry`]: logging setup shared by every subcommand.

pub mod api;
pub mod clock;
pub mod cloudfront;
pub mod emulator;
pub mod keys;
pub mod reconcile;
pub mod runtime;
pub mod signer;
pub mod telemetry;

/// The CRD as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt as _;
    serde_yaml::to_string(&api::SigningKeyGroup::crd())
}
