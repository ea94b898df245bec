//! The second controller: each `CloudFrontAccount`'s status (its AWS account, keys and key
//! groups used against quota, unclaimed keyrings), kept live as keyfront changes the account.
//!
//! The status is this controller's own output, so writing it does not wake the account again
//! (that would list the account a second time for nothing): a new account, a changed spec,
//! label or annotation does, besides every key or key group keyfront creates or deletes. Those come in
//! bursts (an object's first key, then its group), so they are gathered for
//! [`USAGE_DEBOUNCE`] into one look at the account.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::Shared;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};

use super::readiness::Readiness;
use super::{Operator, log_controller_error, synced_watch};
use crate::api::CloudFrontAccount;
use crate::cloudfront::CloudFrontAccounts;
use crate::leader::Leadership;
use crate::reconcile;

/// How long usage changes are gathered before the account is looked at.
pub const USAGE_DEBOUNCE: Duration = Duration::from_secs(1);

/// What of an account someone else changes: which account it is, its spec, labels and
/// annotations (`kubectl annotate` looks at it again), not the status this controller writes.
fn changed_by_someone(account: &CloudFrontAccount) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.metadata.uid.hash(&mut hasher);
    account.metadata.generation.hash(&mut hasher);
    account.metadata.labels.hash(&mut hasher);
    account.metadata.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs until `shutdown`, writing each account's status while this replica leads.
pub(super) fn controller<A: CloudFrontAccounts + 'static>(
    client: &kube::Client,
    operator: Arc<Operator<A>>,
    readiness: &Readiness,
    leadership: &Leadership,
    shutdown: Shared<impl Future<Output = ()> + Send + 'static>,
) -> impl Future<Output = ()> {
    let (store, stream) = synced_watch(
        Api::<CloudFrontAccount>::all(client.clone()),
        watcher::Config::default(),
        readiness,
        "CloudFrontAccount watch".to_owned(),
    );
    let usage_changed = operator
        .ctx
        .capacity
        .changes()
        .map(|account| ObjectRef::<CloudFrontAccount>::new(&account));
    Controller::for_stream(
        stream.predicate_filter(changed_by_someone, Default::default()),
        store,
    )
    .with_config(controller::Config::default().debounce(USAGE_DEBOUNCE))
    .reconcile_all_on(leadership.gained())
    .reconcile_on(usage_changed)
    .graceful_shutdown_on(shutdown)
    .run(
        |account, operator: Arc<Operator<A>>| async move {
            if !operator.ctx.leadership.is_leader() {
                return Ok(Action::await_change());
            }
            let name = account.name_any();
            let metrics = operator.metrics.clone();
            reconcile::account::reconcile_account(account, operator.ctx.clone(), |n| {
                metrics.set_unclaimed_keyrings(&name, n);
            })
            .await
            .map(Action::from)
        },
        |_, _, operator| Action::requeue(operator.ctx.config.resync.min(Duration::from_secs(300))),
        operator,
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            log_controller_error("CloudFrontAccount", &error);
        }
    })
}
