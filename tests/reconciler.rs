//! The reconciler end to end in-process: the Kubernetes API double and the CloudFront emulator
//! on one manual clock, checking DESIGN.md's invariants after every reconcile.
//!
//! - `lifecycle`: create, rotate, annotations, deletion, one behaviour per test.
//! - `runtime_errors`: what CloudFront or the cluster refuses becomes a condition and an Event.
//! - `budget`: through the call budget, distributions are read only when due.
//! - `adoption`: taking over a key group made by Terraform without breaking a signed URL.
//! - `keyring_loss`: the keyring lost mid-rotation; retiring keys keep their grace.
//! - `gitops_health`: Argo CD's health.lua on what keyfront writes (real Lua 5.1).
//! - `crash_matrix`: a crash after every side effect of create, rotate, revoke and delete.
//! - `state_machine`: random operation sequences (proptest) against a reference model.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

#[path = "reconciler/adoption.rs"]
mod adoption;
#[path = "reconciler/budget.rs"]
mod budget;
#[path = "reconciler/crash_matrix.rs"]
mod crash_matrix;
#[path = "reconciler/gitops_health.rs"]
mod gitops_health;
#[path = "reconciler/harness.rs"]
mod harness;
#[path = "reconciler/keyring_loss.rs"]
mod keyring_loss;
#[path = "reconciler/lifecycle.rs"]
mod lifecycle;
#[path = "reconciler/runtime_errors.rs"]
mod runtime_errors;
#[path = "reconciler/state_machine.rs"]
mod state_machine;
