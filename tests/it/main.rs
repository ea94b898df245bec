//! keyfront's integration tests, as one test binary (the `tests/it` layout): each former binary
//! linked the AWS SDK, kube and the emulator on its own, and linking them was most of CI's time
//! and disk. The modules mirror `src/`, one per concern:
//!
//! - `api`: the CRDs as an API server enforces them.
//! - `cloudfront`: the CloudFront port against the emulator and the SDK, and the call budget.
//! - `emulator`: the verifying edge accepts exactly what CloudFront would.
//! - `signer`: `keyfront sign` and `inspect`, and interop with the AWS SDKs' signers.
//! - `reconcile`: the pure plan, and whole reconciles on one manual clock.
//! - `operator`: the `keyfront run` binary end to end: lifecycle, tenancy, leader election, soak.
//! - `install`: the Helm chart and kubectl against the cluster.
//! - `dev`: `keyfront dev` as a newcomer runs it.
//! - `docs`: the Markdown's links resolve, the reference pages match the code, and every
//!   documented `keyfront` command parses.
//! - `readme`: the README's commands, run as a newcomer types them.
//! - `completions`: `keyfront completions` scripts the shells accept.
//! - `support`: what the end-to-end tests share (processes, ports, clients, waiting).
//!
//! Run one concern with a filter: `cargo test --test it operator::tenancy_e2e`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

mod api;
mod cloudfront;
mod completions;
mod dev;
mod docs;
mod emulator;
mod install;
mod operator;
mod readme;
mod reconcile;
mod signer;
mod support;
