//! A Secret projected into a directory the way the kubelet mounts it: each version in a fresh
//! hidden directory, published by one atomic rename of the `..data` symlink, with stable
//! top-level links into it — so a reader never sees files from two versions. The files hold a
//! private key, so they are written 0600 (only the user running `keyfront dev` reads them).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, symlink};
use std::path::Path;

use k8s_openapi::ByteString;

/// Writes `data` as version `version` of the Secret mounted at `dir` (created if missing),
/// then removes the version it replaced.
pub fn project(
    dir: &Path,
    version: u64,
    data: &BTreeMap<String, ByteString>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("..version_{version}");
    let versioned = dir.join(&name);
    std::fs::create_dir(&versioned)?;
    for (file, value) in data {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(versioned.join(file))?
            .write_all(&value.0)?;
    }
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    for file in data.keys() {
        let link = dir.join(file);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(file), link)?;
        }
    }
    if let Some(previous) = previous.filter(|p| p != Path::new(&name)) {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_replaces_the_last_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let version = |value: &str| {
            BTreeMap::from([(
                "key_pair_id".to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])
        };
        project(dir.path(), 1, &version("K1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("key_pair_id")).unwrap(),
            "K1"
        );
        project(dir.path(), 2, &version("K2")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("key_pair_id")).unwrap(),
            "K2"
        );
        assert!(
            !dir.path().join("..version_1").exists(),
            "the old version is cleaned up"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("key_pair_id"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the key files");
    }
}
