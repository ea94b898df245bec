//! PEM key loading: a mounted Secret's private key and CloudFront's public keys.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keyfront::signer::SigningKey::from_pem(data);
    let text = String::from_utf8_lossy(data);
    let _ = keyfront::keys::fingerprint(&text);
    let _ = keyfront::keys::public_key_algorithm(&text);
});
