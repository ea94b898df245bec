//! The set-up the end-to-end suites share: `keyfront emulator` (with its verifying edge) as its
//! own process, a cluster, and `keyfront run` as its own process against both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyfront::cloudfront::CloudFront as _;
use keyfront::cloudfront::sdk::SdkCloudFront;

use super::{Cluster, Process, cloudfront, free_port, keyfront, wait_for};

/// `keyfront emulator` on loopback ports, its log in the directory it was started with.
pub struct Emulator {
    /// CloudFront's (and STS's) address.
    pub api: SocketAddr,
    /// The verifying edge's address.
    pub edge: SocketAddr,
    /// The port's client for it.
    pub cf: SdkCloudFront,
    _process: Process,
}

impl Emulator {
    /// Starts it with `args` after the ports (distributions, propagation delay, faults, quotas)
    /// and waits until it answers.
    pub async fn start(dir: &Path, args: &[&str]) -> Emulator {
        let (api, edge) = (free_port(), free_port());
        let (listen, edge_listen) = (api.to_string(), edge.to_string());
        let mut all = vec![
            "emulator",
            "--listen",
            &listen,
            "--edge-listen",
            &edge_listen,
        ];
        all.extend(args);
        let process = keyfront(&all, &dir.join("emulator.log"));
        let cf = cloudfront(api);
        wait_for("the emulator", Duration::from_secs(20), async || {
            cf.list_key_groups().await.is_ok()
        })
        .await;
        Emulator {
            api,
            edge,
            cf,
            _process: process,
        }
    }
}

/// A cluster, the emulator and the operator, with the fields the suites read.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub cluster: Cluster,
    pub kubeconfig: PathBuf,
    pub cf: SdkCloudFront,
    pub cf_addr: SocketAddr,
    pub edge: SocketAddr,
    /// The operator's `/healthz`, `/readyz` and `/metrics`.
    pub health: SocketAddr,
    pub operator_log: PathBuf,
    pub operator: Option<Process>,
    _emulator: Emulator,
}

impl Stack {
    /// `cluster`, prepared by `prepare` (CRDs, namespaces, accounts), the emulator with
    /// `emulator_args`, then the operator with `operator_args` (after the health address).
    pub async fn start(
        cluster: Cluster,
        emulator_args: &[&str],
        prepare: impl AsyncFnOnce(&Cluster, &Path),
        operator_args: &[&str],
    ) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(dir.path(), emulator_args).await;
        prepare(&cluster, dir.path()).await;
        let mut stack = Stack {
            kubeconfig: cluster.kubeconfig().to_owned(),
            cluster,
            cf: emulator.cf.clone(),
            cf_addr: emulator.api,
            edge: emulator.edge,
            health: free_port(),
            operator_log: dir.path().join("operator.log"),
            operator: None,
            dir,
            _emulator: emulator,
        };
        stack.run_operator(operator_args);
        stack
    }

    /// (Re)starts the operator with `args`, logging to the same file, serving health on the
    /// same address.
    pub fn run_operator(&mut self, args: &[&str]) {
        self.operator = None;
        let health = self.health.to_string();
        let mut all = vec!["--health-listen", &health];
        all.extend(args);
        self.operator = Some(super::operator(
            &self.kubeconfig,
            self.cf_addr,
            &all,
            &self.operator_log,
        ));
    }
}
