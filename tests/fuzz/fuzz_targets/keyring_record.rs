//! The keyring record read back from its Secret: any content is read or refused with a reason.
#![no_main]

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use keyfront::reconcile::keyring::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The record, then the private key files its keys name (serials 0 to 3).
    let mut parts = data.split(|b| *b == 0);
    let mut secret = BTreeMap::new();
    secret.insert(
        "keyring.json".to_owned(),
        ByteString(parts.next().unwrap_or_default().to_vec()),
    );
    for (serial, pem) in parts.take(4).enumerate() {
        secret.insert(format!("key-{serial}.pem"), ByteString(pem.to_vec()));
    }
    if let Ok(keyring) = Keyring::from_secret_data(&secret) {
        let written = keyring
            .to_secret_data()
            .expect("a keyring read back writes");
        let again = Keyring::from_secret_data(&written).expect("what was written reads");
        assert_eq!(again, keyring);
    }
});
