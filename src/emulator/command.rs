//! `keyfront emulator`: CloudFront's API (and STS) over HTTP, with an optional verifying edge,
//! quotas, faults and IAM policies set from the command line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::accounts::Aws;
use super::faults::FaultSettings;
use super::model::{ModelSettings, Quotas};
use super::{Emulator, wire};
use crate::clock::SystemClock;
use crate::iam::PolicyDocument;

#[derive(Args, Debug)]
pub struct EmulatorArgs {
    /// Address for the CloudFront API.
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Also serve a verifying edge here: requests are routed to a distribution by `Host`
    /// (its DomainName) and need valid signed URLs/cookies on private behaviors.
    #[arg(long)]
    edge_listen: Option<SocketAddr>,
    /// Seconds a distribution stays InProgress after a change that affects it.
    #[arg(long, default_value_t = 2.0)]
    propagation_delay: f64,
    /// Probability [0,1] that any call is throttled (400 Throttling).
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Probability [0,1] that any call fails with 503 ServiceUnavailable.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Milliseconds added to every call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Throttle an operation called faster than PER_MINUTE a minute (BURST at once, 1 by
    /// default), as CloudFront's control plane does: `UpdateDistribution=3` models its pace of
    /// a few distribution updates a minute (repeatable).
    #[arg(long = "pace", value_name = "OPERATION=PER_MINUTE[/BURST]")]
    paces: Vec<super::faults::Pace>,
    /// Seed for fault draws and generated IDs, for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
    /// Quota: public keys per account.
    #[arg(long, default_value_t = Quotas::default().public_keys)]
    max_public_keys: usize,
    /// Quota: key groups per account.
    #[arg(long, default_value_t = Quotas::default().key_groups)]
    max_key_groups: usize,
    /// Quota: public keys per key group.
    #[arg(long, default_value_t = Quotas::default().keys_per_key_group)]
    max_keys_per_key_group: usize,
    /// Quota: key groups per cache behavior.
    #[arg(long, default_value_t = Quotas::default().key_groups_per_behavior)]
    max_key_groups_per_behavior: usize,
    /// Make STS AssumeRole of ROLE_ARN require this external ID, as a role's trust policy
    /// can (`ROLE_ARN=EXTERNAL_ID`, repeatable). Other roles can be assumed freely.
    #[arg(long = "require-external-id", value_name = "ROLE_ARN=EXTERNAL_ID")]
    required_external_ids: Vec<String>,
    /// Start with a distribution under this ID, e.g. `E2EXAMPLE123` or
    /// `E2EXAMPLE123=/private/*,/video/*` to add path-pattern behaviors (repeatable).
    #[arg(long = "distribution", value_name = "ID[=PATTERNS]", value_parser = super::distribution_flag)]
    distributions: Vec<String>,
    /// Enforce an IAM policy (a JSON policy document in FILE) on every call made with the
    /// access key ID, or as the role ARN, PRINCIPAL (repeatable). Callers with no policy are
    /// not checked. Denials are AWS's 403 AccessDenied.
    #[arg(long = "iam-policy", value_name = "PRINCIPAL=FILE")]
    iam_policies: Vec<String>,
    /// Make STS AssumeRole of ROLE_ARN subject to the trust policy in FILE (its Principal and
    /// sts:ExternalId conditions), repeatable.
    #[arg(long = "trust-policy", value_name = "ROLE_ARN=FILE")]
    trust_policies: Vec<String>,
}

/// `PRINCIPAL=FILE` → the principal and the policy document in the file.
fn policy_flag(flag: &str, value: &str) -> anyhow::Result<(String, PolicyDocument)> {
    let (principal, file) = value
        .split_once('=')
        .with_context(|| format!("{flag} {value}: expected PRINCIPAL=FILE"))?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{flag} {value}: cannot read {file}"))?;
    let policy = serde_json::from_str(&text)
        .with_context(|| format!("{flag} {value}: {file} is not an IAM policy document"))?;
    Ok((principal.to_owned(), policy))
}

/// Serves the emulator until `shutdown` resolves.
pub async fn serve(
    args: EmulatorArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.propagation_delay >= 0.0 && args.propagation_delay.is_finite(),
        "--propagation-delay must be a non-negative number of seconds, got {}",
        args.propagation_delay
    );
    for (flag, rate) in [
        ("--throttle-rate", args.throttle_rate),
        ("--error-rate", args.error_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{flag} must be between 0 and 1, got {rate}"
        );
    }
    let settings = ModelSettings {
        propagation_delay: Duration::from_secs_f64(args.propagation_delay),
        quotas: Quotas {
            public_keys: args.max_public_keys,
            key_groups: args.max_key_groups,
            keys_per_key_group: args.max_keys_per_key_group,
            key_groups_per_behavior: args.max_key_groups_per_behavior,
            ..Quotas::default()
        },
        seed: args.seed,
    };
    let faults = FaultSettings {
        throttle_rate: args.throttle_rate,
        server_error_rate: args.error_rate,
        latency: Duration::from_millis(args.latency_ms),
        seed: args.seed,
        paces: args.paces,
    };
    let emulator = Emulator::new(settings, faults.clone(), Arc::new(SystemClock));
    let aws = Aws::new(emulator.clone(), faults);
    for requirement in &args.required_external_ids {
        let (role, external_id) = requirement.split_once('=').with_context(|| {
            format!("--require-external-id {requirement}: expected ROLE_ARN=EXTERNAL_ID")
        })?;
        aws.require_external_id(role, external_id);
    }
    for value in &args.iam_policies {
        let (principal, policy) = policy_flag("--iam-policy", value)?;
        aws.set_identity_policy(&principal, Some(policy));
    }
    for value in &args.trust_policies {
        let (role, policy) = policy_flag("--trust-policy", value)?;
        aws.set_trust_policy(&role, policy);
    }
    for flag in &args.distributions {
        let (id, patterns) = emulator
            .add_distribution_from_flag(flag)
            .map_err(anyhow::Error::msg)?;
        tracing::info!(id, ?patterns, "distribution created");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "CloudFront emulator serving API 2020-05-31 and STS");
    if let Some(edge_addr) = args.edge_listen {
        let edge = tokio::net::TcpListener::bind(edge_addr)
            .await
            .with_context(|| format!("cannot listen on {edge_addr}"))?;
        tracing::info!(address = %edge.local_addr()?, "verifying edge serving distributions by Host header");
        let service =
            super::edge::router(aws.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(edge, service).await {
                tracing::error!(%error, "verifying edge stopped");
            }
        });
    }
    axum::serve(listener, wire::router(aws))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
