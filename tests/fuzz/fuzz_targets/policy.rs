//! Policy parsing: the input is a policy document, signed here with a fixture key so that the
//! edge gets past the signature and judges the policy itself (resource globs, times, CIDRs).
#![no_main]

use std::sync::LazyLock;

use keyfront::signer::verify::{Presented, verify_presented};
use keyfront::signer::{HashAlgorithm, SigningKey, cloudfront_base64};
use libfuzzer_sys::fuzz_target;

const PRIVATE: &str = include_str!("../../fixtures/keys/ec-1.pem");
const PUBLIC: &str = include_str!("../../fixtures/keys/ec-1.pub.pem");

static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_pem(PRIVATE.as_bytes()).expect("fixture key"));

fuzz_target!(|policy: &[u8]| {
    let Ok(signature) = KEY.sign(HashAlgorithm::Sha1, policy) else {
        return;
    };
    let query = format!(
        "/private/a.txt?Policy={}&Signature={}&Key-Pair-Id=KFUZZ",
        cloudfront_base64(policy),
        cloudfront_base64(&signature)
    );
    let presented = Presented::read(
        &http::HeaderMap::new(),
        "https",
        "d111.cloudfront.net",
        &query,
    );
    let _ = verify_presented(
        &presented,
        |_| true,
        |_| Some(PUBLIC.to_owned()),
        1_800_000_000,
        Some([192, 0, 2, 1].into()),
    );
});
