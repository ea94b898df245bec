//! The CloudFront model: public keys, key groups and distributions with CloudFront's rules.
//!
//! Owns: the emulated account's state and every rule from DESIGN.md ("Facts about CloudFront"):
//! ETags that change on every write, `IfMatch` enforcement, unique names, in-use errors, quotas,
//! trusted-key-group validation and propagation (`InProgress` → `Deployed`, with
//! `ActiveTrustedKeyGroups` showing only deployed state). Both fronts (in-process and HTTP)
//! call these methods; neither adds rules of its own.
//!
//! Here: the stored types, the shared validation helpers and propagation; the operations on
//! public keys and key groups are in [`keys`], those on distributions in [`distributions`].

mod distributions;
mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::xml::Element;
use crate::clock::Clock;
use crate::cloudfront::{
    ActiveKeyGroup, BehaviorSelector, BehaviorTrust, KeyGroupConfig, PublicKey,
};

/// CloudFront's default quotas; each can be raised as AWS raises them on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub public_keys: usize,
    pub key_groups: usize,
    pub keys_per_key_group: usize,
    pub key_groups_per_behavior: usize,
    pub distributions_per_key_group: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            public_keys: 10,
            key_groups: 10,
            keys_per_key_group: 5,
            key_groups_per_behavior: 4,
            distributions_per_key_group: 100,
        }
    }
}

/// How the emulated account behaves.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// How long a distribution stays `InProgress` after a change that affects it.
    pub propagation_delay: Duration,
    pub quotas: Quotas,
    /// Seed for generated IDs and ETags (random when absent).
    pub seed: Option<u64>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            propagation_delay: Duration::from_secs(2),
            quotas: Quotas::default(),
            seed: None,
        }
    }
}

/// A CloudFront API error as it goes on the wire: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidArgument", message)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// What a client sends to create or update a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyConfig {
    pub caller_reference: String,
    pub name: String,
    pub encoded_key: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StoredPublicKey {
    pub id: String,
    pub created_time: Timestamp,
    pub config: PublicKeyConfig,
    pub etag: String,
}

impl StoredPublicKey {
    pub fn summary(&self) -> PublicKey {
        PublicKey {
            id: self.id.clone(),
            name: self.config.name.clone(),
            encoded_key: self.config.encoded_key.clone(),
            comment: self.config.comment.clone(),
            created_time: self.created_time,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredKeyGroup {
    pub id: String,
    pub last_modified_time: Timestamp,
    pub config: KeyGroupConfig,
    pub etag: String,
}

/// What the edge verifies: per behavior the trusted key groups, and each group's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeView {
    pub behaviors: Vec<BehaviorTrust>,
    pub key_groups: BTreeMap<String, Vec<String>>,
}

impl EdgeView {
    /// `ActiveTrustedKeyGroups`: every key group some behavior trusts, with its keys.
    pub fn active_trusted_key_groups(&self) -> Vec<ActiveKeyGroup> {
        let trusted: BTreeSet<&String> = self
            .behaviors
            .iter()
            .flat_map(|b| &b.trusted_key_groups)
            .collect();
        trusted
            .into_iter()
            .map(|id| ActiveKeyGroup {
                key_group_id: id.clone(),
                key_pair_ids: self.key_groups.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct StoredDistribution {
    pub id: String,
    pub arn: String,
    pub domain_name: String,
    pub last_modified_time: Timestamp,
    /// The whole `DistributionConfig` as the client sent it.
    pub config: Element,
    pub etag: String,
    /// When the last change finishes propagating; `None` when `Deployed`.
    pub deploy_due: Option<Timestamp>,
    /// What edge locations serve now.
    pub deployed: EdgeView,
}

impl StoredDistribution {
    pub fn status(&self) -> &'static str {
        if self.deploy_due.is_some() {
            "InProgress"
        } else {
            "Deployed"
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.child_text("Enabled") == Some("true")
    }

    pub fn behaviors(&self) -> Vec<BehaviorTrust> {
        behaviors_of(&self.config)
    }
}

/// The emulated account.
#[derive(Debug)]
pub struct Model {
    clock: Arc<dyn Clock>,
    settings: ModelSettings,
    rng: StdRng,
    public_keys: BTreeMap<String, StoredPublicKey>,
    key_groups: BTreeMap<String, StoredKeyGroup>,
    distributions: BTreeMap<String, StoredDistribution>,
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(crate) fn check_if_match(given: Option<&str>, current: &str) -> ApiResult<()> {
    match given {
        None | Some("") => Err(ApiError::new(
            400,
            "InvalidIfMatchVersion",
            "The If-Match version is missing or not valid for the resource.",
        )),
        Some(etag) if etag != current => Err(ApiError::new(
            412,
            "PreconditionFailed",
            "The precondition given in one or more of the request header fields evaluated to false.",
        )),
        Some(_) => Ok(()),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_comment(comment: Option<&str>) -> ApiResult<()> {
    match comment {
        Some(c) if c.chars().count() > 128 => Err(ApiError::invalid(
            "The comment must be at most 128 characters.",
        )),
        _ => Ok(()),
    }
}

/// CloudFront accepts RSA-2048 and ECDSA P-256 public keys as PEM SubjectPublicKeyInfo.
fn check_encoded_key(pem: &str) -> ApiResult<()> {
    use p256::pkcs8::DecodePublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    if let Ok(key) = rsa::PublicKey::from_public_key_pem(pem.trim()) {
        return if key.size() == 256 {
            Ok(())
        } else {
            Err(ApiError::invalid(
                "The encoded key must be an RSA 2048-bit or ECDSA P-256 public key.",
            ))
        };
    }
    if p256::PublicKey::from_public_key_pem(pem.trim()).is_ok() {
        return Ok(());
    }
    Err(ApiError::invalid(
        "The encoded key is not a PEM-encoded RSA 2048-bit or ECDSA P-256 public key.",
    ))
}

fn trusted_ids(behavior: &Element) -> Vec<String> {
    behavior
        .path(&["TrustedKeyGroups", "Items"])
        .map(|items| {
            items
                .children_named("KeyGroup")
                .map(|k| k.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn cache_behaviors(config: &Element) -> impl Iterator<Item = &Element> {
    config
        .path(&["CacheBehaviors", "Items"])
        .into_iter()
        .flat_map(|items| items.children_named("CacheBehavior"))
}

/// Trusted key groups per behavior of a `DistributionConfig` tree.
pub fn behaviors_of(config: &Element) -> Vec<BehaviorTrust> {
    let default = config.child("DefaultCacheBehavior").map(|b| BehaviorTrust {
        behavior: BehaviorSelector::Default,
        trusted_key_groups: trusted_ids(b),
    });
    let others = cache_behaviors(config).map(|b| BehaviorTrust {
        behavior: BehaviorSelector::PathPattern(
            b.child_text("PathPattern").unwrap_or_default().to_owned(),
        ),
        trusted_key_groups: trusted_ids(b),
    });
    default.into_iter().chain(others).collect()
}

/// A `TrustedKeyGroups` element for these IDs.
pub fn trusted_key_groups_element(ids: &[String]) -> Element {
    let mut element = Element::new("TrustedKeyGroups")
        .with_text("Enabled", (!ids.is_empty()).to_string())
        .with_text("Quantity", ids.len().to_string());
    if !ids.is_empty() {
        element = element.with(ids.iter().fold(Element::new("Items"), |items, id| {
            items.with_text("KeyGroup", id.as_str())
        }));
    }
    element
}

fn parse_quantity(element: &Element, what: &str) -> ApiResult<usize> {
    element
        .child_text("Quantity")
        .ok_or_else(|| ApiError::invalid(format!("{what}.Quantity is required.")))?
        .parse()
        .map_err(|_| ApiError::invalid(format!("{what}.Quantity must be a number.")))
}

fn check_quantity(element: Option<&Element>, item: &str, what: &str) -> ApiResult<()> {
    let Some(element) = element else {
        return Ok(());
    };
    let quantity = parse_quantity(element, what)?;
    let count = element
        .child("Items")
        .map_or(0, |i| i.children_named(item).count());
    if quantity != count {
        return Err(ApiError::new(
            400,
            "InconsistentQuantities",
            format!("The value of {what}.Quantity and the size of Items don't match."),
        ));
    }
    Ok(())
}

impl Model {
    pub fn new(settings: ModelSettings, clock: Arc<dyn Clock>) -> Self {
        let rng = match settings.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            clock,
            settings,
            rng,
            public_keys: BTreeMap::new(),
            key_groups: BTreeMap::new(),
            distributions: BTreeMap::new(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn token(&mut self, prefix: char, len: usize) -> String {
        let mut s = String::with_capacity(len + 1);
        s.push(prefix);
        for _ in 0..len {
            s.push(ALPHANUMERIC[self.rng.random_range(0..ALPHANUMERIC.len())] as char);
        }
        s
    }

    fn etag(&mut self) -> String {
        self.token('E', 13)
    }

    fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    /// Completes every propagation that is due. Called before each operation and edge request.
    pub fn settle(&mut self) {
        let now = self.now();
        let due: Vec<String> = self
            .distributions
            .values()
            .filter(|d| d.deploy_due.is_some_and(|t| t <= now))
            .map(|d| d.id.clone())
            .collect();
        for id in due {
            let view = self.current_view(&id);
            if let Some(d) = self.distributions.get_mut(&id) {
                d.deployed = view;
                d.deploy_due = None;
            }
        }
    }

    fn current_view(&self, distribution_id: &str) -> EdgeView {
        let Some(d) = self.distributions.get(distribution_id) else {
            return EdgeView::default();
        };
        let behaviors = d.behaviors();
        let key_groups = behaviors
            .iter()
            .flat_map(|b| &b.trusted_key_groups)
            .filter_map(|id| {
                self.key_groups
                    .get(id)
                    .map(|g| (id.clone(), g.config.items.clone()))
            })
            .collect();
        EdgeView {
            behaviors,
            key_groups,
        }
    }

    /// Starts (or restarts) propagation for a distribution.
    fn begin_deployment(&mut self, distribution_id: &str) {
        let delay = SignedDuration::try_from(self.settings.propagation_delay)
            .unwrap_or(SignedDuration::ZERO);
        let due = self
            .now()
            .saturating_add(delay)
            .unwrap_or_else(|_| self.now());
        if let Some(d) = self.distributions.get_mut(distribution_id) {
            d.deploy_due = Some(due);
        }
        if delay.is_zero() {
            self.settle();
        }
    }
}

/// Picks one page of `items` (sorted by key) after `marker`.
pub fn page<'a, T>(
    items: Vec<&'a T>,
    key: impl Fn(&T) -> &str,
    marker: Option<&str>,
    max_items: usize,
) -> (Vec<&'a T>, Option<String>) {
    let start = marker.filter(|m| !m.is_empty()).map_or(0, |m| {
        items
            .iter()
            .position(|i| key(i) >= m)
            .unwrap_or(items.len())
    });
    let max_items = max_items.max(1);
    let rest = &items[start.min(items.len())..];
    let next = rest.get(max_items).map(|i| key(i).to_owned());
    (rest.iter().take(max_items).copied().collect(), next)
}
