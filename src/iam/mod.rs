//! IAM for keyfront: the policy documents its roles need, generated from the
//! CloudFrontAccounts (`keyfront iam-policy`), and the document shapes the emulator evaluates.
//!
//! - [`policy`]: the permission policy of the role that calls CloudFront for an account, the
//!   operator role's own policy (CloudFront, and `sts:AssumeRole` on the accounts' roles), and
//!   the trust policies for IRSA, EKS Pod Identity and cross-account `assumeRole`.
//! - [`command`]: `keyfront iam-policy`.
//!
//! The document types follow the IAM policy grammar as far as keyfront and its tests use it:
//! `Effect`, `Action`/`NotAction`, `Resource`, `Principal` and `Condition`, each of which may be
//! one value or a list. The AWS SDKs have no IAM policy types (policies are strings to them),
//! and no maintained Rust crate models the grammar, so it is written here.

pub mod command;
pub mod policy;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The policy language version every document uses.
pub const VERSION: &str = "2012-10-17";

/// An IAM policy document (identity-based, or a role's trust policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: String,
    pub statement: Vec<Statement>,
}

impl PolicyDocument {
    pub fn new(statement: Vec<Statement>) -> Self {
        Self {
            version: VERSION.to_owned(),
            statement,
        }
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// One value or a list, as IAM accepts for most elements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

impl From<Vec<String>> for OneOrMany {
    fn from(mut values: Vec<String>) -> Self {
        if values.len() == 1 {
            Self::One(values.remove(0))
        } else {
            Self::Many(values)
        }
    }
}

/// A trust policy's `Principal`: `"*"`, or principals by type (`AWS`, `Service`, `Federated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    Everyone(String),
    ByType(BTreeMap<String, OneOrMany>),
}

/// `Condition`: operator (`StringEquals`, `StringLike`, …) → condition key → values.
pub type Condition = BTreeMap<String, BTreeMap<String, OneOrMany>>;

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

impl Statement {
    /// `Allow` of `actions` on `resources`.
    pub fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Self {
        Self {
            sid: Some(sid.to_owned()),
            effect: Effect::Allow,
            principal: None,
            action: Some(OneOrMany::from(
                actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            )),
            not_action: None,
            resource: Some(OneOrMany::from(resources)),
            condition: None,
        }
    }
}
