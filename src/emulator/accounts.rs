//! Accounts: the emulator as several AWS accounts, told apart by the caller's credentials, as
//! AWS tells them apart.
//!
//! Each account is its own [`Emulator`] (CloudFront state, quotas, faults), created on first
//! use. Static credentials (any access key the emulator did not issue) act in
//! [`DEFAULT_ACCOUNT_ID`]; STS `AssumeRole` issues temporary credentials that act in the
//! role ARN's account. The HTTP fronts find the caller from the SigV4 `Authorization` header
//! and record every call in a request log (`GET /_emulator/requests`), the emulator's
//! CloudTrail.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Emulator;
use super::faults::FaultSettings;
use super::iam::{self, Policies};
use super::model::{ApiError, ModelSettings};
use crate::clock::Clock;
use crate::iam::PolicyDocument;

/// The account static credentials act in (moto uses the same).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub account: String,
    /// `arn:aws:iam::<account>:user/emulator` for static keys; the assumed-role ARN otherwise.
    pub arn: String,
    pub user_id: String,
    /// The role an assumed-role session came from (whose policy applies to it).
    #[serde(skip)]
    pub role_arn: Option<String>,
}

/// One call, as the request log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub account: String,
    pub caller: String,
    pub operation: String,
    /// When the call arrived (the emulator's clock), so tests can measure call rates.
    pub at: Timestamp,
    /// The caller's user agent, as CloudTrail's `userAgent` (for the AWS SDKs, their
    /// `x-amz-user-agent`, which carries `app/<name>`).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// IAM denied the call (403 AccessDenied), as CloudTrail's `errorCode` would say.
    #[serde(default)]
    pub denied: bool,
}

/// Temporary credentials from `AssumeRole`.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: Timestamp,
    pub identity: Identity,
}

/// What new accounts are made of.
struct Blueprint {
    settings: ModelSettings,
    faults: FaultSettings,
    clock: Arc<dyn Clock>,
}

struct State {
    accounts: BTreeMap<String, Emulator>,
    sessions: HashMap<String, Identity>,
    requests: Vec<RequestRecord>,
    /// Roles whose trust policy requires an external ID, and which.
    required_external_ids: HashMap<String, String>,
    /// IAM policies to enforce, by principal.
    iam: Policies,
}

/// Every account of one emulated AWS. Clones share state.
#[derive(Clone)]
pub struct Aws {
    blueprint: Arc<Blueprint>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws").finish_non_exhaustive()
    }
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// The account of `arn:aws:iam::<account>:role/<name>` and the role name.
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws")?;
    let (_, rest) = rest.split_once(":iam::")?;
    let (account, role) = rest.split_once(":role/")?;
    let ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name = role.rsplit('/').next().filter(|n| !n.is_empty())?;
    ok.then_some((account, name))
}

fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// One account with no faults elsewhere: what tests of a single account serve.
impl From<Emulator> for Aws {
    fn from(default: Emulator) -> Self {
        Self::new(default, FaultSettings::default())
    }
}

impl Aws {
    /// An AWS whose default account is `default`; other accounts get its model settings and
    /// clock, and these fault settings (each with its own seed, so IDs differ by account).
    pub fn new(default: Emulator, faults: FaultSettings) -> Self {
        let (settings, clock) = {
            let model = default.model();
            (model.settings().clone(), model.clock())
        };
        Self {
            blueprint: Arc::new(Blueprint {
                settings,
                faults,
                clock,
            }),
            state: Arc::new(Mutex::new(State {
                accounts: BTreeMap::from([(DEFAULT_ACCOUNT_ID.to_owned(), default)]),
                sessions: HashMap::new(),
                requests: Vec::new(),
                required_external_ids: HashMap::new(),
                iam: Policies::default(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `AssumeRole` of `role_arn` succeed only with this external ID.
    pub fn require_external_id(&self, role_arn: &str, external_id: &str) {
        self.state()
            .required_external_ids
            .insert(role_arn.to_owned(), external_id.to_owned());
    }

    /// Enforces `policy` on calls made with this access key ID, or as this role (`None`: no
    /// longer checked).
    pub fn set_identity_policy(&self, principal: &str, policy: Option<PolicyDocument>) {
        self.state().iam.set_identity(principal, policy);
    }

    /// Makes `AssumeRole` of `role_arn` subject to this trust policy.
    pub fn set_trust_policy(&self, role_arn: &str, policy: PolicyDocument) {
        self.state().iam.set_trust(role_arn, policy);
    }

    /// Whether the caller's identity policy, if it has one, allows `action` on `resource`.
    pub fn authorize(
        &self,
        access_key_id: Option<&str>,
        identity: &Identity,
        action: &str,
        resource: &str,
    ) -> Result<(), ApiError> {
        let state = self.state();
        let policy = state
            .iam
            .identity_policy(access_key_id, identity.role_arn.as_deref());
        iam::authorize(
            policy,
            &iam::Request {
                action,
                resource,
                principal: &identity.arn,
                context: BTreeMap::new(),
            },
        )
    }

    /// Whether the caller may assume `role_arn`: its identity policy (if any) allows it, and
    /// the role's trust policy (if set) trusts the caller with this external ID.
    pub fn authorize_assume_role(
        &self,
        access_key_id: Option<&str>,
        identity: &Identity,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<(), ApiError> {
        self.authorize(access_key_id, identity, "sts:AssumeRole", role_arn)?;
        let state = self.state();
        let Some(trust) = state.iam.trust_policy(role_arn) else {
            return Ok(());
        };
        let request = iam::Request {
            action: "sts:AssumeRole",
            resource: role_arn,
            principal: &identity.arn,
            context: external_id
                .map(|id| BTreeMap::from([("sts:ExternalId", id)]))
                .unwrap_or_default(),
        };
        match iam::evaluate(trust, &request) {
            iam::Decision::Allow => Ok(()),
            _ => Err(iam::access_denied(
                &request,
                "because the role's trust policy does not allow it",
            )),
        }
    }

    /// The account `id`, created on first use.
    pub fn account(&self, id: &str) -> Emulator {
        let mut state = self.state();
        if let Some(emulator) = state.accounts.get(id) {
            return emulator.clone();
        }
        let account_seed = id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let blueprint = &self.blueprint;
        let emulator = Emulator::new(
            ModelSettings {
                seed: blueprint.settings.seed.map(|s| s ^ account_seed),
                ..blueprint.settings.clone()
            },
            FaultSettings {
                seed: blueprint.faults.seed.map(|s| s ^ account_seed),
                ..blueprint.faults.clone()
            },
            blueprint.clock.clone(),
        );
        state.accounts.insert(id.to_owned(), emulator.clone());
        emulator
    }

    /// Every account created so far.
    pub fn accounts(&self) -> Vec<Emulator> {
        self.state().accounts.values().cloned().collect()
    }

    /// Who calls with this access key (none or unknown: static credentials).
    pub fn identity(&self, access_key_id: Option<&str>) -> Identity {
        access_key_id
            .and_then(|key| self.state().sessions.get(key).cloned())
            .unwrap_or_else(|| Identity {
                account: DEFAULT_ACCOUNT_ID.to_owned(),
                arn: format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/emulator"),
                user_id: "AIDAEMULATOR".to_owned(),
                role_arn: None,
            })
    }

    /// STS `AssumeRole`: temporary credentials acting in the role's account.
    pub fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
        duration: Duration,
    ) -> Result<IssuedCredentials, ApiError> {
        let (account, role_name) = parse_role_arn(role_arn).ok_or_else(|| {
            ApiError::new(
                400,
                "ValidationError",
                format!("{role_arn} is invalid: RoleArn must be an IAM role ARN"),
            )
        })?;
        if !valid_session_name(session_name) {
            return Err(ApiError::new(
                400,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and length 2..64"
                ),
            ));
        }
        let mut state = self.state();
        if let Some(required) = state.required_external_ids.get(role_arn)
            && external_id != Some(required.as_str())
        {
            return Err(ApiError::new(
                403,
                "AccessDenied",
                format!(
                    "User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                ),
            ));
        }
        let identity = Identity {
            account: account.to_owned(),
            arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"),
            user_id: format!("AROA{}:{session_name}", random_token(17)),
            role_arn: Some(role_arn.to_owned()),
        };
        let credentials = IssuedCredentials {
            access_key_id: format!("ASIA{}", random_token(16)),
            secret_access_key: random_token(40),
            session_token: random_token(64),
            expiration: self
                .blueprint
                .clock
                .now()
                .saturating_add(jiff::SignedDuration::try_from(duration).unwrap_or_default())
                .unwrap_or(Timestamp::MAX),
            identity: identity.clone(),
        };
        state
            .sessions
            .insert(credentials.access_key_id.clone(), identity);
        Ok(credentials)
    }

    /// Adds a call to the request log.
    pub fn record(
        &self,
        identity: &Identity,
        user_agent: Option<&str>,
        operation: &str,
        denied: bool,
    ) {
        let at = self.blueprint.clock.now();
        self.state().requests.push(RequestRecord {
            account: identity.account.clone(),
            caller: identity.arn.clone(),
            operation: operation.to_owned(),
            at,
            user_agent: user_agent.map(str::to_owned),
            denied,
        });
    }

    /// Every call so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn aws() -> Aws {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
        let default = Emulator::new(
            ModelSettings::default(),
            FaultSettings::default(),
            clock.clone(),
        );
        Aws::new(default, FaultSettings::default())
    }

    #[test]
    fn an_assumed_role_acts_in_the_roles_account_and_static_keys_in_the_default() {
        let aws = aws();
        let issued = aws
            .assume_role(
                "arn:aws:iam::210987654321:role/keyfront-media",
                "keyfront-team-a",
                None,
                Duration::from_secs(3600),
            )
            .unwrap();
        let identity = aws.identity(Some(&issued.access_key_id));
        assert_eq!(identity.account, "210987654321");
        assert_eq!(
            identity.arn,
            "arn:aws:sts::210987654321:assumed-role/keyfront-media/keyfront-team-a"
        );
        assert_eq!(aws.identity(Some("AKIDSTATIC")).account, DEFAULT_ACCOUNT_ID);
        assert_eq!(aws.identity(None).account, DEFAULT_ACCOUNT_ID);
    }

    #[test]
    fn assume_role_checks_the_arn_session_name_and_required_external_id() {
        let aws = aws();
        let role = "arn:aws:iam::210987654321:role/r";
        let fail = |arn: &str, session: &str, external: Option<&str>| {
            aws.assume_role(arn, session, external, Duration::from_secs(900))
                .unwrap_err()
                .code
        };
        assert_eq!(fail("role/r", "ok-name", None), "ValidationError");
        assert_eq!(fail(role, "x", None), "ValidationError");
        aws.require_external_id(role, "prod-1");
        assert_eq!(fail(role, "ok-name", None), "AccessDenied");
        assert_eq!(fail(role, "ok-name", Some("prod-2")), "AccessDenied");
        assert!(
            aws.assume_role(role, "ok-name", Some("prod-1"), Duration::from_secs(900))
                .is_ok()
        );
    }
}
