//! The `keyfront` command: thin CLI over the library.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use keyfront::cli::{Cli, Command, CrdArgs, RunArgs};
use keyfront::cloudfront::accounts::{SdkAccounts, SdkSettings};
use keyfront::cloudfront::budget::{BudgetSettings, Rate};
use keyfront::leader::LeaseSettings;
use keyfront::reconcile::ReconcilerConfig;
use keyfront::runtime::OperatorSettings;
use keyfront::telemetry;

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
            min_rotation_interval: args.min_rotation_interval,
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
