//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
//! does it: every replica polls the Lease every `retry`; the holder renews it, a standby takes
//! it when it is free or its holder has not renewed within `duration`; every write carries the
//! Lease's resourceVersion, so of two replicas racing for it one wins. The Lease is created at
//! runtime (GitOps tools never deploy Leases).
//!
//! Not `kube-lease-manager`: its standby sleeps until the holder's lease would expire before
//! looking again, so a lease released on SIGTERM is taken over only after the whole duration
//! (the hand-over must take seconds); and its holder, when renewals fail, keeps reporting
//! leadership (the watch task only logs), where it must step down before the lease can expire
//! under it.
//!
//! A holder that cannot renew for `renew_deadline` (shorter than `duration`) steps down, so two
//! replicas never both believe they lead; and [`Leadership::confirm`] reads the Lease again
//! before each batch of writes. Every Lease call runs under a timeout that ends at the renew
//! deadline (a hung API server, which answers nothing, must not keep a holder believing it
//! leads); per call, not client-wide, since a short read timeout would end the watches.
//! [`Leadership::may_write`] holds until the renew deadline after the last successful renewal:
//! writes that waited (for a CloudFront budget token, say) check it again before each attempt.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;

/// Where the Lease lives and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod name).
    pub identity: String,
    /// How long a lease is good for without renewal.
    pub duration: Duration,
    /// A holder that could not renew for this long steps down (shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often every replica looks at the Lease.
    pub retry: Duration,
}

/// Whether this replica leads, as the election task last saw it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    lease: Option<(Api<Lease>, Arc<LeaseSettings>)>,
    /// When this replica last renewed the Lease (with election).
    renewed: Arc<Mutex<Option<Instant>>>,
}

impl Leadership {
    /// No election: this process is the only writer (`keyfront run` without
    /// `--leader-election`, and the tests).
    pub fn sole() -> Self {
        let (tx, state) = watch::channel(true);
        // The receiver keeps the last value after the sender is gone.
        drop(tx);
        Self {
            state,
            lease: None,
            renewed: Arc::default(),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// How long this replica may still write: until the renew deadline after its last
    /// successful renewal (forever without election; zero when it does not lead).
    fn validity(&self) -> Duration {
        let Some((_, settings)) = &self.lease else {
            return Duration::MAX;
        };
        if !self.is_leader() {
            return Duration::ZERO;
        }
        let renewed = *self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
        renewed.map_or(Duration::ZERO, |at| {
            (at + settings.renew_deadline).saturating_duration_since(Instant::now())
        })
    }

    /// Whether a write may leave this replica now: it leads, and renewed the Lease within the
    /// renew deadline. Checked before each CloudFront write attempt.
    pub fn may_write(&self) -> bool {
        !self.validity().is_zero()
    }

    /// Reads the Lease: still held by this replica and not expired by this clock. Called
    /// before each batch of writes, so a replica that lost the lease in the middle of a
    /// reconcile (a pause, a partition) writes nothing more.
    pub async fn confirm(&self) -> bool {
        let Some((api, settings)) = &self.lease else {
            return true;
        };
        let left = self.validity();
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, api.get_opt(&settings.name)).await {
            Ok(Ok(Some(lease))) => {
                held_by(&lease, &settings.identity, jiff::Timestamp::now()) && self.may_write()
            }
            Ok(Ok(None)) => false,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not re-read the leader Lease; not writing");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "re-reading the leader Lease took past the renew deadline; not writing"
                );
                false
            }
        }
    }

    /// Yields each time this replica becomes the leader (for `Controller::reconcile_all_on`).
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let state = self.state.clone();
        futures::stream::unfold(state, |mut state| async move {
            loop {
                state.changed().await.ok()?;
                if *state.borrow_and_update() {
                    return Some(((), state));
                }
            }
        })
    }
}

/// Whether `lease` is held by `identity` and renewed within its duration at `now`.
fn held_by(lease: &Lease, identity: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    spec.holder_identity.as_deref() == Some(identity) && !expired(spec, now)
}

/// Free or expired: nobody holds it, or its holder has not renewed within its duration.
fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renewed.0 + jiff::SignedDuration::from_secs(i64::from(seconds)) < now
}

/// Starts the election. The task runs until `shutdown`, then releases the lease if it holds
/// it; it returns an error only if it cannot go on (the caller must then exit: a replica must
/// not run without knowing whether it leads).
pub fn start(
    client: kube::Client,
    settings: LeaseSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Leadership, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let settings = Arc::new(settings);
    let (tx, state) = watch::channel(false);
    let renewed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let leadership = Leadership {
        state,
        lease: Some((api.clone(), settings.clone())),
        renewed: renewed.clone(),
    };
    let task = tokio::spawn(elect(api, settings, tx, renewed, shutdown));
    (leadership, task)
}

async fn elect(
    api: Api<Lease>,
    settings: Arc<LeaseSettings>,
    tx: watch::Sender<bool>,
    renewed: Arc<Mutex<Option<Instant>>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let identity = settings.identity.as_str();
    let mut last_renewed: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        // A holder's call may take only until its renew deadline; a standby's, the deadline.
        let limit = match last_renewed.filter(|_| *tx.borrow()) {
            Some(at) => (at + settings.renew_deadline).saturating_duration_since(Instant::now()),
            None => settings.renew_deadline,
        }
        .max(Duration::from_millis(1));
        let attempted = Instant::now();
        let answer = match tokio::time::timeout(limit, try_acquire_or_renew(&api, &settings)).await
        {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match answer {
            Ok(true) => {
                // Counted from when the call was sent: the renewal holds from then on.
                last_renewed = Some(attempted);
                *renewed.lock().unwrap_or_else(PoisonError::into_inner) = Some(attempted);
                if !*tx.borrow() {
                    tracing::info!(identity, lease = %settings.name, "became the leader");
                    tx.send_replace(true);
                }
            }
            Ok(false) => {
                if *tx.borrow() {
                    tracing::warn!(
                        identity,
                        "another replica holds the lease now; stepping down"
                    );
                    tx.send_replace(false);
                }
            }
            Err(error) => {
                tracing::warn!(identity, %error, "could not read or renew the leader Lease");
                let overdue = last_renewed.is_none_or(|t| t.elapsed() >= settings.renew_deadline);
                if *tx.borrow() && overdue {
                    tracing::warn!(identity, "could not renew the lease in time; stepping down");
                    tx.send_replace(false);
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(settings.retry) => {}
        }
    }
    if tx.send_replace(false) {
        match tokio::time::timeout(settings.renew_deadline, release(&api, &settings)).await {
            Ok(Ok(())) => tracing::info!(identity, "released the leader lease"),
            Ok(Err(error)) => {
                tracing::warn!(identity, %error, "could not release the leader lease");
            }
            Err(_) => tracing::warn!(identity, "releasing the leader lease got no answer"),
        }
    }
    Ok(())
}

/// One look at the Lease: `Ok(true)` if this replica holds it now (created, renewed or taken
/// over), `Ok(false)` if another does or won the race.
async fn try_acquire_or_renew(api: &Api<Lease>, settings: &LeaseSettings) -> kube::Result<bool> {
    let now = jiff::Timestamp::now();
    let ours = |previous: Option<&LeaseSpec>, transitions: i32| LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(
            i32::try_from(settings.duration.as_secs()).unwrap_or(i32::MAX),
        ),
        acquire_time: previous
            .and_then(|p| p.acquire_time.clone())
            .or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                namespace: Some(settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ours(None, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let next = if spec.holder_identity.as_deref() == Some(settings.identity.as_str()) {
        ours(Some(&spec), transitions)
    } else if expired(&spec, now) || spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        ours(None, transitions.saturating_add(1))
    } else {
        return Ok(false);
    };
    lease.spec = Some(next);
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up, if this replica still holds it, so a standby takes over at its next
/// look instead of waiting out the duration.
async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: Option<i64>, duration: i32) -> LeaseSpec {
        let now = jiff::Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed_secs_ago
                .map(|s| MicroTime(now - jiff::SignedDuration::from_secs(s))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_held_only_by_its_holder_and_only_within_its_duration() {
        let now = jiff::Timestamp::now();
        let lease = |s: LeaseSpec| Lease {
            metadata: ObjectMeta::default(),
            spec: Some(s),
        };
        assert!(held_by(&lease(spec(Some("a"), Some(3), 15)), "a", now));
        assert!(!held_by(&lease(spec(Some("a"), Some(3), 15)), "b", now));
        assert!(!held_by(&lease(spec(Some("a"), Some(16), 15)), "a", now));
        assert!(expired(&spec(None, None, 15), now), "released");
        assert!(!expired(&spec(Some("a"), Some(0), 15), now));
    }
}
