//! Tenancy (no client required): which namespace may use which `CloudFrontAccount`, and which
//! distributions and cache behaviors in it, as pure functions of the account's spec and the
//! Namespace's name and labels.
//!
//! Owns: the meaning of a grant. Deny by default: a missing account, a namespace the account
//! does not admit, a distribution it does not list, a behavior it does not name, and an
//! unreadable selector all refuse. Must not: read anything a tenant can edit — only the
//! account (cluster-scoped, the cluster admin's) and Namespace labels decide.
//!
//! The reconciler's plan asks [`admit`] once per pass and then [`Grants::distribution`] and
//! [`DistributionAccess::behavior_allowed`] per entry; the refusal reasons are condition reasons.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt as _};

use crate::api::{
    CloudFrontAccountSpec, DistributionGrant, NamespaceFrom, NamespaceGrant,
    UngrantedNamespacePolicy,
};
use crate::cloudfront::BehaviorSelector;

/// The tenant's namespace as the grant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceFacts {
    pub name: String,
    /// The Namespace's UID: a namespace deleted and created again under the same name is
    /// another namespace, possibly another tenant's.
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Being deleted: nothing new can be created in it, and everything in it is going.
    pub terminating: bool,
}

/// Whether a namespace may use an account at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// No `CloudFrontAccount` of that name exists.
    AccountNotFound {
        account: String,
    },
    /// The account exists and does not admit the namespace; `why` says what it admits.
    NamespaceNotAllowed {
        account: String,
        namespace: String,
        why: String,
    },
    Admitted(Grants),
}

/// What an admitted namespace may attach to in one account.
///
/// An entry that names a distribution ID decides for that ID: a `*` entry applies only to IDs
/// that no entry names. Several entries may name one ID, each granting some behaviors to some
/// namespaces (one distribution split by path among teams); a namespace gets the union of the
/// entries that admit it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grants {
    pub account: String,
    /// Every distribution entry of the account, with whether it admits this namespace.
    entries: Vec<(DistributionGrant, bool)>,
    /// The account lets a namespace it grants no distribution create key groups.
    ungranted_allowed: bool,
}

/// One distribution as granted to a namespace: the entries for its ID that admit it.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionAccess {
    entries: Vec<DistributionGrant>,
}

fn covers(entry: &DistributionGrant, behavior: &BehaviorSelector) -> bool {
    match behavior {
        BehaviorSelector::Default => entry.default_cache_behavior,
        BehaviorSelector::PathPattern(pattern) => entry
            .path_patterns
            .iter()
            .any(|granted| granted == "*" || granted == pattern),
    }
}

impl DistributionAccess {
    /// Whether the namespace may make this behavior trust its key group.
    pub fn behavior_allowed(&self, behavior: &BehaviorSelector) -> bool {
        self.entries.iter().any(|e| covers(e, behavior))
    }
}

impl Grants {
    /// Nothing granted (the namespace is not admitted, or the account is gone).
    pub fn none(account: &str) -> Self {
        Self {
            account: account.to_owned(),
            entries: Vec::new(),
            ungranted_allowed: false,
        }
    }

    /// What a namespace the account no longer admits keeps: no grant, but the admin's word on
    /// which behaviors may become public when keyfront detaches from them.
    pub fn withdrawn(name: &str, account: &CloudFrontAccountSpec) -> Self {
        Self {
            account: name.to_owned(),
            entries: account
                .distributions
                .iter()
                .map(|d| (d.clone(), false))
                .collect(),
            ungranted_allowed: false,
        }
    }

    /// Whether the namespace may create anything in CloudFront: some distribution entry admits
    /// it (whoever attaches the key group there), or the account allows namespaces without one.
    pub fn may_create(&self) -> bool {
        self.ungranted_allowed || self.entries.iter().any(|(_, admitted)| *admitted)
    }

    /// The entries that decide for a distribution ID: those naming it, else the `*` ones.
    fn deciding(&self, id: &str) -> impl Iterator<Item = &(DistributionGrant, bool)> {
        let named = self.entries.iter().any(|(e, _)| e.id == id);
        let key = if named { id } else { "*" };
        self.entries.iter().filter(move |(e, _)| e.id == key)
    }

    /// The grant for a distribution ID, if any entry deciding for it admits the namespace.
    pub fn distribution(&self, id: &str) -> Option<DistributionAccess> {
        let entries: Vec<DistributionGrant> = self
            .deciding(id)
            .filter(|(_, admitted)| *admitted)
            .map(|(e, _)| e.clone())
            .collect();
        (!entries.is_empty()).then_some(DistributionAccess { entries })
    }

    /// Whether the cluster admin lets this behavior become public when keyfront detaches
    /// from it: the `allowPublicOnDetach` of the entries deciding for the ID that cover the
    /// behavior — those admitting the namespace if any do, else any of them, so a grant taken
    /// away (the entry narrowed to other namespaces) is still detached as the admin allows.
    pub fn public_on_detach(&self, id: &str, behavior: &BehaviorSelector) -> bool {
        let covering: Vec<&(DistributionGrant, bool)> = self
            .deciding(id)
            .filter(|(e, _)| covers(e, behavior))
            .collect();
        let own: Vec<&&(DistributionGrant, bool)> =
            covering.iter().filter(|(_, admitted)| *admitted).collect();
        if own.is_empty() {
            covering.iter().any(|(e, _)| e.allow_public_on_detach)
        } else {
            own.iter().any(|(e, _)| e.allow_public_on_detach)
        }
    }
}

/// Decides whether `namespace` may use the account `name` (whose spec is `account`, if it
/// exists), and what it may attach to there.
pub fn admit(
    name: &str,
    account: Option<&CloudFrontAccountSpec>,
    namespace: &NamespaceFacts,
) -> Admission {
    let Some(account) = account else {
        return Admission::AccountNotFound {
            account: name.to_owned(),
        };
    };
    if let Err(why) = admits(&account.allowed_namespaces, namespace) {
        return Admission::NamespaceNotAllowed {
            account: name.to_owned(),
            namespace: namespace.name.clone(),
            why,
        };
    }
    let entries = account
        .distributions
        .iter()
        .map(|d| {
            let admitted = d
                .allowed_namespaces
                .as_ref()
                .is_none_or(|narrower| admits(narrower, namespace).is_ok());
            (d.clone(), admitted)
        })
        .collect();
    Admission::Admitted(Grants {
        account: name.to_owned(),
        entries,
        ungranted_allowed: account.namespaces_without_distributions
            == UngrantedNamespacePolicy::Allow,
    })
}

/// Whether a [`NamespaceGrant`] covers the namespace; `Err` says what it covers instead.
fn admits(grant: &NamespaceGrant, namespace: &NamespaceFacts) -> Result<(), String> {
    match grant.from {
        NamespaceFrom::All => Ok(()),
        NamespaceFrom::Names => {
            if grant.names.contains(&namespace.name) {
                Ok(())
            } else if grant.names.is_empty() {
                Err("it admits no namespace".into())
            } else {
                Err(format!(
                    "it admits only namespaces {}",
                    grant.names.join(", ")
                ))
            }
        }
        NamespaceFrom::Selector => {
            let Some(selector) = &grant.selector else {
                return Err("its namespace selector is missing".into());
            };
            let parsed = Selector::try_from(selector.clone())
                .map_err(|e| format!("its namespace selector cannot be read ({e})"))?;
            if parsed.matches(&namespace.labels) {
                Ok(())
            } else {
                Err(format!(
                    "namespace labels do not match its selector {}",
                    describe(&parsed)
                ))
            }
        }
    }
}

fn describe(selector: &Selector) -> String {
    let text = selector.to_string();
    if text.is_empty() {
        "(everything)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceFacts {
        NamespaceFacts {
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            terminating: false,
        }
    }

    fn account(
        grant: NamespaceGrant,
        distributions: Vec<DistributionGrant>,
    ) -> CloudFrontAccountSpec {
        CloudFrontAccountSpec {
            allowed_namespaces: grant,
            distributions,
            ..CloudFrontAccountSpec::default()
        }
    }

    fn dist(id: &str, narrower: Option<NamespaceGrant>) -> DistributionGrant {
        DistributionGrant {
            id: id.into(),
            allowed_namespaces: narrower,
            default_cache_behavior: true,
            path_patterns: vec!["/video/*".into()],
            allow_public_on_detach: false,
        }
    }

    fn names(list: &[&str]) -> NamespaceGrant {
        NamespaceGrant {
            from: NamespaceFrom::Names,
            names: list.iter().map(|s| (*s).into()).collect(),
            selector: None,
        }
    }

    #[test]
    fn an_account_with_nothing_said_admits_no_namespace() {
        let spec = CloudFrontAccountSpec::default();
        let admission = admit("default", Some(&spec), &ns("team-a", &[]));
        assert!(
            matches!(&admission, Admission::NamespaceNotAllowed { why, .. } if why == "it admits no namespace"),
            "{admission:?}"
        );
        assert_eq!(
            admit("gone", None, &ns("team-a", &[])),
            Admission::AccountNotFound {
                account: "gone".into()
            }
        );
    }

    #[test]
    fn a_selector_admits_by_namespace_labels_and_an_unreadable_one_refuses() {
        let selector = |op: &str| NamespaceGrant {
            from: NamespaceFrom::Selector,
            selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "team".into(),
                    operator: op.into(),
                    values: Some(vec!["media".into()]),
                }]),
                match_labels: None,
            }),
            names: vec![],
        };
        let spec = account(selector("In"), vec![]);
        assert!(matches!(
            admit("a", Some(&spec), &ns("x", &[("team", "media")])),
            Admission::Admitted(_)
        ));
        assert!(matches!(
            admit("a", Some(&spec), &ns("x", &[("team", "ads")])),
            Admission::NamespaceNotAllowed { .. }
        ));
        let broken = account(selector("Sometimes"), vec![]);
        assert!(matches!(
            admit("a", Some(&broken), &ns("x", &[("team", "media")])),
            Admission::NamespaceNotAllowed { why, .. } if why.contains("cannot be read")
        ));
    }

    #[test]
    fn a_distribution_entry_can_narrow_but_never_widen_the_account() {
        let spec = account(
            names(&["team-a", "team-b"]),
            vec![dist("D1", Some(names(&["team-a"]))), dist("D2", None)],
        );
        let Admission::Admitted(a) = admit("acct", Some(&spec), &ns("team-a", &[])) else {
            panic!()
        };
        let Admission::Admitted(b) = admit("acct", Some(&spec), &ns("team-b", &[])) else {
            panic!()
        };
        assert!(a.distribution("D1").is_some() && a.distribution("D2").is_some());
        assert!(b.distribution("D1").is_none() && b.distribution("D2").is_some());
        assert!(a.distribution("D3").is_none());
        let widening = account(
            names(&["team-a"]),
            vec![dist("D1", Some(names(&["team-c"])))],
        );
        assert!(matches!(
            admit("acct", Some(&widening), &ns("team-c", &[])),
            Admission::NamespaceNotAllowed { .. }
        ));
    }

    fn split(id: &str, team: &str, pattern: &str, public: bool) -> DistributionGrant {
        DistributionGrant {
            id: id.into(),
            allowed_namespaces: Some(names(&[team])),
            default_cache_behavior: false,
            path_patterns: vec![pattern.into()],
            allow_public_on_detach: public,
        }
    }

    fn granted(spec: &CloudFrontAccountSpec, namespace: &str) -> Grants {
        match admit("acct", Some(spec), &ns(namespace, &[])) {
            Admission::Admitted(g) => g,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_entry_naming_an_id_decides_for_it_and_star_covers_only_unnamed_ids() {
        let mut star = dist("*", None);
        star.path_patterns = vec!["*".into()];
        let spec = account(
            names(&["team-a", "team-b"]),
            vec![dist("D1", Some(names(&["team-a"]))), star],
        );
        let b = granted(&spec, "team-b");
        assert!(
            b.distribution("D1").is_none(),
            "* must not widen D1's entry"
        );
        assert!(b.distribution("D2").is_some());
        assert!(granted(&spec, "team-a").distribution("D1").is_some());
    }

    #[test]
    fn one_distribution_splits_by_behavior_among_namespaces() {
        let spec = account(
            names(&["team-a", "team-b"]),
            vec![
                split("D1", "team-a", "/a/*", false),
                split("D1", "team-b", "/b/*", false),
                dist("*", None),
            ],
        );
        let a = granted(&spec, "team-a").distribution("D1").unwrap();
        let b = granted(&spec, "team-b").distribution("D1").unwrap();
        let path = |p: &str| BehaviorSelector::PathPattern(p.into());
        assert!(a.behavior_allowed(&path("/a/*")) && !a.behavior_allowed(&path("/b/*")));
        assert!(b.behavior_allowed(&path("/b/*")) && !b.behavior_allowed(&path("/a/*")));
        assert!(!a.behavior_allowed(&BehaviorSelector::Default));
    }

    #[test]
    fn a_withdrawn_grant_keeps_the_admins_word_on_public_detach_per_behavior() {
        let spec = account(
            names(&["team-a", "team-b"]),
            vec![
                split("D1", "nobody", "/a/*", true),
                split("D1", "team-b", "/b/*", false),
            ],
        );
        let a = granted(&spec, "team-a");
        let path = |p: &str| BehaviorSelector::PathPattern(p.into());
        assert!(a.distribution("D1").is_none());
        assert!(a.public_on_detach("D1", &path("/a/*")));
        assert!(!a.public_on_detach("D1", &path("/b/*")));
        assert!(!a.public_on_detach("D2", &path("/a/*")));
        let gone = Grants::withdrawn("acct", &spec);
        assert!(gone.distribution("D1").is_none());
        assert!(gone.public_on_detach("D1", &path("/a/*")));
    }

    #[test]
    fn behaviors_are_granted_by_exact_pattern_or_star() {
        let mut grant = dist("D1", None);
        let spec = account(names(&["t"]), vec![grant.clone()]);
        let Admission::Admitted(g) = admit("acct", Some(&spec), &ns("t", &[])) else {
            panic!()
        };
        let access = g.distribution("D1").unwrap();
        assert!(access.behavior_allowed(&BehaviorSelector::Default));
        assert!(access.behavior_allowed(&BehaviorSelector::PathPattern("/video/*".into())));
        assert!(!access.behavior_allowed(&BehaviorSelector::PathPattern("/video/a".into())));
        grant.default_cache_behavior = false;
        grant.path_patterns = vec!["*".into()];
        grant.id = "*".into();
        let spec = account(names(&["t"]), vec![grant]);
        let Admission::Admitted(g) = admit("acct", Some(&spec), &ns("t", &[])) else {
            panic!()
        };
        let access = g.distribution("EANY").unwrap();
        assert!(!access.behavior_allowed(&BehaviorSelector::Default));
        assert!(access.behavior_allowed(&BehaviorSelector::PathPattern("/x/*".into())));
    }
}
