//! The `keyfront` command: thin CLI over the library.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use keyfront::cloudfront::accounts::{SdkAccounts, SdkSettings};
use keyfront::cloudfront::budget::{BudgetSettings, Rate};
use keyfront::leader::LeaseSettings;
use keyfront::reconcile::ReconcilerConfig;
use keyfront::runtime::OperatorSettings;
use keyfront::telemetry::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "keyfront",
    version,
    about = "Kubernetes operator for CloudFront signing keys"
)]
struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "KEYFRONT_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole system in this process — a Kubernetes API, CloudFront with its edge, the
    /// operator and a demo — on loopback, with no cluster and no AWS account.
    Dev(keyfront::dev::DevArgs),
    /// Run the operator: reconcile SigningKeyGroups (uses KUBECONFIG or in-cluster config).
    Run(RunArgs),
    /// Print keyfront's CustomResourceDefinitions as YAML (or write one file each).
    Crd(CrdArgs),
    /// Serve an emulated CloudFront API (REST-XML, API version 2020-05-31).
    Emulator(keyfront::emulator::command::EmulatorArgs),
    /// Sign CloudFront URLs or cookies with a key or keyfront's mounted Secret.
    #[command(subcommand)]
    Sign(keyfront::signer::command::SignCommand),
    /// Explain a signed URL or signed cookies, and say whether CloudFront would accept them
    /// (exit 0) or why not (exit 1).
    Inspect(keyfront::signer::inspect::InspectArgs),
    /// Print the IAM policy keyfront's role needs, derived from CloudFrontAccounts (or a trust
    /// policy for IRSA, EKS Pod Identity or a cross-account role).
    IamPolicy(keyfront::iam::command::IamPolicyArgs),
    /// Check an AWS account before going live: the permissions keyfront needs and, with
    /// --live on a distribution, the CloudFront behaviours its rotations rely on. Exit 1 if
    /// anything was denied, contradicted or failed.
    CheckAccount(keyfront::account_check::CheckAccountArgs),
    /// Show a SigningKeyGroup on one screen: spec, conditions, keys, distributions, Events.
    Status(keyfront::status::StatusArgs),
    /// Print a shell completion script (e.g. `keyfront completions bash >
    /// /etc/bash_completion.d/keyfront`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
struct CrdArgs {
    /// Write each CRD to DIR/<name>.yaml instead of printing them all.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// This cluster's ID: part of the owner identity marked on every CloudFront object, so
    /// clusters sharing an AWS account must use different IDs. Default: the identity this
    /// install recorded (ConfigMap keyfront-cluster-identity), else `default` for an install
    /// from before 0.2, else the kube-system namespace's UID.
    #[arg(long, env = "KEYFRONT_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// Namespace holding every keyring Secret (all private keys); the operator's own.
    /// Default: $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "KEYFRONT_KEYRING_NAMESPACE")]
    keyring_namespace: Option<String>,
    /// STS endpoint override, for accounts with assumeRole (the emulator serves STS on its
    /// CloudFront address).
    #[arg(long, env = "KEYFRONT_STS_ENDPOINT")]
    sts_endpoint: Option<String>,
    /// Watch only this namespace (repeatable); all namespaces when absent.
    #[arg(long = "namespace", env = "KEYFRONT_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// CloudFront endpoint override, e.g. http://127.0.0.1:18080 for `keyfront emulator`.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_ENDPOINT")]
    cloudfront_endpoint: Option<String>,
    /// Signing region for CloudFront requests (CloudFront is global and uses us-east-1).
    #[arg(long, env = "KEYFRONT_REGION")]
    region: Option<String>,
    /// Look at every object at least this often, even when nothing is due (e.g. 1h, 10m).
    #[arg(long, env = "KEYFRONT_RESYNC", default_value = "1h", value_parser = parse_duration_arg)]
    resync: Duration,
    /// How often to look while CloudFront deploys a change keyfront waits for.
    #[arg(long, env = "KEYFRONT_PROPAGATION_POLL", default_value = "15s", value_parser = parse_duration_arg)]
    propagation_poll: Duration,
    /// Reconciles running at once.
    #[arg(long, env = "KEYFRONT_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// First retry delay after a failed reconcile; doubles per failure up to --backoff-max.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    backoff_base: Duration,
    #[arg(long, default_value = "5m", value_parser = parse_duration_arg)]
    backoff_max: Duration,
    /// Serve /healthz, /readyz and /metrics here.
    #[arg(long, env = "KEYFRONT_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// Who may read /metrics: `kubernetes`, a bearer token that may get /metrics
    /// (TokenReview and SubjectAccessReview, as kube-rbac-proxy does), or `none`, anyone who
    /// reaches the port (a network you trust).
    #[arg(long, env = "KEYFRONT_METRICS_AUTH", value_enum, default_value_t = keyfront::runtime::MetricsAuth::Kubernetes)]
    metrics_auth: keyfront::runtime::MetricsAuth,
    /// Run several replicas: only the holder of a Lease in the keyring namespace reconciles
    /// and writes; the others keep their watches warm and take over when it goes.
    #[arg(long, env = "KEYFRONT_LEADER_ELECTION")]
    leader_election: bool,
    /// The Lease's name.
    #[arg(long, env = "KEYFRONT_LEASE_NAME", default_value = "keyfront")]
    lease_name: String,
    /// How long a leader's lease lasts unrenewed; a standby takes over within it after the
    /// leader dies (at once when it releases the lease on SIGTERM).
    #[arg(long, env = "KEYFRONT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration_arg)]
    lease_duration: Duration,
    /// CloudFront reads (Get*, List*) per second per account; halved while CloudFront
    /// throttles, recovering slowly.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_READ_RATE", default_value_t = 5.0, value_parser = parse_rate)]
    cloudfront_read_rate: f64,
    /// Reads allowed at once above the rate after a quiet spell.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_READ_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    cloudfront_read_burst: u32,
    /// CloudFront writes (Create*, Update*, Delete*) per second per account.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_WRITE_RATE", default_value_t = 1.0, value_parser = parse_rate)]
    cloudfront_write_rate: f64,
    /// Writes allowed at once above the rate after a quiet spell.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_WRITE_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    cloudfront_write_burst: u32,
    /// The least time between two updates of one distribution: changes arriving meanwhile go
    /// together in the next one (a change with none in flight or just done goes at once); 0
    /// sends each on its own.
    #[arg(long, env = "KEYFRONT_COALESCE_WINDOW", default_value = "2s", value_parser = parse_duration_arg)]
    coalesce_window: Duration,
    /// How long a distribution read stands in for a fresh one while nothing is awaited there
    /// (changes by others are seen within this).
    #[arg(long, env = "KEYFRONT_DISTRIBUTION_RESYNC", default_value = "10m", value_parser = parse_duration_arg)]
    distribution_resync: Duration,
}

fn parse_duration_arg(value: &str) -> Result<Duration, String> {
    keyfront::api::parse_cli_duration(value).map_err(|e| e.to_string())
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a rate: give calls per second, a number above 0 (e.g. 0.5)"
        )),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // One line naming what is wrong; never a backtrace in front of users.
            eprintln!("keyfront: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let default_filter = match cli.command {
        Command::Dev(_) => "warn",
        _ => "info",
    };
    telemetry::init(cli.log_format, default_filter);
    // kube and the AWS SDK both link rustls with different crypto backends, so rustls cannot
    // pick one by itself: use aws-lc-rs (which the signer already uses) for every TLS client.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Crd(args) => done(write_crds(&args)),
        Command::Run(args) => done(tokio::runtime::Runtime::new()?.block_on(run_operator(args))),
        Command::Dev(args) => done(
            tokio::runtime::Runtime::new()?.block_on(keyfront::dev::run(args, shutdown_signal())),
        ),
        Command::Emulator(args) => done(
            tokio::runtime::Runtime::new()?
                .block_on(keyfront::emulator::command::serve(args, shutdown_signal())),
        ),
        Command::Sign(command) => done(keyfront::signer::command::run(
            &command,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        )),
        Command::IamPolicy(args) => {
            tokio::runtime::Runtime::new()?.block_on(keyfront::iam::command::run(args))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            tokio::runtime::Runtime::new()?
                .block_on(keyfront::status::run(args, &mut std::io::stdout().lock()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "keyfront",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckAccount(args) => {
            let passed =
                tokio::runtime::Runtime::new()?.block_on(keyfront::account_check::run(args))?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Inspect(args) => {
            let accepted = tokio::runtime::Runtime::new()?.block_on(
                keyfront::signer::inspect::run(&args, &mut std::io::stdout().lock()),
            )?;
            Ok(if accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn write_crds(args: &CrdArgs) -> anyhow::Result<()> {
    let crds = keyfront::crds()?;
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, yaml) in crds {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        None => {
            let documents: Vec<String> = crds.into_iter().map(|(_, yaml)| yaml).collect();
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(())
}

/// The cluster from KUBECONFIG or the pod's service account, or one line saying how to get one.
/// The Kubernetes client of `keyfront run`, its calls marked with `user_agent`.
async fn kube_client(user_agent: &str) -> anyhow::Result<kube::Client> {
    const FIX: &str = "set KUBECONFIG to a cluster's kubeconfig, or run keyfront in a pod; to try keyfront without a cluster, run `keyfront dev`";
    let kubeconfig_set = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let default_kubeconfig = std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".kube/config"))
        .is_some_and(|path| path.exists());
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if !kubeconfig_set && !default_kubeconfig && !in_cluster {
        anyhow::bail!(
            "no Kubernetes cluster to run against: KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a pod; {FIX}"
        );
    }
    if let Some(missing) = std::env::var_os("KUBECONFIG")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|path| !path.as_os_str().is_empty() && !path.exists())
    {
        anyhow::bail!(
            "KUBECONFIG names {}, which does not exist; {FIX}",
            missing.display()
        );
    }
    let unusable = |error: &dyn std::error::Error| {
        // The innermost cause says what is wrong; the chain above it repeats itself.
        let mut cause = error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        anyhow::anyhow!("cannot use the Kubernetes configuration: {cause}; {FIX}")
    };
    let mut config = kube::Config::infer().await.map_err(|e| unusable(&e))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent)
            .map_err(|_| anyhow::anyhow!("cannot send {user_agent:?} as a User-Agent: set POD_NAME to a name of letters, digits, '-' and '.'"))?,
    ));
    kube::Client::try_from(config).map_err(|e| unusable(&e))
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    let identity = keyfront::runtime::replica_identity();
    let client = kube_client(&keyfront::runtime::user_agent(&identity)).await?;
    let keyring_namespace = args
        .keyring_namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let accounts = SdkAccounts::from_environment(SdkSettings {
        endpoint: args.cloudfront_endpoint.clone(),
        sts_endpoint: args.sts_endpoint.clone(),
        region: args.region.clone(),
        static_credentials: None,
        app_name: Some(identity.clone()),
    })
    .await;
    let cluster = keyfront::runtime::identity::settle(
        &client,
        &keyring_namespace,
        args.cluster_id.as_deref(),
    )
    .await?;
    tracing::info!(
        cloudfront_endpoint = args.cloudfront_endpoint.as_deref().unwrap_or("<AWS>"),
        cluster_id = %cluster.cluster_id,
        cluster_id_from = cluster.source,
        keyring_namespace = %keyring_namespace,
        "keyfront operator starting"
    );
    let settings_namespace = keyring_namespace.clone();
    let settings = OperatorSettings {
        namespaces: args.namespaces,
        concurrency: args.concurrency.max(1),
        reconciler: ReconcilerConfig {
            cluster_id: cluster.cluster_id,
            install_claim: cluster.install_claim,
            keyring_namespace,
            propagation_poll: args.propagation_poll,
            resync: args.resync,
            ..ReconcilerConfig::default()
        },
        backoff_base: args.backoff_base,
        backoff_max: args.backoff_max,
        health_listen: args.health_listen,
        metrics_auth: args.metrics_auth,
        leader_election: args.leader_election.then(|| LeaseSettings {
            namespace: settings_namespace.clone(),
            name: args.lease_name,
            identity,
            duration: args.lease_duration,
            renew_deadline: args.lease_duration.mul_f64(2.0 / 3.0),
            retry: (args.lease_duration / 15).max(Duration::from_millis(200)),
        }),
        budget: BudgetSettings {
            reads: Rate {
                per_second: args.cloudfront_read_rate,
                burst: args.cloudfront_read_burst,
            },
            writes: Rate {
                per_second: args.cloudfront_write_rate,
                burst: args.cloudfront_write_burst,
            },
            coalesce_window: args.coalesce_window,
            distribution_resync: args.distribution_resync,
            ..BudgetSettings::default()
        },
    };
    keyfront::runtime::run(client, accounts, settings, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
