//! Counting the account for the gate: CloudFront's lists (every owner's keys and groups) and
//! this cluster's SigningKeyGroups of the account, which say whose keys are whose and what each
//! admitted object is committed to.

use std::time::Duration;

use kube::{Api, ResourceExt as _};

use super::{Count, Limited, Share, Slot, steady_need};
use crate::api::{CloudFrontAccountSpec, RotationSpec, SigningKeyGroup, parse_duration};
use crate::cloudfront::{CloudFront, KeyGroup, PublicKey};
use crate::reconcile::error::kube_error;
use crate::reconcile::observed::Subject;
use crate::reconcile::{Context, Error, KubeOperation, names};

/// What one SigningKeyGroup of the account holds now, and what it is committed to.
struct Holding {
    namespace: String,
    keys: u32,
    groups: u32,
    need: u32,
    /// It makes a key group of its own (it does not adopt one).
    makes_group: bool,
}

impl Holding {
    fn admitted(&self) -> bool {
        self.keys > 0
    }

    /// Keys it is committed to: what it holds, or its steady need if more, once admitted.
    fn committed(&self) -> u32 {
        if self.admitted() {
            self.keys.max(self.need)
        } else {
            self.keys
        }
    }

    /// Key groups it is committed to: an admitted object whose group is not made yet (that
    /// comes on the reconcile after its first key) counts as holding it.
    fn committed_groups(&self) -> u32 {
        self.groups
            .max(u32::from(self.admitted() && self.makes_group))
    }
}

/// The account as [`super::Gate::enter`] needs it for `slot`: one `ListPublicKeys`, one
/// `ListKeyGroups` for a first key that makes a group, and this cluster's objects of the
/// account (`account_name`) for what they are committed to and each namespace's share.
pub async fn count<A, C: CloudFront>(
    ctx: &Context<A>,
    cloudfront: &C,
    subject: &Subject,
    account_name: &str,
    account: Option<&CloudFrontAccountSpec>,
    slot: Slot,
) -> Result<Count, Error> {
    let keys = cloudfront
        .list_public_keys()
        .await
        .map_err(Error::cloudfront("ListPublicKeys"))?;
    let first = matches!(slot, Slot::FirstKey { .. });
    let groups = match slot {
        Slot::FirstKey { group: true, .. } => Some(
            cloudfront
                .list_key_groups()
                .await
                .map_err(Error::cloudfront("ListKeyGroups"))?,
        ),
        _ => None,
    };
    let quotas = account.map(|a| a.quotas.clone()).unwrap_or_default();
    let holdings = if first || account.is_some_and(limits_namespaces) {
        holdings(
            ctx,
            account_name,
            &keys,
            groups.as_deref().unwrap_or_default(),
        )
        .await?
    } else {
        Vec::new()
    };
    let used = u32::try_from(keys.len()).unwrap_or(u32::MAX);
    let foreign = keys
        .iter()
        .filter(|k| !names::made_by_keyfront(k.comment.as_deref()))
        .count();
    let extra: u32 = holdings.iter().map(|h| h.committed() - h.keys).sum();
    let extra_groups: u32 = holdings
        .iter()
        .map(|h| h.committed_groups() - h.groups)
        .sum();
    Ok(Count {
        used,
        foreign: u32::try_from(foreign).unwrap_or(u32::MAX),
        committed: used.saturating_add(extra),
        quota: quotas.public_keys,
        groups: groups.map(|g| {
            let used = u32::try_from(g.len()).unwrap_or(u32::MAX);
            (used.saturating_add(extra_groups), quotas.key_groups)
        }),
        namespace: account
            .map(|a| shares(a, &subject.namespace, &holdings))
            .unwrap_or_default(),
    })
}

fn limits_namespaces(account: &CloudFrontAccountSpec) -> bool {
    account.public_keys_per_namespace().is_some()
        || account.key_groups_per_namespace().is_some()
        || account.objects_per_namespace().is_some()
}

/// The namespace's shares the account limits, from its objects' holdings.
fn shares(account: &CloudFrontAccountSpec, namespace: &str, holdings: &[Holding]) -> Vec<Share> {
    let own: Vec<&Holding> = holdings
        .iter()
        .filter(|h| h.namespace == namespace)
        .collect();
    let sum = |f: fn(&Holding) -> u32| own.iter().map(|h| f(h)).sum::<u32>();
    let share = |what, used, committed, (limit, defaulted)| Share {
        name: namespace.to_owned(),
        what,
        used,
        committed,
        limit,
        defaulted,
    };
    let mut shares = Vec::new();
    if let Some(limit) = account.public_keys_per_namespace() {
        shares.push(share(
            Limited::PublicKeys,
            sum(|h| h.keys),
            sum(Holding::committed),
            limit,
        ));
    }
    if let Some(limit) = account.key_groups_per_namespace() {
        let groups = sum(Holding::committed_groups);
        shares.push(share(Limited::KeyGroups, groups, groups, limit));
    }
    if let Some(limit) = account.objects_per_namespace() {
        let objects = sum(|h| u32::from(h.admitted()));
        shares.push(share(Limited::Objects, objects, objects, (limit, false)));
    }
    shares
}

/// This cluster's SigningKeyGroups of the account, each with the keys and groups it holds
/// (by the owner each key's name and each group's comment carries) and its steady need.
async fn holdings<A>(
    ctx: &Context<A>,
    account_name: &str,
    keys: &[PublicKey],
    groups: &[KeyGroup],
) -> Result<Vec<Holding>, Error> {
    let objects: Api<SigningKeyGroup> = Api::all(ctx.client.clone());
    let listed = objects
        .list(&Default::default())
        .await
        .map_err(kube_error(KubeOperation::ReadObject))?;
    Ok(listed
        .items
        .iter()
        .filter(|o| o.spec.account_ref.name == account_name)
        .map(|o| {
            let namespace = o.namespace().unwrap_or_default();
            let owner = names::owner_token(&ctx.config.cluster_id, &namespace, &o.name_any());
            let prefix = names::public_key_prefix(&owner);
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            Holding {
                keys: count(keys.iter().filter(|k| k.name.starts_with(&prefix)).count()),
                groups: count(
                    groups
                        .iter()
                        .filter(|g| names::is_owned_comment(g.config.comment.as_deref(), &owner))
                        .count(),
                ),
                need: need_of(&o.spec.rotation),
                makes_group: !o.spec.key_group.adopt,
                namespace,
            }
        })
        .collect())
}

/// The steady need of an object's rotation as its spec states it (4, the most, if a duration
/// does not parse: the API server should have refused it).
fn need_of(rotation: &RotationSpec) -> u32 {
    let parse = |value: &str| parse_duration(value).ok();
    let durations = (
        parse(&rotation.interval),
        parse(&rotation.max_signed_url_lifetime),
        parse(&rotation.secret_refresh_allowance),
        parse(&rotation.min_propagation_wait),
    );
    match durations {
        (Some(interval), Some(lifetime), Some(refresh), Some(propagation)) => steady_need(
            interval,
            lifetime.saturating_add(refresh).saturating_add(propagation),
        ),
        _ => steady_need(Duration::ZERO, Duration::ZERO),
    }
}
