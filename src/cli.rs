//! The `keyfront` command line: every subcommand and flag, parsed by clap. It lives in the
//! library so that tests check the commands the docs show against the real parser
//! (`tests/it/docs/commands.rs`); `src/main.rs` carries them out.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "keyfront",
    version,
    about = "Kubernetes operator for CloudFront signing keys"
)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "KEYFRONT_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole system in this process — a Kubernetes API, CloudFront with its edge, the
    /// operator and a demo — on loopback, with no cluster and no AWS account.
    Dev(crate::dev::DevArgs),
    /// Run the operator: reconcile SigningKeyGroups (uses KUBECONFIG or in-cluster config).
    Run(RunArgs),
    /// Print keyfront's CustomResourceDefinitions as YAML (or write one file each).
    Crd(CrdArgs),
    /// Serve an emulated CloudFront API (REST-XML, API version 2020-05-31).
    Emulator(crate::emulator::command::EmulatorArgs),
    /// Sign CloudFront URLs or cookies with a key or keyfront's mounted Secret.
    #[command(subcommand)]
    Sign(crate::signer::command::SignCommand),
    /// Explain a signed URL or signed cookies, and say whether CloudFront would accept them
    /// (exit 0) or why not (exit 1).
    Inspect(crate::signer::inspect::InspectArgs),
    /// Print the IAM policy keyfront's role needs, derived from CloudFrontAccounts (or a trust
    /// policy for IRSA, EKS Pod Identity or a cross-account role).
    IamPolicy(crate::iam::command::IamPolicyArgs),
    /// Check an AWS account before going live: the permissions keyfront needs and, with
    /// --live on a distribution, the CloudFront behaviours its rotations rely on. Exit 1 if
    /// anything was denied, contradicted or failed.
    CheckAccount(crate::account_check::CheckAccountArgs),
    /// Show a SigningKeyGroup on one screen: spec, conditions, keys, distributions, Events.
    Status(crate::status::StatusArgs),
    /// Print a shell completion script (e.g. `keyfront completions bash >
    /// /etc/bash_completion.d/keyfront`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct CrdArgs {
    /// Write each CRD to DIR/<name>.yaml instead of printing them all.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// This cluster's ID: part of the owner identity marked on every CloudFront object, so
    /// clusters sharing an AWS account must use different IDs. Default: the identity this
    /// install recorded (ConfigMap keyfront-cluster-identity), else `default` for an install
    /// from before 0.2, else the kube-system namespace's UID.
    #[arg(long, env = "KEYFRONT_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Namespace holding every keyring Secret (all private keys); the operator's own.
    /// Default: $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "KEYFRONT_KEYRING_NAMESPACE")]
    pub keyring_namespace: Option<String>,
    /// STS endpoint override, for accounts with assumeRole (the emulator serves STS on its
    /// CloudFront address).
    #[arg(long, env = "KEYFRONT_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// Watch only this namespace (repeatable); all namespaces when absent.
    #[arg(long = "namespace", env = "KEYFRONT_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// CloudFront endpoint override, e.g. http://127.0.0.1:18080 for `keyfront emulator`.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_ENDPOINT")]
    pub cloudfront_endpoint: Option<String>,
    /// Signing region for CloudFront requests (CloudFront is global and uses us-east-1).
    #[arg(long, env = "KEYFRONT_REGION")]
    pub region: Option<String>,
    /// Look at every object at least this often, even when nothing is due (e.g. 1h, 10m).
    #[arg(long, env = "KEYFRONT_RESYNC", default_value = "1h", value_parser = parse_duration_arg)]
    pub resync: Duration,
    /// How often to look while CloudFront deploys a change keyfront waits for.
    #[arg(long, env = "KEYFRONT_PROPAGATION_POLL", default_value = "15s", value_parser = parse_duration_arg)]
    pub propagation_poll: Duration,
    /// The shortest rotation interval of any object, and the least time between rotations
    /// requested by annotation: an object whose spec asks for less rotates at this floor, so
    /// no tenant spends the account's shared call budget on rotations (the CRD's own floor
    /// is 1s). Revocations are never held by it.
    #[arg(long, env = "KEYFRONT_MIN_ROTATION_INTERVAL", default_value = "1m", value_parser = parse_duration_arg)]
    pub min_rotation_interval: Duration,
    /// Reconciles running at once.
    #[arg(long, env = "KEYFRONT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// First retry delay after a failed reconcile; doubles per failure up to --backoff-max.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub backoff_base: Duration,
    #[arg(long, default_value = "5m", value_parser = parse_duration_arg)]
    pub backoff_max: Duration,
    /// Serve /healthz, /readyz and /metrics here.
    #[arg(long, env = "KEYFRONT_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Who may read /metrics: `kubernetes`, a bearer token that may get /metrics
    /// (TokenReview and SubjectAccessReview, as kube-rbac-proxy does), or `none`, anyone who
    /// reaches the port (a network you trust).
    #[arg(long, env = "KEYFRONT_METRICS_AUTH", value_enum, default_value_t = crate::runtime::MetricsAuth::Kubernetes)]
    pub metrics_auth: crate::runtime::MetricsAuth,
    /// Run several replicas: only the holder of a Lease in the keyring namespace reconciles
    /// and writes; the others keep their watches warm and take over when it goes.
    #[arg(long, env = "KEYFRONT_LEADER_ELECTION")]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(long, env = "KEYFRONT_LEASE_NAME", default_value = "keyfront")]
    pub lease_name: String,
    /// How long a leader's lease lasts unrenewed; a standby takes over within it after the
    /// leader dies (at once when it releases the lease on SIGTERM).
    #[arg(long, env = "KEYFRONT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration_arg)]
    pub lease_duration: Duration,
    /// CloudFront reads (Get*, List*) per second per account; halved while CloudFront
    /// throttles, recovering slowly.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_READ_RATE", default_value_t = 5.0, value_parser = parse_rate)]
    pub cloudfront_read_rate: f64,
    /// Reads allowed at once above the rate after a quiet spell.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_READ_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub cloudfront_read_burst: u32,
    /// CloudFront writes (Create*, Update*, Delete*) per second per account.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_WRITE_RATE", default_value_t = 1.0, value_parser = parse_rate)]
    pub cloudfront_write_rate: f64,
    /// Writes allowed at once above the rate after a quiet spell.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_WRITE_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub cloudfront_write_burst: u32,
    /// The least time between two updates of one distribution: changes arriving meanwhile go
    /// together in the next one (a change with none in flight or just done goes at once); 0
    /// sends each on its own.
    #[arg(long, env = "KEYFRONT_COALESCE_WINDOW", default_value = "2s", value_parser = parse_duration_arg)]
    pub coalesce_window: Duration,
    /// How long a distribution read stands in for a fresh one while nothing is awaited there
    /// (changes by others are seen within this).
    #[arg(long, env = "KEYFRONT_DISTRIBUTION_RESYNC", default_value = "10m", value_parser = parse_duration_arg)]
    pub distribution_resync: Duration,
}

pub fn parse_duration_arg(value: &str) -> Result<Duration, String> {
    crate::api::parse_cli_duration(value).map_err(|e| e.to_string())
}

pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a rate: give calls per second, a number above 0 (e.g. 0.5)"
        )),
    }
}
