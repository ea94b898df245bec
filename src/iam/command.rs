//! `keyfront iam-policy`: prints the IAM documents keyfront's roles need, as JSON a user pipes
//! to `aws iam create-policy --policy-document file://…` (or Terraform's `aws_iam_policy`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kube::Api;
use serde::Deserialize as _;

use super::PolicyDocument;
use super::policy;
use crate::api::CloudFrontAccount;

/// Which trust policy to print instead of a permission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Trust {
    /// IAM Roles for Service Accounts: the cluster's OIDC provider issues the role to
    /// keyfront's ServiceAccount (needs --oidc-issuer and --aws-account-id).
    Irsa,
    /// EKS Pod Identity (bind the role to the ServiceAccount with a pod identity association).
    PodIdentity,
    /// The role of each account's `assumeRole`, trusting keyfront's own role
    /// (--operator-role-arn), with the account's externalId.
    CrossAccount,
}

#[derive(Args, Debug)]
pub struct IamPolicyArgs {
    /// The CloudFrontAccount(s) to derive the policy from (repeatable), read from the cluster,
    /// or from --file when given. Without --account or --file: a policy for every distribution.
    #[arg(long = "account", value_name = "NAME")]
    accounts: Vec<String>,
    /// Read CloudFrontAccounts from this YAML file (one or more documents) instead of the
    /// cluster.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// The AWS account keyfront's own credentials act in (default: the account's
    /// status.accountId). Accounts with assumeRole use their role's account.
    #[arg(long, value_name = "ID", value_parser = parse_account_id)]
    aws_account_id: Option<String>,
    /// Print the policy of keyfront's own role: CloudFront for the accounts without assumeRole,
    /// and sts:AssumeRole on the roles of those with one.
    #[arg(long, conflicts_with = "trust")]
    operator: bool,
    /// Print a trust policy instead of a permission policy.
    #[arg(long, value_enum)]
    trust: Option<Trust>,
    /// The cluster's OIDC issuer URL, for --trust irsa (`aws eks describe-cluster --query
    /// cluster.identity.oidc.issuer`).
    #[arg(long, value_name = "URL")]
    oidc_issuer: Option<String>,
    /// keyfront's ServiceAccount as NAMESPACE/NAME, for --trust irsa.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        default_value = "keyfront/keyfront"
    )]
    service_account: String,
    /// keyfront's own role, for --trust cross-account.
    #[arg(long, value_name = "ARN")]
    operator_role_arn: Option<String>,
}

fn parse_account_id(value: &str) -> Result<String, String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not an AWS account ID: it has 12 digits, like 123456789012"
        ))
    }
}

/// Runs `keyfront iam-policy`.
pub async fn run(args: IamPolicyArgs) -> anyhow::Result<()> {
    let own = args.aws_account_id.as_deref();
    let output = match args.trust {
        Some(Trust::PodIdentity) => print(&policy::pod_identity_trust())?,
        Some(Trust::Irsa) => {
            let issuer = args
                .oidc_issuer
                .as_deref()
                .context("--trust irsa needs --oidc-issuer (the cluster's OIDC issuer URL)")?;
            let account_id = own.context(
                "--trust irsa needs --aws-account-id (the account of the cluster's OIDC provider)",
            )?;
            let (namespace, name) = args.service_account.split_once('/').with_context(|| {
                format!(
                    "--service-account {:?} is not NAMESPACE/NAME",
                    args.service_account
                )
            })?;
            print(&policy::irsa_trust(account_id, issuer, namespace, name))?
        }
        Some(Trust::CrossAccount) => {
            let operator_role = args.operator_role_arn.as_deref().context(
                "--trust cross-account needs --operator-role-arn (the role keyfront itself runs as)",
            )?;
            let accounts = load(&args).await?;
            let with_roles: Vec<(String, PolicyDocument)> = accounts
                .iter()
                .filter_map(|a| {
                    let role = a.spec.assume_role.as_ref()?;
                    Some((name(a), policy::cross_account_trust(operator_role, role)))
                })
                .collect();
            if with_roles.is_empty() {
                bail!(
                    "none of the selected CloudFrontAccounts has spec.assumeRole: their calls use keyfront's own role, which needs --trust irsa or --trust pod-identity"
                );
            }
            per_account(with_roles)?
        }
        None => {
            let accounts = load(&args).await?;
            if args.operator {
                print(&policy::operator_policy(&accounts, own))?
            } else if accounts.is_empty() {
                eprintln!(
                    "keyfront: no CloudFrontAccount given (--account or --file): this policy allows every distribution; name the accounts to scope it to the ones they grant"
                );
                print(&policy::unscoped_policy(own))?
            } else {
                per_account(
                    accounts
                        .iter()
                        .map(|a| (name(a), policy::account_policy(a, own)))
                        .collect(),
                )?
            }
        }
    };
    println!("{output}");
    Ok(())
}

fn name(account: &CloudFrontAccount) -> String {
    account.metadata.name.clone().unwrap_or_default()
}

fn print(document: &PolicyDocument) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(document)?)
}

/// One document alone, or several keyed by account name.
fn per_account(documents: Vec<(String, PolicyDocument)>) -> anyhow::Result<String> {
    match documents.as_slice() {
        [(_, only)] => print(only),
        _ => Ok(serde_json::to_string_pretty(
            &documents
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )?),
    }
}

/// The CloudFrontAccounts the arguments select: from --file (all of them, or those named),
/// else those named from the cluster.
async fn load(args: &IamPolicyArgs) -> anyhow::Result<Vec<CloudFrontAccount>> {
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let mut accounts = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("CloudFrontAccount") {
                continue;
            }
            let account: CloudFrontAccount = serde_yaml::from_value(value).with_context(|| {
                format!(
                    "{} holds a CloudFrontAccount keyfront cannot read",
                    file.display()
                )
            })?;
            accounts.push(account);
        }
        if !args.accounts.is_empty() {
            accounts.retain(|a| args.accounts.contains(&name(a)));
        }
        for wanted in &args.accounts {
            if !accounts.iter().any(|a| &name(a) == wanted) {
                bail!(
                    "{} has no CloudFrontAccount named {wanted:?}",
                    file.display()
                );
            }
        }
        if accounts.is_empty() {
            bail!("{} holds no CloudFrontAccount", file.display());
        }
        return Ok(accounts);
    }
    if args.accounts.is_empty() {
        return Ok(Vec::new());
    }
    let client = kube::Client::try_default().await.context(
        "cannot reach a cluster to read the CloudFrontAccounts (set KUBECONFIG, or pass --file)",
    )?;
    let api: Api<CloudFrontAccount> = Api::all(client);
    let mut accounts = Vec::new();
    for wanted in &args.accounts {
        accounts.push(
            api.get(wanted)
                .await
                .with_context(|| format!("cannot read CloudFrontAccount {wanted:?}"))?,
        );
    }
    Ok(accounts)
}
