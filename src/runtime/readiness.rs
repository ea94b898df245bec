//! What `/readyz` answers: ready only once every watch has listed what it watches and
//! keyfront's own AWS credentials have made one CloudFront read. Until then it answers 503 and
//! names what it is waiting for, so `kubectl describe pod` shows why a replica is not ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;

use crate::cloudfront::{AccountAccess, CloudFront as _, CloudFrontAccounts};

/// The checks `/readyz` waits for, each pending with a reason or passed.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pending: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Readiness {
    /// Adds a check that `/readyz` waits for until [`Readiness::pass`] is called for it.
    pub fn expect(&self, check: impl Into<String>, waiting: impl Into<String>) {
        self.lock().insert(check.into(), waiting.into());
    }

    /// Marks `check` as still pending, now because of `reason`.
    pub fn fail(&self, check: &str, reason: impl Into<String>) {
        self.lock().insert(check.to_owned(), reason.into());
    }

    pub fn pass(&self, check: &str) {
        self.lock().remove(check);
    }

    /// `200 ok`, or `503` with one line per pending check.
    pub fn answer(&self) -> (StatusCode, String) {
        let pending = self.lock();
        if pending.is_empty() {
            return (StatusCode::OK, "ok\n".to_owned());
        }
        let lines: String = pending
            .iter()
            .map(|(check, why)| format!("not ready: {check}: {why}\n"))
            .collect();
        (StatusCode::SERVICE_UNAVAILABLE, lines)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The readiness check of keyfront's own credentials.
pub const CREDENTIALS_CHECK: &str = "CloudFront credentials";

/// Reads CloudFront once with keyfront's own credentials (ListKeyGroups), retrying every
/// `retry` (logged at warn) until it passes.
pub async fn check_credentials<A: CloudFrontAccounts>(
    accounts: &A,
    keyring_namespace: &str,
    readiness: &Readiness,
    retry: Duration,
) {
    let access = AccountAccess {
        account: "(keyfront's own credentials)".to_owned(),
        assume_role: None,
        namespace: keyring_namespace.to_owned(),
        aws_account_id: None,
    };
    loop {
        let result = match accounts.connect(&access).await {
            Ok(client) => client.list_key_groups().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                readiness.pass(CREDENTIALS_CHECK);
                tracing::info!("CloudFront credential check passed");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_s = retry.as_secs(), "CloudFront credential check failed");
                readiness.fail(CREDENTIALS_CHECK, format!("ListKeyGroups failed: {error}"));
            }
        }
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passed_and_names_what_is_pending() {
        let readiness = Readiness::default();
        readiness.expect("watch A", "not listed yet");
        readiness.expect(CREDENTIALS_CHECK, "not checked yet");
        let (code, text) = readiness.answer();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("watch A: not listed yet"), "{text}");
        readiness.pass("watch A");
        readiness.fail(CREDENTIALS_CHECK, "ListKeyGroups failed: AccessDenied");
        let (code, text) = readiness.answer();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            text,
            "not ready: CloudFront credentials: ListKeyGroups failed: AccessDenied\n"
        );
        readiness.pass(CREDENTIALS_CHECK);
        assert_eq!(readiness.answer(), (StatusCode::OK, "ok\n".to_owned()));
    }
}
