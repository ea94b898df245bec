//! Runs the Python suites in `tests/python/` with pytest, so `cargo test` covers them: boto3's
//! lifecycle against `keyfront emulator`, the moto contract test, and the signer against
//! botocore's `CloudFrontSigner` and `cryptography`.
//!
//! The interpreter is `$KEYFRONT_PYTHON`, else `.venv/bin/python` (made by `.ci/run`), else
//! `python3`; it needs `tests/python/requirements.txt` installed.

use std::process::Command;

use crate::support::python;

fn pytest(file: &str) {
    let python = python();
    let ready = Command::new(&python)
        .args(["-c", "import boto3, cryptography, moto, pytest"])
        .status();
    assert!(
        ready.is_ok_and(|s| s.success()),
        "{} lacks boto3/cryptography/moto/pytest: run `bash .ci/run`, or `python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt`",
        python.display()
    );
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", file])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python"))
        .env("KEYFRONT_BIN", env!("CARGO_BIN_EXE_keyfront"))
        .output()
        .expect("pytest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "pytest {file} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn boto3_drives_the_emulator_through_a_key_group_lifecycle() {
    pytest("test_boto3_lifecycle.py");
}

#[test]
fn emulator_agrees_with_moto_on_shared_operations() {
    pytest("test_moto_contract.py");
}

#[test]
fn signer_matches_botocore_and_verifies_with_cryptography() {
    pytest("test_signer_interop.py");
}

#[test]
fn edge_serves_only_signed_requests_over_http() {
    pytest("test_edge_over_http.py");
}

#[test]
fn emulator_sts_agrees_with_moto_and_partitions_accounts() {
    pytest("test_sts_contract.py");
}
