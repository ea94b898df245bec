//! [`SdkAccounts`]: CloudFront clients per `CloudFrontAccount` on the AWS SDK.
//!
//! Base credentials come from `aws-config`'s default chain (IRSA web identity, EKS Pod
//! Identity, environment, shared profile, IMDS). An account with `assumeRole` gets a client
//! whose credentials come from STS `AssumeRole`, with the tenant namespace as the session
//! name so CloudTrail shows which tenant acted. One client is kept per role, external ID and
//! session; the SDK's identity cache refreshes its credentials before they expire. Endpoints
//! can be overridden so the same code talks to `keyfront emulator` (which serves STS too).
//! Timeouts bound every call. STS calls use the SDK's standard retries; CloudFront calls are
//! retried by the call budget ([`super::budget`]), one token per attempt.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, SdkConfig};
use aws_sdk_cloudfront::config::SharedCredentialsProvider;

use super::sdk::{SdkCloudFront, map_err};
use super::{AccountAccess, CloudFrontAccounts, CloudFrontError, ErrorKind, Result};

/// CloudFront is a global service; its API is signed for us-east-1.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct SdkSettings {
    /// CloudFront endpoint override, e.g. `http://127.0.0.1:18080` for the emulator.
    pub endpoint: Option<String>,
    /// STS endpoint override (the emulator serves STS on its CloudFront address).
    pub sts_endpoint: Option<String>,
    /// Signing region; CloudFront uses us-east-1.
    pub region: Option<String>,
    /// Fixed credentials (access key ID, secret) instead of the default chain: for `keyfront
    /// dev`, whose emulator accepts any.
    pub static_credentials: Option<(String, String)>,
    /// Who is calling, sent as `app/<name>` in the SDK's user agent, which CloudTrail records:
    /// the replica's identity, so an audit can tell which replica wrote.
    pub app_name: Option<String>,
}

/// Bounds for one call: connecting, one attempt, and the whole call including retries.
pub fn default_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(20))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

/// CloudFront (and STS) clients per account, from one base configuration.
#[derive(Debug)]
pub struct SdkAccounts {
    base: SdkConfig,
    settings: SdkSettings,
    own: SdkCloudFront,
    assumed: Mutex<HashMap<AccountAccess, SdkCloudFront>>,
}

/// The STS session name for a tenant namespace: `keyfront-<namespace>`, within STS's 64.
pub fn session_name(namespace: &str) -> String {
    let name = format!("keyfront-{namespace}");
    if name.len() <= 64 {
        name
    } else {
        namespace.chars().take(64).collect()
    }
}

impl SdkAccounts {
    /// Loads the default credential chain once.
    pub async fn from_environment(settings: SdkSettings) -> Self {
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .timeout_config(default_timeouts())
            .retry_config(RetryConfig::standard().with_max_attempts(4));
        if let Some(name) = &settings.app_name {
            match AppName::new(name.clone()) {
                Ok(app_name) => loader = loader.app_name(app_name),
                // Only the audit trail loses the name; calls are unaffected.
                Err(_) => tracing::warn!(
                    app_name = %name,
                    "not sending the replica's name in the AWS user agent: it may hold only letters, digits and !#$%&'*+-.^_`|~"
                ),
            }
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_cloudfront::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "keyfront-static",
            ));
        }
        let base = loader.load().await;
        let own = cloudfront_client(&base, &settings, None);
        Self {
            base,
            settings,
            own,
            assumed: Mutex::new(HashMap::new()),
        }
    }

    fn sts_config(&self) -> SdkConfig {
        let mut builder = self.base.to_builder();
        if let Some(endpoint) = &self.settings.sts_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        builder.build()
    }

    /// The credentials an account's calls use.
    async fn credentials(&self, access: &AccountAccess) -> Option<SharedCredentialsProvider> {
        let role = access.assume_role.as_ref()?;
        let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
            .session_name(session_name(&access.namespace))
            .configure(&self.sts_config());
        if let Some(external_id) = &role.external_id {
            builder = builder.external_id(external_id.clone());
        }
        Some(SharedCredentialsProvider::new(builder.build().await))
    }

    /// The AWS account ID the account's credentials act in (STS `GetCallerIdentity`).
    async fn get_caller_identity(&self, access: &AccountAccess) -> Result<String> {
        let mut config = aws_sdk_sts::config::Builder::from(&self.sts_config());
        if let Some(credentials) = self.credentials(access).await {
            config = config.credentials_provider(credentials);
        }
        let identity = aws_sdk_sts::Client::from_conf(config.build())
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| map_err("GetCallerIdentity", e))?;
        identity.account.ok_or_else(|| {
            CloudFrontError::new(
                "GetCallerIdentity",
                ErrorKind::Transient,
                "IncompleteResponse",
                "response has no Account",
            )
        })
    }
}

fn cloudfront_client(
    base: &SdkConfig,
    settings: &SdkSettings,
    credentials: Option<SharedCredentialsProvider>,
) -> SdkCloudFront {
    let mut config = aws_sdk_cloudfront::config::Builder::from(base);
    if let Some(endpoint) = &settings.endpoint {
        config = config.endpoint_url(endpoint);
    }
    if let Some(credentials) = credentials {
        config = config.credentials_provider(credentials);
    }
    // Retries of CloudFront calls are the budget's (super::budget), so each attempt spends a
    // token and a throttled answer slows every caller of the account, not just this one.
    config = config.retry_config(RetryConfig::disabled());
    SdkCloudFront::new(aws_sdk_cloudfront::Client::from_conf(config.build()))
}

impl CloudFrontAccounts for SdkAccounts {
    type Client = SdkCloudFront;

    async fn connect(&self, access: &AccountAccess) -> Result<SdkCloudFront> {
        if access.assume_role.is_none() {
            return Ok(self.own.clone());
        }
        // The cache is keyed by everything that shapes the session (role, external ID,
        // namespace), not by the account name alone.
        let key = AccountAccess {
            account: String::new(),
            aws_account_id: None,
            ..access.clone()
        };
        if let Some(client) = self
            .assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(client.clone());
        }
        let client = cloudfront_client(&self.base, &self.settings, self.credentials(access).await);
        self.assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, client.clone());
        Ok(client)
    }

    async fn caller_account(&self, access: &AccountAccess) -> Result<Option<String>> {
        self.get_caller_identity(access).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_the_namespace_within_stss_limit() {
        assert_eq!(session_name("team-a"), "keyfront-team-a");
        let long = "n".repeat(63);
        assert_eq!(session_name(&long), long);
        assert!(session_name(&long).len() <= 64);
    }
}
