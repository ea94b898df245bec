//! The `keyfront` command: thin CLI over the library.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use keyfront::clock::SystemClock;
use keyfront::emulator::faults::FaultSettings;
use keyfront::emulator::model::{ModelSettings, Quotas};
use keyfront::emulator::{Emulator, wire};
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
    /// Print the SigningKeyGroup CustomResourceDefinition as YAML.
    Crd,
    /// Serve an emulated CloudFront API (REST-XML, API version 2020-05-31).
    Emulator(EmulatorArgs),
    /// Sign CloudFront URLs or cookies with a key or keyfront's mounted Secret.
    #[command(subcommand)]
    Sign(keyfront::signer::command::SignCommand),
}

#[derive(Args, Debug)]
struct EmulatorArgs {
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
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line naming what is wrong; never a backtrace in front of users.
            eprintln!("keyfront: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd => {
            print!("{}", keyfront::crd_yaml()?);
            Ok(())
        }
        Command::Emulator(args) => tokio::runtime::Runtime::new()?.block_on(serve_emulator(args)),
        Command::Sign(command) => keyfront::signer::command::run(
            &command,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        ),
    }
}

async fn serve_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
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
    };
    let emulator = Emulator::new(settings, faults, Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "CloudFront emulator serving API 2020-05-31");
    if let Some(edge_addr) = args.edge_listen {
        let edge = tokio::net::TcpListener::bind(edge_addr)
            .await
            .with_context(|| format!("cannot listen on {edge_addr}"))?;
        tracing::info!(address = %edge.local_addr()?, "verifying edge serving distributions by Host header");
        let service = keyfront::emulator::edge::router(emulator.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(edge, service).await {
                tracing::error!(%error, "verifying edge stopped");
            }
        });
    }
    axum::serve(listener, wire::router(emulator))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
