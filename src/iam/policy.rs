//! The IAM documents keyfront's roles need, derived from CloudFrontAccounts.
//!
//! The actions are exactly the calls the CloudFront adapter makes (`crate::cloudfront::sdk`);
//! the end-to-end test runs the operator under these documents with the emulator enforcing
//! them, and removes each action in turn to show it is needed. CloudFront's public-key and
//! key-group actions, and `ListDistributionsByKeyGroup`, take no resource ARN, so they are
//! granted on `*`; the distribution actions are scoped to the distributions the account grants.

use std::collections::{BTreeMap, BTreeSet};

use super::{Condition, OneOrMany, PolicyDocument, Principal, Statement};
use crate::api::{AssumeRole, CloudFrontAccount};

/// Actions on public keys and key groups (no resource ARN in CloudFront).
pub const KEY_ACTIONS: &[&str] = &[
    "cloudfront:CreatePublicKey",
    "cloudfront:GetPublicKey",
    "cloudfront:ListPublicKeys",
    "cloudfront:DeletePublicKey",
    "cloudfront:CreateKeyGroup",
    "cloudfront:GetKeyGroup",
    "cloudfront:ListKeyGroups",
    "cloudfront:UpdateKeyGroup",
    "cloudfront:DeleteKeyGroup",
    "cloudfront:ListDistributionsByKeyGroup",
];

/// Actions on a distribution, scoped to its ARN.
pub const DISTRIBUTION_ACTIONS: &[&str] = &[
    "cloudfront:GetDistribution",
    "cloudfront:GetDistributionConfig",
    "cloudfront:UpdateDistribution",
];

/// Every action keyfront calls CloudFront with.
pub fn cloudfront_actions() -> impl Iterator<Item = &'static str> {
    KEY_ACTIONS.iter().chain(DISTRIBUTION_ACTIONS).copied()
}

/// The partition (`aws`, `aws-cn`, `aws-us-gov`) of an ARN.
fn partition(arn: &str) -> Option<&str> {
    arn.split(':').nth(1).filter(|p| p.starts_with("aws"))
}

/// The account ID of an ARN.
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Where an account's CloudFront calls are made: the AWS account ID (`*` when unknown) and
/// the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub account_id: String,
    pub partition: String,
}

impl Target {
    /// The account's role decides, when it has one; else `own` (the operator's account, from a
    /// flag or the account's status), else `*`.
    pub fn of(account: &CloudFrontAccount, own: Option<&str>) -> Self {
        let role = account
            .spec
            .assume_role
            .as_ref()
            .map(|r| r.role_arn.as_str());
        let status = account
            .status
            .as_ref()
            .and_then(|s| s.account_id.as_deref());
        let account_id = role.and_then(arn_account).or(own).or(status).unwrap_or("*");
        Self {
            account_id: account_id.to_owned(),
            partition: role.and_then(partition).unwrap_or("aws").to_owned(),
        }
    }

    fn distribution_arn(&self, id: &str) -> String {
        format!(
            "arn:{}:cloudfront::{}:distribution/{id}",
            self.partition, self.account_id
        )
    }
}

/// The ARNs of the distributions `account` grants (`distribution/*` for a `*` grant).
pub fn distribution_arns(account: &CloudFrontAccount, target: &Target) -> BTreeSet<String> {
    account
        .spec
        .distributions
        .iter()
        .map(|grant| target.distribution_arn(&grant.id))
        .collect()
}

/// The statements that let a role do keyfront's CloudFront work on `distributions`.
fn cloudfront_statements(distributions: BTreeSet<String>) -> Vec<Statement> {
    let mut statements = vec![Statement::allow(
        "KeyfrontPublicKeysAndKeyGroups",
        KEY_ACTIONS,
        vec!["*".to_owned()],
    )];
    if !distributions.is_empty() {
        statements.push(Statement::allow(
            "KeyfrontGrantedDistributions",
            DISTRIBUTION_ACTIONS,
            distributions.into_iter().collect(),
        ));
    }
    statements
}

/// The permission policy of the role that makes `account`'s CloudFront calls: its
/// `assumeRole`, or keyfront's own role when it has none.
pub fn account_policy(account: &CloudFrontAccount, own_account_id: Option<&str>) -> PolicyDocument {
    let target = Target::of(account, own_account_id);
    PolicyDocument::new(cloudfront_statements(distribution_arns(account, &target)))
}

/// Every distribution, for a policy made without any CloudFrontAccount.
pub fn unscoped_policy(own_account_id: Option<&str>) -> PolicyDocument {
    let target = Target {
        account_id: own_account_id.unwrap_or("*").to_owned(),
        partition: "aws".to_owned(),
    };
    PolicyDocument::new(cloudfront_statements(BTreeSet::from([
        target.distribution_arn("*")
    ])))
}

/// keyfront's own role: CloudFront for the accounts without `assumeRole`, and `sts:AssumeRole`
/// on the roles of those with one.
pub fn operator_policy(
    accounts: &[CloudFrontAccount],
    own_account_id: Option<&str>,
) -> PolicyDocument {
    let mut distributions = BTreeSet::new();
    let mut direct = false;
    let mut roles = BTreeSet::new();
    for account in accounts {
        match &account.spec.assume_role {
            Some(role) => {
                roles.insert(role.role_arn.clone());
            }
            None => {
                direct = true;
                distributions.extend(distribution_arns(
                    account,
                    &Target::of(account, own_account_id),
                ));
            }
        }
    }
    let mut statements = if direct {
        cloudfront_statements(distributions)
    } else {
        Vec::new()
    };
    if !roles.is_empty() {
        statements.push(Statement::allow(
            "KeyfrontAssumeAccountRoles",
            &["sts:AssumeRole"],
            roles.into_iter().collect(),
        ));
    }
    PolicyDocument::new(statements)
}

fn trust_statement(
    principal: (&str, String),
    actions: &[&str],
    condition: Option<Condition>,
) -> PolicyDocument {
    let mut statement = Statement::allow("KeyfrontTrust", actions, Vec::new());
    statement.resource = None;
    statement.principal = Some(Principal::ByType(BTreeMap::from([(
        principal.0.to_owned(),
        OneOrMany::One(principal.1),
    )])));
    statement.condition = condition;
    PolicyDocument::new(vec![statement])
}

fn string_equals(pairs: &[(String, String)]) -> Condition {
    BTreeMap::from([(
        "StringEquals".to_owned(),
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), OneOrMany::One(v.clone())))
            .collect(),
    )])
}

/// IRSA: the cluster's OIDC provider may issue the role to keyfront's ServiceAccount.
pub fn irsa_trust(
    account_id: &str,
    oidc_issuer: &str,
    namespace: &str,
    service_account: &str,
) -> PolicyDocument {
    let issuer = oidc_issuer
        .trim_start_matches("https://")
        .trim_end_matches('/');
    trust_statement(
        (
            "Federated",
            format!("arn:aws:iam::{account_id}:oidc-provider/{issuer}"),
        ),
        &["sts:AssumeRoleWithWebIdentity"],
        Some(string_equals(&[
            (
                format!("{issuer}:sub"),
                format!("system:serviceaccount:{namespace}:{service_account}"),
            ),
            (format!("{issuer}:aud"), "sts.amazonaws.com".to_owned()),
        ])),
    )
}

/// EKS Pod Identity: the EKS agent may issue the role (bind it to the ServiceAccount with an
/// association).
pub fn pod_identity_trust() -> PolicyDocument {
    trust_statement(
        ("Service", "pods.eks.amazonaws.com".to_owned()),
        &["sts:AssumeRole", "sts:TagSession"],
        None,
    )
}

/// A CloudFrontAccount's `assumeRole`: keyfront's own role may assume it, with the external ID
/// when the account sets one.
pub fn cross_account_trust(operator_role_arn: &str, role: &AssumeRole) -> PolicyDocument {
    let condition = role
        .external_id
        .as_ref()
        .map(|id| string_equals(&[("sts:ExternalId".to_owned(), id.clone())]));
    trust_statement(
        ("AWS", operator_role_arn.to_owned()),
        &["sts:AssumeRole"],
        condition,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CloudFrontAccountSpec, DistributionGrant};

    fn account(role: Option<&str>, distributions: &[&str]) -> CloudFrontAccount {
        CloudFrontAccount::new(
            "media",
            CloudFrontAccountSpec {
                assume_role: role.map(|arn| AssumeRole {
                    role_arn: arn.to_owned(),
                    external_id: Some("ext-1".to_owned()),
                }),
                distributions: distributions
                    .iter()
                    .map(|id| DistributionGrant {
                        id: (*id).to_owned(),
                        allowed_namespaces: None,
                        default_cache_behavior: true,
                        path_patterns: Vec::new(),
                        allow_public_on_detach: false,
                    })
                    .collect(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn distribution_actions_are_scoped_to_the_granted_distributions_in_the_roles_account() {
        let policy = account_policy(
            &account(
                Some("arn:aws-cn:iam::210987654321:role/keyfront-media"),
                &["E2", "E1", "E2"],
            ),
            Some("111111111111"),
        );
        let json = serde_json::to_value(&policy).expect("json");
        assert_eq!(
            json["Statement"][1]["Resource"],
            serde_json::json!([
                "arn:aws-cn:cloudfront::210987654321:distribution/E1",
                "arn:aws-cn:cloudfront::210987654321:distribution/E2"
            ])
        );
        assert_eq!(json["Statement"][0]["Resource"], "*");
        assert_eq!(
            json["Statement"][1]["Action"],
            serde_json::json!(DISTRIBUTION_ACTIONS)
        );
    }

    #[test]
    fn an_account_without_distributions_gets_no_distribution_statement() {
        let policy = account_policy(&account(None, &[]), None);
        assert_eq!(policy.statement.len(), 1);
        let wildcard = account_policy(&account(None, &["*"]), Some("111111111111"));
        assert_eq!(
            wildcard.statement[1].resource,
            Some(OneOrMany::One(
                "arn:aws:cloudfront::111111111111:distribution/*".into()
            ))
        );
    }

    #[test]
    fn the_operator_may_assume_each_accounts_role_and_call_cloudfront_for_the_others() {
        let accounts = [
            account(Some("arn:aws:iam::210987654321:role/a"), &["E1"]),
            account(None, &["E9"]),
        ];
        let policy = operator_policy(&accounts, Some("111111111111"));
        let json = serde_json::to_value(&policy).expect("json");
        assert_eq!(
            json["Statement"][1]["Resource"],
            "arn:aws:cloudfront::111111111111:distribution/E9"
        );
        assert_eq!(json["Statement"][2]["Action"], "sts:AssumeRole");
        assert_eq!(
            json["Statement"][2]["Resource"],
            "arn:aws:iam::210987654321:role/a"
        );
    }

    #[test]
    fn trust_policies_name_the_principal_and_conditions() {
        let irsa = serde_json::to_value(irsa_trust(
            "111111111111",
            "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC/",
            "keyfront",
            "keyfront",
        ))
        .expect("json");
        assert_eq!(
            irsa["Statement"][0]["Principal"]["Federated"],
            "arn:aws:iam::111111111111:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
        );
        assert_eq!(
            irsa["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"],
            "system:serviceaccount:keyfront:keyfront"
        );
        let cross = serde_json::to_value(cross_account_trust(
            "arn:aws:iam::111111111111:role/keyfront",
            account(Some("arn:aws:iam::210987654321:role/a"), &[])
                .spec
                .assume_role
                .as_ref()
                .expect("role"),
        ))
        .expect("json");
        assert_eq!(
            cross["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-1"
        );
        assert!(cross["Statement"][0].get("Resource").is_none());
    }
}
