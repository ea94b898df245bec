//! The Kubernetes API double, standalone, for kubectl and `keyfront run`:
//!
//! ```sh
//! cargo run --release --example kube-api-double -- --listen 127.0.0.1:16443 --kubeconfig /tmp/double.kubeconfig
//! KUBECONFIG=/tmp/double.kubeconfig kubectl apply --server-side -f crds/
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kube_api_double::{ApiDouble, write_kubeconfig};

#[derive(Parser, Debug)]
#[command(about = "A Kubernetes API server double for keyfront's tests")]
struct Args {
    /// Address to serve the Kubernetes API on.
    #[arg(long, default_value = "127.0.0.1:16443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig that points at it.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let double = ApiDouble::new();
    let addr = double.serve(args.listen).await?;
    if let Some(path) = &args.kubeconfig {
        write_kubeconfig(path, addr)?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    eprintln!("Kubernetes API double serving on http://{addr}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
