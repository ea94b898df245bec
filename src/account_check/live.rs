//! `keyfront check-account --live`: the CloudFront behaviours the rotation protocol assumes,
//! tried on the user's own distribution with throwaway objects.
//!
//! 1. Two test public keys (ECDSA P-256; their private halves never leave memory and are
//!    never used) and a key group holding the first.
//! 2. The group is added to the named behavior, beside the groups it trusts already (a
//!    behavior that trusts none would start refusing unsigned requests, so it is used only
//!    with `--allow-restricting`).
//! 3. The second key is added to the group, as a rotation publishes its next key.
//! 4. Clean-up: the group leaves the behavior, the change deploys, the group and the keys are
//!    deleted. It runs after any failure and after Ctrl-C; anything left is named, with the
//!    command that deletes it.
//!
//! The assumptions checked, as the reconciler relies on them: a write to the distribution or
//! to a key group it trusts puts the distribution `InProgress`; once `Deployed`,
//! `ActiveTrustedKeyGroups` lists the group with exactly its keys; `ListDistributionsByKeyGroup`
//! finds a distribution that trusts the group.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::report::{Report, Verdict};
use crate::api::KeyAlgorithm;
use crate::cloudfront::sdk::SdkCloudFront;
use crate::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, CloudFrontError, DeploymentStatus, Distribution,
    ErrorKind, KeyGroupConfig, NewPublicKey, Tagged,
};

/// CloudFront allows at most this many key groups on one cache behavior.
const MAX_GROUPS_PER_BEHAVIOR: usize = 4;

/// The test, as the command line set it up.
pub struct LiveTest<'a> {
    pub cloudfront: &'a SdkCloudFront,
    pub distribution: String,
    pub behavior: BehaviorSelector,
    pub allow_restricting: bool,
    pub poll: Duration,
    pub deploy_timeout: Duration,
}

/// What the test made, so that clean-up removes exactly that.
#[derive(Default)]
struct Made {
    public_keys: Vec<String>,
    key_group: Option<String>,
    attached: bool,
}

/// Why the test stopped early (already reported).
struct Stopped(String);

impl LiveTest<'_> {
    /// Runs the test and always cleans up.
    pub async fn run(&self, report: &mut Report) {
        report.section(&format!(
            "live test on the {} of distribution {} (throwaway key group and keys; removed at the end)",
            self.behavior, self.distribution
        ));
        let mut made = Made::default();
        let outcome = tokio::select! {
            outcome = self.steps(report, &mut made) => outcome,
            _ = tokio::signal::ctrl_c() => Err(Stopped("interrupted (Ctrl-C)".into())),
        };
        if let Err(Stopped(why)) = outcome {
            report.add(Verdict::Failed, "live test", &format!("stopped: {why}"));
        }
        report.section("clean-up");
        self.clean_up(report, made).await;
    }

    async fn steps(&self, report: &mut Report, made: &mut Made) -> Result<(), Stopped> {
        let id = self.distribution.as_str();
        let before = self
            .deployed(report, "the distribution to be Deployed before the test")
            .await?;
        let existing = before
            .value
            .behavior(&self.behavior)
            .ok_or_else(|| Stopped(format!("distribution {id} has no {}", self.behavior)))?
            .trusted_key_groups
            .clone();
        if existing.is_empty() && !self.allow_restricting {
            return Err(Stopped(format!(
                "the {} of {id} trusts no key group: adding one would make it refuse unsigned requests while the test runs. Choose a behavior that already requires signed URLs, or pass --allow-restricting",
                self.behavior
            )));
        }
        if existing.len() >= MAX_GROUPS_PER_BEHAVIOR {
            return Err(Stopped(format!(
                "the {} of {id} already trusts {MAX_GROUPS_PER_BEHAVIOR} key groups, CloudFront's limit: choose another behavior with --path-pattern",
                self.behavior
            )));
        }
        let stamp = Timestamp::now().as_second();
        let first = self.create_key(report, made, stamp, 1).await?;
        let group = call(
            report,
            "cloudfront:CreateKeyGroup",
            self.cloudfront
                .create_key_group(&KeyGroupConfig {
                    name: format!("keyfront-check-{stamp}"),
                    comment: Some("keyfront check-account: temporary; safe to delete".into()),
                    items: vec![first.clone()],
                })
                .await,
        )?;
        let kg = group.value.id.clone();
        made.key_group = Some(kg.clone());
        call(
            report,
            "cloudfront:GetKeyGroup",
            self.cloudfront.get_key_group(&kg).await,
        )?;

        // Attach, as keyfront does: read, then write the behavior's trust with the group added.
        let current = call(
            report,
            "cloudfront:GetDistribution",
            self.cloudfront.get_distribution(id).await,
        )?;
        let mut trusted = current
            .value
            .behavior(&self.behavior)
            .map(|b| b.trusted_key_groups.clone())
            .unwrap_or_default();
        trusted.push(kg.clone());
        let written = call(
            report,
            "cloudfront:UpdateDistribution",
            self.cloudfront
                .set_trusted_key_groups(
                    id,
                    &[BehaviorTrust {
                        behavior: self.behavior.clone(),
                        trusted_key_groups: trusted,
                    }],
                    &current.etag,
                )
                .await,
        )?;
        made.attached = true;
        let attached_at = Instant::now();
        self.assume(
            report,
            written.value.status == DeploymentStatus::InProgress,
            "attaching a key group starts a deployment (InProgress right after the write)",
            &format!("the write returned {:?}", written.value.status),
        );
        let deployed = self.deployed(report, "the attach to deploy").await?;
        report.add(
            Verdict::Info,
            "attach deployed",
            &format!("after {:.0?}", attached_at.elapsed()),
        );
        self.assume_live(report, &deployed.value, &kg, &[first.as_str()]);
        let listed = call(
            report,
            "cloudfront:ListDistributionsByKeyGroup",
            self.cloudfront.list_distributions_by_key_group(&kg).await,
        )?;
        self.assume(
            report,
            listed.iter().any(|d| d == id),
            "ListDistributionsByKeyGroup finds a distribution that trusts the group",
            &format!("it listed {listed:?}"),
        );

        // A rotation's publish: the next key joins the group.
        let second = self.create_key(report, made, stamp, 2).await?;
        let group = call(
            report,
            "cloudfront:GetKeyGroup",
            self.cloudfront.get_key_group(&kg).await,
        )?;
        let mut config = group.value.config.clone();
        config.items.push(second.clone());
        call(
            report,
            "cloudfront:UpdateKeyGroup",
            self.cloudfront
                .update_key_group(&kg, &config, &group.etag)
                .await,
        )?;
        let published_at = Instant::now();
        let right_after = call(
            report,
            "cloudfront:GetDistribution",
            self.cloudfront.get_distribution(id).await,
        )?;
        self.assume(
            report,
            right_after.value.status == DeploymentStatus::InProgress,
            "adding a key to a group starts a deployment of the distributions that trust it",
            &format!(
                "right after, the distribution was {:?}",
                right_after.value.status
            ),
        );
        self.assume(
            report,
            !right_after.value.is_key_live(&kg, &second),
            "a new key is not reported live before it has deployed",
            "the distribution reported it Deployed and in ActiveTrustedKeyGroups at once",
        );
        let deployed = self.deployed(report, "the new key to deploy").await?;
        report.add(
            Verdict::Info,
            "new key deployed",
            &format!(
                "after {:.0?} (a rotation publishes each key at least this long before apps sign with it)",
                published_at.elapsed()
            ),
        );
        self.assume_live(
            report,
            &deployed.value,
            &kg,
            &[first.as_str(), second.as_str()],
        );
        Ok(())
    }

    /// Creates test key `n` and reads it back.
    async fn create_key(
        &self,
        report: &mut Report,
        made: &mut Made,
        stamp: i64,
        n: u32,
    ) -> Result<String, Stopped> {
        let pair = crate::keys::generate(KeyAlgorithm::EcdsaP256)
            .map_err(|e| Stopped(format!("cannot generate a test key: {e}")))?;
        let name = format!("keyfront-check-{stamp}-{n}");
        let key = call(
            report,
            "cloudfront:CreatePublicKey",
            self.cloudfront
                .create_public_key(&NewPublicKey {
                    name: name.clone(),
                    encoded_key: pair.public_key_pem,
                    comment: Some("keyfront check-account: temporary; safe to delete".into()),
                    caller_reference: name,
                })
                .await,
        )?;
        made.public_keys.push(key.value.id.clone());
        call(
            report,
            "cloudfront:GetPublicKey",
            self.cloudfront.get_public_key(&key.value.id).await,
        )?;
        Ok(key.value.id)
    }

    fn assume(&self, report: &mut Report, held: bool, assumption: &str, otherwise: &str) {
        if held {
            report.add(Verdict::Confirmed, assumption, "yes");
        } else {
            report.add(Verdict::Contradicted, assumption, otherwise);
        }
    }

    /// Once Deployed, `ActiveTrustedKeyGroups` lists the group with exactly `keys`.
    fn assume_live(&self, report: &mut Report, d: &Distribution, kg: &str, keys: &[&str]) {
        let listed: Option<Vec<&str>> = d
            .active_trusted_key_groups
            .iter()
            .find(|g| g.key_group_id == kg)
            .map(|g| g.key_pair_ids.iter().map(String::as_str).collect());
        let mut expected = keys.to_vec();
        expected.sort_unstable();
        let held = listed.as_ref().is_some_and(|l| {
            let mut l = l.clone();
            l.sort_unstable();
            l == expected
        });
        self.assume(
            report,
            held,
            &format!(
                "once Deployed, ActiveTrustedKeyGroups lists the group with its {} key(s)",
                keys.len()
            ),
            &format!("it listed {listed:?} for the group, expected {expected:?}"),
        );
    }

    /// Waits until the distribution is `Deployed`, for at most `--deploy-timeout`.
    async fn deployed(
        &self,
        report: &mut Report,
        what: &str,
    ) -> Result<Tagged<Distribution>, Stopped> {
        let start = Instant::now();
        loop {
            let d = call(
                report,
                "cloudfront:GetDistribution",
                self.cloudfront.get_distribution(&self.distribution).await,
            )?;
            if d.value.status == DeploymentStatus::Deployed {
                return Ok(d);
            }
            if start.elapsed() >= self.deploy_timeout {
                return Err(Stopped(format!(
                    "waited {:.0?} for {what} (--deploy-timeout)",
                    start.elapsed()
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Removes what the test made; names what it could not remove.
    async fn clean_up(&self, report: &mut Report, made: Made) {
        let mut left = Vec::new();
        if made.attached
            && let Some(kg) = &made.key_group
        {
            match self.detach(kg).await {
                Ok(()) => {
                    report.add(Verdict::Info, "detached", &format!("key group {kg}"));
                    if let Err(Stopped(why)) = self.deployed(report, "the detach to deploy").await {
                        report.add(Verdict::Failed, "detach deployment", &why);
                    }
                }
                Err(e) => {
                    report.error("cloudfront:UpdateDistribution", &e);
                    left.push(format!(
                        "key group {kg} on the {} of distribution {}: remove it there first",
                        self.behavior, self.distribution
                    ));
                }
            }
        }
        if let Some(kg) = &made.key_group {
            let deleted = match self.cloudfront.get_key_group(kg).await {
                Ok(g) => self.cloudfront.delete_key_group(kg, &g.etag).await,
                Err(e) => Err(e),
            };
            match deleted {
                Ok(()) => report.allowed("cloudfront:DeleteKeyGroup", kg),
                Err(e) => {
                    report.error("cloudfront:DeleteKeyGroup", &e);
                    left.push(format!(
                        "key group {kg}: aws cloudfront delete-key-group --id {kg} --if-match $(aws cloudfront get-key-group --id {kg} --query ETag --output text)"
                    ));
                }
            }
        }
        for key in &made.public_keys {
            let deleted = match self.cloudfront.get_public_key(key).await {
                Ok(k) => self.cloudfront.delete_public_key(key, &k.etag).await,
                Err(e) => Err(e),
            };
            match deleted {
                Ok(()) => report.allowed("cloudfront:DeletePublicKey", key),
                Err(e) => {
                    report.error("cloudfront:DeletePublicKey", &e);
                    left.push(format!(
                        "public key {key}: aws cloudfront delete-public-key --id {key} --if-match $(aws cloudfront get-public-key --id {key} --query ETag --output text)"
                    ));
                }
            }
        }
        if left.is_empty() {
            report.add(Verdict::Info, "left behind", "nothing");
        } else {
            for what in left {
                report.add(Verdict::Failed, "left behind", &what);
            }
        }
    }

    /// Takes the test group out of the behavior, keeping whatever else it trusts now; tries
    /// again if another writer got in between.
    async fn detach(&self, kg: &str) -> Result<(), CloudFrontError> {
        let mut attempts = 0;
        loop {
            let current = self.cloudfront.get_distribution(&self.distribution).await?;
            let Some(trust) = current.value.behavior(&self.behavior) else {
                return Ok(());
            };
            if !trust.trusted_key_groups.iter().any(|g| g == kg) {
                return Ok(());
            }
            let remaining = trust
                .trusted_key_groups
                .iter()
                .filter(|g| *g != kg)
                .cloned()
                .collect();
            let change = BehaviorTrust {
                behavior: self.behavior.clone(),
                trusted_key_groups: remaining,
            };
            match self
                .cloudfront
                .set_trusted_key_groups(&self.distribution, &[change], &current.etag)
                .await
            {
                Err(e) if e.kind == ErrorKind::PreconditionFailed && attempts < 3 => attempts += 1,
                other => return other.map(|_| ()),
            }
        }
    }
}

/// A call whose failure ends the test: reported, then `Stopped`.
fn call<T>(
    report: &mut Report,
    action: &str,
    result: Result<T, CloudFrontError>,
) -> Result<T, Stopped> {
    match result {
        Ok(value) => {
            report.allowed(action, "allowed");
            Ok(value)
        }
        Err(e) => {
            report.error(action, &e);
            Err(Stopped(format!("{action} failed")))
        }
    }
}
