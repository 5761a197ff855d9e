//! The signature header and GitHub's key set: the header's base64, the PEM
//! text and the SubjectPublicKeyInfo DER inside it come from outside.
#![no_main]

use std::sync::OnceLock;

use leakguard::scanning::signature::{decode_signature, VerifyingKey};
use leakguard::scanning::simulate::DevKey;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static (DevKey, VerifyingKey) {
    static KEY: OnceLock<(DevKey, VerifyingKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let dev = DevKey::generate();
        let key = VerifyingKey::from_spki_pem(&dev.public_pem()).unwrap();
        (dev, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A key that parses must survive the round trip through PEM unchanged.
    for parsed in [
        VerifyingKey::from_spki_der(data),
        VerifyingKey::from_spki_pem(&text),
    ] {
        if let Ok(k) = parsed {
            assert_eq!(VerifyingKey::from_spki_pem(&k.to_spki_pem()), Ok(k));
        }
    }
    // Fuzzed bytes as a signature header, over a body that is the input
    // itself: only a real signature may verify, and fuzzed bytes are none.
    let (dev, key) = key();
    if let Some(signature) = decode_signature(&text) {
        assert!(!key.verify(data, &signature));
    }
    assert!(!key.verify(b"[]", data));
    // A signature GitHub would send still verifies after the fuzzed body
    // it covers, and stops verifying if one byte changes.
    if !data.is_empty() {
        let signature = decode_signature(&dev.sign(data)).unwrap();
        assert!(key.verify(data, &signature));
        let mut changed = data.to_vec();
        changed[data.len() / 2] ^= 0x01;
        assert!(!key.verify(&changed, &signature));
    }
});
