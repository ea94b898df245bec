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

use crate::api::{CloudFrontAccountSpec, DistributionGrant, NamespaceFrom, NamespaceGrant};
use crate::cloudfront::BehaviorSelector;

/// The tenant's namespace as the grant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceFacts {
    pub name: String,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Grants {
    pub account: String,
    /// The account's distribution entries that also admit this namespace.
    entries: Vec<DistributionGrant>,
}

/// One distribution as granted to a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionAccess {
    pub default_cache_behavior: bool,
    pub path_patterns: Vec<String>,
    pub allow_public_on_detach: bool,
}

impl DistributionAccess {
    /// Whether the namespace may make this behavior trust its key group.
    pub fn behavior_allowed(&self, behavior: &BehaviorSelector) -> bool {
        match behavior {
            BehaviorSelector::Default => self.default_cache_behavior,
            BehaviorSelector::PathPattern(pattern) => self
                .path_patterns
                .iter()
                .any(|granted| granted == "*" || granted == pattern),
        }
    }
}

impl Grants {
    /// Nothing granted (the namespace is not admitted, or the account is gone).
    pub fn none(account: &str) -> Self {
        Self {
            account: account.to_owned(),
            entries: Vec::new(),
        }
    }

    /// The grant for a distribution ID: its own entry, else a `*` entry, else none.
    pub fn distribution(&self, id: &str) -> Option<DistributionAccess> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.id == id)
            .or_else(|| self.entries.iter().find(|e| e.id == "*"))?;
        Some(DistributionAccess {
            default_cache_behavior: entry.default_cache_behavior,
            path_patterns: entry.path_patterns.clone(),
            allow_public_on_detach: entry.allow_public_on_detach,
        })
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
        .filter(|d| {
            d.allowed_namespaces
                .as_ref()
                .is_none_or(|narrower| admits(narrower, namespace).is_ok())
        })
        .cloned()
        .collect();
    Admission::Admitted(Grants {
        account: name.to_owned(),
        entries,
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
