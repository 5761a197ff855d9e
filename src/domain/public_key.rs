//! An OAuth app's public key: a SubjectPublicKeyInfo in PEM, as
//! `openssl rsa -in private.pem -pubout` (RSA) or `openssl ec -in
//! private.pem -pubout` (P-256) writes it. Only keys that can verify RS256
//! or ES256 are taken; the key decides the one algorithm its assertions
//! may use.

use serde::Serialize;
use spki::der::Decode;
use spki::ObjectIdentifier;

use super::Parse;

/// rsaEncryption (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, P-256 (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The RSA moduli ring verifies with RS256.
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;

/// The one signature algorithm a key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::RS256 => "RS256",
            KeyAlgorithm::ES256 => "ES256",
        }
    }
}

impl Parse for KeyAlgorithm {
    fn parse(text: &str) -> Result<KeyAlgorithm, String> {
        match text {
            "RS256" => Ok(KeyAlgorithm::RS256),
            "ES256" => Ok(KeyAlgorithm::ES256),
            _ => Err("must be RS256 or ES256".into()),
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl crate::db::ToArg for KeyAlgorithm {
    fn to_arg(&self) -> crate::db::Arg<'_> {
        crate::db::Arg::Text(self.as_str())
    }
}

/// A public key that verifies RS256 (RSA, 2048 to 8192 bits) or ES256
/// (P-256), kept as PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    /// The SubjectPublicKeyInfo, PEM-encoded afresh from its DER (so no
    /// text around the block is kept).
    pem: String,
}

const TAKEN: &str = "RSA keys of 2048 bits or more (RS256) and P-256 keys (ES256)";

impl Parse for PublicKey {
    fn parse(text: &str) -> Result<PublicKey, String> {
        let der = spki_der(text)?;
        let algorithm = algorithm(&der)?;
        Ok(PublicKey {
            algorithm,
            pem: crate::pem::encode("PUBLIC KEY", &der),
        })
    }
}

impl PublicKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// The DER of the one `PUBLIC KEY` block in `text`. A private key is
/// refused without a word of its content: it must never be stored.
fn spki_der(text: &str) -> Result<Vec<u8>, String> {
    let not_pem = || {
        "must be a PEM public key (-----BEGIN PUBLIC KEY-----), as `openssl rsa -in private.pem \
         -pubout` writes it"
            .to_string()
    };
    if text.contains("PRIVATE KEY-----") {
        return Err(
            "is a private key: keep it, and send only its public key (`openssl rsa -in \
                    private.pem -pubout` or `openssl ec -in private.pem -pubout`)"
                .into(),
        );
    }
    if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return Err("is a PKCS#1 RSA key; send it as a SubjectPublicKeyInfo \
                    (-----BEGIN PUBLIC KEY-----), as `openssl rsa -in private.pem -pubout` \
                    writes it"
            .into());
    }
    // Pasted keys come indented or with CRLF line ends; PEM lines carry no
    // meaningful space.
    let text: String = text.lines().map(|l| format!("{}\n", l.trim())).collect();
    let mut blocks = Vec::new();
    let mut rest = text.as_bytes();
    loop {
        match rustls_pemfile::read_one_from_slice(rest) {
            Ok(Some((item, after))) => {
                blocks.push(item);
                rest = after;
            }
            Ok(None) => break,
            Err(_) => return Err(not_pem()),
        }
    }
    match blocks.as_slice() {
        [rustls_pemfile::Item::SubjectPublicKeyInfo(der)] => Ok(der.as_ref().to_vec()),
        [] => Err(not_pem()),
        [_] => Err(not_pem()),
        _ => Err("must hold exactly one public key".into()),
    }
}

/// Which algorithm the key verifies, or why it verifies none that is taken.
fn algorithm(der: &[u8]) -> Result<KeyAlgorithm, String> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| "is not a valid SubjectPublicKeyInfo".to_string())?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "is not a valid SubjectPublicKeyInfo".to_string())?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let rsa = pkcs1::RsaPublicKey::from_der(key)
            .map_err(|_| "is not a valid RSA public key".to_string())?;
        let modulus = rsa.modulus.as_bytes();
        let bits = bit_length(modulus);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "is an RSA key of {bits} bits; at least {MIN_RSA_BITS} are needed"
            ));
        }
        if bits > MAX_RSA_BITS {
            return Err(format!(
                "is an RSA key of {bits} bits; at most {MAX_RSA_BITS} are taken"
            ));
        }
        // What RS256 verifiers accept (ring among them): an odd exponent
        // from 3 up to 33 bits.
        let exponent = rsa.public_exponent.as_bytes();
        let odd = exponent.last().is_some_and(|b| b & 1 == 1);
        let e_bits = bit_length(exponent);
        if !odd || !(2..=33).contains(&e_bits) {
            return Err("is an RSA key with an unusable public exponent".into());
        }
        return Ok(KeyAlgorithm::RS256);
    }
    if oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if curve != Some(P256) {
            return Err(format!(
                "is an elliptic-curve key on a curve other than P-256; taken are {TAKEN}"
            ));
        }
        // Uncompressed (0x04 ‖ X ‖ Y), as ring verifies with.
        if key.len() != 65 || key[0] != 0x04 {
            return Err("is a P-256 key whose point is not in uncompressed form".into());
        }
        return Ok(KeyAlgorithm::ES256);
    }
    Err(format!("is a key of another kind; taken are {TAKEN}"))
}

/// The bits of a big-endian unsigned integer, leading zeros not counted.
fn bit_length(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    bytes.len() * 8 - bytes[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA public key, as `openssl rsa -pubout` writes it.
    const RSA_2048: &str = include_str!("../../fixtures/oauth/rsa-2048.pub.pem");
    const RSA_1024: &str = include_str!("../../fixtures/oauth/rsa-1024.pub.pem");
    const P256_KEY: &str = include_str!("../../fixtures/oauth/p256.pub.pem");
    const P384_KEY: &str = include_str!("../../fixtures/oauth/p384.pub.pem");
    const ED25519_KEY: &str = include_str!("../../fixtures/oauth/ed25519.pub.pem");

    #[test]
    fn takes_rsa_2048_and_p256() {
        let rsa = PublicKey::parse(RSA_2048).unwrap();
        assert_eq!(rsa.algorithm(), KeyAlgorithm::RS256);
        assert_eq!(rsa.pem(), RSA_2048);
        let ec = PublicKey::parse(&format!("\n  {P256_KEY}\n")).unwrap();
        assert_eq!(ec.algorithm(), KeyAlgorithm::ES256);
        assert_eq!(ec.pem(), P256_KEY);
    }

    #[test]
    fn refuses_every_other_key_with_a_reason() {
        for (key, says) in [
            (RSA_1024, "1024 bits"),
            (P384_KEY, "other than P-256"),
            (ED25519_KEY, "another kind"),
            ("", "PEM public key"),
            ("hello", "PEM public key"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "valid",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n",
                "PKCS#1",
            ),
        ] {
            let err = PublicKey::parse(key).unwrap_err();
            assert!(err.contains(says), "{key:?}: {err}");
        }
        let two = format!("{RSA_2048}{P256_KEY}");
        assert!(PublicKey::parse(&two).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0x01, 0x00, 0x01]), 17);
    }
}
