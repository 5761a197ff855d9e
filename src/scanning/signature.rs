//! GitHub's alert signatures: an ASN.1 DER ECDSA P-256 / SHA-256 signature,
//! base64 (standard, padded), over the raw request body, checked against a
//! SubjectPublicKeyInfo PEM from GitHub's key set.

use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

/// id-ecPublicKey (1.2.840.10045.2.1), DER content octets.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / secp256r1 (1.2.840.10045.3.1.7), DER content octets.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A P-256 public key, ready to verify signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The uncompressed curve point (0x04 ‖ X ‖ Y), as ring wants it.
    point: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no PUBLIC KEY block in the PEM text")]
    NoPem,
    #[error("the public key is not valid DER: {0}")]
    Der(&'static str),
    #[error("the public key is not an elliptic-curve key")]
    NotEc,
    #[error("the public key is not on curve P-256")]
    NotP256,
}

impl VerifyingKey {
    pub fn from_spki_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
        let mut reader = pem.as_bytes();
        loop {
            match rustls_pemfile::read_one(&mut reader) {
                Ok(Some(rustls_pemfile::Item::SubjectPublicKeyInfo(der))) => {
                    return VerifyingKey::from_spki_der(der.as_ref());
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Err(KeyError::NoPem),
            }
        }
    }

    /// SubjectPublicKeyInfo ::= SEQUENCE {
    ///   algorithm SEQUENCE { algorithm OID, parameters ANY },
    ///   subjectPublicKey BIT STRING }
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let (spki, rest) = der_take(der, 0x30)?;
        if !rest.is_empty() {
            return Err(KeyError::Der("trailing bytes after the key"));
        }
        let (algorithm, rest) = der_take(spki, 0x30)?;
        let (bits, rest) = der_take(rest, 0x03)?;
        if !rest.is_empty() {
            return Err(KeyError::Der("trailing bytes inside the key"));
        }
        let (oid, params) = der_take(algorithm, 0x06)?;
        if oid != OID_EC_PUBLIC_KEY {
            return Err(KeyError::NotEc);
        }
        let (curve, rest) = der_take(params, 0x06).map_err(|_| KeyError::NotP256)?;
        if curve != OID_P256 || !rest.is_empty() {
            return Err(KeyError::NotP256);
        }
        // A BIT STRING starts with the count of unused bits, which is 0 here.
        match bits {
            [0, point @ ..] if point.len() == 65 && point[0] == 0x04 => Ok(VerifyingKey {
                point: point.to_vec(),
            }),
            _ => Err(KeyError::Der("not an uncompressed P-256 point")),
        }
    }

    /// The point wrapped back into SubjectPublicKeyInfo PEM, as GitHub
    /// publishes keys (used by `dev keygen` and tests).
    pub fn from_point(point: &[u8]) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_spki_der(&spki_der(point))
    }

    pub fn to_spki_pem(&self) -> String {
        crate::pem::encode("PUBLIC KEY", &spki_der(&self.point))
    }

    /// Checks a DER signature over `message`; `false` for any mismatch.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, der_signature)
            .is_ok()
    }
}

/// Decodes the `Github-Public-Key-Signature` header value.
pub fn decode_signature(header: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .ok()
        .filter(|sig| !sig.is_empty())
}

fn spki_der(point: &[u8]) -> Vec<u8> {
    let mut algorithm = der_tlv(0x06, OID_EC_PUBLIC_KEY);
    algorithm.extend(der_tlv(0x06, OID_P256));
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let mut body = der_tlv(0x30, &algorithm);
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        // Keys are small: one length byte after 0x81 is enough.
        out.push(0x81);
        out.push(content.len() as u8);
    }
    out.extend_from_slice(content);
    out
}

/// Splits one DER element with the expected tag off the front of `input`.
fn der_take(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeyError> {
    let (&found, rest) = input.split_first().ok_or(KeyError::Der("truncated"))?;
    if found != tag {
        return Err(KeyError::Der("unexpected element"));
    }
    let (&first, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
    let (len, rest) = match first {
        n if n < 0x80 => (n as usize, rest),
        0x81 => {
            let (&n, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
            if n < 0x80 {
                return Err(KeyError::Der("non-minimal length"));
            }
            (n as usize, rest)
        }
        0x82 => {
            if rest.len() < 2 {
                return Err(KeyError::Der("truncated"));
            }
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            if n < 0x100 {
                return Err(KeyError::Der("non-minimal length"));
            }
            (n, &rest[2..])
        }
        _ => return Err(KeyError::Der("length too long for a key")),
    };
    if rest.len() < len {
        return Err(KeyError::Der("truncated"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// GitHub's documented sample (secret-scanning partner-program docs).
    const GITHUB_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n";
    const GITHUB_BODY: &[u8] = br#"[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]"#;
    const GITHUB_SIG: &str = "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==";

    #[test]
    fn verifies_githubs_documented_sample() {
        let key = VerifyingKey::from_spki_pem(GITHUB_PEM).unwrap();
        assert_eq!(GITHUB_BODY.len(), 104);
        let sig = decode_signature(GITHUB_SIG).unwrap();
        assert!(key.verify(GITHUB_BODY, &sig));
        assert_eq!(key.to_spki_pem(), GITHUB_PEM);
    }

    #[test]
    fn any_flipped_byte_fails() {
        let key = VerifyingKey::from_spki_pem(GITHUB_PEM).unwrap();
        let sig = decode_signature(GITHUB_SIG).unwrap();
        for i in 0..GITHUB_BODY.len() {
            let mut body = GITHUB_BODY.to_vec();
            body[i] ^= 0x01;
            assert!(!key.verify(&body, &sig), "body byte {i}");
        }
        for i in 0..sig.len() {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            assert!(!key.verify(GITHUB_BODY, &bad), "signature byte {i}");
        }
    }

    #[test]
    fn round_trips_a_generated_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key = VerifyingKey::from_point(pair.public_key().as_ref()).unwrap();
        let parsed = VerifyingKey::from_spki_pem(&key.to_spki_pem()).unwrap();
        let sig = pair.sign(&rng, b"hello").unwrap();
        assert!(parsed.verify(b"hello", sig.as_ref()));
        assert!(!parsed.verify(b"hellp", sig.as_ref()));
    }

    #[test]
    fn rejects_other_curves_and_garbage() {
        // A P-384 SubjectPublicKeyInfo (secp384r1 OID 1.3.132.0.34).
        let mut algorithm = der_tlv(0x06, OID_EC_PUBLIC_KEY);
        algorithm.extend(der_tlv(0x06, &[0x2b, 0x81, 0x04, 0x00, 0x22]));
        let mut bits = vec![0u8, 0x04];
        bits.extend([7u8; 96]);
        let mut body = der_tlv(0x30, &algorithm);
        body.extend(der_tlv(0x03, &bits));
        let p384 = der_tlv(0x30, &body);
        assert_eq!(VerifyingKey::from_spki_der(&p384), Err(KeyError::NotP256));
        assert_eq!(VerifyingKey::from_spki_pem("nope"), Err(KeyError::NoPem));
        assert!(VerifyingKey::from_spki_der(&[0x30, 0x05, 1]).is_err());
        assert!(decode_signature("***").is_none());
        assert!(decode_signature("").is_none());
    }

    mod properties {
        use super::*;
        use crate::scanning::simulate::DevKey;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        /// One key for every case: generating one per case would dominate.
        fn signer() -> &'static (DevKey, VerifyingKey) {
            static KEY: OnceLock<(DevKey, VerifyingKey)> = OnceLock::new();
            KEY.get_or_init(|| {
                let dev = DevKey::generate();
                let key = VerifyingKey::from_spki_pem(&dev.public_pem()).unwrap();
                (dev, key)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn a_mutated_body_or_signature_never_verifies(
                body in proptest::collection::vec(any::<u8>(), 1..512),
                at in any::<prop::sample::Index>(),
                flip in 1u8..=255,
                extra in any::<u8>(),
            ) {
                let (dev, key) = signer();
                let signature = decode_signature(&dev.sign(&body)).unwrap();
                prop_assert!(key.verify(&body, &signature));

                let mut changed = body.clone();
                changed[at.index(body.len())] ^= flip;
                prop_assert!(!key.verify(&changed, &signature));
                let mut longer = body.clone();
                longer.push(extra);
                prop_assert!(!key.verify(&longer, &signature));
                prop_assert!(!key.verify(&body[..body.len() - 1], &signature));

                let mut forged = signature.clone();
                forged[at.index(signature.len())] ^= flip;
                prop_assert!(!key.verify(&body, &forged));
                let mut trailing = signature.clone();
                trailing.push(extra);
                prop_assert!(!key.verify(&body, &trailing));
                prop_assert!(!key.verify(&body, &signature[..signature.len() - 1]));
            }

            #[test]
            fn arbitrary_bytes_are_never_a_signature(
                body in proptest::collection::vec(any::<u8>(), 0..256),
                signature in proptest::collection::vec(any::<u8>(), 0..128),
            ) {
                prop_assert!(!signer().1.verify(&body, &signature));
            }

            #[test]
            fn decoding_headers_and_keys_never_panics(
                bytes in proptest::collection::vec(any::<u8>(), 0..256),
                text in any::<String>(),
            ) {
                let _ = decode_signature(&text);
                if let Ok(key) = VerifyingKey::from_spki_der(&bytes) {
                    prop_assert_eq!(VerifyingKey::from_spki_pem(&key.to_spki_pem()), Ok(key));
                }
                let _ = VerifyingKey::from_spki_pem(&text);
            }
        }
    }
}
