//! keyfront: a Kubernetes operator that owns the whole life of CloudFront signing keys.
//!
//! The architecture, in one direction: **observe** (I/O) → **plan** (pure) → **execute** (I/O)
//! → **status** (pure). The pieces in this crate:
//!
//! - [`api`]: the `SigningKeyGroup` and `CloudFrontAccount` custom resources and their CRDs.
//! - [`tenancy`]: which namespace may use which account, distribution and cache behavior.
//! - [`cloudfront`]: the narrow CloudFront port and its AWS SDK adapter.
//! - [`emulator`]: one model of CloudFront's semantics, served in-process and over CloudFront's
//!   REST-XML wire protocol (`keyfront emulator`).
//! - [`iam`]: the IAM policies keyfront's roles need (`keyfront iam-policy`).
//! - [`account_check`]: `keyfront check-account`, the permissions and CloudFront behaviours
//!   keyfront relies on, checked on the user's own account.
//! - [`keys`]: key pair generation and the redacted private-key type.
//! - [`leader`]: leader election on a Lease, and whether this replica may write now (the
//!   reconciler asks it before each write; the runtime runs the election).
//! - [`reconcile`]: observe → plan → execute → status for one `SigningKeyGroup`.
//! - [`runtime`]: `keyfront run`: the kube-runtime controller around the reconciler.
//! - [`signer`]: CloudFront signed URLs and cookies from the mounted Secret.
//! - [`status`]: `keyfront status`, one screen on a `SigningKeyGroup`.
//! - [`dev`]: `keyfront dev`, the whole system in one process for a first look.
//! - [`clock`]: the time seam every decision takes `now` from.
//! - [`telemetry`]: logging setup shared by every subcommand.

pub mod account_check;
pub mod api;
pub mod cli;
pub mod clock;
pub mod cloudfront;
pub mod dev;
pub mod emulator;
pub mod iam;
pub mod keys;
pub mod leader;
pub mod reconcile;
pub mod runtime;
pub mod signer;
pub mod status;
pub mod telemetry;
pub mod tenancy;

/// Every CRD keyfront serves, as (file name under `crds/`, YAML), exactly as committed.
pub fn crds() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    use kube::CustomResourceExt as _;
    [api::SigningKeyGroup::crd(), api::CloudFrontAccount::crd()]
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            Ok((file, serde_yaml::to_string(&crd)?))
        })
        .collect()
}
