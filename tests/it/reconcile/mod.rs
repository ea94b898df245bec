//! The reconciler: the pure plan in table tests, and whole reconciles in-process against the
//! Kubernetes API double and the CloudFront emulator on one manual clock, checking DESIGN.md's
//! invariants after every reconcile.
//!
//! - `lifecycle`: create, rotate, annotations, deletion, one behaviour per test.
//! - `runtime_errors`: what CloudFront or the cluster refuses becomes a condition and an Event.
//! - `budget`: through the call budget, distributions are read only when due.
//! - `adoption`: taking over a key group made by Terraform without breaking a signed URL.
//! - `keyring_loss`: the keyring lost mid-rotation; retiring keys keep their grace.
//! - `gitops_health`: Argo CD's health.lua on what keyfront writes (real Lua 5.1).
//! - `crash_matrix`: a crash after every side effect of create, rotate, revoke and delete.
//! - `state_machine`: random operation sequences (proptest) against a reference model.
//! - `plan`: table tests of the pure plan, one per rule of the rotation protocol.
//! - `kstatus`: each Ready reason as GitOps tools (kstatus) read it.

mod adoption;
mod budget;
mod capacity;
mod crash_matrix;
mod gitops_health;
mod harness;
mod keyring_loss;
mod kstatus;
mod lifecycle;
mod plan;
mod runtime_errors;
mod state_machine;
