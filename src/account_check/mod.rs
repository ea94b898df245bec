//! `keyfront check-account`: a self-check a user runs with their own credentials before going
//! live.
//!
//! keyfront's promise of no refused signed URL rests on CloudFront behaviours that no test
//! here can observe on the real service; the emulator models them. This command checks them
//! where they matter, on the user's account:
//!
//! - **Permissions**: every CloudFront action keyfront needs. Reads (lists and gets) are
//!   called, which changes nothing; the write actions are checked by the live test, or
//!   reported as not checked.
//! - **`--live`** ([`live`]): on a distribution and cache behavior the user names, a throwaway
//!   key group with a test key is attached, a second key is added, and everything is removed
//!   again. Each assumption of the rotation protocol is reported as confirmed or contradicted,
//!   with the deployment times measured. What was made is deleted at the end, also after a
//!   failure or Ctrl-C; anything that could not be is named with the command that deletes it.
//!
//! Exit status: 0 when nothing was denied, contradicted or failed; 1 otherwise.

mod live;
mod report;

use std::time::Duration;

use anyhow::Context as _;

use crate::cloudfront::accounts::{SdkAccounts, SdkSettings};
use crate::cloudfront::sdk::SdkCloudFront;
use crate::cloudfront::{
    AccountAccess, BehaviorSelector, CloudFront, CloudFrontAccounts as _, CloudFrontError,
};
use report::{Report, Verdict};

/// CloudFront allows this many public keys per account.
const PUBLIC_KEY_QUOTA: usize = 10;

/// `keyfront check-account`.
#[derive(clap::Args, Debug)]
pub struct CheckAccountArgs {
    /// CloudFront (and STS) endpoint override, e.g. `keyfront emulator`'s address; else AWS,
    /// with the default credential chain.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_ENDPOINT", value_name = "URL")]
    cloudfront_endpoint: Option<String>,
    /// Assume this role first, as a CloudFrontAccount's `spec.assumeRole` does.
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
    /// The external ID that role's trust policy demands.
    #[arg(long, requires = "role_arn")]
    external_id: Option<String>,
    /// A distribution keyfront will manage: its reads are checked, and `--live` runs on it.
    #[arg(long, value_name = "ID")]
    distribution: Option<String>,
    /// The cache behavior `--live` uses, by its path pattern (default: the default cache
    /// behavior).
    #[arg(long, value_name = "PATTERN", requires = "distribution")]
    path_pattern: Option<String>,
    /// Make changes: create a throwaway key group and two test keys, attach the group to the
    /// behavior, add a key, then remove it all; checks the write permissions and measures
    /// what keyfront assumes about deployments. Takes several deployments (10–30 minutes on
    /// AWS). Uses 2 of the account's 10 public keys while it runs.
    #[arg(long, requires = "distribution")]
    live: bool,
    /// Let `--live` attach to a behavior that trusts no key group yet: while the test runs,
    /// that behavior serves only signed requests.
    #[arg(long, requires = "live")]
    allow_restricting: bool,
    /// How often to look while a distribution deploys.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    poll: Duration,
    /// Give up waiting for one deployment after this long (the test then cleans up).
    #[arg(long, default_value = "30m", value_parser = parse_duration_arg)]
    deploy_timeout: Duration,
}

fn parse_duration_arg(value: &str) -> Result<Duration, String> {
    crate::api::parse_cli_duration(value).map_err(|e| e.to_string())
}

/// Runs `keyfront check-account`; `Ok(false)` when something was denied, contradicted or
/// failed.
pub async fn run(args: CheckAccountArgs) -> anyhow::Result<bool> {
    let mut report = Report::stdout();
    let endpoint = args.cloudfront_endpoint.as_deref().unwrap_or("AWS");
    report.section(&format!(
        "keyfront check-account: CloudFront at {endpoint}, with the default credential chain{}",
        args.role_arn
            .as_deref()
            .map(|r| format!(", as role {r}"))
            .unwrap_or_default()
    ));
    let accounts = SdkAccounts::from_environment(SdkSettings {
        endpoint: args.cloudfront_endpoint.clone(),
        sts_endpoint: args.cloudfront_endpoint.clone(),
        ..SdkSettings::default()
    })
    .await;
    let access = AccountAccess {
        account: "check-account".into(),
        assume_role: args
            .role_arn
            .as_ref()
            .map(|role_arn| crate::api::AssumeRole {
                role_arn: role_arn.clone(),
                external_id: args.external_id.clone(),
            }),
        namespace: "check-account".into(),
        aws_account_id: None,
    };
    match accounts.caller_account(&access).await {
        Ok(account) => report.allowed(
            "sts:GetCallerIdentity",
            &format!(
                "AWS account {}",
                account.as_deref().unwrap_or("(not given)")
            ),
        ),
        Err(e) => {
            report.error("sts:GetCallerIdentity", &e);
            report.summary();
            return Ok(false);
        }
    }
    let cloudfront = accounts
        .connect(&access)
        .await
        .context("cannot reach CloudFront")?;
    let used = check_permissions(&cloudfront, &args, &mut report).await;
    if args.live {
        let distribution = args.distribution.clone().unwrap_or_default();
        let behavior = match &args.path_pattern {
            Some(pattern) => BehaviorSelector::PathPattern(pattern.clone()),
            None => BehaviorSelector::Default,
        };
        let free = used.map(|used| PUBLIC_KEY_QUOTA.saturating_sub(used));
        if free.is_some_and(|free| free < 2) {
            report.add(
                Verdict::Failed,
                "live test",
                &format!(
                    "not run: it needs 2 free public keys and the account has {} of {PUBLIC_KEY_QUOTA} in use; keyfront's own rotations need free keys too",
                    used.unwrap_or_default()
                ),
            );
        } else {
            let test = live::LiveTest {
                cloudfront: &cloudfront,
                distribution,
                behavior,
                allow_restricting: args.allow_restricting,
                poll: args.poll,
                deploy_timeout: args.deploy_timeout,
            };
            test.run(&mut report).await;
        }
    } else {
        report.add(
            Verdict::NotChecked,
            "write actions and deployment behaviour",
            "cloudfront:CreatePublicKey, DeletePublicKey, CreateKeyGroup, UpdateKeyGroup, DeleteKeyGroup and UpdateDistribution are checked only by changing something: run again with --distribution ID --live",
        );
    }
    Ok(report.summary())
}

/// Calls every read keyfront makes; returns how many public keys the account holds.
async fn check_permissions(
    cloudfront: &SdkCloudFront,
    args: &CheckAccountArgs,
    report: &mut Report,
) -> Option<usize> {
    report.section("permissions keyfront needs (reads are called; nothing is changed)");
    let keys = match cloudfront.list_public_keys().await {
        Ok(keys) => {
            report.allowed(
                "cloudfront:ListPublicKeys",
                &format!(
                    "{} of the account's {PUBLIC_KEY_QUOTA} public keys are in use",
                    keys.len()
                ),
            );
            Some(keys)
        }
        Err(e) => {
            report.error("cloudfront:ListPublicKeys", &e);
            None
        }
    };
    match keys.as_ref().and_then(|k| k.first()) {
        Some(key) => read(
            report,
            "cloudfront:GetPublicKey",
            cloudfront.get_public_key(&key.id).await,
        ),
        None => report.add(
            Verdict::NotChecked,
            "cloudfront:GetPublicKey",
            "no public key to read (--live checks it)",
        ),
    }
    let groups = match cloudfront.list_key_groups().await {
        Ok(groups) => {
            report.allowed(
                "cloudfront:ListKeyGroups",
                &format!("{} key groups (CloudFront allows 10)", groups.len()),
            );
            groups
        }
        Err(e) => {
            report.error("cloudfront:ListKeyGroups", &e);
            Vec::new()
        }
    };
    match groups.first() {
        Some(group) => {
            read(
                report,
                "cloudfront:GetKeyGroup",
                cloudfront.get_key_group(&group.id).await,
            );
            read(
                report,
                "cloudfront:ListDistributionsByKeyGroup",
                cloudfront.list_distributions_by_key_group(&group.id).await,
            );
        }
        None => {
            for action in [
                "cloudfront:GetKeyGroup",
                "cloudfront:ListDistributionsByKeyGroup",
            ] {
                report.add(
                    Verdict::NotChecked,
                    action,
                    "no key group to read (--live checks it)",
                );
            }
        }
    }
    match &args.distribution {
        Some(id) => {
            match cloudfront.get_distribution(id).await {
                Ok(d) => report.allowed(
                    "cloudfront:GetDistribution",
                    &format!(
                        "{id}: {:?}, {} cache behaviors",
                        d.value.status,
                        d.value.behaviors.len()
                    ),
                ),
                Err(e) => report.error("cloudfront:GetDistribution", &e),
            }
            read(
                report,
                "cloudfront:GetDistributionConfig",
                cloudfront.read_distribution_config(id).await,
            );
        }
        None => {
            for action in [
                "cloudfront:GetDistribution",
                "cloudfront:GetDistributionConfig",
            ] {
                report.add(
                    Verdict::NotChecked,
                    action,
                    "name a distribution keyfront will manage with --distribution ID",
                );
            }
        }
    }
    keys.map(|k| k.len())
}

/// Reports a read that only needs to succeed.
fn read<T>(report: &mut Report, action: &str, result: Result<T, CloudFrontError>) {
    match result {
        Ok(_) => report.allowed(action, "allowed"),
        Err(e) => report.error(action, &e),
    }
}
