//! Runs `tests/js/` with node's test runner, so `cargo test` covers the signer's interop with
//! `@aws-sdk/cloudfront-signer` and `node:crypto`. Needs `npm ci --prefix tests/js` (done by
//! `.ci/run`).

use std::path::Path;
use std::process::Command;

#[test]
fn signer_matches_the_aws_js_signer_and_verifies_with_node_crypto() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/@aws-sdk/cloudfront-signer").exists(),
        "tests/js/node_modules is missing: run `bash .ci/run` or `npm ci --prefix tests/js`"
    );
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("KEYFRONT_BIN", env!("CARGO_BIN_EXE_keyfront"))
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
