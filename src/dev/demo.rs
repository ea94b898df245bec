//! The demo of `keyfront dev`: a distribution, a fast-rotating SigningKeyGroup protecting it,
//! its Secret mounted the way the kubelet mounts it, and an app signing a URL every second and
//! fetching it through the verifying edge. One line per event that matters: a key published,
//! activated, retiring, retired — with how many signed requests went through and were refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Running, kubelet};
use crate::api::{KeyState, SigningKeyGroup};
use crate::signer::{MountedSigner, Policy};

const DISTRIBUTION: &str = "EDEVDEMO1";
const NAME: &str = "demo";
const SECRET: &str = "demo-cloudfront-key";
/// The demo's `maxSignedUrlLifetime`: URLs it prints are signed for exactly this long.
const URL_LIFETIME_SECONDS: i64 = 30;

/// What the demo app has done so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub signed: AtomicU64,
    pub rejected: AtomicU64,
    pub activations: AtomicU64,
}

fn say(started: Instant, what: &str) {
    println!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// Runs the demo until aborted; a failure is printed, not fatal to the rest.
pub async fn run(running: Running, interval: String, counters: Arc<Counters>) {
    if let Err(error) = demo(&running, &interval, &counters).await {
        say(running.started, &format!("the demo stopped: {error:#}"));
    }
}

async fn demo(r: &Running, interval: &str, counters: &Arc<Counters>) -> anyhow::Result<()> {
    r.emulator
        .create_test_distribution_with_id(DISTRIBUTION, &[])
        .map_err(|e| anyhow::anyhow!("creating the demo distribution: {}", e.message))?;
    let host = r
        .emulator
        .model()
        .get_distribution(DISTRIBUTION)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        .domain_name
        .clone();
    let objects: Api<SigningKeyGroup> = Api::namespaced(r.kube.clone(), "default");
    objects
        .patch(
            NAME,
            &PatchParams::apply("keyfront-dev").force(),
            &Patch::Apply(json!({
                "apiVersion": "keyfront.dev/v1alpha1",
                "kind": "SigningKeyGroup",
                "metadata": {"name": NAME, "namespace": "default"},
                "spec": {
                    "key": {"algorithm": "ECDSAP256"},
                    "rotation": {"interval": interval, "maxSignedUrlLifetime": format!("{URL_LIFETIME_SECONDS}s"), "secretRefreshAllowance": "5s"},
                    "distributions": [{"id": DISTRIBUTION, "defaultCacheBehavior": true, "allowPublicOnDetach": true}],
                }
            })),
        )
        .await?;
    say(
        r.started,
        &format!(
            "applied SigningKeyGroup default/{NAME}: an ECDSA key rotated every {interval}, protecting distribution {DISTRIBUTION} ({host})"
        ),
    );
    let mount = r.dir.join("secret");
    say(
        r.started,
        &format!("its Secret {SECRET} is mounted at {}", mount.display()),
    );
    tokio::spawn(mount_secret(r.kube.clone(), mount.clone(), r.started));
    tokio::spawn(app(
        mount.clone(),
        host.clone(),
        r.edge,
        counters.clone(),
        r.started,
    ));
    watch_status(r, &objects, &mount, &host, counters).await
}

/// The kubelet: looks at the Secret every 2 s and projects a new version when it changed.
async fn mount_secret(kube: kube::Client, mount: std::path::PathBuf, started: Instant) {
    let secrets: Api<Secret> = Api::namespaced(kube, "default");
    let mut current = None;
    for version in 1.. {
        if let Ok(Some(secret)) = secrets.get_opt(SECRET).await {
            let data = secret.data.unwrap_or_default();
            if current.as_ref() != Some(&data) {
                if let Err(error) = kubelet::project(&mount, version, &data) {
                    say(
                        started,
                        &format!("cannot write the mounted Secret: {error}"),
                    );
                }
                current = Some(data);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One GET through the edge; `Ok` or the edge's reason.
pub async fn fetch(
    edge: SocketAddr,
    host: &str,
    path_and_query: &str,
) -> anyhow::Result<Result<(), String>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(edge).await?;
    let request =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    if text.starts_with("HTTP/1.1 200") {
        return Ok(Ok(()));
    }
    Ok(Err(text
        .lines()
        .find_map(|l| l.strip_prefix("x-keyfront-edge-reason: "))
        .unwrap_or("refused")
        .to_owned()))
}

/// A URL for `path` signed with the mounted key, valid 30 s, as a path and query.
fn signed_path(signer: &MountedSigner, host: &str, path: &str) -> anyhow::Result<String> {
    let url = format!("https://{host}{path}");
    let expires = jiff::Timestamp::now().as_second() + 30;
    let signed = signer
        .current()?
        .sign_url(&url, &Policy::canned(url.clone(), expires))?;
    Ok(signed[format!("https://{host}").len()..].to_owned())
}

/// A URL for `path` signed with the key the Secret holds now, valid 5 minutes.
async fn signed_with_secret(r: &Running, host: &str, path: &str) -> anyhow::Result<String> {
    let secret = Api::<Secret>::namespaced(r.kube.clone(), "default")
        .get(SECRET)
        .await?;
    let data = secret.data.unwrap_or_default();
    let file = |name: &str| data.get(name).map(|b| b.0.clone()).unwrap_or_default();
    let signer = crate::signer::Signer::from_pem(
        &file("private_key.pem"),
        &String::from_utf8_lossy(&file("key_pair_id")),
        None,
    )?;
    let url = format!("https://{host}{path}");
    let expires = jiff::Timestamp::now().as_second() + URL_LIFETIME_SECONDS;
    let signed = signer.sign_url(&url, &Policy::canned(url.clone(), expires))?;
    Ok(signed[format!("https://{host}").len()..].to_owned())
}

/// The app: once the Secret is mounted, signs a URL every second and fetches it.
async fn app(
    mount: std::path::PathBuf,
    host: String,
    edge: SocketAddr,
    counters: Arc<Counters>,
    started: Instant,
) {
    let mut signer = None;
    for n in 0u64.. {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if signer.is_none() {
            signer = MountedSigner::open(&mount).ok();
        }
        let Some(signer) = &signer else { continue };
        let path = format!("/demo/{n}.txt");
        let verdict = match signed_path(signer, &host, &path) {
            Ok(path_and_query) => fetch(edge, &host, &path_and_query).await,
            Err(error) => Err(error),
        };
        match verdict {
            Ok(Ok(())) => {
                counters.signed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(reason)) => {
                counters.signed.fetch_add(1, Ordering::Relaxed);
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                say(started, &format!("REJECTED {path}: {reason}"));
            }
            Err(error) => say(
                started,
                &format!("the app could not sign or fetch: {error:#}"),
            ),
        }
    }
}

/// Prints a line per key event, read from the object's status every second.
async fn watch_status(
    r: &Running,
    objects: &Api<SigningKeyGroup>,
    mount: &std::path::Path,
    host: &str,
    counters: &Counters,
) -> anyhow::Result<()> {
    let mut known: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut active: Option<String> = None;
    let mut told_how_to_sign = false;
    let counts = || {
        format!(
            "{} signed requests so far, {} rejected",
            counters.signed.load(Ordering::Relaxed),
            counters.rejected.load(Ordering::Relaxed)
        )
    };
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(status) = objects.get_opt(NAME).await?.and_then(|o| o.status) else {
            continue;
        };
        let keys: BTreeMap<String, KeyState> = status
            .keys
            .iter()
            .filter_map(|k| Some((k.id.clone()?, k.state)))
            .collect();
        for (id, state) in &keys {
            match (known.get(id), state) {
                (None, KeyState::Published | KeyState::Active) => {
                    say(
                        r.started,
                        &format!(
                            "key {id} published: in the key group, waiting for the edge to deploy it"
                        ),
                    );
                }
                (Some(before), KeyState::Retiring) if *before != KeyState::Retiring => {
                    say(
                        r.started,
                        &format!(
                            "key {id} retiring: no longer signed with, still trusted for URLs already out"
                        ),
                    );
                }
                _ => {}
            }
        }
        if status.active_key_id != active
            && let Some(id) = &status.active_key_id
        {
            counters.activations.fetch_add(1, Ordering::Relaxed);
            say(
                r.started,
                &format!(
                    "key {id} activated: the Secret now signs with it; {}",
                    counts()
                ),
            );
            // Printed again at every activation: a URL signed with the new key, valid for
            // the demo's URL lifetime (URLs signed with a retired key stop working after it).
            if let Ok(path_and_query) = signed_with_secret(r, host, "/hello.txt").await {
                say(
                    r.started,
                    &format!(
                        "fetch one (valid {URL_LIFETIME_SECONDS}s): curl -si -H 'Host: {host}' 'http://{}{path_and_query}'",
                        r.edge
                    ),
                );
            }
            active = status.active_key_id.clone();
        }
        for id in known.keys().filter(|id| !keys.contains_key(*id)) {
            say(
                r.started,
                &format!(
                    "key {id} retired: out of the key group and deleted; {}",
                    counts()
                ),
            );
        }
        known = keys;
        // How to sign with the mounted Secret, once the kubelet has mounted the active key
        // (a few seconds after it became active, as in a pod).
        if !told_how_to_sign
            && let Some(id) = &active
            && std::fs::read_to_string(mount.join("key_pair_id")).is_ok_and(|m| m.trim() == id)
        {
            let keyfront = std::env::current_exe()
                .map_or_else(|_| "keyfront".to_owned(), |p| p.display().to_string());
            say(
                r.started,
                &format!(
                    "sign yourself:  {keyfront} sign url --secret-dir {} --url https://{host}/hello.txt --expires-in {URL_LIFETIME_SECONDS}s",
                    mount.display()
                ),
            );
            told_how_to_sign = true;
        }
    }
}
