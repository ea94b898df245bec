//! IAM enforcement: the emulator can be given a policy per set of credentials (an access key)
//! or per role, and then evaluates every CloudFront and STS call of that caller against it.
//!
//! Evaluation follows AWS's documented policy evaluation logic for a single identity-based
//! policy (and a role's trust policy for `AssumeRole`): an explicit `Deny` that matches wins;
//! otherwise an `Allow` that matches allows; otherwise the call is implicitly denied. A
//! statement matches when its `Action` (or not its `NotAction`), its `Resource` and every
//! `Condition` match. `*` and `?` are wildcards; actions compare case-insensitively, ARNs
//! case-sensitively. Condition operators: `StringEquals`, `StringNotEquals`, `StringLike`,
//! `StringNotLike`; a key the request lacks fails the positive operators. Any other operator
//! fails closed. moto evaluates identity policies only in its server mode for some services and
//! not CloudFront, so it cannot be the peer here; the tests follow AWS's documentation.
//!
//! A caller with no policy is not checked, so every emulator that is not given one behaves as
//! before. Denials carry the body and status AWS returns, with AWS's message wording, which is
//! what keyfront reads the missing action and resource from.

use std::collections::{BTreeMap, HashMap};

use super::model::ApiError;
use crate::iam::{Effect, PolicyDocument, Principal, Statement};

/// The result of evaluating a request against a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ImplicitDeny,
    ExplicitDeny,
}

/// One request, as IAM sees it.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    /// The caller's ARN, for trust policies' `Principal`.
    pub principal: &'a str,
    /// Condition keys (for example `sts:ExternalId`).
    pub context: BTreeMap<&'a str, &'a str>,
}

/// Policies by principal: access key IDs and role ARNs to identity policies, role ARNs to
/// trust policies.
#[derive(Debug, Default)]
pub struct Policies {
    identity: HashMap<String, PolicyDocument>,
    trust: HashMap<String, PolicyDocument>,
}

impl Policies {
    /// Sets (or with `None`, removes) the identity policy of an access key ID or a role ARN.
    pub fn set_identity(&mut self, principal: &str, policy: Option<PolicyDocument>) {
        match policy {
            Some(policy) => self.identity.insert(principal.to_owned(), policy),
            None => self.identity.remove(principal),
        };
    }

    /// Sets the trust policy of a role.
    pub fn set_trust(&mut self, role_arn: &str, policy: PolicyDocument) {
        self.trust.insert(role_arn.to_owned(), policy);
    }

    /// The identity policy checked for a caller: its access key's, else its role's.
    pub fn identity_policy(
        &self,
        access_key_id: Option<&str>,
        role_arn: Option<&str>,
    ) -> Option<&PolicyDocument> {
        access_key_id
            .and_then(|key| self.identity.get(key))
            .or_else(|| role_arn.and_then(|role| self.identity.get(role)))
    }

    pub fn trust_policy(&self, role_arn: &str) -> Option<&PolicyDocument> {
        self.trust.get(role_arn)
    }
}

/// `Ok` if `policy` (when there is one) allows `request`; else AWS's AccessDenied.
pub fn authorize(policy: Option<&PolicyDocument>, request: &Request<'_>) -> Result<(), ApiError> {
    let Some(policy) = policy else {
        return Ok(());
    };
    let because = match evaluate(policy, request) {
        Decision::Allow => return Ok(()),
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_owned(),
        Decision::ImplicitDeny => format!(
            "because no identity-based policy allows the {} action",
            request.action
        ),
    };
    Err(access_denied(request, &because))
}

/// AWS's AccessDenied, in its wording: `User: ARN is not authorized to perform: ACTION on
/// resource: RESOURCE …`.
pub fn access_denied(request: &Request<'_>, because: &str) -> ApiError {
    ApiError::new(
        403,
        "AccessDenied",
        format!(
            "User: {} is not authorized to perform: {} on resource: {} {because}",
            request.principal, request.action, request.resource
        ),
    )
}

/// Explicit deny over allow over implicit deny.
pub fn evaluate(policy: &PolicyDocument, request: &Request<'_>) -> Decision {
    let matching: Vec<&Statement> = policy
        .statement
        .iter()
        .filter(|s| statement_matches(s, request))
        .collect();
    if matching.iter().any(|s| s.effect == Effect::Deny) {
        Decision::ExplicitDeny
    } else if matching.iter().any(|s| s.effect == Effect::Allow) {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn statement_matches(statement: &Statement, request: &Request<'_>) -> bool {
    let action =
        |pattern: &String| wildcard(&pattern.to_lowercase(), &request.action.to_lowercase());
    let action_ok = match (&statement.action, &statement.not_action) {
        (Some(actions), _) => actions.values().iter().any(action),
        (None, Some(excluded)) => !excluded.values().iter().any(action),
        (None, None) => false,
    };
    let resource_ok = statement
        .resource
        .as_ref()
        .is_none_or(|r| r.values().iter().any(|p| wildcard(p, request.resource)));
    let principal_ok = statement
        .principal
        .as_ref()
        .is_none_or(|p| principal_matches(p, request.principal));
    let conditions_ok = statement.condition.as_ref().is_none_or(|conditions| {
        conditions.iter().all(|(operator, keys)| {
            keys.iter().all(|(key, values)| {
                condition_matches(
                    operator,
                    request.context.get(key.as_str()).copied(),
                    values.values(),
                )
            })
        })
    });
    action_ok && resource_ok && principal_ok && conditions_ok
}

fn condition_matches(operator: &str, value: Option<&str>, expected: &[String]) -> bool {
    match (operator, value) {
        ("StringEquals", Some(v)) => expected.iter().any(|e| e == v),
        ("StringNotEquals", Some(v)) => expected.iter().all(|e| e != v),
        ("StringLike", Some(v)) => expected.iter().any(|e| wildcard(e, v)),
        ("StringNotLike", Some(v)) => expected.iter().all(|e| !wildcard(e, v)),
        // A missing key matches only the negated operators; an unknown operator fails closed.
        ("StringNotEquals" | "StringNotLike", None) => true,
        _ => false,
    }
}

/// Whether a trust policy's `Principal` names the caller: `*`, its ARN, its role (for an
/// assumed-role session), or its account (`arn:…:iam::ACCOUNT:root` or the bare ID).
fn principal_matches(principal: &Principal, caller: &str) -> bool {
    let values: Vec<&String> = match principal {
        Principal::Everyone(star) => return star == "*",
        Principal::ByType(by_type) => by_type
            .get("AWS")
            .map(|v| v.values().iter().collect())
            .unwrap_or_default(),
    };
    let account = caller.split(':').nth(4).unwrap_or_default();
    let role = role_of_session(caller);
    values.iter().any(|p| {
        p.as_str() == "*"
            || p.as_str() == caller
            || role.as_deref() == Some(p.as_str())
            || p.as_str() == account
            || p.strip_suffix(":root")
                .is_some_and(|root| root.split(':').nth(4) == Some(account))
    })
}

/// `arn:aws:sts::A:assumed-role/R/S` → `arn:aws:iam::A:role/R`.
fn role_of_session(arn: &str) -> Option<String> {
    let (head, rest) = arn.split_once(":sts::")?;
    let (account, session) = rest.split_once(":assumed-role/")?;
    let role = session.split('/').next()?;
    Some(format!("{head}:iam::{account}:role/{role}"))
}

/// IAM's glob: `*` any run of characters, `?` any one.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> PolicyDocument {
        serde_json::from_value(json).expect("a policy document")
    }

    fn request<'a>(action: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            action,
            resource,
            principal: "arn:aws:sts::111111111111:assumed-role/keyfront/s1",
            context: BTreeMap::new(),
        }
    }

    const DIST: &str = "arn:aws:cloudfront::111111111111:distribution/E1";

    #[test]
    fn explicit_deny_beats_allow_and_nothing_allowed_is_denied() {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "cloudfront:*", "Resource": "*"},
                {"Effect": "Deny", "Action": ["cloudfront:UpdateDistribution"], "Resource": DIST},
            ]
        }));
        assert_eq!(
            evaluate(&p, &request("cloudfront:GetDistribution", DIST)),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &request("cloudfront:UpdateDistribution", DIST)),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(
                &p,
                &request(
                    "cloudfront:UpdateDistribution",
                    "arn:aws:cloudfront::111111111111:distribution/E2"
                )
            ),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &request("sts:AssumeRole", "*")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn actions_ignore_case_resources_do_not_and_wildcards_match() {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "CloudFront:Get*", "Resource": "arn:aws:cloudfront::111111111111:distribution/E?"}]
        }));
        assert_eq!(
            evaluate(&p, &request("cloudfront:GetDistributionConfig", DIST)),
            Decision::Allow
        );
        assert_eq!(
            evaluate(
                &p,
                &request(
                    "cloudfront:GetDistribution",
                    "arn:aws:cloudfront::111111111111:distribution/e1"
                )
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                &p,
                &request(
                    "cloudfront:GetDistribution",
                    "arn:aws:cloudfront::111111111111:distribution/E12"
                )
            ),
            Decision::ImplicitDeny
        );
        let not_action = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "NotAction": "cloudfront:Delete*", "Resource": "*"}]
        }));
        assert_eq!(
            evaluate(&not_action, &request("cloudfront:DeleteKeyGroup", "*")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&not_action, &request("cloudfront:CreateKeyGroup", "*")),
            Decision::Allow
        );
    }

    #[test]
    fn a_trust_policy_checks_the_principal_and_the_external_id() {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111111111111:role/keyfront"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "prod-1"}}
            }]
        }));
        let mut r = request("sts:AssumeRole", "arn:aws:iam::222222222222:role/media");
        assert_eq!(evaluate(&p, &r), Decision::ImplicitDeny, "no external ID");
        r.context.insert("sts:ExternalId", "prod-2");
        assert_eq!(
            evaluate(&p, &r),
            Decision::ImplicitDeny,
            "the wrong external ID"
        );
        r.context.insert("sts:ExternalId", "prod-1");
        assert_eq!(evaluate(&p, &r), Decision::Allow);
        r.principal = "arn:aws:sts::111111111111:assumed-role/other/s1";
        assert_eq!(evaluate(&p, &r), Decision::ImplicitDeny, "another role");
        let root = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "sts:AssumeRole"}]
        }));
        assert_eq!(
            evaluate(&root, &r),
            Decision::Allow,
            "any principal of the account"
        );
    }

    #[test]
    fn a_denial_says_what_aws_says() {
        let p = policy(serde_json::json!({"Version": "2012-10-17", "Statement": []}));
        let error = authorize(Some(&p), &request("cloudfront:GetDistributionConfig", DIST))
            .expect_err("denied");
        assert_eq!((error.status, error.code.as_str()), (403, "AccessDenied"));
        assert_eq!(
            error.message,
            format!(
                "User: arn:aws:sts::111111111111:assumed-role/keyfront/s1 is not authorized to perform: cloudfront:GetDistributionConfig on resource: {DIST} because no identity-based policy allows the cloudfront:GetDistributionConfig action"
            )
        );
        assert!(authorize(None, &request("cloudfront:GetDistributionConfig", DIST)).is_ok());
    }

    #[test]
    fn wildcards() {
        for (pattern, text, matches) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*E1", "distribution/E1", true),
            ("a*b*c", "aXbYbZc", true),
        ] {
            assert_eq!(wildcard(pattern, text), matches, "{pattern} ~ {text}");
        }
    }
}
