//! The signer library and `keyfront sign`, beyond interop: reloading a kubelet-mounted Secret
//! atomically, refusing half-written or mismatched versions, and one-line errors for bad input.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keyfront::signer::{
    HashAlgorithm, MountedSigner, Policy, SECRET_FILES, Signer, SignerError, cloudfront_base64,
    decode_cloudfront_base64,
};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).expect("fixture")
}

/// Writes one version the way the kubelet does: a fresh hidden directory, then an atomic
/// rename of the `..data` symlink, with stable top-level symlinks into `..data`.
fn kubelet_write(dir: &Path, version: &str, key: &str, key_pair_id: &str, public: Option<&str>) {
    let versioned = dir.join(version);
    std::fs::create_dir(&versioned).expect("version dir");
    std::fs::write(
        versioned.join("private_key.pem"),
        fixture(&format!("{key}.pem")),
    )
    .expect("write");
    std::fs::write(
        versioned.join("public_key.pem"),
        fixture(&format!("{}.pub.pem", public.unwrap_or(key))),
    )
    .expect("write");
    std::fs::write(versioned.join("key_pair_id"), key_pair_id).expect("write");
    std::fs::write(versioned.join("hash_algorithm"), "SHA1").expect("write");
    let tmp = dir.join("..data_tmp");
    symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("atomic swap");
    for file in SECRET_FILES {
        let link = dir.join(file);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(file), link).expect("file link");
        }
    }
}

fn verifies(signer: &Signer, public_fixture: &str) -> bool {
    let url = "https://d.example/a.mp4";
    let policy = Policy::canned(url, 1_900_000_000);
    let signed = signer.sign_url(url, &policy).expect("sign");
    let signature = signed
        .split("Signature=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("signature");
    let raw = decode_cloudfront_base64(signature).expect("base64");
    let public = PKey::public_key_from_pem(&fixture(public_fixture)).expect("public");
    let mut verifier =
        openssl::sign::Verifier::new(MessageDigest::sha1(), &public).expect("verifier");
    verifier
        .update(policy.to_json().as_bytes())
        .expect("update");
    verifier.verify(&raw).unwrap_or(false)
}

#[test]
fn kubelet_swap_reloads_key_and_id_together() {
    let dir = tempfile::tempdir().expect("dir");
    kubelet_write(dir.path(), "..2026_11_23_01", "rsa-1", "KFIRST", None);
    let mounted = MountedSigner::open(dir.path())
        .expect("open")
        .with_check_interval(Duration::ZERO);
    let first = mounted.current().expect("signer");
    assert_eq!(first.key_pair_id(), "KFIRST");
    assert!(verifies(&first, "rsa-1.pub.pem"));

    kubelet_write(dir.path(), "..2026_11_23_02", "rsa-2", "KSECOND", None);
    let second = mounted.current().expect("signer");
    assert_eq!(second.key_pair_id(), "KSECOND");
    assert!(
        verifies(&second, "rsa-2.pub.pem"),
        "the new ID is paired with the new key"
    );
    assert!(!verifies(&second, "rsa-1.pub.pem"));
}

#[test]
fn half_written_or_mismatched_versions_are_never_used() {
    let dir = tempfile::tempdir().expect("dir");
    kubelet_write(dir.path(), "..v1", "rsa-1", "KGOOD", None);
    let mounted = MountedSigner::open(dir.path())
        .expect("open")
        .with_check_interval(Duration::ZERO);

    // A version whose private key does not match its public key (e.g. files from two rotations).
    kubelet_write(dir.path(), "..v2", "rsa-2", "KMIXED", Some("rsa-1"));
    assert_eq!(mounted.current().expect("signer").key_pair_id(), "KGOOD");

    // A version with a truncated key.
    kubelet_write(dir.path(), "..v3", "rsa-3", "KHALF", None);
    std::fs::write(
        dir.path().join("..v3/private_key.pem"),
        b"-----BEGIN RSA PRIVATE KEY-----\nMIIE",
    )
    .expect("truncate");
    let kept = mounted.current().expect("signer");
    assert_eq!(kept.key_pair_id(), "KGOOD");
    assert!(verifies(&kept, "rsa-1.pub.pem"));

    let fresh = tempfile::tempdir().expect("dir");
    kubelet_write(fresh.path(), "..v1", "rsa-2", "KX", Some("rsa-1"));
    assert!(matches!(
        MountedSigner::open(fresh.path()),
        Err(SignerError::MismatchedKeyFiles { .. })
    ));
}

#[test]
fn plain_directories_reload_when_files_change() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("private_key.pem"), fixture("ec-1.pem")).expect("write");
    std::fs::write(dir.path().join("key_pair_id"), "KEC1\n").expect("write");
    let mounted = MountedSigner::open(dir.path())
        .expect("open")
        .with_check_interval(Duration::ZERO);
    let signer = mounted.current().expect("signer");
    assert_eq!(
        (signer.key_pair_id(), signer.hash()),
        ("KEC1", HashAlgorithm::Sha256)
    );
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(dir.path().join("key_pair_id"), "KEC2\n").expect("write");
    assert_eq!(mounted.current().expect("signer").key_pair_id(), "KEC2");
}

fn query_parameter_names(url: &str) -> Vec<&str> {
    let query = url.split_once('?').expect("query").1;
    query
        .split('&')
        .map(|p| p.split('=').next().unwrap_or_default())
        .collect()
}

#[test]
fn urls_keep_their_query_and_order_parameters_like_cloudfront() {
    let signer = Signer::from_pem(&fixture("rsa-1.pem"), "KID", None).expect("signer");
    let signed = signer
        .sign_url(
            "https://d.example/a?x=1",
            &Policy::canned("https://d.example/a?x=1", 100),
        )
        .expect("sign");
    let names = query_parameter_names(&signed);
    assert_eq!(names, ["x", "Expires", "Signature", "Key-Pair-Id"]);
    let sha256 = signer.with_hash(HashAlgorithm::Sha256).expect("rsa sha256");
    let custom = Policy {
        resource: "https://d.example/*".into(),
        expires: 100,
        not_before: Some(50),
        ip_range: None,
    };
    let signed = sha256
        .sign_url("https://d.example/b", &custom)
        .expect("sign");
    let names = query_parameter_names(&signed);
    assert_eq!(
        names,
        ["Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"]
    );
    assert!(signed.contains(&format!(
        "Policy={}",
        cloudfront_base64(custom.to_json().as_bytes())
    )));
}

#[test]
fn keys_cloudfront_cannot_use_are_refused() {
    assert!(
        matches!(Signer::from_pem(&fixture("rsa1024.pem"), "K", None), Err(SignerError::UnsupportedKey(m)) if m.contains("RSA-1024"))
    );
    assert!(
        matches!(Signer::from_pem(&fixture("ec-p384.pem"), "K", None), Err(SignerError::UnsupportedKey(m)) if m.contains("P-256"))
    );
    // ECDSA signs with SHA-1 when asked (CloudFront's default without Hash-Algorithm).
    let ecdsa_sha1 = Signer::from_pem(&fixture("ec-1.pem"), "K", Some(HashAlgorithm::Sha1))
        .expect("ECDSA with SHA-1");
    assert_eq!(ecdsa_sha1.hash(), HashAlgorithm::Sha1);
    assert!(matches!(
        Signer::from_pem(b"not a key", "K", None),
        Err(SignerError::MalformedKey)
    ));
    assert!(matches!(
        Signer::from_pem(&fixture("rsa-1.pem"), "bad id!", None),
        Err(SignerError::InvalidKeyPairId(_))
    ));
}

#[test]
fn signing_keys_never_print_their_material() {
    let signer = Signer::from_pem(&fixture("rsa-1.pem"), "KID", None).expect("signer");
    let printed = format!("{signer:?}");
    assert!(printed.contains("<redacted>"), "{printed}");
    let pem = String::from_utf8(fixture("rsa-1.pem")).expect("utf8");
    let body_line = pem.lines().nth(1).expect("pem body");
    assert!(!printed.contains(body_line));
}

/// `sign url` arguments: a key, a URL and an expiry, each replaceable, plus extra flags.
fn sign_url_args(key: &str, url: &str, expiry: (&str, &str), extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "url",
        "--private-key",
        key,
        "--key-pair-id",
        "K",
        "--url",
        url,
        expiry.0,
        expiry.1,
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_owned).collect()
}

#[test]
fn cli_bad_input_exits_nonzero_with_one_line_naming_the_problem() {
    let key = format!("{KEYS}/rsa-1.pem");
    let (public, small) = (
        format!("{KEYS}/rsa-1.pub.pem"),
        format!("{KEYS}/rsa1024.pem"),
    );
    let url = "https://d.example/a";
    let hour = ("--expires-in", "1h");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            sign_url_args("/no/such/key.pem", url, hour, &[]),
            "/no/such/key.pem",
        ),
        (
            sign_url_args(&public, url, hour, &[]),
            "rsa-1.pub.pem holds a public key",
        ),
        (sign_url_args(&small, url, hour, &[]), "RSA-1024"),
        (
            sign_url_args(&key, url, ("--expires", "1000"), &[]),
            "expiry 1000 is in the past",
        ),
        (
            sign_url_args(&key, "d.example/a", hour, &[]),
            "\"d.example/a\": it has no scheme; give the whole URL, like https://d.example/a",
        ),
        (
            sign_url_args(&key, "https://d.example/a b", hour, &[]),
            "it contains a space; percent-encode it (%20)",
        ),
        (
            sign_url_args(&key, url, hour, &["--ip", "10.0.0.0/40"]),
            "10.0.0.0/40",
        ),
        (
            sign_url_args(&key, url, ("--expires-in", "soon"), &[]),
            "\"soon\"",
        ),
        (
            sign_url_args(&key, url, ("--expires-in", "-5m"), &[]),
            "\"-5m\": a duration cannot be negative",
        ),
    ];
    for (args, needle) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .arg("sign")
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr} does not name {needle}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn the_command_line_takes_days_and_crd_writes_a_new_directory() {
    let key = format!("{KEYS}/rsa-1.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .arg("sign")
        .args(sign_url_args(
            &key,
            "https://d.example/a",
            ("--expires-in", "7d"),
            &[],
        ))
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8_lossy(&output.stdout);
    let expires: i64 = url
        .split("Expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|n| n.parse().ok())
        .expect("an Expires parameter");
    let in_a_week = jiff::Timestamp::now().as_second() + 7 * 86_400;
    assert!((expires - in_a_week).abs() < 60, "{url}");

    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("not/yet/there");
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["crd", "--out-dir"])
        .arg(&nested)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(nested.join("signingkeygroups.keyfront.dev.yaml").exists());
}
