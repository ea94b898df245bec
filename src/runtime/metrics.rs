//! Prometheus metrics on `/metrics` (prometheus-client, OpenMetrics text).
//!
//! Labels are bounded: a SigningKeyGroup's namespace and name, a CloudFrontAccount's name, a
//! CloudFront operation, an outcome, an error category. Never a key ID or anything of a key.
//! The per-object gauges are computed at scrape time from the controller's cache, so a deleted
//! object's series disappear with it; counters and histograms accumulate from the start.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{KeyState, SigningKeyGroup};
use crate::cloudfront::hooked::{Call, CallHook, Hooked};
use crate::cloudfront::{AccountAccess, CloudFrontAccounts, CloudFrontError, ErrorKind, Result};
use crate::reconcile::reasons;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    account: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    account: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    account: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    namespace: String,
    name: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyStateLabels {
    namespace: String,
    name: String,
    state: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What the operator counts while it runs.
#[derive(Debug, Clone)]
pub struct Metrics {
    cloudfront_calls: Family<CallLabels, Counter>,
    cloudfront_duration: Family<OperationLabels, Histogram>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    unclaimed_keyrings: Family<AccountLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            cloudfront_calls: Family::default(),
            cloudfront_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 12))
            }),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            unclaimed_keyrings: Family::default(),
        };
        // Both results exist from the start, so a rate of errors is 0, not absent.
        for result in ["ok", "error"] {
            let _ = metrics.reconciles.get_or_create(&ResultLabels { result });
        }
        metrics
    }
}

/// The `outcome` label of a CloudFront call.
pub fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CloudFrontError { kind, .. }) => match kind {
            ErrorKind::Throttled => "throttled",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Transient => "server_error",
            ErrorKind::AlreadyExists
            | ErrorKind::InUse
            | ErrorKind::QuotaExceeded
            | ErrorKind::Invalid => "refused",
            ErrorKind::NotLeader => "not_sent",
        },
    }
}

impl Metrics {
    fn observe_call(
        &self,
        account: &str,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.cloudfront_calls
            .get_or_create(&CallLabels {
                account: account.to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.cloudfront_duration
            .get_or_create(&OperationLabels {
                account: account.to_owned(),
                operation,
            })
            .observe(took.as_secs_f64());
    }

    /// How many keyrings of `account` no object claims (from the account's last check).
    pub fn set_unclaimed_keyrings(&self, account: &str, count: usize) {
        self.unclaimed_keyrings
            .get_or_create(&AccountLabels {
                account: account.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// One reconcile: `Ok` or the error's category.
    pub fn observe_reconcile(&self, result: std::result::Result<(), &'static str>, took: Duration) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result: outcome })
            .inc();
        if let Err(reason) = result {
            self.reconcile_errors
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text: the counters so far, plus per-object gauges from `objects` and
    /// whether this replica leads.
    pub fn render(
        &self,
        objects: &[Arc<SigningKeyGroup>],
        leader: bool,
        budget_rates: &[(String, &'static str, f64)],
        now: jiff::Timestamp,
    ) -> String {
        let mut registry = Registry::with_prefix("keyfront");
        registry.register(
            "cloudfront_calls",
            "CloudFront API calls by account, operation and outcome",
            self.cloudfront_calls.clone(),
        );
        registry.register(
            "cloudfront_call_duration_seconds",
            "CloudFront API call latency by account and operation",
            self.cloudfront_duration.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by result (ok, error)",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason (the Ready condition's reason)",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile took",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "unclaimed_keyrings",
            "Keyrings of an account that no SigningKeyGroup claims (Retain, forced finalizer removal, deleted namespace); their keys still count against the account's quotas",
            self.unclaimed_keyrings.clone(),
        );
        let leader_gauge = Gauge::<i64>::default();
        leader_gauge.set(i64::from(leader));
        registry.register(
            "leader",
            "1 if this replica holds the leader Lease (or runs without election)",
            leader_gauge,
        );
        let rates = Family::<BudgetLabels, FloatGauge>::default();
        for (account, class, rate) in budget_rates {
            rates
                .get_or_create(&BudgetLabels {
                    account: account.clone(),
                    class,
                })
                .set(*rate);
        }
        registry.register(
            "cloudfront_budget_rate",
            "Calls per second the CloudFront call budget allows now, per account and class (read, write); below the configured rate after throttling",
            rates,
        );
        let ready = Family::<ReadyLabels, Gauge>::default();
        let revocation_blocked = Family::<ObjectLabels, Gauge>::default();
        let active_age = Family::<ObjectLabels, FloatGauge>::default();
        let next_rotation = Family::<ObjectLabels, FloatGauge>::default();
        let last_rotation = Family::<ObjectLabels, FloatGauge>::default();
        let keys = Family::<KeyStateLabels, Gauge>::default();
        for object in objects {
            let labels = ObjectLabels {
                namespace: object.metadata.namespace.clone().unwrap_or_default(),
                name: object.metadata.name.clone().unwrap_or_default(),
            };
            let status = object.status.as_ref();
            let ready_condition =
                status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            revocation_blocked.get_or_create(&labels).set(i64::from(
                ready_condition.is_some_and(|c| c.reason == reasons::REVOCATION_BLOCKED),
            ));
            let ready_status = ready_condition.map_or("Unknown", |c| match c.status.as_str() {
                "True" => "True",
                "False" => "False",
                _ => "Unknown",
            });
            for value in ["True", "False", "Unknown"] {
                ready
                    .get_or_create(&ReadyLabels {
                        namespace: labels.namespace.clone(),
                        name: labels.name.clone(),
                        status: value,
                    })
                    .set(i64::from(value == ready_status));
            }
            let Some(status) = status else { continue };
            let seconds = |t: &jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
            if let Some(next) = &status.next_rotation_time {
                next_rotation.get_or_create(&labels).set(seconds(&next.0));
            }
            if let Some(last) = &status.last_rotation_time {
                last_rotation.get_or_create(&labels).set(seconds(&last.0));
                active_age
                    .get_or_create(&labels)
                    .set(now.duration_since(last.0).as_secs_f64().max(0.0));
            }
            for state in [
                KeyState::Staged,
                KeyState::Published,
                KeyState::Active,
                KeyState::Retiring,
            ] {
                let count = status.keys.iter().filter(|k| k.state == state).count();
                keys.get_or_create(&KeyStateLabels {
                    namespace: labels.namespace.clone(),
                    name: labels.name.clone(),
                    state: key_state_label(state),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        registry.register(
            "signingkeygroup_ready",
            "Ready condition of each SigningKeyGroup, one-hot over True/False/Unknown",
            ready,
        );
        registry.register(
            "signingkeygroup_revocation_blocked",
            "1 while a revoked key's successor cannot be created because the AWS account has no public key left, not even the one keyfront keeps for revocations: the compromised key stays trusted",
            revocation_blocked,
        );
        registry.register(
            "signingkeygroup_active_key_age_seconds",
            "Seconds since the active key became active",
            active_age,
        );
        registry.register(
            "signingkeygroup_next_rotation_timestamp_seconds",
            "When the next rotation is due (Unix time)",
            next_rotation,
        );
        registry.register(
            "signingkeygroup_last_rotation_timestamp_seconds",
            "When the active key became active (Unix time)",
            last_rotation,
        );
        registry.register(
            "signingkeygroup_keys",
            "Keys of each SigningKeyGroup by state",
            keys,
        );
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

fn key_state_label(state: KeyState) -> &'static str {
    match state {
        KeyState::Staged => "staged",
        KeyState::Published => "published",
        KeyState::Active => "active",
        KeyState::Retiring => "retiring",
    }
}

/// Hands out [`Metered`] clients: every CloudFront call of every account is counted.
#[derive(Debug, Clone)]
pub struct MeteredAccounts<A> {
    pub inner: A,
    pub metrics: Metrics,
}

impl<A: CloudFrontAccounts> CloudFrontAccounts for MeteredAccounts<A> {
    type Client = Metered<A::Client>;

    async fn connect(&self, access: &AccountAccess) -> Result<Self::Client> {
        Ok(Hooked {
            inner: self.inner.connect(access).await?,
            hook: CallMetrics {
                account: access.account.clone(),
                metrics: self.metrics.clone(),
            },
        })
    }

    async fn caller_account(&self, access: &AccountAccess) -> Result<Option<String>> {
        self.inner.caller_account(access).await
    }
}

/// A CloudFront client whose calls are counted and timed under its account's name.
pub type Metered<C> = Hooked<C, CallMetrics>;

/// Counts and times each call under its account's name.
#[derive(Debug, Clone)]
pub struct CallMetrics {
    account: String,
    metrics: Metrics,
}

impl CallHook for CallMetrics {
    async fn around<T: Send>(
        &self,
        call: Call,
        run: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let start = Instant::now();
        let result = run.await;
        self.metrics.observe_call(
            &self.account,
            call.operation,
            outcome(&result),
            start.elapsed(),
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alerts select on these outcome values.
    #[test]
    fn outcomes_name_what_the_alerts_select() {
        let error = |kind| -> Result<()> { Err(CloudFrontError::new("X", kind, "Code", "m")) };
        assert_eq!(outcome(&Ok(())), "ok");
        assert_eq!(outcome(&error(ErrorKind::Throttled)), "throttled");
        assert_eq!(outcome(&error(ErrorKind::AccessDenied)), "access_denied");
        assert_eq!(
            outcome(&error(ErrorKind::PreconditionFailed)),
            "precondition_failed"
        );
        assert_eq!(outcome(&error(ErrorKind::NotFound)), "not_found");
        assert_eq!(outcome(&error(ErrorKind::Transient)), "server_error");
    }

    #[test]
    fn a_metered_call_is_counted_under_its_account_operation_and_outcome() {
        let metrics = Metrics::default();
        metrics.observe_call(
            "media",
            "UpdateKeyGroup",
            "throttled",
            Duration::from_millis(30),
        );
        metrics.observe_reconcile(Err("CloudFrontThrottled"), Duration::from_millis(40));
        let text = metrics.render(
            &[],
            true,
            &[("media".into(), "write", 0.5)],
            jiff::Timestamp::now(),
        );
        for line in [
            r#"keyfront_cloudfront_calls_total{account="media",operation="UpdateKeyGroup",outcome="throttled"} 1"#,
            r#"keyfront_reconciles_total{result="error"} 1"#,
            r#"keyfront_reconciles_total{result="ok"} 0"#,
            r#"keyfront_reconcile_errors_total{reason="CloudFrontThrottled"} 1"#,
            "keyfront_leader 1",
            r#"keyfront_cloudfront_budget_rate{account="media",class="write"} 0.5"#,
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
    }
}
