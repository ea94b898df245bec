//! The keyring: keyfront's durable record of every key of one `SigningKeyGroup`, kept in a
//! Secret of its own (`keyfront-keyring-<owner token>`) in the operator's keyring namespace
//! (`--keyring-namespace`), never in the tenant's: tenants can neither read the staged and
//! retiring private keys nor edit the record that decides deletions and public detaches.
//!
//! Owns: the shape of that record and its encoding as Secret data: `keyring.json` (states,
//! IDs, timestamps, public keys; no private material) and one `key-<serial>.pem` per key.
//! The keyring, not the object's status, is the source of truth: status can be lost or
//! edited, and is rebuilt from here.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::ByteString;
use serde::{Deserialize, Serialize};

use crate::api::{KeyAlgorithm, KeyState};
use crate::cloudfront::BehaviorSelector;
use crate::keys::PrivateKeyPem;

const RECORD_FILE: &str = "keyring.json";

/// One key as keyfront remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub serial: u32,
    pub algorithm: KeyAlgorithm,
    pub state: KeyState,
    /// CloudFront public key ID, once created and found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_id: Option<String>,
    pub public_key_pem: String,
    pub fingerprint: String,
    pub created_at: Timestamp,
    /// When CloudFront created its public key (which may be long after `created_at` when the
    /// account had no room for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Timestamp>,
    /// First seen live on every distribution that trusts the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Timestamp>,
    /// How much sooner than its interval after activation it rotates: placed once it is
    /// active, so that the account's rotations do not fall due together
    /// ([`crate::reconcile::capacity::stagger`]). Kept as an advance, not a time, so a new
    /// interval moves the rotation with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotates_early_by: Option<jiff::SignedDuration>,
    /// Published ahead of a scheduled rotation: apps switch to it at this time, not before
    /// (a key staged because none was usable, or by request, takes over as soon as it is live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes_over_at: Option<Timestamp>,
    /// When apps stopped signing with it (the next key's Secret switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Timestamp>,
    /// Revoked by annotation: leaves the group as soon as it is not the active key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
    /// Found in the key group without a record (the keyring was lost): its private key is
    /// gone, so it is only ever Retiring, kept for its grace and then removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_key_lost: bool,
    #[serde(skip)]
    pub private_key: Option<PrivateKeyPem>,
}

/// What keyfront remembers about a distribution it attached the key group to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The last `allowPublicOnDetach` seen in the spec (the tenant's opt-in only; the account
    /// is asked again at detach time), used when the entry is removed.
    pub allow_public_on_detach: bool,
    /// Selected behaviors keyfront has seen trusting the group: one found without it later
    /// lost it to another writer.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub trusted_behaviors: BTreeSet<BehaviorSelector>,
    /// The last time another writer removed the group here, while removals keep coming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_removed: Option<TrustRemoval>,
}

/// Another writer removed the key group from a behavior keyfront attached it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustRemoval {
    pub at: Timestamp,
    /// Removals in a row, each within the longest pause of the last: sets the pause before
    /// keyfront attaches again.
    pub count: u32,
}

/// Whom a keyring was made for: it is resumed by itself only in the namespace with this UID
/// (the object may be re-created there: its UID is updated); anywhere else only on a cluster
/// admin's explicit act ([`super::names::RESUME_ANNOTATION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MadeFor {
    pub namespace_uid: String,
    pub object_uid: String,
}

/// What keyfront took over with an adopted key group (`spec.keyGroup.adopt`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    /// The group's comment before keyfront marked it, kept after the marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Public keys found in the group, not keyfront's: trusted until they may leave, and
    /// forgotten once out of the group (and deleted, with `deleteAdoptedKeys`).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Every key of one `SigningKeyGroup`, and the bookkeeping that must survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keyring {
    /// Serials are never reused, so a public key name never points at two key pairs.
    pub next_serial: u32,
    /// The namespace and object this keyring belongs to. Absent in keyrings written before
    /// keyfront recorded it: those are claimed only by proof ([`super::plan::keyring_claim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_for: Option<MadeFor>,
    /// The CloudFront key group name, decided once when the first key was staged and never
    /// recomputed (so a change of default naming never renames an existing group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_group_id: Option<String>,
    /// Sorted by serial.
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    /// Distributions that may trust the key group, so they are detached even after the spec
    /// forgets them.
    #[serde(default)]
    pub attachments: BTreeMap<String, Attachment>,
    /// Present once keyfront adopted a key group it did not create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Adoption>,
    /// The last `keyfront.dev/rotate` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rotate: Option<String>,
    /// The last `keyfront.dev/revoke-key` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_revoke: Option<String>,
}

/// Why a keyring Secret could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring Secret has no {RECORD_FILE}")]
    MissingRecord,
    #[error("keyring Secret's {RECORD_FILE} is not valid: {reason}")]
    InvalidRecord { reason: String },
    #[error("keyring Secret lacks the private key of key {serial}")]
    MissingPrivateKey { serial: u32 },
}

fn private_key_file(serial: u32) -> String {
    format!("key-{serial}.pem")
}

impl Keyring {
    pub fn record(&self, serial: u32) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.serial == serial)
    }

    pub fn record_mut(&mut self, serial: u32) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| k.serial == serial)
    }

    pub fn by_public_key_id(&self, id: &str) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.public_key_id.as_deref() == Some(id))
    }

    /// The key apps sign with.
    pub fn active(&self) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }

    pub fn active_mut(&mut self) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| k.state == KeyState::Active)
    }

    /// Public key IDs of every recorded key.
    pub fn public_key_ids(&self) -> BTreeSet<&str> {
        self.keys
            .iter()
            .filter_map(|k| k.public_key_id.as_deref())
            .collect()
    }

    /// Public keys of an adopted group that keyfront still accounts for.
    pub fn adopted_keys(&self) -> &[String] {
        self.adoption.as_ref().map_or(&[], |a| a.keys.as_slice())
    }

    /// Encodes the keyring as Secret data.
    pub fn to_secret_data(&self) -> Result<BTreeMap<String, ByteString>, KeyringError> {
        let record = serde_json::to_vec(self).map_err(|e| KeyringError::InvalidRecord {
            reason: e.to_string(),
        })?;
        let mut data = BTreeMap::from([(RECORD_FILE.to_owned(), ByteString(record))]);
        for key in self.keys.iter().filter(|k| !k.private_key_lost) {
            let private = key
                .private_key
                .as_ref()
                .ok_or(KeyringError::MissingPrivateKey { serial: key.serial })?;
            data.insert(
                private_key_file(key.serial),
                ByteString(private.expose().as_bytes().to_vec()),
            );
        }
        Ok(data)
    }

    /// Reads a keyring back from Secret data.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self, KeyringError> {
        let record = data.get(RECORD_FILE).ok_or(KeyringError::MissingRecord)?;
        let mut keyring: Keyring =
            serde_json::from_slice(&record.0).map_err(|e| KeyringError::InvalidRecord {
                reason: e.to_string(),
            })?;
        for key in keyring.keys.iter_mut().filter(|k| !k.private_key_lost) {
            let pem = data
                .get(&private_key_file(key.serial))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or(KeyringError::MissingPrivateKey { serial: key.serial })?;
            key.private_key = Some(PrivateKeyPem::new(pem));
        }
        keyring.keys.sort_by_key(|k| k.serial);
        Ok(keyring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: u32) -> KeyRecord {
        KeyRecord {
            serial,
            algorithm: KeyAlgorithm::EcdsaP256,
            state: KeyState::Active,
            public_key_id: Some(format!("K{serial}")),
            public_key_pem: "-----BEGIN PUBLIC KEY-----\n".into(),
            fingerprint: "ab".into(),
            created_at: Timestamp::UNIX_EPOCH,
            live_at: None,
            published_at: None,
            activated_at: Some(Timestamp::UNIX_EPOCH),
            rotates_early_by: None,
            takes_over_at: None,
            retired_at: None,
            revoked: false,
            private_key_lost: false,
            private_key: Some(PrivateKeyPem::new(format!("private {serial}"))),
        }
    }

    #[test]
    fn keyring_round_trips_through_secret_data_with_private_keys_apart() {
        let keyring = Keyring {
            next_serial: 3,
            key_group_id: Some("KG".into()),
            keys: vec![record(1), record(2)],
            ..Keyring::default()
        };
        let data = keyring.to_secret_data().unwrap();
        let json = String::from_utf8(data["keyring.json"].0.clone()).unwrap();
        assert!(!json.contains("private"), "{json}");
        assert_eq!(data["key-2.pem"].0, b"private 2");
        assert_eq!(Keyring::from_secret_data(&data).unwrap(), keyring);
    }

    #[test]
    fn a_key_found_without_its_private_key_is_recorded_without_one() {
        let mut lost = record(2);
        lost.state = KeyState::Retiring;
        lost.private_key_lost = true;
        lost.private_key = None;
        let keyring = Keyring {
            next_serial: 3,
            keys: vec![record(1), lost],
            ..Keyring::default()
        };
        let data = keyring.to_secret_data().unwrap();
        assert!(!data.contains_key("key-2.pem"));
        assert_eq!(Keyring::from_secret_data(&data).unwrap(), keyring);
    }

    #[test]
    fn a_keyring_missing_a_private_key_is_refused_naming_the_key() {
        let mut data = Keyring {
            next_serial: 2,
            keys: vec![record(1)],
            ..Keyring::default()
        }
        .to_secret_data()
        .unwrap();
        data.remove("key-1.pem");
        let err = Keyring::from_secret_data(&data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "keyring Secret lacks the private key of key 1"
        );
    }
}
