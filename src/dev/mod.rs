//! `keyfront dev`: the whole system in one process, on loopback, for a first look without a
//! cluster or an AWS account.
//!
//! - the Kubernetes API double (the crate the tests use), with keyfront's CRDs, the
//!   `keyfront-system` namespace and a `default` CloudFrontAccount admitting everything, and a
//!   kubeconfig for `kubectl`;
//! - the CloudFront emulator with STS and its verifying edge;
//! - the operator itself, unchanged: [`crate::runtime::run`] over HTTP to that API;
//! - unless `--no-demo`, a demo ([`demo`]): a distribution and a fast-rotating
//!   SigningKeyGroup, its Secret mounted as the kubelet would, and an app that signs a URL
//!   every second and fetches it through the edge, with one line per event that matters.
//!
//! Ctrl-C stops everything; the temporary directory goes with it unless `--dir` was given.

mod demo;
pub mod kubelet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures::FutureExt as _;
use kube_api_double::{ApiDouble, write_kubeconfig};

use crate::clock::SystemClock;
use crate::cloudfront::accounts::{SdkAccounts, SdkSettings};
use crate::emulator::accounts::Aws;
use crate::emulator::faults::FaultSettings;
use crate::emulator::model::ModelSettings;
use crate::emulator::{Emulator, edge, wire};
use crate::reconcile::ReconcilerConfig;
use crate::runtime::OperatorSettings;

/// The account every namespace may use in `keyfront dev` (the single-team example).
const DEV_ACCOUNT: &str = include_str!("../../examples/accounts/single-team.yaml");
const KEYRING_NAMESPACE: &str = "keyfront-system";

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Address of the Kubernetes API (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    api_listen: SocketAddr,
    /// Address of the CloudFront (and STS) API.
    #[arg(long, default_value = "127.0.0.1:0")]
    cloudfront_listen: SocketAddr,
    /// Address of the verifying edge.
    #[arg(long, default_value = "127.0.0.1:0")]
    edge_listen: SocketAddr,
    /// Keep the kubeconfig and the mounted Secret here (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Add a distribution to the emulated CloudFront (repeatable): `ID`, or
    /// `ID=/a/*,/b/*` for cache behaviors with those path patterns besides the default one.
    /// E.g. `--distribution E2EXAMPLE123=/private/*` for examples/distribution.yaml.
    #[arg(long = "distribution", value_name = "ID[=PATTERNS]", value_parser = crate::emulator::distribution_flag)]
    distributions: Vec<String>,
    /// Start the system only: no demo distribution, object or traffic.
    #[arg(long)]
    no_demo: bool,
    /// The demo's rotation interval (at least 12s: the demo's URLs live 30s and pods
    /// refresh within 5s, and a key group holds at most 5 keys).
    #[arg(long, default_value = "20s", value_parser = demo_interval, allow_hyphen_values = true)]
    interval: String,
}

/// The shortest demo interval: 3 × interval must cover the demo's URL lifetime (30 s) and
/// Secret refresh allowance (5 s), or the key group would need more than 5 keys.
const SHORTEST_DEMO_INTERVAL: Duration = Duration::from_secs(12);

/// `--interval` checked up front (days allowed), as the Kubernetes duration the demo applies.
fn demo_interval(value: &str) -> Result<String, String> {
    let interval = crate::api::parse_cli_duration(value).map_err(|e| e.to_string())?;
    if interval < SHORTEST_DEMO_INTERVAL {
        return Err(format!(
            "{value} is too short for the demo: its URLs live 30s and pods refresh within 5s, so keys must rotate every {}s or more",
            SHORTEST_DEMO_INTERVAL.as_secs()
        ));
    }
    Ok(format!("{}s", interval.as_secs()))
}

/// What the demo needs to reach.
pub struct Running {
    pub kube: kube::Client,
    pub emulator: Emulator,
    pub edge: SocketAddr,
    pub dir: PathBuf,
    pub started: std::time::Instant,
}

async fn listen(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "keyfront dev listens on loopback only; --{what}-listen {addr} is not a loopback address"
    );
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what}"))
}

/// Runs until `shutdown` resolves.
pub async fn run(
    args: DevArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (_temporary, dir) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            (None, dir.clone())
        }
        None => {
            let temporary = tempfile::Builder::new().prefix("keyfront-dev-").tempdir()?;
            let path = temporary.path().to_path_buf();
            (Some(temporary), path)
        }
    };
    let shutdown = shutdown.shared();

    // The Kubernetes API, with what a cluster admin would have installed.
    let api_listener = listen(args.api_listen, "api").await?;
    let api_addr = api_listener.local_addr()?;
    let double = ApiDouble::new();
    let router = double.router();
    tokio::spawn(
        axum::serve(api_listener, router)
            .with_graceful_shutdown(shutdown.clone())
            .into_future(),
    );
    for (_, yaml) in crate::crds()? {
        double.create(serde_yaml::from_str(&yaml)?)?;
    }
    double.create(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEYRING_NAMESPACE}}))?;
    double.create(serde_yaml::from_str(DEV_ACCOUNT)?)?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, api_addr)?;

    // CloudFront, STS and the edge.
    let settings = ModelSettings {
        propagation_delay: Duration::from_secs(2),
        ..ModelSettings::default()
    };
    let emulator = Emulator::new(settings, FaultSettings::default(), Arc::new(SystemClock));
    let mut added = Vec::new();
    for flag in &args.distributions {
        let (id, patterns) = emulator
            .add_distribution_from_flag(flag)
            .map_err(anyhow::Error::msg)?;
        added.push(if patterns.is_empty() {
            id
        } else {
            format!("{id} ({})", patterns.join(", "))
        });
    }
    let aws = Aws::new(emulator.clone(), FaultSettings::default());
    let cloudfront_listener = listen(args.cloudfront_listen, "cloudfront").await?;
    let cloudfront_addr = cloudfront_listener.local_addr()?;
    tokio::spawn(
        axum::serve(cloudfront_listener, wire::router(aws.clone()))
            .with_graceful_shutdown(shutdown.clone())
            .into_future(),
    );
    let edge_listener = listen(args.edge_listen, "edge").await?;
    let edge_addr = edge_listener.local_addr()?;
    tokio::spawn(
        axum::serve(
            edge_listener,
            edge::router(aws).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone())
        .into_future(),
    );

    // The operator, over HTTP like anywhere else.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let kube = kube::Client::try_from(config)?;
    let endpoint = format!("http://{cloudfront_addr}");
    let accounts = SdkAccounts::from_environment(SdkSettings {
        endpoint: Some(endpoint.clone()),
        sts_endpoint: Some(endpoint.clone()),
        region: None,
        static_credentials: Some(("AKIDKEYFRONTDEV".into(), "keyfront-dev".into())),
        app_name: None,
    })
    .await;
    let operator = tokio::spawn(crate::runtime::run(
        kube.clone(),
        accounts,
        OperatorSettings {
            namespaces: Vec::new(),
            concurrency: 4,
            reconciler: ReconcilerConfig {
                cluster_id: "dev".into(),
                keyring_namespace: KEYRING_NAMESPACE.into(),
                propagation_poll: Duration::from_secs(1),
                // The account's usage (kubectl get cfa) is refreshed this often too.
                resync: Duration::from_secs(10),
                // examples/fast-rotation.yaml rotates every 20 s, and the demo faster still.
                min_rotation_interval: Duration::from_secs(1),
                ..ReconcilerConfig::default()
            },
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            health_listen: None,
            metrics_auth: crate::runtime::MetricsAuth::None,
            leader_election: None,
            budget: crate::cloudfront::budget::BudgetSettings::default(),
        },
        shutdown.clone(),
    ));

    println!("keyfront dev: the operator, a Kubernetes API and CloudFront, all in this process");
    println!("  Kubernetes API  http://{api_addr}");
    println!("  kubeconfig      {}", kubeconfig.display());
    println!("  CloudFront/STS  {endpoint}");
    println!("  verifying edge  http://{edge_addr}");
    if !added.is_empty() {
        println!("  distributions   {}", added.join(", "));
    }
    let quotas = crate::emulator::model::Quotas::default();
    println!(
        "  AWS account     {} public keys and {} key groups at most, as in AWS: each SigningKeyGroup holds 1 to 5 keys over a rotation (kubectl get cfa shows the usage)",
        quotas.public_keys, quotas.key_groups
    );
    println!(
        "In another terminal:  export KUBECONFIG={}; kubectl get skg -A -w",
        kubeconfig.display()
    );
    let running = Running {
        kube,
        emulator,
        edge: edge_addr,
        dir: dir.clone(),
        started,
    };
    let counters = Arc::new(demo::Counters::default());
    let demo = if args.no_demo {
        None
    } else {
        Some(tokio::spawn(demo::run(
            running,
            args.interval.clone(),
            counters.clone(),
        )))
    };
    println!("Ctrl-C stops everything.");
    shutdown.await;
    let demo_started = demo.is_some();
    if let Some(demo) = demo {
        demo.abort();
    }
    // The operator finishes what it is doing; it is not allowed to hang the exit.
    let _ = tokio::time::timeout(Duration::from_secs(3), operator).await;
    if demo_started {
        use std::sync::atomic::Ordering;
        println!(
            "keyfront dev: stopped after {} activations, {} signed requests, {} rejected",
            counters.activations.load(Ordering::Relaxed),
            counters.signed.load(Ordering::Relaxed),
            counters.rejected.load(Ordering::Relaxed)
        );
    } else {
        println!("keyfront dev: stopped");
    }
    Ok(())
}
