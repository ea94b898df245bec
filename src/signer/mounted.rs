//! A signer that follows the Secret keyfront maintains, as the kubelet mounts it.
//!
//! The kubelet writes each version of a Secret into a fresh hidden directory and then swaps the
//! `..data` symlink to it in one rename, so all files of one version are read through the link
//! target, never a mix. keyfront's Secret holds `private_key.pem`, `key_pair_id`,
//! `public_key.pem` and `hash_algorithm`. A version that cannot be loaded (half-written by
//! hand, key and public key not matching) is never used: the last good signer stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use openssl::pkey::PKey;
use zeroize::Zeroizing;

use super::{HashAlgorithm, Signer, SignerError, SigningKey};

/// The files of keyfront's app-facing Secret.
pub const SECRET_FILES: [&str; 4] = [
    "private_key.pem",
    "key_pair_id",
    "public_key.pem",
    "hash_algorithm",
];

/// What identifies one version of the directory's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    /// Kubelet layout: the target of `..data`.
    DataLink(PathBuf),
    /// A plain directory: the modification times of the files.
    Mtimes(Vec<Option<SystemTime>>),
}

#[derive(Debug)]
struct Loaded {
    version: Version,
    signer: Signer,
    checked_at: Instant,
}

/// The current signer for a mounted Secret directory, reloaded when the kubelet swaps it.
#[derive(Debug)]
pub struct MountedSigner {
    dir: PathBuf,
    check_interval: Duration,
    loaded: RwLock<Arc<Loaded>>,
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> SignerError {
    SignerError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn version_of(dir: &Path) -> Version {
    match std::fs::read_link(dir.join("..data")) {
        Ok(target) => Version::DataLink(target),
        Err(_) => Version::Mtimes(
            SECRET_FILES
                .iter()
                .map(|f| {
                    std::fs::metadata(dir.join(f))
                        .and_then(|m| m.modified())
                        .ok()
                })
                .collect(),
        ),
    }
}

/// Loads one consistent version of the directory.
fn load(dir: &Path) -> Result<(Version, Signer), SignerError> {
    for _ in 0..3 {
        let version = version_of(dir);
        let base = match &version {
            Version::DataLink(target) => dir.join(target),
            Version::Mtimes(_) => dir.to_path_buf(),
        };
        let loaded = load_files(&base);
        // The link did not move while we read: every file came from that version. If it did,
        // the kubelet may also have removed the version we were reading: read again.
        if version_of(dir) == version {
            return loaded.map(|signer| (version, signer));
        }
    }
    Err(unreadable(
        dir,
        "the directory kept changing while it was read",
    ))
}

fn load_files(base: &Path) -> Result<Signer, SignerError> {
    let key_path = base.join("private_key.pem");
    let pem = Zeroizing::new(std::fs::read(&key_path).map_err(|e| unreadable(&key_path, e))?);
    let key = SigningKey::from_pem(&pem)?;
    let id_path = base.join("key_pair_id");
    let key_pair_id = std::fs::read_to_string(&id_path).map_err(|e| unreadable(&id_path, e))?;
    let hash_path = base.join("hash_algorithm");
    let hash = match std::fs::read_to_string(&hash_path) {
        Ok(text) if !text.trim().is_empty() => Some(HashAlgorithm::parse(&text)?),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(unreadable(&hash_path, e)),
    };
    let public_path = base.join("public_key.pem");
    match std::fs::read(&public_path) {
        Ok(public_pem) => {
            let public = PKey::public_key_from_pem(&public_pem)
                .and_then(|k| k.public_key_to_der())
                .map_err(|_| SignerError::MismatchedKeyFiles {
                    path: public_path.display().to_string(),
                })?;
            if public != key.public_key_der()? {
                return Err(SignerError::MismatchedKeyFiles {
                    path: public_path.display().to_string(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unreadable(&public_path, e)),
    }
    Signer::new(key, &key_pair_id, hash)
}

impl MountedSigner {
    /// Loads the directory now; fails if it does not hold a usable key.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SignerError> {
        let dir = dir.into();
        let (version, signer) = load(&dir)?;
        let loaded = Loaded {
            version,
            signer,
            checked_at: Instant::now(),
        };
        Ok(Self {
            dir,
            check_interval: Duration::from_secs(1),
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    /// How often [`MountedSigner::current`] looks for a new version (default 1 s).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// The signer for the newest loadable version (a cheap clone; the key is shared).
    pub fn current(&self) -> Result<Signer, SignerError> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if loaded.checked_at.elapsed() < self.check_interval {
            return Ok(loaded.signer.clone());
        }
        self.refresh(&loaded);
        Ok(self
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .signer
            .clone())
    }

    fn refresh(&self, seen: &Arc<Loaded>) {
        let now = Instant::now();
        let next = if version_of(&self.dir) == seen.version {
            Loaded {
                version: seen.version.clone(),
                signer: seen.signer.clone(),
                checked_at: now,
            }
        } else {
            match load(&self.dir) {
                Ok((version, signer)) => {
                    tracing::info!(dir = %self.dir.display(), key_pair_id = signer.key_pair_id(), "signing key reloaded");
                    Loaded {
                        version,
                        signer,
                        checked_at: now,
                    }
                }
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), %error, "new Secret version not usable; keeping the previous key");
                    Loaded {
                        version: seen.version.clone(),
                        signer: seen.signer.clone(),
                        checked_at: now,
                    }
                }
            }
        };
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }
}
